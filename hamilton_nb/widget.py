"""The cache panel: one ipywidgets panel per session, fed by the session's events (DESIGN §5).

The panel is a ``VBox`` that is created once per session and then only *updated*: rows are
kept per node and re-filled, never re-created per run. Showing it again in a later cell turns
the previous output into a static snapshot (a display update to plain HTML), so a notebook has
exactly one live panel and the earlier cells keep a record of what their run did.

Where widgets cannot render (nbconvert, a terminal IPython, a notebook opened without its
widget state) the same rows come through ``text/html`` and ``text/plain`` in the mimebundle,
and the DAG state in the lab extension's MIME type (``report.DAG_MIME``). When a run ends, the
output of the cell that started it is updated with its final state, so a saved notebook shows
what each cell's run did, not the state before it.

Display updates never reach back into a cell that is being executed again: nbclient (and so
nbconvert, papermill, nbval) clears such a cell's outputs without forgetting their display ids,
and an update then fails inside the client.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from .comm import in_cell_execution
from .events import (
    CacheNote,
    DagChanged,
    Event,
    NodeEvent,
    NodeStarted,
    RunFinished,
    RunStarted,
    Status,
)
from .report import (
    DAG_MIME,
    ROWS_PER_REASON,
    STALE_ROWS,
    Tally,
    cached_front_state,
    cell_label,
    cleared_nodes,
    human_bytes,
    human_seconds,
    stale_reasons,
)
from .session import Session, SessionError

__all__ = ["FILTERS", "SORTS", "Panel", "Row", "available", "forget", "graph_svg", "panel_for"]

# status key -> (label, colour). Keys are the public statuses plus what only the panel knows.
# One colour language for every front-end: labextension/style/base.css uses the same colours
# (test_widget checks that they agree).
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "cached": ("cached", "#2e7d32"),
    "computed": ("computed", "#1565c0"),
    "not_cached": ("not cached", "#00838f"),
    "uncacheable": ("uncacheable", "#6d4c41"),
    "cleared": ("cleared", "#78909c"),
    "failed": ("failed", "#c62828"),
    "skipped": ("skipped", "#757575"),
    "stale": ("stale", "#e6a700"),
    "running": ("running", "#6a1b9a"),
    "queued": ("queued", "#9e9e9e"),
    "never_run": ("never run", "#bdbdbd"),
    "input": ("input", "#ffffff"),
}
# Badges whose colour is light get dark text.
_DARK_TEXT = frozenset({"stale", "never_run", "queued", "input"})
# What each colour means, shown as the legend (same order in the lab extension).
LEGEND = ("cached", "computed", "running", "queued", "stale", "failed", "skipped", "cleared",
          "never_run")

FILTERS: dict[str, frozenset[str] | None] = {
    "all": None,
    "stale": frozenset({"stale"}),
    "recomputed": frozenset({"computed", "not_cached", "uncacheable"}),
    "failed": frozenset({"failed"}),
}
SORTS = ("dag", "duration")
FLUSH_S = 0.1  # live updates during a run: at most ten a second
MAX_ROWS = 100  # rows shown before "show all": each row is five widgets in the browser
GRAPH_TAB = 1  # the index of the graph among the panel's tabs


@dataclass(frozen=True)
class Row:
    """What the panel shows for one node."""

    node: str
    status: str  # a key of STATUS_STYLE
    reason: str = ""
    duration: float | None = None  # seconds the function ran (None: it did not run)
    saved: float | None = None  # seconds the cache saved
    size: int | None = None
    cell_id: str | None = None
    cache: str = ""  # the event's cache note
    error: str | None = None
    in_last_run: bool = False

    @property
    def label(self) -> str:
        label = STATUS_STYLE[self.status][0]
        if self.status == "uncacheable" and self.cache:
            return f"{label} ({self.cache})"
        if self.status == "not_cached":
            return f"{label} (by choice)"
        return label

    @property
    def why(self) -> str:
        return self.reason + (f": {self.error}" if self.error else "")

    def cells(self) -> tuple[str, ...]:
        return (self.node, self.label, self.why,
                human_seconds(self.duration) if self.duration is not None else "",
                human_seconds(self.saved) if self.saved else "", human_bytes(self.size),
                self.cell or "")

    cell: str = ""  # the defining cell as the user knows it (see report.cell_label)


HEAD = ("node", "status", "why", "took", "saved", "size", "cell")
# Column widths (flex-basis) so that the columns of separate row widgets line up; "why" takes
# what is left, so a row fits the notebook's width. Cut text keeps its full value as tooltip.
_WIDTHS = ("1 1 130px", "0 0 96px", "2 1 140px", "0 0 50px", "0 0 50px", "0 0 54px",
           "1 1 72px")
_ACTIONS_WIDTH = "84px"
NAME_CHARS = 20  # node names longer than this are shortened in the middle, never to the same text


def _span_style(width: str) -> str:
    flex = width if " " in width else f"0 0 {width}"
    return (f"display:inline-block;flex:{flex};min-width:0;overflow:hidden;"
            f"text-overflow:ellipsis;white-space:nowrap;vertical-align:middle")


def short_names(names: list[str], limit: int = NAME_CHARS) -> dict[str, str]:
    """Names that fit ``limit`` characters: long ones keep their start and end around a "…"
    (``feature_rolling_mean_7d`` -> ``feature_ro…mean_7d``), and two names never shorten to the
    same text (the cut is widened until they differ, up to the full names)."""
    out: dict[str, str] = {}
    for n in names:
        out[n] = n if len(n) <= limit else n[: (limit - 1) // 2 + (limit - 1) % 2] + "…" + \
            n[len(n) - (limit - 1) // 2:]
    for _ in range(200):
        seen: dict[str, list[str]] = {}
        for n, short in out.items():
            seen.setdefault(short, []).append(n)
        clashes = [ns for ns in seen.values() if len(ns) > 1]
        if not clashes:
            break
        for ns in clashes:
            for n in ns:
                cur = out[n]
                if cur == n:
                    continue
                keep = len(cur) - 1 + 2  # one more character on each side
                if keep >= len(n):
                    out[n] = n
                else:
                    head = (keep + 1) // 2
                    out[n] = n[:head] + "…" + n[len(n) - (keep - head):]
    return out


def _status_key(ev: NodeEvent) -> str:
    if ev.status is Status.COMPUTED:
        if ev.cache is CacheNote.DISABLED:
            return "not_cached"
        if ev.cache in (CacheNote.UNHASHABLE, CacheNote.UNPICKLABLE):
            return "uncacheable"
    return ev.status.value


def _row_from_event(ev: NodeEvent, in_last_run: bool) -> Row:
    ran = ev.status in (Status.COMPUTED, Status.FAILED)
    return Row(ev.node, _status_key(ev), ev.reason, ev.duration if ran else None,
               ev.saved or None, ev.size, ev.cell_id, ev.cache.value, ev.error, in_last_run)


def _css(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _badge(status: str, label: str) -> str:
    colour = STATUS_STYLE[status][1]
    text = "#222" if status in _DARK_TEXT else "white"
    return (f"<span class='hnbw-status hnbw-status-{status}' style='background:{colour};"
            f"color:{text};border-radius:8px;padding:0 6px;white-space:nowrap'>"
            f"{html.escape(label)}</span>")


def legend_html() -> str:
    """What each colour means: the same statuses and colours as the lab extension's legend."""
    items = "".join(
        f"<span class='hnbw-legend-item' data-status='{k}' style='display:inline-flex;"
        f"align-items:center;gap:3px;margin-right:10px'><span style='display:inline-block;"
        f"width:10px;height:10px;border-radius:3px;background:{STATUS_STYLE[k][1]}'></span>"
        f"{html.escape(STATUS_STYLE[k][0])}</span>"
        for k in LEGEND)
    return f"<div class='hnbw-legend' style='font-size:11px;color:#555'>{items}</div>"


def _row_html(row: Row, short: str | None = None) -> str:
    cells = row.cells()
    spans = []
    for i, (text, width) in enumerate(zip(cells, _WIDTHS, strict=True)):
        shown = short if i == 0 and short is not None else text
        content = _badge(row.status, text) if i == 1 else html.escape(shown)
        style = _span_style(width)
        spans.append(f"<span class='hnbw-c hnbw-c-{HEAD[i]}' title='{html.escape(text)}' "
                     f"style='{style}'>{content}</span>")
    opacity = "1" if row.in_last_run or row.status in ("stale", "running", "queued") else "0.6"
    # contain:inline-size: long texts must not widen the widget's box (they are cut inside
    # their column instead, with the full text as tooltip).
    return (f"<div class='hnbw-cells' style='display:flex;width:100%;gap:4px;opacity:{opacity};"
            f"contain:inline-size;"
            f"font-size:12px'>{''.join(spans)}</div>")


def _header() -> W.HBox:
    """The column titles, laid out like a row (same flex split, same room for the buttons)."""
    return W.HBox([W.HTML(_head_html(), layout=W.Layout(flex="1 1 0%", min_width="0")),
                   W.HTML("", layout=W.Layout(width=_ACTIONS_WIDTH, flex="0 0 auto"))])


def _head_html() -> str:
    spans = "".join(
        f"<span style='{_span_style(w)};font-weight:bold'>{h}</span>"
        for h, w in zip(HEAD, _WIDTHS, strict=True)
    )
    return (f"<div style='display:flex;width:100%;gap:4px;font-size:12px;"
            f"contain:inline-size'>{spans}</div>")


_SVG_IDS = itertools.count(1)  # marker ids are document-global: every SVG gets its own


# drawing content -> SVG, the most recently used last. Enough for "run all" of a notebook of
# a few dozen cells: each cell's output keeps a drawing of its own run's nodes.
_SVG_MEMO: dict[tuple[Any, ...], str] = {}
_SVG_MEMO_ENTRIES, _SVG_MEMO_CHARS = 32, 16_000_000
_SVG_LOCK = threading.Lock()  # the panel's flush timer draws from its own thread


def graph_svg(session: Session, rows: dict[str, Row]) -> str:
    """:func:`_graph_svg`, drawn once per content: one run asks for the same fallback drawing
    several times (the live view, the cell's final output, its text/HTML snapshot), and at a
    few hundred nodes drawing it is most of what a cell costs in a kernel."""
    dag = session.dag
    key = tuple((n, tuple(dag.deps.get(n, ())), r.status, r.label) for n, r in rows.items())
    with _SVG_LOCK:
        svg = _SVG_MEMO.pop(key, None)
        if svg is None:
            svg = _graph_svg(session, rows)
            while _SVG_MEMO and (len(_SVG_MEMO) >= _SVG_MEMO_ENTRIES or sum(
                    map(len, _SVG_MEMO.values())) + len(svg) > _SVG_MEMO_CHARS):
                _SVG_MEMO.pop(next(iter(_SVG_MEMO)))  # the least recently used
        _SVG_MEMO[key] = svg
        return svg


def _graph_svg(session: Session, rows: dict[str, Row]) -> str:
    """The live DAG as an SVG, left to right, one column per depth, nodes coloured by status.

    The fallback where the lab extension is not installed (nbconvert HTML, GitHub, VS Code):
    the extension draws the same state with a real layout library. Drawn in Python so that no
    graphviz binary is needed; it scales down to the width it is given.
    """
    dag = session.dag
    # The nodes of the rows (a snapshot shows its run's nodes only) and the inputs they read.
    inputs = {d for r in rows if r in dag.deps for d in dag.deps[r] if d in dag.inputs}
    pos = dag.position()  # (sorted: a run's part of a long notebook costs that part)
    order = sorted((rows.keys() | inputs) & pos.keys(), key=pos.__getitem__)
    if not order:
        return "<i>The live DAG is empty.</i>"
    depth: dict[str, int] = {}
    for name in order:  # dag.order is topological
        deps = [d.name for d in dag.nodes[name].dependencies if d.name in depth]
        depth[name] = 1 + max((depth[d] for d in deps), default=-1)
    layers: dict[int, list[str]] = {}
    for name in order:
        layers.setdefault(depth[name], []).append(name)
    bw, bh, gx, gy, pad = 140, 26, 60, 14, 8
    pos = {name: (pad + d * (bw + gx), pad + i * (bh + gy))
           for d, names in layers.items() for i, name in enumerate(names)}
    width = pad * 2 + (max(layers) + 1) * (bw + gx) - gx
    height = pad * 2 + max(len(v) for v in layers.values()) * (bh + gy) - gy
    arrow = f"hnbw-arrow-{next(_SVG_IDS)}"
    parts = [
        f"<svg class='hnbw-graph-svg' xmlns='http://www.w3.org/2000/svg' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' "
        f"style='font-family:sans-serif;max-width:100%;height:auto'>",
        f"<defs><marker id='{arrow}' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='6' "
        "markerHeight='6' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
        "fill='#888'/></marker></defs>",
    ]
    # What every edge (every node) shares is said once, on its group (these SVG properties
    # inherit): a few hundred nodes' drawing is sent twice per run (graph tab, cell output).
    parts.append(f"<g fill='none' stroke='#888' marker-end='url(#{arrow})'>")
    for name in order:
        x2, y2 = pos[name]
        for d in dag.nodes[name].dependencies:
            if d.name not in pos:
                continue
            x1, y1 = pos[d.name]
            x1, y1, y2c = x1 + bw, y1 + bh / 2, y2 + bh / 2
            mid = (x1 + x2) / 2
            parts.append(f"<path class='hnbw-edge' data-from='{html.escape(d.name)}' "
                         f"data-to='{html.escape(name)}' "
                         f"d='M{x1},{y1} C{mid},{y1} {mid},{y2c} {x2},{y2c}'/>")
    parts.append("</g><g text-anchor='middle' font-size='12'>")
    shorts = short_names(order, 18)
    for name in order:
        x, y = pos[name]
        if dag.nodes[name].user_defined:
            status, label = "input", "input"
        else:
            row = rows.get(name)
            status, label = (row.status, row.label) if row else ("never_run", "never run")
        colour = STATUS_STYLE[status][1]
        text_colour = "#222" if status in _DARK_TEXT else "white"
        dash = " stroke-dasharray='4 3'" if status == "input" else ""
        short = shorts[name]
        parts.append(
            f"<g class='hnbw-gnode hnbw-gnode-{status}' data-node='{html.escape(name)}'>"
            f"<title>{html.escape(name)}: {html.escape(label)}</title>"
            f"<rect x='{x}' y='{y}' width='{bw}' height='{bh}' rx='6' fill='{colour}' "
            f"stroke='#555'{dash}/>"
            f"<text x='{x + bw / 2}' y='{y + bh / 2 + 4}' "
            f"fill='{text_colour}'>{html.escape(short)}</text></g>"
        )
    parts.append("</g></svg>")
    return "".join(parts)


def _preview_html(node: str, value: Any, source: str) -> str:
    """A short look at a value: the head of a DataFrame/Series, else a truncated repr."""
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    title = (f"<b>{html.escape(node)}</b> — {html.escape(kind)}"
             + (f" {html.escape(str(tuple(shape)))}" if shape is not None else "")
             + f" <i>(from {html.escape(source)})</i>")
    head = getattr(value, "head", None)
    to_html = getattr(value, "to_html", None)
    if callable(head) and callable(to_html):  # pandas DataFrame / Series
        try:
            body = value.head(10).to_html(max_cols=20)
        except TypeError:
            body = value.head(10).to_frame().to_html()
    else:
        text = repr(value)
        if len(text) > 2000:
            text = text[:2000] + "…"
        body = f"<pre style='margin:0'>{html.escape(text)}</pre>"
    return f"<div class='hnbw-preview-body'>{title}<div style='overflow:auto'>{body}</div></div>"


class _RowView:
    """The widgets of one node's row; created once per node and re-filled on every update."""

    def __init__(self, panel: Panel, node: str) -> None:
        self.info = W.HTML(layout=W.Layout(flex="1 1 0%", min_width="0", overflow="hidden"))

        def button(action: str, icon: str, tooltip: str) -> W.Button:
            # An icon with a tooltip: three words of buttons per row took the room the
            # columns need at a notebook's width.
            b = W.Button(description=icon, tooltip=tooltip, style={"font_size": "12px"},
                         layout=W.Layout(width="26px", height="22px", padding="0",
                                         flex="0 0 auto"))
            b.add_class(f"hnbw-btn-{action}")
            return b

        self.recompute = button("recompute", "↻", f"clear {node}'s cache entry and compute it "
                                "again")
        self.clear = button("clear", "✕", f"delete {node}'s cache entries")
        self.preview = button("preview", "⊙", f"show the value of {node}")
        # The panel is held weakly so a row never keeps a closed panel alive.
        ref = weakref.ref(panel)
        self.recompute.on_click(lambda _b: _call(ref, "recompute", node))
        self.clear.on_click(lambda _b: _call(ref, "clear_node", node))
        self.preview.on_click(lambda _b: _call(ref, "preview_node", node))
        self.actions = W.HBox([self.recompute, self.clear, self.preview],
                              layout=W.Layout(width=_ACTIONS_WIDTH, flex="0 0 auto"))
        self.box = W.HBox([self.info, self.actions], layout=W.Layout(align_items="center"))
        self.box.add_class("hnbw-row")
        self.box.add_class(f"hnbw-row-{_css(node)}")

        self._shown: tuple[Row, str | None] | None = None

    def show(self, row: Row, short: str | None) -> None:
        """Fill the row with ``row`` (its HTML is made again only when the row changed)."""
        shown = self._shown
        if shown is None or shown[0] is not row or shown[1] != short:
            self.info.value = _row_html(row, short)
            self._shown = (row, short)

    def close(self) -> None:
        for w in (self.info, self.recompute, self.clear, self.preview, self.actions, self.box):
            w.close()


def _call(ref: Callable[[], Panel | None], method: str, node: str) -> None:
    panel = ref()
    if panel is not None:
        getattr(panel, method)(node)


class Panel(W.VBox):
    """Per-node cache status of a session, live while runs progress, with actions.

    Get the session's panel with :func:`panel_for` (one per session); ``show()`` displays it.
    """

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session_ref = weakref.ref(session)
        self.summary = W.HTML()
        self.summary.add_class("hnbw-summary")
        self.filter = W.Dropdown(options=[("all nodes", "all"), ("stale", "stale"),
                                          ("recomputed", "recomputed"), ("failed", "failed")],
                                 value="all", description="show",
                                 layout=W.Layout(width="200px"))
        self.sort = W.Dropdown(options=[("DAG order", "dag"), ("slowest first", "duration")],
                               value="dag", description="sort",
                               layout=W.Layout(width="200px"))
        self.table = W.VBox(layout=W.Layout(max_height="420px", overflow="auto"))
        self.table.add_class("hnbw-table")
        # The graph is an output holding the DAG state in the lab extension's MIME type (drawn
        # there with its layout library, zoomable) and a static SVG for front-ends without it.
        self.graph = W.Output(layout=W.Layout(max_width="100%", overflow="auto"))
        self.graph.add_class("hnbw-graph")
        self.legend = W.HTML(legend_html())
        self.legend.add_class("hnbw-legend-box")
        self.message = W.HTML()
        self.message.add_class("hnbw-message")
        self.preview = W.HTML()
        self.preview.add_class("hnbw-preview")
        self._header = _header()
        self.more = W.Button(layout=W.Layout(display="none"))
        self.more.add_class("hnbw-more")
        self._show_all = False
        self.more.on_click(lambda _b: self._expand())
        self.tabs = W.Tab(children=[W.VBox([self._header, self.table, self.more]), self.graph],
                          titles=("nodes", "graph"))
        self.children = [self.summary, W.HBox([self.filter, self.sort]), self.tabs,
                         self.legend, self.message, self.preview]
        self.add_class("hnbw-panel")

        self.rows: dict[str, Row] = {}  # every function node of the live DAG, in DAG order
        self._views: dict[str, _RowView] = {}
        self._run_events: list[NodeEvent] = []  # of the run in progress / the last run
        self._reused: dict[str, NodeEvent] = {}  # upstream the run reused, as hits
        self._running = False
        self._live: dict[str, str] = {}  # node -> "queued" | "running" during a run
        # Rows changed during a run, sent to the browser at most every FLUSH_S: a 500-node
        # all-hit run would otherwise send a thousand widget messages.
        self._dirty: set[str] = set()
        self._last_flush = 0.0
        self._requested: set[str] = set()  # recomputed with the button (their reason says so)
        # What the rows show (kept between runs: a run recomputes only the rows it changed).
        self._stale: set[str] = set()  # stale nodes (none during a run)
        self._stale_reasons: dict[str, str] = {}
        self._cleared: set[str] = set()  # entries gone since the value was stored
        self._stale_rows: set[str] = set()  # rows whose status is "stale" (the summary counts)
        self._in_last: set[str] = set()  # nodes of self._run_events
        self._tally = Tally()  # the summary line of self._run_events
        # node -> (its event, the hit event a run reusing it showed) (see _reused_for)
        self._reused_kept: dict[str, tuple[NodeEvent | None, NodeEvent | None]] = {}
        # _reused_for's last answer: (upstream, their events, the hits by node)
        self._reused_last: tuple[tuple[str, ...], list[Any], dict[str, NodeEvent]] | None = None
        self._reused_tally: tuple[dict[str, NodeEvent], Tally] | None = None
        self._rows_shape = 0  # the DAG's shape_version the rows' names and order are of
        self._structure_changed = True  # the table's children must be rebuilt
        self._graph_pending = False  # the graph waits for the next flush
        # The graph tab shows an older state than the rows: it is drawn when it is selected.
        self._graph_stale = True
        self._run_stale: frozenset[str] = frozenset()  # stale nodes as the run started
        # node -> (row, its text cells, its <tr>) as to_text/to_html last made them
        self._static: dict[str, tuple[Row, tuple[str, ...], str]] = {}
        self._shorts: dict[str, str] = {}  # node -> name as shown in the table
        self._counts: dict[str, int] = {}  # cell -> execution count of its last registration
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()  # the flush timer runs in another thread
        self._armed = False
        self._handle: Any = None
        # (execution message, rows, summary) of the run that wrote the output it started in
        self._final: tuple[str, list[Row], str, str] | None = None
        self._handle_cell: str | None = None  # which cell execution shows the live panel
        self._handle_msg: str | None = None
        self.closed = False
        self.filter.observe(lambda _c: self._render_table(), "value")
        self.sort.observe(lambda _c: self._render_table(), "value")
        self.tabs.observe(self._on_tab, "selected_index")
        self._unsubscribe = session.subscribe(self._on_event)
        from IPython import get_ipython

        self._shell = get_ipython()
        if self._shell is not None and getattr(self._shell, "kernel", None) is None:
            self._shell = None  # plain IPython: no front-end, nothing to wait for
        if self._shell is not None:
            self._shell.events.register("post_run_cell", self._post_run_cell)
        last = session.last_run_events()
        self._reused = {e.node: e for e in last if e.node in session.node_events
                        and session.node_events[e.node] is not e}
        self._set_run_events([self._reused.get(e.node) or session.node_events[e.node]
                              for e in last if e.node in session.node_events])
        current, _ = _current_execution()  # the cell that creates the panel just registered
        for cid, c in list(session.dag.cells.items()):
            if current is not None and c.jupyter_id == current:
                self._note_execution_count(cid)
        self.refresh()

    # -- state ---------------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        session = self._session_ref()
        if session is None:
            raise RuntimeError("hamilton_nb: the session of this panel is gone.")
        return session

    def visible_rows(self) -> list[Row]:
        """The rows as shown: filtered and sorted by the panel's controls."""
        wanted = FILTERS[self.filter.value]
        rows = [r for r in self.rows.values() if wanted is None or r.status in wanted]
        if self.sort.value == "duration":
            rows.sort(key=lambda r: (-(r.duration or 0.0), -(r.saved or 0.0)))
        return rows

    def summary_text(self) -> str:
        tally = self._tally
        if self._running:
            done = tally.n
            total = done + len(self._live)
            text = f"running… {done}/{total} nodes done"
            return text + (f" ({tally.line()})" if done else "")
        text = tally.line() if tally.n else "no run yet"
        stale = len(self._stale_rows)
        return text + (f" · {stale} stale" if stale else "")

    def _set_run_events(self, events: list[NodeEvent],
                        reused: dict[str, NodeEvent] | None = None) -> None:
        """``reused``: the hits ``events`` are made of (the same dict as the last run's: its
        count and node set are the last run's, not counted again)."""
        self._run_events = events
        self._n_hits = len(reused) if reused is not None else 0  # the hits events start with
        kept = self._reused_tally
        if reused is not None and kept is not None and kept[0] is reused:
            self._tally, self._in_last = kept[1].copy(), set(reused)
            return
        self._in_last = {e.node for e in events}
        self._tally = Tally()
        for e in events:
            self._tally.add(e)
        if reused is not None:
            self._reused_tally = (reused, self._tally.copy())

    def _add_run_event(self, ev: NodeEvent) -> None:
        self._run_events.append(ev)
        self._in_last.add(ev.node)
        self._tally.add(ev)

    def _reused_for(self, frontier: tuple[str, ...]) -> dict[str, NodeEvent]:
        """``session.reused_events(frontier)`` by node, each node's the same object as last
        time while its own event is (cells re-run reuse the same upstream again and again;
        making its hit events costs a ``dataclasses.replace`` per upstream node, and a new
        object would make its row look changed). The DAG changing drops what is kept."""
        s = self.session
        dag = s.dag
        frontier = tuple(n for n in frontier if n in dag.nodes)
        if not frontier:
            return {}
        ups = dag.upstream_all(frontier)
        events, kept = list(map(s.node_events.get, ups)), self._reused_kept
        last = self._reused_last
        if last is not None and last[0] is ups and last[1] == events:
            return last[2]  # the same upstream, the same events (compared in C)
        out: dict[str, NodeEvent] = {}
        # What Session.reused_events(frontier) makes, in its order, made again only for the
        # nodes whose event changed since.
        inputs = dag.inputs
        for n, ev in zip(ups, events, strict=True):
            hit = kept.get(n)
            if hit is None or hit[0] is not ev:
                hit = kept[n] = (ev, None if ev is None or n in inputs
                                 else s.reused_event(ev))
            if hit[1] is not None:
                out[n] = hit[1]
        self._reused_last = (ups, events, out)
        return out

    def _sync_marks(self) -> set[str]:
        """Take the stale and cleared marks as they are now (none if asked during a run:
        working staleness out belongs after it; a run keeps the marks it started with, see
        ``_on_event``); returns the nodes whose mark or reason changed."""
        s = self.session
        if self._running:
            stale: set[str] = set()
            reasons: dict[str, str] = {}
            cleared: set[str] = set()
        else:
            stale = s.stale_nodes()
            reasons = stale_reasons(s, stale) if stale else {}
            cleared = cleared_nodes(s)
        old = self._stale_reasons
        changed = (stale ^ self._stale) | (cleared ^ self._cleared)
        if reasons != old:  # (compared in C: after most runs they are the same)
            changed |= {n for n, _ in reasons.items() ^ old.items() if n in stale}
        self._stale, self._stale_reasons, self._cleared = stale, reasons, cleared
        return changed

    def _compute_rows(self) -> None:
        """Every row again (a new panel, a reset or restore, ``refresh()``)."""
        s = self.session
        self._sync_marks()
        rows: dict[str, Row] = {}
        for name in s.dag.order:
            if s.dag.nodes[name].user_defined:
                continue
            rows[name] = self._row(name)
        self.rows = rows
        self._rows_shape = s.dag.shape_version
        self._stale_rows = {n for n, r in rows.items() if r.status == "stale"}
        self._shorts = short_names(list(rows))
        self._structure_changed = True

    def _update_rows(self, names: set[str]) -> set[str]:
        """Recompute the rows of ``names`` (nodes that are no row are skipped); returns those
        that changed."""
        changed = set()
        rows = self.rows
        for name in names:
            old = rows.get(name)
            if old is None:
                continue
            row = self._row(name)
            if row != old:
                rows[name] = row
                changed.add(name)
                if row.status == "stale":
                    self._stale_rows.add(name)
                else:
                    self._stale_rows.discard(name)
        return changed

    def _refresh_some(self, names: set[str], graph: bool = True) -> None:
        """After a cell was registered or removed: the rows of its nodes, the rows whose stale
        or cleared mark changed, and the table's rows if nodes came or went."""
        s = self.session
        dirty = set(names) | self._sync_marks()
        # The same shape (an edit that kept its names and inputs): the same rows in the same
        # order, without a pass over the notebook's nodes.
        same = self._rows_shape == s.dag.shape_version
        order = [] if same else [n for n in s.dag.order if n not in s.dag.inputs]
        if not same and order != list(self.rows):
            old = self.rows
            self.rows = {n: old[n] if n in old and n not in dirty else self._row(n)
                         for n in order}
            self._stale_rows = {n for n, r in self.rows.items() if r.status == "stale"}
            self._shorts = short_names(order)
            self._structure_changed = True
            changed = {n for n in dirty if n in self.rows}
        else:
            changed = self._update_rows(dirty)
        self._rows_shape = s.dag.shape_version
        self._render(changed, graph=graph)

    def _row(self, name: str) -> Row:
        s = self.session
        ev = self._reused.get(name) or s.node_events.get(name)
        cell = s.dag.node_cell.get(name)
        label = cell_label(s, cell)
        count = self._counts.get(cell) if cell else None
        if count is not None:
            label = f"[{count}] {label}"
        live = self._live.get(name)
        if live is not None:
            prev = _row_from_event(ev, False) if ev else Row(name, live)
            return Row(name, live, "computing…" if live == "running" else "", prev.duration,
                       prev.saved, prev.size, cell, in_last_run=True, cell=label)
        if ev is None:
            return Row(name, "never_run", "", cell_id=cell, cell=label)
        row = _row_from_event(ev, name in self._in_last)
        reason = row.reason
        if name in self._requested and ev.status is Status.COMPUTED:
            reason = "recomputed on request"
        row = Row(name, row.status, reason, row.duration, row.saved, row.size, cell, row.cache,
                  row.error, row.in_last_run, cell=label)
        if name in self._stale and ev.status in (Status.COMPUTED, Status.CACHED):
            # (a failed or skipped node has no value to be stale; its own status says more)
            row = Row(name, "stale", self._stale_reasons.get(name, "an upstream value changed"),
                      row.duration, row.saved, row.size, cell, row.cache, None, True, cell=label)
        elif name in self._cleared and row.status in ("cached", "computed"):
            row = Row(name, "cleared", "cache entry cleared: the next run recomputes it",
                      row.duration, row.saved, row.size, cell, row.cache, None, row.in_last_run,
                      cell=label)
        return row

    # -- rendering -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute every row (including which nodes are stale) and redraw."""
        self._compute_rows()
        self._render()

    def _render(self, changed: set[str] | None = None, graph: bool = True) -> None:
        """Send what changed to the browser: the summary, the rows of ``changed`` (None: all),
        the table's list of rows when nodes came or went (or a filter or sort is on: then
        which rows show depends on their content), the graph when it shows and its content
        changed (ipywidgets sends a trait only when its new value differs)."""
        self.summary.value = f"<b>{html.escape(self.summary_text())}</b>"
        if changed is None or self._structure_changed or self.filter.value != "all" \
                or self.sort.value != "dag":
            self._render_table()
        else:
            self._show_rows(changed)
        if graph:
            self._render_graph()

    def _render_graph(self) -> None:
        self._graph_pending = False
        if self.tabs.selected_index != GRAPH_TAB:
            # Hidden: the graph is of the whole DAG, and drawing and sending it (ipywidgets
            # walks the whole output looking for binary buffers) was most of what a one-cell
            # re-run cost in a long notebook. It is drawn when its tab is selected.
            self._graph_stale = True
            return
        self._graph_stale = False
        bundle = self.graph_bundle()
        self.graph.outputs = ({"output_type": "display_data", "metadata": {}, "data": bundle},)

    def _on_tab(self, change: dict[str, Any]) -> None:
        # A tab switch reaches the kernel between cells (a comm message waits while a cell
        # runs): the graph then shows the state as it is, not the one it missed.
        if change.get("new") == GRAPH_TAB and self._graph_stale and not self.closed:
            with self._lock:
                self._render_graph()

    def _show_rows(self, names: set[str]) -> None:
        for name in names:
            view = self._views.get(name)
            row = self.rows.get(name)
            if view is not None and row is not None:
                view.show(row, self._shorts.get(name))

    def graph_bundle(self, rows: dict[str, Row] | None = None) -> dict[str, Any]:
        """The DAG in the lab extension's MIME type, with the static SVG as the fallback."""
        rows = self.rows if rows is None else rows
        return {DAG_MIME: {"state": self.front_state(rows)},
                "text/html": graph_svg(self.session, rows),
                "text/plain": f"hamilton_nb DAG: {len(rows)} nodes"}

    def front_state(self, rows: dict[str, Row] | None = None) -> dict[str, Any]:
        """The DAG state (docs/protocol.md) with the statuses this panel shows."""
        rows = self.rows if rows is None else rows
        # The cached state shares its node dicts with the comm's: a changed one is a copy.
        # During a run (drawn from the flush timer's thread too) it is the state as the run
        # started: staleness was worked out then, on the kernel's thread.
        state = cached_front_state(self.session, extras=not self._running,
                                   stale=self._run_stale if self._running else None,
                                   names=None if rows is self.rows else rows.keys())
        nodes = []
        for n in state["nodes"]:
            row = rows.get(n["name"])
            if row is None:
                if n["kind"] != "input":
                    continue  # a snapshot shows only the nodes of its run
            elif n["status"] != row.status or n["reason"] != row.why:
                n = {**n, "status": row.status, "reason": row.why}
            nodes.append(n)
        state["nodes"] = nodes
        state["running"] = self._running
        return state

    def _render_table(self) -> None:
        self._structure_changed = False
        for name in list(self._views):
            if name not in self.rows:  # the node left the DAG: free its widgets
                self._views.pop(name).close()
        children = []
        rows = self.visible_rows()
        shown = rows if self._show_all else rows[:MAX_ROWS]
        if len(shown) < len(rows):
            self.more.description = f"show all {len(rows)} nodes"
            self.more.layout.display = None
        else:
            self.more.layout.display = "none"
        for row in shown:
            view = self._views.get(row.node)
            if view is None:
                view = self._views[row.node] = _RowView(self, row.node)
            view.show(row, self._shorts.get(row.node))
            # The buttons stay enabled during a run (recompute/clear refuse then, and say so):
            # toggling them cost two widget messages per row at the start and end of every run.
            children.append(view.box)
        if tuple(children) != tuple(self.table.children):
            self.table.children = children

    def _update_row(self, name: str) -> None:
        """Cheap update of one row during a run (no stale check, no re-sort), throttled: what
        changed within FLUSH_S is sent when the window ends, so a node that runs for minutes
        shows "running" (not "queued") while it runs."""
        if name not in self.session.dag.nodes or self.session.dag.nodes[name].user_defined:
            return
        with self._lock:
            self._dirty.add(name)
        self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            wait = self._last_flush + FLUSH_S - time.monotonic()
            if wait <= 0:
                self._flush()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._flush_later)
                self._timer.daemon = True
                self._timer.start()

    def _flush_later(self) -> None:
        with self._lock:
            self._timer = None
            if self._running and (self._dirty or self._graph_pending) and not self.closed:
                self._flush()

    def _cancel_timer(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _flush(self) -> None:
        with self._lock:
            changed = self._update_rows(self._dirty)
            self._dirty.clear()
            self._show_rows(changed)
            if self._graph_pending:  # the run's first flush: its plan shows as "queued"
                self._render_graph()
            self.summary.value = f"<b>{html.escape(self.summary_text())}</b>"
            self._last_flush = time.monotonic()

    def _expand(self) -> None:
        self._show_all = True
        self._render_table()

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        # Only the rows a run or an edit changed are made again and sent: the nodes of the
        # run's plan, the upstream it reused when that differs from last time, the rows that
        # leave the last run, and those whose stale or cleared mark changed.
        if isinstance(ev, RunStarted):
            if self._armed:
                self._armed = False
                self.show(run_starting=True)
            s = self.session
            with self._lock:
                self._running = True
                dirty = set(self._requested)
                if not self._button_run:
                    self._requested.clear()
                dirty |= self._requested
                reused = self._reused_for(ev.reused)
                old = self._reused
                if reused is not old:  # (the same upstream as the last run: the same dict)
                    dirty |= {n for n in old.keys() | reused.keys()
                              if old.get(n) is not reused.get(n)}
                self._reused = reused
                was_in_last = self._in_last
                self._set_run_events(list(reused.values()), reused)
                dirty |= was_in_last ^ self._in_last
                self._live = {n: "queued" for n in ev.nodes if not s.dag.nodes[n].user_defined}
                dirty |= self._live.keys()
                # The stale and cleared marks stay while it runs (the plan's rows show queued
                # and running over them; a node that finishes loses its mark): taking them off
                # at the start and on again at the end cost a row per stale node, twice.
                self._run_stale = frozenset(s.stale_nodes())
                self._dirty |= dirty
                # The plan shows as "queued" at the first flush, FLUSH_S after the start: a run
                # served from the cache is over by then and sends its final rows only.
                self._graph_pending = True
                self._last_flush = max(self._last_flush, time.monotonic())
            self._schedule()
        elif isinstance(ev, NodeStarted):
            self._live[ev.node] = "running"
            self._update_row(ev.node)
        elif isinstance(ev, NodeEvent):
            with self._lock:
                self._live.pop(ev.node, None)
                self._stale.discard(ev.node)  # its new event is news; the run's end says more
                self._cleared.discard(ev.node)
                self._add_run_event(ev)
            self._update_row(ev.node)
        elif isinstance(ev, RunFinished):
            self._cancel_timer()
            with self._lock:
                self._running = False
                dirty = self._dirty | self._live.keys()
                self._live.clear()
                self._dirty.clear()
                self._graph_pending = False
            dirty |= self._sync_marks()
            self._render(self._update_rows(dirty))
            self._write_final_state()
        elif isinstance(ev, DagChanged) and not self._running:
            self._note_execution_count(ev.cell_id)
            # A kept hit is made of its node's event alone (compared by identity): only the
            # nodes that left go (an edit making 300 hits again cost more than its run).
            if ev.cell_id is None:
                self._reused_kept = {}
                self._reused_last = None
            else:
                for name in ev.removed:
                    self._reused_kept.pop(name, None)
            cell = self.session.dag.cells.get(ev.cell_id) if ev.cell_id else None
            # Within a cell's execution the graph waits for the cell's run or its end
            # (_post_run_cell): a registration followed by a run would send the whole DAG's
            # drawing twice. The rows (what changed) go at once.
            graph = self._shell is None or not in_cell_execution(self._shell)
            if ev.cell_id is None:  # reset, restore, config, a cache clear: everything again
                self._compute_rows()
                self._render(graph=graph)
            else:
                self._refresh_some({*ev.added, *ev.removed, *(cell.nodes if cell else ())},
                                   graph=graph)
            self._graph_pending = not graph

    def _post_run_cell(self, result: Any = None) -> None:
        """The end of a cell's execution: the graph a registration left waiting is drawn."""
        if self._graph_pending and not self._running and not self.closed:
            self._render_graph()

    def _note_execution_count(self, cell_id: str | None) -> None:
        """Remember the prompt number ``[n]`` of the cell being registered, when the front-end
        says which notebook cell this execution is (JupyterLab and Notebook 7 do): that is how
        people name cells. A cell registered another way (restore) keeps no number."""
        cell = self.session.dag.cells.get(cell_id) if cell_id else None
        if cell is None:
            return
        self._counts.pop(cell_id, None)
        current, _ = _current_execution()
        if current is None or cell.jupyter_id is None or current != cell.jupyter_id:
            return
        from IPython import get_ipython

        shell = get_ipython()
        # The cell's input is stored in the history before it runs, under its prompt number
        # (``execution_count`` is already the next number while a cell runs in IPython 9).
        history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
        if history:
            self._counts[cell_id] = len(history) - 1

    @contextmanager
    def live(self) -> Iterator[Panel]:
        """Within this block, the next run that starts shows the panel first, so the user
        watches that run progress in the cell that started it."""
        self._armed = True
        try:
            yield self
        finally:
            self._armed = False

    # -- actions -------------------------------------------------------------------------------

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#c62828" if error else "inherit"
        self.message.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    def recompute(self, node: str) -> Any:
        """Clear ``node``'s cache entries and compute it again (its upstream may come from the
        cache); binds the new value in the notebook. Returns the run outcome, or None."""
        s = self.session
        if s.running:
            self._say("A run is in progress; try again when it has finished.", error=True)
            return None
        self._requested = {node}
        self._button_run = True
        try:
            s.clear([node])
            outcome = s.execute([node], s.last_inputs)
        except SessionError as e:
            self._say(str(e), error=True)
            return None
        finally:
            self._button_run = False
        s.bind(outcome)
        if outcome.errors:
            err = outcome.errors.get(node) or next(iter(outcome.errors.values()))
            self._say(f"`{node}` failed: {type(err).__name__}: {err}", error=True)
        else:
            ev = s.node_events.get(node)
            took = human_seconds(ev.duration) if ev else ""
            self._say(f"recomputed `{node}`" + (f" in {took}" if took else ""))
        return outcome

    def clear_node(self, node: str) -> int:
        """Delete the cache entries of ``node``; returns how many went."""
        s = self.session
        if s.running:
            self._say("A run is in progress; try again when it has finished.", error=True)
            return 0
        n = s.clear([node])  # emits DagChanged: the rows refresh (the node shows "cleared")
        if n:
            self._say(f"cleared {n} cache entr{'y' if n == 1 else 'ies'} of `{node}`: the next "
                      f"run recomputes it")
        else:
            self._say(f"`{node}` had nothing in the cache")
        return n

    def preview_node(self, node: str) -> str:
        """Show the value of ``node`` (the head of a DataFrame, else its repr) below the table."""
        try:
            value, source = self._value_of(node)
        except LookupError as e:
            self._say(str(e), error=True)
            self.preview.value = ""
            return ""
        self.preview.value = _preview_html(node, value, source)
        return self.preview.value

    def _value_of(self, node: str) -> tuple[Any, str]:
        s = self.session
        ev = s.node_events.get(node)
        if ev is not None and ev.data_version:
            for entry in s.store.entries():
                if entry.node == node and entry.data_version == ev.data_version:
                    try:
                        return s.store.load(entry), "the cache"
                    except Exception as e:  # a corrupt entry: say so instead of breaking
                        raise LookupError(f"the cached value of `{node}` is unreadable: {e}")\
                            from None
        if node in s.namespace:
            return s.namespace[node], "the notebook"
        raise LookupError(f"No value of `{node}` is available: recompute it first.")

    # -- display -------------------------------------------------------------------------------

    _button_run = False

    def show(self, run_starting: bool = False) -> None:
        """Display the panel in the current cell. A previous display of it (in another cell)
        becomes a static snapshot, so there is one live panel at a time."""
        from IPython.display import display

        cell, msg = _current_execution()
        reexecuted = cell is not None and cell == self._handle_cell and msg != self._handle_msg
        if self._handle is not None and not reexecuted:
            # The snapshot is of the run that output showed, as its end wrote it (later quiet
            # runs and edits since must not show up in an earlier cell's saved output), not of
            # nodes registered since. Never into a cell being executed again: the client has
            # cleared its outputs (nbclient would fail on the update; Lab would ignore it).
            # Within one execution (two runs in one cell) the earlier output is still there.
            final = self._final if self._final is not None and \
                self._final[0] == self._handle_msg else None
            self._handle.update(self.static_bundle(last_run_only=True) if final is None
                                else self.static_bundle(rows=final[1], summary=final[2],
                                                        more=final[3]),
                                raw=True)
        if run_starting and msg is not None:
            # A run shows the panel as it starts, within a kernel's execution of the cell: its
            # end writes this output again with the run's final rows, graph and state
            # (_write_final_state). Until then the widget view is what front-ends show; the
            # static table of the state before the run would only be sent to be replaced.
            self._handle = display(W.VBox._repr_mimebundle_(self), raw=True, display_id=True)
        else:
            self._handle = display(self, display_id=True)
        self._handle_cell, self._handle_msg = cell, msg

    def run_rows(self) -> tuple[list[Row], str]:
        """The rows the output of the last run lists, in DAG order, and a line saying what it
        left out: every node the run planned; of the upstream it reused without looking, the
        last ``ROWS_PER_REASON`` in topological order (in a chain, the nearest); of the nodes
        stale after it, the first ``STALE_ROWS``.

        A re-run of the middle cell of a long chain reuses the whole chain above it, and an
        edit high up makes everything below it stale: listing all of it made every cell's
        output (and the saved notebook) grow with the notebook. The summary line still counts
        every node; the live table lists them all."""
        rows, reused = self.rows, self._reused
        # The run's events follow the hits of what it reused (see _set_run_events).
        own = dict.fromkeys(e.node for e in itertools.islice(self._run_events, self._n_hits, None)
                            if e.node not in reused)
        up = [n for n in reused if n not in own]  # topological: the nearest come last
        near = up[-ROWS_PER_REASON:] if len(up) > ROWS_PER_REASON else up
        stale_rows = self._stale_rows
        stale = list(itertools.islice(
            (n for n in self.session.stale_in_order() if n in stale_rows and n not in own),
            STALE_ROWS)) if stale_rows else []
        pos = self.session.dag.position()
        names = sorted({*own, *near, *stale}, key=lambda n: pos.get(n, 0))
        shown = [rows[n] for n in names if n in rows]
        if not shown and not self._run_events:
            return list(rows.values())[:MAX_ROWS], ""
        left = [f"{n} reused from the cache" for n in (len(up) - len(near),) if n] + [
            f"{n} stale" for n in (len(stale_rows.difference(names)),) if n]
        more = (f"… and {' and '.join(left)} not listed here (the live panel and "
                f"`%hamilton status` list every node)") if left else ""
        return shown, more

    def _write_final_state(self) -> None:
        """The run ended: the output of the cell that started it gets the final state (its
        widget view again, with the text/HTML fallback and DAG state of *this* run), so a saved
        notebook, nbconvert and GitHub show what the run did. Only from within that cell's own
        execution: a run started by a button or the side panel leaves outputs alone."""
        if self._handle is None or self.closed:
            return
        _, msg = _current_execution()
        if msg is None or msg != self._handle_msg:
            return
        # This run's rows and their graph, as the snapshot it becomes shows them: every row
        # of a 500-node DAG in each cell's output made a one-cell re-run cost the notebook.
        shown, more = self.run_rows()
        by_node = {r.node: r for r in shown}
        graph = self.graph_bundle(by_node)
        summary = self.summary_text()
        data = super()._repr_mimebundle_() or {}
        data.update({"text/plain": self.to_text(shown, summary, more),
                     "text/html": self.to_html(shown, graph["text/html"], summary, more),
                     DAG_MIME: graph[DAG_MIME]})
        self._handle.update(data, raw=True)
        # What this output keeps when a later cell shows the panel: the rows and summary of
        # this run as it ended (rows are immutable: keeping them costs a list).
        self._final = (msg, shown, summary, more)

    def static_bundle(self, last_run_only: bool = False, state: bool = False,
                      graph: dict[str, Any] | None = None, rows: list[Row] | None = None,
                      summary: str | None = None, more: str = "") -> dict[str, Any]:
        """The rows as text and HTML; with ``state``, also the DAG state in the extension's
        MIME type (the lab extension draws it where the widget model is gone). ``graph``:
        :meth:`graph_bundle` of all rows, when the caller has it already. ``rows``,
        ``summary`` and ``more``: other rows than the current ones (a snapshot of an earlier
        run), and the line saying what they leave out. ``last_run_only``: the rows of
        :meth:`run_rows`."""
        if rows is None and last_run_only and self._run_events:
            rows, more = self.run_rows()
        if rows is not None:
            by = {r.node: r for r in rows}
            graph = self.graph_bundle(by) if state else {"text/html": graph_svg(self.session, by)}
        else:
            rows = list(self.rows.values())
            if graph is None:
                graph = self.graph_bundle() if state else \
                    {"text/html": graph_svg(self.session, self.rows)}
        data: dict[str, Any] = {"text/plain": self.to_text(rows, summary, more),
                                "text/html": self.to_html(rows, graph["text/html"], summary, more)}
        if state:
            data[DAG_MIME] = graph[DAG_MIME]
        return data

    def _static_parts(self, row: Row) -> tuple[tuple[str, ...], str]:
        """The text cells and the ``<tr>`` of a row, made again only when the row changed."""
        hit = self._static.get(row.node)
        if hit is not None and hit[0] is row:
            return hit[1], hit[2]
        cells = row.cells()
        tds = [f"<td style='text-align:left'>{html.escape(cells[0])}</td>",
               f"<td style='text-align:left'>{_badge(row.status, cells[1])}</td>"]
        tds += [f"<td style='text-align:left'>{html.escape(c)}</td>" for c in cells[2:]]
        tr = f"<tr class='hnbw-row-static hnbw-{row.status}'>{''.join(tds)}</tr>"
        if len(self._static) > 2 * len(self.rows) + 64:  # nodes that left the DAG
            self._static = {n: v for n, v in self._static.items() if n in self.rows}
        self._static[row.node] = (row, cells, tr)
        return cells, tr

    def to_text(self, shown: list[Row] | None = None, summary: str | None = None,
                more: str = "") -> str:
        """The rows ``shown`` (default all) as a text table; ``more``: a last line saying
        what the table leaves out."""
        shown = list(self.rows.values()) if shown is None else shown
        rows = [HEAD, *(self._static_parts(r)[0] for r in shown)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
        lines = [f"hamilton_nb — {summary or self.summary_text()}"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        if more:
            lines.append(more)
        return "\n".join(lines)

    def to_html(self, shown: list[Row] | None = None, svg: str | None = None,
                summary: str | None = None, more: str = "") -> str:
        """The rows ``shown`` (default all) as an HTML table, with the graph of those rows
        (``svg``: that drawing, when the caller has it); ``more``: a last row saying what the
        table leaves out."""
        shown = list(self.rows.values()) if shown is None else shown
        if svg is None:
            svg = graph_svg(self.session, {r.node: r for r in shown})
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in HEAD)
        body = [self._static_parts(row)[1] for row in shown]
        if more:
            body.append(f"<tr class='hnbw-more-static'><td colspan='{len(HEAD)}' "
                        f"style='text-align:left'><i>{html.escape(more)}</i></td></tr>")
        return (f"<div class='hnbw-static'><b class='hnbw-summary-static'>hamilton_nb — "
                f"{html.escape(summary or self.summary_text())}</b><table><thead><tr>{head}</tr>"
                f"</thead>"
                f"<tbody>{''.join(body)}</tbody></table>"
                f"<details><summary>graph</summary>{svg}</details></div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # ipywidgets gives the widget view and a one-line text/plain; add the table as text and
        # HTML for front-ends that cannot render widgets (nbconvert drops the view when no
        # widget state was saved and falls back to text/html; a terminal shows text/plain).
        data = super()._repr_mimebundle_(**kwargs) or {}
        data.update(self.static_bundle(state=True))
        return data

    def __repr__(self) -> str:
        return f"<hamilton_nb Panel: {self.summary_text()}>"

    def close(self) -> None:
        """Stop listening to the session and close every widget of the panel."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        self._unsubscribe()
        if self._shell is not None:
            with suppress(ValueError):  # already gone (a shell reset drops callbacks)
                self._shell.events.unregister("post_run_cell", self._post_run_cell)
        for view in self._views.values():
            view.close()
        self._views.clear()
        for w in (self.summary, self.filter, self.sort, self.table, self.graph, self.legend,
                  self.message,
                  self.preview, *self._header.children, self._header, *self.tabs.children,
                  self.tabs, self.children[1]):
            w.close()
        super().close()


def _current_execution() -> tuple[str | None, str | None]:
    """(which cell, which request) the kernel is executing: the cell is the front-end's cell id
    when it sends one (JupyterLab, Notebook 7), else a hash of the code (nbclient sends no id;
    re-executing a cell sends the same code); the request is the message id."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        kernel = getattr(shell, "kernel", None)
        parent = kernel.get_parent() if kernel is not None else None
    except Exception:  # no kernel, or an ipykernel without get_parent: nothing to compare
        return None, None
    if not parent:
        return None, None
    header = parent.get("header") or {}
    if header.get("msg_type") != "execute_request":
        return None, header.get("msg_id")
    cell = (parent.get("metadata") or {}).get("cellId")
    if not cell:
        code = (parent.get("content") or {}).get("code", "")
        cell = "code:" + hashlib.sha256(code.encode()).hexdigest()
    return cell, header.get("msg_id")


_PANELS: weakref.WeakKeyDictionary[Session, Panel] = weakref.WeakKeyDictionary()


def panel_for(session: Session) -> Panel:
    """The session's panel, created on first use; a closed panel is replaced by a new one."""
    panel = _PANELS.get(session)
    if panel is None or panel.closed:
        panel = _PANELS[session] = Panel(session)
    return panel


def forget(session: Session) -> None:
    """Close the session's panel, if any (``%unload_ext``)."""
    panel = _PANELS.pop(session, None)
    if panel is not None:
        panel.close()


def available(shell: Any = None) -> bool:
    """Whether widgets can render: the shell runs in a kernel that has a front-end."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    return getattr(shell, "kernel", None) is not None

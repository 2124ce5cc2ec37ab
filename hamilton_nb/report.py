"""Static views of runs and of the DAG: text and HTML, no widgets (nbconvert, terminal IPython)."""

from __future__ import annotations

import html
import itertools
import operator
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .events import NodeEvent, Status


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return ""
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def summary_line(events: Sequence[NodeEvent]) -> str:
    """E.g. ``12 nodes: 9 cached, 3 computed — 41.0 s saved``."""
    tally = Tally()
    for e in events:
        tally.add(e)
    return tally.line()


class Tally:
    """What :func:`summary_line` says, counted as events arrive (the panel adds each event of
    a run once instead of counting the whole run again for every update)."""

    def __init__(self) -> None:
        # status -> how many, in order of first appearance (keyed by the enum member: its
        # `.value` is a slow descriptor, read once per status in line())
        self.counts: dict[Status, int] = {}
        self.n = 0
        self.saved = 0.0

    def add(self, e: NodeEvent) -> None:
        status = e.status
        self.counts[status] = self.counts.get(status, 0) + 1
        self.n += 1
        if status is Status.CACHED:
            self.saved += e.saved

    def copy(self) -> Tally:
        t = Tally()
        t.counts, t.n, t.saved = dict(self.counts), self.n, self.saved
        return t

    def line(self) -> str:
        parts = [f"{c} {s.value}" for s, c in self.counts.items()]
        line = f"{self.n} node{'s' * (self.n != 1)}: {', '.join(parts) or 'nothing to do'}"
        if self.saved:
            line += f" — {human_seconds(self.saved)} saved"
        return line


class RunReport:
    """What a run did, where widgets are unavailable (a terminal IPython, nbconvert).

    One summary line, then only the rows worth reading: nodes that computed, failed or were
    skipped, and nodes of the DAG that are stale. A cached node is counted in the summary line,
    not listed (a 56-node notebook printed 200 rows per cell); ``%hamilton panel`` shows all.
    """

    def __init__(self, events: Sequence[NodeEvent], title: str = "hamilton_nb",
                 stale: Mapping[str, str] | None = None,
                 cells: Mapping[str, str] | None = None, stale_total: int | None = None) -> None:
        self.events = list(events)
        self.title = title
        self.stale = dict(stale or {})  # stale node -> why (the first STALE_ROWS of them)
        self.cells = dict(cells or {})  # cell id -> the name users know it by
        self.stale_total = len(self.stale) if stale_total is None else stale_total
        # Both renderings (text and HTML) are asked for: each is worked out once.
        self._rows_memo: list[tuple[str, ...]] | None = None
        self._summary_memo: str | None = None

    def _rows(self) -> list[tuple[str, ...]]:
        if self._rows_memo is None:
            self._rows_memo = self._make_rows()
        return self._rows_memo

    def _make_rows(self) -> list[tuple[str, ...]]:
        rows = []
        # A first run computes every node for the same reason: 50 rows saying "no cached value
        # yet" bury the one that failed. Each (status, reason) lists ROWS_PER_REASON nodes and
        # counts the rest; failures are all listed.
        seen: dict[tuple[Status, str], int] = {}
        for e in self.events:
            status = e.status
            if status is Status.CACHED or e.node in self.stale:
                continue
            if status is not Status.FAILED:
                group = (status, e.reason)
                n = seen[group] = seen.get(group, 0) + 1
                if n > ROWS_PER_REASON:
                    continue
            rows.append((e.node, status.value, e.reason + (f": {e.error}" if e.error else ""),
                         human_seconds(e.duration), human_seconds(e.saved) if e.saved else "",
                         human_bytes(e.size), self.cells.get(e.cell_id or "", e.cell_id or "")))
        rows += [(f"… {n - ROWS_PER_REASON} more", status.value,
                  f"{reason} (`%hamilton panel` lists every node)", "", "", "", "")
                 for (status, reason), n in seen.items() if n > ROWS_PER_REASON]
        rows += [(n, "stale", why, "", "", "", "") for n, why in self.stale.items()]
        more = self.stale_total - len(self.stale)
        if more > 0:
            rows.append((f"… {more} more", "stale", "downstream of the above "
                         "(`%hamilton status` lists every node)", "", "", "", ""))
        return rows

    _HEAD = ("node", "status", "why", "took", "saved", "size", "cell")

    def _summary(self) -> str:
        if self._summary_memo is None:
            line = summary_line(self.events)
            if self.stale_total:
                line += f" · {self.stale_total} stale"
            self._summary_memo = line
        return self._summary_memo

    def _omitted(self) -> int:
        return sum(1 for e in self.events if e.status is Status.CACHED
                   and e.node not in self.stale)

    def __repr__(self) -> str:
        body = self._rows()
        lines = [self._summary()]
        if body:
            rows = [self._HEAD, *body]
            widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEAD))]
            lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                      for r in rows]
        omitted = self._omitted() if body else 0
        if omitted:
            lines.append(f"({omitted} cached not listed: `%hamilton panel` shows every node)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in self._HEAD)
        body = "".join(
            f"<tr class='hnb-{html.escape(r[1])}'>"
            + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r)
            + "</tr>"
            for r in self._rows()
        )
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" \
            if body else ""
        return (f"<div class='hnb-report'><b>{html.escape(self._summary())}</b>{table}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


DAG_MIME = "application/vnd.hamilton-nb.run+json"  # drawn by the JupyterLab extension


class DagView:
    """The live DAG: text everywhere, drawn as a graph by the JupyterLab extension — also in a
    saved notebook reopened without a kernel (the state travels in the output)."""

    def __init__(self, text: str, state: dict[str, Any]) -> None:
        self.text = text
        self.state = state

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/plain": self.text,
            "text/html": f"<pre class='hnb-dag'>{html.escape(self.text)}</pre>",
            DAG_MIME: {"state": self.state},
        }


# -- what the front-ends show: true stale reasons, cleared entries, cells named as users see them


def cell_label(session: Any, cell_id: str | None) -> str:
    """How a person recognises a cell: by the first node it defines (internal ids mean nothing
    to them). Falls back to the id for a cell the DAG no longer knows."""
    if not cell_id:
        return ""
    cell = session.dag.cells.get(cell_id) or next(
        (c for c in session.dag.cells.values() if c.jupyter_id == cell_id), None)
    if cell is None:
        return cell_id
    # The nodes named like the cell's functions first (not Hamilton's helper nodes such as
    # `x_range_validator` of a @check_output).
    names = [n for n in cell.nodes if n in cell.functions] or list(cell.nodes) or \
        list(cell.functions)
    if not names:
        return "(no nodes)"
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "")


# session -> ((shape version, stale set), the "upstream `x` is stale" sentences), see below
_UPSTREAM_REASONS: weakref.WeakKeyDictionary[Any, tuple[tuple[int, frozenset[str]],
                                                         dict[str, str]]] = \
    weakref.WeakKeyDictionary()


def stale_reasons(session: Any, stale: set[str] | None = None,
                  only: Sequence[str] | None = None) -> dict[str, str]:
    """One true sentence per stale node (or per node of ``only``, in DAG order): what changed
    since its value was made."""
    from .runner import Runner, explain_difference
    from .versions import CodeVersioner

    stale = session.stale_nodes() if stale is None else stale
    if not stale:
        return {}
    # During a run (a front-end's timer thread asks) the memo is the run's: read-only here.
    runner = Runner(session.dag, session.store, lambda e: None, session.settings,
                    session._static, session._config_keys,
                    memo=None if session.busy_elsewhere() else session.memo,
                    namespace=session.namespace)
    runner.versioner = CodeVersioner(session._static)
    reasons: dict[str, str] = {}
    dag = session.dag
    # A node with a stale input is stale because of it: that sentence depends on the stale
    # set and the DAG's shape alone, and is kept for them (an edit high in a long notebook
    # leaves hundreds of nodes stale, and the panel and the lab comm each ask after a run).
    key = (dag.shape_version, frozenset(stale))
    kept = _UPSTREAM_REASONS.get(session)
    if kept is not None and kept[0] == key:
        upstream = kept[1]
    else:
        is_stale, all_deps = key[1].__contains__, dag.deps
        upstream = {}
        for name in key[1]:
            deps = all_deps.get(name)
            up = next(filter(is_stale, deps), None) if deps is not None else None
            if up is not None:
                upstream[name] = f"upstream `{up}` is stale"
        _UPSTREAM_REASONS[session] = (key, upstream)
    if only is None:
        reasons.update(upstream)
        names: Iterable[str] = stale - upstream.keys()
    else:
        pos = dag.position()
        names = sorted((n for n in only if n in stale), key=lambda n: pos.get(n, 0))
    for name in names:
        if name not in dag.nodes:
            continue
        if name in upstream:
            reasons[name] = upstream[name]
            continue
        deps = dag.deps[name]
        ev = session.node_events.get(name)
        cv, code = runner._code_version(session.dag.nodes[name], name)
        if ev is not None and cv != ev.code_version:
            why = explain_difference(session.store.latest(name), {"code": code, "deps": {}},
                                     session.dag)
            reasons[name] = why if why.startswith(("code", "global", "config")) else \
                "its code changed since it ran"
            continue
        newer = [d for d in deps if (dev := session.node_events.get(d)) is not None
                 and ev is not None and dev.at > ev.at]
        reasons[name] = (f"upstream `{newer[0]}` changed since it ran" if newer
                         else "an upstream value changed since it ran")
    return reasons


def cleared_nodes(session: Any, only: Iterable[str] | None = None) -> set[str]:
    """Nodes whose last value was stored in the cache but whose entries are gone since (cleared
    or evicted): the panel must not call them "cached". ``only``: of these nodes."""
    from .events import CacheNote

    if not session.settings.enabled:
        return set()
    nodes = session.dag.nodes
    cached, computed, stored = Status.CACHED, Status.COMPUTED, CacheNote.STORED
    events = session.node_events
    # Only a node without an entry can be cleared: found with a set difference (most nodes
    # have one; this runs after every run in a notebook of hundreds of nodes). Each operand is
    # walked in one C call over str keys, which no other thread can interleave with (a
    # front-end's timer thread calls this while a run adds events and entries).
    have = session.store.stored_nodes()
    missing = events.keys() - have if only is None else {n for n in only if n in events} - have
    out = set()
    for name in missing:
        ev = events.get(name)
        if ev is None:
            continue
        status = ev.status
        kept = status is cached or (status is computed and ev.cache is stored)
        if kept and name in nodes:
            out.add(name)
    return out


def front_state(session: Any) -> dict[str, Any]:
    """``session.dag_state()`` (docs/protocol.md) with what the front-ends add: the true reason
    of stale nodes, ``cleared`` for nodes whose cache entry went, each cell's ``label``, and a
    node's ``where`` (the engine it ran on) when its event says."""
    state = session.dag_state()
    stale = {n["name"] for n in state["nodes"] if n["status"] == "stale"}
    reasons = stale_reasons(session, stale)
    cleared = cleared_nodes(session)
    events = session.shown_events()
    for n in state["nodes"]:
        name = n["name"]
        if name in reasons:
            n["reason"] = reasons[name]
        elif name in cleared and n["status"] in ("cached", "computed"):
            n["status"] = "cleared"
            n["reason"] = "its cache entry was cleared: the next run recomputes it"
        ev = events.get(name)
        where = getattr(ev, "where", None) or getattr(ev, "engine", None)
        if where:
            n["where"] = str(where)
    for c in state["cells"]:
        c["label"] = cell_label(session, c["cell_id"])
    return state


class FrontStateCache:
    """:func:`front_state` (or, with ``extras=False``, ``session.dag_state()``) built again only
    where something changed: each node's dict and each cell's dict is kept while what it is
    made of (its event, stale verdict and reason, cleared mark, cell, deps) is the same. A
    re-run of one cell then costs a pass of comparisons over the DAG instead of building (and,
    for the comm's ``post_run_cell`` check, comparing) every node's dict again: unchanged nodes
    are the very same dict objects, and list comparison skips identical items.

    The dicts are shared between the states it returns: a caller copies one before changing
    it. ``tests/test_messages.py`` checks that the result equals the state built from scratch.
    """

    def __init__(self) -> None:
        # extras -> node name -> (key, dict); extras -> cell id -> (cell, key, dict)
        self._nodes: dict[bool, dict[str, tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        self._cells: dict[bool, dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]]] = {}
        self._fids: tuple[dict[str, Any], dict[str, str | None]] | None = None
        # extras -> (cells, their "not stale" marks, cell dicts) of the last whole state
        self._cells_last: dict[bool, tuple[list[Any], list[bool], list[dict[str, Any]]]] = {}
        # extras -> (shape version, cell ids, order, events, stale, reasons, cleared, node
        # dicts) of the last whole state
        self._last: dict[bool, tuple[Any, ...]] = {}
        # The panel's flush timer and the comm's throttle timer build states from their threads.
        self._lock = threading.Lock()

    def _cell_ids(self, cells: Mapping[str, Any]) -> dict[str, str]:
        """Each cell's front-end id; the previous dict (the same object, which the fast path
        of ``_state`` checks for) when no id changed. A registration replaces the cells dict
        and the one cell object it registered: the others are found unchanged in C."""
        kept = self._fids
        if kept is not None and kept[0].keys() == cells.keys():
            changed = list(itertools.compress(cells, map(operator.is_not, cells.values(),
                                                         kept[0].values())))
            old = kept[1]
            if all(cells[cid].frontend_id == old[cid] for cid in changed):
                self._fids = (cells, old)
                return old
        fids = _cell_ids_of(cells)
        if kept is not None and kept[1] == fids:
            fids = kept[1]
        self._fids = (cells, fids)
        return fids

    def state(self, session: Any, extras: bool = True,
              stale: set[str] | frozenset[str] | None = None,
              names: Iterable[str] | None = None,
              reasons: dict[str, str] | None = None) -> dict[str, Any]:
        with self._lock:
            return self._state(session, extras, stale, names, reasons)

    def _state(self, session: Any, extras: bool, stale: set[str] | frozenset[str] | None,
               names: Iterable[str] | None, given: dict[str, str] | None) -> dict[str, Any]:
        dag, events = session.dag, session.shown_events()
        stale = session.stale_nodes() if stale is None else stale
        deps, node_cell, dag_cells, inputs = dag.deps, dag.node_cell, dag.cells, dag.inputs
        if names is None:
            order: list[str] = dag.order
        else:
            # Part of the DAG (the nodes of one run, as its cell's output shows them) and the
            # inputs they read: work in proportion to that part, not to the notebook.
            part = {n for n in names if n in deps}
            part |= {d for n in list(part) for d in deps[n] if d in inputs}
            pos = dag.position()
            order = sorted(part, key=pos.__getitem__)
        only = order if names is not None else None
        if not extras or not stale:
            reasons = {}
        elif given is not None and names is None:
            reasons = given
        else:
            reasons = stale_reasons(session, stale, only=only)
        cleared = cleared_nodes(session, only) if extras else set()
        memo = self._nodes.get(extras, {})
        fids = self._fids[1] if self._fids is not None and self._fids[0] is dag_cells else None
        if fids is None:  # (the DAG's cells dict is replaced, never changed, on registration)
            fids = self._cell_ids(dag_cells)
        events_get, fids_get, reasons_get, memo_get = (
            events.get, fids.get, reasons.get, memo.get)
        evs = list(map(events_get, order))
        last = self._last.get(extras) if names is None else None
        if (last is not None and last[0] == dag.shape_version and last[1] is fids
                and last[2] == order):
            # The same nodes, order and cells as the last whole state: its dicts, made again
            # for the nodes whose event (compared by identity, in C), stale or cleared mark or
            # stale reason changed (set operations, in C). A re-run of one cell costs the
            # notebook a few C passes, and Python work for what it changed.
            pos = dag.position()
            dirty = set(itertools.compress(range(len(order)),
                                           map(operator.is_not, evs, last[3])))
            for names_changed in (stale ^ last[4], cleared ^ last[6]):
                dirty.update(pos[n] for n in names_changed if n in pos)
            if reasons != last[5]:
                dirty.update(pos[n] for n, _ in reasons.items() ^ last[5].items() if n in pos)
            nodes = list(last[7])
            for i in dirty:
                name = order[i]
                key = (evs[i], name in stale, reasons_get(name), name in cleared,
                       fids_get(node_cell.get(name)), name in inputs, deps[name])
                hit = memo_get(name)
                d = hit[1] if hit is not None and hit[0] == key else \
                    _node_state(name, key, extras)
                nodes[i] = d
                memo[name] = (key, d)
        else:
            # Every node's key, made in C (map/zip over the order). The event goes in the key
            # as itself: the same object compares by identity first.
            keys = list(zip(evs, map(stale.__contains__, order), map(reasons_get, order),
                            map(cleared.__contains__, order),
                            map(fids_get, map(node_cell.get, order)),
                            map(inputs.__contains__, order), map(deps.__getitem__, order),
                            strict=True))
            nodes = []
            for name, key in zip(order, keys, strict=True):
                hit = memo_get(name)
                nodes.append(hit[1] if hit is not None and hit[0] == key
                             else _node_state(name, key, extras))
            if names is None:  # (all nodes: those that left the DAG go)
                memo = dict(zip(order, zip(keys, nodes, strict=True), strict=True))
            else:
                memo.update(zip(order, zip(keys, nodes, strict=True), strict=True))
        self._nodes[extras] = memo
        if names is None:
            self._last[extras] = (dag.shape_version, fids, order, evs, frozenset(stale),
                                  reasons, cleared, nodes)
        cmemo = self._cells.get(extras, {})
        cobjs = list(dag_cells.values())
        # Each cell's stale mark, in C; the cell objects are replaced, never changed, when a
        # cell is registered again.
        fresh = list(map(stale.isdisjoint, map(_CELL_NODES, cobjs)))
        prev = self._cells_last.get(extras) if names is None else None
        if prev is not None and len(prev[0]) == len(cobjs):
            # The same number of cells as the last whole state: its dicts, made again for the
            # cells that were replaced or whose mark changed.
            cells = list(prev[2])
            for i in itertools.compress(range(len(cobjs)), map(
                    operator.or_, map(operator.is_not, cobjs, prev[0]),
                    map(operator.ne, fresh, prev[1]))):
                c = cobjs[i]
                ckey = (c.jupyter_id, tuple(c.nodes), not fresh[i])
                cells[i] = _cell_state(session, c, ckey[2], extras)
                cmemo[c.cell_id] = (c, ckey, cells[i])
        else:
            ckeep = {} if names is None else cmemo
            cells = []
            wanted = None if names is None else {node_cell.get(n) for n in order}
            for c, clean in zip(cobjs, fresh, strict=True):
                cid = c.cell_id
                if wanted is not None and cid not in wanted:
                    continue
                ckey = (c.jupyter_id, tuple(c.nodes), not clean)
                hit = cmemo.get(cid)
                d = hit[2] if hit is not None and hit[0] is c and hit[1] == ckey else \
                    _cell_state(session, c, ckey[2], extras)
                ckeep[cid] = (c, ckey, d)
                cells.append(d)
            self._cells[extras] = ckeep
        if names is None:
            self._cells_last[extras] = (cobjs, fresh, cells)
        last = getattr(session, "_last", None)
        return {"session_id": session.session_id,
                "run_id": last.run_id if last else None,
                "running": session.running, "nodes": nodes, "cells": cells}


_CELL_NODES = operator.attrgetter("nodes")


def _cell_ids_of(cells: Mapping[str, Any]) -> dict[str, str]:
    return {cid: c.frontend_id for cid, c in cells.items()}


def _cell_state(session: Any, c: Any, stale: bool, extras: bool) -> dict[str, Any]:
    """One cell of ``session.dag_state()`` (and with ``extras`` of :func:`front_state`)."""
    d = {"cell_id": c.frontend_id, "nodes": list(c.nodes), "source_hash": c.source_hash,
         "stale": stale}
    if extras:
        d["label"] = cell_label(session, c.frontend_id)
    return d


def _node_state(name: str, key: tuple[Any, ...], extras: bool) -> dict[str, Any]:
    """One node of ``session.dag_state()`` (and with ``extras`` of :func:`front_state`)."""
    ev, is_stale, reason, cleared, cell_id, user_defined, deps = key
    status = "stale" if is_stale else ev.status.value if ev is not None else "never_run"
    d = {"name": name, "cell_id": cell_id, "kind": "input" if user_defined else "function",
         "deps": list(deps), "status": status, "reason": ev.reason if ev else "",
         "duration": ev.duration if ev else None,
         "code_version": ev.code_version if ev else None}
    if not extras:
        return d
    if reason is not None:
        d["reason"] = reason
    elif cleared and status in ("cached", "computed"):
        d["status"] = "cleared"
        d["reason"] = "its cache entry was cleared: the next run recomputes it"
    where = getattr(ev, "where", None) or getattr(ev, "engine", None)
    if where:
        d["where"] = str(where)
    return d


_STATE_CACHES: weakref.WeakKeyDictionary[Any, FrontStateCache] = weakref.WeakKeyDictionary()


def cached_front_state(session: Any, extras: bool = True,
                       stale: set[str] | frozenset[str] | None = None,
                       names: Iterable[str] | None = None,
                       reasons: dict[str, str] | None = None) -> dict[str, Any]:
    """:func:`front_state` of ``session`` through its :class:`FrontStateCache` (one per
    session, shared by the panel and the comm). Its node and cell dicts are shared: copy one
    before changing it. ``stale``: the stale nodes, when the caller worked them out already
    (a timer thread must not: working staleness out changes the session's bookkeeping).
    ``names``: only these nodes, the inputs they read and their cells. ``reasons``:
    ``stale_reasons(session, stale)``, when the caller worked them out already."""
    cache = _STATE_CACHES.get(session)
    if cache is None:
        cache = _STATE_CACHES.setdefault(session, FrontStateCache())
    return cache.state(session, extras, stale, names, reasons)


ROWS_PER_REASON = 12  # a report lists this many nodes computed (or skipped) for one reason
STALE_ROWS = 12  # a report lists this many stale nodes (the first, in DAG order), then counts


def run_report(session: Any, events: Sequence[NodeEvent]) -> RunReport:
    """The terminal report of a run: summary, computed/failed/stale rows, cells by name."""
    stale = session.stale_nodes()
    cells = {cid: cell_label(session, cid) for cid in {e.cell_id for e in events if e.cell_id}}
    # An edit high in a long notebook makes hundreds of nodes stale: the report names the
    # first ones (each one's reason costs a code version) and counts the rest. The order is
    # the session's, sorted once per request (the stale-name line after the run uses it too).
    first = session.stale_in_order()[:STALE_ROWS]
    return RunReport(events, stale=stale_reasons(session, stale, only=first), cells=cells,
                     stale_total=len(stale))


def interrupt_note(events: Sequence[NodeEvent]) -> str:
    """What an interrupted run kept, for the KeyboardInterrupt message."""
    kept = [e.node for e in events if e.status in (Status.COMPUTED, Status.CACHED)]
    if not kept:
        return "hamilton_nb: interrupted before any node finished; nothing was kept."
    names = ", ".join(f"`{n}`" for n in kept[:12]) + (" …" if len(kept) > 12 else "")
    return (f"hamilton_nb: interrupted; kept {len(kept)} finished node"
            f"{'s' * (len(kept) != 1)} ({names}) — re-run to resume from there.")


def _library_dirs() -> tuple[str, ...]:
    import os

    import hamilton

    import hamilton_nb

    dirs = [os.path.dirname(hamilton_nb.__file__), os.path.dirname(hamilton.__file__)]
    import concurrent.futures
    import threading

    dirs.append(os.path.dirname(concurrent.futures.__file__))
    dirs.append(threading.__file__)
    return tuple(os.path.join(d, "") if not d.endswith(".py") else d for d in dirs)


def user_traceback(err: BaseException) -> BaseException:
    """``err`` with a traceback of the user's frames only: the frames of hamilton_nb, Hamilton
    and executor threads between the cell and the failing node tell a user nothing (85 lines
    for a one-line mistake). The error, its chain and its notes are unchanged."""
    import types

    skip = _library_dirs()
    frames = []
    tb = err.__traceback__
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(skip):
            frames.append(tb)
        tb = tb.tb_next
    if not frames:
        return err
    new: types.TracebackType | None = None
    for t in reversed(frames):
        new = types.TracebackType(new, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return err.with_traceback(new)


DQ_TAG = "hamilton.data_quality.contains_dq_results"  # Hamilton's tag of @check_output nodes


def failed_checks(session: Any, events: Sequence[NodeEvent]) -> list[tuple[str, str, bool]]:
    """``(validator node, message, from_cache)`` of the ``@check_output`` checks that failed in
    a run. A check with ``importance="warn"`` is logged by Hamilton when it runs; when its
    result comes from the cache nothing runs, so nothing would say it (the value is tiny)."""
    out = []
    for e in events:
        n = session.dag.nodes.get(e.node)
        if n is None or not n.tags.get(DQ_TAG) or e.status not in (Status.COMPUTED,
                                                                   Status.CACHED):
            continue
        entry = session.store.latest(e.node)
        if entry is None or entry.data_version != e.data_version:
            entry = next((x for x in session.store.entries()
                          if x.node == e.node and x.data_version == e.data_version), None)
        if entry is None:
            continue
        try:
            value = session.store.load(entry)
        except Exception:  # an unreadable entry says nothing about the check; the run said it
            continue
        for r in value if isinstance(value, list) else [value]:
            if getattr(r, "passes", True) is False:
                out.append((e.node, str(getattr(r, "message", "")),
                            e.status is Status.CACHED))
    return out


def cached_check_warnings(session: Any, events: Sequence[NodeEvent]) -> str:
    """The warnings of failed checks served from the cache, one line each ('' if none)."""
    return "\n".join(f"[{node}] check failed (from the cache, as when it ran): {message}"
                     for node, message, cached in failed_checks(session, events) if cached)

"""Static views of runs and of the DAG: text and HTML, no widgets (nbconvert, terminal IPython)."""

from __future__ import annotations

import html
from collections.abc import Sequence
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
    counts: dict[str, int] = {}
    for e in events:
        counts[e.status.value] = counts.get(e.status.value, 0) + 1
    parts = [f"{c} {s}" for s, c in counts.items()]
    saved = sum(e.saved for e in events if e.status is Status.CACHED)
    line = f"{len(events)} node{'s' * (len(events) != 1)}: {', '.join(parts) or 'nothing to do'}"
    if saved:
        line += f" — {human_seconds(saved)} saved"
    return line


class RunReport:
    """What a run did, rendered as a table wherever widgets are unavailable."""

    def __init__(self, events: Sequence[NodeEvent], title: str = "hamilton_nb") -> None:
        self.events = list(events)
        self.title = title

    def _rows(self) -> list[tuple[str, ...]]:
        return [
            (e.node, e.status.value, e.reason + (f": {e.error}" if e.error else ""),
             human_seconds(e.duration) if e.status is not Status.CACHED else "",
             human_seconds(e.saved) if e.saved else "", human_bytes(e.size), e.cell_id or "")
            for e in self.events
        ]

    _HEAD = ("node", "status", "why", "took", "saved", "size", "cell")

    def __repr__(self) -> str:
        rows = [self._HEAD, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEAD))]
        lines = [summary_line(self.events)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in self._HEAD)
        body = "".join(
            f"<tr class='hnb-{html.escape(r[1])}'>"
            + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r)
            + "</tr>"
            for r in self._rows()
        )
        return (
            f"<div class='hnb-report'><b>{html.escape(summary_line(self.events))}</b>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )

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
    names = list(cell.nodes) or list(cell.functions)
    if not names:
        return "(no nodes)"
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "")


def stale_reasons(session: Any, stale: set[str] | None = None) -> dict[str, str]:
    """One true sentence per stale node: what changed since its value was made."""
    from .runner import Runner, explain_difference
    from .versions import CodeVersioner

    stale = session.stale_nodes() if stale is None else stale
    if not stale:
        return {}
    runner = Runner(session.dag, session.store, lambda e: None, session.settings,
                    session._static, session._config_keys)
    runner.versioner = CodeVersioner(session._static)
    reasons: dict[str, str] = {}
    for name in session.dag.order:
        if name not in stale:
            continue
        deps = session.dag.deps[name]
        up = next((d for d in deps if d in stale), None)
        if up is not None:
            reasons[name] = f"upstream `{up}` is stale"
            continue
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


def cleared_nodes(session: Any) -> set[str]:
    """Nodes whose last value was stored in the cache but whose entries are gone since (cleared
    or evicted): the panel must not call them "cached"."""
    from .events import CacheNote

    if not session.settings.enabled:
        return set()
    out = set()
    for name, ev in session.node_events.items():
        kept = ev.status is Status.CACHED or (
            ev.status is Status.COMPUTED and ev.cache is CacheNote.STORED)
        if kept and name in session.dag.nodes and session.store.latest(name) is None:
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
    for n in state["nodes"]:
        name = n["name"]
        if name in reasons:
            n["reason"] = reasons[name]
        elif name in cleared and n["status"] in ("cached", "computed"):
            n["status"] = "cleared"
            n["reason"] = "its cache entry was cleared: the next run recomputes it"
        ev = session.node_events.get(name)
        where = getattr(ev, "where", None) or getattr(ev, "engine", None)
        if where:
            n["where"] = str(where)
    for c in state["cells"]:
        c["label"] = cell_label(session, c["cell_id"])
    return state

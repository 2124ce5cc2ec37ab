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

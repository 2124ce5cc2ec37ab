"""Typed events: the one log that the panel, the comm bridge, `last_run()` and `why` all read."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class Status(str, enum.Enum):
    """What happened to a node in a run (DESIGN.md §7: these strings are public)."""

    COMPUTED = "computed"  # the function ran
    CACHED = "cached"  # the value came from the cache (or was already in memory, unchanged)
    FAILED = "failed"  # the function raised
    SKIPPED = "skipped"  # an upstream failed, so the node could not run
    RUNNING = "running"  # only in node_started events


class CacheNote(str, enum.Enum):
    """What the cache did with a computed value."""

    STORED = "stored"
    DISABLED = "disabled"  # @cache(behavior="disable"), or caching off for the session
    UNHASHABLE = "unhashable"  # no data version could be computed: downstream always recomputes
    UNPICKLABLE = "unpicklable"  # the value could not be written; it was used but not cached
    NONE = ""


@dataclass(frozen=True)
class RunStarted:
    """A run began; `nodes` is the plan: every node it may touch, in execution order."""

    run_id: int
    nodes: tuple[str, ...]
    kind: str = "run_started"
    # Upstream nodes the run reuses without looking at them (nothing under them changed since
    # an earlier run checked them): they get no event of their own in this run.
    reused: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class NodeStarted:
    """A node's function is about to run (only for nodes that compute)."""

    run_id: int
    node: str
    kind: str = "node_started"
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class NodeEvent:
    """The outcome of one node in one run."""

    run_id: int
    node: str
    status: Status
    reason: str
    cell_id: str | None = None
    duration: float = 0.0  # seconds spent computing (0 for hits)
    saved: float = 0.0  # seconds the cache saved: the stored compute time of a hit
    size: int | None = None  # bytes on disk, when known
    cache: CacheNote = CacheNote.NONE
    error: str | None = None
    code_version: str | None = None
    data_version: str | None = None
    # Where the function ran: "kernel", "thread ...", "process host:pid", "dask worker
    # tcp://...", "ray worker host:pid" (several, comma-separated, for per-item nodes); None
    # when nothing ran (a hit, a skip).
    where: str | None = None
    kind: str = "node_finished"
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RunFinished:
    """A run ended (normally, with failures, or interrupted)."""

    run_id: int
    outputs: tuple[str, ...]
    ok: bool
    interrupted: bool = False
    duration: float = 0.0
    kind: str = "run_finished"
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class DagChanged:
    """The live DAG changed: a cell was registered or removed, or the session was reset."""

    cell_id: str | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kind: str = "dag_changed"
    at: float = field(default_factory=time.time)


Event = RunStarted | NodeStarted | NodeEvent | RunFinished | DagChanged

"""The session: the one object that owns the live DAG, the store, the settings and the event log."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import pandas as pd

from .events import DagChanged, Event, NodeEvent, RunFinished, Status
from .graph import CellDef, CellError, LiveDag, prepare_cell
from .runner import (
    BEHAVIORS,
    FORMATS,
    Lazy,
    MissingInputs,
    RetryRun,
    Runner,
    RunOutcome,
    Settings,
)
from .store import DiskStore, MemoryStore, Store, StoreError
from .versions import CodeVersioner

DEFAULT_CACHE_DIRNAME = ".hamilton_nb_cache"


class SessionError(Exception):
    """A request the session cannot carry out; the message says what to do instead."""


class RunFailed(Exception):
    """One or more nodes raised. ``errors`` maps node names to their exceptions."""

    def __init__(self, outcome: RunOutcome):
        self.outcome = outcome
        self.errors = outcome.errors
        first, err = next(iter(outcome.errors.items()))
        super().__init__(f"node `{first}` failed: {type(err).__name__}: {err}")


def default_cache_dir() -> Path:
    """``HAMILTON_NB_CACHE`` if set, else ``.hamilton_nb_cache`` in the working directory."""
    env = os.environ.get("HAMILTON_NB_CACHE")
    return Path(env) if env else Path.cwd() / DEFAULT_CACHE_DIRNAME


class Session:
    """State of hamilton_nb in one kernel. Get it with :func:`hamilton_nb.session`.

    It can be used without IPython: ``Session(namespace={})`` is a plain Python object.
    """

    def __init__(
        self,
        namespace: MutableMapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache: bool = True,
    ) -> None:
        self.namespace: MutableMapping[str, Any] = namespace if namespace is not None else {}
        # Hamilton needs inspect.getmodule(fn) of every function: give a bare namespace a module
        # name that resolves (IPython's user_ns already has one).
        self.namespace.setdefault("__name__", "__main__")
        self.session_id = uuid.uuid4().hex
        self.dag = LiveDag()
        self.settings = Settings(enabled=cache)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._store: Store | None = None
        self._listeners: list[Callable[[Event], None]] = []
        self._static: dict[Any, Any] = {}
        self._config_keys: dict[Any, list[str]] = {}
        self._run_counter = 0
        self._last: RunOutcome | None = None
        self.node_events: dict[str, NodeEvent] = {}  # latest event of every node
        self.running = False
        self._pending: dict[str, Lazy] = {}  # bound names whose value is not loaded yet
        # name -> (id() of the object we bound, its data version)
        self._bound: dict[str, tuple[int, str | None]] = {}
        self.last_inputs: dict[str, Any] = {}  # explicit inputs of the last run that had any
        self._anon = 0
        from .checkpoint import Checkpoints  # imports this module: import it late

        # Saves the "last state" after each DAG change and run (checkpoint.py).
        self.checkpoints = Checkpoints(self)

    # -- store ---------------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        return (self._cache_dir or default_cache_dir()).absolute()

    @property
    def store(self) -> Store:
        """The result store, opened on first use."""
        if self._store is None:
            self._store = DiskStore(self.cache_dir) if self.settings.enabled else MemoryStore()
        return self._store

    def set_cache_dir(self, path: str | os.PathLike[str]) -> None:
        """Use another cache folder from now on (opened at once: a bad path changes nothing)."""
        try:
            store = DiskStore(path) if self.settings.enabled else None
        except (OSError, StoreError) as e:
            raise SessionError(f"Cannot use {path} as the cache folder: {e}") from None
        self.close()
        self._cache_dir = Path(path)
        self._store = store

    def close(self) -> None:
        """Flush and release the store (the extension calls this on unload)."""
        if self._store is not None:
            close = getattr(self._store, "close", None)
            if close:
                close()
            self._store = None

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _emit(self, event: Event) -> None:
        if isinstance(event, NodeEvent):
            self.node_events[event.node] = event
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception as e:  # a broken panel must never break a run
                warnings.warn(f"hamilton_nb: an event listener failed: {e!r}", stacklevel=2)

    # -- cells ---------------------------------------------------------------------------------

    def register_cell(
        self,
        body: str,
        cell_id: str | None = None,
        jupyter_id: str | None = None,
        require: Iterable[str] = (),
    ) -> CellDef:
        """Register a ``%%hamilton`` cell body; replaces the cell with the same id.

        ``cell_id`` is the cell's identity in the DAG (the front-end's cell id, or a
        ``--name``); ``jupyter_id`` the notebook cell it came from, for the front-end. Without
        either (plain IPython), a cell that defines some of the nodes of exactly one registered
        cell replaces that cell. Raises :class:`CellError`, changing nothing.
        """
        if cell_id is None:
            cell_id = self._fallback_cell_id(body)
        # Runs the body in the namespace; until commit() below, rollback() undoes it.
        cell = prepare_cell(cell_id, body, self.namespace, self.dag.config)
        old = self.dag.cells.get(cell_id)
        cell.jupyter_id = jupyter_id or (old.jupyter_id if old else None)
        try:
            self.dag.add_cell(cell, require)  # validates; raises CellError with nothing changed
        except BaseException:
            cell.rollback(self.namespace)
            raise
        cell.commit(self.namespace)
        removed = sorted(set(old.nodes) - set(cell.nodes)) if old else []
        for name in removed:
            self._unbind(name)
        self._emit(DagChanged(cell_id, tuple(cell.nodes), tuple(removed)))
        return cell

    def _fallback_cell_id(self, body: str) -> str:
        import ast

        try:
            names = [n.name for n in ast.parse(body).body
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        except (SyntaxError, ValueError, UnicodeError):  # prepare_cell explains these
            names = []
        owners = self.dag.find_cell_for(names)
        if len(owners) == 1:
            return owners[0]
        self._anon += 1
        while f"cell-{self._anon}" in self.dag.cells:
            self._anon += 1
        return f"cell-{self._anon}"

    def remove_cell(self, cell_id: str) -> None:
        """Remove a cell and its nodes from the live DAG."""
        if cell_id not in self.dag.cells:
            raise SessionError(f"No cell {cell_id!r}. Known cells: {', '.join(self.dag.cells)}")
        cell = self.dag.remove_cell(cell_id)
        for name in cell.nodes:
            self._unbind(name)
        self._emit(DagChanged(cell_id, (), tuple(cell.nodes)))

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Set Hamilton's config (re-resolves ``@config.when`` and friends)."""
        try:
            self.dag.set_config(config)
        except CellError as e:
            raise SessionError(str(e)) from None
        self._emit(DagChanged(None))

    def reset(self) -> None:
        """Forget the live DAG and run history (the on-disk cache stays)."""
        for name in list(self._bound):
            self._unbind(name)
        self._pending.clear()
        self.dag.clear()
        self.node_events.clear()
        self._last = None
        self._emit(DagChanged(None))

    # -- running -------------------------------------------------------------------------------

    def _check_nodes(self, names: Iterable[str]) -> list[str]:
        names = list(dict.fromkeys(names))
        unknown = [n for n in names if n not in self.dag.nodes]
        if unknown:
            known = ", ".join(sorted(n for n, v in self.dag.nodes.items() if not v.user_defined))
            raise SessionError(
                f"Unknown node(s): {', '.join(unknown)}. Nodes in the live DAG: {known or 'none'}."
            )
        return names

    def execute(
        self,
        outputs: Iterable[str],
        inputs: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> RunOutcome:
        """Run ``outputs`` and return the outcome; values of cache hits stay lazy (:class:`Lazy`).

        Raises :class:`SessionError` for unknown nodes or missing inputs; node failures are in
        ``outcome.errors``; an interrupted run has ``outcome.interrupted``.
        """
        outputs = self._check_nodes(outputs)
        if self.running:
            raise SessionError("A run is already in progress in this kernel.")
        if inputs:
            self.last_inputs = dict(inputs)
        self._run_counter += 1
        runner = Runner(self.dag, self.store, self._emit, self.settings, self._static,
                        self._config_keys)
        self.running = True
        try:
            outcome = runner.run(self._run_counter, outputs, inputs or {}, overrides or {},
                                 self.namespace)
        except MissingInputs as e:
            raise SessionError(str(e)) from None
        finally:
            self.running = False
        self._last = outcome
        return outcome

    def run(
        self,
        outputs: Iterable[str] | str,
        inputs: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Compute ``outputs`` (recomputing only what changed) and return their values.

        Raises :class:`RunFailed` if a node raised, ``KeyboardInterrupt`` if interrupted; the
        nodes that finished are cached either way.
        """
        outcome = self.execute([outputs] if isinstance(outputs, str) else outputs, inputs,
                               overrides)
        if outcome.interrupted:
            raise KeyboardInterrupt
        if outcome.errors:
            raise RunFailed(outcome)
        return {k: self._resolve(k, v) for k, v in outcome.values.items()}

    def _resolve(self, name: str, value: Any) -> Any:
        """Load a lazy value; an unreadable entry is dropped and the node recomputed."""
        if not isinstance(value, Lazy):
            return value
        try:
            return value.load()
        except RetryRun:  # the entry was unreadable and is now deleted: compute it again
            return self.run([name])[name]

    def run_cell_nodes(self, cell_id: str) -> RunOutcome:
        """Compute the nodes a cell defines (comm and context-menu entry point)."""
        cell = self._cell(cell_id)
        outcome = self.execute(list(cell.nodes), self.last_inputs)
        self.bind(outcome)
        return outcome

    # -- binding into the notebook namespace ---------------------------------------------------

    def bind(self, outcome: RunOutcome) -> None:
        """Bind output values in the namespace under their node names.

        Values computed in this run are bound at once; cached ones are bound *lazily*: they
        are read from disk the first time a cell mentions the name (see ``pending``).
        """
        versions = {e.node: e.data_version for e in outcome.events}
        for name, value in outcome.values.items():
            if isinstance(value, Lazy):
                bound = self._bound.get(name)
                if (bound is not None and bound[1] is not None and bound[1] == value.data_version
                        and id(self.namespace.get(name)) == bound[0]):
                    continue  # the value we bound is still the current one: keep it in memory
                self._unbind(name)
                self._pending[name] = value
            else:
                self._unbind(name)
                self.namespace[name] = value
                self._bound[name] = (id(value), versions.get(name))

    def _unbind(self, name: str) -> None:
        self._pending.pop(name, None)
        bound = self._bound.pop(name, None)
        if bound is not None and id(self.namespace.get(name, None)) == bound[0]:
            del self.namespace[name]

    @property
    def pending(self) -> frozenset[str]:
        """Names bound lazily and not loaded yet."""
        return frozenset(self._pending)

    def load_pending(self, names: Iterable[str]) -> None:
        """Load the lazily bound values among ``names`` into the namespace.

        A name the user has since assigned is left alone (theirs wins).
        """
        for name in names:
            lazy = self._pending.pop(name, None)
            if lazy is None or name in self.namespace:
                continue
            value = self._resolve(name, lazy)
            self.namespace[name] = value
            self._bound[name] = (id(value), lazy.data_version)

    def value(self, name: str) -> Any:
        """The current value of a node: from the last run if it produced it, else computed."""
        if name in self._pending:
            self.load_pending([name])
            return self.namespace[name]
        return self.run([name], self.last_inputs)[name]

    # -- queries -------------------------------------------------------------------------------

    def last_run(self) -> pd.DataFrame:
        """One row per node the last run touched: node, status, reason, timings, cache note."""
        events = self._last.events if self._last else []
        return _events_frame(events)

    def status(self) -> pd.DataFrame:
        """Every node of the live DAG: the cell defining it and its state."""
        from .report import stale_reasons

        stale = self.stale_nodes()
        # A stale node's last event says why it ran then; what made it stale since is news.
        reasons = stale_reasons(self, stale)
        rows = []
        for name in self.dag.order:
            n = self.dag.nodes[name]
            ev = self.node_events.get(name)
            if n.user_defined:
                state = "input"
            elif name in stale:
                state = "stale"
            else:
                state = ev.status.value if ev else "never_run"
            rows.append({"node": name, "cell_id": self.dag.node_cell.get(name), "state": state,
                         "reason": reasons.get(name) or (ev.reason if ev else "")})
        return pd.DataFrame(rows, columns=["node", "cell_id", "state", "reason"])

    def stale_nodes(self) -> set[str]:
        """Nodes whose code, or an upstream's value or code, changed since their value was made."""
        if not self.node_events:
            return set()
        runner = Runner(self.dag, self.store, lambda e: None, self.settings, self._static,
                        self._config_keys)
        runner.versioner = CodeVersioner(self._static)
        stale: set[str] = set()
        for name in self.dag.order:
            n = self.dag.nodes[name]
            ev = self.node_events.get(name)
            if n.user_defined or ev is None or ev.status in (Status.FAILED, Status.SKIPPED):
                continue  # failed/skipped say more than "stale", and have no value to be stale
            deps = self.dag.deps[name]
            if any(d in stale for d in deps):
                stale.add(name)
                continue
            cv, _ = runner._code_version(n, name)
            if cv != ev.code_version:
                stale.add(name)
                continue
            for d in deps:
                dev = self.node_events.get(d)
                newer = dev is not None and dev.at > ev.at
                if newer and dev.data_version != _dep_dv(self, name, d):
                    stale.add(name)
                    break
        return stale

    def why(self, name: str) -> str:
        """One sentence: why ``name`` was recomputed or reused in the run that last touched it."""
        self._check_nodes([name])
        ev = self.node_events.get(name)
        if ev is None:
            return f"`{name}` has not run in this session."
        verb = {Status.CACHED: "was reused", Status.COMPUTED: "was recomputed",
                Status.FAILED: "failed", Status.SKIPPED: "was skipped"}.get(ev.status, "ran")
        extra = f" ({ev.error})" if ev.error else ""
        return f"`{name}` {verb}: {ev.reason}{extra}."

    # -- cache management ----------------------------------------------------------------------

    def cache_entries(self) -> pd.DataFrame:
        """Cache entries: node, code version, data version, size, compute time, created, used."""
        rows = [
            {"node": e.node, "code_version": e.code_version[:12], "data_version":
             e.data_version[:12], "format": e.fmt, "size": e.size, "compute_time": e.compute_time,
             "created": pd.Timestamp(e.created, unit="s"),
             "last_used": pd.Timestamp(e.last_used, unit="s"), "key": e.key}
            for e in self.store.entries()
        ]
        cols = ["node", "code_version", "data_version", "format", "size", "compute_time",
                "created", "last_used", "key"]
        return pd.DataFrame(rows, columns=cols).sort_values(["node", "created"],
                                                            ignore_index=True)

    def clear(self, nodes: Iterable[str] | None = None) -> int:
        """Delete the cache entries of ``nodes`` (all entries if None); returns how many."""
        names = None if nodes is None else set(nodes)
        keys = [e.key for e in self.store.entries() if names is None or e.node in names]
        n = self.store.delete(keys)
        self._emit(DagChanged(None))
        return n

    def clear_cell(self, cell_id: str) -> int:
        """Delete the cache entries of the nodes a cell defines."""
        return self.clear(self._cell(cell_id).nodes)

    def _cell(self, cell_id: str) -> CellDef:
        """A registered cell by its name or by the notebook cell id it came from."""
        cell = self.dag.cells.get(cell_id) or next(
            (c for c in self.dag.cells.values() if c.jupyter_id == cell_id), None)
        if cell is None:
            raise SessionError(f"Cell {cell_id!r} is not a registered %%hamilton cell.")
        return cell

    def evict(self, max_bytes: int | None = None, older_than: float | None = None) -> int:
        """Evict least-recently-used entries until the cache holds at most ``max_bytes``, and
        entries unused for ``older_than`` seconds. Returns how many entries went."""
        return self.store.evict(max_bytes, older_than, self.protected_versions())

    def protected_versions(self) -> frozenset[str]:
        """Data versions that eviction must keep (values named checkpoints refer to)."""
        return self.checkpoints.protected_versions()

    def set_behavior(self, node: str, behavior: str) -> None:
        """Cache behavior of a node or input: default, recompute, disable or ignore."""
        if behavior not in BEHAVIORS:
            raise SessionError(f"Unknown behavior {behavior!r}; use one of {', '.join(BEHAVIORS)}.")
        self.settings.behavior[node] = behavior

    def set_format(self, node: str, fmt: str) -> None:
        """Storage format of a node's value: joblib (default) or parquet (DataFrames)."""
        if fmt not in FORMATS:
            raise SessionError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
        self.settings.format[node] = fmt

    # -- checkpoints and export (the logic is in checkpoint.py and export.py) ------------------

    def restore(self, name: str | None = None) -> Any:
        """Bring back the live DAG and bind its values lazily, recomputing nothing.

        Without ``name``: the state this working folder had before this kernel started (after a
        restart, the DAG as it was). With ``name``: that named checkpoint. The current state is
        saved as an ``auto-*`` checkpoint first. Returns a ``RestoreReport``. The ``%%hamilton``
        cell bodies are run again (to define their functions); imports, helpers and constants
        they take from ordinary cells must be defined first (the report names missing ones).
        """
        return self.checkpoints.restore(name)

    def checkpoint_save(self, name: str, overwrite: bool = False) -> Path:
        """Save the DAG code and the keys of its values as checkpoint ``name``."""
        return self.checkpoints.save(name, overwrite)

    def checkpoint_list(self) -> pd.DataFrame:
        """Checkpoints: name, created, cells, nodes, values, automatic."""
        return self.checkpoints.list()

    def checkpoint_diff(self, a: str, b: str | None = None) -> pd.DataFrame:
        """Nodes whose code or value differ between checkpoints (``b=None``: the current state)."""
        return self.checkpoints.diff(a, b)

    def checkpoint_restore(self, name: str) -> Any:
        """Restore checkpoint ``name`` (see :meth:`restore`)."""
        return self.checkpoints.restore(name)

    def checkpoint_delete(self, name: str) -> None:
        """Delete checkpoint ``name``; its values become evictable again."""
        self.checkpoints.delete(name)

    def export(self, path: str | os.PathLike[str]) -> Any:
        """Write the live DAG as a module a plain Hamilton driver runs (see export.py)."""
        from .export import export_module

        return export_module(self, path)

    # -- front-end state -----------------------------------------------------------------------

    def dag_state(self) -> dict[str, Any]:
        """JSON-serializable state for the JupyterLab extension (docs/protocol.md)."""
        stale = self.stale_nodes()
        nodes = []
        for name in self.dag.order:
            n = self.dag.nodes[name]
            ev = self.node_events.get(name)
            if name in stale:
                status = "stale"
            elif ev is not None:
                status = ev.status.value
            else:
                status = "never_run"
            nodes.append({
                "name": name,
                "cell_id": cell.frontend_id if (cell := self.dag.cell_of(name)) else None,
                "kind": "input" if n.user_defined else "function",
                "deps": list(self.dag.deps[name]),
                "status": status,
                "reason": ev.reason if ev else "",
                "duration": ev.duration if ev else None,
                "code_version": ev.code_version if ev else None,
            })
        cells = [
            {"cell_id": c.frontend_id, "nodes": list(c.nodes), "source_hash": c.source_hash,
             "stale": any(n in stale for n in c.nodes)}
            for c in self.dag.cells.values()
        ]
        return {"session_id": self.session_id,
                "run_id": self._last.run_id if self._last else None,
                "running": self.running, "nodes": nodes, "cells": cells}


def _dep_dv(session: Session, node: str, dep: str) -> str | None:
    entry = session.store.latest(node)
    if entry is None:
        return None
    return entry.parts.get("deps", {}).get(dep)


_EVENT_COLUMNS = ["node", "status", "reason", "cell_id", "duration", "saved", "size", "cache",
                  "error"]


def _events_frame(events: list[NodeEvent]) -> pd.DataFrame:
    rows = [
        {"node": e.node, "status": e.status.value, "reason": e.reason, "cell_id": e.cell_id,
         "duration": e.duration, "saved": e.saved, "size": e.size, "cache": e.cache.value,
         "error": e.error}
        for e in events
    ]
    return pd.DataFrame(rows, columns=_EVENT_COLUMNS)


__all__ = ["RunFailed", "RunFinished", "Session", "SessionError", "default_cache_dir"]

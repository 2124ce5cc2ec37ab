"""The session: the one object that owns the live DAG, the store, the settings and the event log."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import heapq
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .checkpoint import Checkpoints
from .errors import SessionError
from .events import CacheNote, DagChanged, Event, NodeEvent, RunFinished, RunStarted, Status
from .export import export_module
from .graph import CellDef, CellError, LiveDag, prepare_cell
from .memo import KeyMemo
from .runner import (
    BEHAVIORS,
    FORMATS,
    Lazy,
    MissingInputs,
    RetryRun,
    Runner,
    RunOutcome,
    Settings,
    WrongInputTypes,
    cheap_to_check,
    namespace_input_version,
)
from .store import (
    CorruptEntry,
    DiskStore,
    Entry,
    MemoryStore,
    Store,
    StoreError,
    map_when_bound,
)
from .versions import CodeVersioner

DEFAULT_CACHE_DIRNAME = ".hamilton_nb_cache"
ON_CHANGE = ("flag", "refresh")
_NOT_SET: Any = object()
VERIFY_NOW_BYTES = 1 << 20  # bound values up to this size are checksummed before binding


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


# Values that cannot change in place (see Session._held).
_HELD_TYPES = frozenset({int, float, complex, str, bytes, bool, type(None)})
_NOT_BOUND = object()


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
        self._cache_key: bytes | None = None  # set_cache_key(); else HAMILTON_NB_CACHE_KEY
        self._listeners: list[Callable[[Event], None]] = []
        self._static: dict[Any, Any] = {}
        # Code versions and keys kept across runs, dropped when what they read changes.
        self.memo = KeyMemo()
        self._config_keys: dict[Any, list[str]] = {}
        self._run_counter = 0
        self._last: RunOutcome | None = None
        self._request = False  # inside one_request()
        self._said_hidden: set[str] = set()  # builtin-named nodes we said are not bound
        self._stale_memo: frozenset[str] | None = None  # stale_nodes() within one request
        # stale_in_order(): (_stale_gen, position map, the stale nodes in DAG order); the
        # generation counts changes of _stale_set, so an unchanged one is not sorted again
        self._stale_gen = 0
        self._stale_order: tuple[int, dict[str, int], list[str]] | None = None
        # Staleness kept between requests and looked at again only where something changed:
        # None means "work it out for every node" (after a config change, reset, restore).
        self._stale_set: set[str] | None = None
        self._stale_seeds: set[str] = set()  # nodes whose own verdict may have changed
        self._stale_ran: set[str] = set()  # nodes with a new event (their dependants may too)
        self._stale_same: set[str] = set()  # nodes served again with the same value
        # External inputs' versions as the last sync saw them (large ones are not watched).
        self._inputs_now: dict[str, str | None] = {}
        # The dependency versions each node's latest value was made from (its key's parts),
        # with the event they belong to: a restored or newer event does not inherit them, and
        # nothing else (clearing entries, a config change) makes them untrue.
        self._used_deps: dict[str, tuple[NodeEvent, Mapping[str, Any]]] = {}
        self.node_events: dict[str, NodeEvent] = {}  # latest event of every node
        self.running = False
        self._run_thread: int | None = None  # the thread of the run under way
        self._hits: dict[str, tuple[NodeEvent, NodeEvent]] = {}  # reused_events' hit per event
        # reused_events' last answer: (upstream, their events, the hits)
        self._reused_last: tuple[tuple[str, ...], list[Any], list[NodeEvent]] | None = None
        # shown_events' hits by node, with the hits they were made of
        self._shown_last: tuple[list[NodeEvent], dict[str, NodeEvent]] | None = None
        self._shown_reused: tuple[str, ...] = ()  # the reused frontier of the latest run
        # name -> (id() of the object we bound, its data version): names hamilton_nb bound
        self._bound: dict[str, tuple[int, str | None]] = {}
        # name -> (the immutable value bound, its data version), for small atoms (numbers,
        # strings): held, so while the namespace holds that very object it is the node's value
        # unchanged (it cannot change in place, and its id cannot be reused) — a re-run that
        # hits the same data version leaves it bound instead of loading it again.
        self._held: dict[str, tuple[Any, str | None]] = {}
        self.on_change = "flag"  # what a run that changes a node does to stale bound names
        self._verifier = _Verifier()
        self.notebook_name: str | None = None  # set by `%hamilton restore --notebook NAME`
        self.last_inputs: dict[str, Any] = {}  # explicit inputs of the last run that had any
        self._anon = 0
        self.engine: Any = None  # engines.Engine where misses run (None: in the kernel)
        # Saves the "last state" after each DAG change and run (checkpoint.py).
        self.checkpoints = Checkpoints(self)

    # -- store ---------------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        return (self._cache_dir or default_cache_dir()).absolute()

    @property
    def store(self) -> Store:
        """The result store, opened on first use.

        A cache folder that cannot be used (a file, an uncreatable path, a damaged or newer
        format) never fails a run: the session keeps values in memory and warns once, saying
        what is wrong and how to fix it (``store.degraded`` holds the reason).
        """
        if self._store is None:
            if not self.settings.enabled:
                self._store = MemoryStore()
            else:
                try:
                    self._store = DiskStore(self.cache_dir, key=self.cache_key)
                except (OSError, StoreError) as e:
                    why = str(e) if isinstance(e, StoreError) else (
                        f"cannot use {self.cache_dir} as the cache folder: {e}. Point "
                        f"HAMILTON_NB_CACHE (or `%hamilton cache dir PATH`) at a folder you can "
                        f"write")
                    warnings.warn(f"hamilton_nb: {why} This session keeps values in memory "
                                  f"only (results are still correct).", stacklevel=2)
                    self._store = MemoryStore(degraded=why)
        return self._store

    @property
    def cache_key(self) -> bytes | None:
        """The key that signs the cache index (``set_cache_key``, else HAMILTON_NB_CACHE_KEY)."""
        from ._trust import key_from_env

        return self._cache_key if self._cache_key is not None else key_from_env()

    def set_cache_key(self, key: str | None) -> None:
        """Sign every cache record and checkpoint with ``key`` from now on (None: back to
        HAMILTON_NB_CACHE_KEY, if set). Entries not signed with it become misses."""
        if key is not None and not key:
            raise SessionError("The cache key is empty: give a non-empty secret.")
        self._cache_key = key.encode("utf-8") if key is not None else None
        self.memo.clear()
        self.close()  # reopened with the key on next use

    def set_cache_dir(self, path: str | os.PathLike[str]) -> None:
        """Use another cache folder from now on (opened at once: a bad path changes nothing)."""
        try:
            store = DiskStore(path, key=self.cache_key) if self.settings.enabled else None
        except (OSError, StoreError) as e:
            raise SessionError(f"Cannot use {path} as the cache folder: {e}") from None
        self.close()
        self.memo.clear()
        self._cache_dir = Path(path)
        self._store = store

    def close(self) -> None:
        """Flush and release the store (the extension calls this on unload)."""
        if self._store is not None:
            close = getattr(self._store, "close", None)
            if close:
                close()
            self._store = None

    # -- engine --------------------------------------------------------------------------------

    def use_executor(self, kind: Any = "local", address: str | None = None, *,
                     max_workers: int | None = None) -> str:
        """Where nodes that must recompute run: ``"local"`` (the kernel, one at a time),
        ``"threads"``, ``"processes"``, ``"dask"`` or ``"ray"``; returns the engine's
        description.

        ``address``: a Dask scheduler (``"tcp://host:8786"``) or Ray cluster address; ``kind``
        may also be a ``distributed.Client``. Without an address, Dask uses the current client
        or starts a local cluster and Ray the current context or a local instance. Hits stay in
        the kernel; workers write the cache themselves when its folder is reachable from them
        (same machine, or a shared filesystem). Raises :class:`SessionError` (nothing changed)
        if the engine cannot be reached.
        """
        from . import engines

        if self.running:
            raise SessionError("A run is in progress: change the executor after it ends.")
        client = None
        if not isinstance(kind, str):
            client, kind = kind, "dask"
        try:
            engine = engines.make_engine(kind, address, client=client, max_workers=max_workers)
        except engines.EngineError as e:
            raise SessionError(str(e)) from None
        self.shutdown_engine()
        self.engine = None if kind == "local" else engine
        return engine.describe()

    @property
    def engine_description(self) -> str:
        """Where misses run, in words (``%hamilton status`` shows it)."""
        from . import engines

        return (self.engine or engines.Engine()).describe()

    def shutdown_engine(self) -> None:
        """Release the pools or clusters the engine started (a client you gave is left open)."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    @contextlib.contextmanager
    def one_request(self) -> Iterator[None]:
        """Scope of one user request (a magic): nothing changes the namespace inside it but
        the session itself, so staleness computed once is reused until an event or the end."""
        outer = self._request
        self._request = True
        try:
            yield
        finally:
            self._request = outer
            if not outer:
                self._stale_memo = None

    def _emit(self, event: Event) -> None:
        self._stale_memo = None  # the DAG, a run or an entry changed: staleness may have too
        # Node events first: they are nearly all of the events (one per node of every run).
        if type(event) is NodeEvent:
            node = event.node
            prev = self.node_events.get(node)
            self.node_events[node] = event
            if (prev is not None and event.status is Status.CACHED
                    and (prev.status is Status.CACHED or prev.status is Status.COMPUTED)
                    and prev.data_version == event.data_version
                    and prev.code_version == event.code_version):
                # The same value again: its dependants' verdicts cannot change (they compare
                # against this very data version), and its own only if it was stale (a newer
                # event can only make "an upstream changed since" untrue).
                self._stale_same.add(node)
            else:
                self._stale_ran.add(node)
        elif isinstance(event, RunStarted):
            self._shown_reused = event.reused  # as the run's own end state shows it already
        elif isinstance(event, DagChanged):
            if event.cell_id is None:
                self.memo.clear()  # config, reset, restore, cleared entries: nothing is kept
                self._stale_set = None
                self._stale_gen += 1
                self._shown_reused = ()
            else:
                names = [*event.added, *event.removed]
                self._stale_seeds.update(names)
                self._stale_seeds.update(u for n in names for u in self.dag.dependants(n))
        for cb in tuple(self._listeners):
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
        overrides: Iterable[str] = (),
    ) -> CellDef:
        """Register a ``%%hamilton`` cell body; replaces the cell with the same id.

        ``cell_id`` is the cell's identity in the DAG (the front-end's cell id, or a
        ``--name``); ``jupyter_id`` the notebook cell it came from, for the front-end. Without
        either (plain IPython), a cell that defines some of the nodes of exactly one registered
        cell replaces that cell. Raises :class:`CellError`, changing nothing. ``overrides``:
        node names the run that follows overrides; an unknown one raises :class:`SessionError`,
        changing nothing.
        """
        if cell_id is None:
            cell_id = self._fallback_cell_id(body)
        # Runs the body in the namespace; until commit() below, rollback() undoes it.
        old = self.dag.cells.get(cell_id)
        cell = prepare_cell(cell_id, body, self.namespace, self.dag.config, self.dag.nodes,
                            previous=old, config_version=self.dag.config_version)
        cell.jupyter_id = jupyter_id or (old.jupyter_id if old else None)
        try:
            self.check_shadowing(cell)
            self._check_overrides(overrides, cell, old)
            self.dag.add_cell(cell, require)  # validates; raises CellError with nothing changed
        except BaseException:
            cell.rollback(self.namespace)
            raise
        cell.commit(self.namespace)
        if cell.reused and old is not None and old.jupyter_id == cell.jupyter_id:
            return cell  # the same nodes as before: nothing changed, nothing to tell
        if not cell.reused:
            self.memo.forget({*cell.nodes, *(old.nodes if old else ())}, self.dag.dependants)
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
        self.memo.forget(cell.nodes, self.dag.dependants)
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
        self.dag.clear()
        self.node_events.clear()
        self._last = None
        # Explicit inputs of an earlier run are history too: `run --stale` after a reset must
        # not feed them to the new cells' nodes.
        self.last_inputs = {}
        self._emit(DagChanged(None))

    # -- running -------------------------------------------------------------------------------

    def _check_overrides(self, names: Iterable[str], cell: CellDef | None = None,
                         old: CellDef | None = None) -> None:
        """Refuse overrides of nodes that do not exist (with ``cell`` replacing ``old``): they
        would be silently ignored."""
        names = list(names)
        if not names:
            return
        known = set(self.dag.nodes)
        if cell is not None:
            known = (known - set(old.nodes if old else ())) | set(cell.nodes)
        unknown = [str(k) for k in names if k not in known]
        if unknown:
            nodes = ", ".join(sorted(n for n in known if n not in self.dag.nodes
                                     or not self.dag.nodes[n].user_defined))
            raise SessionError(
                f"--overrides names unknown node(s): {', '.join(unknown)}. Override only nodes "
                f"of the live DAG ({nodes or 'none'}); check the spelling."
            )

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
        self._check_overrides(overrides or ())
        for name, expand in self.dag.fan_out(outputs).items():
            # It has one value per item, not one value; asked for alone, Hamilton's task runner
            # would wait forever for the block to be collected.
            collector = self.dag.collector(name)
            fix = (f"Ask for `{collector}`, which collects it." if collector else
                   f"Add a node that takes `{name}: Collect[...]` and ask for that node.")
            raise SessionError(
                f"`{name}` runs once per item of the Parallelizable `{expand}`: it has no single "
                f"value. {fix}"
            )
        self.settle()  # damaged values bound earlier are dropped before anything reads them
        if inputs:
            self.last_inputs = dict(inputs)
        if self.engine is not None:  # a cluster gone since `use_executor`: say so, run nothing
            from .engines import EngineError

            try:
                self.engine.check()
            except EngineError as e:
                raise SessionError(str(e)) from None
        self._run_counter += 1
        self.sync_memo()
        runner = Runner(self.dag, self.store, self._emit, self.settings, self._static,
                        self._config_keys, engine=self.engine, memo=self.memo,
                        namespace=self.namespace)
        self.running = True
        self._run_thread = threading.get_ident()
        try:
            outcome = runner.run(self._run_counter, outputs, inputs or {}, overrides or {},
                                 self.namespace)
        except (MissingInputs, WrongInputTypes) as e:
            raise SessionError(str(e)) from None
        finally:
            self.running = False
        self._last = outcome
        for ev in outcome.events:
            if ev.status not in (Status.CACHED, Status.COMPUTED):
                continue
            parts = runner.parts.get(ev.node)
            if parts is None:  # a hit on a remembered key: its entry says what it was made of
                entry = runner.hit_entries.get(ev.node)
                if entry is None:
                    key = runner.keys.get(ev.node)
                    entry = self.store.lookup(key) if key else None
                parts = entry.parts if entry is not None else None
            if parts is not None:
                self._used_deps[ev.node] = (ev, parts.get("deps", {}))
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

    def single_valued(self, names: Iterable[str]) -> list[str]:
        """``names`` without the nodes inside a ``Parallelizable`` block (one value per item:
        they are computed when their ``Collect`` is)."""
        names = list(names)
        fan = self.dag.fan_out(names)
        return [n for n in names if n not in fan]

    def run_cell_nodes(self, cell_id: str) -> RunOutcome:
        """Compute the nodes a cell defines (comm and context-menu entry point)."""
        cell = self._cell(cell_id)
        outcome = self.execute(self.single_valued(cell.nodes), self.last_inputs)
        self.bind(outcome)
        return outcome

    # -- binding into the notebook namespace ---------------------------------------------------

    def unavailable(
        self, outputs: Iterable[str], inputs: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, list[str]]:
        """Among ``outputs``, those that need an external input nobody provides (directly, or
        through another of ``outputs``): output -> the missing input names. Work proportional
        to ``outputs``: a cell's nodes, not the DAG."""
        inputs, overrides = inputs or {}, overrides or {}
        outs = list(outputs)
        sources = (inputs, overrides, self.dag.config, self.namespace)
        deps, is_input = self.dag.deps, self.dag.inputs
        if not any(d in is_input and not any(d in src for src in sources)
                   for name in outs for d in deps[name]):
            return {}  # every external input they read is given (or they read none)
        out: dict[str, list[str]] = {}
        for name in self.dag.order_of(outs):
            n = self.dag.nodes[name]
            missing = [d for d in self.dag.deps[name]
                       if d in self.dag.inputs and not any(d in src for src in sources)
                       and n.input_types[d][1].name == "REQUIRED"]
            missing += [m for d in self.dag.deps[name] if d in out for m in out[d]]
            if missing:
                out[name] = list(dict.fromkeys(missing))
        return out

    def user_facing(self, name: str) -> bool:
        """Whether node ``name`` is bound in the notebook when its cell runs.

        A node is user-facing if it is a function name of its cell, or otherwise a node the
        user named: an ``@extract_columns`` column, an ``@parameterize`` output, an
        ``@extract_fields`` field. Not bound: names that are not identifiers (``pipe``/``mutate``
        intermediates and subdag nodes carry a ``.``), data-quality results (Hamilton tags them
        ``hamilton.data_quality.contains_dq_results``) and the ``<fn>_raw`` node that
        ``@check_output`` inserts before ``<fn>``. Nodes a user asks for by name are bound anyway.
        """
        if not name.isidentifier():
            return False
        cell = self.dag.cell_of(name)
        n = self.dag.nodes.get(name)
        if cell is None or n is None:
            return False
        if name in cell.functions:
            return True
        if name in vars(builtins) and name not in self._bound:
            # A decorator-made node named like a builtin (`@extract_columns(..., "id")`, real
            # Hamilton code does this): not bound, so `id` stays the builtin (bind() says so).
            return False
        return not _internal(n, name, cell.nodes)

    def check_shadowing(self, cell: CellDef) -> None:
        """Refuse a cell whose node would overwrite a notebook name hamilton_nb did not bind.

        ``cell`` has been executed by :func:`prepare_cell` but not committed: what its names
        were before comes from ``cell.before``. Raises :class:`CellError`.
        """
        from .graph import _MISSING

        builtin_names = vars(builtins)
        for name, n in cell.nodes.items():
            if name in self._bound or not name.isidentifier():
                continue
            if name not in cell.functions and _internal(n, name, cell.nodes):
                continue
            before = cell.before(self.namespace, name)
            if before is _MISSING and name not in cell.functions:
                continue  # a decorator output named like a builtin: computed, not bound
            if before is _MISSING and name not in builtin_names:
                continue
            what = _describe(name, before if before is not _MISSING else builtin_names[name],
                             before is _MISSING, self.dag)
            fn = next(iter(n.originating_functions or ()), None)
            fname = getattr(fn, "__name__", name)
            fix = (f"rename the function (e.g. `def {name}_value(...)`)" if fname == name else
                   f"rename that output of `{fname}`")
            raise CellError(
                f"Node `{name}` would overwrite {what}. To keep both, {fix}; "
                f"to let the node have the name, `del {name}` first and re-run this cell."
                if before is not _MISSING else
                f"Node `{name}` would hide {what}. Choose another name: {fix}."
            )

    def bind(self, outcome: RunOutcome, names: Iterable[str] | None = None) -> list[str]:
        """Bind output values in the namespace under their node names; returns the names.

        ``names``: the outputs to bind (default: the user-facing ones, see
        :meth:`user_facing`). Every name is an ordinary object when this returns, whether it was
        computed or came from the cache: a cached value is read memory-mapped (copy-on-write),
        always from the store — a bound object the user changed in place is never handed back.
        The full checksum of mapped value files is verified in the background (see
        :meth:`settle`).
        """
        wanted = [n for n in (outcome.values if names is None else names)
                  if n in outcome.values and n.isidentifier()
                  and (names is not None or self.user_facing(n))]
        if names is None:
            builtin_names = vars(builtins)
            hidden = [n for n in outcome.values if n in builtin_names and n not in wanted
                      and n not in self._said_hidden and (c := self.dag.cell_of(n)) is not None
                      and n not in c.functions]
            if hidden:
                self._said_hidden.update(hidden)
                shown = ", ".join(f"`{n}`" for n in hidden)
                warnings.warn(
                    f"hamilton_nb: node(s) {shown} not bound as notebook variables: the name "
                    f"would hide the Python builtin. Get the value with "
                    f"`hamilton_nb.session().value({hidden[0]!r})`, or bind it on purpose "
                    f"with `%hamilton run {hidden[0]}`.", stacklevel=2)
        versions = {e.node: e.data_version for e in outcome.events}
        unverified: list[tuple[str, Entry]] = []
        done: list[str] = []
        for name in wanted:
            value = outcome.values[name]
            dv = versions.get(name)
            if isinstance(value, Lazy):
                dv = value.data_version
                held = self._held.get(name)
                if (held is not None and held[1] == dv and dv is not None
                        and self.namespace.get(name, _NOT_BOUND) is held[0]):
                    done.append(name)  # that very immutable value is still bound: nothing to do
                    continue
                entry = value.entry
                # A small file is verified at once (cheap); a large one in the background.
                checked = entry is None or entry.size <= VERIFY_NOW_BYTES
                try:
                    value = value.load(verify=checked)
                except RetryRun:  # unreadable (and now dropped, with a warning): compute it
                    try:
                        value, checked = self.run([name], self.last_inputs)[name], True
                    except (RunFailed, SessionError) as e:
                        # e.g. right after a restore, before the inputs are defined again:
                        # the other names are still bound; this one is said to be missing.
                        warnings.warn(f"hamilton_nb: `{name}` is not bound: its cached value was "
                                      f"unreadable and computing it failed ({e}).", stacklevel=2)
                        self._unbind(name)
                        continue
                if not checked and entry is not None:
                    unverified.append((name, entry))
            elif dv is not None:
                value = self._as_stored(name, value, dv)
            self._unbind(name)
            self.namespace[name] = value
            self._bound[name] = (id(value), dv)
            if type(value) in _HELD_TYPES and (not isinstance(value, str | bytes)
                                                or len(value) <= 4096):
                self._held[name] = (value, dv)  # small: holding it costs nothing after `del`
            done.append(name)
        if unverified:
            self._verifier.start(self.store, unverified)
        return done

    def settle(self, wait: bool = False) -> list[str]:
        """Act on background checksum results: a bound value whose file turned out damaged is
        dropped with a warning and computed again. Returns the names recomputed.

        ``wait``: wait for verification still running (else only finished results count).
        """
        bad = self._verifier.results(wait)
        names = []
        for name, entry in bad:
            warnings.warn(
                f"hamilton_nb: the cached value bound to `{name}` was damaged on disk "
                f"({entry.data_version[:12]}); the entry was dropped and `{name}` is computed "
                f"again. Anything computed from the damaged `{name}` since should be re-run.",
                stacklevel=2,
            )
            self.store.discard(entry)
            if name in self._bound:
                self._unbind(name)
                if name in self.dag.nodes:
                    names.append(name)
        if names and not self.running:
            try:
                self.bind(self.execute(names, self.last_inputs), names)
            except SessionError as e:
                warnings.warn(f"hamilton_nb: could not recompute {', '.join(names)}: {e}",
                              stacklevel=2)
        return names

    def _as_stored(self, name: str, value: Any, dv: str) -> Any:
        """``value``, just computed, or for a big array-like one its stored copy memory-mapped
        (see :func:`store.map_when_bound`): the notebook then holds one copy of it, in the page
        cache, not a second one in the kernel's own memory — as a hit would bind it. The file
        has the value's content (its name is the fingerprint) and this process just wrote or
        checked it, so loading it verifies cheaply."""
        entry = self.store.latest(name)
        if entry is None or entry.data_version != dv or not map_when_bound(value, entry):
            return value
        try:
            return self.store.load(entry)
        except CorruptEntry:  # gone or damaged since (another process): the computed one
            return value

    def _unbind(self, name: str) -> None:
        self._held.pop(name, None)
        bound = self._bound.pop(name, None)
        if (bound is not None and name in self.namespace
                and id(self.namespace[name]) == bound[0]):
            del self.namespace[name]

    @property
    def bound_names(self) -> list[str]:
        """Names hamilton_nb bound in the notebook (that still hold the value it bound)."""
        return [n for n, (i, _) in self._bound.items()
                if n in self.namespace and id(self.namespace[n]) == i]

    def value(self, name: str) -> Any:
        """The current value of a node: its value in the cache if it is not stale (also after
        a restore, before the inputs are defined again), else computed with the last inputs."""
        self._check_nodes([name])
        ev = self.node_events.get(name)
        if ev is not None and ev.data_version and ev.cache == CacheNote.STORED:
            entry = self.store.latest(name)
            if entry is None or entry.data_version != ev.data_version:
                entry = next((e for e in self.store.entries()
                              if e.node == name and e.data_version == ev.data_version), None)
            if entry is not None and name not in self.stale_nodes():
                with contextlib.suppress(CorruptEntry):  # damaged: computed below instead
                    return self.store.load(entry)
        return self.run([name], self.last_inputs)[name]

    # -- staleness -----------------------------------------------------------------------------

    def stale_bound(self) -> list[str]:
        """Bound names whose node is stale (in DAG order)."""
        if not self._bound:
            return []
        return list(filter(self._bound.__contains__, self._stale_in_order()))

    def stale_in_order(self) -> list[str]:
        """The stale nodes in DAG order.

        An edit high in a long notebook makes hundreds of nodes stale, and the report and the
        stale-name line ask after every run: the order is sorted again only when the stale set
        or the DAG order changed since (an edit of a cell whose dependants are already stale
        changes neither), and then in C (no Python work per stale node)."""
        return list(self._stale_in_order())

    def _stale_in_order(self) -> list[str]:
        """stale_in_order() without a copy: callers only read it."""
        stale = self._stale_view()
        if not stale:
            return []
        pos = self.dag.position()
        memo = self._stale_order
        if (memo is not None and memo[0] == self._stale_gen and memo[1] is pos
                and not self.busy_elsewhere()):
            return memo[2]
        order = sorted(filter(pos.__contains__, stale), key=pos.__getitem__)
        if not self.busy_elsewhere():  # (another thread's answer is the staleness before a run)
            self._stale_order = (self._stale_gen, pos, order)
        return order

    def set_file_check(self, mode: str) -> None:
        """How the files data loaders read are versioned: ``content`` (a hash of the bytes,
        the default) or ``stat`` (size + modification time: cheaper, weaker)."""
        if mode not in ("content", "stat"):
            raise SessionError(f"file_check must be `content` or `stat`; got {mode!r}.")
        self.settings.file_check = mode
        self.memo.clear()

    def set_on_change(self, mode: str) -> None:
        """``flag`` (default): a run that leaves bound names stale says so; ``refresh``: such a
        run recomputes and rebinds them (through the cache) at its end."""
        if mode not in ON_CHANGE:
            raise SessionError(f"on_change must be one of {', '.join(ON_CHANGE)}; got {mode!r}.")
        self.on_change = mode

    def run_stale(self, names: Iterable[str] | None = None) -> StaleRun:
        """Recompute (through the cache) every stale node and rebind the user-facing ones and
        every stale name that was bound. ``names``: only these. ``str()`` of the result is a
        one-line summary (the comm's ``run_stale`` message shows it)."""
        stale = self.stale_nodes() if names is None else set(names)
        todo = self.single_valued(n for n in self.dag.order if n in stale)
        if not todo:
            return StaleRun([], None)
        outcome = self.execute(todo, self.last_inputs)
        self.bind(outcome, [n for n in todo if n in self._bound or self.user_facing(n)])
        return StaleRun(todo, outcome)

    def after_run(self, outcome: RunOutcome, mode: str | None = None) -> str | None:
        """What a cell run does about stale bound names (``mode``: on_change override).

        With ``refresh`` they are recomputed and rebound; with ``flag`` the returned line says
        which are stale and how to refresh. None when nothing bound went stale.
        """
        if not any(e.status is Status.COMPUTED for e in outcome.events):
            return None  # nothing changed value: nothing can have gone stale
        stale = self.stale_bound()
        if not stale:
            return None
        # One line even for hundreds of names: the first few, then how many more.
        names = ", ".join(f"`{n}`" for n in stale[:8]) + (
            f" and {len(stale) - 8} more" if len(stale) > 8 else "")
        if (mode or self.on_change) == "refresh":
            result = self.run_stale(stale)
            if result.outcome is not None and not result.outcome.ok:
                return f"hamilton_nb: refreshing stale names: {result}"
            return f"hamilton_nb: refreshed {names} (on_change=refresh)."
        return (f"hamilton_nb: {names} {'is' if len(stale) == 1 else 'are'} now stale (computed "
                f"from older upstream values); `%hamilton run --stale` recomputes and rebinds "
                f"{'it' if len(stale) == 1 else 'them'}.")

    # -- queries -------------------------------------------------------------------------------

    def last_run(self) -> pd.DataFrame:
        """One row per node the last run touched: node, status, reason, timings, cache note."""
        return _events_frame(self.last_run_events())

    def last_run_events(self) -> list[NodeEvent]:
        """The events of the last run, with a hit for each upstream node it reused."""
        if self._last is None:
            return []
        return [*self.reused_events(self._last.reused), *self._last.events]

    def reused_events(self, frontier: Iterable[str]) -> list[NodeEvent]:
        """A run that reused upstream nodes without looking at them (nothing under them
        changed since an earlier run checked them) names only the first ones it met: these
        and everything upstream of them, each as a hit made of its latest event."""
        dag = self.dag
        frontier = tuple(n for n in frontier if n in dag.nodes)
        if not frontier:
            return []
        ups = dag.upstream_all(frontier)
        # The same upstream with the same events as last time (checked in C: identity first):
        # the same hits. Front-ends ask after every run, and a chain's middle cell reuses
        # hundreds of nodes.
        events = list(map(self.node_events.get, ups))
        last = self._reused_last
        if last is not None and last[0] is ups and last[1] == events:
            return list(last[2])
        out = []
        hits, inputs = self._hits, dag.inputs
        for name, ev in zip(ups, events, strict=True):
            if ev is None or name in inputs:
                continue
            kept = hits.get(name)
            if kept is None or kept[0] is not ev:  # made once per event: states compare equal
                kept = hits[name] = (ev, self.reused_event(ev))
            out.append(kept[1])
        self._reused_last = (ups, events, out)
        return list(out)

    def shown_events(self) -> Mapping[str, NodeEvent]:
        """Each node's latest event as the front-ends show it: the nodes the last run reused
        without looking at them count as hits of that run (see :meth:`reused_events`)."""
        if not self._shown_reused:
            return self.node_events
        hits = self.reused_events(self._shown_reused)
        kept = self._shown_last
        if kept is None or kept[0] != hits:  # (the same hits: compared by identity, in C)
            kept = self._shown_last = (hits, {e.node: e for e in hits})
        return {**self.node_events, **kept[1]}

    @staticmethod
    def reused_event(ev: NodeEvent) -> NodeEvent:
        """The hit :meth:`reused_events` shows for a node whose latest event is ``ev`` (the
        panel keeps these per node across runs)."""
        return dataclasses.replace(
            ev, status=Status.CACHED, duration=0.0, saved=ev.saved or ev.duration,
            error=None, where=None, cache=CacheNote.STORED,
            reason="nothing it depends on changed since it was last checked")

    def status(self) -> pd.DataFrame:
        """Every node of the live DAG: the cell defining it and its state."""
        from .report import cell_label, stale_reasons

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
            cell = self.dag.node_cell.get(name)
            # "cell" is how people know the cell (its first node); cell_id stays for code.
            rows.append({"node": name, "cell": cell_label(self, cell), "cell_id": cell,
                         "state": state, "reason": reasons.get(name) or (ev.reason if ev else "")})
        return pd.DataFrame(rows, columns=["node", "cell", "cell_id", "state", "reason"])

    def stale_nodes(self) -> set[str]:
        """Nodes whose code, or an upstream's value or code, changed since their value was made."""
        return set(self._stale_view())

    def _stale_view(self) -> frozenset[str] | set[str]:
        """stale_nodes() without a copy where there is one to give (callers only read it): an
        edit high in a long notebook makes hundreds of nodes stale, and several readers ask
        after every run."""
        if not self.node_events:
            return frozenset()
        if self._stale_memo is not None:
            return self._stale_memo
        if self.busy_elsewhere():
            # Asked from another thread during a run (the lab comm's progress timer): the
            # staleness known before it. Working it out changes the session's memo and
            # bookkeeping, which the run is using; it is worked out again when the run ends.
            return set(self._stale_set or ())
        stale = self._stale_nodes()
        if self._request:  # the report, the stale line, the panel and the lab ask in turn
            self._stale_memo = frozenset(stale)
            return self._stale_memo
        return set(stale)

    def busy_elsewhere(self) -> bool:
        """A run is under way on another thread than the caller's (a front-end's timer)."""
        return self.running and threading.get_ident() != self._run_thread

    def sync_memo(self) -> set[str]:
        """Drop remembered code versions and keys whose globals, imports, environment
        variables or inputs changed since (memo.py); returns the nodes whose code version went."""
        dag, ns, settings = self.dag, self.namespace, self.settings
        now: dict[str, str | None] = {}
        for name in dag.inputs:
            value = dag.config[name] if name in dag.config else ns.get(name, _NOT_SET)
            if value is _NOT_SET or cheap_to_check(value, None):
                now[name] = namespace_input_version(name, dag.config, ns, settings)
        # An input whose value changed makes the nodes reading it stale (not only their keys).
        seen = self._inputs_now
        self._stale_seeds.update(u for name, v in now.items()
                                 if name in seen and seen[name] != v
                                 for u in dag.dependants(name))
        self._inputs_now = now
        dropped = self.memo.sync(ns, dag.dependants, now)
        # Whoever synced (a run does first), staleness must look at these again: a run of
        # another cell would otherwise swallow the news, and `status` call them fresh.
        self._stale_seeds.update(dropped)
        return dropped

    def _stale_nodes(self) -> set[str]:
        """Staleness, worked out again only for the nodes something changed under: the nodes
        whose code version the memo dropped, that ran, that a cell changed, and downstream of
        them as far as a verdict changes (an unchanged cell re-run looks at its nodes and their
        direct dependants, not at the notebook). Returns the kept set itself: copy it."""
        dropped = self.sync_memo()
        runner = Runner(self.dag, self.store, lambda e: None, self.settings, self._static,
                        self._config_keys, memo=self.memo, namespace=self.namespace)
        runner.versioner = CodeVersioner(self._static)
        stale = self._stale_set
        same = self._stale_same
        seeds = self._stale_seeds | self._stale_ran | dropped
        if stale is not None:
            seeds |= same & stale
        ran = self._stale_ran
        self._stale_seeds, self._stale_ran, self._stale_same = set(), set(), set()
        if stale is None:
            stale = set()
            for name in self.dag.order:
                if self._is_stale(name, runner, stale):
                    stale.add(name)
            self._stale_set = stale
            self._stale_gen += 1
            return stale
        nodes = self.dag.nodes
        for name in seeds:
            if name not in nodes and name in stale:
                stale.discard(name)
                self._stale_gen += 1
        pos = self.dag.position()
        heap = [(pos[n], n) for n in seeds if n in pos]
        heapq.heapify(heap)
        done: set[str] = set()
        while heap:
            _, name = heapq.heappop(heap)
            if name in done:
                continue
            done.add(name)
            now = self._is_stale(name, runner, stale)
            was = name in stale
            if now != was:
                if now:
                    stale.add(name)
                else:
                    stale.discard(name)
                self._stale_gen += 1  # stale_in_order() sorts again
            if now != was or name in ran:
                for u in self.dag.dependants(name):
                    if u not in done:
                        heapq.heappush(heap, (pos[u], u))
        return stale

    def _is_stale(self, name: str, runner: Runner, stale: set[str]) -> bool:
        ev = self.node_events.get(name)
        if name in self.dag.inputs or ev is None or ev.status in (Status.FAILED,
                                                                  Status.SKIPPED):
            return False  # failed/skipped say more than "stale", and have no value to be stale
        deps = self.dag.deps[name]
        if any(d in stale for d in deps):
            return True
        cv, _ = runner._code_version(self.dag.nodes[name], name)
        if cv != ev.code_version:
            return True
        rec = self._used_deps.get(name)
        used = rec[1] if rec is not None and rec[0] is ev else None
        inputs = self.dag.inputs
        for d in deps:
            if d in inputs:
                # A notebook variable (or config value) read as an input: its value now
                # against the one the node's value was made from (large ones: not watched).
                now = self._inputs_now.get(d)
                if used is not None and d in used and now is not None and now != used[d]:
                    return True
                continue
            dev = self.node_events.get(d)
            newer = dev is not None and dev.at > ev.at
            if newer:
                was = used[d] if used is not None and d in used else _dep_dv(self, name, d)
                if dev.data_version != was:
                    return True
        return False

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
             "created": pd.Timestamp(e.created, unit="s").floor("s"),
             "last_used": pd.Timestamp(e.last_used, unit="s").floor("s"), "key": e.key}
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
        self.reclaim()
        self._emit(DagChanged(None))
        return n

    def reclaim(self) -> tuple[int, int]:
        """Delete temp files of killed writers in the cache folder; returns (files, bytes).
        ``clear`` and ``evict`` do this too (the magics report it)."""
        reclaim = getattr(self.store, "reclaim", None)
        return reclaim(orphans=True) if reclaim is not None else (0, 0)

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
        self.reclaim()  # leftovers of killed writers count against the size too: gone first
        self.memo.clear()
        return self.store.evict(max_bytes, older_than, self.protected_versions())

    def protected_versions(self) -> frozenset[str]:
        """Data versions that eviction must keep (values named checkpoints refer to)."""
        return self.checkpoints.protected_versions()

    def set_behavior(self, node: str, behavior: str) -> None:
        """Cache behavior of a node or input: default, recompute, disable or ignore."""
        if behavior not in BEHAVIORS:
            raise SessionError(f"Unknown behavior {behavior!r}; use one of {', '.join(BEHAVIORS)}.")
        self.settings.behavior[node] = behavior
        self.memo.clear()

    def set_format(self, node: str, fmt: str) -> None:
        """Storage format of a node's value: joblib (default) or parquet (DataFrames)."""
        if fmt not in FORMATS:
            raise SessionError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
        self.settings.format[node] = fmt
        self.memo.clear()

    # -- checkpoints and export (the logic is in checkpoint.py and export.py) ------------------

    def restore(self, name: str | None = None, notebook: str | None = None) -> Any:
        """Bring back the live DAG and bind every value (memory-mapped), recomputing nothing.

        Without ``name``: the state this notebook had before this kernel started (after a
        restart, the DAG as it was). The notebook is ``notebook`` if given, else the one the
        kernel runs (see :meth:`notebook_identity`); plain IPython falls back to the working
        folder. With ``name``: that named checkpoint. The current state is saved as an
        ``auto-*`` checkpoint first. Returns a ``RestoreReport``. The ``%%hamilton`` cell bodies
        are run again (to define their functions); imports, helpers and constants they take
        from ordinary cells must be defined first (the report names missing ones).
        """
        return self.checkpoints.restore(name, notebook=notebook)

    def notebook_identity(self) -> str | None:
        """The notebook this kernel runs: VS Code's ``__vsc_ipynb_file__`` or the
        ``__session__`` ipykernel sets from Jupyter's session path; None in plain IPython."""
        for var in ("__vsc_ipynb_file__", "__session__"):
            value = self.namespace.get(var)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

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
        return export_module(self, path)

    # -- front-end state -----------------------------------------------------------------------

    def dag_state(self) -> dict[str, Any]:
        """JSON-serializable state for the JupyterLab extension (docs/protocol.md)."""
        stale = self.stale_nodes()
        nodes = []
        events = self.shown_events()
        for name in self.dag.order:
            n = self.dag.nodes[name]
            ev = events.get(name)
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


_DQ_RESULTS = "hamilton.data_quality.contains_dq_results"
_DQ_SOURCE = "hamilton.data_quality.source_node"


def _internal(n: Any, name: str, siblings: Mapping[str, Any]) -> bool:
    """A node Hamilton's decorators generate for their own plumbing (see Session.user_facing)."""
    if not name.isidentifier() or n.tags.get(_DQ_RESULTS):
        return True
    # @check_output: `<fn>_raw` holds the undecorated result; its sibling validators name
    # `<fn>` as their source node.
    return name.endswith("_raw") and any(
        s.tags.get(_DQ_SOURCE) == name[:-4] for s in siblings.values())


def _describe(name: str, value: Any, builtin: bool, dag: LiveDag) -> str:
    """How a clashing notebook name is called in an error message."""
    import types

    if builtin:
        return f"the builtin `{name}`"
    if name == "get_ipython" or name.startswith("__"):
        return f"IPython's `{name}`"
    if isinstance(value, types.ModuleType):
        return f"the imported module `{name}`"
    if name in dag.nodes and dag.nodes[name].user_defined:
        return f"the notebook variable `{name}` (an external input of the DAG)"
    if isinstance(value, types.FunctionType | type):
        # Often the same function run earlier as an ordinary cell: `del` is the fix then.
        return f"the {'function' if isinstance(value, types.FunctionType) else 'class'} " \
               f"`{name}` defined in the notebook"
    return f"the notebook variable `{name}`"


@dataclass
class StaleRun:
    """What :meth:`Session.run_stale` recomputed."""

    names: list[str]
    outcome: RunOutcome | None

    def __str__(self) -> str:
        if not self.names:
            return "Nothing is stale."
        if self.outcome is not None and self.outcome.errors:
            name, err = next(iter(self.outcome.errors.items()))
            return f"Recomputing stale nodes failed at `{name}`: {type(err).__name__}: {err}"
        n = len(self.names)
        return f"Recomputed {n} stale node{'s' * (n != 1)}: " + ", ".join(
            f"`{x}`" for x in self.names)


class _Verifier:
    """Verifies the checksums of bound, memory-mapped value files in a background thread.

    Binding maps a value in about the time memory-mapping takes; reading every byte for the
    checksum (~50-90 ms per 200 MB here) happens here instead. A mismatch is kept for
    :meth:`Session.settle`, which warns and recomputes: never a wrong value without a warning.
    """

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._bad: list[tuple[str, Entry]] = []
        self._lock = threading.Lock()

    def start(self, store: Store, items: list[tuple[str, Entry]]) -> None:
        # Files this process wrote or already checked need no thread (starting one costs more
        # than memory-mapping a value).
        items = [(name, e) for name, e in items if not store.already_verified(e)]
        if not items:
            return

        def work() -> None:
            # Give the GIL back at once: a new thread that starts hashing straight away kept
            # the kernel thread waiting in Thread.start() for 5-25 ms (the switch interval).
            time.sleep(0.005)
            for name, entry in items:
                try:
                    ok = store.verify(entry)
                except Exception:  # an unreadable file is a damaged one
                    ok = False
                if not ok:
                    with self._lock:
                        self._bad.append((name, entry))

        t = threading.Thread(target=work, name="hamilton_nb-verify", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def results(self, wait: bool = False) -> list[tuple[str, Entry]]:
        if wait:
            for t in list(self._threads):
                t.join()
        with self._lock:
            bad, self._bad = self._bad, []
        return bad

    @property
    def busy(self) -> bool:
        return any(t.is_alive() for t in self._threads)


def _dep_dv(session: Session, node: str, dep: str) -> str | None:
    entry = session.store.latest(node)
    if entry is None:
        return None
    return entry.parts.get("deps", {}).get(dep)


_EVENT_COLUMNS = ["node", "status", "reason", "cell_id", "duration", "saved", "size", "cache",
                  "error", "where"]


def _events_frame(events: list[NodeEvent]) -> pd.DataFrame:
    rows = [
        {"node": e.node, "status": e.status.value, "reason": e.reason, "cell_id": e.cell_id,
         "duration": e.duration, "saved": e.saved, "size": e.size, "cache": e.cache.value,
         "error": e.error, "where": e.where}
        for e in events
    ]
    return pd.DataFrame(rows, columns=_EVENT_COLUMNS)


__all__ = ["RunFailed", "RunFinished", "Session", "SessionError", "default_cache_dir"]

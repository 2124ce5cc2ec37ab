"""Plan and execute a run: hits resolved from metadata only, misses executed through Hamilton.

A run has two phases:

1. **Plan** (no Hamilton, no value loaded): walk the needed nodes in topological order, compute
   each node's cache key from its code version and its dependencies' data versions, and look it
   up. A node whose key hits gets its stored data version, so its own dependants can be keyed
   in turn. The first miss blocks everything downstream of it. An all-hit run ends here, having
   read no value at all.
2. **Execute** (only if something missed): Hamilton's ``execute_subdag`` walks the graph, with
   planned hits passed as overrides (lazy placeholders, so Hamilton never visits their
   upstream). Each remaining node goes through :class:`_CacheAdapter.do_node_execute`, which
   keys it again — now that the upstream data versions are known — and so gives early cutoff:
   a recomputed node whose value did not change leaves its dependants cached.

Every node ends in exactly one :class:`~hamilton_nb.events.NodeEvent`.
"""

from __future__ import annotations

import builtins
import inspect
import os
import sys
import time
import traceback
import types
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hamilton import htypes
from hamilton import version as h_version
from hamilton.execution.graph_functions import execute_subdag
from hamilton.lifecycle.base import BaseDoNodeExecute, LifecycleAdapterSet
from hamilton.node import Node

from .events import CacheNote, Event, NodeEvent, NodeStarted, RunFinished, RunStarted, Status
from .graph import LiveDag
from .memo import KeyMemo
from .store import CorruptEntry, Entry, Store, StoreError
from .versions import (
    FORMAT_VERSION,
    CodeVersioner,
    DataFile,
    Unhashable,
    _lib_version,
    fingerprint,
    hash_strings,
    nondeterministic_reads,
)
from .versions import _code_info as code_info  # what a code object reads (memoized)
from .versions import _is_library_module as is_library_module
from .versions import relevant_config as _relevant_config

HAMILTON_VERSION = ".".join(map(str, h_version.VERSION))
IGNORED = "ignored"  # data version of a node/input marked as not affecting keys

BEHAVIORS = ("default", "recompute", "disable", "ignore")
FORMATS = ("joblib", "parquet")


class WrongInputTypes(Exception):
    """External inputs whose value does not have the type the functions using them declare."""

    def __init__(self, wrong: list[tuple[str, Any]], nodes: dict[str, Node], order: list[str]):
        parts = []
        for name, value in wrong:
            t = nodes[name].type
            tname = getattr(t, "__qualname__", None) or str(t)
            users = [d.name for d in nodes[name].depended_on_by if d.name in order]
            parts.append(f"`{name}` is a {type(value).__qualname__} but {', '.join(users)} "
                         f"expect{'s' if len(users) == 1 else ''} {tname}")
        super().__init__(
            f"Wrong input type: {'; '.join(parts)}. Pass a value of the annotated type (as a "
            f"notebook variable or --inputs), or change the annotation."
        )


class MissingInputs(Exception):
    """External inputs that no node produces and nobody provided."""

    def __init__(self, missing: list[str], needed_by: dict[str, list[str]]):
        self.missing = missing
        self.needed_by = needed_by
        detail = "; ".join(f"`{m}` (needed by {', '.join(needed_by[m])})" for m in missing)
        super().__init__(
            f"Missing input(s): {detail}. Define a notebook variable of that name, or pass it "
            f"with `--inputs` / `inputs=`. (A function only used inside another decorator, such "
            f"as a `with_columns` column, needs no value: `%%hamilton --register-only` registers "
            f"its cell without computing it.)"
        )


class RetryRun(BaseException):
    """A stored value turned out unreadable: its entry is gone, plan again.

    A BaseException on purpose: it must cross Hamilton's ``except Exception`` (which would log it
    as a node failure) on its way back to :meth:`Runner.run`.
    """


class Lazy:
    """A cached value that has not been read from disk yet."""

    __slots__ = ("_load", "data_version", "entry", "node")

    def __init__(self, node: str, data_version: str | None, load: Callable[..., Any],
                 entry: Entry | None = None):
        self.node = node
        self.data_version = data_version
        self._load = load
        self.entry = entry

    def load(self, verify: bool = True) -> Any:
        """Read the value (memory-mapped where the format allows). ``verify=False`` skips the
        checksum of the value file: the caller verifies ``entry`` later (see Session.bind)."""
        return self._load(verify)

    def __repr__(self) -> str:
        return f"<cached value of {self.node!r}, not loaded>"


class _Replan(Exception):
    """A remembered upstream value is gone from the store: plan again, keying everything."""


class _Stop:
    """Leaves of a run's upstream walk: overrides, and remembered nodes that are not outputs."""

    __slots__ = ("known", "outputs", "overrides")

    def __init__(self, overrides: Mapping[str, Any], known: Mapping[str, Any],
                 outputs: set[str]) -> None:
        self.overrides, self.known, self.outputs = overrides, known, outputs

    def __contains__(self, name: object) -> bool:
        return name in self.overrides or (name in self.known and name not in self.outputs)


class _Failed:
    __slots__ = ("node",)

    def __init__(self, node: str):
        self.node = node


@dataclass
class Settings:
    """Per-session cache controls (merged with Hamilton's ``@cache`` tags; these win)."""

    enabled: bool = True
    behavior: dict[str, str] = field(default_factory=dict)
    format: dict[str, str] = field(default_factory=dict)
    # How data loaders' files are versioned: "content" (hash) or "stat" (size + mtime).
    file_check: str = "content"
    warned: set[str] = field(default_factory=set)  # nodes already warned about (once each)


@dataclass
class RunOutcome:
    run_id: int
    outputs: list[str]
    values: dict[str, Any]  # outputs: a value, or a Lazy for hits
    events: list[NodeEvent]
    errors: dict[str, BaseException]
    interrupted: bool = False
    # Upstream nodes the run reused without looking at them again: nothing they were keyed
    # from changed since an earlier run checked them (memo.py). In topological order.
    reused: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and not self.interrupted


class Runner:
    """Executes one run against the live DAG and a store. Stateless between runs."""

    def __init__(
        self,
        dag: LiveDag,
        store: Store,
        emit: Callable[[Event], None],
        settings: Settings,
        static_cache: dict[Any, Any],
        config_cache: dict[Any, list[str]],
        engine: Any = None,
        memo: KeyMemo | None = None,
        namespace: Mapping[str, Any] | None = None,
    ) -> None:
        self.dag = dag
        self.store = store
        self.emit = emit
        self.settings = settings
        self._static = static_cache
        self._config_keys = config_cache
        self.engine = engine  # engines.Engine where misses run; None: in the kernel
        # The session's memo of code versions and keys (memo.py); None: key everything.
        self.memo: KeyMemo | None = memo
        self.namespace: Mapping[str, Any] = namespace if namespace is not None else {}
        self.versioner = CodeVersioner(static_cache)  # replaced at the start of every run
        self._cv: dict[str, tuple[str | None, dict[str, Any]]] = {}  # code versions, this run
        self._planned: dict[str, str] = {}  # see _run_planned
        self.hit_entries: dict[str, Entry] = {}

    # -- public -------------------------------------------------------------------------------

    def run(
        self,
        run_id: int,
        outputs: list[str],
        inputs: Mapping[str, Any],
        overrides: Mapping[str, Any],
        namespace: Mapping[str, Any],
    ) -> RunOutcome:
        """Compute ``outputs``. External inputs come from ``inputs``, the config, then
        ``namespace`` (the notebook's variables)."""
        for attempt in range(3):
            try:
                return self._run_once(run_id, outputs, inputs, overrides, namespace)
            except RetryRun:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _run_once(self, run_id, outputs, inputs, overrides, namespace) -> RunOutcome:
        # Keys remembered from earlier runs (memo.py) stand in for the upstream of a run with
        # the notebook's own inputs: re-running a cell then keys that cell, not its upstream.
        use_keys = (self.memo is not None and not inputs and not overrides
                    and self.settings.enabled and not self.dag.expands
                    and (self.engine is None or self.engine.kind == "local"))
        if use_keys:
            try:
                return self._run_planned(run_id, outputs, inputs, overrides, namespace, True)
            except _Replan:
                pass  # a remembered upstream value is gone from the store: key everything
        return self._run_planned(run_id, outputs, inputs, overrides, namespace, False)

    def _run_planned(self, run_id, outputs, inputs, overrides, namespace,
                     use_keys: bool) -> RunOutcome:
        t_run = time.perf_counter()
        self.versioner = CodeVersioner(self._static)
        self._cv = {}
        self.dv: dict[str, str | None] = {}
        self.parts: dict[str, dict[str, Any]] = {}
        self.events: list[NodeEvent] = []
        self.errors: dict[str, BaseException] = {}
        self.run_id = run_id
        self.stored: dict[str, Entry] = {}  # entries written in this run
        self.sizes: dict[str, int] = {}  # stored size of values in this run (mutation check)
        self.mutated: set[str] = set()  # values a node changed in place (see _check_mutation)
        self._planned: dict[str, str] = {}  # keys the plan computed for nodes that must run
        refresh = getattr(self.store, "refresh", None)
        if refresh is not None:
            refresh()  # entries other kernels wrote since our last run

        graph_nodes = self.dag.nodes
        deps = self.dag.deps
        is_input = self.dag.inputs
        outs = set(outputs)
        known: Mapping[str, tuple[str, str]] = self.memo.keys if use_keys else {}
        # Remembered nodes are leaves of this run (their upstream is not walked); the outputs
        # themselves are always looked up in the store.
        remembered: dict[str, str] = {}
        if known:
            stop = _Stop(overrides, known, outs)
            order = self.dag.upstream(outputs, stop_at=stop)
            for name in order:
                if name in known and name not in outs and name not in is_input:
                    remembered[name] = known[name][0]
        else:
            order = self.dag.upstream(outputs, stop_at=overrides)
        self.keys: dict[str, str] = {}  # the key each node of this run was looked up with
        ext_values = self._external_inputs(order, inputs, overrides, namespace)
        # Inputs too large to fingerprint at every run (memo.py re-checks kept keys' inputs
        # each run): nothing below them is remembered, so a run reaching them reads them.
        self.unwatched = {n for n, v in ext_values.items()
                          if v is not _ABSENT and not cheap_to_check(v, None)}
        pending: list[tuple[str, Entry]] = []  # hits, announced once the plan stands

        hits: dict[str, Entry] = {}
        self.hit_entries = hits  # the entries this run's hits came from (Session.execute)
        blocked: set[str] = set()
        deferred: set[str] = set()
        expands = self.dag.expands
        # Only tagged nodes, or per-node settings, make a node other than cached by default.
        tagged = self.dag.tagged
        plain = self.settings.enabled and not self.settings.behavior
        for name in order:
            n = graph_nodes[name]
            if name in remembered:
                self.dv[name] = known[name][1]
                continue
            if name in overrides or name in is_input:
                self.dv[name] = self._input_version(name, ext_values.get(name, _ABSENT))
                continue
            beh = "default" if plain and name not in tagged else self._behavior(n, name)
            if beh == "ignore":
                self.dv[name] = IGNORED
                deferred.add(name)
                continue
            # A Parallelizable is keyed per item once its items exist (engines.py).
            if name in expands or (blocked and not blocked.isdisjoint(deps[name])):
                blocked.add(name)
                continue
            files = None
            if name in tagged and _reads_source(n):
                if any(not graph_nodes[d].user_defined and d not in overrides
                       for d in deps[name]):
                    blocked.add(name)  # it reads a path a node computes: keyed once executed
                    continue
                files = self._loader_files(name, n, {
                    d: overrides[d] if d in overrides else ext_values.get(d, _ABSENT)
                    for d in deps[name]})
                if files is None:  # not a local file: it runs every time
                    blocked.add(name)
                    continue
            keyed = not (name in known and files is None)
            if keyed:
                key, _ = self._key(n, name, files)
            else:
                key = known[name][0]  # an output whose key nothing changed under
            entry = self.store.lookup(key) if key and beh == "default" else None
            if entry is None or entry.parts.get("volatile"):
                if remembered and name in known and known[name][0] == key:
                    # Its value went from the store (evicted, cleared by another kernel): it
                    # computes again, maybe to another value, and a remembered node below it
                    # would not see that. Key everything instead.
                    raise _Replan(name)
                if keyed and key is not None and files is None:
                    # Its inputs are hits, remembered or external: fixed for this run, so
                    # execute_node finds the same key (a data loader's files are read again).
                    self._planned[name] = key
                blocked.add(name)
                continue
            if remembered and name in known and known[name][1] != entry.data_version:
                raise _Replan(name)  # another value under the same key (another kernel's)
            if files is None:  # a data loader's key depends on its files: never remembered
                self.keys[name] = key
            hits[name] = entry
            self.dv[name] = entry.data_version
            self.sizes[name] = entry.size
            pending.append((name, entry))
        if remembered:
            # What must compute reads remembered values: they come from the store (a value
            # gone from it since means keying the whole upstream after all).
            for name in (*blocked, *deferred):
                for d in deps[name]:
                    if d in remembered and d not in hits:
                        entry = self.store.lookup(remembered[d])
                        if entry is None or entry.parts.get("volatile") \
                                or entry.data_version != known[d][1]:
                            raise _Replan(d)
                        hits[d] = entry
                        self.sizes[d] = entry.size
        self.emit(RunStarted(run_id, tuple(n for n in order if n not in remembered),
                             reused=tuple(remembered)))
        for name, entry in pending:
            self._emit_hit(name, entry, "code and inputs unchanged")

        values: dict[str, Any] = {}
        interrupted = False
        need_exec = blocked or any(o in deferred for o in outputs)
        if need_exec:
            hamilton_overrides = {
                name: self._lazy(name, e) for name, e in hits.items()
            }
            hamilton_overrides.update(overrides)
            adapter = LifecycleAdapterSet(_CacheAdapter(self))
            real_inputs = {k: v for k, v in ext_values.items() if v is not _ABSENT}
            try:
                from . import engines

                if (self.engine is not None and self.engine.kind != "local") or \
                        engines.has_parallel(graph_nodes, order):
                    # Hamilton's task-based execution: misses on the engine, concurrently,
                    # and Parallelizable items cached one by one.
                    computed = engines.execute_tasks(
                        self, self.engine or engines.Engine(), outputs, real_inputs,
                        hamilton_overrides, hits)
                else:
                    computed = execute_subdag(
                        nodes=[graph_nodes[o] for o in outputs],
                        inputs=real_inputs,
                        adapter=adapter,
                        overrides=hamilton_overrides,
                        run_id=str(run_id),
                    )
            except KeyboardInterrupt:
                interrupted = True
                computed = {}
            for o in outputs:
                if o in computed and not isinstance(computed[o], _Failed):
                    values[o] = computed[o]
                    if o in self.mutated and o in self.stored:
                        # A node changed it in place: hand out the value as it was computed.
                        values[o] = self._lazy(o, self.stored[o])
        else:
            for o in outputs:
                if o in hits:
                    values[o] = self._lazy(o, hits[o])
                elif o in overrides:
                    values[o] = overrides[o]
                elif o in ext_values and ext_values[o] is not _ABSENT:
                    values[o] = ext_values[o]
        self.store.touch(e.key for e in hits.values())
        self.store.flush()
        if self.memo is not None and not inputs and not overrides:
            self._remember_keys(order, remembered, is_input)
        elif self.memo is not None:
            # A run given inputs or overrides made these nodes' latest events stand for other
            # values than their remembered keys: a later run must visit them (and say what it
            # used) rather than reuse them unseen under an event that is not theirs.
            keys = self.memo.keys
            self.memo.forget_keys([ev.node for ev in self.events if ev.node in keys
                                   and keys[ev.node][1] != ev.data_version],
                                  self.dag.dependants)
        self.emit(
            RunFinished(run_id, tuple(outputs), ok=not self.errors and not interrupted,
                        interrupted=interrupted, duration=time.perf_counter() - t_run)
        )
        return RunOutcome(run_id, list(outputs), values, self.events, dict(self.errors),
                          interrupted, tuple(remembered))

    def _remember_keys(self, order: list[str], remembered: Mapping[str, str],
                       is_input: set[str]) -> None:
        """Keep this run's keys for the next (memo.py); a node whose data version changed
        takes the remembered keys downstream of it along."""
        memo = self.memo
        assert memo is not None
        if self.dag.expands or (self.engine is not None and self.engine.kind != "local"):
            return  # per-item keys of a fan-out are the engine's: not remembered
        downstream = self.dag.dependants
        deps = self.dag.deps
        fresh: dict[str, tuple[str, str]] = {}
        changed: list[str] = []
        keys = memo.keys
        same: set[str] = set()  # hits under the key and value already remembered
        for ev in self.events:
            name = ev.node
            key = self.keys.get(name)
            if (ev.status is Status.CACHED and key is not None
                    and keys.get(name) == (key, ev.data_version)):
                # Remembered with this very key and value, so with its whole upstream (see
                # below): nothing to check or change (the all-hit re-run of a cell).
                fresh[name] = keys[name]
                same.add(name)
                continue
            # Only values the store holds: one it could not keep is computed again when asked.
            # And only below nodes that are remembered too: a remembered node is a leaf of the
            # next run, so one downstream of a data loader (its files are checked only when it
            # is visited) or of anything else not remembered would hide that node's changes.
            ok = (ev.status in (Status.CACHED, Status.COMPUTED) and key is not None
                  and ev.cache is CacheNote.STORED
                  and ev.data_version not in (None, IGNORED) and name not in self.mutated
                  and not self.parts.get(name, {}).get("volatile")
                  and all(d in fresh or d in remembered or d in is_input
                          for d in deps.get(name, ())))
            if not ok:
                changed.append(name)
                continue
            fresh[name] = (key, ev.data_version)
            old = memo.keys.get(name)
            if old is None or old[1] != ev.data_version:
                changed.append(name)
        if changed:
            memo.forget_keys(changed, downstream)
        # A key is kept only with the keys of everything upstream of it (forget_keys relies
        # on it): events come in execution order, so upstream ones are settled first.
        deps = self.dag.deps
        unwatched = self.unwatched
        for name, kv in fresh.items():
            if name in same and name in keys:
                continue  # still remembered: its upstream still is (forget_keys goes down)
            if all(d in keys or (d in is_input and d not in unwatched) for d in deps[name]):
                keys[name] = kv
        for name in order:
            if name in is_input and name not in remembered and name not in self.unwatched:
                memo.inputs[name] = self.dv.get(name)

    # -- inputs -------------------------------------------------------------------------------

    def _external_inputs(self, order, inputs, overrides, namespace) -> dict[str, Any]:
        nodes = self.dag.nodes
        found: dict[str, Any] = {}
        missing: dict[str, list[str]] = {}
        is_input = self.dag.inputs
        for name in order:
            if name not in is_input or name in overrides:
                continue
            n = nodes[name]
            for source in (inputs, self.dag.config, namespace):
                if name in source:
                    found[name] = source[name]
                    break
            else:
                users = [d.name for d in n.depended_on_by if d.name in order]
                required = [
                    u for u in users
                    if nodes[u].input_types[name][1].name == "REQUIRED"
                ]
                if required:
                    missing[name] = required
                else:
                    found[name] = _ABSENT
        if missing:
            raise MissingInputs(sorted(missing), missing)
        wrong = [
            (name, v) for name, v in found.items()
            # Hamilton's own check, as its driver's validate_inputs does it (None always passes)
            if v is not _ABSENT and v is not None
            and not htypes.check_input_type(nodes[name].type, v)
        ]
        if wrong:
            raise WrongInputTypes(wrong, {name: nodes[name] for name, _ in wrong}, order)
        return found

    def _input_version(self, name: str, value: Any) -> str | None:
        return input_version(name, value, self.settings)

    # -- keys ---------------------------------------------------------------------------------

    # Hamilton's Node.name is a property that joins a namespace on every call: the hot path
    # passes the name along instead.

    def _behavior(self, n: Node, name: str) -> str:
        if not self.settings.enabled:
            return "disable"
        # Hamilton data loaders (@load_from, @dataloader) are keyed on the files they read
        # (see _loader_files); one whose source is not a local file runs every time.
        beh = self.settings.behavior.get(name) or n.tags.get("cache.behavior")
        if beh is None:
            return "default"
        return str(getattr(beh, "value", beh)).lower()

    def _format(self, n: Node, name: str | None = None) -> str:
        if name is not None and name not in self.dag.tagged and not self.settings.format:
            return "joblib"  # no tag and no setting names another format
        fmt = self.settings.format.get(n.name) or n.tags.get("cache.format") or "joblib"
        fmt = str(getattr(fmt, "value", fmt)).lower()
        return "joblib" if fmt == "pickle" else fmt

    def _code_version(self, n: Node, name: str) -> tuple[str | None, dict[str, Any]]:
        # Resolved from the live objects at every run (once per run: _cv), never memoized
        # across runs: defaults, closures, decorator arguments, helpers and constants can all
        # change while the code objects stay equal.
        memo = self._cv.get(name)
        if memo is not None:
            return memo
        if self.memo is not None:
            # Kept across runs, and dropped by KeyMemo.sync when anything it read changed.
            memo = self.memo.code_version(name)
            if memo is not None:
                self._cv[name] = memo
                return memo
            # Until remembered below (remember_code): nothing downstream of it is kept.
            self.memo.unstable.add(name)
        fns = n.originating_functions or ()
        if not fns:
            return None, {"error": "node has no function"}
        config = self.dag.config
        cell = self.dag.cell_of(name)
        # A node whose functions read nothing but their own source (no globals, defaults,
        # closure, decorator objects, imports, environment or config) has a code version that
        # its source alone decides: memoized across runs by that content (the static hash).
        pure_key = _pure_key(name, fns, cell, config) if cell is not None else None
        if pure_key is not None:
            hit = self._static.get(pure_key)
            if hit is not None:
                self._cv[name] = hit
                if self.memo is not None:
                    fcs = [cell.fcodes.get(inspect.unwrap(fn).__code__) for fn in fns]
                    if all(fc is not None for fc in fcs):
                        self.memo.remember_code(name, list(zip(fns, fcs, strict=True)), hit,
                                                self.namespace)
                return hit
        parts: dict[str, Any] = {}
        analyzed = []
        for fn in fns:
            # This registration's analysis, looked up in the node's own cell: equal code
            # objects in two cells (same body, other decorators) must not share one.
            code = getattr(inspect.unwrap(fn), "__code__", None)
            fc = cell.fcodes.get(code) if cell is not None and code is not None else None
            if fc is None:
                fc = self.dag.fcode(fn)
            try:
                _, fparts = self.versioner.function_version(fn, fc)
            except Unhashable as e:
                return None, {"error": str(e)}
            analyzed.append((fn, fc))
            for k in self._relevant_config(fn, config):
                try:
                    fparts[f"config:{k}"] = fingerprint(config[k])
                except Unhashable as e:
                    return None, {"error": f"config `{k}` has no fingerprint ({e})"}
            parts[fn.__name__] = fparts
        flat = [f"{fn}.{k}={v}" for fn, p in sorted(parts.items()) for k, v in sorted(p.items())]
        result = hash_strings(HAMILTON_VERSION, name, *flat), parts
        self._cv[name] = result
        if self.memo is not None and cell is not None and all(
                fc is not None for _, fc in analyzed):
            self.memo.remember_code(name, analyzed, result, self.namespace)
        if pure_key is not None and not any(k.startswith("config:") for p in parts.values()
                                            for k in p):
            self._static[pure_key] = result
        return result

    def _relevant_config(self, fn: Any, config: Mapping[str, Any]) -> list[str]:
        """Config keys the decorators on ``fn`` read. Memoized on the function object itself
        (weakly: it goes when its cell is replaced) and the config's keys: the decorators
        attached to a function never change after it is defined."""
        by_fn = self._config_keys.get(_BY_FUNCTION)
        if by_fn is None:
            by_fn = self._config_keys[_BY_FUNCTION] = weakref.WeakKeyDictionary()
        try:
            per_fn = by_fn.setdefault(fn, {})
        except TypeError:  # not weak-referenceable: compute every time
            return _relevant_config(fn, config)
        ck = tuple(config)
        keys = per_fn.get(ck)
        if keys is None:
            keys = per_fn[ck] = _relevant_config(fn, config)
        return keys

    def _key(
        self, n: Node, name: str, files: str | None = None
    ) -> tuple[str | None, dict[str, Any]]:
        """Cache key of ``n`` and what it is made of; None when it cannot be known.

        ``files``: for a data loader, the versions of the files it reads."""
        cv, code_parts = self._code_version(n, name)
        deps = {d: self.dv.get(d, "<absent>") for d in self.dag.deps[name]}
        parts = {"code_version": cv, "code": code_parts, "deps": deps}
        if files is not None:
            parts["files"] = files
        self.parts[name] = parts
        if cv is None or any(v is None for v in deps.values()):
            return None, parts
        key = hash_strings(
            str(FORMAT_VERSION), name, cv, *(f"{k}={v}" for k, v in sorted(deps.items())),
            *((f"files={files}",) if files is not None else ()),
        )
        return key, parts

    def _loader_files(self, name: str, n: Node, dep_values: Mapping[str, Any]) -> str | None:
        """Versions of the local files a data loader names (literal arguments of
        ``@load_from.x(path=value(...))``, defaults, and the values of its inputs); None when
        its source is not a local file (a URL, a database, a path built in its body): such a
        loader runs every time, and says so once per session."""
        candidates: list[Any] = [*(n.callable.__defaults__ or ()),
                                 *(n.callable.__kwdefaults__ or {}).values()]
        for v in dep_values.values():
            if isinstance(v, Lazy):
                entry = v.entry
                if entry is None or entry.size is None or entry.size > _SMALL_INPUT:
                    continue  # a big upstream value is data, not a path
                v = v.load()
            candidates.append(v)
        paths: list[str] = []
        remote: list[str] = []
        todo = list(candidates)
        while todo:
            v = todo.pop()
            if isinstance(v, dict):
                todo.extend(v.values())
            elif isinstance(v, list | tuple):
                todo.extend(v)
            elif isinstance(v, str | os.PathLike):
                text = os.fspath(v)
                if not isinstance(text, str):
                    continue
                if "://" in text and not text.startswith("file://"):
                    remote.append(text)
                elif len(text) < 4096 and os.path.exists(text.removeprefix("file://")):
                    paths.append(text.removeprefix("file://"))
        if remote or not paths:
            if name not in self.settings.warned:
                self.settings.warned.add(name)
                what = f"`{remote[0]}`" if remote else "no local file in its arguments"
                warnings.warn(
                    f"hamilton_nb: data loader `{name}` reads {what}, which hamilton_nb cannot "
                    f"version, so it runs on every run (its dependants stay cached when the data "
                    f"is the same). Pass the file's path as an argument to have it cached.",
                    stacklevel=2,
                )
            return None
        by = self.settings.file_check
        return hash_strings(*sorted(fingerprint(DataFile(p, by=by)) for p in set(paths)))

    # -- events -------------------------------------------------------------------------------

    def _cell(self, name: str) -> str | None:
        return self.dag.node_cell.get(name)

    def _emit_hit(self, name: str, entry: Entry, reason: str) -> None:
        ev = NodeEvent(
            self.run_id, name, Status.CACHED, reason, self._cell(name), 0.0,
            entry.compute_time, entry.size, CacheNote.STORED,
            code_version=entry.code_version, data_version=entry.data_version,
        )
        self.events.append(ev)
        self.emit(ev)

    def _lazy(self, name: str, entry: Entry) -> Lazy:
        store = self.store

        def load(verify: bool = True) -> Any:
            try:
                return store.load(entry, verify=verify)
            except CorruptEntry as e:
                warnings.warn(
                    f"hamilton_nb: {e}. The entry was dropped and `{name}` is recomputed.",
                    stacklevel=2,
                )
                store.discard(entry)
                raise RetryRun(name) from e

        return Lazy(name, entry.data_version, load, entry)

    # -- execution (called by Hamilton through the adapter) ----------------------------------

    def execute_node(self, n: Node, kwargs: dict[str, Any]) -> Any:
        name = n.name
        failed = [v.node for v in kwargs.values() if isinstance(v, _Failed)]
        if failed:
            self.dv[name] = None
            ev = NodeEvent(self.run_id, name, Status.SKIPPED,
                           f"upstream `{failed[0]}` failed", self._cell(name))
            self.events.append(ev)
            self.emit(ev)
            return _Failed(name)
        beh = self._behavior(n, name)
        files = None
        if _reads_source(n):
            files = self._loader_files(name, n, kwargs)
            if files is None:
                beh = "disable"
        planned = self._planned.pop(name, None) if files is None else None
        if planned is not None:
            key, parts = planned, self.parts[name]
        else:
            key, parts = self._key(n, name, files)
        if beh == "default" and key is not None and files is None and not _reads_source(n):
            self.keys[name] = key
        if beh == "default" and key is not None:
            entry = self.store.lookup(key)
            # early cutoff: an upstream recomputed to the same data
            if entry is not None and not entry.parts.get("volatile"):
                self.dv[name] = entry.data_version
                self.store.touch([entry.key])
                self._emit_hit(name, entry, "upstream recomputed but unchanged")
                return self._lazy(name, entry)
        reason = self.explain_miss(n, key, parts, beh)
        self.emit(NodeStarted(self.run_id, name))
        args = {k: self._input_value(k, v) for k, v in kwargs.items()}
        t0 = time.perf_counter()
        try:
            value = n(**args)
        except Exception as e:
            duration = time.perf_counter() - t0
            self.errors[name] = e
            self.dv[name] = None
            tb = "".join(traceback.format_exception_only(type(e), e)).strip()
            ev = NodeEvent(self.run_id, name, Status.FAILED, reason, self._cell(name), duration,
                           error=tb, code_version=parts["code_version"], where="kernel")
            self.events.append(ev)
            self.emit(ev)
            return _Failed(name)
        duration = time.perf_counter() - t0
        # Inputs read from the cache are private copy-on-write maps: changing them changes
        # nothing shared (and a parquet round trip may fingerprint differently): not checked.
        self._check_mutation(name, {k: v for k, v in args.items()
                                    if not isinstance(kwargs[k], Lazy)})
        note, size, dv = self._record(n, key, parts, value, beh, duration)
        ev = NodeEvent(self.run_id, name, Status.COMPUTED, reason, self._cell(name), duration,
                       0.0, size, note, code_version=parts["code_version"], data_version=dv,
                       where="kernel")
        self.events.append(ev)
        self.emit(ev)
        return value

    def _input_value(self, name: str, value: Any) -> Any:
        if isinstance(value, Lazy):
            return value.load()  # a fresh copy-on-write map for each node that reads it
        if name in self.mutated and name in self.stored:
            # An earlier node changed this computed value in place: later nodes get it as it
            # was computed — exactly what they would get from the cache.
            return self.store.load(self.stored[name])
        return value

    def _check_mutation(self, node: str, args: Mapping[str, Any]) -> None:
        """Warn when ``node`` changed one of its inputs in place (fingerprint again)."""
        for dep, value in args.items():
            before = self.dv.get(dep)
            if before in (None, IGNORED, "<absent>") or not cheap_to_check(
                    value, self.sizes.get(dep)):
                continue
            try:
                after = fingerprint(value)
            except Unhashable:
                continue
            if after != before:
                self.mutated.add(dep)
                warnings.warn(
                    f"hamilton_nb: node `{node}` changed its input `{dep}` in place. Other "
                    f"nodes and the notebook get `{dep}` as it was computed; make `{node}` work "
                    f"on a copy (e.g. `{dep} = {dep}.copy()`) so its result does not depend on "
                    f"that.", stacklevel=2,
                )

    def _record(self, n, key, parts, value, beh, duration):
        name = n.name
        if beh == "ignore":
            self.dv[name] = IGNORED
            return CacheNote.DISABLED, None, IGNORED
        try:
            dv = fingerprint(value)
        except Unhashable as e:
            warnings.warn(
                f"hamilton_nb: `{name}` was computed but not cached: {e}. Nodes downstream of "
                f"it recompute on every run.", stacklevel=2,
            )
            self.dv[name] = None
            return CacheNote.UNHASHABLE, None, None
        self.dv[name] = dv
        if isinstance(value, DataFile):
            # The file behind it can change while code and inputs stay the same: the node must
            # run again every time so its data version (the file's content) is fresh.
            parts["volatile"] = True
        if beh == "disable" or key is None:
            return CacheNote.DISABLED, None, dv
        try:
            entry = self.store.put(key, name, parts["code_version"], dv, value,
                                   self._format(n, name),
                                   duration, parts)
        except StoreError as e:
            warnings.warn(
                f"hamilton_nb: `{name}` was computed and used but not cached: {e}. Mark it "
                f"`@cache(behavior=\"disable\")` to silence this.", stacklevel=2,
            )
            return CacheNote.UNPICKLABLE, None, dv
        self.stored[name] = entry
        self.sizes[name] = entry.size
        if beh == "default":  # marked recompute: the user already said so
            self._warn_nondeterministic(n, name)
        return CacheNote.STORED, entry.size, dv

    def _warn_nondeterministic(self, n: Node, name: str) -> None:
        """Once per node and session: its body reads the clock or unseeded randomness, so the
        cached value is one draw that later runs reuse."""
        tag = f"nondeterministic:{name}"
        if tag in self.settings.warned:
            return
        reads = sorted({r for fn in (n.originating_functions or ())
                        for r in nondeterministic_reads(fn)})
        if reads:
            self.settings.warned.add(tag)
            warnings.warn(
                f"hamilton_nb: `{name}` reads {' and '.join(reads)}; its cached value is reused "
                f"by later runs. If it must run every time, mark it "
                f"`@cache(behavior=\"recompute\")`.", stacklevel=3,
            )

    def explain_miss(self, n: Node, key: str | None, parts: dict[str, Any], beh: str) -> str:
        """One sentence: why ``n`` must compute now."""
        if beh == "recompute":
            return "marked recompute (always runs)"
        if _reads_source(n) and "files" not in parts and beh == "disable":
            return "data loader whose source is not a local file: runs every time"
        if beh == "disable":
            return "caching disabled for this node" if self.settings.enabled else "cache is off"
        if beh == "ignore":
            return "marked ignore (not cached)"
        prev = self.store.lookup(key) if key else None
        if prev is not None and prev.parts.get("volatile"):
            return "returns a DataFile: its file is checked on every run"
        if parts["code_version"] is None:
            return f"cannot be cached: {parts['code'].get('error', 'unknown code')}"
        for dep, dv in parts["deps"].items():
            if dv is None:
                return f"upstream `{dep}` has no fingerprint"
        return explain_difference(self.store.latest(n.name), parts, self.dag)


def explain_difference(prev: Entry | None, parts: Mapping[str, Any], dag: LiveDag) -> str:
    """Compare the key parts of the last stored entry of a node with the current ones."""
    if prev is None or not prev.parts:
        return "no cached value yet"
    old_code, new_code = prev.parts.get("code", {}), parts.get("code", {})
    for fn, new in new_code.items():
        old = old_code.get(fn, {})
        if old.get("source") != new.get("source"):
            return f"code of `{fn}` changed"
        for k, v in new.items():
            if k == "source" or old.get(k) == v:
                continue
            return _part_changed(fn, k, v)
    if prev.parts.get("files") != parts.get("files"):
        return "a file the data loader reads changed"
    old_deps, new_deps = prev.parts.get("deps", {}), parts.get("deps", {})
    for dep, dv in new_deps.items():
        if old_deps.get(dep) != dv:
            n = dag.nodes.get(dep)
            kind = "input" if n is not None and n.user_defined else "upstream"
            return f"{kind} `{dep}` changed"
    if old_code != new_code or old_deps != new_deps:
        return "its dependencies changed"
    return "cache entry missing (cleared or evicted)"


def _part_changed(fn: str, part: str, version: Any) -> str:
    """The sentence for one changed part of a function's code version (versions.py names)."""
    if part.startswith("config:"):
        return f"config `{part[7:]}` changed"
    if part.startswith("@"):
        return f"`{part[1:]}`, used in a decorator of `{fn}`, changed"
    if part.startswith("env:"):
        return f"environment variable `{part[4:]}` changed"
    if part.startswith("import:"):
        return f"module `{part[7:]}`, imported in `{fn}`, changed"
    if part.startswith("wrapper"):
        return f"a decorator wrapping `{fn}` changed"
    if part == "defaults":
        return f"default values of `{fn}` changed"
    if part == "closure":
        return f"values `{fn}` closes over changed"
    if str(version).startswith("fn:"):
        return f"code of helper `{part}` changed"
    return f"global `{part}` changed"


def input_version(name: str, value: Any, settings: Settings) -> str | None:
    """The data version of an external input's value (None: it has none)."""
    if value is _ABSENT:
        return "<absent>"
    if settings.behavior.get(name) == "ignore":
        return IGNORED
    try:
        return fingerprint(value)
    except Unhashable:
        return None


def namespace_input_version(name: str, config: Mapping[str, Any], namespace: Mapping[str, Any],
                            settings: Settings) -> str | None:
    """The version an input has in a run given no explicit inputs (config, then the notebook)."""
    for source in (config, namespace):
        if name in source:
            return input_version(name, source[name], settings)
    return input_version(name, _ABSENT, settings)


class _CacheAdapter(BaseDoNodeExecute):
    """Hamilton lifecycle method: every node Hamilton executes goes through the runner."""

    def __init__(self, runner: Runner):
        self.runner = runner

    def do_node_execute(self, *, run_id: str, node_: Node, kwargs: dict[str, Any],
                        task_id: str | None = None) -> Any:
        return self.runner.execute_node(node_, kwargs)


_BUILTINS = frozenset(vars(builtins))


def _pure_key(name: str, fns: Any, cell: Any, config: Mapping[str, Any]) -> tuple | None:
    """Content key of a node whose code version its functions' source decides, with at most
    builtins and library modules (``pd``, ``np``: versioned by name and version) as globals;
    None when it reads anything else live (see Runner._code_version).

    What cannot change after a cell is registered (the analysis, the imports and environment
    its code names) is worked out once per registration and kept on the cell; what can (a
    reassigned default, a builtin shadowed or a module rebound by a notebook variable, a
    library's version) is checked every time."""
    fixed = cell.pure.get(name, _UNSET)
    if fixed is _UNSET:
        fixed = cell.pure[name] = _pure_parts(fns, cell)
    if fixed is None:
        return None
    statics, raws, builtin_names, module_names = fixed
    live: list[str] = []
    for raw in raws:
        if raw.__defaults__ or raw.__kwdefaults__ or raw.__closure__:
            return None
        g = raw.__globals__
        if any(n in g for n in builtin_names):
            return None
        for n in module_names:
            mod = g.get(n)
            if type(mod) is not types.ModuleType or not _library_module(mod):
                return None
            live.append(f"{n}={mod.__name__}@{_lib_version(mod.__name__)}")
    return ("pure-code-version", HAMILTON_VERSION, name, *statics, *live, *sorted(config))


_UNSET: Any = object()


def _pure_parts(fns: Any, cell: Any) -> tuple | None:
    statics, raws, builtin_names, module_names = [], [], set(), []
    for fn in fns:
        raw = inspect.unwrap(fn)
        code = getattr(raw, "__code__", None)
        fc = cell.fcodes.get(code) if code is not None else None
        if fc is None or fn is not raw or fc.decorator_values:
            return None
        g = raw.__globals__
        for n in fc.global_names:
            if n not in g and n in _BUILTINS:
                builtin_names.add(n)
            elif type(g.get(n)) is types.ModuleType and _library_module(g[n]):
                module_names.append(n)
            else:
                return None
        info = code_info(code)
        if info.imports or info.env_names or info.reads_env:
            return None
        statics.append(fc.static)
        raws.append(raw)
    return tuple(statics), tuple(raws), tuple(builtin_names), tuple(dict.fromkeys(module_names))


def _library_module(mod: types.ModuleType) -> bool:
    """An installed library (not the user's code) with no version of its own declared."""
    if "__hamilton_nb_version__" in vars(mod):
        return False
    where = (mod.__name__, getattr(mod, "__file__", None))
    known = _LIBRARY_MODULES.get(where)
    if known is None:
        known = _LIBRARY_MODULES[where] = is_library_module(mod)
    return known


# (module name, its file) -> an installed library: by file, since a user's module may later be
# imported under a name a library used before (a package's `utils`).
_LIBRARY_MODULES: dict[tuple[str, str | None], bool] = {}


_SMALL_INPUT = 1 << 16  # an upstream value this small may be a path a data loader reads


def _reads_source(n: Node) -> bool:
    """The node of a Hamilton data loader that actually reads (``@load_from``'s load_data,
    ``@dataloader``'s function); its companion filter node is an ordinary cached node."""
    return (n.tags.get("hamilton.data_loader") is True
            and n.tags.get("hamilton.data_loader.has_metadata") is True)


MUTATION_CHECK_BYTES = 64 * 2**20  # inputs larger than this are not fingerprinted again


def cheap_to_check(value: Any, stored_size: int | None) -> bool:
    """Whether fingerprinting ``value`` again after a node ran is cheap enough to do always."""
    nbytes = getattr(value, "nbytes", None)  # numpy, pandas Series, arrow
    if isinstance(nbytes, int):
        return nbytes <= MUTATION_CHECK_BYTES
    usage = getattr(value, "memory_usage", None)  # DataFrame
    if callable(usage) and hasattr(value, "columns"):
        return int(usage(index=True, deep=False).sum()) <= MUTATION_CHECK_BYTES
    if stored_size is not None:
        return stored_size <= MUTATION_CHECK_BYTES
    return sys.getsizeof(value) <= MUTATION_CHECK_BYTES


_BY_FUNCTION = "relevant config keys by function"


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()

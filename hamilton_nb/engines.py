"""Engines: where the nodes that must recompute run (in the kernel, threads, processes, Dask, Ray).

Nothing here schedules: Hamilton's task-based execution does (``TaskBasedGraphExecutor`` groups
the nodes with ``GroupByRepeatableBlocks``, ``ExecutionState`` + ``run_graph_to_completion``
release each task when its inputs are ready and expand ``Parallelizable`` blocks per item), and
Hamilton's task executors (``MultiThreadingExecutor``, ``MultiProcessingExecutor``,
``h_dask.DaskExecutor``, ``h_ray.RayTaskExecutor``) ship the work. What this module adds is the
cache in front of every task, in the kernel:

* :class:`_CachingExecutor` is the ``TaskExecutor`` Hamilton hands every task to. It keys the
  task's nodes with the runner (same keys as an in-process run: entries are shared between
  engines), answers hits from the store's metadata (a :class:`~hamilton_nb.runner.Lazy`, never
  loaded unless a miss needs it), and sends only the misses to the engine, as a
  :class:`_Job` wrapped in a one-node Hamilton task so that Hamilton's executor runs it.
* A job runs on a worker: it loads the cached inputs it needs straight from the cache folder
  when the worker can reach it, calls the node functions, fingerprints the values and, when
  the folder is reachable and the key is known, stores them itself (its own journal, as any
  process does): the value then travels back as a reference, not as bytes. Otherwise the value
  comes back and the kernel stores it. Either way it is stored once.
* ``Parallelizable`` items carry their own data version (:class:`_Item`), so a branch node is
  keyed per item; ``Collect`` is keyed on the list of its branches' data versions. Adding an
  item computes one branch.

A worker that dies, a lost cluster, or a task cancelled by an interrupt fails only the nodes of
that task; everything finished is already stored, so a re-run resumes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import importlib
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hamilton import node as h_node
from hamilton.execution import executors as h_executors
from hamilton.execution import grouping as h_grouping
from hamilton.execution.state import TaskState
from hamilton.lifecycle.base import LifecycleAdapterSet

from .events import CacheNote, NodeEvent, NodeStarted, Status
from .runner import _reads_source
from .versions import DataFile, Unhashable, fingerprint, hash_strings

KINDS = ("local", "threads", "processes", "dask", "ray")
KERNEL = "kernel"


class EngineError(Exception):
    """An engine cannot be used (missing package, unreachable cluster); the message says the fix."""


# -- engines ----------------------------------------------------------------------------------


class Engine:
    """Where misses run. ``local`` runs them in the kernel, one at a time (today's default)."""

    kind = "local"

    def __init__(self) -> None:
        self._reach: dict[str, bool] = {}

    def describe(self) -> str:
        return "local (in the kernel process, one node at a time)"

    def task_executor(self) -> h_executors.TaskExecutor | None:
        """Hamilton's executor for misses; None: run jobs in the kernel at submission."""
        return None

    def close(self) -> None:
        """Release what this engine started (pools, clusters); a client it was given stays."""

    def reachable(self, root: Path) -> bool:
        """Can workers write to the cache folder ``root``? (Checked once per folder.)"""
        return True

    def check(self) -> None:
        """Raise :class:`EngineError` if the engine cannot take work now (cheap: no round trip)."""

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the workers have started and imported hamilton_nb (engines start that
        in the background; a benchmark or a test waits for it so the first run is not
        measured with the workers' start-up)."""
        for fut in getattr(self, "_warm", ()):
            fut.result(timeout=timeout)


class ThreadsEngine(Engine):
    kind = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers or os.cpu_count() or 2
        self._executor: h_executors.MultiThreadingExecutor | None = None

    def describe(self) -> str:
        return f"threads ({self.max_workers} threads in the kernel process)"

    def task_executor(self) -> h_executors.TaskExecutor:
        if self._executor is None:
            self._executor = h_executors.MultiThreadingExecutor(max_tasks=self.max_workers)
            self._executor.init()
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.pool.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class _SpawnProcessExecutor(h_executors.MultiProcessingExecutor):
    """Hamilton's process pool, started with ``spawn``: forking a kernel that runs ZMQ and
    client threads can deadlock the child. Jobs are cloudpickled bytes, so notebook functions
    travel by value."""

    def create_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        import multiprocessing

        _main_spec_for_spawn()
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.max_tasks, mp_context=multiprocessing.get_context("spawn"))


def _main_spec_for_spawn() -> None:
    """Let ``spawn`` start workers from a plain IPython shell: its stand-in ``__main__`` has no
    ``__spec__``, which spawn reads; None is what a script run as ``python file.py`` has."""
    import sys

    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        main.__spec__ = None


class ProcessesEngine(Engine):
    kind = "processes"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers or os.cpu_count() or 2
        self._executor: _SpawnProcessExecutor | None = None
        # Start the workers now, in the background: spawning and importing take seconds that
        # the first run would otherwise wait for.
        pool = self.task_executor().pool
        self._warm = [pool.submit(_warm_up) for _ in range(self.max_workers)]

    def describe(self) -> str:
        return f"processes ({self.max_workers} local worker processes)"

    def task_executor(self) -> h_executors.TaskExecutor:
        ex = self._executor
        if ex is not None and getattr(ex.pool, "_broken", False):
            # A worker died (killed, out of memory): the pool refuses new work; start a new one.
            ex.pool.shutdown(wait=False, cancel_futures=True)
            ex = None
        if ex is None:
            ex = self._executor = _SpawnProcessExecutor(max_tasks=self.max_workers)
            ex.init()
        return ex

    def close(self) -> None:
        if self._executor is not None:
            pool = self._executor.pool
            # Stop the workers we started, running tasks included (a later run would not want
            # their results), then let the pool join them: nothing is left for interpreter exit.
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _probe(path: str) -> bool:
    return os.path.exists(path)


def _warm_up() -> int:
    """Run on each worker when an engine starts: the imports a job needs, done ahead of it."""
    import cloudpickle  # noqa: F401

    importlib.import_module("hamilton_nb.engines")
    return os.getpid()


class DaskEngine(Engine):
    kind = "dask"

    def __init__(self, address: str | None = None, client: Any = None) -> None:
        super().__init__()
        try:
            import distributed
        except ImportError:
            raise EngineError(
                "The Dask engine needs dask and distributed: `pip install 'hamilton_nb[dask]'`."
            ) from None
        self._own_client = self._own_cluster = None
        if client is None and address is None:
            with contextlib.suppress(ValueError):  # no client in this process yet
                client = distributed.default_client()
        if client is None and address is None:
            # Nothing given: a local cluster of worker processes, one thread each (CPU-bound
            # Python nodes hold the GIL).
            _main_spec_for_spawn()
            cluster = distributed.LocalCluster(
                n_workers=os.cpu_count() or 2, threads_per_worker=1, processes=True,
                dashboard_address=None)
            client = distributed.Client(cluster)
            self._own_client, self._own_cluster = client, cluster
        elif client is None:
            try:
                client = distributed.Client(address, timeout="5s")
            except (OSError, TimeoutError) as e:
                raise EngineError(
                    f"Cannot reach the Dask scheduler at {address}: {e}. Start it or fix the "
                    f"address, or fall back to the kernel with `%hamilton config executor=local`."
                ) from None
            self._own_client = client
        self.client = client
        self.address = getattr(client.scheduler, "address", address)
        self._executor = _dask_executor(client)
        # Import hamilton_nb on every worker now, in the background (seconds per worker that
        # the first run would otherwise wait for). Held so dask does not drop them.
        self._warm = [client.submit(_warm_up, pure=False, workers=[w], allow_other_workers=False)
                      for w in client.scheduler_info().get("workers", {})]

    def describe(self) -> str:
        try:
            n = len(self.client.scheduler_info().get("workers", {}))
        except Exception as e:  # a lost scheduler: say so rather than fail the status
            return f"dask ({self.address}, unreachable: {type(e).__name__})"
        return f"dask ({self.address}, {n} workers)"

    def task_executor(self) -> h_executors.TaskExecutor:
        return self._executor

    def check(self) -> None:
        if self.client.status != "running":
            raise EngineError(
                f"The Dask scheduler at {self.address} is not reachable (client "
                f"{self.client.status}). Restart the cluster and run `%hamilton config "
                f"executor=dask {self.address}` again, or fall back to the kernel with "
                f"`%hamilton config executor=local`."
            )

    def reachable(self, root: Path) -> bool:
        key = str(root)
        if key not in self._reach:
            with _probe_file(root) as path:
                # os.path.exists itself: nothing to import on the worker, so the answer is quick.
                self._reach[key] = bool(self.client.submit(os.path.exists, path, pure=False)
                                        .result(timeout=60))
        return self._reach[key]

    def close(self) -> None:
        if self._own_client is not None:
            self._own_client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()


def _dask_executor(client: Any) -> h_executors.TaskExecutor:
    # Imported here: hamilton.plugins.h_dask imports dask, which only the Dask engine needs.
    from hamilton.plugins import h_dask

    return h_dask.DaskExecutor(client=client)


class RayEngine(Engine):
    kind = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        super().__init__()
        try:
            import ray
        except ImportError:
            raise EngineError("The Ray engine needs ray: `pip install 'hamilton_nb[ray]'`.") \
                from None
        self._owns = False
        if not ray.is_initialized():
            try:
                if address is None:
                    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                             log_to_driver=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except Exception as e:  # ray.init raises plain Exception for a slow raylet too
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise EngineError(
                    f"Cannot start or reach {where}: {type(e).__name__}: "
                    f"{str(e).rstrip('.')}. Start it or fix "
                    f"the address (a busy machine may need a retry), or fall back to the kernel "
                    f"with `%hamilton config executor=local`."
                ) from None
            self._owns = True
        self.address = address or ray.get_runtime_context().gcs_address
        self._executor = _ray_executor()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._warm = [ray.remote(_warm_up).remote().future() for _ in range(cpus)]

    def describe(self) -> str:
        import ray

        cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else 0
        return f"ray ({self.address}, {cpus:g} CPUs)"

    def task_executor(self) -> h_executors.TaskExecutor:
        return self._executor

    def check(self) -> None:
        import ray

        if not ray.is_initialized():
            raise EngineError(
                f"Ray at {self.address} is no longer connected (ray.shutdown() was called?). "
                f"Run `%hamilton config executor=ray` again, or fall back to the kernel with "
                f"`%hamilton config executor=local`."
            )

    def reachable(self, root: Path) -> bool:
        import ray

        key = str(root)
        if key not in self._reach:
            with _probe_file(root) as path:
                self._reach[key] = bool(ray.get(ray.remote(_probe).remote(path), timeout=60))
        return self._reach[key]

    def close(self) -> None:
        import ray

        if self._owns and ray.is_initialized():
            ray.shutdown()


def _ray_executor() -> h_executors.TaskExecutor:
    from hamilton.plugins import h_ray

    class _RayExecutor(h_ray.RayTaskExecutor):
        """Hamilton's Ray executor that keeps the ObjectRef, so an interrupt can cancel it."""

        def submit_task(self, task: Any) -> Any:
            import ray

            ref = ray.remote(h_executors.base_execute_task).remote(task=task)
            fut = h_executors.TaskFutureWrappingPythonFuture(ref.future())
            fut.cancel = lambda: ray.cancel(ref, force=True)  # type: ignore[attr-defined]
            return fut

    return _RayExecutor(skip_init=True)  # the engine owns ray.init/shutdown, not each run


@contextlib.contextmanager
def _probe_file(root: Path):
    path = root / "tmp" / f"probe-{uuid.uuid4().hex}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    try:
        yield str(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def make_engine(kind: str, address: str | None = None, *, client: Any = None,
                max_workers: int | None = None) -> Engine:
    """Build an engine: ``local``, ``threads``, ``processes``, ``dask`` or ``ray``.

    ``address``: a Dask scheduler (``tcp://host:8786``) or a Ray cluster address; ``client``: a
    ``distributed.Client`` to use as is. Without either, Dask uses the current client or starts
    a local cluster, and Ray uses the current context or starts a local one.
    """
    if kind == "local":
        return Engine()
    if kind == "threads":
        return ThreadsEngine(max_workers)
    if kind == "processes":
        return ProcessesEngine(max_workers)
    if kind == "dask":
        return DaskEngine(address, client)
    if kind == "ray":
        return RayEngine(address, max_workers)
    raise EngineError(f"Unknown executor {kind!r}: use one of {', '.join(KINDS)}.")


# -- what travels to a worker -----------------------------------------------------------------


@dataclasses.dataclass
class _Ref:
    """A stored value, loaded where it is needed (a worker reads the cache folder itself)."""

    root: str
    entry: Any  # store.Entry


@dataclasses.dataclass
class _Step:
    name: str
    fn: Any  # the node's callable
    args: tuple[str, ...]  # parameter names (= upstream node names)
    key: str | None  # known in the kernel for the first node of a task; None after it
    code_version: str | None
    parts: dict[str, Any]
    fmt: str
    storable: bool  # behavior "default" and a key: the worker may store it
    expand: bool
    behavior: str = "default"
    reason: str = ""  # why it must compute (for the event; read in the kernel)


@dataclasses.dataclass
class _Out:
    name: str
    value: Any = None
    has_value: bool = False
    data_version: str | None = None
    entry: Any = None  # stored by the worker
    duration: float = 0.0
    error: str | None = None
    exc: BaseException | None = None
    skipped: str | None = None  # the failed upstream
    where: str = KERNEL


@dataclasses.dataclass
class _Job:
    steps: list[_Step]
    inputs: dict[str, Any]  # plain values, _Ref, or lists of them (Collect)
    root: str | None  # cache folder workers may write to
    kind: str

    def run(self) -> dict[str, _Out]:
        where = _where(self.kind)
        values: dict[str, Any] = {k: _resolve(v) for k, v in self.inputs.items()}
        failed: set[str] = set()
        outs: dict[str, _Out] = {}
        for step in self.steps:
            bad = next((a for a in step.args if a in failed), None)
            if bad is not None:
                failed.add(step.name)
                outs[step.name] = _Out(step.name, skipped=bad, where=where)
                continue
            kwargs = {a: values[a] for a in step.args if a in values}
            t0 = time.perf_counter()
            try:
                value = step.fn(**kwargs)
                if step.expand:
                    value = list(value)
            except Exception as e:
                failed.add(step.name)
                outs[step.name] = _Out(
                    step.name, duration=time.perf_counter() - t0, where=where,
                    error="".join(traceback.format_exception_only(type(e), e)).strip(),
                    exc=_picklable(e))
                continue
            duration = time.perf_counter() - t0
            values[step.name] = value
            out = _Out(step.name, value, True, duration=duration, where=where)
            with contextlib.suppress(Unhashable):
                out.data_version = fingerprint(value)
            if isinstance(value, DataFile):
                step.parts["volatile"] = True
            if self.root and step.storable and step.key and out.data_version is not None:
                from .store import StoreError

                try:
                    out.entry = _worker_store(self.root).put(
                        step.key, step.name, step.code_version or "", out.data_version, value,
                        step.fmt, duration, step.parts)
                except StoreError:
                    out.entry = None  # the kernel tries again and warns with the remedy
                if out.entry is not None and not step.expand:
                    out.value, out.has_value = None, False  # it travels as a reference
            outs[step.name] = out
        return outs


def _resolve(v: Any) -> Any:
    if isinstance(v, _Ref):
        return _worker_store(v.root).load(v.entry)
    if isinstance(v, list) and any(isinstance(x, _Ref) for x in v):
        return [_resolve(x) for x in v]
    return v


def _picklable(e: BaseException) -> BaseException | None:
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
    except Exception:  # an exception class defined in a cell, or holding unpicklable state
        return None
    return e


_worker_stores: dict[str, Any] = {}
_worker_lock = threading.Lock()


def _worker_store(root: str) -> Any:
    """This process's store on ``root``: one journal per process, as for any kernel."""
    from .store import DiskStore

    with _worker_lock:
        store = _worker_stores.get(root)
        if store is None:
            store = _worker_stores[root] = DiskStore(root)
        return store


def _where(kind: str) -> str:
    if kind == "dask":
        with contextlib.suppress(Exception):  # not on a worker after all
            import distributed

            return f"dask worker {distributed.get_worker().address}"
    if kind == "threads":
        return f"thread {threading.current_thread().name}"
    if kind in ("processes", "ray"):
        return f"{'process' if kind == 'processes' else 'ray worker'} {socket.gethostname()}" \
               f":{os.getpid()}"
    return KERNEL


def _run_blob(blob: Any) -> dict[str, _Out]:
    """What Hamilton's executor runs on the worker (the callable of a one-node task)."""
    if isinstance(blob, bytes):
        import cloudpickle

        blob = cloudpickle.loads(blob)
    return blob.run()


_JOB_NODE = "hamilton_nb_job"


def _hamilton_task(job: _Job | bytes, like: h_grouping.TaskImplementation) -> Any:
    """A one-node Hamilton task whose node runs ``job``: what Hamilton's executors ship."""
    n = h_node.Node(_JOB_NODE, dict, callabl=functools.partial(_run_blob, job), input_types={})
    return h_grouping.TaskImplementation(
        base_id=like.base_id, spawning_task_base_id=like.spawning_task_base_id, nodes=[n],
        purpose=h_grouping.NodeGroupPurpose.EXECUTE_SINGLE, outputs_to_compute=[_JOB_NODE],
        overrides={}, adapter=LifecycleAdapterSet(), base_dependencies=[],
        group_id=like.group_id, realized_dependencies={}, spawning_task_id=like.spawning_task_id,
        run_id=like.run_id,
    )


# -- kernel side: values as the run sees them -------------------------------------------------


@dataclasses.dataclass
class _Val:
    """A value in kernel memory with its data version."""

    value: Any
    data_version: str | None


class _Collected(_Val):
    """The list a ``Collect`` node receives: one value (wrapper) per branch, in item order."""


@dataclasses.dataclass
class _Item:
    """One item of a ``Parallelizable`` node: its value and its own data version."""

    value: Any
    data_version: str | None


class _FailedNode:
    def __init__(self, node: str) -> None:
        self.node = node


def _plain(v: Any) -> Any:
    """A value as a node would receive it, Lazy hits left lazy."""
    return v.value if isinstance(v, _Val | _Item) else v


def _data_version(v: Any) -> str | None:
    return getattr(v, "data_version", None)


# -- the executor Hamilton hands every task to ------------------------------------------------


class _Done:
    """A finished task (a hit, a skip, or a job run at submission)."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results

    def get_state(self) -> TaskState:
        return TaskState.SUCCESSFUL

    def get_result(self) -> Any:
        return self.results


class _Pending:
    """A job running on the engine; finishes (in the kernel) the first time it is seen done."""

    def __init__(self, owner: _CachingExecutor, task: Any, job: _Job, local: dict[str, Any],
                 inner: Any) -> None:
        self.owner, self.task, self.job, self.local, self.inner = owner, task, job, local, inner
        self.results: dict[str, Any] | None = None
        fut = getattr(inner, "future", None)
        if fut is not None:
            fut.add_done_callback(lambda _f: owner.progress.set())

    def done(self) -> bool:
        fut = getattr(self.inner, "future", None)
        return fut is None or fut.done()

    def get_state(self) -> TaskState:
        if self.results is None:
            if not self.done():
                self.owner.wait_for_progress(self)
                if not self.done():
                    return TaskState.RUNNING
            self.results = self.owner.finish(self)
        return TaskState.SUCCESSFUL

    def get_result(self) -> Any:
        return self.results

    def cancel(self) -> None:
        cancel = getattr(self.inner, "cancel", None)
        fut = getattr(self.inner, "future", None)
        with contextlib.suppress(Exception):  # the engine is gone already: nothing to cancel
            if cancel is not None:
                cancel()
            elif fut is not None:
                fut.cancel()


class _BlockTally:
    def __init__(self) -> None:
        self.computed = self.cached = self.failed = self.skipped = 0
        self.duration = self.saved = 0.0
        self.size = 0
        self.reasons: list[str] = []
        self.errors: list[str] = []
        self.where: set[str] = set()
        self.code_version: str | None = None


class _CachingExecutor(h_executors.TaskExecutor):
    """The cache in front of Hamilton's executor (see the module docstring)."""

    def __init__(self, runner: Any, engine: Engine, hits: Mapping[str, Any]) -> None:
        self.runner = runner
        self.engine = engine
        self.inner = engine.task_executor()
        self.entries = dict(hits)  # node -> Entry of plan-phase hits
        self.order = {name: i for i, name in enumerate(runner.dag.order)}
        self.progress = threading.Event()
        self._polled: set[int] = set()  # pending futures polled since the last sleep
        self.pending: list[_Pending] = []
        self.blocks: dict[str, _BlockTally] = {}  # per-item nodes, summed into one event
        self.block_nodes: set[str] = set()
        self.started: set[str] = set()
        self.failed_expands: set[str] = set()
        store = runner.store
        root = getattr(store, "root", None)
        self.root: str | None = None
        if root is not None and self.inner is not None and engine.reachable(Path(root)):
            self.root = str(root)
            if engine.kind == "threads":  # same process: write through the kernel's own store
                _worker_stores[self.root] = store

    # Hamilton's TaskExecutor interface --------------------------------------------------------

    def init(self) -> None:
        pass

    def finalize(self) -> None:
        # Reached on success (nothing pending) and on an interrupt or error: cancel the rest.
        for p in self.pending:
            if not p.done():
                p.cancel()

    def can_submit_task(self) -> bool:
        return True  # the engine queues what it cannot run yet

    def submit_task(self, task: Any) -> Any:
        return self._submit(task)

    # waiting without spinning ----------------------------------------------------------------

    def wait_for_progress(self, poller: object) -> None:
        """Hamilton's loop polls every future in turn, forever; sleep (until something
        finishes, at most 50 ms) once per sweep — when a future is polled a second time —
        instead of spinning a core the workers need."""
        if id(poller) in self._polled:
            self.progress.wait(0.05)
            self.progress.clear()
            self._polled.clear()
        self._polled.add(id(poller))

    # submission --------------------------------------------------------------------------------

    def _submit(self, task: Any) -> Any:
        r = self.runner
        nodes = sorted((n for n in task.nodes if n.name not in task.overrides),
                       key=lambda n: self.order.get(n.name, 0))
        in_block = task.purpose == h_grouping.NodeGroupPurpose.EXECUTE_BLOCK
        if in_block:
            self.block_nodes.update(n.name for n in nodes)
        if task.purpose.is_gatherer():
            self._flush_blocks()
        inputs: dict[str, Any] = {**task.overrides, **task.dynamic_inputs}
        local: dict[str, Any] = {}  # this task's values: name -> _Val | Lazy | _Item | _FailedNode
        dvs: dict[str, str | None] = {}
        collected = task.get_collector_node().collect_dependency \
            if task.purpose.is_gatherer() else None
        for name, v in inputs.items():
            local[name], dvs[name] = self._as_input(name, v, name == collected)
        if collected is not None:
            expander = task.base_id.removeprefix("collect-")  # GroupByRepeatableBlocks' naming
            if expander in self.failed_expands:
                local[collected] = _FailedNode(expander)
        steps: list[_Step] = []
        for n in nodes:
            name = n.name
            if n.user_defined:  # an input: Hamilton bound its value to the task already
                local.setdefault(name, _Val(inputs.get(name), r.dv.get(name)))
                continue
            deps = r.dag.deps[name]
            if steps:  # downstream of a miss in this task: computed in the same job
                # (a data loader there is not keyed on its files: never stored, never a hit)
                beh = "disable" if _reads_source(n) else r._behavior(n, name)
                steps.append(self._step(n, None, {}, beh))
                continue
            failed = next((d for d in deps if isinstance(local.get(d), _FailedNode)), None)
            if failed is not None:
                self._skipped(name, local[failed].node, in_block)
                local[name] = _FailedNode(name)
                continue
            for d in deps:
                if d in dvs:
                    r.dv[d] = dvs[d]
            beh = r._behavior(n, name)
            files = None
            if _reads_source(n):  # a data loader: keyed on the files its arguments name
                files = r._loader_files(name, n, {d: _plain(local[d]) for d in deps
                                                  if d in local})
                if files is None:
                    beh = "disable"
            key, parts = r._key(n, name, files)
            if beh == "default" and key is not None:
                entry = r.store.lookup(key)
                if entry is not None and not entry.parts.get("volatile"):
                    r.dv[name] = dvs[name] = entry.data_version
                    r.store.touch([entry.key])
                    local[name] = self._hit(n, name, entry, in_block)
                    continue
            reason = r.explain_miss(n, key, parts, beh)
            steps.append(self._step(n, key, parts, beh, reason))
        if not steps:
            return _Done(self._results(task, local))
        job_inputs = {}
        computed_here = {s.name for s in steps}
        for s in steps:
            for a in s.args:
                if a in local and a not in computed_here:
                    job_inputs[a] = self._ship(local[a])
        for s in steps:
            self._started(s.name)
        job = _Job(steps, job_inputs, self.root, self.engine.kind)
        if self.inner is None:  # local engine: run it now, in the kernel
            return _Done(self._finish_job(task, job, local, job.run(), None))
        import cloudpickle

        try:
            blob = cloudpickle.dumps(job)
        except Exception as e:  # a global the function uses (a lock, a connection), an input
            return _Done(self._finish_job(task, job, local, None, _Unpicklable(e)))
        try:
            inner = self.inner.submit_task(_hamilton_task(blob, task))
        except Exception as e:  # the cluster went away since the run started
            return _Done(self._finish_job(task, job, local, None, e))
        p = _Pending(self, task, job, local, inner)
        self.pending.append(p)
        return p

    def _step(self, n: Any, key: str | None, parts: dict[str, Any], beh: str,
              reason: str = "") -> _Step:
        r = self.runner
        name = n.name
        step = _Step(
            name, n.callable, tuple(n.input_types), key, parts.get("code_version"), parts,
            r._format(n), beh == "default" and key is not None,
            n.node_role == h_node.NodeType.EXPAND, beh, reason)
        return step

    def _as_input(self, name: str, v: Any, collected: bool) -> tuple[Any, str | None]:
        """A task input as (value wrapper, data version)."""
        r = self.runner
        if isinstance(v, _Item):
            return v, v.data_version
        if isinstance(v, _FailedNode):
            return v, None
        if collected:
            # Collect: the branches' values, keyed on their data versions in item order.
            bad = next((x for x in v if isinstance(x, _FailedNode)), None)
            if bad is not None:
                return bad, None
            versions = [_data_version(x) for x in v]
            dv = None if any(x is None for x in versions) else hash_strings("collect", *versions)
            return _Collected(list(v), dv), dv
        if isinstance(v, _Val) or hasattr(v, "load"):  # computed, or a Lazy hit
            return v, _data_version(v)
        return _Val(v, r.dv.get(name)), r.dv.get(name)  # an input or override (plan-phase dv)

    def _ship(self, v: Any) -> Any:
        """How a value travels to the job: a reference the worker loads, or the value."""
        if isinstance(v, _Collected):
            return [self._ship(x) for x in v.value]
        if isinstance(v, _Item | _Val):
            return v.value
        if hasattr(v, "load"):  # Lazy
            entry = v.entry or self.entries.get(v.node)
            if self.root is not None and entry is not None and self.inner is not None:
                return _Ref(self.root, entry)
            return v.load()
        return v

    # events --------------------------------------------------------------------------------

    def _started(self, name: str) -> None:
        if name not in self.started:
            self.started.add(name)
            self.runner.emit(NodeStarted(self.runner.run_id, name))

    def _hit(self, n: Any, name: str, entry: Any, in_block: bool) -> Any:
        r = self.runner
        lazy = r._lazy(name, entry)
        if in_block:
            t = self.blocks.setdefault(name, _BlockTally())
            t.cached += 1
            t.saved += entry.compute_time
            t.code_version = entry.code_version
        else:
            r._emit_hit(name, entry, "code and inputs unchanged")
        if n.node_role == h_node.NodeType.EXPAND:  # Hamilton needs the items to spawn branches
            return self._items(lazy.load(), entry.data_version)
        return lazy

    def _skipped(self, name: str, failed: str, in_block: bool) -> None:
        r = self.runner
        r.dv[name] = None
        if in_block:
            self.blocks.setdefault(name, _BlockTally()).skipped += 1
            return
        ev = NodeEvent(r.run_id, name, Status.SKIPPED, f"upstream `{failed}` failed",
                       r._cell(name))
        r.events.append(ev)
        r.emit(ev)

    def _items(self, values: Any, dv: str | None) -> list[_Item]:
        items = []
        for v in values:
            try:
                idv = fingerprint(v)
            except Unhashable:
                idv = None
            items.append(_Item(v, idv))
        return items

    # completion (in the kernel) --------------------------------------------------------------

    def finish(self, p: _Pending) -> dict[str, Any]:
        try:
            res = p.inner.get_result()
            outs, err = res[_JOB_NODE], None
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            outs, err = None, e
        return self._finish_job(p.task, p.job, p.local, outs, err)

    def _finish_job(self, task: Any, job: _Job, local: dict[str, Any],
                    outs: dict[str, _Out] | None, err: BaseException | None) -> dict[str, Any]:
        r = self.runner
        if any(o.entry is not None for o in (outs or {}).values()):
            refresh = getattr(r.store, "refresh", None)
            if refresh is not None:
                refresh()  # the worker's journal: its entries are this kernel's hits from now on
        in_block = task.purpose == h_grouping.NodeGroupPurpose.EXECUTE_BLOCK
        nodes = r.dag.nodes
        for step in job.steps:
            name = step.name
            n = nodes[name]
            reason = step.reason or "upstream in the same task recomputed"
            out = (outs or {}).get(name)
            if out is None:
                msg = _engine_failure(self.engine, name, err)
                self._failed(name, reason, RuntimeError(msg), msg, 0.0, "engine", in_block,
                             step.code_version)
                local[name] = _FailedNode(name)
                continue
            if out.skipped is not None:
                self._skipped(name, out.skipped, in_block)
                local[name] = _FailedNode(name)
                continue
            if out.error is not None:
                exc = out.exc if out.exc is not None else RuntimeError(out.error)
                self._failed(name, reason, exc, out.error, out.duration, out.where, in_block,
                             step.code_version)
                local[name] = _FailedNode(name)
                continue
            for d in r.dag.deps[name]:
                dv = _data_version(local.get(d))
                if d in local:
                    r.dv[d] = dv
            key, parts = step.key, step.parts
            if key is None:  # computed after another miss in this task: key it now
                key, parts = r._key(n, name)
            beh = step.behavior
            if out.entry is not None:
                entry = out.entry
                r.dv[name] = entry.data_version
                note, size, dv = CacheNote.STORED, entry.size, entry.data_version
                value = None
            else:
                value = out.value
                note, size, dv = r._record(n, key, parts, value, beh, out.duration)
            if step.expand:
                local[name] = self._items(out.value, dv)
            elif out.entry is not None:
                local[name] = r._lazy(name, out.entry)
            else:
                local[name] = _Val(value, dv)
            self._computed(name, reason, out.duration, size, note, parts.get("code_version"), dv,
                           out.where, in_block)
        return self._results(task, local)

    def _results(self, task: Any, local: dict[str, Any]) -> dict[str, Any]:
        out = {name: v for name, v in local.items() if name in task.available_nodes}
        for name, v in out.items():
            if isinstance(v, _FailedNode) and task.purpose.is_expander():
                # Hamilton iterates an expand's value: no items, and its Collect is skipped.
                self.failed_expands.add(name)
                out[name] = []
        return out

    def _computed(self, name, reason, duration, size, note, cv, dv, where, in_block) -> None:
        r = self.runner
        if in_block:
            t = self.blocks.setdefault(name, _BlockTally())
            t.computed += 1
            t.duration += duration
            t.size += size or 0
            t.where.add(where)
            t.code_version = cv
            if reason not in t.reasons:
                t.reasons.append(reason)
            return
        ev = NodeEvent(r.run_id, name, Status.COMPUTED, reason, r._cell(name), duration, 0.0,
                       size, note, code_version=cv, data_version=dv, where=where)
        r.events.append(ev)
        r.emit(ev)

    def _failed(self, name, reason, exc, text, duration, where, in_block, cv) -> None:
        r = self.runner
        r.dv[name] = None
        r.errors.setdefault(name, exc)
        if in_block:
            t = self.blocks.setdefault(name, _BlockTally())
            t.failed += 1
            t.where.add(where)
            t.errors.append(text)
            return
        ev = NodeEvent(r.run_id, name, Status.FAILED, reason, r._cell(name), duration,
                       error=text, code_version=cv, where=where)
        r.events.append(ev)
        r.emit(ev)

    def _flush_blocks(self) -> None:
        """One event per per-item node: how many items computed, were cached, failed."""
        r = self.runner
        for name, t in list(self.blocks.items()):
            total = t.computed + t.cached + t.failed + t.skipped
            parts = [f"{t.computed} of {total} items computed"]
            if t.cached:
                parts.append(f"{t.cached} cached")
            if t.failed:
                parts.append(f"{t.failed} failed")
            if t.skipped:
                parts.append(f"{t.skipped} skipped")
            why = f" ({'; '.join(t.reasons[:2])})" if t.reasons else ""
            reason = ", ".join(parts) + why
            if t.failed:
                status = Status.FAILED
            elif t.computed:
                status = Status.COMPUTED
            elif t.skipped and not t.cached:
                status = Status.SKIPPED
            else:
                status = Status.CACHED
            where = ", ".join(sorted(t.where)) or None
            ev = NodeEvent(r.run_id, name, status, reason, r._cell(name), t.duration, t.saved,
                           t.size or None, CacheNote.STORED if t.computed else CacheNote.NONE,
                           error=t.errors[0] if t.errors else None, code_version=t.code_version,
                           where=where)
            r.events.append(ev)
            r.emit(ev)
        self.blocks.clear()


class _Unpicklable(Exception):
    """What a job needs cannot be sent to the engine."""


# Exceptions the engines raise for a worker process that died under a task.
_WORKER_DIED = ("KilledWorker", "BrokenProcessPool", "WorkerCrashedError", "NodeDiedError",
                "OutOfMemoryError")


def _engine_failure(engine: Engine, name: str, err: BaseException | None) -> str:
    """The message of a node whose task the engine could not run or return."""
    what = f"{type(err).__name__}: {err}"
    if isinstance(err, _Unpicklable):
        cause = err.args[0]
        return (f"`{name}` cannot be sent to {engine.kind}: {type(cause).__name__}: {cause}. "
                f"Something it uses (a global, an input) cannot be pickled: pass it as an "
                f"input made inside a node, or run this in the kernel with `%hamilton config "
                f"executor=local`.")
    if type(err).__name__ in _WORKER_DIED:
        return (f"the worker computing `{name}` died ({what}). Finished nodes are cached: "
                f"re-run to resume (a node that kills its worker every time — out of memory, "
                f"a crash in native code — needs fixing first).")
    return (f"{engine.describe()} could not run or return the task computing `{name}`: {what}. "
            f"If the cluster went away, re-run to resume (finished nodes are cached); if its "
            f"value cannot be pickled, run it in the kernel with `%hamilton config "
            f"executor=local`.")


class _Manager(h_executors.ExecutionManager):
    """Every task goes to the caching executor (hits never leave the kernel)."""

    def __init__(self, executor: _CachingExecutor) -> None:
        super().__init__([executor])
        self.executor = executor

    def get_executor_for_task(self, task: Any) -> h_executors.TaskExecutor:
        return self.executor


def execute_tasks(runner: Any, engine: Engine, outputs: list[str], inputs: Mapping[str, Any],
                  overrides: Mapping[str, Any], hits: Mapping[str, Any]) -> dict[str, Any]:
    """Run the misses of a planned run with Hamilton's task-based execution on ``engine``.

    ``overrides``: planned hits (Lazy) and the user's overrides; ``hits``: their entries.
    Returns the outputs: values, Lazy for stored ones; failed outputs are left out.
    """
    from hamilton.driver import TaskBasedGraphExecutor

    # A node inside a Parallelizable block has one value per item, not one value: it cannot be
    # an output (a cell that defines it still computes it, for its Collect).
    per_item = per_item_nodes(runner.dag.nodes)
    outputs = [o for o in outputs if o not in per_item]
    caching = _CachingExecutor(runner, engine, hits)
    executor = TaskBasedGraphExecutor(_Manager(caching), h_grouping.GroupByRepeatableBlocks(),
                                      LifecycleAdapterSet())
    try:
        raw = executor.execute(runner.dag.graph, list(outputs), dict(overrides), dict(inputs),
                               str(runner.run_id))
    finally:
        caching._flush_blocks()
    values: dict[str, Any] = {}
    for o in outputs:
        v = raw.get(o)
        if (v is None and o not in raw) or isinstance(v, _FailedNode):
            continue
        if isinstance(v, _Val | _Item):
            v = v.value
        elif isinstance(v, list) and v and all(isinstance(x, _Item) for x in v):
            v = [x.value for x in v]
        values[o] = v
    return values


def per_item_nodes(nodes: Mapping[str, Any]) -> set[str]:
    """Nodes between a ``Parallelizable`` and its ``Collect`` (run once per item)."""
    inside: set[str] = set()
    todo = [d for n in nodes.values() if n.node_role == h_node.NodeType.EXPAND
            for d in n.depended_on_by]
    while todo:
        n = todo.pop()
        if n.name in inside or n.node_role == h_node.NodeType.COLLECT:
            continue
        inside.add(n.name)
        todo.extend(n.depended_on_by)
    return inside


def has_parallel(nodes: Mapping[str, Any], order: list[str]) -> bool:
    """Whether the nodes of a run include a ``Parallelizable`` (needs task-based execution)."""
    return any(nodes[n].node_role == h_node.NodeType.EXPAND for n in order)


__all__ = ["KINDS", "Engine", "EngineError", "execute_tasks", "has_parallel", "make_engine"]

"""Scale out (issue 15): Parallelizable/Collect cached per item, misses on threads, processes,
a real Dask LocalCluster (2 worker processes) and a real local Ray (2 CPUs). No mocks.

Cells run in the in-process IPython shell (``nb``). Functions that run on worker processes do
not use the ``hnb_calls`` log (a module that only exists in this process): they are counted
from the run's events instead.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

FAN_OUT = """
from hamilton.htypes import Parallelizable, Collect

def item(names: list) -> Parallelizable[str]:
    for n in names:
        yield n

def shout(item: str) -> str:
    {log}
    return item.upper()

def total(shout: Collect[str]) -> str:
    return ",".join(shout)
"""


def _fan_out(log: bool) -> str:
    return FAN_OUT.format(log="import hnb_calls; hnb_calls.log.append(item)" if log else "pass")


class _Row:
    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)
        self.status = type("S", (), {"value": row["status"]})()


def _events(nb) -> dict:
    """The last run, node -> its row of ``last_run()`` (status, reason, where, ...)."""
    return {r["node"]: _Row(r) for r in nb.session.last_run().to_dict("records")}


@pytest.fixture
def local_after(nb):
    yield nb
    nb.session.use_executor("local")


# -- in the kernel -----------------------------------------------------------------------------


def test_adding_one_item_to_a_fan_out_computes_one_branch(nb, calls):
    names = [f"f{i}" for i in range(10)]
    nb.ns["names"] = names
    nb.cell(_fan_out(log=True))
    assert nb.value("total") == ",".join(n.upper() for n in names)
    assert sorted(calls) == sorted(names)
    calls.clear()
    nb.ns["names"] = [*names, "new"]
    nb.cell(_fan_out(log=True))
    assert calls == ["new"]
    assert nb.value("total").endswith(",NEW")
    ev = _events(nb)
    assert ev["shout"].status.value == "computed"
    assert ev["shout"].reason.startswith("1 of 11 items computed, 10 cached")
    assert ev["total"].status.value == "computed"
    assert "1 of 11 items computed" in nb.session.why("shout")


def test_editing_the_branch_code_recomputes_every_branch(nb, calls):
    nb.ns["names"] = ["a", "b", "c"]
    nb.cell(_fan_out(log=True))
    calls.clear()
    nb.cell(_fan_out(log=True).replace("return item.upper()", "return item.upper() + '!'"))
    assert sorted(calls) == ["a", "b", "c"]
    assert nb.value("total") == "A!,B!,C!"


def test_collect_is_keyed_on_branch_values_so_same_results_keep_it_cached(nb, calls):
    nb.ns["names"] = ["a", "b"]
    body = _fan_out(log=True).replace("return item.upper()", "return str(len(item))")
    nb.cell(body)
    assert nb.value("total") == "1,1"
    calls.clear()
    nb.ns["names"] = ["a", "z"]  # a new item whose branch gives the same value
    nb.cell(body)
    assert calls == ["z"]
    assert nb.statuses()["total"] == "cached"


def test_a_failing_item_fails_its_node_keeps_the_others_and_the_rerun_resumes(
        nb, calls, tmp_path):
    nb.ns["names"] = ["a", "b", "boom", "c"]
    # The fix is outside the code and the inputs (a file appears), so keys stay the same.
    nb.ns["FIXED"] = str(tmp_path / "fixed")
    body = _fan_out(log=True).replace(
        "return item.upper()",
        "import os\n    if item == 'boom' and not os.path.exists(FIXED):\n"
        "        raise ValueError('bad item')\n    return item.upper()")
    with pytest.raises(ValueError, match="bad item"):
        nb.cell(body)
    ev = _events(nb)
    assert ev["shout"].status.value == "failed"
    assert "1 failed" in ev["shout"].reason
    assert ev["total"].status.value == "skipped"
    calls.clear()
    Path(nb.ns["FIXED"]).touch()
    nb.cell(body)
    assert calls == ["boom"]  # a, b, c were kept
    assert nb.value("total") == "A,B,BOOM,C"


def test_threads_engine_runs_misses_in_threads_and_shares_the_cache_with_local(local_after):
    nb = local_after
    nb.run("%hamilton config executor=threads")
    nb.ns["names"] = ["a", "b"]
    nb.cell(_fan_out(log=False) + "\ndef other() -> int:\n    return 7\n")
    ev = _events(nb)
    assert ev["other"].where.startswith("thread")
    nb.run("%hamilton config executor=local")
    nb.cell(_fan_out(log=False) + "\ndef other() -> int:\n    return 7\n")
    assert set(nb.statuses().values()) == {"cached"}


# -- local processes ---------------------------------------------------------------------------


def test_processes_engine_runs_notebook_functions_with_their_helpers(local_after):
    nb = local_after
    nb.run("""
        FACTOR = 3
        def helper(x):
            return x * FACTOR
    """)
    nb.run("%hamilton config executor=processes")
    nb.cell("""
        import os

        def left() -> tuple:
            return helper(2), os.getpid()

        def right() -> tuple:
            return helper(5), os.getpid()
    """)
    assert nb.value("left")[0] == 6 and nb.value("right")[0] == 15
    ev = _events(nb)
    assert ev["left"].where.startswith("process ")
    assert nb.value("left")[1] != os.getpid()


# -- Dask --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    # The in-process IPython shell replaced __main__ with a module that has no __spec__, which
    # the nanny's spawn reads (a Jupyter kernel's __main__ has one).
    main = sys.modules["__main__"]
    if not hasattr(main, "__spec__"):
        main.__spec__ = None
    # A task whose worker dies fails at once instead of being retried on the other worker.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        yield client
        client.close()
        cluster.close()


@pytest.fixture
def on_dask(local_after, dask_client):
    local_after.session.use_executor(dask_client)
    # Workers have imported hamilton_nb (the engine starts that in the background): both
    # are idle when the test starts.
    dask_client.run(importlib.import_module, "hamilton_nb.engines")
    return local_after


def _journals(cache: Path) -> set[str]:
    return {p.name for p in (cache / "index").glob("*.jsonl")}


TWO_SLOW_NODES = """
        import os, time

        def a() -> tuple:
            t0 = time.time()
            time.sleep(1.0)
            return os.getpid(), t0, time.time()

        def b() -> tuple:
            t0 = time.time()
            time.sleep(1.0)
            return os.getpid(), t0, time.time()

        def both(a: tuple, b: tuple) -> tuple:
            return a[0], b[0]
"""


def test_misses_run_on_dask_workers_concurrently_and_workers_store_them(on_dask, dask_client):
    nb = on_dask
    nb.cell(TWO_SLOW_NODES)
    ev = _events(nb)
    a, b = nb.value("a"), nb.value("b")
    assert a[1] < b[2] and b[1] < a[2]  # their run times overlap
    workers = set(dask_client.scheduler_info()["workers"])
    assert ev["a"].where.removeprefix("dask worker ") in workers
    assert ev["a"].where != ev["b"].where  # two ready nodes, two workers: they ran side by side
    pids = nb.value("both")
    assert os.getpid() not in pids
    # Stored by the workers: their journals are in the cache folder, named by their pids.
    journals = _journals(nb.session.cache_dir)
    assert any(f"-{pids[0]}-" in j for j in journals)
    # A re-run is all hits, answered in the kernel without the engine.
    nb.cell(TWO_SLOW_NODES)
    assert set(nb.statuses().values()) == {"cached"}
    assert all(e.where is None for e in _events(nb).values())


def test_fan_out_on_dask_is_cached_per_item(on_dask):
    nb = on_dask
    nb.ns["names"] = ["a", "b", "c", "d"]
    nb.cell(_fan_out(log=False))
    assert nb.value("total") == "A,B,C,D"
    nb.ns["names"] = ["a", "b", "c", "d", "e"]
    nb.cell(_fan_out(log=False))
    ev = _events(nb)
    assert ev["shout"].reason.startswith("1 of 5 items computed, 4 cached")
    assert ev["shout"].where.startswith("dask worker")
    assert nb.value("total") == "A,B,C,D,E"


TWO_STEP = """
from hamilton.htypes import Parallelizable, Collect

def item(names: list) -> Parallelizable[str]:
    for n in names:
        yield n

def shout(item: str) -> str:
    return item.upper()

def exclaim(shout: str) -> str:
    return shout + "!"

def total(exclaim: Collect[str]) -> str:
    return ",".join(exclaim)
"""


def test_each_node_of_a_branch_is_cached_per_item_on_dask(on_dask):
    nb = on_dask
    nb.ns["names"] = ["a", "b", "c"]
    nb.cell(TWO_STEP)
    assert nb.value("total") == "A!,B!,C!"
    # Editing the second step of the branch: the first step is a hit for every item.
    nb.cell(TWO_STEP.replace('shout + "!"', 'shout + "?"'))
    ev = _events(nb)
    assert ev["shout"].status.value == "cached"
    assert ev["exclaim"].reason.startswith("3 of 3 items computed")
    assert "code of `exclaim` changed" in ev["exclaim"].reason
    assert nb.value("total") == "A?,B?,C?"
    # Undo: every value is in the cache again, whoever stored it (worker or kernel).
    nb.cell(TWO_STEP)
    assert set(nb.statuses().values()) == {"cached"}
    assert nb.value("total") == "A!,B!,C!"


def test_a_worker_dying_mid_task_fails_that_node_keeps_the_rest_and_rerun_resumes(
        on_dask, tmp_path):
    nb = on_dask
    nb.ns["flag"] = str(tmp_path / "died-once")
    body = """
        import os

        def steady() -> int:
            return 2

        def fragile(flag: str) -> int:
            if not os.path.exists(flag):
                open(flag, "w").close()
                os._exit(1)  # the worker process dies mid-task
            return 1
    """
    with pytest.raises(RuntimeError, match=r"worker computing `fragile` died.*re-run to resume"):
        nb.cell(body)
    st = nb.statuses()
    assert st["fragile"] == "failed" and st["steady"] == "computed"
    nb.cell(body)
    st = nb.statuses()
    assert st == {"steady": "cached", "fragile": "computed"}


def test_a_node_using_an_unpicklable_global_fails_with_the_fix(on_dask):
    nb = on_dask
    nb.run("import threading; LOCK = threading.Lock()")
    with pytest.raises(RuntimeError, match=r"`guarded` cannot be sent to dask.*executor=local"):
        nb.cell("""
            def guarded() -> int:
                with LOCK:
                    return 1

            def free() -> int:
                return 2
        """)
    assert nb.statuses() == {"guarded": "failed", "free": "computed"}


def test_interrupt_cancels_the_pending_tasks_on_dask(on_dask, tmp_path):
    nb = on_dask
    marks = tmp_path / "marks"
    marks.mkdir()
    nb.ns["marks"] = str(marks)
    nb.cell("""
        import os, time

        def _slow(name, marks):
            open(os.path.join(marks, name), "w").close()
            time.sleep(6)
            return 1

        def s1(marks: str) -> int:
            return _slow("s1", marks)

        def s2(marks: str) -> int:
            return _slow("s2", marks)

        def s3(marks: str) -> int:
            return _slow("s3", marks)

        def s4(marks: str) -> int:
            return _slow("s4", marks)
    """, line="--register-only")
    sent: list[float] = []
    ended = threading.Event()

    def interrupt_when_two_run() -> None:
        # Like Jupyter's interrupt button: a real SIGINT, once two tasks are running and two
        # are queued behind them (the cluster has two single-thread workers) — and never
        # after the run ended, where it would interrupt pytest itself.
        deadline = time.monotonic() + 60
        while len(os.listdir(marks)) < 2 and time.monotonic() < deadline:
            if ended.wait(0.05):
                return
        if not ended.is_set():
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_two_run, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            nb.run("%hamilton run s1 s2 s3 s4")
    finally:
        ended.set()
    assert time.perf_counter() - sent[0] < 3  # did not wait for the running tasks (6 s)
    time.sleep(7)  # long enough for the two running tasks to end and queued ones to start
    started = sorted(os.listdir(marks))
    assert len(started) == 2, started  # the two queued tasks were cancelled, never started


def test_unreachable_dask_scheduler_is_a_usage_error_naming_it_and_the_fallback(local_after):
    pytest.importorskip("distributed")
    nb = local_after
    with pytest.raises(UsageError, match=r"tcp://127\.0\.0\.1:9.*executor=local"):
        nb.run("%hamilton config executor=dask tcp://127.0.0.1:9")
    assert nb.session.engine is None  # nothing changed


def test_a_dask_cluster_gone_since_config_is_a_usage_error_and_changes_nothing(local_after):
    distributed = pytest.importorskip("distributed")
    nb = local_after
    cluster = distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0")
    client = distributed.Client(cluster)
    address = cluster.scheduler_address
    nb.session.use_executor(client)
    nb.cell("def one() -> int:\n    return 1\n", line="--register-only")
    client.close()
    cluster.close()
    with pytest.raises(UsageError, match=rf"{address}.*executor=local"):
        nb.run("%hamilton run one")
    assert "one" not in nb.ns


# -- Ray ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_context():
    ray = pytest.importorskip("ray")
    for attempt in range(2):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as e:  # Ray waits a fixed 30 s for its raylet, too short when busy
            ray.shutdown()
            if attempt == 1:
                pytest.skip(f"a local Ray instance did not start on this machine: {e}")
    yield ray
    ray.shutdown()


def test_fan_out_and_independent_nodes_on_ray(local_after, ray_context, capsys):
    nb = local_after
    nb.run("%hamilton config executor=ray")
    assert "ray (" in capsys.readouterr().out
    nb.ns["names"] = ["a", "b", "c"]
    cell = _fan_out(log=False) + "\ndef other() -> int:\n    return 7\n"
    nb.cell(cell)
    ev = _events(nb)
    assert ev["other"].where.startswith("ray worker")
    assert nb.value("total") == "A,B,C"
    nb.ns["names"] = ["a", "b", "c", "d"]
    nb.cell(cell)
    ev = _events(nb)
    assert ev["shout"].reason.startswith("1 of 4 items computed, 3 cached")
    assert ev["other"].status.value == "cached"
    nb.run("%hamilton status")
    assert "engine: ray" in capsys.readouterr().out


def test_bench_scale_out_quick_runs_through_cells():
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_scale_out.py"), "--quick",
         "--engines", "local,threads"],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "x in-process" in proc.stdout and "+1 item" in proc.stdout, proc.stdout
    assert "1 of 21 items computed, 20 cached" in proc.stdout, proc.stdout

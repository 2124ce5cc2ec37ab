"""The cache end to end (issue 3): early cutoff, undo, laziness, cache controls, damaged entries,
the cache magics, and crash/concurrency safety of the on-disk store with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hamilton_nb import Session
from hamilton_nb.store import DiskStore
from hamilton_nb.versions import fingerprint


def count_loads(store, monkeypatch) -> list[str]:
    """Instrument (not replace) the store instance: record which node values are read."""
    loaded: list[str] = []
    real = store.load

    def load(entry, verify=True):
        loaded.append(entry.node)
        return real(entry, verify=verify)

    monkeypatch.setattr(store, "load", load)
    return loaded


PIPELINE = """
import pandas as pd

def raw() -> pd.DataFrame:
    hnb_calls.log.append("raw")
    return pd.DataFrame({"city": ["a", "b", "a", "c"], "temp": [10.0, 20.0, 30.0, None]})

def clean(raw: pd.DataFrame) -> pd.DataFrame:
    hnb_calls.log.append("clean")
    return raw.dropna().reset_index(drop=True)

def features(clean: pd.DataFrame) -> pd.DataFrame:
    hnb_calls.log.append("features")
    return clean.assign(temp_f=clean["temp"] * 9 / 5 + 32)

def model(features: pd.DataFrame) -> float:
    hnb_calls.log.append("model")
    return float(features["temp_f"].mean())
"""

CLEAN_REFACTORED = """
def clean(raw: pd.DataFrame) -> pd.DataFrame:
    hnb_calls.log.append("clean")
    without_missing = raw.dropna()  # same data, new local name
    return without_missing.reset_index(drop=True)
"""


def _pipeline(clean: str | None = None, features_factor: str = "9 / 5") -> str:
    body = PIPELINE.replace("9 / 5", features_factor)
    if clean is not None:
        start = body.index("def clean(")
        end = body.index("def features(")
        body = body[:start] + textwrap.dedent(clean).strip() + "\n\n" + body[end:]
    return body


@pytest.fixture
def pipe(ps):
    ps.exec("import pandas as pd")  # see test_cell_can_import_what_its_annotations_use
    ps.cell(_pipeline())
    ps.run("model")
    return ps


# -- incremental development --------------------------------------------------------------------


def test_editing_features_recomputes_features_and_model_only(pipe, calls, monkeypatch):
    calls.clear()
    pipe.cell(_pipeline(features_factor="1.8"))
    loaded = count_loads(pipe.s.store, monkeypatch)
    assert pipe.run("model")["model"] == pytest.approx(68.0)
    assert pipe.statuses() == {"raw": "cached", "clean": "cached", "features": "computed",
                               "model": "computed"}
    assert sorted(calls) == ["features", "model"]
    assert loaded == ["clean"]  # raw is never read: nothing recomputed needs it


def test_edit_with_same_result_does_not_recompute_downstream(pipe, calls):
    calls.clear()
    pipe.cell(_pipeline(clean=CLEAN_REFACTORED))
    pipe.run("model")
    assert pipe.statuses() == {"raw": "cached", "clean": "computed", "features": "cached",
                               "model": "cached"}
    assert calls == ["clean"]


def test_undoing_an_edit_hits_the_old_entry(pipe, calls):
    pipe.cell(_pipeline(features_factor="2"))
    pipe.run("model")
    calls.clear()
    pipe.cell(_pipeline())  # back to the original code
    assert pipe.run("model")["model"] == pytest.approx(68.0)
    assert set(pipe.statuses().values()) == {"cached"}
    assert calls == []


def test_all_hit_run_of_last_node_loads_nothing_with_execute_and_one_value_with_run(
        ps, calls, monkeypatch):
    chain = ["def n1() -> np.ndarray:\n    return np.arange(5000)\n"]
    chain += [f"def n{i}(n{i - 1}: np.ndarray) -> np.ndarray:\n    return n{i - 1} + 1\n"
              for i in range(2, 6)]
    ps.exec("import numpy as np")
    ps.cell("\n".join(chain))
    ps.run("n5")
    loaded = count_loads(ps.s.store, monkeypatch)
    outcome = ps.s.execute(["n5"])
    assert {e.status.value for e in outcome.events} == {"cached"}
    assert loaded == []
    assert np.array_equal(ps.run("n5")["n5"], np.arange(5000) + 4)
    assert loaded == ["n5"]


def test_restarted_session_gets_every_value_back_without_computing(pipe, calls, monkeypatch):
    calls.clear()
    again = pipe.reopen()
    again.cell(_pipeline())
    loaded = count_loads(again.s.store, monkeypatch)
    assert again.run("model")["model"] == pytest.approx(68.0)
    assert set(again.statuses().values()) == {"cached"}
    assert calls == []
    assert loaded == ["model"]
    again.s.close()


def test_mutating_a_returned_value_does_not_change_the_cache(ps):
    ps.exec("import numpy as np")
    ps.cell("def arr() -> np.ndarray:\n    return np.zeros(10000)\n")
    ps.run("arr")
    v = ps.run("arr")["arr"]
    v[:] = 7
    assert ps.run("arr")["arr"].sum() == 0


# -- cache controls ------------------------------------------------------------------------------


def _decorated(behavior: str) -> str:
    return f"""
from hamilton.function_modifiers import cache

@cache(behavior="{behavior}")
def src() -> int:
    hnb_calls.log.append("src")
    return len(hnb_calls.log) * 0 + 5

def down(src: int) -> int:
    hnb_calls.log.append("down")
    return src + 1
"""


def test_cache_behavior_recompute_always_runs_and_keeps_downstream_cached(ps, calls):
    ps.cell(_decorated("recompute"))
    ps.run("down")
    ps.run("down")
    assert calls.count("src") == 2
    assert calls.count("down") == 1  # same value: early cutoff
    assert ps.statuses() == {"src": "computed", "down": "cached"}


def test_cache_behavior_disable_stores_nothing(ps, calls):
    ps.cell(_decorated("disable"))
    ps.run("down")
    ps.run("down")
    assert calls.count("src") == 2
    assert "src" not in set(ps.s.cache_entries()["node"])
    assert ps.statuses()["down"] == "cached"


def test_cache_behavior_ignore_keeps_downstream_cached_whatever_its_value(ps, calls):
    ps.exec("COUNTER = {'n': 0}")
    ps.cell("""
        from hamilton.function_modifiers import cache

        @cache(behavior="ignore")
        def conn() -> object:
            hnb_calls.log.append("conn")
            return object()  # a new value every time, e.g. a connection

        def rows(conn: object) -> int:
            hnb_calls.log.append("rows")
            return 3
    """)
    assert ps.run("rows")["rows"] == 3
    assert ps.run("rows")["rows"] == 3
    assert calls.count("rows") == 1
    assert calls.count("conn") == 1  # not even run when nothing that needs it recomputes
    assert "conn" not in set(ps.s.cache_entries()["node"])


def test_cache_format_parquet_stores_a_parquet_file(ps, calls):
    ps.exec("import pandas as pd")
    ps.cell("""
        from hamilton.function_modifiers import cache

        @cache(format="parquet")
        def table() -> pd.DataFrame:
            return pd.DataFrame({"x": range(1000), "s": [str(i) for i in range(1000)]})
    """)
    expected = ps.run("table")["table"]
    entries = ps.s.cache_entries()
    assert entries.set_index("node").loc["table", "format"] == "parquet"
    assert list((ps.cache_dir / "values").rglob("*.parquet"))
    again = ps.reopen()
    again.cell("""
        from hamilton.function_modifiers import cache

        @cache(format="parquet")
        def table() -> pd.DataFrame:
            return pd.DataFrame({"x": range(1000), "s": [str(i) for i in range(1000)]})
    """)
    got = again.run("table")["table"]
    assert again.statuses()["table"] == "cached"
    pd.testing.assert_frame_equal(got, expected)
    again.s.close()


def test_session_set_behavior_recompute_and_back(ps, calls):
    ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return 1\n")
    ps.run("y")
    ps.s.set_behavior("y", "recompute")
    ps.run("y")
    assert ps.statuses()["y"] == "computed"
    ps.s.set_behavior("y", "default")
    ps.run("y")
    assert ps.statuses()["y"] == "cached"
    assert calls.count("y") == 2


def test_session_set_behavior_ignore_on_an_input(ps, calls):
    ps.cell("def y(logger: object) -> int:\n    hnb_calls.log.append('y')\n    return 1\n")
    ps.s.set_behavior("logger", "ignore")
    ps.run("y", logger="first")
    ps.run("y", logger="second")
    assert ps.statuses()["y"] == "cached"
    assert calls.count("y") == 1


def test_session_set_behavior_rejects_unknown_behavior(ps):
    from hamilton_nb import SessionError

    with pytest.raises(SessionError, match="recompute"):
        ps.s.set_behavior("y", "sometimes")


def test_cache_off_session_still_computes_with_a_memory_store(tmp_path, calls):
    s = Session(namespace={"hnb_calls": sys.modules["hnb_calls"]}, cache_dir=tmp_path / "c",
                cache=False)
    s.register_cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return 1\n", "c1")
    assert s.run("y") == {"y": 1}
    assert s.run("y") == {"y": 1}
    assert calls == ["y", "y"]
    assert not (tmp_path / "c").exists()


# -- values the cache cannot keep ----------------------------------------------------------------


def test_unpicklable_value_is_used_but_not_cached_with_a_warning(ps, calls):
    ps.exec("""
import numpy as np

class NoPickle(np.ndarray):  # fingerprinted from its buffer, but cannot be pickled
    def __reduce__(self):
        raise TypeError("NoPickle cannot be pickled")
""")
    ps.cell("""
        def handle() -> np.ndarray:
            hnb_calls.log.append("handle")
            return np.arange(5000).view(NoPickle)

        def total(handle: np.ndarray) -> int:
            hnb_calls.log.append("total")
            return int(handle.sum())
    """)
    with pytest.warns(UserWarning, match="`handle`"):
        assert ps.run("total")["total"] == sum(range(5000))
    df = ps.s.last_run().set_index("node")
    assert df.loc["handle", "cache"] == "unpicklable"
    assert "handle" not in set(ps.s.cache_entries()["node"])
    with pytest.warns(UserWarning, match="`handle`"):
        ps.run("total")
    assert ps.statuses() == {"handle": "computed", "total": "cached"}
    assert calls.count("total") == 1


def test_frame_with_uncopyable_attrs_is_computed_and_used(ps, calls):
    ps.exec("import pandas as pd, threading")
    ps.cell("""
        def handle() -> pd.DataFrame:
            df = pd.DataFrame({"x": [1, 2]})
            df.attrs["lock"] = threading.Lock()
            return df

        def total(handle: pd.DataFrame) -> int:
            return len(handle)  # pandas itself fails on handle["x"]: it deep-copies attrs
    """)
    with pytest.warns(UserWarning, match="`handle` was computed but not cached"):
        assert ps.run("total")["total"] == 2
    assert ps.s.last_run().set_index("node").loc["handle", "cache"] == "unhashable"


def test_unhashable_value_makes_downstream_recompute_every_run(ps, calls):
    ps.exec("import threading")
    ps.cell("""
        def lock() -> object:
            hnb_calls.log.append("lock")
            return threading.Lock()

        def uses(lock: object) -> int:
            hnb_calls.log.append("uses")
            return 1
    """)
    with pytest.warns(UserWarning, match="`lock`"):
        ps.run("uses")
    with pytest.warns(UserWarning, match="`lock`"):
        ps.run("uses")
    assert calls.count("uses") == 2
    assert ps.statuses() == {"lock": "computed", "uses": "computed"}
    assert ps.s.last_run().set_index("node").loc["lock", "cache"] == "unhashable"


# -- damaged entries -----------------------------------------------------------------------------

ARRAYS = """
def big() -> np.ndarray:
    hnb_calls.log.append("big")
    return np.arange(20000)

def total(big: np.ndarray) -> int:
    hnb_calls.log.append("total")
    return int(big.sum())
"""


def _value_file(ps, node: str) -> Path:
    [entry] = [e for e in ps.s.store.entries() if e.node == node]
    path = ps.s.store.value_path(entry.data_version, entry.fmt)
    assert path.exists()
    return path


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "deleted": lambda p: p.unlink(),
    "garbage_same_size": lambda p: p.write_bytes(os.urandom(p.stat().st_size)),
    "empty": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_value_file_is_a_miss_with_a_warning_and_the_value_is_correct(ps, calls,
                                                                           damage):
    ps.exec("import numpy as np")
    ps.cell(ARRAYS)
    ps.run("total")
    DAMAGE[damage](_value_file(ps, "big"))
    calls.clear()
    ps.cell(ARRAYS.replace("int(big.sum())", "int(big.sum()) + 0"))  # total needs big
    with pytest.warns(UserWarning, match="`big`"):
        assert ps.run("total")["total"] == sum(range(20000))
    assert sorted(calls) == ["big", "total"]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_value_of_a_requested_output_is_recomputed(ps, calls, damage):
    ps.exec("import numpy as np")
    ps.cell(ARRAYS)
    ps.run("big")
    DAMAGE[damage](_value_file(ps, "big"))
    with pytest.warns(UserWarning, match="`big`"):
        assert np.array_equal(ps.run("big")["big"], np.arange(20000))
    assert calls.count("big") == 2
    ps.run("big")  # and the new entry is good
    assert ps.statuses()["big"] == "cached"


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_value_bound_in_the_notebook_is_recomputed_with_a_warning(nb, calls, damage):
    nb.run("import numpy as np")
    nb.cell(ARRAYS, line="-o big", cell_id="c1")
    entry = next(e for e in nb.session.store.entries() if e.node == "big")
    DAMAGE[damage](nb.session.store.value_path(entry.data_version, entry.fmt))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        nb.line("run big")  # a hit whose file is damaged
        # Same-size damage is found by the background checksum; the next cell boundary (or
        # run) acts on it. Wait for it here so the test does not race the thread.
        nb.session.settle(wait=True)
    assert any("`big`" in str(x.message) for x in w)
    assert nb.run("int(big.sum())") == sum(range(20000))
    assert calls.count("big") == 2


def test_other_cache_format_folder_is_refused_with_the_fix(tmp_path):
    from hamilton_nb.store import StoreError

    (tmp_path / "FORMAT").write_text("hamilton_nb-store 999\n")
    with pytest.raises(StoreError, match="HAMILTON_NB_CACHE"):
        DiskStore(tmp_path)


# -- the cache magics ----------------------------------------------------------------------------

THREE = """
def x1() -> np.ndarray:
    return np.full(10000, 1.0)

def x2() -> np.ndarray:
    return np.full(10000, 2.0)

def x3() -> np.ndarray:
    return np.full(10000, 3.0)
"""


def test_cache_magic_lists_entries(nb):
    nb.run("import numpy as np")
    nb.cell(THREE, cell_id="c1")
    df = nb.line("cache")
    assert sorted(df["node"]) == ["x1", "x2", "x3"]
    assert {"node", "code_version", "size", "compute_time", "last_used"} <= set(df.columns)
    assert (df["size"] > 10000 * 8 * 0.9).all()
    pd.testing.assert_frame_equal(nb.line("cache list"), df)


def test_cache_clear_node_clears_only_that_node(nb, calls):
    nb.run("import numpy as np")
    nb.cell(THREE, cell_id="c1")
    nb.line("cache clear x2")
    assert sorted(nb.line("cache")["node"]) == ["x1", "x3"]
    nb.line("run x1 x2 x3")
    assert nb.statuses() == {"x1": "cached", "x2": "computed", "x3": "cached"}
    nb.line("cache clear")
    assert nb.line("cache").empty


def test_cache_clear_unknown_node_is_a_usage_error(nb):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="nope"):
        nb.line("cache clear nope")


def test_cache_evict_max_size_removes_least_recently_used_first(nb):
    nb.run("import numpy as np")
    nb.cell(THREE, line="--register-only", cell_id="c1")
    for name in ("x1", "x2", "x3", "x1"):  # x1 is now the most recently used
        nb.line(f"run {name}")
        time.sleep(0.01)
    nb.line("cache evict --max-size 100KB")  # room for one 80 kB value
    assert list(nb.line("cache")["node"]) == ["x1"]
    nb.line("cache evict --max-size 0")
    assert nb.line("cache").empty


def test_cache_evict_older_than_removes_entries_unused_since(nb):
    nb.run("import numpy as np")
    nb.cell(THREE, line="--register-only", cell_id="c1")
    nb.line("run x1 x2")
    time.sleep(1.2)
    nb.line("run x2")
    nb.line("cache evict --older-than 1s")
    assert list(nb.line("cache")["node"]) == ["x2"]


def test_cache_evict_without_limits_is_a_usage_error(nb):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="max-size"):
        nb.line("cache evict")
    with pytest.raises(UsageError, match="size"):
        nb.line("cache evict --max-size lots")


def test_cache_dir_subcommand_switches_folder(nb, tmp_path, capsys):
    nb.cell("def y() -> int:\n    return 1\n", cell_id="c1")
    other = tmp_path / "other"
    nb.line(f"cache dir {other}")
    assert str(other) in capsys.readouterr().out
    nb.line("run y")
    assert nb.statuses()["y"] == "computed"
    assert (other / "FORMAT").exists()


# -- why -----------------------------------------------------------------------------------------


def _why(nb, capsys, node: str) -> str:
    capsys.readouterr()
    nb.line(f"why {node}")
    return capsys.readouterr().out.strip()


def test_why_says_own_code_changed(nb, capsys):
    nb.cell("def y() -> int:\n    return 1\n", cell_id="c1")
    nb.cell("def y() -> int:\n    return 2\n", cell_id="c1")
    assert _why(nb, capsys, "y") == "`y` was recomputed: code of `y` changed."


@pytest.mark.parametrize(
    ("before", "cell", "after", "reason"),
    [
        ("def helper():\n    return 1\n", "def y() -> int:\n    return helper()\n",
         "def helper():\n    return 2\n", "code of helper `helper` changed"),
        ("K = 1", "def y() -> int:\n    return K\n", "K = 2", "global `K` changed"),
        ("n = 1", "def y(n: int) -> int:\n    return n\n", "n = 2", "input `n` changed"),
    ],
    ids=["helper", "constant", "input"],
)
def test_why_says_what_changed_outside_the_cell(nb, capsys, before, cell, after, reason):
    nb.run(before)
    nb.cell(cell, cell_id="c1")
    nb.run(after)
    nb.line("run y")
    assert _why(nb, capsys, "y") == f"`y` was recomputed: {reason}."


def test_why_says_upstream_changed_and_reused(nb, capsys):
    nb.run("n = 1")
    nb.cell("def a(n: int) -> int:\n    return n\ndef b(a: int) -> int:\n    return a\n",
            cell_id="c1")
    nb.run("n = 2")
    nb.line("run b")
    assert _why(nb, capsys, "b") == "`b` was recomputed: upstream `a` changed."
    nb.line("run b")
    assert _why(nb, capsys, "b") == "`b` was reused: code and inputs unchanged."


def test_why_of_unknown_node_is_a_usage_error(nb):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="nope"):
        nb.line("why nope")


# -- crash safety and concurrency with real processes --------------------------------------------

WRITER = """
import os
import sys
import numpy as np
from hamilton_nb.store import DiskStore
from hamilton_nb.versions import fingerprint

store = DiskStore(sys.argv[1])
tag = os.getpid()
for i in range(10**7):
    value = np.full(300 + i % 7, i, dtype=np.int64) if i % 2 else {"i": i}
    store.put(f"{tag}-{i}", f"n{i % 13}", "cv", fingerprint(value), value, "joblib", 0.0,
              {"i": i})
    if i == 300:
        print("ready", flush=True)
"""


def _expected(i: int):
    return np.full(300 + i % 7, i, dtype=np.int64) if i % 2 else {"i": i}


def _check_all_entries(store: DiskStore) -> int:
    entries = store.entries()
    for e in entries:
        i = e.parts["i"]
        got = store.load(e)
        want = _expected(i)
        if isinstance(want, dict):
            assert got == want
        else:
            assert np.array_equal(got, want)
    return len(entries)


def test_store_killed_mid_write_reopens_and_every_entry_is_right(tmp_path):
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(cache)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = DiskStore(cache)
    n = _check_all_entries(store)
    assert n > 300
    # the folder is still usable: write more and read back from a third store
    value = {"i": -2}
    store.put("after", "n0", "cv", "dv-after", value, "joblib", 0.0, {"i": -2})
    store.close()
    assert DiskStore(cache).lookup("after") is not None


def _kill_writers_once_ready(cache: Path, n: int) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(cache)],
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()


def test_many_killed_writers_leave_a_readable_folder(tmp_path):
    # 17 finished journals (closed stores), then 4 writers that open -- and merge the finished
    # journals -- while the others are live and writing, all killed mid-write.
    cache = tmp_path / "cache"
    for k in range(17):
        store = DiskStore(cache)
        for i in range(20):
            value = _expected(i)
            store.put(f"closed{k}-{i}", "n", "cv", fingerprint(value), value, "joblib", 0.0,
                      {"i": i})
        store.close()
    _kill_writers_once_ready(cache, 4)
    first = _check_all_entries(DiskStore(cache))
    assert first > 17 * 20 + 4 * 300
    assert _check_all_entries(DiskStore(cache)) == first


KILLED_RUN = """
import sys
from hamilton_nb import Session

s = Session(namespace={}, cache_dir=sys.argv[1])
s.register_cell(open(sys.argv[2]).read(), "chain")
s.run("n9")
"""


def _chain(kill_at: int | None) -> str:
    out = ["def n0() -> int:\n    return 0\n"]
    for i in range(1, 10):
        body = f"    return n{i - 1} + 1\n"
        if i == kill_at:
            body = "    import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)\n" + body
        out.append(f"def n{i}(n{i - 1}: int) -> int:\n{body}")
    return "\n".join(out)


def test_kernel_killed_mid_run_keeps_finished_nodes_and_resumes_there(tmp_path):
    cache = tmp_path / "cache"
    src = tmp_path / "chain.py"
    src.write_text(_chain(kill_at=6))
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(cache), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    s = Session(namespace={}, cache_dir=cache)
    s.register_cell(_chain(kill_at=None), "chain")
    assert s.run("n9") == {"n9": 9}
    st = dict(zip(s.last_run()["node"], s.last_run()["status"], strict=True))
    assert [st[f"n{i}"] for i in range(10)] == ["cached"] * 6 + ["computed"] * 4
    s.close()


CONCURRENT = """
import sys, time
from pathlib import Path
import numpy as np
from hamilton_nb import Session

cache, prefix, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
s = Session(namespace={"np": np}, cache_dir=cache)
s.register_cell(open(sys.argv[4]).read(), "shared")
s.register_cell(open(sys.argv[5]).read(), "own")
s.run([f"{prefix}59", "s29"])
s.close()
print("done")
"""


def _arr_chain(prefix: str, n: int) -> str:
    out = [f"def {prefix}0() -> np.ndarray:\n    return np.full(400, 0)\n"]
    out += [f"def {prefix}{i}({prefix}{i - 1}: np.ndarray) -> np.ndarray:\n"
            f"    return {prefix}{i - 1} + 1\n" for i in range(1, n)]
    return "\n".join(out)


def test_two_processes_writing_one_cache_folder_both_finish_and_a_third_reads_all(tmp_path):
    cache, go = tmp_path / "cache", tmp_path / "go"
    files = {}
    for name, body in {"shared": _arr_chain("s", 30), "a": _arr_chain("a", 60),
                       "b": _arr_chain("b", 60)}.items():
        files[name] = tmp_path / f"{name}.py"
        files[name].write_text(body)
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(cache), p, str(go),
                          str(files["shared"]), str(files[p])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p in ("a", "b")
    ]
    time.sleep(0.5)
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    s = Session(namespace={"np": np}, cache_dir=cache)
    s.register_cell(files["shared"].read_text(), "shared")
    s.register_cell(files["a"].read_text(), "a")
    s.register_cell(files["b"].read_text(), "b")
    outs = [f"a{i}" for i in range(60)] + [f"b{i}" for i in range(60)] + \
        [f"s{i}" for i in range(30)]
    values = s.run(outs)
    assert set(s.last_run()["status"]) == {"cached"}
    for name, v in values.items():
        assert np.array_equal(v, np.full(400, int(name[1:])))
    s.close()


SHARED = """
def big() -> np.ndarray:
    hnb_calls.log.append("big")
    return np.arange(20000)

def twin() -> np.ndarray:
    hnb_calls.log.append("twin")
    return np.arange(20000)  # same data: one shared value file
"""


@pytest.mark.parametrize("damage", ["truncated", "garbage_same_size"])
def test_damaged_shared_value_file_is_repaired_by_the_recompute(ps, calls, damage):
    ps.exec("import numpy as np")
    ps.cell(SHARED)
    ps.run("big", "twin")
    DAMAGE[damage](_value_file(ps, "big"))
    with pytest.warns(UserWarning, match="`big`"):
        assert np.array_equal(ps.run("big")["big"], np.arange(20000))
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the recompute repaired the file
        assert np.array_equal(ps.run("big")["big"], np.arange(20000))
        assert np.array_equal(ps.run("twin")["twin"], np.arange(20000))
    assert calls == []


def test_hit_rebinds_from_the_store_never_the_object_in_memory(nb, calls, monkeypatch):
    nb.run("import numpy as np")
    nb.cell(ARRAYS, line="-o big", cell_id="c1")
    first = nb.session.namespace["big"]
    loaded = count_loads(nb.session.store, monkeypatch)
    nb.line("run big")  # a hit: the bound object may have been changed in place since
    assert loaded == ["big"]
    assert nb.session.namespace["big"] is not first
    assert np.array_equal(nb.session.namespace["big"], first)

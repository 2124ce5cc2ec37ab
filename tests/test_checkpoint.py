"""Checkpoint restore, resume after a failure or interrupt, named checkpoints (issue 5)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import PlainSession, counts
from IPython.core.error import UsageError

from hamilton_nb import RunFailed, Session, checkpoint

IMPORTS = """
import numpy as np
import pandas as pd
import hnb_calls

SCALE = 3

def rescale(s):
    return s * SCALE
"""

RAW = """
def raw(n: int) -> pd.DataFrame:
    hnb_calls.log.append("raw")
    rng = np.random.default_rng(n)
    return pd.DataFrame({"x": rng.normal(size=5000), "g": rng.integers(0, 5, size=5000)})

def clean(raw: pd.DataFrame) -> pd.DataFrame:
    hnb_calls.log.append("clean")
    return raw[raw["x"] > -1.0].reset_index(drop=True)
"""

FEATURES = """
def features(clean: pd.DataFrame) -> pd.DataFrame:
    hnb_calls.log.append("features")
    return clean.assign(y=rescale(clean["x"]))

def model(features: pd.DataFrame) -> np.ndarray:
    hnb_calls.log.append("model")
    return features.groupby("g")["y"].mean().to_numpy()
"""

NODES = ["raw", "clean", "features", "model"]


def _pipeline(p: PlainSession) -> dict:
    p.exec(IMPORTS)
    p.exec("n = 7")
    p.cell(RAW, "c-raw")
    p.cell(FEATURES, "c-features")
    return p.run(*NODES)


def _fresh_values(features_body: str = FEATURES) -> dict:
    """The same pipeline computed from scratch, no cache at all (not in the call log)."""
    log = sys.modules["hnb_calls"].log
    n_calls = len(log)
    fresh = PlainSession.__new__(PlainSession)
    fresh.ns = {}
    fresh.s = Session(namespace=fresh.ns, cache=False)
    fresh.exec(IMPORTS)
    fresh.exec("n = 7")
    fresh.cell(RAW, "c-raw")
    fresh.cell(features_body, "c-features")
    values = fresh.run(*NODES)
    del log[n_calls:]
    return values


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], pd.DataFrame):
            # .equals, not assert_frame_equal: a value loaded from the cache is memory-mapped
            # (np.memmap columns), which assert_frame_equal reports as a class difference.
            assert a[k].equals(b[k]), k
            assert list(a[k].dtypes) == list(b[k].dtypes)
        else:
            np.testing.assert_array_equal(a[k], b[k])


# -- restart -------------------------------------------------------------------------------------


def test_rerunning_cells_after_restart_recomputes_nothing(ps, calls):
    _pipeline(ps)
    assert counts(calls) == {n: 1 for n in NODES}
    p2 = ps.reopen()
    p2.cell(RAW, "c-raw")
    p2.cell(FEATURES, "c-features")
    values = p2.run(*NODES)
    assert set(p2.statuses().values()) == {"cached"}
    assert counts(calls) == {n: 1 for n in NODES}
    _assert_same(values, _fresh_values())


def test_restore_after_restart_brings_back_dag_and_binds_every_value(ps, calls):
    before = _pipeline(ps)
    p2 = ps.reopen()
    assert not p2.s.dag.cells
    report = p2.s.restore()
    assert report.found and not report.failed_cells and not report.missing_names
    assert report.cells == ["c-raw", "c-features"]
    assert list(p2.s.dag.order) == list(ps.s.dag.order)
    assert {c: x.body for c, x in p2.s.dag.cells.items()} == {
        c: x.body for c, x in ps.s.dag.cells.items()}
    # Every name is an ordinary variable at once, and nothing was recomputed.
    assert all(n in p2.ns for n in NODES)
    _assert_same({n: p2.ns[n] for n in NODES}, before)
    assert counts(calls) == {n: 1 for n in NODES}
    assert set(p2.s.status()["state"]) == {"cached", "input"}
    restored = {n: p2.s.value(n) for n in NODES}
    assert counts(calls) == {n: 1 for n in NODES}
    _assert_same(restored, before)
    _assert_same(restored, _fresh_values())
    # And the restored DAG runs on from there: an all-hit run.
    p2.run("model")
    assert set(p2.statuses().values()) == {"cached"}


FAN_OUT = '''
from hamilton.htypes import Collect, Parallelizable

def items() -> Parallelizable[int]:
    for i in range(3):
        yield i

def sq(items: int) -> int:
    hnb_calls.log.append("sq")
    return items * items

def total(sq: Collect[int]) -> int:
    hnb_calls.log.append("total")
    return sum(sq)

def doubled(total: int) -> int:
    return total * 2
'''


def test_restore_after_a_fan_out_says_the_collected_nodes_wait_for_the_next_run(ps, calls):
    ps.cell(FAN_OUT, "fan")
    assert ps.run("doubled")["doubled"] == 10
    p2 = ps.reopen()
    report = p2.s.restore()
    # Their keys need the items' branches: not "changed", and not bound unchecked.
    assert report.after_fan_out == ["total", "doubled"] and not report.changed
    assert "Collected from a Parallelizable's items" in str(report)
    assert "Changed since" not in str(report)
    assert "total" not in p2.ns
    calls.clear()
    assert p2.run("doubled")["doubled"] == 10  # nothing changed: all from the cache
    assert calls == [] and set(p2.statuses().values()) == {"cached"}


def test_restore_with_no_saved_state_says_so(ps):
    report = ps.s.restore()
    assert not report.found
    assert "no saved state" in str(report) and "nothing changed" in str(report)


def test_restore_after_restart_survives_rerunning_one_cell_first(ps, calls):
    _pipeline(ps)
    p2 = ps.reopen()
    p2.cell(RAW, "c-raw")  # the new kernel saves its own state (one cell) ...
    report = p2.s.restore()  # ... yet restore brings back the DAG as it was before the restart
    assert report.cells == ["c-raw", "c-features"]
    assert set(report.bound) == set(NODES) and all(n in p2.ns for n in NODES)


def test_restore_names_a_cell_that_needs_an_ordinary_cell_and_restores_the_others(ps, calls):
    ps.exec(IMPORTS)
    ps.exec("from hamilton.function_modifiers import tag\nOWNER = 'ana'")
    ps.exec("n = 7")
    ps.cell(RAW, "c-raw")
    ps.cell("""
        @tag(owner=OWNER)
        def summary(clean: pd.DataFrame) -> int:
            return len(clean)
    """, "c-summary")
    ps.cell(FEATURES, "c-features")
    ps.run("summary", "model")
    p2 = PlainSession(ps.cache_dir)  # restarted, and only the import cell was re-run
    p2.exec("import numpy as np\nimport pandas as pd\nimport hnb_calls\n"
            "from hamilton.function_modifiers import tag")
    report = p2.s.restore()
    assert set(report.failed_cells) == {"c-summary"}
    assert "OWNER" in report.failed_cells["c-summary"]
    assert report.cells == ["c-raw", "c-features"]
    assert report.missing_names == {"features": ["rescale"]}
    text = str(report)
    assert "c-summary" in text and "`rescale`" in text
    assert "features" in p2.s.stale_nodes()  # its helper is missing: not shown as up to date
    assert p2.s.value("clean").equals(ps.s.value("clean"))
    # Once the ordinary cell ran, restoring again brings back the missing cell too.
    p2.exec(IMPORTS)
    p2.exec("OWNER = 'ana'")
    report = p2.s.restore()
    assert not report.failed_cells and not report.missing_names
    assert p2.s.value("summary") == len(ps.s.value("clean"))
    assert "features" not in p2.s.stale_nodes()


# -- resume ---------------------------------------------------------------------------------------

CHAIN = """
import time

def n1() -> int:
    hnb_calls.log.append("n1")
    return 1

def n2(n1: int) -> int:
    hnb_calls.log.append("n2")
    return n1 + 1

def n3(n2: int) -> int:
    hnb_calls.log.append("n3")
    return n2 * 10

def n4(n3: int) -> int:
    hnb_calls.log.append("n4")
    {body}

def n5(n4: int) -> int:
    hnb_calls.log.append("n5")
    return n4 - 1
"""


def test_failed_run_keeps_finished_nodes_and_rerun_starts_at_the_failed_node(ps, calls):
    ps.cell(CHAIN.replace("{body}", "raise ValueError('bug')"))
    with pytest.raises(RunFailed):
        ps.run("n5")
    st = ps.statuses()
    assert (st["n1"], st["n2"], st["n3"], st["n4"], st["n5"]) == (
        "computed", "computed", "computed", "failed", "skipped")
    ps.cell(CHAIN.replace("{body}", "return n3 + 5"))
    assert ps.run("n5") == {"n5": 24}
    st = ps.statuses()
    assert [st[f"n{i}"] for i in range(1, 6)] == ["cached"] * 3 + ["computed"] * 2
    assert counts(calls) == {"n1": 1, "n2": 1, "n3": 1, "n4": 2, "n5": 1}


def test_interrupted_run_keeps_finished_nodes(ps, calls):
    ps.cell(CHAIN.replace("{body}", "raise KeyboardInterrupt"))
    with pytest.raises(KeyboardInterrupt):
        ps.run("n5")
    p2 = ps.reopen()  # also after a restart
    p2.cell(CHAIN.replace("{body}", "return n3 + 5"))
    assert p2.run("n5") == {"n5": 24}
    st = p2.statuses()
    assert [st[f"n{i}"] for i in range(1, 6)] == ["cached"] * 3 + ["computed"] * 2
    assert counts(calls) == {"n1": 1, "n2": 1, "n3": 1, "n4": 2, "n5": 1}


# -- named checkpoints ---------------------------------------------------------------------------

FEATURES_V2 = FEATURES.replace('clean.assign(y=rescale(clean["x"]))',
                               'clean.assign(y=rescale(clean["x"]) + 1.0)')


def test_checkpoint_restore_brings_back_code_and_values_and_saves_the_current_state(ps, calls):
    v1 = _pipeline(ps)
    ps.s.checkpoint_save("v1")
    ps.cell(FEATURES_V2, "c-features")
    v2 = ps.run(*NODES)
    assert counts(calls)["features"] == 2

    listed = ps.s.checkpoint_list()
    assert list(listed["name"]) == ["v1"]
    assert listed.loc[0, "values"] == 4

    diff = ps.s.checkpoint_diff("v1")  # against the current state
    assert dict(zip(diff["node"], diff["change"], strict=True)) == {
        "features": "code and value", "model": "value"}

    report = ps.s.checkpoint_restore("v1")
    assert report.saved_as and report.saved_as.startswith("auto-")
    assert ps.s.dag.cells["c-features"].body.strip() == FEATURES.strip()
    restored = {n: ps.s.value(n) for n in NODES}
    _assert_same(restored, v1)
    _assert_same(restored, _fresh_values())
    assert counts(calls)["features"] == 2  # nothing recomputed

    # Nothing was lost: the edited state is an automatic checkpoint.
    assert ps.s.checkpoint_diff("v1", report.saved_as)["node"].tolist() == ["features", "model"]
    ps.s.checkpoint_restore(report.saved_as)
    _assert_same({n: ps.s.value(n) for n in NODES}, v2)
    _assert_same(v2, _fresh_values(FEATURES_V2))
    assert counts(calls)["features"] == 2


def test_checkpoint_values_survive_eviction_until_the_checkpoint_is_deleted(ps, calls):
    _pipeline(ps)
    ps.s.checkpoint_save("keep")
    protected = ps.s.protected_versions()
    assert len(protected) == 4
    ps.cell(FEATURES_V2, "c-features")
    ps.run(*NODES)
    ps.s.evict(max_bytes=0)
    left = {e.data_version for e in ps.s.store.entries()}
    assert protected <= left
    assert len(left) == 4  # the v2 values of features/model went
    ps.s.checkpoint_restore("keep")
    _assert_same({n: ps.s.value(n) for n in NODES}, _fresh_values())
    assert counts(calls) == {"raw": 1, "clean": 1, "features": 2, "model": 2}

    for name in ps.s.checkpoint_list()["name"]:
        ps.s.checkpoint_delete(name)
    assert ps.s.protected_versions() == frozenset()
    ps.s.evict(max_bytes=0)
    assert ps.s.store.entries() == []


def test_checkpoint_save_refuses_to_overwrite_and_rejects_bad_names(ps):
    _pipeline(ps)
    ps.s.checkpoint_save("a")
    with pytest.raises(Exception, match="exists"):
        ps.s.checkpoint_save("a")
    ps.s.checkpoint_save("a", overwrite=True)
    with pytest.raises(Exception, match="Invalid checkpoint name"):
        ps.s.checkpoint_save("../evil")
    with pytest.raises(Exception, match="No checkpoint 'b'"):
        ps.s.checkpoint_restore("b")
    ps.s.checkpoint_delete("a")
    assert ps.s.checkpoint_list().empty


def test_last_state_is_a_json_manifest_then_json_lines_in_the_cache_folder(ps):
    _pipeline(ps)
    files = list((ps.cache_dir / "sessions").glob("*.json"))
    assert len(files) == 1
    # A journal: a whole manifest (written atomically), then one JSON line per change.
    lines = files[0].read_text().splitlines()
    assert json.loads(lines[0])["format"] == 1
    assert all(isinstance(json.loads(line), dict) for line in lines[1:])
    manifest = checkpoint._read(files[0])
    assert [c["cell_id"] for c in manifest["cells"]] == ["c-raw", "c-features"]
    assert set(manifest["nodes"]) == set(NODES)
    assert all(r["key"] and r["data_version"] for r in manifest["nodes"].values())
    assert not list((ps.cache_dir / "sessions").glob(".tmp-*"))


# -- magics --------------------------------------------------------------------------------------


def test_checkpoint_and_restore_magics(nb, calls):
    nb.run("import hnb_calls")
    nb.cell("""
        def a() -> int:
            hnb_calls.log.append("a")
            return 2

        def b(a: int) -> int:
            hnb_calls.log.append("b")
            return a * 21
    """, cell_id="x1")
    nb.line("checkpoint save first")
    assert list(nb.line("checkpoint list")["name"]) == ["first"]
    nb.cell("""
        def a() -> int:
            hnb_calls.log.append("a")
            return 3

        def b(a: int) -> int:
            hnb_calls.log.append("b")
            return a * 21
    """, cell_id="x1")
    assert nb.value("b") == 63
    assert set(nb.line("checkpoint diff first")["node"]) == {"a", "b"}
    nb.line("checkpoint restore first")
    assert nb.value("b") == 42
    assert counts(calls) == {"a": 2, "b": 2}
    with pytest.raises(UsageError, match="No checkpoint 'nope'"):
        nb.line("checkpoint restore nope")
    with pytest.raises(UsageError, match="Invalid checkpoint name"):
        nb.line("checkpoint save a/b")
    with pytest.raises(UsageError, match="checkpoint save NAME"):
        nb.line("checkpoint frobnicate")
    nb.line("checkpoint delete first")
    assert "first" not in set(nb.line("checkpoint list")["name"])
    nb.line("restore")  # restores this folder's previous state or says there is none

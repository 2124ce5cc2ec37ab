"""Never stale, against the memo (memo.py, issue 12): re-running one cell must not trust what an
earlier run remembered once anything under it changed.

The session keeps code versions and keys across runs, and a run stops walking upstream at a
remembered node. Each test here remembers an upstream node, changes something that node depends
on *outside* the cell being re-run, then re-runs only a downstream cell: the upstream node must
compute again and the value bound in the notebook must be the new one. Calls are counted with
``hnb_calls.log`` (conftest.py), which takes no part in keys.

Status is held to the same rule: a node whose value is not what its code and upstream give now
must be shown stale. The random walks at the end mix every kind of edit with re-runs of single
cells and check both, at every step, against plain-Python formulas of the notebook's state.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hamilton_nb.report import STALE_ROWS
from hamilton_nb.versions import fingerprint


def fn(name: str, expr: str, params: str = "", ret: str = "int", deco: str = "") -> str:
    """A node function that logs its calls: ``def name(params) -> ret: return expr``."""
    head = f"{deco}\n" if deco else ""
    return (f"{head}def {name}({params}) -> {ret}:\n"
            f"    hnb_calls.log.append({name!r})\n    return {expr}\n")


B = fn("b", "a * 10", "a: int")  # the downstream cell of most tests


def cell(nb: Any, body: str, cid: str) -> None:
    nb.cell(textwrap.dedent(body), line="-q", cell_id=cid)


def remembered(nb: Any, calls: list[str], cid: str = "B", body: str = B) -> None:
    """Re-run the unchanged downstream cell: nothing computes, the upstream is reused."""
    calls.clear()
    cell(nb, body, cid)
    assert calls == [], "an unchanged re-run must compute nothing"
    st = nb.statuses()
    assert set(st.values()) == {"cached"}, st
    df = nb.session.last_run()
    reasons = dict(zip(df["node"], df["reason"], strict=True))
    assert reasons.get("a") == "nothing it depends on changed since it was last checked", \
        "the run must have stopped at the remembered upstream node (or the test proves nothing)"


def recomputed(nb: Any, calls: list[str], cid: str = "B", body: str = B) -> dict[str, str]:
    """Re-run only the downstream cell after an edit elsewhere; returns its statuses."""
    calls.clear()
    cell(nb, body, cid)
    return nb.statuses()


def _upstream_global_scenario(nb: Any, calls: list[str], setup: str, a_expr: str, edit: str,
                              before: int, after: int, a_params: str = "") -> None:
    nb.run(setup)
    cell(nb, fn("a", a_expr, a_params), "A")
    cell(nb, B, "B")
    assert nb.value("b") == before
    remembered(nb, calls)
    nb.run(edit)
    st = recomputed(nb, calls)
    assert nb.value("b") == after
    assert Counter(calls) == Counter(["a", "b"]), calls
    assert st["a"] == "computed" and st["b"] == "computed", st


# -- 1-4: what the upstream node reads outside its cell -----------------------------------------


def test_changed_global_constant_recomputes_upstream_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "K = 2", "K", "K = 3", 20, 30)


def test_dict_mutated_in_place_recomputes_upstream_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "CFG = {'k': 1}", "CFG['k']", "CFG['k'] = 2", 10, 20)


def test_redefined_helper_recomputes_upstream_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "def _helper(v):\n    return v + 1\n", "_helper(1)",
                              "def _helper(v):\n    return v + 5\n", 20, 60)


def test_changed_env_var_recomputes_upstream_when_only_downstream_reruns(nb, calls, monkeypatch):
    monkeypatch.setenv("HNB_MEMO_X", "4")
    _upstream_global_scenario(nb, calls, "import os", "int(os.environ['HNB_MEMO_X'])",
                              "os.environ['HNB_MEMO_X'] = '7'", 40, 70)


def test_global_read_only_inside_a_generator_recomputes_upstream(nb, calls):
    _upstream_global_scenario(nb, calls, "K = 1", "sum(K * i for i in range(3))", "K = 2",
                              30, 60)


def test_changed_global_of_a_helper_the_node_calls_recomputes_upstream(nb, calls):
    _upstream_global_scenario(nb, calls, "S = 1\ndef _scaled(v):\n    return v * S\n",
                              "_scaled(2)", "S = 4", 20, 80)


# -- 5: an external input ------------------------------------------------------------------------


def test_changed_notebook_input_recomputes_upstream_when_only_downstream_reruns(nb, calls):
    nb.run("x = 3")
    cell(nb, fn("a", "x + 1", "x: int"), "A")
    cell(nb, B, "B")
    assert nb.value("b") == 40
    remembered(nb, calls)
    nb.run("x = 5")
    st = recomputed(nb, calls)
    assert nb.value("b") == 60
    assert Counter(calls) == Counter(["a", "b"])
    assert st["a"] == "computed"


def test_list_input_mutated_in_place_recomputes_upstream(nb, calls):
    nb.run("xs = [1, 2]")
    cell(nb, fn("a", "sum(xs)", "xs: list"), "A")
    cell(nb, B, "B")
    assert nb.value("b") == 30
    remembered(nb, calls)
    nb.run("xs.append(10)")
    st = recomputed(nb, calls)
    assert nb.value("b") == 130
    assert st["a"] == "computed"


# -- 6: defaults -----------------------------------------------------------------------------


A_DEFAULT = fn("a", "k['v']", "k: dict = CFG")


def test_default_object_mutated_in_place_recomputes_upstream(nb, calls):
    nb.run("CFG = {'v': 1}")
    cell(nb, A_DEFAULT, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 10
    remembered(nb, calls)
    nb.run("CFG['v'] = 2")
    st = recomputed(nb, calls)
    assert nb.value("b") == 20
    assert st["a"] == "computed" and Counter(calls) == Counter(["a", "b"])


def test_default_name_rebound_then_same_text_cell_rerun_uses_the_new_object(nb, calls):
    nb.run("CFG = {'v': 1}")
    cell(nb, A_DEFAULT, "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("CFG = {'v': 5}")
    calls.clear()
    cell(nb, A_DEFAULT, "A")  # same text: the def now takes the new object as its default
    assert nb.session._cell("A").reused is False, "a default of another identity re-resolves"
    assert nb.value("a") == 5
    st = recomputed(nb, calls)
    assert nb.value("b") == 50
    assert st["b"] == "computed"


def test_rebound_default_without_rerunning_its_cell_keeps_the_registered_function(nb, calls):
    # Like a module: the function object holds the default it was defined with. Rebinding the
    # name does not change the registered node, so b stays 10 and nothing computes.
    nb.run("CFG = {'v': 1}")
    cell(nb, A_DEFAULT, "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("CFG = {'v': 5}")
    cell(nb, B, "B")
    assert nb.value("b") == 10


def test_default_from_global_changed_to_negative_zero_is_not_a_reused_cell(nb, calls):
    # 0.0 == -0.0, but a function defaulting to -0.0 returns something else.
    nb.run("import math\nZ = 0.0")
    body = fn("a", "int(math.copysign(1, k))", "k: float = Z")
    cell(nb, body, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 10
    remembered(nb, calls)
    nb.run("Z = -0.0")
    cell(nb, body, "A")
    assert nb.value("a") == -1
    st = recomputed(nb, calls)
    assert nb.value("b") == -10
    assert st["b"] == "computed"



def test_default_from_global_changed_to_negative_nan_is_not_a_reused_cell(nb, calls):
    # repr(-nan) == "nan": only the sign bit tells them apart.
    nb.run("import math\nZ = float('nan')")
    body = fn("a", "int(math.copysign(1, k))", "k: float = Z")
    cell(nb, body, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 10
    nb.run("Z = -float('nan')")
    cell(nb, body, "A")
    assert nb.value("a") == -1
    st = recomputed(nb, calls)
    assert nb.value("b") == -10
    assert st["b"] == "computed"

# -- 7-8: same-text cells: kept, or resolved again -------------------------------------------


def test_identical_plain_cell_keeps_its_nodes(nb, calls):
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")
    nodes = nb.session._cell("A").nodes
    cell(nb, fn("a", "K"), "A")
    c = nb.session._cell("A")
    assert c.reused is True and c.nodes is nodes
    assert calls == ["a"]
    nb.run("K = 9")
    cell(nb, fn("a", "K"), "A")  # kept nodes, but the global changed: computed
    assert nb.value("a") == 9 and calls == ["a", "a"]


def test_identical_decorated_cell_is_resolved_again(nb, calls):
    body = fn("a", "2", deco='@tag(owner="x")')
    nb.run("from hamilton.function_modifiers import tag")
    cell(nb, body, "A")
    cell(nb, body, "A")
    assert nb.session._cell("A").reused is False
    assert nb.value("a") == 2 and calls == ["a"]


PARAM = "from hamilton.function_modifiers import parameterize, value"
SCALE = ("@parameterize(a=dict(k=value(P)))\ndef scale(k: dict) -> int:\n"
         "    hnb_calls.log.append('scale')\n    return k['m'] * 10\n")


def test_decorator_argument_mutated_then_same_text_cell_rerun_gets_new_value(nb, calls):
    nb.run(PARAM + "\nP = {'m': 1}")
    cell(nb, SCALE, "A")
    assert nb.value("a") == 10
    nb.run("P['m'] = 3")
    cell(nb, SCALE, "A")
    assert nb.session._cell("A").reused is False
    assert nb.value("a") == 30
    assert nb.statuses()["a"] == "computed"


def test_decorator_argument_mutated_then_only_downstream_rerun_gets_new_value(nb, calls):
    nb.run(PARAM + "\nP = {'m': 1}")
    cell(nb, SCALE, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 100
    remembered(nb, calls)
    nb.run("P['m'] = 2")
    st = recomputed(nb, calls)
    assert nb.value("b") == 200
    assert st["a"] == "computed" and Counter(calls) == Counter(["scale", "b"])


def test_same_text_cell_with_redefined_annotation_class_is_not_reused(nb, calls):
    nb.run("class Box:\n    pass\n")
    body = fn("a", "1", "", ret="Box").replace("return 1", "return Box()")
    cell(nb, body, "A")
    first = nb.value("a")
    nb.run("class Box:\n    pass\n")
    cell(nb, body, "A")
    assert nb.session._cell("A").reused is False
    assert type(nb.value("a")) is nb.ns["Box"] and type(first) is not nb.ns["Box"]


# -- 9: the store lost a remembered value ----------------------------------------------------


def test_cleared_upstream_entries_then_edited_downstream_is_right(nb, calls):
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.line("cache clear a")
    b2 = fn("b", "a * 100", "a: int")
    st = recomputed(nb, calls, body=b2)
    assert nb.value("b") == 200
    assert st["b"] == "computed" and st["a"] == "computed"


def test_deleted_upstream_cache_files_then_edited_downstream_replans(nb, calls, tmp_path):
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    # Behind the session's back: every file of the cache folder but its index goes.
    key = nb.session.memo.keys["a"][0]
    entry = nb.session.store.lookup(key)
    assert entry is not None
    nb.session.store.delete([key])
    b2 = fn("b", "a * 100", "a: int")
    st = recomputed(nb, calls, body=b2)
    assert nb.value("b") == 200
    assert st["b"] == "computed" and st["a"] == "computed"
    assert Counter(calls) == Counter(["a", "b"])


# -- 10: config --------------------------------------------------------------------------------


CONFIG_A = """
from hamilton.function_modifiers import config

@config.when(mode="x")
def a__x() -> int:
    hnb_calls.log.append("a__x")
    return 1

@config.when(mode="y")
def a__y() -> int:
    hnb_calls.log.append("a__y")
    return 2
"""


def test_config_change_picks_the_other_config_when_node_for_a_downstream_rerun(nb, calls):
    nb.line("config dict(mode='x')")
    cell(nb, CONFIG_A, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 10
    remembered(nb, calls)
    nb.line("config dict(mode='y')")
    st = recomputed(nb, calls)
    assert nb.value("b") == 20
    assert Counter(calls) == Counter(["a__y", "b"]) and st["a"] == "computed"
    nb.line("config dict(mode='x')")
    st = recomputed(nb, calls)
    assert nb.value("b") == 10
    assert calls == [] and st["b"] == "cached"  # both values are in the cache


# -- 11: what last_run and status say ------------------------------------------------------------


def _chain(n: int) -> list[tuple[str, str]]:
    cells = [("C0", fn("n0", "K"))]
    cells += [(f"C{i}", fn(f"n{i}", f"n{i - 1} + 1", f"n{i - 1}: int")) for i in range(1, n)]
    return cells


def test_status_marks_a_four_cell_chain_stale_after_an_upstream_edit_and_clears(nb, calls):
    nb.run("K = 1")
    chain = _chain(4)
    for cid, body in chain:
        cell(nb, body, cid)
    cid, last = chain[-1]
    calls.clear()
    cell(nb, last, cid)
    assert calls == []
    df = nb.session.last_run()
    reused = dict(zip(df["node"], df["reason"], strict=True))
    for n in ("n0", "n1", "n2"):
        assert reused[n] == "nothing it depends on changed since it was last checked"
    state = lambda: dict(zip(*nb.line("status")[["node", "state"]].T.values, strict=True))  # noqa: E731
    assert "stale" not in state().values()
    cell(nb, fn("n0", "K + 100"), "C0")  # an upstream edit: everything below is stale
    assert state() == {"n0": "computed", "n1": "stale", "n2": "stale", "n3": "stale"}
    nb.run("K = 2")  # and now n0 too, though no cell changed
    assert state() == {"n0": "stale", "n1": "stale", "n2": "stale", "n3": "stale"}
    calls.clear()
    cell(nb, last, cid)
    assert calls == ["n0", "n1", "n2", "n3"]
    assert nb.value("n3") == 105
    assert set(state().values()) == {"computed"}


def test_last_run_lists_the_whole_reused_upstream_as_cached(nb, calls):
    nb.run("K = 1")
    chain = _chain(3)
    for cid, body in chain:
        cell(nb, body, cid)
    calls.clear()
    cell(nb, chain[-1][1], chain[-1][0])
    assert nb.statuses() == {"n0": "cached", "n1": "cached", "n2": "cached"}
    assert calls == []


# -- 12: the report ----------------------------------------------------------------------------


def test_report_counts_stale_nodes_past_the_first_twelve(nb, calls, capsys):
    nb.run("K = 1")
    cell(nb, fn("root", "K"), "R")
    n = STALE_ROWS + 5
    fan = "".join(fn(f"leaf{i}", f"root + {i}", "root: int") for i in range(n))
    cell(nb, fan, "F")
    capsys.readouterr()
    nb.cell(fn("root", "K + 1"), cell_id="R")  # not quiet: the terminal report is printed
    out = capsys.readouterr().out
    assert f"{n} stale" in out
    assert f"… {n - STALE_ROWS} more" in out
    assert sum(1 for line in out.splitlines() if line.startswith("leaf")) == STALE_ROWS


# -- 13: other ways to fool a memo ---------------------------------------------------------------


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    p = src / f"{name}.py"
    p.write_text(text)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return p


def test_module_edited_on_disk_and_reloaded_recomputes_upstream(nb, calls, tmp_path,
                                                                 monkeypatch):
    p = _module(tmp_path, monkeypatch, "hnb_memo_mod1", "def f():\n    return 1\n")
    nb.run("import hnb_memo_mod1")
    cell(nb, fn("a", "hnb_memo_mod1.f()"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    p.write_text("def f():\n    return 7\n")
    importlib.invalidate_caches()
    nb.run("import importlib\nimportlib.reload(hnb_memo_mod1)")
    st = recomputed(nb, calls)
    assert nb.value("b") == 70
    assert st["a"] == "computed"


def test_module_attribute_set_in_memory_recomputes_upstream(nb, calls, tmp_path, monkeypatch):
    _module(tmp_path, monkeypatch, "hnb_memo_mod2", "T = 1\n")
    nb.run("import hnb_memo_mod2")
    cell(nb, fn("a", "hnb_memo_mod2.T"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("hnb_memo_mod2.T = 4")
    st = recomputed(nb, calls)
    assert nb.value("b") == 40
    assert st["a"] == "computed"


def test_module_file_edited_without_reload_is_not_what_runs(nb, calls, tmp_path, monkeypatch):
    # The kernel runs the module it imported; a from-scratch replay would import the new file.
    # Either way the value must be what the code that runs returns.
    p = _module(tmp_path, monkeypatch, "hnb_memo_mod3", "def f():\n    return 1\n")
    nb.run("import hnb_memo_mod3")
    cell(nb, fn("a", "hnb_memo_mod3.f()"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    p.write_text("def f():\n    return 7\n")
    cell(nb, B, "B")
    assert nb.value("b") == 10 * nb.ns["hnb_memo_mod3"].f()


def test_deleted_global_makes_the_downstream_rerun_fail_not_return_the_old_value(nb, calls):
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("del K")
    calls.clear()
    with pytest.raises(NameError):
        cell(nb, B, "B")
    assert calls == ["a"]
    assert nb.session.last_run().set_index("node").loc["a", "status"] == "failed"


def test_builtin_shadowed_by_a_notebook_variable_recomputes_upstream(nb, calls):
    _upstream_global_scenario(nb, calls, "pass", "len([1, 2, 3])",
                              "len = lambda v: 42", 30, 420)


def test_builtin_shadow_deleted_recomputes_upstream(nb, calls):
    _upstream_global_scenario(nb, calls, "len = lambda v: 42", "len([1, 2, 3])", "del len",
                              420, 30)


def test_two_upstream_nodes_sharing_a_global_both_recompute(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K") + fn("c", "K * 2"), "A")
    cell(nb, fn("b", "a + c", "a: int, c: int"), "B")
    assert nb.value("b") == 3
    calls.clear()
    cell(nb, fn("b", "a + c", "a: int, c: int"), "B")
    assert calls == []
    nb.run("K = 5")
    calls.clear()
    cell(nb, fn("b", "a + c", "a: int, c: int"), "B")
    assert nb.value("b") == 15
    assert Counter(calls) == Counter(["a", "c", "b"])


def test_global_changed_between_two_downstream_reruns_of_different_cells(nb, calls):
    # The memo is synced by one run, then another cell's run must still see the change.
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    cell(nb, fn("d", "a + 1", "a: int"), "D")
    remembered(nb, calls)
    nb.run("K = 2")
    cell(nb, B, "B")
    assert nb.value("b") == 20
    calls.clear()
    cell(nb, fn("d", "a + 1", "a: int"), "D")
    assert nb.value("d") == 3
    assert calls == ["d"]  # a was recomputed by B's run already


def test_global_changed_back_and_forth_gives_each_value(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    for k in (2, 1, 2, 3):
        nb.run(f"K = {k}")
        cell(nb, B, "B")
        assert nb.value("b") == 10 * k


def test_input_changed_and_passed_explicitly_then_default_run(nb, calls):
    nb.run("x = 1")
    cell(nb, fn("a", "x", "x: int"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.cell(B, line="-q --inputs dict(x=7)", cell_id="B")
    assert nb.value("b") == 70
    cell(nb, B, "B")  # back to the notebook's x
    assert nb.value("b") == 10


def test_override_then_plain_rerun_is_not_the_overridden_value(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.cell(B, line="-q --overrides dict(a=5)", cell_id="B")
    assert nb.value("b") == 50
    cell(nb, B, "B")
    assert nb.value("b") == 10


# -- data loaders: their files are never remembered, nor what is downstream of them ----------


LOADER = """
import pandas as pd
from hamilton.function_modifiers import dataloader

@dataloader()
def raw(path: str) -> tuple[pd.DataFrame, dict]:
    hnb_calls.log.append("raw")
    return pd.read_csv(path), {}

def a(raw: pd.DataFrame) -> int:
    hnb_calls.log.append("a")
    return int(raw.v.sum())
"""


def test_loaded_file_changed_recomputes_upstream_when_only_downstream_reruns(
        nb, calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("v\n1\n2\n")
    nb.run("path = 'data.csv'")
    cell(nb, LOADER, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 30
    calls.clear()
    cell(nb, B, "B")
    assert calls == []
    (tmp_path / "data.csv").write_text("v\n1\n2\n4\n")
    calls.clear()
    cell(nb, B, "B")
    assert nb.value("b") == 70
    assert "raw" in calls and "a" in calls


REMOTE = """
import pandas as pd
from hamilton.function_modifiers import dataloader

@dataloader()
def remote(url: str) -> tuple[pd.DataFrame, dict]:
    hnb_calls.log.append("remote")
    return pd.DataFrame({"v": hnb_calls.rows}), {"url": url}

def a(remote: pd.DataFrame) -> int:
    hnb_calls.log.append("a")
    return int(remote.v.sum())
"""


def test_loader_of_a_non_file_source_still_runs_when_only_downstream_reruns(nb, calls):
    sys.modules["hnb_calls"].rows = [1, 2]  # the "remote" data: no key sees it
    nb.run("url = 'https://example.invalid/t'")
    with pytest.warns(UserWarning, match="cannot version"):
        cell(nb, REMOTE, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 30
    sys.modules["hnb_calls"].rows = [1, 2, 10]
    calls.clear()
    cell(nb, B, "B")
    assert "remote" in calls, "a loader that cannot be versioned runs every time"
    assert nb.value("b") == 130



# -- nodes that run every time: what is downstream of them is not remembered either ------------


C = fn("c", "b + 1", "b: int")  # a third cell: b is then a remembered node inside the walk


def test_recompute_decorated_upstream_runs_again_when_only_a_cell_two_below_reruns(nb, calls):
    sys.modules["hnb_calls"].rows = 1  # read through the call log: no key sees it
    nb.run("from hamilton.function_modifiers import cache")
    cell(nb, fn("a", "hnb_calls.rows", deco="@cache(behavior='recompute')"), "A")
    cell(nb, B, "B")
    cell(nb, C, "C")
    cell(nb, C, "C")
    assert nb.value("c") == 11
    sys.modules["hnb_calls"].rows = 4
    calls.clear()
    cell(nb, C, "C")
    assert "a" in calls, "a recompute node runs every time it is needed"
    assert nb.value("c") == 41
    assert Counter(calls) == Counter(["a", "b", "c"])


def test_recompute_behavior_set_by_magic_runs_again_when_only_a_cell_two_below_reruns(nb,
                                                                                     calls):
    sys.modules["hnb_calls"].rows = 1
    cell(nb, fn("a", "hnb_calls.rows"), "A")
    cell(nb, B, "B")
    cell(nb, C, "C")
    nb.line("cache behavior a recompute")
    cell(nb, C, "C")
    cell(nb, C, "C")
    sys.modules["hnb_calls"].rows = 6
    calls.clear()
    cell(nb, C, "C")
    assert "a" in calls
    assert nb.value("c") == 61


def test_unfingerprintable_input_changed_recomputes_when_only_a_cell_two_below_reruns(nb,
                                                                                     calls):
    nb.run("class U:\n    def __init__(self, v):\n        self.v = v\n"
           "    def __reduce__(self):\n        raise TypeError('no')\nu = U(1)\n")
    cell(nb, fn("a", "u.v", "u: object"), "A")
    cell(nb, B, "B")
    cell(nb, C, "C")
    cell(nb, C, "C")
    assert nb.value("c") == 11
    nb.run("u.v = 3")
    cell(nb, C, "C")
    assert nb.value("c") == 31


def test_datafile_returning_upstream_runs_again_when_only_a_cell_two_below_reruns(
        nb, calls, tmp_path):
    (tmp_path / "d.txt").write_text("1")
    nb.run(f"from hamilton_nb import DataFile\nP = {str(tmp_path / 'd.txt')!r}")
    cell(nb, "def a() -> DataFile:\n    hnb_calls.log.append('a')\n    return DataFile(P)\n",
         "A")
    cell(nb, fn("b", "int(open(a).read())", "a: DataFile"), "B")
    cell(nb, C, "C")
    cell(nb, C, "C")
    assert nb.value("c") == 2
    (tmp_path / "d.txt").write_text("5")
    calls.clear()
    cell(nb, C, "C")
    assert nb.value("c") == 6
    assert "b" in calls


# -- what a node reads, in other shapes -------------------------------------------------------


def test_closure_object_mutated_recomputes_when_only_downstream_reruns(nb, calls):
    nb.run("CFG = {'v': 1}")
    body = ("def _make(cfg):\n    def a() -> int:\n        hnb_calls.log.append('a')\n"
            "        return cfg['v']\n    return a\na = _make(CFG)\n")
    cell(nb, body, "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("CFG['v'] = 2")
    st = recomputed(nb, calls)
    assert nb.value("b") == 20 and st["a"] == "computed"


def test_cell_level_constant_from_a_changed_global_recomputes_on_same_text_rerun(nb, calls):
    nb.run("BASE = 1")
    body = "_K = BASE * 2\n" + fn("a", "_K")
    cell(nb, body, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 20
    nb.run("BASE = 5")
    calls.clear()
    cell(nb, body, "A")
    assert nb.value("a") == 10 and calls == ["a"]
    st = recomputed(nb, calls)
    assert nb.value("b") == 100 and st["b"] == "computed"


def test_object_attribute_mutated_recomputes_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "import types\nOBJ = types.SimpleNamespace(k=1)",
                              "OBJ.k", "OBJ.k = 3", 10, 30)


def test_dataframe_mutated_in_place_recomputes_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "import pandas as pd\nDF = pd.DataFrame({'v': [1, 2]})",
                              "int(DF.v.sum())", "DF.loc[0, 'v'] = 5", 30, 70)


def test_env_var_read_with_getenv_through_a_helper_recomputes(nb, calls, monkeypatch):
    monkeypatch.setenv("HNB_MEMO_Y", "2")
    _upstream_global_scenario(nb, calls,
                              "import os\ndef _get():\n    return os.getenv('HNB_MEMO_Y')\n",
                              "int(_get())", "os.environ['HNB_MEMO_Y'] = '5'", 20, 50)


def test_module_alias_rebound_to_another_module_recomputes(nb, calls, tmp_path, monkeypatch):
    _module(tmp_path, monkeypatch, "hnb_memo_m1", "T = 1\n")
    _module(tmp_path, monkeypatch, "hnb_memo_m2", "T = 2\n")
    _upstream_global_scenario(nb, calls, "import hnb_memo_m1 as m", "m.T",
                              "import hnb_memo_m2 as m", 10, 20)


def test_module_imported_inside_the_body_changed_in_memory_recomputes(nb, calls, tmp_path,
                                                                       monkeypatch):
    _module(tmp_path, monkeypatch, "hnb_memo_m3", "T = 1\n")
    nb.run("import hnb_memo_m3")
    body = ("def a() -> int:\n    import hnb_memo_m3 as mm\n    hnb_calls.log.append('a')\n"
            "    return mm.T\n")
    cell(nb, body, "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("hnb_memo_m3.T = 9")
    st = recomputed(nb, calls)
    assert nb.value("b") == 90 and st["a"] == "computed"


def test_ipython_reset_then_redefined_global_recomputes(nb, calls):
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("del K\nK = 7")
    st = recomputed(nb, calls)
    assert nb.value("b") == 70 and st["a"] == "computed"


def test_line_magic_run_of_downstream_sees_a_changed_global(nb, calls):
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    nb.line("run -q b")
    nb.run("K = 4")
    nb.line("run -q b")
    assert nb.value("b") == 40 and nb.statuses()["a"] == "computed"


def test_status_between_edit_and_rerun_does_not_hide_the_change(nb, calls):
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("K = 3")
    nb.session.stale_nodes()  # syncs the memo and re-versions a before the run
    nb.session.status()
    st = recomputed(nb, calls)
    assert nb.value("b") == 30 and st["a"] == "computed"


def test_datafile_input_rewritten_recomputes_when_only_a_cell_two_below_reruns(
        nb, calls, tmp_path):
    (tmp_path / "d.txt").write_text("1")
    nb.run(f"from hamilton_nb import DataFile\npath = DataFile({str(tmp_path / 'd.txt')!r})")
    cell(nb, fn("a", "int(open(path).read())", "path: str"), "A")
    cell(nb, B, "B")
    cell(nb, C, "C")
    cell(nb, C, "C")
    assert nb.value("c") == 11
    (tmp_path / "d.txt").write_text("3")
    calls.clear()
    cell(nb, C, "C")
    assert nb.value("c") == 31
    assert Counter(calls) == Counter(["a", "b", "c"])



def test_does_function_reading_a_changed_global_recomputes_when_only_downstream_reruns(nb,
                                                                                     calls):
    nb.run("from hamilton.function_modifiers import does\nW = 1\n"
           "def _comb(**kw):\n    return W * sum(kw.values())\n")
    cell(nb, fn("x", "2"), "X")
    cell(nb, "@does(_comb)\ndef a(x: int) -> int:\n    pass\n", "A")
    cell(nb, B, "B")
    assert nb.value("b") == 20
    nb.run("W = 3")
    st = recomputed(nb, calls)
    assert nb.value("b") == 60 and st["a"] == "computed"


def test_extracted_column_upstream_sees_a_changed_global_when_only_downstream_reruns(nb,
                                                                                   calls):
    nb.run("import pandas as pd\nfrom hamilton.function_modifiers import extract_columns\n"
           "K = 1")
    cell(nb, "@extract_columns('a', 'z')\ndef df() -> pd.DataFrame:\n"
             "    hnb_calls.log.append('df')\n"
             "    return pd.DataFrame({'a': [K, K], 'z': [0, 0]})\n", "A")
    b = "def b(a: pd.Series) -> int:\n    hnb_calls.log.append('b')\n    return int(a.sum())\n"
    cell(nb, b, "B")
    assert nb.value("b") == 2
    calls.clear()
    cell(nb, b, "B")
    assert calls == []
    nb.run("K = 5")
    calls.clear()
    cell(nb, b, "B")
    assert nb.value("b") == 10
    assert Counter(calls) == Counter(["df", "b"])


def test_notebook_variable_named_like_a_defaulted_parameter_is_used_once_defined(nb, calls):
    cell(nb, fn("a", "k", "k: int = 2"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("k = 5")  # an optional input now given by the notebook
    st = recomputed(nb, calls)
    assert nb.value("b") == 50 and st["a"] == "computed"
    nb.run("del k")  # and gone again: the default
    st = recomputed(nb, calls)
    assert nb.value("b") == 20


def test_sibling_of_a_rerun_cell_is_marked_stale_when_their_upstream_recomputed(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    cell(nb, fn("c", "a + 1", "a: int"), "C")
    state = lambda: dict(zip(*nb.session.status()[["node", "state"]].T.values, strict=True))  # noqa: E731
    assert "stale" not in state().values()
    nb.run("K = 2")
    cell(nb, B, "B")  # recomputes a and b, not c
    assert nb.value("b") == 20
    assert state()["c"] == "stale"
    calls.clear()
    cell(nb, fn("c", "a + 1", "a: int"), "C")
    assert nb.value("c") == 3 and calls == ["c"]
    assert "stale" not in state().values()


SCALER = "class Scaler:\n    def k(self):\n        return 2\nS = Scaler()\n"


def test_method_of_a_global_instance_monkeypatched_recomputes(nb, calls):
    _upstream_global_scenario(nb, calls, SCALER, "S.k()",
                              "Scaler.k = lambda self: 3", 20, 30)


def test_class_of_a_global_instance_redefined_recomputes(nb, calls):
    _upstream_global_scenario(nb, calls, SCALER, "S.k()",
                              SCALER.replace("return 2", "return 4"), 20, 40)


def test_submodule_attribute_changed_in_memory_recomputes(nb, calls, tmp_path, monkeypatch):
    pkg = tmp_path / "src" / "hnb_memo_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import sub\n")
    (pkg / "sub.py").write_text("T = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    for m in ("hnb_memo_pkg", "hnb_memo_pkg.sub"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    _upstream_global_scenario(nb, calls, "import hnb_memo_pkg", "hnb_memo_pkg.sub.T",
                              "hnb_memo_pkg.sub.T = 6", 10, 60)


def test_notebook_input_replaced_by_a_node_is_used_when_only_downstream_reruns(nb, calls):
    nb.run("x = 3")
    cell(nb, fn("a", "x + 1", "x: int"), "A")
    cell(nb, B, "B")
    remembered(nb, calls)
    nb.run("del x")  # as the refusal to shadow it says
    cell(nb, fn("x", "100"), "X")  # x is now a node
    st = recomputed(nb, calls)
    assert nb.value("b") == 1010
    assert st["a"] == "computed"


def test_node_reading_another_nodes_bound_value_as_a_global(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    try:
        cell(nb, fn("d", "b + 1"), "D")
    except Exception as e:  # refused with a message: nothing can be stale then
        pytest.skip(f"reading a node's value as a global is refused: {e}")
    assert nb.value("d") == 11
    nb.run("K = 2")
    cell(nb, B, "B")
    assert nb.value("b") == 20
    cell(nb, fn("d", "b + 1"), "D")
    assert nb.value("d") == 21


def _states(nb: Any) -> dict[str, str]:
    df = nb.session.status()
    return dict(zip(df["node"], df["state"], strict=True))


def test_status_follows_a_global_changed_and_changed_back(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    assert "stale" not in _states(nb).values()
    nb.run("K = 2")
    assert {k: v for k, v in _states(nb).items() if v == "stale"} == {"a": "stale",
                                                                       "b": "stale"}
    nb.run("K = 1")
    assert "stale" not in _states(nb).values()
    nb.run("K = 3")
    assert _states(nb)["b"] == "stale"
    calls.clear()
    cell(nb, B, "B")
    assert nb.value("b") == 30 and Counter(calls) == Counter(["a", "b"])
    assert "stale" not in _states(nb).values()


def test_status_marks_env_var_reader_and_downstream_stale(nb, calls, monkeypatch):
    monkeypatch.setenv("HNB_MEMO_Z", "1")
    nb.run("import os")
    cell(nb, fn("a", "int(os.environ['HNB_MEMO_Z'])"), "A")
    cell(nb, B, "B")
    cell(nb, fn("c", "b + 1", "b: int"), "C")
    assert "stale" not in _states(nb).values()
    os.environ["HNB_MEMO_Z"] = "2"
    assert [n for n, s in _states(nb).items() if s == "stale"] == ["a", "b", "c"]


def test_status_marks_a_registered_only_edit_and_downstream_stale(nb, calls):
    cell(nb, fn("a", "1"), "A")
    cell(nb, B, "B")
    cell(nb, fn("c", "b + 1", "b: int"), "C")
    nb.cell(fn("a", "2"), line="-q -r", cell_id="A")
    st = _states(nb)
    assert st["b"] == "stale" and st["c"] == "stale"
    assert st["a"] == "stale"
    calls.clear()
    cell(nb, fn("c", "b + 1", "b: int"), "C")
    assert nb.value("c") == 21 and Counter(calls) == Counter(["a", "b", "c"])


# -- a random walk of edits and re-runs, checked against the formulas at every step -----------


RW_LOADER = ("@dataloader()\ndef raw(path: str) -> tuple[pd.DataFrame, dict]:\n"
             "    hnb_calls.log.append('raw')\n    return pd.read_csv(path), {}\n\n")
RW_CELLS = {
    "A": ["a", fn("a", "x + K1", "x: int"), fn("a", "x * K1", "x: int")],
    "A2": ["a2", fn("a2", "_h(K2) + int(os.environ['HNB_RW'])"),
           fn("a2", "_h(K2) + int(os.environ['HNB_RW']) + 1")],
    "B": ["b", fn("b", "a * 100 + a2", "a: int, a2: int"),
          fn("b", "a * 10 - a2", "a: int, a2: int")],
    "C": ["c", fn("c", "b + CFG['k']", "b: int"), fn("c", "b - CFG['k']", "b: int")],
    "D": ["d", fn("d", "c * 2 + a2", "a2: int, c: int"),
          fn("d", "c * 3 + a2", "a2: int, c: int")],
    "P": ["p"] + ["@parameterize(p=dict(k=value(PV)))\ndef scale(k: dict) -> int:\n"
                  f"    hnb_calls.log.append('scale')\n    return k['m'] * {f}\n" for f in (3, 5)],
    "L": ["l"] + [RW_LOADER + fn("l", f"int(raw.v.sum()) * {f}", "raw: pd.DataFrame")
                  for f in (1, 2)],
    "E": ["e", fn("e", "l + p * 1000 + d", "l: int, p: int, d: int"),
          fn("e", "l - p + d", "l: int, p: int, d: int")],
    "Q": ["q"] + [fn("q__x", f"{f}", deco="@config.when(mode='x')")
                  + fn("q__y", f"{f} + 10", deco="@config.when(mode='y')") for f in (1, 2)],
    "F": ["f", fn("f", "q * 7 + e", "q: int, e: int"), fn("f", "q * 9 + e", "q: int, e: int")],
}
RW_SETUP = ("import os\nimport pandas as pd\nfrom hamilton.function_modifiers import "
            "config, dataloader, parameterize, value\nx = 1\nK1 = 2\nK2 = 3\nM = 4\n"
            "CFG = {'k': 5}\nPV = {'m': 1}\n")
RW_HELPERS = ["def _h(v):\n    return v * M\n", "def _h(v):\n    return v + M\n"]


def _rw_expected(g: dict[str, int], variant: dict[str, int]) -> dict[str, int]:
    h = (lambda v: v * g["M"]) if g["helper"] == 0 else (lambda v: v + g["M"])
    a = g["x"] + g["K1"] if variant["A"] == 0 else g["x"] * g["K1"]
    a2 = h(g["K2"]) + g["E"] + (0 if variant["A2"] == 0 else 1)
    b = a * 100 + a2 if variant["B"] == 0 else a * 10 - a2
    c = b + g["k"] if variant["C"] == 0 else b - g["k"]
    d = c * 2 + a2 if variant["D"] == 0 else c * 3 + a2
    p = g["m"] * (3 if variant["P"] == 0 else 5)
    rows = sum(g["rows"]) * (1 if variant["L"] == 0 else 2)
    e = rows + p * 1000 + d if variant["E"] == 0 else rows - p + d
    q = variant["Q"] + 1 + (10 if g["mode"] == "y" else 0)
    f = q * (7 if variant["F"] == 0 else 9) + e
    return {"a": a, "a2": a2, "b": b, "c": c, "d": d, "p": p, "l": rows, "e": e, "q": q, "f": f}


@pytest.mark.parametrize("inputs", [False, True], ids=["globals", "and_inputs"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_edits_and_reruns_never_return_a_stale_value(nb, calls, seed, inputs,
                                                            monkeypatch, tmp_path):
    monkeypatch.setenv("HNB_RW", "0")
    try:
        _random_walk(nb, seed, inputs, tmp_path / "rw.csv")
    finally:
        nb.line("config executor=local")


def _random_walk(nb: Any, seed: int, inputs: bool, csv: Path,
                 trace: list | None = None) -> None:
    import random

    rng = random.Random(seed)
    actions = ["global", "global", "cfg", "helper", "edit", "edit", "status", "env", "clear",
               "behind", "line", "pv", "file", "config", "runstale", "engine"] + \
        ["input", "explicit"] * inputs
    g: dict[str, Any] = {"x": 1, "K1": 2, "K2": 3, "M": 4, "k": 5, "helper": 0, "E": 0, "m": 1,
                         "rows": [1, 2], "mode": "x"}
    csv.write_text("v\n1\n2\n")
    variant = {cid: 0 for cid in RW_CELLS}
    unseen_file = False  # the csv changed and no run has read it since
    explicit = False  # a run was given --inputs
    nb.run(RW_SETUP + RW_HELPERS[0] + f"path = {str(csv)!r}\n")
    nb.line("config dict(mode='x')")
    for cid, (_, *texts) in RW_CELLS.items():
        cell(nb, texts[0], cid)
    for step in range(40):
        action = rng.choice(actions)
        state_before = dict(g)
        if action == "global":
            name = rng.choice(["K1", "K2", "M"])
            g[name] = rng.randint(1, 4)
            nb.run(f"{name} = {g[name]}")
        elif action == "input":
            g["x"] = rng.randint(1, 4)
            nb.run(f"x = {g['x']}")
        elif action == "cfg":
            g["k"] = rng.randint(1, 4)
            nb.run(f"CFG['k'] = {g['k']}")
        elif action == "helper":
            g["helper"] = rng.randint(0, 1)
            nb.run(RW_HELPERS[g["helper"]])
        elif action == "edit":
            cid = rng.choice(list(RW_CELLS))
            variant[cid] = rng.randint(0, 1)
            cell(nb, RW_CELLS[cid][1 + variant[cid]], cid)
        elif action == "explicit":  # a cell run with --inputs: its value is the given x's
            cid = rng.choice(["A", "B", "C", "D"])
            node, *texts = RW_CELLS[cid]
            given = rng.randint(5, 8)
            nb.cell(texts[variant[cid]], line=f"-q --inputs dict(x={given})", cell_id=cid)
            assert nb.value(node) == _rw_expected({**g, "x": given}, variant)[node], \
                f"seed {seed} step {step}: `{node}` with x={given}"
            explicit = True
        elif action == "runstale" and explicit:
            pass  # run --stale feeds the last explicit inputs: not the notebook's state
        elif action == "runstale":
            nb.line("run -q --stale")
            now = _rw_expected(g, variant)
            skip = ("l", "e", "f") if unseen_file else ()
            assert not nb.session.stale_nodes() - set(skip), f"seed {seed} step {step}"
            for n, v in now.items():
                ev = nb.session.node_events.get(n)
                assert n in skip or ev is None or ev.data_version == fingerprint(v), \
                    f"seed {seed} step {step}: `{n}` outdated after run --stale"
        elif action == "engine":  # misses run in threads: nothing is remembered there
            nb.line(f"config executor={rng.choice(['local', 'threads'])}")
        elif action == "config":
            g["mode"] = rng.choice("xy")
            nb.line(f"config dict(mode={g['mode']!r})")
        elif action == "pv":
            g["m"] = rng.randint(1, 4)
            nb.run(f"PV['m'] = {g['m']}")
        elif action == "file":
            g["rows"] = [rng.randint(0, 9) for _ in range(rng.randint(1, 3))]
            csv.write_text("v\n" + "".join(f"{v}\n" for v in g["rows"]))
            unseen_file = True
        elif action == "env":
            g["E"] = rng.randint(0, 3)
            os.environ["HNB_RW"] = str(g["E"])
        elif action == "clear":
            nb.line(f"cache clear {rng.choice(list(_rw_expected(g, variant)))}")
        elif action == "behind":  # entries gone without the session knowing (another process)
            gone = rng.choice(list(_rw_expected(g, variant)))
            store = nb.session.store
            store.delete([e.key for e in store.entries() if e.node == gone])
        elif action == "line":
            n = rng.choice(list(_rw_expected(g, variant)))
            nb.line(f"run -q {n}")
            assert nb.value(n) == _rw_expected(g, variant)[n], f"seed {seed} step {step}: {n}"
        else:
            nb.session.stale_nodes()
        # Re-run one cell, unchanged, as users do: its node must be what the formulas say.
        cid = rng.choice(list(RW_CELLS))
        node, *texts = RW_CELLS[cid]
        cell(nb, texts[variant[cid]], cid)
        if "raw.loader" in nb.statuses():
            unseen_file = False
        want = _rw_expected(g, variant)
        if trace is not None:
            trace.append((step, action, {k: v for k, v in g.items() if state_before[k] != v},
                          dict(variant), cid, nb.statuses(), sorted(nb.session.stale_nodes()),
                          {n: e.data_version == fingerprint(want[n])
                           for n, e in nb.session.node_events.items() if n in want}))
        assert nb.value(node) == want[node], f"seed {seed} step {step}: `{node}` is stale"
        st = nb.session.stale_nodes()
        assert node not in st, f"seed {seed} step {step}: `{node}` just ran, yet stale"
        # Status never calls an outdated value fresh: a node whose last value is not what the
        # formulas give now must be stale.
        for n, v in want.items():
            if unseen_file and n in ("l", "e", "f"):
                continue  # status does not read data loaders' files (xfail test below)
            ev = nb.session.node_events.get(n)
            if ev is not None and ev.data_version != fingerprint(v):
                assert n in st, f"seed {seed} step {step}: `{n}` is outdated, not stale"


def test_status_marks_stale_a_global_change_that_a_run_of_another_cell_synced(nb, calls):
    # The run of an unrelated cell syncs the memo first: what it dropped must still reach
    # staleness (it did not: `status` called `a2` and below fresh).
    nb.run("K1 = 1\nK2 = 1")
    cell(nb, fn("a", "K1"), "A")
    cell(nb, fn("a2", "K2"), "A2")
    cell(nb, fn("b", "a + a2", "a: int, a2: int"), "B")
    nb.run("K2 = 5")
    cell(nb, fn("a", "K1"), "A")
    st = _states(nb)
    assert st["a2"] == "stale" and st["b"] == "stale" and st["a"] != "stale"


def test_status_marks_the_reader_of_a_changed_notebook_input_stale(nb, calls):
    nb.run("x = 1")
    cell(nb, fn("a", "x", "x: int"), "A")
    cell(nb, B, "B")
    nb.run("x = 2")
    st = _states(nb)
    assert st["a"] == "stale" and st["b"] == "stale"


# Status once read the dependency versions a node used from the store's latest written entry
# of it, not the one its last run hit: after K=1,2,1 then K=2, `b` was called fresh.
def test_status_marks_stale_a_node_whose_last_run_hit_an_older_entry(nb, calls):
    nb.run("K = 0")
    cell(nb, fn("a", "K"), "A")
    for k in (1, 2, 1):
        nb.run(f"K = {k}")
        cell(nb, B, "B")
    assert nb.value("b") == 10
    nb.run("K = 2")
    cell(nb, fn("a", "K"), "A")  # a is 2 now; b still holds the value made from a = 1
    assert nb.value("a") == 2
    assert _states(nb)["b"] == "stale"


def test_large_input_mutated_in_place_recomputes_when_only_a_cell_two_below_reruns(
        nb, calls, monkeypatch):
    import hamilton_nb.runner

    # "Large" made small: inputs above it are not fingerprinted at every sync.
    monkeypatch.setattr(hamilton_nb.runner, "MUTATION_CHECK_BYTES", 1000)
    nb.run("import numpy as np\narr = np.ones(1000)")
    cell(nb, fn("a", "int(arr.sum())", "arr: np.ndarray"), "A")
    cell(nb, B, "B")
    cell(nb, C, "C")
    cell(nb, C, "C")
    assert nb.value("c") == 10001
    nb.run("arr[:] = 2")
    calls.clear()
    cell(nb, C, "C")
    assert nb.value("c") == 20001
    assert Counter(calls) == Counter(["a", "b", "c"])
    assert _states(nb)["c"] != "stale"


@pytest.mark.xfail(strict=True, reason="inputs above MUTATION_CHECK_BYTES are not watched at "
                   "sync (too costly to fingerprint per status): rebinding one to other content "
                   "leaves its readers shown fresh until a run reaches them (runs are right)")
def test_large_input_rebound_is_shown_stale_and_recomputes(nb, calls, monkeypatch):
    import hamilton_nb.runner

    monkeypatch.setattr(hamilton_nb.runner, "MUTATION_CHECK_BYTES", 1000)
    nb.run("import numpy as np\narr = np.ones(1000)")
    cell(nb, fn("a", "int(arr.sum())", "arr: np.ndarray"), "A")
    cell(nb, B, "B")
    nb.run("arr = np.zeros(1000)")
    cell(nb, C, "C")  # the run is right...
    assert nb.value("c") == 1
    nb.run("arr = np.ones(1000)")
    st = _states(nb)  # ...but status between the edit and the next run is not
    assert st["a"] == "stale" and st["b"] == "stale"



@pytest.mark.xfail(strict=True, reason="status compares code and dependency versions, never the "
                   "files a data loader reads: after the file changes, the loader's readers are "
                   "shown fresh until a run reaches them (runs are right). Predates the memo.")
def test_status_marks_readers_of_a_rewritten_loaded_file_stale(nb, calls, tmp_path,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("v\n1\n2\n")
    nb.run("path = 'data.csv'")
    cell(nb, LOADER, "A")
    cell(nb, B, "B")
    (tmp_path / "data.csv").write_text("v\n1\n2\n4\n")
    st = _states(nb)
    assert st["a"] == "stale" and st["b"] == "stale"


def test_input_change_stays_stale_after_clearing_another_nodes_entries(nb, calls):
    nb.run("x = 1")
    cell(nb, fn("a", "x", "x: int"), "A")
    cell(nb, B, "B")
    cell(nb, fn("c", "7"), "C")
    nb.run("x = 2")
    assert _states(nb)["a"] == "stale"
    nb.line("cache clear c")  # nothing a or b depend on: they are as stale as before
    st = _states(nb)
    assert st["a"] == "stale" and st["b"] == "stale"
    cell(nb, B, "B")
    assert nb.value("b") == 20


def test_input_change_is_stale_after_the_reader_was_served_on_a_remembered_key(nb, calls):
    nb.run("x = 1")
    cell(nb, fn("a", "x", "x: int"), "A")
    cell(nb, fn("a", "x", "x: int"), "A")  # a hit on the key the memo kept: no key computed
    assert nb.statuses()["a"] == "cached"
    nb.run("x = 4")
    assert _states(nb)["a"] == "stale"


def test_run_stale_after_reset_does_not_reuse_explicit_inputs_of_before(nb, calls):
    nb.run("x = 1")
    cell(nb, fn("a", "x", "x: int"), "A")
    nb.cell(fn("a", "x", "x: int"), line="-q --inputs dict(x=7)", cell_id="A")
    assert nb.value("a") == 7
    nb.line("reset")
    cell(nb, fn("a", "x * 10", "x: int"), "A2")
    nb.run("x = 2")
    nb.line("run -q --stale")
    assert nb.value("a") == 20


def test_plain_rerun_after_an_explicit_inputs_run_upstream_is_not_stale(nb, calls):
    nb.run("x = 1")
    cell(nb, fn("a", "x", "x: int"), "A")
    cell(nb, B, "B")
    nb.cell(fn("a", "x", "x: int"), line="-q --inputs dict(x=7)", cell_id="A")
    assert nb.value("a") == 7
    cell(nb, B, "B")  # the notebook's x again: a is served for x = 1, and says so
    assert nb.value("b") == 10
    st = _states(nb)
    assert st["a"] != "stale" and st["b"] != "stale"
    a_event = nb.session.node_events["a"]
    assert a_event.data_version == fingerprint(1)


def test_same_text_cell_with_string_annotations_and_a_redefined_class_is_not_reused(nb, calls):
    nb.run("class Box:\n    pass\n")
    body = ("from __future__ import annotations\n\n"
            + fn("a", "Box()", ret="Box") + fn("n", "1", "a: Box"))
    cell(nb, body, "A")
    nb.run("class Box:\n    pass\n")
    cell(nb, body, "A")
    assert nb.session._cell("A").reused is False
    assert type(nb.value("a")) is nb.ns["Box"]


def test_same_text_cell_reused_then_helper_it_calls_redefined_recomputes(nb, calls):
    nb.run("def _helper():\n    return 1\n")
    body = fn("a", "_helper()")
    cell(nb, body, "A")
    cell(nb, body, "A")
    assert nb.session._cell("A").reused is True
    nb.run("def _helper():\n    return 2\n")
    calls.clear()
    cell(nb, body, "A")
    assert nb.value("a") == 2 and calls == ["a"]


SUBDAG_A = ("@subdag(inner, inputs={'v': source('z')})\ndef a(inner: int) -> int:\n"
            "    hnb_calls.log.append('a')\n    return inner + 1\n")


def test_subdag_function_reading_a_changed_global_recomputes_when_only_downstream_reruns(
        nb, calls):
    nb.run("from hamilton.function_modifiers import subdag, source\nS = 2\nz = 3\n"
           "def inner(v: int) -> int:\n    return v * S\n")
    cell(nb, SUBDAG_A, "A")
    cell(nb, B, "B")
    assert nb.value("b") == 70
    calls.clear()
    cell(nb, B, "B")
    assert calls == [] and set(nb.statuses().values()) == {"cached"}
    nb.run("S = 5")
    st = recomputed(nb, calls)
    assert nb.value("b") == 160 and st["a"] == "computed"
    nb.run("def inner(v: int) -> int:\n    return v * S * 100\n")
    cell(nb, B, "B")  # a keeps the function its decorator was given, as a module would
    assert nb.value("b") == 160
    cell(nb, SUBDAG_A, "A")  # re-run: the decorator takes the new function
    assert nb.session._cell("A").reused is False
    st = recomputed(nb, calls)
    assert nb.value("b") == 15010 and st["b"] == "computed"


def test_checkpoint_restore_then_downstream_rerun_uses_the_notebooks_globals(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    nb.line("checkpoint save memo_first")
    nb.run("K = 2")
    cell(nb, B, "B")
    assert nb.value("b") == 20
    nb.line("checkpoint restore memo_first")
    # Either the values of the notebook as it is (K = 2), or the checkpoint's shown stale.
    st = _states(nb)
    assert nb.value("b") == 20 or (st["a"] == "stale" and st["b"] == "stale")
    cell(nb, B, "B")
    assert nb.value("b") == 20
    assert "stale" not in _states(nb).values()


def test_checkpoint_restore_of_other_code_then_global_change_recomputes(nb, calls):
    nb.run("K = 1")
    cell(nb, fn("a", "K"), "A")
    cell(nb, B, "B")
    nb.line("checkpoint save memo_code")
    cell(nb, fn("a", "K * 3"), "A")
    cell(nb, B, "B")
    assert nb.value("b") == 30
    nb.line("checkpoint restore memo_code")
    assert nb.value("b") == 10
    nb.run("K = 5")
    calls.clear()
    cell(nb, B, "B")
    assert nb.value("b") == 50
    assert Counter(calls) == Counter(["a", "b"])
    assert "stale" not in _states(nb).values()


def test_class_attribute_mutated_recomputes_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "class Cfg:\n    k = 1\n", "Cfg.k", "Cfg.k = 4",
                              10, 40)


def test_function_attribute_mutated_recomputes_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "def _f():\n    pass\n_f.k = 1\n", "_f.k", "_f.k = 6",
                              10, 60)


def test_functools_partial_rebound_recomputes_when_only_downstream_reruns(nb, calls):
    _upstream_global_scenario(nb, calls, "import functools, operator\n"
                              "_g = functools.partial(operator.mul, 2)\n", "_g(1)",
                              "_g = functools.partial(operator.mul, 3)", 20, 30)

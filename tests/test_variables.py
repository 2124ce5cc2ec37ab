"""Node values are real notebook variables: bound when a run ends, restored per notebook, never
silently stale, never shadowing a notebook name, never decided by an in-place mutation (issue 11).

In a real in-process IPython shell (``nb``) or a plain session (``ps``); the real-kernel versions
are in test_kernel_variables.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import PlainSession
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

UP = """
def a() -> int:
    hnb_calls.log.append("a")
    return {a}

def b(a: int) -> int:
    hnb_calls.log.append("b")
    return a * 2
"""

DOWN = """
def c(b: int) -> int:
    hnb_calls.log.append("c")
    return b * 10
"""


def _notebook(nb, a: int = 1, on_change: str = "") -> str:
    with capture_output() as out:
        nb.cell(UP.format(a=a), line=on_change, cell_id="up")
    return out.stdout


# -- binding ---------------------------------------------------------------------------------


def test_function_in_an_ordinary_cell_reads_a_cached_node_as_a_global(nb):
    nb.cell(UP.format(a=1), cell_id="up")
    nb.cell(DOWN, cell_id="down")
    nb.run("def report():\n    return f'c={c}'\n")
    nb.run("del a, b, c")
    nb.cell(UP.format(a=1), cell_id="up")
    nb.cell(DOWN, cell_id="down")
    assert set(nb.statuses().values()) == {"cached"}
    assert nb.run("report()") == "c=20"
    assert {"a", "b", "c"} <= set(nb.run("list(globals())"))


def test_all_hit_run_of_the_last_cell_binds_its_nodes_only(nb, calls):
    nb.cell(UP.format(a=1), cell_id="up")
    nb.cell(DOWN, cell_id="down")
    nb.run("del a, b, c")
    nb.cell(DOWN, cell_id="down")
    assert set(nb.statuses().values()) == {"cached"}
    assert nb.ns["c"] == 20
    assert "a" not in nb.ns and "b" not in nb.ns


def test_node_returning_none_binds_none_and_reset_never_raises(nb):
    nb.cell("def nothing() -> None:\n    return None\n", cell_id="n")
    assert "nothing" in nb.ns and nb.ns["nothing"] is None
    nb.run("del nothing")
    nb.line("reset")
    nb.cell("def nothing() -> None:\n    return None\n", cell_id="n")
    nb.line("reset")
    assert "nothing" not in nb.ns
    nb.line("reset")


def test_deleted_name_is_bound_again_when_the_cell_runs_again(nb, calls):
    nb.cell(UP.format(a=1), cell_id="up")
    nb.run("del b")
    nb.cell(UP.format(a=1), cell_id="up")
    assert nb.ns["b"] == 2
    assert calls == ["a", "b"]


def test_whos_lists_node_values(nb):
    nb.cell(UP.format(a=1), cell_id="up")
    with capture_output() as out:
        nb.run("%whos")
    names = {line.split()[0] for line in out.stdout.splitlines()[2:] if line.strip()}
    assert {"a", "b"} <= names


# -- in-place mutation ------------------------------------------------------------------------

ARR = """
def arr() -> np.ndarray:
    hnb_calls.log.append("arr")
    return np.arange(1000)

def total(arr: np.ndarray) -> int:
    return int(arr.sum())
"""


def test_value_mutated_in_the_notebook_is_not_handed_back_by_a_rerun(nb):
    nb.run("import numpy as np")
    nb.cell(ARR, cell_id="arr")
    nb.run("arr[:] = 0")  # the user changes the bound array in place
    nb.cell(ARR, cell_id="arr")
    assert nb.statuses() == {"arr": "cached", "total": "cached"}
    assert nb.run("int(arr.sum())") == sum(range(1000))
    nb.run("arr[:] = 0")
    nb.line("run total")
    assert nb.ns["total"] == sum(range(1000))


MUTATES = """
def base() -> list:
    return [1, 2, 3]

def grows(base: list) -> int:
    base.append(4)
    return len(base)

def later(base: list, grows: int) -> int:
    return len(base)
"""


def test_node_that_mutates_its_input_is_warned_and_does_not_change_what_others_see(ps):
    with pytest.warns(UserWarning, match="node `grows` changed its input `base` in place"):
        ps.cell(MUTATES)
        computed = ps.run("base", "grows", "later")
    assert computed == {"base": [1, 2, 3], "grows": 4, "later": 3}
    p2 = ps.reopen()  # base from the cache this time
    p2.cell(MUTATES.replace("return len(base)\n", "return len(base) + 0\n", 1))
    assert p2.run("base", "grows", "later") == computed


# -- shadowing --------------------------------------------------------------------------------


@pytest.mark.parametrize(("setup", "name", "what"), [
    ("", "len", "the builtin `len`"),
    ("import numpy as np", "np", "the imported module `np`"),
    ("import hamilton_nb", "hamilton_nb", "the imported module `hamilton_nb`"),
    ("", "get_ipython", "get_ipython"),
    ("threshold = 0.5", "threshold", "the notebook variable `threshold`"),
    # e.g. the cell ran once as an ordinary cell before %%hamilton was added
    ("def helper(b):\n    return b", "helper", "the function `helper` defined in the notebook"),
])
def test_node_that_would_overwrite_a_notebook_name_is_refused(nb, setup, name, what):
    nb.run(setup)
    nb.cell(UP.format(a=1), cell_id="up")
    before = (list(nb.session.dag.order), {k: v for k, v in nb.ns.items()
                                           if not k.startswith("_")})
    with pytest.raises(UsageError, match=f"Node `{name}` would") as e:
        nb.cell(f"def {name}(b: int) -> int:\n    return b\n", cell_id="other")
    assert what in str(e.value)
    assert "rename" in str(e.value)
    assert (list(nb.session.dag.order), {k: v for k, v in nb.ns.items()
                                         if not k.startswith("_")}) == before


def test_node_named_like_an_external_input_is_refused(nb):
    nb.run("n = 4")
    nb.cell("def y(n: int) -> int:\n    return n * 2\n", cell_id="y")
    with pytest.raises(UsageError, match="external input"):
        nb.cell("def n() -> int:\n    return 5\n", cell_id="n")
    assert nb.ns["n"] == 4 and "n" not in nb.session.dag.cells


def test_internal_nodes_of_decorators_are_not_bound_but_user_named_ones_are(nb):
    nb.run("import pandas as pd\nfrom hamilton.function_modifiers import *")
    nb.cell("""
        @extract_columns("x", "y")
        def frame() -> pd.DataFrame:
            return pd.DataFrame({"x": [1, 2], "y": [3, 4]})

        @parameterize(p_two={"k": value(2)}, p_three={"k": value(3)})
        def p(k: int) -> int:
            return k

        @check_output(range=(0, 10))
        def checked() -> int:
            return 5

        def _inc(v: int, by: int = 1) -> int:
            return v + by

        @pipe_input(step(_inc, by=value(2)))
        def piped(p_two: int) -> int:
            return p_two
    """, cell_id="deco")
    for name in ("frame", "x", "y", "p_two", "p_three", "checked", "piped"):
        assert name in nb.ns, name
    for name in ("checked_raw", "checked_range_validator", "p"):
        assert name not in nb.ns, name
    assert not any("." in k for k in nb.ns)
    nb.line("run checked_raw")  # asked for by name: bound
    assert nb.ns["checked_raw"] == 5


# -- staleness --------------------------------------------------------------------------------


def test_run_that_changes_an_upstream_says_which_bound_names_are_stale(nb, calls):
    _notebook(nb, a=1)
    nb.cell(DOWN, cell_id="down")
    out = _notebook(nb, a=5)
    assert "`c` is now stale" in out and "%hamilton run --stale" in out
    assert nb.ns["c"] == 20  # left as it was: flagged, not changed behind the user's back
    state = dict(zip(*[nb.line("status")[k] for k in ("node", "state")], strict=True))
    assert state["c"] == "stale"
    with capture_output() as out:
        nb.line("run --stale")
    assert nb.ns["c"] == 100
    assert "stale" not in set(nb.line("status")["state"])
    with capture_output() as out:
        nb.line("run --stale")
    assert "nothing is stale" in out.stdout


def test_on_change_refresh_recomputes_and_rebinds_stale_names_at_the_end_of_the_cell(nb):
    nb.line("config on_change=refresh")
    try:
        _notebook(nb, a=1)
        nb.cell(DOWN, cell_id="down")
        out = _notebook(nb, a=5)
        assert "refreshed `c`" in out
        assert nb.ns["c"] == 100
    finally:
        nb.line("config on_change=flag")


def test_on_change_option_of_one_cell_overrides_the_session_setting(nb):
    _notebook(nb, a=1)
    nb.cell(DOWN, cell_id="down")
    _notebook(nb, a=3, on_change="--on-change refresh")
    assert nb.ns["c"] == 60
    out = _notebook(nb, a=4)
    assert "`c` is now stale" in out and nb.ns["c"] == 60
    assert nb.session.on_change == "flag"


def test_config_takes_session_settings_or_a_dict_expression(nb, capsys):
    nb.line('config dict(mode="fast")')
    assert nb.session.dag.config == {"mode": "fast"}
    nb.line("config on_change=refresh")
    assert nb.session.on_change == "refresh"
    nb.line("config on_change=flag")
    with pytest.raises(UsageError, match="on_change must be one of"):
        nb.line("config on_change=sometimes")
    with pytest.raises(UsageError, match=r"dict\(mode='x'\)"):
        nb.line("config mode=x")
    assert nb.session.dag.config == {"mode": "fast"}
    capsys.readouterr()
    nb.line("config")
    assert "on_change=flag" in capsys.readouterr().out
    nb.line("config dict()")


def test_a_bad_value_in_a_config_line_changes_no_setting(nb):
    before = (nb.session.on_change, nb.session.settings.file_check)
    for line in ("config on_change=refresh file_check=bogus",
                 "config file_check=stat on_change=sometimes",
                 "config on_change=refresh file_check=stat extra",
                 "config on_change=refresh executor=nowhere"):
        with pytest.raises(UsageError):
            nb.line(line)
        assert (nb.session.on_change, nb.session.settings.file_check) == before, line
    nb.line("config on_change=refresh file_check=stat")  # both good: both applied
    assert (nb.session.on_change, nb.session.settings.file_check) == ("refresh", "stat")
    nb.line("config on_change=flag file_check=content")


# -- per-notebook restore ---------------------------------------------------------------------


def _nb_session(cache, notebook: str | None) -> PlainSession:
    p = PlainSession(cache)
    if notebook is not None:
        p.ns["__session__"] = notebook
    p.exec("import hnb_calls")
    return p


def test_two_notebooks_in_one_folder_restore_their_own_dag(tmp_path, calls):
    cache = tmp_path / "cache"
    first = _nb_session(cache, str(tmp_path / "first.ipynb"))
    first.cell(UP.format(a=1), "up")
    first.run("a", "b")
    second = _nb_session(cache, str(tmp_path / "second.ipynb"))
    second.cell("def w(z: int) -> int:\n    return z * 10\n", "w")
    second.ns["z"] = 3
    second.run("w")
    first.s.close()
    second.s.close()

    again = _nb_session(cache, str(tmp_path / "first.ipynb"))
    report = again.s.restore()
    assert set(again.s.dag.nodes) == {"a", "b"}
    assert (again.ns["a"], again.ns["b"]) == (1, 2)
    assert "first.ipynb" in str(report)
    other = _nb_session(cache, str(tmp_path / "second.ipynb"))
    other.ns["z"] = 3
    other.s.restore()
    assert set(other.s.dag.order) == {"w", "z"} and other.ns["w"] == 30
    # The explicit name picks a notebook, e.g. from plain IPython.
    plain = _nb_session(cache, None)
    plain.s.restore(notebook=str(tmp_path / "first.ipynb"))
    assert plain.ns["b"] == 2
    for p in (again, other, plain):
        p.s.close()


def test_restore_without_saved_state_says_so_and_changes_nothing(tmp_path, calls):
    p = _nb_session(tmp_path / "cache", str(tmp_path / "new.ipynb"))
    p.ns["keep"] = 1
    before = dict(p.ns)
    report = p.s.restore()
    assert not report.found
    assert "no saved state to restore for notebook" in str(report)
    assert "nothing changed" in str(report)
    assert p.ns == before and not p.s.dag.cells
    p.s.close()


def test_plain_ipython_restores_the_working_folder_state_and_says_so(tmp_path, calls,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = _nb_session(tmp_path / "cache", None)
    p.cell(UP.format(a=1), "up")
    p.run("b")
    p2 = p.reopen()
    text = str(p2.s.restore())
    assert "No notebook name is known" in text and str(tmp_path) in text
    assert p2.ns["b"] == 2
    p2.s.close()


def test_restore_magic_with_notebook_option(nb, tmp_path, capsys):
    nb.run(f"__session__ = {str(tmp_path / 'one.ipynb')!r}")
    nb.cell(UP.format(a=1), cell_id="up")
    nb.run("__session__ = 'two.ipynb'")
    capsys.readouterr()
    nb.line("restore")
    assert "no saved state to restore for notebook 'two.ipynb'" in capsys.readouterr().out
    nb.line(f"restore --notebook {tmp_path / 'one.ipynb'}")
    assert "2 value(s) bound" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--notebook NAME"):
        nb.line("restore --notebook")


def test_restore_before_the_imports_gives_one_line_per_cell_and_restores_the_rest(tmp_path,
                                                                                   calls):
    cache = tmp_path / "cache"
    p = _nb_session(cache, str(tmp_path / "n.ipynb"))
    p.exec("import numpy as np\nfrom hamilton.function_modifiers import tag")
    p.cell(UP.format(a=1), "up")
    p.cell("@tag(owner='x')\ndef arr2(b: int) -> np.ndarray:\n    return np.arange(b)\n", "np")
    p.run("b", "arr2")
    p.s.close()
    p2 = _nb_session(cache, str(tmp_path / "n.ipynb"))  # imports not run yet
    report = p2.s.restore()
    assert list(report.failed_cells) == ["np"]
    line = [ln for ln in str(report).splitlines() if "Cell np" in ln]
    assert len(line) == 1 and "NameError" in line[0] and "Traceback" not in str(report)
    assert p2.ns["b"] == 2 and "arr2" not in p2.ns
    p2.s.close()


def test_restored_value_whose_file_is_damaged_is_recomputed_with_a_warning(tmp_path, calls):
    cache = tmp_path / "cache"
    p = _nb_session(cache, str(tmp_path / "d.ipynb"))
    p.exec("import numpy as np")
    p.cell("def big() -> np.ndarray:\n    hnb_calls.log.append('big')\n"
           "    return np.arange(300_000)\n", "big")  # > 1 MiB: verified in the background
    p.run("big")
    entry = p.s.store.latest("big")
    path = p.s.store.value_path(entry.data_version, entry.fmt)
    p.s.close()
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 100] = b"\xff" * 100  # same size, array bytes: only the checksum sees it
    path.write_bytes(bytes(data))
    p2 = _nb_session(cache, str(tmp_path / "d.ipynb"))
    p2.exec("import numpy as np")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p2.s.restore()
        assert p2.s.settle(wait=True) == ["big"]
    assert any("damaged" in str(x.message) and "`big`" in str(x.message) for x in w)
    assert np.array_equal(p2.ns["big"], np.arange(300_000))
    assert calls == ["big", "big"]
    p2.s.close()


def test_restore_with_an_unreadable_value_and_no_inputs_yet_binds_the_others(tmp_path, calls):
    cache = tmp_path / "cache"
    p = _nb_session(cache, str(tmp_path / "u.ipynb"))
    p.exec("import numpy as np\nsize = 5000")
    p.cell("def arr(size: int) -> np.ndarray:\n    return np.arange(size)\n\n"
           "def one() -> int:\n    return 1\n", "cell")
    p.run("arr", "one")
    entry = p.s.store.latest("arr")
    path = p.s.store.value_path(entry.data_version, entry.fmt)
    p.s.close()
    path.write_bytes(path.read_bytes()[:100])  # truncated
    p2 = _nb_session(cache, str(tmp_path / "u.ipynb"))
    p2.exec("import numpy as np")  # `size` is not defined yet: arr cannot be recomputed
    with pytest.warns(UserWarning, match="`arr` is not bound"):
        report = p2.s.restore()
    assert report.bound == ["one"] and p2.ns["one"] == 1 and "arr" not in p2.ns
    p2.s.close()


# -- small immutable values kept bound across all-hit re-runs (Session._held) --------------------

SCALARS = """
def count() -> int:
    hnb_calls.log.append("count")
    return 1234567

def label(count: int) -> str:
    return f"n={count}"
"""


def test_rerun_rebinds_a_scalar_the_user_reassigned_to_another_number(nb, calls):
    nb.cell(SCALARS, cell_id="s")
    assert nb.ns["count"] == 1234567
    nb.run("count = 7654321")
    nb.cell(SCALARS, cell_id="s")
    assert nb.ns["count"] == 1234567 and nb.statuses()["count"] == "cached"
    assert calls == ["count"]


def test_rerun_binds_again_a_scalar_the_user_deleted(nb):
    nb.cell(SCALARS, cell_id="s")
    nb.run("del label")
    nb.cell(SCALARS, cell_id="s")
    assert nb.ns["label"] == "n=1234567"


def test_rerun_after_the_value_changed_binds_the_new_scalar(nb):
    nb.cell(SCALARS, cell_id="s")
    held = nb.ns["count"]
    nb.cell(SCALARS.replace("1234567", "42"), cell_id="s")
    assert nb.ns["count"] == 42 and nb.ns["label"] == "n=42"
    nb.cell(SCALARS, cell_id="s")  # back: a hit on the first value, bound again
    assert nb.ns["count"] == held == 1234567 and nb.ns["label"] == "n=1234567"

"""A ``%%hamilton`` cell behaves like a Python module a Hamilton driver would load (issue 9):
its own ``__future__`` flags, one namespace while it runs, helpers published, refusals that say
the fix — and a failing cell leaves the notebook exactly as it was."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError


def test_annotations_are_real_types_not_strings(nb):
    # graph.py itself says `from __future__ import annotations`; a cell must not inherit it.
    nb.cell("""
    from hamilton.function_modifiers import datasaver

    def n() -> int:
        return 3

    @datasaver()
    def saved(n: int) -> dict:
        return {"n": n}
    """)
    assert nb.ns["saved"] == {"n": 3}
    fn = nb.session.dag.cells[next(iter(nb.session.dag.cells))].functions["n"]
    assert fn.__annotations__["return"] is int


def test_cell_with_future_annotations_resolves_its_own_names(nb):
    nb.cell("""
    from __future__ import annotations
    import pandas as pd

    def frame() -> pd.DataFrame:
        return pd.DataFrame({"a": [1, 2]})

    def total(frame: pd.DataFrame) -> int:
        return int(frame.a.sum())
    """)
    assert nb.ns["total"] == 3
    assert isinstance(nb.ns["frame"], pd.DataFrame)


def test_decorator_sees_a_name_imported_earlier_in_the_same_cell(nb):
    nb.cell("""
    from typing import Dict
    from hamilton.function_modifiers import extract_fields

    @extract_fields({"a": int, "b": int})
    def ab() -> Dict[str, int]:
        return {"a": 1, "b": 2}
    """)
    assert (nb.ns["a"], nb.ns["b"]) == (1, 2)


def test_module_level_call_reads_a_constant_defined_above_it(nb):
    nb.cell("""
    FACTOR = 2

    def _scale(x):
        return x * FACTOR

    BASE = _scale(21)

    def answer() -> int:
        return BASE
    """)
    assert nb.ns["answer"] == 42
    assert nb.ns["BASE"] == 42 and nb.ns["FACTOR"] == 2  # published like a module's globals


def test_failing_cell_rolls_back_every_name_it_bound(nb):
    nb.run("FACTOR = 10\nkeep = 'mine'")
    with pytest.raises(UsageError, match="ZeroDivisionError"):
        nb.cell("""
        FACTOR = 3
        NEW_NAME = 1

        def x() -> int:
            return FACTOR

        1 / 0
        """)
    assert nb.ns["FACTOR"] == 10 and nb.ns["keep"] == "mine"
    assert "NEW_NAME" not in nb.ns and "x" not in nb.ns
    assert "x" not in nb.session.dag.nodes


def test_cell_rejected_by_the_dag_rolls_back_too(nb):
    nb.cell("def a() -> int:\n    return 1\n", cell_id="c1")
    nb.run("LIMIT = 5")
    with pytest.raises(UsageError, match="already defined"):
        nb.cell("LIMIT = 99\n\ndef a() -> int:\n    return 2\n", cell_id="c2")
    assert nb.ns["LIMIT"] == 5
    assert nb.ns["a"] == 1  # the node's value, not the rejected function


def test_node_functions_do_not_stay_as_notebook_variables(nb):
    nb.cell("def a() -> int:\n    return 1\n", line="--register-only")
    assert "a" not in nb.ns  # registered, not computed: no value, and no function either


def test_hamilton_exclude_is_a_helper_published_to_the_notebook(nb):
    nb.cell("""
    from hamilton.function_modifiers import hamilton_exclude

    @hamilton_exclude
    def double(x: int) -> int:
        return 2 * x

    def one() -> int:
        return 1
    """)
    assert "double" not in nb.session.dag.nodes
    assert nb.ns["double"](4) == 8
    nb.cell("""
    from hamilton.function_modifiers import pipe_output, step

    @pipe_output(step(double))
    def two(one: int) -> int:
        return one + 1
    """)
    assert nb.ns["two"] == 4


def test_calling_a_node_function_by_name_is_refused_with_the_notebook_rule(nb):
    nb.cell("def a() -> int:\n    return 1\n", cell_id="c1")
    with pytest.raises(UsageError, match=r"`b` calls `a\(\)`.*helper `_a`"):
        nb.cell("def b() -> int:\n    return a() + 1\n", cell_id="c2")
    assert "b" not in nb.session.dag.nodes
    # Taking it as a parameter is the fix, and a parameter that holds a callable is fine.
    nb.cell("def b(a: int) -> int:\n    return a + 1\n", cell_id="c2")
    assert nb.ns["b"] == 2
    nb.cell("""
    def model() -> object:
        return lambda v: v * 10

    def predicted(model: object) -> int:
        return model(3)
    """, cell_id="c3")
    assert nb.ns["predicted"] == 30


def test_calling_a_node_of_the_same_cell_is_refused(nb):
    with pytest.raises(UsageError, match=r"calls `a\(\)`"):
        nb.cell("def a() -> int:\n    return 1\n\ndef b() -> int:\n    return a()\n")
    assert not nb.session.dag.nodes


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("async def a() -> int:\n    return 1\n", "async def"),
        ("def a() -> list:\n    yield 1\n", "generator"),
        ("def a(*args: int) -> int:\n    return 1\n", r"\*args"),
        ("def a(**kw: int) -> int:\n    return 1\n", r"\*\*kwargs"),
        ("def a() -> int:\n    return '\ud800'\n", "cannot read"),
        ("def a():\n    return 1\n", "type hints on its parameters and its return"),
    ],
    ids=["async", "generator", "varargs", "varkw", "lone_surrogate", "no_return_type"],
)
def test_unrunnable_node_function_is_refused_with_the_fix(nb, body, match):
    nb.run("before = 1")
    with pytest.raises(UsageError, match=match):
        nb.cell(body)
    assert not nb.session.dag.nodes
    assert "a" not in nb.ns and nb.ns["before"] == 1


def test_hamilton_rejection_prints_no_logger_traceback(nb, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UsageError, match="return value"):
        nb.cell("def a():\n    return 1\n")
    assert not [r for r in caplog.records if r.name.startswith("hamilton")]
    assert "Traceback" not in capsys.readouterr().err
    # and Hamilton's loggers are back afterwards
    assert not logging.getLogger("hamilton.function_modifiers.base").disabled


def test_value_uses_the_inputs_of_the_last_run(nb):
    nb.cell("def doubled(x: int) -> int:\n    return 2 * x\n", line="--inputs dict(x=21)")
    nb.session.clear()  # nothing cached: value() must compute, with the same inputs
    del nb.ns["doubled"]
    assert nb.session.value("doubled") == 42


# -- data loaders ------------------------------------------------------------------------------

LOADERS = """
import pandas as pd
from hamilton.function_modifiers import dataloader, load_from, source, value

@load_from.csv(path=value("data.csv"))
def literal_rows(df: pd.DataFrame) -> int:
    return len(df)

@load_from.csv(path=source("path"), inject_="df")
def input_rows(df: pd.DataFrame) -> int:
    return len(df)

@dataloader()
def raw(path: str) -> tuple[pd.DataFrame, dict]:
    hnb_calls.log.append("raw")
    return pd.read_csv(path), {}

def total(raw: pd.DataFrame) -> int:
    return int(raw.a.sum())
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n3,4\n")
    return tmp_path


def test_data_loaders_are_cached_while_their_files_are_unchanged(nb, in_tmp, calls):
    nb.run("path = 'data.csv'")
    nb.cell(LOADERS)
    assert (nb.ns["literal_rows"], nb.ns["input_rows"], nb.ns["total"]) == (2, 2, 4)
    assert calls == ["raw"]
    nb.cell(LOADERS)
    assert set(nb.statuses().values()) == {"cached"}
    assert calls == ["raw"]


def test_replacing_a_loaded_file_recomputes_what_reads_it(nb, in_tmp, calls):
    nb.run("path = 'data.csv'")
    nb.cell(LOADERS)
    (in_tmp / "data.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    nb.cell(LOADERS)
    assert (nb.ns["literal_rows"], nb.ns["input_rows"], nb.ns["total"]) == (3, 3, 9)
    st = nb.statuses()
    assert st["raw.loader"] == "computed" and st["total"] == "computed"
    assert nb.session.why("raw.loader").endswith("a file the data loader reads changed.")


def test_loader_by_stat_sees_a_same_size_rewrite_with_a_new_mtime(nb, in_tmp):
    with pytest.raises(UsageError, match="`content` or `stat`"):
        nb.line("config file_check=mtime")
    assert nb.session.settings.file_check == "content"
    nb.line("config file_check=stat")
    nb.run("path = 'data.csv'")
    nb.cell(LOADERS)
    (in_tmp / "data.csv").write_text("a,b\n9,2\n3,4\n")  # same size, other content
    st = os.stat(in_tmp / "data.csv")
    os.utime(in_tmp / "data.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    nb.cell(LOADERS)
    assert nb.ns["total"] == 12


def test_loader_of_a_non_file_source_runs_every_time_and_says_so_once(nb, in_tmp, calls):
    body = """
    import pandas as pd
    from hamilton.function_modifiers import dataloader

    @dataloader()
    def remote(url: str) -> tuple[pd.DataFrame, dict]:
        hnb_calls.log.append("remote")
        return pd.DataFrame({"a": [1]}), {"url": url}

    def n_remote(remote: pd.DataFrame) -> int:
        return len(remote)
    """
    nb.run("url = 'https://example.invalid/table'")
    with pytest.warns(UserWarning, match="cannot version"):
        nb.cell(body)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would fail here
        nb.cell(body)
    assert calls == ["remote", "remote"]
    st = nb.statuses()
    assert st["remote.loader"] == "computed"
    assert st["n_remote"] == "cached"  # early cutoff: the data was the same


# -- real module shapes a notebook must accept -------------------------------------------------


def test_decorator_output_named_like_a_builtin_is_computed_not_bound(nb):
    with pytest.warns(UserWarning, match="`id` not bound"):
        nb.cell("""
        import pandas as pd
        from hamilton.function_modifiers import extract_columns

        @extract_columns("id", "v")
        def df() -> pd.DataFrame:
            return pd.DataFrame({"id": [1, 2], "v": [3, 4]})

        def total(id: pd.Series, v: pd.Series) -> int:
            return int((id * v).sum())
        """)
    assert nb.ns["total"] == 11
    assert nb.run("id") is id  # still the builtin
    nb.line("run id -q")  # asked for by name: bound on purpose
    assert list(nb.ns["id"]) == [1, 2]


def test_cell_computes_what_it_can_and_names_nodes_whose_inputs_do_not_exist(nb, capsys):
    # A module's column functions meant for `with_columns` need inputs that exist only there.
    nb.cell("""
    def col_3(col_1: int, col_2: int) -> int:
        return col_1 + col_2

    def final() -> int:
        return 7
    """)
    assert nb.ns["final"] == 7 and "col_3" not in nb.ns
    out = capsys.readouterr().out
    assert "`col_3` (needs `col_1`, `col_2`)" in out and "--inputs" in out
    with pytest.raises(UsageError, match="Missing input"):
        nb.cell("def only(col_1: int) -> int:\n    return col_1\n")  # nothing computable


def test_nodes_inside_a_fan_out_are_left_to_their_collect_and_never_hang(nb, capsys):
    nb.cell("""
    from hamilton.htypes import Collect, Parallelizable

    def item() -> Parallelizable[int]:
        for i in range(3):
            yield i
    """, cell_id="c1")
    nb.cell("def doubled(item: int) -> int:\n    return item * 2\n", cell_id="c2")
    assert "computed when a node takes them as `Collect[...]`" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"Add a node that takes `doubled: Collect\[\.\.\.\]`"):
        nb.line("run doubled")
    nb.cell("def total(doubled: Collect[int]) -> int:\n    return sum(doubled)\n", cell_id="c3")
    assert nb.ns["total"] == 6
    with pytest.raises(UsageError, match="Ask for `total`"):
        nb.line("run doubled")


def test_decorator_naming_another_cells_node_function_says_to_move_it(nb):
    nb.cell("def data_1() -> int:\n    return 1\n", cell_id="c1")
    with pytest.raises(UsageError, match=r"Put `_plus` in the same cell as `data_1`"):
        nb.cell("""
        from hamilton.function_modifiers import mutate

        @mutate(data_1)
        def _plus(x: int) -> int:
            return x + 1
        """, cell_id="c2")
    nb.cell("""
    from hamilton.function_modifiers import mutate

    def data_1() -> int:
        return 1

    @mutate(data_1)
    def _plus(x: int) -> int:
        return x + 1
    """, cell_id="c1")
    assert nb.ns["data_1"] == 2


@pytest.mark.parametrize("edit", ["10 * k + 1", "10 * k  # same code", "k * 10"])
def test_editing_a_node_function_defined_inside_a_factory_in_the_cell(nb, edit):
    # The node's function is nested (its name `inner`, bound as `scaled`): its source must be
    # read from where it really is in the cell, not from the cell's first lines.
    body = ("def _make(k):\n    def inner() -> int:\n        return {}\n    return inner\n\n"
            "scaled = _make(2)\n")
    nb.cell(body.format("10 * k"), cell_id="c1")
    assert nb.ns["inner"] == 20
    nb.cell(body.format(edit), cell_id="c1")
    assert nb.ns["inner"] == eval(edit.split("#")[0], {"k": 2})
    changed = edit.split("#")[0].strip() != "10 * k"
    assert nb.statuses()["inner"] == ("computed" if changed else "cached")


def test_decorated_node_function_is_analysed_from_its_own_lines(nb):
    body = ("from hamilton.function_modifiers import tag\n\nX = 1\n\n"
            "@tag(owner='me')\ndef a() -> int:\n    return {}\n")
    nb.cell(body.format(1), cell_id="c1")
    nb.cell(body.format(2), cell_id="c1")
    assert nb.ns["a"] == 2 and nb.statuses()["a"] == "computed"
    fn = nb.session.dag.cells["c1"].functions["a"]
    assert nb.session.dag.cells["c1"].fdefs["a"].name == "a" and fn.__name__ == "a"

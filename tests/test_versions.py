"""Never stale: one test per cause that must invalidate a cached value (issue 3), and the
changes that must not. Data fingerprints are tested directly and end to end."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dag_sources import A_TO_B

import hamilton_nb
from hamilton_nb.versions import fingerprint

# -- helpers -----------------------------------------------------------------------------------


def _node(body: str) -> str:
    return textwrap.dedent(body)


def _rerun(ps, node, calls, **inputs):
    """Run ``node``; return (status of node, how many times its body ran)."""
    before = calls.count(node)
    value = ps.run(node, **inputs)[node]
    return ps.statuses()[node], calls.count(node) - before, value


CHAIN = A_TO_B


# -- code --------------------------------------------------------------------------------------


def test_own_code_change_recomputes(ps, calls):
    ps.cell(CHAIN)
    ps.run("b")
    ps.cell(CHAIN.replace("a + 1", "a + 2"))
    status, ran, value = _rerun(ps, "b", calls)
    assert (status, ran, value) == ("computed", 1, 3)
    assert ps.statuses()["a"] == "cached"


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("return a + 1", "return a + 1  # add one"),
        lambda s: s.replace("def b(a: int) -> int:\n",
                            'def b(a: int) -> int:\n    """Add one."""\n'),
        lambda s: s.replace("return a + 1", "return (a\n            + 1)"),
        lambda s: s.replace("return a + 1", "return a+1"),
        lambda s: "\n\n# a comment above everything\n\n" + s,
    ],
    ids=["comment", "docstring", "line_break", "spacing", "moved_down"],
)
def test_comment_docstring_or_formatting_change_does_not_recompute(ps, calls, edit):
    ps.cell(CHAIN)
    ps.run("b")
    ps.cell(edit(CHAIN))
    status, ran, _ = _rerun(ps, "b", calls)
    assert (status, ran) == ("cached", 0)


def test_comment_change_in_a_notebook_helper_does_not_recompute(nb, calls):
    nb.run("def helper(x):\n    return x * 2\n")
    nb.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return helper(2)\n",
            cell_id="c1")
    nb.run("\n\ndef helper(x):\n    # doubles\n    return x * 2  # really\n")
    nb.line("run y")
    assert nb.statuses()["y"] == "cached"
    assert calls.count("y") == 1


def test_decorator_argument_change_recomputes(ps, calls):
    body = """
        from hamilton.function_modifiers import parameterize, value

        @parameterize(scaled=dict(k=value({k})))
        def scale(k: int) -> int:
            hnb_calls.log.append("scaled")
            return 10 * k
    """
    ps.cell(body.format(k=2))
    assert ps.run("scaled")["scaled"] == 20
    assert _rerun(ps, "scaled", calls)[:2] == ("cached", 0)
    ps.cell(body.format(k=3))
    assert _rerun(ps, "scaled", calls) == ("computed", 1, 30)


def test_constant_used_in_a_decorator_argument_recomputes(ps, calls):
    body = """
        from hamilton.function_modifiers import parameterize, value

        @parameterize(scaled=dict(k=value(LIMIT)))
        def scale(k: int) -> int:
            hnb_calls.log.append("scaled")
            return 10 * k
    """
    ps.exec("LIMIT = 2")
    ps.cell(body)
    assert ps.run("scaled")["scaled"] == 20
    assert _rerun(ps, "scaled", calls)[:2] == ("cached", 0)
    ps.exec("LIMIT = 3")
    ps.cell(body)  # re-running the cell re-applies the decorator
    assert _rerun(ps, "scaled", calls) == ("computed", 1, 30)


def test_default_argument_change_recomputes(ps, calls):
    body = "def y(k: int = {k}) -> int:\n    hnb_calls.log.append('y')\n    return k\n"
    ps.cell(body.format(k=2))
    assert ps.run("y")["y"] == 2
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)
    ps.cell(body.format(k=3))
    assert _rerun(ps, "y", calls) == ("computed", 1, 3)


def test_helper_change_recomputes_transitively(ps, calls):
    ps.exec("def inner(x):\n    return x + 1\n\ndef outer(x):\n    return inner(x) * 2\n")
    ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return outer(1)\n")
    assert ps.run("y")["y"] == 4
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)
    ps.exec("def inner(x):\n    return x + 10\n")  # only the helper's helper changes
    assert _rerun(ps, "y", calls) == ("computed", 1, 22)


def test_helper_change_in_real_notebook_cells_recomputes(nb, calls):
    nb.run("def inner(x):\n    return x + 1\n")
    nb.run("def outer(x):\n    return inner(x) * 2\n")
    nb.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return outer(1)\n",
            cell_id="c1")
    assert nb.value("y") == 4
    nb.run("def inner(x):\n    return x + 10\n")
    nb.line("run y")
    assert nb.statuses()["y"] == "computed"
    assert nb.value("y") == 22


GLOBAL_CHANGES = {
    # id: (setup, y's return type and expression, y before, change, y after the change)
    "module_level_constant": ("K = 2", "int", "K * 10", 20, "K = 3", 30),
    "constant_mutated_in_place": ("WEIGHTS = [1, 2]", "int", "sum(WEIGHTS)", 3,
                                  "WEIGHTS.append(4)", 7),
    "constant_read_inside_a_comprehension": ("K = 2", "list", "[i * K for i in range(3)]",
                                             [0, 2, 4], "K = 3", [0, 3, 6]),
    "constant_read_by_a_helper": ("K = 2\ndef helper():\n    return K\n", "int", "helper()", 2,
                                  "K = 5", 5),
    "notebook_class_method": ("class Scaler:\n    def apply(self, x):\n        return x * 2\n",
                              "int", "Scaler().apply(3)", 6,
                              "class Scaler:\n    def apply(self, x):\n        return x * 2 + 1\n",
                              7),
}


@pytest.mark.parametrize("kind", list(GLOBAL_CHANGES))
def test_change_of_a_global_the_node_reads_recomputes(ps, calls, kind):
    setup, returns, expr, before, change, after = GLOBAL_CHANGES[kind]
    ps.exec(setup)
    ps.cell(f"def y() -> {returns}:\n    hnb_calls.log.append('y')\n    return {expr}\n")
    assert ps.run("y")["y"] == before
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)
    ps.exec(change)
    assert _rerun(ps, "y", calls) == ("computed", 1, after)


def test_unrelated_constant_change_does_not_recompute(ps, calls):
    ps.exec("K = 2\nOTHER = 1")
    ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return K\n")
    ps.run("y")
    ps.exec("OTHER = 99")
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)


def test_instance_of_redefined_notebook_class_recomputes(nb, calls):
    # In a real shell: classes live in __main__, so pickle (joblib.hash) can name them.
    cls = ("class Scaler:\n    def __init__(self, k):\n        self.k = k\n"
           "    def apply(self, x):\n        return x * self.k{extra}\n\nscaler = Scaler(2)\n")
    nb.run(cls.format(extra=""))
    nb.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return scaler.apply(3)\n",
            cell_id="c1")
    nb.line("run y")
    assert nb.statuses()["y"] == "cached"
    nb.run(cls.format(extra=" + 1"))
    nb.line("run y")
    assert nb.value("y") == 7


def test_partial_of_redefined_helper_recomputes(nb, calls):
    nb.run("import functools\ndef f(x, k):\n    return x * k\nhelper = functools.partial(f, k=2)\n")
    nb.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return helper(3)\n",
            cell_id="c1")
    nb.line("run y")
    assert nb.statuses()["y"] == "cached"
    nb.run("def f(x, k):\n    return x * k + 1\nhelper = functools.partial(f, k=2)\n")
    nb.line("run y")
    assert nb.value("y") == 7


def test_instance_of_notebook_class_with_changed_state_recomputes(nb, calls):
    nb.run("class Cfg:\n    def __init__(self, k):\n        self.k = k\n\ncfg = Cfg(2)\n")
    nb.cell("def y() -> int:\n    return cfg.k * 10\n", cell_id="c1")
    nb.line("run y")
    assert nb.statuses()["y"] == "cached"
    nb.run("cfg = Cfg(3)")
    nb.line("run y")
    assert nb.statuses()["y"] == "computed"
    assert nb.value("y") == 30


def test_function_imported_from_a_user_module_change_recomputes(ps, calls, tmp_path,
                                                                  monkeypatch):
    mod = tmp_path / "hnb_usermod_a.py"
    mod.write_text("def f(x):\n    return x * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ps.exec("from hnb_usermod_a import f")
    ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return f(3)\n")
    assert ps.run("y")["y"] == 6
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)
    mod.write_text("def f(x):\n    return x * 2 + 1\n")
    importlib.invalidate_caches()
    ps.exec("import importlib, hnb_usermod_a\nimportlib.reload(hnb_usermod_a)\n"
            "from hnb_usermod_a import f")
    assert _rerun(ps, "y", calls) == ("computed", 1, 7)
    sys.modules.pop("hnb_usermod_a", None)


def test_user_module_attribute_change_recomputes(ps, calls, tmp_path, monkeypatch):
    mod = tmp_path / "hnb_usermod_b.py"
    mod.write_text("def f(x):\n    return x * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ps.exec("import hnb_usermod_b")
    ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return hnb_usermod_b.f(3)\n")
    assert ps.run("y")["y"] == 6
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)
    mod.write_text("def f(x):\n    return x * 2 + 1\n")
    importlib.invalidate_caches()
    importlib.reload(sys.modules["hnb_usermod_b"])
    try:
        assert _rerun(ps, "y", calls) == ("computed", 1, 7)
    finally:
        sys.modules.pop("hnb_usermod_b", None)


# -- data fingerprints --------------------------------------------------------------------------


def _df(**kw):
    base = dict(x=[1, 2, 3], y=["a", "b", "c"])
    base.update(kw)
    return pd.DataFrame(base)


DIFFERENT = {
    "df_column_name": (_df(), _df().rename(columns={"x": "z"})),
    "df_column_order": (_df(), _df()[["y", "x"]]),
    "df_dtype": (_df(), _df().astype({"x": "float64"})),
    "df_int_width": (_df(), _df().astype({"x": "int32"})),
    "df_index": (_df(), _df().set_axis([10, 11, 12])),
    "df_index_name": (_df(), _df().rename_axis("id")),
    "df_shape": (_df(), _df().iloc[:2]),
    "df_values": (_df(), _df(x=[1, 2, 4])),
    "df_string_values": (_df(), _df(y=["a", "b", "d"])),
    "df_nan_position": (pd.DataFrame({"f": [1.0, np.nan]}), pd.DataFrame({"f": [np.nan, 1.0]})),
    "df_nullable_na": (pd.DataFrame({"i": pd.array([1, None], dtype="Int64")}),
                       pd.DataFrame({"i": pd.array([1, 0], dtype="Int64")})),
    "df_categories": (pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["a", "b"])}),
                      pd.DataFrame({"c": pd.Categorical(["a", "b"], categories=["b", "a"])})),
    "df_object_mixed": (pd.DataFrame({"o": pd.Series([1, "1"], dtype=object)}),
                        pd.DataFrame({"o": pd.Series(["1", 1], dtype=object)})),
    "series_name": (pd.Series([1, 2], name="a"), pd.Series([1, 2], name="b")),
    "np_dtype": (np.arange(6, dtype=np.int64), np.arange(6, dtype=np.int32)),
    "np_shape": (np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2)),
    "np_values": (np.arange(6), np.arange(1, 7)),
    "np_byteorder": (np.arange(3, dtype="<i4"), np.arange(3, dtype=">i4")),
    "np_float_vs_int_scalar": (np.int64(1), np.float64(1)),
    "arrow_schema_name": (pa.table({"x": [1, 2]}), pa.table({"z": [1, 2]})),
    "arrow_schema_type": (pa.table({"x": pa.array([1, 2], pa.int64())}),
                          pa.table({"x": pa.array([1, 2], pa.int32())})),
    "arrow_values": (pa.table({"x": [1, 2]}), pa.table({"x": [1, 3]})),
    "arrow_nulls": (pa.array([1, None]), pa.array([1, 0])),
    "arrow_slices": (pa.array([1, 2, 3]).slice(0, 2), pa.array([1, 2, 3]).slice(1, 2)),
    "arrow_dictionary": (pa.array(["a", "b"]).dictionary_encode(),
                         pa.array(["b", "a"]).dictionary_encode()),
    "scalar_int_vs_str": (1, "1"),
    "scalar_int_vs_float": (1, 1.0),
    "scalar_int_vs_bool": (1, True),
    "none_vs_zero": (None, 0),
    "bytes_vs_str": (b"a", "a"),
    "list_vs_tuple": ([1, 2], (1, 2)),
    "nested_df_dtype": ({"d": _df()}, {"d": _df().astype({"x": "float64"})}),
    "set_members": ({1, 2}, {1, "2"}),
    "big_list": (list(range(2000)), [*range(1999), "1999"]),
}


@pytest.mark.parametrize("kind", list(DIFFERENT))
def test_fingerprint_differs_when_content_or_schema_differs(kind):
    left, right = DIFFERENT[kind]
    assert fingerprint(left) != fingerprint(right)


def test_fingerprint_of_masked_array_covers_the_mask():
    a = np.ma.array([1, 2, 3], mask=[False, True, False])
    b = np.ma.array([1, 2, 3], mask=[False, False, False])
    assert fingerprint(a) != fingerprint(b)



@pytest.mark.parametrize("make", [
    lambda: np.array(["2024-01-01"], dtype="datetime64[ns]"),
    lambda: np.array([1], dtype="timedelta64[s]"),
    lambda: pd.DataFrame({"t": pd.to_datetime(["2024-01-01"])}),
    lambda: pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]).tz_localize("UTC")}),
    lambda: pd.Series(pd.to_timedelta([1], unit="s")),
], ids=["np_datetime64", "np_timedelta64", "df_datetime", "df_datetime_tz", "series_timedelta"])
def test_fingerprint_of_datetime_data_works(make):
    assert fingerprint(make()) == fingerprint(make())


def test_fingerprint_of_datetime_column_covers_its_timezone():
    utc = pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]).tz_localize("UTC")})
    assert fingerprint(utc) != fingerprint(utc.astype({"t": "datetime64[ns, Europe/Paris]"}))


def test_node_returning_datetime_frame_is_computed_and_then_cached(ps, calls):
    ps.exec("import pandas as pd")
    ps.cell("""
        def stamps() -> pd.DataFrame:
            hnb_calls.log.append("stamps")
            return pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02"])})

        def n(stamps: pd.DataFrame) -> int:
            return len(stamps)
    """)
    assert ps.run("n")["n"] == 2
    assert _rerun(ps, "stamps", calls)[:2] == ("cached", 0)


SAME = {
    "df": (lambda: _df()),
    "df_strings_arrow": (lambda: pd.DataFrame({"s": pd.array(["a", None], dtype="str")})),
    "np_view_vs_copy": None,
    "arrow_table": (lambda: pa.table({"x": [1, 2], "s": ["a", "b"]})),
    "dict": (lambda: {"a": [1, 2], "b": np.arange(3)}),
    "set": (lambda: {3, 1, 2}),
}


@pytest.mark.parametrize("kind", list(SAME))
def test_fingerprint_is_equal_for_equal_values_built_separately(kind):
    if kind == "np_view_vs_copy":
        base = np.arange(12).reshape(3, 4)
        view = base[:, ::2]
        assert fingerprint(view) == fingerprint(view.copy())
        return
    make = SAME[kind]
    assert fingerprint(make()) == fingerprint(make())


UPSTREAM = """
import pandas as pd

def described(frame: pd.DataFrame) -> str:
    hnb_calls.log.append("described")
    return repr(frame.dtypes.to_dict()) + repr(frame.shape) + repr(list(frame.index))
"""


@pytest.mark.parametrize("kind", [k for k in DIFFERENT if k.startswith("df_")])
def test_upstream_dataframe_change_recomputes_downstream(ps, calls, kind):
    left, right = DIFFERENT[kind]
    ps.exec("import pandas as pd")  # see test_cell_can_import_what_its_annotations_use
    ps.cell(UPSTREAM)
    ps.run("described", frame=left)
    assert _rerun(ps, "described", calls, frame=left.copy())[:2] == ("cached", 0)
    assert _rerun(ps, "described", calls, frame=right)[:2] == ("computed", 1)


def test_upstream_node_value_change_recomputes_downstream(ps, calls):
    ps.exec("import pandas as pd\nSRC = pd.DataFrame({'x': [1, 2]})")
    ps.cell("""
        import pandas as pd

        def raw() -> pd.DataFrame:
            hnb_calls.log.append("raw")
            return SRC.copy()

        def total(raw: pd.DataFrame) -> int:
            hnb_calls.log.append("total")
            return int(raw["x"].sum())
    """)
    assert ps.run("total")["total"] == 3
    assert _rerun(ps, "total", calls)[:2] == ("cached", 0)
    ps.exec("SRC = pd.DataFrame({'x': [1, 5]})")
    assert _rerun(ps, "total", calls) == ("computed", 1, 6)
    assert ps.statuses()["raw"] == "computed"


@pytest.mark.parametrize("left,right", [(1, "1"), (1, 1.0), (np.arange(3), np.arange(3.0)),
                                        (pa.array([1, 2]), pa.array([1, 3]))],
                         ids=["int_vs_str", "int_vs_float", "np_int_vs_float", "arrow_values"])
def test_external_input_change_recomputes(ps, calls, left, right):
    ps.cell("def y(v: object) -> str:\n    hnb_calls.log.append('y')\n    return repr(v)\n")
    ps.run("y", v=left)
    assert _rerun(ps, "y", calls, v=left)[:2] == ("cached", 0)
    assert _rerun(ps, "y", calls, v=right)[:2] == ("computed", 1)


def test_external_input_from_notebook_variable_change_recomputes(ps, calls):
    ps.exec("n = 2")
    ps.cell("def y(n: int) -> int:\n    hnb_calls.log.append('y')\n    return n * 10\n")
    assert ps.run("y")["y"] == 20
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)
    ps.exec("n = 3")
    assert _rerun(ps, "y", calls) == ("computed", 1, 30)


# -- config --------------------------------------------------------------------------------------


def test_config_value_used_as_input_change_recomputes(ps, calls):
    ps.cell("def y(threshold: int) -> int:\n    hnb_calls.log.append('y')\n"
            "    return threshold * 10\n")
    ps.s.set_config({"threshold": 1})
    assert ps.run("y")["y"] == 10
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)
    ps.s.set_config({"threshold": 2})
    assert _rerun(ps, "y", calls) == ("computed", 1, 20)


def test_config_when_change_recomputes(ps, calls):
    ps.cell("""
        from hamilton.function_modifiers import config

        @config.when(mode="a")
        def model__a() -> str:
            hnb_calls.log.append("model")
            return "A"

        @config.when(mode="b")
        def model__b() -> str:
            hnb_calls.log.append("model")
            return "B"
    """)
    ps.s.set_config({"mode": "a"})
    assert ps.run("model")["model"] == "A"
    assert _rerun(ps, "model", calls)[:2] == ("cached", 0)
    ps.s.set_config({"mode": "b"})
    assert _rerun(ps, "model", calls) == ("computed", 1, "B")
    ps.s.set_config({"mode": "a"})
    assert _rerun(ps, "model", calls) == ("cached", 0, "A")


def test_config_when_on_same_function_with_different_config_value_recomputes(ps, calls):
    # One function, active for two values of the key: its value may depend on the config.
    ps.cell("""
        from hamilton.function_modifiers import config

        @config.when_in(mode=["a", "b"])
        def model(mode: str) -> str:
            hnb_calls.log.append("model")
            return mode.upper()
    """)
    ps.s.set_config({"mode": "a"})
    assert ps.run("model")["model"] == "A"
    assert _rerun(ps, "model", calls)[:2] == ("cached", 0)
    ps.s.set_config({"mode": "b"})
    assert _rerun(ps, "model", calls) == ("computed", 1, "B")


def test_unrelated_config_key_does_not_recompute(ps, calls):
    ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return 1\n")
    ps.s.set_config({"other": 1})
    ps.run("y")
    ps.s.set_config({"other": 2})
    assert _rerun(ps, "y", calls)[:2] == ("cached", 0)


# -- data files ------------------------------------------------------------------------------------

READER = """
def text(path: str) -> str:
    hnb_calls.log.append("text")
    with open(path) as fh:
        return fh.read()
"""


def test_data_file_content_change_recomputes(ps, calls, tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    ps.exec(f"import hamilton_nb\npath = hamilton_nb.DataFile({str(f)!r})")
    ps.cell(READER)
    assert ps.run("text")["text"] == "a,b\n1,2\n"
    assert _rerun(ps, "text", calls)[:2] == ("cached", 0)
    f.write_text("a,b\n1,3\n")  # same size, same name
    assert _rerun(ps, "text", calls) == ("computed", 1, "a,b\n1,3\n")


def test_data_file_rewritten_with_same_content_stays_cached(ps, calls, tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    ps.cell(READER)
    ps.run("text", path=hamilton_nb.DataFile(f))
    os.utime(f, ns=(10**18, 10**18))
    f.write_text("a,b\n1,2\n")
    assert _rerun(ps, "text", calls, path=hamilton_nb.DataFile(f))[:2] == ("cached", 0)


def test_data_file_by_stat_recomputes_when_size_or_mtime_changes(ps, calls, tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    ps.cell(READER)
    ps.run("text", path=hamilton_nb.DataFile(f, by="stat"))
    assert _rerun(ps, "text", calls, path=hamilton_nb.DataFile(f, by="stat"))[:2] == \
        ("cached", 0)
    st = f.stat()
    f.write_text("a,b\n1,2\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # only mtime changes
    assert _rerun(ps, "text", calls, path=hamilton_nb.DataFile(f, by="stat"))[:2] == \
        ("computed", 1)
    f.write_text("a,b\n1,2,3\n")
    assert _rerun(ps, "text", calls, path=hamilton_nb.DataFile(f, by="stat")) == \
        ("computed", 1, "a,b\n1,2,3\n")


def test_plain_string_path_is_keyed_by_name_only(ps, calls, tmp_path):
    # The documented contract: only a DataFile makes the content part of the key.
    f = tmp_path / "data.csv"
    f.write_text("one")
    ps.cell(READER)
    ps.run("text", path=str(f))
    f.write_text("two")
    assert _rerun(ps, "text", calls, path=str(f))[:2] == ("cached", 0)
    assert _rerun(ps, "text", calls, path=hamilton_nb.DataFile(f))[:2] == ("computed", 1)


def test_data_file_rejects_unknown_mode():
    with pytest.raises(ValueError, match="content"):
        hamilton_nb.DataFile("x.csv", by="hash")


# -- the fast code analysis says exactly what the standard library would ------------------------

_CORPUS = ["json", "ast", "dis", "inspect", "typing", "dataclasses", "argparse", "email.message",
           "hamilton.driver", "hamilton.function_modifiers.base", "hamilton_nb.session"]


def _corpus_trees():
    import ast

    for name in _CORPUS:
        path = importlib.import_module(name).__file__
        with open(path, encoding="utf-8") as f:
            yield path, ast.parse(f.read())


def test_bytecode_name_scan_reports_what_dis_reports_for_every_code_object():
    import dis
    import types

    from hamilton_nb import versions as V

    def by_dis(code):
        g, im = set(), set()
        for ins in dis.get_instructions(code):
            if ins.opname in V._GLOBAL_OPS and isinstance(ins.argval, str):
                g.add(ins.argval)
            elif ins.opname == "IMPORT_NAME" and ins.argval:
                im.add(ins.argval)
        return g, im

    codes = []

    def walk(c):
        codes.append(c)
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                walk(k)

    for path, tree in _corpus_trees():
        walk(compile(tree, path, "exec"))
    # more than 256 names: arguments that need EXTENDED_ARG
    walk(compile("\n".join(f"v{i} = g{i}" for i in range(700)) + "\nimport os.path\n",
                 "<many>", "exec"))
    assert len(codes) > 1000
    assert [by_dis(c) for c in codes] == [V._scan_names(c) for c in codes]


def test_fast_ast_dump_is_ast_dump_and_docstrings_go_at_every_depth():
    import ast

    from hamilton_nb import versions as V

    n = 0
    for _, tree in _corpus_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                n += 1
                assert V._dump(node) == ast.dump(node, annotate_fields=False,
                                                 include_attributes=False)
    assert n > 500
    with_doc = ast.parse('def f():\n    """doc"""\n    class C:\n        """inner"""\n'
                         '        def g(self):\n            """deep"""\n            return 1\n'
                         '    return C\n').body[0]
    without = ast.parse("def f():\n    class C:\n        def g(self):\n            return 1\n"
                        "    return C\n").body[0]
    assert V._dump_without_docstrings(with_doc) == V._dump_without_docstrings(without)
    assert "'doc'" in ast.dump(with_doc)  # the tree itself is left as it was

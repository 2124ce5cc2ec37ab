"""The live DAG and the magics, in a real in-process IPython shell (issue 2)."""

from __future__ import annotations

import pytest
from dag_sources import A_TO_B
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import hamilton_nb
from hamilton_nb.magics import HELP

CHAIN = A_TO_B + """
def c(b: int) -> int:
    hnb_calls.log.append("c")
    return b * 10
"""


def _ours_pre_run(ip) -> list:
    return [cb for cb in ip.events.callbacks["pre_run_cell"]
            if getattr(cb, "__module__", "").startswith("hamilton_nb")]


def _ours_transformers(ip) -> list:
    return [t for t in ip.ast_transformers
            if type(t).__module__.startswith("hamilton_nb")]


def _snapshot(nb):
    s = nb.session
    ns = {k: v for k, v in nb.ns.items() if not k.startswith("_") and k not in ("In", "Out")}
    return (list(s.dag.order), {cid: list(c.nodes) for cid, c in s.dag.cells.items()}, ns)


# -- extension lifecycle ------------------------------------------------------------------------


def _ours_post_run(ip) -> list:
    return [cb for cb in ip.events.callbacks["post_run_cell"]
            if getattr(cb, "__module__", "").startswith("hamilton_nb.magics")]


def test_load_unload_reload_leave_exactly_one_callback_and_no_transformer(nb):
    ip = nb.ip
    assert len(_ours_pre_run(ip)) == 1
    assert len(_ours_post_run(ip)) == 1
    assert _ours_transformers(ip) == []  # values are bound when a run ends, not on mention
    ip.run_line_magic("reload_ext", "hamilton_nb")
    ip.run_line_magic("reload_ext", "hamilton_nb")
    ip.run_line_magic("load_ext", "hamilton_nb")
    assert len(_ours_pre_run(ip)) == 1
    assert len(_ours_post_run(ip)) == 1
    ip.run_line_magic("unload_ext", "hamilton_nb")
    assert _ours_pre_run(ip) == []
    assert _ours_post_run(ip) == []
    assert _ours_transformers(ip) == []
    assert "hamilton" not in ip.magics_manager.magics["cell"]
    assert "hamilton" not in ip.magics_manager.magics["line"]
    ip.run_line_magic("load_ext", "hamilton_nb")
    assert len(_ours_pre_run(ip)) == 1
    assert len(_ours_post_run(ip)) == 1
    assert "hamilton" in ip.magics_manager.magics["cell"]


def test_reload_ext_keeps_the_live_dag(nb):
    nb.cell(CHAIN, cell_id="c1")
    before = nb.session
    nb.ip.run_line_magic("reload_ext", "hamilton_nb")
    assert hamilton_nb.session() is before
    assert set(hamilton_nb.session().dag.order) == {"a", "b", "c"}


# -- cells -> nodes -----------------------------------------------------------------------------


def test_cell_functions_become_nodes_and_values_are_bound_under_node_names(nb):
    nb.cell(CHAIN, cell_id="c1")
    s = nb.session
    assert set(s.dag.nodes) == {"a", "b", "c"}
    assert set(s.dag.cells["c1"].nodes) == {"a", "b", "c"}
    assert (nb.value("a"), nb.value("b"), nb.value("c")) == (1, 2, 20)


def test_private_functions_and_constants_of_a_cell_are_not_nodes(nb):
    nb.cell("""
        SCALE = 3
        def _helper(x):
            return x * SCALE
        def scaled() -> int:
            return _helper(2)
    """, cell_id="c1")
    assert set(nb.session.dag.nodes) == {"scaled"}
    assert nb.value("scaled") == 6
    assert nb.value("SCALE") == 3  # published to the notebook


def test_rerunning_a_cell_replaces_its_nodes(nb):
    nb.cell("def x() -> int:\n    return 1\n", cell_id="c1")
    assert nb.value("x") == 1
    nb.cell("def y() -> int:\n    return 2\n", cell_id="c1")
    assert set(nb.session.dag.nodes) == {"y"}
    assert nb.value("y") == 2
    assert "x" not in nb.ns


def test_removing_a_function_from_a_cell_removes_its_node(nb):
    nb.cell(CHAIN, cell_id="c1")
    nb.cell(A_TO_B, cell_id="c1")
    assert set(nb.session.dag.nodes) == {"a", "b"}
    assert "c" not in nb.ns
    with pytest.raises(UsageError, match="c"):
        nb.line("run c")


def test_rerunning_a_cell_without_cell_id_replaces_the_cell_that_defined_its_functions(nb):
    nb.cell("def x() -> int:\n    return 1\n")
    nb.cell("def x() -> int:\n    return 2\n")
    assert len(nb.session.dag.cells) == 1
    assert nb.value("x") == 2


def test_name_option_sets_the_cell_identity(nb):
    nb.cell("def x() -> int:\n    return 1\n", line="--name first")
    nb.cell("def y() -> int:\n    return 2\n", line="--name first")
    assert list(nb.session.dag.cells) == ["first"]
    assert set(nb.session.dag.nodes) == {"y"}


BAD_CELLS = {
    "syntax_error": ("def c(b: int) -> int\n    return b\n", "", "yntax"),
    "exception_while_defining": (
        "LEAK = 5\ndef c(b: int) -> int:\n    return b * LEAK\nraise RuntimeError('boom')\n",
        "", "boom"),
    "node_of_another_cell": ("def a() -> int:\n    return 2\n", "--name c2", "already defined"),
    "cycle": ("def c(b: int, d: int) -> int:\n    return b + d\n"
              "def d(c: int) -> int:\n    return c\n", "", "cycle"),
    "type_mismatch": ("def c(b: str) -> str:\n    return b\n", "", "(?i)type"),
    "bad_decorator": ("from hamilton.function_modifiers import parameterize\n"
                      "@parameterize(oops=dict(zzz=1))\n"
                      "def c(b: int) -> int:\n    return b\n", "", "c"),
}


@pytest.mark.parametrize("kind", list(BAD_CELLS))
def test_failing_cell_raises_usage_error_and_changes_nothing(nb, kind):
    nb.cell("def a() -> int:\n    return 1\ndef b(a: int) -> int:\n    return a + 1\n",
            cell_id="c1")
    nb.cell("def c(b: int) -> int:\n    return b * 10\n", line="--name c2")
    before = _snapshot(nb)
    body, line, msg = BAD_CELLS[kind]
    with pytest.raises(UsageError, match=msg):
        nb.cell(body, line=line or "--name c2")
    assert _snapshot(nb) == before
    assert "LEAK" not in nb.ns
    assert nb.value("c") == 20
    nb.line("run c")  # the old DAG still runs
    assert nb.value("c") == 20


# -- decorators --------------------------------------------------------------------------------


def test_extract_columns_makes_a_node_per_column(nb):
    nb.run("import pandas as pd")
    nb.cell("""
        from hamilton.function_modifiers import extract_columns

        @extract_columns("x", "y")
        def frame() -> pd.DataFrame:
            return pd.DataFrame({"x": [1, 2], "y": [3, 4]})

        def total(x: pd.Series, y: pd.Series) -> int:
            return int((x + y).sum())
    """, cell_id="c1")
    assert {"frame", "x", "y", "total"} <= set(nb.session.dag.nodes)
    assert nb.value("total") == 10
    assert list(nb.value("x")) == [1, 2]


def test_parameterize_makes_one_node_per_parameterization(nb):
    nb.cell("""
        from hamilton.function_modifiers import parameterize, value

        @parameterize(p_two=dict(k=value(2)), p_three=dict(k=value(3)))
        def power(k: int) -> int:
            return 10 * k
    """, cell_id="c1")
    assert {"p_two", "p_three"} <= set(nb.session.dag.nodes)
    assert (nb.value("p_two"), nb.value("p_three")) == (20, 30)


def test_config_when_follows_the_config_option(nb):
    body = """
        from hamilton.function_modifiers import config

        @config.when(mode="fast")
        def model__fast() -> str:
            return "fast"

        @config.when(mode="slow")
        def model__slow() -> str:
            return "slow"
    """
    nb.cell(body, line="--config \"dict(mode='fast')\"", cell_id="c1")
    assert nb.value("model") == "fast"
    nb.cell(body, line="--config \"dict(mode='slow')\"", cell_id="c1")
    assert nb.value("model") == "slow"
    assert nb.statuses()["model"] == "computed"
    nb.cell(body, line="--config \"dict(mode='fast')\"", cell_id="c1")
    assert nb.value("model") == "fast"
    assert nb.statuses()["model"] == "cached"


def test_config_subcommand_sets_the_config(nb):
    nb.cell("""
        from hamilton.function_modifiers import config

        @config.when(mode="a")
        def pick__a() -> str:
            return "A"

        @config.when(mode="b")
        def pick__b() -> str:
            return "B"
    """, line="--register-only --config \"dict(mode='a')\"", cell_id="c1")
    nb.line("config dict(mode='b')")
    nb.line("run pick")
    assert nb.value("pick") == "B"


def test_check_output_validator_fails_the_run_on_bad_data(nb):
    body = """
        from hamilton.function_modifiers import check_output

        @check_output(range=(0, 10), importance="fail")
        def score() -> int:
            return {value}
    """
    nb.cell(body.format(value=5), cell_id="c1")
    assert nb.value("score") == 5
    with pytest.raises(Exception, match=r"(?i)valid|range"):
        nb.cell(body.format(value=50), cell_id="c1")


def test_tag_decorator_tags_the_node(nb):
    nb.cell("""
        from hamilton.function_modifiers import tag

        @tag(owner="team-a")
        def tagged() -> int:
            return 1
    """, cell_id="c1")
    assert nb.session.dag.nodes["tagged"].tags["owner"] == "team-a"
    assert nb.value("tagged") == 1


def test_cache_decorator_is_accepted_and_applied(nb, calls):
    body = """
        from hamilton.function_modifiers import cache

        @cache(behavior="recompute")
        def always() -> int:
            hnb_calls.log.append("always")
            return 1
    """
    nb.cell(body, cell_id="c1")
    nb.cell(body, cell_id="c1")
    assert calls.count("always") == 2
    assert nb.statuses()["always"] == "computed"


# -- namespace ----------------------------------------------------------------------------------


def test_functions_see_notebook_imports_helpers_and_constants(nb):
    nb.run("""
        import math
        FACTOR = 3
        def double(x):
            return 2 * x
    """)
    nb.cell("""
        def value() -> float:
            return double(FACTOR) + math.floor(0.5)
    """, cell_id="c1")
    assert nb.value("value") == 6


def test_cached_values_are_ordinary_variables_when_the_cell_ends(nb):
    nb.cell(CHAIN, cell_id="c1")
    nb.run("del a, b, c")
    nb.cell(CHAIN, cell_id="c1")
    assert nb.statuses() == {"a": "cached", "b": "cached", "c": "cached"}
    # Bound at once, not when some cell mentions the name: globals() and eval see them.
    assert (nb.ns["a"], nb.ns["b"], nb.ns["c"]) == (1, 2, 20)
    assert nb.run("eval('c') + globals()['b']") == 22


# -- once per computation ----------------------------------------------------------------------


def test_function_body_runs_exactly_once_per_computation(nb, calls):
    nb.cell(CHAIN, cell_id="c1")
    assert sorted(calls) == ["a", "b", "c"]
    nb.cell(CHAIN, cell_id="c1")  # all hits
    assert sorted(calls) == ["a", "b", "c"]
    nb.line("run c")
    assert sorted(calls) == ["a", "b", "c"]


def test_function_body_runs_once_when_asked_for_several_outputs(nb, calls):
    nb.cell(CHAIN, line="--register-only", cell_id="c1")
    nb.line("run a b c")
    assert sorted(calls) == ["a", "b", "c"]
    assert (nb.value("a"), nb.value("b"), nb.value("c")) == (1, 2, 20)


# -- subcommands -------------------------------------------------------------------------------


def test_run_subcommand_computes_and_binds_nodes(nb):
    nb.cell(CHAIN, line="--register-only", cell_id="c1")
    assert "c" not in nb.ns
    nb.line("run c")
    assert nb.value("c") == 20
    assert "a" not in nb.ns  # only what was asked is bound
    assert nb.statuses() == {"a": "computed", "b": "computed", "c": "computed"}


def test_run_line_of_names_split_by_commas_tabs_and_spaces_binds_each_one(nb):
    nb.cell(CHAIN, line="--register-only", cell_id="c1")
    nb.line("run a,b\t c ")
    assert (nb.value("a"), nb.value("b"), nb.value("c")) == (1, 2, 20)
    with pytest.raises(UsageError, match="--bogus"):
        nb.line("run a --bogus")  # an option still goes through the parser, refused
    with pytest.raises(UsageError, match="Unknown node"):
        nb.line("run 'a b'")  # a quoted word is one name, as before


def test_run_of_unknown_node_is_a_usage_error_naming_known_nodes(nb):
    nb.cell(CHAIN, cell_id="c1")
    with pytest.raises(UsageError, match="nope") as e:
        nb.line("run nope")
    assert "a" in str(e.value)


def test_outputs_option_computes_the_given_nodes(nb):
    nb.cell(CHAIN, line="-o b", cell_id="c1")
    assert nb.value("b") == 2
    assert "c" not in nb.ns
    assert set(nb.statuses()) == {"a", "b"}


def test_register_only_computes_nothing(nb, calls):
    nb.cell(CHAIN, line="--register-only", cell_id="c1")
    assert calls == []
    assert set(nb.session.dag.nodes) == {"a", "b", "c"}


def test_status_lists_every_node_and_its_state(nb):
    nb.cell(CHAIN, cell_id="c1")
    df = nb.line("status")
    assert list(df["node"]) == ["a", "b", "c"]
    assert set(df["cell_id"]) == {"c1"}
    assert set(df["state"]) == {"computed"}
    nb.cell(CHAIN.replace("b * 10", "b * 100"), line="--register-only", cell_id="c1")
    df = nb.line("status")
    assert dict(zip(df["node"], df["state"], strict=True))["c"] == "stale"


def test_dag_prints_each_node_with_its_inputs(nb, capsys):
    nb.cell(CHAIN, cell_id="c1")
    capsys.readouterr()
    nb.line("dag")
    out = capsys.readouterr().out
    assert "b [computed] <- a" in out
    assert "c [computed] <- b" in out


def test_reset_empties_the_live_dag(nb):
    nb.cell(CHAIN, cell_id="c1")
    nb.line("reset")
    assert nb.session.dag.nodes == {}
    with pytest.raises(UsageError):
        nb.line("run c")


@pytest.mark.parametrize("line", ["help", ""])
def test_help_prints_the_subcommands(nb, capsys, line):
    nb.line(line)
    out = capsys.readouterr().out
    assert out.strip() == HELP.strip()
    for sub in ("run", "status", "dag", "reset", "cache", "why"):
        assert f"%hamilton {sub}" in out


def test_unknown_subcommand_is_a_usage_error(nb):
    with pytest.raises(UsageError, match="help"):
        nb.line("frobnicate")


def test_bad_inputs_expression_is_a_usage_error(nb):
    nb.cell("def y(x: int) -> int:\n    return x\n", line="--register-only", cell_id="c1")
    with pytest.raises(UsageError, match="inputs"):
        nb.line("run y --inputs '[1, 2]'")


# -- external inputs ---------------------------------------------------------------------------


def test_missing_external_input_is_a_usage_error_listing_it(nb):
    with pytest.raises(UsageError) as e:
        nb.cell("def y(path: str, n: int) -> str:\n    return path * n\n", cell_id="c1")
    assert "path" in str(e.value) and "n" in str(e.value)
    assert "y" in nb.session.dag.nodes  # registered, just not computed


def test_external_inputs_come_from_notebook_variables(nb):
    nb.run("n = 4")
    nb.cell("def y(n: int) -> int:\n    return n * 2\n", cell_id="c1")
    assert nb.value("y") == 8
    nb.run("n = 5")
    nb.line("run y")
    assert nb.value("y") == 10


def test_external_inputs_come_from_the_inputs_option(nb):
    nb.cell("def y(n: int) -> int:\n    return n * 2\n", line="--inputs 'dict(n=21)'",
            cell_id="c1")
    assert nb.value("y") == 42
    nb.line("run y --inputs 'dict(n=1)'")
    assert nb.value("y") == 2


def test_inputs_option_wins_over_notebook_variable(nb):
    nb.run("n = 1")
    nb.cell("def y(n: int) -> int:\n    return n * 2\n", line="--inputs 'dict(n=3)'",
            cell_id="c1")
    assert nb.value("y") == 6


def test_optional_input_with_default_needs_no_value(nb):
    nb.cell("def y(k: int = 7) -> int:\n    return k\n", cell_id="c1")
    assert nb.value("y") == 7


def test_overrides_replace_a_node_value(nb, calls):
    nb.cell(CHAIN, line="--register-only", cell_id="c1")
    nb.line("run c --overrides 'dict(b=5)'")
    assert nb.value("c") == 50
    assert "a" not in calls and "b" not in calls


# -- last_run and failures ----------------------------------------------------------------------


def test_last_run_has_node_and_status_columns(nb):
    nb.cell(CHAIN, cell_id="c1")
    df = hamilton_nb.session().last_run()
    assert {"node", "status"} <= set(df.columns)
    assert list(df["node"]) == ["a", "b", "c"]
    assert set(df["status"]) == {"computed"}
    nb.line("run c")
    assert set(hamilton_nb.session().last_run()["status"]) == {"cached"}


FAILING = A_TO_B + """
def c(b: int) -> float:
    hnb_calls.log.append("c")
    return b / {divisor}

def d(c: float) -> float:
    hnb_calls.log.append("d")
    return c + 1
"""


def test_failing_node_raises_its_own_exception_keeps_upstream_and_skips_downstream(nb, calls):
    with pytest.raises(ZeroDivisionError):
        nb.cell(FAILING.format(divisor=0), cell_id="c1")
    assert nb.statuses() == {"a": "computed", "b": "computed", "c": "failed", "d": "skipped"}
    df = hamilton_nb.session().last_run().set_index("node")
    assert "ZeroDivisionError" in df.loc["c", "error"]
    cached_nodes = set(nb.session.cache_entries()["node"])
    assert {"a", "b"} <= cached_nodes
    assert not {"c", "d"} & cached_nodes


def test_rerun_after_fix_resumes_at_the_failed_node(nb, calls):
    with pytest.raises(ZeroDivisionError):
        nb.cell(FAILING.format(divisor=0), cell_id="c1")
    calls.clear()
    nb.cell(FAILING.format(divisor=2), cell_id="c1")
    assert nb.statuses() == {"a": "cached", "b": "cached", "c": "computed", "d": "computed"}
    assert sorted(calls) == ["c", "d"]
    assert nb.value("d") == 2.0


def test_failure_in_one_branch_still_computes_the_other(nb):
    with pytest.raises(ValueError):
        nb.cell("""
            def root() -> int:
                return 1
            def bad(root: int) -> int:
                raise ValueError("bad branch")
            def good(root: int) -> int:
                return root + 1
        """, cell_id="c1")
    st = nb.statuses()
    assert st["bad"] == "failed"
    assert st["good"] == "computed"


def test_cell_can_import_what_its_annotations_use(nb):
    nb.cell("""
        import pandas as pd

        def frame() -> pd.DataFrame:
            return pd.DataFrame({"x": [1, 2]})
    """, cell_id="c1")
    assert list(nb.value("frame")["x"]) == [1, 2]


def test_dag_output_carries_the_state_for_the_lab_renderer(nb):
    from hamilton_nb.report import DAG_MIME

    nb.cell(CHAIN, cell_id="c1")
    with capture_output() as cap:
        nb.line("dag")
    bundle = cap.outputs[0].data
    assert "b [computed] <- a" in bundle["text/plain"]
    state = bundle[DAG_MIME]["state"]
    assert {n["name"]: n["deps"] for n in state["nodes"]} == {"a": [], "b": ["a"], "c": ["b"]}


@pytest.mark.parametrize("line", ["--inputs 3", "--overrides [1]", "-o nowhere",
                                  "--config dict(mode='x') -o nowhere", "--config 5"])
def test_bad_cell_option_is_a_usage_error_and_changes_nothing(nb, line):
    nb.cell("def a() -> int:\n    return 1\n", cell_id="c1")
    before = (sorted(nb.session.dag.nodes), dict(nb.session.dag.config), dict(nb.ns))
    with pytest.raises(UsageError):
        nb.cell("def b(a: int) -> int:\n    return a\n", line=line, cell_id="c2")
    after = (sorted(nb.session.dag.nodes), dict(nb.session.dag.config), dict(nb.ns))
    assert after == before


def test_unusable_cache_dir_is_a_usage_error_and_keeps_the_old_one(nb, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = nb.session.cache_dir
    with pytest.raises(UsageError, match="Cannot use"):
        nb.line(f"cache dir {blocker / 'cache'}")
    assert nb.session.cache_dir == before

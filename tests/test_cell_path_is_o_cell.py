"""Re-running a cell costs that cell (issue 12), shown by what the session looks at, not by
timing: which nodes a run keys, which registrations are resolved again, which last-state
records are rebuilt. (Figures are printed by benchmarks/bench_cells.py, never asserted.)"""

from __future__ import annotations

from typing import Any

import pytest
from dag_sources import chain_cell, expected_c

from hamilton_nb import checkpoint

N = 30


@pytest.fixture
def chain(nb: Any) -> Any:
    for i in range(N):
        nb.cell(chain_cell(i), cell_id=f"cell-{i}")
    return nb


def test_rerunning_an_unchanged_cell_keys_only_its_own_nodes(chain: Any) -> None:
    chain.cell(chain_cell(15), cell_id="cell-15")
    out = chain.session._last
    assert sorted(e.node for e in out.events) == ["a_15", "b_15", "c_15"]
    assert {e.status.value for e in out.events} == {"cached"}
    # Its upstream was reused without being looked at: the run names where it stopped ...
    assert out.reused == ("c_14",)
    # ... and still reports every upstream node as a hit.
    st = chain.statuses()
    assert len(st) == 16 * 3 and set(st.values()) == {"cached"}
    assert chain.value("c_15") == expected_c(15)


def test_an_unchanged_cell_keeps_its_resolved_nodes(chain: Any) -> None:
    dag = chain.session.dag
    before = dict(dag.cells["cell-15"].nodes)
    chain.cell(chain_cell(15), cell_id="cell-15")
    cell = dag.cells["cell-15"]
    assert cell.reused
    assert all(cell.nodes[k] is v for k, v in before.items())


def test_a_decorated_cell_is_resolved_again(nb: Any) -> None:
    body = ("from hamilton.function_modifiers import tag\n\n"
            "@tag(owner='me')\ndef t() -> int:\n    return 3\n")
    nb.cell(body, cell_id="deco")
    first = nb.session.dag.cells["deco"].nodes["t"]
    nb.cell(body, cell_id="deco")
    cell = nb.session.dag.cells["deco"]
    assert not cell.reused and cell.nodes["t"] is not first
    assert nb.statuses() == {"t": "cached"}


def test_editing_a_cell_keys_it_and_marks_everything_below_stale(chain: Any) -> None:
    chain.cell(chain_cell(15, const=100), cell_id="cell-15")
    out = chain.session._last
    st = {e.node: e.status.value for e in out.events}
    assert st == {"a_15": "cached", "b_15": "cached", "c_15": "computed"}
    assert out.reused == ("c_14",)
    stale = chain.session.stale_nodes()
    assert stale == {f"{p}_{i}" for i in range(16, N) for p in "abc"}
    chain.line("run --stale -q")
    assert not chain.session.stale_nodes()
    assert chain.value(f"c_{N - 1}") == expected_c(N - 1, {15: 100})


def test_the_last_state_record_rebuilds_only_the_nodes_a_run_changed(
        chain: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = checkpoint._node_record

    def spy(dag: Any, name: str, *args: Any) -> Any:
        built.append(name)
        return real(dag, name, *args)

    monkeypatch.setattr(checkpoint, "_node_record", spy)
    chain.cell(chain_cell(15), cell_id="cell-15")
    assert built == []  # nothing changed: the record is not rebuilt at all
    chain.cell(chain_cell(15, const=8), cell_id="cell-15")
    assert sorted(set(built)) == ["a_15", "b_15", "c_15"]
    state = chain.session.checkpoints._state_path().read_text()
    assert '"c_29"' in state and chain.session.checkpoints.last_state() is not None


def test_a_constant_changed_in_an_ordinary_cell_reaches_a_remembered_upstream(nb: Any) -> None:
    nb.run("K = 1")
    nb.cell("def k() -> int:\n    return K\n", cell_id="k")
    nb.cell("def m(k: int) -> int:\n    return k * 10\n", cell_id="m")
    nb.cell("def m(k: int) -> int:\n    return k * 10\n", cell_id="m")
    assert nb.session._last.reused == ("k",)
    nb.run("K = 2")
    nb.cell("def m(k: int) -> int:\n    return k * 10\n", cell_id="m")
    assert nb.value("m") == 20
    assert nb.statuses() == {"k": "computed", "m": "computed"}


def test_a_value_gone_from_the_store_under_a_remembered_run_is_computed_again(
        chain: Any) -> None:
    # c_14's entry disappears behind the session's back (another kernel evicted it): a run that
    # needs its value (c_15 edited) must not trust what it remembered.
    s = chain.session
    for e in [e for e in s.store.entries() if e.node == "c_14"]:
        s.store.delete([e.key])
    body = chain_cell(15).replace("return c_14 + 1", "return c_14 + 2")
    chain.cell(body, cell_id="cell-15")
    assert chain.value("c_15") == (expected_c(14) + 2) * 2 + 7
    st = chain.statuses()
    assert st["c_14"] == "computed" and st["a_15"] == "computed" and st["b_14"] == "cached"


def test_the_last_state_record_says_what_a_whole_rebuild_says(chain: Any) -> None:
    chain.cell(chain_cell(15, const=8), cell_id="cell-15")
    chain.cell("def extra(c_29: int) -> int:\n    return -c_29\n", cell_id="extra")
    chain.cell(chain_cell(3, const=1), cell_id="cell-3")
    s = chain.session
    saved = checkpoint._read(s.checkpoints._state_path())  # the journal, its lines applied
    whole = checkpoint.build_manifest(s)
    whole.pop("created")

    def without_times(m: dict[str, Any]) -> dict[str, Any]:
        return {**m, "nodes": {k: {f: v for f, v in r.items() if f != "at"}
                               for k, r in m["nodes"].items()}}

    assert without_times(saved) == without_times(whole)
    assert [c["cell_id"] for c in saved["cells"]][-1] == "extra"


def test_front_ends_show_the_upstream_a_run_reused_as_hits_of_that_run(chain: Any) -> None:
    from hamilton_nb.report import front_state

    chain.cell(chain_cell(15), cell_id="cell-15")
    for state in (chain.session.dag_state(), front_state(chain.session)):
        st = {n["name"]: n for n in state["nodes"]}
        assert st["a_0"]["status"] == "cached" and st["c_15"]["status"] == "cached"
        assert "nothing it depends on changed" in st["c_14"]["reason"]
        assert st["a_16"]["status"] == "computed"  # not part of that run: as it last ran

"""The front-ends' DAG state kept between builds (report.FrontStateCache): always equal to the
state built from scratch, and made again only for the nodes that changed."""

from __future__ import annotations

from typing import Any

from hamilton_nb.report import cached_front_state, front_state


def same_as_from_scratch(s: Any) -> dict[str, Any]:
    state = cached_front_state(s)
    assert state == front_state(s)
    assert cached_front_state(s, extras=False) == s.dag_state()
    # Part of it (a run's nodes, as its cell's output shows them): those nodes, the inputs
    # they read and their cells, the same dicts as in the whole state.
    for part in (["clean"], ["raw", "other"], []):
        sub = cached_front_state(s, names=part)
        wanted = [n for n in state["nodes"] if n["name"] in part or (
            n["kind"] == "input" and any(n["name"] in m["deps"] for m in state["nodes"]
                                         if m["name"] in part))]
        assert sub["nodes"] == wanted
        cells = {n["cell_id"] for n in wanted}
        assert sub["cells"] == [c for c in state["cells"] if c["cell_id"] in cells]
        assert cached_front_state(s) == state  # asking for a part forgets nothing
    return state


def test_cached_state_equals_the_state_built_from_scratch_through_edits(ps: Any) -> None:
    s = ps.s
    ps.exec("K = 2")
    ps.cell("def raw() -> int:\n    return 3\n", "c-raw")
    ps.cell("def clean(raw: int, factor: int) -> int:\n    return raw * K * factor\n",
            "c-clean")
    ps.cell("def other() -> int:\n    return 7\n", "c-other")
    same_as_from_scratch(s)  # nothing ran yet
    ps.run("clean", "other", factor=1)
    first = same_as_from_scratch(s)
    ps.run("clean", factor=1)  # served from the cache: `other` did not change
    again = same_as_from_scratch(s)
    by_name = {n["name"]: n for n in first["nodes"]}
    assert next(n for n in again["nodes"] if n["name"] == "other") is by_name["other"]
    ps.exec("K = 3")  # a global: `clean` is stale, with its reason
    state = same_as_from_scratch(s)
    assert {n["name"]: n["status"] for n in state["nodes"]}["clean"] == "stale"
    assert [c["stale"] for c in state["cells"] if c["cell_id"] == "c-clean"] == [True]
    s.clear(["other"])  # its entry went: cleared
    state = same_as_from_scratch(s)
    assert {n["name"]: n["status"] for n in state["nodes"]}["other"] == "cleared"
    ps.cell("def raw() -> int:\n    return 4\n", "c-raw")  # edited
    same_as_from_scratch(s)
    s.remove_cell("c-other")
    state = same_as_from_scratch(s)
    assert "other" not in {n["name"] for n in state["nodes"]}
    ps.run("clean", factor=2)
    same_as_from_scratch(s)
    # The same cell registered from another notebook cell: its nodes carry that cell's id.
    s.register_cell("def raw() -> int:\n    return 4\n", "c-raw", jupyter_id="nb-cell-9")
    state = same_as_from_scratch(s)
    assert {n["name"]: n["cell_id"] for n in state["nodes"]}["raw"] == "nb-cell-9"


def test_stale_reasons_follow_the_stale_set_and_the_dags_shape(ps: Any) -> None:
    # "upstream `x` is stale" is kept per (DAG shape, stale set): a dependency changed by an
    # edit, or another stale set, must give the sentence of now.
    from hamilton_nb.report import stale_reasons

    s = ps.s
    ps.cell("def a() -> int:\n    return 1\n", "ca")
    ps.cell("def b(a: int) -> int:\n    return a + 1\n", "cb")
    ps.cell("def x() -> int:\n    return 5\n", "cx")
    ps.cell("def c(b: int, x: int) -> int:\n    return b + x\n", "cc")
    ps.run("c")
    ps.cell("def a() -> int:\n    return 2\n", "ca")  # edited, not run
    first = stale_reasons(s)
    assert first["b"] == "upstream `a` is stale" and first["c"] == "upstream `b` is stale"
    assert first["a"].startswith("code")
    assert stale_reasons(s) == first  # asked again: the same
    ps.cell("def c(x: int, a: int) -> int:\n    return x + a\n", "cc")  # reads a, not b
    assert stale_reasons(s)["c"] == "upstream `a` is stale"
    assert stale_reasons(s, only=["c"]) == {"c": "upstream `a` is stale"}
    ps.run("a")  # a is fresh again: what reads it is stale for another reason
    now = stale_reasons(s)
    assert "a" not in now
    assert now["b"] == "upstream `a` changed since it ran"
    assert now["c"] == "code of `c` changed"  # (its cell was edited: its own code says most)

"""The stale nodes in DAG order (the report's first rows, the "now stale" line after a run) are
sorted again only when the stale set or the DAG order changed (issue 12): these tests change
each of them and check the order follows, through cells in a real IPython shell."""

from __future__ import annotations

from typing import Any

import pytest
from dag_sources import chain_cell


def nodes_of(cells: range) -> list[str]:
    return [f"{p}_{i}" for i in cells for p in "abc"]


N = 12


@pytest.fixture
def chain(nb: Any) -> Any:
    for i in range(N):
        nb.cell(chain_cell(i), cell_id=f"cell-{i}")
    return nb


def test_stale_order_follows_every_change_of_the_stale_set(chain: Any, capsys: Any) -> None:
    s = chain.session
    assert s.stale_in_order() == []
    chain.cell(chain_cell(5, const=100), cell_id="cell-5")
    out = capsys.readouterr().out
    assert s.stale_in_order() == nodes_of(range(6, N))
    assert s.stale_bound() == nodes_of(range(6, N))
    below = len(nodes_of(range(6, N)))
    assert f"`a_6`, `b_6`, `c_6`, `a_7`, `b_7`, `c_7`, `a_8`, `b_8` and {below - 8} more are " \
           f"now stale" in out
    # The same edit again: the stale set is unchanged, and so is its order.
    chain.cell(chain_cell(5, const=101), cell_id="cell-5")
    assert s.stale_in_order() == nodes_of(range(6, N))
    # Cell 8 re-run: it and what it needed are fresh again, what is below it stays stale.
    chain.cell(chain_cell(8), cell_id="cell-8")
    assert s.stale_in_order() == nodes_of(range(9, N))
    assert s.stale_bound() == nodes_of(range(9, N))
    # A name the user rebinds is no longer ours: it is not called stale, the node still is.
    chain.run("c_10 = 0")
    assert "c_10" in s.stale_in_order()
    # The edit undone: c_5 has its first value back, yet everything below was made from the
    # other one.
    chain.cell(chain_cell(5), cell_id="cell-5")
    assert s.stale_in_order() == nodes_of(range(6, N))
    chain.line("run --stale -q")
    assert s.stale_in_order() == [] and s.stale_bound() == []


def test_stale_order_follows_a_new_dag_order_under_the_same_stale_set(nb: Any) -> None:
    s = nb.session
    nb.cell("def r() -> int:\n    return 1\n", cell_id="r")
    nb.cell("def x(r: int) -> int:\n    return r + 1\n", cell_id="x")
    nb.cell("def y(r: int) -> int:\n    return r + 2\n", cell_id="y")
    nb.cell("def r() -> int:\n    return 5\n", cell_id="r")
    assert s.stale_in_order() == ["x", "y"]
    # x now also reads y: y comes first in the DAG, and both stay stale (x's code changed).
    nb.cell("def x(r: int, y: int) -> int:\n    return r + y\n", "--register-only",
            cell_id="x")
    assert s.stale_nodes() == {"x", "y"}
    assert s.stale_in_order() == ["y", "x"]
    nb.line("reset")
    assert s.stale_in_order() == []

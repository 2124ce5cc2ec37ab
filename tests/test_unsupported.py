"""Hamilton features hamilton_nb does not run are refused with the fix, changing nothing."""

import pytest

from hamilton_nb.graph import CellError


def test_parallelizable_cell_is_refused_with_the_fix_and_changes_nothing(ps):
    ps.exec("from hamilton.htypes import Parallelizable, Collect")
    ps.cell("""
        def base() -> int:
            return 1
    """, cell_id="c0")
    with pytest.raises(CellError, match=r"Parallelizable/Collect.*export"):
        ps.cell("""
            def items(base: int) -> Parallelizable[int]:
                for i in range(3):
                    yield i + base

            def total(items: Collect[int]) -> int:
                return sum(items)
        """, cell_id="c1")
    assert list(ps.s.dag.cells) == ["c0"]
    assert "items" not in ps.s.dag.nodes

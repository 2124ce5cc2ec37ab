"""Big values: a computed array-like value bound in the notebook is its stored file, memory-mapped.

The threshold (64 MB) is lowered here so the values stay small; the behaviour is the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hamilton_nb import store as store_mod

BIG = """
def big() -> np.ndarray:
    hnb_calls.log.append("big")
    return np.arange(300_000, dtype=np.float64)

def total(big: np.ndarray) -> float:
    hnb_calls.log.append("total")
    return float(big.sum())
"""

EXPECTED = float(np.arange(300_000, dtype=np.float64).sum())


@pytest.fixture(autouse=True)
def _small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "MAP_BOUND_BYTES", 1 << 20)


def _mapped_file(arr: Any) -> Path | None:
    """The file a numpy array's memory lives in, following views to their base."""
    while arr is not None:
        if isinstance(arr, np.memmap):
            return Path(arr.filename)
        arr = getattr(arr, "base", None)
    return None


def _value_file(nb: Any, node: str) -> Path:
    entry = nb.session.store.latest(node)
    return nb.session.store.value_path(entry.data_version, entry.fmt).resolve()


def test_big_computed_array_is_bound_memory_mapped_from_its_stored_file(nb, calls):
    nb.run("import numpy as np")
    nb.cell(BIG, line="-o big", cell_id="c1")
    assert calls == ["big"]
    assert nb.statuses()["big"] == "computed"
    assert _mapped_file(nb.ns["big"]) == _value_file(nb, "big")
    assert float(nb.ns["big"].sum()) == EXPECTED


def test_changing_a_bound_big_value_in_place_changes_neither_its_file_nor_later_runs(nb, calls):
    nb.run("import numpy as np")
    nb.cell(BIG, line="-o big", cell_id="c1")
    nb.run("big[:] = -1.0")  # copy-on-write: the notebook's own pages, never the file
    assert nb.run("float(big.sum())") == -300_000.0
    nb.line("run total")
    assert nb.ns["total"] == EXPECTED
    nb.line("run big")
    assert float(nb.ns["big"].sum()) == EXPECTED
    assert calls == ["big", "total"]


def test_big_computed_frame_is_bound_memory_mapped_with_the_same_content(nb, calls):
    nb.run("import numpy as np\nimport pandas as pd")
    nb.cell("""
    def frame() -> pd.DataFrame:
        base = np.arange(50_000, dtype=np.float64)
        return pd.DataFrame({f"c{i}": base * i for i in range(4)})
    """, cell_id="c1")
    df = nb.ns["frame"]
    assert _mapped_file(df["c3"].to_numpy()) == _value_file(nb, "frame")
    base = np.arange(50_000, dtype=np.float64)
    pd.testing.assert_frame_equal(df, pd.DataFrame({f"c{i}": base * i for i in range(4)}))


def test_big_frame_of_python_objects_is_bound_as_computed(nb, calls):
    nb.run("import numpy as np\nimport pandas as pd")
    nb.cell("""
    def words() -> pd.DataFrame:
        return pd.DataFrame({"w": [f"word{i}" for i in range(200_000)]})
    """, cell_id="c1")
    entry = nb.session.store.latest("words")
    assert entry.fmt == "joblib" and entry.size >= store_mod.MAP_BOUND_BYTES
    # unpickling every object again would cost more than it saves: the computed frame stays
    assert _mapped_file(nb.ns["words"]["w"].to_numpy()) is None
    assert nb.ns["words"]["w"].iloc[-1] == "word199999"

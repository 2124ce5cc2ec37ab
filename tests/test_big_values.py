"""Big values: a computed array-like value bound in the notebook is its stored file, memory-mapped.

The threshold (64 MB) is lowered here so the values stay small; the behaviour is the same.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

from hamilton_nb import store as store_mod
from hamilton_nb.versions import fingerprint

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


# -- loaded again: every hit maps the file afresh, verified as before ----------------------------

FRAME = """
def frame() -> pd.DataFrame:
    hnb_calls.log.append("frame")
    base = np.arange(100_000, dtype=np.float64)
    return pd.DataFrame({f"c{i}": base * i for i in range(4)})
"""


def _frame() -> pd.DataFrame:
    base = np.arange(100_000, dtype=np.float64)
    return pd.DataFrame({f"c{i}": base * i for i in range(4)})


def test_frame_changed_in_place_is_not_handed_back_by_the_next_hit(nb, calls):
    nb.run("import numpy as np\nimport pandas as pd")
    nb.cell(FRAME, cell_id="c1")
    path = _value_file(nb, "frame")
    before = path.read_bytes()
    nb.line("run frame")
    first = nb.ns["frame"]
    nb.line("run frame")  # the same file loaded again (rebuilt without joblib's unpickler)
    assert nb.ns["frame"] is not first
    assert _mapped_file(nb.ns["frame"]["c3"].to_numpy()) == path
    # changed in place every way a frame can be: its mapped data, attrs, its indexes' names
    nb.run("frame.iloc[:, 1] = -1.0\nframe.attrs['note'] = 'mine'\n"
           "frame.columns.name = 'cols'\nframe.index.name = 'rows'")
    assert _mapped_file(nb.ns["frame"]["c1"].to_numpy()) == path
    assert nb.run("float(frame['c1'].sum())") == -100_000.0
    nb.line("run frame")
    again = nb.ns["frame"]
    pd.testing.assert_frame_equal(again, _frame())
    assert again.attrs == {} and again.columns.name is None and again.index.name is None
    assert path.read_bytes() == before  # copy-on-write: the file never saw the change
    assert calls == ["frame"]


@pytest.mark.parametrize("where", ["data", "pickle"])
def test_frame_file_damaged_after_it_was_loaded_again_is_recomputed_with_a_warning(
        nb, calls, where):
    nb.run("import numpy as np\nimport pandas as pd")
    nb.cell(FRAME, cell_id="c1")
    nb.line("run frame")
    nb.line("run frame")
    path = _value_file(nb, "frame")
    data = bytearray(path.read_bytes())
    if where == "data":
        data[len(data) // 2] ^= 0xFF  # a value in the middle of the array
    else:
        at = data.rindex(b"c0c1c2c3")  # the column names, in the pickle around the data
        data[at + 6: at + 8] = b"x3"
    time.sleep(0.05)  # past the clock tick of the last write (see test_store_contract)
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        nb.line("run frame")
        nb.session.settle(wait=True)  # the background checksum, waited for
    assert any("`frame`" in str(x.message) and "damaged" in str(x.message) for x in w)
    pd.testing.assert_frame_equal(nb.ns["frame"], _frame())
    assert calls == ["frame", "frame"]


def _stored(tmp_path: Path, value: Any) -> tuple[store_mod.DiskStore, store_mod.Entry]:
    s = store_mod.DiskStore(tmp_path / "cache")
    entry = s.put("k", "n", "cv", fingerprint(value), value, "joblib", 0.1, {"deps": {}})
    assert entry.fmt == "joblib"
    return s, entry


def _tz_frame() -> pd.DataFrame:
    n = 30_000
    return pd.DataFrame({
        "i": np.arange(n), "f": np.arange(n) * 0.5, "b": np.arange(n) % 3 == 0,
        "t": pd.date_range("2024-01-01", periods=n, freq="min", tz="Europe/Paris"),
        "cat": pd.Categorical(np.arange(n) % 5), "s": ["a", "b", "c"] * (n // 3),
    })


LOADED_AGAIN = {
    "float_frame": lambda: _frame(),
    "mixed_frame": _tz_frame,
    "frame_with_attrs": lambda: _frame().rename_axis("rows").pipe(
        lambda f: (f.attrs.update(unit="m"), f)[1]),
    "series": lambda: pd.Series(np.arange(50_000, dtype=np.int32), name="s"),
    "fortran_array": lambda: np.asfortranarray(np.arange(60_000.0).reshape(300, 200)),
    "dict_of_arrays": lambda: {"a": np.arange(40_000), "b": (np.ones(3), "label")},
}


def _assert_same(got: Any, ref: Any) -> None:
    assert type(got) is type(ref)
    if isinstance(ref, pd.DataFrame):
        pd.testing.assert_frame_equal(got, ref, check_exact=True)
        assert got.attrs == ref.attrs
        assert ([type(b.values) for b in got._mgr.blocks]
                == [type(b.values) for b in ref._mgr.blocks])
    elif isinstance(ref, pd.Series):
        pd.testing.assert_series_equal(got, ref, check_exact=True)
    elif isinstance(ref, np.ndarray):
        np.testing.assert_array_equal(got, ref)
        assert got.dtype == ref.dtype and got.flags.f_contiguous == ref.flags.f_contiguous
    else:
        assert got.keys() == ref.keys()
        np.testing.assert_array_equal(got["a"], ref["a"])
        assert type(got["a"]) is type(ref["a"])
        np.testing.assert_array_equal(got["b"][0], ref["b"][0])
        assert got["b"][1] == ref["b"][1]


@pytest.mark.parametrize("name", list(LOADED_AGAIN))
def test_value_file_loaded_again_is_what_joblib_loads_and_stays_copy_on_write(tmp_path, name):
    value = LOADED_AGAIN[name]()
    s, entry = _stored(tmp_path, value)
    try:
        path = s.value_path(entry.data_version, entry.fmt)
        before = path.read_bytes()
        first = s.load(entry)  # through joblib
        again = s.load(entry)  # rebuilt from what the first load kept, over a new map
        assert again is not first
        _assert_same(again, joblib.load(path, mmap_mode="c"))
        arrays = [a for a in _arrays(again) if isinstance(a, np.memmap)]
        assert arrays and all(_mapped_file(a) == path.resolve() for a in arrays)
        for a in arrays:
            a[...] = 0  # a change in place stays in this process's pages
        _assert_same(s.load(entry), joblib.load(path, mmap_mode="c"))
        assert path.read_bytes() == before
    finally:
        s.close()


def _arrays(value: Any) -> list[np.ndarray]:
    if isinstance(value, pd.DataFrame):
        return [b.values for b in value._mgr.blocks if isinstance(b.values, np.ndarray)]
    if isinstance(value, pd.Series):
        return [value._mgr.blocks[0].values]
    if isinstance(value, dict):
        return [value["a"], value["b"][0]]
    return [value]


def test_value_holding_another_class_is_unpickled_afresh_on_every_load(tmp_path, monkeypatch):
    """Its unpickling may depend on the notebook's state at load time: every load sees the
    state of that time, as ``joblib.load`` of the file does."""
    (tmp_path / "hnb_stateful.py").write_text(
        "MODE = ['first']\n\n\nclass Thing:\n    def __init__(self):\n        self.x = 1\n\n"
        "    def __setstate__(self, state):  # a default taken when loaded\n"
        "        self.__dict__.update(state)\n        self.__dict__.setdefault('mode', MODE[0])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import hnb_stateful

    monkeypatch.setitem(sys.modules, "hnb_stateful", hnb_stateful)
    s, entry = _stored(tmp_path, {"data": np.arange(300_000.0), "thing": hnb_stateful.Thing()})
    try:
        assert s.load(entry)["thing"].mode == "first"
        hnb_stateful.MODE[0] = "second"
        assert s.load(entry)["thing"].mode == "second"
    finally:
        s.close()


def test_file_changed_before_an_unverified_load_is_not_taken_for_verified(tmp_path):
    """A hit binds without reading the whole file and verifies it in the background unless
    this process already verified that very file: a rewritten one is verified again."""
    s, entry = _stored(tmp_path, np.arange(300_000.0))
    try:
        path = s.value_path(entry.data_version, entry.fmt)
        s.load(entry, verify=False)
        assert s.already_verified(entry)  # written by this process
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        time.sleep(0.05)
        path.write_bytes(bytes(data))
        s.load(entry, verify=False)  # the header is intact: it maps
        assert not s.already_verified(entry)
        assert not s.verify(entry)
    finally:
        s.close()

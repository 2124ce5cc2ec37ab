"""Node values are real notebook variables, in a real ipykernel (issue 11).

Driven over the Jupyter protocol like JupyterLab (see test_kernel.py). ``JPY_SESSION_NAME`` is
what Jupyter's server sets for a notebook's kernel; ipykernel turns it into ``__session__``,
which is how hamilton_nb tells two notebooks of one folder apart.
"""

from __future__ import annotations

import pytest
from test_kernel import SETUP, Kernel

pytestmark = pytest.mark.kernel

UP = """%%hamilton
def a() -> int:
    hnb_calls.log.append("a")
    return {a}

def b(a: int) -> int:
    hnb_calls.log.append("b")
    return a * 2
"""

DOWN = """%%hamilton
def c(b: int) -> int:
    hnb_calls.log.append("c")
    return b * 10
"""

REPORT = """
def report():
    return f"c={c}"
"""


def _kernel(tmp_path, monkeypatch, notebook: str) -> Kernel:
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / notebook))
    return Kernel(tmp_path, tmp_path / "cache")


def _start(k: Kernel) -> None:
    k.ok(SETUP, "setup")
    k.ok("%load_ext hamilton_nb", "load")


def _whos(k: Kernel) -> set[str]:
    out = k.ok("%whos")["stdout"]
    return {line.split()[0] for line in out.splitlines()[2:] if line.strip()}


def test_kernel_function_from_an_ordinary_cell_reads_nodes_after_restart_restore_and_checkpoint(
        tmp_path, monkeypatch):
    k = _kernel(tmp_path, monkeypatch, "main.ipynb")
    try:
        _start(k)
        k.ok(UP.format(a=1), "up")
        k.ok(DOWN, "down")
        k.ok(REPORT, "report")
        assert k.json("report()") == "c=20"

        # Restart + re-run every cell: all cached, every name bound, visible to report().
        k.restart()
        _start(k)
        k.ok(UP.format(a=1), "up")
        k.ok(DOWN, "down")
        k.ok(REPORT, "report")
        assert k.calls() == []
        assert k.json("report()") == "c=20"
        assert {"a", "b", "c"} <= _whos(k)

        # Restart + %hamilton restore alone.
        k.restart()
        _start(k)
        k.ok(REPORT, "report")
        out = k.ok("%hamilton restore")["stdout"]
        assert "main.ipynb" in out and "3 value(s) bound" in out
        assert k.json("report()") == "c=20"
        assert {"a", "b", "c"} <= _whos(k)
        assert k.calls() == []

        # A named checkpoint, an edit (which flags `c` stale), then checkpoint restore.
        k.ok("%hamilton checkpoint save v1")
        out = k.ok(UP.format(a=5), "up")["stdout"]
        assert "`c` is now stale" in out and "%hamilton run --stale" in out
        assert k.json("report()") == "c=20"
        k.ok("%hamilton checkpoint restore v1")
        assert k.json("report()") == "c=20" and k.json("b") == 2
    finally:
        k.close()


def test_kernel_two_notebooks_in_one_folder_restore_their_own_dags(tmp_path, monkeypatch):
    first = _kernel(tmp_path, monkeypatch, "first.ipynb")
    try:
        _start(first)
        first.ok(UP.format(a=1), "up")
    finally:
        first.close()
    second = _kernel(tmp_path, monkeypatch, "second.ipynb")
    try:
        _start(second)
        second.ok("%%hamilton\ndef w() -> str:\n    return 'second'\n", "w")
        second.restart()
        _start(second)
        second.ok("%hamilton restore")
        assert second.json("sorted(hamilton_nb.session().dag.nodes)") == ["w"]
        assert second.json("w") == "second"
        assert second.json("'a' in globals()") is False
    finally:
        second.close()
    again = _kernel(tmp_path, monkeypatch, "first.ipynb")
    try:
        _start(again)
        out = again.ok("%hamilton restore")["stdout"]
        assert "first.ipynb" in out
        assert again.json("sorted(hamilton_nb.session().dag.nodes)") == ["a", "b"]
        assert again.json("b") == 2
    finally:
        again.close()
    fresh = _kernel(tmp_path, monkeypatch, "third.ipynb")
    try:
        _start(fresh)
        out = fresh.ok("%hamilton restore")["stdout"]
        assert "no saved state to restore for notebook" in out and "nothing changed" in out
        assert fresh.json("len(hamilton_nb.session().dag.nodes)") == 0
    finally:
        fresh.close()


def test_kernel_stale_flag_refresh_shadowing_and_mutation_warning(tmp_path, monkeypatch):
    k = _kernel(tmp_path, monkeypatch, "nb.ipynb")
    try:
        _start(k)
        k.ok(UP.format(a=1), "up")
        k.ok(DOWN, "down")

        # Default on_change=flag: one line, the value left as it was until run --stale.
        out = k.ok(UP.format(a=2), "up")["stdout"]
        assert "`c` is now stale" in out
        assert k.json("c") == 20
        k.ok("%hamilton run --stale")
        assert k.json("c") == 40

        # on_change=refresh: downstream recomputed and rebound at the end of the cell.
        k.ok("%hamilton config on_change=refresh")
        out = k.ok(UP.format(a=3), "up")["stdout"]
        assert "refreshed `c`" in out
        assert k.json("c") == 60

        # Shadowing is refused with a one-line UsageError; nothing changes.
        k.ok("import numpy as np\nthreshold = 0.5")
        for name in ("np", "threshold", "len"):
            res = k.execute(f"%%hamilton\ndef {name}(b: int) -> int:\n    return b\n", "bad")
            assert res["status"] == "error"
            assert res["stderr"].startswith(f"UsageError: Node `{name}` would"), res["stderr"]
            assert "Traceback" not in res["stderr"]
        assert k.json("threshold") == 0.5 and k.json("np.__name__") == "numpy"
        assert k.json("sorted(hamilton_nb.session().dag.nodes)") == ["a", "b", "c"]

        # A node that changes its input in place is named in a warning.
        res = k.ok("%%hamilton\ndef base() -> list:\n    return [1, 2]\n\n"
                   "def grows(base: list) -> int:\n    base.append(3)\n    return len(base)\n",
                   "mut")
        assert "node `grows` changed its input `base` in place" in res["stderr"]
        assert k.json("base") == [1, 2]
    finally:
        k.close()

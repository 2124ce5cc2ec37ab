"""Smoke tests of the benchmarks: each --quick run works end to end (no timing checks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_cache.py"


def test_bench_cache_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout
    # the table header, for both workloads
    header = re.compile(r"^case\s+hamilton_nb\s+Hamilton\s+nb/Ham\s+target", re.M)
    assert len(header.findall(out)) == 2, out
    # ratio lines: hamilton_nb / Hamilton ratios, and the target ratio rows
    assert re.search(r"^\(a\) all-hit re-run.*\s\d+\.\d{3}x\s", out, re.M), out
    assert re.search(r"^\(b\) first run / plain run\s+\d+\.\d+x\s+\d+\.\d+x", out, re.M), out
    assert "targets met:" in out


CELLS = ROOT / "benchmarks" / "bench_cells.py"


@pytest.mark.kernel  # its end-to-end row starts a real ipykernel
def test_bench_cells_quick_runs_every_section_and_prints_the_tables() -> None:
    proc = subprocess.run(
        [sys.executable, str(CELLS), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout
    header = re.compile(r"^case\s+hamilton_nb\s+Hamilton\s+nb/Ham\s+target", re.M)
    # (1)+(3), (2), (4), (5), (6) twice and the engine-level table
    assert len(header.findall(out)) == 7, out
    assert re.search(r"^\(1\) re-run all \d+ unchanged, net / Hamilton all-hit.*\d\.\d{3}x", out,
                     re.M), out
    # the sweep: one row per notebook size, and the plot
    assert re.search(r"^\s+20\s+\d+\.\d\d\s+\d+\.\d\d", out, re.M), out
    assert "plot: build/bench_cells_sweep.png" in out
    assert (ROOT / "build" / "bench_cells_sweep.png").stat().st_size > 0
    assert re.search(r"^\(5\) `%load_ext hamilton_nb`\s+\d", out, re.M), out
    assert re.search(r"^\(6\) kernel: re-run all", out, re.M), out
    # the kernel sweep: wall / CPU per notebook size, and the net rows
    assert re.search(r"^\s+20(\s+\d+\.\d /\s*\d+\.\d\d){3}$", out, re.M), out
    assert re.search(r"^\(6\) kernel, 20 vs 5 cells: unchanged cell, net CPU\s+-?\d", out,
                     re.M), out
    assert "targets met:" in out

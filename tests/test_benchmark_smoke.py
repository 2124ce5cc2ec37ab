"""Smoke test of benchmarks/bench_cache.py: the --quick run works end to end (no timing checks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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

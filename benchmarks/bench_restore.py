"""Restore benchmark: how long `%hamilton restore` takes to bring back a 500-node DAG.

Builds a 500-node DAG (numpy array values, each node reading the previous one and one from the
previous cell), computes it once, then plays a kernel restart with a fresh session on the same
cache folder and measures:

* ``restore()``: cells re-registered and every value bound lazily (target: <= 0.5 s);
* the first access to one value after restore (one value read from disk);
* the peer path: re-running every %%hamilton cell after the restart (an all-hit run per cell).

Prints figures; it is not a test. Usage: ``python benchmarks/bench_restore.py [--nodes 500]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from hamilton_nb import Session


def _ns() -> dict:
    # The notebook's import cell (a restarted kernel runs it before `%hamilton restore`).
    return {"np": np}


def cell_bodies(n_nodes: int, per_cell: int) -> list[str]:
    bodies = []
    for c in range(0, n_nodes, per_cell):
        lines = []
        for i in range(c, min(c + per_cell, n_nodes)):
            if i == 0:
                lines += [f"def n{i}() -> np.ndarray:", "    return np.arange(1000.0)", ""]
            else:
                deps = [f"n{i - 1}"] + ([f"n{i - per_cell}"] if i >= per_cell else [])
                params = ", ".join(f"{d}: np.ndarray" for d in dict.fromkeys(deps))
                expr = " + ".join(dict.fromkeys(deps))
                lines += [f"def n{i}({params}) -> np.ndarray:", f"    return ({expr}) * 0.5 + {i}",
                          ""]
        bodies.append("\n".join(lines))
    return bodies


def measure(n_nodes: int, per_cell: int, repeat: int) -> dict[str, float]:
    bodies = cell_bodies(n_nodes, per_cell)
    last = f"n{n_nodes - 1}"
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        cache = Path(tmp) / "cache"
        s = Session(namespace=_ns(), cache_dir=cache)
        for i, body in enumerate(bodies):
            s.register_cell(body, f"cell{i}")
        t0 = time.perf_counter()
        s.run([f"n{i}" for i in range(n_nodes)])
        compute = time.perf_counter() - t0
        s.close()

        restore_t, first_t, rerun_t = [], [], []
        for _ in range(repeat):
            r = Session(namespace=_ns(), cache_dir=cache)  # a restarted kernel
            t0 = time.perf_counter()
            report = r.restore()
            restore_t.append(time.perf_counter() - t0)
            assert len(report.bound) == n_nodes and not report.failed_cells, report
            t0 = time.perf_counter()
            r.value(last)
            first_t.append(time.perf_counter() - t0)
            r.close()

            p = Session(namespace=_ns(), cache_dir=cache)  # peer: re-run every cell (all hits)
            t0 = time.perf_counter()
            for i, body in enumerate(bodies):
                cell = p.register_cell(body, f"cell{i}")
                p.bind(p.execute(list(cell.nodes)))
            rerun_t.append(time.perf_counter() - t0)
            assert set(p.last_run()["status"]) == {"cached"}
            p.close()
    return {"compute": compute, "restore": statistics.median(restore_t),
            "first_access": statistics.median(first_t), "rerun": statistics.median(rerun_t)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"restore of a {args.nodes}-node DAG (median of {args.repeat})")
    print(f"{'layout':>24} {'restore s':>10} {'1st value s':>12} {'re-run cells s':>15} "
          f"{'ratio':>6} {'first compute s':>16}")
    for per_cell in (10, 1):
        f = measure(args.nodes, per_cell, args.repeat)
        layout = f"{args.nodes // per_cell} cells x {per_cell} nodes"
        print(f"{layout:>24} {f['restore']:>10.3f} {f['first_access']:>12.4f} "
              f"{f['rerun']:>15.3f} {f['rerun'] / f['restore']:>6.1f} {f['compute']:>16.3f}")
    print("ratio = re-running every %%hamilton cell after a restart / one restore")


if __name__ == "__main__":
    main()

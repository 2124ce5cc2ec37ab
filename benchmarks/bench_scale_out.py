"""Scale-out benchmark (issue 15), driven through ``%%hamilton`` cells in an in-process IPython
shell with the extension loaded. Prints figures; asserts nothing.

1. Eight independent CPU-bound nodes of ~2 s each (pure-Python loops, so they hold the GIL):
   wall time of a cold run (empty cache) in the kernel, on local processes, on a Dask
   LocalCluster (2 worker processes) and on a local Ray (2 CPUs). Engines are started (and
   their workers warmed) before the clock starts; start-up times are printed separately.
2. A 100-item ``Parallelizable`` fan-out (~50 ms of CPU per branch): first run, the same
   run again (all hits), and after adding one item (one branch recomputes).

Usage: python benchmarks/bench_scale_out.py [--quick] [--engines local,processes,dask,ray]
``--quick`` shrinks the nodes (~0.3 s) and the fan-out (20 items) for a smoke run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time


def _calibrate(seconds: float) -> int:
    """Loop count of ``_burn`` that takes about ``seconds`` on this machine now."""
    n = 200_000
    while True:
        t0 = time.perf_counter()
        _burn(n)
        dt = time.perf_counter() - t0
        if dt > 0.2:
            return int(n * seconds / dt)
        n *= 2


def _burn(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


BURN = """
def _burn(n):
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc
"""


def eight_nodes() -> str:
    return "\n".join(f"def node{i}(loops: int) -> int:\n    return _burn(loops) + {i}\n"
                     for i in range(8))


FAN_OUT = """
from hamilton.htypes import Parallelizable, Collect

def item(names: list) -> Parallelizable[str]:
    for name in names:
        yield name

def work(item: str, branch_loops: int) -> int:
    return _burn(branch_loops) + len(item)

def summary(work: Collect[int]) -> int:
    return sum(work)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--engines", default="local,processes,dask,ray")
    args = ap.parse_args()
    engines = args.engines.split(",")
    node_s = 0.3 if args.quick else 2.0
    items = 20 if args.quick else 100

    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hamilton_nb")
    import hamilton_nb

    def cell(body: str, line: str = "-q") -> None:
        res = ip.run_cell(f"%%hamilton {line}\n" + textwrap.dedent(body))
        if not res.success:
            raise SystemExit(f"cell failed: {res.error_in_exec or res.error_before_exec}")

    def run(code: str) -> None:
        res = ip.run_cell(code)
        if not res.success:
            raise SystemExit(f"cell failed: {res.error_in_exec or res.error_before_exec}")

    session = hamilton_nb.session()
    root = tempfile.mkdtemp(prefix="bench_scale_out_")
    loops = _calibrate(node_s)
    ip.user_ns.update(loops=loops)
    run(BURN)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"nodes of ~{node_s:g} s ({loops} loop iterations)")

    print("\n8 independent CPU-bound nodes, cold cache (wall seconds)")
    base = None
    started = []
    for kind in engines:
        t0 = time.perf_counter()
        res = ip.run_cell(f"%hamilton config executor={kind}")
        if not res.success:  # e.g. a local Ray that does not start on a busy machine
            print(f"  {kind:10s} unavailable: {res.error_in_exec}")
            continue
        started.append(kind)
        startup = time.perf_counter() - t0
        run(f"%hamilton cache dir {root}/eight-{kind}")
        # Workers started and imported hamilton_nb (done in the background by the engine), and
        # one throw-away node run through the whole path.
        if session.engine is not None:
            session.engine.wait_ready()
        startup = time.perf_counter() - t0
        cell(f"def warm_{kind}() -> int:\n    return 1\n")
        t0 = time.perf_counter()
        cell(eight_nodes())
        wall = time.perf_counter() - t0
        base = base or wall
        lr = session.last_run()
        lr = lr[lr["node"].str.startswith("node")]
        where = set(lr["where"].dropna())
        # Time inside the node functions: on a machine shared with other work, a node that gets
        # less CPU takes longer wherever it runs; this tells load apart from overhead.
        print(f"  {kind:10s} {wall:6.2f} s  {wall / base:4.2f}x in-process   "
              f"(engine start {startup:5.1f} s; ran on {len(where)} worker(s); "
              f"mean node {lr['duration'].mean():.2f} s, load {os.getloadavg()[0]:.1f})")
        t0 = time.perf_counter()
        cell(eight_nodes())
        print(f"  {'':10s} re-run, all hits: {time.perf_counter() - t0:6.3f} s")

    print(f"\n{items}-item fan-out (~{node_s / 40:.3f} s per branch)")
    ip.user_ns.update(branch_loops=max(1, loops // 40))
    for kind in [k for k in started if k in ("local", "dask")]:
        run(f"%hamilton config executor={kind}")
        run(f"%hamilton cache dir {root}/fan-{kind}")
        ip.user_ns["names"] = [f"file-{i:03d}.csv" for i in range(items)]
        t0 = time.perf_counter()
        cell(FAN_OUT)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        cell(FAN_OUT)
        again = time.perf_counter() - t0
        ip.user_ns["names"] = [*ip.user_ns["names"], "file-new.csv"]
        t0 = time.perf_counter()
        cell(FAN_OUT)
        added = time.perf_counter() - t0
        reason = dict(zip(session.last_run()["node"], session.last_run()["reason"],
                          strict=True))["work"]
        print(f"  {kind:10s} first {first:6.2f} s   again {again:6.3f} s   "
              f"+1 item {added:6.3f} s = {100 * added / first:4.1f}% of first  ({reason})")
    run("%hamilton config executor=local")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

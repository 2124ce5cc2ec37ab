"""hamilton_nb's cache vs Hamilton's own ``with_cache()``: same DAGs, same process, one table.

Usage::

    python benchmarks/bench_cache.py            # full sizes (a few minutes, ~5 GB RAM peak)
    python benchmarks/bench_cache.py --quick    # small sizes: a smoke run of every code path

Two workloads (see benchmarks/README.md for what each row means):

(a) ``tiny``: a layered DAG of 500 small int/float functions (10 layers x 50), generated as
    source text. Timed: the first run in a fresh cache folder, plain Hamilton without cache, and
    all-hit re-runs. Both tools are asked for the same outputs: all 500 nodes (and, in a second
    row, only the 50 sink nodes of the last layer).
(b) ``big``: a chain of 10 nodes, each returning a ~200 MB DataFrame derived from the previous
    one by a cheap vectorized op. Timed: plain execution, the first (cold) run, an all-hit run
    asking only for the last node (against the time to load that one stored value), and a run
    after changing a constant in node 5.

hamilton_nb is driven through its plain-Python API (``Session``, one cell per layer / per
node); Hamilton through ``Builder().with_modules(mod).with_cache(path=...)`` on a module file
holding the very same functions. Only the run itself is timed (``execute``/``run``); building the
driver and registering the cells are shown in their own rows. Every timing is the median of
several repetitions (``time.perf_counter``), with ``gc.collect()`` before each, and every
first run uses a fresh temporary cache folder.
"""

from __future__ import annotations

import os

os.environ.setdefault("HAMILTON_TELEMETRY_ENABLED", "false")

import argparse
import gc
import importlib.util
import logging
import platform
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from hamilton import driver
from hamilton import version as h_version

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hamilton_nb  # noqa: E402
from hamilton_nb.session import Session  # noqa: E402

logging.getLogger("hamilton").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

QUICK = False  # --quick: sizes too small for the targets to mean anything; "met" left blank
HEADER = f"{'case':<58}{'hamilton_nb':>13}{'Hamilton':>13}{'nb/Ham':>9}  {'target':<22}{'met':<4}"

# -- helpers --------------------------------------------------------------------------------


def median_time(fn: Callable[[], Any], reps: int, setup: Callable[[], Any] | None = None) -> float:
    """Median wall time of ``fn()`` over ``reps`` runs; ``setup()`` (untimed) before each."""
    times = []
    for _ in range(reps):
        if setup is not None:
            setup()
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    gc.collect()
    return statistics.median(times)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def machine_info() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram = float("nan")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine : {cpu}, {cores} cores usable ({os.cpu_count()} logical), {ram:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"python  : {platform.python_implementation()} {platform.python_version()}",
        f"versions: hamilton_nb {hamilton_nb.__version__}, apache-hamilton "
        f"{'.'.join(map(str, h_version.VERSION))}, pandas {pd.__version__}, numpy "
        f"{np.__version__}, pyarrow {_version('pyarrow')}, joblib {joblib.__version__}, "
        f"xxhash {_version('xxhash')}",
        f"code    : {_git_state()}",
        f"load    : load average {_loadavg()} at start (figures are noisy if other work runs)",
        f"tmp dir : {tempfile.gettempdir()} (cache folders; values are written through the OS "
        f"page cache, so loads read warm pages)",
    ]


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _git_state() -> str:
    """Which hamilton_nb was measured: HEAD, plus uncommitted changes under hamilton_nb/."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.rstrip("\n")

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "hamilton_nb")
    except (OSError, subprocess.SubprocessError):
        return "? (not a git checkout)"
    if not head:
        return "? (not a git checkout)"
    files = [ln[3:] for ln in dirty.splitlines()]
    return f"git {head}" + (f" + uncommitted: {', '.join(files)}" if files else " (clean)")


def warm_memory(gb: float) -> float:
    """Touch ``gb`` GiB of fresh memory once, then free it.

    In a VM (here Firecracker) the first touch of a guest page is ~10x slower than reusing one
    (~0.5 s per 200 MB vs 0.04 s); whichever tool first grows the page cache would pay for it.
    """
    t0 = time.perf_counter()
    chunks = [np.ones(2**27 // 8) for _ in range(int(gb * 8))]  # 128 MiB each
    del chunks
    gc.collect()
    return time.perf_counter() - t0


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


class Workdir:
    """Temporary folders for modules and caches, removed at exit."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hnb-bench-"))
        self.modules = self.root / "modules"
        self.modules.mkdir()
        sys.path.insert(0, str(self.modules))

    def cache(self, tag: str) -> Path:
        return self.root / f"{tag}-{uuid.uuid4().hex[:8]}"

    def module(self, source: str, stem: str) -> Any:
        """Write ``source`` to a real .py file (Hamilton's cache reads sources with inspect)."""
        name = f"{stem}_{uuid.uuid4().hex[:8]}"
        path = self.modules / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def hamilton_cached(mod: Any, path: Path) -> driver.Driver:
    return driver.Builder().with_modules(mod).with_cache(path=str(path)).build()


def hamilton_plain(mod: Any) -> driver.Driver:
    return driver.Builder().with_modules(mod).build()


@dataclass
class Row:
    case: str
    nb: float | None  # seconds, or a plain number when unit == "x"
    ham: float | None
    target: str = ""
    met: bool | None = None
    unit: str = "s"  # "s" (shown in ms or s) | "x" (a ratio) | "ms/node"
    ratio: bool = True  # show nb/Ham


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "ms/node":
        return f"{v * 1e3:.3f} ms"
    if v < 1.0:
        return f"{v * 1e3:.1f} ms"
    return f"{v:.2f} s"


def print_table(title: str, rows: list[Row]) -> None:
    print()
    print(title)
    print(HEADER)
    print("-" * len(HEADER))
    for r in rows:
        if QUICK:
            r.met = None
        ratio = (
            f"{r.nb / r.ham:.3f}x" if r.ratio and r.nb is not None and r.ham and r.ham > 0 else "-"
        )
        met = "" if r.met is None else ("yes" if r.met else "NO")
        print(
            f"{r.case:<58}{fmt_value(r.nb, r.unit):>13}{fmt_value(r.ham, r.unit):>13}"
            f"{ratio:>9}  {r.target:<22}{met:<4}"
        )
    sys.stdout.flush()


# -- (a) 500 tiny nodes -----------------------------------------------------------------------


def tiny_layers(layers: int, width: int) -> list[str]:
    """One source block per layer. Even layers return int, odd layers float."""
    blocks = []
    for k in range(layers):
        out_t = "int" if k % 2 == 0 else "float"
        in_t = "float" if k % 2 == 0 else "int"
        fns = []
        for j in range(width):
            if k == 0:
                fns.append(f"def n_0_{j}() -> int:\n    return {j}\n")
                continue
            a, b = f"n_{k - 1}_{j}", f"n_{k - 1}_{(j + 1) % width}"
            if out_t == "int":
                body = f"int({a}) % 1009 + int({b}) % 13 + {k}"
            else:
                body = f"({a} + {b}) * 0.5 + {k}.25"
            fns.append(f"def n_{k}_{j}({a}: {in_t}, {b}: {in_t}) -> {out_t}:\n    return {body}\n")
        blocks.append("\n\n".join(fns))
    return blocks


def bench_tiny(work: Workdir, layers: int, width: int, reps: int, hit_reps: int) -> list[Row]:
    blocks = tiny_layers(layers, width)
    n_nodes = layers * width
    mod = work.module("\n\n".join(blocks) + "\n", "tiny")
    all_nodes = [f"n_{k}_{j}" for k in range(layers) for j in range(width)]
    sinks = [f"n_{layers - 1}_{j}" for j in range(width)]

    # plain Hamilton, no cache: the baseline for the per-node overhead
    plain = hamilton_plain(mod)
    ref = plain.execute(all_nodes)
    t_plain = median_time(lambda: plain.execute(all_nodes), max(reps, 5))

    ham_first, nb_first, ham_build, nb_register = [], [], [], []
    ham_hit_all = ham_hit_sinks = nb_hit_all = nb_hit_sinks = nb_hit_lazy = 0.0
    for rep in range(reps):
        last = rep == reps - 1
        # Hamilton
        path = work.cache("tiny-ham")
        gc.collect()
        t0 = time.perf_counter()
        dr = hamilton_cached(mod, path)
        ham_build.append(time.perf_counter() - t0)
        gc.collect()
        t0 = time.perf_counter()
        got = dr.execute(all_nodes)
        ham_first.append(time.perf_counter() - t0)
        assert got == ref, "Hamilton (cached) disagrees with plain Hamilton"
        if last:
            ham_hit_all = median_time(lambda dr=dr: dr.execute(all_nodes), hit_reps)
            ham_hit_sinks = median_time(lambda dr=dr: dr.execute(sinks), hit_reps)
            assert dr.execute(all_nodes) == ref
        del dr, got
        rmtree(path)
        # hamilton_nb
        path = work.cache("tiny-nb")
        gc.collect()
        t0 = time.perf_counter()
        s = Session(namespace={}, cache_dir=path)
        for k, block in enumerate(blocks):
            s.register_cell(block, f"layer-{k}")
        _ = s.store  # open the cache folder (Hamilton's build creates its stores too)
        nb_register.append(time.perf_counter() - t0)
        gc.collect()
        t0 = time.perf_counter()
        got = s.run(all_nodes)
        nb_first.append(time.perf_counter() - t0)
        assert got == ref, "hamilton_nb disagrees with plain Hamilton"
        if last:
            nb_hit_all = median_time(lambda s=s: s.run(all_nodes), hit_reps)
            nb_hit_sinks = median_time(lambda s=s: s.run(sinks), hit_reps)
            nb_hit_lazy = median_time(lambda s=s: s.execute(all_nodes), hit_reps)
            out = s.execute(all_nodes)
            assert all(e.status.value == "cached" for e in out.events), "re-run was not all-hit"
            assert s.run(all_nodes) == ref
        s.close()
        del s, got
        rmtree(path)

    nb_cold, ham_cold = statistics.median(nb_first), statistics.median(ham_first)
    nb_per_node = (nb_cold - t_plain) / n_nodes
    ham_per_node = (ham_cold - t_plain) / n_nodes
    return [
        Row(
            f"(a) setup: register {layers} cells / build cached driver",
            statistics.median(nb_register),
            statistics.median(ham_build),
        ),
        Row(f"(a) plain Hamilton, no cache, {n_nodes} outputs", None, t_plain, ratio=False),
        Row(f"(a) first run, cold cache, all {n_nodes} outputs", nb_cold, ham_cold),
        Row(
            "(a) first-run overhead per node: (cold - plain)/N",
            nb_per_node,
            ham_per_node,
            "<= 0.150 ms/node",
            nb_per_node <= 0.15e-3,
            unit="ms/node",
        ),
        Row(
            f"(a) all-hit re-run, all {n_nodes} outputs (values)",
            nb_hit_all,
            ham_hit_all,
            "<= 10 ms",
            nb_hit_all <= 0.010,
        ),
        Row(f"(a) all-hit re-run, {width} sink outputs (values)", nb_hit_sinks, ham_hit_sinks),
        Row(
            f"(a) all-hit re-run, all {n_nodes}, execute() (lazy hits)",
            nb_hit_lazy,
            None,
            ratio=False,
        ),
    ]


# -- (b) chain of big DataFrames ------------------------------------------------------------


def big_sources(n: int, rows: int, cols: int, edit: int | None = None) -> list[str]:
    """One function per node. ``edit`` changes node 5's constant (so its values change)."""
    srcs = [
        "def df_1() -> pd.DataFrame:\n"
        f"    base = np.arange({rows}, dtype=np.float64)\n"
        f"    return pd.DataFrame({{f'c{{i}}': base * (i + 1) for i in range({cols})}})\n"
    ]
    for k in range(2, n + 1):
        const = f"{k}.0" if (k != 5 or edit is None) else f"{k + 1000 * edit}.5"
        srcs.append(
            f"def df_{k}(df_{k - 1}: pd.DataFrame) -> pd.DataFrame:\n"
            f"    return df_{k - 1} * 1.0001 + {const}\n"
        )
    return srcs


MODULE_HEADER = "import numpy as np\nimport pandas as pd\n\n\n"


def bench_big(
    work: Workdir,
    n: int,
    rows: int,
    cols: int,
    reps: int,
    ham_reps: int,
    hit_reps: int,
    edit_reps: int,
) -> list[Row]:
    last = f"df_{n}"
    srcs = big_sources(n, rows, cols)
    mod = work.module(MODULE_HEADER + "\n\n".join(srcs), "big")
    mb = rows * cols * 8 / 1e6

    plain = hamilton_plain(mod)
    ref_sum = float(plain.execute([last])[last].to_numpy().sum())
    t_plain = median_time(lambda p=plain: p.execute([last]), reps)
    del plain
    gc.collect()
    print(f"  (b) plain run done: {t_plain:.2f} s; peak RSS {peak_rss_gb():.1f} GiB", flush=True)

    # -- hamilton_nb ----------------------------------------------------------------------
    nb_first = []
    s: Session | None = None
    path: Path | None = None
    for _rep in range(reps):
        if s is not None:
            s.close()
            rmtree(path)
        path = work.cache("big-nb")
        s = Session(namespace={"np": np, "pd": pd}, cache_dir=path)
        for k, src in enumerate(srcs, start=1):
            s.register_cell(src, f"df_{k}")
        _ = s.store
        gc.collect()
        t0 = time.perf_counter()
        got = s.run([last])
        nb_first.append(time.perf_counter() - t0)
        assert float(got[last].to_numpy().sum()) == ref_sum
        del got
    assert s is not None and path is not None
    print(f"  (b) hamilton_nb cold runs done; peak RSS {peak_rss_gb():.1f} GiB", flush=True)
    nb_hit = median_time(lambda s=s: s.run([last]), hit_reps)
    out = s.execute([last])
    assert all(e.status.value == "cached" for e in out.events), "all-hit run recomputed"
    del out
    entry = s.store.latest(last)
    value_file = s.store.value_path(entry.data_version, entry.fmt)
    nb_load_mmap = median_time(lambda: joblib.load(value_file, mmap_mode="c"), hit_reps)
    nb_load_full = median_time(lambda: joblib.load(value_file), hit_reps)
    nb_hit_read = median_time(lambda s=s: float(s.run([last])[last].to_numpy().sum()), hit_reps)
    nb_edit = []
    for e in range(1, edit_reps + 1):
        s.register_cell(big_sources(n, rows, cols, edit=e)[4], "df_5")
        gc.collect()
        t0 = time.perf_counter()
        got = s.run([last])
        nb_edit.append(time.perf_counter() - t0)
        df = s.last_run()
        statuses = dict(zip(df["node"], df["status"], strict=True))
        assert statuses["df_4"] == "cached" and statuses["df_5"] == "computed", statuses
        del got
    s.close()
    del s
    rmtree(path)
    gc.collect()
    print(f"  (b) hamilton_nb done; peak RSS {peak_rss_gb():.1f} GiB", flush=True)

    # -- Hamilton -------------------------------------------------------------------------
    ham_first = []
    dr = None
    for _rep in range(ham_reps):
        if dr is not None:
            del dr
            rmtree(path)
        path = work.cache("big-ham")
        dr = hamilton_cached(mod, path)
        gc.collect()
        t0 = time.perf_counter()
        got = dr.execute([last])
        ham_first.append(time.perf_counter() - t0)
        assert float(got[last].to_numpy().sum()) == ref_sum
        del got
    print(f"  (b) Hamilton cold runs done; peak RSS {peak_rss_gb():.1f} GiB", flush=True)
    ham_hit = median_time(lambda dr=dr: dr.execute([last]), hit_reps)
    ham_hit_read = median_time(
        lambda dr=dr: float(dr.execute([last])[last].to_numpy().sum()), hit_reps
    )
    del dr
    ham_edit = []
    for e in range(1, edit_reps + 1):
        emod = work.module(
            MODULE_HEADER + "\n\n".join(big_sources(n, rows, cols, edit=e)), "big_edit"
        )
        dr = hamilton_cached(emod, path)
        gc.collect()
        t0 = time.perf_counter()
        got = dr.execute([last])
        ham_edit.append(time.perf_counter() - t0)
        del got, dr
    rmtree(path)
    gc.collect()
    print(f"  (b) Hamilton done; peak RSS {peak_rss_gb():.1f} GiB", flush=True)

    nb_cold, ham_cold = statistics.median(nb_first), statistics.median(ham_first)
    nb_edit_t, ham_edit_t = statistics.median(nb_edit), statistics.median(ham_edit)
    size = f"{n} x {mb:.0f} MB"
    return [
        Row(f"(b) plain Hamilton, no cache ({size})", None, t_plain, ratio=False),
        Row("(b) first run, cold cache", nb_cold, ham_cold),
        Row(
            "(b) first run / plain run",
            nb_cold / t_plain,
            ham_cold / t_plain,
            "<= 3x",
            nb_cold / t_plain <= 3.0,
            unit="x",
        ),
        Row(f"(b) all-hit run, output {last} only", nb_hit, ham_hit),
        Row(
            f"(b) load {last}'s stored value: joblib.load(mmap_mode='c')",
            nb_load_mmap,
            None,
            ratio=False,
        ),
        Row(
            f"(b) load {last}'s stored value: joblib.load() (full read)",
            nb_load_full,
            None,
            ratio=False,
        ),
        Row(
            "(b) all-hit run / one-value load (mmap, as the store)",
            nb_hit / nb_load_mmap,
            ham_hit / nb_load_mmap,
            "<= 1.5x",
            nb_hit / nb_load_mmap <= 1.5,
            unit="x",
        ),
        Row(
            "(b) all-hit run / one-value load (full read)",
            nb_hit / nb_load_full,
            ham_hit / nb_load_full,
            "<= 1.5x",
            nb_hit / nb_load_full <= 1.5,
            unit="x",
        ),
        Row("(b) all-hit run + read every byte of the result", nb_hit_read, ham_hit_read),
        Row("(b) node 5's constant edited, run output " + last, nb_edit_t, ham_edit_t),
        Row(
            "(b) edited run / plain run (all 10 nodes)",
            nb_edit_t / t_plain,
            ham_edit_t / t_plain,
            unit="x",
        ),
    ]


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (seconds)")
    p.add_argument("--only", choices=["tiny", "big"], help="run one workload only")
    p.add_argument("--reps", type=int, help="repetitions of cold runs (default 5 tiny / 3 big)")
    p.add_argument(
        "--no-warmup", action="store_true", help="skip touching 6 GiB of memory once before (b)"
    )
    p.add_argument("--big-rows", type=int, help="rows of each (b) DataFrame (default 500,000)")
    p.add_argument(
        "--big-cols", type=int, help="float64 columns of each (b) DataFrame (default 50)"
    )
    args = p.parse_args(argv)
    # a killed run (SIGTERM) still removes its temporary folders
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.quick:
        global QUICK
        QUICK = True
        tiny = dict(layers=5, width=10, reps=args.reps or 2, hit_reps=3)
        big = dict(
            n=10,
            rows=20_000,
            cols=5,
            reps=args.reps or 2,
            ham_reps=args.reps or 2,
            hit_reps=3,
            edit_reps=2,
        )
    else:
        tiny = dict(layers=10, width=50, reps=args.reps or 5, hit_reps=11)
        # 500k rows x 50 float64 columns = 200 MB per node. Wide on purpose: Hamilton 1.90
        # fingerprints a DataFrame row by row in Python (hash_pandas_object -> dict -> sha224
        # per entry), ~7 us a row, so 5M rows x 5 columns would take ~37 s per node and the
        # full run ~25 min. Its cold run is the slow part: 2 repetitions, 2 edits.
        big = dict(
            n=10,
            rows=500_000,
            cols=50,
            reps=args.reps or 3,
            ham_reps=min(args.reps or 2, 2),
            hit_reps=5,
            edit_reps=2,
        )
    if args.big_rows:
        big["rows"] = args.big_rows
    if args.big_cols:
        big["cols"] = args.big_cols

    print("hamilton_nb vs Hamilton with_cache() benchmark" + (" (--quick)" if args.quick else ""))
    for line in machine_info():
        print(line)
    print(
        f"sizes   : (a) {tiny['layers']}x{tiny['width']} = {tiny['layers'] * tiny['width']} "
        f"tiny nodes, {tiny['reps']} cold reps, {tiny['hit_reps']} hit reps; (b) chain of "
        f"{big['n']} DataFrames of {big['rows']:,} x {big['cols']} float64 "
        f"({big['rows'] * big['cols'] * 8 / 1e6:.0f} MB each), {big['reps']} cold reps "
        f"(Hamilton {big['ham_reps']}), {big['hit_reps']} hit reps, {big['edit_reps']} edits"
    )
    print("figures : medians of wall time (time.perf_counter); nb/Ham = hamilton_nb / Hamilton")
    sys.stdout.flush()

    work = Workdir()
    t_start = time.perf_counter()
    try:
        rows: list[Row] = []
        if args.only in (None, "tiny"):
            rows += bench_tiny(work, **tiny)
            print_table("(a) tiny nodes", rows)
        if args.only in (None, "big"):
            if not args.quick and not args.no_warmup:
                print(
                    f"  (b) warm-up: touched 6 GiB of memory in {warm_memory(6):.1f} s", flush=True
                )
            big_rows = bench_big(work, **big)
            print_table("(b) chain of big DataFrames", big_rows)
            rows += big_rows
    finally:
        work.close()
    print()
    if args.quick:
        print("targets met: not judged with --quick (the targets are for the full sizes)")
        rows = []
    missed = [r.case for r in rows if r.met is False]
    if rows:
        met = sum(r.met is True for r in rows)
        judged = sum(r.met is not None for r in rows)
        print(f"targets met: {met}/{judged}" + (f"; missed: {'; '.join(missed)}" if missed else ""))
    print(
        f"total time {time.perf_counter() - t_start:.0f} s; peak RSS {peak_rss_gb():.1f} GiB; "
        f"load average {_loadavg()} at end"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Resume in a real kernel: an interrupted run, and a kernel process killed with SIGKILL in the
middle of a long node, keep every node that finished; the re-run starts at the unfinished node
(issue 5)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = pytest.mark.kernel

# numpy comes from an ordinary cell: a %%hamilton cell's own imports are not visible to
# Hamilton's annotation check yet (see the report of issue 5).
IMPORTS = "import numpy as np"

# `slow` waits while the HOLD file exists, so the test decides when it may finish; every node
# appends its name to LOG, which survives the kernel.
CELL = """%%hamilton -q
import os, time

LOG = {log!r}
HOLD = {hold!r}

def _mark(name):
    # os.write, not open(): IPython's wrapped `open` in the namespace has no fingerprint yet
    # (see the report of issue 5), which would make every node here uncacheable.
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (name + "\\n").encode())
    os.close(fd)

def a() -> np.ndarray:
    _mark("a")
    return np.arange(10.0)

def b(a: np.ndarray) -> np.ndarray:
    _mark("b")
    return a * 2

def c(b: np.ndarray) -> float:
    _mark("c")
    return float(b.sum())

def slow(c: float) -> float:
    _mark("slow")
    while os.path.exists(HOLD):
        time.sleep(0.02)
    return c + 1

def d(slow: float, a: np.ndarray) -> float:
    _mark("d")
    return slow * len(a)
"""

STATUSES = """
import json, hamilton_nb
_df = hamilton_nb.session().last_run()
print(json.dumps(dict(zip(_df["node"], _df["status"]))))
"""


class Kernel:
    def __init__(self, cwd: Path, cache: Path) -> None:
        self.km = jupyter_client.KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd), env={**os.environ, "HAMILTON_NB_CACHE": str(cache)})
        self.connect()

    def connect(self) -> None:
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> tuple[str, str | None]:
        """Execute and wait; (stdout, error name or None)."""
        out: list[str] = []
        err: list[str] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                err.append(msg["content"]["ename"])

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        if reply["content"]["status"] == "error" and not err:
            err.append(reply["content"]["ename"])
        return "".join(out), (err[0] if err else None)

    def statuses(self) -> dict[str, str]:
        out, err = self.run(STATUSES)
        assert err is None, err
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _wait_for(path: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text().split():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_interrupt_and_sigkill_mid_run_keep_finished_nodes_and_rerun_resumes(tmp_path):
    log, hold = tmp_path / "log.txt", tmp_path / "hold"
    cell = CELL.format(log=str(log), hold=str(hold))
    k = Kernel(tmp_path, tmp_path / "cache")
    try:
        assert k.run("%load_ext hamilton_nb") == ("", None)
        assert k.run(IMPORTS) == ("", None)

        # 1. Interrupted (KeyboardInterrupt) while `slow` runs.
        hold.touch()
        k.kc.execute(cell)
        _wait_for(log, "slow")
        k.km.interrupt_kernel()
        out, err = k.run("1", timeout=60)  # queued behind the interrupted cell
        st = k.statuses()
        assert [st[n] for n in ("a", "b", "c")] == ["computed"] * 3
        assert "d" not in st or st["d"] != "computed"

        # 2. The kernel process is killed (SIGKILL) while `slow` runs again.
        log.write_text("")
        k.kc.execute(cell)
        _wait_for(log, "slow")
        assert log.read_text().split() == ["slow"]  # a, b, c were kept by the interrupted run
        os.kill(k.km.provisioner.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while k.km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not k.km.is_alive()

        # 3. Restart, re-run the same cell: it starts at `slow`.
        k.kc.stop_channels()
        k.km.restart_kernel(now=True)
        k.connect()
        hold.unlink()
        log.write_text("")
        assert k.run("%load_ext hamilton_nb") == ("", None)
        assert k.run(IMPORTS) == ("", None)
        out, err = k.run(cell)
        assert err is None, (out, err)
        st = k.statuses()
        assert st == {"a": "cached", "b": "cached", "c": "cached", "slow": "computed",
                      "d": "computed"}
        assert log.read_text().split() == ["slow", "d"]

        # 4. Resumed values equal freshly recomputed ones.
        out, err = k.run("print(repr((d, float(a.sum()), c)))")
        assert err is None, err
        import numpy as np

        fresh_a = np.arange(10.0)
        fresh_c = float((fresh_a * 2).sum())
        assert out.strip() == repr(((fresh_c + 1) * len(fresh_a), float(fresh_a.sum()), fresh_c))
    finally:
        if hold.exists():
            hold.unlink()
        k.stop()

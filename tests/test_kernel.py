"""hamilton_nb in a real ipykernel, driven over the Jupyter protocol with jupyter_client.

Cells are sent the way JupyterLab sends them: an ``execute_request`` whose metadata carries the
cell id (``cellId``). nbclient 0.11 does not send cell ids, so this uses jupyter_client directly.
"""

from __future__ import annotations

import json
import os
import queue
import textwrap
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

pytestmark = pytest.mark.kernel

TIMEOUT = 120


class Kernel:
    def __init__(self, cwd: Path, cache: Path) -> None:
        env = dict(os.environ, HAMILTON_NB_CACHE=str(cache))
        self.km, self.kc = start_new_kernel(kernel_name="python3", startup_timeout=TIMEOUT,
                                            cwd=str(cwd), env=env)

    def execute(self, code: str, cell_id: str | None = None) -> dict:
        """Run a cell; return its status, stdout, stderr, error and display data."""
        kc = self.kc
        content = {"code": textwrap.dedent(code), "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        msg = kc.session.msg("execute_request", content,
                             metadata={"cellId": cell_id} if cell_id else {})
        kc.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        out = {"stdout": "", "stderr": "", "error": None, "data": []}
        while True:
            m = kc.get_iopub_msg(timeout=TIMEOUT)
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            kind, c = m["msg_type"], m["content"]
            if kind == "status" and c["execution_state"] == "idle":
                break
            if kind == "stream":
                out[c["name"]] += c["text"]
            elif kind == "error":
                out["error"] = c["ename"] + ": " + c["evalue"]
            elif kind in ("execute_result", "display_data"):
                out["data"].append(c["data"])
        while True:
            try:
                reply = kc.get_shell_msg(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError("no execute_reply") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                out["status"] = reply["content"]["status"]
                return out

    def ok(self, code: str, cell_id: str | None = None) -> dict:
        out = self.execute(code, cell_id)
        assert out["status"] == "ok", out["error"]
        return out

    def json(self, expr: str):
        return json.loads(self.ok(f"import json as _j\nprint(_j.dumps({expr}))")["stdout"])

    def statuses(self) -> dict[str, str]:
        return self.json("dict(zip(*[hamilton_nb.session().last_run()[c].tolist() "
                         "for c in ('node', 'status')]))")

    def calls(self) -> list[str]:
        return self.json("hnb_calls.log")

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.stop_channels()
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=TIMEOUT)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path):
    k = Kernel(tmp_path, tmp_path / "cache")
    yield k
    k.close()


SETUP = """
import sys, types
import hamilton_nb
hnb_calls = types.ModuleType("hnb_calls")
hnb_calls.log = []
hnb_calls.__hamilton_nb_version__ = "call log"  # logging a call changes no key (conftest.calls)
sys.modules["hnb_calls"] = hnb_calls
"""

RAW = """%%hamilton
def raw() -> list:
    hnb_calls.log.append("raw")
    return [3, 1, 2, None]
"""

CLEAN = """%%hamilton
def clean(raw: list) -> list:
    hnb_calls.log.append("clean")
    return sorted(x for x in raw if x is not None)
"""

FEATURES = """%%hamilton
def features(clean: list) -> list:
    hnb_calls.log.append("features")
    return [x * {factor} for x in clean]

def model(features: list) -> int:
    hnb_calls.log.append("model")
    return sum(features)
"""


def _notebook(k: Kernel) -> None:
    k.ok(SETUP, "setup")
    k.ok("%load_ext hamilton_nb", "load")
    k.ok(RAW, "cell-raw")
    k.ok(CLEAN, "cell-clean")
    k.ok(FEATURES.format(factor=10), "cell-features")


def test_kernel_runs_cells_and_binds_values(kernel):
    _notebook(kernel)
    assert kernel.statuses() == {"raw": "cached", "clean": "cached", "features": "computed",
                                 "model": "computed"}
    assert kernel.calls() == ["raw", "clean", "features", "model"]
    assert kernel.json("model") == 60
    assert kernel.json("sorted(hamilton_nb.session().dag.cells)") == \
        ["cell-clean", "cell-features", "cell-raw"]


def test_kernel_edit_and_rerun_recomputes_only_the_edited_node_and_downstream(kernel):
    _notebook(kernel)
    kernel.ok("hnb_calls.log.clear()")
    kernel.ok(FEATURES.format(factor=100), "cell-features")
    assert kernel.statuses() == {"raw": "cached", "clean": "cached", "features": "computed",
                                 "model": "computed"}
    assert kernel.calls() == ["features", "model"]
    assert kernel.json("model") == 600

    kernel.ok("hnb_calls.log.clear()")
    kernel.ok(CLEAN.replace("sorted(", "list(sorted("). replace("None)", "None))"),
              "cell-clean")  # same result
    assert kernel.statuses() == {"raw": "cached", "clean": "computed"}
    kernel.ok("%hamilton run model")
    assert kernel.statuses() == {"raw": "cached", "clean": "cached", "features": "cached",
                                 "model": "cached"}
    assert kernel.calls() == ["clean"]


def test_kernel_cell_id_identifies_the_cell_when_its_functions_are_renamed(kernel):
    kernel.ok(SETUP, "setup")
    kernel.ok("%load_ext hamilton_nb", "load")
    kernel.ok("%%hamilton\ndef first() -> int:\n    return 1\n", "cell-x")
    kernel.ok("%%hamilton\ndef second() -> int:\n    return 2\n", "cell-x")
    assert kernel.json("sorted(hamilton_nb.session().dag.nodes)") == ["second"]
    assert kernel.json("'first' in globals()") is False


def test_kernel_user_mistake_is_a_usage_error_without_traceback(kernel):
    kernel.ok(SETUP, "setup")
    kernel.ok("%load_ext hamilton_nb", "load")
    kernel.ok(RAW, "cell-raw")
    out = kernel.execute("%%hamilton\ndef raw() -> int:\n    return 1\n", "cell-other")
    assert out["status"] == "error"
    # IPython shows a UsageError as one line on stderr, without a traceback
    assert out["stderr"].startswith("UsageError: Node `raw` is already defined")
    assert "Traceback" not in out["stderr"] and out["error"] is None


def test_kernel_failed_node_raises_and_resume_starts_there(kernel):
    _notebook(kernel)
    kernel.ok("hnb_calls.log.clear()")
    out = kernel.execute(FEATURES.format(factor="(1 / 0)"), "cell-features")
    assert out["status"] == "error"
    assert out["error"].startswith("ZeroDivisionError")
    assert kernel.statuses() == {"raw": "cached", "clean": "cached", "features": "failed",
                                 "model": "skipped"}
    kernel.ok(FEATURES.format(factor=2), "cell-features")
    assert kernel.statuses() == {"raw": "cached", "clean": "cached", "features": "computed",
                                 "model": "computed"}
    assert kernel.json("model") == 12


def test_kernel_restart_gets_every_value_back_from_the_cache(kernel):
    _notebook(kernel)
    kernel.restart()
    _notebook(kernel)
    assert kernel.calls() == []
    assert set(kernel.statuses().values()) == {"cached"}
    assert kernel.json("model") == 60


GRAPH = ("{n['name']: n['status'] for n in hamilton_nb.widget.panel_for(hamilton_nb.session())"
         ".graph.outputs[0]['data']['application/vnd.hamilton-nb.run+json']['state']['nodes']}")


def test_kernel_panel_graph_is_sent_once_per_cell_and_shows_its_end(kernel):
    """A %%hamilton cell registers, then runs: the panel's graph (the whole DAG, the largest
    thing the panel sends) goes to the front-end once, with the state after the run; a cell
    that only registers gets its graph when it ends."""
    _notebook(kernel)
    kernel.ok("import hamilton_nb.widget\n_sends = []\n"
              "_panel = hamilton_nb.widget.panel_for(hamilton_nb.session())\n"
              "_panel.tabs.selected_index = hamilton_nb.widget.GRAPH_TAB\n"  # the graph shows
              "_panel.graph.observe(lambda c: _sends.append(c['new']), 'outputs')")
    kernel.ok(FEATURES.format(factor=100), "cell-features")  # edited: registered, then run
    assert kernel.json("len(_sends)") == 1
    assert kernel.json(GRAPH) == {"raw": "cached", "clean": "cached", "features": "computed",
                                  "model": "computed"}
    kernel.ok("%%hamilton -r\ndef extra(model: int) -> int:\n    return model\n", "cell-extra")
    assert kernel.json("len(_sends)") == 2
    assert kernel.json(GRAPH)["extra"] == "never_run"
    # The table tab shows: the graph (the whole DAG) is not sent at all until it shows again.
    kernel.ok("_panel.tabs.selected_index = 0")
    kernel.ok(FEATURES.format(factor=101), "cell-features")
    assert kernel.json("len(_sends)") == 2
    kernel.ok("_panel.tabs.selected_index = hamilton_nb.widget.GRAPH_TAB")
    assert kernel.json("len(_sends)") == 3
    assert kernel.json(GRAPH)["features"] == "computed"

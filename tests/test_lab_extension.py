"""The JupyterLab extension (labextension/) and its kernel side (hamilton_nb/comm.py).

* ``test_comm_*`` drive ``CommBridge`` in a real ipykernel through jupyter_client, speaking the
  comm protocol of docs/protocol.md the way the front-end does.
* ``test_lab_*`` start a real JupyterLab server and drive it with Debian's chromium through
  Python playwright (no mocks): the side panel, the stale-cell markers and node clicks.
  The server, the browser and the notebook helpers are shared with the widget panel's test
  (``tests/lab_fixtures.py``). Screenshots go to ``test-artifacts/``.

Browser tests need ``apt-get install chromium`` (or ``CHROMIUM=/path/to/chromium``) and the
extension built into the environment (``pip install -e .``).
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lab_fixtures
import pytest
from lab_fixtures import Lab, open_notebook, run_all, shot, write_notebook

# pytest finds fixtures by name in the test module's namespace.
lab = lab_fixtures.lab
browser = lab_fixtures.browser


# ------------------------------------------------------------------------------------------------
# Kernel side: CommBridge in a real ipykernel
# ------------------------------------------------------------------------------------------------

BRIDGE_SETUP = """
import hamilton_nb
from hamilton_nb import Session
from hamilton_nb.comm import CommBridge

_hnb_test_session = Session(namespace={{}}, cache_dir={cache!r})
_hnb_test_session.register_cell(
    "def raw() -> int:\\n    return 21\\n", "cell-a")
_hnb_test_session.register_cell(
    "def doubled(raw: int) -> int:\\n    return raw * 2\\n", "cell-b")
_hnb_test_bridge = CommBridge(_hnb_test_session)
_hnb_test_bridge.start()
"""


class KernelDriver:
    """A real ipykernel driven through jupyter_client, acting as a front-end."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.iopub: list[dict] = []

    def execute(self, code: str, timeout: float = 60) -> None:
        msg_id = self.kc.execute(code)
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        assert reply["content"]["status"] == "ok", reply["content"]
        self.drain(0.3)

    def drain(self, wait: float = 0.0) -> list[dict]:
        """Collect iopub messages (waiting up to ``wait`` s for the first one)."""
        got = []
        deadline = time.monotonic() + wait
        while True:
            try:
                got.append(self.kc.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        self.iopub.extend(got)
        return got

    def send(self, msg_type: str, content: dict) -> None:
        msg = self.kc.session.msg(msg_type, content)
        self.kc.shell_channel.send(msg)

    def comm_messages(self, comm_id: str, timeout: float = 30, n: int = 1) -> list[dict]:
        """Wait for ``n`` comm_msg/comm_close data payloads on ``comm_id``."""
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for m in self.drain(0.2):
                if m["msg_type"] in ("comm_msg", "comm_close") and (
                    m["content"].get("comm_id") == comm_id
                ):
                    out.append({"msg_type": m["msg_type"], **m["content"]["data"]})
        return out

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelDriver]:
    k = KernelDriver(tmp_path)
    try:
        yield k
    finally:
        k.close()


def _open(kernel: KernelDriver, data: dict) -> str:
    comm_id = uuid.uuid4().hex
    kernel.send("comm_open", {"comm_id": comm_id, "target_name": "hamilton_nb", "data": data})
    return comm_id


@pytest.mark.kernel
def test_comm_bridge_protocol(kernel: KernelDriver, tmp_path: Path) -> None:
    kernel.execute(BRIDGE_SETUP.format(cache=str(tmp_path / "cache")))
    # start() announced itself with a kernel-opened comm carrying the state.
    opens = [m for m in kernel.iopub if m["msg_type"] == "comm_open"]
    assert opens and opens[-1]["content"]["target_name"] == "hamilton_nb"
    announced = opens[-1]["content"]["data"]
    assert announced["type"] == "state" and announced["protocol"] == 1
    assert {n["name"] for n in announced["state"]["nodes"]} == {"raw", "doubled"}

    comm_id = _open(kernel, {"type": "hello", "protocol": 1})
    [hello] = kernel.comm_messages(comm_id)
    state = hello["state"]
    assert hello["type"] == "state"
    assert {c["cell_id"] for c in state["cells"]} == {"cell-a", "cell-b"}
    by_name = {n["name"]: n for n in state["nodes"]}
    assert by_name["doubled"]["deps"] == ["raw"]
    assert by_name["raw"]["status"] == "never_run"

    # run_cell: state pushes during the run, the last one after run_finished shows the result.
    kernel.send(
        "comm_msg",
        {"comm_id": comm_id, "data": {"type": "run_cell", "protocol": 1, "cell_id": "cell-b"}},
    )
    msgs = kernel.comm_messages(comm_id, n=2)
    final = {n["name"]: n["status"] for n in msgs[-1]["state"]["nodes"]}
    assert final == {"raw": "computed", "doubled": "computed"}, msgs
    assert msgs[-1]["state"]["running"] is False
    assert msgs[-1]["state"]["run_id"] is not None

    kernel.send("comm_msg", {"comm_id": comm_id, "data": {"type": "request_state", "protocol": 1}})
    [again] = kernel.comm_messages(comm_id)
    assert again["type"] == "state"

    # Errors are answered, never raised into the kernel.
    kernel.send("comm_msg", {"comm_id": comm_id, "data": {"type": "bogus", "protocol": 1}})
    [err] = kernel.comm_messages(comm_id)
    assert err == {
        "msg_type": "comm_msg",
        "type": "error",
        "protocol": 1,
        "message": "unknown message type 'bogus'",
    }
    kernel.send(
        "comm_msg",
        {
            "comm_id": comm_id,
            "data": {"type": "clear_cell", "protocol": 1, "cell_id": "no-such-cell"},
        },
    )
    msgs = kernel.comm_messages(comm_id)
    assert msgs[0]["type"] == "error" and "no-such-cell" in msgs[0]["message"], msgs
    kernel.send("comm_msg", {"comm_id": comm_id, "data": {"type": "run_cell", "protocol": 1}})
    msgs = kernel.comm_messages(comm_id)
    assert msgs[0]["type"] == "error" and "cell_id" in msgs[0]["message"], msgs

    kernel.send(
        "comm_msg",
        {"comm_id": comm_id, "data": {"type": "clear_cell", "protocol": 1, "cell_id": "cell-a"}},
    )
    msgs = kernel.comm_messages(comm_id, n=3)  # the DagChanged push, the reply, the notice
    state_msg = [m for m in msgs if m["type"] == "state"][-1]
    [notice] = [m for m in msgs if m["type"] == "notice"]
    # the badge no longer says "cached": the entry is gone
    assert {n["name"]: n["status"] for n in state_msg["state"]["nodes"]}["raw"] == "cleared"
    assert notice["type"] == "notice" and "Cleared 1 cache entry of `raw`" in notice["message"]

    # restore: always answered with the state (plus a message when there was nothing to restore).
    kernel.send("comm_msg", {"comm_id": comm_id, "data": {"type": "restore", "protocol": 1}})
    msgs = kernel.comm_messages(comm_id)
    assert msgs[0]["type"] == "state", msgs

    # stop(): target gone, comms closed, no listener left.
    kernel.execute(
        "_hnb_test_bridge.stop()\n"
        "import comm\n"
        "assert 'hamilton_nb' not in comm.get_comm_manager().targets\n"
        "assert _hnb_test_bridge._on_event not in _hnb_test_session._listeners\n"
    )
    closes = [m for m in kernel.iopub if m["msg_type"] == "comm_close"]
    assert any(m["content"]["comm_id"] == comm_id for m in closes)
    late = _open(kernel, {"type": "hello", "protocol": 1})
    [closed] = kernel.comm_messages(late)
    assert closed["msg_type"] == "comm_close"  # what a kernel without hamilton_nb answers


def _apply_delta(state: dict, delta: dict) -> dict:
    """What the lab extension's applyDelta does (labextension/src/protocol.ts)."""
    assert len(state["nodes"]) == delta["n_nodes"] and len(state["cells"]) == delta["n_cells"]
    nodes, cells = list(state["nodes"]), list(state["cells"])
    for i, n in delta["nodes"]:
        nodes[i] = n
    for i, c in delta["cells"]:
        cells[i] = c
    return {"session_id": delta["session_id"], "run_id": delta["run_id"],
            "running": delta["running"], "nodes": nodes, "cells": cells}


@pytest.mark.kernel
def test_comm_bridge_sends_what_changed_to_front_ends_that_take_deltas(
        kernel: KernelDriver, tmp_path: Path) -> None:
    """A front-end naming `state_delta` in its hello gets the whole state once, then only the
    nodes and cells that changed, numbered so that it can tell a gap; the state it rebuilds is
    the kernel's. A front-end that did not name it (an older extension) gets whole states."""
    chain = "".join(f"def n{i}(n{i - 1}: int) -> int:\n    return n{i - 1} + 1\n"
                    for i in range(1, 40))
    # Nodes no step below touches: a delta is sent while it is the smaller message.
    wide = "".join(f"def w{i}() -> int:\n    return {i}\n" for i in range(60))
    kernel.execute(BRIDGE_SETUP.format(cache=str(tmp_path / "cache"))
                   + f"_hnb_test_session.register_cell({chain!r}, 'cell-chain')\n"
                   + f"_hnb_test_session.register_cell({wide!r}, 'cell-wide')\n"
                   + "_hnb_test_session.register_cell("
                   + "'def n0(doubled: int) -> int:\\n    return doubled\\n', 'cell-n0')\n"
                   + "_hnb_test_session.run(['n39', 'w59'])\n")
    new = _open(kernel, {"type": "hello", "protocol": 1, "features": ["state_delta"]})
    old = _open(kernel, {"type": "hello", "protocol": 1})
    [first] = kernel.comm_messages(new)
    assert first["type"] == "state" and isinstance(first["seq"], int)
    state, seq = first["state"], first["seq"]
    kernel.comm_messages(old)

    def pushed(code: str) -> tuple[list[dict], list[dict]]:
        seen = len(kernel.iopub)
        kernel.execute(code)
        msgs = kernel.iopub[seen:] + kernel.drain(1.0)
        return tuple([m["content"]["data"] for m in msgs if m["msg_type"] == "comm_msg"
                      and m["content"].get("comm_id") == c] for c in (new, old))

    truth = ("import json, hamilton_nb.report as r\n"
             "open({path!r}, 'w').write(json.dumps(r.front_state(_hnb_test_session)))")
    for step, code in enumerate((
            "_hnb_test_session.run(['doubled'])",  # all hits: few nodes change
            "_hnb_test_session.register_cell("
            "'def raw() -> int:\\n    return 22\\n', 'cell-a')\n"
            "_hnb_test_session.run(['raw'])",  # everything below raw goes stale
            "_hnb_test_session.run(['n39'])")):  # and is computed again
        deltas, wholes = pushed(code)
        assert deltas and all(d["type"] == "state_delta" for d in deltas), deltas
        assert wholes and all(w["type"] == "state" for w in wholes), wholes
        for d in deltas:
            assert d["base"] == seq and d["seq"] > seq  # numbered: a gap would show
            state, seq = _apply_delta(state, d), d["seq"]
        path = tmp_path / f"truth-{step}.json"
        kernel.execute(truth.format(path=str(path)))
        assert state == json.loads(path.read_text()) == wholes[-1]["state"]
        if step == 0:
            assert len(deltas[-1]["nodes"]) <= 4 and deltas[-1]["cells"] == []
    # Nodes went (a cell now defines fewer): the whole state is sent.
    kernel.execute("_hnb_test_session.register_cell("
                   "'def w0() -> int:\\n    return -1\\n', 'cell-wide')")
    deltas, _ = pushed("_hnb_test_session.run(['n39'])")
    assert deltas[-1]["type"] == "state" and deltas[-1]["seq"] > seq
    state, seq = deltas[-1]["state"], deltas[-1]["seq"]
    # A request for the whole state (a front-end that lost track) answers with it, numbered.
    kernel.send("comm_msg", {"comm_id": new, "data": {"type": "request_state", "protocol": 1,
                                                      "features": ["state_delta"]}})
    [whole] = kernel.comm_messages(new)
    assert whole["type"] == "state" and whole["seq"] > seq and whole["state"] == state


@pytest.mark.kernel
def test_comm_bridge_sends_staleness_after_an_ordinary_cell(kernel: KernelDriver,
                                                            tmp_path: Path) -> None:
    """A constant edited in an ordinary cell: no hamilton_nb event, yet the front-end learns
    at once (post_run_cell) which node is stale and why; the state after a run says it ended."""
    kernel.execute(BRIDGE_SETUP.format(cache=str(tmp_path / "cache"))
                   + "_hnb_test_session.namespace['K'] = 2\n"
                   + "_hnb_test_session.register_cell("
                   + "'def scaled(doubled: int) -> int:\\n    return doubled * K\\n', 'cell-c')\n")
    comm_id = _open(kernel, {"type": "hello", "protocol": 1})
    kernel.comm_messages(comm_id)
    kernel.send("comm_msg", {"comm_id": comm_id, "data": {
        "type": "run_cell", "protocol": 1, "cell_id": "cell-c"}})
    msgs = kernel.comm_messages(comm_id, n=2)
    assert msgs[-1]["state"]["running"] is False
    kernel.comm_messages(comm_id, timeout=1, n=99)  # drain
    def pushed_after(code: str) -> list[dict]:
        seen = len(kernel.iopub)
        kernel.execute(code)  # (collects the iopub messages that follow the cell)
        return [m["content"]["data"] for m in kernel.iopub[seen:] + kernel.drain(1.0)
                if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id]

    [pushed] = pushed_after("_hnb_test_session.namespace['K'] = 3")  # an ordinary cell
    nodes = {n["name"]: n for n in pushed["state"]["nodes"]}
    assert nodes["scaled"]["status"] == "stale"
    assert nodes["scaled"]["reason"] == "global `K` changed"
    assert nodes["doubled"]["status"] == "computed"
    assert [c["stale"] for c in pushed["state"]["cells"] if c["cell_id"] == "cell-c"] == [True]
    assert pushed_after("x = 1") == []  # nothing changed: nothing sent
    assert pushed_after("x = 2") == []  # (and again, once nothing is remembered as changed)
    # K back to the value `scaled` was computed with: not stale any more, and the front-end
    # learns it from an ordinary cell again.
    [pushed] = pushed_after("_hnb_test_session.namespace['K'] = 2")
    nodes = {n["name"]: n for n in pushed["state"]["nodes"]}
    assert nodes["scaled"]["status"] == "computed"
    assert [c["stale"] for c in pushed["state"]["cells"] if c["cell_id"] == "cell-c"] == [False]
    assert pushed_after("x = 3") == []


@pytest.mark.kernel
def test_comm_bridge_throttles_but_sends_final_state(kernel: KernelDriver, tmp_path: Path) -> None:
    """Many events during a run: at most ~5 messages a second, and always the final state."""
    cache = str(tmp_path / "cache")
    body = "def n0() -> int:\n    return 0\n" + "".join(
        f"def n{i}(n{i - 1}: int) -> int:\n    import time; time.sleep(0.01)\n"
        f"    return n{i - 1} + 1\n"
        for i in range(1, 60)
    )
    kernel.execute(
        BRIDGE_SETUP.format(cache=cache) + f"_hnb_test_session.register_cell({body!r}, 'chain')\n"
    )
    comm_id = _open(kernel, {"type": "hello", "protocol": 1})
    kernel.comm_messages(comm_id)
    t0 = time.monotonic()
    kernel.send(
        "comm_msg",
        {"comm_id": comm_id, "data": {"type": "run_cell", "protocol": 1, "cell_id": "chain"}},
    )
    msgs: list[dict] = []
    while time.monotonic() - t0 < 30:
        msgs += kernel.comm_messages(comm_id, timeout=1)
        assert all(m["type"] == "state" for m in msgs), msgs
        if msgs and not msgs[-1]["state"]["running"] and msgs[-1]["state"]["run_id"]:
            # the reply to run_cell follows the run_finished push
            msgs += kernel.comm_messages(comm_id, timeout=1)
            break
    elapsed = time.monotonic() - t0
    running = [m for m in msgs if m["state"]["running"]]
    # 60 nodes x (started + finished) events in ~0.6-1 s: throttled to a handful of messages.
    assert running, "no progress while the run was going on"
    assert len(running) <= elapsed / 0.2 + 3, (len(running), elapsed)
    final = {n["name"]: n["status"] for n in msgs[-1]["state"]["nodes"]}
    assert final["n59"] == "computed" and not msgs[-1]["state"]["running"]


@pytest.mark.kernel
def test_comm_bridge_sends_only_the_final_state_of_a_short_run(kernel: KernelDriver,
                                                               tmp_path: Path) -> None:
    """A run over long before the throttle window (a re-run served from the cache) sends the
    whole DAG's state once, when it ends, not a "queued" state its end replaces at once."""
    kernel.execute(BRIDGE_SETUP.format(cache=str(tmp_path / "cache"))
                   + "_hnb_test_session.run(['doubled'])\n")
    comm_id = _open(kernel, {"type": "hello", "protocol": 1})
    kernel.comm_messages(comm_id)
    seen = len(kernel.iopub)
    kernel.execute("_hnb_test_session.run(['doubled'])")  # all hits: a few milliseconds
    time.sleep(0.5)  # a throttled "running" state would have been sent by now
    pushed = [m["content"]["data"] for m in kernel.iopub[seen:] + kernel.drain(0.5)
              if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id]
    # One state: the run's end (post_run_cell found it unchanged: it names this run already).
    assert [m["state"]["running"] for m in pushed] == [False]
    assert {n["name"]: n["status"] for n in pushed[0]["state"]["nodes"]}["doubled"] == "cached"
    kernel.execute("assert _hnb_test_session.dag_state()['run_id'] == "
                   f"{pushed[0]['state']['run_id']}")
    # A cell that edits a registered cell and runs it (what a %%hamilton cell does): one state
    # again, the one after the run, not also one for the registration.
    seen = len(kernel.iopub)
    kernel.execute("_hnb_test_session.register_cell("
                   "'def doubled(raw: int) -> int:\\n    return raw * 3\\n', 'cell-b')\n"
                   "_hnb_test_session.run(['doubled'])")
    time.sleep(0.5)
    pushed = [m["content"]["data"] for m in kernel.iopub[seen:] + kernel.drain(0.5)
              if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id]
    assert [m["state"]["running"] for m in pushed] == [False]
    assert {n["name"]: n["status"] for n in pushed[0]["state"]["nodes"]}["doubled"] == "computed"


# ------------------------------------------------------------------------------------------------
# Browser: real JupyterLab + Debian chromium
# ------------------------------------------------------------------------------------------------

CELL_A = "%%hamilton\ndef raw() -> int:\n    return 21\n"
CELL_B = "%%hamilton\ndef doubled(raw: int) -> int:\n    return raw * 2\n"

HAMILTON_PANEL = "hamilton-nb-panel"


def _open_notebook(browser: Any, lab: Lab, path: str, request: pytest.FixtureRequest) -> Any:
    """The notebook open, its kernel idle and the Hamilton side panel shown; console errors are
    kept on the test node (``request.node.hnb_console_errors``)."""
    errors: list[str] = []
    request.node.hnb_console_errors = errors
    return open_notebook(browser, lab, path, errors, side_panel=HAMILTON_PANEL)


def _node(page: Any, name: str, status: str | None = None) -> Any:
    sel = f'#hamilton-nb-panel g.hnb-node[data-node="{name}"]'
    if status:
        sel += f'[data-status="{status}"]'
    return page.locator(sel)


def _cell(page: Any, cell_id: str) -> Any:
    """The notebook cell widget whose model id is cell_id (tagged on the fly for locators)."""
    page.evaluate(
        """id => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            nb.widgets.forEach(c => { c.node.dataset.testCellId = c.model.id; });
        }""",
        cell_id,
    )
    return page.locator(f'.jp-Cell[data-test-cell-id="{cell_id}"]')


def _active_cell_id(page: Any) -> str | None:
    return page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCell?.model.id ?? null"
    )


@pytest.fixture
def ab_notebook(lab: Lab, browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The A/B notebook opened and run; the panel shows raw and doubled computed."""
    path = write_notebook(
        lab,
        [
            ("load", "code", "%load_ext hamilton_nb"),
            ("cell-a", "code", CELL_A),
            ("cell-b", "code", CELL_B),
        ],
    )
    page = _open_notebook(browser, lab, path, request)
    try:
        run_all(page)
        _node(page, "doubled", "computed").wait_for(timeout=60_000)
        yield page
    except Exception:
        shot(page, f"{request.node.name}-failed")
        raise
    finally:
        page.close()


@pytest.mark.browser
def test_lab_panel_shows_computed_nodes(ab_notebook: Any, request: pytest.FixtureRequest) -> None:
    page = ab_notebook
    panel = page.locator("#hamilton-nb-panel")
    # Cell A computed raw; cell B's run then found raw unchanged, so its latest status is
    # "cached" (the panel shows the status of the last run that touched a node).
    assert _node(page, "raw").get_attribute("data-status") in ("computed", "cached")
    assert _node(page, "doubled").get_attribute("data-status") == "computed"
    state = page.evaluate(
        """() => [...document.querySelectorAll('#hamilton-nb-panel g.hnb-node')]
                 .map(g => [g.dataset.node, g.dataset.status])"""
    )
    assert sorted(n for n, _ in state) == ["doubled", "raw"]
    assert _node(page, "raw").locator("text").text_content() == "raw"
    # one edge raw -> doubled, drawn from the dependency layer above
    assert panel.locator('path.hnb-edge[data-from="raw"][data-to="doubled"]').count() == 1
    raw_y = _node(page, "raw").bounding_box()["y"]
    doubled_y = _node(page, "doubled").bounding_box()["y"]
    assert raw_y < doubled_y
    assert "2 nodes" in panel.locator(".hnb-summary").text_content()
    assert page.locator(".jp-Cell.hnb-stale").count() == 0
    shot(page, "lab-panel-computed")
    errors = [e for e in request.node.hnb_console_errors if "hamilton" in e.lower()]
    assert not errors, errors


@pytest.mark.browser
def test_lab_panel_redraws_a_state_of_the_same_shape_without_laying_it_out_again(
        ab_notebook: Any) -> None:
    # dagre's layout was nearly all of what a state cost the browser (~300 ms at 600 nodes),
    # paid again for every run and every click on another cell. A run that changes statuses
    # only reuses the layout: the nodes change colour and stay where they are.
    page = ab_notebook
    svg = page.locator("#hamilton-nb-panel svg.hnb-dag")
    before = svg.get_attribute("data-layouts-computed")
    box = _node(page, "doubled").bounding_box()
    page.evaluate(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            nb.activeCellIndex = nb.widgets.findIndex(c => c.model.id === 'cell-b');
            return window.jupyterapp.commands.execute('notebook:run-cell');
        }"""
    )
    _node(page, "doubled", "cached").wait_for(timeout=30_000)  # redrawn with the new status
    assert svg.get_attribute("data-layouts-computed") == before
    assert _node(page, "doubled").bounding_box() == box
    # A new node is a new shape: laid out again.
    page.evaluate(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            nb.activeCellIndex = nb.widgets.findIndex(c => c.model.id === 'cell-b');
            nb.activeCell.model.sharedModel.setSource(
                '%%hamilton\\ndef doubled(raw: int) -> int:\\n    return raw * 2\\n\\n'
                + 'def tripled(raw: int) -> int:\\n    return raw * 3\\n');
            return window.jupyterapp.commands.execute('notebook:run-cell');
        }"""
    )
    _node(page, "tripled", "computed").wait_for(timeout=30_000)
    assert int(svg.get_attribute("data-layouts-computed")) > int(before)


@pytest.mark.browser
def test_lab_panel_applies_the_kernels_deltas(lab: Lab, browser: Any,
                                              request: pytest.FixtureRequest) -> None:
    # Re-running one cell of a notebook of 42 nodes changes two: the kernel sends those two
    # (a state_delta, seen on the websocket), and the panel shows the same as a whole state.
    wide = "%%hamilton\n" + "".join(f"def w{i}() -> int:\n    return {i}\n" for i in range(40))
    path = write_notebook(lab, [("load", "code", "%load_ext hamilton_nb"),
                                ("cell-wide", "code", wide), ("cell-a", "code", CELL_A),
                                ("cell-b", "code", CELL_B)])
    frames: list[str] = []

    def listen(page: Any) -> None:
        # (Jupyter's websocket protocol sends binary frames: the JSON parts are in them)
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(
            f if isinstance(f, str) else bytes(f).decode("utf-8", "replace"))))

    errors: list[str] = []
    page = open_notebook(browser, lab, path, errors, side_panel=HAMILTON_PANEL, on_page=listen)
    try:
        run_all(page)
        _node(page, "doubled", "computed").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # the states of the last cell's end
        seen = len(frames)
        page.evaluate(
            """() => {
                const nb = window.jupyterapp.shell.currentWidget.content;
                nb.activeCellIndex = nb.widgets.findIndex(c => c.model.id === 'cell-b');
                return window.jupyterapp.commands.execute('notebook:run-cell');
            }"""
        )
        _node(page, "doubled", "cached").wait_for(timeout=30_000)
        assert any('"state_delta"' in f for f in frames[seen:]), "no delta was sent"
        assert _node(page, "raw").get_attribute("data-status") == "cached"
        assert page.locator("#hamilton-nb-panel g.hnb-node").count() == 42
        assert "42 nodes" in page.locator("#hamilton-nb-panel .hnb-summary").text_content()
        assert _node(page, "w7").get_attribute("data-status") == "computed"
        assert not [e for e in errors if "hamilton" in e.lower()], errors
    except Exception:
        shot(page, f"{request.node.name}-failed")
        raise
    finally:
        page.close()


@pytest.mark.browser
def test_lab_edit_marks_stale_and_rerun_clears(ab_notebook: Any) -> None:
    page = ab_notebook
    cell_a, cell_b = _cell(page, "cell-a"), _cell(page, "cell-b")
    # Type into cell A's editor like a user (no execution).
    cell_a.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n# tweak")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-Cell')]
                 .filter(c => c.classList.contains('hnb-stale')).length === 2""",
        timeout=10_000,
    )
    assert "hnb-stale" in (cell_a.get_attribute("class") or "")
    assert "hnb-stale" in (cell_b.get_attribute("class") or "")
    assert _node(page, "raw").evaluate("n => n.classList.contains('hnb-edited')")
    shot(page, "lab-stale-after-edit")

    # Re-run only cell A: its mark goes away.
    page.evaluate(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            nb.activeCellIndex = nb.widgets.findIndex(c => c.model.id === 'cell-a');
            return window.jupyterapp.commands.execute('notebook:run-cell');
        }"""
    )
    page.wait_for_function(
        """() => { const c = [...document.querySelectorAll('.jp-Cell')]
                   .find(c => c.dataset.testCellId === 'cell-a');
                   return c && !c.classList.contains('hnb-stale'); }""",
        timeout=30_000,
    )
    assert "hnb-stale" not in (cell_a.get_attribute("class") or "")
    shot(page, "lab-stale-after-rerun")

    # Trailing whitespace is not an edit: the front-end hash strips it like the kernel's rstrip().
    cell_a.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("   \n\n")
    page.wait_for_timeout(1000)  # > the 250 ms edit debounce
    assert "hnb-stale" not in (cell_a.get_attribute("class") or "")


@pytest.mark.browser
def test_lab_click_node_activates_cell(ab_notebook: Any) -> None:
    page = ab_notebook
    # Make another cell active first, so the click has something to change.
    page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
    assert _active_cell_id(page) == "load"
    _node(page, "doubled").click()
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.activeCell?.model.id === 'cell-b'",
        timeout=10_000,
    )
    assert "jp-mod-active" in (_cell(page, "cell-b").get_attribute("class") or "")
    assert _node(page, "doubled").evaluate("n => n.classList.contains('hnb-active')")
    shot(page, "lab-click-node")


@pytest.mark.browser
def test_lab_panel_quiet_without_hamilton_nb(
    lab: Lab, browser: Any, request: pytest.FixtureRequest
) -> None:
    """A kernel that never loaded hamilton_nb: a message in the panel, no errors, no dialogs."""
    path = write_notebook(lab, [("plain", "code", "x = 1\nx")])
    page = _open_notebook(browser, lab, path, request)
    try:
        panel = page.locator("#hamilton-nb-panel")
        panel.get_by_text("hamilton_nb not loaded in this kernel").wait_for(timeout=30_000)
        run_all(page)
        page.locator(".jp-OutputArea-output").first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        panel.get_by_text("hamilton_nb not loaded in this kernel").wait_for(timeout=10_000)
        assert page.locator(".jp-Dialog").count() == 0
        assert page.locator(".jp-Cell.hnb-stale").count() == 0
        shot(page, "lab-not-loaded")
        errors = [e for e in request.node.hnb_console_errors if "hamilton" in e.lower()]
        assert not errors, errors
    finally:
        page.close()


def _context_menu(page: Any, cell_id: str) -> Any:
    _cell(page, cell_id).locator(".jp-InputArea-editor").click(button="right")
    menu = page.locator(".lm-Menu").last
    menu.wait_for()
    return menu


def _summary(page: Any) -> str:
    return page.locator("#hamilton-nb-panel .hnb-summary").text_content() or ""


@pytest.mark.browser
def test_lab_context_menu_commands(ab_notebook: Any) -> None:
    page = ab_notebook
    page.wait_for_function(
        "() => document.querySelector('#hamilton-nb-panel .hnb-summary')"
        "?.textContent.includes('run #2')"
    )
    # Not a %%hamilton cell: no Hamilton entries.
    menu = _context_menu(page, "load")
    assert menu.get_by_text("Hamilton: Run this cell's nodes").is_hidden()
    assert menu.get_by_text("Cut Cell").is_visible()
    page.keyboard.press("Escape")

    # run_cell through the comm: a new run in the kernel.
    menu = _context_menu(page, "cell-b")
    shot(page, "lab-context-menu")
    menu.get_by_text("Hamilton: Run this cell's nodes").click()
    page.wait_for_function(
        "() => document.querySelector('#hamilton-nb-panel .hnb-summary')"
        "?.textContent.includes('run #3')",
        timeout=30_000,
    )

    # clear_cell: answered with a state, no error notification.
    _context_menu(page, "cell-b").get_by_text("Hamilton: Clear cache of this cell's nodes").click()
    page.wait_for_timeout(1000)
    assert page.locator(".Toastify__toast--error").count() == 0
    assert _node(page, "doubled").count() == 1

    # An edited cell: "Run this cell's nodes" executes the cell, so the new code is registered.
    cell_a = _cell(page, "cell-a")
    cell_a.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n# edited")
    page.wait_for_function(
        "() => document.querySelector('.jp-Cell[data-test-cell-id=\"cell-a\"]')"
        ".classList.contains('hnb-stale')",
        timeout=10_000,
    )
    page.keyboard.press("Escape")
    _context_menu(page, "cell-a").get_by_text("Hamilton: Run this cell's nodes").click()
    page.wait_for_function(
        "() => !document.querySelector('.jp-Cell[data-test-cell-id=\"cell-a\"]')"
        ".classList.contains('hnb-stale')",
        timeout=30_000,
    )


@pytest.mark.browser
def test_lab_kernel_restart(ab_notebook: Any) -> None:
    page = ab_notebook
    panel = page.locator("#hamilton-nb-panel")
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()"
    )
    panel.get_by_text("hamilton_nb not loaded in this kernel").wait_for(timeout=60_000)
    assert _node(page, "doubled").count() == 0
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'idle'"
    )
    run_all(page)
    page.locator(
        '#hamilton-nb-panel g.hnb-node[data-node="doubled"]:is('
        '[data-status="computed"], [data-status="cached"])'
    ).wait_for(timeout=60_000)
    assert page.locator(".jp-Cell.hnb-stale").count() == 0
    shot(page, "lab-after-restart")


@pytest.mark.browser
def test_lab_mime_renderer(lab: Lab, browser: Any, request: pytest.FixtureRequest) -> None:
    state = {
        "session_id": "s",
        "run_id": 7,
        "running": False,
        "nodes": [
            {
                "name": "raw",
                "cell_id": "a",
                "kind": "function",
                "deps": [],
                "status": "cached",
                "reason": "",
                "duration": None,
                "code_version": None,
            },
            {
                "name": "doubled",
                "cell_id": "b",
                "kind": "function",
                "deps": ["raw"],
                "status": "failed",
                "reason": "boom",
                "duration": 0.5,
                "code_version": None,
            },
        ],
        "cells": [],
    }
    code = (
        "from IPython.display import display\n"
        f"display({{'application/vnd.hamilton-nb.run+json': {{'state': {state!r}}},"
        " 'text/plain': 'hamilton run'}, raw=True)"
    )
    path = write_notebook(lab, [("mime", "code", code)])
    page = _open_notebook(browser, lab, path, request)
    try:
        run_all(page)
        out = page.locator(".jp-OutputArea-output.hnb-run-output")
        out.locator('g.hnb-node[data-node="doubled"][data-status="failed"]').wait_for(
            timeout=30_000
        )
        assert out.locator('g.hnb-node[data-node="raw"]').get_attribute("data-status") == "cached"
        assert "run #7" in (out.locator(".hnb-summary").text_content() or "")
        shot(page, "lab-mime-renderer")
    finally:
        page.close()


@pytest.mark.browser
def test_lab_dag_magic_draws_the_live_dag(
    lab: Lab, browser: Any, request: pytest.FixtureRequest
) -> None:
    """`%hamilton dag` outputs the DAG state in the extension's MIME type: Lab draws it."""
    path = write_notebook(lab, [("load", "code", "%load_ext hamilton_nb"), ("a", "code", CELL_A),
                                ("b", "code", CELL_B), ("dag", "code", "%hamilton dag")])
    page = _open_notebook(browser, lab, path, request)
    try:
        run_all(page)
        # (the widget panel's graph tab is drawn by the same renderer: look in the dag cell)
        out = _cell(page, "dag").locator(".jp-OutputArea-output.hnb-run-output")
        out.locator('g.hnb-node[data-node="doubled"]').wait_for(timeout=30_000)
        assert out.locator('g.hnb-node[data-node="raw"]').count() == 1
        assert out.locator('g.hnb-node[data-node="doubled"]').get_attribute(
            "data-status") == "computed"
        shot(page, "lab-dag-magic")
    finally:
        page.close()

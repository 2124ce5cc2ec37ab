"""Kernel side of the JupyterLab comm protocol (docs/protocol.md, target ``hamilton_nb``).

``CommBridge`` connects a hamilton_nb session to the ``hamilton-nb`` JupyterLab extension:

* it registers the comm target ``hamilton_nb`` so the front-end can open a comm and send
  ``hello`` / ``request_state`` / ``run_cell`` / ``clear_cell`` / ``restore``;
* it opens a comm to the front-end on ``start()`` carrying the current state, so an already open
  Lab learns that the extension was loaded without polling;
* it subscribes to session events and pushes the state on each of them (throttled to one
  message per ``THROTTLE_S`` while a run is in progress, but the state after a ``run_finished``
  event is always sent, with ``running`` false);
* after every cell the kernel runs (IPython's ``post_run_cell``) it sends the state again if the
  stale nodes or their reasons changed: editing a helper or a constant in an ordinary cell makes
  nodes stale without any hamilton_nb event;
* states are numbered (``seq``); a comm whose ``hello`` or ``request_state`` named the
  ``state_delta`` feature is sent, after one whole state, only the nodes and cells that changed
  since the state it was sent last, when that is the smaller message.

Nothing here may raise into the kernel: failures of a request are answered with an ``error``
message, failures while pushing state are logged and dropped.
"""

from __future__ import annotations

import itertools
import logging
import operator
import threading
import time
from collections.abc import Callable
from typing import Any

import comm as _comm

__all__ = ["PROTOCOL", "TARGET", "CommBridge"]

log = logging.getLogger(__name__)

TARGET = "hamilton_nb"
PROTOCOL = 1
THROTTLE_S = 0.2
# A front-end that names this in the `features` of its hello or request_state gets, after the
# first whole state, only what changed (docs/protocol.md): a re-run of one cell in a notebook
# of 600 nodes sent 166 kB of state, which the kernel serialized and signed, for a few nodes.
DELTA = "state_delta"


class CommBridge:
    """Serve the ``hamilton_nb`` comm target for one session.

    ``session`` must provide ``dag_state() -> dict``, ``subscribe(cb) -> unsubscribe``,
    ``run_cell_nodes(cell_id)``, ``clear_cell(cell_id)`` and ``restore()``. ``shell`` (an IPython
    shell, optional) lets the bridge re-check staleness after every cell.
    """

    def __init__(self, session: Any, shell: Any = None) -> None:
        self.session = session
        self.shell = shell
        self._last_state: dict | None = None  # the state last broadcast (post_run_cell diff)
        # Whether a session event came since the last final state was broadcast, and the stale
        # nodes and their reasons that state showed: after an ordinary cell, only staleness can
        # have changed without an event, so the whole DAG's state is built again only when it
        # did (it cost every cell of a 200-cell notebook a millisecond).
        self._changed = True
        self._sent_stale: set[str] | None = None
        self._sent_reasons: dict[str, str] | None = None
        # During a run: nodes of the plan not finished yet, and those whose function runs now.
        self._queued: set[str] = set()
        self._running_nodes: set[str] = set()
        self._comms: dict[str, Any] = {}
        # States are numbered; per comm: (number, nodes, cells) of the last state it was sent
        # (a delta is made against it), and whether it takes deltas.
        self._seq = 0
        self._bases: dict[str, tuple[int, list[dict], list[dict]]] = {}
        self._delta_comms: set[str] = set()
        self._unsubscribe: Callable[[], Any] | None = None
        self._started = False
        # Serialises sends between the kernel thread and the throttle timer thread.
        self._lock = threading.RLock()
        self._last_send = 0.0
        self._pending = False  # a state change is waiting for the throttle window
        self._timer: threading.Timer | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Register the comm target, subscribe to session events, announce the state."""
        if self._started:
            return
        self._started = True
        try:
            _comm.get_comm_manager().register_target(TARGET, self._on_open)
        except Exception:
            log.exception("hamilton_nb: could not register comm target %r", TARGET)
        if self.shell is None:
            from IPython import get_ipython

            self.shell = get_ipython()
        if self.shell is not None:
            self.shell.events.register("post_run_cell", self._post_run_cell)
        try:
            self._unsubscribe = self.session.subscribe(self._on_event)
        except Exception:
            log.exception("hamilton_nb: could not subscribe to session events")
        try:
            msg = self._state_message()
            data = self._numbered(msg)
            c = _comm.create_comm(target_name=TARGET, data=data)
        except Exception:
            log.exception("hamilton_nb: could not open comm to the front-end")
        else:
            self._adopt(c)
            self._remember(c.comm_id, data)

    def stop(self) -> None:
        """Undo ``start()``: unregister the target, unsubscribe, close every open comm."""
        if not self._started:
            return
        self._started = False
        if self.shell is not None:
            try:
                self.shell.events.unregister("post_run_cell", self._post_run_cell)
            except ValueError:  # already gone (a shell reset drops callbacks)
                log.debug("hamilton_nb: post_run_cell callback was not registered")
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._pending = False
        try:
            manager = _comm.get_comm_manager()
            if manager.targets.get(TARGET) == self._on_open:
                manager.unregister_target(TARGET, self._on_open)
        except Exception:
            log.debug("hamilton_nb: unregister_target failed", exc_info=True)
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except Exception:
                log.debug("hamilton_nb: unsubscribe failed", exc_info=True)
            self._unsubscribe = None
        comms = list(self._comms.values())
        self._comms.clear()
        self._bases.clear()
        self._delta_comms.clear()
        for c in comms:
            try:
                c.on_msg(None)
                c.on_close(None)
                c.close()
            except Exception:
                log.debug("hamilton_nb: closing comm failed", exc_info=True)

    # ------------------------------------------------------------------ comms
    def _adopt(self, c: Any) -> None:
        comm_id = c.comm_id
        self._comms[comm_id] = c

        def on_msg(msg: dict) -> None:
            self._handle(c, _data(msg))

        def on_close(msg: dict) -> None:
            self._comms.pop(comm_id, None)
            self._bases.pop(comm_id, None)
            self._delta_comms.discard(comm_id)

        c.on_msg(on_msg)
        c.on_close(on_close)

    def _on_open(self, c: Any, msg: dict) -> None:
        """Target callback: the front-end opened a comm (its open data is a request)."""
        self._adopt(c)
        data = _data(msg)
        if data:
            self._handle(c, data)

    def _handle(self, c: Any, data: dict) -> None:
        try:
            kind = data.get("type")
            if kind in ("hello", "request_state"):
                features = data.get("features")
                if isinstance(features, list) and DELTA in features:
                    self._delta_comms.add(c.comm_id)
                self._send(c, self._state_message())
            elif kind == "run_cell":
                self.session.run_cell_nodes(_cell_id(data))
                self._send(c, self._state_message())
            elif kind == "clear_cell":
                cell = self.session._cell(_cell_id(data))
                n = self.session.clear_cell(_cell_id(data))
                self._send(c, self._state_message())
                names = ", ".join(f"`{x}`" for x in cell.nodes)
                self._send(c, _notice(
                    f"Cleared {n} cache entr{'y' if n == 1 else 'ies'} of {names}; the next "
                    f"run recomputes {'it' if len(cell.nodes) == 1 else 'them'}."
                    if n else f"Nothing of {names} was in the cache."))
            elif kind == "run_stale":
                self._send(c, _notice(self._run_stale()))
                self._send(c, self._state_message())
            elif kind == "cell_sources":
                self._send(c, {"type": "cell_sources", "protocol": PROTOCOL, "cells": [
                    {"cell_id": cell.frontend_id, "body": cell.body}
                    for cell in self.session.dag.cells.values()]})
            elif kind == "restore":
                report = self.session.restore()
                self._send(c, self._state_message())
                # Nothing to restore, or cells that could not be restored: say why (shown as a
                # notification); a full success shows in the DAG itself.
                if getattr(report, "found", True) is False or getattr(report, "failed_cells", None):
                    self._send(c, _error(str(report)))
            else:
                self._send(c, _error(f"unknown message type {kind!r}"))
        except BaseException as e:  # never raise into the kernel, KeyboardInterrupt included
            message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            try:
                self._send(c, _error(message))
            except Exception:
                log.exception("hamilton_nb: could not report error %s", message)

    def _send(self, c: Any, data: dict) -> None:
        """Send ``data`` on comm ``c`` (a state whole, numbered)."""
        with self._lock:
            if data.get("type") == "state":
                data = self._numbered(data)
                self._remember(c.comm_id, data)
            c.send(data)

    def _numbered(self, msg: dict) -> dict:
        self._seq += 1
        return {**msg, "seq": self._seq}

    def _remember(self, comm_id: str, data: dict) -> None:
        state = data["state"]
        self._bases[comm_id] = (data["seq"], state["nodes"], state["cells"])

    def _payload(self, comm_id: str, data: dict) -> dict:
        """What comm ``comm_id`` is sent of the numbered state ``data``: what changed since the
        state it was sent last, when it takes deltas and that is the smaller message."""
        state = data["state"]
        base = self._bases.get(comm_id)
        self._remember(comm_id, data)
        if base is None or comm_id not in self._delta_comms:
            return data
        seq, nodes, cells = base
        new_nodes, new_cells = state["nodes"], state["cells"]
        if len(nodes) != len(new_nodes) or len(cells) != len(new_cells):
            return data  # nodes or cells came or went: the whole state
        # Unchanged nodes and cells are the very same dicts (report.FrontStateCache): found by
        # identity, in C.
        changed_nodes = list(itertools.compress(range(len(nodes)),
                                                map(operator.is_not, new_nodes, nodes)))
        changed_cells = list(itertools.compress(range(len(cells)),
                                                map(operator.is_not, new_cells, cells)))
        if 2 * (len(changed_nodes) + len(changed_cells)) > len(nodes) + len(cells):
            return data
        return {"type": DELTA, "protocol": PROTOCOL, "base": seq, "seq": data["seq"],
                "session_id": state["session_id"], "run_id": state["run_id"],
                "running": state["running"], "n_nodes": len(new_nodes),
                "n_cells": len(new_cells),
                "nodes": [[i, new_nodes[i]] for i in changed_nodes],
                "cells": [[i, new_cells[i]] for i in changed_cells]}

    def _broadcast(self, data: dict,
                   marks: tuple[set[str], dict[str, str]] | None = None) -> None:
        """Send ``data`` on every comm (a state as a delta where the comm takes them);
        ``marks``: the stale nodes and their reasons a final state was built with (see
        ``_post_run_cell``)."""
        with self._lock:
            is_state = data.get("type") == "state"
            if is_state:
                self._last_state = data["state"]
                if marks is not None and not data["state"]["running"]:
                    self._changed = False
                    self._sent_stale, self._sent_reasons = marks
                data = self._numbered(data)
            self._last_send = time.monotonic()
            self._pending = False
            for c in list(self._comms.values()):
                try:
                    c.send(self._payload(c.comm_id, data) if is_state else data)
                except Exception:
                    log.debug("hamilton_nb: send failed, dropping comm", exc_info=True)
                    self._comms.pop(c.comm_id, None)
                    self._bases.pop(c.comm_id, None)

    def _marks(self) -> tuple[set[str], dict[str, str]]:
        """The stale nodes and why (on the kernel's thread: working them out changes the
        session's bookkeeping)."""
        from .report import stale_reasons

        stale = self.session.stale_nodes()
        return stale, stale_reasons(self.session, stale) if stale else {}

    def _state_message(self, finished: bool = False, run_id: int | None = None,
                       marks: tuple[set[str], dict[str, str]] | None = None) -> dict:
        from .report import cached_front_state

        # Built through the session's cache: the dicts of nodes nothing changed are the ones
        # of the previous state (shared: changed only as copies below).
        state = cached_front_state(self.session, stale=marks[0] if marks else None,
                                   reasons=marks[1] if marks else None)
        if finished:
            # run_finished is emitted inside the run, while the session still counts it as
            # running (and names the run before as its last): the state after it is the final
            # one, the state post_run_cell then finds unchanged (not sent twice).
            state["running"] = False
            if run_id is not None:
                state["run_id"] = run_id
        elif state["running"]:
            running, queued = set(self._running_nodes), set(self._queued)
            if running or queued:
                nodes = state["nodes"] = list(state["nodes"])
                for i, n in enumerate(nodes):
                    if n["name"] in running:
                        nodes[i] = {**n, "status": "running", "reason": "computing now"}
                    elif n["name"] in queued and n["kind"] == "function":
                        nodes[i] = {**n, "status": "queued",
                                    "reason": "waiting for its turn in this run"}
        return {"type": "state", "protocol": PROTOCOL, "state": state}

    def _run_stale(self) -> str:
        """Recompute and bind every stale node (``Session.run_stale`` when it exists)."""
        s = self.session
        run_stale = getattr(s, "run_stale", None)
        if run_stale is not None:
            result = run_stale()
            return str(result) if result is not None else "Stale nodes recomputed."
        stale = sorted(s.stale_nodes(), key=list(s.dag.order).index)
        if not stale:
            return "Nothing is stale."
        outcome = s.execute(stale, s.last_inputs)
        s.bind(outcome)
        if outcome.errors:
            name, err = next(iter(outcome.errors.items()))
            return f"Recomputing stale nodes failed at `{name}`: {type(err).__name__}: {err}"
        return f"Recomputed {len(stale)} stale node{'s' * (len(stale) != 1)}: " + ", ".join(
            f"`{n}`" for n in stale)

    def _post_run_cell(self, result: Any = None) -> None:
        """After any cell: send the state if it changed (a helper or constant edited in an
        ordinary cell makes nodes stale, and no session event says so)."""
        if not self._started or not self._comms or self.session.running:
            return
        try:
            if not self._changed:
                stale = self.session.stale_nodes()
                if stale == self._sent_stale and not stale:
                    return  # nothing an ordinary cell can change did
            marks = self._marks()
            if not self._changed and marks == (self._sent_stale, self._sent_reasons):
                return
            msg = self._state_message(marks=marks)
            with self._lock:
                if msg["state"] != self._last_state:
                    self._broadcast(msg, marks)
                else:
                    self._changed = False
                    self._sent_stale, self._sent_reasons = marks
        except Exception:
            log.exception("hamilton_nb: could not push state to the front-end")

    # ------------------------------------------------------------------ session events
    def _on_event(self, event: Any) -> None:
        kind = getattr(event, "kind", None)
        with self._lock:
            self._changed = True
            if kind == "run_started":
                self._queued = set(event.nodes)
                self._running_nodes = set()
            elif kind == "node_started":
                self._running_nodes.add(event.node)
            elif kind == "node_finished":
                self._queued.discard(event.node)
                self._running_nodes.discard(event.node)
            elif kind == "run_finished":
                self._queued, self._running_nodes = set(), set()
        if not self._started or not self._comms:
            return
        try:
            finished = kind == "run_finished"
            running = bool(self.session.running) and not finished
            if kind == "dag_changed" and not running and self.shell is not None \
                    and in_cell_execution(self.shell):
                # A cell registered (or removed) within a cell's execution: its run, if it
                # has one, follows at once, and post_run_cell sends the state if it changed
                # anyway; one state per cell, not a whole DAG's state per step of it.
                return
            with self._lock:
                if kind == "run_started":
                    # The window starts with the run: a run shorter than THROTTLE_S (a
                    # re-run served from the cache) sends one state, the final one, instead of
                    # a whole DAG's "queued" state its end replaces at once.
                    self._last_send = max(self._last_send, time.monotonic())
                wait = self._last_send + THROTTLE_S - time.monotonic()
                if finished or not running or wait <= 0:
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                    # A final state is built on the kernel's thread: with the stale nodes
                    # worked out here, which the check after the cell compares against.
                    marks = self._marks() if finished or not running else None
                    self._broadcast(self._state_message(
                        finished=finished, run_id=getattr(event, "run_id", None),
                        marks=marks), marks)
                    return
                # Throttled: the state is built only when the window ends (building it for
                # every event of a 500-node run cost seconds), so a long-running node does not
                # leave the front-end showing an outdated state either.
                self._pending = True
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._flush)
                    self._timer.daemon = True
                    self._timer.start()
        except Exception:
            log.exception("hamilton_nb: could not push state to the front-end")

    def _flush(self) -> None:
        # Timer thread, while the kernel thread runs nodes: dag_state() reads a snapshot of
        # the session's event map, and the DAG does not change during a run.
        try:
            with self._lock:
                self._timer = None
                if self._pending and self._started:
                    self._broadcast(self._state_message())
        except Exception:
            log.exception("hamilton_nb: could not push state to the front-end")


def in_cell_execution(shell: Any) -> bool:
    """Whether ``shell`` (an IPython shell in a kernel) is executing a cell whose end runs
    IPython's ``post_run_cell`` callbacks: an ``execute_request`` that is not silent. A comm
    message (a widget button, the lab extension) or plain IPython is not."""
    kernel = getattr(shell, "kernel", None)
    try:
        parent = kernel.get_parent() if kernel is not None else None
    except Exception:  # an ipykernel without get_parent: nothing to go by
        return False
    if not parent:
        return False
    if (parent.get("header") or {}).get("msg_type") != "execute_request":
        return False
    return not (parent.get("content") or {}).get("silent", False)


def _data(msg: Any) -> dict:
    try:
        data = msg["content"]["data"]
    except (KeyError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _cell_id(data: dict) -> str:
    cell_id = data.get("cell_id")
    if not isinstance(cell_id, str) or not cell_id:
        raise ValueError("message needs a non-empty 'cell_id'")
    return cell_id


def _error(message: str) -> dict:
    return {"type": "error", "protocol": PROTOCOL, "message": message}


def _notice(message: str) -> dict:
    return {"type": "notice", "protocol": PROTOCOL, "message": message}

"""Checkpoints: the session's state on disk, so a restarted kernel gets its live DAG back.

A **manifest** is the state of a session at one moment, as JSON:

* the ``%%hamilton`` cells in order (``cell_id`` and ``body``), the Hamilton config and the
  per-node cache settings;
* for every node that has a value, the cache key and data version of that value (plus its code
  version and the hash of its source, for :meth:`Checkpoints.diff`).

Values themselves stay in the store (content-addressed); a manifest only points at them, so saving
one costs one small file write. Two kinds of manifest live in the cache folder::

    sessions/nb-<hash of notebook path>.json   "last state" of a notebook, saved after every change
                                               (a journal: a manifest, then a line per change)
    sessions/nb-<hash>.previous.json           its last state in the kernel before this one
    sessions/<hash of working folder>.json     the same, where no notebook is known (plain IPython)
    checkpoints/<name>.json                    named checkpoints (``auto-*``: automatic)

The notebook is the one the kernel runs (``Session.notebook_identity``: ``__session__`` set by
ipykernel from Jupyter's session path, or VS Code's ``__vsc_ipynb_file__``), so two notebooks in
one folder never restore each other's DAG.

Restoring a manifest re-runs the ``%%hamilton`` cell bodies (they only *define* functions; nothing
is computed) and binds every user-facing node's value as an ordinary notebook variable, read
memory-mapped; the checksums of the mapped files are verified in the background
(``Session.settle``: a damaged one is dropped with a warning and recomputed).
The notebook's ordinary cells are not part of a manifest, so imports, helpers and constants that
the ``%%hamilton`` cells take from them must be defined again (run those cells first); a cell that
cannot be registered without them is reported by name and the others are restored anyway.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import errno
import hashlib
import inspect
import json
import os
import pickle
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import _trust
from ._files import atomic_write
from .errors import SessionError
from .events import CacheNote, DagChanged, Event, NodeEvent, RunFinished, Status
from .graph import CellError, prepare_cell
from .runner import Lazy, Runner, RunOutcome

if TYPE_CHECKING:
    from .session import Session
    from .store import Entry

MANIFEST_FORMAT = 1
AUTO_PREFIX = "auto-"
KEEP_AUTO = 10  # automatic checkpoints kept (the oldest go first)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")


class CheckpointError(SessionError):
    """A checkpoint request that cannot be carried out; the message says what to do."""


@dataclass
class RestoreReport:
    """What :meth:`Checkpoints.restore` did."""

    source: str  # "last state" or "checkpoint NAME"
    found: bool = True
    notebook: str | None = None  # whose last state (None: the working folder's)
    folder: str | None = None  # the working folder, when no notebook is known
    cells: list[str] = field(default_factory=list)  # cell ids registered again
    bound: list[str] = field(default_factory=list)  # names bound in the notebook
    failed_cells: dict[str, str] = field(default_factory=dict)  # cell id -> why
    missing_values: list[str] = field(default_factory=list)  # value gone from the cache
    #: code (a helper, constant, default, ...) or an input changed since the value was made:
    #: not bound, computed on the next run
    changed: list[str] = field(default_factory=list)
    #: keyed on a Parallelizable's per-item branches (a Collect and what follows it): a restore
    #: cannot key them again without the items, so they are left to the next run (a hit when
    #: nothing changed)
    after_fan_out: list[str] = field(default_factory=list)
    missing_names: dict[str, list[str]] = field(default_factory=dict)  # node -> undefined globals
    saved_as: str | None = None  # automatic checkpoint of the state before restoring
    seconds: float = 0.0

    def __str__(self) -> str:
        if not self.found:
            return (f"hamilton_nb: no saved state to restore{self._whose()} yet (it is saved "
                    f"as you run %%hamilton cells); nothing changed.")
        lines = [f"hamilton_nb: restored {self.source}{self._whose(' of')}: {len(self.cells)} "
                 f"cell(s), {len(self.bound)} value(s) bound, nothing recomputed "
                 f"({self.seconds:.2f}s)."]
        if self.folder is not None:
            lines.append(f"  No notebook name is known in this kernel (plain IPython?): this is "
                         f"the last state of the working folder {self.folder}. "
                         f"`%hamilton restore --notebook NAME` picks a notebook's.")
        if self.saved_as:
            lines.append(f"  The state before restoring is saved as checkpoint {self.saved_as!r}.")
        for cid, why in self.failed_cells.items():
            lines.append(f"  Cell {cid} was not restored: {why}")
        if self.failed_cells:
            lines.append("  Run the ordinary cells that define what is missing, then "
                         "`%hamilton restore` again (or re-run those %%hamilton cells).")
        names = sorted({n for ns in self.missing_names.values() for n in ns})
        if names:
            users = ", ".join(f"`{n}`" for n in sorted(self.missing_names))
            lines.append(
                f"  Not defined in the notebook: {', '.join(f'`{n}`' for n in names)} (read by "
                f"{users}). Run the cells that define them; until then those nodes show as stale."
            )
        if self.missing_values:
            lines.append(f"  No longer in the cache (computed on next run): "
                         f"{', '.join(self.missing_values)}.")
        if self.changed:
            lines.append(f"  Changed since they were saved (code, a helper, a constant or an "
                         f"input; computed on next run): {', '.join(self.changed)}.")
        if self.after_fan_out:
            lines.append(f"  Collected from a Parallelizable's items, which a restore does not "
                         f"check again (the next run takes them from the cache if nothing "
                         f"changed): {', '.join(self.after_fan_out)}.")
        return "\n".join(lines)

    def _whose(self, prefix: str = " for") -> str:
        if self.notebook is not None:
            return f"{prefix} notebook {self.notebook!r}"
        if self.folder is not None:
            return f"{prefix} working folder {self.folder} (no notebook name is known)"
        return ""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


# --------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def _read(path: Path) -> dict[str, Any] | None:
    """A manifest from disk, checked field by field (it is untrusted data, see _trust.py).

    A damaged one is skipped with one warning naming the file, and moved aside to
    ``damaged/`` in the cache folder so it does not warn again; None if absent or unusable.
    """
    try:
        raw = _trust.read_regular(path)
    except (FileNotFoundError, NotADirectoryError):  # none there (or no usable folder at all)
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EINVAL):  # a link or a FIFO in its place
            _set_aside(path, f"it is not a regular file ({e.strerror})")
        else:  # unreadable for this user: not damaged, leave it
            warnings.warn(f"hamilton_nb: cannot read checkpoint file {path}: {e}", stacklevel=3)
        return None
    first, _, rest = raw.partition(b"\n")
    try:
        data = json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        _set_aside(path, f"it is unreadable ({e})")
        return None
    if isinstance(data, dict) and _JOURNAL_KEY in data:
        _fold(data, rest, path)
    if isinstance(data, dict) and data.get("format") != MANIFEST_FORMAT and isinstance(
            data.get("format"), int):
        warnings.warn(f"hamilton_nb: ignoring checkpoint file {path}: it has another format "
                      f"(written by another version of hamilton_nb).", stacklevel=3)
        return None
    problem = "it is not a checkpoint manifest" if not isinstance(data, dict) or data.get(
        "format") != MANIFEST_FORMAT else _trust.manifest_problem(data)
    if problem is not None:
        _set_aside(path, problem)
        return None
    return data


# The last-state file is a journal: its first line is a whole manifest carrying a random token
# under this key; each later line is a patch of it, {"base": token, "head": {...}, "cells":
# {cell_id: body or null}, "order": [cell_id, ...], "nodes": {node: record or null}} (each part
# only when it changed). A kernel appends a line per change and writes the file whole (a new
# token) when it starts, when it has grown past twice its first line, or when the file is not
# the one it wrote. A reader applies the patches in order and stops at the first line that is
# not a complete patch of that very base: a line torn by a kill (no newline at its end), a
# damaged one, or one appended to an older file under the same name. What it has then is the
# state as saved before that line.
_JOURNAL_KEY = "journal"
_HEAD_PARTS = frozenset(("format", "name", "created", "session_id", "working_dir", "settings",
                         "config", "config_pickle"))


def _fold(m: dict[str, Any], rest: bytes, path: Path) -> None:
    """Apply the patch lines ``rest`` of a last-state journal to its first line ``m``."""
    token = m.pop(_JOURNAL_KEY)
    cells, nodes = m.get("cells"), m.get("nodes")
    if not rest or not isinstance(token, str) or not isinstance(nodes, dict) or not (
            isinstance(cells, list) and all(isinstance(c, dict) and isinstance(
                c.get("cell_id"), str) for c in cells)):
        return  # nothing appended, or a first line that _trust.manifest_problem turns down
    bodies = {c["cell_id"]: c.get("body") for c in cells}
    lines = rest.split(b"\n")
    for i, line in enumerate(lines[:-1]):  # the last piece has no newline: torn or empty
        try:
            p = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            p = None
        if not _is_patch(p, token):  # complete, so not torn by a kill: damaged
            warnings.warn(f"hamilton_nb: ignoring line {i + 2} and after of the last-state file "
                          f"{path}: it is not a record of that state; the state saved before "
                          f"it is used.", stacklevel=4)
            break
        if "head" in p:
            for k in [k for k in m if k not in ("cells", "nodes")]:
                del m[k]
            m.update(p["head"])
        for cid, body in p.get("cells", {}).items():
            if body is None:
                bodies.pop(cid, None)
            else:
                bodies[cid] = body
        if "order" in p:
            bodies = {cid: bodies[cid] for cid in p["order"] if cid in bodies}
        for name, rec in p.get("nodes", {}).items():
            if rec is None:
                nodes.pop(name, None)
            else:
                nodes[name] = rec
    m["cells"] = [{"cell_id": cid, "body": body} for cid, body in bodies.items()]


def _is_patch(p: Any, token: str) -> bool:
    """Whether ``p`` has the shape of a journal line appended to the base ``token`` (what
    the records say is checked on the result, by _trust.manifest_problem)."""
    if not isinstance(p, dict) or p.get("base") != token or not set(p) <= {
            "base", "head", "cells", "order", "nodes"}:
        return False
    head, cells = p.get("head", {}), p.get("cells", {})
    order, nodes = p.get("order", []), p.get("nodes", {})
    return (isinstance(head, dict) and set(head) <= _HEAD_PARTS
            and isinstance(cells, dict) and all(b is None or isinstance(b, str)
                                                for b in cells.values())
            and isinstance(order, list) and all(isinstance(c, str) for c in order)
            and isinstance(nodes, dict) and all(r is None or isinstance(r, dict)
                                                for r in nodes.values()))


class _Journal:
    """The last-state journal this kernel wrote: where, its token, and what it holds (the
    head's JSON, cell bodies and order) to tell what a new line must change."""

    LIMIT = 64 * 1024  # appended bytes always allowed before the file is written whole again

    def __init__(self, path: Path, token: str, head: str, cells: dict[str, str],
                 order: list[str], ino: int, size: int) -> None:
        self.path, self.token, self.head = path, token, head
        self.cells, self.order = cells, order
        self.ino, self.size, self.base = ino, size, size

    def full(self) -> bool:
        """Past this size, a restore reads more patches than it would a whole file."""
        return self.size - self.base > max(self.base, self.LIMIT)

    def append(self, line: bytes) -> bool:
        """Append one line; False (nothing written) if the file is not as this kernel left it
        (replaced by another kernel, truncated, a link put in its place)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno == errno.ELOOP:
                return False
            raise
        try:
            st = os.fstat(fd)
            if (st.st_ino, st.st_size) != (self.ino, self.size):
                return False
            try:
                n = os.write(fd, line)  # one write: all of the line, or (if killed) a head of it
                if n != len(line):
                    raise OSError(errno.ENOSPC, "last-state line written in part")
            except OSError:
                # A partial line would glue itself to the next one: cut it off again.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self.size)
                raise
            self.size += n
            return True
        finally:
            os.close(fd)


def _set_aside(path: Path, why: str) -> None:
    """Warn once about a damaged manifest and move it to <cache>/damaged/ (kept for a look)."""
    aside = path.parent.parent / "damaged" / f"{path.parent.name}-{int(time.time())}-{path.name}"
    try:
        aside.parent.mkdir(exist_ok=True)
        os.replace(path, aside)
        where = f"moved to {aside}"
    except OSError as e:  # read-only folder: it stays, and is skipped again next time
        where = f"could not be moved aside ({e.strerror or e}); delete it"
    warnings.warn(f"hamilton_nb: skipped damaged checkpoint file {path}: {why}. It was {where}; "
                  f"everything else is used.", stacklevel=4)


def _encode_config(config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        text = json.dumps(dict(config), sort_keys=True)
        if json.loads(text) == dict(config):
            return {"config": dict(config)}
    except (TypeError, ValueError):
        pass
    try:
        return {"config_pickle": base64.b64encode(pickle.dumps(dict(config))).decode()}
    except Exception as e:  # whatever pickling raises
        raise CheckpointError(f"The Hamilton config cannot be saved in a checkpoint: {e}") from e


def _decode_config(manifest: Mapping[str, Any]) -> dict[str, Any]:
    if "config_pickle" in manifest:
        return pickle.loads(base64.b64decode(manifest["config_pickle"]))
    return dict(manifest.get("config") or {})


def _cell_signature(cell: Any) -> tuple[Any, ...]:
    """What the saved state records of a cell: its body, its functions' code, its nodes."""
    return (cell.body, tuple(sorted(fc.static for fc in cell.fcodes.values())),
            tuple(cell.nodes))


def build_manifest(
    session: Session, name: str | None = None,
    memo: dict[tuple[Any, ...], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The session's state as a JSON-serializable dict (see module docstring).

    ``memo``: node records by what they are made of (node, cell, code, event): the last-state
    record is rebuilt after every change, and only the changed nodes' records cost anything."""
    dag = session.dag
    events = session.node_events
    finder = _EntryFinder(session)
    nodes: dict[str, dict[str, Any]] = {}
    is_input = dag.inputs
    fresh: dict[tuple[Any, ...], dict[str, Any]] = {}
    for node_name, n in dag.nodes.items():  # JSON sorts the keys: no topological order needed
        if node_name in is_input:
            continue
        fns = n.originating_functions or ()
        statics = tuple(fc.static if (fc := dag.fcode(f)) is not None else "" for f in fns)
        ev = events.get(node_name)
        mkey = (node_name, dag.node_cell.get(node_name), statics,
                None if ev is None else (ev.status, ev.code_version, ev.data_version, ev.cache,
                                         ev.at))
        if memo is not None and mkey in memo:
            nodes[node_name] = fresh[mkey] = memo[mkey]
            continue
        nodes[node_name] = fresh[mkey] = _node_record(dag, node_name, statics, ev, finder)
    if memo is not None:
        memo.clear()
        memo.update(fresh)
    manifest = _manifest_head(session, name)
    manifest["nodes"] = nodes
    key = session.cache_key
    if key is not None:  # a signed index: restore runs only code a key holder saved
        _trust.sign_manifest(manifest, key)
    return manifest


def _manifest_head(session: Session, name: str | None, cells: Any = None) -> dict[str, Any]:
    """Everything of a manifest but its node records (``cells``: what to put for the cells,
    default their list)."""
    dag = session.dag
    head: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "created": time.time(),
        "session_id": session.session_id,
        "working_dir": os.getcwd(),
        "cells": [{"cell_id": c.cell_id, "body": c.body} for c in dag.cells.values()]
        if cells is None else cells,
        "settings": {"behavior": dict(session.settings.behavior),
                     "format": dict(session.settings.format)},
    }
    head.update(_encode_config(dag.config))
    return head


class _EntryFinder:
    """The store entry holding a node's event's value (built lazily: most saves need none)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.store: Any = None
        self.by_version: dict[tuple[str, str, str], Entry] | None = None

    def find(self, node: str, code_version: str, data_version: str) -> Entry | None:
        if self.store is None:
            self.store = self.session.store
        entry = self.store.latest(node)
        if entry is None or (entry.code_version, entry.data_version) != (code_version,
                                                                         data_version):
            if self.by_version is None:  # rare: another entry of the node is newer
                self.by_version = {(e.node, e.code_version, e.data_version): e
                                   for e in sorted(self.store.entries(), key=lambda e: e.created)}
            entry = self.by_version.get((node, code_version, data_version))
        return entry


def _node_record(dag: Any, node_name: str, statics: tuple[str, ...], ev: NodeEvent | None,
                 finder: _EntryFinder) -> dict[str, Any]:
    """A node's record in a manifest: its cell, its code, and where its value is stored."""
    source = hashlib.sha256("|".join(statics).encode()).hexdigest()[:32]
    rec: dict[str, Any] = {"cell_id": dag.node_cell.get(node_name), "source": source}
    if (ev is not None and ev.status in (Status.COMPUTED, Status.CACHED)
            and ev.data_version and ev.code_version and ev.cache == CacheNote.STORED):
        entry = finder.find(node_name, ev.code_version, ev.data_version)
        if entry is not None:
            rec.update(key=entry.key, code_version=entry.code_version,
                       data_version=entry.data_version, at=ev.at)
    return rec


def diff_manifests(a: Mapping[str, Any], b: Mapping[str, Any]) -> pd.DataFrame:
    """Nodes that differ between two manifests: in code, in value, or present in one only.

    ``change`` is the kind (code / value / code and value / only in A / only in B); ``what``
    says it in words, e.g. "code of `features` changed (and so its value)", "`extra` added
    with a new cell", "value of `model` changed: upstream `features` changed".
    """
    na, nb = a.get("nodes", {}), b.get("nodes", {})
    cells_a = {c.get("cell_id") for c in a.get("cells", [])}
    cells_b = {c.get("cell_id") for c in b.get("cells", [])}
    changed: set[str] = set()
    rows = []
    for node in list(dict.fromkeys([*na, *nb])):
        ra, rb = na.get(node), nb.get(node)
        if ra is None or rb is None:
            if rb is None:
                cell_gone = ra.get("cell_id") not in cells_b
                what = f"`{node}` removed" + (" with its cell" if cell_gone else "")
            else:
                cell_new = rb.get("cell_id") not in cells_a
                what = f"`{node}` added" + (" with a new cell" if cell_new else "")
            changed.add(node)
            rows.append({"node": node, "change": "only in A" if rb is None else "only in B",
                         "what": what, "a": _short(ra), "b": _short(rb)})
            continue
        code = ra.get("source") != rb.get("source") or (
            ra.get("code_version") and rb.get("code_version")
            and ra["code_version"] != rb["code_version"])
        value = ra.get("data_version") != rb.get("data_version")
        if code or value:
            change = "code and value" if code and value else "code" if code else "value"
            if code:
                what = f"code of `{node}` changed" + (" (and so its value)" if value else
                                                      " (same value)")
            else:
                ups = [d for d in rb.get("deps", ra.get("deps", [])) or [] if d in changed]
                what = f"value of `{node}` changed" + (
                    f": upstream `{ups[0]}` changed" if ups else
                    ("" if ra.get("data_version") and rb.get("data_version")
                     else " (one side has no value)"))
            changed.add(node)
            rows.append({"node": node, "change": change, "what": what, "a": _short(ra),
                         "b": _short(rb)})
    return pd.DataFrame(rows, columns=["node", "change", "what", "a", "b"])


def _short(rec: Mapping[str, Any] | None) -> str:
    if rec is None:
        return "-"
    dv = rec.get("data_version")
    return f"value {dv[:12]}" if dv else "no value"


# --------------------------------------------------------------------------------------------
# The session's checkpoint manager
# --------------------------------------------------------------------------------------------


# Where the node entries go in the last-state text (random: no cell body can contain it).
_NODES_MARK = f"@@hamilton-nb-nodes-{os.urandom(8).hex()}@@"
_CELLS_MARK = f"@@hamilton-nb-cells-{os.urandom(8).hex()}@@"


class Checkpoints:
    """Saves the session's "last state" as it changes, and manages named checkpoints.

    Created by the session, which exposes it as ``session.checkpoints``.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._suspended = False
        # What we last wrote where (skip identical signed writes); None: a journal (see _Journal)
        self._written: dict[Path, str | None] = {}
        self._journal: _Journal | None = None  # this kernel's last-state journal, if any
        self._changed_nodes: set[str] = set()  # node entries changed since it was written
        self._warned = False
        self._dirty = True
        self._saved_nodes: dict[str, tuple[Any, Any]] = {}  # node -> (code, data) version saved
        self._saved_cells: dict[str, tuple[Any, ...]] = {}  # cell -> _cell_signature saved
        self._records: dict[tuple[Any, ...], dict[str, Any]] = {}  # build_manifest's memo
        # The last-state record's node entries as JSON text, by node: only the nodes an event
        # named since the last save are built again (None: all of them, next save).
        self._frags: dict[str, str] = {}
        self._frag_dirty: set[str] | None = None
        self._frag_root: Path | None = None
        self._frag_versions: dict[str, tuple[Any, Any]] = {}
        self._cells_touched: set[str] | None = None  # cells registered since the last save
        self._cell_frags: dict[str, tuple[str, str]] = {}  # cell -> (body, its JSON)
        self._defer = 0  # > 0 inside deferred(): one save at its end instead of one per event
        self._save_pending = False
        # The kernel's starting folder: a relative notebook name is resolved against it (a
        # later `%cd` does not change which notebook this is).
        self._cwd = os.getcwd()
        self.unsubscribe = session.subscribe(self._on_event)

    # -- paths ----------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.session.cache_dir

    @property
    def folder(self) -> Path:
        return self.root / "checkpoints"

    def notebook_key(self, notebook: str | None = None) -> tuple[str, str | None]:
        """(file stem of the last-state record, notebook name or None for the folder)."""
        nb = notebook or self.session.notebook_identity()
        if nb is None:
            return hashlib.sha256(os.getcwd().encode()).hexdigest()[:16], None
        path = nb if os.path.isabs(nb) else os.path.join(self._cwd, nb)
        if not os.path.splitext(path)[1]:
            path += ".ipynb"  # `--notebook analysis` means analysis.ipynb
        return "nb-" + hashlib.sha256(os.path.normpath(path).encode()).hexdigest()[:16], nb

    def _state_path(self, suffix: str = "", notebook: str | None = None) -> Path:
        where, _ = self.notebook_key(notebook)
        return self.root / "sessions" / f"{where}{suffix}.json"

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise CheckpointError(
                f"Invalid checkpoint name {name!r}: use letters, digits, '_', '-' and '.', "
                f"e.g. `before-refactor`."
            )
        return self.folder / f"{name}.json"

    # -- automatic "last state" -------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if self._suspended:
            return
        if isinstance(event, NodeEvent):
            # A run changes the saved state only if a node now refers to other code or data:
            # an all-hit run writes nothing (it is the hot path).
            if self._saved_nodes.get(event.node) != (event.code_version, event.data_version):
                self._dirty = True
                self._frag_touch((event.node,))
        elif isinstance(event, DagChanged):
            if event.cell_id is None:
                self._frag_dirty = None
                self._cells_touched = None
            else:
                self._frag_touch((*event.added, *event.removed))
                if self._cells_touched is not None:
                    self._cells_touched.add(event.cell_id)
            if event.cell_id is not None and self._cell_unchanged(event.cell_id):
                # Re-running a cell with the same code changes nothing the state records;
                # rebuilding it would cost O(notebook) on every cell run (the hot path).
                return
            self._request_save()
        elif isinstance(event, RunFinished) and self._dirty:
            self._request_save()

    def _frag_touch(self, names: tuple[str, ...]) -> None:
        if self._frag_dirty is not None:
            self._frag_dirty.update(names)

    def _signed_text(self) -> tuple[str, dict[str, tuple[Any, Any]]]:
        """A signed last-state record (a cache key is set), built whole: its signature covers
        the parsed manifest. Also each node's (code, data) version in it."""
        manifest = build_manifest(self.session, memo=self._records)
        manifest.pop("created")
        return json.dumps(manifest, sort_keys=True), {
            n: (r.get("code_version"), r.get("data_version"))
            for n, r in manifest["nodes"].items()}

    def _refresh_frags(self) -> None:
        """Make again the JSON entries of the nodes an event named since the last save.

        Rebuilding the record whole after every cell cost O(notebook) on each edit (issue 12):
        the node entries are kept as JSON text, and the names whose text changed are collected
        in ``_changed_nodes`` for the next journal line."""
        s = self.session
        dag = s.dag
        dirty = self._frag_dirty
        if dirty is None or self._frag_root != self.root:
            self._frags, self._frag_versions = {}, {}
            self._journal = None  # every entry is new: the next save writes the file whole
            names: Any = dag.nodes
        else:
            names = dirty
        self._frag_dirty, self._frag_root = set(), self.root
        finder = _EntryFinder(s)
        changed = self._changed_nodes
        for name in list(names):
            n = dag.nodes.get(name)
            if n is None or name in dag.inputs:
                if self._frags.pop(name, None) is not None:
                    changed.add(name)
                self._frag_versions.pop(name, None)
                continue
            statics = tuple(fc.static if (fc := dag.fcode(f)) is not None else ""
                            for f in (n.originating_functions or ()))
            rec = _node_record(dag, name, statics, s.node_events.get(name), finder)
            frag = f"{json.dumps(name)}: {json.dumps(rec, sort_keys=True)}"
            if self._frags.get(name) != frag:
                self._frags[name] = frag
                changed.add(name)
            self._frag_versions[name] = (rec.get("code_version"), rec.get("data_version"))

    def _head(self) -> dict[str, Any]:
        """The record's head: everything but its cells and node entries (small)."""
        head = _manifest_head(self.session, None, cells=_CELLS_MARK)
        head.pop("created")
        head.pop("cells")
        return head

    def _whole_text(self, head: dict[str, Any], token: str) -> str:
        """The whole last-state record as one JSON line (the journal's first line)."""
        frags = self._cell_frags
        cells = []
        for c in self.session.dag.cells.values():
            hit = frags.get(c.cell_id)
            if hit is None or hit[0] != c.body:
                hit = frags[c.cell_id] = (c.body, json.dumps({"body": c.body,
                                                               "cell_id": c.cell_id}))
            cells.append(hit[1])
        nodes = "{" + ", ".join(self._frags[k] for k in sorted(self._frags)) + "}"
        return json.dumps({**head, "cells": _CELLS_MARK, "nodes": _NODES_MARK,
                           _JOURNAL_KEY: token}, sort_keys=True).replace(
            json.dumps(_CELLS_MARK), "[" + ", ".join(cells) + "]", 1).replace(
            json.dumps(_NODES_MARK), nodes, 1)

    def _save_journal(self, path: Path) -> None:
        """Write the last state as a line appended to the file (what changed since the last
        line: the node entries, cell bodies, cell order and head that differ), or the file
        whole when there is no journal of this kernel there, or it has grown past its limit.

        Appending costs what changed; rewriting the file costs the notebook (hundreds of kB
        and a rename for a long one), which every edit used to pay."""
        self._refresh_frags()
        head = self._head()
        head_text = json.dumps(head, sort_keys=True)
        cells = self.session.dag.cells
        j = self._journal
        touched = self._cells_touched
        if j is None or j.path != path or touched is None or j.full():
            self._write_whole(path, head, head_text)
            return
        parts = [f'"base": {json.dumps(j.token)}']
        if head_text != j.head:
            parts.append(f'"head": {head_text}')
        bodies: dict[str, str | None] = {}
        for cid in touched:
            body = cells[cid].body if cid in cells else None
            if j.cells.get(cid) != body:
                bodies[cid] = body
        if bodies:
            parts.append(f'"cells": {json.dumps(bodies, sort_keys=True)}')
        order = list(cells)
        if order != j.order:
            parts.append(f'"order": {json.dumps(order)}')
        changed = self._changed_nodes
        if changed:
            parts.append('"nodes": {' + ", ".join(
                self._frags.get(n) or f"{json.dumps(n)}: null" for n in sorted(changed)) + "}")
        if len(parts) > 1:
            line = ("{" + ", ".join(parts) + "}\n").encode("utf-8")
            try:
                appended = j.append(line)
            except OSError:
                self._journal = None  # what is on disk is unknown now: the next save is whole
                raise
            if not appended:  # the file is not the one this kernel wrote: write it whole
                self._write_whole(path, head, head_text)
                return
            j.head, j.order = head_text, order
            for cid, body in bodies.items():
                if body is None:
                    j.cells.pop(cid, None)
                else:
                    j.cells[cid] = body
        versions, saved = self._frag_versions, self._saved_nodes
        for n in changed:
            if n in versions:
                saved[n] = versions[n]
            else:
                saved.pop(n, None)
        changed.clear()

    def _write_whole(self, path: Path, head: dict[str, Any], head_text: str) -> None:
        self._journal = None
        token = os.urandom(8).hex()  # the lines appended to this very file carry it
        data = (self._whole_text(head, token) + "\n").encode("utf-8")
        st = atomic_write(path, data)  # (the file written, not whatever is at path by now)
        cells = self.session.dag.cells
        self._journal = _Journal(path, token, head_text, {c: v.body for c, v in cells.items()},
                                 list(cells), st.st_ino, st.st_size)
        self._saved_nodes = dict(self._frag_versions)
        self._changed_nodes.clear()

    def _request_save(self) -> None:
        if self._defer:
            self._save_pending = True
        else:
            self.save_state()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Coalesce the last-state saves of a block (a cell registers, then runs) into one."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
            if not self._defer and self._save_pending:
                self._save_pending = False
                self.save_state()

    def _cell_unchanged(self, cell_id: str) -> bool:
        cell = self.session.dag.cells.get(cell_id)
        saved = self._saved_cells.get(cell_id)
        return cell is not None and saved is not None and saved == _cell_signature(cell)

    def save_state(self) -> None:
        """Write the last state of this working folder (atomically; skipped if unchanged)."""
        s = self.session
        if not s.settings.enabled or not s.dag.cells:
            # No disk cache, or an empty DAG (after reset): keep the last non-empty state.
            return
        if getattr(s.store, "degraded", None):
            return  # the folder takes no writes: the store has already said so, once
        try:
            path = self._state_path()
            if path not in self._written:
                # First write of this kernel: keep the previous kernel's state for restore().
                old = _read(path)
                if old is not None and old.get("session_id") != s.session_id:
                    os.replace(path, self._state_path(".previous"))
            if s.cache_key is not None:
                text, versions = self._signed_text()
                self._journal = None  # a signed record is written whole (see _read)
                if self._written.get(path) == text:
                    return
                _atomic_write(path, text)
                self._written[path] = text
                self._saved_nodes = versions
            else:
                self._save_journal(path)
                self._written[path] = None
            self._dirty = False
            cells = s.dag.cells
            touched = self._cells_touched
            if touched is None:
                self._saved_cells = {cid: _cell_signature(c) for cid, c in cells.items()}
            else:
                for cid in touched:
                    if cid in cells:
                        self._saved_cells[cid] = _cell_signature(cells[cid])
                    else:
                        self._saved_cells.pop(cid, None)
            self._cells_touched = set()
        except (OSError, CheckpointError) as e:
            degrade = getattr(s.store, "degrade", None)
            if degrade is not None and _trust.is_disk_error(e):
                # A folder that takes no writes (read-only, full): the store warns once for
                # the whole folder and keeps new values in memory from now on.
                degrade(e, "saving the session state")
            elif not self._warned:
                self._warned = True
                warnings.warn(f"hamilton_nb: could not save the session state for restore: {e}",
                              stacklevel=2)

    def last_state(self, notebook: str | None = None) -> dict[str, Any] | None:
        """The state this notebook (or ``notebook``; plain IPython: the working folder) had
        before this kernel changed it (see restore())."""
        last = _read(self._state_path(notebook=notebook))
        if last is not None and last.get("session_id") != self.session.session_id:
            return last
        previous = _read(self._state_path(".previous", notebook))
        return previous if previous is not None else last

    # -- named checkpoints -----------------------------------------------------------------------

    def save(self, name: str, overwrite: bool = False) -> Path:
        """Save the current DAG code and the keys of its values as checkpoint ``name``."""
        path = self._path(name)
        if path.exists() and not overwrite:
            raise CheckpointError(
                f"Checkpoint {name!r} exists. Choose another name, delete it first "
                f"(`%hamilton checkpoint delete {name}`) or pass --force."
            )
        if not self.session.dag.cells:
            raise CheckpointError("The live DAG is empty: nothing to save in a checkpoint.")
        try:
            _atomic_write(path, json.dumps(build_manifest(self.session, name), sort_keys=True))
        except OSError as e:  # read-only or full folder: nothing half-written is left
            raise CheckpointError(f"Cannot write checkpoint {name!r} in {self.folder}: "
                                  f"{e.strerror or e}. {_trust.disk_remedy(e)}.") from e
        return path

    def _load(self, name: str) -> dict[str, Any]:
        manifest = _read(self._path(name))
        if manifest is None:
            known = ", ".join(self.names()) or "none yet"
            raise CheckpointError(f"No checkpoint {name!r}. Checkpoints: {known}. "
                                  f"Save one with `%hamilton checkpoint save NAME`.")
        return manifest

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if not p.name.startswith("."))

    def _all(self) -> list[dict[str, Any]]:
        out = []
        for name in self.names():
            m = _read(self.folder / f"{name}.json")
            if m is not None:
                m["name"] = name
                out.append(m)
        return sorted(out, key=lambda m: m.get("created", 0.0))

    def list(self) -> pd.DataFrame:
        """One row per checkpoint: name, created, cells, nodes, values, automatic."""
        rows = [
            {"name": m["name"],
             "created": pd.Timestamp(m.get("created", 0.0), unit="s").floor("s"),
             "cells": len(m.get("cells", [])), "nodes": len(m.get("nodes", {})),
             "values": sum(1 for r in m.get("nodes", {}).values() if r.get("key")),
             "automatic": m["name"].startswith(AUTO_PREFIX)}
            for m in self._all()
        ]
        return pd.DataFrame(rows, columns=["name", "created", "cells", "nodes", "values",
                                           "automatic"])

    def diff(self, a: str, b: str | None = None) -> pd.DataFrame:
        """Nodes whose code or value differ between checkpoints ``a`` and ``b`` (or the
        current state when ``b`` is None). Columns: node, change, a, b."""
        ma = self._load(a)
        mb = self._load(b) if b is not None else build_manifest(self.session)
        return diff_manifests(ma, mb)

    def delete(self, name: str) -> None:
        """Delete a checkpoint (its values become evictable again)."""
        path = self._path(name)
        if not path.exists():
            self._load(name)  # raises with the list of names
        try:
            path.unlink()
        except OSError as e:
            raise CheckpointError(f"Cannot delete checkpoint {name!r}: {e.strerror or e}. "
                                  f"{_trust.disk_remedy(e)}.") from e

    def protected_versions(self) -> frozenset[str]:
        """Data versions of the values that some checkpoint refers to."""
        return frozenset(
            r["data_version"] for m in self._all() for r in m.get("nodes", {}).values()
            if r.get("data_version")
        )

    def _auto_save(self) -> str | None:
        """Save the current state as ``auto-<time>`` before it is replaced; prune old ones."""
        if not self.session.dag.cells or getattr(self.session.store, "degraded", None):
            return None  # (a folder that takes no writes: restoring from it still works)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{AUTO_PREFIX}{stamp}"
        i = 1
        while self._path(name).exists():
            i += 1
            name = f"{AUTO_PREFIX}{stamp}-{i}"
        try:
            self.save(name)
        except CheckpointError as e:
            if not isinstance(e.__cause__, OSError):
                raise
            return None  # an unwritable folder does not stop a restore from it
        autos = [n for n in (m["name"] for m in self._all()) if n.startswith(AUTO_PREFIX)]
        for old in autos[:-KEEP_AUTO]:
            with contextlib.suppress(FileNotFoundError):
                self._path(old).unlink()
        return name

    # -- restore ---------------------------------------------------------------------------------

    def restore(self, name: str | None = None, notebook: str | None = None) -> RestoreReport:
        """Bring back the live DAG (code) and bind its values, recomputing nothing.

        ``name=None`` restores the last state this notebook (``notebook`` if given; plain
        IPython: the working folder) had before this kernel started changing it (after a
        restart: the DAG as it was before). A named checkpoint replaces the current DAG; the
        current state is first saved as an ``auto-*`` checkpoint. Nothing to restore changes
        nothing.
        """
        t0 = time.perf_counter()
        if name is None:
            _, nb = self.notebook_key(notebook)
            folder = None if nb is not None else os.getcwd()
            manifest = self.last_state(notebook)
            if manifest is None:
                return RestoreReport("last state", found=False, notebook=nb, folder=folder)
            report = RestoreReport("last state", notebook=nb, folder=folder)
        else:
            manifest = self._load(name)
            report = RestoreReport(f"checkpoint {name!r}")
        self._check_trusted(manifest, report.source)
        report.saved_as = self._auto_save()
        self._suspended = True
        try:
            self._apply(manifest, report)
            if name is None:
                # The record on disk already holds this state: rewriting it now only costs
                # time (two file writes); the next change of the DAG or a value writes it.
                self.session._emit(DagChanged(None))  # front-ends refresh once, not per cell
        finally:
            self._suspended = False
        if name is not None:
            self.save_state()
            self.session._emit(DagChanged(None))
        report.seconds = time.perf_counter() - t0
        return report

    def _check_trusted(self, manifest: Mapping[str, Any], source: str) -> None:
        """With a cache key, refuse (changing nothing) to run code from an unsigned manifest."""
        key = self.session.cache_key
        problem = None if key is None else _trust.manifest_signature_problem(manifest, key)
        if problem is not None:
            raise CheckpointError(
                f"Refusing to restore {source}: it is {problem} for the cache key, and restoring "
                f"runs the code stored in it. Re-run your %%hamilton cells instead (their state "
                f"is then saved signed), or unset the key if you trust everyone who can write "
                f"{self.root}."
            )

    def _apply(self, manifest: Mapping[str, Any], report: RestoreReport) -> None:
        s = self.session
        s.reset()
        settings = manifest.get("settings", {})
        s.settings.behavior = dict(settings.get("behavior", {}))
        s.settings.format = dict(settings.get("format", {}))
        s.set_config(_decode_config(manifest))
        _register_all(s, manifest.get("cells", []), report)

        store = s.store
        refresh = getattr(store, "refresh", None)
        if refresh is not None:
            refresh()
        runner = Runner(s.dag, store, lambda e: None, s.settings, s._static, s._config_keys)
        lazies: dict[str, Lazy] = {}
        label = f"restored from {report.source}"
        saved = manifest.get("nodes", {})
        for node_name, entry in _rekey(s, runner, saved, report):
            rec = saved[node_name]
            lazies[node_name] = runner._lazy(node_name, entry)
            s.node_events[node_name] = NodeEvent(
                0, node_name, Status.CACHED, label, s.dag.node_cell.get(node_name), 0.0,
                entry.compute_time, entry.size, CacheNote.STORED,
                code_version=entry.code_version, data_version=entry.data_version,
                at=rec.get("at", entry.created),
            )
        report.bound = s.bind(RunOutcome(0, list(lazies), dict(lazies), [], {}))
        report.missing_names = _undefined_globals(s)


def _rekey(s: Session, runner: Runner, saved: Mapping[str, Any],
           report: RestoreReport) -> list[tuple[str, Entry]]:
    """The saved nodes whose value is still right for the code and inputs as they are *now*.

    A manifest names each value by the key it had when it was saved; since then an ordinary
    cell may have changed a helper, a constant or a default (run before `%hamilton restore`).
    So every node is keyed again, in topological order, exactly as a run's plan would key it:
    a value is bound only when its current key finds an entry. Nothing is loaded.
    """
    from .runner import _ABSENT, _reads_source

    dag, ns, config = s.dag, s.namespace, s.dag.config
    runner.dv, runner.parts = {}, {}
    out: list[tuple[str, Entry]] = []
    # Nodes run once per item (keyed per item, no key of their own) and those keyed on them:
    # without the items their keys cannot be made again here.
    fanned = set(dag.fan_out(dag.order))
    for name in dag.order:
        n = dag.nodes[name]
        if n.user_defined:
            value = config[name] if name in config else ns.get(name, _ABSENT)
            runner.dv[name] = runner._input_version(name, value)
            continue
        runner.dv[name] = None  # unknown until an entry is found
        rec = saved.get(name)
        if rec is None or not rec.get("key"):
            continue
        if s.store.lookup(rec["key"]) is None:
            report.missing_values.append(name)
            continue
        files = None
        if _reads_source(n):
            inputs = {d: config[d] if d in config else ns.get(d, _ABSENT)
                      for d in dag.deps[name] if dag.nodes[d].user_defined}
            if len(inputs) != len(dag.deps[name]):
                report.changed.append(name)  # it reads a path a node computes
                continue
            files = runner._loader_files(name, n, inputs)
        key, parts = runner._key(n, name, files)
        if key is None and not fanned.isdisjoint(dag.deps[name]):
            fanned.add(name)
            report.after_fan_out.append(name)
            continue
        store_entry = s.store.lookup(key) if key else None
        if store_entry is None:
            # Restored before the ordinary cells ran again: a helper or input it reads is not
            # defined yet. The saved value stays bound (and shows as stale) when everything
            # that *is* defined agrees with what it was made from; anything present and
            # different means it was made by other code.
            saved_entry = s.store.lookup(rec["key"])
            if saved_entry is None or not _agrees_where_defined(saved_entry.parts, parts):
                report.changed.append(name)
                continue
            store_entry = saved_entry
        runner.dv[name] = store_entry.data_version
        out.append((name, store_entry))
    return out


_UNDEFINED = ("<missing>", "<absent>")


def _agrees_where_defined(saved: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """Whether key parts ``now`` (with some names undefined) match ``saved`` elsewhere."""
    incomplete = False
    old_code, new_code = saved.get("code") or {}, now.get("code") or {}
    if set(old_code) != set(new_code):
        return False
    for fn, new in new_code.items():
        old = old_code[fn]
        for k, v in new.items():
            if v in _UNDEFINED:
                incomplete = True
            elif old.get(k) != v:
                return False
    old_deps, new_deps = saved.get("deps") or {}, now.get("deps") or {}
    for d, v in new_deps.items():
        if v in _UNDEFINED:
            incomplete = True
        elif old_deps.get(d) != v:
            return False
    return incomplete


def _register_all(s: Session, cells: list[dict[str, str]], report: RestoreReport) -> None:
    """Register the cells in order with one graph build (one build per cell is quadratic:
    seconds for a few hundred cells). If the whole DAG does not build, fall back to one cell at
    a time, so the report names the cell that does not fit and the others are restored."""
    prepared = []
    for cell in cells:
        try:
            c = prepare_cell(cell["cell_id"], cell["body"], s.namespace, s.dag.config)
        except CellError as e:
            report.failed_cells[cell["cell_id"]] = _one_line(e)
            continue
        try:
            s.check_shadowing(c)
        except CellError as e:
            c.rollback(s.namespace)
            report.failed_cells[cell["cell_id"]] = _one_line(e)
            continue
        c.commit(s.namespace)  # its imports/helpers stay: a later cell may use them
        prepared.append(c)
    try:
        s.dag.add_cells(prepared)
    except CellError:
        for c in prepared:
            try:
                s.register_cell(c.body, c.cell_id)
            except CellError as e:
                report.failed_cells[c.cell_id] = _one_line(e)
            else:
                report.cells.append(c.cell_id)
        return
    report.cells.extend(c.cell_id for c in prepared)


def _one_line(e: Exception) -> str:
    """A restore report gives one line per cell it could not restore."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _undefined_globals(session: Session) -> dict[str, list[str]]:
    """Node -> global names its function reads that the notebook does not define."""
    out: dict[str, list[str]] = {}
    names_builtin = vars(builtins)
    for cell in session.dag.cells.values():
        for fname, fn in cell.functions.items():
            fc = session.dag.fcode(fn)
            if fc is None:
                continue
            g = getattr(inspect.unwrap(fn), "__globals__", session.namespace)
            missing = [x for x in fc.global_names
                       if x not in g and x not in names_builtin and x not in cell.published]
            if missing:
                out[fname] = missing
    return out


__all__ = ["CheckpointError", "Checkpoints", "RestoreReport", "build_manifest", "diff_manifests"]

"""Content-addressed result store: joblib/parquet value files plus an append-only metadata journal.

Layout of a cache folder (format :data:`STORE_FORMAT`)::

    FORMAT                         "hamilton_nb-store 1"
    values/ab/<data version>.joblib (or .parquet)
    index/<host>-<pid>-<random>.jsonl   one journal per writing process
    checkpoints/<name>.json        named checkpoints (see checkpoint.py)

Why a journal per process and not SQLite: a finished node must survive a killed kernel, yet the
index must not pay a commit (or an fsync) per node — Hamilton's cache does exactly that and it
dominates small nodes. One ``write()`` of one line per node, unbuffered, is in the kernel's page
cache when the call returns, so a SIGKILL keeps it; no fsync, so power loss may not (not
required, DESIGN.md §4). One file per process means concurrent kernels never interleave bytes,
and a torn last line (killed mid-write) can only be at the end of a dead process's journal,
where the reader drops it. Values are written to a temporary file and renamed into place, so a
value file is either complete or absent.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import mmap
import os
import pickle
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import joblib
import xxhash

from ._files import atomic_write

STORE_FORMAT = 1
INLINE_LIMIT = 2048  # pickles smaller than this live in the journal line itself: no file
COMPACT_AFTER = 16  # journals of finished processes are merged into one when a store opens


class StoreError(Exception):
    """A value could not be stored (e.g. it cannot be pickled)."""


class CorruptEntry(Exception):
    """A stored value is missing, truncated or unreadable: treat it as a miss."""


@dataclass
class Entry:
    """Metadata of one cache entry: ``key`` -> a value stored under ``data_version``."""

    key: str
    node: str
    code_version: str
    data_version: str
    fmt: str  # "inline" | "joblib" | "parquet"
    size: int
    compute_time: float
    created: float
    last_used: float
    parts: dict[str, Any] = field(default_factory=dict)  # what the key was made of (for `why`)
    inline: str | None = None  # base64 pickle for fmt == "inline"
    checksum: str | None = None  # xxh3-64 of the value file: a damaged file is a miss


class Store(Protocol):
    """What the runner needs from a store. Every implementation passes tests/test_store_contract."""

    def lookup(self, key: str) -> Entry | None: ...

    def put(
        self,
        key: str,
        node: str,
        code_version: str,
        data_version: str,
        value: Any,
        fmt: str,
        compute_time: float,
        parts: dict[str, Any],
    ) -> Entry: ...

    def load(self, entry: Entry) -> Any: ...

    def entries(self) -> list[Entry]: ...

    def latest(self, node: str) -> Entry | None: ...

    def touch(self, keys: Iterable[str]) -> None: ...

    def delete(self, keys: Iterable[str]) -> int: ...

    def discard(self, entry: Entry) -> None:
        """Drop an entry whose value is damaged, *and* the value itself even if other entries
        share it (they would load the same damage; they become misses)."""
        ...

    def evict(
        self,
        max_bytes: int | None = None,
        older_than: float | None = None,
        protected: frozenset[str] = frozenset(),
    ) -> int: ...

    def flush(self) -> None: ...


def _file_checksum(path: Path) -> str:
    # Hash the page cache through a read-only map: no copy into Python, ~10 GB/s for xxh3.
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return xxhash.xxh3_64_hexdigest(b"")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return xxhash.xxh3_64_hexdigest(m)


class _TooBig(Exception):
    pass


class _BoundedSink:
    """File-like target for a Pickler that gives up as soon as INLINE_LIMIT bytes are reached.

    The C pickler writes large buffers (array data) straight to the file, so a 200 MB frame is
    abandoned after its metadata instead of being copied whole into a bytes object first.
    """

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        self.size += n
        if self.size >= INLINE_LIMIT:
            raise _TooBig
        self.parts.append(bytes(data))
        return n


def _pickle_inline(value: Any) -> bytes | None:
    sink = _BoundedSink()
    try:
        pickle.Pickler(sink, protocol=5).dump(value)
    except Exception:  # _TooBig, or unpicklable: the joblib path reports it properly
        return None
    return b"".join(sink.parts)


def _entry_record(entry: Entry) -> dict[str, Any]:
    """``asdict(entry)`` without its recursive deep copy of ``parts`` (already JSON-ready)."""
    return {f.name: getattr(entry, f.name) for f in fields(Entry)}


class _Index:
    """In-memory view of the entries, shared by both stores."""

    def __init__(self) -> None:
        self.by_key: dict[str, Entry] = {}
        self.by_node: dict[str, Entry] = {}
        self.checksums: dict[str, str] = {}  # value file name -> checksum an entry recorded

    def apply(self, rec: dict[str, Any]) -> None:
        op = rec.get("op")
        if op == "put":
            e = Entry(**rec["entry"])
            self.by_key[e.key] = e
            if e.checksum is not None:
                self.checksums[f"{e.data_version}.{e.fmt}"] = e.checksum
            cur = self.by_node.get(e.node)
            if cur is None or cur.created <= e.created:
                self.by_node[e.node] = e
        elif op == "touch":
            at = rec["at"]
            for k in rec["keys"]:
                e = self.by_key.get(k)
                if e is not None and e.last_used < at:
                    e.last_used = at  # the only field that ever changes
        elif op == "del":
            for k in rec["keys"]:
                e = self.by_key.pop(k, None)
                if e is not None and self.by_node.get(e.node) is e:
                    del self.by_node[e.node]

    def evict_candidates(
        self, max_bytes: int | None, older_than: float | None, protected: frozenset[str]
    ) -> list[str]:
        victims: list[str] = []
        live = sorted(self.by_key.values(), key=lambda e: e.last_used)  # least recently used first
        if older_than is not None:
            cutoff = time.time() - older_than
            victims += [e.key for e in live if e.last_used < cutoff]
        victims = [k for k in victims if self.by_key[k].data_version not in protected]
        if max_bytes is not None:
            gone = set(victims)
            total = sum(e.size for e in live if e.key not in gone)
            for e in live:
                if total <= max_bytes:
                    break
                if e.key not in gone and e.data_version not in protected:
                    victims.append(e.key)
                    total -= e.size
        return victims


class MemoryStore:
    """A store that lives in this process only (``cache=False`` sessions, tests).

    Values are kept pickled, so mutating a returned value never changes the cache.
    """

    def __init__(self) -> None:
        self._index = _Index()
        self._values: dict[str, bytes] = {}

    def lookup(self, key: str) -> Entry | None:
        return self._index.by_key.get(key)

    def latest(self, node: str) -> Entry | None:
        return self._index.by_node.get(node)

    def put(self, key, node, code_version, data_version, value, fmt, compute_time, parts):
        try:
            data = pickle.dumps(value, protocol=5)
        except Exception as e:
            raise StoreError(f"{type(value).__qualname__} cannot be pickled: {e}") from e
        self._values[data_version] = data
        now = time.time()
        entry = Entry(key, node, code_version, data_version, "memory", len(data), compute_time,
                      now, now, parts)
        self._index.apply({"op": "put", "entry": asdict(entry)})
        return entry

    def load(self, entry: Entry) -> Any:
        data = self._values.get(entry.data_version)
        if data is None:
            raise CorruptEntry(f"value of `{entry.node}` is gone")
        return pickle.loads(data)

    def entries(self) -> list[Entry]:
        return list(self._index.by_key.values())

    def touch(self, keys: Iterable[str]) -> None:
        self._index.apply({"op": "touch", "keys": list(keys), "at": time.time()})

    def delete(self, keys: Iterable[str]) -> int:
        keys = [k for k in keys if k in self._index.by_key]
        self._index.apply({"op": "del", "keys": keys})
        live = {e.data_version for e in self._index.by_key.values()}
        for dv in list(self._values):
            if dv not in live:
                del self._values[dv]
        return len(keys)

    def evict(self, max_bytes=None, older_than=None, protected=frozenset()) -> int:
        return self.delete(self._index.evict_candidates(max_bytes, older_than, protected))

    def discard(self, entry: Entry) -> None:
        self._values.pop(entry.data_version, None)
        self.delete([entry.key])

    def flush(self) -> None:
        pass


class DiskStore:
    """The on-disk store (see module docstring). Safe to share between processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self._values = self.root / "values"
        self._index_dir = self.root / "index"
        self._tmp = self.root / "tmp"
        for d in (self._values, self._index_dir, self._tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._check_format()
        self._index = _Index()
        self._offsets: dict[str, int] = {}
        self._pending_touch: set[str] = set()
        self._lock = threading.Lock()
        self._journal_fd: int | None = None
        self._journal_name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.refresh()
        self.compact()

    # -- format and journal ------------------------------------------------------------------

    def _check_format(self) -> None:
        marker = self.root / "FORMAT"
        want = f"hamilton_nb-store {STORE_FORMAT}\n"
        try:
            have = marker.read_text()
        except FileNotFoundError:
            self._atomic_write_bytes(marker, want.encode())
            return
        if have != want:
            raise StoreError(
                f"The cache folder {self.root} holds format {have.strip()!r}, but this version of "
                f"hamilton_nb writes {want.strip()!r}. Use another folder (HAMILTON_NB_CACHE or "
                f"%hamilton cache dir PATH), or delete this one."
            )

    def _atomic_write_bytes(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, self._tmp)

    def _append(self, rec: dict[str, Any]) -> None:
        line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._journal_fd is None:
                # Created and locked outside index/, then renamed in: compaction can never see
                # it unlocked and take it for a dead process's journal. The lock is held for
                # the life of the process.
                tmp = self._tmp / self._journal_name
                self._journal_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                fcntl.flock(self._journal_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(tmp, self._index_dir / self._journal_name)
                self._offsets[self._journal_name] = 0
            os.write(self._journal_fd, line)  # one write: all of the line or (if killed) a tail
            self._offsets[self._journal_name] += len(line)
            self._index.apply(rec)

    def refresh(self) -> None:
        """Read what other processes appended since the last call (cheap: one stat per journal)."""
        with self._lock:
            records: list[dict[str, Any]] = []
            for path in self._index_dir.glob("*.jsonl"):
                name = path.name
                start = self._offsets.get(name, 0)
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                if size <= start or name == self._journal_name:
                    continue
                with open(path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read(size - start)
                end = data.rfind(b"\n") + 1  # an incomplete last line is read next time
                for line in data[:end].splitlines():
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        warnings.warn(
                            f"hamilton_nb: skipped a damaged line in cache journal {path}",
                            stacklevel=2,
                        )
                self._offsets[name] = start + end
            records.sort(key=lambda r: r.get("at", 0.0))
            for rec in records:
                try:
                    self._index.apply(rec)
                except (KeyError, TypeError):
                    warnings.warn(
                        f"hamilton_nb: skipped an unreadable cache journal record in {self.root}",
                        stacklevel=2,
                    )

    # -- Store protocol ------------------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        return self._index.by_key.get(key)

    def latest(self, node: str) -> Entry | None:
        return self._index.by_node.get(node)

    def value_path(self, data_version: str, fmt: str) -> Path:
        return self._values / data_version[:2] / f"{data_version}.{fmt}"

    def put(
        self,
        key: str,
        node: str,
        code_version: str,
        data_version: str,
        value: Any,
        fmt: str,
        compute_time: float,
        parts: dict[str, Any],
    ) -> Entry:
        inline = checksum = None
        if fmt == "joblib" and (small := _pickle_inline(value)) is not None:
            fmt, inline, size = "inline", base64.b64encode(small).decode(), len(small)
        else:
            size, checksum = self._write_value(value, data_version, fmt)
        now = time.time()
        entry = Entry(key, node, code_version, data_version, fmt, size, compute_time, now, now,
                      parts, inline, checksum)
        self._append({"op": "put", "at": now, "entry": _entry_record(entry)})
        return entry

    def _write_value(self, value: Any, data_version: str, fmt: str) -> tuple[int, str]:
        path = self.value_path(data_version, fmt)
        known = self._index.checksums.get(path.name)
        if known is not None and path.exists():
            # Content-addressed: the same data is already there (undo, early cutoff) — as long
            # as the file is still the one an entry vouched for.
            with contextlib.suppress(OSError):
                if _file_checksum(path) == known:
                    return path.stat().st_size, known
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._tmp, suffix="." + fmt)
        os.close(fd)
        try:
            if fmt == "parquet":
                import pandas as pd

                if not isinstance(value, pd.DataFrame):
                    raise StoreError(
                        f"format='parquet' needs a DataFrame, got {type(value).__qualname__}"
                    )
                value.to_parquet(tmp)
            else:
                joblib.dump(value, tmp)
            checksum = _file_checksum(Path(tmp))  # read back from the page cache: cheap
            os.replace(tmp, path)
        except StoreError:
            os.unlink(tmp)
            raise
        except Exception as e:  # joblib/pyarrow raise many kinds for "cannot serialize"
            os.unlink(tmp)
            raise StoreError(f"{type(value).__qualname__} cannot be stored as {fmt}: {e}") from e
        except BaseException:
            os.unlink(tmp)
            raise
        return path.stat().st_size, checksum

    def load(self, entry: Entry) -> Any:
        if entry.fmt == "inline":
            assert entry.inline is not None
            try:
                return pickle.loads(base64.b64decode(entry.inline))
            except Exception as e:
                raise CorruptEntry(f"inline value of `{entry.node}` is unreadable: {e}") from e
        path = self.value_path(entry.data_version, entry.fmt)
        try:
            if path.stat().st_size != entry.size:
                raise CorruptEntry(f"value file of `{entry.node}` has the wrong size: {path}")
            if entry.checksum is not None and _file_checksum(path) != entry.checksum:
                raise CorruptEntry(f"value file of `{entry.node}` is damaged: {path}")
            if entry.fmt == "parquet":
                import pandas as pd

                return pd.read_parquet(path)
            # copy-on-write memory map: arrays load lazily, and a node that mutates its input
            # changes its own copy in memory, never the file.
            return joblib.load(path, mmap_mode="c")
        except CorruptEntry:
            raise
        except Exception as e:
            raise CorruptEntry(f"value of `{entry.node}` is unreadable ({path}): {e}") from e

    def entries(self) -> list[Entry]:
        self.refresh()
        return list(self._index.by_key.values())

    def touch(self, keys: Iterable[str]) -> None:
        self._pending_touch.update(keys)

    def flush(self) -> None:
        """Write the batched last-used times: one journal line per run."""
        if self._pending_touch:
            keys, self._pending_touch = sorted(self._pending_touch), set()
            self._append({"op": "touch", "at": time.time(), "keys": keys})

    def delete(self, keys: Iterable[str]) -> int:
        keys = [k for k in keys if k in self._index.by_key]
        if not keys:
            return 0
        doomed = {(self._index.by_key[k].data_version, self._index.by_key[k].fmt) for k in keys}
        self._append({"op": "del", "at": time.time(), "keys": keys})
        still_used = {(e.data_version, e.fmt) for e in self._index.by_key.values()}
        for dv, fmt in doomed - still_used:
            if fmt != "inline":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.value_path(dv, fmt))
        return len(keys)

    def discard(self, entry: Entry) -> None:
        if entry.fmt != "inline":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.value_path(entry.data_version, entry.fmt))
        self.delete([entry.key])

    def evict(
        self,
        max_bytes: int | None = None,
        older_than: float | None = None,
        protected: frozenset[str] = frozenset(),
    ) -> int:
        self.refresh()
        return self.delete(self._index.evict_candidates(max_bytes, older_than, protected))

    def compact(self, min_files: int = COMPACT_AFTER) -> int:
        """Merge the journals of processes that are gone into one; returns how many went.

        A journal is merged only if its lock can be taken, i.e. no live process writes it, so
        a running kernel's journal is never touched. The merged file holds the current entries
        with their original timestamps, so a later deletion recorded elsewhere still wins.
        """
        dead: list[tuple[Path, int]] = []
        try:
            for path in sorted(self._index_dir.glob("*.jsonl")):
                if path.name == self._journal_name:
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # a live writer holds it
                    os.close(fd)
                    continue
                dead.append((path, fd))
            if len(dead) < min_files:
                return 0
            self.refresh()  # everything in the dead journals is now in the index
            with self._lock:
                lines = [
                    json.dumps({"op": "put", "at": e.created, "entry": asdict(e)},
                               separators=(",", ":"))
                    for e in self._index.by_key.values()
                ]
            merged = self._index_dir / f"merged-{uuid.uuid4().hex}.jsonl"
            self._atomic_write_bytes(merged, ("\n".join(lines) + "\n").encode())
            for path, _ in dead:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return len(dead)
        finally:
            for _, fd in dead:
                os.close(fd)

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None

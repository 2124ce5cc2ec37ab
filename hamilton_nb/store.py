"""Content-addressed result store: joblib/parquet value files plus an append-only metadata journal.

Layout of a cache folder (format :data:`STORE_FORMAT`)::

    FORMAT                         "hamilton_nb-store 1"
    values/ab/<data version>.joblib (or .parquet)
    index/<host>-<pid>-<random>.jsonl   one journal per writing process
    tmp/<host>-<pid>-<random>.*    values being written (reclaimed once their writer is gone)
    checkpoints/<name>.json        named checkpoints (see checkpoint.py)

Why a journal per process and not SQLite: a finished node must survive a killed kernel, yet the
index must not pay a commit (or an fsync) per node — Hamilton's cache does exactly that and it
dominates small nodes. One ``write()`` of one line per node, unbuffered, is in the kernel's page
cache when the call returns, so a SIGKILL keeps it; no fsync, so power loss may not (not
required, DESIGN.md §4). One file per process means concurrent kernels never interleave bytes,
and a torn last line (killed mid-write) can only be at the end of a dead process's journal,
where the reader drops it. Values are written to a temporary file and renamed into place, so a
value file is either complete or absent.

Everything read from the folder is untrusted data (see ``_trust.py``): every record is checked
field by field (a bad one is skipped with one warning per journal), value files are named only
by validated digests and never reached through a link out of ``values/``, every value (inline
too) carries a checksum verified on load, and with a cache key every record is signed. A folder
that cannot be written (read-only, full, gone) never fails a run: the store keeps new values in
memory from then on and warns once (:attr:`DiskStore.degraded`).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import os
import pickle
import re
import stat
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, KeysView
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import joblib
import orjson
import xxhash

from . import _mapload, _trust
from ._files import atomic_write

STORE_FORMAT = 1
INLINE_LIMIT = 2048  # pickles smaller than this live in the journal line itself: no file
MAX_LINE = 16 * 2**20  # no journal record is longer (inline values are at most 2 kB)
COMPACT_AFTER = 16  # journals of finished processes are merged into one when a store opens


class StoreError(Exception):
    """A value could not be stored (e.g. it cannot be pickled)."""


class LossyFormat(StoreError):
    """The chosen format would not give the value back exactly (e.g. parquet and
    ``datetime64[s]``, a ``DatetimeIndex.freq``): the store falls back to joblib."""


def _check_round_trip(path: str, value: Any, data_version: str) -> None:
    """Read a parquet file just written back and compare fingerprints: a stored value must be
    the value (dtypes, index, names, attrs), or a downstream node computes something else."""
    import pandas as pd

    from .versions import Unhashable, fingerprint

    back = pd.read_parquet(path)
    try:
        if fingerprint(back) == data_version:
            return
    except Unhashable:
        pass  # what cannot be fingerprinted cannot be shown to be the same
    after = {str(c): str(d) for c, d in back.dtypes.items()}
    lost = [f"column `{c}`: {d} -> {after[str(c)]}" for c, d in value.dtypes.items()
            if after.get(str(c), str(d)) != str(d)]
    if not lost:
        lost = ["the index, column labels, attrs or flags differ"]
    raise LossyFormat(f"parquet does not give this DataFrame back exactly ({'; '.join(lost[:3])})"
                      f". Choose format='joblib' for it to silence this.")


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
    # xxh3-64 (or keyed BLAKE2b, "b2:...") of the value file or inline pickle: verified on load
    checksum: str | None = None


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

    def load(self, entry: Entry, verify: bool = True) -> Any:
        """The value of ``entry``. ``verify=False`` skips the full checksum of a value file
        (the caller must then call :meth:`verify`, e.g. in the background)."""
        ...

    def verify(self, entry: Entry) -> bool:
        """Whether the stored value still matches the checksum its entry recorded."""
        ...

    def already_verified(self, entry: Entry) -> bool:
        """Whether :meth:`verify` would succeed without reading the whole value: this process
        wrote or fully checked the file and it is still the same file. Cheap (no full read)."""
        ...

    def entries(self) -> list[Entry]: ...

    def latest(self, node: str) -> Entry | None: ...

    def stored_nodes(self) -> KeysView[str]:
        """The nodes ``latest`` has an entry for, as a live set-like view (set operations on
        it run in C: the front-ends ask which of a notebook's nodes lost their entries)."""
        ...

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


def _new_hasher(key: bytes | None = None) -> Any:
    """The checksum of value files (xxh3-64; keyed BLAKE2b with a cache key, see _trust.py), as
    a streaming hasher: written and read files are hashed the same way, so a checksum computed
    while writing equals one of the file."""
    return xxhash.xxh3_64() if key is None else _trust.Hasher(key)


_CHUNK = 8 * 2**20


def _file_checksum(path: Path, key: bytes | None = None) -> str:
    # Chunks through one reused buffer, not a memory map: mapping the file made every page of it
    # count in the process's memory while hashing (a 1 GiB value peaked at 2x its size).
    h = _new_hasher(key)
    # O_NOFOLLOW|O_NONBLOCK: a link or a FIFO planted in values/ fails here, never blocks.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb", buffering=0) as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        # Sized to the file: zeroing an 8 MiB buffer for each small file cost ~1 ms apiece
        # (0.5 s when a restore binds 500 small values).
        buf = bytearray(min(_CHUNK, st.st_size + 1))
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


_PREALLOCATE_BYTES = 2**20
_fallocate: Any = None  # libc's fallocate, looked up at the first big write (False: none)


def _preallocate(fh: Any, nbytes: int) -> None:
    """Reserve the disk blocks of the ``nbytes`` about to be written at ``fh``'s position, as
    ``np.save`` does (Linux ``fallocate`` with FALLOC_FL_KEEP_SIZE: the size does not change).
    Writing 1 GiB into a file whose blocks ext4 must allocate as it goes took ~50 ms longer.
    Best effort: where it is missing or fails, the write itself says what is wrong."""
    global _fallocate
    if nbytes < _PREALLOCATE_BYTES:
        return
    if _fallocate is None:
        try:
            import ctypes

            f = ctypes.CDLL(None, use_errno=True).fallocate
            f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            f.restype = ctypes.c_int
            _fallocate = f
        except (AttributeError, OSError):  # not Linux/glibc: nothing to reserve with
            _fallocate = False
    if _fallocate is False:
        return
    try:
        fd, pos = fh.fileno(), fh.tell()
    except (AttributeError, OSError, ValueError):  # not a real file (io.UnsupportedOperation)
        return
    _fallocate(fd, 1, pos, nbytes)  # 1: FALLOC_FL_KEEP_SIZE; an error is left to the write


def _joblib_dump(value: Any, fh: Any) -> None:
    """``joblib.dump(value, fh)``: the same file, byte for byte (tests/test_store_contract), but
    the data of a contiguous numpy array — a DataFrame's blocks too — is written straight from
    the array's memory. joblib copies it into 16 MB ``tobytes()`` chunks first, which made a
    1 GiB write cost 2-3x ``np.save``."""
    from joblib import numpy_pickle as jp

    class Pickler(jp.NumpyPickler):
        def save(self, obj: Any) -> None:
            np = self.np
            if np is None or type(obj) is not np.ndarray or obj.dtype.hasobject:
                return super().save(obj)
            wrapper = self._create_array_wrapper(obj)
            # joblib writes the data in the wrapper's order: the raw buffer when the array is
            # contiguous in that order (F-order data is the buffer of the transposed array)
            flat = obj if wrapper.order == "C" else obj.T
            if not flat.flags.c_contiguous:
                return super().save(obj)  # a strided view: joblib's own copy is needed
            jp.Pickler.save(self, wrapper)
            if self.proto >= 4:
                self.framer.commit_frame(force=True)  # as joblib: the wrapper before the data
            # joblib's own padding (alignment for memory-mapping): write_array of an empty
            # array of the same dtype writes the padding and no data
            wrapper.write_array(flat.reshape(-1)[:0], self)
            data = memoryview(flat.reshape(-1).view(np.uint8))
            _preallocate(self.file_handle, data.nbytes)
            self.file_handle.write(data)
            return None

    Pickler(fh).dump(value)


class _HashingFile:
    """Write-only file for ``joblib.dump`` that checksums every byte on its way to the file.

    No second pass over the file just written (it used to be hashed back through a memory
    map: as much extra memory as the value, and a second read of it).
    """

    def __init__(self, fh: Any, key: bytes | None = None) -> None:
        self._fh = fh
        self._hasher = _new_hasher(key)

    def write(self, data: Any) -> int:
        self._hasher.update(data)
        return self._fh.write(data)

    def tell(self) -> int:  # joblib aligns array data for memory-mapping
        return self._fh.tell()

    def fileno(self) -> int:  # to reserve the blocks of array data (_preallocate)
        return self._fh.fileno()

    def flush(self) -> None:
        self._fh.flush()

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


TOUCH_WRITE_EVERY = 60.0  # seconds between two last-used lines for one entry (see flush)
_SAMPLE = 64 * 1024
_SKELETONS_KEPT = 1024  # value files whose skeleton (~1 kB each) a store keeps
_NO_VALUE = object()


def _file_identity(path: Path) -> tuple[int, int, int, int, str]:
    """What changes when a file is rewritten, replaced or touched — size, mtime, ctime (which
    cannot be set back), inode — plus a hash of its first and last 64 kB, read on every call:
    timestamps are only as fine as the kernel's clock tick, so damage done right after a write
    could keep them, and header damage (the pickle's frame) is caught whatever the clock."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _fd_identity(fd, os.fstat(fd))
    finally:
        os.close(fd)


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def _fd_identity(fd: int, st: os.stat_result) -> tuple[int, int, int, int, str]:
    """:func:`_file_identity` of the open file ``fd`` whose ``fstat`` is ``st``."""
    h = xxhash.xxh3_64(os.pread(fd, _SAMPLE, 0))
    if st.st_size > _SAMPLE:
        h.update(os.pread(fd, _SAMPLE, max(_SAMPLE, st.st_size - _SAMPLE)))
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, h.hexdigest()


def _no_links(path: Path) -> bool:
    """Whether neither ``path`` (values/ab/<digest>.fmt) nor its folder is a symlink: then it
    lies inside values/ whatever values/ resolves to. Two lstat calls where resolving every
    link of the full path costs ~50 us per value on every hit; False sends the caller to the
    full check."""
    try:
        if not stat.S_ISDIR(os.lstat(path.parent).st_mode):
            return False
        return not stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:  # e.g. no such file: the full check decides
        return False


def _journal_names(folder: Path) -> list[str]:
    """Names in ``folder`` that ``folder.glob("*.jsonl")`` would give (hidden ones too)."""
    try:
        with os.scandir(folder) as it:
            return [e.name for e in it if e.name.endswith(".jsonl")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []  # as glob: an index folder gone or unreadable lists nothing


def _unlink(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _TooBig(Exception):
    pass


_ATOMS = frozenset({int, float, bool, complex, type(None)})


def _pickle_inline(value: Any) -> bytes | None:
    t = type(value)
    if t in _ATOMS or (t is str and len(value) < INLINE_LIMIT // 4):
        # Small by construction (a str is at most 4 bytes a character in UTF-8): pickled in
        # one C call, not through the bounded sink's Python write() (most tiny nodes).
        data = pickle.dumps(value, protocol=5)
        return data if len(data) < INLINE_LIMIT else None
    sink = _mapload.BoundedSink(INLINE_LIMIT - 1, _TooBig)  # inline: under INLINE_LIMIT
    try:
        pickle.Pickler(sink, protocol=5).dump(value)
    except Exception:  # _TooBig, or unpicklable: the joblib path reports it properly
        return None
    return b"".join(sink.parts)


MAP_BOUND_BYTES = 64 * 2**20  # computed values this big are bound memory-mapped (see below)


def _raw_array_bytes(value: Any) -> int:
    """Bytes of ``value`` held in numeric numpy arrays: what a joblib load memory-maps instead
    of reading (0 for other types)."""
    np = sys.modules.get("numpy")
    if np is None:
        return 0
    if isinstance(value, np.ndarray):
        return 0 if value.dtype.hasobject else value.nbytes
    pd = sys.modules.get("pandas")
    if pd is None:
        return 0
    if isinstance(value, pd.Series):
        dt = value.dtype
        return value.nbytes if isinstance(dt, np.dtype) and not dt.hasobject else 0
    if isinstance(value, pd.DataFrame):
        usage = value.memory_usage(index=False, deep=False)  # positional: duplicate names too
        return sum(int(n) for n, dt in zip(usage, value.dtypes, strict=True)
                   if isinstance(dt, np.dtype) and not dt.hasobject)
    return 0


def map_when_bound(value: Any, entry: Entry) -> bool:
    """Whether ``value``, just stored as ``entry``, is better bound in the notebook memory-mapped
    from its file than as the computed object.

    True for big joblib files that are mostly numeric arrays: those load as copy-on-write maps
    of the file's pages, which the write just put in the page cache, so the process keeps one
    copy of the value (evictable) instead of the computed one in its own memory plus the page
    cache's. A file of pickled objects would be unpickled whole instead: kept as computed.
    """
    return (entry.fmt == "joblib" and entry.size >= MAP_BOUND_BYTES
            and _raw_array_bytes(value) * 10 >= entry.size * 9)


_dumps = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per line


def _journal_line(rec: dict[str, Any]) -> bytes:
    """``rec`` as one compact JSON line. orjson writes a record in ~1 µs where the json module
    takes ~10 (a first run writes one per node); json takes what orjson refuses (an integer
    beyond 64 bits, a non-string key). Lines are read back with json either way."""
    try:
        return orjson.dumps(rec) + b"\n"
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return (_dumps(rec) + "\n").encode()


_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def _entry_record(entry: Entry) -> dict[str, Any]:
    """``asdict(entry)`` without its recursive deep copy of ``parts`` (already JSON-ready)."""
    return {name: getattr(entry, name) for name in _ENTRY_FIELDS}


class _Index:
    """In-memory view of the entries, shared by both stores."""

    def __init__(self) -> None:
        self.by_key: dict[str, Entry] = {}
        self.by_node: dict[str, Entry] = {}
        self.checksums: dict[str, str] = {}  # value file name -> checksum an entry recorded

    def apply(self, rec: dict[str, Any]) -> None:
        op = rec.get("op")
        if op == "put":
            e = rec["entry"] if isinstance(rec["entry"], Entry) else Entry(**rec["entry"])
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

    def __init__(self, degraded: str | None = None) -> None:
        self._index = _Index()
        self._values: dict[str, bytes] = {}
        # Why this session has no disk cache (its folder could not be used), or None.
        self.degraded = degraded

    def lookup(self, key: str) -> Entry | None:
        return self._index.by_key.get(key)

    def latest(self, node: str) -> Entry | None:
        return self._index.by_node.get(node)

    def stored_nodes(self) -> KeysView[str]:
        return self._index.by_node.keys()

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

    def verify(self, entry: Entry) -> bool:
        return entry.data_version in self._values  # kept in this process: cannot be damaged

    def already_verified(self, entry: Entry) -> bool:
        return self.verify(entry)

    def load(self, entry: Entry, verify: bool = True) -> Any:
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

    def __init__(self, root: str | os.PathLike[str], key: bytes | None = None) -> None:
        self.root = Path(root).absolute()
        self._values = self.root / "values"
        self._index_dir = self.root / "index"
        self._tmp = self.root / "tmp"
        self.key = key  # signs and verifies every record (see _trust.py); None: unsigned
        # Why the folder stopped taking writes (full, read-only...), or None. Once set, new
        # values are kept in memory (``_mem``) and entries are still read from the folder.
        self.degraded: str | None = None
        self._mem: dict[str, bytes] = {}
        self.last_reclaimed = (0, 0)  # (files, bytes) of leftover temp files last reclaimed
        # Journals with a refused record: never merged away by compaction (their refused
        # records, perhaps another key's, must survive), and value files stay while any exist.
        self._skipped: set[str] = set()
        self._index = _Index()
        self._offsets: dict[str, int] = {}
        self._pending_touch: set[str] = set()
        self._touch_written: dict[str, float] = {}  # key -> when its last touch line was written
        self._inline_ok: set[tuple[str | None, str | None]] = set()  # see _inline_bytes
        # value file name -> (identity, checksum) of files this process wrote or fully hashed:
        # the full checksum is paid at most once per process per file, while it stays the same.
        self._verified: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        # value file name -> how to map it again without joblib (see _mapload): filled by the
        # first load of a file, used while it stays the same file.
        self._skeletons: dict[str, _mapload.Skeleton] = {}
        # value file name -> identity of the file a load(verify=False) just read, until
        # already_verified() asks about it: the file that was mapped, not looked at twice.
        self._load_idents: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._journal_fd: int | None = None
        self._journal_name = f"{_trust.temp_prefix()}{uuid.uuid4().hex[:8]}.jsonl"
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"The cache folder {self.root} is a file, not a folder. Point "
                             f"HAMILTON_NB_CACHE (or `%hamilton cache dir PATH`) at a folder.")
        # Refuse a folder of another format before creating anything in it.
        write_marker = self._check_format() if self.root.is_dir() else True
        try:
            for d in (self._values, self._index_dir, self._tmp):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            # An existing folder that cannot be written (read-only) is still read; one that
            # cannot even be created is refused (the session then uses memory only).
            if not (_trust.is_disk_error(e) and self.root.is_dir()):
                raise
            self.degrade(e, "creating its subfolders")
        for d in (self._values, self._index_dir, self._tmp):
            if (d.exists() or d.is_symlink()) and not _trust.inside(d, self.root):
                raise StoreError(f"{d} is a link out of the cache folder: refusing to use it. "
                                 f"Delete the link, or use another folder.")
        if write_marker:  # missing, or damaged while the contents read as this format
            try:
                self._atomic_write_bytes(self.root / "FORMAT",
                                         f"hamilton_nb-store {STORE_FORMAT}\n".encode())
            except OSError as e:
                if not _trust.is_disk_error(e):
                    raise
                self.degrade(e, "writing its FORMAT marker")
        if self.degraded is None:
            self.reclaim()  # temp files of killed writers
        self.refresh()
        if self.degraded is None:
            self.compact()

    def degrade(self, e: BaseException, doing: str) -> None:
        """From now on keep new values in memory: the folder cannot take writes. Warns once."""
        if self.degraded is not None:
            return
        self.degraded = f"{doing}: {getattr(e, 'strerror', None) or e}"
        warnings.warn(
            f"hamilton_nb: cannot write to the cache folder {self.root} ({self.degraded}). "
            f"{_trust.disk_remedy(e)}. Until then new values are kept in memory for this "
            f"session only (results are still correct).", stacklevel=4,
        )

    # -- format and journal ------------------------------------------------------------------

    def _check_format(self) -> bool:
        """Raise StoreError for a folder this version must not use; True if the marker must
        be (re)written."""
        marker = self.root / "FORMAT"
        want = f"hamilton_nb-store {STORE_FORMAT}\n"
        elsewhere = "use another folder (HAMILTON_NB_CACHE or `%hamilton cache dir PATH`)"
        try:
            raw: bytes | None = _trust.read_regular(marker, 4096)
        except FileNotFoundError:
            raw = None
        except OSError:  # a folder, a link, a FIFO where the marker should be: damaged
            raw = b"\0"
        if raw == want.encode():
            return False
        m = re.fullmatch(rb"\s*hamilton_nb-store[ \t]+(\d{1,9})\s*", raw or b"")
        if m is not None and int(m[1]) > STORE_FORMAT:
            raise StoreError(
                f"The cache folder {self.root} was written by a newer hamilton_nb (store format "
                f"{int(m[1])}; this version reads format {STORE_FORMAT}) and is left untouched. "
                f"Upgrade hamilton_nb, or {elsewhere}."
            )
        if m is not None and int(m[1]) != STORE_FORMAT:
            raise StoreError(
                f"The cache folder {self.root} holds store format {int(m[1])}, which this "
                f"version of hamilton_nb (format {STORE_FORMAT}) cannot read. Delete the folder, "
                f"or {elsewhere}."
            )
        if raw is not None and m is None:
            if not self._readable_as_current():
                raise StoreError(
                    f"The FORMAT marker of the cache folder {self.root} is damaged and the "
                    f"folder's contents are not readable as store format {STORE_FORMAT}. Move the "
                    f"folder aside or delete it, or {elsewhere}."
                )
            warnings.warn(f"hamilton_nb: repaired the damaged FORMAT marker of the cache folder "
                          f"{self.root} (its contents read as store format {STORE_FORMAT}).",
                          stacklevel=4)
        return True  # missing, or damaged with readable contents, or whitespace off

    def _readable_as_current(self) -> bool:
        """Whether the journals read as this format: the first line of some journal is a valid
        record (or there are no journals yet)."""
        seen = False
        for path in sorted(self._index_dir.glob("*.jsonl")):
            try:
                data = _trust.read_regular(path, 1 << 16)
            except OSError:
                continue
            if b"\n" not in data:
                continue
            seen = True
            try:
                _trust.parse_record(json.loads(data.split(b"\n", 1)[0]))
            except (ValueError, RecursionError):
                continue
            return True
        return not seen

    def _atomic_write_bytes(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, self._tmp)

    def _append(self, rec: dict[str, Any]) -> None:
        if self.key is not None:
            _trust.sign(rec, self.key)
        line = _journal_line(rec)
        with self._lock:
            if self.degraded is None:
                try:
                    self._write_line(line)
                except OSError as e:
                    if not _trust.is_disk_error(e):
                        raise
                    self.degrade(e, "writing its journal")
            self._index.apply(rec)

    def _write_line(self, line: bytes) -> None:
        if self._journal_fd is None:
            # Created and locked outside index/, then renamed in: compaction can never see
            # it unlocked and take it for a dead process's journal. The lock is held for
            # the life of the process.
            tmp = self._tmp / self._journal_name
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(tmp, self._index_dir / self._journal_name)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._journal_fd = fd
            self._offsets[self._journal_name] = 0
        start = self._offsets[self._journal_name]
        try:
            n = os.write(self._journal_fd, line)  # one write: all of the line or (if killed) a tail
            if n != len(line):
                raise OSError(errno.ENOSPC, "journal line written in part")
        except OSError:
            # A partial line would glue itself to the next record: cut it off again.
            with contextlib.suppress(OSError):
                os.ftruncate(self._journal_fd, start)
            raise
        self._offsets[self._journal_name] = start + n

    def refresh(self) -> None:
        """Read what other processes appended since the last call (cheap: one stat per journal).

        Every record is checked (see ``_trust.parse_record``) and, with a key, its signature:
        a bad record is skipped, with one warning per journal naming it.
        """
        with self._lock:
            records: list[dict[str, Any]] = []
            # scandir, not Path.glob: this runs at every run, and glob costs several times more
            for name in _journal_names(self._index_dir):
                if name == self._journal_name:
                    continue
                path = self._index_dir / name
                start = self._offsets.get(name, 0)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    if name not in self._offsets:
                        self._offsets[name] = 0
                        self._skipped.add(name)
                        warnings.warn(f"hamilton_nb: ignored {path}: not a regular file (a link "
                                      f"or a folder). Delete it.", stacklevel=2)
                    continue
                if st.st_size <= start:
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except FileNotFoundError:
                    continue
                with os.fdopen(fd, "rb") as fh:
                    fh.seek(start)
                    data = fh.read(st.st_size - start)
                end = data.rfind(b"\n") + 1  # an incomplete last line is read next time
                if end == 0 and len(data) > MAX_LINE:
                    # No record is this long: garbage, which would be read again at every run.
                    self._offsets[name] = start + len(data)
                    self._skipped.add(name)
                    warnings.warn(f"hamilton_nb: skipped {len(data)} bytes without a line break "
                                  f"in cache journal {path}: not a journal. Delete it.",
                                  stacklevel=2)
                    continue
                records += self._parse_lines(path, data[:end])
                self._offsets[name] = start + end
            records.sort(key=lambda r: r["at"])
            for rec in records:
                self._index.apply(rec)

    def _parse_lines(self, path: Path, data: bytes) -> list[dict[str, Any]]:
        good: list[dict[str, Any]] = []
        bad: list[str] = []
        untrusted: list[str] = []
        for line in data.splitlines():
            try:
                raw = json.loads(line)
                rec = _trust.parse_record(raw)
            except (ValueError, RecursionError) as e:
                bad.append(str(e)[:120])
                continue
            if self.key is not None:
                problem = _trust.signature_problem(raw, self.key)
                if (problem is None and rec["op"] == "put"
                        and not rec["entry"]["checksum"].startswith("b2:")):
                    problem = "unkeyed checksum"
                if problem is not None:
                    untrusted.append(problem)
                    continue
            elif rec["op"] == "put" and rec["entry"]["checksum"].startswith("b2:"):
                untrusted.append("written with a cache key")
                continue
            if rec["op"] == "put":
                rec["entry"] = Entry(**rec["entry"])
            good.append(rec)
        if bad:
            self._skipped.add(path.name)
            warnings.warn(
                f"hamilton_nb: skipped {len(bad)} damaged record(s) in cache journal {path} "
                f"(first: {bad[0]}). Their entries are misses (computed again); the rest of the "
                f"cache is used.", stacklevel=3,
            )
        if untrusted:
            self._skipped.add(path.name)
            if self.key is not None:
                how = ("with a cache key set, only entries signed with that key are used "
                       "(they are computed again and stored signed). Delete that journal if "
                       "you did not write it")
            else:
                how = ("set HAMILTON_NB_CACHE_KEY (or `%hamilton cache key ...`) to the key "
                       "they were written with to use them")
            warnings.warn(
                f"hamilton_nb: skipped {len(untrusted)} record(s) in cache journal {path} "
                f"({untrusted[0]}): {how}. Their entries are misses.", stacklevel=3,
            )
        return good

    # -- Store protocol ------------------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        return self._index.by_key.get(key)

    def latest(self, node: str) -> Entry | None:
        return self._index.by_node.get(node)

    def stored_nodes(self) -> KeysView[str]:
        return self._index.by_node.keys()

    def value_path(self, data_version: str, fmt: str) -> Path:
        return self._values / data_version[:2] / f"{data_version}.{fmt}"

    def _confined_path(self, entry: Entry) -> Path:
        """The value file of ``entry``, refused unless its name is a digest and the path, with
        every link resolved, stays inside values/ (a record is data from disk, not a path)."""
        path = self.value_path(entry.data_version, entry.fmt)
        if (entry.fmt not in _trust.FILE_FORMATS or not _trust.DIGEST.match(entry.data_version)
                or not (_no_links(path) or _trust.inside(path, self._values))):
            raise CorruptEntry(f"value file of `{entry.node}` would be outside the cache "
                               f"folder's values/ ({path}): refused")
        return path

    def _checksum_key(self, checksum: str | None) -> bytes | None:
        return self.key if checksum is not None and checksum.startswith("b2:") else None

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
            checksum = _trust.checksum_of(small, self.key)
        else:
            try:
                written = (self._write_value(value, data_version, fmt)
                           if self.degraded is None else None)
            except LossyFormat as e:
                warnings.warn(f"hamilton_nb: `{node}` is stored with joblib instead: {e}",
                              stacklevel=3)
                fmt = "joblib"
                written = self._write_value(value, data_version, fmt)
            if written is None:  # the folder takes no writes: keep the value in memory
                try:
                    data = pickle.dumps(value, protocol=5)
                except Exception as e:  # whatever pickling raises
                    raise StoreError(f"{type(value).__qualname__} cannot be pickled: {e}") from e
                self._mem[data_version] = data
                fmt, size = "memory", len(data)
            else:
                size, checksum = written
        now = time.time()
        entry = Entry(key, node, code_version, data_version, fmt, size, compute_time, now, now,
                      parts, inline, checksum)
        self._append({"op": "put", "at": now, "entry": _entry_record(entry)})
        return entry

    def _write_value(self, value: Any, data_version: str, fmt: str) -> tuple[int, str] | None:
        """Write a value file; (size, checksum), or None if the folder stopped taking writes."""
        if fmt not in _trust.FILE_FORMATS or not _trust.DIGEST.match(data_version):
            raise StoreError(f"a value file cannot be named after data version "
                             f"{data_version[:80]!r} with format {fmt!r}")
        path = self.value_path(data_version, fmt)
        known = self._index.checksums.get(path.name)
        # Content-addressed: the same data may already be there (undo, early cutoff) — as long
        # as the file is still the one an entry vouched for.
        if known is not None and self._holds(path, known):
            return path.stat().st_size, known
        try:
            path.parent.mkdir(exist_ok=True)
            if not _trust.inside(path.parent, self._values):
                raise StoreError(f"{path.parent} is a link out of the cache folder: not writing "
                                 f"there. Delete it.")
            # Named after this process: a store that opens later reclaims it if we are killed.
            fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=_trust.temp_prefix(),
                                       suffix="." + fmt)
        except OSError as e:
            if not _trust.is_disk_error(e):
                raise
            self.degrade(e, "writing a value")
            return None
        try:
            if fmt == "parquet":
                os.close(fd)
                import pandas as pd

                if not isinstance(value, pd.DataFrame):
                    raise StoreError(
                        f"format='parquet' needs a DataFrame, got {type(value).__qualname__}"
                    )
                value.to_parquet(tmp)
                _check_round_trip(tmp, value, data_version)
                checksum = _file_checksum(Path(tmp), self.key)
            else:
                # Written through mkstemp's own descriptor. Opening the file again with "wb"
                # truncated it, and ext4 (auto_da_alloc) starts writing a truncated-then-written
                # file back to disk when it is closed: ~0.3 s per GiB, paid inside the cell.
                with open(fd, "wb") as fh:
                    sink = _HashingFile(fh, self.key)
                    _joblib_dump(value, sink)
                checksum = sink.hexdigest()
            os.replace(tmp, path)
            with contextlib.suppress(OSError):
                self._verified[path.name] = (_file_identity(path), checksum)
        except StoreError:
            _unlink(tmp)
            raise
        except OSError as e:
            _unlink(tmp)  # a half-written file must not stay: nothing poisons a later run
            # pyarrow reports a full disk as an OSError without errno: that is the folder too.
            if not (_trust.is_disk_error(e) or e.errno is None):
                raise StoreError(f"{type(value).__qualname__} cannot be stored as {fmt}: "
                                 f"{e}") from e
            self.degrade(e, "writing a value")
            return None
        except Exception as e:  # joblib/pyarrow raise many kinds for "cannot serialize"
            _unlink(tmp)
            raise StoreError(f"{type(value).__qualname__} cannot be stored as {fmt}: {e}") from e
        except BaseException:
            _unlink(tmp)
            raise
        return path.stat().st_size, checksum

    def already_verified(self, entry: Entry) -> bool:
        if entry.fmt not in _trust.FILE_FORMATS or entry.checksum is None:
            return False  # memory and inline values are checked by verify() itself: cheap
        # Right after load(verify=False) of it (Session.bind): the file as that load saw it.
        name = f"{entry.data_version}.{entry.fmt}"
        ident = self._load_idents.pop(name, None)
        try:
            if ident is None:
                ident = _file_identity(self._confined_path(entry))
        except (OSError, CorruptEntry):
            return False
        return self._verified.get(name) == (ident, entry.checksum)

    def verify(self, entry: Entry) -> bool:
        if entry.fmt == "memory":
            return entry.data_version in self._mem  # kept in this process: cannot be damaged
        if entry.checksum is None:
            return False  # every value written to disk carries one
        if entry.fmt == "inline":
            try:
                return self._inline_bytes(entry) is not None
            except CorruptEntry:
                return False
        try:
            return self._holds(self._confined_path(entry), entry.checksum)
        except CorruptEntry:
            return False

    def _holds(self, path: Path, checksum: str, ident: tuple[Any, ...] | None = None) -> bool:
        """Whether the file at ``path`` has ``checksum``. Hashed in full at most once per process
        while the file stays the same file (size, mtime, ctime, inode): every later hit costs a
        stat, not a read of the whole value. ``ident``: its identity, if the caller has it."""
        try:
            ident = _file_identity(path) if ident is None else ident
            if self._verified.get(path.name) == (ident, checksum):
                return True
            if _file_checksum(path, self._checksum_key(checksum)) != checksum:
                return False
        except OSError:
            return False
        self._verified[path.name] = (ident, checksum)
        return True

    def _inline_bytes(self, entry: Entry) -> bytes:
        try:
            data = base64.b64decode(entry.inline or "", validate=True)
        except ValueError as e:
            raise CorruptEntry(f"inline value of `{entry.node}` is unreadable: {e}") from e
        # The check is a pure function of (text, checksum): each pair is checked once per
        # process (an all-hit re-run loads every small value of the cell again).
        pair = (entry.inline, entry.checksum)
        if pair in self._inline_ok:
            return data
        if (entry.checksum is None
                or _trust.checksum_of(data, self._checksum_key(entry.checksum)) != entry.checksum):
            raise CorruptEntry(f"inline value of `{entry.node}` does not match its checksum")
        if len(self._inline_ok) >= 100_000:  # bounded: values are small, but sessions long
            self._inline_ok.clear()
        self._inline_ok.add(pair)
        return data

    def load(self, entry: Entry, verify: bool = True) -> Any:
        if entry.fmt == "memory":
            data = self._mem.get(entry.data_version)
            if data is None:
                raise CorruptEntry(f"value of `{entry.node}` is gone")
            return pickle.loads(data)
        if entry.fmt == "inline":
            data = self._inline_bytes(entry)  # checked always: it is small
            try:
                return pickle.loads(data)
            except Exception as e:
                raise CorruptEntry(f"inline value of `{entry.node}` is unreadable: {e}") from e
        if entry.checksum is None:
            raise CorruptEntry(f"value file of `{entry.node}` has no checksum")
        path = self._confined_path(entry)
        try:
            # O_NONBLOCK: a FIFO planted in values/ fails the regular-file check, never blocks.
            # Checked, mapped and (on a skeleton load) read through this one descriptor.
            with open(path, "rb", opener=_open_nonblocking) as fh:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise CorruptEntry(f"value of `{entry.node}` is not a regular file: {path}")
                if st.st_size != entry.size:
                    raise CorruptEntry(f"value file of `{entry.node}` has the wrong size: {path}")
                ident = _fd_identity(fh.fileno(), st)
                if verify and not self._holds(path, entry.checksum, ident):
                    raise CorruptEntry(f"value file of `{entry.node}` is damaged: {path}")
                value, fresh = _NO_VALUE, False
                if entry.fmt == "parquet":
                    import pandas as pd

                    value = pd.read_parquet(path)
                elif ((skeleton := self._skeletons.get(path.name)) is not None
                      and skeleton.ident == ident):
                    try:
                        value = _mapload.load(skeleton, fh)
                    except Exception:  # whatever it is, joblib's own load below says it
                        self._skeletons.pop(path.name, None)
            if value is _NO_VALUE:
                # copy-on-write memory map: arrays load lazily, and a node that mutates its
                # input changes its own copy in memory, never the file.
                value, fresh = joblib.load(path, mmap_mode="c"), True
        except CorruptEntry:
            raise
        except Exception as e:
            raise CorruptEntry(f"value of `{entry.node}` is unreadable ({path}): {e}") from e
        if not verify:  # loaded: already_verified() asks about this very file next
            self._load_idents[path.name] = ident
        if fresh:
            # The next load of this same file rebuilds the value without joblib's unpickler.
            skeleton = _mapload.make(value, os.path.abspath(path), ident)
            if skeleton is not None:
                if len(self._skeletons) >= _SKELETONS_KEPT:
                    self._skeletons.pop(next(iter(self._skeletons)), None)  # the oldest
                self._skeletons[path.name] = skeleton
        return value

    def entries(self) -> list[Entry]:
        self.refresh()
        return list(self._index.by_key.values())

    def touch(self, keys: Iterable[str]) -> None:
        self._pending_touch.update(keys)

    def flush(self) -> None:
        """Record the batched last-used times: at once in memory (this process evicts by
        them), on disk at most once per :data:`TOUCH_WRITE_EVERY` seconds per entry.

        Last-used times only order eviction (least recently used first), and another process
        reading them a minute late evicts the same entries: a journal line for every re-run of
        an unchanged cell would cost more than it tells."""
        if not self._pending_touch:
            return
        keys, self._pending_touch = sorted(self._pending_touch), set()
        now = time.time()
        written = self._touch_written
        due = [k for k in keys if now - written.get(k, 0.0) >= TOUCH_WRITE_EVERY]
        if due:
            self._append({"op": "touch", "at": now, "keys": due})
            written.update(dict.fromkeys(due, now))
        if len(due) != len(keys):
            with self._lock:
                self._index.apply({"op": "touch", "at": now, "keys": keys})

    def delete(self, keys: Iterable[str]) -> int:
        keys = [k for k in keys if k in self._index.by_key]
        if not keys:
            return 0
        doomed = {(self._index.by_key[k].data_version, self._index.by_key[k].fmt) for k in keys}
        self._append({"op": "del", "at": time.time(), "keys": keys})
        still_used = {(e.data_version, e.fmt) for e in self._index.by_key.values()}
        for dv, fmt in doomed - still_used:
            self._remove_value(dv, fmt)
        return len(keys)

    def _remove_value(self, data_version: str, fmt: str) -> None:
        if fmt == "memory":
            self._mem.pop(data_version, None)
            return
        path = self.value_path(data_version, fmt)
        self._skeletons.pop(path.name, None)
        # Only files named by a digest inside values/: a crafted record never deletes others.
        if (fmt in _trust.FILE_FORMATS and _trust.DIGEST.match(data_version)
                and _trust.inside(path.parent, self._values)):
            with contextlib.suppress(OSError):  # gone already, or a read-only folder
                os.unlink(path)

    def discard(self, entry: Entry) -> None:
        self._remove_value(entry.data_version, entry.fmt)
        self.delete([entry.key])

    def reclaim(self, orphans: bool = False) -> tuple[int, int]:
        """Delete temporary files whose writer process is gone (killed mid-write), in tmp/
        and beside checkpoints; returns and remembers (files, bytes) in ``last_reclaimed``.

        ``orphans``: also value files no entry refers to (a writer killed between renaming a
        value into place and writing its journal line); ``clear`` and ``evict`` ask for it.
        """
        files = size = 0
        if self.degraded is None:
            for folder, only_tmp in ((self._tmp, False), (self.root / "checkpoints", True),
                                     (self.root / "sessions", True), (self.root, True)):
                f, b = _trust.reclaim(folder, only_temp_names=only_tmp)
                files, size = files + f, size + b
            if orphans:
                f, b = self._reclaim_orphans()
                files, size = files + f, size + b
        self.last_reclaimed = (files, size)
        return files, size

    def _other_writers_alive(self) -> bool:
        """Whether another process (or store) holds a journal lock: it may be between
        renaming a value into place and journaling it."""
        for path in self._index_dir.glob("*.jsonl"):
            if path.name == self._journal_name:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            finally:
                os.close(fd)
        return False

    def _reclaim_orphans(self) -> tuple[int, int]:
        self.refresh()
        if self._skipped:
            return 0, 0  # refused records may still refer to files: leave them
        referenced = {f"{e.data_version}.{e.fmt}" for e in self._index.by_key.values()}
        # With live writers about, only files nobody touched for a minute: a writer renames its
        # value into place a moment before it journals it.
        cutoff = time.time() - 60 if self._other_writers_alive() else float("inf")
        files = size = 0
        try:
            subdirs = [d for d in os.scandir(self._values) if d.is_dir(follow_symlinks=False)]
        except OSError:
            return 0, 0
        for d in subdirs:
            with contextlib.suppress(OSError), os.scandir(d.path) as it:
                for f in it:
                    if f.name in referenced or not f.is_file(follow_symlinks=False):
                        continue
                    st = f.stat(follow_symlinks=False)
                    if st.st_mtime < cutoff:
                        os.unlink(f.path)
                        files, size = files + 1, size + st.st_size
        return files, size

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
        if self.degraded is not None:
            return 0
        try:
            for path in sorted(self._index_dir.glob("*.jsonl")):
                if path.name == self._journal_name or path.name in self._skipped:
                    continue  # ours, or holding refused records: merging would lose them
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:  # gone, or a link (refused by refresh too)
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
            if any(path.name in self._skipped for path, _ in dead):
                return 0  # a refused record turned up meanwhile: leave them all
            with self._lock:
                recs = [{"op": "put", "at": e.created, "entry": asdict(e)}
                        for e in self._index.by_key.values() if e.fmt in _trust.DISK_FORMATS]
            if self.key is not None:
                for rec in recs:
                    _trust.sign(rec, self.key)
            lines = [json.dumps(rec, separators=(",", ":")) for rec in recs]
            merged = self._index_dir / f"merged-{uuid.uuid4().hex}.jsonl"
            try:
                self._atomic_write_bytes(merged, ("\n".join(lines) + "\n").encode())
            except OSError as e:
                if not _trust.is_disk_error(e):
                    raise
                return 0  # the journals stay as they were: nothing is lost
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

"""What is read from a cache folder is untrusted data: validation, confinement and signatures.

Everything here is pure (no IPython) and shared by the store and the checkpoints:

* **names**: a value file is named by a data version, which must be a 32-digit lowercase hex
  digest; any other string read from a journal (``"../victim"``) is refused before it can
  become a path. :func:`inside` resolves a path (following symlinks) and says whether it stays
  in a folder.
* **records**: :func:`parse_entry` checks the type of every field of a journal record, so one
  damaged record is one skipped record, never an ``AttributeError`` in every later run.
* **signatures**: with a cache key (``HAMILTON_NB_CACHE_KEY`` or ``%hamilton cache key``) every
  journal record and manifest carries an HMAC-SHA256 of its canonical JSON; checksums of value
  files become keyed BLAKE2b (xxh3 is fast but anyone can forge a collision for it).
* **leftovers**: temporary files are named ``<host>-<pid>-<random>``, so a store that opens can
  tell the files of writers that are gone (killed mid-write) from those of live ones.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import socket
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xxhash

KEY_ENV = "HAMILTON_NB_CACHE_KEY"
DIGEST = re.compile(r"[0-9a-f]{32}\Z")  # data versions (xxh3-128 hex) name value files
CHECKSUM = re.compile(r"(?:[0-9a-f]{16}|b2:[0-9a-f]{32})\Z")  # xxh3-64, or keyed BLAKE2b
FILE_FORMATS = frozenset({"joblib", "parquet"})
DISK_FORMATS = FILE_FORMATS | {"inline"}
MAX_NAME = 1000  # longest node name / key accepted from disk
LEFTOVER_AGE = 3600.0  # temp files without a writer pid in their name: reclaimed after this
# Errors that mean "this folder cannot take writes" (as opposed to "this value cannot be
# serialized"): the store falls back to memory instead of failing the run.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                         errno.EIO, errno.EFBIG, errno.ENOENT, errno.ENOTDIR, errno.EISDIR})


class BadRecord(ValueError):
    """A record read from disk is not what this version writes; the message says why."""


# -- keys and signatures ------------------------------------------------------------------------


def key_from_env() -> bytes | None:
    """The signing key from ``HAMILTON_NB_CACHE_KEY`` (None when unset or empty)."""
    value = os.environ.get(KEY_ENV)
    return value.encode("utf-8") if value else None


def _canonical(rec: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in rec.items() if k != "sig"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True).encode()


def sign(rec: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Add ``sig``: HMAC-SHA256 of the record's canonical JSON (without ``sig``)."""
    rec["sig"] = hmac.new(key, _canonical(rec), hashlib.sha256).hexdigest()
    return rec


def signature_problem(rec: Mapping[str, Any], key: bytes) -> str | None:
    """None if ``rec`` carries a valid signature under ``key``, else "unsigned"/"badly signed"."""
    sig = rec.get("sig")
    if not isinstance(sig, str):
        return "unsigned"
    want = hmac.new(key, _canonical(rec), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(sig, want) else "badly signed"


class Hasher:
    """Checksum of a stored value: xxh3-64 (fast) or, with a key, keyed BLAKE2b-128 (a value
    file cannot be swapped for another with the same checksum without knowing the key)."""

    def __init__(self, key: bytes | None) -> None:
        if key is None:
            self._h: Any = xxhash.xxh3_64()
            self._prefix = ""
        else:
            mac_key = hashlib.sha256(b"hamilton_nb value checksum\0" + key).digest()
            self._h = hashlib.blake2b(key=mac_key, digest_size=16)
            self._prefix = "b2:"

    def update(self, data: Any) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._prefix + self._h.hexdigest()


def checksum_of(data: Any, key: bytes | None) -> str:
    h = Hasher(key)
    h.update(data)
    return h.hexdigest()


# -- validation of records read from disk ---------------------------------------------------------


def _number(v: Any) -> bool:
    # type() rather than isinstance: bool is an int, and this runs for every record read.
    # ``v - v == 0`` is false for nan and infinities.
    return (type(v) is float or type(v) is int) and v - v == 0


def _time(v: float) -> bool:
    return 0 <= v < 1e11  # seconds since 1970, before the year 5138


def _text(v: Any, limit: int = MAX_NAME) -> bool:
    return isinstance(v, str) and 0 < len(v) <= limit


def parse_entry(d: Any) -> dict[str, Any]:
    """The fields of an Entry from a journal record, each checked; raises :class:`BadRecord`."""
    if not isinstance(d, dict):
        raise BadRecord(f"entry is a {type(d).__name__}, not an object")
    for name in ("key", "node", "code_version", "data_version"):
        if not _text(d.get(name)):
            raise BadRecord(f"`{name}` is not a non-empty string")
    fmt = d.get("fmt")
    if fmt not in DISK_FORMATS:
        raise BadRecord(f"unknown format {str(fmt)[:40]!r}")
    if fmt in FILE_FORMATS and not DIGEST.match(d["data_version"]):
        # The data version names the value file: only a hex digest can be a file name.
        raise BadRecord(f"data version {d['data_version'][:80]!r} is not a digest")
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRecord("`size` is not a non-negative integer")
    for name in ("compute_time", "created", "last_used"):
        if not _number(d.get(name)):
            raise BadRecord(f"`{name}` is not a number")
    for name in ("created", "last_used"):
        if not _time(d[name]):  # shown as dates: pandas cannot show year 10**290
            raise BadRecord(f"`{name}` is not a time")
    parts = d.get("parts", {})
    # What the key was made of is read back by `why` and restore: its shape is checked too.
    code = parts.get("code", {}) if isinstance(parts, dict) else None
    if (not isinstance(parts, dict) or not isinstance(code, dict)
            or not all(isinstance(v, dict) or (k == "error" and isinstance(v, str))
                       for k, v in code.items())
            or not isinstance(parts.get("deps", {}), dict)
            or not isinstance(parts.get("volatile", False), bool)):
        raise BadRecord("`parts` is not the parts of a key")
    inline = d.get("inline")
    if not (isinstance(inline, str) if fmt == "inline" else inline is None):
        raise BadRecord("`inline` does not match the format")
    checksum = d.get("checksum")
    if not isinstance(checksum, str) or not CHECKSUM.match(checksum):
        raise BadRecord("no valid checksum")
    if d.keys() == _ENTRY_FIELDS:
        return d  # the usual case: no copy (the record itself is never changed: it is signed)
    return {f: d.get(f, {} if f == "parts" else None) for f in _ENTRY_ORDER}


_ENTRY_ORDER = ("key", "node", "code_version", "data_version", "fmt", "size", "compute_time",
                "created", "last_used", "parts", "inline", "checksum")
_ENTRY_FIELDS = frozenset(_ENTRY_ORDER)


def parse_record(rec: Any) -> dict[str, Any]:
    """Check a journal record (``put``/``touch``/``del``); raises :class:`BadRecord`."""
    if not isinstance(rec, dict):
        raise BadRecord(f"record is a {type(rec).__name__}, not an object")
    op = rec.get("op")
    if not _number(rec.get("at")):
        raise BadRecord("`at` is not a number")
    if op == "put":
        return {"op": "put", "at": rec["at"], "entry": parse_entry(rec.get("entry"))}
    if op in ("touch", "del"):
        keys = rec.get("keys")
        if not isinstance(keys, list) or not all(_text(k) for k in keys):
            raise BadRecord("`keys` is not a list of strings")
        return {"op": op, "at": rec["at"], "keys": keys}
    raise BadRecord(f"unknown op {str(op)[:40]!r}")


def _opt_text(v: Any) -> bool:
    return v is None or isinstance(v, str)


def manifest_problem(m: Any) -> str | None:
    """Why a checkpoint manifest (already known to be format 1) cannot be used, or None."""
    cells = m.get("cells")
    if not isinstance(cells, list) or not all(
            isinstance(c, dict) and _text(c.get("cell_id")) and isinstance(c.get("body"), str)
            for c in cells):
        return "`cells` is not a list of {cell_id, body}"
    nodes = m.get("nodes", {})
    if not isinstance(nodes, dict) or not all(
            isinstance(r, dict) and all(_opt_text(r.get(f)) for f in
                                        ("key", "data_version", "code_version", "source",
                                         "cell_id"))
            and (r.get("at") is None or _number(r.get("at")))
            for r in nodes.values()):
        return "`nodes` is not a map of node records"
    settings = m.get("settings", {})
    if not isinstance(settings, dict) or not all(
            isinstance(settings.get(k, {}), dict)
            and all(isinstance(a, str) and isinstance(b, str)
                    for a, b in settings.get(k, {}).items())
            for k in ("behavior", "format")):
        return "`settings` is not a map of per-node settings"
    if not isinstance(m.get("config", {}), dict | None):
        return "`config` is not an object"
    if not _opt_text(m.get("config_pickle")):
        return "`config_pickle` is not a string"
    if not (m.get("created") is None or (_number(m.get("created")) and _time(m["created"]))):
        return "`created` is not a time"
    for f in ("name", "session_id", "working_dir"):
        if not _opt_text(m.get(f)):
            return f"`{f}` is not a string"
    return None


def _manifest_body(m: Mapping[str, Any]) -> dict[str, Any]:
    # "created" is left out: the last-state file is compared without it, and a forged time
    # changes nothing that restore runs.
    return {k: v for k, v in m.items() if k != "created"}


def sign_manifest(m: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Add ``sig`` to a checkpoint manifest (HMAC of everything but ``created``)."""
    m["sig"] = sign(_manifest_body(m), key)["sig"]
    return m


def manifest_signature_problem(m: Mapping[str, Any], key: bytes) -> str | None:
    """None if the manifest is signed with ``key``, else "unsigned" / "badly signed"."""
    return signature_problem(_manifest_body(m), key)


# -- paths ---------------------------------------------------------------------------------------


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, with every symlink resolved, is ``folder`` or lies under it."""
    real = os.path.realpath(path)
    root = os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """Read a regular file without following a symlink and without blocking on a FIFO.

    Raises FileNotFoundError if absent, OSError (ELOOP, or EINVAL for "not a regular file")
    otherwise.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    finally:
        os.close(fd)


# -- temporary files of writers -------------------------------------------------------------------

_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:64] or "host"
_TEMP_NAME = re.compile(
    r"(?:\.tmp-)?(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[A-Za-z0-9_]+(?:\..*)?\Z")


def temp_prefix() -> str:
    """Prefix of this process's temporary files: ``<host>-<pid>-`` (see :func:`reclaim`)."""
    return f"{_HOST}-{os.getpid()}-"


def _writer_gone(name: str, mtime: float) -> bool:
    m = _TEMP_NAME.match(name)
    if m is None or m["host"] != _HOST:
        # Another machine's writer (shared folder) or a name without a pid (older versions):
        # a file nobody has written to for an hour is not being written.
        return time.time() - mtime > LEFTOVER_AGE
    pid = int(m["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def reclaim(folder: Path, only_temp_names: bool = False) -> tuple[int, int]:
    """Delete temporary files in ``folder`` whose writer process is gone; (files, bytes).

    ``only_temp_names``: consider only ``.tmp-*`` names (folders that also hold real files).
    """
    files = size = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0, 0
    for name in names:
        if only_temp_names and not name.startswith(".tmp-"):
            continue
        path = folder / name
        try:
            st = os.lstat(path)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            if _writer_gone(name, st.st_mtime):
                os.unlink(path)  # a symlink is removed itself, never its target
                files += 1
                size += st.st_size if stat.S_ISREG(st.st_mode) else 0
        except FileNotFoundError:
            continue  # its writer renamed it into place meanwhile
        except OSError:
            break  # read-only folder: nothing can be reclaimed now
    return files, size


def is_disk_error(e: BaseException) -> bool:
    """Whether ``e`` says the folder cannot take writes (full, read-only, gone...)."""
    return isinstance(e, OSError) and e.errno in DISK_ERRNOS


def disk_remedy(e: BaseException) -> str:
    """How to fix a folder that failed with ``e``, for a warning."""
    where = ("set HAMILTON_NB_CACHE (or run `%hamilton cache dir PATH`) to a writable folder "
             "with free space")
    code = getattr(e, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"Free disk space (e.g. `%hamilton cache evict --max-size 1GB`), or {where}"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"Make the folder writable for this user, or {where}"
    return f"Check that the path is a folder you can write, or {where}"


__all__ = [
    "KEY_ENV",
    "BadRecord",
    "Hasher",
    "checksum_of",
    "disk_remedy",
    "inside",
    "is_disk_error",
    "key_from_env",
    "manifest_problem",
    "manifest_signature_problem",
    "parse_entry",
    "parse_record",
    "read_regular",
    "reclaim",
    "sign",
    "sign_manifest",
    "signature_problem",
    "temp_prefix",
]

"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ._trust import temp_prefix


def atomic_write(path: Path, data: bytes, tmp_dir: Path | None = None) -> os.stat_result:
    """Write ``data`` to a temporary file beside ``path`` (or in ``tmp_dir``, same filesystem)
    and rename it into place. Returns the file's status as written (its inode is the one now
    at ``path``, unless another process replaced it since: a caller that appends to the file
    later can tell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named after this process, so a cache store that opens reclaims it if we are killed.
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=".tmp-" + temp_prefix())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            st = os.fstat(fh.fileno())
        os.replace(tmp, path)
        return st
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

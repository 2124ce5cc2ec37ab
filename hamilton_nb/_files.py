"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ._trust import temp_prefix


def atomic_write(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path`` (or in ``tmp_dir``, same filesystem)
    and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named after this process, so a cache store that opens reclaims it if we are killed.
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=".tmp-" + temp_prefix())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

"""Loading a joblib value file memory-mapped again, faster than ``joblib.load``.

``joblib.load(path, mmap_mode="c")`` walks the file's pickle with Python's pure-Python
unpickler (it must intercept the array wrappers in the stream): ~0.9 ms for a 200 MB DataFrame
whose data is a single memory map, three times what mapping the file costs. An all-hit
``%hamilton run`` binds the value that way on every run.

The first time this process loads a file (through joblib), the loaded value is pickled again
with each memory-mapped array replaced by a reference — its *skeleton*: ~1 kB for a DataFrame —
and kept with the offset, shape, dtype and order of each array. A later load of the same file
(same identity: size, times, inode, first and last 64 kB, see ``store._file_identity``) maps the
arrays copy-on-write from that file, exactly as joblib does, and rebuilds the objects around
them with the C unpickler. The result is the value joblib would return: the same types, the
arrays ``np.memmap`` of the same file in mode ``"c"`` (a change in place never reaches the file
nor a later load), every load a new object.

Only values made of numpy, pandas, pyarrow and builtin objects get a skeleton: re-pickling a
loaded object reproduces its file's pickle for those, whereas a user class's ``__setstate__``
could depend on the state of the notebook when it was first loaded (a fresh ``joblib.load``
would see the current one). Anything else, or a skeleton over :data:`SKELETON_MAX` bytes (data
kept in the pickle itself, not mapped: object columns, pyarrow strings), loads through joblib
every time.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

SKELETON_MAX = 64 * 1024
# Modules whose objects round-trip through pickle unchanged, whatever the notebook's state.
_ALLOWED = frozenset({
    "numpy", "pandas", "pyarrow", "builtins", "copyreg", "collections", "datetime", "decimal",
    "_codecs", "zoneinfo", "pytz", "dateutil",
})


@dataclass(frozen=True)
class Skeleton:
    """A value's pickle without the data of its memory-mapped arrays."""

    ident: tuple[Any, ...]  # identity of the file it was made from (store._file_identity)
    data: bytes
    # (offset in the file, shape, dtype, order) of each array, in reference order
    arrays: tuple[tuple[int, tuple[int, ...], np.dtype, str], ...]


class _NoSkeleton(Exception):
    """The value cannot be rebuilt from a skeleton: it is loaded through joblib."""


class BoundedSink:
    """A file for a Pickler that takes at most ``limit`` bytes, then raises ``error``: a value
    too big for where it goes stops being pickled after that much, not after all of it (the C
    pickler writes large buffers, array data, straight to the file, so a 200 MB frame is
    abandoned after its metadata instead of being copied whole into a bytes object first)."""

    def __init__(self, limit: int, error: type[Exception]) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.limit, self.error = limit, error

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        self.size += n
        if self.size > self.limit:
            raise self.error
        self.parts.append(bytes(data))
        return n


class _Unpickler(pickle.Unpickler):
    """The C unpickler; a reference is the array mapped for it."""

    def __init__(self, data: bytes, arrays: list[np.ndarray]) -> None:
        super().__init__(io.BytesIO(data))
        self._arrays = arrays

    def persistent_load(self, pid: Any) -> Any:
        return self._arrays[pid]


class _CheckingUnpickler(_Unpickler):
    """The first rebuild of a new skeleton: every global it names must be allowed (later
    loads of that skeleton, made by this process, need not ask again)."""

    def find_class(self, module: str, name: str) -> Any:
        if module.partition(".")[0] not in _ALLOWED:
            raise _NoSkeleton(module)
        return super().find_class(module, name)


def _mapped_here(obj: Any, filename: str) -> bool:
    """Whether ``obj`` is an array joblib mapped from ``filename`` itself: not a view of one
    (its offset attribute is its base's), not an array from another file."""
    return (obj.base is getattr(obj, "_mmap", None) and obj.base is not None
            and obj.filename == filename and obj.mode == "c" and obj.nbytes > 0
            and (obj.flags.c_contiguous or obj.flags.f_contiguous))


def make(value: Any, filename: str, ident: tuple[Any, ...]) -> Skeleton | None:
    """The skeleton of ``value``, just returned by ``joblib.load(filename, mmap_mode="c")``
    of the file with identity ``ident``; None if it cannot have one (see module docstring)."""
    arrays: list[tuple[int, tuple[int, ...], np.dtype, str]] = []
    index: dict[int, int] = {}  # id() of an array alive during this call -> its reference
    originals: list[np.ndarray] = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if type(obj) is not np.memmap:
                return None
            ref = index.get(id(obj))
            if ref is not None:
                return ref
            if not _mapped_here(obj, filename):
                raise _NoSkeleton  # a view, or another file's map: joblib's own load only
            order = "C" if obj.flags.c_contiguous else "F"
            index[id(obj)] = ref = len(arrays)
            arrays.append((int(obj.offset), tuple(obj.shape), obj.dtype, order))
            originals.append(obj)
            return ref

    sink = BoundedSink(SKELETON_MAX, _NoSkeleton)
    try:
        Pickler(sink, protocol=5).dump(value)
        data = b"".join(sink.parts)
        if not arrays:
            return None  # nothing mapped: nothing to gain over joblib
        # Rebuilt once over the same arrays: every global it names must be allowed, and the
        # result must be of the loaded value's type.
        if type(_CheckingUnpickler(data, originals).load()) is not type(value):
            return None
    except (_NoSkeleton, pickle.PickleError, TypeError, AttributeError, ValueError):
        return None  # not picklable again, or not from allowed modules: joblib every time
    return Skeleton(ident, data, tuple(arrays))


def load(skeleton: Skeleton, fh: BinaryIO) -> Any:
    """The value of ``skeleton``, its arrays mapped copy-on-write from ``fh`` (an open file
    with the skeleton's identity)."""
    arrays = [np.memmap(fh, dtype=dtype, mode="c", offset=offset, shape=shape, order=order)
              for offset, shape, dtype, order in skeleton.arrays]
    return _Unpickler(skeleton.data, arrays).load()

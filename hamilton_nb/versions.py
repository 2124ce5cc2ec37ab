"""Code versions and data fingerprints.

A *code version* hashes everything in code that decides a node's value: the normalized source of
its function (comments, docstrings and formatting do not count) and, resolved at every run from
the live objects — because an ordinary cell may change them at any time — its decorator
arguments, default values, closure contents, the helper functions (transitively) and
module-level constants it reads, the modules it imports and the environment variables it names.

A *data version* (fingerprint) hashes a value's content *and* schema. DataFrames, numpy arrays and
pyarrow data are hashed over their native buffers with xxh3-128 without copying; everything else
goes through a pickling hasher (joblib's) that versions every function, class and module it meets
*by its code*, wherever it sits in the value. Why not Hamilton's own fingerprinting: in 1.90 it
ignores column names and dtypes and goes through per-row pandas hashing, which is both unsafe and
slow. Why not plain ``joblib.hash``: it pickles a function by module and name, so editing the
function's body changes nothing.

One rule holds everywhere in this module: a version or fingerprint is a pure function of content,
the same in every process. Memos are keyed by content (a code object's *content*: equal code
objects have equal bytecode, constants and names) or live for one run only.
"""

from __future__ import annotations

import ast
import builtins
import dis
import enum
import functools
import importlib.util
import inspect
import linecache
import os
import re
import struct
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import joblib.hashing
import numpy as np
import xxhash

#: Bump when the meaning of keys or fingerprints changes: old entries then simply miss.
FORMAT_VERSION = 2

_SMALL_CONTAINER = 1000  # longer lists/dicts are fingerprinted in one pickling pass


class Unhashable(Exception):
    """A value (or a constant a node reads) has no fingerprint: its dependants recompute."""


class DataFile(str):
    """A path whose file *content* is part of every cache key that depends on it.

    Use it for external inputs (or notebook variables) that name a data file a node reads::

        path = hamilton_nb.DataFile("data.csv")               # content hash (default)
        path = hamilton_nb.DataFile("big.parquet", by="stat")  # size + mtime: cheaper, weaker

    It is a ``str``, so Hamilton functions annotated ``path: str`` accept it unchanged.
    """

    by: str

    def __new__(cls, path: str | os.PathLike[str], by: str = "content") -> DataFile:
        if by not in ("content", "stat"):
            raise ValueError(f"DataFile(by=...) must be 'content' or 'stat', not {by!r}")
        obj = super().__new__(cls, os.fspath(path))
        obj.by = by
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (DataFile, (str(self), self.by))


def _hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


def hash_strings(*parts: str) -> str:
    """Hash a few strings unambiguously (each length-prefixed) in one xxh3 call (hot path)."""
    return xxhash.xxh3_128_hexdigest("".join([f"{len(p)}:{p}" for p in parts]).encode())


_NO_CYCLE = 1 << 30


class _Ctx:
    """State of one versioning pass (a run): a memo of what was already versioned, and the
    objects being versioned right now (recursion between helpers, classes and their methods).

    The memo is keyed by ``id()`` *within one pass only*, and keeps each object alive so that an
    id is never reused while the memo exists; nothing of it survives the run.
    """

    __slots__ = ("active", "feeding", "low", "memo")

    def __init__(self) -> None:
        self.memo: dict[int, tuple[Any, str]] = {}
        self.active: dict[int, int] = {}  # id -> depth of the objects being versioned now
        self.feeding: set[int] = set()  # instances whose state is being fingerprinted
        # Shallowest depth a cut recursion pointed at, below the current object (Tarjan's
        # lowlink): a result that only points at itself or deeper is complete.
        self.low = _NO_CYCLE


# --------------------------------------------------------------------------------------------
# Data fingerprints
# --------------------------------------------------------------------------------------------


def fingerprint(value: Any, _ctx: _Ctx | None = None) -> str:
    """Return the data version of ``value``; raise :class:`Unhashable` when there is none."""
    h = _hasher()
    try:
        _feed(h, value, _ctx or _Ctx())
    except Unhashable:
        raise
    except RecursionError as e:
        raise Unhashable(f"a {type(value).__qualname__} value is nested too deeply") from e
    except Exception as e:  # e.g. DataFrame.attrs that cannot be deep-copied by pandas
        raise Unhashable(f"a {type(value).__qualname__} value cannot be fingerprinted ({e})") from e
    return h.hexdigest()


def _tag(h: xxhash.xxh3_128, s: str) -> None:
    b = s.encode()
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)


_SCALARS = (type(None), bool, int, float, complex)


def _is_code_like(obj: Any) -> bool:
    """Functions, classes, modules, methods and their wrappers: versioned by their code."""
    return isinstance(
        obj,
        types.FunctionType | types.MethodType | types.BuiltinFunctionType | types.ModuleType
        | type | functools.partial | staticmethod | classmethod | property
        | types.WrapperDescriptorType | types.MethodWrapperType | types.MethodDescriptorType,
    ) or (callable(obj) and hasattr(obj, "__wrapped__") and type(obj).__module__ == "functools")


def _feed(h: xxhash.xxh3_128, obj: Any, ctx: _Ctx) -> None:
    t = type(obj)
    if t in _SCALARS:
        _tag(h, f"{t.__name__}:{obj!r}")
        if (t is float or t is complex) and obj != obj:
            # repr(-nan) == "nan": the bits tell NaNs apart (math.copysign reads the sign).
            h.update(struct.pack("<d", obj) if t is float
                     else struct.pack("<dd", obj.real, obj.imag))
        return
    if t is str:
        _tag(h, "str")
        _tag(h, obj)
        return
    if t in (bytes, bytearray):
        _tag(h, t.__name__)
        h.update(len(obj).to_bytes(8, "little"))
        h.update(obj)
        return
    if isinstance(obj, DataFile):
        _tag(h, "DataFile")
        _tag(h, _file_version(obj))
        return
    if isinstance(obj, np.ndarray):
        _feed_ndarray(h, obj, ctx)
        return
    if isinstance(obj, np.generic):
        _tag(h, f"np:{t.__name__}:{obj.dtype.str}")
        h.update(obj.tobytes())
        return
    pd = sys.modules.get("pandas")  # not imported -> the value cannot be a pandas object
    if pd is not None and isinstance(obj, pd.DataFrame | pd.Series | pd.Index):
        _feed_pandas(h, obj, ctx)
        return
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(
        obj, pa.Array | pa.ChunkedArray | pa.Table | pa.RecordBatch
    ):
        _feed_arrow(h, obj)
        return
    if t in (tuple, list) and len(obj) <= _SMALL_CONTAINER:
        _tag(h, f"{t.__name__}:{len(obj)}")
        for item in obj:
            _feed(h, item, ctx)
        return
    if t is dict and len(obj) <= _SMALL_CONTAINER:
        _tag(h, f"dict:{len(obj)}")
        for k, v in obj.items():
            _feed(h, k, ctx)
            _feed(h, v, ctx)
        return
    if t in (set, frozenset) and len(obj) <= _SMALL_CONTAINER:
        _tag(h, f"{t.__name__}:{len(obj)}")
        for fp in sorted(fingerprint(item, ctx) for item in obj):
            _tag(h, fp)
        return
    if _is_code_like(obj):
        _tag(h, "code")
        _tag(h, _value_version(obj, ctx))
        return
    if isinstance(obj, enum.Enum) and not _is_library_class(t):
        # A member of a notebook Enum: its class (members and their values) and its name.
        _tag(h, "enum")
        _tag(h, _value_version(t, ctx))
        _tag(h, str(obj.name))
        _feed(h, obj._value_, ctx)  # Flag combinations have no member of their own
        return
    if not _is_library_class(t):
        _feed_user_instance(h, obj, t, ctx)
        return
    _tag(h, f"pickled:{t.__module__}.{t.__qualname__}")
    _tag(h, _hash_pickled(obj, ctx))


def _feed_user_instance(h: xxhash.xxh3_128, obj: Any, t: type, ctx: _Ctx) -> None:
    """An instance of the user's own class: its class's code (pickle would only name it, so a
    redefined method would collide), its attributes, and — for subclasses of built-in containers
    (``class Rows(list)``) — the container's content, which lives outside ``__dict__``."""
    _tag(h, f"instance:{t.__qualname__}")
    _tag(h, _value_version(t, ctx))
    key = id(obj)
    if key in ctx.feeding:  # an object graph with back references (parent <-> child)
        _tag(h, "<cycle>")
        return
    ctx.feeding.add(key)
    try:
        _feed_instance_state(h, obj, t, ctx)
    finally:
        ctx.feeding.discard(key)


def _feed_instance_state(h: xxhash.xxh3_128, obj: Any, t: type, ctx: _Ctx) -> None:
    state = getattr(obj, "__dict__", None)
    _feed(h, dict(state) if isinstance(state, dict) else None, ctx)
    slots = [n for c in t.__mro__ for n in getattr(c, "__slots__", ())
             if isinstance(n, str) and n not in ("__dict__", "__weakref__") and hasattr(obj, n)]
    _feed(h, {n: getattr(obj, n) for n in slots}, ctx)
    for base in (dict, list, tuple, set, frozenset, str, bytes, int, float):
        if isinstance(obj, base):
            _tag(h, f"base:{base.__name__}")
            if base is dict:
                _feed(h, list(dict.items(obj)), ctx)
            elif base in (set, frozenset):
                _feed(h, frozenset(obj), ctx)
            else:
                _feed(h, base(obj), ctx)
            break


class _CodeAwareHasher(joblib.hashing.NumpyHasher):
    """joblib's pickling hasher, but every function, class, module, DataFrame or notebook object
    met anywhere inside the value is replaced by its version or fingerprint from this module:
    a pickle names a function by module and name (an edited body would collide), and falls back
    to identity-like placeholders for methods and modules."""

    def __init__(self, ctx: _Ctx) -> None:
        super().__init__(hash_name="md5")
        self._ctx = ctx
        # Types whose instances are pickled as they are. Whether an object is replaced depends
        # on its type only, so the answer is kept for this pass (a long list of datetimes
        # would otherwise ask once per element).
        self._plain: set[type] = {*_SCALARS, str, bytes, tuple, list, dict}
        # One stand-in per replaced object (a class met once per element), so that pickle's
        # memo writes it once and refers back to it after that.
        self._refs: dict[int, tuple[Any, Any]] = {}

    def save(self, obj: Any) -> None:  # type: ignore[override]
        t = type(obj)
        if t in self._plain:
            super().save(obj)
            return
        known = self._refs.get(id(obj))
        if known is not None:
            super().save(known[1])
            return
        ref = None if obj is joblib.hashing._MyHash else self._replacement(obj, t)
        if ref is not None:
            stand_in = joblib.hashing._MyHash("hamilton_nb", ref)
            self._refs[id(obj)] = (obj, stand_in)  # obj kept alive: its id stays its own
            super().save(stand_in)
            return
        if obj is not joblib.hashing._MyHash:
            self._plain.add(t)
        super().save(obj)

    def _replacement(self, obj: Any, t: type) -> str | None:
        if _is_code_like(obj):
            return "code:" + _value_version(obj, self._ctx)
        if isinstance(obj, DataFile) or (isinstance(obj, enum.Enum)
                                          and not _is_library_class(t)):
            return "value:" + fingerprint(obj, self._ctx)
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(obj, pd.DataFrame | pd.Series | pd.Index):
            return "value:" + fingerprint(obj, self._ctx)
        pa = sys.modules.get("pyarrow")
        if pa is not None and isinstance(obj, pa.Array | pa.ChunkedArray | pa.Table
                                         | pa.RecordBatch):
            return "value:" + fingerprint(obj, self._ctx)
        if not isinstance(obj, np.ndarray | np.generic) and not _is_library_class(t):
            return "value:" + fingerprint(obj, self._ctx)
        return None

    def _batch_setitems(self, items: Any, *args: Any) -> None:
        # In insertion order, as a plain dict is fed: the order is observable (an OrderedDict,
        # iteration, DataFrame(dict)), and joblib's fallback for unorderable keys sorts by
        # hash(), which differs between processes for strings.
        super(joblib.hashing.Hasher, self)._batch_setitems(items, *args)

    def save_set(self, set_items: Any) -> None:
        # By content fingerprint: stable across processes (hash() of a str is not).
        super().save(("set", sorted(fingerprint(i, self._ctx) for i in set_items)))

    dispatch = joblib.hashing.NumpyHasher.dispatch.copy()
    dispatch[set] = save_set
    dispatch[frozenset] = save_set


def _hash_pickled(obj: Any, ctx: _Ctx) -> str:
    try:
        return _CodeAwareHasher(ctx).hash(obj)
    except Unhashable:
        raise
    except Exception as e:  # joblib raises whatever pickling raises
        raise Unhashable(f"a {type(obj).__qualname__} value cannot be fingerprinted ({e})") from e


def _feed_ndarray(h: xxhash.xxh3_128, arr: np.ndarray, ctx: _Ctx | None = None) -> None:
    _tag(h, f"ndarray:{type(arr).__qualname__}:{arr.dtype.descr!r}:{arr.shape!r}")
    if isinstance(arr, np.ma.MaskedArray):
        _tag(h, f"masked:{arr.fill_value!r}")
        _feed_ndarray(h, np.ma.getmaskarray(arr))
        arr = arr.data
    if arr.dtype.hasobject:
        _feed_object_array(h, arr.ravel(), ctx or _Ctx())
        return
    if arr.dtype.kind in "Mm":  # datetime64/timedelta64 refuse the buffer protocol
        arr = arr.view(np.int64)  # the unit is in the dtype tag above
    # ascontiguousarray is a no-op (no copy) for the usual C-contiguous case.
    h.update(np.ascontiguousarray(arr).data)


def _feed_object_array(h: xxhash.xxh3_128, arr: np.ndarray, ctx: _Ctx) -> None:
    pd = sys.modules.get("pandas")
    if pd is not None and pd.api.types.infer_dtype(arr, skipna=False) == "string":
        # Pure str column (no None/NaN, no other types): hash it as arrow string buffers.
        import pyarrow as pa

        _tag(h, "objstr")
        _feed_arrow(h, pa.array(arr, type=pa.large_string()))
        return
    # Mixed objects: pickling keeps each element's type, so 1 and "1" differ.
    _tag(h, "objpickle")
    _tag(h, _hash_pickled(arr, ctx))


def _feed_pandas(h: xxhash.xxh3_128, obj: Any, ctx: _Ctx) -> None:
    """Everything a downstream computation can observe: values, dtypes, names, index (with its
    ``freq``), ``attrs`` and flags. The type is named so a subclass never equals its base."""
    pd = sys.modules["pandas"]
    t = type(obj)
    _tag(h, f"{t.__module__}.{t.__qualname__}")
    if isinstance(obj, pd.Index):
        _feed_index(h, obj)
        return
    _tag(h, f"dup:{obj.flags.allows_duplicate_labels}")
    attrs = obj.attrs
    if attrs:
        _tag(h, "attrs")
        _feed(h, dict(attrs), ctx)
    if isinstance(obj, pd.DataFrame):
        _tag(h, repr(obj.shape))
        _feed_index(h, obj.columns)
        _feed_index(h, obj.index)
        for _, col in obj.items():
            _feed_values(h, col.array, ctx)
        return
    _feed(h, obj.name, ctx)
    _feed_index(h, obj.index)
    _feed_values(h, obj.array, ctx)


def _feed_values(h: xxhash.xxh3_128, values: Any, ctx: _Ctx | None = None) -> None:
    """Values of a Series/Index: a numpy array or a pandas ExtensionArray."""
    pd = sys.modules["pandas"]
    dtype = values.dtype
    _tag(h, f"{type(dtype).__name__}:{dtype!s}")
    if isinstance(values, np.ndarray):
        _feed_ndarray(h, values, ctx)
        return
    if isinstance(dtype, pd.CategoricalDtype):
        _feed_ndarray(h, values.codes)
        _feed_index(h, dtype.categories)
        _tag(h, f"ordered:{dtype.ordered}")
        return
    numpy_view = getattr(values, "_ndarray", None)  # NumpyExtensionArray, DatetimeArray, ...
    if isinstance(numpy_view, np.ndarray):
        _feed_ndarray(h, numpy_view, ctx)
        return
    if hasattr(values, "__arrow_array__"):  # arrow-backed strings (pandas 3 default), masked ints
        import pyarrow as pa

        _feed_arrow(h, pa.array(values))  # __arrow_array__: zero-copy for arrow-backed data
        return
    _feed_object_array(h, np.asarray(values, dtype=object), ctx or _Ctx())


def _feed_index(h: xxhash.xxh3_128, idx: Any) -> None:
    pd = sys.modules["pandas"]
    _tag(h, type(idx).__name__)
    _feed(h, list(idx.names), _Ctx())
    if isinstance(idx, pd.RangeIndex):
        _tag(h, f"{idx.start}:{idx.stop}:{idx.step}")
    elif isinstance(idx, pd.MultiIndex):
        for level, codes in zip(idx.levels, idx.codes, strict=True):
            _feed_index(h, level)
            _feed_ndarray(h, np.asarray(codes))
    else:
        if isinstance(idx, pd.DatetimeIndex | pd.TimedeltaIndex):
            # freq drives shift/asfreq/resample results, and pandas keeps it through a store
            _tag(h, f"freq:{idx.freqstr}")
        _feed_values(h, idx.array)


def _feed_arrow(h: xxhash.xxh3_128, obj: Any) -> None:
    import pyarrow as pa

    if isinstance(obj, pa.Table | pa.RecordBatch):
        _tag(h, f"{type(obj).__name__}:{obj.num_rows}")
        _tag(h, obj.schema.to_string(show_schema_metadata=True))
        for col in obj.columns:
            _feed_arrow(h, col)
        return
    chunks = obj.chunks if isinstance(obj, pa.ChunkedArray) else [obj]
    _tag(h, f"arrow:{obj.type}:{len(obj)}")
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if pa.types.is_dictionary(chunk.type):
            _feed_arrow(h, chunk.indices)
            _feed_arrow(h, chunk.dictionary)
            continue
        # Buffers of a sliced array are the parent's; offset and length make the hash exact.
        # Garbage under null slots can only cause a needless miss, never a collision.
        _tag(h, f"chunk:{chunk.offset}:{len(chunk)}:{chunk.null_count}")
        for buf in chunk.buffers():
            if buf is None:
                _tag(h, "-")
            else:
                h.update(len(buf).to_bytes(8, "little"))
                h.update(buf)


def _file_version(f: DataFile) -> str:
    path = os.path.abspath(f)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path}:missing"
    if os.path.isdir(path):
        parts = []
        for root, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                parts.append(_file_version(DataFile(os.path.join(root, name), by=f.by)))
        return hash_strings(path, *parts)
    if f.by == "stat":
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    h = _hasher()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return f"{path}:{h.hexdigest()}"


# --------------------------------------------------------------------------------------------
# Code versions
# --------------------------------------------------------------------------------------------

_LIB_PREFIXES = tuple(
    {os.path.realpath(p) for k in ("stdlib", "platstdlib", "purelib", "platlib")
     if (p := sysconfig.get_paths().get(k))}
    # hamilton_nb itself is library code wherever it is installed (an editable checkout too).
    | {os.path.dirname(os.path.realpath(__file__)) + os.sep}
)


@functools.lru_cache(maxsize=4096)
def _is_library_file(path: str | None) -> bool:
    if not path:
        return False
    if path.startswith("<frozen"):
        return True
    return os.path.isabs(path) and os.path.realpath(path).startswith(_LIB_PREFIXES)


def _is_library_code(code: types.CodeType) -> bool:
    return _is_library_file(code.co_filename)


@dataclass(frozen=True)
class FunctionCode:
    """What is known about one function from its source, at the time it was defined."""

    static: str  # hash of the normalized source (decorators, defaults and annotations included)
    global_names: tuple[str, ...]  # names the body reads from its module globals
    description: str  # "function `f`" for messages
    #: Objects named in the decorator expressions, as they were when the decorators ran (the
    #: decorators captured these very objects). Fingerprinted at every run, so an object
    #: mutated later still counts.
    decorator_values: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    #: The same objects' versions when the decorators ran: a decorator may have copied a value
    #: (``value(cfg.k)``) that the object no longer holds, so both moments count.
    decorator_versions: tuple[tuple[str, str], ...] = ()


_STMT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.AST) -> list[ast.AST]:
    """``tree`` and every statement (and except handler, match case) inside it, nested ones
    too, without visiting expressions: a docstring can only open the body of a module, def or
    class, which are only ever statements — and expressions are most of an AST."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for name in _STMT_LISTS:
            sub = getattr(node, name, None)
            if sub:
                todo.extend(s for s in sub if isinstance(s, ast.stmt | ast.excepthandler
                                                         | ast.match_case))
    return out


def _dump(node: Any) -> str:
    """``ast.dump(node, annotate_fields=False, include_attributes=False)``, the same string,
    ~1.5x faster: ast.dump's general version (indentation, the "simple" flag) runs for every
    node of every function of a cell on its first run. A test compares the two."""
    if isinstance(node, ast.AST):
        cls = type(node)
        args = []
        keywords = False  # as in ast.dump: after a missing or defaulted field, name=value
        for name in node._fields:
            try:
                value = getattr(node, name)
            except AttributeError:
                keywords = True
                continue
            if value is None and getattr(cls, name, ...) is None:
                keywords = True
                continue
            text = _dump(value)
            args.append(f"{name}={text}" if keywords else text)
        return f"{cls.__name__}({', '.join(args)})"
    if type(node) is list:
        return f"[{', '.join([_dump(x) for x in node])}]"
    return repr(node)


def _dump_without_docstrings(tree: ast.AST) -> str:
    """``ast.dump`` of ``tree`` as if it had no docstrings (comments and layout are never in an
    AST). The tree is edited in place and restored: copying it costs more than the dump."""
    edited: list[tuple[ast.AST, list[ast.stmt]]] = []
    for node in _statements(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                edited.append((node, body))
                node.body = body[1:] or [ast.Pass()]
    try:
        return _dump(tree)
    finally:
        for node, body in edited:
            node.body = body  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _CodeInfo:
    """What a code object says by itself (nested code objects included)."""

    digest: str  # bytecode, constants, names, signature shape — no file name, no line numbers
    global_names: tuple[str, ...]  # LOAD_GLOBAL/LOAD_NAME targets
    imports: tuple[str, ...]  # modules imported inside the body
    env_names: tuple[str, ...]  # constant strings, when the code touches os.environ/getenv
    nondeterministic: tuple[str, ...]  # calls that read the clock or unseeded randomness
    reads_env: bool = False  # the code (or code nested in it) touches os.environ/getenv


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL",
               "LOAD_FROM_DICT_OR_GLOBALS"}


def _const_repr(c: Any, out: list[str], strings: list[str]) -> None:
    """A process-independent encoding of a code constant (a frozenset's order is not)."""
    if isinstance(c, types.CodeType):
        out.append(_code_info(c).digest)
    elif isinstance(c, tuple):
        out.append(f"tuple:{len(c)}")
        for x in c:
            _const_repr(x, out, strings)
    elif isinstance(c, frozenset):
        parts: list[str] = []
        for x in c:
            sub: list[str] = []
            _const_repr(x, sub, strings)
            parts.append("|".join(sub))
        out.append(f"frozenset:{sorted(parts)!r}")
    else:
        if isinstance(c, str):
            strings.append(c)
        out.append(f"{type(c).__name__}:{c!r}")


_GLOBAL_OPCODES = frozenset(dis.opmap[n] for n in _GLOBAL_OPS if n in dis.opmap)
_LOAD_GLOBAL = dis.opmap["LOAD_GLOBAL"]
_IMPORT_NAME = dis.opmap["IMPORT_NAME"]
# LOAD_GLOBAL's argument is the name's index shifted left by one from 3.11 (the low bit says
# whether a NULL is pushed too), as dis decodes it.
_LOAD_GLOBAL_SHIFT = 1 if sys.version_info >= (3, 11) else 0


def _scan_names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """(global names, imported modules) that ``code``'s own instructions read: what
    ``dis.get_instructions`` would report for the global-name and IMPORT_NAME opcodes, read
    straight from the bytecode (dis builds an Instruction with positions for every unit,
    ~10x the cost, and a first run analyses every function of every cell). ``co_code`` is
    the unspecialized bytecode, with inline caches zeroed (CACHE units are skipped as such)."""
    names = code.co_names
    raw = code.co_code
    globals_: set[str] = set()
    imports: set[str] = set()
    ext = 0
    for i in range(0, len(raw), 2):
        op = raw[i]
        if op == dis.EXTENDED_ARG:
            ext = (ext | raw[i + 1]) << 8
            continue
        arg = ext | raw[i + 1]
        ext = 0
        if op in _GLOBAL_OPCODES:
            globals_.add(names[arg >> _LOAD_GLOBAL_SHIFT if op == _LOAD_GLOBAL else arg])
        elif op == _IMPORT_NAME and names[arg]:
            imports.add(names[arg])
    return globals_, imports


# Keyed by the code object, which compares (and hashes) by content: equal code objects have
# equal bytecode, constants, names and signature — everything the result is computed from.
@functools.lru_cache(maxsize=8192)
def _code_info(code: types.CodeType) -> _CodeInfo:
    consts: list[str] = []
    strings: list[str] = []
    for c in code.co_consts:
        _const_repr(c, consts, strings)
    globals_, imports = _scan_names(code)
    names = set(code.co_names)
    nested = [_code_info(c) for c in code.co_consts if isinstance(c, types.CodeType)]
    for sub in nested:
        globals_.update(sub.global_names)
        imports.update(sub.imports)
    all_names = names | globals_
    env: set[str] = set()
    reads_env = bool(all_names & {"environ", "getenv"}) or any(s.reads_env for s in nested)
    if reads_env:
        env = {s for s in strings if _ENV_NAME.match(s)}
        for sub in nested:
            env.update(sub.env_names)
    nondet = set()
    if all_names & {"now", "utcnow", "today"}:
        nondet.add("the current date/time")
    if "time" in globals_ and all_names & {"time", "time_ns", "monotonic", "perf_counter"}:
        nondet.add("time.time()")
    if ("random" in all_names or "uuid4" in all_names) \
            and not all_names & {"seed", "default_rng", "RandomState", "Generator"}:
        nondet.add("randomness without a seed")
    for sub in nested:
        nondet.update(sub.nondeterministic)
    digest = hash_strings(
        code.co_name, repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                            code.co_flags)),
        code.co_code.hex(), *consts, repr(code.co_names), repr(code.co_varnames),
        repr(code.co_freevars), repr(code.co_cellvars),
    )
    return _CodeInfo(digest, tuple(sorted(globals_)), tuple(sorted(imports)),
                     tuple(sorted(env)), tuple(sorted(nondet)), reads_env)


def _function_def(fn: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        src = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == fn.__name__:
            return node
    return None


# Normalized-source hash by source text: re-running an unchanged cell re-analyzes its functions,
# and the AST dump is most of that cost. A pure function of the text (never of an object).
_STATIC_BY_TEXT: dict[str, str] = {}


def _static_hash(fdef: ast.FunctionDef | ast.AsyncFunctionDef, filename: str | None) -> str:
    """``filename``: the file whose lines ``fdef``'s line numbers point into (the memo's key is
    the text there); None when they do not (an AST parsed from a dedented snippet)."""
    lines = linecache.getlines(filename) if filename and filename.startswith("<") else []
    first = min([fdef.lineno, *(d.lineno for d in fdef.decorator_list)])
    end = fdef.end_lineno
    text = "".join(lines[first - 1:end]) if lines and end is not None and end <= len(lines) \
        else None
    if text is not None:
        hit = _STATIC_BY_TEXT.get(text)
        if hit is not None:
            return hit
    static = xxhash.xxh3_128_hexdigest(_dump_without_docstrings(fdef).encode())
    if text is not None:
        if len(_STATIC_BY_TEXT) > 50_000:  # bounded: a long session keeps the recent ones
            _STATIC_BY_TEXT.clear()
        _STATIC_BY_TEXT[text] = static
    return static


def analyze_function(
    fn: Callable[..., Any],
    fdef: ast.FunctionDef | ast.AsyncFunctionDef | None = None,
    definition_ns: Mapping[str, Any] | None = None,
) -> FunctionCode:
    """Static part of a function's code version, taken when the function is defined.

    ``fdef`` is the function's AST when the caller has it (a ``%%hamilton`` cell); otherwise the
    source comes from ``inspect.getsource`` (IPython keeps every cell in ``linecache``).
    ``definition_ns`` resolves names used in decorator expressions: the objects found there are
    the ones the decorators captured (``@parameterize(x=value(LIMIT))``, ``@does(_sum)``), and
    they are fingerprinted at every run by :meth:`CodeVersioner.function_version`.
    """
    raw = inspect.unwrap(fn)
    info = _code_info(raw.__code__)
    # Only an AST from the function's own file has line numbers that point into that file;
    # one re-parsed from inspect.getsource (dedented) numbers its lines from 1.
    in_file = fdef is not None
    if fdef is None:
        fdef = _function_def(raw)
    deco_names: set[str] = set()
    if fdef is not None:
        static = _static_hash(fdef, raw.__code__.co_filename if in_file else None)
        deco_names = {n.id for d in fdef.decorator_list for n in ast.walk(d)
                      if isinstance(n, ast.Name)}
    else:
        # No source (exec'd from a string): the code object's content is the best we have.
        static = "code:" + info.digest
    ns = definition_ns if definition_ns is not None else raw.__globals__
    missing = object()
    captured = tuple((name, v) for name in sorted(deco_names)
                     if (v := ns.get(name, missing)) is not missing)
    ctx = _Ctx()
    versions = []
    for name, v in captured:
        try:
            versions.append((name, _value_version(v, ctx)))
        except Unhashable:
            versions.append((name, "<unhashable>"))  # the run-time version then fails too
    return FunctionCode(static, info.global_names, f"function `{fn.__name__}`", captured,
                        tuple(versions))


class CodeVersioner:
    """Resolves full code versions (static part + everything read from live objects now).

    One instance per run: it memoizes versions for that run only, because an ordinary cell may
    redefine a helper, mutate a constant or change a default between runs.
    """

    def __init__(self, static_cache: dict[Any, Any] | None = None) -> None:
        # static_cache: accepted for callers that pass the session's dict; nothing is memoized
        # across runs here any more (a memo keyed by code object hid default/closure changes).
        self._ctx = _Ctx()

    def static(self, fn: Callable[..., Any]) -> FunctionCode:
        """Static analysis of a function that no cell registered (no AST at hand)."""
        raw = inspect.unwrap(fn)
        info = _code_info(raw.__code__)
        return FunctionCode("code:" + info.digest, info.global_names,
                            f"function `{fn.__name__}`")

    def value_version(self, value: Any) -> str:
        """Version of any object as code reads it (memoized for this run)."""
        return _value_version(value, self._ctx)

    def function_version(
        self, fn: Callable[..., Any], fc: FunctionCode | None = None
    ) -> tuple[str, dict[str, str]]:
        """Full code version of a node's function and its parts, for `why` explanations.

        Raises Unhashable when something it reads cannot be fingerprinted.
        """
        fc = fc or self.static(fn)
        ctx = self._ctx
        raw = inspect.unwrap(fn)
        info = _code_info(raw.__code__)
        parts: dict[str, str] = {"source": fc.static}
        parts.update(self.local_parts(fn, fc))
        _read_globals(raw, fc.global_names, parts, ctx)
        _read_imports(info.imports, parts, ctx)
        _read_environment(info.env_names, parts, raw, info)
        return hash_strings(*(f"{k}={v}" for k, v in sorted(parts.items()))), parts

    def local_parts(self, fn: Callable[..., Any], fc: FunctionCode) -> dict[str, str]:
        """The parts of a function's version its own objects hold (decorator values, defaults,
        closure, wrapper layers): what no global name or import of it tells."""
        ctx = self._ctx
        raw = inspect.unwrap(fn)
        parts: dict[str, str] = {}
        defined = dict(fc.decorator_versions)
        for name, obj in fc.decorator_values:
            now = _value_version(obj, ctx)
            then = defined.get(name, now)
            parts[f"@{name}"] = now if then == now else hash_strings(then, now)
        # Live values the source text does not fix: defaults (`def f(k=K)` with K changed, or a
        # mutable default), the closure, and any decorator layers the user wrapped it in.
        if raw.__defaults__ or raw.__kwdefaults__:
            parts["defaults"] = fingerprint((raw.__defaults__, raw.__kwdefaults__), ctx)
        if raw.__closure__:
            parts["closure"] = _closure_version(raw, ctx)
        layer, depth = fn, 0
        ctx.active[id(raw)] = len(ctx.active)  # the node's function: versioned by its source
        try:
            while layer is not raw and depth < 32:
                parts[f"wrapper{depth}"] = _value_version_uncached(layer, ctx, follow=False)
                layer, depth = getattr(layer, "__wrapped__", raw), depth + 1
        finally:
            ctx.active.pop(id(raw), None)
            ctx.low = _NO_CYCLE
        return parts

    def global_part(self, g: Mapping[str, Any], name: str) -> str:
        """The version of global ``name`` as a function with globals ``g`` reads it now."""
        parts: dict[str, str] = {}
        _read_global(g, name, parts, self._ctx)
        return parts[name]

    def import_part(self, module_name: str) -> str:
        """The version of a module a function body imports, as it is now."""
        return _import_version(module_name, self._ctx)


def nondeterministic_reads(fn: Callable[..., Any]) -> tuple[str, ...]:
    """What a function's body reads that changes from run to run (clock, unseeded randomness)."""
    return _code_info(inspect.unwrap(fn).__code__).nondeterministic


def _read_globals(fn: types.FunctionType, names: tuple[str, ...], parts: dict[str, str],
                  ctx: _Ctx) -> None:
    g = fn.__globals__
    for name in names:
        _read_global(g, name, parts, ctx)


def _read_global(g: Mapping[str, Any], name: str, parts: dict[str, str], ctx: _Ctx) -> None:
    if name in g:
        parts[name] = _value_version(g[name], ctx)
        return
    bi = g.get("__builtins__", builtins)
    bi = bi if isinstance(bi, dict) else vars(bi)
    parts[name] = "builtin" if name in bi else "<missing>"


def _read_imports(imports: tuple[str, ...], parts: dict[str, str], ctx: _Ctx) -> None:
    for mod_name in imports:
        parts[f"import:{mod_name}"] = _import_version(mod_name, ctx)


def _read_environment(env_names: tuple[str, ...], parts: dict[str, str],
                      fn: types.FunctionType | None = None,
                      info: _CodeInfo | None = None) -> None:
    """Environment variables the code names: constant strings in it, and (``KEY = "X"`` then
    ``os.environ[KEY]``) string constants it reads from its globals."""
    names = set(env_names)
    if fn is not None and info is not None and info.reads_env:
        g = fn.__globals__
        names.update(v for n in info.global_names
                     if type(v := g.get(n)) is str and _ENV_NAME.match(v))
    for var in sorted(names):
        parts[f"env:{var}"] = env_version(var)


def env_version(var: str) -> str:
    """The version of environment variable ``var`` as code reads it now."""
    value = os.environ.get(var)
    return "<unset>" if value is None else hash_strings(value)


def _import_version(name: str, ctx: _Ctx) -> str:
    """A module a body imports: the loaded module's in-memory code, or (not imported yet) the
    file the import would load."""
    mod = sys.modules.get(name)
    if mod is not None:
        return _value_version(mod, ctx)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return "<missing>"
    if spec is None:
        return "<missing>"
    origin = spec.origin
    if origin in (None, "built-in", "frozen") or _is_library_file(origin):
        return f"module:{name}:{_lib_version(name)}"
    try:
        with open(origin, "rb") as fh:
            return f"file:{name}:{xxhash.xxh3_128_hexdigest(fh.read())}"
    except OSError:
        return f"file:{name}:<unreadable>"


def _closure_version(fn: types.FunctionType, ctx: _Ctx) -> str:
    parts = []
    for cell in fn.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned later in the enclosing scope)
            parts.append("<empty>")
            continue
        parts.append(_value_version(contents, ctx))
    return hash_strings(*parts)


def _value_version(value: Any, ctx: _Ctx) -> str:
    """Version of something code reads: functions and classes by their code, modules by name
    (libraries) or in-memory content (the user's), everything else by its fingerprint."""
    t = type(value)
    if t in _SCALARS or t is str:
        return "value:" + fingerprint(value, ctx)
    key = id(value)
    at = ctx.active.get(key)
    if at is not None:  # recursion between helpers, a class and its methods, ...
        ctx.low = min(ctx.low, at)
        return "<cycle>"
    hit = ctx.memo.get(key)
    if hit is not None:
        return hit[1]
    depth = len(ctx.active)
    ctx.active[key] = depth
    outer_low, ctx.low = ctx.low, _NO_CYCLE
    try:
        result = _value_version_uncached(value, ctx)
    finally:
        del ctx.active[key]
        low, ctx.low = ctx.low, min(outer_low, ctx.low)
    # A result made while a recursion to an object *above* it was cut depends on where the
    # walk started: memoize only complete ones (self-recursion is complete), so a version
    # never depends on the order of a run.
    if low >= depth:
        ctx.memo[key] = (value, result)
    return result


@functools.lru_cache(maxsize=1024)
def _lib_version(module_name: str) -> str:
    """A library's version string (its top-level package's ``__version__``), else ''."""
    top = sys.modules.get(module_name.partition(".")[0])
    v = getattr(top, "__version__", None) if top is not None else None
    return v if isinstance(v, str) else ""


def _lib_name(obj: Any) -> str:
    mod = getattr(obj, "__module__", None) or ""
    if not isinstance(mod, str):
        mod = ""
    return f"lib:{mod}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}" \
           f"@{_lib_version(mod)}"


def _is_library_class(cls: type) -> bool:
    mod_name = cls.__module__
    if mod_name == "__main__":  # IPython's __main__ file is ipykernel's, in site-packages
        return False
    mod = sys.modules.get(mod_name)
    if mod is not None and _is_library_file(getattr(mod, "__file__", None)):
        return True
    prefix = cls.__qualname__ + "."
    for member in vars(cls).values():  # where its own methods were compiled says it best
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__
        if isinstance(member, types.FunctionType) and member.__qualname__.startswith(prefix):
            return _is_library_code(member.__code__)
    if mod_name == "builtins":
        # A class defined by exec() in a namespace without __name__ is "builtins" too.
        return getattr(builtins, cls.__name__, None) is cls
    if mod is None:
        return False
    if getattr(mod, "__file__", None) is None:
        return mod_name in sys.builtin_module_names or _is_library_module(mod)
    return False


def _is_library_module(mod: types.ModuleType) -> bool:
    name = mod.__name__
    if name in sys.builtin_module_names:
        return True
    f = getattr(mod, "__file__", None)
    if f:
        return _is_library_file(f)
    spec = getattr(mod, "__spec__", None)
    if spec is not None:
        if spec.origin in ("built-in", "frozen"):
            return True
        locations = list(spec.submodule_search_locations or ())
        if locations:  # a namespace package: library if all of it lives in a library folder
            return all(_is_library_file(p + os.sep) for p in locations)
    return False


def _module_version(mod: types.ModuleType, ctx: _Ctx) -> str:
    """Library and built-in modules by name and version. The user's own modules (and packages)
    by the code that is running: every function, class and constant in the module's namespace
    — so a file edited on disk but not reloaded keeps its old version, a module attribute set
    from a cell (``settings.T = 3``) counts, and re-exports and loaded submodules of a package
    count through the objects themselves.

    A module may declare its own version with ``__hamilton_nb_version__ = "..."`` (e.g. a
    logging or telemetry module whose state changes on every call).
    """
    name = mod.__name__
    declared = vars(mod).get("__hamilton_nb_version__")
    if declared is not None:
        return f"module:{name}:declared:{declared}"
    if _is_library_module(mod):
        return f"module:{name}@{_lib_version(name)}"
    parts = [name]
    for attr, member in sorted(vars(mod).items()):
        if attr.startswith("__") and attr.endswith("__"):
            # module metadata and what the interpreter adds as the module is used
            # (__warningregistry__ once a warning was raised from it): not code
            continue
        parts.append(attr)
        try:
            parts.append(_value_version(member, ctx))
        except Unhashable:
            # A lock, a connection, a generator: it has no content to version. Counting its
            # type keeps the module versionable; its state is a documented limit.
            parts.append(f"unhashable:{type(member).__qualname__}")
    return f"module:{name}:" + hash_strings(*parts)


def _singledispatch_version(fn: Any, ctx: _Ctx) -> str:
    impls = []
    for cls, impl in list(fn.registry.items()):
        impls.append(_value_version(cls, ctx) + "->" + _value_version(impl, ctx))
    return "singledispatch:" + hash_strings(*sorted(impls))


def _value_version_uncached(value: Any, ctx: _Ctx, follow: bool = True) -> str:
    if isinstance(value, types.ModuleType):
        return _module_version(value, ctx)
    if isinstance(value, functools.partial):
        return "partial:" + hash_strings(
            _value_version(value.func, ctx),
            fingerprint(value.args, ctx),
            fingerprint(value.keywords, ctx),
            fingerprint(dict(vars(value)), ctx),
        )
    if isinstance(value, types.FunctionType) and callable(getattr(value, "dispatch", None)) \
            and isinstance(getattr(value, "registry", None), Mapping):
        return _singledispatch_version(value, ctx)  # every registered implementation counts
    if isinstance(value, types.FunctionType):
        if _is_library_code(value.__code__):
            parts = [_lib_name(value)]
            wrapped = getattr(value, "__wrapped__", None)
            if wrapped is not None:  # a library decorator around user code
                parts.append(_value_version(wrapped, ctx))
            elif value.__closure__:
                parts.append(_closure_version(value, ctx))
            return "libfn:" + hash_strings(*parts)
        return _function_version(value, ctx, follow)
    if isinstance(value, types.MethodType):
        # `apply = Scaler(2).apply`: the method's code and the instance it is bound to.
        return "method:" + hash_strings(_value_version(value.__func__, ctx),
                                        fingerprint(value.__self__, ctx))
    if isinstance(value, types.BuiltinFunctionType):
        owner = value.__self__
        if owner is None or isinstance(owner, types.ModuleType):
            return _lib_name(value)
        # `lookup = MAPPING.get`: the bound object's content decides what it returns.
        return "builtin-method:" + hash_strings(value.__name__, fingerprint(owner, ctx))
    if isinstance(value, types.WrapperDescriptorType | types.MethodDescriptorType):
        return f"lib:{value.__objclass__.__qualname__}.{value.__name__}"
    if isinstance(value, types.MethodWrapperType):
        return "method-wrapper:" + hash_strings(value.__name__, fingerprint(value.__self__, ctx))
    if isinstance(value, staticmethod | classmethod):
        return f"{type(value).__name__}:" + _value_version(value.__func__, ctx)
    if isinstance(value, property):
        return "property:" + hash_strings(*(_value_version(a, ctx) if a is not None else "-"
                                            for a in (value.fget, value.fset, value.fdel)))
    if isinstance(value, type):
        if _is_library_class(value):
            return _lib_name(value)
        return _class_version(value, ctx)
    if callable(value) and type(value).__module__ == "functools" and hasattr(value,
                                                                               "__wrapped__"):
        # lru_cache/cache wrappers: what they compute is the wrapped function's business
        return f"{type(value).__name__}:" + _value_version(value.__wrapped__, ctx)
    return "value:" + fingerprint(value, ctx)  # may raise Unhashable


def _function_version(fn: types.FunctionType, ctx: _Ctx, follow: bool = True) -> str:
    """A user function as a helper: its code, defaults, closure, the globals it reads (each
    versioned the same way, transitively), the modules it imports and env variables it names."""
    info = _code_info(fn.__code__)
    parts: dict[str, str] = {"code": info.digest}
    if fn.__defaults__ or fn.__kwdefaults__:
        parts["defaults"] = fingerprint((fn.__defaults__, fn.__kwdefaults__), ctx)
    if fn.__closure__:
        parts["closure"] = _closure_version(fn, ctx)
    wrapped = getattr(fn, "__wrapped__", None)
    if follow and wrapped is not None:
        parts["wrapped"] = _value_version(wrapped, ctx)
    attrs = {k: v for k, v in vars(fn).items() if k not in _FN_ATTR_SKIP}
    if attrs:  # `helper.k = 3`: a function attribute its body (or a caller) reads
        try:
            parts["attrs"] = fingerprint(attrs, ctx)
        except Unhashable:
            parts["attrs"] = "unhashable:" + ",".join(sorted(attrs))
    _read_globals(fn, info.global_names, parts, ctx)
    _read_imports(info.imports, parts, ctx)
    _read_environment(info.env_names, parts, fn, info)
    return "fn:" + hash_strings(*(f"{k}={v}" for k, v in sorted(parts.items())))


_FN_ATTR_SKIP = {"__wrapped__", "__doc__", "__module__", "__qualname__", "__name__",
                 "__signature__", "__annotations__", "__dict__", "cache_info", "cache_clear",
                 "cache_parameters"}

_CLASS_SKIP = {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__",
               "__dataclass_fields__", "__dataclass_params__", "__match_args__",
               "__annotations__", "__orig_bases__", "__parameters__",
               # caches the interpreter adds to a class as it is used, not code: copyreg sets
               # __slotnames__ the first time an instance is pickled (stored, fingerprinted),
               # abc the registries of an ABC
               "__slotnames__", "_abc_impl", "__abstractmethods__"}


def _class_version(cls: type, ctx: _Ctx) -> str:
    """A notebook class: its bases, methods (each versioned like a helper) and class attributes.
    Not inspect.getsource: for notebook classes it reads the wrong file (or none)."""
    parts = [cls.__qualname__]
    for base in cls.__bases__:
        parts.append(_value_version(base, ctx))
    members = getattr(cls, "__members__", None) if issubclass(cls, enum.Enum) else None
    if members is not None:
        # An Enum: its members and their values (stored as the members themselves, which would
        # only lead back to the class).
        for member_name, member in members.items():
            parts.append(f"member:{member_name}")
            parts.append(fingerprint(member._value_, ctx))
    for attr, member in sorted(vars(cls).items()):
        if attr in _CLASS_SKIP:
            continue
        if members is not None and (attr in members
                                    or (attr.startswith("_") and attr.endswith("_")
                                        and not attr.startswith("__"))):
            continue
        parts.append(attr)
        try:
            parts.append(_value_version(member, ctx))
        except Unhashable:
            parts.append(f"unhashable:{type(member).__qualname__}")
    return "class:" + hash_strings(*parts)


def relevant_config(fn: Callable[..., Any], config: Mapping[str, Any]) -> list[str]:
    """Config keys Hamilton's decorators on ``fn`` read when they build its nodes."""
    if not config or not getattr(fn, "__dict__", None):
        # No config to read, or no decorator attached anything to the function (Hamilton's
        # defaults for a plain function read no config): nothing to ask Hamilton.
        return []
    from hamilton.function_modifiers import base as fm_base

    keys: set[str] = set()
    for decorators in fm_base.get_node_decorators(fn, dict(config)).values():
        for d in decorators:
            required = d.required_config()
            optional = d.optional_config() or {}
            if required is None:  # the decorator reads the whole config
                return sorted(config)
            keys.update(required)
            keys.update(optional)
    return sorted(k for k in keys if k in config)

"""Code versions and data fingerprints.

A *code version* hashes everything in code that decides a node's value: the normalized source of
its function (comments, docstrings and formatting do not count), decorator arguments, default
values and closure contents, and — resolved at every run, because an ordinary cell may change them
at any time — the helper functions (transitively) and module-level constants the function reads.

A *data version* (fingerprint) hashes a value's content *and* schema. DataFrames, numpy arrays and
pyarrow data are hashed over their native buffers with xxh3-128 without copying; everything else
falls back to ``joblib.hash``. Why not Hamilton's own fingerprinting: in 1.90 it ignores column
names and dtypes and goes through per-row pandas hashing, which is both unsafe and slow.
"""

from __future__ import annotations

import ast
import functools
import inspect
import marshal
import os
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import xxhash

#: Bump when the meaning of keys or fingerprints changes: old entries then simply miss.
FORMAT_VERSION = 1

_SMALL_CONTAINER = 1000  # longer lists/dicts are fingerprinted in one joblib.hash call


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
    return xxhash.xxh3_128_hexdigest("".join(f"{len(p)}:{p}" for p in parts).encode())


# --------------------------------------------------------------------------------------------
# Data fingerprints
# --------------------------------------------------------------------------------------------


def fingerprint(value: Any) -> str:
    """Return the data version of ``value``; raise :class:`Unhashable` when there is none."""
    h = _hasher()
    try:
        _feed(h, value)
    except Unhashable:
        raise
    except Exception as e:  # e.g. DataFrame.attrs that cannot be deep-copied by pandas
        raise Unhashable(f"a {type(value).__qualname__} value cannot be fingerprinted ({e})") from e
    return h.hexdigest()


def _tag(h: xxhash.xxh3_128, s: str) -> None:
    b = s.encode()
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)


def _feed(h: xxhash.xxh3_128, obj: Any) -> None:
    t = type(obj)
    if obj is None or t in (bool, int, float, complex):
        _tag(h, f"{t.__name__}:{obj!r}")
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
        _feed_ndarray(h, obj)
        return
    if isinstance(obj, np.generic):
        _tag(h, f"np:{obj.dtype.str}")
        h.update(obj.tobytes())
        return
    pd = sys.modules.get("pandas")  # not imported -> the value cannot be a pandas object
    if pd is not None:
        if isinstance(obj, pd.DataFrame):
            _tag(h, "DataFrame")
            _tag(h, repr(obj.shape))
            _feed_index(h, obj.columns)
            _feed_index(h, obj.index)
            for _, col in obj.items():
                _feed_values(h, col.array)
            return
        if isinstance(obj, pd.Series):
            _tag(h, "Series")
            _feed(h, obj.name)
            _feed_index(h, obj.index)
            _feed_values(h, obj.array)
            return
        if isinstance(obj, pd.Index):
            _feed_index(h, obj)
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
            _feed(h, item)
        return
    if t is dict and len(obj) <= _SMALL_CONTAINER:
        _tag(h, f"dict:{len(obj)}")
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
        return
    if t in (set, frozenset) and len(obj) <= _SMALL_CONTAINER:
        _tag(h, f"{t.__name__}:{len(obj)}")
        for fp in sorted(fingerprint(item) for item in obj):
            _tag(h, fp)
        return
    if not _is_library_class(t):
        # An instance of the user's own class: its class's code (pickle would only name it, so a
        # redefined method would collide) and its attributes.
        _tag(h, f"instance:{t.__qualname__}")
        _tag(h, _value_version(t, {}, set()))
        state = getattr(obj, "__dict__", None)
        slots = [n for c in t.__mro__ for n in getattr(c, "__slots__", ()) if hasattr(obj, n)]
        if isinstance(state, dict) or slots:
            _feed(h, dict(state or {}))
            _feed(h, {n: getattr(obj, n) for n in slots})
            return
    _tag(h, f"joblib:{t.__module__}.{t.__qualname__}")
    try:
        _tag(h, joblib.hash(obj))
    except Exception as e:  # joblib raises whatever pickling raises
        raise Unhashable(f"a {t.__qualname__} value cannot be fingerprinted ({e})") from e


def _feed_ndarray(h: xxhash.xxh3_128, arr: np.ndarray) -> None:
    _tag(h, f"ndarray:{arr.dtype.descr!r}:{arr.shape!r}")
    if isinstance(arr, np.ma.MaskedArray):
        _tag(h, "masked")
        _feed_ndarray(h, np.ma.getmaskarray(arr))
        arr = arr.data
    if arr.dtype.hasobject:
        _feed_object_array(h, arr.ravel())
        return
    if arr.dtype.kind in "Mm":  # datetime64/timedelta64 refuse the buffer protocol
        arr = arr.view(np.int64)  # the unit is in the dtype tag above
    # ascontiguousarray is a no-op (no copy) for the usual C-contiguous case.
    h.update(np.ascontiguousarray(arr).data)


def _feed_object_array(h: xxhash.xxh3_128, arr: np.ndarray) -> None:
    pd = sys.modules.get("pandas")
    if pd is not None and pd.api.types.infer_dtype(arr, skipna=False) == "string":
        # Pure str column (no None/NaN, no other types): hash it as arrow string buffers.
        import pyarrow as pa

        _tag(h, "objstr")
        _feed_arrow(h, pa.array(arr, type=pa.large_string()))
        return
    # Mixed objects: pickling keeps each element's type, so 1 and "1" differ.
    _tag(h, "objpickle")
    try:
        _tag(h, joblib.hash(arr))
    except Exception as e:
        raise Unhashable(f"an object array cannot be fingerprinted ({e})") from e


def _feed_values(h: xxhash.xxh3_128, values: Any) -> None:
    """Values of a Series/Index: a numpy array or a pandas ExtensionArray."""
    pd = sys.modules["pandas"]
    dtype = values.dtype
    _tag(h, f"{type(dtype).__name__}:{dtype!s}")
    if isinstance(values, np.ndarray):
        _feed_ndarray(h, values)
        return
    if isinstance(dtype, pd.CategoricalDtype):
        _feed_ndarray(h, values.codes)
        _feed_index(h, dtype.categories)
        _tag(h, f"ordered:{dtype.ordered}")
        return
    numpy_view = getattr(values, "_ndarray", None)  # NumpyExtensionArray, DatetimeArray, ...
    if isinstance(numpy_view, np.ndarray):
        _feed_ndarray(h, numpy_view)
        return
    if hasattr(values, "__arrow_array__"):  # arrow-backed strings (pandas 3 default), masked ints
        import pyarrow as pa

        _feed_arrow(h, pa.array(values))  # __arrow_array__: zero-copy for arrow-backed data
        return
    _feed_object_array(h, np.asarray(values, dtype=object))


def _feed_index(h: xxhash.xxh3_128, idx: Any) -> None:
    pd = sys.modules["pandas"]
    _tag(h, type(idx).__name__)
    _feed(h, list(idx.names))
    if isinstance(idx, pd.RangeIndex):
        _tag(h, f"{idx.start}:{idx.stop}:{idx.step}")
    elif isinstance(idx, pd.MultiIndex):
        for level, codes in zip(idx.levels, idx.codes, strict=True):
            _feed_index(h, level)
            _feed_ndarray(h, np.asarray(codes))
    else:
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
)


def _is_library_code(code: types.CodeType) -> bool:
    fname = code.co_filename
    if fname.startswith("<frozen"):
        return True
    return os.path.realpath(fname).startswith(_LIB_PREFIXES) if os.path.isabs(fname) else False


@dataclass(frozen=True)
class FunctionCode:
    """What is known about one function without looking at the namespace at run time."""

    static: str  # hash of normalized source, decorator-argument values, defaults, closure
    global_names: tuple[str, ...]  # bare names the body reads from its module globals
    description: str  # "function `f`" for messages


def _dump_without_docstrings(tree: ast.AST) -> str:
    """``ast.dump`` of ``tree`` as if it had no docstrings (comments and layout are never in an
    AST). The tree is edited in place and restored: copying it costs more than the dump."""
    edited: list[tuple[ast.AST, list[ast.stmt]]] = []
    for node in ast.walk(tree):
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
        return ast.dump(tree, annotate_fields=False, include_attributes=False)
    finally:
        for node, body in edited:
            node.body = body  # type: ignore[attr-defined]


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


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


def analyze_function(
    fn: Callable[..., Any],
    fdef: ast.FunctionDef | ast.AsyncFunctionDef | None = None,
    definition_ns: Mapping[str, Any] | None = None,
) -> FunctionCode:
    """Static part of a function's code version.

    ``fdef`` is the function's AST when the caller has it (a ``%%hamilton`` cell); otherwise the
    source comes from ``inspect.getsource`` (IPython keeps every cell in ``linecache``).
    ``definition_ns`` resolves names used in decorator expressions, whose values were baked in
    when the function was defined (``@parameterize(x=value(LIMIT))``).
    """
    raw = inspect.unwrap(fn)
    code = raw.__code__
    if fdef is None:
        fdef = _function_def(raw)
    h = _hasher()
    if fdef is not None:
        decorators = list(fdef.decorator_list)
        _tag(h, _dump_without_docstrings(fdef))
        body_names = {
            n.id
            for stmt in fdef.body
            for n in ast.walk(stmt)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        }
        deco_names = {
            n.id for d in decorators for n in ast.walk(d) if isinstance(n, ast.Name)
        }
    else:
        # No source (exec'd from a string): the code object is the best we have. It counts line
        # numbers, so a moved function recomputes once: a needless recompute, never a stale value.
        _tag(h, "marshal")
        h.update(marshal.dumps(code.replace(co_filename="")))
        body_names = set(code.co_names)
        deco_names = set()
    ns = definition_ns if definition_ns is not None else raw.__globals__
    for name in sorted(deco_names):
        _tag(h, name)
        _tag(h, _safe_fp(ns.get(name, _MISSING)))
    defaults = (raw.__defaults__, raw.__kwdefaults__)
    _tag(h, _safe_fp(defaults))
    for cell in raw.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # empty cell
            contents = None
        _tag(h, _value_version(contents, {}, set()))
    # Globals the body reads: bare names (AST) that the compiler also resolved as globals.
    global_names = tuple(sorted(body_names & _code_names(code)))
    return FunctionCode(h.hexdigest(), global_names, f"function `{fn.__name__}`")


_MISSING = object()


def _safe_fp(value: Any) -> str:
    if value is _MISSING:
        return "<missing>"
    try:
        return fingerprint(value)
    except Unhashable:
        # Definition-time values that cannot be fingerprinted: identity is the only safe key.
        return f"<id:{id(value)}>"


class CodeVersioner:
    """Resolves full code versions (static part + helpers/constants read now).

    One instance per run: it memoizes helper versions and constant fingerprints for the run only,
    because an ordinary cell may redefine a helper or mutate a constant between runs.
    """

    def __init__(self, static_cache: dict[types.CodeType, FunctionCode]):
        self._static = static_cache  # survives runs: code objects are immutable
        self._memo: dict[int, str] = {}

    def static(self, fn: Callable[..., Any]) -> FunctionCode:
        code = inspect.unwrap(fn).__code__
        fc = self._static.get(code)
        if fc is None:
            fc = analyze_function(fn)
            self._static[code] = fc
        return fc

    def function_version(
        self, fn: Callable[..., Any], fc: FunctionCode | None = None
    ) -> tuple[str, dict[str, str]]:
        """Full code version of a user function and its parts, for `why` explanations.

        Raises Unhashable when a constant it reads cannot be fingerprinted.
        """
        fc = fc or self.static(fn)
        raw = inspect.unwrap(fn)
        parts: dict[str, str] = {"source": fc.static}
        g = raw.__globals__
        builtins = g.get("__builtins__", {})
        for name in fc.global_names:
            if name in g:
                parts[name] = _value_version(g[name], self._memo, set(), self)
            elif name in (builtins if isinstance(builtins, dict) else vars(builtins)):
                parts[name] = "builtin"
            else:
                parts[name] = "<missing>"
        return hash_strings(*(f"{k}={v}" for k, v in sorted(parts.items()))), parts


def _value_version(
    value: Any, memo: dict[int, str], active: set[int], versioner: CodeVersioner | None = None
) -> str:
    """Version of something a function reads from its globals."""
    if isinstance(value, types.ModuleType):
        return _module_version(value)
    key = id(value)
    if key in memo:
        return memo[key]
    if key in active:  # recursion between helpers
        return "<cycle>"
    active.add(key)
    try:
        result = _value_version_uncached(value, memo, active, versioner)
    finally:
        active.discard(key)
    memo[key] = result
    return result


def _is_library_class(cls: type) -> bool:
    if cls.__module__ == "builtins":
        return True
    for member in vars(cls).values():  # where its methods were compiled says it best
        if isinstance(member, types.FunctionType):
            return _is_library_code(member.__code__)
    if cls.__module__ == "__main__":  # IPython's __main__ file is ipykernel's, in site-packages
        return False
    mod_file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return bool(mod_file) and os.path.realpath(mod_file).startswith(_LIB_PREFIXES)


def _module_version(mod: types.ModuleType) -> str:
    """Library and built-in modules by name; the user's own modules by their file's content, so
    editing ``mod.py`` (and reloading it, as %autoreload does) invalidates ``mod.f(...)``."""
    mod_file = getattr(mod, "__file__", None)
    if not mod_file or os.path.realpath(mod_file).startswith(_LIB_PREFIXES):
        return f"module:{mod.__name__}"
    try:
        with open(mod_file, "rb") as fh:
            return f"module:{mod.__name__}:{xxhash.xxh3_128_hexdigest(fh.read())}"
    except OSError:
        return f"module:{mod.__name__}:<unreadable>"


def _value_version_uncached(
    value: Any, memo: dict[int, str], active: set[int], versioner: CodeVersioner | None
) -> str:
    if isinstance(value, functools.partial):
        return "partial:" + hash_strings(
            _value_version(value.func, memo, active, versioner),
            _value_version(value.args, memo, active, versioner),
            _value_version(value.keywords, memo, active, versioner),
        )
    if isinstance(value, types.FunctionType) and _is_library_code(value.__code__):
        # before unwrapping: IPython's wrapped `open` unwraps to a builtin
        return f"lib:{value.__module__}.{value.__qualname__}"
    fn = inspect.unwrap(value) if callable(value) else value
    if isinstance(fn, types.FunctionType):
        if _is_library_code(fn.__code__):
            return f"lib:{fn.__module__}.{fn.__qualname__}"
        fc = versioner.static(fn) if versioner else analyze_function(fn)
        parts = [fc.static]
        g = fn.__globals__
        for name in fc.global_names:
            parts.append(name)
            parts.append(
                _value_version(g[name], memo, active, versioner) if name in g else "<missing>"
            )
        return "fn:" + hash_strings(*parts)
    if isinstance(value, type):
        if _is_library_class(value):
            return f"lib:{value.__module__}.{value.__qualname__}"
        # Not inspect.getsource: for notebook classes it reads the wrong file (or none).
        # The methods' code (each versioned like a helper), class attributes and bases.
        parts = [value.__qualname__]
        for base in value.__bases__:
            parts.append(_value_version(base, memo, active, versioner))
        for attr, member in sorted(vars(value).items()):
            if attr in ("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__"):
                continue
            parts.append(attr)
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            if isinstance(member, property):
                accessors = [member.fget, member.fset, member.fdel]
            else:
                accessors = [member]
            for m in accessors:
                if isinstance(m, types.FunctionType):
                    parts.append(_value_version(m, memo, active, versioner))
                else:
                    parts.append(_safe_fp(m))
        return "class:" + hash_strings(*parts)
    if isinstance(fn, types.BuiltinFunctionType) or isinstance(
        value, types.BuiltinFunctionType | types.MethodType
    ):
        return f"lib:{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
    return "value:" + fingerprint(value)  # may raise Unhashable


def relevant_config(fn: Callable[..., Any], config: Mapping[str, Any]) -> list[str]:
    """Config keys Hamilton's decorators on ``fn`` read when they build its nodes."""
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



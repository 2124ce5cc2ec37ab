"""The live DAG: ``%%hamilton`` cells -> Hamilton nodes, one graph per kernel.

Hamilton does the real work (decorators -> nodes, edges, type checks); this module adds what a
notebook needs on top: cells as units that are replaced atomically, conflicts named by cell, and
cached topological order.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import graphlib
import hashlib
import inspect
import itertools
import linecache
import logging
import operator
import struct
import types
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from hamilton import graph as h_graph
from hamilton import node as h_node
from hamilton.function_modifiers import base as fm_base
from hamilton.htypes import get_type_as_string, types_match
from hamilton.lifecycle.base import LifecycleAdapterSet

from .versions import FunctionCode, analyze_function


class CellError(Exception):
    """A ``%%hamilton`` cell cannot be registered; the message says what to fix.

    Raising it leaves the live DAG and the notebook namespace as they were.
    """


_MISSING: Any = object()  # "this name was not in the namespace"


@dataclass
class CellDef:
    """One registered ``%%hamilton`` cell."""

    cell_id: str
    body: str
    filename: str
    functions: dict[str, types.FunctionType]  # public functions -> become nodes
    fcodes: dict[types.CodeType, FunctionCode]  # static code analysis of this registration
    published: dict[str, Any]  # imports, helpers and constants the cell defines
    nodes: dict[str, h_node.Node] = field(default_factory=dict)
    jupyter_id: str | None = None  # the notebook cell that last registered it (front-end id)
    # Namespace values (or _MISSING) that executing the cell replaced: what rollback restores.
    prior: dict[str, Any] = field(default_factory=dict, repr=False)
    # The node functions' ASTs: to find a node's function called by name (see _called_nodes).
    fdefs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(
        default_factory=dict, repr=False, compare=False)
    # runner.py's per-node facts about this registration's functions (see _pure_key).
    pure: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # The compiled body and its top-level targets: re-running the same text compiles nothing.
    code: types.CodeType | None = field(default=None, repr=False, compare=False)
    targets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    # What Hamilton's resolution of the functions was made from (see _resolution_inputs);
    # None when it cannot be compared (decorators, closures): such cells always re-resolve.
    resolved_from: tuple | None = field(default=None, repr=False, compare=False)
    config_version: int = field(default=0, repr=False, compare=False)
    # True when this registration kept the previous one's nodes (nothing they came from changed)
    reused: bool = field(default=False, repr=False, compare=False)

    @property
    def frontend_id(self) -> str:
        """The id the front-end knows this cell by (docs/protocol.md ``cell_id``)."""
        return self.jupyter_id or self.cell_id

    @property
    def source_hash(self) -> str:
        """sha256 of the body with trailing whitespace stripped (docs/protocol.md)."""
        return hashlib.sha256(self.body.rstrip().encode()).hexdigest()

    @property
    def title(self) -> str:
        """The cell as a person recognises it: by the nodes it defines (its internal id, a
        notebook cell uuid, means nothing to them); a ``--name`` is shown as given."""
        names = list(self.nodes) or list(self.functions)
        named = "" if self.cell_id.startswith("cell-") or self.jupyter_id == self.cell_id \
            or (self.jupyter_id is None and len(self.cell_id) >= 32) else f" `{self.cell_id}`"
        if not names:
            first = next((ln.strip() for ln in self.body.splitlines() if ln.strip()), "")
            return f"the cell{named} starting `{first[:40]}`"
        more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
        return f"the cell{named} defining `{names[0]}`{more}"

    def before(self, ns: Mapping[str, Any], name: str) -> Any:
        """What ``name`` was in the namespace before this cell ran (``_MISSING`` if unset)."""
        return self.prior[name] if name in self.prior else ns.get(name, _MISSING)

    def rollback(self, ns: MutableMapping[str, Any]) -> None:
        """Undo executing the cell: every name it bound is as it was before."""
        _restore(ns, self.prior)
        self.prior = {}

    def commit(self, ns: MutableMapping[str, Any]) -> None:
        """Keep what the cell published; node functions do not stay as notebook variables
        (their names are for the nodes' values)."""
        _restore(ns, {k: v for k, v in self.prior.items() if k in self.functions})
        self.prior = {}


def _restore(ns: MutableMapping[str, Any], saved: Mapping[str, Any]) -> None:
    for k, v in saved.items():
        if v is _MISSING:
            ns.pop(k, None)
        else:
            ns[k] = v


_counter = itertools.count(1)


def _cell_filename(cell_id: str) -> str:
    return f"<hamilton-cell {cell_id}#{next(_counter)}>"


@contextlib.contextmanager
def _quiet_hamilton() -> Iterator[None]:
    """Hamilton logs a full traceback before raising on a rejected function; our CellError
    already says what is wrong and how to fix it, so its loggers stay quiet meanwhile.
    (``disabled`` is per logger and records propagate from children: disable each.)"""
    loggers = [
        lg for name, lg in logging.Logger.manager.loggerDict.items()
        if (name == "hamilton" or name.startswith("hamilton.")) and isinstance(lg, logging.Logger)
        and not lg.disabled
    ]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg in loggers:
            lg.disabled = False


def _top_level_targets(tree: ast.Module) -> set[str]:
    """Names a module body binds at top level (assignments, defs, imports, loops, ...)."""
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            for alias in stmt.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        else:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    names.add(n.id)
    return names


def _is_excluded(fn: Any) -> bool:
    """``@hamilton_exclude``: a helper that is not a node (Hamilton's NodeResolver says so)."""
    if not getattr(fn, "__dict__", None):
        return False  # no decorator put anything on it (most functions; checked per re-run)
    from hamilton.function_modifiers.configuration import hamilton_exclude

    resolvers = getattr(fn, fm_base.NodeResolver.get_lifecycle_name(), None) or ()
    return any(isinstance(r, hamilton_exclude) for r in resolvers)


def prepare_cell(
    cell_id: str, body: str, user_ns: MutableMapping[str, Any], config: Mapping[str, Any],
    node_names: Container[str] = (), previous: CellDef | None = None, config_version: int = 0,
) -> CellDef:
    """Execute a cell body in the notebook namespace and resolve its functions to nodes.

    The body runs like a module: compiled with exactly its own ``__future__`` flags, in one
    namespace (the notebook's), so decorators, module-level calls and annotations see every
    name defined above them. What it binds is recorded: on any error the namespace is rolled
    back here, and the caller must call :meth:`CellDef.commit` (or ``rollback``) once it has
    validated the cell against the live DAG. Raises :class:`CellError`.

    ``previous``: the registration this one replaces. When the text is the same it is not
    compiled again, and when every function Hamilton would resolve was made from the same
    things (:func:`_resolution_inputs`: code, annotations, defaults, config) its nodes are kept
    (``reused``) instead of resolved again. The body always runs: its top-level statements
    may read anything.
    """
    same_text = previous is not None and previous.code is not None and previous.body == body
    if same_text:
        assert previous is not None and previous.code is not None
        code, filename, targets = previous.code, previous.filename, previous.targets
        tree = None
    else:
        tree, code, filename = _compile_cell(cell_id, body)
        targets = frozenset(_top_level_targets(tree))
    before_keys, before_values = list(user_ns), list(user_ns.values())
    prior: dict[str, Any] = {}

    def record() -> None:
        if len(user_ns) == len(before_keys) and list(user_ns) == before_keys:
            # The same names in the same order (a re-run rebinding its own names): the ones
            # now holding another object are found in C. A loop in Python over the whole
            # namespace made every re-run cost the notebook's size.
            changed = map(operator.is_not, before_values, user_ns.values())
            for k, b in itertools.compress(zip(before_keys, before_values, strict=True),
                                           changed):
                prior.setdefault(k, b)
            return
        before = dict(zip(before_keys, before_values, strict=True))
        added = 0
        for k, v in user_ns.items():
            b = before.get(k, _MISSING)
            if b is not v:
                added += b is _MISSING
                prior.setdefault(k, b)
        if len(user_ns) - added != len(before):  # some names were deleted
            for k, v in before.items():
                if k not in user_ns:
                    prior.setdefault(k, v)

    try:
        exec(code, user_ns)  # one namespace, as in a module
    except BaseException as e:
        record()
        _restore(user_ns, prior)
        if not isinstance(e, Exception):
            raise
        raise CellError(
            f"The cell raised {type(e).__name__} while defining its functions: {e}"
            + _decorator_hint(tree or ast.parse(body), node_names)
        ) from e
    record()
    try:
        functions, published = _cell_names(filename, user_ns, prior, targets)
        made_from = _resolution_inputs(functions)
        if (same_text and previous is not None and made_from is not None
                and made_from == previous.resolved_from
                and config_version == previous.config_version):
            return CellDef(cell_id, body, filename, functions, previous.fcodes, published,
                           previous.nodes, prior=prior, fdefs=previous.fdefs, pure=previous.pure,
                           code=code, targets=targets, resolved_from=made_from,
                           config_version=config_version, reused=True)
        if tree is None:
            tree = ast.parse(body)
        cell = _resolve_cell(cell_id, body, filename, tree, user_ns, config, prior, functions,
                             published)
        cell.code, cell.targets = code, targets
        cell.resolved_from, cell.config_version = made_from, config_version
        return cell
    except BaseException:
        _restore(user_ns, prior)
        raise


def _compile_cell(cell_id: str, body: str) -> tuple[ast.Module, types.CodeType, str]:
    try:
        tree = ast.parse(body)
    except SyntaxError as e:
        raise CellError(f"Syntax error in line {e.lineno} of the cell: {e.msg}") from None
    except (ValueError, UnicodeError) as e:  # NUL bytes, lone surrogates
        raise CellError(
            f"The cell contains text Python cannot read ({e}): remove the invisible or broken "
            f"characters (often pasted in) and re-run."
        ) from None
    filename = _cell_filename(cell_id)
    lines = body.splitlines(True)
    # So tracebacks and inspect.getsource show the cell (mtime None: checkcache keeps it).
    linecache.cache[filename] = (len(body), None, lines, filename)
    try:
        # dont_inherit: only the cell's own `from __future__` lines count (not this module's
        # `annotations`, which would turn every annotation in the cell into a string).
        code = compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise CellError(f"Syntax error in line {e.lineno} of the cell: {e.msg}") from None
    return tree, code, filename


def _cell_names(
    filename: str, user_ns: Mapping[str, Any], prior: Mapping[str, Any], targets: Iterable[str],
) -> tuple[dict[str, types.FunctionType], dict[str, Any]]:
    """The cell's node functions, and what else it published (imports, helpers, constants)."""
    functions: dict[str, types.FunctionType] = {}
    published: dict[str, Any] = {}
    for name in [*prior, *(t for t in targets if t not in prior)]:
        if name not in user_ns:
            continue  # deleted by the cell, or bound only inside a comprehension
        value = user_ns[name]
        raw = None
        if isinstance(value, types.FunctionType):
            raw = inspect.unwrap(value) if hasattr(value, "__wrapped__") else value
        if (
            raw is not None
            and not name.startswith("_")
            and getattr(raw, "__code__", None) is not None
            and raw.__code__.co_filename == filename
            and not _is_excluded(value)
        ):
            functions[name] = value
        elif not name.startswith("__"):
            published[name] = value
    return functions, published


_ATOMS = (type(None), bool, int, float, complex, str, bytes)


def _resolution_inputs(functions: Mapping[str, Any]) -> tuple | None:
    """What Hamilton's resolution of plain, undecorated node functions is made from: name,
    code (compared by content), annotations, defaults and module. None when a function has
    decorators, a closure or a wrapper: their state (decorator arguments may be mutable
    objects the notebook holds) is not compared, so such cells are always resolved again.

    Defaults compare by value when they are plain atoms and by identity otherwise: a node
    kept from the last registration holds the very default object the new function has."""
    out = []
    for name, fn in functions.items():
        if type(fn) is not types.FunctionType or fn.__dict__ or fn.__closure__:
            return None
        ann = fn.__annotations__
        plain_classes = True
        for a in ann.values():
            if isinstance(a, str):
                # `from __future__ import annotations`: Hamilton evaluates the text in the
                # notebook's namespace, where the name may now be another class.
                return None
            plain_classes = plain_classes and type(a) is type
        # Classes of the plain metaclass compare by identity: a tuple of them compares in C
        # (most node functions: `-> int`, `: pd.DataFrame`); anything else through the
        # careful comparison of _Annotations.
        anns = tuple(ann.items()) if plain_classes else _Annotations(ann)
        d, kwd = fn.__defaults__, fn.__kwdefaults__
        defaults = tuple(_default_token(v) for v in d) if d else ()
        kwdefaults = tuple(sorted((k, _default_token(v)) for k, v in kwd.items())) if kwd \
            else ()
        out.append((name, fn.__code__, fn.__module__, fn.__qualname__, anns, defaults,
                    kwdefaults))
    return tuple(out)


def _default_token(v: Any) -> tuple[str, Any]:
    if type(v) is float:
        # By bits: 0.0 == -0.0 and repr(-nan) == "nan", yet functions defaulting to either of
        # a pair return different things.
        return ("=", (float, struct.pack("<d", v)))
    if type(v) is complex:
        return ("=", (complex, struct.pack("<dd", v.real, v.imag)))
    if type(v) in _ATOMS:
        return ("=", (type(v), v))
    return ("is", _Same(v))


class _Same:
    """Equal only to the very same object (a mutable default, a class)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    __hash__ = None  # type: ignore[assignment]


class _Annotations:
    """A function's annotations: types are compared as Python compares them (``list[int]``
    by content, classes by identity); anything whose comparison fails counts as changed."""

    __slots__ = ("items",)

    def __init__(self, ann: Mapping[str, Any]) -> None:
        self.items = tuple(ann.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Annotations) or len(other.items) != len(self.items):
            return False
        for (k1, a), (k2, b) in zip(self.items, other.items, strict=True):
            if k1 != k2:
                return False
            if a is b:
                continue
            try:
                if type(a) is not type(b) or not bool(a == b):
                    return False
            except Exception:  # an annotation whose == is not a plain bool (arrays in metadata)
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


def _decorator_hint(tree: ast.Module, node_names: Container[str]) -> str:
    """`@mutate(data_1)` names a node function that another cell defined: in a module that is
    the function, in a notebook the name holds the node's value."""
    own = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for fdef in tree.body:
        if not isinstance(fdef, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in fdef.decorator_list:
            for n in ast.walk(deco):
                if isinstance(n, ast.Name) and n.id in node_names and n.id not in own:
                    return (
                        f". `{fdef.name}`'s decorator names `{n.id}`, a node another cell "
                        f"defines: in a notebook that name holds the node's value, not its "
                        f"function. Put `{fdef.name}` in the same cell as `{n.id}`."
                    )
    return ""


def _resolve_cell(cell_id, body, filename, tree, user_ns, config, prior, functions,
                  published) -> CellDef:
    # Every def of the cell (nested ones too: `scaled = _make(2)` returns an inner function),
    # by name and first line, to find the AST of exactly the function each name holds.
    fdefs_at = {
        (n.name, min([n.lineno, *(d.lineno for d in n.decorator_list)])): n
        for n in _function_defs(tree)
    }
    fcodes: dict[types.CodeType, FunctionCode] = {}
    fdefs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for name, fn in functions.items():
        code = inspect.unwrap(fn).__code__
        fdef = fdefs_at.get((code.co_name, code.co_firstlineno))
        if fdef is not None:
            fdefs[name] = fdef
        fcodes[code] = analyze_function(fn, fdef, user_ns)
    cell = CellDef(cell_id, body, filename, functions, fcodes, published, prior=prior,
                   fdefs=fdefs)
    cell.nodes = resolve_cell_nodes(cell, config)
    return cell


def _cache_tagged(n: h_node.Node) -> bool:
    """Whether ``n``'s tags change how it is cached: ``@cache(behavior=..., format=...)`` or
    a Hamilton data loader (runner.py reads those tags; every other node is cached the
    default way)."""
    tags = n.tags
    return "cache.behavior" in tags or "cache.format" in tags or "hamilton.data_loader" in tags


def _function_defs(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every ``def`` in ``tree``, nested ones too, visiting statements only: a def cannot sit
    inside an expression (a lambda is not one), and expressions are most of a cell's AST."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            sub = getattr(node, name, None)
            if isinstance(sub, list):
                todo.extend(s for s in sub if isinstance(s, ast.stmt | ast.excepthandler
                                                         | ast.match_case))


def resolve_cell_nodes(cell: CellDef, config: Mapping[str, Any]) -> dict[str, h_node.Node]:
    """Hamilton's decorator resolution for every function of the cell."""
    nodes: dict[str, h_node.Node] = {}
    with _quiet_hamilton():
        for fname, fn in cell.functions.items():
            _resolve_function(fname, fn, config, nodes)
    return nodes


def _resolve_function(
    fname: str, fn: Any, config: Mapping[str, Any], nodes: dict[str, h_node.Node]
) -> None:
    _check_signature(fname, fn)
    try:
        resolved = fm_base.resolve_nodes(fn, dict(config))
    except Exception as e:  # Hamilton raises plain exceptions for decorator misuse
        hint = (
            " Every node function needs type hints on its parameters and its return value; "
            "prefix a helper's name with `_` (or mark it `@hamilton_exclude`) to keep it "
            "out of the DAG." if "type hint" in str(e) else ""
        )
        raise CellError(f"Hamilton cannot turn `{fname}` into nodes: {e}{hint}") from None
    _check_node_function(fname, fn, resolved)
    for n in resolved:
        if n.name in config:  # Hamilton's rule: config values override nodes
            continue
        if n.name in nodes:
            raise CellError(f"Node `{n.name}` is defined twice in this cell.")
        nodes[n.name] = n


def _check_node_function(fname: str, fn: Any, resolved: Iterable[h_node.Node]) -> None:
    """Refuse node functions a notebook cannot run as a Hamilton driver would (with the fix)."""
    raw = inspect.unwrap(fn)
    resolved = list(resolved)
    if inspect.iscoroutinefunction(raw) or inspect.isasyncgenfunction(raw):
        raise CellError(
            f"`{fname}` is `async def`: hamilton_nb runs nodes synchronously, so it would bind an "
            f"un-awaited coroutine. Make it a plain `def` (do the async work in a helper run "
            f"with your own event loop), or prefix it with `_` if it is not a node."
        )
    expands = any(n.node_role == h_node.NodeType.EXPAND for n in resolved)
    if inspect.isgeneratorfunction(raw) and not expands:
        raise CellError(
            f"`{fname}` is a generator (it uses `yield`): its value would be a one-shot "
            f"generator, not data. Return a list (`return list(...)`), or annotate it "
            f"`-> Parallelizable[...]` for a fan-out."
        )


def _check_signature(fname: str, fn: Any) -> None:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is not None and not code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return  # the common case, without building a Signature (a cell re-runs this often)
    try:
        params = inspect.signature(inspect.unwrap(fn)).parameters.values()
    except (TypeError, ValueError):
        return
    var = [p.name for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if var:
        stars = ", ".join(f"`{v}`" for v in var)
        raise CellError(
            f"`{fname}` takes {stars} as *args/**kwargs: Hamilton would look for a node called "
            f"{stars}. Name each input as a parameter (`def {fname}(a: int, b: int)`), or use "
            f"`@inject(...)`/`@does(...)` to gather several nodes."
        )


@functools.lru_cache(maxsize=8192)
def _code_names(code: types.CodeType) -> frozenset[str]:
    """Every name a code object (and code nested in it) uses. Keyed by the code object, which
    compares by content; a re-run of an unchanged cell has the very same ones."""
    names = set(code.co_names)
    todo = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    while todo:
        c = todo.pop()
        names.update(c.co_names)
        todo.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
    return frozenset(names)


def _called_nodes(cell: CellDef, is_node: Callable[[str], bool]) -> None:
    """A node function calling another node's function by name works in a module (the name
    is the function) but not in a notebook, where the name holds the node's *value*."""
    for fname, fn in cell.functions.items():
        names = _code_names(inspect.unwrap(fn).__code__)
        # Cheap first: does the code read a node's name as a global at all? Only then look for
        # a call in the AST (reading a node's name as a global value is a different matter).
        suspects = {n for n in names if n != fname and is_node(n)}
        fdef = cell.fdefs.get(fname)
        if not suspects or fdef is None:
            continue
        called = {
            n.func.id for stmt in fdef.body for n in ast.walk(stmt)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        bad = sorted(called & suspects)
        if bad:
            b = bad[0]
            raise CellError(
                f"`{fname}` calls `{b}()`, but `{b}` is a node: in a notebook the name `{b}` "
                f"holds the node's value, not its function. Take `{b}` as a parameter to use "
                f"its value (`def {fname}({b}: ...)`), or move the shared logic into a helper "
                f"`_{b}` that both functions call."
            )


_SHAPES = itertools.count(1)  # LiveDag.shape_version: unique in the process


class LiveDag:
    """Cells and the Hamilton graph made of all their nodes.

    Registering a cell is incremental: only the cell's nodes and their direct neighbours are
    validated and re-linked (Hamilton's ``update_dependencies`` re-copies every node of the
    graph, which made each cell re-run O(notebook)). The nodes are Hamilton ``Node`` objects
    linked as Hamilton links them (``dependencies`` / ``depended_on_by``); they are this
    DAG's own copies, so re-linking them in place is safe. Everything is validated before
    anything is changed, so a failing cell leaves the DAG as it was.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.cells: dict[str, CellDef] = {}
        self.config: dict[str, Any] = dict(config or {})
        self.nodes: dict[str, h_node.Node] = {}
        self.node_cell: dict[str, str] = {}
        # Dependency names: Hamilton's Node.name is a property, and the all-hit path reads
        # these thousands of times.
        self.deps: dict[str, tuple[str, ...]] = {}
        self._fcodes: dict[types.CodeType, FunctionCode] = {}
        self._order: list[str] | None = []
        self._pos: dict[str, int] | None = None
        self._pos_of: list[str] | None = None
        # Names of external input nodes (Hamilton's Node.user_defined is a slow property).
        self.inputs: set[str] = set()
        self.expands: set[str] = set()  # Parallelizable nodes (fan_out() is free without any)
        # Nodes whose tags change how they are cached (a cache behaviour, a data loader): the
        # run's plan reads the tags of these only.
        self.tagged: set[str] = set()
        self.config_version = 0  # counts config changes (a kept registration must match it)
        # Changes whenever nodes or their dependencies may have (never the same number twice,
        # a cleared DAG included): what is worked out from the shape alone is kept under it.
        self.shape_version = next(_SHAPES)
        self._upstream_memo: dict[tuple[str, ...], tuple[str, ...]] = {}
        if self.config:
            self._set_all({}, self.config)  # config keys are input nodes, as in Hamilton

    # -- building -----------------------------------------------------------------------------

    def _build(
        self, cells: Mapping[str, CellDef], config: Mapping[str, Any]
    ) -> tuple[dict[str, h_node.Node], dict[str, str]]:
        """Link every node of ``cells`` from scratch (restore, config change)."""
        nodes: dict[str, h_node.Node] = {}
        node_cell: dict[str, str] = {}
        for cell in cells.values():
            for name, n in cell.nodes.items():
                if name in nodes:
                    raise _conflict(name, cells[node_cell[name]])
                nodes[name] = n
                node_cell[name] = cell.cell_id
        try:
            nodes = h_graph.update_dependencies(nodes, LifecycleAdapterSet())
        except ValueError as e:  # Hamilton's edge type check
            raise CellError(f"Hamilton rejects the DAG: {e}") from None
        for key in config:
            if key not in nodes:
                nodes[key] = h_node.Node(key, Any, node_source=h_node.NodeType.EXTERNAL)
        _topological(nodes, {k: tuple(d.name for d in n.dependencies) for k, n in nodes.items()},
                     lambda n: cells[node_cell[n]].title if n in node_cell else None)
        return nodes, node_cell

    def _set_all(self, cells: dict[str, CellDef], config: Mapping[str, Any]) -> None:
        nodes, node_cell = self._build(cells, config)
        self.nodes, self.node_cell, self.cells = nodes, node_cell, cells
        self.config = dict(config)
        self.config_version += 1
        self.deps = {k: tuple(d.name for d in n.dependencies) for k, n in nodes.items()}
        self.inputs = {k for k, n in nodes.items() if n.user_defined}
        self.expands = {k for k, n in nodes.items() if n.node_role == h_node.NodeType.EXPAND}
        self.tagged = {k for k, n in nodes.items() if _cache_tagged(n)}
        self._fcodes = {code: fc for c in cells.values() for code, fc in c.fcodes.items()}
        self._order = None
        self._reshaped()

    def _reshaped(self) -> None:
        self.shape_version = next(_SHAPES)
        self._upstream_memo = {}

    def add_cell(self, cell: CellDef, require: Iterable[str] = ()) -> None:
        """Register (or replace) a cell atomically: on error nothing changes.

        ``require``: node names that must exist afterwards (a cell's ``--outputs``).
        Costs work proportional to the cell and its neighbours, not to the DAG.
        """
        old = self.cells.get(cell.cell_id)
        # A re-run that kept its predecessor's nodes (prepare_cell): nothing to validate or
        # link but whether its functions now call a node by name.
        kept = old is not None and cell.reused and cell.nodes is old.nodes
        if kept:
            nodes = self.nodes
            _called_nodes(cell, lambda n: n in cell.nodes or (
                n in nodes and not nodes[n].user_defined))
            plan: dict[str, Any] = {}
        else:
            plan = self._plan(cell, old)
        missing = [n for n in require if n not in cell.nodes and not (
            n in self.nodes and (old is None or n not in old.nodes))]
        if missing:
            known = sorted({*self.nodes, *cell.nodes} - (set(old.nodes) - set(cell.nodes)
                                                         if old else set()))
            raise CellError(
                f"Unknown output(s): {', '.join(missing)}. Nodes in the live DAG with this "
                f"cell: {', '.join(known) or 'none'}."
            )
        if kept:
            self.cells = {**self.cells, cell.cell_id: cell}
        else:
            self._apply(cell, old, plan)

    def _plan(self, cell: CellDef, old: CellDef | None) -> dict[str, Any]:
        """Validate replacing ``old`` by ``cell``; return the input-node types to use."""
        gone = set(old.nodes) if old else set()
        new = cell.nodes
        for name in new:
            owner = self.node_cell.get(name)
            if owner is not None and owner != cell.cell_id:
                raise _conflict(name, self.cells[owner])
        nodes = self.nodes
        _called_nodes(cell, lambda n: n in new or (
            n in nodes and n not in gone and not nodes[n].user_defined))

        def target(name: str) -> h_node.Node | None:
            if name in new:
                return new[name]
            if name in gone:
                return None
            n = self.nodes.get(name)
            return None if n is None or n.user_defined else n

        # Edges out of the cell's nodes.
        inputs: dict[str, list[tuple[str, Any]]] = {}
        for name, n in new.items():
            for p, (ptype, _) in n.input_types.items():
                t = target(p)
                if t is None:
                    inputs.setdefault(p, []).append((name, ptype))
                elif not types_match(ptype, t.type):
                    raise _type_error(name, p, ptype, t.type)
        # Edges into the cell's nodes (and into names it stopped defining) from other cells.
        for name in {*new, *gone}:
            old_node = self.nodes.get(name)
            for u in (old_node.depended_on_by if old_node is not None else ()):
                uname = u.name
                if uname in gone:
                    continue
                ptype = u.input_types[name][0]
                t = target(name)
                if t is None:
                    inputs.setdefault(name, []).append((uname, ptype))
                elif not types_match(ptype, t.type):
                    raise _type_error(uname, name, ptype, t.type)
        # Inputs: every consumer must agree, as Hamilton's add_dependency requires.
        input_types: dict[str, Any] = {}
        for p in inputs:
            consumers = [(u.name, u.input_types[p][0]) for u in (
                self.nodes[p].depended_on_by if p in self.nodes else ())
                if u.name not in gone and u.name not in new]
            seen = {c for c, _ in consumers}
            consumers += [(c, t) for c, t in inputs[p] if c not in seen]
            typ = consumers[0][1]
            for c, t in consumers[1:]:
                if types_match(t, typ):
                    continue
                if not types_match(typ, t):
                    raise CellError(
                        f"Hamilton rejects the DAG: `{c}` and another function need input "
                        f"`{p}` with incompatible types ({get_type_as_string(t)} vs "
                        f"{get_type_as_string(typ)}). Make the annotations agree."
                    )
                typ = t  # the tighter of the two, as Hamilton does
            input_types[p] = typ
        self._check_cycle(cell, gone)
        return input_types

    def _check_cycle(self, cell: CellDef, gone: set[str]) -> None:
        """A new cycle must go through one of the cell's nodes: walk downstream from them."""
        new = cell.nodes
        if not new:
            return
        old = self.cells.get(cell.cell_id)
        if old is not None and _shape(old) == _shape(cell):
            return  # same nodes with the same inputs: the graph's shape did not change
        readers: dict[str, list[str]] = {}  # name -> the cell's nodes that read it
        for m, n in new.items():
            for p in n.input_types:
                readers.setdefault(p, []).append(m)
        nodes = self.nodes

        def downstream(name: str) -> Iterable[str]:
            n = nodes.get(name) if name not in gone or name in new else None
            out = [u.name for u in n.depended_on_by] if n is not None else []
            if gone:
                out = [u for u in out if u not in gone]
            return out + readers.get(name, [])

        # Any path new -> ... -> x with x a dependency of a new node closes a cycle; so does
        # a cycle among the cell's own nodes. Coloured DFS finds both.
        state: dict[str, int] = {}
        stack_path: list[str] = []

        def visit(start: str) -> None:
            stack = [(start, iter(downstream(start)))]
            state[start] = 1
            stack_path.append(start)
            while stack:
                name, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    stack_path.pop()
                    state[name] = 2
                    continue
                s = state.get(nxt, 0)
                if s == 1:
                    cyc = [*stack_path[stack_path.index(nxt):], nxt]
                    raise CellError(
                        f"This would make a dependency cycle: {' -> '.join(reversed(cyc))}. "
                        f"Nodes: {', '.join(f'`{c}`' for c in dict.fromkeys(cyc))}."
                    )
                if s == 0:
                    state[nxt] = 1
                    stack_path.append(nxt)
                    stack.append((nxt, iter(downstream(nxt))))

        for name in new:
            if state.get(name, 0) == 0:
                visit(name)

    def _apply(self, cell: CellDef, old: CellDef | None, input_types: dict[str, Any]) -> None:
        """Re-link in place (cannot fail: everything was validated by _plan)."""
        nodes = self.nodes
        gone = set(old.nodes) if old else set()
        # The cell's nodes were resolved for this registration alone: link them as they are.
        new = dict(cell.nodes)
        # Who pointed at the names being replaced (other cells' nodes).
        dependants: dict[str, list[h_node.Node]] = {}
        for name in {*gone, *new}:
            old_node = nodes.get(name)
            if old_node is not None:
                dependants[name] = [u for u in old_node.depended_on_by if u.name not in gone]
        # Unlink the old nodes from their dependencies.
        for name in gone:
            o = nodes.pop(name)
            for d in o.dependencies:
                d._depended_on_by = [x for x in d.depended_on_by if x is not o]
            self.node_cell.pop(name, None)
            self.deps.pop(name, None)
        for name in new:
            old_input = nodes.pop(name, None)  # an external input the cell now defines
            if old_input is not None:
                self.deps.pop(name, None)
                self.inputs.discard(name)
        nodes.update(new)
        self.expands.difference_update(gone)
        self.expands.update(k for k, n in new.items() if n.node_role == h_node.NodeType.EXPAND)
        self.tagged.difference_update(gone)
        self.tagged.update(k for k, n in new.items() if _cache_tagged(n))
        for name in new:
            self.node_cell[name] = cell.cell_id

        created: list[str] = []  # input nodes made for the cell's parameters

        def resolve(p: str) -> h_node.Node:
            t = nodes.get(p)
            if t is None:
                t = nodes[p] = h_node.Node(p, input_types.get(p, Any),
                                           node_source=h_node.NodeType.EXTERNAL)
                self.deps[p] = ()
                self.inputs.add(p)
                created.append(p)
            elif t.user_defined and p in input_types and t.type != input_types[p]:
                t.set_type(input_types[p])
            return t

        for name, n in new.items():
            deps = []
            for p in n.input_types:
                t = resolve(p)
                n._dependencies.append(t)
                t._depended_on_by.append(n)
                deps.append(p)
            self.deps[name] = tuple(deps)
        # Re-point other cells' nodes at the new node (or at an input node).
        for name, users in dependants.items():
            t = resolve(name)
            for u in users:
                u._dependencies = [t if d.name == name else d for d in u.dependencies]
                if all(x is not u for x in t.depended_on_by):
                    t._depended_on_by.append(u)
        # Input nodes nobody reads any more go (config keys stay, as Hamilton keeps them).
        for name in list(gone):
            if name not in new and name in nodes and not nodes[name].depended_on_by \
                    and name not in self.config:
                del nodes[name]
                self.deps.pop(name, None)
                self.inputs.discard(name)
        for o in (old.nodes.values() if old else ()):
            for p in o.input_types:
                t = nodes.get(p)
                if (t is not None and t.user_defined and not t.depended_on_by
                        and p not in self.config):
                    del nodes[p]
                    self.deps.pop(p, None)
                    self.inputs.discard(p)
        if old is not None:
            for code, fc in old.fcodes.items():
                if self._fcodes.get(code) is fc:  # equal code in another cell keeps its entry
                    del self._fcodes[code]
        self._fcodes.update(cell.fcodes)
        self.cells = {**self.cells, cell.cell_id: cell}
        if old is None or _shape(old) != _shape(cell):
            self._reshaped()  # (the same names reading the same inputs: the same shape)
        if old is None and self._order is not None and not any(n in dependants
                                                               for n in new):
            # A new cell nothing depended on yet (the usual: cells added at the end): the
            # order so far stays right, with its new inputs and then its nodes after it.
            added = [*created, *self.order_of(new)]
            start = len(self._order)
            self._order.extend(added)
            if self._pos is not None and self._pos_of is self._order:
                self._pos.update((n, start + i) for i, n in enumerate(added))
        elif old is None or _shape(old) != _shape(cell):
            self._order = None  # same nodes with the same inputs keep their order

    def add_cells(self, new: Iterable[CellDef]) -> None:
        """Register (or replace) several cells with one graph build (checkpoint restore);
        atomic like :meth:`add_cell`."""
        cells = dict(self.cells)
        for cell in new:
            cells[cell.cell_id] = cell
        self._set_all(cells, self.config)

    def remove_cell(self, cell_id: str) -> CellDef:
        cell = self.cells[cell_id]
        empty = dataclasses.replace(cell, nodes={}, functions={}, fcodes={}, fdefs={})
        self._apply(empty, cell, self._plan(empty, cell))
        cells = dict(self.cells)
        del cells[cell_id]
        self.cells = cells
        return cell

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Re-resolve every cell with a new Hamilton config (``@config.when`` etc.)."""
        resolved = {cid: resolve_cell_nodes(c, config) for cid, c in self.cells.items()}
        cells = {cid: dataclasses.replace(c, nodes=resolved[cid], pure={})  # nodes may differ
                 for cid, c in self.cells.items()}
        self._set_all(cells, config)

    def clear(self) -> None:
        self.__init__(self.config)  # type: ignore[misc]

    # -- queries ------------------------------------------------------------------------------

    @property
    def graph(self) -> h_graph.FunctionGraph:
        """The whole DAG as a Hamilton ``FunctionGraph`` (built on request)."""
        return h_graph.FunctionGraph(self.nodes, dict(self.config))

    def cell_of(self, name: str) -> CellDef | None:
        cid = self.node_cell.get(name)
        return self.cells.get(cid) if cid else None

    def fcode(self, fn: types.FunctionType) -> FunctionCode | None:
        return self._fcodes.get(inspect.unwrap(fn).__code__)

    def find_cell_for(self, names: Iterable[str]) -> list[str]:
        """Cells that define any of ``names`` (fallback cell identity with no cell id)."""
        names = set(names)
        return [cid for cid, c in self.cells.items() if names & (set(c.nodes) | set(c.functions))]

    def dependants(self, name: str) -> list[str]:
        """The nodes that take ``name`` as an input (none if it is not in the DAG)."""
        n = self.nodes.get(name)
        return [u.name for u in n.depended_on_by] if n is not None else []

    def upstream_all(self, outputs: tuple[str, ...]) -> tuple[str, ...]:
        """``upstream(outputs)``, kept while the DAG's shape is the same (the front-ends ask for
        the upstream a run reused after every run; a chain's middle cell reuses hundreds)."""
        memo = self._upstream_memo
        found = memo.get(outputs)
        if found is None:
            if len(memo) >= 64:
                memo.clear()
            found = memo[outputs] = tuple(self.upstream(outputs))
        return found

    def upstream(self, outputs: Iterable[str],
                 stop_at: Iterable[str] | Container[str] = ()) -> list[str]:
        """Everything ``outputs`` need, in topological order; ``stop_at`` nodes are leaves.

        Work proportional to what is needed (a depth-first post-order), not to the DAG."""
        # Any container will do (a run passes a view of remembered keys: no copy of them).
        stop = stop_at if isinstance(stop_at, Container) else set(stop_at)
        deps = self.deps
        done: set[str] = set()
        order: list[str] = []
        for out in outputs:
            if out in done:
                continue
            stack = [(out, iter(() if out in stop else deps[out]))]
            done.add(out)
            while stack:
                name, it = stack[-1]
                for d in it:
                    if d not in done:
                        done.add(d)
                        stack.append((d, iter(() if d in stop else deps[d])))
                        break
                else:
                    stack.pop()
                    order.append(name)
        return order

    def fan_out(self, names: Iterable[str]) -> dict[str, str]:
        """Those of ``names`` that run once per item of a ``Parallelizable`` (inside its block:
        downstream of it, before a ``Collect``), each with the Parallelizable's name."""
        if not self.expands:
            return {}
        out: dict[str, str] = {}
        for name in names:
            if self.nodes[name].node_role == h_node.NodeType.COLLECT:
                continue  # its value is the gathered list: outside the block
            seen, todo = set(), [name]
            while todo:
                x = todo.pop()
                if x in seen:
                    continue
                seen.add(x)
                role = self.nodes[x].node_role
                if role == h_node.NodeType.EXPAND:
                    out[name] = x
                    break
                if role != h_node.NodeType.COLLECT or x == name:
                    todo.extend(self.deps[x])
        return out

    def collector(self, name: str) -> str | None:
        """The ``Collect`` node that gathers what ``name`` (inside a block) produces, if any."""
        seen, todo = set(), [name]
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            if x != name and self.nodes[x].node_role == h_node.NodeType.COLLECT:
                return x
            todo.extend(u.name for u in self.nodes[x].depended_on_by)
        return None

    def order_of(self, names: Iterable[str]) -> list[str]:
        """``names`` in a topological order among themselves (work proportional to them)."""
        names = list(dict.fromkeys(names))
        inside = set(names)
        done: set[str] = set()
        order: list[str] = []
        for start in names:
            if start in done:
                continue
            done.add(start)
            stack = [(start, iter([d for d in self.deps[start] if d in inside]))]
            while stack:
                name, it = stack[-1]
                for d in it:
                    if d not in done:
                        done.add(d)
                        stack.append((d, iter([x for x in self.deps[d] if x in inside])))
                        break
                else:
                    stack.pop()
                    order.append(name)
        return order

    def position(self) -> dict[str, int]:
        """Each node's index in :attr:`order` (recomputed when the order is)."""
        if self._order is None:
            self.order  # noqa: B018  (computes it)
        if self._pos is None or self._pos_of is not self._order:
            self._pos = {n: i for i, n in enumerate(self._order or ())}
            self._pos_of = self._order
        return self._pos

    @property
    def order(self) -> list[str]:
        """Every node in a topological order (computed when the DAG changed)."""
        if self._order is None:
            self._order = _topological(self.nodes, self.deps, lambda n: None)
        return list(self._order)


def _shape(cell: CellDef) -> dict[str, tuple[str, ...]]:
    return {name: tuple(n.input_types) for name, n in cell.nodes.items()}


def _conflict(name: str, other: CellDef) -> CellError:
    return CellError(
        f"Node `{name}` is already defined by {other.title}. Rename one of "
        f"them, or remove it from that cell and re-run that cell first."
    )


def _type_error(user: str, param: str, want: Any, have: Any) -> CellError:
    return CellError(
        f"Hamilton rejects the DAG (types do not match): `{user}` expects `{param}` to be "
        f"{get_type_as_string(want)}, but node `{param}` returns {get_type_as_string(have)}. "
        f"Make the annotations agree."
    )


def _topological(
    nodes: Mapping[str, Any], deps: Mapping[str, Iterable[str]], where: Callable[[str], Any]
) -> list[str]:
    sorter = graphlib.TopologicalSorter({name: list(deps[name]) for name in nodes})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as e:
        cycle = e.args[1]
        titles = ", ".join(f"`{n}` ({t})" for n in dict.fromkeys(cycle) if (t := where(n)))
        raise CellError(
            f"This would make a dependency cycle: {' -> '.join(cycle)}. Nodes: {titles}."
        ) from None

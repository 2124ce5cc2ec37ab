"""The live DAG: ``%%hamilton`` cells -> Hamilton nodes, one graph per kernel.

Hamilton does the real work (decorators -> nodes, edges, type checks); this module adds what a
notebook needs on top: cells as units that are replaced atomically, conflicts named by cell, and
cached topological order.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import graphlib
import hashlib
import inspect
import itertools
import linecache
import logging
import types
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from hamilton import graph as h_graph
from hamilton import node as h_node
from hamilton.function_modifiers import base as fm_base
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
    # Per node function: global names it calls, e.g. `a()` (a node's name there is a mistake).
    global_calls: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

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
        first = next((ln.strip() for ln in self.body.splitlines() if ln.strip()), "")
        return f"cell {self.cell_id} ({first[:40]})"

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
    from hamilton.function_modifiers.configuration import hamilton_exclude

    resolvers = getattr(fn, fm_base.NodeResolver.get_lifecycle_name(), None) or ()
    return any(isinstance(r, hamilton_exclude) for r in resolvers)


def prepare_cell(
    cell_id: str, body: str, user_ns: MutableMapping[str, Any], config: Mapping[str, Any]
) -> CellDef:
    """Execute a cell body in the notebook namespace and resolve its functions to nodes.

    The body runs like a module: compiled with exactly its own ``__future__`` flags, in one
    namespace (the notebook's), so decorators, module-level calls and annotations see every
    name defined above them. What it binds is recorded: on any error the namespace is rolled
    back here, and the caller must call :meth:`CellDef.commit` (or ``rollback``) once it has
    validated the cell against the live DAG. Raises :class:`CellError`.
    """
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
    before = dict(user_ns)
    targets = _top_level_targets(tree)
    prior: dict[str, Any] = {}

    def record() -> None:
        for k, v in user_ns.items():
            if k in before:
                if before[k] is not v:
                    prior.setdefault(k, before[k])
            else:
                prior.setdefault(k, _MISSING)
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
        ) from e
    record()
    try:
        return _resolve_cell(cell_id, body, filename, tree, user_ns, config, prior, targets)
    except BaseException:
        _restore(user_ns, prior)
        raise


def _resolve_cell(cell_id, body, filename, tree, user_ns, config, prior, targets) -> CellDef:
    fdefs = {
        n.name: n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    functions: dict[str, types.FunctionType] = {}
    published: dict[str, Any] = {}
    for name in [*prior, *(t for t in targets if t not in prior)]:
        if name not in user_ns:
            continue  # deleted by the cell, or bound only inside a comprehension
        value = user_ns[name]
        raw = inspect.unwrap(value) if inspect.isfunction(value) else None
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
    fcodes: dict[types.CodeType, FunctionCode] = {}
    for name, fn in functions.items():
        fcodes[inspect.unwrap(fn).__code__] = analyze_function(fn, fdefs.get(name), user_ns)
    cell = CellDef(cell_id, body, filename, functions, fcodes, published, prior=prior,
                   global_calls={n: _global_calls(f, fdefs.get(n)) for n, f in functions.items()})
    cell.nodes = resolve_cell_nodes(cell, config)
    return cell


def resolve_cell_nodes(cell: CellDef, config: Mapping[str, Any]) -> dict[str, h_node.Node]:
    """Hamilton's decorator resolution for every function of the cell."""
    nodes: dict[str, h_node.Node] = {}
    for fname, fn in cell.functions.items():
        _check_signature(fname, fn)
        try:
            with _quiet_hamilton():
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
            if n.node_role in (h_node.NodeType.EXPAND, h_node.NodeType.COLLECT):
                raise CellError(
                    f"`{fname}` uses Parallelizable/Collect, which needs Hamilton's task-based "
                    f"executor; hamilton_nb runs nodes one by one. Build those steps with a "
                    f"plain driver (`%hamilton export` writes the module), or return a list."
                )
            if n.name in nodes:
                raise CellError(f"Node `{n.name}` is defined twice in this cell.")
            nodes[n.name] = n
    return nodes


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


def _global_calls(fn: Any, fdef: ast.FunctionDef | ast.AsyncFunctionDef | None) -> frozenset[str]:
    """Global names ``fn`` calls as functions (``name(...)``), from its AST."""
    if fdef is None:
        return frozenset()
    code = inspect.unwrap(fn).__code__
    globals_read = set(code.co_names)
    todo = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    while todo:
        c = todo.pop()
        globals_read |= set(c.co_names)
        todo.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
    called = {
        n.func.id for stmt in fdef.body for n in ast.walk(stmt)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    return frozenset(called & globals_read)


def _called_nodes(cell: CellDef, node_names: Mapping[str, Any]) -> None:
    """A node function calling another node's function by name works in a module (the name
    is the function) but not in a notebook, where the name holds the node's *value*."""
    for fname, calls in cell.global_calls.items():
        bad = sorted(n for n in calls if n in node_names and n != fname)
        if bad:
            b = bad[0]
            raise CellError(
                f"`{fname}` calls `{b}()`, but `{b}` is a node: in a notebook the name `{b}` "
                f"holds the node's value, not its function. Take `{b}` as a parameter to use "
                f"its value (`def {fname}({b}: ...)`), or move the shared logic into a helper "
                f"`_{b}` that both functions call."
            )


class LiveDag:
    """Cells and the Hamilton graph made of all their nodes."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.cells: dict[str, CellDef] = {}
        self.config: dict[str, Any] = dict(config or {})
        self.graph = h_graph.FunctionGraph({}, self.config)
        self.node_cell: dict[str, str] = {}
        self._order: list[str] = []
        self.deps: dict[str, tuple[str, ...]] = {}

    # -- building -----------------------------------------------------------------------------

    def _build(
        self, cells: Mapping[str, CellDef], config: Mapping[str, Any]
    ) -> tuple[h_graph.FunctionGraph, dict[str, str], list[str]]:
        nodes: dict[str, h_node.Node] = {}
        node_cell: dict[str, str] = {}
        for cell in cells.values():
            for name, n in cell.nodes.items():
                if name in nodes:
                    other = cells[node_cell[name]]
                    raise CellError(
                        f"Node `{name}` is already defined by {other.title}. Rename one of "
                        f"them, or remove it from that cell and re-run that cell first."
                    )
                nodes[name] = n
                node_cell[name] = cell.cell_id
        try:
            nodes = h_graph.update_dependencies(nodes, LifecycleAdapterSet())
        except ValueError as e:  # Hamilton's edge type check
            raise CellError(f"Hamilton rejects the DAG: {e}") from None
        for key in config:
            if key not in nodes:
                nodes[key] = h_node.Node(key, Any, node_source=h_node.NodeType.EXTERNAL)
        sorter = graphlib.TopologicalSorter(
            {name: [d.name for d in n.dependencies] for name, n in nodes.items()}
        )
        try:
            order = list(sorter.static_order())
        except graphlib.CycleError as e:
            cycle = e.args[1]
            where = ", ".join(
                f"`{n}` ({cells[node_cell[n]].title})" for n in dict.fromkeys(cycle)
                if n in node_cell
            )
            raise CellError(
                f"This would make a dependency cycle: {' -> '.join(cycle)}. Nodes: {where}."
            ) from None
        return h_graph.FunctionGraph(nodes, dict(config)), node_cell, order

    def _set(self, built: tuple[h_graph.FunctionGraph, dict[str, str], list[str]]) -> None:
        self.graph, self.node_cell, self._order = built
        # Dependency names, computed once per graph: Hamilton's Node.name is a property and the
        # all-hit path reads these thousands of times.
        self.deps = {name: tuple(d.name for d in n.dependencies)
                     for name, n in self.graph.nodes.items()}

    def add_cell(self, cell: CellDef, require: Iterable[str] = ()) -> None:
        """Register (or replace) a cell atomically: on error nothing changes.

        ``require``: node names that must exist afterwards (a cell's ``--outputs``).
        """
        cells = {**self.cells, cell.cell_id: cell}
        built = self._build(cells, self.config)
        _called_nodes(cell, built[0].nodes)
        missing = [n for n in require if n not in built[0].nodes]
        if missing:
            raise CellError(
                f"Unknown output(s): {', '.join(missing)}. Nodes in the live DAG with this "
                f"cell: {', '.join(sorted(built[0].nodes)) or 'none'}."
            )
        self._set(built)
        self.cells = cells

    def add_cells(self, new: Iterable[CellDef]) -> None:
        """Register (or replace) several cells with one graph build (checkpoint restore);
        atomic like :meth:`add_cell`."""
        cells = dict(self.cells)
        for cell in new:
            cells[cell.cell_id] = cell
        self._set(self._build(cells, self.config))
        self.cells = cells

    def remove_cell(self, cell_id: str) -> CellDef:
        cells = dict(self.cells)
        cell = cells.pop(cell_id)
        self._set(self._build(cells, self.config))
        self.cells = cells
        return cell

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Re-resolve every cell with a new Hamilton config (``@config.when`` etc.)."""
        resolved = {cid: resolve_cell_nodes(c, config) for cid, c in self.cells.items()}
        cells = {cid: dataclasses.replace(c, nodes=resolved[cid]) for cid, c in self.cells.items()}
        self._set(self._build(cells, config))
        self.cells, self.config = cells, dict(config)

    def clear(self) -> None:
        self.__init__(self.config)  # type: ignore[misc]

    # -- queries ------------------------------------------------------------------------------

    @property
    def nodes(self) -> dict[str, h_node.Node]:
        return self.graph.nodes

    def cell_of(self, name: str) -> CellDef | None:
        cid = self.node_cell.get(name)
        return self.cells.get(cid) if cid else None

    def fcode(self, fn: types.FunctionType) -> FunctionCode | None:
        code = inspect.unwrap(fn).__code__
        for cell in self.cells.values():
            if code in cell.fcodes:
                return cell.fcodes[code]
        return None

    def find_cell_for(self, names: Iterable[str]) -> list[str]:
        """Cells that define any of ``names`` (fallback cell identity with no cell id)."""
        names = set(names)
        return [cid for cid, c in self.cells.items() if names & (set(c.nodes) | set(c.functions))]

    def upstream(self, outputs: Iterable[str], stop_at: Iterable[str] = ()) -> list[str]:
        """Everything ``outputs`` need, in topological order; ``stop_at`` nodes are leaves."""
        stop = set(stop_at)
        need: set[str] = set()
        todo = list(outputs)
        while todo:
            name = todo.pop()
            if name in need:
                continue
            need.add(name)
            if name not in stop:
                todo.extend(self.deps[name])
        return [n for n in self._order if n in need]

    @property
    def order(self) -> list[str]:
        return list(self._order)

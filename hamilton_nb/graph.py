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
import types
from collections import ChainMap
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


@dataclass
class CellDef:
    """One registered ``%%hamilton`` cell."""

    cell_id: str
    body: str
    filename: str
    functions: dict[str, types.FunctionType]  # public functions -> become nodes
    fcodes: dict[types.CodeType, FunctionCode]  # static code analysis, by code object
    published: dict[str, Any]  # imports, helpers and constants the cell defines
    nodes: dict[str, h_node.Node] = field(default_factory=dict)
    jupyter_id: str | None = None  # the notebook cell that last registered it (front-end id)

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


_counter = itertools.count(1)


def _cell_filename(cell_id: str) -> str:
    return f"<hamilton-cell {cell_id}#{next(_counter)}>"


def prepare_cell(
    cell_id: str, body: str, user_ns: MutableMapping[str, Any], config: Mapping[str, Any]
) -> CellDef:
    """Execute a cell body without touching ``user_ns`` and resolve its functions to nodes.

    Functions get ``user_ns`` as their globals (they see the notebook's imports, helpers and
    constants, live); top-level names land in a private dict until the cell is committed.
    """
    try:
        tree = ast.parse(body)
    except SyntaxError as e:
        raise CellError(f"Syntax error in line {e.lineno} of the cell: {e.msg}") from None
    filename = _cell_filename(cell_id)
    lines = body.splitlines(True)
    # So tracebacks and inspect.getsource show the cell (mtime None: checkcache keeps it).
    linecache.cache[filename] = (len(body), None, lines, filename)
    cell_locals: dict[str, Any] = {}
    try:
        exec(compile(tree, filename, "exec"), user_ns, cell_locals)
    except Exception as e:
        raise CellError(
            f"The cell raised {type(e).__name__} while defining its functions: {e}"
        ) from e

    fdefs = {
        n.name: n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    functions: dict[str, types.FunctionType] = {}
    published: dict[str, Any] = {}
    for name, value in cell_locals.items():
        raw = inspect.unwrap(value) if inspect.isfunction(value) else None
        if (
            raw is not None
            and not name.startswith("_")
            and getattr(raw, "__code__", None) is not None
            and raw.__code__.co_filename == filename
        ):
            functions[name] = value
        else:
            published[name] = value
    definition_ns = ChainMap(cell_locals, user_ns)
    fcodes: dict[types.CodeType, FunctionCode] = {}
    for name, fn in functions.items():
        fcodes[inspect.unwrap(fn).__code__] = analyze_function(fn, fdefs.get(name), definition_ns)
    cell = CellDef(cell_id, body, filename, functions, fcodes, published)
    # Hamilton reads type hints through the functions' globals (the notebook namespace), where
    # the cell's own imports are not published yet: show them there while Hamilton looks.
    with _overlay(user_ns, published):
        cell.nodes = resolve_cell_nodes(cell, config)
    return cell


@contextlib.contextmanager
def _overlay(ns: MutableMapping[str, Any], extra: Mapping[str, Any]) -> Iterator[None]:
    """Temporarily add ``extra`` to ``ns``; afterwards ``ns`` is exactly as it was."""
    missing = object()
    saved = {k: ns.get(k, missing) for k in extra}
    ns.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is missing:
                ns.pop(k, None)
            else:
                ns[k] = v


def resolve_cell_nodes(cell: CellDef, config: Mapping[str, Any]) -> dict[str, h_node.Node]:
    """Hamilton's decorator resolution for every function of the cell."""
    nodes: dict[str, h_node.Node] = {}
    for fname, fn in cell.functions.items():
        try:
            resolved = fm_base.resolve_nodes(fn, dict(config))
        except Exception as e:  # Hamilton raises plain exceptions for decorator misuse
            raise CellError(f"Hamilton cannot turn `{fname}` into nodes: {e}") from e
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

"""Export the live DAG as a plain Python module that a normal Hamilton driver runs.

The module is, in order: a docstring (with the Hamilton config the notebook used), the imports
the ``%%hamilton`` cells take from the notebook, the constants and helper functions/classes they
take from ordinary cells (helpers decorated ``@hamilton_exclude`` so Hamilton does not make them
nodes), then every ``%%hamilton`` cell body verbatim, in cell order::

    import pipeline
    from hamilton import driver
    dr = driver.Builder().with_modules(pipeline).with_config(pipeline.HAMILTON_CONFIG).build()
    dr.execute(["model"], inputs={...})

What cannot be written as source (a DataFrame held in a notebook variable, an object without a
literal ``repr``) is listed in :attr:`ExportResult.problems` and marked in the module with a
comment: pass such values as inputs instead.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import inspect
import linecache
import os
import symtable
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import atomic_write
from .errors import SessionError

if TYPE_CHECKING:
    from .session import Session

_EXCLUDE = "_hamilton_exclude"


@dataclass
class ExportResult:
    """What :func:`export_module` wrote."""

    path: Path
    nodes: list[str]
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"hamilton_nb: wrote {len(self.nodes)} node(s) to {self.path}."
        if self.problems:
            text += "\n  Not exported (pass them as inputs, or define them in a %%hamilton " \
                    "cell):\n  " + "\n  ".join(self.problems)
        return text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def _free_names(source: str, filename: str = "<export>") -> set[str]:
    """Global names ``source`` reads that it does not define at its top level.

    ``symtable`` is the compiler's own scope analysis: locals, parameters and attribute names
    (``self.lo``) are never mistaken for globals.
    """
    top = symtable.symtable(source, filename, "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()
             or s.is_namespace()}
    free: set[str] = set()
    todo = [top]
    while todo:
        table = todo.pop()
        for sym in table.get_symbols():
            if sym.is_referenced() and (table is top or sym.is_global()):
                free.add(sym.get_name())
        todo.extend(table.get_children())
    return free - bound - set(vars(builtins))


def _import_line(name: str, value: Any) -> str | None:
    """``import x as name`` / ``from m import y as name`` when ``value`` is importable."""
    if isinstance(value, types.ModuleType):
        mod = value.__name__
        if mod == "__main__":
            return None
        if mod == name:
            return f"import {mod}"
        parent, _, leaf = mod.rpartition(".")
        if parent and leaf == name:
            return f"from {parent} import {leaf}"
        return f"import {mod} as {name}"
    mod = getattr(value, "__module__", None)
    qual = getattr(value, "__qualname__", getattr(value, "__name__", None))
    if not mod or mod == "__main__" or not qual or "." in qual or "<" in qual:
        return None
    try:
        if getattr(importlib.import_module(mod), qual) is not value:
            return None
    except (ImportError, AttributeError):
        return None
    return f"from {mod} import {qual}" + ("" if qual == name else f" as {name}")


def _literal(value: Any) -> str | None:
    """Source for a constant, when its ``repr`` reads back as an equal value."""
    try:
        text = repr(value)
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    try:
        same = type(back) is type(value) and bool(back == value)
    except Exception:  # a value whose == is ambiguous is no literal
        return None
    return text if same else None


def _notebook_source(value: Any) -> str | None:
    """Source of a function or class defined in an ordinary notebook cell."""
    with contextlib.suppress(OSError, TypeError):
        return textwrap.dedent(inspect.getsource(value))
    if isinstance(value, type):
        # Python < 3.13 cannot find a class of __main__; its methods know their cell file.
        for member in vars(value).values():
            code = getattr(inspect.unwrap(member), "__code__", None) if callable(member) else None
            if code is None:
                continue
            lines = linecache.getlines(code.co_filename)
            if not lines:
                continue
            source = "".join(lines)
            with contextlib.suppress(SyntaxError):
                for node in ast.parse(source).body:
                    if isinstance(node, ast.ClassDef) and node.name == value.__name__:
                        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                        return textwrap.dedent("".join(lines[first - 1:node.end_lineno]))
    return None


def module_source(session: Session) -> tuple[str, list[str], list[str]]:
    """(module text, node names, problems) for the live DAG of ``session``."""
    dag = session.dag
    if not dag.cells:
        raise SessionError("The live DAG is empty: define functions in a %%hamilton cell first.")
    ns = session.namespace
    bodies = [c.body.rstrip() + "\n" for c in dag.cells.values()]
    cell_defined: set[str] = set()
    needed: list[str] = []
    for cell in dag.cells.values():
        cell_defined |= set(cell.functions) | set(cell.published)
    for body in bodies:
        for name in sorted(_free_names(body)):
            if name not in cell_defined and name not in needed:
                needed.append(name)

    imports: list[str] = []
    constants: list[str] = []
    helpers: list[str] = []
    problems: list[str] = []
    seen: set[str] = set()
    external = {n for n, v in dag.nodes.items() if v.user_defined}
    todo = list(needed)
    uses_exclude = False
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name not in ns:
            if name not in external:
                problems.append(f"`{name}`: not defined in the notebook")
            continue
        value = ns[name]
        line = _import_line(name, value)
        if line is not None:
            imports.append(line)
            continue
        if inspect.isfunction(value) or isinstance(value, type):
            src = _notebook_source(value)
            if src is None:
                problems.append(f"`{name}`: its source cannot be found")
                continue
            # What the helper reads in turn: body, decorators, defaults, annotations.
            todo.extend(n for n in sorted(_free_names(src)) if n not in cell_defined)
            if inspect.isfunction(value) and not name.startswith("_"):
                # A public function of the module would become a Hamilton node.
                src = f"@{_EXCLUDE}\n{src}"
                uses_exclude = True
            helpers.append(src.rstrip() + "\n")
            continue
        literal = _literal(value)
        if literal is None:
            problems.append(f"`{name}`: a {type(value).__qualname__} has no literal source")
            constants.append(f"# hamilton_nb: {name} (a {type(value).__qualname__}) could not "
                             f"be exported")
            continue
        constants.append(f"{name} = {literal}")

    config = dict(dag.config)
    config_src = _literal(config)
    if config_src is None:
        problems.append("the Hamilton config has values with no literal source")
        config_src = "{}"
    nodes = [n for n in dag.order if not dag.nodes[n].user_defined]
    inputs = sorted(external - set(config))
    head = [
        '"""Hamilton dataflow exported by hamilton_nb from a notebook.',
        "",
        "Run it with a plain Hamilton driver::",
        "",
        "    from hamilton import driver",
        "    dr = driver.Builder().with_modules(this_module).with_config(HAMILTON_CONFIG)"
        + (".enable_dynamic_execution(allow_experimental_mode=True)"  # Parallelizable needs it
           if any(dag.nodes[n].node_role.name == "EXPAND" for n in nodes) else "") + ".build()",
        f"    dr.execute([...], inputs={{{', '.join(repr(i) + ': ...' for i in inputs)}}})",
        '"""',
        "",
    ]
    parts = ["\n".join(head)]
    if uses_exclude:
        imports.insert(0, f"from hamilton.function_modifiers import hamilton_exclude as "
                          f"{_EXCLUDE}")
    if imports:
        parts.append("\n".join(dict.fromkeys(imports)) + "\n")
    parts.append(f"HAMILTON_CONFIG = {config_src}\n")
    if constants:
        parts.append("\n".join(constants) + "\n")
    for src in helpers:
        parts.append("\n" + src)
    for cell, body in zip(dag.cells.values(), bodies, strict=True):
        parts.append(f"\n# --- %%hamilton cell {cell.cell_id} ---\n{body}")
    return "\n".join(parts), nodes, problems


def export_module(session: Session, path: str | os.PathLike[str]) -> ExportResult:
    """Write the live DAG of ``session`` to ``path`` (atomically) and say what was left out."""
    path = Path(path)
    if path.suffix != ".py":
        raise SessionError(f"Export to a .py file, e.g. `%hamilton export {path.stem}.py`.")
    text, nodes, problems = module_source(session)
    compile(text, str(path), "exec")  # a bug here must not leave a broken module behind
    if path.is_dir():
        raise SessionError(f"{path} is a folder: export to a file, e.g. "
                           f"`%hamilton export {path / 'pipeline.py'}`.")
    try:
        atomic_write(path, text.encode("utf-8"))  # nothing is left behind if this fails
    except OSError as e:
        raise SessionError(
            f"Cannot write {path}: {e.strerror or e}. Export to a path in an existing folder you "
            f"can write, e.g. `%hamilton export pipeline.py`."
        ) from None
    return ExportResult(path.absolute(), nodes, problems)


__all__ = ["ExportResult", "export_module", "module_source"]

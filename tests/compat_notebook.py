"""Notebook layouts of a Hamilton module, and a driver that runs them in an IPython shell.

Shared by ``test_compat_hamilton.py`` (in-process shell) and the fresh processes it starts
(``python -m compat_notebook SPEC.json``), so both run exactly the same cells.

The three layouts of one module (a fixture file under ``tests/compat/``):

- ``a``: the module's imports in an ordinary cell, the rest of the module in one ``%%hamilton``
  cell;
- ``b``: the whole file, imports included, in one ``%%hamilton`` cell;
- ``c``: an ordinary cell with everything that is not a node function (imports, constants,
  classes, module-level statements and undecorated ``_helpers``, in file order), then one
  ``%%hamilton`` cell per remaining top-level function (node functions, and functions carrying
  a decorator such as ``@mutate`` or ``@hamilton_exclude``), in file order.

In every layout a top-level ``if __name__ == "__main__":`` block is left out: a plain driver
imports the module (so the block never runs there), while a notebook's ``__name__`` *is*
``"__main__"`` and would run the script part.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAYOUTS = ("a", "b", "c")


@dataclass
class Cell:
    cell_id: str
    source: str  # the full cell text, magic line included

    @property
    def is_hamilton(self) -> bool:
        return self.source.startswith("%%hamilton")


def _is_main_block(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If):
        return False
    t = stmt.test
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name)
            and t.left.id == "__name__" and len(t.comparators) == 1
            and isinstance(t.comparators[0], ast.Constant)
            and t.comparators[0].value == "__main__")


def _start(stmt: ast.stmt) -> int:
    decos = getattr(stmt, "decorator_list", None) or []
    return min([stmt.lineno, *(d.lineno for d in decos)])


def _segment(lines: list[str], stmt: ast.stmt) -> str:
    return "".join(lines[_start(stmt) - 1:stmt.end_lineno])


def _is_helper_def(stmt: ast.stmt) -> bool:
    """An undecorated ``_helper``: a plain function, not a Hamilton construct."""
    return (isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("_")
            and not stmt.decorator_list)


def _dependency_order(functions: list[ast.stmt], deps: dict[str, set[str]]) -> list[ast.stmt]:
    """File order, except that a function comes after the functions whose nodes it needs (a
    notebook runs top to bottom; a module may use a node defined further down)."""
    todo = list(functions)
    done: list[ast.stmt] = []
    names = {s.name for s in functions}
    while todo:
        placed = {s.name for s in done}
        ready = next((s for s in todo if not (deps.get(s.name, set()) & names) - placed
                      - {s.name}), todo[0])  # a cycle: keep file order
        todo.remove(ready)
        done.append(ready)
    return done


def module_cells(source: str, layout: str, prefix: str, options: str = "",
                 deps: dict[str, set[str]] | None = None) -> list[Cell]:
    """The cells of ``source`` in ``layout``; cell ids start with ``prefix``; ``options``
    go on every ``%%hamilton`` line; ``deps``: function name -> the functions whose nodes it
    needs (layout ``c`` puts a function's cell after theirs)."""
    magic = f"%%hamilton {options}".rstrip() + "\n"
    tree = ast.parse(source)
    lines = source.splitlines(True)
    body = [s for s in tree.body if not _is_main_block(s)]
    dropped = [s for s in tree.body if _is_main_block(s)]
    if layout == "b":
        keep = list(lines)
        for s in dropped:
            keep[s.lineno - 1:s.end_lineno] = [""] * (s.end_lineno - s.lineno + 1)
        return [Cell(f"{prefix}-b", magic + "".join(keep))]
    if layout == "a":
        imports = [s for s in body if isinstance(s, ast.Import | ast.ImportFrom)
                   and not (isinstance(s, ast.ImportFrom) and s.module == "__future__")]
        keep = list(lines)
        for s in [*imports, *dropped]:
            keep[s.lineno - 1:s.end_lineno] = [""] * (s.end_lineno - s.lineno + 1)
        cells = []
        if imports:
            cells.append(Cell(f"{prefix}-a0", "".join(_segment(lines, s) for s in imports)))
        cells.append(Cell(f"{prefix}-a1", magic + "".join(keep)))
        return cells
    if layout == "c":
        ordinary = [s for s in body
                    if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
                    or _is_helper_def(s)]
        functions = _dependency_order([s for s in body if s not in ordinary], deps or {})
        cells = []
        if ordinary:
            cells.append(Cell(f"{prefix}-c0", "".join(_segment(lines, s) for s in ordinary)))
        for i, s in enumerate(functions, 1):
            cells.append(Cell(f"{prefix}-c{i}", magic + _segment(lines, s)))
        return cells
    raise ValueError(layout)


def notebook_cells(
    modules: list[tuple[str, str]], layout: str, config: str | None, inputs: str,
    options: str = "", deps: dict[str, set[str]] | None = None,
) -> list[Cell]:
    """The whole notebook: config, an inputs cell, then each module (name, source) in order."""
    cells = []
    if config:
        cells.append(Cell("config", f"%hamilton config {config}\n"))
    if inputs:
        cells.append(Cell("inputs", inputs))
    for name, source in modules:
        cells.extend(module_cells(source, layout, name, options, deps))
    return cells


@dataclass
class NotebookRun:
    """What running a notebook produced."""

    events: list[tuple[str, str, str]] = field(default_factory=list)  # (node, status, reason)
    last_run: list[tuple[str, str, str]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the first cell (or final run) that failed, and why
    error_type: str | None = None


def run_notebook(ip: Any, cells: list[Cell], final_vars: list[str],
                 overrides: dict[str, Any] | None = None) -> NotebookRun:
    """Run ``cells`` in ``ip`` as a front-end would (stable cell ids), then ask the session
    for ``final_vars`` (with ``overrides``). Every node event of every run is recorded."""
    import hamilton_nb

    out = NotebookRun()
    session = hamilton_nb.session()

    def listen(event: Any) -> None:
        if getattr(event, "kind", None) == "node_finished":
            out.events.append((event.node, event.status.value, event.reason))

    unsubscribe = session.subscribe(listen)
    try:
        for cell in cells:
            res = ip.run_cell(cell.source, cell_id=cell.cell_id, silent=False)
            err = res.error_before_exec or res.error_in_exec
            if err is not None:
                out.error = f"cell {cell.cell_id} raised {type(err).__name__}: {err}"
                out.error_type = type(err).__name__
                return out
        try:
            out.values = session.run(final_vars, overrides=overrides)
        except Exception as e:  # reported to the test, which says what failed
            out.error = f"final run raised {type(e).__name__}: {e}"
            out.error_type = type(e).__name__
            return out
        df = session.last_run()
        out.last_run = list(zip(df["node"], df["status"], df["reason"], strict=True))
    finally:
        unsubscribe()
    return out


def fresh_main(spec_path: str) -> None:
    """A fresh process: replay every case of ``spec_path`` (JSON list) on its own cache
    folder, each in a new IPython shell with a new session; write the results next to it."""
    from IPython.core.interactiveshell import InteractiveShell

    import hamilton_nb

    cases = json.loads(Path(spec_path).read_text())
    results = {}
    for case in cases:
        os.chdir(case["workdir"])
        os.environ["HAMILTON_NB_CACHE"] = case["cache_dir"]
        InteractiveShell.clear_instance()
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "hamilton_nb")
        hamilton_nb.session().set_cache_dir(case["cache_dir"])
        cells = [Cell(c["cell_id"], c["source"]) for c in case["cells"]]
        overrides = eval(case["overrides"]) if case["overrides"] else None
        try:
            run = run_notebook(ip, cells, case["final_vars"], overrides)
        except Exception:
            run = NotebookRun(error=traceback.format_exc(), error_type="harness")
        values = {}
        for k, v in run.values.items():
            try:
                values[k] = pickle.dumps(v)
            except Exception as e:  # e.g. an instance of a class defined in a cell
                values[k] = pickle.dumps(f"<unpicklable {type(v).__name__}: {e}>")
        Path(case["out"]).write_bytes(pickle.dumps({
            "events": run.events, "last_run": run.last_run, "values": values,
            "error": run.error, "error_type": run.error_type,
        }))
        results[case["case_id"]] = run.error
        ip.run_line_magic("unload_ext", "hamilton_nb")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    fresh_main(sys.argv[1])

"""notebooks/restart_and_restore.ipynb in a real kernel: run it, restart the kernel, run it
again — the second run computes nothing, and `%hamilton restore` brought the DAG back (issue 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jupyter_core.utils import run_sync

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.kernel

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "restart_and_restore.ipynb"


def _run_all(client, nb) -> None:
    for index, cell in enumerate(nb.cells):
        client.execute_cell(cell, index)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def _statuses(nb) -> dict[str, list[str]]:
    text = _stdout(nb.cells[-1])
    line = next(ln for ln in text.splitlines() if ln.startswith("statuses:"))
    return json.loads(line.split(":", 1)[1])


def _model_output(nb) -> str:
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source == "model")
    return cell.outputs[0]["data"]["text/plain"]


def _probe(client, nb, code: str) -> str:
    """Run one extra cell (not kept in the notebook) and return its stdout."""
    cell = nbformat.v4.new_code_cell(code)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.pop()
    return _stdout(cell).strip()


def test_notebook_after_kernel_restart_computes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("HAMILTON_NB_CACHE", raising=False)  # the default: a folder in the cwd
    path = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # what Jupyter gives the kernel
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        _run_all(client, nb)
        first = _statuses(nb)
        first_model = _model_output(nb)
        assert "no saved state to restore for notebook" in _stdout(nb.cells[3])
        assert set(first) == {"raw", "clean", "features", "model"}
        assert all(s[0] == "computed" for s in first.values()), first

        _probe(client, nb, "_before_restart = True")
        # nbclient's managers are async: run_sync, else the restart is silently never awaited.
        run_sync(client.km.restart_kernel)(now=True)
        run_sync(client.kc.wait_for_ready)(timeout=60)
        assert _probe(client, nb, "print('_before_restart' in globals())") == "False", \
            "the kernel was not restarted"
        _run_all(client, nb)

    second = _statuses(nb)
    restore_out = _stdout(nb.cells[3])
    assert (f"restored last state of notebook {str(path)!r}: 2 cell(s), 4 value(s) bound"
            in restore_out)
    assert set(second) == {"raw", "clean", "features", "model"}
    assert not any("computed" in s for s in second.values()), second
    assert all(set(s) == {"cached"} for s in second.values()), second
    assert _model_output(nb) == first_model  # restored values equal the computed ones
    assert (tmp_path / ".hamilton_nb_cache" / "sessions").is_dir()

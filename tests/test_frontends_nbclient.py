"""What headless front-ends and saved notebooks show: nbclient (what nbconvert, papermill and nbval
run on) executing notebooks with the panel, and the .ipynb it writes, read back from disk.

* Re-executing a cell, or executing cells out of order, in one nbclient session never breaks the
  client (the panel once updated a display in an output nbclient had cleared: IndexError in
  ``_update_display_id``).
* After a run, each cell's saved output carries that cell's own final state (text/plain,
  text/html and the lab extension's DAG state), not the state before its run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

pytestmark = pytest.mark.kernel

DAG_MIME = "application/vnd.hamilton-nb.run+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

LOAD = "%load_ext hamilton_nb"
CELL_A = ("%%hamilton\ndef raw() -> int:\n    return 21\n\n"
          "def clean(raw: int) -> int:\n    return raw * 2\n")
CELL_B = "%%hamilton\ndef total(clean: int) -> int:\n    return clean + 1\n"
CELL_C = "print('total is', total)"
CELL_D = "%hamilton run raw\n%hamilton run total"  # two runs in one cell


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAMILTON_NB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _client(nb: nbformat.NotebookNode, cwd: Path) -> NotebookClient:
    return NotebookClient(nb, timeout=120, kernel_name="python3",
                          resources={"metadata": {"path": str(cwd)}})


def _panel_outputs(cell: Any) -> list[dict]:
    return [o for o in cell.outputs if o.get("output_type") == "display_data"
            and "text/html" in o.get("data", {}) and "hamilton_nb" in o["data"]["text/html"]]


def _state(output: dict) -> dict[str, str]:
    """Node -> status, from the DAG state (live panel) or the text table (snapshots)."""
    data = output["data"]
    if DAG_MIME in data:
        return {n["name"]: n["status"] for n in data[DAG_MIME]["state"]["nodes"]
                if n["kind"] == "function"}
    rows = data["text/plain"].splitlines()[2:]  # summary line, header, then one row per node
    return {r.split()[0]: r.split()[1] for r in rows}


def test_reexecuting_and_out_of_order_cells_never_break_nbclient(cache_env: Path) -> None:
    nb = _notebook(LOAD, CELL_A, CELL_B, CELL_C, CELL_D)
    client = _client(nb, cache_env)
    with client.setup_kernel():
        for index in (0, 1, 1, 2, 1, 2, 2, 3, 1, 3):  # again, back, and again
            client.execute_cell(nb.cells[index], index)
        checkpoint = nbformat.from_dict(nb)
    # Each cell shows one panel output, with the state of its own last execution.
    for index in (1, 2):
        [out] = _panel_outputs(nb.cells[index])
        assert "running…" not in out["data"]["text/plain"]
    assert "total is 43" in nb.cells[3].outputs[0]["text"]
    # Cell 1 ran last: its output is the live panel; cell 2's became a static snapshot.
    [live] = _panel_outputs(nb.cells[1])
    assert WIDGET_MIME in live["data"]
    [snap] = _panel_outputs(nb.cells[2])
    assert WIDGET_MIME not in snap["data"]
    assert _state(snap)["total"] == "cached"

    # Two runs in one cell, executed twice: within an execution the first panel output becomes
    # a snapshot, and one live panel is left in the notebook.
    nb = checkpoint
    client = _client(nb, cache_env)
    with client.setup_kernel():
        for index in (0, 1, 2, 4, 4):
            client.execute_cell(nb.cells[index], index)
    first, second = _panel_outputs(nb.cells[4])
    assert WIDGET_MIME not in first["data"] and WIDGET_MIME in second["data"]
    assert _state(first) == {"raw": "cached"}
    live = [o for c in nb.cells for o in _panel_outputs(c) if WIDGET_MIME in o["data"]]
    assert len(live) == 1


def test_saved_notebook_cells_carry_their_own_final_state(cache_env: Path) -> None:
    nb = _notebook(LOAD, CELL_A, CELL_B)
    _client(nb, cache_env).execute()
    path = cache_env / "saved.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)  # what GitHub, nbconvert and Lab read

    [a] = _panel_outputs(saved.cells[1])
    [b] = _panel_outputs(saved.cells[2])
    # Cell A's run computed raw and clean: its output says so, not "never run" (the state
    # before the run) and not the later state of cell B's run.
    assert "2 nodes: 2 computed" in a["data"]["text/plain"]
    assert "never run" not in a["data"]["text/plain"]
    assert _state(a) == {"raw": "computed", "clean": "computed"}
    assert "data-node='total'" not in a["data"]["text/html"]
    assert DAG_MIME not in a["data"]  # an HTML snapshot: Lab shows its table
    # Cell B's run: total computed, its inputs from the cache.
    assert "3 nodes: 2 cached, 1 computed" in b["data"]["text/plain"]
    assert _state(b) == {"raw": "cached", "clean": "cached", "total": "computed"}
    assert "stale" not in b["data"]["text/plain"]
    # The last panel keeps its widget view (live in Lab) next to the static fallback.
    assert WIDGET_MIME in b["data"] and WIDGET_MIME not in a["data"]

    # nbconvert's HTML of the saved notebook shows both cells' own states (cell B's through
    # the widget state nbclient saved, cell A's as its static snapshot).
    body, _ = HTMLExporter().from_notebook_node(saved)
    assert "hnbw-static" in body
    assert "2 nodes: 2 computed" in body and "3 nodes: 2 cached, 1 computed" in body


def test_an_earlier_cells_saved_output_keeps_its_own_run_when_later_cells_run(
        cache_env: Path) -> None:
    # A later quiet run and an edit of an upstream cell must not rewrite what an earlier
    # cell's saved output says about its own run (it once showed the later run's rows and
    # the staleness the edit caused, e.g. "4 cached · 2 stale" for a run that computed).
    edit_a = CELL_A.replace("return 21", "return 22")
    nb = _notebook(LOAD, CELL_A, CELL_B, "%hamilton run total -q", edit_a)
    client = _client(nb, cache_env)
    with client.setup_kernel():
        for index in range(5):
            client.execute_cell(nb.cells[index], index)
    [snap] = _panel_outputs(nb.cells[2])
    assert WIDGET_MIME not in snap["data"]
    text = snap["data"]["text/plain"]
    assert "1 computed" in text and "stale" not in text, text
    assert _state(snap)["total"] == "computed"


def test_each_cells_saved_output_stays_the_size_of_its_run_in_a_long_notebook(
        cache_env: Path) -> None:
    # A chain of 30 cells: each cell's run reuses the whole chain above it. Its saved output
    # names its own nodes, the 12 nearest it reused and a line counting the rest, with the DAG
    # state of those nodes only: the notebook's size grows with its cells, not their square.
    from dag_sources import chain_cell

    cells = [f"%%hamilton\n{chain_cell(i)}" for i in range(30)]
    nb = _notebook(LOAD, *cells)
    client = _client(nb, cache_env)
    with client.setup_kernel():
        for index in range(len(nb.cells)):
            client.execute_cell(nb.cells[index], index)
        client.execute_cell(nb.cells[16], 16)  # cell 15 of the chain again: all hits
    path = cache_env / "long.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    # Cell 29's first run computed its 3 nodes; cell 15's re-run found its 3 in the cache.
    for index, own in ((30, ["a_29", "b_29", "c_29"]), (16, ["a_15", "b_15", "c_15"])):
        [out] = _panel_outputs(saved.cells[index])
        text = out["data"]["text/plain"]
        i = index - 1
        listed = [line.split()[0] for line in text.splitlines()[2:] if not line.startswith("…")]
        assert listed[-len(own):] == own and len(listed) == len(own) + 12, text
        assert f"{3 * (i + 1)} nodes" in text.splitlines()[0]  # the summary counts them all
        assert text.splitlines()[-1].startswith("… and "), text
        assert "reused from the cache not listed here" in out["data"]["text/html"]
        state = out["data"].get(DAG_MIME, {}).get("state")
        if state is not None:  # (the live panel's output; a snapshot carries text and HTML)
            assert len(state["nodes"]) <= 3 + 12
    # The first cells' outputs list their whole (short) runs, with nothing left out.
    [first] = _panel_outputs(saved.cells[1])
    assert "… and" not in first["data"]["text/plain"]

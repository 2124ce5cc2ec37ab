"""What JupyterLab shows is true: the side panel, the stale markers, the widget panel, their
colours and layout, a saved notebook reopened without its widgets, and checkpoint code written
back into cells. Real JupyterLab, real kernel, Debian's chromium (playwright); screenshots go to
``test-artifacts/`` (CI keeps them).

Heavy: run this file on its own (``pytest -m browser tests/test_frontends_browser.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lab_fixtures
import nbformat
import pytest
from lab_fixtures import Lab, open_notebook, run_all, shot, write_notebook

lab = lab_fixtures.lab
browser = lab_fixtures.browser

pytestmark = pytest.mark.browser

PANEL = "hamilton-nb-panel"
LOAD = ("load", "code", "%load_ext hamilton_nb")
HELPER = ("helper", "code", "K = 2\n\ndef scale(x):\n    return x * K\n")
CELL_A = ("cell-a", "code", "%%hamilton\ndef raw() -> int:\n    return 21\n\n"
          "def clean(raw: int) -> int:\n    return scale(raw)\n")
CELL_B = ("cell-b", "code", "%%hamilton\ndef features(clean: int) -> int:\n    return clean + 1\n")


def _node(page: Any, name: str, status: str | None = None) -> Any:
    sel = f'#{PANEL} g.hnb-node[data-node="{name}"]'
    if status:
        sel += f'[data-status="{status}"]'
    return page.locator(sel)


def _status(page: Any, name: str) -> str | None:
    return _node(page, name).get_attribute("data-status")


def _run_cell(page: Any, cell_id: str) -> None:
    page.evaluate(
        """id => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            nb.activeCellIndex = nb.widgets.findIndex(c => c.model.id === id);
            return window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        cell_id,
    )


def _set_source(page: Any, cell_id: str, source: str) -> None:
    page.evaluate(
        """([id, src]) => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            nb.widgets.find(c => c.model.id === id).model.sharedModel.setSource(src);
        }""",
        [cell_id, source],
    )


def _source(page: Any, cell_id: str) -> str:
    return page.evaluate(
        """id => window.jupyterapp.shell.currentWidget.content.widgets
                 .find(c => c.model.id === id).model.sharedModel.getSource()""",
        cell_id,
    )


def _stale_cells(page: Any) -> list[str]:
    return page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
                 .filter(c => c.hasClass('hnb-stale')).map(c => c.model.id)"""
    )


def _wait_idle(page: Any) -> None:
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'idle'", timeout=60_000)


@pytest.fixture
def page_of(lab: Lab, browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """open(cells, width=1400) -> a page with the notebook open and the Hamilton panel shown."""
    pages: list[Any] = []

    def open_(cells: list[tuple[str, str, str]], width: int = 1400) -> Any:
        path = write_notebook(lab, cells)
        page = open_notebook(browser, lab, path, side_panel=PANEL)
        page.set_viewport_size({"width": width, "height": 950})
        pages.append(page)
        return page

    yield open_
    for page in pages:
        shot(page, f"{request.node.name}-end")  # what the page showed last, pass or fail
        page.close()


# -- 3: side panel and markers ------------------------------------------------------------------


def test_side_panel_ends_runs_and_marks_helper_edits_and_downstream_stale(page_of: Any) -> None:
    page = page_of([LOAD, HELPER, CELL_A, CELL_B])
    run_all(page)
    _node(page, "features", "computed").wait_for(timeout=60_000)
    _wait_idle(page)
    summary = page.locator(f"#{PANEL} .hnb-summary")
    # The final state of the run says it is over: no "running…" until someone presses Refresh.
    page.wait_for_function(
        f"() => !document.querySelector('#{PANEL} .hnb-summary').textContent"
        ".includes('running')", timeout=5_000)
    page.wait_for_timeout(1000)
    assert "running" not in summary.text_content()
    assert _stale_cells(page) == []
    shot(page, "lab-final-state-after-run")

    # A constant in an ordinary cell changes: the cells that use it become stale at once.
    _set_source(page, "helper", "K = 3\n\ndef scale(x):\n    return x * K\n")
    _run_cell(page, "helper")
    _node(page, "clean", "stale").wait_for(timeout=30_000)
    _node(page, "features", "stale").wait_for(timeout=10_000)
    assert _status(page, "raw") in ("computed", "cached")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".filter(c => c.hasClass('hnb-stale')).length === 2", timeout=10_000)
    assert sorted(_stale_cells(page)) == ["cell-a", "cell-b"]
    why = _node(page, "clean").locator("title").text_content()
    assert "changed" in why and "code and inputs unchanged" not in why, why
    assert "upstream `clean` is stale" in _node(page, "features").locator("title").text_content()
    shot(page, "lab-stale-after-helper-edit")

    # "Run stale" recomputes them, and says so.
    page.locator(f"#{PANEL} .hnb-run-stale").click()
    page.locator(".Toastify__toast", has_text="stale").first.wait_for(timeout=30_000)
    _node(page, "features", "computed").wait_for(timeout=30_000)
    assert _status(page, "clean") == "computed"

    # Editing a %%hamilton cell's text (not run): its nodes and everything downstream of them
    # are shown stale in the graph, not only the cells.
    _set_source(page, "cell-a", CELL_A[2].replace("return 21", "return 22"))
    _node(page, "raw", "stale").wait_for(timeout=10_000)
    _node(page, "features", "stale").wait_for(timeout=10_000)
    assert _status(page, "clean") == "stale"
    assert "edited" in _node(page, "raw").locator("title").text_content()
    # and the panel lists the cell whose text differs from the kernel's code
    assert page.locator(f"#{PANEL} .hnb-differ li[data-cell-id='cell-a']").count() == 1
    shot(page, "lab-downstream-stale-after-edit")


SLOW = ("slow", "code", "%%hamilton\nimport time\n\ndef quick() -> int:\n    return 1\n\n"
        "def slow(quick: int) -> int:\n    time.sleep(4)\n    return quick + 1\n\n"
        "def after(slow: int) -> int:\n    return slow + 1\n")


def test_running_node_and_one_colour_language_with_legends(page_of: Any) -> None:
    page = page_of([LOAD, SLOW])
    # (run_all waits for the cells to finish; this test looks while they run)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    # While `slow` runs: "running" in the widget's row and in the side panel, `after` queued.
    row = page.locator(".hnbw-panel .hnbw-row-slow .hnbw-status-running")
    row.wait_for(timeout=60_000)
    _node(page, "slow", "running").wait_for(timeout=10_000)
    assert _status(page, "after") == "queued"
    assert page.locator(".hnbw-panel .hnbw-row-after .hnbw-status-queued").count() == 1
    shot(page, "lab-running-node")
    _node(page, "after", "computed").wait_for(timeout=60_000)

    # The same colour means the same status in both front-ends, and both have a legend.
    colours = page.evaluate(
        f"""() => {{
            const badge = s => getComputedStyle(
                document.querySelector('.hnbw-panel .hnbw-status-' + s)).backgroundColor;
            const box = s => getComputedStyle(document.querySelector(
                '#{PANEL} g.hnb-node[data-status="' + s + '"] .hnb-node-box')).stroke;
            const legend = (sel, s) => {{
                const el = document.querySelector(sel + ' [data-status="' + s + '"]');
                return !!el;
            }};
            return {{widget: badge('computed'), panel: box('computed'),
                     legends: ['running', 'stale', 'cached', 'computed', 'failed'].every(
                       s => legend('.hnbw-legend', s) && legend('#{PANEL} .hnb-legend', s))}};
        }}"""
    )
    assert colours["widget"] == colours["panel"] == "rgb(21, 101, 192)", colours
    assert colours["legends"]
    shot(page, "lab-one-colour-language")


def test_context_menu_clear_says_what_it_did_and_badges_follow(page_of: Any) -> None:
    page = page_of([LOAD, HELPER, CELL_A, CELL_B])
    run_all(page)
    _node(page, "features", "computed").wait_for(timeout=60_000)
    _wait_idle(page)
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets"
        ".forEach(c => { c.node.dataset.testCellId = c.model.id; })")
    page.locator('.jp-Cell[data-test-cell-id="cell-b"] .jp-InputArea-editor').click(
        button="right")
    page.locator(".lm-Menu").last.get_by_text("Hamilton: Clear cache of this cell's nodes").click()
    page.locator(".Toastify__toast", has_text="Cleared 1 cache entry of `features`").wait_for(
        timeout=15_000)
    _node(page, "features", "cleared").wait_for(timeout=10_000)
    # the widget panel's badge follows: no longer "cached"/"computed"
    page.locator(".hnbw-panel .hnbw-row-features .hnbw-status-cleared").wait_for(timeout=10_000)
    assert "next run recomputes" in _node(page, "features").locator("title").text_content()
    shot(page, "lab-clear-feedback")


# -- 4: layout ----------------------------------------------------------------------------------

LONG = ("long", "code", "%%hamilton\n" + "\n".join(
    [f"def feature_rolling_mean_{d}d(base: int) -> int:\n    return base + {d}\n"
     for d in (7, 30)]
    + ["def base() -> int:\n    return 1\n"]
    + [f"def n{i}(base: int) -> int:\n    return base * {i}\n" for i in range(9)]
    + ["def total(feature_rolling_mean_7d: int, feature_rolling_mean_30d: int, "
       + ", ".join(f"n{i}: int" for i in range(9)) + ") -> int:\n    return 0\n"]))


def test_layout_fits_1500px_with_file_browser_and_panel(page_of: Any) -> None:
    page = page_of([LOAD, LONG], width=1500)
    assert page.locator(".jp-SideBar.jp-mod-left li.lm-mod-current").count() == 1  # files open
    run_all(page)
    rows = page.locator(".hnbw-panel .hnbw-row")
    page.locator(".hnbw-panel .hnbw-row-total .hnbw-status-computed").wait_for(timeout=60_000)
    assert rows.count() == 13
    fit = page.evaluate(
        """() => {
            const out = [];
            const area = document.querySelector('.hnbw-panel').getBoundingClientRect();
            for (const row of document.querySelectorAll('.hnbw-panel .hnbw-row')) {
                const r = row.getBoundingClientRect();
                const a = row.lastElementChild.getBoundingClientRect();
                const cells = [...row.querySelectorAll('.hnbw-c')]
                    .map(c => c.getBoundingClientRect());
                const width = sel => row.querySelector(sel).getBoundingClientRect().width;
                out.push({row_right: r.right, area_right: area.right, actions_left: a.left,
                          cells_right: Math.max(...cells.map(c => c.right)),
                          cell_col_width: width('.hnbw-c-cell'),
                          size_col_width: width('.hnbw-c-size')});
            }
            return out;
        }"""
    )
    for f in fit:
        assert f["row_right"] <= f["area_right"] + 1, f
        assert f["cells_right"] <= f["actions_left"] + 1, f  # no column behind the buttons
        assert f["cell_col_width"] > 30 and f["size_col_width"] > 30, f
    names = page.evaluate(
        """() => [...document.querySelectorAll('.hnbw-panel .hnbw-c-node')]
                 .map(e => [e.textContent, e.title])""")
    shown = [t for t, _ in names]
    assert len(set(shown)) == len(shown), shown  # never two names cut to the same text
    assert {t for _, t in names} >= {"feature_rolling_mean_7d", "feature_rolling_mean_30d"}
    page.locator(".hnbw-panel .hnbw-row-n3").scroll_into_view_if_needed()
    shot(page, "lab-layout-1500-table")

    # The widget's graph: drawn by the extension, as wide as the output at most, all 13 nodes
    # (and the input) inside the visible drawing.
    page.locator(".hnbw-panel .lm-TabBar-tab", has_text="graph").click()
    svg = page.locator(".hnbw-panel .hnbw-graph svg.hnb-dag")
    svg.wait_for(timeout=10_000)
    geo = page.evaluate(
        """() => {
            const panel = document.querySelector('.hnbw-panel').getBoundingClientRect();
            const svg = document.querySelector('.hnbw-panel .hnbw-graph svg.hnb-dag');
            const s = svg.getBoundingClientRect();
            const inside = [...svg.querySelectorAll('g.hnb-node')].filter(g => {
                const b = g.getBoundingClientRect();
                return b.left >= s.left - 1 && b.right <= s.right + 1 && b.width > 0;
            }).length;
            return {svg_width: s.width, panel_width: panel.width, inside,
                    total: svg.querySelectorAll('g.hnb-node').length};
        }"""
    )
    assert geo["svg_width"] <= geo["panel_width"], geo
    assert geo["inside"] == geo["total"] == 13, geo
    shot(page, "lab-layout-1500-graph")
    # Zoom in, then back to the whole DAG.
    view = page.locator(".hnbw-panel .hnb-dag-view")
    view.locator(".hnb-zoom-in").click()
    assert float(view.get_attribute("data-zoom")) > 1
    view.locator(".hnb-zoom-fit").click()
    assert float(view.get_attribute("data-zoom")) == 1
    # The side panel's drawing fits the panel too.
    side = page.evaluate(
        f"""() => {{
            const p = document.querySelector('#{PANEL}').getBoundingClientRect();
            const s = document.querySelector('#{PANEL} svg.hnb-dag').getBoundingClientRect();
            return {{panel: p.width, svg: s.width}};
        }}"""
    )
    assert side["svg"] <= side["panel"], side


# -- 1: a saved notebook without its widgets ----------------------------------------------------


def test_saved_notebook_without_widget_models_shows_each_cells_snapshot(
    lab: Lab, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient
    from nbformat.sign import NotebookNotary

    monkeypatch.setenv("HAMILTON_NB_CACHE", str(tmp_path / "cache"))
    path = write_notebook(lab, [LOAD, HELPER, CELL_A, CELL_B])
    nb = nbformat.read(lab.root / path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nb.metadata.pop("widgets", None)  # saved without widget state: Lab has no model
    assert "application/vnd.jupyter.widget-view+json" in json.dumps(nb.cells[3].outputs)

    def check(name: str, snapshot: bool) -> None:
        page = open_notebook(browser, lab, path)
        try:
            out = page.locator(".hnb-run-output")
            out.locator('g.hnb-node[data-node="features"][data-status="computed"]').wait_for(
                timeout=30_000)
            assert out.locator('g.hnb-node[data-node="clean"]').get_attribute(
                "data-status") == "cached"
            page.wait_for_timeout(1000)
            assert page.get_by_text("Error displaying widget").count() == 0
            if snapshot:  # drawn in place of the widget, with the table of the run
                snap = page.locator(".hnb-snapshot")
                assert snap.locator('tr[data-node="features"][data-status="computed"]').count()
            # cell A keeps the snapshot of its own run
            assert "2 nodes: 2 computed" in page.locator(".hnbw-static").first.text_content()
            shot(page, name)
        except Exception:
            shot(page, f"{name}-failed")
            raise
        finally:
            page.close()

    # Untrusted (not signed here): Lab skips the widget view and draws the run's DAG state.
    nbformat.write(nb, lab.root / path)
    check("lab-saved-notebook-untrusted", snapshot=False)
    # Trusted (as when the user saved it in Lab): the widget view is chosen, its model is gone,
    # and the extension replaces the error by the snapshot with its table.
    NotebookNotary().sign(nb)
    nbformat.write(nb, lab.root / path)
    check("lab-saved-notebook-snapshot", snapshot=True)


# -- 7: checkpoint restore writes code back -----------------------------------------------------


def test_checkpoint_restore_lists_differing_cells_and_writes_code_back(page_of: Any) -> None:
    page = page_of([LOAD, HELPER, CELL_A, CELL_B,
                    ("save", "code", "%hamilton checkpoint save v1")])
    run_all(page)
    _node(page, "features", "computed").wait_for(timeout=60_000)
    _wait_idle(page)
    edited = CELL_B[2].replace("clean + 1", "clean + 100")
    _set_source(page, "cell-b", edited)
    _run_cell(page, "cell-b")
    _wait_idle(page)
    page.wait_for_function(
        f"() => !document.querySelector('#{PANEL} .hnb-differ li')", timeout=30_000)
    # restore from a new cell
    page.evaluate(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget;
            nb.content.activeCellIndex = nb.content.widgets.length - 1;
            return window.jupyterapp.commands.execute('notebook:insert-cell-below');
        }""")
    page.evaluate(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            nb.activeCell.model.sharedModel.setSource('%hamilton checkpoint restore v1');
            return window.jupyterapp.commands.execute('notebook:run-cell');
        }""")
    item = page.locator(f"#{PANEL} .hnb-differ li[data-cell-id='cell-b']")
    item.wait_for(timeout=30_000)
    assert page.locator(f"#{PANEL} .hnb-differ li").count() == 1
    shot(page, "lab-restore-cells-differ")

    page.locator(f"#{PANEL} .hnb-write-back").click()
    page.wait_for_function(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
                 .find(c => c.model.id === 'cell-b').model.sharedModel.getSource()
                 .includes('clean + 1\\n')""", timeout=15_000)
    assert _source(page, "cell-b").rstrip() == CELL_B[2].rstrip()
    page.wait_for_function(f"() => !document.querySelector('#{PANEL} .hnb-differ li')",
                           timeout=10_000)
    shot(page, "lab-restore-written-back")
    # One undo puts the cell text back.
    page.locator(".Toastify__toast button", has_text="Undo").click()
    page.wait_for_function(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
                 .find(c => c.model.id === 'cell-b').model.sharedModel.getSource()
                 .includes('clean + 100')""", timeout=10_000)
    assert _source(page, "cell-b") == edited

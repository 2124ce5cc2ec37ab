"""The ipywidgets cache panel in a real JupyterLab, driven with Debian's chromium.

Runs a notebook with ``%load_ext hamilton_nb`` and two ``%%hamilton`` cells, then asserts on the
DOM that the panel rendered by jupyterlab_widgets shows the nodes, their statuses and the summary
line, that a button click reaches the kernel and updates the row, and that only one live panel
exists. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from typing import Any

import lab_fixtures
import pytest
from lab_fixtures import Lab, open_notebook, run_all, shot, write_notebook

# pytest finds fixtures by name in the test module's namespace.
lab = lab_fixtures.lab
browser = lab_fixtures.browser

CELL_A = ("%%hamilton\ndef raw() -> int:\n    return 21\n\n"
          "def clean(raw: int) -> int:\n    return raw * 2\n")
CELL_B = "%%hamilton\ndef features(clean: int) -> int:\n    return clean + 1\n"


def _row(page: Any, node: str) -> Any:
    return page.locator(f".hnbw-panel .hnbw-row-{node}")


@pytest.mark.browser
def test_panel_shows_statuses_and_recompute_updates_the_row(lab: Lab, browser: Any) -> None:
    errors: list[str] = []
    path = write_notebook(lab, [("load", "code", "%load_ext hamilton_nb"),
                                ("cell-a", "code", CELL_A),
                                ("cell-b", "code", CELL_B)])
    page = open_notebook(browser, lab, path, errors)
    try:
        run_all(page)
        # cell B ran `features`: its inputs came from the cache cell A filled
        _row(page, "features").locator(".hnbw-status-computed").wait_for(timeout=60_000)
        panel = page.locator(".hnbw-panel")
        assert panel.count() == 1  # cell A's panel became a static snapshot, not a 2nd widget
        assert page.locator(".hnbw-static").count() == 1
        assert "2 nodes: 2 computed" in page.locator(".hnbw-static .hnbw-summary-static")\
            .text_content()
        for node, status in (("raw", "cached"), ("clean", "cached"), ("features", "computed")):
            row = _row(page, node)
            assert row.locator(f".hnbw-status-{status}").count() == 1, (node, status)
            assert row.locator(".hnbw-c-node").text_content() == node
        # the cell is named as users know it (its prompt number and first node), not by its id
        assert _row(page, "features").locator(".hnbw-c-cell").text_content() == "[3] features"
        assert _row(page, "raw").locator(".hnbw-c-cell").text_content() == "[2] raw +1"
        summary = panel.locator(".hnbw-summary").text_content()
        assert summary.startswith("3 nodes: 2 cached, 1 computed"), summary
        shot(page, "widget-panel")

        # A click on "recompute" goes through the comm to the kernel and back.
        _row(page, "clean").locator(".hnbw-btn-recompute").click()
        _row(page, "clean").locator(".hnbw-status-computed").wait_for(timeout=30_000)
        panel.locator(".hnbw-message", has_text="recomputed `clean`").wait_for(timeout=10_000)
        assert panel.locator(".hnbw-summary").text_content().startswith(
            "2 nodes: 1 cached, 1 computed")
        assert _row(page, "raw").locator(".hnbw-status-cached").count() == 1

        _row(page, "clean").locator(".hnbw-btn-preview").click()
        panel.locator(".hnbw-preview pre", has_text="42").wait_for(timeout=10_000)
        shot(page, "widget-panel-after-recompute")

        # The graph tab: drawn by the lab extension's renderer (the same layout as the side
        # panel), coloured by status.
        panel.locator(".lm-TabBar-tab", has_text="graph").click()
        graph = panel.locator(".hnbw-graph svg.hnb-dag")
        graph.wait_for(timeout=10_000)
        assert graph.locator("g.hnb-node[data-node='clean'][data-status='computed']").count() == 1
        assert graph.locator("path.hnb-edge").count() == 2
        shot(page, "widget-panel-graph")
        assert not [e for e in errors if "widget" in e.lower() or "hnbw" in e.lower()], errors
    except Exception:
        shot(page, "widget-panel-failed")
        raise
    finally:
        page.close()

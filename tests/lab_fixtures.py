"""Shared fixtures for real-browser tests: a JupyterLab server and Debian's chromium (playwright).

A plain module (not a conftest) so that browser test files opt in explicitly::

    import lab_fixtures
    from lab_fixtures import Lab, open_notebook, run_all, shot, write_notebook

    lab = lab_fixtures.lab  # pytest finds fixtures by name in the test module's namespace
    browser = lab_fixtures.browser

Used by tests/test_panel_browser.py (the ipywidgets panel) and tests/test_lab_extension.py (the
side panel of labextension/, opened with ``open_notebook(..., side_panel=...)``).

The recipe is /work/shared/guides/labextension.md §2: ``python -m jupyterlab`` on a free port
with a token, temporary root/settings/workspace dirs, the news toast disabled, the app exposed
as ``window.jupyterapp``; chromium from ``$CHROMIUM`` or PATH (``playwright install`` is never
needed). Each notebook lives in its own folder, so each kernel has its own cache folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

__all__ = ["ARTIFACTS", "Lab", "browser", "chromium", "lab", "open_notebook", "run_all", "shot",
           "write_notebook"]


def chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab server."""

    def __init__(self, url: str, token: str, root: Path) -> None:
        self.url = url
        self.token = token
        self.root = root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if chromium() is None:
        pytest.skip("chromium not installed (apt-get install chromium, or set CHROMIUM)")
    base = tmp_path_factory.mktemp("lab")
    root, settings, workspaces, runtime = (base / d for d in ("root", "settings", "ws", "rt"))
    for d in (root, settings, workspaces, runtime):
        d.mkdir()
    # Keep the "Would you like to get notified about official Jupyter news?" toast away.
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = _free_port()
    token = uuid.uuid4().hex
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    env.pop("HAMILTON_NB_CACHE", None)  # each notebook caches in its own folder
    log_path = base / "lab.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={workspaces}", "--LabApp.news_url=None",
         "--LabApp.expose_app_in_browser=True"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + log_path.read_text()) \
                        from None
                time.sleep(0.3)
        yield Lab(url, token, root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium(),
            args=["--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        try:
            yield b
        finally:
            b.close()


def write_notebook(lab: Lab, cells: list[tuple[str, str, str]]) -> str:
    """Write a notebook of ``(cell_id, "code"|"markdown", source)`` cells in its own folder
    (own kernel cwd, hence own cache); return its path relative to the server root."""
    import nbformat

    name = f"t{uuid.uuid4().hex[:8]}"
    folder = lab.root / name
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for cell_id, kind, source in cells:
        cell = (nbformat.v4.new_markdown_cell if kind == "markdown" else
                nbformat.v4.new_code_cell)(source)
        cell["id"] = cell_id
        nb.cells.append(cell)
    nbformat.write(nb, folder / "nb.ipynb")
    return f"{name}/nb.ipynb"


def open_notebook(browser: Any, lab: Lab, path: str, errors: list[str] | None = None,
                  side_panel: str | None = None,
                  on_page: Callable[[Any], None] | None = None) -> Any:
    """A new page with the notebook open and its kernel idle (a unique workspace, reset, so a
    restored workspace never runs cells in another notebook). Page errors go to ``errors``.
    ``side_panel``: the id of a right-sidebar widget to open (by clicking its tab) and wait for.
    ``on_page``: called with the page before it loads (to listen to its websockets)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    if on_page is not None:
        on_page(page)
    if errors is not None:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    workspace = uuid.uuid4().hex[:10]
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={lab.token}")
    page.wait_for_function(
        """path => {
            const app = window.jupyterapp;
            const w = app && app.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return !!(w && w.context && w.context.path === path && k && k.status === 'idle'
                && w.content.widgets.length > 0);
        }""",
        arg=path,
        timeout=60_000,
    )
    if side_panel is not None:
        page.locator(f'.jp-SideBar.jp-mod-right li[data-id="{side_panel}"]').click()
        page.locator(f"#{side_panel}").wait_for(state="visible")
    return page


def run_all(page: Any) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path

"""Shared fixtures: a real in-process IPython shell with the extension loaded, plain sessions,
and a call log that does not take part in cache keys.

Why the call log is a *module*: a function that appends to a global list reads that list, and a
list's fingerprint changes with every call — the list would then be part of the node's code
version and every run would miss. The module declares its own version
(``__hamilton_nb_version__``), so ``hnb_calls.log`` can record calls without changing any key.
"""

from __future__ import annotations

import sys
import textwrap
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import hamilton_nb
from hamilton_nb import Session

CALLS_MODULE = "hnb_calls"


@pytest.fixture
def calls() -> list[str]:
    """A fresh call log, importable as ``hnb_calls`` (``hnb_calls.log.append(name)``)."""
    mod = types.ModuleType(CALLS_MODULE)
    mod.log = []  # type: ignore[attr-defined]
    # A module's in-memory content is part of the keys of nodes that read it; this one declares
    # its version instead, so that logging a call does not change any key.
    mod.__hamilton_nb_version__ = "call log"  # type: ignore[attr-defined]
    sys.modules[CALLS_MODULE] = mod
    yield mod.log
    sys.modules.pop(CALLS_MODULE, None)


class NB:
    """A thin driver over a real IPython InteractiveShell with hamilton_nb loaded."""

    def __init__(self, ip: Any) -> None:
        self.ip = ip

    @property
    def ns(self) -> dict[str, Any]:
        return self.ip.user_ns

    @property
    def session(self) -> Session:
        return hamilton_nb.session()

    def run(self, code: str, cell_id: str | None = None) -> Any:
        """Run a cell as the front-end would; re-raise what it raised (UsageError included)."""
        res = self.ip.run_cell(textwrap.dedent(code), cell_id=cell_id)
        err = res.error_before_exec or res.error_in_exec
        if err is not None:
            raise err
        return res.result

    def cell(self, body: str, line: str = "", cell_id: str | None = None) -> Any:
        """Run a ``%%hamilton`` cell."""
        return self.run(f"%%hamilton {line}\n" + textwrap.dedent(body), cell_id=cell_id)

    def value(self, name: str) -> Any:
        """A name's value as a cell that mentions it sees it (cached values load lazily)."""
        return self.run(name)

    def line(self, line: str) -> Any:
        return self.ip.run_line_magic("hamilton", line)

    def statuses(self) -> dict[str, str]:
        df = self.session.last_run()
        return dict(zip(df["node"], df["status"], strict=True))


@pytest.fixture(scope="session")
def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "hamilton_nb")
    return ip


@pytest.fixture
def nb(_shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> NB:
    """An isolated notebook: empty namespace, empty live DAG, default settings, own cache dir."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HAMILTON_NB_CACHE", str(cache))
    ip = _shell
    if "hamilton" not in ip.magics_manager.magics["cell"]:  # a test unloaded the extension
        ip.run_line_magic("load_ext", "hamilton_nb")
    s = hamilton_nb.session()
    s.reset()
    ip.reset(new_session=False)  # clears user_ns in place: the session keeps the same dict
    if s.dag.config:
        s.set_config({})
    s.settings.behavior.clear()
    s.settings.format.clear()
    s.settings.warned.clear()  # "said once" warnings: once per test, not once per test run
    s.on_change = "flag"
    s.set_cache_dir(cache)
    ip.user_ns[CALLS_MODULE] = sys.modules[CALLS_MODULE]
    yield NB(ip)
    # Settings live on the one session every shell test shares (the compatibility suite
    # too): a test that changes how data-loader files are checked must not leak it.
    hamilton_nb.session().settings.file_check = "content"
    hamilton_nb.session().close()


class PlainSession:
    """A ``Session`` without IPython: cells are registered with ``register_cell``."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.ns: dict[str, Any] = {}
        self.s = Session(namespace=self.ns, cache_dir=cache_dir)

    def exec(self, code: str) -> None:
        """An ordinary (non-hamilton) notebook cell."""
        exec(textwrap.dedent(code), self.ns)

    def cell(self, body: str, cell_id: str = "c1") -> None:
        self.s.register_cell(textwrap.dedent(body), cell_id)

    def run(self, *outputs: str, **inputs: Any) -> dict[str, Any]:
        return self.s.run(list(outputs), inputs=inputs or None)

    def statuses(self) -> dict[str, str]:
        df = self.s.last_run()
        return dict(zip(df["node"], df["status"], strict=True))

    def reopen(self) -> PlainSession:
        """A new session (a restarted kernel) on the same cache folder and namespace."""
        self.s.close()
        other = PlainSession(self.cache_dir)
        other.ns.update({k: v for k, v in self.ns.items() if k != "__builtins__"})
        return other


@pytest.fixture
def ps(tmp_path: Path, calls: list[str]) -> PlainSession:
    p = PlainSession(tmp_path / "cache")
    p.exec("import hnb_calls")
    yield p
    p.s.close()


def counts(log: list[str]) -> Counter[str]:
    return Counter(log)

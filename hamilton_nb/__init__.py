"""hamilton_nb: incremental, cached, restartable Apache Hamilton dataflows in Jupyter.

Load it in a notebook with ``%load_ext hamilton_nb`` and write Hamilton functions in
``%%hamilton`` cells. From Python, :func:`session` returns the kernel's session.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .session import RunFailed, Session, SessionError
    from .versions import DataFile

# Imported on first use (PEP 562): `import hamilton_nb` and `%load_ext hamilton_nb` must not pay
# for Hamilton (which imports pandas and every installed extension it knows: dask, matplotlib…).
_LAZY = {"Session": ".session", "RunFailed": ".session", "SessionError": ".session",
         "DataFile": ".versions"}


class _Package(types.ModuleType):
    """This package's module type. Importing the submodule ``hamilton_nb.session`` sets the
    package attribute ``session`` to it; the function :func:`session` must stay. (When the
    submodule was imported eagerly, above ``def session``, the def simply came second.)"""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "session" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


# importlib.reload (what %reload_ext does) re-executes this file in the same module dict:
# keep the live session instead of silently dropping the user's DAG.
_SESSION: Session | None = globals().get("_SESSION")
# The namespace of the shell that loaded the extension: the session binds values there.
_NAMESPACE: MutableMapping[str, Any] | None = globals().get("_NAMESPACE")


def session() -> Session:
    """The kernel's session (created on first use)."""
    global _SESSION
    if _SESSION is None:
        from .session import Session

        _SESSION = Session() if _NAMESPACE is None else Session(namespace=_NAMESPACE)
    return _SESSION


def _existing_session() -> Session | None:
    """The session if one was created, else None (never creates one)."""
    return _SESSION


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hamilton_nb``: register the magics (and the front-end bridges).

    The session — and with it Hamilton, pandas and the store — is created by the first
    ``%%hamilton`` cell or ``%hamilton`` command, not here.
    """
    global _SESSION, _NAMESPACE
    if _SESSION is not None and _SESSION.namespace is not ipython.user_ns:
        _SESSION.close()
        _SESSION = None
    _NAMESPACE = ipython.user_ns
    from .magics import load

    load(ipython, session, _existing_session)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext hamilton_nb``: unregister every callback the extension registered."""
    from .magics import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "hamilton-nb"}]


__all__ = ["DataFile", "RunFailed", "Session", "SessionError", "__version__", "session"]

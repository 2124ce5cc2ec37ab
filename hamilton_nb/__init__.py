"""hamilton_nb: incremental, cached, restartable Apache Hamilton dataflows in Jupyter.

Load it in a notebook with ``%load_ext hamilton_nb`` and write Hamilton functions in
``%%hamilton`` cells. From Python, :func:`session` returns the kernel's session.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .session import RunFailed, Session, SessionError
from .versions import DataFile

# importlib.reload (what %reload_ext does) re-executes this file in the same module dict:
# keep the live session instead of silently dropping the user's DAG.
_SESSION: Session | None = globals().get("_SESSION")


def session() -> Session:
    """The kernel's session (created on first use)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = Session()
    return _SESSION


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hamilton_nb``: register the magics (and the front-end bridges)."""
    global _SESSION
    if _SESSION is None or _SESSION.namespace is not ipython.user_ns:
        if _SESSION is not None:
            _SESSION.close()
        _SESSION = Session(namespace=ipython.user_ns)
    from .magics import load

    load(ipython, _SESSION)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext hamilton_nb``: unregister every callback the extension registered."""
    from .magics import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "hamilton-nb"}]


__all__ = ["DataFile", "RunFailed", "Session", "SessionError", "__version__", "session"]

"""Errors shared by the session and the modules it uses (checkpoint, export), kept apart so that
those modules need not import the session: imports flow one way, session -> checkpoint/export."""

from __future__ import annotations


class SessionError(Exception):
    """A request the session cannot carry out; the message says what to do instead."""


__all__ = ["SessionError"]

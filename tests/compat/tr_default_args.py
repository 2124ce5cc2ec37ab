# Copied verbatim from apache/hamilton tests/resources/test_default_args.py
# at commit 4e5dfdf0b730266863a430ef1d2205eca198af13; only these two header lines were added.
"""
Module for dummy functions to test graph things with.
"""


def A(required: int, defaults_to_zero: int = 0) -> int:
    """Function that should become part of the graph - A"""
    return required + defaults_to_zero


def B(A: int) -> int:
    """Function that should become part of the graph - B"""
    return A * A


def C(A: int) -> int:  # empty string doc on purpose.
    return A * 2


def D(defaults_to_zero: int) -> int:
    """This requires the default value."""
    return defaults_to_zero * 2

"""`%hamilton why` names the part of a code version that changed, in words (not its key)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("before", "after", "setup", "expected"),
    [
        ("def x(k: int = 2) -> int:\n    return k\n",
         "def x(k: int = 3) -> int:\n    return k\n", "", "code of `x` changed"),
        ("@parameterize(x=dict(k=value(LIMIT)))\ndef base(k: int) -> int:\n    return k\n",
         None, "LIMIT = 4", "`LIMIT`, used in a decorator of `base`, changed"),
        ("def x() -> str:\n    return os.environ.get('HNB_WHY_VAR', '')\n",
         None, "os.environ['HNB_WHY_VAR'] = 'b'", "environment variable `HNB_WHY_VAR` changed"),
        ("def x() -> int:\n    return _h()\n", None,
         "def _h():\n    return 2\n", "code of helper `_h` changed"),
        ("def x() -> int:\n    return K\n", None, "K = 5", "global `K` changed"),
    ],
    ids=["default_in_source", "decorator_value", "env_var", "helper", "constant"],
)
def test_why_says_which_part_changed(nb, monkeypatch, before, after, setup, expected):
    monkeypatch.setenv("HNB_WHY_VAR", "a")
    nb.run("import os\nfrom hamilton.function_modifiers import parameterize, value\n"
           "LIMIT = 3\nK = 1\ndef _h():\n    return 1\n")
    nb.cell(before, cell_id="c1")
    if setup:
        nb.run(setup)
    nb.cell(after or before, cell_id="c1")
    assert nb.statuses()["x"] == "computed"  # every case's node is `x` (@parameterize too)
    assert nb.session.why("x") == f"`x` was recomputed: {expected}."

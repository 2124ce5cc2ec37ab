"""Messages people understand: a node failure shows the user's frames (not hamilton_nb's or
Hamilton's), an interrupt says what was kept, cells are named by their nodes, and checkpoint
diffs say what changed. In a real in-process IPython shell."""

from __future__ import annotations

import re
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from hamilton_nb.events import NodeEvent, Status
from hamilton_nb.report import interrupt_note


def test_node_failure_traceback_shows_user_frames_and_the_resume_note(nb: Any) -> None:
    nb.run("def helper(x):\n    return x / 0\n")
    with capture_output() as out:
        nb.ip.run_cell("%%hamilton\ndef raw() -> int:\n    return 3\n\n"
                       "def clean(raw: int) -> int:\n    return helper(raw)\n")
    tb = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout)  # no colours
    assert "ZeroDivisionError" in tb and "helper(raw)" in tb and "x / 0" in tb
    for internal in ("runner.py", "hamilton/node.py", "hamilton/driver.py", "execution/",
                     "_run_and_bind"):
        assert internal not in tb, internal
    assert "fix the cell and re-run it to resume from here" in tb
    assert len(tb.splitlines()) < 40, tb  # not 85 lines through the machinery


def test_interrupt_note_says_which_nodes_were_kept() -> None:
    evs = [NodeEvent(1, "raw", Status.COMPUTED, ""), NodeEvent(1, "clean", Status.CACHED, ""),
           NodeEvent(1, "slow", Status.FAILED, "", error="KeyboardInterrupt")]
    note = interrupt_note(evs)
    assert "kept 2 finished nodes" in note and "`raw`" in note and "`clean`" in note
    assert "`slow`" not in note
    assert "nothing was kept" in interrupt_note([])


def test_conflict_message_names_the_cell_by_its_nodes(nb: Any) -> None:
    nb.cell("def raw() -> int:\n    return 1\n\ndef clean(raw: int) -> int:\n    return raw\n",
            cell_id="6d7aa807-0000-4000-8000-000000000001")
    with pytest.raises(UsageError) as e:
        nb.cell("def raw() -> int:\n    return 2\n", cell_id="b1")
    assert "already defined by the cell defining `raw` (and 1 more)" in str(e.value)
    assert "6d7aa807" not in str(e.value)


def test_checkpoint_diff_says_what_changed(nb: Any) -> None:
    nb.cell("def raw() -> int:\n    return 1\n\ndef clean(raw: int) -> int:\n    return raw\n",
            cell_id="a")
    nb.line("checkpoint save one")
    nb.cell("def raw() -> int:\n    return 2\n\ndef clean(raw: int) -> int:\n    return raw\n",
            cell_id="a")
    nb.cell("def extra(clean: int) -> int:\n    return clean\n", cell_id="b")
    diff = nb.line("checkpoint diff one")
    what = dict(zip(diff["node"], diff["what"], strict=True))
    assert what["raw"] == "code of `raw` changed (and so its value)"
    assert what["clean"] == "value of `clean` changed"
    assert what["extra"] == "`extra` added with a new cell"
    listed = nb.line("checkpoint list")
    assert (listed["created"].dt.microsecond == 0).all()  # to the second


def test_warn_level_checks_are_shown_when_computed_and_again_from_the_cache(
    nb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    nb.run("import pandas as pd\nfrom hamilton.function_modifiers import check_output")
    body = ("@check_output(range=(0, 10), importance='warn')\n"
            "def val() -> pd.Series:\n    return pd.Series([1, 50])\n")
    with capture_output() as first, caplog.at_level("WARNING"):
        nb.cell(body)
    # computed: Hamilton's own warning (a log record; pytest captures the logging)
    assert "1 outside" in caplog.text and "from the cache" not in first.stderr
    caplog.clear()
    with capture_output() as second, caplog.at_level("WARNING"):
        nb.cell(body)
    assert "1 outside" not in caplog.text  # nothing ran: Hamilton said nothing
    assert nb.statuses()["val_range_validator"] == "cached"
    assert "check failed (from the cache, as when it ran)" in second.stderr
    assert "1 outside" in second.stderr
    with capture_output() as fixed:
        nb.cell(body.replace("50", "5"))
    assert "check failed" not in fixed.stderr and "validator failed" not in fixed.stderr

"""The run report under a cell (terminal IPython, nbconvert): what it lists and what it counts."""

from __future__ import annotations

from hamilton_nb.events import CacheNote, NodeEvent, Status
from hamilton_nb.report import ROWS_PER_REASON, RunReport


def ev(node: str, status: Status, reason: str, error: str | None = None) -> NodeEvent:
    return NodeEvent(1, node, status, reason, "cell-1", 0.001, 0.0, 21, CacheNote.STORED,
                     error=error, code_version="cv", data_version="dv")


def test_many_nodes_computed_for_one_reason_list_the_first_and_count_the_rest():
    events = [ev(f"n_{i}", Status.COMPUTED, "no cached value yet") for i in range(50)]
    text = repr(RunReport(events))
    listed = [line.split()[0] for line in text.splitlines()[2:]]
    assert listed[:ROWS_PER_REASON] == [f"n_{i}" for i in range(ROWS_PER_REASON)]
    assert f"… {50 - ROWS_PER_REASON} more" in text
    assert "n_49" not in text
    assert text.splitlines()[0] == "50 nodes: 50 computed"


def test_every_failure_is_listed_and_other_reasons_keep_their_own_rows():
    events = [ev(f"a_{i}", Status.COMPUTED, "no cached value yet") for i in range(30)]
    events += [ev(f"f_{i}", Status.FAILED, "no cached value yet", error="ZeroDivisionError")
               for i in range(20)]
    events += [ev("edited", Status.COMPUTED, "its code changed")]
    html = RunReport(events)._repr_html_()
    text = repr(RunReport(events))
    for i in range(20):
        assert f"f_{i} " in text and f">f_{i}<" in html
    assert "edited" in text and "its code changed" in text
    assert f"… {30 - ROWS_PER_REASON} more" in text and f"… {30 - ROWS_PER_REASON} more" in html


def test_an_all_hit_run_lists_no_rows_only_its_summary():
    events = [ev(f"n_{i}", Status.CACHED, "code and inputs unchanged") for i in range(5)]
    assert repr(RunReport(events)) == "5 nodes: 5 cached"

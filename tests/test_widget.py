"""The ipywidgets cache panel (hamilton_nb/widget.py), without a front-end.

Real sessions over real functions; real ipywidgets objects (with no kernel they simply have no
comm). Buttons are pressed with ``Button.click()``, which runs the same ``on_click`` handlers a
browser click reaches through the comm.
"""

from __future__ import annotations

import textwrap
from typing import Any

import ipywidgets as W
import nbformat
import pytest
from dag_sources import chain_cell
from IPython.utils.capture import capture_output
from ipywidgets.widgets.widget import _instances  # every open widget: a leak shows here
from nbconvert import HTMLExporter

import hamilton_nb.widget
from hamilton_nb.events import NodeEvent, NodeStarted
from hamilton_nb.report import summary_line
from hamilton_nb.widget import GRAPH_TAB, Panel, panel_for

PIPELINE = """
def raw() -> int:
    hnb_calls.log.append("raw")
    return 3

def clean(raw: int) -> int:
    hnb_calls.log.append("clean")
    return raw * 2

def features(clean: int) -> int:
    hnb_calls.log.append("features")
    return clean + 1
"""


def statuses(panel: Panel) -> dict[str, str]:
    return {name: row.status for name, row in panel.rows.items()}


def shown(panel: Panel) -> list[str]:
    """Node names of the rows in the table widget, in display order (what the front-end gets)."""
    names = []
    for box in panel.table.children:
        [cls] = [c for c in box._dom_classes if c.startswith("hnbw-row-")]
        names.append(cls.removeprefix("hnbw-row-"))
    return names


def row_view(panel: Panel, node: str) -> Any:
    [box] = [b for b in panel.table.children if f"hnbw-row-{node}" in b._dom_classes]
    return box


def button(panel: Panel, node: str, label: str) -> W.Button:
    _info, actions = row_view(panel, node).children
    [b] = [c for c in actions.children
           if isinstance(c, W.Button) and f"hnbw-btn-{label}" in c._dom_classes]
    return b


def info_html(panel: Panel, node: str) -> str:
    return row_view(panel, node).children[0].value


@pytest.fixture
def pipe(ps: Any) -> Any:
    ps.cell(PIPELINE)
    return ps


def test_rows_show_each_nodes_status_timings_and_summary(pipe: Any, calls: list[str]) -> None:
    panel = panel_for(pipe.s)
    assert statuses(panel) == dict.fromkeys(("raw", "clean", "features"), "never_run")
    pipe.run("features")
    assert statuses(panel) == dict.fromkeys(("raw", "clean", "features"), "computed")
    assert "hnbw-status-computed" in info_html(panel, "clean")
    assert panel.rows["clean"].duration is not None and panel.rows["clean"].duration > 0
    assert panel.rows["clean"].cell_id == "c1"
    assert panel.rows["clean"].size
    events = [pipe.s.node_events[n] for n in ("raw", "clean", "features")]
    assert summary_line(events) in panel.summary.value

    pipe.run("features")
    assert statuses(panel) == dict.fromkeys(("raw", "clean", "features"), "cached")
    assert "hnbw-status-cached" in info_html(panel, "features")
    assert panel.rows["features"].saved and panel.rows["features"].saved > 0
    assert "3 cached" in panel.summary.value and "saved" in panel.summary.value
    assert shown(panel) == ["raw", "clean", "features"]


def test_recompute_button_recomputes_exactly_that_node(pipe: Any, calls: list[str]) -> None:
    panel = panel_for(pipe.s)
    pipe.run("features")
    calls.clear()
    button(panel, "clean", "recompute").click()
    assert calls == ["clean"]
    assert pipe.ns["clean"] == 6  # bound in the notebook like a run's output
    assert panel.rows["clean"].status == "computed"
    assert panel.rows["raw"].status == "cached"  # its input came from the cache
    assert panel.rows["clean"].in_last_run and not panel.rows["features"].in_last_run
    assert "recomputed `clean`" in panel.message.value
    assert "hnbw-status-computed" in info_html(panel, "clean")
    # and it is cached again
    calls.clear()
    pipe.run("clean")
    assert calls == []


def test_clear_button_deletes_only_that_nodes_entry(pipe: Any, calls: list[str]) -> None:
    panel = panel_for(pipe.s)
    pipe.run("features")
    assert set(pipe.s.cache_entries()["node"]) == {"raw", "clean", "features"}
    button(panel, "clean", "clear").click()
    assert set(pipe.s.cache_entries()["node"]) == {"raw", "features"}
    assert "cache entry cleared" in panel.rows["clean"].why
    assert "cleared 1 cache entry of `clean`" in panel.message.value
    calls.clear()
    pipe.run("features")
    assert calls == ["clean"]  # features: same input again, so early cutoff keeps it cached
    assert statuses(panel) == {"raw": "cached", "clean": "computed", "features": "cached"}


def test_failed_and_skipped_rows_and_failed_filter(pipe: Any) -> None:
    panel = panel_for(pipe.s)
    pipe.cell(PIPELINE.replace("return raw * 2", "raise ValueError('bad data')"))
    outcome = pipe.s.execute(["features"])
    assert "clean" in outcome.errors
    assert statuses(panel) == {"raw": "computed", "clean": "failed", "features": "skipped"}
    assert "ValueError: bad data" in panel.rows["clean"].why
    assert "ValueError: bad data" in info_html(panel, "clean")
    assert "upstream `clean` failed" in panel.rows["features"].why
    panel.filter.value = "failed"
    assert shown(panel) == ["clean"]
    panel.filter.value = "all"
    assert shown(panel) == ["raw", "clean", "features"]


def test_edited_cell_marks_stale_rows_and_stale_filter(pipe: Any) -> None:
    panel = panel_for(pipe.s)
    pipe.run("features")
    panel.filter.value = "stale"
    assert shown(panel) == []
    pipe.cell(PIPELINE.replace("return raw * 2", "return raw * 3"))  # registered, not run
    assert statuses(panel) == {"raw": "computed", "clean": "stale",
                               "features": "stale"}
    assert shown(panel) == ["clean", "features"]
    assert "2 stale" in panel.summary.value
    panel.filter.value = "recomputed"
    assert shown(panel) == ["raw"]


def test_not_cached_by_choice_and_uncacheable_rows(ps: Any) -> None:
    ps.exec("import threading")  # (an import inside the cell is not seen by its annotations)
    ps.cell("""
    def settings() -> int:
        return 1

    def lock(settings: int) -> threading.Lock:
        return threading.Lock()
    """)
    ps.s.set_behavior("settings", "disable")
    panel = panel_for(ps.s)
    with pytest.warns(UserWarning, match="not cached"):
        ps.run("lock")
    assert statuses(panel) == {"settings": "not_cached", "lock": "uncacheable"}
    assert panel.rows["settings"].label == "not cached (by choice)"
    assert panel.rows["lock"].label == "uncacheable (unhashable)"
    assert "uncacheable (unhashable)" in info_html(panel, "lock")
    panel.filter.value = "recomputed"
    assert shown(panel) == ["settings", "lock"]


def test_sort_by_duration_puts_the_slowest_node_first(ps: Any) -> None:
    ps.cell("""
    import time

    def a() -> int:
        return 1

    def b(a: int) -> int:
        time.sleep(0.05)
        return a

    def c(b: int) -> int:
        return b
    """)
    panel = panel_for(ps.s)
    ps.run("c")
    assert shown(panel) == ["a", "b", "c"]
    panel.sort.value = "duration"
    assert shown(panel)[0] == "b"
    panel.sort.value = "dag"
    assert shown(panel) == ["a", "b", "c"]


def test_rows_update_live_while_a_run_progresses(pipe: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(hamilton_nb.widget, "FLUSH_S", 0.0)  # every event reaches the browser
    panel = panel_for(pipe.s)
    seen: list[tuple[str, dict[str, str], str, str]] = []

    def probe(ev: Any) -> None:  # subscribed after the panel: sees the panel already updated
        if isinstance(ev, NodeStarted | NodeEvent):
            seen.append((f"{ev.kind}:{ev.node}", statuses(panel), panel.summary.value,
                         info_html(panel, ev.node)))

    pipe.s.subscribe(probe)
    pipe.run("features")
    by = {what: (rows, summary, html) for what, rows, summary, html in seen}
    rows, summary, html = by["node_started:clean"]
    assert rows == {"raw": "computed", "clean": "running", "features": "queued"}
    assert "hnbw-status-running" in html
    assert "running… 1/3 nodes done" in summary
    rows, _, _ = by["node_finished:clean"]
    assert rows == {"raw": "computed", "clean": "computed", "features": "queued"}
    assert "running…" not in panel.summary.value  # finished: the plain summary line
    assert statuses(panel) == dict.fromkeys(("raw", "clean", "features"), "computed")


def test_preview_shows_dataframe_head_and_repr_of_other_values(ps: Any) -> None:
    ps.exec("import pandas as pd")
    ps.cell("""
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"alpha": range(100), "beta": ["x"] * 100})

    def total(frame: pd.DataFrame) -> int:
        return int(frame.alpha.sum())
    """)
    panel = panel_for(ps.s)
    ps.run("total")
    ps.s.execute(["total"])  # all hits: values stay on disk
    button(panel, "frame", "preview").click()
    html = panel.preview.value
    assert "<table" in html and "alpha" in html and "beta" in html
    assert "(100, 2)" in html and "the cache" in html
    assert html.count("<tr") <= 12  # header + 10 rows: a head, not the whole frame
    button(panel, "total", "preview").click()
    assert "<pre" in panel.preview.value and "4950" in panel.preview.value


def test_one_panel_per_session_and_redisplay_replaces_the_old_output(nb: Any) -> None:
    nb.cell(PIPELINE)
    panel = panel_for(nb.session)
    assert panel_for(nb.session) is panel
    with capture_output() as first:
        nb.line("panel")
    [out] = first.outputs
    first_id = out.transient["display_id"]
    assert "application/vnd.jupyter.widget-view+json" in out.data
    n_widgets = len(_instances)

    nb.cell(PIPELINE.replace("return raw * 2", "return raw * 4"))
    with capture_output() as second:
        nb.line("panel")
    update, new = second.outputs
    # the earlier display became a static snapshot: no second live widget in the notebook
    assert update.update and update.transient["display_id"] == first_id
    assert "application/vnd.jupyter.widget-view+json" not in update.data
    assert "hnbw-static" in update.data["text/html"]
    assert new.data["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.model_id
    assert new.transient["display_id"] != first_id
    assert panel_for(nb.session) is panel
    assert len(_instances) == n_widgets  # nothing piled up
    assert sum(isinstance(w, Panel) and not w.closed and w.session is nb.session
               for w in _instances.values()) == 1


def test_mimebundle_carries_the_table_for_frontends_without_widgets(pipe: Any) -> None:
    panel = panel_for(pipe.s)
    pipe.run("features")
    pipe.run("features")
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.model_id
    text = bundle["text/plain"]
    assert "3 nodes: 3 cached" in text
    assert all(f"{n} " in text for n in ("raw", "clean", "features"))
    assert "hnbw-status-cached" in bundle["text/html"]
    assert "<svg" in bundle["text/html"]
    # nbconvert without saved widget state drops the widget view and uses text/html
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%hamilton panel")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    nb.cells.append(cell)
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert "hnbw-static" in body and "3 nodes: 3 cached" in body
    assert "code and inputs unchanged" in body


def test_graph_is_layered_by_depth_and_coloured_by_status(pipe: Any) -> None:
    panel = panel_for(pipe.s)
    panel.tabs.selected_index = GRAPH_TAB
    pipe.run("clean")
    [out] = panel.graph.outputs
    # the lab extension draws the state (MIME type); the SVG is the fallback without it
    state = out["data"]["application/vnd.hamilton-nb.run+json"]["state"]
    assert {n["name"]: n["status"] for n in state["nodes"]} == {
        "raw": "computed", "clean": "computed", "features": "never_run"}
    svg = out["data"]["text/html"]
    assert svg.startswith("<svg")
    for node, status in (("raw", "computed"), ("clean", "computed"), ("features", "never_run")):
        assert f"hnbw-gnode hnbw-gnode-{status}' data-node='{node}'" in svg
    xs = {}
    for node in ("raw", "clean", "features"):
        chunk = svg.split(f"data-node='{node}'>", 1)[1]
        xs[node] = float(chunk.split("<rect x='", 1)[1].split("'", 1)[0])
    assert xs["raw"] < xs["clean"] < xs["features"]  # one column per depth
    assert svg.count("class='hnbw-edge'") == 2  # raw -> clean -> features
    assert "data-from='raw' data-to='clean'" in svg


def test_unload_closes_the_panel_and_its_subscription(nb: Any) -> None:
    nb.cell(PIPELINE)
    panel = panel_for(nb.session)
    assert panel._on_event in nb.session._listeners
    nb.run("%unload_ext hamilton_nb")
    assert panel.closed and panel._on_event not in nb.session._listeners
    nb.run("%load_ext hamilton_nb")
    assert panel_for(nb.session) is not panel


def test_help_lists_the_panel_subcommand(nb: Any) -> None:
    with capture_output() as out:
        nb.line("help")
    assert "%hamilton panel" in textwrap.dedent(out.stdout)


def test_a_big_run_sends_few_updates_and_ends_exact(ps: Any) -> None:
    body = "\n".join(f"def n{i}() -> int:\n    return {i}\n" for i in range(300))
    ps.cell(body)
    panel = panel_for(ps.s)
    changes: list[str] = []
    panel.summary.observe(lambda change: changes.append(change["new"]), "value")
    ps.run(*[f"n{i}" for i in range(300)])
    # throttled to ten updates a second: far fewer than the 600 node events of the run
    assert len(changes) < 150, len(changes)
    assert set(statuses(panel).values()) == {"computed"}
    assert "300 nodes: 300 computed" in panel.summary.value


def test_a_large_dag_shows_the_first_rows_and_all_on_request(ps: Any) -> None:
    body = "\n".join(f"def n{i}() -> int:\n    return {i}\n" for i in range(150))
    ps.cell(body)
    ps.run(*[f"n{i}" for i in range(150)])
    panel = panel_for(ps.s)
    assert len(panel.table.children) == hamilton_nb.widget.MAX_ROWS
    assert panel.more.description == "show all 150 nodes"
    assert panel.more.layout.display != "none"
    panel.more.click()
    assert len(panel.table.children) == 150
    assert panel.more.layout.display == "none"


def test_a_long_running_node_shows_running_while_it_runs(ps: Any) -> None:
    ps.cell("""
    import time

    def fast() -> int:
        return 1

    def slow(fast: int) -> int:
        time.sleep(0.6)
        return fast + 1
    """)
    panel = panel_for(ps.s)
    seen: list[str] = []
    row_view(panel, "slow").children[0].observe(lambda c: seen.append(c["new"]), "value")
    ps.run("slow")
    # The start of `slow` came right after `fast` finished (inside the throttle window): the
    # timer sent it while `slow` ran, so the row said "running", not "queued", meanwhile.
    assert any("hnbw-status-running" in v for v in seen), seen
    assert "hnbw-status-computed" in seen[-1]


def test_clear_shows_cleared_and_recompute_says_why(pipe: Any) -> None:
    panel = panel_for(pipe.s)
    pipe.run("features")
    button(panel, "raw", "clear").click()
    assert panel.rows["raw"].status == "cleared"  # no longer claims to be cached
    assert "hnbw-status-cleared" in info_html(panel, "raw")
    assert "next run recomputes it" in panel.message.value
    button(panel, "clean", "recompute").click()
    assert panel.rows["clean"].status == "computed"
    assert panel.rows["clean"].reason == "recomputed on request"  # not "no cached value yet"


def test_stale_rows_say_what_changed(pipe: Any) -> None:
    pipe.exec("FACTOR = 2\ndef scale(x):\n    return x * FACTOR")
    pipe.cell(PIPELINE.replace("return raw * 2", "return scale(raw)"))
    pipe.run("features")
    panel = panel_for(pipe.s)
    pipe.exec("FACTOR = 3")  # an ordinary cell: no hamilton_nb event
    panel.refresh()
    assert panel.rows["clean"].status == "stale"
    assert "scale" in panel.rows["clean"].why and "changed" in panel.rows["clean"].why
    assert panel.rows["features"].why == "upstream `clean` is stale"
    assert pipe.s.status().set_index("node").loc["clean", "reason"] == \
        panel.rows["clean"].why  # %hamilton status says the same
    assert "code and inputs unchanged" not in panel.to_text()


def test_long_names_are_shortened_to_distinct_texts_with_the_full_name_as_tooltip() -> None:
    names = ["feature_rolling_mean_7d", "feature_rolling_mean_30d", "feature_rolling_mean_90d",
             "x", "a_very_long_prefix_then_same_suffix", "a_very_long_prefix_than_same_suffix"]
    short = hamilton_nb.widget.short_names(names, 16)
    assert len(set(short.values())) == len(names)
    assert short["x"] == "x"
    assert all(len(s) <= len(n) for n, s in short.items())
    row = hamilton_nb.widget.Row("feature_rolling_mean_30d", "cached")
    html = hamilton_nb.widget._row_html(row, short[row.node])
    assert "title='feature_rolling_mean_30d'" in html and short[row.node] in html


def test_widget_and_lab_extension_share_one_colour_language() -> None:
    import re
    from pathlib import Path

    css = (Path(__file__).resolve().parents[1] / "labextension/style/base.css").read_text()
    lab = dict(re.findall(r"--hnb-([a-z-]+):\s*(#[0-9a-f]{6});", css))
    style = hamilton_nb.widget.STATUS_STYLE
    for status in hamilton_nb.widget.LEGEND:
        assert lab[status.replace("_", "-")] == style[status][1], status
    assert "hnbw-legend" in hamilton_nb.widget.legend_html()


def test_terminal_prints_a_summary_and_only_rows_worth_reading(nb: Any) -> None:
    body = "\n".join(f"def n{i}() -> int:\n    return {i}\n" for i in range(30))
    nb.cell(body)
    with capture_output() as out:
        nb.cell(body + "\ndef last(n0: int) -> int:\n    return n0\n")
    text = out.outputs[-1].data["text/plain"]
    lines = text.splitlines()
    assert lines[0].startswith("31 nodes: 30 cached, 1 computed")
    assert any(ln.startswith("last ") for ln in lines)
    assert not any(ln.startswith("n5 ") for ln in lines)  # cached rows are counted, not listed
    assert "%hamilton panel" in lines[-1]


NOTEBOOK = {  # four cells: a chain over three of them and one cell on its own
    "c-raw": "def raw() -> int:\n    return RAW\n",
    "c-clean": "def clean(raw: int) -> int:\n    return raw * 2\n",
    "c-features": "def features(clean: int) -> int:\n    return clean + 1\n",
    "c-other": "def other() -> int:\n    return 7\n",
}


@pytest.fixture
def cells(ps: Any) -> Any:
    ps.exec("RAW = 3")
    for cell_id, body in NOTEBOOK.items():
        ps.cell(body, cell_id)
    return ps


def rows_from_scratch(panel: Panel) -> dict[str, Any]:
    """The rows a new panel of the same session computes (every row, nothing kept)."""
    fresh = Panel(panel.session)
    try:
        # the same prompt numbers and recompute requests: they come from this panel's history
        fresh._counts, fresh._requested = dict(panel._counts), set(panel._requested)
        fresh.refresh()
        return dict(fresh.rows)
    finally:
        fresh.close()


def info_updates(panel: Panel) -> dict[str, list[str]]:
    """node -> the HTML values its row widget is sent from now on."""
    sent: dict[str, list[str]] = {}
    for node in shown(panel):
        values = sent.setdefault(node, [])
        row_view(panel, node).children[0].observe(
            lambda c, values=values: values.append(c["new"]), "value")
    return sent


def test_rerunning_one_cell_keeps_the_other_rows_and_sends_nothing_for_them(cells: Any) -> None:
    panel = panel_for(cells.s)
    cells.run("features", "other")
    cells.run("features")  # served from the cache
    before = dict(panel.rows)
    sent = info_updates(panel)
    cells.run("features")  # the same again: nothing to show changed
    assert all(panel.rows[n] is before[n] for n in before)  # not even made again
    assert all(values == [] for values in sent.values())
    cells.run("other")  # the chain leaves the last run: its rows are sent, dimmed
    assert not panel.rows["raw"].in_last_run
    assert [len(sent[n]) for n in ("raw", "clean", "features")] == [1, 1, 1]
    assert "opacity:0.6" in sent["raw"][0]
    assert panel.rows == rows_from_scratch(panel)
    assert summary_line(cells.s.last_run_events()) in panel.summary.value


def test_an_upstream_edit_marks_the_downstream_rows_stale_across_cells(cells: Any) -> None:
    panel = panel_for(cells.s)
    panel.tabs.selected_index = GRAPH_TAB
    cells.run("features", "other")
    sent = info_updates(panel)
    cells.cell("def raw() -> int:\n    return RAW + 1\n", "c-raw")  # edited, run alone
    cells.run("raw")
    assert statuses(panel) == {"raw": "computed", "clean": "stale", "features": "stale",
                               "other": "computed"}
    assert panel.rows["clean"].reason == "upstream `raw` changed since it ran"
    assert panel.rows["features"].reason == "upstream `clean` is stale"
    assert "hnbw-status-stale" in info_html(panel, "features")
    assert "· 2 stale" in panel.summary.value
    assert panel.rows == rows_from_scratch(panel)
    state = panel.graph.outputs[0]["data"]["application/vnd.hamilton-nb.run+json"]["state"]
    assert {n["name"]: n["status"] for n in state["nodes"]}["features"] == "stale"
    cells.run("features")  # recomputed: nothing is stale any more
    assert "stale" not in statuses(panel).values()
    assert "stale" not in panel.summary.value
    assert panel.rows == rows_from_scratch(panel)
    cells.run("other")
    cells.exec("RAW = 10")  # a global `raw` reads: the next event shows the chain stale,
    cells.run("other")  # though this run (the same as the last) named none of its nodes
    assert statuses(panel)["raw"] == "stale" and statuses(panel)["features"] == "stale"
    assert panel.rows == rows_from_scratch(panel)
    assert sent["other"]  # its own run was sent


def test_cells_added_and_removed_update_the_table_and_keep_the_other_rows(cells: Any) -> None:
    panel = panel_for(cells.s)
    cells.run("features")
    kept = panel.rows["raw"]
    cells.cell("def extra(features: int) -> int:\n    return features * 3\n", "c-extra")
    assert shown(panel) == ["raw", "clean", "features", "other", "extra"]
    assert panel.rows["extra"].status == "never_run" and panel.rows["raw"] is kept
    cells.s.remove_cell("c-other")
    assert shown(panel) == ["raw", "clean", "features", "extra"]
    assert "other" not in panel._views  # its widgets were closed
    cells.run("extra")
    assert panel.rows == rows_from_scratch(panel)


def test_a_run_shorter_than_the_flush_window_sends_the_graph_once(cells: Any) -> None:
    panel = panel_for(cells.s)
    panel.tabs.selected_index = GRAPH_TAB
    cells.run("features")
    graphs: list[Any] = []
    panel.graph.observe(lambda c: graphs.append(c["new"]), "outputs")
    sent = info_updates(panel)
    cells.run("features")  # all hits: over long before FLUSH_S
    # The plan's "queued" state would be replaced at once: only the final state is sent.
    assert len(graphs) == 1
    state = graphs[0][0]["data"]["application/vnd.hamilton-nb.run+json"]["state"]
    assert state["running"] is False
    assert {n["status"] for n in state["nodes"] if n["kind"] == "function"} <= {
        "cached", "never_run"}
    assert all("queued" not in v for values in sent.values() for v in values)


def test_a_hidden_graph_tab_is_not_sent_and_shows_the_current_state_when_selected(
        cells: Any) -> None:
    # The graph is of the whole DAG: drawing and sending it with every run while the table
    # tab shows made a one-cell re-run cost the notebook.
    panel = panel_for(cells.s)
    graphs: list[Any] = []
    panel.graph.observe(lambda c: graphs.append(c["new"]), "outputs")
    cells.run("features")
    cells.run("other")
    assert graphs == []
    panel.tabs.selected_index = GRAPH_TAB  # what a click on the tab sends
    assert len(graphs) == 1
    state = graphs[0][0]["data"]["application/vnd.hamilton-nb.run+json"]["state"]
    assert {n["name"]: n["status"] for n in state["nodes"] if n["kind"] == "function"} == \
        statuses(panel)
    assert set(statuses(panel)) == {"raw", "clean", "features", "other"}
    cells.cell("def raw() -> int:\n    return RAW + 1\n", "c-raw")
    cells.run("raw")  # while it shows, each run draws it
    state = panel.graph.outputs[0]["data"]["application/vnd.hamilton-nb.run+json"]["state"]
    assert {n["name"]: n["status"] for n in state["nodes"]}["features"] == "stale"
    panel.tabs.selected_index = 0
    sent = len(graphs)
    cells.run("features")
    assert len(graphs) == sent
    panel.tabs.selected_index = GRAPH_TAB
    state = panel.graph.outputs[0]["data"]["application/vnd.hamilton-nb.run+json"]["state"]
    assert {n["name"]: n["status"] for n in state["nodes"]}["features"] == "computed"


@pytest.fixture
def chain(ps: Any) -> Any:
    for i in range(40):
        ps.cell(chain_cell(i), f"cell-{i}")
    ps.run("c_39")
    return ps


def test_a_runs_output_lists_its_cell_and_the_nearest_reused_upstream(chain: Any) -> None:
    # Re-running cell 20 of a 40-cell chain reuses the 60 nodes above it: the output of that
    # run (what a saved notebook keeps) lists the cell's own nodes and the nearest upstream,
    # and counts the rest, so each cell's output does not grow with the notebook.
    panel = panel_for(chain.s)
    chain.run("c_20")
    rows, more = panel.run_rows()
    names = [r.node for r in rows]
    # The run looked at c_20 only (a hit): the 62 nodes above it were reused unseen.
    order = [f"{x}_{i}" for i in range(21) for x in "abc"]
    assert names == order[-13:]  # c_20 and the 12 nearest of what it reused
    assert more.startswith("… and 50 reused from the cache not listed")
    bundle = panel.static_bundle(last_run_only=True, state=True)
    assert "63 nodes: 63 cached" in bundle["text/plain"]  # the summary still counts all
    assert bundle["text/plain"].splitlines()[-1] == more
    assert more in bundle["text/html"] and "data-node='c_0'" not in bundle["text/html"]
    state = bundle["application/vnd.hamilton-nb.run+json"]["state"]
    assert [n["name"] for n in state["nodes"]] == names
    assert [c["cell_id"] for c in state["cells"]] == [f"cell-{i}" for i in range(16, 21)]
    # the live table still lists every node
    assert len(panel.rows) == 120


def test_a_runs_output_lists_the_first_stale_nodes_and_counts_the_rest(chain: Any) -> None:
    panel = panel_for(chain.s)
    chain.cell(chain_cell(2, const=8), "cell-2")  # edited: everything below goes stale
    chain.run("c_2")
    rows, more = panel.run_rows()
    stale = [r.node for r in rows if r.status == "stale"]
    assert stale == [f"{x}_{i}" for i in range(3, 7) for x in "abc"]
    assert [r.node for r in rows if r.status == "computed"] == ["c_2"]  # its constant changed
    assert f"{37 * 3 - len(stale)} stale" in more
    assert "111 stale" in panel.summary.value  # the live panel counts them all

"""The last-state record is a journal (issue 12): an edit appends a line with what it changed
instead of rewriting the whole file, and a restore reads back exactly the state a whole
rewrite would hold — also after a kill mid-append, a torn or damaged line, or another kernel
replacing the file."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import PlainSession
from dag_sources import chain_cell, expected_c

from hamilton_nb import Session, checkpoint

N = 12


def build(p: PlainSession, n: int = N) -> None:
    for i in range(n):
        p.cell(chain_cell(i), f"cell-{i}")
    p.run(f"c_{n - 1}")


def edit(p: PlainSession, i: int, const: int) -> None:
    """What a %%hamilton cell does: register the cell, run its nodes, save the state once."""
    with p.s.checkpoints.deferred():
        p.cell(chain_cell(i, const), f"cell-{i}")
        p.run(f"a_{i}", f"b_{i}", f"c_{i}")


def state_file(p: PlainSession) -> Path:
    return p.s.checkpoints._state_path()


def whole(s: Session) -> dict[str, Any]:
    """The record a whole rebuild makes now."""
    m = checkpoint.build_manifest(s)
    m.pop("created")
    return without_times(m)


def without_times(m: dict[str, Any] | None) -> dict[str, Any]:
    # A hit with the same versions does not touch the record (an all-hit run writes nothing),
    # so its time of use there is the one it was recorded with: not compared.
    assert m is not None
    return {**m, "nodes": {k: {f: v for f, v in r.items() if f != "at"}
                           for k, r in m["nodes"].items()}}


def body_const(state: dict[str, Any], cell_id: str) -> int:
    body = next(c["body"] for c in state["cells"] if c["cell_id"] == cell_id)
    return int(body.rsplit("+ ", 1)[1])


@pytest.fixture
def chain(ps: PlainSession) -> PlainSession:
    build(ps)
    return ps


def test_an_edit_appends_lines_naming_only_the_cell_and_nodes_it_changed(chain):
    path = state_file(chain)
    before = path.read_bytes()
    edit(chain, 5, const=100)
    after = path.read_bytes()
    assert after.startswith(before)  # appended to, not rewritten
    lines = [json.loads(x) for x in after[len(before):].splitlines()]
    assert len(lines) == 1
    assert {cid for ln in lines for cid in ln.get("cells", {})} == {"cell-5"}
    assert {n for ln in lines for n in ln.get("nodes", {})} <= {"a_5", "b_5", "c_5"}
    assert "c_5" in {n for ln in lines for n in ln.get("nodes", {})}
    assert not any("order" in ln or "head" in ln for ln in lines)
    assert checkpoint._read(path)["nodes"]["c_5"]["data_version"] == \
        chain.s.node_events["c_5"].data_version


def test_restore_after_50_edits_gives_the_state_a_whole_rewrite_gives(chain, monkeypatch):
    monkeypatch.setattr(checkpoint._Journal, "LIMIT", 2**30)  # every line stays in the file
    s = chain.s
    edits: dict[int, int] = {}
    for k in range(50):
        i = (k * 5) % N
        edits[i] = 100 + k
        edit(chain, i, edits[i])
        if k == 20:  # cells come and go, settings change: the order and head lines too
            chain.cell("def extra(c_3: int) -> int:\n    return -c_3\n", "extra")
            chain.run("extra")
            s.set_behavior("b_2", "recompute")
        if k == 35:
            s.remove_cell("extra")
            chain.cell("def extra2(c_4: int) -> int:\n    return c_4 * 3\n", "extra2")
            chain.run("extra2")
    chain.run(f"c_{N - 1}", "extra2")  # nothing stale: every value is bound on restore
    path = state_file(chain)
    lines = [json.loads(x) for x in path.read_bytes().splitlines()[1:]]
    assert len(lines) > 50 and any("order" in x for x in lines) and any("head" in x for x in lines)
    journal = checkpoint._read(path)
    assert without_times(journal) == whole(s)
    s.checkpoints._journal = None  # the same state written whole reads back the same
    s.checkpoints.save_state()
    assert len(path.read_bytes().splitlines()) == 1
    assert checkpoint._read(path) == journal

    p2 = chain.reopen()
    report = p2.s.restore()
    assert report.cells == [*(f"cell-{i}" for i in range(N)), "extra2"]
    assert not report.changed and not report.missing_values
    assert {f"c_{N - 1}", "extra2"} <= set(report.bound)
    assert p2.s.value(f"c_{N - 1}") == expected_c(N - 1, edits)
    assert p2.s.value("extra2") == expected_c(4, edits) * 3
    assert p2.s.settings.behavior == {"b_2": "recompute"}


def test_a_torn_last_line_is_ignored_and_restore_gives_the_state_before_it(chain):
    path = state_file(chain)
    edit(chain, 5, const=100)
    good = path.read_bytes()
    edit(chain, 5, const=200)
    data = path.read_bytes()
    assert len(data) > len(good)
    torn = data[:len(good) + (len(data) - len(good)) // 2]  # killed in the middle of a line
    path.write_bytes(torn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a torn tail is what a kill leaves: no warning
        state = checkpoint._read(path)
    assert body_const(state, "cell-5") == 100
    p2 = chain.reopen()
    p2.s.restore()
    assert p2.s.value("c_5") == expected_c(5, {5: 100})


def test_a_damaged_line_is_skipped_with_a_warning_and_the_state_before_it_is_used(chain):
    path = state_file(chain)
    edit(chain, 5, const=100)
    good = path.read_bytes()
    edit(chain, 5, const=200)
    rest = path.read_bytes()[len(good):]
    path.write_bytes(good + b'{"base": "not this one", "nodes": {}}\n' + rest)
    with pytest.warns(UserWarning, match="last-state file"):
        state = checkpoint._read(path)
    assert body_const(state, "cell-5") == 100


def test_a_line_with_a_bad_record_sets_the_file_aside_like_a_bad_manifest(chain):
    path = state_file(chain)
    token = json.loads(path.read_bytes().splitlines()[0])["journal"]
    with path.open("ab") as fh:
        fh.write(json.dumps({"base": token, "nodes": {"c_5": {"key": 5}}}).encode() + b"\n")
    with pytest.warns(UserWarning, match="skipped damaged checkpoint file"):
        assert checkpoint._read(path) is None
    assert not path.exists()


def test_a_file_another_kernel_replaced_is_written_whole_not_appended_to(chain, tmp_path):
    path = state_file(chain)
    other = PlainSession(chain.cache_dir)  # a second kernel, same folder, same record
    other.cell("def z() -> int:\n    return 1\n", "z")
    other.run("z")
    assert [c["cell_id"] for c in checkpoint._read(path)["cells"]] == ["z"]
    edit(chain, 5, const=100)
    assert len(path.read_bytes().splitlines()) == 1  # the edit rewrote it: ours again
    assert without_times(checkpoint._read(path)) == whole(chain.s)
    other.s.close()


def test_a_file_replaced_just_after_our_whole_write_is_not_appended_to(chain, monkeypatch):
    # Another kernel renames its record into place right after ours: our next line must not
    # go onto its file (its first line has another token: our line would be dropped).
    real = checkpoint.atomic_write
    raced: list[bytes] = []

    def write_then_lose_the_race(path: Path, data: bytes, *a: Any) -> Any:
        st = real(path, data, *a)
        if not raced:  # the same record under another token: the same size, another inode
            i = data.index(b'"journal": "') + len(b'"journal": "')
            other = data[:i] + (b"1" if data[i:i + 1] == b"0" else b"0") + data[i + 1:]
            raced.append(other)
            real(path, other)
        return st

    monkeypatch.setattr(checkpoint, "atomic_write", write_then_lose_the_race)
    chain.s.checkpoints._journal = None
    chain.s.checkpoints.save_state()  # written whole, then replaced behind our back
    assert path_bytes(chain) == raced[0]
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    edit(chain, 5, const=100)
    assert len(path_bytes(chain).splitlines()) == 1  # written whole again, not appended to
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert without_times(checkpoint._read(state_file(chain))) == whole(chain.s)


def path_bytes(p: PlainSession) -> bytes:
    return state_file(p).read_bytes()


def test_the_file_is_written_whole_again_once_its_lines_outgrow_it(chain, monkeypatch):
    monkeypatch.setattr(checkpoint._Journal, "LIMIT", 0)  # as soon as lines outgrow the base
    path = state_file(chain)
    base = len(path.read_bytes())
    sizes = []
    for k in range(30):
        edit(chain, k % N, 100 + k)
        sizes.append(len(path.read_bytes()))
    assert max(sizes) < 2 * base + 4096
    assert any(b < a for a, b in itertools.pairwise(sizes))  # rewritten on the way
    assert without_times(checkpoint._read(path)) == whole(chain.s)


def test_with_a_cache_key_the_record_is_written_whole_and_appended_lines_are_ignored(
        tmp_path, calls):
    p = PlainSession(tmp_path / "cache")
    p.s.set_cache_key("s3cret")
    build(p, 4)
    edit(p, 2, const=100)
    path = state_file(p)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1 and "journal" not in json.loads(lines[0])
    with path.open("ab") as fh:  # a forged line cannot change what the signature covers
        fh.write(b'\n{"base": null, "cells": {"cell-2": "import os"}}\n')
    p.s.close()
    p2 = PlainSession(tmp_path / "cache")
    p2.s.set_cache_key("s3cret")
    report = p2.s.restore()
    assert "cell-2" in report.cells
    assert p2.s.value("c_2") == expected_c(2, {2: 100})
    p2.s.close()


KILLED = textwrap.dedent("""
    import os, sys
    os.environ["HAMILTON_TELEMETRY_ENABLED"] = "false"
    sys.path.insert(0, {tests!r})
    from test_last_state_journal import chain_cell
    from hamilton_nb import Session

    ns = {{}}
    s = Session(namespace=ns, cache_dir={cache!r})
    for i in range(6):
        s.register_cell(chain_cell(i), f"cell-{{i}}")
    s.run(["c_5"])
    k = 0
    while True:
        k += 1
        s.register_cell(chain_cell(3, k), "cell-3")
        s.run(["a_3", "b_3", "c_3"])
        print(k, flush=True)  # its lines are in the file by now
""")


def test_a_kernel_killed_while_editing_restores_a_state_it_saved(tmp_path, calls):
    cache = tmp_path / "cache"
    script = KILLED.format(tests=str(Path(__file__).parent), cache=str(cache))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            cwd=tmp_path, text=True)
    done = 0
    deadline = time.monotonic() + 120
    try:
        assert proc.stdout is not None
        while done < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            done = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # wherever it is: mid-run, mid-append, between
        proc.wait()
    assert done >= 40, "the editing process did not get going"
    assert proc.stdout is not None
    done = max([done, *(int(x) for x in proc.stdout.read().split())])  # printed, not yet read
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the record of the working folder the killed process ran in
    try:
        p = PlainSession(cache)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            report = p.s.restore()
    finally:
        os.chdir(cwd)
    k = body_const({"cells": [{"cell_id": c.cell_id, "body": c.body}
                              for c in p.s.dag.cells.values()]}, "cell-3")
    assert done <= k <= done + 1, (done, k)
    assert len(report.cells) == 6
    # Whatever it bound is the value of the code it restored: never a value of other code.
    for name in report.bound:
        i = int(name.split("_")[1])
        if name.startswith("c_") and i >= 3:
            assert p.s.value(name) == expected_c(i, {3: k})
    if k == done:  # killed after that edit's run was saved: its value was saved with it
        assert "c_3" in report.bound
    p.s.close()

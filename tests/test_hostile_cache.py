"""The cache folder is hostile territory (issue 13): damaged, full, read-only or tampered, it
never crashes a run, never gives a wrong value and never loads a foreign pickle.

Real files, real processes (SIGKILLed writers) and real mounts: a read-only or full folder is a
tmpfs mounted for the test when running as root (root ignores file permissions, so ``chmod``
proves nothing then); as another user, read-only is ``chmod`` and the full-disk cases are
skipped with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import PlainSession
from IPython.core.error import UsageError

from hamilton_nb import Session
from hamilton_nb.checkpoint import CheckpointError
from hamilton_nb.store import STORE_FORMAT, DiskStore, StoreError

CHAIN = """
def big() -> np.ndarray:
    hnb_calls.log.append("big")
    return np.arange(20000)

def small() -> int:
    hnb_calls.log.append("small")
    return 21

def total(big: np.ndarray, small: int) -> int:
    hnb_calls.log.append("total")
    return int(big.sum()) + small
"""
TOTAL = sum(range(20000)) + 21
FORMAT_LINE = f"hamilton_nb-store {STORE_FORMAT}\n"


@contextlib.contextmanager
def ours():
    """Record the hamilton_nb warnings raised inside the block (every one, no dedup)."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got: list[str] = []
        yield got
    got += [str(x.message) for x in w if "hamilton_nb" in str(x.message)]


def session(cache: Path, key: str | None = None) -> PlainSession:
    p = PlainSession(cache)
    if key is not None:
        p.s.set_cache_key(key)
    p.exec("import numpy as np\nimport hnb_calls")
    return p


def computed(cache: Path, calls: list[str], key: str | None = None) -> PlainSession:
    """A session that ran the chain once (everything stored), then closed its store."""
    p = session(cache, key)
    p.cell(CHAIN)
    assert p.run("total") == {"total": TOTAL}
    p.s.close()
    calls.clear()
    return p


def rerun(cache: Path, key: str | None = None) -> tuple[dict, dict, list[str]]:
    """A new session (a restarted kernel) runs the chain: (values, statuses, warnings)."""
    with ours() as w:
        p = session(cache, key)
        p.cell(CHAIN)
        values = p.run("total", "big", "small")
        st = p.statuses()
        p.s.close()
    return values, st, w


def journals(cache: Path) -> list[Path]:
    return sorted((cache / "index").glob("*.jsonl"))


def records(cache: Path) -> list[dict]:
    return [json.loads(line) for j in journals(cache) for line in j.read_text().splitlines()]


def put_record(cache: Path, node: str) -> dict:
    return next(r for r in records(cache) if r["op"] == "put" and r["entry"]["node"] == node)


def replace_record(journal: Path, old: dict, new: dict) -> None:
    """Rewrite the line of ``journal`` that holds record ``old`` to hold ``new`` (matched by
    content: the store's JSON spelling of numbers is its own business)."""
    lines = journal.read_text().splitlines()
    hits = [i for i, line in enumerate(lines) if json.loads(line) == old]
    assert len(hits) == 1, f"record found {len(hits)} times in {journal}"
    lines[hits[0]] = json.dumps(new, separators=(",", ":"))
    journal.write_text("".join(line + "\n" for line in lines))


def write_journal(cache: Path, lines: list[str], name: str = "crafted.jsonl") -> Path:
    path = cache / "index" / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


def assert_right(values: dict) -> None:
    assert values["total"] == TOTAL
    assert values["small"] == 21
    assert np.array_equal(values["big"], np.arange(20000))


class Evil:
    """Unpickling this writes a marker file: proof that a foreign pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pwned",))


# -- 1. confinement --------------------------------------------------------------------------------


def test_crafted_record_naming_a_file_outside_is_refused_and_clear_deletes_nothing_outside(
        tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    victim = tmp_path / "victim.joblib"
    victim.write_text("precious")
    rec = put_record(cache, "big")
    for dv in ("../victim", "../../victim", "/etc/passwd", "ab/../../victim"):
        rec["entry"] = {**rec["entry"], "data_version": dv, "key": "k" + dv}
        write_journal(cache, [json.dumps(rec)], f"crafted{len(dv)}.jsonl")
    with ours() as w:
        p = session(cache)
        p.cell(CHAIN)
        assert p.s.clear() >= 3  # the real entries
    assert victim.read_text() == "precious"
    assert any("crafted" in m and "damaged record" in m for m in w)


def test_hit_on_a_record_pointing_outside_never_unpickles_it(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = pickle.dumps(Evil(str(marker)))
    (outside / "evil.joblib").write_bytes(evil)
    rec = put_record(cache, "big")
    rec["entry"]["data_version"] = "../outside/evil"
    rec["at"] = rec["entry"]["created"] = time.time() + 10  # newer than the real entry
    write_journal(cache, [json.dumps(rec)])
    values, _, w = rerun(cache)
    assert_right(values)
    assert not marker.exists()
    assert len(w) == 1 and "crafted.jsonl" in w[0]


def _value_file(cache: Path, node: str) -> Path:
    e = put_record(cache, node)["entry"]
    return cache / "values" / e["data_version"][:2] / f"{e['data_version']}.{e['fmt']}"


def test_value_file_replaced_by_a_link_out_of_the_folder_is_a_miss(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    f = _value_file(cache, "big")
    outside = tmp_path / "outside.joblib"
    outside.write_bytes(f.read_bytes())  # even the right bytes are not read through a link out
    f.unlink()
    f.symlink_to(outside)
    values, st, w = rerun(cache)
    assert_right(values)
    assert st["big"] == "computed" and calls.count("big") == 1
    assert any("`big`" in m for m in w)
    assert outside.exists()  # dropping the entry removed the link, not its target


def test_value_folder_linked_out_of_the_cache_is_a_miss(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    f = _value_file(cache, "big")
    outside = tmp_path / "elsewhere"
    f.parent.rename(outside)
    f.parent.symlink_to(outside, target_is_directory=True)
    values, st, w = rerun(cache)
    assert_right(values)
    assert st["big"] == "computed"
    assert (outside / f.name).exists()  # nothing outside was deleted
    assert w


def test_journal_that_is_a_link_out_of_the_folder_is_not_read(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    j = journals(cache)[0]
    outside = tmp_path / "outside.jsonl"
    j.rename(outside)
    j.symlink_to(outside)
    values, st, w = rerun(cache)
    assert_right(values)
    assert set(st.values()) == {"computed"}  # its records were not used
    assert any(str(j) in m for m in w)


def test_fifo_in_place_of_a_value_file_is_a_miss_and_never_blocks(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    f = _value_file(cache, "big")
    j = next(j for j in journals(cache) if '"node":"big"' in j.read_text())
    size = put_record(cache, "big")["entry"]["size"]
    j.write_text(j.read_text().replace(f'"size":{size},', '"size":0,'))  # as a FIFO's size
    assert put_record(cache, "big")["entry"]["size"] == 0
    f.unlink()
    os.mkfifo(f)
    code = ("import sys, warnings; warnings.simplefilter('ignore')\n"
            "from hamilton_nb.store import DiskStore\n"
            "s = DiskStore(sys.argv[1]); e = [e for e in s.entries() if e.node == 'big'][0]\n"
            "try:\n    s.load(e, verify=False)\nexcept Exception as x:\n"
            "    print(type(x).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "CorruptEntry", out.stderr
    values, st, _ = rerun(cache)
    assert_right(values)
    assert st["big"] == "computed"


def test_fifo_in_the_index_does_not_hang_a_store_that_opens(tmp_path):
    cache = tmp_path / "cache"
    DiskStore(cache).close()
    os.mkfifo(cache / "index" / "fifo.jsonl")
    os.mkfifo(cache / "FORMAT.fifo")
    code = ("import sys, warnings; warnings.simplefilter('ignore')\n"
            "from hamilton_nb.store import DiskStore\n"
            "s = DiskStore(sys.argv[1]); s.put('k', 'n', 'cv', 'dv', 1, 'joblib', 0.0, {});"
            "print(len(s.entries()))")
    out = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "1", out.stderr


# -- 2. checksums on every value -------------------------------------------------------------------


def test_flipping_one_character_of_an_inline_value_is_a_miss_with_a_warning(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    j = journals(cache)[0]
    rec = put_record(cache, "small")
    raw = bytearray(base64.b64decode(rec["entry"]["inline"]))
    raw[raw.index(21)] = 99  # the pickled int 21 becomes 99: still a valid pickle
    tampered = dict(rec, entry=dict(rec["entry"], inline=base64.b64encode(bytes(raw)).decode()))
    replace_record(j, rec, tampered)
    assert put_record(cache, "small")["entry"]["inline"] != rec["entry"]["inline"]
    values, st, w = rerun(cache)
    assert_right(values)
    assert st["small"] == "computed"
    assert len(w) == 1 and "`small`" in w[0] and "checksum" in w[0]


def test_inline_record_without_a_checksum_is_not_trusted(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    j = journals(cache)[0]
    lines = []
    for line in j.read_text().splitlines():
        rec = json.loads(line)
        if rec["op"] == "put" and rec["entry"]["node"] == "small":
            rec["entry"]["checksum"] = None
            rec["entry"]["inline"] = base64.b64encode(pickle.dumps(99)).decode()
        lines.append(json.dumps(rec))
    j.write_text("\n".join(lines) + "\n")
    values, st, w = rerun(cache)
    assert_right(values)
    assert st["small"] == "computed" and st["big"] == "cached"
    assert len(w) == 1 and str(j) in w[0]


# -- 3. one bad record is one bad record -----------------------------------------------------------


def _entry_with(field: str, value) -> str:
    rec = {"op": "put", "at": 1.0, "entry": {
        "key": "kx", "node": "nx", "code_version": "cv", "data_version": "a" * 32,
        "fmt": "joblib", "size": 10, "compute_time": 0.1, "created": 1.0, "last_used": 1.0,
        "parts": {}, "inline": None, "checksum": "0" * 16}}
    rec["entry"][field] = value
    return json.dumps(rec)


BAD_LINES = {
    "null": "null",
    "string": '"x"',
    "number": "12",
    "list": "[1, 2]",
    "truncated": '{"op":"put","at":1,"entry":{"key":"k2"',
    "binary": "\x00\x01\x02",
    "unknown_op": '{"op":"explode","at":1}',
    "at_string": '{"op":"touch","at":"now","keys":["k"]}',
    "touch_keys_string": '{"op":"touch","at":1,"keys":"k"}',
    "del_keys_numbers": '{"op":"del","at":1,"keys":[1,2]}',
    "entry_null": '{"op":"put","at":1,"entry":null}',
    "key_int": _entry_with("key", 5),
    "node_null": _entry_with("node", None),
    "code_version_list": _entry_with("code_version", ["x"]),
    "data_version_number": _entry_with("data_version", 7),
    "fmt_unknown": _entry_with("fmt", "exe"),
    "size_string": _entry_with("size", "big"),
    "size_negative": _entry_with("size", -1),
    "compute_time_string": _entry_with("compute_time", "x"),
    "created_null": _entry_with("created", None),
    "last_used_nan": _entry_with("last_used", float("nan")),
    "created_far_future": _entry_with("created", 1e300),
    "parts_string": _entry_with("parts", "x"),
    "parts_deps_string": _entry_with("parts", {"deps": "x", "code": {}}),
    "parts_code_of_strings": _entry_with("parts", {"code": {"total": "x"}}),
    "inline_number": _entry_with("inline", 5),
    "checksum_missing": _entry_with("checksum", None),
    "checksum_garbage": _entry_with("checksum", "zz"),
    "deep_nesting": "[" * 100000 + "]" * 100000,
}


@pytest.mark.parametrize("bad", list(BAD_LINES))
def test_one_bad_journal_record_is_skipped_with_one_warning_and_the_rest_is_used(
        tmp_path, calls, bad):
    cache = tmp_path / "cache"
    computed(cache, calls)
    j = journals(cache)[0]
    good = j.read_text().splitlines()
    # the bad line in the middle of good ones: the records after it are still read
    j.write_text("\n".join([good[0], BAD_LINES[bad], *good[1:]]) + "\n")
    values, st, w = rerun(cache)
    assert_right(values)
    assert st == {"total": "cached", "big": "cached", "small": "cached"}
    assert calls == []
    assert len(w) == 1 and str(j) in w[0], w


def test_compaction_merges_good_journals_and_keeps_one_with_a_refused_record(tmp_path):
    cache = tmp_path / "cache"
    with ours():
        for k in range(18):  # a store that opens merges the journals of finished processes
            s = DiskStore(cache)
            s.put(f"k{k}", "n", "cv", "dv", {"k": k}, "joblib", 0.0, {})
            s.close()
            if k == 2:
                damaged = cache / "index" / s._journal_name
                damaged.write_text("null\n" + damaged.read_text())
    assert damaged.exists() and len(journals(cache)) < 18  # merged, except the damaged one
    with ours() as w:
        s = DiskStore(cache)
        assert sorted(s.load(e)["k"] for e in s.entries()) == list(range(18))
        s.close()
    assert len(w) == 1 and str(damaged) in w[0]


def test_huge_journal_without_line_breaks_is_skipped_once(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    junk = cache / "index" / "junk.jsonl"
    junk.write_bytes(b"x" * (17 * 2**20))
    with ours() as w:
        store = DiskStore(cache)
        assert len(store.entries()) == 3
        store.refresh()
        store.close()
    assert len(w) == 1 and "junk.jsonl" in w[0]


def test_checkpoint_manifest_with_cells_not_a_list_is_skipped_and_moved_aside(tmp_path, calls):
    cache = tmp_path / "cache"
    p = computed(cache, calls)
    p = session(cache)
    p.cell(CHAIN)
    p.s.checkpoint_save("good")
    p.s.checkpoint_save("bad")
    bad = cache / "checkpoints" / "bad.json"
    m = json.loads(bad.read_text())
    m["cells"] = "x"
    bad.write_text(json.dumps(m))
    with ours() as w:
        assert list(p.s.checkpoint_list()["name"]) == ["good"]
        assert list(p.s.checkpoint_list()["name"]) == ["good"]  # warned once, not again
        with pytest.raises(CheckpointError, match="No checkpoint 'bad'"):
            p.s.checkpoint_restore("bad")
    assert len(w) == 1 and str(bad) in w[0]
    assert not bad.exists() and list((cache / "damaged").iterdir())
    report = p.s.checkpoint_restore("good")
    assert "c1" in report.cells or report.cells


@pytest.mark.parametrize("damage", [b"", b"\x00\xff garbage", b'{"format": 1, "nodes": "x"',
                                    b"null", b'{"format": 1, "cells": [{"cell_id": 3}]}',
                                    b'{"format": 1, "cells": [], "nodes": {"a": 1}}'])
def test_garbled_last_state_file_is_skipped_and_the_session_keeps_working(tmp_path, calls,
                                                                          damage):
    cache = tmp_path / "cache"
    computed(cache, calls)
    states = [f for f in (cache / "sessions").glob("*.json")]
    assert states
    for f in states:
        f.write_bytes(damage)
    with ours() as w:
        p = session(cache)
        report = p.s.restore()
        assert not report.found
        p.cell(CHAIN)
        assert p.run("total") == {"total": TOTAL}
        assert p.statuses()["total"] == "cached"
    assert len(w) == len(states) and all("sessions" in m for m in w)
    p.s.close()
    p2 = session(cache)
    assert p2.s.restore().found  # a fresh, good state was saved


# -- 4. the FORMAT marker --------------------------------------------------------------------------

DAMAGED_FORMATS = {
    "empty": b"",
    "garbled": b"hamilton_nb-stroe one\n",
    "binary": b"\x00\x9f\x92\x96\xff",
    "no_newline": FORMAT_LINE.strip().encode(),
    "spaces": b"  " + FORMAT_LINE.encode() + b"\n\n",
}


@pytest.mark.parametrize("damage", list(DAMAGED_FORMATS))
def test_damaged_format_marker_is_repaired_when_the_folder_reads_as_this_format(
        tmp_path, calls, damage):
    cache = tmp_path / "cache"
    computed(cache, calls)
    (cache / "FORMAT").write_bytes(DAMAGED_FORMATS[damage])
    values, st, w = rerun(cache)
    assert_right(values)
    assert set(st.values()) == {"cached"}
    assert (cache / "FORMAT").read_text() == FORMAT_LINE
    assert len(w) <= 1


def test_format_marker_that_is_a_link_is_replaced_not_written_through(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    (cache / "FORMAT").unlink()
    (cache / "FORMAT").symlink_to(target)
    values, st, _ = rerun(cache)
    assert_right(values)
    assert set(st.values()) == {"cached"}
    assert target.read_text() == "keep me"  # the link was replaced, not written through
    assert not (cache / "FORMAT").is_symlink()


def test_damaged_format_marker_over_unreadable_contents_runs_in_memory_with_the_fix(
        tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)
    (cache / "FORMAT").write_bytes(b"\x00garbage")
    for j in journals(cache):
        j.write_bytes(b"this is not a journal\n")
    values, st, w = rerun(cache)
    assert_right(values)
    assert set(st.values()) == {"computed"}
    assert len(w) == 1 and "FORMAT" in w[0] and "HAMILTON_NB_CACHE" in w[0]
    assert (cache / "FORMAT").read_bytes() == b"\x00garbage"  # left for the user to look at


def test_folder_of_a_newer_format_is_refused_clearly_and_left_untouched(tmp_path, calls):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "FORMAT").write_text(f"hamilton_nb-store {STORE_FORMAT + 1}\n")
    with pytest.raises(StoreError, match="newer hamilton_nb"):
        DiskStore(cache)
    values, _, w = rerun(cache)
    assert_right(values)
    assert len(w) == 1 and "newer" in w[0] and "Upgrade" in w[0]
    assert sorted(p.name for p in cache.iterdir()) == ["FORMAT"]


# -- 5. an unusable folder: the run still works, one warning ---------------------------------------


def _one_clear_warning(w: list[str], *words: str) -> None:
    assert len(w) == 1, w
    assert "HAMILTON_NB_CACHE" in w[0] or "cache dir" in w[0]
    for word in words:
        assert word in w[0]


def test_cache_env_var_pointing_at_a_file_runs_in_memory_with_one_warning(
        tmp_path, calls, monkeypatch):
    f = tmp_path / "a-file"
    f.write_text("not a folder")
    values, _, w = rerun(f)
    assert_right(values)
    _one_clear_warning(w, "is a file")
    assert f.read_text() == "not a folder"
    monkeypatch.setenv("HAMILTON_NB_CACHE", str(f))
    with ours() as w2:
        s = Session(namespace={"np": np})
        s.register_cell(CHAIN.replace("hnb_calls.log.append", "print"), "c")
        assert s.run("total") == {"total": TOTAL}
    assert len(w2) == 1


def test_checkpoints_with_an_unusable_folder_say_so_without_more_warnings(tmp_path, calls):
    f = tmp_path / "a-file"
    f.write_text("x")
    with ours() as w:
        p = session(f)
        p.cell(CHAIN)
        assert p.run("total") == {"total": TOTAL}
        assert not p.s.restore().found
        assert p.s.checkpoint_list().empty
        with pytest.raises(CheckpointError, match="Cannot write checkpoint"):
            p.s.checkpoint_save("v1")
    assert len(w) == 1 and f.read_text() == "x"


def test_cache_path_that_cannot_be_created_runs_in_memory_with_one_warning(tmp_path, calls):
    f = tmp_path / "a-file"
    f.write_text("x")
    values, _, w = rerun(f / "sub" / "cache")
    assert_right(values)
    _one_clear_warning(w)


def _mount_tmpfs(where: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a small tmpfs, which only root can mount here")
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a full/read-only folder: {r.stderr.strip()}")


@pytest.fixture
def mounts():
    """Mount small tmpfs folders for a test; unmounted afterwards whatever happens."""
    done: list[Path] = []

    def mount(where: Path, size: str = "4M") -> Path:
        _mount_tmpfs(where, size)
        done.append(where)
        return where

    yield mount
    for where in reversed(done):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def make_read_only(folder: Path, mounted: bool) -> None:
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                p = Path(root) / name
                p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        folder.chmod(0o555)


def _chmod_blocks_writes(tmp_path: Path) -> bool:
    """Whether removing write permission stops this process (not so for root, which can
    override permissions, unless it runs without CAP_DAC_OVERRIDE)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_text("x")
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)


@pytest.fixture
def read_only(mounts, tmp_path):
    """A folder that can be made read-only for real: chmod where that stops this process,
    else (root) a tmpfs remounted read-only."""
    folder = tmp_path / "ro"
    if not _chmod_blocks_writes(tmp_path):
        mounts(folder, "16M")
        yield folder, lambda: make_read_only(folder, True)
    else:
        folder.mkdir()
        yield folder, lambda: make_read_only(folder, False)
        for root, dirs, _ in os.walk(folder):
            for d in dirs:
                (Path(root) / d).chmod(0o755)
        folder.chmod(0o755)


def test_all_hit_run_in_a_read_only_folder_gives_the_values_with_one_warning(read_only, calls):
    folder, lock = read_only
    cache = folder / "cache"
    computed(cache, calls)
    lock()
    with pytest.raises(OSError):
        (cache / "probe").write_text("x")
    with ours() as w:
        p = session(cache)
        p.cell(CHAIN)
        values = p.run("total", "big", "small")
        assert set(p.statuses().values()) == {"cached"}
        p.cell(CHAIN.replace("+ small", "+ small * 2"))  # a miss: kept in memory
        assert p.run("total") == {"total": TOTAL + 21}
        assert p.run("total") == {"total": TOTAL + 21}
        assert p.statuses()["total"] == "cached"  # from the in-memory fallback
        p.s.close()
    assert_right(values)
    _one_clear_warning(w, "writable")


def test_cache_dir_magic_says_when_the_folder_is_not_in_use(nb, capsys, read_only):
    folder, lock = read_only
    lock()
    with ours():
        nb.line(f"cache dir {folder}")
        nb.run("import numpy as np")
        nb.cell("def x() -> np.ndarray:\n    return np.ones(50000)\n", cell_id="c1")
    capsys.readouterr()
    nb.line("cache dir")
    out = capsys.readouterr().out
    assert str(folder) in out and "not fully in use" in out


def test_restore_from_a_read_only_folder_works_and_saving_there_says_why_not(read_only, calls):
    folder, lock = read_only
    cache = folder / "cache"
    p = session(cache)
    p.cell(CHAIN)
    p.run("total")
    p.s.checkpoint_save("v1")
    p.s.close()
    calls.clear()
    lock()
    with ours() as w:
        p2 = session(cache)
        report = p2.s.checkpoint_restore("v1")
        assert "total" in report.bound and p2.s.value("total") == TOTAL
        with pytest.raises(CheckpointError, match=r"Cannot write checkpoint 'v2'.*writable"):
            p2.s.checkpoint_save("v2")
        with pytest.raises(CheckpointError, match="Cannot delete checkpoint 'v1'"):
            p2.s.checkpoint_delete("v1")
    assert calls == [] and len(w) <= 1
    assert list(p2.s.checkpoint_list()["name"]) == ["v1"]


def test_read_only_folder_without_subfolders_runs_in_memory_with_one_warning(read_only, calls):
    folder, lock = read_only
    lock()
    values, st, w = rerun(folder)
    assert_right(values)
    assert set(st.values()) == {"computed"}
    _one_clear_warning(w)


def _fill(folder: Path) -> Path:
    """Fill a filesystem to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * chunk)
    return filler


def test_full_disk_before_first_use_runs_in_memory_with_one_warning(mounts, tmp_path, calls):
    disk = mounts(tmp_path / "disk", "1M")
    _fill(disk)
    values, _, w = rerun(disk / "cache")
    assert_right(values)
    _one_clear_warning(w)


BIG_CHAIN = "\n".join(
    ["def a0() -> np.ndarray:\n    return np.full(40000, 0.0)\n"]
    + [f"def a{i}(a{i - 1}: np.ndarray) -> np.ndarray:\n    return a{i - 1} + 1\n"
       for i in range(1, 12)]
)


def test_disk_full_mid_run_writing_parquet_gives_right_values_and_one_warning(
        mounts, tmp_path, calls):
    disk = mounts(tmp_path / "disk", "1M")
    with ours() as w:
        p = session(disk / "cache")
        p.exec("import pandas as pd\nfrom hamilton.function_modifiers import cache")
        p.cell(PARQUET_CHAIN)
        frame = p.run("f11")["f11"]
        p.s.close()
    assert list(frame["x"][:2]) == [11.0, 11.0] and len(frame) == 40000
    _one_clear_warning(w)
    assert not list((disk / "cache" / "tmp").iterdir())


def test_disk_full_mid_run_gives_right_values_one_warning_and_nothing_poisonous(
        mounts, tmp_path, calls):
    disk = mounts(tmp_path / "disk", "1M")  # ~3 of the twelve 320 kB values fit
    cache = disk / "cache"
    with ours() as w:
        p = session(cache)
        p.cell(BIG_CHAIN)
        got = p.run("a11")["a11"]
        p.s.close()
    assert np.array_equal(got, np.full(40000, 11.0))
    _one_clear_warning(w, "space")
    assert not list((cache / "tmp").iterdir())  # no half-written value left behind
    # the folder as the failed writes left it reads cleanly: no damaged record, right values
    with ours() as w2:
        store = DiskStore(cache)
        entries = store.entries()
        for e in entries:
            i = int(e.node[1:])
            assert np.array_equal(store.load(e), np.full(40000, float(i)))
        store.close()
    assert w2 == [] and 1 <= len(entries) < 12
    subprocess.run(["mount", "-o", "remount,size=16M", str(disk)], check=True)
    with ours() as w3:
        p = session(cache)
        p.cell(BIG_CHAIN)
        assert np.array_equal(p.run("a11")["a11"], np.full(40000, 11.0))
        st = p.statuses()
    assert w3 == []
    assert [st[f"a{i}"] for i in range(len(entries))] == ["cached"] * len(entries)


PARQUET_CHAIN = "\n".join(
    ["@cache(format='parquet')\ndef f0() -> pd.DataFrame:\n"
     "    return pd.DataFrame({'x': np.full(40000, 0.0), 'y': np.arange(40000.0)})\n"]
    + [f"@cache(format='parquet')\ndef f{i}(f{i - 1}: pd.DataFrame) -> pd.DataFrame:\n"
       f"    return f{i - 1}.assign(x=f{i - 1}['x'] + 1)\n" for i in range(1, 12)]
)


def test_journal_line_cut_by_a_full_disk_leaves_no_torn_record(mounts, tmp_path):
    disk = mounts(tmp_path / "disk", "1M")
    cache = disk / "cache"
    store = DiskStore(cache)
    store.put("k0", "n", "cv", "dv0", {"i": 0}, "joblib", 0.0, {})  # the journal has its page
    _fill(disk)
    with ours() as w:
        i = 0
        while store.degraded is None and i < 1000:  # inline values: journal lines only
            i += 1
            store.put(f"k{i}", "n", "cv", f"dv{i}", {"i": i, "pad": "x" * 200}, "joblib", 0.0, {})
        assert store.load(store.lookup(f"k{i}"))["i"] == i  # the failed one is kept in memory
    store.close()
    assert store.degraded is not None and len(w) == 1 and "space" in w[0]
    journal = cache / "index" / store._journal_name
    assert journal.read_bytes().endswith(b"\n")  # the partial line was cut off again
    with ours() as w2:
        again = DiskStore(cache)
        got = sorted(again.load(e)["i"] for e in again.entries())
    assert w2 == [] and got == list(range(len(got))) and 1 < len(got) <= i


# -- 6. leftovers of killed writers ----------------------------------------------------------------

BIG_WRITER = """
import sys
import numpy as np
from hamilton_nb.store import DiskStore
from hamilton_nb.versions import fingerprint

store = DiskStore(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    value = np.full(4_000_000, i, dtype=np.int64)  # 32 MB: most of the time is spent writing
    store.put(f"k{i}", "n", "cv", fingerprint(value), value, "joblib", 0.0, {})
    i += 1
"""


def _writing(cache: Path, pid: int) -> bool:
    """Whether writer ``pid`` has a temp value file with data in it (caught mid-write)."""
    for n in os.listdir(cache / "tmp"):
        if f"-{pid}-" in n and n.endswith(".joblib"):
            with contextlib.suppress(FileNotFoundError):
                if (cache / "tmp" / n).stat().st_size > 2**20:
                    return True
    return False


def _kill_writers_mid_write(cache: Path, n: int) -> None:
    """Start ``n`` writers on one folder and SIGKILL each in the middle of writing a value."""
    procs = [subprocess.Popen([sys.executable, "-c", BIG_WRITER, str(cache)],
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            deadline = time.time() + 60
            while not _writing(cache, proc.pid) and time.time() < deadline:
                assert proc.poll() is None, "a writer died on its own"
                time.sleep(0.0005)
            proc.send_signal(signal.SIGKILL)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_temp_files_of_killed_writers_are_reclaimed_when_a_store_opens(tmp_path):
    cache = tmp_path / "cache"
    DiskStore(cache).close()
    _kill_writers_mid_write(cache, 3)
    left = [n for n in os.listdir(cache / "tmp") if n.endswith(".joblib")]
    assert len(left) >= 2, "the writers were not caught mid-write"
    store = DiskStore(cache)
    assert os.listdir(cache / "tmp") == []
    assert store.last_reclaimed[0] >= len(left) and store.last_reclaimed[1] > 0
    assert all(np.array_equal(store.load(e), np.full(4_000_000, int(e.key[1:])))
               for e in store.entries())


def test_temp_file_of_a_live_writer_is_kept(tmp_path):
    cache = tmp_path / "cache"
    DiskStore(cache).close()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = cache / "tmp" / f"{_host()}-{live.pid}-abcdefgh.joblib"
        busy.write_bytes(b"being written")
        DiskStore(cache).close()
        assert busy.exists()
    finally:
        live.kill()
        live.wait()
    DiskStore(cache).close()
    assert not busy.exists()  # its writer is gone now


def _host() -> str:
    from hamilton_nb._trust import temp_prefix

    return temp_prefix().rsplit("-", 2)[0]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("command", ["cache clear", "cache evict --max-size 0"])
def test_cache_clear_and_evict_reclaim_leftovers_and_say_so(nb, capsys, command):
    nb.run("import numpy as np")
    nb.cell("def x() -> np.ndarray:\n    return np.ones(50000)\n", cell_id="c1")
    cache = nb.session.cache_dir
    leftover = cache / "tmp" / f"{_host()}-{_dead_pid()}-killed01.joblib"
    leftover.write_bytes(b"\0" * 300_000)
    beside = cache / "checkpoints" / f".tmp-{_host()}-{_dead_pid()}-killed02"
    beside.parent.mkdir(exist_ok=True)
    beside.write_bytes(b"{")
    # renamed into place, then killed before its journal line: no entry refers to it
    orphan = cache / "values" / "ab" / ("ab" + "0" * 30 + ".joblib")
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"\0" * 1000)
    capsys.readouterr()
    nb.line(command)
    out = capsys.readouterr().out
    assert "Reclaimed 3 leftover file(s)" in out
    assert not leftover.exists() and not beside.exists() and not orphan.exists()


def test_fresh_unreferenced_value_is_kept_while_another_writer_is_alive(tmp_path):
    cache = tmp_path / "cache"
    live = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom hamilton_nb.store import DiskStore\n"
        "s = DiskStore(sys.argv[1]); s.put('k', 'n', 'cv', 'dv', 1, 'joblib', 0.0, {})\n"
        "print('ready', flush=True); time.sleep(60)"), str(cache)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "ready"
        fresh = cache / "values" / "cd" / ("cd" + "1" * 30 + ".joblib")  # just renamed in
        fresh.parent.mkdir(parents=True, exist_ok=True)
        fresh.write_bytes(b"x")
        store = DiskStore(cache)
        store.reclaim(orphans=True)
        assert fresh.exists()
        os.utime(fresh, (time.time() - 3600, time.time() - 3600))
        store.reclaim(orphans=True)
        assert not fresh.exists()
    finally:
        live.kill()
        live.wait()


def test_cache_clear_of_one_node_keeps_the_values_of_the_others(nb, calls):
    nb.run("import numpy as np\nimport hnb_calls")
    nb.cell(CHAIN, cell_id="c1")
    nb.line("cache clear small")
    nb.run("del big, total")
    calls.clear()
    nb.line("run total big")
    assert nb.statuses()["big"] == "cached" and np.array_equal(nb.value("big"), np.arange(20000))


def test_temp_file_without_a_writer_pid_is_reclaimed_once_an_hour_old(tmp_path):
    cache = tmp_path / "cache"
    DiskStore(cache).close()
    old = cache / "tmp" / "tmpab12cd34.joblib"  # named by an older version: no pid
    fresh = cache / "tmp" / "tmpzz98yy76.joblib"
    for f in (old, fresh):
        f.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    DiskStore(cache).close()
    assert not old.exists() and fresh.exists()


# -- 7. the signed index ---------------------------------------------------------------------------


def test_signed_cache_round_trips_and_a_tampered_record_is_a_miss_with_a_warning(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls, key="s3cret")
    values, st, w = rerun(cache, key="s3cret")
    assert_right(values)
    assert set(st.values()) == {"cached"} and w == []
    rec = put_record(cache, "small")
    j = next(j for j in journals(cache) if '"node":"small"' in j.read_text())
    forged = dict(rec, entry=dict(rec["entry"], inline=base64.b64encode(
        pickle.dumps(99)).decode(), checksum=None))
    from hamilton_nb._trust import checksum_of

    forged["entry"]["checksum"] = checksum_of(pickle.dumps(99), b"guess")  # cannot know the key
    replace_record(j, rec, forged)
    values, st, w = rerun(cache, key="s3cret")
    assert_right(values)
    assert st["small"] == "computed" and st["big"] == "cached"
    assert len(w) == 1 and "badly signed" in w[0] and str(j) in w[0]


def test_with_a_key_unsigned_records_are_misses_with_one_warning(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls)  # written without a key
    values, st, w = rerun(cache, key="s3cret")
    assert_right(values)
    assert set(st.values()) == {"computed"}
    assert len(w) == 1 and "unsigned" in w[0]


def test_with_another_key_signed_records_are_misses(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls, key="one")
    values, st, _ = rerun(cache, key="two")
    assert_right(values)
    assert set(st.values()) == {"computed"}


def test_with_a_key_a_swapped_value_file_is_a_miss(tmp_path, calls):
    cache = tmp_path / "cache"
    computed(cache, calls, key="s3cret")
    f = _value_file(cache, "big")
    import joblib

    joblib.dump(np.zeros(20000, dtype=np.int64), f)
    values, st, w = rerun(cache, key="s3cret")
    assert_right(values)
    assert st["big"] == "computed"
    assert any("`big`" in m for m in w)


def _signed_checkpoint(cache: Path, calls, key: str = "s3cret") -> PlainSession:
    p = session(cache, key)
    p.cell(CHAIN)
    p.run("total")
    p.s.checkpoint_save("v1")
    return p


def test_restore_of_a_tampered_checkpoint_is_refused_and_changes_nothing(tmp_path, calls):
    cache = tmp_path / "cache"
    p = _signed_checkpoint(cache, calls)
    f = cache / "checkpoints" / "v1.json"
    m = json.loads(f.read_text())
    m["cells"][0]["body"] += "\nimport os\nos.system('echo pwned')\n"
    f.write_text(json.dumps(m))
    p.cell("def other() -> int:\n    return 1\n", "c2")
    before = set(p.s.dag.nodes)
    with pytest.raises(CheckpointError, match="badly signed"):
        p.s.checkpoint_restore("v1")
    assert set(p.s.dag.nodes) == before
    assert list(p.s.checkpoint_list()["name"]) == ["v1"]  # no auto-* saved either


def test_restore_refuses_unsigned_checkpoints_and_last_state_with_a_key(tmp_path, calls):
    cache = tmp_path / "cache"
    p = session(cache)
    p.cell(CHAIN)
    p.run("total")
    p.s.checkpoint_save("plain")
    p.s.close()
    p2 = session(cache, key="s3cret")
    with pytest.raises(CheckpointError, match="unsigned"):
        p2.s.checkpoint_restore("plain")
    with pytest.raises(CheckpointError, match="unsigned"):
        p2.s.restore()
    assert not p2.s.dag.cells


def test_signed_checkpoint_restores_with_its_key(tmp_path, calls):
    cache = tmp_path / "cache"
    p = _signed_checkpoint(cache, calls)
    p.s.close()
    p2 = session(cache, key="s3cret")
    report = p2.s.checkpoint_restore("v1")
    assert report.cells and "total" in report.bound
    assert p2.s.value("total") == TOTAL


@pytest.fixture
def key_reset(nb):
    """The shell's session outlives the test: never leave a key set on it."""
    yield nb
    nb.session.set_cache_key(None)


def test_cache_key_magic_signs_and_never_prints_the_secret(key_reset, capsys):
    nb = key_reset
    nb.line("cache key")
    assert "not signed" in capsys.readouterr().out
    nb.line("cache key hunter2")
    out = capsys.readouterr().out
    assert "signed" in out and "hunter2" not in out
    assert nb.session.cache_key == b"hunter2"
    nb.run("import numpy as np")
    nb.cell("def x() -> np.ndarray:\n    return np.ones(50000)\n", cell_id="c1")
    recs = records(nb.session.cache_dir)
    assert recs and all("sig" in r for r in recs)
    nb.line("cache key --off")
    assert nb.session.cache_key is None or os.environ.get("HAMILTON_NB_CACHE_KEY")
    with pytest.raises(UsageError, match="Usage"):
        nb.line("cache key a b")


def test_restore_magics_refuse_unsigned_code_with_a_usage_error(key_reset, calls):
    nb = key_reset
    nb.run("import numpy as np\nimport hnb_calls")
    nb.cell(CHAIN, cell_id="c1")
    nb.line("checkpoint save plain")
    nb.line("cache key s3cret")
    cells = set(nb.session.dag.cells)
    with pytest.raises(UsageError, match="unsigned"):
        nb.line("checkpoint restore plain")
    with pytest.raises(UsageError, match="unsigned"):
        nb.line("restore")
    assert set(nb.session.dag.cells) == cells
    nb.line("cache key --off")


def test_key_from_the_environment_signs_records(tmp_path, calls, monkeypatch):
    monkeypatch.setenv("HAMILTON_NB_CACHE_KEY", "from-env")
    cache = tmp_path / "cache"
    computed(cache, calls)
    assert all("sig" in r for r in records(cache))
    monkeypatch.delenv("HAMILTON_NB_CACHE_KEY")
    _, st, w = rerun(cache)  # without the key: signed entries cannot be checked, so not used
    assert set(st.values()) == {"computed"} and len(w) == 1


# -- 8. bad input to the magics --------------------------------------------------------------------


def _snapshot(nb) -> tuple:
    ns = {k: id(v) for k, v in nb.ns.items() if not k.startswith("_")}
    return set(nb.session.dag.cells), set(nb.session.dag.nodes), ns


def test_overrides_naming_an_unknown_node_is_a_usage_error_changing_nothing(nb, calls):
    nb.cell("def a() -> int:\n    return 1\n\ndef b(a: int) -> int:\n    return a + 1\n",
            cell_id="c1")
    before = _snapshot(nb)
    with pytest.raises(UsageError, match=r"unknown node.*nope.*spelling"):
        nb.cell("def c(b: int) -> int:\n    return b * 10\n", "--overrides dict(nope=5)",
                cell_id="c2")
    assert _snapshot(nb) == before
    with pytest.raises(UsageError, match=r"unknown node.*nope"):
        nb.line("run b --overrides dict(nope=5)")
    assert _snapshot(nb) == before
    nb.line("run b --overrides dict(a=10)")  # a known one still works
    assert nb.ns["b"] == 11


def test_input_of_the_wrong_type_is_a_usage_error_before_anything_runs(nb, calls):
    nb.run("import numpy as np\nimport hnb_calls")
    nb.run("n = 'three'")
    with pytest.raises(UsageError, match=r"`n` is a str.*int"):
        nb.cell("def arr(n: int) -> np.ndarray:\n    hnb_calls.log.append('arr')\n"
                "    return np.arange(n)\n", cell_id="c1")
    assert calls == [] and "arr" not in nb.ns
    with pytest.raises(UsageError, match=r"`n` is a list"):
        nb.line("run arr --inputs dict(n=[1])")
    assert calls == []
    nb.line("run arr --inputs dict(n=3)")
    assert list(nb.ns["arr"]) == [0, 1, 2]


@pytest.mark.parametrize("where", ["file_as_folder", "under_a_file", "folder", "proc"])
def test_export_to_an_impossible_path_is_a_usage_error_leaving_nothing(nb, tmp_path, where):
    nb.cell("def a() -> int:\n    return 1\n", cell_id="c1")
    f = tmp_path / "plain-file"
    f.write_text("x")
    (tmp_path / "adir.py").mkdir()
    target = {"file_as_folder": f / "out.py", "under_a_file": f / "deeper" / "out.py",
              "folder": tmp_path / "adir.py", "proc": Path("/proc/hnb-no/out.py")}[where]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UsageError, match="export"):
        nb.line(f"export {target}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert f.read_text() == "x" and list((tmp_path / "adir.py").iterdir()) == []


def test_export_to_a_missing_folder_creates_it(nb, tmp_path):
    nb.cell("def a() -> int:\n    return 1\n", cell_id="c1")
    nb.line(f"export {tmp_path / 'new' / 'out.py'}")
    assert "def a" in (tmp_path / "new" / "out.py").read_text()


RESET_STATES = {
    "fresh": [],
    "twice": ["%hamilton reset"],
    "none_value_deleted": ["%%hamilton\ndef nothing() -> None:\n    return None\n", "del nothing"],
    "none_value_kept": ["%%hamilton\ndef nothing() -> None:\n    return None\n"],
    "user_reassigned": ["%%hamilton\ndef a() -> int:\n    return 1\n", "a = 'mine'"],
    "failed_run": ["%%hamilton\ndef boom() -> int:\n    raise ValueError('x')\n"],
    "cached_lazy": ["%%hamilton\ndef a() -> int:\n    return 1\n", "del a",
                    "%hamilton run a"],
    "after_cache_clear": ["%%hamilton\ndef a() -> int:\n    return 1\n", "%hamilton cache clear"],
}


def test_null_journal_line_leaves_every_cell_working_in_the_notebook(nb, calls):
    nb.run("import numpy as np\nimport hnb_calls")
    nb.cell(CHAIN, cell_id="c1")
    nb.session.close()
    j = journals(nb.session.cache_dir)[0]
    j.write_text("null\n" + j.read_text())
    calls.clear()
    with ours() as w:
        nb.cell(CHAIN, cell_id="c1")
        nb.cell("def double(total: int) -> int:\n    return 2 * total\n", cell_id="c2")
    assert nb.value("double") == 2 * TOTAL and nb.value("total") == TOTAL
    assert calls == []
    assert len(w) == 1 and str(j) in w[0]
    assert {"big", "small", "total", "double"} <= set(nb.line("cache")["node"])
    nb.line("checkpoint save after-null")
    assert "after-null" in set(nb.line("checkpoint list")["name"])


@pytest.mark.parametrize("state", list(RESET_STATES))
def test_reset_works_in_every_state(nb, state):
    for code in RESET_STATES[state]:
        with contextlib.suppress(ValueError):  # the failing node
            nb.run(code)
    nb.line("reset")
    assert not nb.session.dag.cells
    assert "nothing" not in nb.ns
    if state == "user_reassigned":
        assert nb.ns["a"] == "mine"
    else:
        assert "a" not in nb.ns
    nb.line("reset")

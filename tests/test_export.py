"""`%hamilton export FILE.py`: the live DAG as a module a plain Hamilton driver runs (issue 5)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

ORDINARY = """
import numpy as np
import pandas as pd
from hamilton.function_modifiers import config, extract_columns, tag

THRESHOLD = 0.25
WEIGHTS = {"a": 2.0, "b": -1.0}

def _jitter(x):
    return x * 0.5

def score(frame, weights):
    return sum(frame[c] * w for c, w in weights.items()) + _jitter(THRESHOLD)

class Clipper:
    def __init__(self, lo):
        self.lo = lo

    def __call__(self, s):
        return s.clip(lower=self.lo)
"""

CELL_DATA = """
@extract_columns("a", "b")
def frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})

def weighted(frame: pd.DataFrame) -> pd.Series:
    return score(frame, WEIGHTS)
"""

CELL_MODEL = """
import math

def _local_helper(s: pd.Series) -> pd.Series:
    return s * math.pi

@config.when(mode="clip")
def result__clip(weighted: pd.Series) -> pd.Series:
    return _local_helper(Clipper(THRESHOLD)(weighted))

@config.when(mode="raw")
def result__raw(weighted: pd.Series) -> pd.Series:
    return _local_helper(weighted)

@tag(kind="summary")
def total(result: pd.Series, a: pd.Series) -> float:
    return float(result.sum() + a.mean())
"""

OUTPUTS = ["frame", "a", "weighted", "result", "total"]

RUNNER = """
import importlib, os, pickle, sys
from hamilton import driver

sys.path.insert(0, os.path.dirname(sys.argv[1]))
mod = importlib.import_module(os.path.basename(sys.argv[1])[:-3])
assert "hamilton_nb" not in sys.modules  # plain Hamilton only
dr = driver.Builder().with_modules(mod).with_config(mod.HAMILTON_CONFIG).build()
out = dr.execute({outputs!r}, inputs={{"n": 11}})
with open(sys.argv[2], "wb") as fh:
    pickle.dump({{k: out[k] for k in {outputs!r}}}, fh)
"""


def test_exported_module_runs_in_a_plain_hamilton_driver_with_the_notebook_results(nb, tmp_path):
    nb.run(ORDINARY)
    nb.run("n = 11")
    nb.cell(CELL_DATA, "--config \"dict(mode='clip')\"", cell_id="data")
    nb.cell(CELL_MODEL, cell_id="model")
    nb.line("run " + " ".join(OUTPUTS) + " -q")
    expected = {k: nb.value(k) for k in OUTPUTS}

    path = tmp_path / "pipeline.py"
    nb.line(f"export {path}")
    source = path.read_text()
    compile(source, str(path), "exec")
    # Helpers, constants and imports from ordinary cells are in; the public helper is excluded
    # from the DAG, so it does not become a node.
    assert "THRESHOLD = 0.25" in source and "WEIGHTS = " in source
    assert "@_hamilton_exclude\ndef score(" in source
    assert "class Clipper" in source
    assert "def _jitter(" in source
    assert "HAMILTON_CONFIG = {'mode': 'clip'}" in source

    out = tmp_path / "out.pkl"
    runner = tmp_path / "run.py"
    runner.write_text(textwrap.dedent(RUNNER.format(outputs=OUTPUTS)))
    proc = subprocess.run([sys.executable, str(runner), str(path), str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as fh:
        got = pickle.load(fh)

    assert got["frame"].equals(expected["frame"])
    for k in ("a", "weighted", "result"):
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(expected[k]))
        assert isinstance(got[k], pd.Series)
    assert got["total"] == pytest.approx(expected["total"], rel=0, abs=0)


def test_export_lists_what_it_cannot_write_as_source(nb, tmp_path):
    nb.run("import pandas as pd\nLOOKUP = pd.DataFrame({'k': [1, 2]})")
    nb.cell("""
        def joined(x: int) -> int:
            return x + len(LOOKUP) + len(UNDEFINED_THING)
    """, "-r", cell_id="j")
    result = nb.session.export(tmp_path / "j.py")
    problems = "\n".join(result.problems)
    assert "`LOOKUP`: a DataFrame has no literal source" in problems
    assert "`UNDEFINED_THING`: not defined in the notebook" in problems
    assert "could not be exported" in (tmp_path / "j.py").read_text()


def test_export_usage_errors(nb, tmp_path):
    with pytest.raises(UsageError, match="empty"):
        nb.line(f"export {tmp_path / 'x.py'}")
    nb.cell("def one() -> int:\n    return 1\n", "-r", cell_id="o")
    with pytest.raises(UsageError, match=r"\.py file"):
        nb.line(f"export {tmp_path / 'x.txt'}")
    with pytest.raises(UsageError, match=r"Usage: %hamilton export FILE\.py"):
        nb.line("export")

"""Never stale, adversarially (issue 10): one test per kind of edit a user makes between two runs.

Each scenario is a little notebook driven through a real in-process IPython shell:

1. its ``setup`` cells run, and the node is run twice (the second run must be ``cached``, or the
   scenario proves nothing);
2. the ``edit`` cells run (ordinary cells, re-run ``%%hamilton`` cells, files written on disk);
3. the node is asked for again. Its value must equal a from-scratch run — the same cells
   replayed in order in a fresh namespace on a fresh cache — and, since what it depends on
   changed, the first run that touched it after the edit must have ``computed`` it.

Every stale value anyone finds becomes a scenario here first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import CALLS_MODULE, PlainSession

import hamilton_nb

Cell = str | tuple[str, str]  # an ordinary cell, or (cell id, body of a %%hamilton cell)


@dataclass
class Scenario:
    setup: list[Cell]
    edit: list[Cell]
    node: str = "y"
    modules: tuple[str, ...] = ()  # user modules the cells import (dropped before a replay)
    files: dict[str, str] = field(default_factory=dict)  # written before the setup


def _run_cells(nb: Any, cells: list[Cell], node: str) -> str | None:
    """Run cells in order; the status of ``node`` in the first run that touched it."""
    first = None
    for c in cells:
        runs = nb.session._run_counter
        if isinstance(c, tuple):
            nb.cell(c[1], line="-q", cell_id=c[0])
        else:
            nb.run(c)
        if first is None and nb.session._run_counter != runs:
            df = nb.session.last_run()
            touched = dict(zip(df["node"], df["status"], strict=True))
            first = touched.get(node)
    return first


def _reset(nb: Any, cache: Path, modules: tuple[str, ...]) -> None:
    """A fresh kernel on a fresh cache: empty namespace and DAG, user modules not imported."""
    s = nb.session
    s.reset()
    nb.ip.reset(new_session=False)
    s.set_cache_dir(cache)
    nb.ip.user_ns[CALLS_MODULE] = sys.modules[CALLS_MODULE]
    for m in modules:
        for name in [k for k in sys.modules if k == m or k.startswith(m + ".")]:
            del sys.modules[name]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame | pd.Series | pd.Index):
        return type(a) is type(b) and hamilton_nb.versions.fingerprint(a) == \
            hamilton_nb.versions.fingerprint(b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def check(nb: Any, tmp_path: Path, sc: Scenario, expect: str = "computed") -> None:
    for name, text in sc.files.items():
        p = tmp_path / "src" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    _run_cells(nb, sc.setup, sc.node)
    nb.line(f"run -q {sc.node}")
    before = nb.value(sc.node)
    nb.line(f"run -q {sc.node}")
    assert nb.statuses()[sc.node] == "cached", "the scenario must cache before its edit"
    status = _run_cells(nb, sc.edit, sc.node)
    nb.line(f"run -q {sc.node}")
    status = status or nb.statuses()[sc.node]
    after = nb.value(sc.node)

    _reset(nb, tmp_path / "scratch-cache", sc.modules)
    for name, text in sc.files.items():  # the files as they were before the edit cells ran
        (tmp_path / "src" / name).write_text(textwrap.dedent(text))
    _run_cells(nb, sc.setup + sc.edit, sc.node)
    nb.line(f"run -q {sc.node}")
    scratch = nb.value(sc.node)
    assert _same(after, scratch), f"stale: {after!r} after the edit, {scratch!r} from scratch"
    assert status == expect, f"`{sc.node}` was {status} after the edit"
    if expect == "computed":
        assert not _same(before, after), "the edit must change the value, or it proves nothing"


def H(body: str, cid: str = "c1") -> tuple[str, str]:
    return (cid, textwrap.dedent(body))


def Y(expr: str, ret: str = "int", params: str = "") -> tuple[str, str]:
    """The node under test: ``def y(params) -> ret: return expr``."""
    return H(f"def y({params}) -> {ret}:\n    hnb_calls.log.append('y')\n    return {expr}\n")


def _write(name: str, text: str) -> str:
    """An ordinary cell that (re)writes a user module's file, as an editor would."""
    return (f"import pathlib\npathlib.Path(SRC, {name!r}).write_text({textwrap.dedent(text)!r})"
            f"\nimport importlib\nimportlib.invalidate_caches()")


PARAM = ("from hamilton.function_modifiers import parameterize, value, does, pipe_input, step, "
         "source")

SCENARIOS: dict[str, Scenario] = {
    # -- item 1: defaults and decorator arguments --------------------------------------------
    "default_argument_literal": Scenario([Y("k", params="k: int = 2")],
                                         [Y("k", params="k: int = 3")]),
    "default_argument_from_constant": Scenario(
        ["K = 2", Y("k", params="k: int = K")], ["K = 3", Y("k", params="k: int = K")]),
    "mutable_default_mutated": Scenario(
        ["DEFAULT = [1, 2]", Y("sum(xs)", params="xs: list = DEFAULT")], ["DEFAULT.append(4)"]),
    "parameterize_value_literal": Scenario(
        [PARAM, H("@parameterize(y=dict(k=value(2)))\ndef scale(k: int) -> int:\n"
                  "    return 10 * k\n")],
        [H("@parameterize(y=dict(k=value(3)))\ndef scale(k: int) -> int:\n    return 10 * k\n")]),
    "parameterize_value_of_constant": Scenario(
        [PARAM, "LIMIT = 2",
         H("@parameterize(y=dict(k=value(LIMIT)))\ndef scale(k: int) -> int:\n"
           "    return 10 * k\n")],
        ["LIMIT = 3",
         H("@parameterize(y=dict(k=value(LIMIT)))\ndef scale(k: int) -> int:\n"
           "    return 10 * k\n")]),
    "parameterize_from_dict_constant": Scenario(
        [PARAM, "P = {'y': 2}",
         H("@parameterize(**{n: dict(k=value(v)) for n, v in P.items()})\n"
           "def scale(k: int) -> int:\n    return 10 * k\n")],
        ["P = {'y': 5}",
         H("@parameterize(**{n: dict(k=value(v)) for n, v in P.items()})\n"
           "def scale(k: int) -> int:\n    return 10 * k\n")]),
    "notebook_decorator_argument": Scenario(
        ["import functools\ndef scaled(f_):\n    def deco(fn):\n"
         "        @functools.wraps(fn)\n        def w(*a, **k):\n"
         "            return f_ * fn(*a, **k)\n"
         "        return w\n    return deco\n",
         H("@scaled(2)\ndef y() -> int:\n    return 5\n")],
        [H("@scaled(3)\ndef y() -> int:\n    return 5\n")]),
    "notebook_decorator_body": Scenario(
        ["import functools\ndef twice(fn):\n    @functools.wraps(fn)\n    def w(*a, **k):\n"
         "        return 2 * fn(*a, **k)\n    return w\n",
         H("@twice\ndef y() -> int:\n    return 5\n")],
        ["def twice(fn):\n    @functools.wraps(fn)\n    def w(*a, **k):\n"
         "        return 3 * fn(*a, **k)\n    return w\n",
         H("@twice\ndef y() -> int:\n    return 5\n")]),
    "does_other_function": Scenario(
        [PARAM, "def _sum(**kw):\n    return sum(kw.values())\n"
         "def _max(**kw):\n    return max(kw.values())\n",
         H("def a() -> int:\n    return 1\ndef b() -> int:\n    return 5\n", "c0"),
         H("@does(_sum)\ndef y(a: int, b: int) -> int:\n    pass\n")],
        [H("@does(_max)\ndef y(a: int, b: int) -> int:\n    pass\n")]),
    "does_function_body_edited": Scenario(
        [PARAM, "def _comb(**kw):\n    return sum(kw.values())\n",
         H("def a() -> int:\n    return 1\ndef b() -> int:\n    return 5\n", "c0"),
         H("@does(_comb)\ndef y(a: int, b: int) -> int:\n    pass\n")],
        ["def _comb(**kw):\n    return max(kw.values())\n",
         H("@does(_comb)\ndef y(a: int, b: int) -> int:\n    pass\n")]),
    "does_function_helper_edited": Scenario(
        [PARAM, "def _inner(v):\n    return v\ndef _comb(**kw):\n"
         "    return sum(_inner(v) for v in kw.values())\n",
         H("def a() -> int:\n    return 1\ndef b() -> int:\n    return 5\n", "c0"),
         H("@does(_comb)\ndef y(a: int, b: int) -> int:\n    pass\n")],
        ["def _inner(v):\n    return v * 10\n"]),
    "pipe_input_step_function_edited": Scenario(
        [PARAM, "def _scale(v: int) -> int:\n    return v * 2\n",
         H("def x() -> int:\n    return 3\n", "c0"),
         H("@pipe_input(step(_scale))\ndef y(x: int) -> int:\n    return x + 1\n")],
        ["def _scale(v: int) -> int:\n    return v * 3\n",
         H("@pipe_input(step(_scale))\ndef y(x: int) -> int:\n    return x + 1\n")]),
    "pipe_input_step_argument": Scenario(
        [PARAM, "def _scale(v: int, k: int) -> int:\n    return v * k\n",
         H("def x() -> int:\n    return 3\n", "c0"),
         H("@pipe_input(step(_scale, k=value(2)))\ndef y(x: int) -> int:\n    return x + 1\n")],
        [H("@pipe_input(step(_scale, k=value(4)))\ndef y(x: int) -> int:\n    return x + 1\n")]),
    "helper_closure_factory_argument": Scenario(
        ["def make_scaler(k):\n    def s(v):\n        return v * k\n    return s\n"
         "scale = make_scaler(2)", Y("scale(5)")],
        ["scale = make_scaler(3)"]),
    "helper_default_changed": Scenario(
        ["def _h(v, k=2):\n    return v * k\n", Y("_h(5)")],
        ["def _h(v, k=3):\n    return v * k\n"]),
    "helper_default_is_a_function_edited": Scenario(
        ["def _double(v):\n    return v * 2\ndef _apply(v, fn=_double):\n    return fn(v)\n",
         Y("_apply(5)")],
        ["def _double(v):\n    return v * 20\ndef _apply(v, fn=_double):\n    return fn(v)\n"]),
    "partial_argument_changed": Scenario(
        ["import functools\ndef _f(v, k):\n    return v * k\nhelper = functools.partial(_f, k=2)",
         Y("helper(5)")],
        ["helper = functools.partial(_f, k=3)"]),
    "decorator_value_copied_from_an_object_then_cell_rerun": Scenario(
        [PARAM, "class Cfg:\n    def __init__(self, k):\n        self.k = k\ncfg = Cfg(2)",
         H("@parameterize(y=dict(k=value(cfg.k)))\ndef scale(k: int) -> int:\n"
           "    return 10 * k\n")],
        ["cfg.k = 3", "%hamilton run -q y",  # y still gets the 2 copied when it was defined
         H("@parameterize(y=dict(k=value(cfg.k)))\ndef scale(k: int) -> int:\n"
           "    return 10 * k\n")]),
    "decorator_value_list_mutated_without_rerun": Scenario(
        [PARAM, "ITEMS = [1, 2]",
         H("@parameterize(y=dict(items=value(ITEMS)))\ndef total(items: list) -> int:\n"
           "    return sum(items)\n")],
        ["ITEMS.append(10)"]),
    # -- item 2: functions passed as data ----------------------------------------------------
    "dict_of_functions_function_edited": Scenario(
        ["def _double(v):\n    return v * 2\nOPS = {'scale': _double}", Y("OPS['scale'](5)")],
        ["def _double(v):\n    return v * 2 + 1\nOPS = {'scale': _double}"]),
    "dict_of_functions_mutated": Scenario(
        ["def _double(v):\n    return v * 2\ndef _triple(v):\n    return v * 3\n"
         "OPS = {'scale': _double}", Y("OPS['scale'](5)")],
        ["OPS['scale'] = _triple"]),
    "default_dict_of_functions_mutated": Scenario(
        ["def _double(v):\n    return v * 2\ndef _triple(v):\n    return v * 3\n"
         "OPS = {'scale': _double}", Y("ops['scale'](5)", params="ops: dict = OPS")],
        ["OPS['scale'] = _triple"]),
    "np_vectorize_function_edited": Scenario(
        ["import numpy as np\ndef _f(v):\n    return v * 2\nvf = np.vectorize(_f)",
         Y("int(vf(np.arange(3)).sum())")],
        ["def _f(v):\n    return v * 3\nvf = np.vectorize(_f)"]),
    "np_vectorize_function_reads_constant": Scenario(
        ["import numpy as np\nK = 2\ndef _f(v):\n    return v * K\nvf = np.vectorize(_f)",
         Y("int(vf(np.arange(3)).sum())")],
        ["K = 5"]),
    "tuple_of_functions_edited": Scenario(
        ["def _a(v):\n    return v + 1\nSTEPS = (_a, abs)", Y("STEPS[0](STEPS[1](-5))")],
        ["def _a(v):\n    return v + 2\nSTEPS = (_a, abs)"]),
    "instance_holding_a_function": Scenario(
        ["class Cfg:\n    def __init__(self, fn):\n        self.fn = fn\n"
         "def _double(v):\n    return v * 2\ncfg = Cfg(_double)", Y("cfg.fn(5)")],
        ["def _double(v):\n    return v * 2 + 1\ncfg = Cfg(_double)"]),
    # -- item 4: classes and callables by kind -----------------------------------------------
    "enum_member_value": Scenario(
        ["import enum\nclass Mode(enum.Enum):\n    A = 1\n    B = 2\n", Y("Mode.A.value")],
        ["class Mode(enum.Enum):\n    A = 10\n    B = 2\n"]),
    "enum_member_added": Scenario(
        ["import enum\nclass Mode(enum.Enum):\n    A = 1\n", Y("len(Mode)")],
        ["class Mode(enum.Enum):\n    A = 1\n    B = 2\n"]),
    "enum_method_edited": Scenario(
        ["import enum\nclass Mode(enum.Enum):\n    A = 1\n    def twice(self):\n"
         "        return self.value * 2\n", Y("Mode.A.twice()")],
        ["class Mode(enum.Enum):\n    A = 1\n    def twice(self):\n"
         "        return self.value * 3\n"]),
    "bound_method_instance_state": Scenario(
        ["class Scaler:\n    def __init__(self, k):\n        self.k = k\n"
         "    def apply(self, v):\n        return v * self.k\napply = Scaler(2).apply",
         Y("apply(5)")],
        ["apply = Scaler(3).apply"]),
    "bound_method_code": Scenario(
        ["class Scaler:\n    def __init__(self, k):\n        self.k = k\n"
         "    def apply(self, v):\n        return v * self.k\napply = Scaler(2).apply",
         Y("apply(5)")],
        ["class Scaler:\n    def __init__(self, k):\n        self.k = k\n"
         "    def apply(self, v):\n        return v * self.k + 1\napply = Scaler(2).apply"]),
    "builtin_bound_method_of_dict": Scenario(
        ["TABLE = {'a': 1}\nlookup = TABLE.get", Y("lookup('a')")], ["TABLE['a'] = 7"]),
    "lambda_with_generator_expression": Scenario(
        ["K = 2\nf = lambda xs: sum(v * K for v in xs)", Y("f([1, 2, 3])")], ["K = 3"]),
    "lambda_with_nested_lambda": Scenario(
        ["K = 2\nf = lambda v: (lambda w: w * K)(v)", Y("f(5)")], ["K = 3"]),
    "node_body_comprehension_reads_constant": Scenario(
        ["K = 2", Y("sum([v * K for v in range(3)])")], ["K = 4"]),
    "node_inner_function_reads_constant": Scenario(
        ["K = 2", H("def y() -> int:\n    def inner(v):\n        return v * K\n"
                    "    return inner(5)\n")], ["K = 4"]),
    "singledispatch_registered_implementation": Scenario(
        ["import functools\n@functools.singledispatch\ndef fmt(v):\n    return 0\n"
         "@fmt.register\ndef _(v: int):\n    return v * 2\n", Y("fmt(5)")],
        ["@fmt.register\ndef _(v: int):\n    return v * 3\n"]),
    "list_subclass_constant_mutated": Scenario(
        ["class Rows(list):\n    pass\nROWS = Rows([1, 2])", Y("sum(ROWS)")], ["ROWS.append(3)"]),
    "dict_subclass_constant_mutated": Scenario(
        ["class Table(dict):\n    pass\nT = Table(a=1)", Y("sum(T.values())")], ["T['b'] = 5"]),
    "class_attribute_changed": Scenario(
        ["class Cfg:\n    K = 2\n", Y("Cfg.K * 10")], ["class Cfg:\n    K = 3\n"]),
    "dataclass_default_changed": Scenario(
        ["import dataclasses\n@dataclasses.dataclass\nclass P:\n    k: int = 2\n", Y("P().k")],
        ["@dataclasses.dataclass\nclass P:\n    k: int = 3\n"]),
    "staticmethod_body_changed": Scenario(
        ["class U:\n    @staticmethod\n    def f(v):\n        return v * 2\n", Y("U.f(5)")],
        ["class U:\n    @staticmethod\n    def f(v):\n        return v * 3\n"]),
    "property_body_changed": Scenario(
        ["class U:\n    @property\n    def k(self):\n        return 2\nu = U()", Y("u.k")],
        ["class U:\n    @property\n    def k(self):\n        return 3\nu = U()"]),
    "recursive_helper_edited": Scenario(
        ["def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\n", Y("fact(4)")],
        ["def fact(n):\n    return 2 if n <= 1 else n * fact(n - 1)\n"]),
    "mutually_recursive_helpers_edited": Scenario(
        ["def even(n):\n    return n == 0 or odd(n - 1)\n"
         "def odd(n):\n    return n != 0 and even(n - 1)\n", Y("int(odd(3)) + int(even(3))")],
        ["def even(n):\n    return n == 0 or n == 3 or odd(n - 1)\n"]),
    "lru_cached_helper_edited": Scenario(
        ["import functools\n@functools.lru_cache\ndef _h(v):\n    return v * 2\n", Y("_h(5)")],
        ["@functools.lru_cache\ndef _h(v):\n    return v * 3\n"]),
    "object_graph_with_back_references_mutated": Scenario(
        ["class N:\n    def __init__(self, v, parent=None):\n"
         "        self.v, self.parent = v, parent\n        self.kids = []\n"
         "        if parent:\n            parent.kids.append(self)\n"
         "root = N(1)\nleaf = N(2, root)", Y("root.v + sum(k.v for k in root.kids)")],
        ["leaf.v = 20"]),
    "nested_constant_in_tuple_of_instances": Scenario(
        ["class Pt:\n    def __init__(self, v):\n        self.v = v\nPTS = (Pt(1), Pt(2))",
         Y("sum(p.v for p in PTS)")], ["PTS[0].v = 10"]),
    "function_attribute_changed": Scenario(
        ["def helper(v):\n    return v * helper.k\nhelper.k = 2", Y("helper(5)")],
        ["helper.k = 3"]),
    "class_attribute_mutated_in_place": Scenario(
        ["class Cfg:\n    ITEMS = [1, 2]\n", Y("sum(Cfg.ITEMS)")], ["Cfg.ITEMS.append(7)"]),
    "method_monkeypatched_on_the_class": Scenario(
        ["class S:\n    def f(self):\n        return 1\ns = S()", Y("s.f()")],
        ["S.f = lambda self: 2"]),
    "base_class_method_edited": Scenario(
        ["class Base:\n    def k(self):\n        return 2\nclass Sub(Base):\n    pass\n",
         Y("Sub().k()")],
        ["class Base:\n    def k(self):\n        return 3\nclass Sub(Base):\n    pass\n"]),
    "callable_instance_class_edited": Scenario(
        ["class Mul:\n    def __init__(self, k):\n        self.k = k\n"
         "    def __call__(self, v):\n        return v * self.k\nmul = Mul(2)", Y("mul(5)")],
        ["class Mul:\n    def __init__(self, k):\n        self.k = k\n"
         "    def __call__(self, v):\n        return v * self.k + 1\nmul = Mul(2)"]),
    "flag_enum_combination": Scenario(
        ["import enum\nclass P(enum.Flag):\n    R = 1\n    W = 2\nMODE = P.R",
         Y("MODE.value")], ["MODE = P.R | P.W"]),
    "ordered_dict_reordered": Scenario(
        ["import collections\nOD = collections.OrderedDict(a=1, b=2)", Y("list(OD)", "list")],
        ["OD.move_to_end('a')"]),
    "defaultdict_factory_edited": Scenario(
        ["import collections\ndef _zero():\n    return 0\nDD = collections.defaultdict(_zero)",
         Y("DD['missing'] + 1")],
        ["def _zero():\n    return 10\nDD = collections.defaultdict(_zero)"]),
    "lambda_default_changed": Scenario(
        ["f = lambda v, k=2: v * k", Y("f(5)")], ["f = lambda v, k=3: v * k"]),
    "library_partial_argument_changed": Scenario(
        ["import functools\nimport numpy as np\nr = functools.partial(np.round, decimals=1)",
         Y("float(r(1.234))", "float")],
        ["r = functools.partial(np.round, decimals=2)"]),
    "import_alias_rebound_to_another_function": Scenario(
        ["from math import floor as rnd", Y("rnd(2.5)")], ["from math import ceil as rnd"]),
    "global_dataframe_mutated_in_place": Scenario(
        ["import pandas as pd\nDF = pd.DataFrame({'a': [1, 2]})", Y("int(DF['a'].sum())")],
        ["DF.loc[0, 'a'] = 10"]),
    "global_array_mutated_in_place": Scenario(
        ["import numpy as np\nARR = np.arange(3)", Y("int(ARR.sum())")], ["ARR[0] = 10"]),
    "nested_dict_mutated": Scenario(
        ["CFG = {'a': {'b': [1]}}", Y("sum(CFG['a']['b'])")], ["CFG['a']['b'].append(5)"]),
    "regex_pattern_changed": Scenario(
        ["import re\nPAT = re.compile('a+')", Y("len(PAT.findall('aa b aaa'))")],
        ["PAT = re.compile('a')"]),
    "counter_mutated": Scenario(
        ["import collections\nC = collections.Counter('aab')", Y("C['a']")], ["C['a'] += 5"]),
    "constant_defined_in_the_hamilton_cell": Scenario(
        [H("K = 2\n\ndef y() -> int:\n    return K * 10\n")],
        [H("K = 3\n\ndef y() -> int:\n    return K * 10\n")]),
    "private_helper_in_the_hamilton_cell": Scenario(
        [H("def _h(v):\n    return v * 2\n\ndef y() -> int:\n    return _h(5)\n")],
        [H("def _h(v):\n    return v * 3\n\ndef y() -> int:\n    return _h(5)\n")]),
    "notebook_input_variable_changed": Scenario(
        ["k = 2", Y("k * 10", params="k: int")], ["k = 3"]),
    "notebook_input_is_a_function_edited": Scenario(
        ["def fn(v):\n    return v * 2\n", Y("fn(5)", params="fn: object")],
        ["def fn(v):\n    return v * 3\n"]),
    "env_var_via_magic": Scenario(
        ["import os\n%env HNBX_VAR=2", Y("int(os.environ['HNBX_VAR'])")], ["%env HNBX_VAR=4"]),
    "environ_imported_by_name": Scenario(
        ["from os import environ\nenviron['HNBX_VAR2'] = '1'", Y("int(environ['HNBX_VAR2'])")],
        ["environ['HNBX_VAR2'] = '6'"]),
    "environ_name_held_in_a_constant": Scenario(
        ["import os\nKEY = 'HNBX_VAR'\nos.environ[KEY] = '2'", Y("int(os.environ[KEY])")],
        ["os.environ['HNBX_VAR'] = '8'"]),
    "environ_read_in_a_nested_function": Scenario(
        ["import os\nos.environ['HNBX_VAR2'] = '2'",
         H("def y() -> int:\n    def get():\n        return os.environ['HNBX_VAR2']\n"
           "    return int(get())\n")],
        ["os.environ['HNBX_VAR2'] = '3'"]),
    # -- item 5: user code on disk -----------------------------------------------------------
    "module_attribute_set_from_a_cell": Scenario(
        ["import hnbx_settings", Y("hnbx_settings.T * 10")], ["hnbx_settings.T = 3"],
        modules=("hnbx_settings",), files={"hnbx_settings.py": "T = 2\n"}),
    "module_function_edited_and_reloaded": Scenario(
        ["import hnbx_mod1", Y("hnbx_mod1.f(5)")],
        [_write("hnbx_mod1.py", "def f(v):\n    return v * 3\n"),
         "importlib.reload(hnbx_mod1)"],
        modules=("hnbx_mod1",), files={"hnbx_mod1.py": "def f(v):\n    return v * 2\n"}),
    "package_reexport_core_edited": Scenario(
        ["import hnbx_pkg", Y("hnbx_pkg.clean(5)")],
        [_write("hnbx_pkg/core.py", "def clean(v):\n    return v + 100\n"),
         "import hnbx_pkg.core\nimportlib.reload(hnbx_pkg.core)\nimportlib.reload(hnbx_pkg)"],
        modules=("hnbx_pkg",),
        files={"hnbx_pkg/__init__.py": "from .core import clean\n",
               "hnbx_pkg/core.py": "def clean(v):\n    return v + 1\n"}),
    "package_helper_in_another_file_edited": Scenario(
        ["import hnbx_pkg2", Y("hnbx_pkg2.run(5)")],
        [_write("hnbx_pkg2/util.py", "def k():\n    return 7\n"),
         "import hnbx_pkg2.util\nimportlib.reload(hnbx_pkg2.util)"],
        modules=("hnbx_pkg2",),
        files={"hnbx_pkg2/__init__.py": "from . import util\n\ndef run(v):\n"
                                        "    return v * util.k()\n",
               "hnbx_pkg2/util.py": "def k():\n    return 2\n"}),
    "namespace_package_module_edited": Scenario(
        ["import hnbx_ns.mod", Y("hnbx_ns.mod.f(5)")],
        [_write("hnbx_ns/mod.py", "def f(v):\n    return v * 4\n"),
         "importlib.reload(hnbx_ns.mod)"],
        modules=("hnbx_ns",), files={"hnbx_ns/mod.py": "def f(v):\n    return v * 2\n"}),
    "module_env_var_read_at_import_then_reloaded": Scenario(
        ["import os\nos.environ['HNBX_VAR3'] = '2'\nimport hnbx_envmod",
         Y("hnbx_envmod.T * 10")],
        ["os.environ['HNBX_VAR3'] = '5'\nimport importlib\nimportlib.reload(hnbx_envmod)"],
        modules=("hnbx_envmod",),
        files={"hnbx_envmod.py": "import os\nT = int(os.environ['HNBX_VAR3'])\n"}),
    "module_function_reading_env_var": Scenario(
        ["import os\nos.environ['HNBX_VAR3'] = '2'\nimport hnbx_envmod2",
         Y("hnbx_envmod2.k()")], ["os.environ['HNBX_VAR3'] = '7'"],
        modules=("hnbx_envmod2",),
        files={"hnbx_envmod2.py": "import os\n\ndef k():\n"
                                  "    return int(os.environ['HNBX_VAR3'])\n"}),
    "module_class_edited_and_reloaded": Scenario(
        ["import hnbx_clsmod", Y("hnbx_clsmod.C().k()")],
        [_write("hnbx_clsmod.py", "class C:\n    def k(self):\n        return 3\n"),
         "importlib.reload(hnbx_clsmod)"],
        modules=("hnbx_clsmod",),
        files={"hnbx_clsmod.py": "class C:\n    def k(self):\n        return 2\n"}),
    "import_inside_node_body": Scenario(
        ["import importlib",
         H("def y() -> int:\n    import hnbx_mod2\n    return hnbx_mod2.f(5)\n")],
        [_write("hnbx_mod2.py", "def f(v):\n    return v * 3\n"),
         "import hnbx_mod2\nimportlib.reload(hnbx_mod2)"],
        modules=("hnbx_mod2",), files={"hnbx_mod2.py": "def f(v):\n    return v * 2\n"}),
    "from_import_helper_of_helper_edited": Scenario(
        ["from hnbx_mod3 import f", Y("f(5)")],
        [_write("hnbx_mod3.py", "def g(v):\n    return v * 3\n\ndef f(v):\n    return g(v)\n"),
         "import hnbx_mod3\nimportlib.reload(hnbx_mod3)\nfrom hnbx_mod3 import f"],
        modules=("hnbx_mod3",),
        files={"hnbx_mod3.py": "def g(v):\n    return v * 2\n\ndef f(v):\n    return g(v)\n"}),
    # -- item 6: the environment -------------------------------------------------------------
    "environ_subscript": Scenario(
        ["import os\nos.environ['HNBX_VAR'] = '2'", Y("int(os.environ['HNBX_VAR'])")],
        ["os.environ['HNBX_VAR'] = '3'"]),
    "getenv_with_default": Scenario(
        ["import os\nos.environ.pop('HNBX_VAR2', None)", Y("int(os.getenv('HNBX_VAR2', '2'))")],
        ["os.environ['HNBX_VAR2'] = '5'"]),
    "environ_read_in_a_helper": Scenario(
        ["import os\nos.environ['HNBX_VAR3'] = '2'\n"
         "def _k():\n    return int(os.environ.get('HNBX_VAR3', '0'))\n", Y("_k()")],
        ["os.environ['HNBX_VAR3'] = '9'"]),
    # -- item 7: data corners (upstream value changes only in a property) --------------------
    "upstream_attrs": Scenario(
        ["import pandas as pd\nSRC_ATTR = 'a'",
         H("def x() -> pd.DataFrame:\n    df = pd.DataFrame({'v': [1]})\n"
           "    df.attrs['src'] = SRC_ATTR\n    return df\n", "c0"),
         Y("x.attrs['src']", "str", "x: pd.DataFrame")],
        ["SRC_ATTR = 'b'"]),
    "upstream_index_freq": Scenario(
        ["import pandas as pd\nFREQ = None",
         H("def x() -> pd.Series:\n    idx = pd.DatetimeIndex(['2020-01-01', '2020-01-02'], "
           "freq=FREQ)\n    return pd.Series([1, 2], index=idx)\n", "c0"),
         Y("str(x.index.freq)", "str", "x: pd.Series")],
        ["FREQ = 'D'"]),
    "upstream_series_name": Scenario(
        ["import pandas as pd\nNAME = 'a'",
         H("def x() -> pd.Series:\n    return pd.Series([1, 2], name=NAME)\n", "c0"),
         Y("str(x.name)", "str", "x: pd.Series")], ["NAME = 'b'"]),
    "upstream_index_name": Scenario(
        ["import pandas as pd\nNAME = 'a'",
         H("def x() -> pd.DataFrame:\n    return pd.DataFrame({'v': [1]}).rename_axis(NAME)\n",
           "c0"), Y("str(x.index.name)", "str", "x: pd.DataFrame")], ["NAME = 'b'"]),
    "upstream_duplicate_labels_flag": Scenario(
        ["import pandas as pd\nDUP = True",
         H("def x() -> pd.DataFrame:\n    return pd.DataFrame({'v': [1]})"
           ".set_flags(allows_duplicate_labels=DUP)\n", "c0"),
         Y("x.flags.allows_duplicate_labels", "bool", "x: pd.DataFrame")], ["DUP = False"]),
    "upstream_categorical_ordered": Scenario(
        ["import pandas as pd\nORD = False",
         H("def x() -> pd.Series:\n    return pd.Series(pd.Categorical(['a', 'b'], "
           "ordered=ORD))\n", "c0"),
         Y("bool(x.cat.ordered)", "bool", "x: pd.Series")], ["ORD = True"]),
    "upstream_timezone": Scenario(
        ["import pandas as pd\nTZ = 'UTC'",
         H("def x() -> pd.Series:\n    return pd.Series(pd.to_datetime(['2020-01-01'], utc=True)"
           ".tz_convert(TZ))\n", "c0"),
         Y("str(x.dt.tz)", "str", "x: pd.Series")], ["TZ = 'Europe/Paris'"]),
    "upstream_datetime_unit": Scenario(
        ["import pandas as pd\nimport numpy as np\nUNIT = 's'",
         H("def x() -> pd.Series:\n    return pd.Series(np.array(['2020-01-01'], "
           "dtype=f'datetime64[{UNIT}]'))\n", "c0"),
         Y("str(x.dtype)", "str", "x: pd.Series")], ["UNIT = 'ms'"]),
    "upstream_numpy_dtype": Scenario(
        ["import numpy as np\nDT = 'int32'",
         H("def x() -> np.ndarray:\n    return np.arange(3, dtype=DT)\n", "c0"),
         Y("str(x.dtype)", "str", "x: np.ndarray")], ["DT = 'int64'"]),
    "upstream_column_order": Scenario(
        ["import pandas as pd\nCOLS = ['a', 'b']",
         H("def x() -> pd.DataFrame:\n    return pd.DataFrame({'a': [1], 'b': [2]})[COLS]\n",
           "c0"), Y("list(x.columns)", "list", "x: pd.DataFrame")], ["COLS = ['b', 'a']"]),
}


@pytest.fixture
def src_nb(nb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.syspath_prepend(str(src))
    nb.ip.user_ns["SRC"] = str(src)
    yield nb
    for k in [k for k in sys.modules if k.startswith("hnbx_")]:
        del sys.modules[k]


@pytest.mark.parametrize("kind", list(SCENARIOS))
def test_edit_recomputes_to_the_from_scratch_value(src_nb, tmp_path, monkeypatch, kind):
    sc = SCENARIOS[kind]
    # SRC (the folder of the user's modules) survives the from-scratch replay's reset
    sc = dataclasses.replace(sc, setup=[f"SRC = {str(tmp_path / 'src')!r}", *sc.setup])
    for var in ("HNBX_VAR", "HNBX_VAR2", "HNBX_VAR3"):
        monkeypatch.delenv(var, raising=False)
    check(src_nb, tmp_path, sc)


# -- the same in every process -----------------------------------------------------------------

FINGERPRINT_KINDS = r'''
import enum, functools, json, os, sys
import numpy as np, pandas as pd, pyarrow as pa
from hamilton_nb.versions import CodeVersioner, fingerprint
import hnbx_fp_mod

K = 3
def _helper(x, k=2):
    return x * k + K
class Color(enum.Enum):
    RED = 1
    BLUE = 2
class Scaler:
    def __init__(self, k):
        self.k = k
    def apply(self, x):
        return x * self.k
class Rows(list):
    pass
@functools.singledispatch
def fmt(x):
    return str(x)
@fmt.register
def _(x: int):
    return f"int {x}"
def make_scaler(k):
    def scale(x):
        return x * k
    return scale
def deco(f):
    @functools.wraps(f)
    def w(*a):
        return 2 * f(*a)
    return w
@deco
def decorated(x):
    return x
df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]},
                  index=pd.date_range("2020", periods=2, freq="D", name="t"))
df.attrs["source"] = "s"
kinds = {
    "int": 1, "str": "a", "tuple": (1, "a", None), "set_of_str": {"a", "b", "c"},
    "frozenset_mixed": frozenset({"x", 1, 2.5}), "dict": {"b": 1, "a": [1, 2]},
    "big_dict_mixed_keys": {**{i: i for i in range(1001)}, "a": 1},
    "ndarray": np.arange(5), "datetime_array": np.array(["2020-01-01"], dtype="datetime64[s]"),
    "dataframe_with_attrs_and_freq": df, "series": pd.Series([1.0, 2.0], name="s"),
    "categorical": pd.Series(pd.Categorical(["a", "b"], ordered=True)),
    "arrow_table": pa.table({"x": [1, 2]}),
    "module_numpy": np, "module_pandas": pd, "module_user": hnbx_fp_mod,
    "function": _helper, "lambda_genexpr": (lambda xs: sum(x * K for x in xs)),
    "partial": functools.partial(_helper, k=5), "np_vectorize": np.vectorize(_helper),
    "enum_class": Color, "enum_member": Color.RED, "class": Scaler, "instance": Scaler(2),
    "bound_method": Scaler(2).apply, "list_subclass": Rows([1, 2]), "singledispatch": fmt,
    "closure": make_scaler(3), "decorated": decorated, "builtin_bound_method": {"a": 1}.get,
    "dict_of_functions": {"scale": _helper, "np": np}, "ufunc": np.add, "library_function":
    pd.concat, "object_array": np.array([1, "a", _helper], dtype=object),
    "dtype": np.dtype("float32"), "stdlib_struct": os.stat_result(range(10)),
    "big_list_of_functions": [_helper] * 1500, "none": None, "bytes": b"ab",
}
v = CodeVersioner()
print(json.dumps({k: [fingerprint(x), v.value_version(x)] for k, x in kinds.items()}))
'''


def _python(tmp_path: Path, code: str, seed: str, *args: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONHASHSEED": seed,
           "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_every_kind_of_value_has_the_same_fingerprint_and_version_in_two_fresh_processes(
        tmp_path):
    (tmp_path / "hnbx_fp_mod.py").write_text(
        "import numpy as np\nT = 2\n\ndef f(x):\n    return x * T\n\n"
        "class C:\n    def m(self):\n        return f(1)\n")
    first = json.loads(_python(tmp_path, FINGERPRINT_KINDS, "1"))
    second = json.loads(_python(tmp_path, FINGERPRINT_KINDS, "2"))  # other str hashes
    assert len(first) >= 35
    assert {k for k in first if first[k] != second[k]} == set()


NOTEBOOK = r'''
import json, sys
from IPython.core.interactiveshell import InteractiveShell
import hamilton_nb

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "hamilton_nb")
hamilton_nb.session().set_cache_dir(sys.argv[1])
cells = [
    """
import enum, functools
import numpy as np
import pandas as pd
import hnbx_nb_mod
from hamilton.function_modifiers import (check_output, does, parameterize, pipe_input, step,
                                         value)
class Mode(enum.Enum):
    A = 1
    B = 2
LIMIT = 3
half = functools.partial(np.multiply, 0.5)
""",
    """%%hamilton -r
def _scale(v: float, k: float) -> float:
    return v * k

def _sum(**kw) -> float:
    return float(sum(kw.values()))

def base() -> float:
    return 2.0

@pipe_input(step(_scale, k=value(np.float64(3))))
def piped(base: float) -> float:
    return base + 1

@does(_sum)
def summed(base: float, piped: float) -> float:
    pass

@check_output(data_type=np.float64)
def frame(summed: float) -> pd.Series:
    return pd.Series([summed, half(summed)], dtype=np.float64)

@parameterize(moded=dict(m=value(Mode.A)), limited=dict(m=value(LIMIT)))
def param(m: object) -> int:
    return hnbx_nb_mod.twice(getattr(m, "value", m))

def with_module(frame: pd.Series) -> float:
    return float(np.sum(frame)) + hnbx_nb_mod.twice(1)
""",
]
for c in cells:
    r = ip.run_cell(c)
    assert r.success, r.error_in_exec or r.error_before_exec
ip.run_line_magic("hamilton", "run -q with_module moded limited")
df = hamilton_nb.session().last_run()
print(json.dumps(dict(zip(df["node"], df["status"]))))
'''


def test_unchanged_notebook_rerun_in_a_fresh_process_is_all_cached(tmp_path):
    (tmp_path / "hnbx_nb_mod.py").write_text("def twice(v):\n    return 2 * v\n")
    cache = str(tmp_path / "cache")
    first = json.loads(_python(tmp_path, NOTEBOOK, "1", cache))
    assert set(first.values()) == {"computed"}, first
    second = json.loads(_python(tmp_path, NOTEBOOK, "2", cache))
    assert second == {node: "cached" for node in first}


# -- restarts, restore, storage --------------------------------------------------------------


def test_module_edited_on_disk_but_not_reloaded_recomputes_after_a_restart(ps, calls, tmp_path,
                                                                            monkeypatch):
    mod = tmp_path / "hnbx_disk.py"
    mod.write_text("def f(v):\n    return v * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        ps.exec("import hnbx_disk")
        ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return hnbx_disk.f(5)\n")
        assert ps.run("y")["y"] == 10
        mod.write_text("def f(v):\n    return v * 3\n")  # edited, not reloaded
        assert ps.run("y")["y"] == 10  # the code that runs is unchanged: still right
        del sys.modules["hnbx_disk"]  # a restart imports the file as it is now
        ps2 = ps.reopen()
        ps2.exec("import importlib\nimportlib.invalidate_caches()\nimport hnbx_disk")
        ps2.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return hnbx_disk.f(5)\n")
        assert ps2.run("y")["y"] == 15
        assert ps2.statuses()["y"] == "computed"
    finally:
        sys.modules.pop("hnbx_disk", None)


def test_restore_after_a_helper_edit_binds_the_value_of_the_current_code(ps, calls):
    ps.exec("def helper(v):\n    return v * 2\n")
    ps.cell("def x() -> int:\n    return 5\n\ndef y(x: int) -> int:\n"
            "    hnb_calls.log.append('y')\n    return helper(x)\n")
    assert ps.run("y")["y"] == 10
    ps.s.checkpoints.save_state()
    p2 = ps.reopen()  # restart; the edited helper cell runs before `%hamilton restore`
    p2.exec("def helper(v):\n    return v * 3\n")
    report = p2.s.restore()
    assert "y" in report.changed and "y" not in report.bound
    assert "x" in report.bound
    assert p2.run("y")["y"] == 15
    assert p2.statuses()["y"] == "computed"
    # Without an edit, the same restore binds the value and recomputes nothing.
    p2.s.close()
    p3 = PlainSession(p2.cache_dir)  # restarted again: only the ordinary cells ran
    p3.exec("import hnb_calls\ndef helper(v):\n    return v * 3\n")
    report = p3.s.restore()
    assert "y" in report.bound and not report.changed
    assert p3.run("y")["y"] == 15 and p3.statuses()["y"] == "cached"


def test_parquet_that_would_lose_a_datetime_unit_is_stored_with_joblib(ps, calls):
    ps.exec("import numpy as np\nimport pandas as pd\n"
            "from hamilton.function_modifiers import cache")
    body = """
        @cache(format="parquet")
        def x() -> pd.DataFrame:
            return pd.DataFrame({"t": np.array(["2020-01-01"], dtype="datetime64[s]")})

        def y(x: pd.DataFrame) -> str:
            return str(x["t"].dtype)
    """
    ps.cell(body)
    with pytest.warns(UserWarning, match="datetime64\\[s\\] -> datetime64\\[ms\\]"):
        assert ps.run("y")["y"] == "datetime64[s]"
    [entry] = [e for e in ps.s.store.entries() if e.node == "x"]
    assert entry.fmt in ("joblib", "inline")
    p2 = ps.reopen()
    p2.cell(body)
    p2.s.set_behavior("y", "recompute")  # y reads x back from the store
    assert p2.run("y")["y"] == "datetime64[s]"
    assert p2.statuses()["x"] == "cached"


def test_parquet_that_round_trips_is_still_stored_as_parquet(ps, calls):
    ps.exec("import pandas as pd\nfrom hamilton.function_modifiers import cache")
    ps.cell("""
        @cache(format="parquet")
        def x() -> pd.DataFrame:
            return pd.DataFrame({"v": [1.5, 2.5], "s": ["a", "b"]})
    """)
    ps.run("x")
    [entry] = [e for e in ps.s.store.entries() if e.node == "x"]
    assert entry.fmt == "parquet"


@pytest.mark.parametrize("body", [
    "import time\n\ndef y() -> float:\n    return time.time()\n",
    "import datetime\n\ndef y() -> str:\n    return str(datetime.datetime.now())\n",
    "import random\n\ndef y() -> float:\n    return random.random()\n",
    "import numpy as np\n\ndef y() -> float:\n    return float(np.random.rand())\n",
], ids=["time", "now", "random", "np_random"])
def test_node_reading_clock_or_unseeded_randomness_warns_once_with_the_fix(ps, body):
    ps.cell(body)
    with pytest.warns(UserWarning, match='behavior="recompute"'):
        ps.run("y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ps.run("y")  # cached: no second warning


def test_seeded_randomness_and_recompute_nodes_do_not_warn(ps):
    ps.exec("from hamilton.function_modifiers import cache")
    ps.cell("import numpy as np\n\ndef y() -> float:\n"
            "    return float(np.random.default_rng(0).random())\n\n"
            "@cache(behavior='recompute')\ndef z() -> float:\n    return float(np.random.rand())\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ps.run("y", "z")


def test_storing_an_instance_of_a_notebook_class_keeps_the_class_version(nb, calls):
    # Pickling the first instance makes copyreg add __slotnames__ to the class: a cache the
    # interpreter keeps, not code. It must not make nodes that use the class recompute.
    nb.run("import dataclasses\n@dataclasses.dataclass\nclass P:\n    k: int\n\n"
           "class Plain:\n    def __init__(self, k):\n        self.k = k\n")
    nb.cell("def x() -> object:\n    hnb_calls.log.append('x')\n    return P(2)\n\n"
            "def z() -> object:\n    hnb_calls.log.append('z')\n    return Plain(3)\n\n"
            "def y(x: object, z: object) -> int:\n    hnb_calls.log.append('y')\n"
            "    return x.k + z.k + len([P, Plain])\n", line="-q -o y", cell_id="c1")
    assert [e.fmt for e in nb.session.store.entries() if e.node == "x"] != []
    nb.line("run -q y")
    assert nb.statuses() == {"x": "cached", "z": "cached", "y": "cached"}
    assert nb.value("y") == 7 and calls.count("y") == 1


def test_a_user_module_that_raised_a_warning_keeps_its_version(ps, calls, tmp_path, monkeypatch):
    # The interpreter adds __warningregistry__ to a module that warned: not code.
    (tmp_path / "hnbx_warns.py").write_text(
        "import warnings\n\ndef f():\n    warnings.warn('careful')\n    return 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        ps.exec("import hnbx_warns")
        ps.cell("def y() -> int:\n    hnb_calls.log.append('y')\n    return hnbx_warns.f()\n")
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            assert ps.run("y")["y"] == 2
            assert ps.run("y")["y"] == 2
        assert ps.statuses()["y"] == "cached" and calls.count("y") == 1
    finally:
        sys.modules.pop("hnbx_warns", None)


def test_restore_after_an_input_changed_does_not_bind_the_old_value(ps, calls):
    ps.exec("n = 7")
    ps.cell("def y(n: int) -> int:\n    hnb_calls.log.append('y')\n    return n * 10\n")
    assert ps.run("y")["y"] == 70
    ps.s.checkpoints.save_state()
    ps.s.close()
    p2 = PlainSession(ps.cache_dir)  # restarted; the input cell now says n = 8
    p2.exec("import hnb_calls\nn = 8")
    report = p2.s.restore()
    assert report.changed == ["y"] and "y" not in p2.ns
    assert p2.run("y")["y"] == 80
    p2.s.close()

"""IPython glue: the ``%%hamilton`` / ``%hamilton`` magics. Parses, calls the session, reports.

User mistakes become ``UsageError`` (IPython shows the message without a traceback); a node that
raises is re-raised as itself, so the traceback points into the user's cell.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display, publish_display_data

from .report import (
    DagView,
    cached_check_warnings,
    front_state,
    interrupt_note,
    run_report,
    user_traceback,
)

if TYPE_CHECKING:
    from .session import Session

# The session module (and through it Hamilton and pandas) is imported when the first magic
# runs, not by `%load_ext`: see _user_errors and HamiltonMagics.session.


def _user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean a user mistake (shown as a UsageError, without traceback)."""
    from .graph import CellError
    from .session import SessionError

    return CellError, SessionError

HELP = """\
%%hamilton [options]      register the cell's Hamilton functions in the live DAG and compute them
  -r, --register-only     register only, compute nothing
  -o, --outputs A,B       compute these nodes instead of the cell's own
  --inputs EXPR           external inputs: a dict expression, e.g. "dict(path='data.csv')"
  --overrides EXPR        node values to use instead of computing them (dict expression)
  --config EXPR           set Hamilton's config (dict expression) for the whole DAG
  --name NAME             the cell's identity in the DAG (default: the notebook cell id)
  --no-bind               do not bind results in the notebook namespace
  --on-change flag|refresh  bound names this run leaves stale: say so / recompute them
  -q, --quiet             show no report

%hamilton run NODE... [--inputs EXPR] [--overrides EXPR]   compute nodes and bind their values
%hamilton run --stale     recompute (through the cache) and rebind every stale node
%hamilton status          every node, the cell that defines it and its state
%hamilton dag             the live DAG as text (no graphviz needed)
%hamilton why NODE        why NODE was recomputed or reused in its last run
%hamilton config EXPR     set Hamilton's config, e.g. %hamilton config dict(mode="fast")
%hamilton config KEY=VALUE  session settings: on_change=flag|refresh (default flag),
                          file_check=content|stat (how data loaders' files are keyed)
%hamilton config executor=local|threads|processes|dask|ray [ADDRESS]
                          where nodes that must recompute run (hits stay in the kernel)
%hamilton config          show the session settings and Hamilton's config
%hamilton cache [list]    list cache entries
%hamilton cache clear [NODE...]                  clear entries of NODEs (all if none)
%hamilton cache evict [--max-size 2GB] [--older-than 7d]   least recently used first
%hamilton cache behavior NODE default|recompute|disable|ignore
%hamilton cache format NODE joblib|parquet
%hamilton cache dir [PATH]                       show or set the cache folder
%hamilton cache key [SECRET | --off]             sign the cache index (HAMILTON_NB_CACHE_KEY)
%hamilton panel           the interactive cache panel (status per node, recompute/clear/preview)
%hamilton reset           forget the live DAG (the on-disk cache stays)
%hamilton restore [NAME] [--notebook NB]   after a restart: bring back this notebook's live
                          DAG and bind its values (memory-mapped), or checkpoint NAME; NB picks
                          another notebook's last state (plain IPython: the working folder's)
%hamilton checkpoint save NAME [--force]   save the DAG code and the keys of its values
%hamilton checkpoint list                  list checkpoints (auto-*: saved before a restore)
%hamilton checkpoint diff A [B]            nodes whose code or value differ (B: current state)
%hamilton checkpoint restore NAME          restore it (the current state is saved first)
%hamilton checkpoint delete NAME           delete it (its values become evictable)
%hamilton export FILE.py  write the live DAG as a module a plain Hamilton driver runs
%hamilton help            this text
"""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"Cannot read size {text!r}: write e.g. 500MB or 2GB.")
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2)[:1].lower()]
    return int(float(m.group(1)) * mult)


def parse_age(text: str) -> float:
    m = _AGE.match(text)
    if not m:
        raise UsageError(f"Cannot read age {text!r}: write e.g. 30m, 12h or 7d.")
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2).lower()]
    return float(m.group(1)) * mult


def _parser(prog: str) -> MagicArgumentParser:
    return MagicArgumentParser(prog=prog, add_help=False)


_CELL = _parser("%%hamilton")
_CELL.add_argument("-r", "--register-only", action="store_true")
_CELL.add_argument("-o", "--outputs", default=None)
_CELL.add_argument("--inputs", default=None)
_CELL.add_argument("--overrides", default=None)
_CELL.add_argument("--config", default=None)
_CELL.add_argument("--name", default=None)
_CELL.add_argument("--no-bind", action="store_true")
_CELL.add_argument("--on-change", default=None, choices=("flag", "refresh"))
_CELL.add_argument("-q", "--quiet", action="store_true")

_RUN = _parser("%hamilton run")
_RUN.add_argument("nodes", nargs="*")
_RUN.add_argument("--stale", action="store_true")
_RUN.add_argument("--inputs", default=None)
_RUN.add_argument("--overrides", default=None)
_RUN.add_argument("-q", "--quiet", action="store_true")

_CELL_DEFAULTS = vars(_CELL.parse_args([]))
_RUN_DEFAULTS = vars(_RUN.parse_args([]))
# A line of words without quotes, and without whitespace other than shlex's: shlex.split gives
# what str.split gives.
_PLAIN_LINE = re.compile(r"[ \t\r\n!#-&(-~]*\Z")


def _parse_cell(words: list[str]) -> argparse.Namespace:
    # No option (most cells): argparse's answer without its cost, a tenth of an all-hit run.
    return argparse.Namespace(**_CELL_DEFAULTS) if not words else _CELL.parse_args(words)


def _parse_run(words: list[str]) -> argparse.Namespace:
    # Node names only (`%hamilton run a b`): what argparse makes of them, without its cost.
    if any(w.startswith("-") for w in words):
        return _RUN.parse_args(words)
    return argparse.Namespace(**{**_RUN_DEFAULTS, "nodes": list(words)})

_SETTING = re.compile(r"^([A-Za-z_]\w*)=(.*)$")


# Settings with a fixed set of values: key -> (values, how Session.set_* words the choice).
_CHOICES = {"on_change": (("flag", "refresh"), "one of flag, refresh"),
            "file_check": (("content", "stat"), "`content` or `stat`")}


def _check_choice(key: str, value: str, extra: list[str]) -> None:
    """A setting with a fixed set of values, checked before any setting is applied."""
    choices, words = _CHOICES[key]
    if extra or value not in choices:
        got = " ".join([value, *extra])
        raise UsageError(f"{key} must be {words}; got {got!r}. Nothing was changed.")


def _set_on_change(session: Session, value: str, extra: list[str]) -> None:
    _check_choice("on_change", value, extra)
    session.set_on_change(value)


def _set_file_check(session: Session, value: str, extra: list[str]) -> None:
    _check_choice("file_check", value, extra)
    session.set_file_check(value)


# Session settings of `%hamilton config KEY=VALUE [ARG...]`: key -> handler(session, value,
# extra words). Anything else after `config` is a dict expression for Hamilton's config.
def _set_executor(session: Session, value: str, extra: list[str]) -> None:
    if len(extra) > 1:
        raise UsageError("Usage: %hamilton config executor=local|threads|processes|dask|ray "
                         "[ADDRESS]")
    print(f"hamilton_nb: misses run on {session.use_executor(value, *extra)}.")


SETTINGS: dict[str, Callable[[Session, str, list[str]], None]] = {
    "on_change": _set_on_change,
    "executor": _set_executor,
    "file_check": _set_file_check,
}

_EVICT = _parser("%hamilton cache evict")
_EVICT.add_argument("--max-size", default=None)
_EVICT.add_argument("--older-than", default=None)


@magics_class
class HamiltonMagics(Magics):
    """``%%hamilton`` and ``%hamilton``."""

    def __init__(self, shell: Any, session: Callable[[], Session],
                 existing: Callable[[], Session | None]) -> None:
        super().__init__(shell)
        self._session = session
        self.existing = existing  # the session if one was created (never creates one)
        self.bridge: Any = None  # the lab comm bridge, in a kernel (started with the session)
        self.cell_id: str | None = None  # set by the pre_run_cell callback

    @property
    def session(self) -> Session:
        """The session, created on first use (so `%load_ext` stays cheap)."""
        s = self._session()
        if self.bridge is None:
            self.start_bridge(s)
        return s

    def start_bridge(self, session: Session) -> None:
        """In a Jupyter kernel, start serving the lab extension for ``session`` (once)."""
        if self.bridge is None and getattr(self.shell, "kernel", None) is not None:
            from .comm import CommBridge

            self.bridge = CommBridge(session)
            self.bridge.start()

    # -- helpers ------------------------------------------------------------------------------

    def _eval_dict(self, expr: str | None, what: str) -> dict[str, Any]:
        if expr is None:
            return {}
        try:
            value = eval(expr, self.shell.user_ns)  # the user's own expression, as in a cell
        except Exception as e:
            raise UsageError(f"--{what} {expr!r} could not be evaluated: {e}") from None
        if not isinstance(value, dict):
            raise UsageError(f"--{what} must be a dict expression, e.g. \"dict(n=3)\"; "
                             f"got {type(value).__name__}.")
        return value

    def _split(self, text: str) -> list[str]:
        if _PLAIN_LINE.match(text):
            return text.split()  # what shlex gives for it, in a tenth of the time
        # posix=False keeps quotes inside words, so `--config dict(mode='x')` survives intact;
        # only quotes around a whole word are removed.
        try:
            words = shlex.split(text, posix=False)
        except ValueError as e:
            raise UsageError(f"Cannot parse {text!r}: {e}") from None
        return [w[1:-1] if len(w) > 1 and w[0] == w[-1] and w[0] in "'\"" else w for w in words]

    def _panel(self) -> Any:
        """The session's widget panel when the front-end can render widgets, else None."""
        if getattr(self.shell, "kernel", None) is None:
            return None  # no front-end (terminal IPython): do not even import ipywidgets
        from . import widget

        return widget.panel_for(self.session) if widget.available(self.shell) else None

    def _run_and_bind(self, outputs: list[str], inputs: dict[str, Any],
                      overrides: dict[str, Any], bind: bool, quiet: bool,
                      names: list[str] | None = None, on_change: str | None = None) -> None:
        """Run, bind (``names``, default the user-facing outputs), report, then deal with bound
        names the run left stale (``on_change`` overrides the session's setting)."""
        # A failing node's traceback starts at the user's cell, not in this glue (IPython
        # honours __tracebackhide__).
        __tracebackhide__ = True
        SessionError = _user_errors()[1]
        # With widgets the panel shows itself when the run starts, so the run is watched live.
        panel = None if quiet else self._panel()
        try:
            with panel.live() if panel is not None else contextlib.nullcontext():
                outcome = self.session.execute(outputs, inputs, overrides)
        except SessionError as e:
            raise UsageError(str(e)) from None
        if bind:
            self.session.bind(outcome, names)
        if not quiet and panel is None:
            # The report's own bundle, published as is: display() would ask each of IPython's
            # ten formatters about the object first (a fifth of an all-hit cell's time).
            publish_display_data(run_report(self.session, outcome.events)._repr_mimebundle_())
        # @check_output(importance="warn"): Hamilton logs a failed check when it runs; a cached
        # result runs nothing, so say it again, marked as coming from the cache.
        checks = cached_check_warnings(self.session, outcome.events)
        if checks:
            print(checks, file=sys.stderr)
        if bind and not outcome.interrupted:
            # Never silent: even with --quiet, a name left holding an outdated value is said.
            try:
                note = self.session.after_run(outcome, on_change if outcome.ok else "flag")
            except SessionError as e:
                note = f"hamilton_nb: could not refresh stale names: {e}"
            if note:
                print(note)
        if outcome.interrupted:
            raise KeyboardInterrupt(interrupt_note(outcome.events))
        if outcome.errors:
            name, err = next(iter(outcome.errors.items()))
            if hasattr(err, "add_note"):
                err.add_note(f"hamilton_nb: node `{name}` failed; the nodes that finished are "
                             f"cached, fix the cell and re-run it to resume from here.")
            raise user_traceback(err)

    # -- the magic ----------------------------------------------------------------------------

    @line_cell_magic
    def hamilton(self, line: str, cell: str | None = None) -> Any:
        # The docstring is HELP (set below), so `%hamilton?` shows the whole reference.
        __tracebackhide__ = True  # a node's traceback starts at the user's code
        if cell is None and line.strip() in ("", "help", "-h", "--help"):
            return self._line(line)  # no session needed (and none created) to print help
        with self.session.one_request():
            if cell is None:
                return self._line(line)
            # A cell registers, then runs: its last-state record is written once, at the end.
            with self.session.checkpoints.deferred():
                return self._cell_magic(line, cell)

    def _cell_magic(self, line: str, cell: str) -> Any:
        __tracebackhide__ = True
        args = _parse_cell(self._split(line))
        # Every option is checked before anything changes: a bad option leaves DAG, config and
        # namespace as they were.
        inputs = self._eval_dict(args.inputs, "inputs")
        overrides = self._eval_dict(args.overrides, "overrides")
        config = None if args.config is None else self._eval_dict(args.config, "config")
        wanted = [o.strip() for o in (args.outputs or "").split(",") if o.strip()]
        old_config = dict(self.session.dag.config)
        try:
            if config is not None:
                self.session.set_config(config)
            celldef = self.session.register_cell(cell, args.name or self.cell_id, self.cell_id,
                                                 require=wanted, overrides=list(overrides))
        except _user_errors() as e:
            if config is not None and self.session.dag.config != old_config:
                self.session.set_config(old_config)
            raise UsageError(str(e)) from None
        if args.register_only:
            return None
        outputs = wanted or list(celldef.nodes)
        if not wanted:
            # Nodes inside a Parallelizable block have one value per item: they are computed
            # when a Collect asks for them, not as outputs of their own cell.
            fan = self.session.dag.fan_out(outputs)
            if fan:
                outputs = [o for o in outputs if o not in fan]
                waiting = [n for n in fan if self.session.dag.collector(n) is None]
                if waiting and not args.quiet:
                    print(f"hamilton_nb: {', '.join(f'`{n}`' for n in waiting)} run once per "
                          f"item of `{fan[waiting[0]]}`: they are computed when a node takes "
                          f"them as `Collect[...]`.")
            # A module's functions that only make sense inside another decorator (columns of
            # `with_columns`, say) need inputs that never exist at top level; a Hamilton driver
            # just never asks for them. Compute the rest and say which were left out and why.
            skip = self.session.unavailable(outputs, inputs, overrides)
            if skip and len(skip) < len(outputs):
                outputs = [o for o in outputs if o not in skip]
                shown = ", ".join(f"`{n}` (needs {', '.join(f'`{m}`' for m in ms)})"
                                  for n, ms in list(skip.items())[:6])
                more = f" and {len(skip) - 6} more" if len(skip) > 6 else ""
                print(f"hamilton_nb: not computed, their inputs are not defined: {shown}{more}. "
                      f"Define them as notebook variables or pass `--inputs` to compute them.")
        if not outputs:
            return None
        # Asked for by name (--outputs): bound even if internal; else the user-facing nodes.
        self._run_and_bind(outputs, inputs, overrides, not args.no_bind, args.quiet,
                           wanted or None, args.on_change)
        return None

    def _line(self, line: str) -> Any:
        words = self._split(line)
        if not words or words[0] in ("help", "-h", "--help"):
            print(HELP)
            return None
        cmd, rest = words[0], words[1:]
        if cmd == "config" and rest and _SETTING.match(rest[0]) is None:
            # A dict expression is Python, not shell words: splitting it strips the quotes of
            # its strings (`{"k": ["a", "b"]}` became `{"k": ["a", b ]}`). Keep it verbatim.
            rest = [line.strip()[len(cmd):].strip()]
        handler = getattr(self, f"_cmd_{cmd}", None)
        if handler is None:
            raise UsageError(f"Unknown subcommand {cmd!r}. `%hamilton help` lists them.")
        try:
            return handler(rest)
        except _user_errors() as e:
            raise UsageError(str(e)) from None

    def _cmd_run(self, rest: list[str]) -> None:
        args = _parse_run(rest)
        nodes = [n for word in args.nodes for n in word.split(",") if n]
        if args.stale:
            if nodes or args.inputs or args.overrides:
                raise UsageError("`%hamilton run --stale` takes no nodes or options: it "
                                 "recomputes every stale node with the last inputs.")
            stale = self.session.stale_nodes()
            if not stale:
                print("hamilton_nb: nothing is stale.")
                return
            names = self.session.single_valued(n for n in self.session.dag.order if n in stale)
            bind = [n for n in names if self.session.user_facing(n)
                    or n in self.session.bound_names]
            self._run_and_bind(names, dict(self.session.last_inputs), {}, True, args.quiet,
                               bind)
            return
        if not nodes:
            raise UsageError("Usage: %hamilton run NODE... (or `%hamilton run --stale`).")
        self._run_and_bind(nodes, self._eval_dict(args.inputs, "inputs"),
                           self._eval_dict(args.overrides, "overrides"), True, args.quiet,
                           nodes)

    def _cmd_status(self, rest: list[str]) -> Any:
        print(f"engine: {self.session.engine_description}")
        return self.session.status()

    def _cmd_dag(self, rest: list[str]) -> None:
        # front_state: the state the side panel gets (true stale reasons, cleared entries)
        display(DagView(dag_text(self.session), front_state(self.session)))

    def _cmd_why(self, rest: list[str]) -> None:
        if len(rest) != 1:
            raise UsageError("Usage: %hamilton why NODE")
        print(self.session.why(rest[0]))

    def _cmd_panel(self, rest: list[str]) -> None:
        from . import widget

        widget.panel_for(self.session).show()

    def _cmd_reset(self, rest: list[str]) -> None:
        self.session.reset()
        print("hamilton_nb: live DAG cleared (the on-disk cache is kept).")

    def _cmd_config(self, rest: list[str]) -> None:
        s = self.session
        if not rest:
            print(f"on_change={s.on_change}\nfile_check={s.settings.file_check}\n"
                  f"executor={s.engine_description}\n"
                  f"Hamilton config: {s.dag.config!r}")
            return
        first = _SETTING.match(rest[0])
        if first is None:  # a dict expression: Hamilton's config
            s.set_config(self._eval_dict(" ".join(rest), "config"))
            return
        # KEY=VALUE [ARG...] ...: every key is checked before any setting is applied.
        todo: list[tuple[str, str, list[str]]] = []
        for word in rest:
            m = _SETTING.match(word)
            if m is None:
                todo[-1][2].append(word)
                continue
            key, value = m.group(1), m.group(2)
            if key not in SETTINGS:
                known = ", ".join(SETTINGS)
                raise UsageError(
                    f"Unknown session setting {key!r}; settings: {known}. For Hamilton's config "
                    f"write a dict expression, e.g. `%hamilton config dict({key}={value!r})`."
                )
            todo.append((key, value, []))
        # ... and every value: a bad one must leave all settings as they were. The executor
        # can only be checked by starting it, so it goes first: when it fails, nothing else
        # has been applied yet.
        for key, value, extra in todo:
            if key in _CHOICES:
                _check_choice(key, value, extra)
        todo.sort(key=lambda t: t[0] != "executor")
        for key, value, extra in todo:
            SETTINGS[key](s, value, extra)

    def _cmd_restore(self, rest: list[str]) -> None:
        names = list(rest)
        notebook = None
        if "--notebook" in names:
            i = names.index("--notebook")
            if i + 1 >= len(names):
                raise UsageError("Usage: %hamilton restore [CHECKPOINT] [--notebook NAME]")
            notebook = names[i + 1]
            del names[i:i + 2]
        if len(names) > 1 or (names and notebook):
            raise UsageError("Usage: %hamilton restore [CHECKPOINT] or "
                             "%hamilton restore --notebook NAME")
        print(self.session.restore(names[0] if names else None, notebook=notebook))

    def _cmd_checkpoint(self, rest: list[str]) -> Any:
        sub, args = (rest[0], rest[1:]) if rest else ("list", [])
        s = self.session
        force = "--force" in args or "-f" in args
        args = [a for a in args if a not in ("--force", "-f")]
        if sub == "list" and not args:
            return s.checkpoint_list()
        if sub == "save" and len(args) == 1:
            s.checkpoint_save(args[0], overwrite=force)
            print(f"hamilton_nb: saved checkpoint {args[0]!r}.")
            return None
        if sub == "diff" and len(args) in (1, 2):
            return s.checkpoint_diff(*args)
        if sub == "restore" and len(args) == 1:
            print(s.checkpoint_restore(args[0]))
            return None
        if sub == "delete" and len(args) == 1:
            s.checkpoint_delete(args[0])
            print(f"hamilton_nb: deleted checkpoint {args[0]!r}.")
            return None
        raise UsageError(
            f"Unknown or incomplete `%hamilton checkpoint {' '.join(rest)}`. Use "
            f"`checkpoint save NAME`, `list`, `diff A [B]`, `restore NAME` or `delete NAME`."
        )

    def _cmd_export(self, rest: list[str]) -> None:
        if len(rest) != 1:
            raise UsageError("Usage: %hamilton export FILE.py")
        print(self.session.export(rest[0]))

    def _cache_key(self, args: list[str]) -> None:
        s = self.session
        if len(args) > 1:
            raise UsageError("Usage: %hamilton cache key [SECRET | --off] (or set "
                             "HAMILTON_NB_CACHE_KEY before starting the kernel).")
        if args == ["--off"]:
            s.set_cache_key(None)
        elif args:
            try:
                s.set_cache_key(args[0])
            except _user_errors() as e:
                raise UsageError(str(e)) from None
        on = s.cache_key is not None
        print("hamilton_nb: the cache index is " + (
            "signed: entries and checkpoints not signed with this key are misses, and restore "
            "refuses unsigned code." if on else
            "not signed (set HAMILTON_NB_CACHE_KEY or `%hamilton cache key SECRET` to sign it)."))

    def _cmd_cache(self, rest: list[str]) -> Any:
        sub, args = (rest[0], rest[1:]) if rest else ("list", [])
        s = self.session
        if sub == "list":
            return s.cache_entries()
        if sub == "clear":
            if args:
                s._check_nodes(args)
            n = s.clear(args or None)
            print(f"hamilton_nb: cleared {n} cache entr{'y' if n == 1 else 'ies'}."
                  + _reclaimed_note(s))
            return None
        if sub == "evict":
            a = _EVICT.parse_args(args)
            if a.max_size is None and a.older_than is None:
                raise UsageError("Say what to evict: --max-size 2GB and/or --older-than 7d.")
            n = s.evict(parse_size(a.max_size) if a.max_size else None,
                        parse_age(a.older_than) if a.older_than else None)
            print(f"hamilton_nb: evicted {n} cache entr{'y' if n == 1 else 'ies'}."
                  + _reclaimed_note(s))
            return None
        if sub == "key":
            return self._cache_key(args)
        if sub in ("behavior", "format") and len(args) == 2:
            s._check_nodes([args[0]])
            (s.set_behavior if sub == "behavior" else s.set_format)(args[0], args[1])
            return None
        if sub == "dir":
            if args:
                s.set_cache_dir(args[0])
            print(s.cache_dir)
            degraded = getattr(s.store, "degraded", None) if s.settings.enabled else None
            if degraded:  # say why values are only in memory, and how to fix it
                print(f"  not fully in use: {degraded}")
            return None
        raise UsageError(f"Unknown or incomplete `%hamilton cache {' '.join(rest)}`. "
                         f"`%hamilton help` lists the cache subcommands.")


HamiltonMagics.hamilton.__doc__ = HELP


def _reclaimed_note(s: Session) -> str:
    files, size = getattr(s.store, "last_reclaimed", (0, 0))
    if not files:
        return ""
    return f" Reclaimed {files} leftover file(s) of killed writers ({size / 2**20:.1f} MB)."


def dag_text(session: Session) -> str:
    """The live DAG as indented text, one line per node with its inputs and state."""
    status = session.status()
    if status.empty:
        return "The live DAG is empty: define functions in a %%hamilton cell."
    state = dict(zip(status["node"], status["state"], strict=True))
    lines = []
    for name in session.dag.order:
        n = session.dag.nodes[name]
        deps = ", ".join(d.name for d in n.dependencies)
        arrow = f" <- {deps}" if deps else ""
        lines.append(f"{name} [{state[name]}]{arrow}")
    return "\n".join(lines)


_registered: dict[int, tuple[HamiltonMagics, Any, Any]] = {}


def load(shell: Any, session: Callable[[], Session],
         existing: Callable[[], Session | None]) -> None:
    """Register magics and the cell callbacks (once per shell).

    ``session()`` returns the session, creating it on first use; ``existing()`` returns it only
    if it was created. Nothing here creates it: Hamilton, pandas and the store are loaded by the
    first magic that needs them, and in a kernel the lab bridge starts then (or after the first
    cell in which user code created the session), so `%load_ext` costs little.
    """
    if id(shell) in _registered:
        unload(shell)
    magics = HamiltonMagics(shell, session, existing)
    shell.register_magics(magics)

    def pre_run_cell(info: Any) -> None:
        magics.cell_id = getattr(info, "cell_id", None)

    def post_run_cell(result: Any) -> None:
        s = magics.existing()
        if s is None:
            return
        magics.start_bridge(s)
        # A bound value whose file failed its background checksum is dropped, with a warning,
        # and recomputed as soon as the kernel is between cells.
        s.settle()

    shell.events.register("pre_run_cell", pre_run_cell)
    shell.events.register("post_run_cell", post_run_cell)
    existing_session = existing()
    if existing_session is not None:  # %reload_ext: the live session is served at once
        magics.start_bridge(existing_session)
    _registered[id(shell)] = (magics, pre_run_cell, post_run_cell)


def unload(shell: Any) -> None:
    """Undo :func:`load`: no callback or magic is left behind."""
    entry = _registered.pop(id(shell), None)
    if entry is None:
        return
    magics, pre_run_cell, post_run_cell = entry
    if magics.bridge is not None:
        magics.bridge.stop()
        magics.bridge = None
    shell.events.unregister("pre_run_cell", pre_run_cell)
    shell.events.unregister("post_run_cell", post_run_cell)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("hamilton", None)
    session = magics.existing()
    if session is None:  # never used: nothing was opened
        return
    widget = sys.modules.get(f"{__package__}.widget")  # only if a panel may exist
    if widget is not None:
        widget.forget(session)  # its subscription to the session goes too
    session.shutdown_engine()  # pools and clusters it started; a given client stays
    session.close()


__all__ = ["HELP", "HamiltonMagics", "dag_text", "load", "unload"]

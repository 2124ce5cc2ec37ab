"""What a session knows between runs: code versions, and the keys of nodes nothing changed under.

Re-running a cell must cost work proportional to that cell, not to the notebook (issue 12), and
must never return a stale value. A node's cache key is made of its code version (its source,
plus the live values it reads: globals, imports, environment variables, defaults, closure,
decorator arguments) and its dependencies' data versions. Both are remembered here, each with
*what it was made from*:

* a code version remembers the versions of the globals, imports and environment variables its
  functions read (one **probe** per distinct name, shared by every node that reads it) and its
  functions' own live parts (defaults, closure, decorator values);
* a key remembers nothing itself: it is dropped, with every key downstream, whenever the code
  version under it, a dependency's data version or an external input's value changes.

:meth:`KeyMemo.sync` re-reads every probe (O(distinct names read), not O(nodes)) and drops what
changed. Nothing here is keyed by object identity: probes are names and their versions are
content fingerprints; the node objects a registration made are only ever replaced whole, and
:meth:`KeyMemo.forget` is called for every node a registration changes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .versions import CodeVersioner, FunctionCode, env_version

_LOCAL_PREFIXES = ("@", "defaults", "closure", "wrapper")
_UNKNOWN = "<not watched>"


@dataclass
class _Code:
    """A remembered code version: ``(cv, parts)`` as Runner._code_version returns it."""

    result: tuple[str | None, dict[str, Any]]
    probes: tuple[tuple[str, str], ...]
    # (function, its analysis, its local parts) for functions with defaults, closures,
    # decorator values or wrappers: re-versioned at every sync.
    local: tuple[tuple[Any, FunctionCode, dict[str, str]], ...]


class KeyMemo:
    """Code versions and cache keys kept across runs (owned by the session)."""

    def __init__(self) -> None:
        self.code: dict[str, _Code] = {}
        # node -> (cache key, data version) as the last run that reached it found them
        self.keys: dict[str, tuple[str, str]] = {}
        # external input -> the version the remembered keys were made with
        self.inputs: dict[str, str | None] = {}
        self._probes: dict[tuple[str, str], str] = {}
        self._readers: dict[tuple[str, str], set[str]] = {}
        # Nodes whose code version could not be remembered (computed afresh every time): the
        # keys downstream of them are dropped at every sync, and their staleness re-checked.
        self.unstable: set[str] = set()
        self._with_local: set[str] = set()  # remembered nodes that have local parts

    def clear(self) -> None:
        """Forget everything (config, settings, cache folder or whole-DAG changes)."""
        self.__init__()  # type: ignore[misc]

    # -- code versions --------------------------------------------------------------------------

    def code_version(self, name: str) -> tuple[str | None, dict[str, Any]] | None:
        c = self.code.get(name)
        return c.result if c is not None else None

    def remember_code(
        self, name: str, fns: Iterable[tuple[Any, FunctionCode]],
        result: tuple[str | None, dict[str, Any]], namespace: Mapping[str, Any],
    ) -> None:
        """Remember ``name``'s code version with what it read. Not remembered (computed again
        next run) when a function's globals are not the notebook's, or when something it read
        changed since the last sync (a node that mutates a global while the run goes on)."""
        cv, parts = result
        self.unstable.add(name)  # until remembered below
        if cv is None:
            return
        probes: dict[tuple[str, str], str] = {}
        local = []
        for fn, fc in fns:
            raw = inspect.unwrap(fn)
            if getattr(raw, "__globals__", None) is not namespace:
                return
            fparts = parts.get(fn.__name__)
            if fparts is None:
                return
            own: dict[str, str] = {}
            read = set(fc.global_names)
            for k, v in fparts.items():
                if k in read:  # a global name (even one spelled like a part: `defaults`)
                    probes[("g", k)] = v
                elif k == "source" or k.startswith("config:"):
                    continue  # the source is the node's; a config change clears everything
                elif k.startswith(_LOCAL_PREFIXES):
                    own[k] = v
                elif k.startswith("import:"):
                    probes[("import", k[7:])] = v
                elif k.startswith("env:"):
                    probes[("env", k[4:])] = v
                else:
                    return  # a part this memo does not know how to check again
            if own:
                local.append((fn, fc, own))
        for probe, v in probes.items():
            seen = self._probes.get(probe)
            if seen is not None and seen != v:
                return  # changed since the last sync: do not mix two moments
        for probe, v in probes.items():
            self._probes[probe] = v
            self._readers.setdefault(probe, set()).add(name)
        self.code[name] = _Code(result, tuple(probes), tuple(local))
        if local:
            self._with_local.add(name)
        self.unstable.discard(name)

    # -- invalidation ---------------------------------------------------------------------------

    def forget(self, names: Iterable[str], downstream: Callable[[str], Iterable[str]]) -> None:
        """``names`` changed (a new registration): drop their code versions and keys, and the
        keys of everything downstream of them."""
        names = list(names)
        for name in names:
            self._drop_code(name)
            self.unstable.discard(name)
        self.forget_keys(names, downstream)

    def forget_keys(self, names: Iterable[str], downstream: Callable[[str], Iterable[str]]) -> None:
        """Drop the keys of ``names`` and of everything downstream of them.

        A key is only ever kept with the keys of all its upstream nodes (see remember_keys),
        so a node without one has none downstream: the walk stops there."""
        todo = list(names)  # inputs never have a key themselves: always look below them
        keys = self.keys
        for x in todo:
            keys.pop(x, None)
        seen: set[str] = set()
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            for d in downstream(x):
                if d in keys:
                    del keys[d]
                    todo.append(d)

    def _drop_code(self, name: str) -> None:
        c = self.code.pop(name, None)
        self._with_local.discard(name)
        if c is None:
            return
        for probe in c.probes:
            readers = self._readers.get(probe)
            if readers is not None:
                readers.discard(name)
                if not readers:
                    del self._readers[probe]
                    self._probes.pop(probe, None)

    def sync(
        self, namespace: Mapping[str, Any], downstream: Callable[[str], Iterable[str]],
        inputs_now: Mapping[str, str | None],
    ) -> set[str]:
        """Re-read everything remembered versions were made from; drop what changed.

        Returns the nodes whose code version was dropped (their staleness must be looked at
        again). Work: one version per distinct global, import and environment variable read,
        plus the live parts of functions that have defaults, closures or decorator values —
        never one per node. ``inputs_now``: the external inputs' versions now (an input
        missing from it, a large one, counts as changed)."""
        if not self.code and not self.inputs and not self.unstable:
            return set()
        ver = CodeVersioner()
        dropped: set[str] = set()
        for probe, was in list(self._probes.items()):
            kind, what = probe
            if kind == "g":
                now = ver.global_part(namespace, what)
            elif kind == "import":
                now = ver.import_part(what)
            else:
                now = env_version(what)
            if now != was:
                dropped.update(self._readers.get(probe, ()))
        for name in list(self._with_local):
            if name in dropped:
                continue
            for fn, fc, own in self.code[name].local:
                try:
                    now_parts = ver.local_parts(fn, fc)
                except Exception:  # cannot be versioned any more: computed again, and says why
                    now_parts = None
                if now_parts != own:
                    dropped.add(name)
                    break
        for name in dropped:
            self._drop_code(name)
        changed_inputs = []
        for name, was in list(self.inputs.items()):
            if inputs_now.get(name, _UNKNOWN) != was:
                changed_inputs.append(name)
                del self.inputs[name]
        unstable = {n for n in self.unstable if n not in self.code}
        self.unstable = unstable
        self.forget_keys([*dropped, *changed_inputs, *unstable], downstream)
        return dropped | unstable

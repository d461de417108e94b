"""The recipe format: TOML checked key by key into frozen dataclasses.

A recipe file `NAME.toml`:

    description = "what it is for"
    [trigger]            # any of these (OR); an empty trigger never fires
    sonames = ["libssl.so.*"]          # base names of closure entries (globs)
    paths = ["*/certifi/__init__.py"]  # image paths of closure entries (globs)
    programs = ["curl"]                # base names of the targets
    interpreters = ["python3*"]        # `#!` interpreters in the closure
    always = false
    [probes]             # named Python probes; each result is bound in the template context
    ssl = "openssl_dirs"
    resolver = { probe = "imports_any", symbols = ["getaddrinfo"] }
    [[add]]              # one action each: path | paths | glob | tree | dir | template | copy | env | warn
    when = "ssl"         # optional Jinja expression
    path = "{{ ssl.cafile }}"

Unknown keys are errors naming the file and the key: a typo must never silently drop a file
from every image built with the recipe.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput

ACTION_KINDS = ("path", "paths", "glob", "tree", "dir", "template", "copy", "env", "warn", "fail")
# Keys an action may carry beside its kind, per kind.
_COMMON = {"when", "each"}
_EXTRA = {
    "path": {"optional", "ca_bundle", "keystore"},
    "paths": {"optional", "ca_bundle"},
    "glob": {"optional", "exclude"},
    "tree": {"optional", "exclude"},
    "dir": {"mode", "owner"},
    "template": {"to", "mode"},
    "copy": {"to", "mode", "optional"},
    "env": set(),
    "warn": set(),
    "fail": set(),
}
_ACTION_KEYS = set(ACTION_KINDS) | _COMMON | set().union(*_EXTRA.values())
TOP_KEYS = ("description", "trigger", "probes", "add")
TRIGGER_KEYS = ("sonames", "paths", "programs", "interpreters", "always")
# Names the engine puts in every template context; probes may not shadow them.
CONTEXT_NAMES = frozenset({
    "recipe", "trigger", "item", "targets", "sonames", "paths",
    "user", "locales", "tz", "tzdata", "ca_certs", "gconv", "nss", "pycache",
})
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RecipeError(BadInput):
    """A recipe file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Trigger:
    sonames: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    interpreters: tuple[str, ...] = ()
    always: bool = False

    def to_json(self) -> dict:
        d: dict[str, Any] = {k: list(getattr(self, k)) for k in TRIGGER_KEYS[:-1] if getattr(self, k)}
        if self.always:
            d["always"] = True
        return d


@dataclass(frozen=True)
class ProbeCall:
    bind: str                             # the name its result gets in the context
    probe: str                            # registered probe name
    args: tuple[tuple[str, Any], ...]     # literal keyword arguments (lists made tuples)

    def to_json(self) -> dict:
        return {"probe": self.probe, **{k: _thaw(v) for k, v in self.args}}


@dataclass(frozen=True)
class Action:
    index: int                            # 1-based position in the file, for messages
    kind: str                             # one of ACTION_KINDS
    value: Any                            # str, tuple of str, or tuple of (name, template)
    when: str | None = None
    each: str | None = None
    to: str | None = None
    mode: int | None = None
    optional: bool = False
    exclude: tuple[str, ...] = ()
    ca_bundle: bool = False
    keystore: bool = False                # a JKS trust store: --ca-cert's CAs become entries
    owner: str | None = None              # "UID:GID" (templated) for a dir

    @property
    def where(self) -> str:
        return f"add[{self.index}]"

    def to_json(self) -> dict:
        d: dict[str, Any] = {self.kind: _thaw(self.value) if self.kind != "env" else dict(self.value)}
        for k in ("when", "each", "to", "owner"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.mode is not None:
            d["mode"] = format(self.mode, "04o")
        if self.optional:
            d["optional"] = True
        if self.exclude:
            d["exclude"] = list(self.exclude)
        if self.ca_bundle:
            d["ca_bundle"] = True
        if self.keystore:
            d["keystore"] = True
        return d


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str                           # file it was read from
    description: str
    trigger: Trigger
    probes: tuple[ProbeCall, ...]
    actions: tuple[Action, ...]
    builtin: bool = True

    def to_json(self) -> dict:
        return {
            "name": self.name, "source": self.source, "builtin": self.builtin,
            "description": self.description, "trigger": self.trigger.to_json(),
            "probes": {p.bind: p.to_json() for p in self.probes},
            "add": [a.to_json() for a in self.actions],
        }


def parse_recipe(name: str, data: dict, source: str, builtin: bool = True,
                 probe_check=None) -> Recipe:
    """Check a decoded TOML document and build the Recipe. `probe_check(name, args)` raises
    ValueError/TypeError when a probe does not exist or does not take those arguments."""
    err = _Errors(source)
    _only(err, "", data, TOP_KEYS)
    desc = data.get("description")
    if not isinstance(desc, str) or not desc.strip():
        err.fail("description", "is required: one line saying what the recipe adds")
    trigger = _trigger(err, data.get("trigger", {}))
    probes = _probes(err, data.get("probes", {}), probe_check)
    adds = data.get("add", [])
    if not isinstance(adds, list) or not all(isinstance(a, dict) for a in adds):
        err.fail("add", "must be an array of tables ([[add]] blocks)")
    actions = tuple(_action(err, i, a) for i, a in enumerate(adds, 1))
    return Recipe(name, source, desc.strip(), trigger, probes, actions, builtin)


class _Errors:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str):
        where = f" key '{key}'" if key else ""
        raise RecipeError(f"{self.source}:{where} {msg}")


def _only(err: _Errors, prefix: str, table: dict, allowed) -> None:
    for key in sorted(table):
        if key not in allowed:
            full = f"{prefix}.{key}" if prefix else key
            raise RecipeError(f"{err.source}: unknown key '{full}' (expected one of: "
                              f"{', '.join(sorted(allowed))})")


def _strs(err: _Errors, key: str, value, allow_one: bool = False) -> tuple[str, ...]:
    if allow_one and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        err.fail(key, "must be a list of non-empty strings")
    return tuple(value)


def _trigger(err: _Errors, t) -> Trigger:
    if not isinstance(t, dict):
        err.fail("trigger", "must be a table")
    _only(err, "trigger", t, TRIGGER_KEYS)
    always = t.get("always", False)
    if not isinstance(always, bool):
        err.fail("trigger.always", "must be true or false")
    return Trigger(**{k: _strs(err, f"trigger.{k}", t[k], allow_one=True)
                      for k in TRIGGER_KEYS[:-1] if k in t}, always=always)


def _probes(err: _Errors, table, probe_check) -> tuple[ProbeCall, ...]:
    if not isinstance(table, dict):
        err.fail("probes", "must be a table of name = \"probe\" or name = { probe = ..., args }")
    out = []
    for bind in table:  # file order: later probes may not depend on earlier ones, but keep it
        key = f"probes.{bind}"
        if not _IDENT.match(bind):
            err.fail(key, "must be a plain identifier")
        if bind in CONTEXT_NAMES:
            err.fail(key, f"shadows the context name '{bind}'")
        spec = table[bind]
        if isinstance(spec, str):
            spec = {"probe": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("probe"), str):
            err.fail(key, "must be a probe name or a table with a 'probe' key")
        args = {k: v for k, v in spec.items() if k != "probe"}
        if probe_check is not None:
            try:
                probe_check(spec["probe"], args)
            except (ValueError, TypeError) as e:
                err.fail(key, str(e))
        out.append(ProbeCall(bind, spec["probe"], tuple(sorted((k, _freeze(v)) for k, v in args.items()))))
    return tuple(out)


def _action(err: _Errors, index: int, a: dict) -> Action:
    where = f"add[{index}]"
    kinds = [k for k in ACTION_KINDS if k in a]
    if len(kinds) != 1:
        _only(err, where, a, _ACTION_KEYS)
        err.fail(where, f"needs exactly one of {', '.join(ACTION_KINDS)} (has {', '.join(kinds) or 'none'})")
    kind = kinds[0]
    allowed = {kind} | _COMMON | _EXTRA[kind]
    for key in sorted(a):
        if key not in allowed:
            if key in _ACTION_KEYS:
                err.fail(f"{where}.{key}", f"does not go with '{kind}'")
            _only(err, where, {key: None}, sorted(allowed))
    raw = a[kind]
    if kind == "paths":
        value: Any = _strs(err, f"{where}.paths", raw)
    elif kind == "env":
        if not isinstance(raw, dict) or not raw:
            err.fail(f"{where}.env", "must be a table of NAME = \"value template\"")
        for k, v in raw.items():
            if not _ENV_NAME.match(k) or not isinstance(v, str):
                err.fail(f"{where}.env.{k}", "must be NAME = \"string\"")
        value = tuple(sorted(raw.items()))
    else:
        if not isinstance(raw, str) or not raw:
            err.fail(f"{where}.{kind}", "must be a non-empty string")
        value = raw
    if kind in ("template", "copy") and not isinstance(a.get("to"), str):
        err.fail(f"{where}.to", f"is required with '{kind}': the image path to write")
    for key in ("when", "each", "to", "owner"):
        if key in a and (not isinstance(a[key], str) or not a[key]):
            err.fail(f"{where}.{key}", "must be a non-empty string")
    for key in ("optional", "ca_bundle", "keystore"):
        if key in a and not isinstance(a[key], bool):
            err.fail(f"{where}.{key}", "must be true or false")
    mode = None
    if "mode" in a:
        mode = _mode(err, f"{where}.mode", a["mode"])
    exclude = _strs(err, f"{where}.exclude", a["exclude"]) if "exclude" in a else ()
    return Action(index, kind, value, when=a.get("when"), each=a.get("each"), to=a.get("to"),
                  mode=mode, optional=a.get("optional", False), exclude=exclude,
                  ca_bundle=a.get("ca_bundle", False), keystore=a.get("keystore", False),
                  owner=a.get("owner"))


def _mode(err: _Errors, key: str, v) -> int:
    # TOML has 0o755 integers; "0755" strings are accepted too, read as octal.
    if isinstance(v, bool):
        err.fail(key, "must be an octal mode like \"0644\" or 0o644")
    if isinstance(v, str) and re.fullmatch(r"[0-7]{3,4}", v):
        v = int(v, 8)
    if not isinstance(v, int) or not 0 <= v <= 0o7777:
        err.fail(key, "must be an octal mode like \"0644\" or 0o644")
    return v


def _freeze(v):
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _thaw(v):
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v

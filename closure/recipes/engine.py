"""RecipeSet: match recipes against a closure and carry out their actions.

The collector calls `apply` in its fixed-point loop until a round adds nothing. A recipe
runs once per trigger hit; it runs again for that hit only when its probe results (or the
closure lists its strings read) changed since, so later rounds cost a few set lookups and
re-adding is harmless anyway (the collector merges reasons).
"""
from __future__ import annotations

import fnmatch
import json
import logging
import posixpath
import re
import stat
from pathlib import Path
from typing import Any

from ..errors import BadInput, ClosureError, NotElf, NotFound, SymlinkLoop
from ..model import Closure, Reason
from ..root import Root, normpath
from . import walk
from .loader import load_all
from .probes import Hit, ProbeContext, run_probe
from .render import Renderer
from .schema import Action, Recipe, RecipeError, Trigger
from .vars import RecipeVars

log = logging.getLogger(__name__)

# Context names whose values depend on the closure: a recipe reading them is re-run when
# the closure grew (probe results are compared directly).
_CLOSURE_WORDS = re.compile(r"(?<![.\w])(?:sonames|paths|targets)\b")   # not `ti.paths`


class RecipeSet:
    def __init__(self, recipes: dict[str, Recipe], template_dirs: tuple[Path, ...] = ()):
        self.recipes = dict(sorted(recipes.items()))
        self.renderer = Renderer(template_dirs)
        self._states: dict[int, tuple[Closure, _State]] = {}
        self._uses: dict[str, bool] = {}

    @classmethod
    def load(cls, user_dirs=()) -> "RecipeSet":
        """Built-in recipes, then each user dir in order (a later recipe of the same name
        replaces an earlier one)."""
        recipes, templates = load_all(tuple(user_dirs))
        return cls(recipes, templates)

    def __iter__(self):
        return iter(self.recipes.values())

    def __len__(self) -> int:
        return len(self.recipes)

    def get(self, name: str) -> Recipe:
        try:
            return self.recipes[name]
        except KeyError:
            raise RecipeError(f"no recipe named {name!r} (have: {', '.join(self.recipes)})") from None

    def check(self) -> None:
        """Compile every string and template of every recipe (syntax, missing templates)."""
        for r in self:
            for a in r.actions:
                where = f"{r.source}: {a.where}"
                for key, text in _strings(a):
                    self.renderer.check(text, f"{where}.{key}", expression=key in ("when", "each"))
                if a.kind == "template":
                    self.renderer.check_template(a.value, f"{where}.template")

    # -- the fixed-point step -----------------------------------------------------------------
    def apply(self, collector, vars: RecipeVars | None = None) -> None:
        """Add what every triggered recipe asks for, through the collector's add_* methods."""
        vars = vars if vars is not None else RecipeVars()
        state = self._state(collector)
        index = _Index(collector.closure)
        base = _base_context(vars, index)
        for recipe in self.recipes.values():
            for hit in match(recipe.trigger, index):
                self._apply_one(recipe, hit, collector, vars, state, base, index)

    def _apply_one(self, recipe: Recipe, hit: Hit, collector, vars: RecipeVars, state: "_State",
                   base: dict, index: "_Index") -> None:
        ctx = ProbeContext(collector.root, collector.closure, hit, vars, state.elf)
        results: dict[str, Any] = {}
        for pc in recipe.probes:
            try:
                results[pc.bind] = run_probe(pc.probe, ctx, dict(pc.args))
            except ClosureError:
                raise
            except (OSError, ValueError, TypeError) as e:
                raise RecipeError(f"{recipe.source}: probe '{pc.bind}' ({pc.probe}) failed "
                                  f"for {hit.path}: {e}") from None
        key = (recipe.name, hit.kind, hit.path, _fingerprint(results),
               index.fingerprint if self._reads_closure(recipe) else None)
        if key in state.done:
            return
        state.done.add(key)
        context = {**base, **results, "recipe": recipe.name, "trigger": hit.to_context()}
        reason = Reason("recipe", by=hit.path, recipe=recipe.name)
        for action in recipe.actions:
            _Run(self.renderer, recipe, action, collector, vars, reason).run(context)

    def _reads_closure(self, recipe: Recipe) -> bool:
        """Whether any string or template of the recipe names sonames/paths/targets. A
        plain word search: a false positive only costs a re-run, and parsing every string
        with Jinja would cost more than the runs it saves."""
        hit = self._uses.get(recipe.name)
        if hit is None:
            texts = [t for a in recipe.actions for _, t in _strings(a)]
            for a in recipe.actions:
                if a.kind == "template":
                    texts.append(self.renderer.source(a.value, f"{recipe.source}: {a.where}.template"))
            hit = self._uses[recipe.name] = bool(_CLOSURE_WORDS.search("\n".join(texts)))
        return hit

    def _state(self, collector) -> "_State":
        closure = collector.closure
        held = self._states.get(id(closure))
        if held is None or held[0] is not closure:
            held = (closure, _State(collector))
            self._states = {id(closure): held}   # one build at a time: drop older states
        return held[1]


class _State:
    """What one collector's rounds share: hits already applied, and its loader's ELF reads."""

    def __init__(self, collector):
        self.done: set[tuple] = set()
        self._loader = collector.loader

    def elf(self, real: str):
        """ElfInfo of a resolved path, None when it is no ELF (the loader caches both)."""
        try:
            return self._loader.elf(real)
        except NotElf:
            return None


class _Index:
    """Closure lookups shared by every recipe in one apply round."""

    def __init__(self, closure: Closure):
        self.closure = closure
        self.paths = sorted(closure.entries)
        self.named = [(p, posixpath.basename(p)) for p in self.paths
                      if closure.entries[p].type in ("file", "symlink")]
        self.targets = list(closure.targets)
        self.interpreters = sorted(
            p for p, e in closure.entries.items() if any(r.kind in ("shebang", "runtime") for r in e.reasons))
        self.fingerprint = (len(self.paths), hash(tuple(self.paths)))


def match(trigger: Trigger, index: _Index) -> list[Hit]:
    """The hits of a trigger in a closure, one per path (first matching rule names it)."""
    hits: dict[str, Hit] = {}
    for pat in trigger.programs:
        for t in index.targets:
            if fnmatch.fnmatchcase(posixpath.basename(t), pat):
                hits.setdefault(t, Hit("program", t, posixpath.basename(t)))
    for pat in trigger.interpreters:
        for p in index.interpreters:
            if fnmatch.fnmatchcase(posixpath.basename(p), pat):
                hits.setdefault(p, Hit("interpreter", p, posixpath.basename(p)))
    for pat in trigger.sonames:
        for p, base in index.named:
            if fnmatch.fnmatchcase(base, pat):
                hits.setdefault(p, Hit("soname", p, base))
    for pat in trigger.paths:
        for p in index.paths:
            if fnmatch.fnmatchcase(p, pat):
                hits.setdefault(p, Hit("path", p, posixpath.basename(p)))
    if trigger.always and not hits:
        first = index.targets[0] if index.targets else "/"
        hits[first] = Hit("always", first, "always")
    return [hits[p] for p in sorted(hits)]


def _base_context(vars: RecipeVars, index: _Index) -> dict:
    return {
        "targets": list(index.targets),
        "sonames": sorted({b for _, b in index.named if ".so" in b}),
        "paths": list(index.paths),
        "user": vars.user,
        "locales": list(vars.locales),
        "tz": vars.tz,
        "tzdata": list(vars.tzdata),
        "ca_certs": [c.name for c in vars.ca_certs],
        "gconv": list(vars.gconv),
        "nss": list(vars.nss),
        "pycache": vars.pycache,
    }


def _fingerprint(results: dict) -> str:
    return json.dumps(results, sort_keys=True, default=repr)


def _strings(a: Action):
    """(key, text) of every template string an action holds."""
    if a.when:
        yield "when", a.when
    if a.each:
        yield "each", a.each
    if a.kind == "paths":
        for p in a.value:
            yield "paths", p
    elif a.kind == "env":
        for k, v in a.value:
            yield f"env.{k}", v
    elif a.kind != "template":
        yield a.kind, a.value
    if a.to:
        yield "to", a.to


class _Run:
    """One action of one recipe for one hit."""

    def __init__(self, renderer: Renderer, recipe: Recipe, action: Action, collector,
                 vars: RecipeVars, reason: Reason):
        self.r = renderer
        self.recipe = recipe
        self.a = action
        self.c = collector
        self.root: Root = collector.root
        self.closure: Closure = collector.closure
        self.vars = vars
        self.reason = reason
        self.where = f"{recipe.source}: {action.where}"

    def run(self, context: dict) -> None:
        a = self.a
        if a.when is not None and not self.r.expr(a.when, context, f"{self.where}.when"):
            return
        if a.each is None:
            self._one(context)
            return
        items = self.r.expr(a.each, context, f"{self.where}.each")
        if items is None:
            return
        if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
            raise RecipeError(f"{self.where}.each: must give a list, got {type(items).__name__}")
        for item in items:
            self._one({**context, "item": item})

    def _owner(self, a, context: dict) -> tuple[int, int]:
        if a.owner is None:
            return 0, 0
        text = self.r.string(a.owner, context, f"{self.where}.owner").strip()
        uid, _, gid = text.partition(":")
        if not uid.isdigit() or not (gid or uid).isdigit():
            raise RecipeError(f"{self.where}.owner: {text!r} is not UID:GID")
        return int(uid), int(gid or uid)

    def _path(self, text: str, context: dict, key: str) -> str | None:
        p = self.r.string(text, context, f"{self.where}.{key}").strip()
        if not p:
            return None     # a template may render empty on purpose: nothing to add
        if not p.startswith("/"):
            raise RecipeError(f"{self.where}.{key}: {p!r} is not an absolute image path")
        return normpath(p)

    def _one(self, ctx: dict) -> None:
        a, kind = self.a, self.a.kind
        if kind in ("path", "paths"):
            for text in ([a.value] if kind == "path" else a.value):
                p = self._path(text, ctx, kind)
                if p is None:
                    continue
                if a.ca_bundle and self.vars.ca_certs:
                    self._bundle(p)
                elif a.keystore and self.vars.ca_certs:
                    self._keystore(p)
                elif self.c.add_path(p, self.reason) is None:
                    self._missing(p)
        elif kind == "glob":
            pattern = self._path(a.value, ctx, "glob")
            if pattern is None:
                return
            found = [p for p in walk.glob(self.root, pattern)
                     if not walk.excluded(posixpath.basename(p), a.exclude)]
            if not found:
                self._missing(pattern)
            for p in found:
                self.c.add_path(p, self.reason)
        elif kind == "tree":
            self._tree(self._path(a.value, ctx, "tree"))
        elif kind == "dir":
            p = self._path(a.value, ctx, "dir")
            if p is not None:
                uid, gid = self._owner(a, ctx)
                self.c.add_dir(p, a.mode if a.mode is not None else 0o755, self.reason, uid, gid)
        elif kind == "template":
            to = self._path(a.to, ctx, "to")
            if to is not None:
                text = self.r.template(a.value, ctx, f"{self.where}.template")
                self.c.add_generated(to, text.encode("utf-8"), a.mode if a.mode is not None else 0o644,
                                     self.reason)
        elif kind == "copy":
            self._copy(self._path(a.value, ctx, "copy"), self._path(a.to, ctx, "to"))
        elif kind == "env":
            for name, text in a.value:
                value = self.r.string(text, ctx, f"{self.where}.env.{name}")
                have = self.closure.env.get(name)
                if have is not None and have != value:
                    self._warn(f"recipe {self.recipe.name}: sets {name}={value} (was {have})")
                self.closure.env[name] = value
        elif kind == "warn":
            self._warn(f"recipe {self.recipe.name}: " + self.r.string(a.value, ctx, f"{self.where}.warn"))
        elif kind == "fail":  # what the user asked for cannot be had: bad input, exit 2
            raise BadInput(f"recipe {self.recipe.name}: " + self.r.string(a.value, ctx, f"{self.where}.fail"))

    def _tree(self, top: str | None) -> None:
        if top is None:
            return
        res = self.root.try_resolve(top)
        if res is None or not self.root.is_dir(res.path):
            self._missing(top)
            return
        self.c.add_path(top, self.reason)
        for p in self.root.tree(res.path, lambda rel: walk.excluded(rel, self.a.exclude)):
            # add_path follows links (a link's target joins too); a dangling one is skipped.
            self.c.add_path(p, self.reason)

    def _copy(self, src: str | None, to: str | None) -> None:
        if src is None or to is None:
            return
        res = self.root.try_resolve(src)
        if res is None or not self.root.is_file(res.path):
            self._missing(src)
            return
        st = self.root.lstat(res.path)
        mode = self.a.mode if self.a.mode is not None else stat.S_IMODE(st.st_mode)
        self.c.add_generated(to, self.root.read_bytes(res.path), mode, self.reason)

    def _bundle(self, p: str) -> None:
        """The CA bundle at p (following its links) with the --ca-cert blocks appended. The
        generated file goes in first so add_path then only adds the links to it."""
        extra = b"".join(c.pem for c in self.vars.ca_certs)
        res = self.root.try_resolve(p)
        if res is not None and self.root.is_dir(res.path):
            self.c.add_path(p, self.reason)      # a hashed-certs dir: not a bundle to extend
            self._warn(f"recipe {self.recipe.name}: {p} is a directory; --ca-cert not added to it")
            return
        if res is not None and self.root.is_file(res.path):
            data = self.root.read_bytes(res.path)
            if data and not data.endswith(b"\n"):
                data += b"\n"
            mode = stat.S_IMODE(self.root.lstat(res.path).st_mode)
            self.c.add_generated(res.path, data + extra, mode, self.reason)
            self.c.add_path(p, self.reason)
            return
        # No bundle in the root (ca-certificates not installed): the extra CAs alone, at the
        # end of the link chain that exists, its links kept.
        try:
            final, links = self.root.follow(p)
        except (NotFound, SymlinkLoop):
            self._missing(p)
            return
        for link, target in links:
            self.c.add_symlink(link, target, self.reason)
        self.c.add_generated(final, extra, 0o644, self.reason)

    def _keystore(self, p: str) -> None:
        """The JKS trust store at p (its links followed) with the --ca-cert CAs as entries;
        made from the root's PEM bundle when p is missing or no JKS."""
        from .keystore import with_extra_cas
        res = self.root.try_resolve(p)
        have = self.root.read_bytes(res.path) if res is not None and self.root.is_file(res.path) else None
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        pem = self.root.read_bytes(bundle) if self.root.is_file(bundle) else None
        data = with_extra_cas(have, pem, b"".join(c.pem for c in self.vars.ca_certs))
        if res is not None:
            self.c.add_generated(res.path, data, 0o644, self.reason)
            self.c.add_path(p, self.reason)
            return
        final, links = self.root.follow(p)
        for link, target in links:
            self.c.add_symlink(link, target, self.reason)
        self.c.add_generated(final, data, 0o644, self.reason)

    def _missing(self, p: str) -> None:
        if not self.a.optional:
            self._warn(f"recipe {self.recipe.name}: {p} not found in the root")

    def _warn(self, msg: str) -> None:
        if msg not in self.closure.warnings:
            self.closure.warnings.append(msg)


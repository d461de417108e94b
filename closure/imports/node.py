"""Node's module graph, found statically: require()/import/import()/export-from with constant
names, resolved by Node's own algorithm (the "Modules: CommonJS" and "ESM" resolution
steps): relative files with .js/.json/.node, directories through package.json `main` and
index files, node_modules lookup up the tree, package.json `exports` and `imports` with the
node/require/import/default conditions and `*` patterns. pnpm-style symlinked stores are
followed to the real file (Node resolves symlinks) and the links join the image as links.
`path.join(__dirname, 'x')` with constants adds that file or tree. .node addons are ELF:
the collector walks them for their libraries.
"""
from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field

from ..root import Root
from .pypath import read

BUILTINS = frozenset("""
assert assert/strict async_hooks buffer child_process cluster console constants crypto dgram
diagnostics_channel dns dns/promises domain events fs fs/promises http http2 https inspector
module net os path path/posix path/win32 perf_hooks process punycode querystring readline
readline/promises repl stream stream/consumers stream/promises stream/web string_decoder sys
timers timers/promises tls trace_events tty url util util/types v8 vm wasi worker_threads zlib
test sqlite sea
""".split())

_STR = r"""(?:'([^'\\\n]*)'|"([^"\\\n]*)"|`([^`\\$\n]*)`)"""
_REQUIRE = re.compile(r"(?<![\w$.])require(?:\.resolve)?\s*\(\s*" + _STR + r"\s*[,)]")
_REQUIRE_ANY = re.compile(r"(?<![\w$.])require\s*\(\s*([^)'\"`\s][^)]*)\)")
_IMPORT_CALL = re.compile(r"(?<![\w$.])import\s*\(\s*" + _STR + r"\s*[,)]")
_IMPORT_FROM = re.compile(r"(?:^|[;}\s])(?:import|export)\s+(?:[\w$*{},\s]+?\s+from\s+)?" + _STR, re.M)
_DIRNAME_JOIN = re.compile(r"path\.(?:join|resolve)\s*\(\s*__dirname\s*((?:,\s*" + _STR + r"\s*)+)\)")
_COMMENT = re.compile(r"/\*.*?\*/|(?<![:'\"\\])//[^\n]*", re.S)
_EXTS = (".js", ".json", ".node", ".mjs", ".cjs")
# Conditions some Node version matches in exports/imports (module-sync: 20.19+, 22.10+).
CONDITIONS = ("node", "require", "import", "module-sync", "node-addons", "default")


@dataclass
class NodeFound:
    files: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, path: str, by: str | None, name: str) -> None:
        self.files.setdefault(path, (by, name))


def _first(m) -> str:
    return next(g for g in m.groups()[:3] if g is not None)


def specifiers(text: str) -> tuple[list[tuple[str, str]], list[tuple[int, str]], list[str]]:
    """([(specifier, 'require' | 'import')], [(line, dynamic require expression)],
    [__dirname-relative paths]) of one JS source."""
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    specs: list[tuple[str, str]] = []
    for m in _REQUIRE.finditer(text):
        specs.append((_first(m), "require"))
    for rx in (_IMPORT_CALL, _IMPORT_FROM):
        for m in rx.finditer(text):
            specs.append((_first(m), "import"))
    dynamic = [(text.count("\n", 0, m.start()) + 1, m.group(1).strip()) for m in _REQUIRE_ANY.finditer(text)]
    data = []
    for m in _DIRNAME_JOIN.finditer(text):
        parts = re.findall(_STR, m.group(1))
        data.append(posixpath.join(*(next(p for p in t if p) if any(t) else "" for t in parts)))
    return specs, dynamic, data


class NodeImports:
    def __init__(self, root: Root):
        self.root = root
        self._pkg: dict[str, dict | None] = {}

    # -- reading ----------------------------------------------------------------------------
    def package_json(self, d: str) -> dict | None:
        if d not in self._pkg:
            raw = read(self.root, posixpath.join(d, "package.json"))
            try:
                doc = json.loads(raw) if raw is not None else None
            except ValueError:
                doc = None
            self._pkg[d] = doc if isinstance(doc, dict) else None
        return self._pkg[d]

    def _real(self, p: str) -> str:
        return self.root.resolve(p).path

    def _file(self, p: str) -> bool:
        return self.root.is_file(p)

    # -- resolution ---------------------------------------------------------------------------
    def resolve(self, spec: str, by: str, kind: str) -> list[str]:
        """The files `spec` required/imported from file `by` may load ([]: builtin or not
        found)."""
        if spec.startswith("node:") or spec in BUILTINS:
            return []
        base = posixpath.dirname(self._real(by))
        conds = CONDITIONS
        if spec.startswith(("./", "../", "/")) or spec in (".", ".."):
            x = posixpath.normpath(posixpath.join(base, spec))
            return _some(self._as_file(x) or self._as_dir(x))
        if spec.startswith("#"):
            scope = self._scope(base)
            imports = (self.package_json(scope) or {}).get("imports") if scope else None
            out = []
            for target in _map_subpath(imports, spec, conds) if isinstance(imports, dict) else ():
                if not target.startswith("./"):
                    out += self.resolve(target, by, kind)
                else:
                    out += _some(self._as_file(posixpath.normpath(posixpath.join(scope, target))))
            return out
        parts = spec.split("/")
        name = "/".join(parts[:2]) if spec.startswith("@") else parts[0]
        sub = spec[len(name):]
        d = base
        while True:
            if posixpath.basename(d) != "node_modules":
                pkg = posixpath.join(d, "node_modules", name)
                if self.root.is_dir(pkg):
                    return self._in_package(pkg, sub, conds)
            if d == "/":
                return []
            d = posixpath.dirname(d)

    def _in_package(self, pkg: str, sub: str, conds) -> list[str]:
        doc = self.package_json(pkg) or {}
        exports = doc.get("exports")
        if exports is not None:
            return [f for t in _map_subpath(_exports_map(exports), "." + sub, conds)
                    for f in _some(self._as_file(posixpath.normpath(posixpath.join(pkg, t))))]
        x = posixpath.normpath(pkg + sub)
        return _some(self._as_file(x) or self._as_dir(x))

    def _as_file(self, x: str) -> str | None:
        for cand in (x,) + tuple(x + e for e in _EXTS):
            if self._file(cand):
                return cand
        return None

    def _as_dir(self, x: str) -> str | None:
        if not self.root.is_dir(x):
            return None
        main = (self.package_json(x) or {}).get("main")
        if isinstance(main, str) and main:
            m = posixpath.normpath(posixpath.join(x, main))
            found = self._as_file(m) or self._index(m)
            if found:
                return found
        return self._index(x)

    def _index(self, x: str) -> str | None:
        for n in ("index.js", "index.json", "index.node"):
            if self._file(posixpath.join(x, n)):
                return posixpath.join(x, n)
        return None

    def _scope(self, d: str) -> str | None:
        """The nearest dir up from d holding a package.json (Node's package scope)."""
        while True:
            if self.package_json(d) is not None:
                return d
            if d == "/" or posixpath.basename(d) == "node_modules":
                return None
            d = posixpath.dirname(d)

    # -- the graph --------------------------------------------------------------------------
    def analyse(self, mains: list[str]) -> NodeFound:
        out = NodeFound()
        queue = list(mains)
        seen: set[str] = set()
        own = [posixpath.dirname(self._real(m)) for m in mains]
        while queue:
            f = queue.pop(0)
            real = self._real(f)
            if real in seen:
                continue
            seen.add(real)
            scope = self._scope(posixpath.dirname(real))
            if scope is not None:    # Node reads it for "type", "exports", "imports"
                out.add(posixpath.join(scope, "package.json"), real, "package.json")
            if not real.endswith((".js", ".mjs", ".cjs")) and not self._is_js(real):
                continue
            text = (read(self.root, real) or b"").decode("utf-8", "replace")
            specs, dynamic, data = specifiers(text)
            for spec, kind in specs:
                for hit in self.resolve(spec, real, kind):
                    out.add(hit, real, spec)
                    queue.append(hit)
            for rel in data:
                p = posixpath.normpath(posixpath.join(posixpath.dirname(real), rel))
                if self.root.exists(p):
                    out.add(p, real, rel)
                    if self.root.is_dir(p):
                        for q in self.root.tree(self._real(p)):
                            out.add(q, real, rel)
            if "/node_modules/" not in real[len(own[0]):] and any(real.startswith(o) for o in own):
                for line, expr in dynamic:
                    out.warnings.append(f"{real}:{line}: require({expr}): not followed (not a constant): "
                                        "--include or --probe what it loads")
        return out

    def _is_js(self, real: str) -> bool:
        """An extensionless file Node runs as JS (a bin script)."""
        return "." not in posixpath.basename(real) and (read(self.root, real) or b"")[:2] != b"\x7fE"


def _some(x: str | None) -> list[str]:
    return [x] if x else []


def _exports_map(exports) -> dict:
    """`exports` as a subpath map: a string, array or condition object means ".": it."""
    if isinstance(exports, dict) and any(k.startswith(".") for k in exports):
        return exports
    return {".": exports}


def _map_subpath(table: dict, sub: str, conds) -> list[str]:
    if sub in table:
        return _targets(table[sub], conds, None)
    best = None
    for key in table:
        if "*" in key:
            pre, _, post = key.partition("*")
            if sub.startswith(pre) and sub.endswith(post) and len(sub) >= len(pre) + len(post):
                if best is None or len(pre) > len(best[0].partition("*")[0]):
                    best = (key, sub[len(pre):len(sub) - len(post)])
        elif key.endswith("/") and sub.startswith(key):   # the old folder mappings
            return _targets(table[key], conds, None, sub[len(key):])
    if best is None:
        return []
    return _targets(table[best[0]], conds, best[1])


def _target(t, conds, star: str | None, rest: str = "") -> str | None:
    got = _targets(t, conds, star, rest)
    return got[0] if got else None


def _targets(t, conds, star: str | None, rest: str = "") -> list[str]:
    """Every target a condition Node may match leads to: which one a Node version picks
    differs (module-sync is new in 22 and in 20.19), so the image holds each."""
    if isinstance(t, str):
        return [(t.replace("*", star) if star is not None else t) + rest]
    out: list[str] = []
    if isinstance(t, list):
        for x in t:
            out += _targets(x, conds, star, rest)
    elif isinstance(t, dict):
        for k, v in t.items():
            if k in conds:
                got = _targets(v, conds, star, rest)
                out += got
                if k in ("node", "default") and got:
                    break           # every Node matches these: later keys are never read
    return list(dict.fromkeys(out))

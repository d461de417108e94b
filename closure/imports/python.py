"""Python's import graph, found statically: ast over every module reached, resolved on the
interpreter's sys.path as computed from files (pypath), into third-party packages.

Found: the modules' source (bytecode only with --pycache), C extensions (the collector walks
them as ELF: vendored numpy.libs/ and *.libs/ follow from their RUNPATH), dotted module
names in C extensions' strings (modules imported from C), the dist-info of every
distribution used (importlib.metadata reads METADATA at run time), and the data files of
each package reached (non-code files and data dirs beside its modules: what
importlib.resources, pkgutil.get_data and __file__-relative opens read). An import whose
name is not a constant is a warning naming file and line: what to --include or probe.
"""
from __future__ import annotations

import ast
import posixpath
import re
import warnings as _warnings
from dataclasses import dataclass, field

from ..root import Root
from .pypath import PyEnv, read

# Files beside a package's modules that are not data a program reads at run time.
_NOT_DATA = (".py", ".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".c",
             ".cpp", ".a", ".lib", ".so")
_NOT_DATA_DIRS = frozenset({"__pycache__", "tests", "test", "testing", "include", "_examples"})
_DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__"})
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+"


@dataclass
class Spec:
    name: str
    origin: str | None               # the module's file (None: a namespace package)
    search: tuple[str, ...] | None   # a package's __path__; None for a plain module


@dataclass
class Found:
    """What the graph adds: image path -> (importing file, module name), in discovery order."""
    files: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    modules: dict[str, Spec] = field(default_factory=dict)

    def add(self, path: str, by: str | None, name: str) -> None:
        self.files.setdefault(path, (by, name))


class PythonImports:
    def __init__(self, root: Root, env: PyEnv, pycache: bool = False):
        self.root = root
        self.env = env
        self.pycache = pycache
        self._listing: dict[str, frozenset[str]] = {}
        self._dists: dict[str, dict[str, str]] = {}
        self._pycache_tag = f"cpython-{env.version.replace('.', '')}"

    # -- the finder -------------------------------------------------------------------------
    def _names(self, d: str) -> frozenset[str]:
        if d not in self._listing:
            self._listing[d] = frozenset(self.root.listdir(d))
        return self._listing[d]

    def find(self, name: str, search: tuple[str, ...]) -> Spec | None:
        """PathFinder over `search` for the last component of `name`: in each dir a package
        wins over an extension, which wins over source; dirs without __init__ gather into
        a namespace package when nothing else is found."""
        base = name.rpartition(".")[2]
        portions = []
        for d in search:
            names = self._names(d)
            if base in names and self.root.is_dir(posixpath.join(d, base)):
                pkg = posixpath.join(d, base)
                if "__init__.py" in self._names(pkg):
                    return Spec(name, posixpath.join(pkg, "__init__.py"), (pkg,))
                portions.append(pkg)
            for suffix in self.env.ext_suffixes + (".py",):
                if base + suffix in names and self.root.is_file(posixpath.join(d, base + suffix)):
                    return Spec(name, posixpath.join(d, base + suffix), None)
        if portions:
            return Spec(name, None, tuple(portions))
        return None

    # -- the graph --------------------------------------------------------------------------
    def analyse(self, scripts: list[str]) -> Found:
        out = Found()
        queue: list[tuple[str, str | None]] = []   # (module file, its package) still to parse
        parsed: set[str] = set()
        for p, _line in self.env.pth_imports:      # .pth import lines run at every start
            out.add(p, None, "site")
            queue.append((p, None))
        # sys.path[0] is the script's dir, for every module the run imports
        search = tuple(dict.fromkeys(posixpath.dirname(s) for s in scripts)) + self.env.path
        queue += [(s, None) for s in scripts]
        for s in scripts:   # Flask's and Django's convention: templates/ and static/ beside the app
            for d in ("templates", "static"):
                p = posixpath.join(posixpath.dirname(s), d)
                if self.root.is_dir(p) and not p.startswith(tuple(x + "/" for x in self.env.site)):
                    for q in self.root.tree(self.root.resolve(p).path):
                        if self.root.is_file(q):
                            out.add(q, s, d)
        dynamic: list[str] = []

        def require(name: str, by: str) -> Spec | None:
            parts = name.split(".")
            spec = None
            for i in range(len(parts)):
                dotted = ".".join(parts[:i + 1])
                have = out.modules.get(dotted)
                if have is None:
                    where = search if i == 0 else spec.search
                    have = self.find(dotted, where) if where is not None else None
                    if have is None:
                        return None           # not there (optional, builtin or frozen)
                    out.modules[dotted] = have
                    self._add_module(out, have, by)
                    if have.origin and have.origin.endswith(".py"):
                        queue.append((have.origin, dotted if have.search else dotted.rpartition(".")[0]))
                    elif have.origin:
                        for sub in self._ext_names(have):
                            require(sub, have.origin)
                spec = have
            return spec

        def follow(name: str, names: tuple[str, ...], path: str) -> None:
            spec = require(name, path)
            if spec is not None and spec.search is not None:
                for sub in names:
                    for n in (self._all(spec) if sub == "*" else (sub,)):
                        require(f"{name}.{n}", path)

        # A package's imports inside functions (or guarded by `except ImportError`) may
        # never run: one of a package not otherwise imported is followed when the importing
        # distribution declares it (requests' idna) or once it is reached some other way,
        # not for optional support (setuptools' numpy). The app's own are always followed.
        installed = tuple(d + "/" for d in (self.env.stdlib,) + self.env.site)
        deferred: list[tuple[str, tuple[str, ...], str]] = []
        while queue or deferred:
            if not queue:
                ready = [d for d in deferred if d[0].partition(".")[0] in out.modules
                         or self._declared(d[2], d[0].partition(".")[0])]
                if not ready:
                    break
                deferred = [d for d in deferred if d not in ready]
                for name, names, path in ready:
                    follow(name, names, path)
                continue
            path, package = queue.pop(0)
            if path in parsed:
                continue
            parsed.add(path)
            for kind, name, line, names, lazy in self._imports(path, package, out):
                if kind == "dynamic":
                    dynamic.append(f"{path}:{line}: {name}")
                elif (lazy and path.startswith(installed)
                      and name.partition(".")[0] not in out.modules):
                    deferred.append((name, names, path))
                else:
                    follow(name, names, path)
        self._distributions(out)
        self._warn_dynamic(out, dynamic)
        return out

    def _warn_dynamic(self, out: Found, dynamic: list[str]) -> None:
        """The app's own dynamic imports one by one; those inside installed packages (their
        plugin loaders, mostly) summed up in one line."""
        inside = tuple(d + "/" for d in (self.env.stdlib,) + self.env.site)
        dynamic = sorted(set(dynamic))
        own = [d for d in dynamic if not d.startswith(inside)]
        for d in own:
            out.warnings.append(f"{d}: import not followed (the name is not a constant): "
                                "--include or --probe what it loads")
        rest = len(dynamic) - len(own)
        if rest:
            first = next(d for d in dynamic if d.startswith(inside))
            out.warnings.append(f"{rest} imports inside installed packages have names that are not "
                                f"constants and were not followed (first: {first})")

    def _add_module(self, out: Found, spec: Spec, by: str) -> None:
        if spec.origin:
            out.add(spec.origin, by, spec.name)
            if self.pycache and spec.origin.endswith(".py"):
                d, f = posixpath.split(spec.origin)
                pyc = posixpath.join(d, "__pycache__", f"{f[:-3]}.{self._pycache_tag}.pyc")
                if self.root.is_file(pyc):
                    out.add(pyc, by, spec.name)
        for pkg in spec.search or ():
            if not pkg.startswith(self.env.stdlib + "/"):
                self._data(out, pkg, spec.name)

    def _data(self, out: Found, pkg: str, name: str) -> None:
        """A package dir's data: its non-code files, and below it the dirs that are no
        package (no .py in them: templates, static files, certificates)."""
        for n in sorted(self._names(pkg)):
            p = posixpath.join(pkg, n)
            if self.root.is_file(p) and not n.endswith(_NOT_DATA):
                out.add(p, None, name)
            elif (n not in _NOT_DATA_DIRS and self.root.is_dir(p)
                  and not self.root.is_file(posixpath.join(p, "__init__.py"))
                  and not any(x.endswith(".py") for x in self._names(p))):
                for q in self.root.tree(self.root.resolve(p).path,
                                        lambda rel: posixpath.basename(rel) in _NOT_DATA_DIRS):
                    if self.root.is_file(q) and not q.endswith(_NOT_DATA):
                        out.add(q, None, name)

    def _ext_names(self, spec: Spec) -> list[str]:
        """Modules a C extension imports from C (PyImport_ImportModule("numpy.core._x")):
        dotted names in its strings under its own top-level package."""
        from ..recipes.probes import strings_with
        top = spec.name.partition(".")[0]
        real = self.root.resolve(spec.origin).path
        return [s for s in strings_with(self.root, real, (top + ".").encode(), _DOTTED)
                if s.startswith(top + ".")]

    def _all(self, spec: Spec) -> list[str]:
        """`from pkg import *`: the constant __all__ of the package's __init__."""
        if not spec.origin or not spec.origin.endswith(".py"):
            return []
        tree = self._parse(spec.origin, None)
        for node in tree.body if tree else ():
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                try:
                    return [n for n in ast.literal_eval(node.value) if isinstance(n, str)]
                except ValueError:
                    return []
        return []

    def _parse(self, path: str, out: Found | None):
        src = read(self.root, path)
        if src is None:
            return None
        try:
            if path.endswith(".pth"):
                src = b"\n".join(line for line in src.splitlines() if line.startswith(b"import"))
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore")     # SyntaxWarnings of other people's code
                return ast.parse(src, filename=path)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
            if out is not None:
                out.warnings.append(f"{path}: cannot parse ({type(e).__name__}): imports not followed")
            return None

    def _imports(self, path: str, package: str | None, out: Found):
        """(kind, absolute name, line, names from it, lazy): kind 'import' or 'dynamic' (name:
        the call as written); lazy when inside a function body. `if TYPE_CHECKING:` blocks
        never run and are skipped."""
        tree = self._parse(path, out)
        if tree is None:
            return
        stack = [(tree, False)]
        while stack:
            node, lazy = stack.pop()
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                stack += [(n, lazy) for n in node.orelse]
                continue
            if isinstance(node, ast.Try) and _catches_import_error(node):
                # `try: import x / except ImportError:` is an optional dependency: taken
                # like a lazy one (when declared or reached); the fallbacks as they are
                stack += [(n, lazy) for n in reversed(node.handlers + node.orelse + node.finalbody)]
                stack += [(n, True) for n in reversed(node.body)]
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield "import", a.name, node.lineno, (), lazy
            elif isinstance(node, ast.ImportFrom):
                name = _absolute(package, node.level, node.module or "") if node.level else node.module
                if name:
                    yield "import", name, node.lineno, tuple(a.name for a in node.names), lazy
            elif isinstance(node, ast.Call) and _callee(node.func) in _DYNAMIC_IMPORTERS and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                    level = len(arg.value) - len(arg.value.lstrip("."))
                    name = _absolute(package, level, arg.value[level:]) if level else arg.value
                    if name:
                        yield "import", name, node.lineno, (), lazy
                else:
                    yield "dynamic", f"{_callee(node.func)}({_unparse(arg)})", node.lineno, (), lazy
            inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            stack += [(n, inner) for n in reversed(list(ast.iter_child_nodes(node)))]

    def _distributions(self, out: Found) -> None:
        """The *.dist-info of each distribution a used top-level module comes from."""
        for name, spec in list(out.modules.items()):
            if "." in name:
                continue
            for d in spec.search or ((posixpath.dirname(spec.origin),) if spec.origin else ()):
                site = posixpath.dirname(d) if spec.search else d
                info = self._dist_index(site).get(name)
                if info:
                    for p in [info] + self.root.tree(self.root.resolve(info).path):
                        if self.root.is_file(p):
                            out.add(p, spec.origin, name)

    def _declared(self, path: str, top: str) -> bool:
        """Does the distribution holding `path` require (unconditionally) the one that
        provides the top-level module `top`?"""
        site = next((d for d in self.env.site if path.startswith(d + "/")), None)
        if site is None:
            return False
        index = self._dist_index(site)
        mine = index.get(path[len(site) + 1:].split("/", 1)[0].split(".", 1)[0])
        theirs = index.get(top)
        if mine is None or theirs is None or mine == theirs:
            return False
        return _dist_name(theirs) in self._requires(mine)

    def _requires(self, info: str) -> frozenset[str]:
        text = (read(self.root, posixpath.join(info, "METADATA")) or b"").decode("utf-8", "replace")
        out = set()
        for line in text.splitlines():
            if not line.strip():
                break                              # the headers end at the first blank line
            if line.lower().startswith("requires-dist:") and "extra" not in line:
                m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split(":", 1)[1])
                if m:
                    out.add(_normalise(m.group(1)))
        return frozenset(out)

    def _dist_index(self, site: str) -> dict[str, str]:
        """top-level module name -> its dist-info dir, for one site dir (top_level.txt, else
        the first components of RECORD)."""
        if site in self._dists:
            return self._dists[site]
        index: dict[str, str] = {}
        for n in sorted(self._names(site)):
            if not n.endswith(".dist-info"):
                continue
            info = posixpath.join(site, n)
            tops: set[str] = set()
            for f, parse in (("top_level.txt", _lines), ("RECORD", _record_tops)):
                tops |= parse((read(self.root, posixpath.join(info, f)) or b"").decode("utf-8", "replace"))
            for t in tops:
                index.setdefault(t, info)
        self._dists[site] = index
        return index


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(info: str) -> str:
    """A dist-info dir's distribution name, normalised (NAME-VERSION.dist-info)."""
    return _normalise(posixpath.basename(info)[:-len(".dist-info")].rsplit("-", 1)[0])


def _lines(text: str) -> set[str]:
    return {x.strip() for x in text.splitlines() if x.strip()}


def _record_tops(text: str) -> set[str]:
    tops = set()
    for line in text.splitlines():
        first = line.split(",", 1)[0].split("/", 1)[0]
        if not first or first.startswith("..") or first.endswith((".dist-info", ".data", ".pth")):
            continue
        tops.add(re.sub(r"(\.cpython-[^.]+|\.abi3)?\.(py|so)$", "", first))
    return tops


def _unparse(node) -> str:
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError):
        return "..."
    return text if len(text) <= 80 else text[:77] + "..."


def _catches_import_error(node: ast.Try) -> bool:
    for h in node.handlers:
        names = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
            return True
    return False


def _is_type_checking(test) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _callee(func) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _absolute(package: str | None, level: int, module: str) -> str | None:
    """`from ..x import y` inside `package` -> the absolute name (None above the top)."""
    if not package:
        return None
    parts = package.split(".")
    if level - 1 > len(parts) - 1:
        return None
    base = parts[:len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))

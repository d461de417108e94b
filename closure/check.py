"""`closure check`: will every program of an image load and link? Proven without running it.

For a program, the Loader gives the objects ld.so maps, in load order. Then, as `ldd -r`
(ld.so in trace mode with LD_BIND_NOW) would find, for every object in that order:
  - every DT_NEEDED resolves;
  - every version it needs (DT_VERNEED: libc.so.6 GLIBC_2.34) is defined (DT_VERDEF) by
    the object loaded for that soname (dl-version.c: a weak one, or a provider without
    version definitions, is only a warning);
  - every undefined, non-weak dynamic symbol is defined by some object of the load order,
    with glibc's version matching (dl-lookup.c check_match): a versioned reference needs
    that version, or an unversioned definition; an unversioned one takes index 1 or 2 or
    the one non-hidden version an object has.
Symbols of a library are resolved in the load order of the program that maps it; a
library that no program maps (a plugin, a dlopen'd module) is checked on its own, and its
symbols that only its host program can provide are counted, not reported, unless asked.

Known differences from ld.so: an executable's undefined-but-valued symbol (a canonical PLT
address) satisfies no reference here; ld.so lets it satisfy another object's non-PLT
relocation.
"""
from __future__ import annotations

import mmap
import posixpath
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .elf.ldso import Loaded, Loader
from .elf.reader import ET_DYN, ET_EXEC, ELF_MAGIC
from .elf.symbols import VERSYM_HIDDEN, SymbolTable, read_symbols
from .errors import NotElf, NotFound, SymlinkLoop
from .root import Root

SCHEMA = "closure.check/1"
_VERSION = re.compile(r"^(.*?)(\d+(?:\.\d+)*)$")
_KERNEL_DIRS = frozenset({"proc", "sys", "dev", "run"})
_GLIBC_RELEASE = re.compile(rb"release version (\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing ld.so would refuse: `object` (the one that needs it) lacks `name`."""

    kind: str                  # "library" | "interpreter" | "version" | "symbol"
    object: str                # real image path of the object that needs it
    name: str                  # soname / interpreter path / version / symbol
    version: str | None = None  # a symbol's version
    file: str | None = None    # the soname a version (or versioned symbol) is needed from
    detail: str = ""           # what the image has instead

    def message(self) -> str:
        if self.kind == "library":
            return f"{self.object}: {self.name} not found (needed library)"
        if self.kind == "interpreter":
            return f"{self.object}: interpreter {self.name} not found"
        if self.kind == "version":
            return f"{self.object}: {self.name} not found (needed from {self.file}; {self.detail})"
        where = f", version {self.version} (from {self.file})" if self.version else ""
        return f"{self.object}: undefined symbol {self.name}{where}"

    def to_json(self) -> dict:
        d = {"kind": self.kind, "object": self.object, "name": self.name}
        for k in ("version", "file", "detail"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        return d


@dataclass
class Report:
    source: str
    mode: str                                   # image | rootfs | targets
    objects: int = 0
    programs: int = 0
    problems: dict[Problem, set[str]] = field(default_factory=dict)   # -> programs it is in
    left_symbols: int = 0                       # plugin symbols left to their host program
    left_libraries: int = 0
    skipped: list[str] = field(default_factory=list)   # ELF files ld.so would not load

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = []
        for p in sorted(self.problems):
            line = p.message()
            by = sorted(self.problems[p] - {p.object})
            if by:
                more = f" and {len(by) - 1} more" if len(by) > 1 else ""
                line += f" (loaded by {by[0]}{more})"
            out.append(line)
        return out

    def summary(self) -> str:
        n = len(self.problems)
        s = (f"closure: checked {self.objects} ELF objects ({self.programs} programs) in "
             f"{self.source}: " + ("everything resolves" if not n else
                                   f"{n} problem{'s' if n != 1 else ''}"))
        if self.skipped:
            s += f"; {len(self.skipped)} ELF files could not be read as objects (--json lists them)"
        if self.left_symbols:
            s += (f"; {self.left_symbols} symbols of {self.left_libraries} libraries no program "
                  f"maps are left to whatever loads them (--standalone lists them)")
        return s

    def to_json(self) -> dict:
        return {
            "schemaVersion": SCHEMA, "source": self.source, "mode": self.mode, "ok": self.ok,
            "objects": self.objects, "programs": self.programs,
            "problems": [dict(p.to_json(), message=p.message(), loadedBy=sorted(self.problems[p] - {p.object}))
                         for p in sorted(self.problems)],
            "leftToLoader": {"libraries": self.left_libraries, "symbols": self.left_symbols},
            "skipped": list(self.skipped),
        }


class Checker:
    """Checks objects inside one root; symbol tables and per-object answers are shared
    across the programs checked, as the Loader shares its ELF reads."""

    def __init__(self, root: Root, library_path: tuple[str, ...] = (), loader: Loader | None = None):
        self.root = root
        self.loader = loader or Loader(root, library_path)
        self._symbols: dict[str, SymbolTable] = {}
        self._own: dict[tuple, tuple[list[Problem], list[tuple[bytes, tuple | None, str | None]]]] = {}
        self._where: dict[bytes, SymbolTable] = {}   # the last object a name was found in

    def symbols(self, real: str) -> SymbolTable:
        st = self._symbols.get(real)
        if st is None:
            st = self._symbols[real] = read_symbols(self.root, real)
        return st

    # -- one program (or library), as `ldd -r` on it ------------------------------------
    def check(self, target: str) -> tuple[list[Problem], list[Loaded]]:
        """Every problem ld.so would report loading target, and the objects it maps."""
        res = self.loader.load(target)
        objects = [o for o in res.objects if o.info.has_dynamic]
        problems: list[Problem] = []
        by_spelled = {o.spelled: o for o in res.objects}
        if res.interp is not None and res.interp.path is None:
            problems.append(Problem("interpreter", res.main.real, res.interp.name))
        faked: set[str] = set()   # names ld.so (in trace mode) maps as empty stand-ins
        for e in res.edges:
            if e.path is None:
                faked.add(e.name)
                if e.rule == "missing":
                    by = by_spelled.get(e.by)
                    problems.append(Problem("library", by.real if by else e.by, e.name))
        names: dict[str, Loaded] = {}
        for o in res.objects:   # find_needed: the first loaded object answering to a name
            for n in sorted(o.names) + ([o.info.soname] if o.info.soname else []):
                names.setdefault(n, o)
        scope = [o.real for o in objects]
        for o in objects:
            own, leftover = self._own_problems(o, names, faked)
            problems += own
            for name, ver, file in leftover:
                if not self._defined(name, ver, scope):
                    problems.append(Problem("symbol", o.real, name.decode("utf-8", "surrogateescape"),
                                            ver[0].decode("utf-8", "surrogateescape") if ver else None,
                                            file))
        return problems, res.objects

    def _own_problems(self, o: Loaded, names: dict[str, Loaded], faked: set[str]):
        """(version problems of o, its references that o and its direct dependencies do
        not define), cached by what o's names resolve to in this load."""
        st = self.symbols(o.real)
        files = sorted({n.file for n in st.needs})
        providers = tuple((f, names[f].real if f in names and f not in faked else None) for f in files)
        deps = tuple(names[n].real for n in o.info.needed if n in names and n not in faked)
        key = (o.real, providers, deps)
        hit = self._own.get(key)
        if hit is not None:
            return hit
        problems = []
        present = {f for f, real in providers if real is not None}
        for need in st.needs:
            if need.file in faked:
                continue          # a missing library: ld.so skips its versions in trace mode
            if need.file not in present:
                problems.append(Problem("version", o.real, need.name, file=need.file,
                                        detail=f"{need.file} is not loaded"))
                continue
            have = self.symbols(names[need.file].real)
            if not have.has_verdef or need.weak or need.name in have.defined_versions:
                continue          # no version info, or a weak one: ld.so only warns
            problems.append(Problem("version", o.real, need.name, file=need.file,
                                    detail=self._what_it_has(need.name, names[need.file].real, have)))
        # l_versions as dl-version.c builds it: indexes above the highest one of a present
        # provider (or of o's own definitions) stay unset, so those references go unversioned.
        high = max([d.index for d in st.defs] + [n.index for n in st.needs if n.file in present],
                   default=0)
        versions = {n.index: ((n.name.encode("utf-8", "surrogateescape"), n.hidden), n.file)
                    for n in st.needs if n.index <= high}
        leftover = []
        # Its own definitions are left for the whole load order: a program's exports are
        # then read only when a library needs one.
        own_scope = [self.symbols(r) for r in deps]
        unversioned = (None, None)
        where = self._where
        for name, versym, weak in st.imports:
            if weak:
                continue
            ver, file = versions.get(versym & 0x7FFF, unversioned)
            # Most names are defined where they were last time (libc): try that first.
            hint = where.get(name)
            if hint is not None and hint in own_scope:
                have = hint.exports.get(name)
                if _matches(have, hint, ver):
                    continue
            for dep in own_scope:
                have = dep.exports.get(name)
                if have is not None and _matches(have, dep, ver):
                    where[name] = dep
                    break
            else:
                leftover.append((name, ver, file))
        hit = self._own[key] = (problems, leftover)
        return hit

    def _defined(self, name: bytes, ver, scope: Iterable[str]) -> bool:
        for real in scope:
            st = self.symbols(real)
            versyms = st.exports.get(name)
            if versyms is not None and _matches(versyms, st, ver):
                return True
        return False

    def _what_it_has(self, wanted: str, real: str, have: SymbolTable) -> str:
        m = _VERSION.match(wanted)
        prefix = m.group(1) if m else wanted
        same = sorted((d.name for d in have.defs if not d.base and d.name.startswith(prefix)),
                      key=_version_key)
        if prefix == "GLIBC_":
            release = self._glibc_release(real)
            if release or same:
                return f"the image has glibc {release or same[-1][len(prefix):]}"
        if same:
            return f"{real} has up to {same[-1]}"
        return f"{real} defines no {prefix} version"

    def _glibc_release(self, real: str) -> str | None:
        """'2.36' from the banner every libc.so.6 carries ("... release version 2.36.")."""
        try:
            with self.root.open(real) as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                at = m.find(b"release version ")
                found = _GLIBC_RELEASE.match(m[at:at + 40]) if at >= 0 else None
        except (OSError, ValueError):
            return None
        return found.group(1).decode() if found else None


def _matches(versyms: int | tuple[int, ...], st: SymbolTable, ver) -> bool:
    """dl-lookup.c check_match: does one of an object's definitions of a name satisfy a
    reference of version ver ((name, hidden) or None)?"""
    if not st.has_versym:
        return True                 # no version table: any definition will do
    if type(versyms) is int:
        versyms = (versyms,)
    names = st.version_names
    if ver is not None:
        want, hidden = ver
        for v in versyms:
            have = names.get(v & 0x7FFF)
            if have == want or (not hidden and have is None and not v & VERSYM_HIDDEN):
                return True
        return False
    visible = 0
    for v in versyms:
        if v & 0x7FFF < 3:          # local, global, or the first version: the default
            return True
        if not v & VERSYM_HIDDEN:
            visible += 1
    return visible == 1             # exactly one non-hidden version: no ambiguity


def _version_key(name: str):
    m = _VERSION.match(name)
    return tuple(int(x) for x in m.group(2).split(".")) if m else ()


# -- what to check in a root --------------------------------------------------------------

def dynamic_objects(loader: Loader, paths: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """(programs, libraries, skipped) among the given image paths: regular ELF files that
    ld.so can map, each real file once. A program has an interpreter and is an executable
    or a PIE; an object without PT_DYNAMIC (static, relocatable, debug-only) has nothing
    to link."""
    root = loader.root
    programs, libraries, skipped, seen = [], [], [], set()
    for p in paths:
        st = root.lstat(p)
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size < 64:
            continue
        try:
            with root.open(p) as f:
                if f.read(4) != ELF_MAGIC:
                    continue
        except OSError:
            continue
        key = (st.st_dev, st.st_ino) if st.st_ino else p
        if key in seen:
            continue
        seen.add(key)
        try:
            info = loader.elf(p)
        except NotElf:
            skipped.append(p)
            continue
        if not info.has_dynamic or info.etype not in (ET_EXEC, ET_DYN):
            continue
        if info.interp is not None and (info.etype == ET_EXEC or info.is_pie):
            programs.append(p)
        else:
            libraries.append(p)
    return programs, libraries, skipped


def check_root(root: Root, source: str, mode: str, paths: Iterable[str] | None = None,
               standalone: bool = False, library_path: tuple[str, ...] = (),
               step: Callable[[str], None] | None = None) -> Report:
    """Check every dynamic ELF object under root (or just `paths`, image paths in it)."""
    step = step or (lambda _m: None)
    if paths is None:
        # A root's kernel filesystems (a live system's /proc, /sys) hold no objects to check.
        paths = root.tree("/", skip=lambda rel: rel in _KERNEL_DIRS)
    checker = Checker(root, library_path)
    programs, libraries, skipped = dynamic_objects(checker.loader, paths)
    report = Report(source, mode, objects=len(programs) + len(libraries), programs=len(programs),
                    skipped=skipped)
    mapped: set[str] = set()
    step(f"checking {len(programs)} programs and {len(libraries)} libraries")
    for p in programs:
        problems, objects = checker.check(p)
        mapped.update(o.real for o in objects)
        for prob in problems:
            report.problems.setdefault(prob, set()).add(p)
    left_libs = set()
    for lib in libraries:
        if lib in mapped:
            continue    # checked in the load order of a program that maps it
        problems, _objects = checker.check(lib)
        for prob in problems:
            if prob.kind == "symbol" and not standalone:
                report.left_symbols += 1
                left_libs.add(prob.object)
                continue
            report.problems.setdefault(prob, set()).add(lib)
    report.left_libraries = len(left_libs)
    return report


def check_targets(root: Root, targets: Iterable[str], library_path: tuple[str, ...] = ()) -> Report:
    """`ldd -r` on each target (an image path in root, links followed): everything."""
    checker = Checker(root, library_path)
    targets = list(targets)
    named = ", ".join(targets) if len(targets) <= 3 else f"{len(targets)} targets"
    report = Report(named if root.path == "/" else f"{named} in {root.path}", "targets")
    for t in targets:
        try:
            real = root.resolve(t).path
        except (NotFound, SymlinkLoop) as e:
            raise NotFound(f"{t}: {e}") from None
        info = checker.loader.elf(real)
        report.objects += 1
        report.programs += info.interp is not None
        if not info.has_dynamic:
            continue
        problems, _objects = checker.check(t)
        for prob in problems:
            report.problems.setdefault(prob, set()).add(real)
    return report


def check_closure(closure, root: Root, library_path: tuple[str, ...] = ()) -> Report:
    """Check what a build or slim is about to write: the closure's files, seen through a
    view of the root that holds nothing else."""
    from .rootview import ClosureRoot
    view = ClosureRoot(closure, root)
    paths = [e.path for e in closure.sorted_entries() if e.type == "file" and e.content is None]
    return check_root(view, "the image", "image", paths, library_path=library_path)


def check_image(image_path: str, ref: str | None = None, tmpdir: str | None = None,
                standalone: bool = False, library_path: tuple[str, ...] = (),
                step: Callable[[str], None] | None = None) -> Report:
    """Unpack an image (the safe extractor slim uses) into a temporary root and check it."""
    from .image.extract import unpacked
    from .image.read import open_image
    step = step or (lambda _m: None)
    with open_image(image_path, ref) as source:
        step(f"unpacking {len(source.layers)} layers")
        with unpacked(source, tmpdir=tmpdir) as (root_path, _stats):
            return check_root(Root(root_path), image_path, "image", standalone=standalone,
                              library_path=library_path, step=step)


def is_image(path: str) -> bool:
    """An OCI layout / docker-dir (a directory with index.json or manifest.json) or an
    archive: a file that is neither an ELF nor a #! script."""
    if posixpath.isdir(path):
        return any(posixpath.isfile(posixpath.join(path, n)) for n in ("index.json", "manifest.json"))
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head != ELF_MAGIC and not head.startswith(b"#!")

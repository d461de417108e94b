"""Emulation of glibc's ld.so search: which file each DT_NEEDED name maps to.

Same order as glibc's _dl_map_object: names already loaded (by name or SONAME) first; then,
when the requesting object has no DT_RUNPATH, the DT_RPATH of it and of every object up its
loader chain, then the executable's; LD_LIBRARY_PATH (--library-path); the requester's own
DT_RUNPATH; ld.so.cache and the system directories unless the requester has DF_1_NODEFLIB.
Objects are loaded breadth-first, as ld.so does, so "who loaded whom" matches.
Candidates of the wrong class or machine are skipped, as ld.so skips them.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ..errors import NotElf, NotFound, SymlinkLoop
from ..root import Root
from .ldcache import LdCache
from .platform import Platform, root_platform
from .reader import ElfInfo, read_elf


# musl's libc.so is also libpthread, librt, libm, libdl, libutil, libxnet.
MUSL_BUILTIN = frozenset({"c", "pthread", "rt", "m", "dl", "util", "xnet"})
PRELOAD_FILE = "/etc/ld.so.preload"


@dataclass
class Loaded:
    """One object in a process image: the path it was opened by and what it is."""

    spelled: str                 # path as the loader opened it (may contain symlinks)
    real: str                    # fully resolved path in the root
    info: ElfInfo
    loader: "Loaded | None"
    names: set[str] = field(default_factory=set)
    rule: str = ""               # which search rule found it (rpath, runpath, cache, ...)
    origin: str = ""             # what $ORIGIN expands to for this object

    def __post_init__(self):
        if not self.origin:
            self.origin = posixpath.dirname(self.spelled)


@dataclass(frozen=True)
class Edge:
    """One DT_NEEDED (or PT_INTERP) edge: `by` needs `name`; found at `path` or missing."""

    by: str
    name: str
    path: str | None              # spelled path found (None if missing)
    rule: str
    tried: tuple[str, ...] = ()


@dataclass
class LoadResult:
    main: Loaded
    interp: Edge | None
    edges: list[Edge]
    objects: list[Loaded]


class Loader:
    """Resolves dependency trees inside one root. ELF reads and lookups are cached, so
    analysing many programs shares the work."""

    def __init__(self, root: Root, library_path: tuple[str, ...] = ()):
        self.root = root
        self.library_path = tuple(library_path)
        self.cache = LdCache(root)
        self._elf: dict[str, ElfInfo | Exception] = {}
        self._subdirs: dict[tuple[str, Platform], tuple[str, ...]] = {}
        self._musl: str | None = None
        self._platforms: dict[tuple[int, int], Platform] = {}

    # -- ELF reading (cached by resolved path) -------------------------------------------
    def elf(self, real: str) -> ElfInfo:
        hit = self._elf.get(real)
        if hit is None:
            try:
                hit = read_elf(self.root, real)
            except (NotElf, OSError) as e:
                hit = e if isinstance(e, NotElf) else NotElf(f"cannot read {real}: {e}")
            self._elf[real] = hit
        if isinstance(hit, Exception):
            raise hit
        return hit

    def platform(self, info: ElfInfo) -> Platform:
        key = (info.elfclass, info.machine)
        if key not in self._platforms:   # the root's glibc and the target's machine decide
            self._platforms[key] = root_platform(self.root, *key)
        return self._platforms[key]

    # -- the process image ----------------------------------------------------------------
    def load(self, target: str) -> LoadResult:
        """Emulate loading `target` (an image path): its interpreter and every DT_NEEDED."""
        res = self.root.resolve(target)
        info = self.elf(res.path)
        # A program's $ORIGIN is its real directory: the kernel passes ld.so the resolved
        # path (/proc/self/exe). `ldd LINK` uses the link's directory instead, and is wrong.
        main = Loaded(res.spelled, res.path, info, None, {target}, "target",
                      origin=posixpath.dirname(res.path))
        objects = [main]
        interp = None
        if info.interp:
            interp = self._load_interp(main, objects)
        edges: list[Edge] = []
        queue = [main]
        # /etc/ld.so.preload: mapped right after the program, searched as its own deps
        # would be, so they precede its DT_NEEDED in the breadth-first order (rtld.c).
        for name in self._preloads(main):
            found, _tried = self._search(name, main, main)
            if found is not None:  # ld.so ignores a preload it cannot open, with a message
                self._map(found, name, main, objects, queue, edges, "preload")
        while queue:
            obj = queue.pop(0)
            # DT_FILTER and DT_AUXILIARY filtees are loaded like DT_NEEDED (after them
            # here; ld.so takes the dynamic section's order, which puts them first in
            # practice only for hand-made objects); a missing auxiliary one is no error.
            # ld.so ignores the filtees of the object it was started on (`ldd LIB`).
            deps = [(n, "missing") for n in obj.info.needed]
            if obj is not main:
                deps += [(n, "missing") for n in obj.info.filter]
                deps += [(n, "missing-auxiliary") for n in obj.info.auxiliary]
            for name, missing in deps:
                have = self._already(name, objects)
                if have is not None:
                    edges.append(Edge(obj.spelled, name, have.spelled, "loaded"))
                    continue
                found, tried = self._search(name, obj, main)
                if found is None:
                    edges.append(Edge(obj.spelled, name, None, missing, tried))
                    continue
                self._map(found, name, obj, objects, queue, edges)
        return LoadResult(main, interp, edges, objects)

    @staticmethod
    def _map(found, name: str, by: Loaded, objects: list[Loaded], queue: list[Loaded],
             edges: list[Edge], why: str = "") -> None:
        """Record a search hit as a new object, or as another name of one already mapped."""
        asked, spelled, real, finfo, rule = found
        same = next((o for o in objects if o.real == real), None)
        if same is not None:  # the same file under another name: ld.so checks dev/ino
            same.names.add(name)
            edges.append(Edge(by.spelled, name, same.spelled, "loaded"))
            return
        new = Loaded(spelled, real, finfo, by, {name}, why or rule, origin=posixpath.dirname(asked))
        objects.append(new)
        queue.append(new)
        edges.append(Edge(by.spelled, name, asked, why or rule))

    def _preloads(self, main: Loaded) -> list[str]:
        """Names in the root's /etc/ld.so.preload (glibc only): separated by white space
        or ':', '#' starting a comment, as rtld.c parses it."""
        if self.is_musl(main) or not self.root.is_file(PRELOAD_FILE):
            return []
        try:
            text = self.root.read_bytes(PRELOAD_FILE).decode("utf-8", "surrogateescape")
        except OSError:
            return []
        names = []
        for line in text.splitlines():
            names += line.split("#", 1)[0].replace(":", " ").split()
        return names

    def _load_interp(self, main: Loaded, objects: list[Loaded]) -> Edge:
        path = main.info.interp
        try:
            res = self.root.resolve(path)
            info = self.elf(res.path)
        except (NotFound, SymlinkLoop, NotElf):
            return Edge(main.spelled, path, None, "missing", (path,))
        names = {path} | ({info.soname} if info.soname else set())
        objects.append(Loaded(res.spelled, res.path, info, None, names, "interp",
                              origin=posixpath.dirname(path)))
        return Edge(main.spelled, path, path, "interp")

    @staticmethod
    def _already(name: str, objects: list[Loaded]) -> Loaded | None:
        interp = next((o for o in objects if o.rule == "interp"), None)
        if interp is not None and posixpath.basename(interp.spelled).startswith("ld-musl-"):
            base = name.split(".so", 1)[0]
            if name.startswith("lib") and ".so" in name and base[3:] in MUSL_BUILTIN:
                return interp  # musl's libc answers for these names itself
        for o in objects:
            if name in o.names or o.info.soname == name:
                o.names.add(name)
                return o
        return None

    # -- the search -------------------------------------------------------------------------
    def find(self, name: str, requester: Loaded, main: Loaded):
        """Search for name as `requester` would (dlopen from it):
        ((asked, spelled, real, info, rule) | None, tried)."""
        return self._search(name, requester, main)

    def _search(self, name: str, requester: Loaded, main: Loaded):
        if self.is_musl(main):
            return self._search_musl(name, requester)
        tried: list[str] = []
        want = requester.info
        plat = self.platform(want)
        if "/" in name:
            # A name with a slash is a path: its DSTs are expanded first ($ORIGIN of the
            # requester), as _dl_map_object does; one that cannot expand opens nothing.
            path = _substitute(name, requester.origin, plat) if "$" in name else name
            if path is None:
                return None, ()
            # Relative: the process's cwd, which closure takes to be / (the image's default).
            return self._try_file(path if path.startswith("/") else "/" + path, want, tried, "path"), tuple(tried)
        if not want.runpath:
            chain = requester
            while chain is not None:
                # An object with DT_RUNPATH has its DT_RPATH ignored, also up the chain.
                rpath = () if chain.info.runpath else chain.info.rpath
                found = self._try_dirs(name, self._expand(rpath, chain, plat), want, tried, plat, "rpath")
                if found:
                    return found, tuple(tried)
                chain = chain.loader
        found = self._try_dirs(name, self._expand(self.library_path, requester, plat), want, tried, plat, "library-path")
        if found:
            return found, tuple(tried)
        found = self._try_dirs(name, self._expand(want.runpath, requester, plat), want, tried, plat, "runpath")
        if found:
            return found, tuple(tried)
        # DF_1_NODEFLIB: ld.so still takes a cache entry, unless it lies under a system
        # dir (a prefix test); it never searches the default dirs.
        system = tuple(d.rstrip("/") + "/" for d in plat.system_dirs)
        for path in self.cache.lookup(name, want.elfclass, want.machine, plat.hwcaps):
            if want.nodeflib and path.startswith(system):
                continue
            found = self._try_file(path, want, tried, "ld.so.cache")
            if found:
                return found, tuple(tried)
        if want.nodeflib:
            return None, tuple(tried)
        # No usable cache: ld.so.conf's dirs as ldconfig would have cached them, labelled, for
        # ld.so itself never reads ld.so.conf (an image of this root needs a cache for them).
        for d in self.cache.conf_dirs() + plat.system_dirs:
            rule = "default" if d in plat.system_dirs else "ld.so.conf"
            found = self._try_dirs(name, (d,), want, tried, plat, rule)
            if found:
                return found, tuple(tried)
        return None, tuple(tried)

    # -- musl ---------------------------------------------------------------------------------
    def is_musl(self, main: Loaded) -> bool:
        if main.info.interp:
            return posixpath.basename(main.info.interp).startswith("ld-musl-")
        # A library walked on its own: its libc tells (a glibc host may carry musl too).
        needed = main.info.needed
        if any(n.startswith("libc.musl-") or n == "libc.so" for n in needed):
            return True
        if "libc.so.6" in needed:
            return False
        return bool(self._musl_loader()) and not self.root.is_file("/etc/ld.so.cache")

    def _musl_loader(self) -> str | None:
        if self._musl is None:
            names = [n for n in self.root.listdir("/lib") if n.startswith("ld-musl-") and ".so" in n]
            self._musl = "/lib/" + names[0] if names else ""
        return self._musl or None

    def musl_path_file(self, interp: str | None) -> str:
        """musl reads <prefix>/etc/ld-musl-ARCH.path, prefix being the loader's path above
        its directory (empty for /lib/ld-musl-*.so.1)."""
        interp = interp or self._musl_loader() or "/lib/ld-musl-x86_64.so.1"
        arch = posixpath.basename(interp)[len("ld-musl-"):].split(".so")[0]
        prefix = posixpath.dirname(posixpath.dirname(interp)).rstrip("/")
        return f"{prefix}/etc/ld-musl-{arch}.path"

    def _musl_sys_path(self, interp: str | None) -> tuple[str, ...]:
        """The path file's dirs (newline or colon separated), else /lib:/usr/local/lib:/usr/lib."""
        conf = self.musl_path_file(interp)
        if self.root.is_file(conf):
            text = self.root.read_bytes(conf).decode("utf-8", "replace")
            return tuple(d.strip() for d in text.replace("\n", ":").split(":") if d.strip())
        return ("/lib", "/usr/local/lib", "/usr/lib")

    def _search_musl(self, name: str, requester: Loaded):
        """musl's order: LD_LIBRARY_PATH, then the rpath of the requester and of every object
        up its chain (DT_RUNPATH replaces DT_RPATH; both inherited; only $ORIGIN expands),
        then the system path."""
        tried: list[str] = []
        want = requester.info
        plat = Platform("", "", (), ())
        if "/" in name:
            return self._try_file(name, want, tried, "path"), tuple(tried)
        found = self._try_dirs(name, self.library_path, want, tried, plat, "library-path")
        chain = requester
        while found is None and chain is not None:
            dirs = chain.info.runpath or chain.info.rpath
            dirs = tuple(d.replace("${ORIGIN}", chain.origin).replace("$ORIGIN", chain.origin)
                         for d in dirs if "$" not in d.replace("$ORIGIN", "").replace("${ORIGIN}", ""))
            found = self._try_dirs(name, dirs, want, tried, plat, "rpath")
            chain = chain.loader
        if found is None:
            root_main = requester
            while root_main.loader is not None:
                root_main = root_main.loader
            sys_path = self._musl_sys_path(root_main.info.interp)
            found = self._try_dirs(name, sys_path, want, tried, plat, "default")
        return found, tuple(tried)

    def _expand(self, dirs: tuple[str, ...], obj: Loaded, plat: Platform) -> tuple[str, ...]:
        out = []
        for d in dirs:
            if "$" in d:
                d = _substitute(d, obj.origin, plat)
                if d is None:
                    continue
            if d == "":
                d = "."  # an empty element means the current directory
            out.append(d)
        return tuple(out)

    def _try_dirs(self, name, dirs, want, tried, plat, rule):
        for d in dirs:
            if not d.startswith("/"):
                d = "/" + d  # relative search dirs are relative to the cwd; assume /
            for sub in self._existing_subdirs(d, plat):
                found = self._try_file(posixpath.join(d, sub, name) if sub else posixpath.join(d, name), want, tried, rule)
                if found:
                    return found
        return None

    def _existing_subdirs(self, d: str, plat: Platform) -> tuple[str, ...]:
        key = (d, plat)
        if key not in self._subdirs:
            subs = tuple(s for s in plat.subdirs if self.root.is_dir(posixpath.join(d, s)))
            self._subdirs[key] = subs + ("",)
        return self._subdirs[key]

    def _try_file(self, path, want: ElfInfo, tried: list[str], rule: str):
        tried.append(path)
        try:
            res = self.root.resolve(path)
        except (NotFound, SymlinkLoop):
            return None
        try:
            info = self.elf(res.path)
        except NotElf:
            return None
        if not info.compatible(want) or not info.has_dynamic and info.etype != 3:
            return None  # wrong class/machine: ld.so skips it and keeps searching
        return path, res.spelled, res.path, info, rule


def _substitute(d: str, origin: str, plat: Platform) -> str | None:
    """Expand $ORIGIN, $LIB, $PLATFORM (also ${...}). None drops the element, as ld.so does
    for a token it cannot expand."""
    for token, value in (("ORIGIN", origin), ("LIB", plat.lib), ("PLATFORM", plat.platform)):
        if not value:
            if f"${token}" in d or f"${{{token}}}" in d:
                return None
            continue
        d = d.replace(f"${{{token}}}", value).replace(f"${token}", value)
    return d

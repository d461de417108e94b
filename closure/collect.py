"""The fixed point: targets -> ELF walk -> recipes -> probes -> Closure.

A worklist, not recursion: anything added that is an ELF object is queued and walked; each
round re-runs the recipes until a round adds nothing.
"""
from __future__ import annotations

import logging
import os
import posixpath
import stat
from dataclasses import dataclass, field

from .elf.ldso import PRELOAD_FILE, Loaded, Loader
from .elf.reader import ELF_MAGIC, is_elf
from .errors import BadInput, NotElf, NotFound, SymlinkLoop
from .model import DEFAULT_PATH, Closure, Entry, Missing, Reason, excluded
from .root import Root, normpath

log = logging.getLogger(__name__)

MAX_SHEBANG_DEPTH = 4
# Files only the top of a root has: a directory holding one is a root of its own.
SYSROOT_MARKS = ("etc/os-release", "usr/lib/os-release", "etc/ld.so.cache", "lib/apk/db/installed",
                 "var/lib/dpkg/status")


@dataclass
class Options:
    root: Root = field(default_factory=lambda: Root("/"))
    library_path: tuple[str, ...] = ()
    dlopen_scan: bool = True
    recipes: bool = True
    recipe_dirs: tuple[str, ...] = ()
    recipe_vars: object | None = None          # closure.recipes RecipeVars
    probes: tuple[str, ...] = ()
    probe_in_image: bool = False               # run probes in the candidate rootfs (bwrap)
    probe_network: bool = False                # let sandboxed probes use the network
    probe_rounds: int = 5                      # in-image rounds before giving up
    includes: tuple[tuple[str, str], ...] = ()  # (source image path, destination image path)
    excludes: tuple[str, ...] = ()
    path: str = DEFAULT_PATH                   # PATH for bare names and `#!/usr/bin/env NAME`
    package_records: bool = False              # dpkg status.d records scanners read (build: on)
    runtime: str | None = None                 # --runtime: the interpreter of an app target
    app_dirs: tuple[tuple[str, str], ...] = ()  # --app-dir (source dir, image dir)
    dlopen_depth: int = 1                      # dlopen strings of objects found by strings, how deep
    env: tuple[tuple[str, str], ...] = ()      # the image's Env: probes and services see it
    serve: object | None = None                # closure.trace.serve.ServeOptions
    accounts: tuple[tuple, ...] = ()           # --account ("account", NAME, UID|None, GID|None)


class Collector:
    """Accumulates a Closure. Recipes and probes add to it through add_path & co."""

    def __init__(self, opts: Options):
        self.opts = opts
        self.root = opts.root
        self.loader = Loader(self.root, opts.library_path)
        self.closure = Closure(root=self.root.path)
        self.changes = 0                 # bumps on every addition: the fixed point's measure
        self._pending: list[str] = []    # real paths of ELF objects still to walk
        self._walked: set[str] = set()
        # Objects found only through dlopen strings: their unresolved deps are a guess,
        # reported as warnings, not as `missing` (which --strict fails on).
        self._speculative: dict[str, int] = {}   # real path -> dlopen-string depth
        self.apps: list = []                     # closure.imports.App of the targets
        self._guessed_missing: list[tuple[str, str]] = []   # needs of dlopen-string finds

    # -- additions ------------------------------------------------------------------------
    def _add(self, entry: Entry, reason: Reason) -> bool:
        if self.closure.add(entry, reason):
            self.changes += 1
            return True
        return False

    def add_path(self, ipath: str, reason: Reason, walk: bool = True) -> str | None:
        """Add ipath as the loader or program spells it: every symlink met on the way (dir
        links too), then what it finally is. ELF files are queued for walking. Returns the
        resolved path, or None when it leads nowhere in the root (missing, a link loop)."""
        try:
            res = self.root.resolve(ipath)
        except (NotFound, SymlinkLoop):
            return None
        prev = ipath  # the last link of the chain to the file itself (not a directory link)
        for link, target in res.links:
            if link == res.spelled:
                why = reason
            elif link in self.closure.entries:
                why = None  # a shared directory link: one reason is enough
            else:
                why = Reason("symlink", by=prev if not self.root.is_dir(link) else ipath)
            if why is not None:
                self._add(Entry(link, "symlink", mode=0o777, target=target), why)
            if link == res.spelled or not self.root.is_dir(link):
                prev = link
        st = self.root.lstat(res.path)
        why = reason if res.path == res.spelled else Reason("symlink", by=prev)
        if stat.S_ISDIR(st.st_mode):
            self._add(Entry(res.path, "dir", mode=stat.S_IMODE(st.st_mode)), why)
        elif stat.S_ISREG(st.st_mode):
            self._add(Entry(res.path, "file", mode=stat.S_IMODE(st.st_mode), size=st.st_size,
                            source=res.path), why)
            if walk and res.path not in self._walked and is_elf(self.root, res.path):
                self._pending.append(res.path)
                if reason.kind == "dlopen-string":
                    self._speculative.setdefault(res.path, self._speculative.get(
                        self.root.resolve(reason.by).path if reason.by else "", 0) + 1)
        else:
            return None  # sockets, fifos and devices are never copied
        return res.path

    def add_tree(self, ipath: str, reason: Reason) -> str | None:
        """Add a directory and everything below it (links inside are kept as links)."""
        top = self.add_path(ipath, reason)
        if top is None or not self.root.is_dir(top):
            return top
        why = Reason("parent", by=top)
        for p in self.root.tree(top):
            st = self.root.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                self._add(Entry(p, "symlink", mode=0o777, target=self.root.readlink(p)), why)
            elif stat.S_ISDIR(st.st_mode):
                self._add(Entry(p, "dir", mode=stat.S_IMODE(st.st_mode)), why)
            elif stat.S_ISREG(st.st_mode):
                self.add_path(p, why)
        return top

    def add_generated(self, ipath: str, content: bytes, mode: int, reason: Reason) -> None:
        """A file whose bytes closure makes (templates, merged CA bundles). Replaces a
        copied file at the same path, keeping its reasons."""
        ipath = normpath(ipath)
        have = self.closure.entries.get(ipath)
        if have is not None and any(r.kind == "include" for r in have.reasons):
            # the user's --include wins over a generated file, and is told so once
            note = f"{ipath}: kept as --include gives it, not the file recipe {reason.recipe or '?'} makes"
            if note not in self.closure.warnings:
                self.closure.warnings.append(note)
            return
        if have is not None and have.content == content and have.mode == mode:
            if have.add_reason(reason):
                self.changes += 1
            return
        entry = Entry(ipath, "file", mode=mode, size=len(content), content=content)
        if have is not None:
            entry.reasons = list(have.reasons)
            del self.closure.entries[ipath]
        self._add(entry, reason)

    def add_dir(self, ipath: str, mode: int, reason: Reason, uid: int = 0, gid: int = 0) -> None:
        """A directory closure makes (HOME, /tmp); uid/gid set its owner in the image."""
        ipath = normpath(ipath)
        have = self.closure.entries.get(ipath)
        if have is not None and have.type == "dir" and (uid, gid) != (0, 0):
            have.uid, have.gid = uid, gid  # an owner given by a recipe wins over the copy's
        self._add(Entry(ipath, "dir", mode=mode, uid=uid, gid=gid), reason)

    def add_symlink(self, ipath: str, target: str, reason: Reason) -> None:
        self._add(Entry(normpath(ipath), "symlink", mode=0o777, target=target), reason)

    # -- targets ----------------------------------------------------------------------------
    def which(self, name: str) -> str | None:
        for d in self.opts.path.split(":"):
            cand = posixpath.join(d or "/", name)
            if self.root.is_file(cand):
                return normpath(cand)
        return None

    def add_target(self, target: str, reason: Reason | None = None, depth: int = 0) -> str:
        """A program to run: an ELF file or a `#!` script (its interpreter follows)."""
        ipath = target if "/" in target else self.which(target)
        if ipath is None and depth == 0 and self.root.path == "/" and os.path.exists(target):
            ipath = normpath(os.path.abspath(target))   # `closure build app.py`, as python runs it
        if ipath is None:
            raise NotFound(f"{target}: not found on PATH in root {self.root.path}")
        if not ipath.startswith("/"):
            # ./app on the host is the file the shell would run; inside another root a
            # relative path means nothing.
            if depth > 0 or self.root.path != "/":
                raise BadInput(f"{target}: give an absolute path (inside the root) or a program name")
            ipath = normpath(os.path.abspath(ipath))
        res = self.root.resolve(ipath)
        st = self.root.lstat(res.path)
        reason = reason or Reason("target")
        if stat.S_ISDIR(st.st_mode) and depth == 0:
            return self._add_app(ipath, True, reason)
        if stat.S_ISDIR(st.st_mode):
            raise BadInput(f"{target}: is a directory, not a program")
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{target}: not a regular file")
        with self.root.open(res.path) as f:
            head = f.read(256)
        reason = reason or Reason("target")
        if head.startswith(b"#!"):
            self.add_path(ipath, reason, walk=False)
            self._add_shebang(ipath, head, depth)
            return ipath
        if depth == 0 and not head.startswith(ELF_MAGIC) and (
                app := self._add_app(ipath, False, reason)):
            return app
        if not head:
            raise NotElf(f"{target}: empty file, not an ELF program or script")
        if not head.startswith(ELF_MAGIC):
            raise NotElf(f"{target}: not an ELF file or a #! script")
        self.loader.elf(res.path)  # raises NotElf for truncated/malformed files
        if depth == 0:
            self._warn_if_in_a_sysroot(res.path)
        self.add_path(ipath, reason, walk=False)
        self._walk(ipath)
        return ipath

    def _warn_if_in_a_sysroot(self, real: str) -> None:
        """A program inside another root (an unpacked image, a sysroot) analysed on the
        host root takes its loader and libraries from the host: say so, with the --root
        that was probably meant (--strict makes it an error)."""
        if self.root.path != "/":
            return
        d = posixpath.dirname(real)
        while d not in ("/", ""):
            d = posixpath.dirname(d)
            if d != "/" and any(self.root.is_file(posixpath.join(d, m)) for m in SYSROOT_MARKS):
                self.closure.warnings.append(
                    f"{real} lies inside another root ({d}) but is analysed against the host's "
                    f"libraries: give --root {d} (and the program's path inside it)")
                self.closure.foreign_root = d
                return

    def _add_shebang(self, script: str, head: bytes, depth: int) -> None:
        if depth >= MAX_SHEBANG_DEPTH:
            raise BadInput(f"{script}: #! interpreters nested too deeply")
        line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if not line:
            raise BadInput(f"{script}: empty #! line")
        parts = line.split(None, 1)
        interp, arg = parts[0], (parts[1].split()[0] if len(parts) > 1 else None)
        if posixpath.basename(interp) == "env" and arg:
            self.add_target(interp, Reason("shebang", by=script, name=interp), depth + 1)
            found = self.which(arg)
            if found is None:
                self.closure.add_missing(Missing(arg, script, tuple(self.opts.path.split(":"))))
                return
            interp = found
        try:
            self.add_target(interp, Reason("shebang", by=script, name=interp), depth + 1)
        except NotFound:
            self.closure.add_missing(Missing(interp, script, (interp,)))
            return
        from .imports import App, kind_of_interpreter
        kind = kind_of_interpreter(interp)
        if kind is not None and depth == 0:
            self.apps.append(App(kind, script, interp, (script,)))

    def _add_app(self, ipath: str, is_dir: bool, reason: Reason) -> str | None:
        """An app target (closure.imports.detect): its runtime joins as a program, its main
        file as the target, and the image's entrypoint runs the one with the other."""
        from .imports import detect
        app = detect(self.root, ipath, is_dir, self.opts.runtime)
        if app is None:
            return None
        runtime = self.add_target(app.runtime, Reason("runtime", by=app.main, name=app.runtime), 1)
        if self._app_path(app.main) == app.main:    # else --app-dir puts it in place
            self.add_path(app.main, reason, walk=False)
        self.apps.append(app)
        if not self.closure.targets and self.closure.entrypoint is None:
            self.closure.entrypoint = [self._app_path(runtime), *(self._app_path(a) for a in app.args)]
            if app.top:
                self.closure.workdir = self._app_path(app.top)
            else:   # a file inside --app-dir: run where the tree is
                self.closure.workdir = next((normpath(d) for s, d in self.opts.app_dirs
                                             if self._app_path(app.main) != app.main
                                             and app.main.startswith(normpath(s) + "/")), None)
        return app.main

    def own_trees(self) -> tuple[str, ...]:
        """The target's own trees: each target's and app runtime's install prefix (the dir
        above bin/), app dirs and venvs. Traced files in them are the program's, even under
        /tmp, /home or /root (trace.select keeps them; credentials still stay out)."""
        from .imports.pypath import find_venv
        trees = set()
        progs = list(self.closure.targets) + [a.runtime for a in self.apps if "/" in a.runtime]
        for app in self.apps:
            trees.add(app.top or posixpath.dirname(app.main))
            venv = find_venv(self.root, app.runtime) if "/" in app.runtime else None
            if venv:
                trees.add(venv)
        for p in progs:
            for q in {p, self.root.try_resolve(p).path if self.root.try_resolve(p) else p}:
                d = posixpath.dirname(q)
                trees.add(posixpath.dirname(d) if posixpath.basename(d) == "bin" else d)
        # never a whole top-level tree (/tmp, /home, /usr) nor a home dir itself
        return tuple(sorted(t for t in trees if t.count("/") >= 2 and not
                            (t.count("/") == 2 and t.startswith("/home/"))))

    def _app_path(self, path: str) -> str:
        """Where an app's file lands in the image (moved by --app-dir)."""
        for src, dest in self.opts.app_dirs:
            src = normpath(src)
            if path == src or path.startswith(src + "/"):
                return normpath(dest + path[len(src):])
        return path

    # -- the ELF walk -----------------------------------------------------------------------
    def walk_pending(self) -> None:
        while self._pending:
            real = self._pending.pop()
            if real not in self._walked:
                self._walk(real)

    def _walk(self, ipath: str) -> None:
        real = self.root.resolve(ipath).path
        if real in self._walked:
            return
        self._walked.add(real)
        try:
            result = self.loader.load(ipath)
        except NotElf as e:
            self.closure.warnings.append(str(e))
            return
        if result.interp is not None:
            if result.interp.path is None:
                self.closure.add_missing(Missing(result.interp.name, ipath, result.interp.tried))
            else:
                self.add_path(result.interp.path, Reason("interp", by=ipath), walk=False)
        for obj in result.objects:
            self._walked.add(obj.real)
        self._add_loader_config(ipath, result)
        for edge in result.edges:
            if edge.path is None and real in self._speculative:
                self._guessed_missing.append((edge.by, edge.name))
            elif edge.rule == "missing-auxiliary":  # ld.so runs without it
                self.closure.warnings.append(f"{edge.by}: auxiliary filtee {edge.name} not found")
            elif edge.path is None and self._loaded_by_name(edge.name):
                pass   # a plugin's need met by what its host loaded first (the JDK's libjvm.so)
            elif edge.path is None:
                self.closure.add_missing(Missing(edge.name, edge.by, edge.tried))
            else:
                self.add_path(edge.path, Reason("needed", by=edge.by, name=edge.name), walk=False)
        # Strings of objects that were themselves found only by a string are followed only
        # to --dlopen-depth (libnet -> libgio -> libmount -> ... is a guess upon a guess).
        if self.opts.dlopen_scan and self._speculative.get(real, 0) < self.opts.dlopen_depth:
            self._dlopen_strings(result.objects, result.main)

    def _loaded_by_name(self, soname: str) -> bool:
        """Is an object of that name in the closure by a recipe? ld.so satisfies a DT_NEEDED
        with an already loaded object of the same soname, as when a JVM's lib/*.so, dlopened
        by libjvm.so, need libjvm.so, which no search path of theirs holds."""
        return any(posixpath.basename(p) == soname and any(r.kind == "recipe" for r in e.reasons)
                   for p, e in self.closure.entries.items() if e.type == "file")

    def _add_loader_config(self, ipath: str, result) -> None:
        """The loader's own search configuration, when the image needs it: musl's path file,
        or glibc's ld.so.cache when a library was found there outside the default dirs."""
        if self.loader.is_musl(result.main):
            conf = self.loader.musl_path_file(result.main.info.interp)
            if self.root.is_file(conf):
                self.add_path(conf, Reason("interp", by=ipath, name=conf))
            return
        system = set(self.loader.platform(result.main.info).system_dirs)
        if any(e.rule == "preload" for e in result.edges):
            self.add_path(PRELOAD_FILE, Reason("interp", by=ipath, name=PRELOAD_FILE))
        for e in result.edges:
            if e.rule == "ld.so.cache" and posixpath.dirname(e.path) not in system:
                self.add_path("/etc/ld.so.cache", Reason("interp", by=e.by, name=e.name))
            elif e.rule == "ld.so.conf":   # a root nobody ran ldconfig in (debootstrap --foreign)
                note = (f"{e.by}: {e.name} found in {posixpath.dirname(e.path)} through ld.so.conf, but "
                        f"the root has no ld.so.cache: ld.so in the image will not look there "
                        f"(run ldconfig in the root)")
                if note not in self.closure.warnings:
                    self.closure.warnings.append(note)

    def _dlopen_strings(self, objects: list[Loaded], main: Loaded) -> None:
        loaded = {n for o in objects for n in o.names} | {o.info.soname for o in objects}
        for obj in objects:
            for name in obj.info.dlopen_strings:
                if name in loaded:
                    continue
                found, _tried = self.loader.find(name, obj, main)
                if found is not None:
                    self.add_path(found[0], Reason("dlopen-string", by=obj.spelled, name=name))

    # -- the fixed point ----------------------------------------------------------------------
    def run(self) -> None:
        """Walk ELF objects, apply recipes and run the probes (once) until a round adds
        nothing: a recipe's file may be an ELF object whose libraries bring more."""
        recipes = _load_recipes(self.opts) if self.opts.recipes else None
        probes_done = not self.opts.probes and self.opts.serve is None
        self.walk_pending()
        if self.apps:
            from .imports import add_app_files
            for app in self.apps:
                add_app_files(self, app)
        while True:
            self.walk_pending()
            before = self.changes
            if recipes is not None:
                recipes.apply(self, self.opts.recipe_vars)
            if not probes_done:
                _run_probes(self, self.opts)
                probes_done = True
            self.walk_pending()
            if self.changes == before:
                return

    def finish(self) -> Closure:
        """Excludes, package records, parent directories, warnings: the closure as built."""
        self.apply_excludes()
        if self.opts.package_records:
            from .audit.records import add_package_records
            add_package_records(self)
        self.add_parents()
        for by, name in dict.fromkeys(self._guessed_missing):
            if not self._loaded_by_name(name):
                self.closure.warnings.append(f"{by} (found by a dlopen string): needed {name} not found")
        for m in self.closure.missing:
            self.closure.warnings.append(f"{m.by}: needed {m.name} not found")
        return self.closure

    # -- finishing --------------------------------------------------------------------------
    def add_includes(self) -> None:
        for src, dest in self.opts.includes:
            src, dest = normpath(src), normpath(dest)
            if not self.root.try_resolve(src):
                raise NotFound(f"--include {src}: no such file in root {self.root.path}")
            if src == dest:
                self.add_tree(src, Reason("include"))
                continue
            self.add_tree_at(src, dest, Reason("include", name=src))
        for src, dest in self.opts.app_dirs:
            if not self.root.is_dir(src):
                raise BadInput(f"--app-dir {src}: not a directory in root {self.root.path}")
            self.add_tree_at(normpath(src), normpath(dest), Reason("include", name=src))

    def add_tree_at(self, src: str, dest: str, reason: Reason) -> None:
        """A file or a whole tree of the root put at another image path: links inside are
        kept as links (their text as stored), ELF files are walked where they come from."""
        res = self.root.resolve(src)
        st = self.root.lstat(res.path)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise BadInput(f"{src}: neither a file nor a directory")
        items = [res.path] + (self.root.tree(res.path) if stat.S_ISDIR(st.st_mode) else [])
        for p in items:
            out = normpath(dest + p[len(res.path):])
            st = self.root.lstat(p)
            why = reason if p == res.path else Reason("parent", by=dest)
            if stat.S_ISLNK(st.st_mode):
                self._add(Entry(out, "symlink", mode=0o777, target=self.root.readlink(p)), why)
            elif stat.S_ISDIR(st.st_mode):
                self._add(Entry(out, "dir", mode=stat.S_IMODE(st.st_mode)), why)
            elif stat.S_ISREG(st.st_mode):
                self._add(Entry(out, "file", mode=stat.S_IMODE(st.st_mode), size=st.st_size,
                                source=p), why)
                if is_elf(self.root, p):
                    self._pending.append(p)

    def apply_excludes(self) -> None:
        """Drop paths matching a glob, and everything below a matching directory (the same
        meaning the layer writer gives --exclude)."""
        for path in sorted(self.closure.entries):
            if excluded(path, self.opts.excludes):
                del self.closure.entries[path]

    def add_parents(self) -> None:
        for path in sorted(self.closure.entries):
            parent = posixpath.dirname(path)
            while parent != "/" and parent not in self.closure.entries:
                st = self.root.lstat(parent)
                mode = stat.S_IMODE(st.st_mode) if st is not None and stat.S_ISDIR(st.st_mode) else 0o755
                self.closure.add(Entry(parent, "dir", mode=mode), Reason("parent", by=path))
                parent = posixpath.dirname(parent)


def collect(targets: list[str], opts: Options | None = None) -> Closure:
    """Compute the closure of targets inside opts.root."""
    c = Collector(opts or Options())
    c.closure.accounts |= set(c.opts.accounts)
    for t in targets:
        c.closure.targets.append(c.add_target(t))
    c.add_includes()
    c.run()
    return c.finish()


def _load_recipes(opts: Options):
    from .recipes import RecipeSet
    return RecipeSet.load(opts.recipe_dirs)


def _run_probes(c: Collector, opts: Options) -> None:
    from .trace.probe import add_probe_results, add_service_results
    for probe in opts.probes:
        add_probe_results(c, probe)
    if opts.serve is not None:
        add_service_results(c)

"""Named probes: the logic recipes need, in Python, tested on real files.

A recipe binds a probe's result to a name (`[probes] ssl = "openssl_dirs"`) and reads it in
its templates. A probe gets a ProbeContext (the root, the closure so far, the trigger, the
build options) plus the literal arguments the recipe gave, and returns plain data (dicts,
lists, strings, None), sorted where order is not meaningful, so results compare equal
across runs: the engine re-applies a recipe only when its probe results change.

Probes read the root only through Root (never a host path) and never run a program from it:
an interpreter's paths come from its files (ldd's warning: analysis must not execute what
it analyses).
"""
from __future__ import annotations

import fnmatch
import inspect
import logging
import posixpath
import re
import stat
from dataclasses import dataclass
from typing import Any, Callable

from ..elf.reader import data_sections
from ..errors import NotElf
from ..model import Closure
from ..root import Root
from .vars import RecipeVars

log = logging.getLogger(__name__)

PROBES: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class Hit:
    """What fired a recipe: the closure entry (or target) and which trigger rule matched."""

    kind: str        # soname | path | program | interpreter | always
    path: str        # image path of the entry (as the closure holds it)
    name: str        # the base name matched (or the pattern for `always`)

    @property
    def dir(self) -> str:
        return posixpath.dirname(self.path)

    def to_context(self) -> dict:
        return {"kind": self.kind, "path": self.path, "name": self.name, "dir": self.dir}


@dataclass
class ProbeContext:
    root: Root
    closure: Closure
    trigger: Hit
    vars: RecipeVars
    elf: Callable[[str], Any]   # resolved image path -> ElfInfo, or None when not ELF

    def resolve(self, ipath: str) -> str | None:
        r = self.root.try_resolve(ipath)
        return r.path if r is not None else None

    def find_entry(self, pattern: str) -> str | None:
        """First closure entry (sorted) whose base name matches the glob, resolved."""
        for path in sorted(self.closure.entries):
            if fnmatch.fnmatchcase(posixpath.basename(path), pattern):
                e = self.closure.entries[path]
                if e.type == "file" and e.content is None:
                    return e.source or path
                if e.type == "symlink":
                    real = self.resolve(path)
                    if real is not None:
                        return real
        return None

    def lib(self, pattern: str) -> str | None:
        """The trigger itself when its base name matches, else the first such entry."""
        if fnmatch.fnmatchcase(posixpath.basename(self.trigger.path), pattern):
            real = self.resolve(self.trigger.path)
            if real is not None:
                return real
        return self.find_entry(pattern)


def probe(fn: Callable) -> Callable:
    """Register fn under its own name."""
    PROBES[fn.__name__] = fn
    return fn


def check_call(name: str, args: dict) -> None:
    """ValueError/TypeError when the probe is unknown or would not accept args."""
    fn = PROBES.get(name)
    if fn is None:
        raise ValueError(f"unknown probe '{name}' (known: {', '.join(sorted(PROBES))})")
    try:
        inspect.signature(fn).bind(None, **args)
    except TypeError as e:
        raise TypeError(f"probe '{name}': {e}") from None


def run_probe(name: str, ctx: ProbeContext, args: dict) -> Any:
    return PROBES[name](ctx, **args)


# -- reading files inside the root -------------------------------------------------------------

_DATA_CACHE: dict[tuple, bytes] = {}
_STRINGS_CACHE: dict[tuple, tuple[str, ...]] = {}


def _file_key(root: Root, real: str) -> tuple | None:
    st = root.lstat(real)
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    return (root.path, real, st.st_size, st.st_mtime_ns)


def _constants(root: Root, real: str, key: tuple) -> bytes:
    """The bytes of a file that hold its string constants, cached by (root, path, size,
    mtime): an ELF file's data sections joined by NULs (a quarter of libcrypto: no code,
    symbols or debug info), or the whole file when it is no ELF or has no section headers."""
    data = _DATA_CACHE.get(key)
    if data is None:
        try:
            ranges = data_sections(root, real)
        except NotElf:
            ranges = ()
        try:
            with root.open(real) as f:
                if not ranges:
                    data = f.read()
                else:
                    parts = []
                    for off, size in ranges:
                        f.seek(off)
                        parts.append(f.read(size))
                    data = b"\0".join(parts)
        except OSError:
            data = b""
        if len(_DATA_CACHE) >= 8:
            _DATA_CACHE.clear()
        _DATA_CACHE[key] = data
    return data


def strings_with(root: Root, real: str, needle: bytes, pattern: str | None = None) -> list[str]:
    """The NUL-delimited strings of a file's constants (see _constants) that contain
    `needle` (and fully match the regex `pattern`, if given), in file order. Finding the
    needle first and widening to the string around it is far faster than a regex over
    megabytes of library."""
    key = _file_key(root, real)
    if key is None:
        return []
    hit = _STRINGS_CACHE.get((key, needle))
    if hit is None:
        data = _constants(root, real, key)
        found: list[str] = []
        i = data.find(needle)
        while i >= 0:
            start = data.rfind(b"\0", 0, i) + 1
            end = data.find(b"\0", i + len(needle))
            end = len(data) if end < 0 else end
            found.append(data[start:end].decode("utf-8", "surrogateescape"))
            i = data.find(needle, end)
        hit = _STRINGS_CACHE[(key, needle)] = tuple(found)
    if pattern is None:
        return list(hit)
    rx = re.compile(pattern)
    return [x for x in hit if rx.fullmatch(x)]


def _read_text(root: Root, ipath: str) -> str | None:
    r = root.try_resolve(ipath)
    if r is None or not root.is_file(r.path):
        return None
    try:
        return root.read_bytes(r.path).decode("utf-8", "replace")
    except OSError:
        return None


# -- generic ---------------------------------------------------------------------------------

@probe
def imports_any(ctx: ProbeContext, symbols, scope: str = "closure") -> list[str]:
    """ELF objects in the closure (or only the targets, scope="targets") whose undefined
    dynamic symbols include any of `symbols`. Sorted image paths; empty means none."""
    if scope not in ("closure", "targets"):
        raise ValueError(f"imports_any: scope must be 'closure' or 'targets', not {scope!r}")
    wanted = frozenset(symbols)
    if scope == "targets":
        paths = [p for p in (ctx.resolve(t) for t in ctx.closure.targets) if p]
    else:
        paths = [e.source for e in ctx.closure.entries.values()
                 if e.type == "file" and e.content is None and e.source]
    out = []
    for real in sorted(set(paths)):
        info = ctx.elf(real)
        if info is not None and wanted & info.imports:
            out.append(real)
    return out


@probe
def merged_usr_links(ctx: ProbeContext) -> list[str]:
    """Top-level directory links of a merged-/usr root (/bin -> usr/bin, /lib64 -> ...)."""
    out = []
    for d in ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin"):
        st = ctx.root.lstat(d)
        if st is not None and stat.S_ISLNK(st.st_mode) and ctx.root.is_dir(d):
            out.append(d)
    return out


# -- glibc -----------------------------------------------------------------------------------

_GLIBC_MEMO: dict[tuple, dict] = {}


@probe
def glibc(ctx: ProbeContext) -> dict | None:
    """Facts compiled into libc.so.6: its version, the dirs it reads gconv modules, locales
    and zone files from, and where libgcc_s.so.1 is (for pthread_cancel's unwinder)."""
    libc = ctx.lib("libc.so.6")
    if libc is None:
        return None
    key = _file_key(ctx.root, libc)
    if key in _GLIBC_MEMO:
        return dict(_GLIBC_MEMO[key])
    version = None
    for text in strings_with(ctx.root, libc, b"GNU C Library"):
        m = re.search(r"release version (\d+)\.(\d+)", text)
        if m:
            version = (int(m.group(1)), int(m.group(2)))
            break
    libdir = posixpath.dirname(libc)
    gconv = _first(strings_with(ctx.root, libc, b"/gconv", r"/.*/gconv")) or posixpath.join(libdir, "gconv")
    archive = _first(strings_with(ctx.root, libc, b"/locale-archive", r"/.*/locale-archive"))
    zoneinfo = _first(strings_with(ctx.root, libc, b"zoneinfo", r"/\S*zoneinfo"))
    out = {
        "path": libc,
        "version": f"{version[0]}.{version[1]}" if version else None,
        # glibc 2.34 moved the files and dns NSS services into libc itself.
        "nss_builtin": version is not None and version >= (2, 34),
        "libdir": libdir,
        "gconv_dir": gconv,
        "locale_dir": posixpath.dirname(archive) if archive else "/usr/lib/locale",
        "zoneinfo": zoneinfo or "/usr/share/zoneinfo",
        "libgcc_s": _find_lib(ctx.root, "libgcc_s.so.1", libdir),
    }
    if key is not None:
        _GLIBC_MEMO[key] = out
    return dict(out)


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _find_lib(root: Root, name: str, first_dir: str) -> str | None:
    """A library next to libc first, then in the usual system dirs (spelled, not resolved)."""
    dirs = [first_dir]
    for d in ("/lib", "/usr/lib", "/lib64", "/usr/lib64"):
        dirs.append(d)
        for sub in root.listdir(d):
            if sub.endswith("-linux-gnu") or sub.endswith("-linux-gnueabihf"):
                dirs.append(posixpath.join(d, sub))
    for d in dirs:
        p = posixpath.join(d, name)
        if root.is_file(p):
            return p
    return None


_NSS_DEFAULT = (
    ("passwd", "files"), ("group", "files"), ("shadow", "files"), ("gshadow", "files"),
    ("hosts", "files dns"), ("networks", "files"), ("protocols", "files"),
    ("services", "files"), ("ethers", "files"), ("rpc", "files"), ("netgroup", "files"),
)


@probe
def nss_services(ctx: ProbeContext) -> dict | None:
    """nsswitch.conf lines naming only services the image can load.

    Available: `files` and `dns` when libc has them built in (glibc >= 2.34) or their
    libnss_*.so.2 is in the closure; any other service whose libnss_NAME.so.2 is in the
    closure; and --nss NAME services, whose modules are returned in `modules` to be added.
    The root's own nsswitch.conf gives the databases and the order; a database left with
    no service falls back to `files` (`files dns` for hosts)."""
    g = glibc(ctx)
    if g is None:
        return None
    available = set()
    for path in ctx.closure.entries:
        m = re.fullmatch(r"libnss_([a-z0-9_]+)\.so\.2", posixpath.basename(path))
        if m:
            available.add(m.group(1))
    modules, missing = [], []
    wanted = list(ctx.vars.nss)
    if g["nss_builtin"]:
        available |= {"files", "dns"}
    else:
        wanted += [s for s in ("files", "dns") if s not in wanted]
    for svc in wanted:
        lib = _find_lib(ctx.root, f"libnss_{svc}.so.2", g["libdir"])
        if lib is None:
            if svc not in available:
                missing.append(svc)
            continue
        modules.append(lib)
        available.add(svc)
    text = _read_text(ctx.root, "/etc/nsswitch.conf")
    dbs = _parse_nsswitch(text) if text else [(db, spec.split()) for db, spec in _NSS_DEFAULT]
    lines, placed = [], set()
    for db, tokens in dbs:
        kept: list[str] = []
        keep_action = False
        for tok in tokens:
            if tok.startswith("["):
                if keep_action:
                    kept.append(tok)
                continue
            keep_action = tok in available
            if keep_action:
                kept.append(tok)
                placed.add(tok)
        if not any(not t.startswith("[") for t in kept):
            kept = ["files", "dns"] if db == "hosts" else ["files"]
        lines.append([db, " ".join(kept)])
    return {
        "available": sorted(available),
        "lines": lines,
        # The same, aligned as Debian's own file, so the template needs no Jinja filter.
        "formatted": [f"{db + ':':<15} {services}" for db, services in lines],
        "modules": sorted(set(modules)),
        "missing": sorted(missing),
        "unplaced": sorted(set(ctx.vars.nss) - placed - set(missing)),
    }


def _parse_nsswitch(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        db, _, spec = line.partition(":")
        db = db.strip()
        if re.fullmatch(r"[a-z_]+", db):
            # "[!UNAVAIL=return]" style actions may contain spaces: rejoin them.
            out.append((db, re.findall(r"\[[^\]]*\]|[^\s\[]+", spec)))
    return out


# Users every image gets: root, nobody, and the distroless-style nonroot (65532).
_USERS = (
    {"name": "root", "uid": 0, "gid": 0, "gecos": "root", "home": "/root",
     "shell": "/sbin/nologin"},
    {"name": "nobody", "uid": 65534, "gid": 65534, "gecos": "nobody", "home": "/nonexistent",
     "shell": "/sbin/nologin"},
    {"name": "nonroot", "uid": 65532, "gid": 65532, "gecos": "nonroot", "home": "/home/nonroot",
     "shell": "/sbin/nologin"},
)
_GROUPS = ({"name": "root", "gid": 0}, {"name": "nonroot", "gid": 65532},
           {"name": "nogroup", "gid": 65534})


@probe
def image_users(ctx: ProbeContext) -> dict:
    """The accounts written to /etc/passwd and /etc/group (no password hashes anywhere):
    root, nobody and nonroot, then every account of the root the program needs, as the root
    has it: --user, each --account, the ids a traced run switched to or chowned files to
    (nginx's www-data, postgres) and the owners of kept entries. An account the root lacks
    is made: --account NAME[:UID[:GID]] as given (uid from 1000 up when not), --user NAME as
    uid 1000 (gid 1000, or GROUP's gid) with home /home/NAME, in `extra`."""
    users = [dict(u) for u in _USERS]
    groups = [dict(g, members="") for g in _GROUPS]
    src_users = _account_table(ctx.root, "/etc/passwd", 7)
    src_groups = _account_table(ctx.root, "/etc/group", 4)

    def add_group(fields) -> None:
        if all(g["gid"] != int(fields[2]) and g["name"] != fields[0] for g in groups):
            groups.append({"name": fields[0], "gid": int(fields[2]), "members": ""})

    def add_user(fields) -> dict | None:
        if any(u["uid"] == int(fields[2]) or u["name"] == fields[0] for u in users):
            return None
        u = {"name": fields[0], "uid": int(fields[2]), "gid": int(fields[3]), "gecos": fields[4],
             "home": fields[5] or "/", "shell": fields[6] or "/sbin/nologin"}
        users.append(u)
        for g in src_groups:
            if int(g[2]) == u["gid"]:
                add_group(g)
        return u

    wanted_uids, wanted_gids = set(), set()
    for rec in getattr(ctx.closure, "accounts", ()):
        if rec[0] == "uid":
            wanted_uids.add(rec[1])
        elif rec[0] == "gid":
            wanted_gids.add(rec[1])
    for e in ctx.closure.entries.values():
        if e.uid:
            wanted_uids.add(e.uid)
        if e.gid:
            wanted_gids.add(e.gid)
    for uid in sorted(wanted_uids):
        for f in src_users:
            if int(f[2]) == uid:
                add_user(f)
                break
    for gid in sorted(wanted_gids):
        for f in src_groups:
            if int(f[2]) == gid:
                add_group(f)
                break
    for rec in sorted((r for r in getattr(ctx.closure, "accounts", ()) if r[0] == "account"),
                      key=lambda r: r[1]):
        _, name, uid, gid = rec
        found = next((f for f in src_users if f[0] == name), None)
        if found is not None and uid in (None, int(found[2])):
            found = list(found)
            if gid is not None:
                found[3] = str(gid)
            add_user(found)
            continue
        uid = uid if uid is not None else _free_id({u["uid"] for u in users} | {int(f[2]) for f in src_users})
        gid = gid if gid is not None else uid
        add_user([name, "x", str(uid), str(gid), name, f"/home/{name}", "/sbin/nologin"])
        if all(g["gid"] != gid for g in groups):
            groups.append({"name": name, "gid": gid, "members": ""})
    name, _, group = ctx.vars.user.partition(":")
    extra = None
    if not name.isdigit() and name not in {u["name"] for u in users}:
        found = next((f for f in src_users if f[0] == name), None)
        if found is not None:
            add_user(found)
        else:
            gids = {g["name"]: g["gid"] for g in groups}
            gid = int(group) if group.isdigit() else gids.get(group, 1000)
            extra = {"name": name, "uid": 1000, "gid": gid, "gecos": name, "home": f"/home/{name}",
                     "shell": "/sbin/nologin"}
            users.append(extra)
            if gid == 1000:
                groups.append({"name": group or name, "gid": 1000, "members": ""})
    names = {u["name"] for u in users}
    for g in groups:            # members as the root lists them, of the accounts kept
        src = next((f for f in src_groups if f[0] == g["name"] and int(f[2]) == g["gid"]), None)
        if src is not None and not g["members"]:
            g["members"] = ",".join(m for m in src[3].split(",") if m in names)
    return {"users": users, "groups": groups, "extra": extra}


def _account_table(root: Root, ipath: str, width: int) -> list[list[str]]:
    """The root's passwd or group lines, split; malformed ones (wrong width, a non-numeric
    id, a newline-free but odd name) are skipped."""
    out = []
    for line in (_read_text(root, ipath) or "").splitlines():
        f = line.split(":")
        if len(f) != width or not f[0] or f[0].startswith(("#", "+", "-")) or not f[2].isdigit():
            continue
        if width == 7 and not f[3].isdigit():
            continue
        out.append(f)
    return out


def _free_id(taken: set[int], start: int = 1000) -> int:
    n = start
    while n in taken:
        n += 1
    return n


# gconv: charsets glibc's iconv loads from modules, not built in (UTF-8, UCS-2/4 and ASCII are).
@probe
def gconv_modules(ctx: ProbeContext, default=()) -> dict | None:
    """The gconv config files (gconv-modules, gconv-modules.d/*.conf, the cache) and the
    module files for `default` plus --gconv charsets, names resolved through the aliases in
    the config. `all` set when --gconv all was given: take the whole directory."""
    g = glibc(ctx)
    if g is None:
        return None
    gdir = g["gconv_dir"]
    if not ctx.root.is_dir(gdir):
        return {"dir": gdir, "all": False, "configs": [], "modules": [], "missing": []}
    configs = []
    if ctx.root.exists(posixpath.join(gdir, "gconv-modules")):
        configs.append(posixpath.join(gdir, "gconv-modules"))
    confd = posixpath.join(gdir, "gconv-modules.d")
    configs += [posixpath.join(confd, n) for n in ctx.root.listdir(confd) if n.endswith(".conf")]
    if ctx.root.exists(posixpath.join(gdir, "gconv-modules.cache")):
        configs.append(posixpath.join(gdir, "gconv-modules.cache"))
    want_all = "all" in ctx.vars.gconv
    aliases, modules = _gconv_config(ctx.root, gdir, tuple(c for c in configs if not c.endswith(".cache")))
    found, missing = set(), []
    for name in list(default) + [n for n in ctx.vars.gconv if n != "all"]:
        cs = name.upper().rstrip("/") + "//"
        cs = aliases.get(cs, cs)
        files = {f for f in modules.get(cs, ()) if ctx.root.is_file(f)}
        if files:
            found |= files
        else:
            missing.append(name)
    return {"dir": gdir, "all": want_all, "configs": configs,
            "modules": sorted(found), "missing": sorted(set(missing))}


_GCONV_MEMO: dict[tuple, tuple[dict, dict]] = {}


def _gconv_config(root: Root, gdir: str, configs: tuple[str, ...]) -> tuple[dict, dict]:
    """(alias -> charset, charset -> module files) from the gconv config files, read once
    per (files, sizes, mtimes): two thousand lines on Debian, for every libc program."""
    key = (gdir, tuple(_file_key(root, r.path) for r in map(root.try_resolve, configs) if r))
    if key in _GCONV_MEMO:
        return _GCONV_MEMO[key]
    aliases: dict[str, str] = {}
    modules: dict[str, set[str]] = {}
    for conf in configs:
        for line in (_read_text(root, conf) or "").splitlines():
            f = line.split("#", 1)[0].split()
            if len(f) >= 3 and f[0] == "alias":
                aliases.setdefault(f[1].upper(), f[2].upper())
            elif len(f) >= 4 and f[0] == "module":
                # Relative module names are relative to the gconv dir, for the files in
                # gconv-modules.d too (glibc passes the path element, not the .d dir).
                file = f[3] if f[3].startswith("/") else posixpath.join(gdir, f[3])
                for cs in (f[1].upper(), f[2].upper()):
                    if cs != "INTERNAL":
                        modules.setdefault(cs, set()).add(file + ".so")
    _GCONV_MEMO[key] = aliases, modules
    return aliases, modules


# -- locales, zones, terminfo ----------------------------------------------------------------

def _locale_names(name: str) -> list[str]:
    """The directory names glibc tries for a locale: as given, then with the codeset
    normalised (lower case, letters and digits only: UTF-8 -> utf8)."""
    out = [name]
    m = re.fullmatch(r"([^.@]+)\.([^@]+)(@.+)?", name)
    if m:
        norm = re.sub(r"[^a-z0-9]", "", m.group(2).lower())
        alt = f"{m.group(1)}.{norm}{m.group(3) or ''}"
        if alt != name:
            out.append(alt)
    return out


@probe
def locale_data(ctx: ProbeContext, always=("C.UTF-8",)) -> dict:
    """Locale directories for `always` plus --locale names. A locale found only inside
    locale-archive makes the whole archive come along (`archive`), named in `archived`;
    names found nowhere are in `missing`."""
    g = glibc(ctx)
    ldir = g["locale_dir"] if g else "/usr/lib/locale"
    archive = posixpath.join(ldir, "locale-archive")
    has_archive = ctx.root.is_file(archive)
    dirs, archived, missing = [], [], []
    for name in _dedup(list(always) + list(ctx.vars.locales)):
        hit = next((posixpath.join(ldir, n) for n in _locale_names(name)
                    if ctx.root.is_dir(posixpath.join(ldir, n))), None)
        if hit:
            dirs.append(hit)
        elif has_archive and name not in always:
            archived.append(name)
        elif name not in always:
            missing.append(name)
    alias = "/usr/share/locale/locale.alias"
    return {
        "dir": ldir,
        "dirs": dirs,
        "archive": archive if archived else None,
        "archived": archived,
        "missing": missing,
        "alias": alias if ctx.root.exists(alias) else None,
    }


@probe
def tz_data(ctx: ProbeContext) -> dict:
    """Zone files for --tz (also copied to /etc/localtime) and --tzdata (zones, areas, all)."""
    g = glibc(ctx)
    zdir = g["zoneinfo"] if g else "/usr/share/zoneinfo"
    files, trees, missing = [], [], []
    localtime = None
    if ctx.vars.tz:
        p = posixpath.join(zdir, ctx.vars.tz)
        if ctx.root.is_file(p):
            localtime = p
            files.append(p)
        else:
            missing.append(ctx.vars.tz)
    for z in ctx.vars.tzdata:
        p = zdir if z == "all" else posixpath.join(zdir, z)
        if ctx.root.is_dir(p):
            trees.append(p)
        elif ctx.root.is_file(p):
            files.append(p)
        else:
            missing.append(z)
    return {"dir": zdir, "localtime": localtime, "files": _dedup(files), "trees": _dedup(trees),
            "missing": missing}


_TERMINFO_DIRS = ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo")


@probe
def terminfo(ctx: ProbeContext, names=()) -> dict:
    """The compiled terminfo entry for each name, from the first directory of ncurses'
    compiled-in search list (read from libtinfo/libncurses) that has it."""
    lib = ctx.lib("libtinfo*.so*") or ctx.lib("libncurses*.so*")
    dirs: list[str] = []
    if lib is not None:
        lists = strings_with(ctx.root, lib, b"terminfo", r"/[^:]*terminfo(?::/[^:]*)+")
        if lists:
            dirs = lists[0].split(":")
    dirs = dirs or list(_TERMINFO_DIRS)
    paths, missing = [], []
    for name in names:
        hit = next((p for p in (posixpath.join(d, name[0], name) for d in dirs)
                    if ctx.root.is_file(p)), None)
        if hit:
            paths.append(hit)
        else:
            missing.append(name)
    return {"dirs": dirs, "paths": paths, "missing": missing}


# -- TLS ---------------------------------------------------------------------------------------



@probe
def openssl_dirs(ctx: ProbeContext) -> dict | None:
    """OPENSSLDIR, MODULESDIR and ENGINESDIR as compiled into libcrypto (the strings
    `OpenSSL_version(OPENSSL_DIR)` & co. print), and the files OpenSSL reads there."""
    lib = ctx.lib("libcrypto.so.*")
    if lib is None:
        return None
    found: dict[str, str] = {}
    for text in strings_with(ctx.root, lib, b'DIR: "', r'(?:OPENSSL|MODULES|ENGINES)DIR: "[^"]*"'):
        name, _, value = text.partition(": ")
        found.setdefault(name, value[1:-1])
    openssldir = found.get("OPENSSLDIR")
    if not openssldir:
        return None
    cafile = posixpath.join(openssldir, "cert.pem")
    return {
        "lib": lib,
        "openssldir": openssldir,
        "modulesdir": found.get("MODULESDIR"),
        "enginesdir": found.get("ENGINESDIR"),
        "cafile": cafile,
        "cnf": posixpath.join(openssldir, "openssl.cnf"),
        "capath": posixpath.join(openssldir, "certs"),
        "bundle": ctx.resolve(cafile),     # where cert.pem finally points, if it exists
    }


@probe
def gnutls_trust_store(ctx: ProbeContext) -> dict | None:
    """GnuTLS' default trust: the CA file compiled in (--with-default-trust-store-file) and
    whether it uses p11-kit's trust module instead (a pkcs11: URL naming p11-kit-trust)."""
    lib = ctx.lib("libgnutls.so.*")
    if lib is None:
        return None
    files = (strings_with(ctx.root, lib, b".crt", r"/\S*\.crt")
             + strings_with(ctx.root, lib, b".pem", r"/\S*\.pem"))
    pkcs11 = [x for x in strings_with(ctx.root, lib, b"pkcs11:", r"pkcs11:\S+") if "trust" in x]
    config = strings_with(ctx.root, lib, b"/etc/gnutls/", r"/etc/gnutls/\S+")
    # The compiled-in default is one path; other .crt/.pem strings would be help texts.
    existing = [f for f in _dedup(files) if ctx.root.is_file(f)]
    return {
        "lib": lib,
        "files": existing or _dedup(files)[:1],
        "pkcs11": pkcs11[0] if pkcs11 else None,
        "config": [c for c in _dedup(config) if ctx.root.exists(c)],
    }


@probe
def p11_kit_trust(ctx: ProbeContext) -> dict | None:
    """p11-kit's trust module: its .module config, the module itself and the anchor files
    it was built to read (--with-trust-paths, compiled into p11-kit-trust.so)."""
    lib = ctx.lib("libp11-kit.so.*")
    if lib is None:
        return None
    conf_dirs = [d for d in ("/usr/share/p11-kit/modules", "/etc/pkcs11/modules")
                 if ctx.root.is_dir(d)]
    configs, modules, anchors = [], [], []
    mod_dir = posixpath.join(posixpath.dirname(lib), "pkcs11")
    for d in conf_dirs:
        for name in ctx.root.listdir(d):
            conf = posixpath.join(d, name)
            text = _read_text(ctx.root, conf) or ""
            m = re.search(r"^\s*module:\s*(\S+)", text, re.M)
            if not m or "trust" not in m.group(1):
                continue
            configs.append(conf)
            mod = m.group(1) if m.group(1).startswith("/") else posixpath.join(mod_dir, m.group(1))
            real = ctx.resolve(mod)
            if real is None:
                continue
            modules.append(mod)
            for needle in (b".crt", b".pem", b"ca-trust-source", b"anchors"):
                for text in strings_with(ctx.root, real, needle, r"/[^\s]*"):
                    anchors += [p for p in text.split(":") if p.startswith("/") and ctx.root.exists(p)]
    if ctx.root.exists("/etc/pkcs11/pkcs11.conf"):
        configs.append("/etc/pkcs11/pkcs11.conf")
    anchors = _dedup(anchors)
    return {"configs": configs, "modules": modules,
            "anchors": [a for a in anchors if not ctx.root.is_dir(a)],
            "anchor_dirs": [a for a in anchors if ctx.root.is_dir(a)]}


# -- interpreters ------------------------------------------------------------------------------

_PY_VERSION = re.compile(r"python(\d+\.\d+)")
@probe
def python_paths(ctx: ProbeContext) -> dict | None:
    """The stdlib dir, lib-dynload and site dirs of the Python in the closure, read from the
    layout (closure.imports.pypath: pyvenv.cfg, the stdlib landmark, site.py), never by
    running it; for an embedded libpython, from the library's place and name."""
    from ..imports.pypath import python_env
    trig = ctx.trigger.path
    real = ctx.resolve(trig)
    if real is None:
        return None
    if not posixpath.basename(real).startswith("libpython"):
        env = python_env(ctx.root, trig)
        if env is None:
            return None
        return {"version": env.version, "stdlib": env.stdlib, "dynload": env.dynload,
                "site": list(env.site), "exe": env.real}
    return _python_layout(ctx, real, True)


def _python_layout(ctx: ProbeContext, real: str, is_lib: bool) -> dict | None:
    root = ctx.root
    m = _PY_VERSION.search(posixpath.basename(real)) or _PY_VERSION.search(ctx.trigger.name)
    d = posixpath.dirname(real)
    # bin/python3 -> PREFIX; lib/<triplet>/libpython or lib/libpython -> PREFIX
    prefixes = [posixpath.dirname(d)] if not is_lib else [posixpath.dirname(d), posixpath.dirname(posixpath.dirname(d))]
    versions = [m.group(1)] if m else []
    if not versions:
        for p in prefixes:
            for lib in ("lib", "lib64"):
                versions += sorted((n[len("python"):] for n in root.listdir(posixpath.join(p, lib))
                                    if re.fullmatch(r"python\d+\.\d+", n)), reverse=True)
    for ver in _dedup(versions):
        for p in prefixes:
            for lib in ("lib", "lib64"):
                stdlib = posixpath.join(p, lib, f"python{ver}")
                if root.is_file(posixpath.join(stdlib, "os.py")):
                    dyn = posixpath.join(stdlib, "lib-dynload")
                    site = [posixpath.join(p, "local", lib, f"python{ver}", "dist-packages"),
                            posixpath.join(p, lib, "python3", "dist-packages"),
                            posixpath.join(stdlib, "dist-packages"),
                            posixpath.join(stdlib, "site-packages")]
                    return {"version": ver, "stdlib": stdlib,
                            "dynload": dyn if root.is_dir(dyn) else None,
                            "site": [s for s in site if root.is_dir(s)], "exe": real}
    return None


# JDK libraries for desktops (X11, fonts, sound, images, smart cards): none of a server's
# business, and they pull X11, freetype and ALSA in.
_JDK_DESKTOP = ("libawt.so", "libawt_headless.so", "libawt_xawt.so", "libatk-wrapper.so", "libfontmanager.so", "libjawt.so",
                "libjsound.so", "libsplashscreen.so", "liblcms.so", "libjavajpeg.so",
                "libmlib_image.so", "libj2pcsc.so")


@probe
def jvm_home(ctx: ProbeContext) -> dict | None:
    """A JDK's home from its libjli.so (HOME/lib/libjli.so), the VM its jvm.cfg names first
    (-server KNOWN -> lib/server with libjvm.so), its cacerts, and the lib/*.so the JDK
    loads by name (System.loadLibrary: libnio, libnet, libzip, ...), desktop ones left out."""
    lib = ctx.lib("libjli.so")
    if lib is None or posixpath.basename(posixpath.dirname(lib)) != "lib":
        return None
    home = posixpath.dirname(posixpath.dirname(lib))
    vm = None
    for line in (_read_text(ctx.root, f"{home}/lib/jvm.cfg") or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("-") and parts[1] == "KNOWN":
            if ctx.root.is_file(f"{home}/lib/{parts[0][1:]}/libjvm.so"):
                vm = f"{home}/lib/{parts[0][1:]}"
                break
    if vm is None:
        return None
    libs = [f"{home}/lib/{n}" for n in ctx.root.listdir(f"{home}/lib")
            if n.endswith(".so") and n not in _JDK_DESKTOP and ctx.root.is_file(f"{home}/lib/{n}")]
    cacerts = f"{home}/lib/security/cacerts"
    return {"home": home, "vm": vm, "libs": libs,
            "cacerts": cacerts if ctx.root.exists(cacerts) or ctx.root.lstat(cacerts) else None}


@probe
def perl_inc(ctx: ProbeContext) -> dict | None:
    """Perl's @INC, never by running perl: the absolute library dirs compiled into the perl
    binary / libperl, put in perl's own order with the dirs Config.pm names (sitearch,
    sitelib, vendorarch, vendorlib, then others such as Debian's perl-base, archlib,
    privlib); /etc dirs (APPLLIB) first, site_perl last."""
    real = ctx.resolve(ctx.trigger.path)
    if real is None:
        return None
    found: list[str] = []
    libperl = ctx.find_entry("libperl.so*")
    for obj in (real, libperl):
        if obj is None:
            continue
        for text in strings_with(ctx.root, obj, b"perl", r"/[A-Za-z0-9_./+-]*perl[A-Za-z0-9_./+-]*"):
            if "/debug/" not in text and not text.endswith((".so", ".debug")):
                found.append(text)
    found = [d for d in _dedup(found) if ctx.root.is_dir(d)]
    cfg = _perl_config(ctx.root, found)
    first = [d for d in found if d.startswith("/etc/")]
    last = [d for d in found if "site_perl" in d]
    head = [cfg[k] for k in ("sitearchexp", "sitelibexp", "vendorarchexp", "vendorlibexp") if k in cfg]
    tail = [cfg[k] for k in ("archlibexp", "privlibexp") if k in cfg]
    middle = [d for d in found if d not in first + last + head + tail]
    inc = [d for d in _dedup(first + head + middle + tail + last) if ctx.root.is_dir(d)]
    return {"inc": inc, "exe": real} if inc else None


_PERL_CFG = re.compile(r"^\s*(\w+exp)\s*=>?\s*'([^']*)'", re.M)


def _perl_config(root: Root, dirs: list[str]) -> dict[str, str]:
    """The *exp install dirs of Config.pm (and Config_heavy.pl), from the first dir that
    holds Config.pm."""
    for d in dirs:
        out: dict[str, str] = {}
        for name in ("Config.pm", "Config_heavy.pl"):
            for k, v in _PERL_CFG.findall(_read_text(root, posixpath.join(d, name)) or ""):
                if v.startswith("/"):
                    out.setdefault(k, v)
        if out:
            return out
    return {}


@probe
def perl_modules(ctx: ProbeContext, modules=()) -> dict | None:
    """Files for Perl modules (`POSIX`, `Carp::Heavy`, or a file like `Config_heavy.pl`),
    each from the first @INC dir holding it, plus the XS parts under auto/ (POSIX.so)."""
    inc_info = perl_inc(ctx)
    if inc_info is None:
        return None
    inc = inc_info["inc"]
    files, missing = [], []
    for mod in modules:
        rel = mod if mod.endswith((".pm", ".pl")) else mod.replace("::", "/") + ".pm"
        hit = next((posixpath.join(d, rel) for d in inc if ctx.root.is_file(posixpath.join(d, rel))), None)
        if hit is None:
            missing.append(mod)
            continue
        files.append(hit)
        if rel.endswith(".pm"):
            auto = "auto/" + rel[:-3]
            adir = next((posixpath.join(d, auto) for d in inc if ctx.root.is_dir(posixpath.join(d, auto))), None)
            if adir:
                files += [posixpath.join(adir, n) for n in ctx.root.listdir(adir)
                          if ctx.root.is_file(posixpath.join(adir, n))]
    return {"inc": inc, "files": _dedup(files), "missing": missing}


def _dedup(values) -> list:
    """First occurrences, in order."""
    return list(dict.fromkeys(values))

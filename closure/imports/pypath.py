"""A Python interpreter's sys.path, computed from files, never by running it.

Running the interpreter being analysed would run whatever that file is (ldd's own warning):
the answer is read from the layout instead, as CPython's getpath and site.py compute it —
the venv's pyvenv.cfg, the stdlib landmark (lib/pythonX.Y/os.py) above the executable, the
site dirs site.py names (Debian's dist-packages when its site.py says so), the extension
suffix from the _sysconfigdata file, and the .pth files of those site dirs only.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..errors import ClosureError
from ..root import Root

_VERSION = re.compile(r"python(\d+\.\d+)")
_EXT_SUFFIX = re.compile(rb"'EXT_SUFFIX':\s*'([^']+)'")


@dataclass(frozen=True)
class PyEnv:
    exe: str                     # the interpreter as the program names it (a venv's bin/python)
    real: str                    # the binary it resolves to
    version: str                 # "3.11"
    prefix: str                  # where lib/pythonX.Y is
    stdlib: str
    dynload: str | None
    site: tuple[str, ...]        # site dirs in sys.path order (a venv's own first)
    venv: str | None             # the venv dir (holding pyvenv.cfg)
    pth: tuple[str, ...]         # .pth files site.py reads at start, of those site dirs
    pth_imports: tuple[tuple[str, str], ...]   # (.pth file, its `import ...` line)
    path: tuple[str, ...]        # sys.path after the script's dir
    ext_suffixes: tuple[str, ...]

    @property
    def own_site(self) -> tuple[str, ...]:
        """The site dirs that are the program's own tree (its venv's), not the system's."""
        return tuple(s for s in self.site if self.venv and s.startswith(self.venv + "/"))


def read(root: Root, path: str) -> bytes | None:
    """A file's bytes, None when it is missing, no regular file (a FIFO would block the
    read) or unreadable (a looping link)."""
    try:
        if not root.is_file(path):
            return None
        return root.read_bytes(path)
    except (ClosureError, OSError):
        return None


def read_cfg(root: Root, path: str) -> dict[str, str]:
    """pyvenv.cfg: `key = value` lines (keys lower-cased, as site.py reads them)."""
    out = {}
    text = (read(root, path) or b"").decode("utf-8", "replace")
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            out[key.strip().lower()] = value.strip()
    return out


def find_venv(root: Root, exe: str) -> str | None:
    """The venv an executable belongs to: pyvenv.cfg beside it or one level up (getpath)."""
    d = posixpath.dirname(exe)
    for cand in (d, posixpath.dirname(d)):
        if root.is_file(posixpath.join(cand, "pyvenv.cfg")):
            return cand
    return None


def python_env(root: Root, exe: str) -> PyEnv | None:
    """The sys.path of the interpreter `exe` (an image path), or None when its stdlib is not
    found in the root."""
    res = root.try_resolve(exe)
    if res is None:
        return None
    real = res.path
    venv = find_venv(root, exe)
    cfg = read_cfg(root, posixpath.join(venv, "pyvenv.cfg")) if venv else {}
    if venv and cfg.get("home") and not root.is_file(real):
        real = posixpath.join(cfg["home"], posixpath.basename(exe))
    versions = []
    for text in (cfg.get("version_info", ""), cfg.get("version", "")):
        m = re.match(r"(\d+\.\d+)", text)
        if m:
            versions.append(m.group(1))
    for name in (posixpath.basename(real), posixpath.basename(exe)):
        m = _VERSION.search(name)
        if m:
            versions.append(m.group(1))
    found = _find_stdlib(root, posixpath.dirname(real), versions)
    if found is None:
        return None
    prefix, libdir, version = found
    stdlib = posixpath.join(prefix, libdir, f"python{version}")
    dynload = posixpath.join(stdlib, "lib-dynload")
    dynload = dynload if root.is_dir(dynload) else None
    site: list[str] = []
    if venv:
        for lib in ("lib", "lib64"):
            site.append(posixpath.join(venv, lib, f"python{version}", "site-packages"))
    if not venv or cfg.get("include-system-site-packages", "false").lower() == "true":
        site += _system_site(root, prefix, stdlib, version)
    site = _dedup_real(root, [s for s in site if root.is_dir(s)])
    pth, imports, extra = _pth(root, site)
    zipped = posixpath.join(prefix, libdir, f"python{version.replace('.', '')}.zip")
    path = [zipped, stdlib] + ([dynload] if dynload else [])
    for s in site:
        path.append(s)
        path += extra.get(s, [])
    return PyEnv(exe=exe, real=real, version=version, prefix=prefix, stdlib=stdlib,
                 dynload=dynload, site=tuple(site), venv=venv, pth=tuple(pth),
                 pth_imports=tuple(imports), path=tuple(dict.fromkeys(path)),
                 ext_suffixes=_ext_suffixes(root, stdlib, version))


def _find_stdlib(root: Root, bindir: str, versions: list[str]):
    """(prefix, libdir, version): getpath's landmark search, upwards from the binary's dir."""
    d = bindir
    while True:
        for lib in ("lib", "lib64"):
            cands = list(dict.fromkeys(versions)) or sorted(
                (n[len("python"):] for n in root.listdir(posixpath.join(d, lib))
                 if re.fullmatch(r"python\d+\.\d+", n)), reverse=True)
            for ver in cands:
                if root.is_file(posixpath.join(d, lib, f"python{ver}", "os.py")):
                    return d, lib, ver
        if d == "/":
            return None
        d = posixpath.dirname(d)


def _system_site(root: Root, prefix: str, stdlib: str, version: str) -> list[str]:
    """The base interpreter's site dirs, as its own site.py names them."""
    site_py = read(root, posixpath.join(stdlib, "site.py")) or b""
    if b'"dist-packages"' in site_py:   # Debian's patched site.py
        return [posixpath.join(prefix, "local/lib", f"python{version}", "dist-packages"),
                posixpath.join(prefix, "lib", "python3", "dist-packages"),
                posixpath.join(prefix, "lib", f"python{version}", "dist-packages")]
    return [posixpath.join(prefix, lib, f"python{version}", "site-packages") for lib in ("lib", "lib64")]


def _dedup_real(root: Root, dirs: list[str]) -> list[str]:
    seen, out = set(), []
    for d in dirs:
        real = root.resolve(d).path
        if real not in seen:
            seen.add(real)
            out.append(d)
    return out


def _pth(root: Root, site: list[str]):
    """site.py's .pth handling: sorted names per dir; `import` lines run (kept to analyse),
    other lines name dirs (relative to the site dir) added when they exist."""
    files, imports, extra = [], [], {}
    for s in site:
        for name in root.listdir(s):
            if not name.endswith(".pth") or name.startswith("."):
                continue
            p = posixpath.join(s, name)
            if not root.is_file(p):
                continue
            files.append(p)
            text = (read(root, p) or b"").decode("utf-8", "replace")
            for line in text.splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                if line.startswith(("import ", "import\t")):
                    imports.append((p, line))
                    continue
                d = posixpath.normpath(posixpath.join(s, line.rstrip()))
                if root.is_dir(d):
                    extra.setdefault(s, []).append(d)
    return files, imports, extra


def _ext_suffixes(root: Root, stdlib: str, version: str) -> tuple[str, ...]:
    """importlib.machinery.EXTENSION_SUFFIXES: EXT_SUFFIX from the sysconfig data file."""
    suffixes = []
    for name in root.listdir(stdlib):
        if name.startswith("_sysconfigdata_") and name.endswith(".py"):
            m = _EXT_SUFFIX.search(read(root, posixpath.join(stdlib, name)) or b"")
            if m:
                suffixes.append(m.group(1).decode())
    if not suffixes:
        suffixes.append(f".cpython-{version.replace('.', '')}-x86_64-linux-gnu.so")
    return tuple(dict.fromkeys(suffixes + [".abi3.so", ".so"]))

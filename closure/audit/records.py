"""The package database an image carries, so scanners (syft, grype, trivy) and
`closure sbom IMAGE` still see which packages its files came from.

closure images hold parts of packages, not whole ones, so dpkg's own `status` + `info/`
layout would lie. The distroless layout fits: one record per package under
`/var/lib/dpkg/status.d/<package>` (the package's dpkg status stanza) and
`/var/lib/dpkg/status.d/<package>.md5sums` listing exactly the package's regular files that
are in the image, by their image paths. Each package's `/usr/share/doc/<pkg>/copyright`
is copied too: it is where scanners read licenses from, and shipping a GPL binary without
its license is not allowed anyway.

An Alpine root's packages get apk's own database instead, `/lib/apk/db/installed`
(scanners read nothing else there), with each package's block cut down to the files the
image holds; its L: field carries the license.
"""
from __future__ import annotations

import hashlib
import posixpath

from ..model import Closure, Reason, excluded
from ..root import Root
from . import deb822
from .packages import APK_INSTALLED, STATUS_D, Package, PackageDB
from .tree import RootTree

RECIPE = "package-records"
# Fields that describe the host's installation state, not the package in the image.
_DROP = frozenset({"status", "conffiles", "config-version", "triggers-pending", "triggers-awaited"})


def _copied(closure: Closure) -> dict[str, str]:
    """image path -> path in the root, for files and links copied from the root."""
    out = {}
    for e in closure.entries.values():
        if e.content is not None or e.type == "dir":
            continue
        out[e.path] = e.source if e.type == "file" and e.source else e.path
    return out


def owned_packages(closure: Closure, db: PackageDB) -> dict[str, list[str]]:
    """package key -> image paths (files and links) of the closure it owns, sorted."""
    copied = _copied(closure)
    # license_files() asks next for /usr/share/doc/<pkg>[/copyright]: index those names
    # in the same pass over the file lists.
    also = frozenset({"copyright"} | {p.name for p in db.packages.values()})
    owners = db.owners_of(sorted(set(copied.values())), also=also)
    out: dict[str, list[str]] = {}
    for ipath in sorted(copied):
        for o in owners[copied[ipath]]:
            out.setdefault(o.package.key, []).append(ipath)
    return out


def record_stanza(pkg: Package) -> bytes:
    fields = [("Package", pkg.name), ("Status", "install ok installed")]
    fields += [(k, v) for k, v in pkg.record if k.lower() not in _DROP and k.lower() != "package"]
    return deb822.format_stanza(fields).encode("utf-8", "surrogateescape")


def _md5(root: Root, closure: Closure, ipath: str) -> str:
    entry = closure.entries[ipath]
    with root.open(root.resolve(entry.source or ipath).path) as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _record_names(keys: list[str], db: PackageDB) -> dict[str, str]:
    # Named by package; a name installed for two architectures gets the arch appended.
    count: dict[str, int] = {}
    for k in keys:
        count[db.packages[k].name] = count.get(db.packages[k].name, 0) + 1
    return {k: db.packages[k].name if count[db.packages[k].name] == 1
            else f"{db.packages[k].name}_{db.packages[k].architecture}" for k in keys}


def package_records(closure: Closure, root: Root, db: PackageDB | None = None) -> list[tuple[str, bytes]]:
    """(image path, bytes) of the status.d records for every deb package owning a file or
    link of the closure; [] when the root has no dpkg database."""
    db = db or PackageDB(RootTree(root))
    owned = owned_packages(closure, db)
    keys = sorted(k for k in owned if db.packages[k].kind == "deb")
    names = _record_names(keys, db)
    out: list[tuple[str, bytes]] = []
    for key in keys:
        pkg = db.packages[key]
        base = f"{STATUS_D}/{names[key]}"
        out.append((base, record_stanza(pkg)))
        files = [p for p in owned[key] if closure.entries[p].type == "file"]
        md5 = "".join(f"{_md5(root, closure, p)}  {p.lstrip('/')}\n" for p in files)
        out.append((base + ".md5sums", md5.encode("utf-8", "surrogateescape")))
    return out


def apk_installed(closure: Closure, db: PackageDB) -> bytes | None:
    """/lib/apk/db/installed for the apk packages owning part of the closure, each block
    listing only its files in the image; None when no apk package owns any."""
    owned = owned_packages(closure, db)
    keys = sorted(k for k in owned if db.packages[k].kind == "apk")
    if not keys:
        return None
    blocks = [_apk_block(db.packages[k].record, set(owned[k]), db.tree.real_dir) for k in keys]
    return "".join(blocks).encode("utf-8", "surrogateescape")


def _apk_block(record, keep: set[str], real_dir) -> str:
    """One package's block: its fields, then each F: directory (with its M: line) that
    holds a kept R: file, the file's a: and Z: lines following it, as apk writes them."""
    out: list[tuple[str, str]] = []
    folder: list[tuple[str, str]] = []     # the current F: (and M:), not written yet
    cur, kept = "", False
    for k, v in record:
        if k == "F":
            cur, folder, kept = v, [(k, v)], False
        elif k == "M":
            folder.append((k, v))
        elif k == "R":
            kept = real_dir("/" + cur).rstrip("/") + "/" + v in keep
            if kept:
                out += folder
                folder = []
                out.append((k, v))
        elif k in ("a", "Z"):
            if kept:
                out.append((k, v))
        else:
            out.append((k, v))
    return "".join(f"{k}:{v}\n" for k, v in out) + "\n"


def license_files(closure: Closure, db: PackageDB) -> list[tuple[str, str]]:
    """(copyright path, first owned path) for every deb package owning part of the closure
    whose copyright file exists in the root and is not in the closure yet."""
    out = []
    for key, paths in sorted(owned_packages(closure, db).items()):
        pkg = db.packages[key]
        path = f"/usr/share/doc/{pkg.name}/copyright"
        if pkg.kind == "deb" and path not in closure.entries and db.tree.read_bytes(path) is not None:
            out.append((path, paths[0]))
    return sorted(set(out))


def add_package_records(collector, copyright: bool = True) -> None:
    """Add the records (and, unless copyright=False, the copyright files) to the
    collector's closure. Call once the closure is otherwise final (Collector.finish does,
    after the excludes and before the parent directories)."""
    closure, root = collector.closure, collector.root
    db = PackageDB(RootTree(root))
    if not db.found:
        return
    if copyright:
        for path, by in license_files(closure, db):
            if not excluded(path, collector.opts.excludes):
                collector.add_path(path, Reason("recipe", by=by, recipe=RECIPE))
    for ipath, data in package_records(closure, root, db):
        name = posixpath.basename(ipath).removesuffix(".md5sums")
        collector.add_generated(ipath, data, 0o644, Reason("generated", recipe=RECIPE, name=name))
    installed = apk_installed(closure, db)
    if installed is not None:
        collector.add_generated(APK_INSTALLED, installed, 0o644, Reason("generated", recipe=RECIPE, name="apk"))

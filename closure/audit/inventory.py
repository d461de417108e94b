"""What an image holds, whatever it came from: a Closure about to be built (with its
Root), a built image (OCI layout or archive, docker-archive), a rootfs directory, or an
`analyze --json` document. The audit commands (sbom, diff, report, inspect,
analyze --by-package) all work on this one shape.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import tarfile
from dataclasses import dataclass, field

from ..errors import BadInput, read_input
from ..model import Closure, Reason
from ..root import Root
from .packages import Owner, PackageDB
from .tree import FileTree, RootTree

HASH_READ = 1 << 20


@dataclass(frozen=True)
class Item:
    path: str
    type: str                            # file | symlink | dir | other
    mode: int = 0o755
    size: int = 0
    target: str | None = None
    sha256: str | None = None
    sha1: str | None = None
    origin: str | None = None            # where the package database knows it (root path)
    generated: bool = False              # bytes made by closure, owned by no package
    reasons: tuple[Reason, ...] = ()


@dataclass
class Inventory:
    kind: str                            # closure | image | rootfs | analysis
    name: str                            # what to call it in reports
    items: dict[str, Item]
    tree: FileTree | None = None         # where the package database is read from
    image: dict | None = None            # image facts: reference, digests, config, layers
    packages_json: dict | None = None    # an analysis' own "packages" section, when it has one
    warnings: list[str] = field(default_factory=list)   # what analysing the closure warned about
    reasons_from: str | None = None      # the analysis attach_reasons took reasons from
    _db: PackageDB | None = field(default=None, repr=False)
    _owners: dict[str, tuple[Owner, ...]] | None = field(default=None, repr=False)

    def sorted_items(self) -> list[Item]:
        return [self.items[p] for p in sorted(self.items)]

    @property
    def total_bytes(self) -> int:
        return sum(i.size for i in self.items.values() if i.type == "file")

    @property
    def db(self) -> PackageDB | None:
        if self._db is None and self.tree is not None:
            self._db = PackageDB(self.tree)
        return self._db

    def owners(self) -> dict[str, tuple[Owner, ...]]:
        """image path -> owning packages, for files and links copied from packages."""
        if self._owners is None:
            db = self.db
            wanted = {i.path: i.origin or i.path for i in self.items.values()
                      if i.type in ("file", "symlink") and not i.generated}
            found = db.owners_of(sorted(set(wanted.values()))) if db is not None and db.found else {}
            self._owners = {p: found.get(o, ()) for p, o in wanted.items()}
        return self._owners


# -- from a Closure ---------------------------------------------------------------------------

def _hashes(f) -> tuple[str, str]:
    h256, h1 = hashlib.sha256(), hashlib.sha1()
    while chunk := f.read(HASH_READ):
        h256.update(chunk)
        h1.update(chunk)
    return h256.hexdigest(), h1.hexdigest()


def from_closure(closure: Closure, root: Root, *, hashes: bool = True, name: str | None = None) -> Inventory:
    items = {}
    for e in closure.sorted_entries():
        sha256 = sha1 = None
        origin = e.path
        size = e.size
        if e.type == "file":
            if e.content is not None:
                size = len(e.content)
                if hashes:
                    sha256, sha1 = hashlib.sha256(e.content).hexdigest(), hashlib.sha1(e.content).hexdigest()
            else:
                origin = root.resolve(e.source or e.path).path
                st = root.lstat(origin)
                size = st.st_size if st is not None else size
                if hashes:
                    with root.open(origin) as f:
                        sha256, sha1 = _hashes(f)
        items[e.path] = Item(e.path, e.type, e.mode & 0o7777, size if e.type == "file" else 0,
                             e.target, sha256, sha1, origin, e.content is not None, tuple(e.reasons))
    return Inventory("closure", name or " ".join(closure.targets) or "closure", items, RootTree(root),
                     warnings=list(closure.warnings))


# -- from an image ----------------------------------------------------------------------------

def from_image(path: str, ref: str | None = None) -> Inventory:
    from ..image.read import open_image
    from .imagefs import ImageFS
    with open_image(path, ref) as img:
        fs = ImageFS.read(img)
        facts = {
            "path": img.path, "format": img.format, "reference": img.reference,
            "names": list(img.names), "manifest_digest": img.manifest_digest,
            "config_digest": img.config_digest, "config": img.config,
            "layers": [{"index": layer.index, "digest": layer.digest, "size": layer.size,
                        "diff_id": layer.diff_id, "media_type": layer.media_type}
                       for layer in img.layers],
        }
    reasons = _image_reasons(facts["config"])
    items = {}
    for p in sorted(fs.nodes):
        if p == "/":
            continue
        n = fs.nodes[p]
        items[p] = Item(p, n.type, n.mode, n.size if n.type == "file" else 0, n.target,
                        n.sha256, n.sha1, p, reasons=reasons.get(p, ()))
    return Inventory("image", img.reference or os.path.basename(path.rstrip("/")), items, fs, facts)


def _image_reasons(config: dict) -> dict:
    """The reasons `closure build` and `slim` record in the image's config label, if any."""
    from ..image.reasons import LABEL, decode
    labels = (config.get("config") or {}).get("Labels") or {}
    return decode(labels[LABEL]) if LABEL in labels else {}


def from_rootfs(path: str, *, hashes: bool = True) -> Inventory:
    """A plain directory tree (closure build --format rootfs, an unpacked image)."""
    root = Root(path)
    items = {}
    stack = ["/"]
    while stack:
        d = stack.pop()
        for name in root.listdir(d):
            p = (d.rstrip("/") + "/" + name)
            st = root.lstat(p)
            if st is None:
                continue
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                items[p] = Item(p, "dir", mode, origin=p)
                stack.append(p)
            elif stat.S_ISLNK(st.st_mode):
                items[p] = Item(p, "symlink", 0o777, target=root.readlink(p), origin=p)
            elif stat.S_ISREG(st.st_mode):
                sha256 = sha1 = None
                if hashes:
                    with root.open(p) as f:
                        sha256, sha1 = _hashes(f)
                items[p] = Item(p, "file", mode, st.st_size, sha256=sha256, sha1=sha1, origin=p)
            else:
                items[p] = Item(p, "other", mode, origin=p)
    return Inventory("rootfs", os.path.basename(os.path.abspath(path)), dict(sorted(items.items())),
                     RootTree(root))


def read_analysis(path: str, label: str | None = None) -> tuple[dict, Closure]:
    """(the document, its Closure) of an `analyze --json` file; BadInput, named by label
    (default: the path), when it is not one."""
    label = label or path
    data = read_input(path, label)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise BadInput(f"{label}: not an analysis JSON document ({e})") from None
    except RecursionError:
        raise BadInput(f"{label}: not an analysis JSON document (nested too deeply)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise BadInput(f"{label}: not an analysis JSON document (no entries list)")
    try:
        return doc, Closure.from_json(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BadInput(f"{label}: malformed analysis entry ({e})") from None


def from_analysis(path: str) -> Inventory:
    """An `analyze --json` document (reasons and sizes; no hashes, no package database
    unless it was written with --by-package)."""
    doc, closure = read_analysis(path)
    items = {}
    for e in closure.sorted_entries():
        sha256 = hashlib.sha256(e.content).hexdigest() if e.content is not None else None
        items[e.path] = Item(e.path, e.type, e.mode & 0o7777, e.size if e.type == "file" else 0,
                             e.target, sha256, generated=e.content is not None, reasons=tuple(e.reasons))
    pk = doc.get("packages") if isinstance(doc.get("packages"), dict) else None
    return Inventory("analysis", " ".join(closure.targets) or os.path.basename(path), items,
                     packages_json=pk)


def attach_reasons(inv: Inventory, analysis: Inventory, label: str) -> None:
    """Give an image's items the reasons an analysis of the same closure (named by label)
    recorded, in place of those the image's own label gave."""
    inv.reasons_from = label
    for path, item in inv.items.items():
        # The analysis asked for wins over the reasons label the image carries.
        other = analysis.items.get(path)
        inv.items[path] = dataclasses.replace(item, reasons=other.reasons if other is not None else ())


# -- choosing ---------------------------------------------------------------------------------

def looks_like_image(path: str) -> bool:
    if os.path.isdir(path):
        return any(os.path.exists(os.path.join(path, n)) for n in ("index.json", "manifest.json", "repositories"))
    if os.path.isfile(path):
        try:
            return tarfile.is_tarfile(path)
        except OSError:
            return False
    return False


def kind_of(arg: str) -> str:
    """image | rootfs | analysis | target, for a command-line argument."""
    if looks_like_image(arg):
        return "image"
    if os.path.isdir(arg):
        return "rootfs"
    if os.path.isfile(arg) and arg.endswith(".json"):
        return "analysis"
    return "target"

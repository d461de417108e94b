"""Which installed package owns each path of a root, with versions and licenses.

Reads, whichever the root has:
- dpkg: `var/lib/dpkg/status`, `info/<pkg>[:<arch>].list`, `diversions`;
- distroless-style records: `var/lib/dpkg/status.d/<pkg>` (+ `<pkg>.md5sums`), which is
  also what closure writes into the images it builds (see records.py);
- Alpine apk: `lib/apk/db/installed`.

Paths in the databases are spelled as the packages ship them; on a merged-/usr system
`/lib/x86_64-linux-gnu/libc.so.6` is really `/usr/lib/...`. Every recorded path is mapped
through the root's directory links (its parent resolved, its own name kept, so a package's
symlink stays that symlink), which is how closure spells image paths too. The path index
is built once per database, on the first lookup.
"""
from __future__ import annotations

import fnmatch
import posixpath
import urllib.parse
from dataclasses import dataclass, field

from . import deb822, licenses
from .tree import FileTree

DPKG = "var/lib/dpkg"
STATUS_D = "/var/lib/dpkg/status.d"
APK_INSTALLED = "/lib/apk/db/installed"
_LIVE = frozenset({"installed", "half-configured", "unpacked", "half-installed",
                   "triggers-awaited", "triggers-pending"})

# Top-level links made by merging /usr (usrmerge, debootstrap): packages list these names
# as the directories they shipped, so a package listing /lib does not own the link /lib.
MERGED_USR_LINKS = frozenset({"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/libo32"})

# Files no package ships but a maintainer script writes from the package's data. dpkg
# does not record them; without this the CA bundle would be "unowned" in every image.
# (glob on the real path, package that generates it, what does)
GENERATED_BY = (
    ("/etc/ssl/certs/ca-certificates.crt", "ca-certificates", "update-ca-certificates"),
    ("/etc/ssl/certs/*.pem", "ca-certificates", "update-ca-certificates"),
    ("/etc/ssl/certs/[0-9a-f]*.[0-9]", "ca-certificates", "update-ca-certificates"),
    ("/etc/ssl/certs/java/cacerts", "ca-certificates-java", "update-ca-certificates"),
    ("/etc/ld.so.cache", "libc-bin", "ldconfig"),
    ("/usr/lib/locale/locale-archive", "locales", "locale-gen"),
    ("/etc/alternatives/*", "dpkg", "update-alternatives"),
)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str = ""
    kind: str = "deb"                 # deb | apk
    source: str = ""                  # source package name ("" when the same as name)
    source_version: str = ""
    maintainer: str = ""
    homepage: str = ""
    description: str = ""             # the one-line synopsis
    license_text: str = ""            # apk's L: field (deb licenses come from copyright files)
    record: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @property
    def key(self) -> str:
        """Unique within a root: Multi-Arch: same packages exist once per architecture."""
        return f"{self.name}:{self.architecture}" if self.architecture else self.name

    def purl(self, distro: "Distro | None" = None) -> str:
        """The package URL (purl spec: deb and apk types, version percent-encoded)."""
        ns = (distro.id if distro and distro.id else ("debian" if self.kind == "deb" else "alpine"))
        q = []
        if self.architecture:
            q.append("arch=" + urllib.parse.quote(self.architecture, safe=""))
        if distro and distro.id and distro.version_id:
            q.append("distro=" + urllib.parse.quote(f"{distro.id}-{distro.version_id}", safe=""))
        if self.source and self.source != self.name:
            up = self.source + (f"@{self.source_version}" if self.source_version else "")
            q.append("upstream=" + urllib.parse.quote(up, safe=""))
        name = urllib.parse.quote(self.name, safe="")
        # purl-spec: ':' is never encoded (an epoch reads 1:2.38-5, not 1%3A2.38-5).
        ver = urllib.parse.quote(self.version, safe=":")
        return f"pkg:{self.kind}/{ns}/{name}@{ver}" + ("?" + "&".join(q) if q else "")


    def depends(self) -> tuple[tuple[str, ...], ...]:
        """What the package declares it needs, one tuple of alternatives each: dpkg's
        Pre-Depends and Depends (versions and :arch qualifiers dropped), apk's D: names
        (so:/cmd:/pc: provider names dropped: they name files, not packages)."""
        out = []
        if self.kind == "deb":
            for k, v in self.record:
                if k.lower() in ("pre-depends", "depends"):
                    for clause in v.split(","):
                        alts = tuple(a.strip().split(" ", 1)[0].split("(", 1)[0].split(":", 1)[0]
                                     for a in clause.split("|"))
                        if all(alts):
                            out.append(alts)
        else:
            for k, v in self.record:
                if k == "D":
                    out += [(d.split("=", 1)[0].split(">", 1)[0].split("<", 1)[0].split("~", 1)[0],)
                            for d in v.split() if ":" not in d and not d.startswith("!")]
        return tuple(out)


@dataclass(frozen=True)
class Owner:
    package: Package
    via: str          # dpkg-list | md5sums | apk | maintainer-script


@dataclass(frozen=True)
class Distro:
    id: str = ""
    version_id: str = ""
    pretty_name: str = ""


def read_os_release(tree: FileTree) -> Distro:
    data = tree.read_bytes("/etc/os-release") or tree.read_bytes("/usr/lib/os-release")
    if not data:
        return Distro()
    vals = {}
    for line in data.decode("utf-8", "replace").splitlines():
        k, eq, v = line.partition("=")
        if eq:
            vals[k.strip()] = v.strip().strip("'\"")
    return Distro(vals.get("ID", ""), vals.get("VERSION_ID", ""), vals.get("PRETTY_NAME", ""))


def _split_source(value: str, version: str) -> tuple[str, str]:
    # "Source: openssl (3.0.11-1)" names the source version when it differs.
    name, _, rest = value.partition(" ")
    rest = rest.strip()
    if rest.startswith("(") and rest.endswith(")"):
        return name, rest[1:-1]
    return name, version if name else ""


def _deb_package(stanza: dict[str, str]) -> Package | None:
    name = deb822.field(stanza, "Package")
    version = deb822.field(stanza, "Version")
    if not name or not version:
        return None
    src, src_ver = _split_source(deb822.field(stanza, "Source"), version)
    return Package(
        name=name, version=version, architecture=deb822.field(stanza, "Architecture"),
        kind="deb", source=src, source_version=src_ver,
        maintainer=deb822.field(stanza, "Maintainer"), homepage=deb822.field(stanza, "Homepage"),
        description=deb822.field(stanza, "Description").split("\n", 1)[0],
        record=tuple(stanza.items()))


class PackageDB:
    """The packages installed in a tree and who owns which path.

    Ownership is looked up for the paths asked (an image holds a few hundred; a full
    Debian root lists ~100k paths): one pass over the file lists keeps only lines whose
    last component is a wanted name, and maps just those through the root's links."""

    def __init__(self, tree: FileTree):
        self.tree = tree
        self.packages: dict[str, Package] = {}        # key -> Package
        self.formats: list[str] = []                  # which databases were found
        # key -> where its file list is: ("dpkg-list"|"md5sums", image path) or ("apk", paths)
        self._lists: dict[str, tuple[str, object]] = {}
        self._owners: dict[str, tuple[Owner, ...]] = {}
        self._found: dict[str, list[Owner]] = {}      # every path of a scanned name -> owners
        self._scanned: set[str] = set()               # file names whose paths are all in _found
        self._texts: dict[str, list[str]] = {}      # list file -> its paths
        self._licenses: dict[str, tuple[str, ...]] = {}
        self._by_name: dict[str, list[Package]] = {}
        self._divert: dict[str, tuple[str, str]] | None = None
        self._distro: Distro | None = None
        self._index = False                           # the list index, once asked (None: none)
        self._indexed: tuple[str, ...] = ()          # package keys the index's lists belong to
        self._read_dpkg()
        self._read_status_d()
        self._read_apk()
        for p in self.packages.values():
            self._by_name.setdefault(p.name, []).append(p)

    # -- reading --------------------------------------------------------------------------
    def _text(self, ipath: str) -> str | None:
        data = self.tree.read_bytes(ipath)
        return None if data is None else data.decode("utf-8", "surrogateescape")

    def _add(self, pkg: Package, files: tuple[str, object]) -> None:
        key = pkg.key
        if key in self.packages:      # status wins over status.d for the same package
            return
        self.packages[key] = pkg
        self._lists[key] = files

    def _read_dpkg(self) -> None:
        text = self._text(f"/{DPKG}/status")
        if text is None:
            return
        self.formats.append("dpkg")
        info = set(self.tree.listdir(f"/{DPKG}/info"))
        for stanza in deb822.parse(text):
            words = deb822.field(stanza, "Status").split()
            if len(words) == 3 and words[2] not in _LIVE:
                continue
            pkg = _deb_package(stanza)
            if pkg is None:
                continue
            lst = f"{pkg.name}:{pkg.architecture}.list"
            if lst not in info:
                lst = f"{pkg.name}.list"
            self._add(pkg, ("dpkg-list", f"/{DPKG}/info/{lst}" if lst in info else None))

    def _read_status_d(self) -> None:
        names = [n for n in self.tree.listdir(STATUS_D)
                 if not n.startswith(".") and not n.endswith(".md5sums")]
        if names:
            self.formats.append("dpkg-status.d")
        for n in names:
            text = self._text(f"{STATUS_D}/{n}")
            if text is None:
                continue
            for stanza in deb822.parse(text):
                pkg = _deb_package(stanza)
                if pkg is not None:
                    self._add(pkg, ("md5sums", f"{STATUS_D}/{n}.md5sums"))

    def _read_apk(self) -> None:
        text = self._text(APK_INSTALLED)
        if text is None:
            return
        self.formats.append("apk")
        for block in text.split("\n\n"):
            vals: dict[str, str] = {}
            files: list[str] = []
            lines: list[tuple[str, str]] = []
            cur_dir = ""
            for line in block.splitlines():
                k, colon, v = line.partition(":")
                if not colon or len(k) != 1:
                    continue
                lines.append((k, v))
                if k == "F":
                    cur_dir = v
                elif k == "R":
                    files.append("/" + posixpath.join(cur_dir, v))
                elif k not in vals:
                    vals[k] = v
            if "P" in vals and "V" in vals:
                self._add(Package(
                    name=vals["P"], version=vals["V"], architecture=vals.get("A", ""), kind="apk",
                    source=vals.get("o", ""), source_version=vals["V"] if vals.get("o") else "",
                    maintainer=vals.get("m", ""), homepage=vals.get("U", ""),
                    description=vals.get("T", ""), license_text=vals.get("L", ""),
                    record=tuple(lines)), ("apk", files))

    def _diversions(self) -> dict[str, tuple[str, str]]:
        """diverted path -> (where it went, diverting package or ':' for a local one)."""
        if self._divert is None:
            text = self._text(f"/{DPKG}/diversions")
            self._divert = {}
            if text:
                lines = text.splitlines()
                for i in range(0, len(lines) - 2, 3):
                    self._divert[lines[i]] = (lines[i + 1], lines[i + 2])
        return self._divert

    def _paths(self, key: str) -> list[str]:
        """The paths a package's list records (absolute, as recorded)."""
        via, where = self._lists[key]
        if via == "apk":
            return where
        if where is None:
            return []
        have = self._texts.get(where)
        if have is None:
            text = self._text(where) or ""
            if via == "md5sums":   # "<32 hex>  <path without leading slash>": regular files only
                have = ["/" + line[34:] for line in text.splitlines() if line[32:34] == "  "]
            else:
                have = text.splitlines()
            self._texts[where] = have
        return have

    def _scan(self, names: set[str]) -> None:
        """Record the owners of every listed path whose last component is in names."""
        divert = self._diversions()
        # A diverted file lives under the name it was diverted to: look for its old name too.
        look = names | {old.rpartition("/")[2] for old, (new, _by) in divert.items()
                        if new.rpartition("/")[2] in names}
        found = self._found
        real_dir = self.tree.real_dir
        for key, path in self._lines_named(look):
            pkg = self.packages[key]
            via = self._lists[key][0]
            head, _, name = path.rpartition("/")
            d = divert.get(path)
            if d is not None and d[1] != pkg.name:
                head, _, name = d[0].rpartition("/")  # moved aside by the diverter
            if name not in names:
                continue
            ipath = real_dir(head or "/").rstrip("/") + "/" + name
            owners = found.setdefault(ipath, [])
            if all(o.package is not pkg for o in owners):
                owners.append(Owner(pkg, via))
        self._scanned |= names

    def _lines_named(self, look: set[str]):
        """(package key, recorded path) of every list line whose last component is in
        look, packages in database order (the order owners are credited in)."""
        index = self._list_index()
        if index is None:
            for key in self._lists:
                yield from ((key, p) for p in self._paths(key) if p.rpartition("/")[2] in look)
            return
        read: set[int] = set()
        direct: dict[int, list[str]] = {}
        for name in look:
            for i, path in index.candidates(name):
                if path is None:
                    read.add(i)
                else:
                    direct.setdefault(i, []).append(path)
        position = {k: i for i, k in enumerate(self._indexed)}
        for key in self._lists:
            i = position.get(key)
            if i is None or i in read:   # not indexed (small status.d/apk lists), or named
                lines = (p for p in self._paths(key) if p.rpartition("/")[2] in look)
            else:
                lines = direct.get(i, ())
            for path in lines:
                yield key, path

    def _list_index(self):
        """The persistent name index of a root's dpkg lists (listindex.py), or None for a
        tree that is not a root on disk or has no dpkg lists."""
        if self._index is False:
            from .listindex import load_or_build
            from .tree import RootTree
            self._indexed = tuple(k for k, (via, where) in self._lists.items()
                                  if via == "dpkg-list" and where is not None)
            if not isinstance(self.tree, RootTree) or not self._indexed:
                self._index = None
            else:
                lists = tuple(self._lists[k][1] for k in self._indexed)
                self._index = load_or_build(
                    self.tree.root, lists, f"/{DPKG}/info", (f"/{DPKG}/status", f"/{DPKG}/diversions"),
                    lambda i: self._paths(self._indexed[i]))
        return self._index

    def _generated_owner(self, ipath: str) -> tuple[Owner, ...]:
        for pattern, name, _tool in GENERATED_BY:
            if fnmatch.fnmatchcase(ipath, pattern):
                return tuple(Owner(p, "maintainer-script") for p in self._by_name.get(name, ()))
        return ()

    # -- queries --------------------------------------------------------------------------
    @property
    def found(self) -> bool:
        return bool(self.packages)

    @property
    def distro(self) -> Distro:
        if self._distro is None:
            self._distro = read_os_release(self.tree)
        return self._distro

    def owners_of(self, paths, also: frozenset[str] = frozenset()) -> dict[str, tuple[Owner, ...]]:
        """Owners of each non-directory image path (parents resolved, as closure entries
        are); a directory is shared by many packages and owned by none here. Files
        no package lists but a maintainer script generates are credited to that package.
        `also`: more file names to index in the same pass, for lookups that will follow."""
        names = {p.rpartition("/")[2] for p in paths}
        if self._list_index() is None:  # a scan reads every list: take the hint's names too
            names |= also
        names -= self._scanned
        if names and self._lists:
            self._scan(names)
        out = {}
        for p in paths:
            have = self._owners.get(p)
            if have is None:
                found = () if p in MERGED_USR_LINKS and self.tree.real_dir(p) != p \
                    else tuple(self._found.get(p, ()))
                have = self._owners[p] = found or self._generated_owner(p)
            out[p] = have
        return out

    def owners(self, ipath: str) -> tuple[Owner, ...]:
        return self.owners_of([ipath])[ipath]

    def by_name(self, name: str) -> tuple[Package, ...]:
        return tuple(self._by_name.get(name, ()))

    def licenses(self, pkg: Package) -> tuple[str, ...]:
        """License names/expressions recorded for pkg: apk's L: field, or the names in
        /usr/share/doc/<pkg>/copyright (Debian)."""
        have = self._licenses.get(pkg.key)
        if have is not None:
            return have
        if pkg.kind == "apk":
            found = (pkg.license_text,) if pkg.license_text else ()
        else:
            text = self._text(f"/usr/share/doc/{pkg.name}/copyright")
            found = licenses.from_copyright(text) if text else ()
        self._licenses[pkg.key] = found
        return found

    def spdx_license(self, pkg: Package) -> tuple[str, tuple[licenses.Term, ...]]:
        """(SPDX expression, terms) for everything pkg declares; ("", ()) when nothing."""
        exprs, terms = [], []
        for name in self.licenses(pkg):
            e, t = licenses.parse_expression(name)
            exprs.append(e)
            terms.extend(t)
        uniq = tuple(sorted(set(terms), key=lambda t: (t.spdx_or_ref, t.name)))
        return licenses.combine(exprs), uniq

"""Package databases read from small fake roots: dpkg (merged /usr, Multi-Arch lists,
diversions), distroless status.d records, Alpine apk; licenses from copyright files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from closure.audit import deb822, licenses
from closure.audit.packages import PackageDB
from closure.audit.tree import RootTree
from closure.root import Root

SCHEMAS = Path(__file__).parent.parent / "data" / "schemas"


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


STATUS = """\
Package: libfoo1
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: foo (1.2-1)
Version: 1.2-1+b1
Maintainer: Foo Team <foo@example.org>
Description: the foo library
 Longer text.
 .
 More.

Package: tool
Status: install ok installed
Architecture: amd64
Version: 2.0-3
Maintainer: Jane Doe <jane@example.org>
Homepage: https://tool.example.org/

Package: wrapper
Status: install ok installed
Architecture: all
Version: 1

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 0.9

Package: ca-certificates
Status: install ok installed
Architecture: all
Version: 20230311
"""


@pytest.fixture
def debian_root(tmp_path: Path) -> Path:
    """A merged-/usr root: /lib and /bin are links into /usr, as on Debian 12."""
    r = tmp_path / "root"
    (r / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (r / "usr/bin").mkdir(parents=True)
    os.symlink("usr/lib", r / "lib")
    os.symlink("usr/bin", r / "bin")
    write(r, "/var/lib/dpkg/status", STATUS)
    # Multi-Arch: same packages have arch-qualified lists; paths spelled as shipped (/lib/...).
    write(r, "/var/lib/dpkg/info/libfoo1:amd64.list",
          "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libfoo.so.1.2\n"
          "/lib/x86_64-linux-gnu/libfoo.so.1\n/usr/share/doc/libfoo1/copyright\n")
    write(r, "/var/lib/dpkg/info/tool.list", "/.\n/bin\n/bin/tool\n/usr/share/man/man1/tool.1.gz\n")
    write(r, "/var/lib/dpkg/info/wrapper.list", "/.\n/usr/bin/tool\n")
    write(r, "/var/lib/dpkg/info/gone.list", "/usr/bin/gone\n")
    # wrapper diverts tool's /usr/bin/tool... but tool ships it as /bin/tool: divert that.
    write(r, "/var/lib/dpkg/diversions", "/bin/tool\n/bin/tool.real\nwrapper\n")
    (r / "usr/lib/x86_64-linux-gnu/libfoo.so.1.2").write_bytes(b"\x7fELF")
    os.symlink("libfoo.so.1.2", r / "usr/lib/x86_64-linux-gnu/libfoo.so.1")
    (r / "usr/bin/tool.real").write_text("real")
    (r / "usr/bin/tool").write_text("wrapper")
    write(r, "/usr/share/doc/libfoo1/copyright",
          "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
          "Files: *\nCopyright: 2020 Foo\nLicense: LGPL-2.1+\n\n"
          "Files: src/compat/*\nCopyright: 2019 Bar\nLicense: Expat or BSD-3-clause\n\n"
          "License: LGPL-2.1+\n This library is free software...\n")
    write(r, "/etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
    write(r, "/etc/ssl/certs/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\n")
    return r


def owners(db: PackageDB, path: str) -> list[tuple[str, str]]:
    return [(o.package.name, o.via) for o in db.owners(path)]


def test_status_versions_and_not_installed(debian_root):
    db = PackageDB(RootTree(Root(str(debian_root))))
    assert db.formats == ["dpkg"]
    assert sorted(p.name for p in db.packages.values()) == ["ca-certificates", "libfoo1", "tool", "wrapper"]
    foo = db.packages["libfoo1:amd64"]
    assert (foo.version, foo.architecture, foo.source, foo.source_version) == ("1.2-1+b1", "amd64", "foo", "1.2-1")
    assert foo.description == "the foo library"


def test_merged_usr_paths_map_to_their_real_spelling(debian_root):
    db = PackageDB(RootTree(Root(str(debian_root))))
    # The list says /lib/x86_64-linux-gnu/...; in the image it is /usr/lib/...
    assert owners(db, "/usr/lib/x86_64-linux-gnu/libfoo.so.1.2") == [("libfoo1", "dpkg-list")]
    assert owners(db, "/usr/lib/x86_64-linux-gnu/libfoo.so.1") == [("libfoo1", "dpkg-list")]
    # The /lib link itself belongs to no package, though several list "/lib" (as a directory).
    assert owners(db, "/lib") == []
    assert owners(db, "/usr/bin/gone") == []   # config-files only: not installed


def test_diversion_moves_the_other_packages_file(debian_root):
    db = PackageDB(RootTree(Root(str(debian_root))))
    assert owners(db, "/usr/bin/tool.real") == [("tool", "dpkg-list")]
    assert owners(db, "/usr/bin/tool") == [("wrapper", "dpkg-list")]


def test_maintainer_script_files_are_credited(debian_root):
    db = PackageDB(RootTree(Root(str(debian_root))))
    assert owners(db, "/etc/ssl/certs/ca-certificates.crt") == [("ca-certificates", "maintainer-script")]
    assert owners(db, "/etc/os-release") == []


def test_purl_and_licenses(debian_root):
    db = PackageDB(RootTree(Root(str(debian_root))))
    foo = db.packages["libfoo1:amd64"]
    assert foo.purl(db.distro) == ("pkg:deb/debian/libfoo1@1.2-1%2Bb1?arch=amd64&distro=debian-12"
                                   "&upstream=foo%401.2-1")
    assert db.licenses(foo) == ("Expat or BSD-3-clause", "LGPL-2.1+")
    expr, terms = db.spdx_license(foo)
    assert expr == "LGPL-2.1-or-later AND (MIT OR BSD-3-Clause)"
    assert {t.spdx for t in terms} == {"MIT", "BSD-3-Clause", "LGPL-2.1-or-later"}


def test_purl_keeps_an_epoch_colon_and_depends_are_parsed():
    from closure.audit.packages import Package
    rec = (("Package", "bsdutils"), ("Pre-Depends", "libc6 (>= 2.34), libsystemd0:amd64"),
           ("Depends", "debconf (>= 0.5) | debconf-2.0, perl:any"))
    pkg = Package("bsdutils", "1:2.38.1-5+b1", "amd64", record=rec)
    assert pkg.purl() == "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64", "purl-spec: ':' unencoded"
    assert pkg.depends() == (("libc6",), ("libsystemd0",), ("debconf", "debconf-2.0"), ("perl",))
    apk = Package("curl", "8.5.0-r0", kind="apk", record=(("D", "ca-certificates-bundle so:libc.musl-x86_64.so.1 libcurl=8.5.0-r0"),))
    assert apk.depends() == (("ca-certificates-bundle",), ("libcurl",))


def test_distroless_status_d_with_md5sums(tmp_path):
    r = tmp_path / "img"
    write(r, "/var/lib/dpkg/status.d/libfoo1", "Package: libfoo1\nVersion: 1.2-1\nArchitecture: amd64\n")
    write(r, "/var/lib/dpkg/status.d/libfoo1.md5sums",
          "0123456789abcdef0123456789abcdef  usr/lib/x86_64-linux-gnu/libfoo.so.1.2\n")
    db = PackageDB(RootTree(Root(str(r))))
    assert db.formats == ["dpkg-status.d"]
    assert owners(db, "/usr/lib/x86_64-linux-gnu/libfoo.so.1.2") == [("libfoo1", "md5sums")]


def test_alpine_installed_db(tmp_path):
    r = tmp_path / "alpine"
    write(r, "/lib/apk/db/installed",
          "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nT:the musl c library\n"
          "F:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\n"
          "P:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\nF:bin\nR:busybox\n")
    db = PackageDB(RootTree(Root(str(r))))
    assert db.formats == ["apk"]
    assert owners(db, "/lib/ld-musl-x86_64.so.1") == [("musl", "apk")]
    assert owners(db, "/bin/busybox") == [("busybox", "apk")]
    musl = db.by_name("musl")[0]
    assert musl.purl() == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"
    assert db.spdx_license(musl)[0] == "MIT"


def test_no_database(tmp_path):
    db = PackageDB(RootTree(Root(str(tmp_path))))
    assert not db.found and db.formats == []
    assert db.owners("/usr/bin/x") == ()


@pytest.mark.parametrize("name,want", [
    ("GPL-2+", "GPL-2.0-or-later"), ("GPL-2", "GPL-2.0-only"), ("LGPL-2.1", "LGPL-2.1-only"),
    ("GPL", "GPL-1.0-or-later"), ("GFDL-1.3.", "GFDL-1.3-only"), ("Expat", "MIT"),
    ("BSD-3-clause", "BSD-3-Clause"), ("zlib", "Zlib"), ("Apache-2", "Apache-2.0"),
    ("public-domain", None), ("GPL-7", None), ("GPL-2+ with Libtool exception", None),
])
def test_license_names(name, want):
    assert licenses.spdx_id(name) == want


def test_expressions():
    assert licenses.parse_expression("GPL-2+ or Artistic")[0] == "GPL-2.0-or-later OR Artistic-1.0"
    assert licenses.parse_expression("MIT and (GPL-2 or LGPL-2.1+)")[0] == "MIT AND (GPL-2.0-only OR LGPL-2.1-or-later)"
    assert licenses.parse_expression("GPL-2+, and BSD-3-clause or MIT")[0] == "GPL-2.0-or-later AND (BSD-3-Clause OR MIT)"
    assert licenses.parse_expression("public-domain")[0] == "LicenseRef-public-domain"


def test_every_emitted_id_is_on_the_spdx_list():
    listed = set(json.loads((SCHEMAS / "cyclonedx" / "spdx.schema.json").read_text())["enum"])
    emitted = set(licenses._SPDX_IDS) | set(licenses._ALIASES.values()) | {
        f"{f}-{v}-{k}" for f, v in licenses._GNU_VERSIONS for k in ("only", "or-later")}
    assert emitted - listed == set()


def test_free_form_copyright_points_at_common_licenses():
    text = "This is glibc.\nSee /usr/share/common-licenses/LGPL-2.1 and /usr/share/common-licenses/GPL-2.\n"
    assert licenses.from_copyright(text) == ("GPL-2", "LGPL-2.1")


def test_deb822_round_trip():
    stanzas = deb822.parse(STATUS)
    assert len(stanzas) == 5
    assert stanzas[0]["Description"] == "the foo library\nLonger text.\n\nMore."
    again = deb822.parse("\n".join(deb822.format_stanza(list(s.items())) for s in stanzas))
    assert again == stanzas


APK_DB = """\
C:Q1musl=
P:musl
V:1.2.4-r2
A:x86_64
L:MIT
o:musl
F:lib
M:0:0:755
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1ld=
R:libc.musl-x86_64.so.1
Z:Q1link=

C:Q1tool=
P:tool
V:2.0-r1
A:x86_64
L:Apache-2.0
F:usr/bin
R:tool
Z:Q1tool=
F:usr/share/tool
R:unused.dat
Z:Q1unused=

P:absent
V:1-r0
A:x86_64
F:usr/bin
R:absent
"""


def test_alpine_image_carries_its_apk_records_cut_to_the_image(tmp_path):
    """An Alpine root's image holds /lib/apk/db/installed (what scanners read there) with
    the packages owning its files, each listing only the files the image holds; the image
    alone then tells `closure sbom` its packages."""
    from closure.audit.inventory import from_image
    from closure.collect import Collector, Options
    from closure.image import ImageOptions, write_image
    from closure.model import Reason
    r = tmp_path / "alpine"
    write(r, "/lib/apk/db/installed", APK_DB)
    write(r, "/lib/ld-musl-x86_64.so.1", "loader")
    os.symlink("ld-musl-x86_64.so.1", r / "lib/libc.musl-x86_64.so.1")
    write(r, "/usr/bin/tool", "tool")
    write(r, "/usr/share/tool/unused.dat", "unused")
    write(r, "/usr/bin/absent", "not in the image")
    root = Root(str(r))
    c = Collector(Options(root=root, recipes=False, package_records=True))
    for path in ("/usr/bin/tool", "/lib/ld-musl-x86_64.so.1"):
        c.add_path(path, Reason("include", name=path))
    closure = c.finish()
    installed = closure.entries["/lib/apk/db/installed"].content.decode()
    assert installed == (
        "C:Q1musl=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nF:lib\nM:0:0:755\n"
        "R:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1ld=\n\n"
        "C:Q1tool=\nP:tool\nV:2.0-r1\nA:x86_64\nL:Apache-2.0\nF:usr/bin\nR:tool\nZ:Q1tool=\n\n")
    write_image(closure, root, str(tmp_path / "img.oci"), ImageOptions())
    inv = from_image(str(tmp_path / "img.oci"))
    assert inv.db.formats == ["apk"]
    assert {p.name: p.version for p in inv.db.packages.values()} == {"musl": "1.2.4-r2", "tool": "2.0-r1"}
    assert owners(inv.db, "/usr/bin/tool") == [("tool", "apk")]
    assert inv.db.spdx_license(inv.db.by_name("musl")[0])[0] == "MIT"
    # Without records, nothing of apk's database comes along.
    c = Collector(Options(root=root, recipes=False))
    c.add_path("/usr/bin/tool", Reason("include", name="/usr/bin/tool"))
    assert "/lib/apk/db/installed" not in c.finish().entries

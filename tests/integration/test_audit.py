"""The audit commands on real images built from this machine: sbom, diff, report, inspect,
analyze --by-package, and the package records images carry."""
from __future__ import annotations

import hashlib
import html
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from closure.audit import deb822
from closure.collect import Options, collect
from closure.image import ImageOptions, write_image
from closure.model import Closure
from closure.root import Root

CLI = [sys.executable, "-m", "closure.cli.app"]
SCHEMAS = Path(__file__).parent.parent / "data" / "schemas"
# What the must-show list names, as dpkg calls them on Debian 12.
CURL_PACKAGES = ("curl", "libcurl4", "libssl3", "libc6", "ca-certificates")

pytestmark = pytest.mark.skipif(not (os.path.exists("/usr/bin/curl") and os.path.exists("/usr/bin/git")
                                     and os.path.exists("/var/lib/dpkg/status")),
                                reason="needs curl and git installed from Debian packages")


def run(*args, check=True):
    p = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def build(targets: list[str], out: Path) -> Closure:
    """What `closure build` does, package records included."""
    root = Root("/")
    closure = collect(targets, Options(root=root, package_records=True))
    write_image(closure, root, str(out), ImageOptions())
    return closure


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("audit")
    curl = build(["/usr/bin/curl"], d / "curl.oci")                 # an OCI layout
    both = build(["/usr/bin/curl", "/usr/bin/git"], d / "curlgit.tar")   # an OCI/docker archive
    return {"dir": d, "curl": d / "curl.oci", "curlgit": d / "curlgit.tar",
            "curl_closure": curl, "curlgit_closure": both}


def layer_members(image: Path) -> dict[str, tuple[str, str | None]]:
    """path -> (file|symlink|dir, sha256) of the image's one layer, read with the standard
    library only (independent of closure). Hard links are files with their target's bytes."""
    index = json.loads((image / "index.json").read_text())
    manifest = json.loads((image / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    blob = image / "blobs/sha256" / manifest["layers"][0]["digest"].split(":")[1]
    out: dict[str, tuple[str, str | None]] = {}
    with tarfile.open(blob, "r:gz") as tar:
        for m in tar:
            path = "/" + m.name.rstrip("/")
            if m.isreg():
                out[path] = ("file", hashlib.sha256(tar.extractfile(m).read()).hexdigest())
            elif m.islnk():
                out[path] = out["/" + m.linkname]
            else:
                out[path] = ("symlink" if m.issym() else "dir", None)
    return out


def dpkg_version(pkg: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                          text=True, check=True).stdout


def spdx_validator():
    import jsonschema
    return jsonschema.Draft7Validator(json.loads((SCHEMAS / "spdx-2.3.schema.json").read_text()),
                                      format_checker=jsonschema.FormatChecker())


def cyclonedx_validator():
    import jsonschema
    from referencing import Registry, Resource
    docs = [json.loads(p.read_text()) for p in (SCHEMAS / "cyclonedx").glob("*.json")]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
    schema = json.loads((SCHEMAS / "cyclonedx" / "bom-1.5.schema.json").read_text())
    return jsonschema.Draft7Validator(schema, registry=registry, format_checker=jsonschema.FormatChecker())


def errors(validator, doc) -> list[str]:
    return [f"{e.json_path}: {e.message[:200]}" for e in validator.iter_errors(doc)]


# -- SBOM -------------------------------------------------------------------------------------

def test_spdx_of_the_curl_image_validates_and_names_the_installed_versions(images):
    out = images["dir"] / "curl.spdx.json"
    run("sbom", images["curl"], "--format", "spdx-json", "-o", out)
    doc = json.loads(out.read_text())
    assert errors(spdx_validator(), doc) == []
    versions = {p["name"]: p.get("versionInfo") for p in doc["packages"]}
    for pkg in CURL_PACKAGES + ("openssl",):
        assert versions.get(pkg) == dpkg_version(pkg), pkg
    curl = next(p for p in doc["packages"] if p["name"] == "curl")
    assert "curl" in curl["licenseDeclared"].split(" AND ")      # from the copyright file in the image
    assert curl["externalRefs"][0]["referenceLocator"].startswith("pkg:deb/debian/curl@")
    # Files: exactly the image's regular files, with the hashes of their bytes in the layer.
    members = layer_members(images["curl"])
    want = {p: sha for p, (kind, sha) in members.items() if kind == "file"}
    assert all(f["fileName"].startswith("./") for f in doc["files"])
    got = {f["fileName"][1:]: next(c["checksumValue"] for c in f["checksums"] if c["algorithm"] == "SHA256")
           for f in doc["files"]}
    assert got == want
    # The curl binary is contained by the curl package.
    ids = {f["fileName"][1:]: f["SPDXID"] for f in doc["files"]}
    rel = {(r["spdxElementId"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert (curl["SPDXID"], ids["/usr/bin/curl"]) in rel
    libc = next(p for p in doc["packages"] if p["name"] == "libc6")
    assert (libc["SPDXID"], ids["/usr/lib/x86_64-linux-gnu/libc.so.6"]) in rel


def test_spdx_passes_the_official_spdx_validator(images, tmp_path):
    # spdx-tools checks what the schema cannot: relationships, verification codes,
    # license expressions, LicenseRef definitions, file names.
    pytest.importorskip("spdx_tools", reason="needs spdx-tools (pip install spdx-tools)")
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    for image in (images["curl"], images["curlgit"]):
        out = tmp_path / (image.name + ".spdx.json")
        run("sbom", image, "--format", "spdx-json", "-o", out)
        msgs = validate_full_spdx_document(parse_file(str(out)))
        assert [m.validation_message for m in msgs][:5] == []


def test_cyclonedx_of_the_curl_archive_validates_and_names_the_installed_versions(images):
    # The curl image itself (the must-show), then the curl+git archive.
    curl = json.loads(run("sbom", images["curl"], "--format", "cyclonedx-json").stdout)
    assert errors(cyclonedx_validator(), curl) == []
    comps = {c["name"]: c for c in curl["components"] if c["type"] == "library"}
    for pkg in CURL_PACKAGES + ("openssl",):
        assert comps[pkg]["version"] == dpkg_version(pkg), pkg
    assert "git" not in comps
    # The package graph: dpkg's Depends among the packages present, by purl.
    graph = {d["ref"]: d["dependsOn"] for d in curl["dependencies"]}
    refs = {c["bom-ref"] for c in comps.values()}
    assert set(graph["image"]) == refs and all(set(v) <= refs for v in graph.values())
    assert comps["libcurl4"]["purl"] in graph[comps["curl"]["purl"]]
    assert comps["libc6"]["purl"] in graph[comps["libcurl4"]["purl"]]
    # Exactly the image's regular files, each with the SHA-256 of its bytes in the layer.
    files = [f for c in curl["components"] for f in c.get("components", []) + [c] if f["type"] == "file"]
    got = {f["name"]: next(h["content"] for h in f["hashes"] if h["alg"] == "SHA-256") for f in files}
    assert len(got) == len(files)
    assert got == {p: sha for p, (kind, sha) in layer_members(images["curl"]).items() if kind == "file"}
    p = run("sbom", images["curlgit"], "--format", "cyclonedx-json")
    doc = json.loads(p.stdout)
    assert errors(cyclonedx_validator(), doc) == []
    comps = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    for pkg in CURL_PACKAGES + ("openssl", "git"):
        assert comps[pkg]["version"] == dpkg_version(pkg), pkg
    files = [f for c in doc["components"] for f in c.get("components", []) + [c] if f["type"] == "file"]
    assert len(files) == len({f["name"] for f in files})
    assert "/usr/bin/git" in {f["name"] for f in comps["git"]["components"]}


def test_sbom_is_deterministic_and_the_same_from_target_and_image(images, monkeypatch):
    from closure.audit import sbom
    from closure.audit.inventory import from_closure, from_image
    a = sbom.spdx(from_image(str(images["curl"])))
    b = sbom.spdx(from_image(str(images["curl"])))
    assert a == b
    t = sbom.spdx(from_closure(images["curl_closure"], Root("/")))
    key = lambda doc: sorted((p["name"], p.get("versionInfo")) for p in doc["packages"][1:])  # noqa: E731
    assert key(t) == key(a)
    files = lambda doc: {f["fileName"]: f["checksums"][1]["checksumValue"] for f in doc["files"]}  # noqa: E731
    assert files(t) == files(a)


def test_sbom_from_the_image_alone(images, tmp_path):
    # A copy of the image elsewhere: nothing of the host's dpkg database is consulted
    # (the inventory's tree is the image's own filesystem).
    from closure.audit.imagefs import ImageFS
    from closure.audit.inventory import from_image
    copy = tmp_path / "copy.oci"
    shutil.copytree(images["curl"], copy)
    inv = from_image(str(copy))
    assert isinstance(inv.tree, ImageFS)
    assert inv.db.formats == ["dpkg-status.d"]
    assert {p.name for p in inv.db.packages.values()} >= set(CURL_PACKAGES)


def test_sbom_of_targets_takes_the_analysis_options(tmp_path):
    def files(*args):
        doc = json.loads(run("sbom", "/usr/bin/true", "--format", "cyclonedx-json", *args).stdout)
        return {f["name"] for c in doc["components"] for f in c.get("components", []) + [c]
                if f["type"] == "file"}
    full = files()
    assert "/var/lib/dpkg/status.d/libc6" in full and "/etc/passwd" in full
    bare = files("--no-package-records", "--no-recipes")
    assert "/usr/bin/true" in bare and not any(p.startswith("/var/lib/dpkg") for p in bare)
    assert "/etc/passwd" not in bare
    p = run("sbom", "/usr/bin/true", "--root", tmp_path, check=False)       # an empty root
    assert p.returncode == 2 and "/usr/bin/true" in p.stderr


# -- package records ----------------------------------------------------------------------------

def test_records_parse_with_our_parser_and_with_dpkg(images, tmp_path):
    members = layer_members(images["curl"])
    closure = images["curl_closure"]
    records = {p: e.content for p, e in closure.entries.items()
               if p.startswith("/var/lib/dpkg/status.d/") and not p.endswith(".md5sums")}
    assert set(records) <= set(members)
    names = set()
    status = b""
    for path, data in sorted(records.items()):
        (stanza,) = deb822.parse(data.decode())
        assert stanza["Package"] == path.rsplit("/", 1)[1]
        assert stanza["Version"] == dpkg_version(stanza["Package"])
        names.add(stanza["Package"])
        status += data + b"\n"
    assert names >= set(CURL_PACKAGES)
    # As trivy's dpkg analyzer reads them: every status.d file but *.md5sums is MIME-style
    # headers (textproto), one package whose Status has no deinstall/purge and whose
    # Version parses as [epoch:]upstream[-revision].
    import email.parser
    deb_version = re.compile(r"^(\d+:)?[0-9][A-Za-z0-9.+~:-]*$")
    for path, data in records.items():
        hdr = email.parser.BytesHeaderParser().parsebytes(data)
        assert hdr.defects == [] and hdr["Package"] == path.rsplit("/", 1)[1], path
        assert not {"deinstall", "purge"} & set(hdr["Status"].split())
        assert deb_version.match(hdr["Version"]), hdr["Version"]
    assert "/etc/debian_version" in members, "trivy's Debian detector reads it"
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_bytes(status)
    q = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f", "${Package} ${Version} ${Status}\n"],
                       capture_output=True, text=True)
    assert q.returncode == 0 and q.stderr == "", q.stderr
    listed = {line.split()[0]: line.split()[1] for line in q.stdout.splitlines()}
    assert set(listed) == names
    assert all(line.endswith("install ok installed") for line in q.stdout.splitlines())
    # md5sums name exactly the package's regular files in the image, with their md5.
    md5 = closure.entries["/var/lib/dpkg/status.d/libc6.md5sums"].content.decode()
    for line in md5.splitlines():
        digest, path = line.split("  ", 1)
        assert members["/" + path][0] == "file"
        assert digest == hashlib.md5(Path("/" + path).read_bytes()).hexdigest()
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in md5


# -- diff -------------------------------------------------------------------------------------

def test_diff_lists_exactly_gits_additions(images):
    p = run("diff", images["curl"], images["curlgit"], "--json", check=False)
    assert p.returncode == 1, "different: exit 1, as diff(1)"
    doc = json.loads(p.stdout)
    a = set(images["curl_closure"].entries)
    b = set(images["curlgit_closure"].entries)
    assert {e["path"] for e in doc["added"]} == b - a
    assert doc["removed"] == [] and doc["changed"] == []
    assert "/usr/bin/git" in {e["path"] for e in doc["added"]}
    added_pkgs = {p["name"] for p in doc["packages"]["added"]}
    assert "git" in added_pkgs and not added_pkgs & set(CURL_PACKAGES)
    assert doc["packages"]["removed"] == []
    # Every added file is git's: in git's own closure, or its package's record/license.
    git_only = set(collect(["/usr/bin/git"], Options(root=Root("/"))).entries)
    for e in doc["added"]:
        path = e["path"]
        assert path in git_only or path.startswith(("/var/lib/dpkg/status.d/", "/usr/share/doc/")), path
    text = run("diff", images["curl"], images["curlgit"], check=False).stdout
    assert "+ /usr/bin/git" in text and "+ package git:amd64 " + dpkg_version("git") in text


def test_diff_of_analyses_and_exit_code(images, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(run("analyze", "/usr/bin/curl", "--json", "--by-package").stdout)
    b.write_text(run("analyze", "/usr/bin/curl", "/usr/bin/git", "--json", "--by-package").stdout)
    doc = json.loads(run("diff", a, b, "--json", check=False).stdout)
    added = {e["path"]: e for e in doc["added"]}
    assert added["/usr/bin/git"]["reasons"] == [{"kind": "target"}]
    assert "git" in {p["name"] for p in doc["packages"]["added"]}
    assert run("diff", a, a).returncode == 0, "the same: exit 0"
    assert run("diff", a, b, check=False).returncode == 1
    # --fail-on: a CI gate; exit 1 only when a condition holds, saying which.
    p = run("diff", a, b, "--fail-on", "added-packages", check=False)
    assert p.returncode == 1 and "packages added: " in p.stderr and "git" in p.stderr
    assert run("diff", a, b, "--fail-on", "removed-files").returncode == 0
    assert run("diff", a, b, "--fail-on", "growth=1000%").returncode == 0
    p = run("diff", a, b, "--fail-on", "growth=10%", check=False)
    assert p.returncode == 1 and "grew " in p.stderr
    assert run("diff", a, b, "--fail-on", "growth=1GB").returncode == 0
    assert run("diff", a, b, "--fail-on", "growth=1kB", check=False).returncode == 1
    for bad in ("growth=lots", "growth=x%", "bigger"):
        p = run("diff", a, b, "--fail-on", bad, check=False)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--fail-on" in p.stderr, p.stderr


# -- analyze --by-package -------------------------------------------------------------------

def test_analyze_by_package(tmp_path):
    plain = json.loads(run("analyze", "/usr/bin/curl", "--json").stdout)
    doc = json.loads(run("analyze", "/usr/bin/curl", "--json", "--by-package").stdout)
    assert {k: v for k, v in doc.items() if k != "packages"} == plain    # the contract is unchanged
    pk = doc["packages"]
    assert pk["databases"] == ["dpkg"]
    by_name = {p["name"]: p for p in pk["packages"]}
    # usrmerge: dpkg says /lib/x86_64-linux-gnu/libc.so.6; the image path is /usr/lib/...
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in by_name["libc6"]["files"]
    assert by_name["libc6"]["version"] == dpkg_version("libc6")
    # the bundle is written by its maintainer script; dpkg lists only its copyright file
    assert "maintainer-script" in by_name["ca-certificates"]["via"]
    owned = {f for p in pk["packages"] for f in p["files"]}
    unowned = {u["path"]: u["why"] for u in pk["unowned"]}
    files = {e["path"] for e in doc["entries"] if e["type"] != "dir"}
    assert owned | set(unowned) == files
    assert unowned["/etc/passwd"] == "generated by closure"
    table = run("analyze", "/usr/bin/curl", "--by-package").stdout
    assert f"curl {dpkg_version('curl')} (amd64)" in table and "(no package)" in table


# -- inspect ----------------------------------------------------------------------------------

def test_inspect(images):
    f = json.loads(run("inspect", images["curlgit"], "--json").stdout)
    members = layer_members(images["curl"])
    assert f["format"] == "oci-archive" and len(f["layers"]) == 1
    assert f["config"]["Entrypoint"] == ["/usr/bin/curl"]
    assert f["layers"][0]["created_by"] == "closure build /usr/bin/curl /usr/bin/git"
    assert f["files"] == len(images["curlgit_closure"].sorted_entries()) - sum(
        1 for e in images["curlgit_closure"].entries.values() if e.type != "file")
    assert f["top_directories"][0]["path"] == "/usr"
    assert len(members) > 0
    text = run("inspect", images["curl"]).stdout
    assert "LAYER" in text and "/usr/lib/x86_64-linux-gnu" in text


# -- report in a real browser ---------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1400"]


class _Rows(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.paths: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-path" in a:
            self.paths.append(a["data-path"])


def png_colours(data: bytes) -> int:
    """Distinct RGB(A) colours in an 8-bit truecolour PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    width, height, depth, ctype = ihdr[:4]
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:   # every 4th row is plenty to count colours
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 2))
        prev = line
    return len(colours)


def test_report_renders_in_chromium_and_lists_every_file(images, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs chromium (apt-get install chromium)")
    report = tmp_path / "report.html"
    run("report", images["curl"], "-o", report)
    page = report.read_text()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<link" not in page and " src=" not in page   # self-contained

    def chrome(*args):
        profile = tmp_path / f"profile-{args[0].lstrip('-').split('=')[0]}"
        profile.mkdir()   # a new empty profile each run
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                               report.as_uri()], capture_output=True, timeout=120)

    shot = tmp_path / "shot.png"
    p = chrome(f"--screenshot={shot}")
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    assert png_colours(shot.read_bytes()) > 40          # treemaps drawn: far from a blank page
    dom = chrome("--dump-dom")
    assert dom.returncode == 0
    rows = _Rows()
    rows.feed(dom.stdout.decode())
    members = layer_members(images["curl"])
    want = sorted(p for p, (kind, _) in members.items() if kind != "dir")
    assert sorted(rows.paths) == want


# Measured in the page by the browser, written into the title (read back with --dump-dom):
# the Files table's path column, the viewport, the page's scroll width, table cells whose
# content spills out, and the treemap labels that overrun their box with the fonts
# Chromium really has.
PROBE = """<script>addEventListener('load',function(){
  var over=0,n=0;document.querySelectorAll('svg.tm text.f').forEach(function(t){
    if(t.hasAttribute('transform'))return;var r=t.previousElementSibling;
    while(r&&r.tagName!=='rect')r=r.previousElementSibling;var a=t.getBBox(),b=r.getBBox();n++;
    if(a.x+a.width>b.x+b.width+1||a.y+a.height>b.y+b.height+1)over++;});
  var td=document.querySelector('#files td.p'),spill=[].filter.call(document.querySelectorAll('td,th'),
    function(c){return c.scrollWidth>c.clientWidth+1;}).length;
  document.title='probe:'+JSON.stringify({path:td.getBoundingClientRect().width,vw:innerWidth,
    sw:document.documentElement.scrollWidth,spill:spill,labels:n,over:over});});</script>"""


def test_report_of_the_curl_image_answers_why_it_is_big_wide_and_narrow(tmp_path):
    """The report of `closure build /usr/bin/curl -o X.tar`: the 20 biggest files each with
    the chain from /usr/bin/curl, tables largest first; in Chromium at 1280 and 420 px the
    path column keeps a readable width, nothing overflows the window, labels fit their boxes."""
    import re
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    tar, report = tmp_path / "curl.tar", tmp_path / "curl.html"
    run("build", "/usr/bin/curl", "-o", tar)
    run("report", tar, "-o", report)
    page = report.read_text()
    members = layer_members_of_archive(tar)
    sizes = {p: n for p, (kind, n) in members.items() if kind == "file"}
    top = sorted(sizes, key=lambda p: (-sizes[p], p))[:20]
    rows = re.findall(r'<tr data-rank="(\d+)">.*?data-file="([^"]*)".*?<ol class="chain">(.*?)</ol>', page)
    assert [html.unescape(p) for _, p, _ in rows] == top
    for _, path, chain in rows:
        steps = [html.unescape(re.sub(r"<[^>]+>", "", s)) for s in re.findall(r"<li>(.*?)</li>", chain)]
        assert steps[0] == "/usr/bin/curl (target)" and steps[-1].startswith(html.unescape(path) + " ("), steps
    # Each of the 20 is named in the directory map too, by its rank (down a thin box if need be).
    dir_map = page.split("<svg", 2)[1]
    ranks = {int(r) for r in re.findall(r'<text class="f r"[^>]*>#(\d+)\b', dir_map)}
    assert ranks == set(range(1, 21)), sorted(set(range(1, 21)) - ranks)
    pkg_sizes = [int(v) for v in re.findall(r'<td class="n" data-v="(\d+)" data-l="size">', page.split('id="packages"')[1].split("</table>")[0])]
    assert len(pkg_sizes) > 10 and pkg_sizes == sorted(pkg_sizes, reverse=True)
    if chromium is None:
        pytest.skip("needs chromium (apt-get install chromium) for the rendering half")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    for width in (1280, 420):
        shot, profile = tmp_path / f"shot-{width}.png", tmp_path / f"profile-{width}"
        profile.mkdir()
        p = subprocess.run([chromium, *CHROMIUM_FLAGS[:-1], f"--user-data-dir={profile}", f"--window-size={width},2000",
                            "--run-all-compositor-stages-before-draw", f"--screenshot={shot}", "--dump-dom",
                            probe.as_uri()], capture_output=True, timeout=120)
        assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
        assert shot.stat().st_size > 20_000 and png_colours(shot.read_bytes()) > 40
        m = re.search(r"<title>probe:(.*?)</title>", p.stdout.decode())
        assert m, p.stdout[-500:]
        got = json.loads(html.unescape(m.group(1)))
        # Chromium's headless window is at least 500 px wide: "420" lays out at 500.
        assert got["sw"] <= got["vw"] and got["spill"] == 0, got   # no sideways scrolling, no text over a cell's edge
        assert got["path"] >= (300 if width > 1000 else 0.8 * got["vw"]), got
        assert got["labels"] > 20 and got["over"] == 0, got


def layer_members_of_archive(tar_path: Path) -> dict[str, tuple[str, int]]:
    """path -> (file|symlink|dir, size) of an OCI archive's one layer, standard library only."""
    with tarfile.open(tar_path) as outer:
        def blob(digest: str) -> bytes:
            return outer.extractfile("blobs/sha256/" + digest.split(":")[1]).read()
        index = json.loads(outer.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        import io
        out = {}
        with tarfile.open(fileobj=io.BytesIO(blob(manifest["layers"][0]["digest"])), mode="r:gz") as tar:
            for m in tar:
                if m.islnk():      # a hard link: its target's bytes
                    out["/" + m.name] = out["/" + m.linkname]
                    continue
                out["/" + m.name.rstrip("/")] = ("file" if m.isreg() else "symlink" if m.issym() else "dir", m.size)
        return out


def test_report_of_an_image_takes_every_reason_from_its_analysis(images, tmp_path):

    def why(page: str) -> dict[str, str]:
        rows = re.findall(r'<tr data-path="([^"]*)">.*?<td class="w">([^<]*)</td></tr>', page)
        return {html.unescape(p): html.unescape(w) for p, w in rows}

    members = layer_members(images["curl"])
    want = {p for p, (kind, _) in members.items() if kind != "dir"}
    full, bare = tmp_path / "full.json", tmp_path / "bare.json"
    full.write_text(run("analyze", "/usr/bin/curl", "--json", "--package-records").stdout)
    bare.write_text(run("analyze", "/usr/bin/curl", "--json").stdout)
    report = tmp_path / "r.html"
    run("report", images["curl"], "--analysis", full, "-o", report)
    rows = why(report.read_text())
    assert set(rows) == want
    assert rows["/usr/bin/curl"] == "target"
    assert all(w and not w.startswith("in the image") for w in rows.values()), \
        [p for p, w in rows.items() if w.startswith("in the image")][:5]
    # An analysis without the package records: those files are named as missing from it.
    run("report", images["curl"], "--analysis", bare, "-o", report)
    rows = why(report.read_text())
    assert rows["/var/lib/dpkg/status.d/curl"] == f"in the image; not in the analysis {bare}"
    assert rows["/usr/bin/curl"] == "target"


def test_images_carry_their_reasons(images, tmp_path):
    """Built images record why each file is in (a config label): report and diff of images
    alone give every file its reason."""
    members = layer_members(images["curl"])
    report = tmp_path / "r.html"
    run("report", images["curl"], "-o", report)
    rows = dict(re.findall(r'<tr data-path="([^"]*)">.*?<td class="w">([^<]*)</td></tr>', report.read_text()))
    assert set(rows) == {p for p, (kind, _) in members.items() if kind != "dir"}
    assert rows["/usr/bin/curl"] == "target"
    assert all(w and not w.startswith("in the image") for w in rows.values())
    doc = json.loads(run("diff", images["curl"], images["curlgit"], "--json", check=False).stdout)
    git = next(e for e in doc["added"] if e["path"] == "/usr/bin/git")
    assert git["reasons"] == [{"kind": "target"}]
    assert all(e["reasons"] for e in doc["added"])


# -- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["sbom", "/nonexistent/image.oci", "--format", "spdx-json"],
    ["sbom", "/usr/bin/curl", "--format", "xml"],
    ["diff", "/nonexistent/a", "/nonexistent/b"],
    ["inspect", "/usr/bin/curl"],
    ["report", "/usr/bin/curl", "-o", "/nonexistent/dir/r.html", "--no-recipes"],
])
def test_bad_input_is_one_line_and_exit_2(args):
    p = run(*args, check=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.startswith("closure: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_records_respect_excludes():
    closure = collect(["/usr/bin/curl"], Options(package_records=True, excludes=(
        "/usr/lib/x86_64-linux-gnu/gconv/*", "/usr/share/doc")))
    assert not any(p.startswith("/usr/share/doc") for p in closure.entries)
    md5 = closure.entries["/var/lib/dpkg/status.d/libc6.md5sums"].content.decode()
    assert "gconv" not in md5 and "usr/lib/x86_64-linux-gnu/libc.so.6" in md5
    assert all(p in closure.entries for p in ("/var", "/var/lib", "/var/lib/dpkg", "/var/lib/dpkg/status.d"))

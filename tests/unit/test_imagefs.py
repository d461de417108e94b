"""An image's filesystem listed in memory: layers applied with whiteouts (plain and
opaque), hard links, links on the way to a member, per-layer hidden bytes; and a Debian
image's own dpkg database read from it (merged /usr included)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from closure.audit.imagefs import ImageFS
from closure.audit.inventory import from_image
from closure.image.read import open_image

CLI = [sys.executable, "-m", "closure.cli.app"]


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(path: Path, layers: list[list[tuple] | bytes], history: list[str]) -> Path:
    """A multi-layer OCI layout, written with the standard library only. A layer is a
    list of (name, kind, data) entries, or the raw bytes to put in its place."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return d

    descs, diff_ids = [], []
    for entries in layers:
        raw = entries if isinstance(entries, bytes) else _tar(entries)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        gz = gzip.compress(raw, mtime=0)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": "sha256:" + put(gz), "size": len(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": h} for h in history]}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + put(config), "size": len(config)},
                           "layers": descs}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + put(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "t"}}]}
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return path


STATUS = b"Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n"


def layered(tmp_path: Path) -> Path:
    return make_image(tmp_path / "img", [
        [("usr", "dir", None), ("usr/lib", "dir", None), ("lib", "symlink", "usr/lib"),
         ("usr/lib/libfoo.so.1", "file", b"A" * 100), ("etc", "dir", None),
         ("etc/old.conf", "file", b"old" * 10), ("cache", "dir", None), ("cache/a", "file", b"a" * 50),
         ("cache/b", "file", b"b" * 70),
         ("var/lib/dpkg/status", "file", STATUS),
         ("var/lib/dpkg/info/libfoo1:amd64.list", "file", b"/.\n/lib\n/lib/libfoo.so.1\n")],
        [("etc/.wh.old.conf", "file", b""), ("cache/.wh..wh..opq", "file", b""),
         ("cache/c", "file", b"c" * 5), ("lib/libbar.so.1", "file", b"B" * 10),   # through the link
         ("usr/lib/libfoo.so.1", "file", b"A2" * 30), ("usr/lib/alias", "hardlink", "usr/lib/libfoo.so.1")],
    ], ["base layer", "update"])


def test_layers_whiteouts_links_and_hidden_bytes(tmp_path):
    with open_image(str(layered(tmp_path))) as img:
        fs = ImageFS.read(img)
    assert "/etc/old.conf" not in fs.nodes                          # plain whiteout
    assert sorted(fs.listdir("/cache")) == ["c"]                    # opaque dir: lower a, b gone
    assert fs.nodes["/usr/lib/libbar.so.1"].size == 10              # written through /lib -> usr/lib
    assert "/lib/libbar.so.1" not in fs.nodes
    foo = fs.nodes["/usr/lib/libfoo.so.1"]
    assert foo.sha256 == hashlib.sha256(b"A2" * 30).hexdigest() and foo.layer == 1
    assert fs.nodes["/usr/lib/alias"].sha256 == foo.sha256         # hard link: same bytes
    assert fs.layers[0].hidden_bytes == 100 + 30 + 50 + 70          # replaced foo, old.conf, a, b
    assert fs.layers[1].hidden_bytes == 0
    # captured; ".." is taken after the link, as the kernel does (/lib/.. is /usr)
    assert fs.read_bytes("/lib/../../var/lib/dpkg/status") == STATUS
    assert fs.read_bytes("/lib/../var/lib/dpkg/status") is None


def test_debian_image_database_through_the_merged_usr_link(tmp_path):
    inv = from_image(str(layered(tmp_path)))
    assert inv.db.formats == ["dpkg"]
    owners = inv.owners()
    assert [o.package.name for o in owners["/usr/lib/libfoo.so.1"]] == ["libfoo1"]
    assert owners["/lib"] == ()


def test_inspect_multi_layer(tmp_path):
    p = subprocess.run(CLI + ["inspect", str(layered(tmp_path)), "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    f = json.loads(p.stdout)
    assert [layer["created_by"] for layer in f["layers"]] == ["base layer", "update"]
    assert f["hidden_bytes"] == 250
    assert f["config"]["Cmd"] == ["/bin/sh"]


def test_a_layer_that_is_not_a_tar_is_one_line_naming_the_image(tmp_path):
    whole = _tar([("etc", "dir", None), ("etc/big", "file", b"x" * 5000)])
    for name, raw, want in (("garbage", b"\x8a\x01not a tar at all" * 64, "not a tar"),
                            ("cut", whole[:1500], "corrupt tar")):
        image = make_image(tmp_path / name, [raw], ["broken"])     # digests right, content wrong
        for cmd in ("inspect", "sbom"):
            p = subprocess.run(CLI + [cmd, str(image)], capture_output=True, text=True)
            assert p.returncode == 2 and p.stdout == "", (cmd, p.stdout)
            assert p.stderr.startswith(f"closure: error: {image}: layer 1 (sha256:"), p.stderr
            assert want in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_inspect_text_shows_the_whole_run_config(tmp_path):
    """Every run-config key `facts` keeps is on the screen, ports and volumes included."""
    from closure.audit.inspect import facts, text
    inv = from_image(str(layered(tmp_path)))
    inv.image["config"]["config"].update({
        "User": "app", "WorkingDir": "/srv", "StopSignal": "SIGINT", "Env": ["A=1"],
        "Labels": {"k": "v"}, "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}}})
    shown = text(facts(inv)).splitlines()
    for line in ("Cmd         ['/bin/sh']", "User        app", "WorkingDir  /srv", "StopSignal  SIGINT",
                 "Env         A=1", "Label       k=v", "Ports       53/udp 8080/tcp", "Volumes     /data"):
        assert line in shown, line

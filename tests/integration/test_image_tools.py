"""Images as other tools see them: skopeo, umoci, the shared oci-validate.py, and
byte-identical rebuilds under a different umask, TZ, temp dir and file mtimes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from closure.image import ImageOptions, write_image
from closure.image.validate import validate
from closure.model import Closure
from closure.root import Root
from tests.image_fixtures import curl_closure, need, oci_validate  # noqa: F401

ROOT = Root("/")


@pytest.fixture(scope="module", params=["gzip", "zstd"])
def built(request, tmp_path_factory, curl_closure):
    d = tmp_path_factory.mktemp(request.param)
    opts = ImageOptions(compression=request.param, tag="t1")
    return (write_image(curl_closure, ROOT, str(d / "curl"), opts),
            write_image(curl_closure, ROOT, str(d / "curl.tar"), opts))


def skopeo(ref: str) -> dict:
    p = subprocess.run(["skopeo", "inspect", ref], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_skopeo_reads_layout_and_both_archive_faces(built):
    need("skopeo")
    layout, archive = built
    for ref in (f"oci:{layout.path}", f"oci:{layout.path}:t1", f"oci-archive:{archive.path}"):
        doc = skopeo(ref)
        assert doc["Digest"] == layout.manifest_digest and doc["Architecture"] == "amd64"
        assert doc["Layers"] == [layout.layer.digest]
    if archive.compression.kind == "zstd":
        # docker load (20.10) cannot read zstd layers: the archive is OCI-only, and says so.
        p = subprocess.run(["skopeo", "inspect", f"docker-archive:{archive.path}"], capture_output=True, text=True)
        assert p.returncode != 0 and archive.notes and "OCI archive only" in archive.notes[0]
        return
    docker = skopeo(f"docker-archive:{archive.path}")
    assert docker["Layers"] == [layout.layer.diff_id]   # docker-archive reports uncompressed ids
    assert docker["Os"] == "linux"
    assert archive.notes == ()


def test_shared_validator_and_ours_agree(built):
    for result in built:
        p = oci_validate(result.path)
        assert p.returncode == 0, p.stdout + p.stderr
        assert validate(result.path) == []


def test_umoci_unpacks_what_the_plan_holds(built, curl_closure, tmp_path):
    need("umoci")
    layout, _ = built
    if layout.compression.kind == "zstd":
        pytest.skip("umoci 0.4 cannot read zstd layers")
    bundle = tmp_path / "bundle"
    p = subprocess.run(["umoci", "unpack", "--image", f"{layout.path}:t1", str(bundle)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rootfs = bundle / "rootfs"
    found = set()
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            found.add("/" + os.path.relpath(os.path.join(dirpath, name), rootfs))
    wanted = set(curl_closure.entries)
    for path in list(wanted):
        while (path := os.path.dirname(path)) != "/":
            wanted.add(path)
    assert found == wanted
    assert os.readlink(rootfs / "lib64") == "usr/lib64"
    assert (rootfs / "usr/bin/curl").read_bytes() == open("/usr/bin/curl", "rb").read()
    assert (rootfs / "usr/bin/curl").stat().st_mtime == 0


_BUILD = """
import json, sys
from closure.image import ImageOptions, write_image
from closure.model import Closure
from closure.root import Root
closure = Closure.from_json(json.load(open(sys.argv[1])))
for out in sys.argv[3:]:
    write_image(closure, Root(sys.argv[2]), out, ImageOptions(compression="gzip"))
"""


def _copy_root(closure: Closure, dest) -> None:
    """The closure's files copied into a fresh root, so their mtimes can be changed."""
    for e in closure.sorted_entries():
        host = os.path.join(dest, e.path.lstrip("/"))
        os.makedirs(os.path.dirname(host), exist_ok=True)
        if e.type == "symlink":
            os.symlink(e.target, host)
        elif e.type == "file":
            shutil.copyfile(e.source, host)


def test_rebuild_is_byte_identical(curl_closure, tmp_path):
    spec = tmp_path / "closure.json"
    spec.write_text(json.dumps(curl_closure.to_json()))
    outs = []
    for i, (umask, tz, mtime) in enumerate([(0o022, "UTC", 1_000_000_000), (0o077, "Asia/Kolkata", 1_700_000_000)]):
        work = tmp_path / f"run{i}" / ("x" * (i + 1))
        root = work / "root"
        _copy_root(curl_closure, root)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
        env = dict(os.environ, TZ=tz, TMPDIR=str(work), SOURCE_DATE_EPOCH="1234567890")
        p = subprocess.run([sys.executable, "-c", _BUILD, str(spec), str(root), str(work / "img"),
                            str(work / "img.tar")], env=env, capture_output=True, text=True,
                           preexec_fn=lambda m=umask: os.umask(m))
        assert p.returncode == 0, p.stderr
        outs.append(work)
    a, b = outs
    assert (a / "img.tar").read_bytes() == (b / "img.tar").read_bytes()
    for dirpath, _, filenames in os.walk(a / "img"):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), a / "img")
            assert (a / "img" / rel).read_bytes() == (b / "img" / rel).read_bytes(), rel
    assert sorted(os.listdir(b / "img/blobs/sha256")) == sorted(os.listdir(a / "img/blobs/sha256"))

"""Image readers for `closure slim`: every container format and compression, image choice
by tag, and digests checked while reading."""
from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from closure.errors import BadInput
from closure.image.extract import unpacked
from closure.image.read import open_image, sniff
from tests.slim_images import (compress, config_doc, d, f, sha, tar_of, write_docker_archive,
                               write_oci)

LOWER = tar_of([d("bin"), f("bin/tool", b"#!/bin/sh\n", 0o755), f("gone", b"old")])
UPPER = tar_of([f(".wh.gone", b""), f("new", b"new")])


def files_of(image, ref=None, tmp=None) -> dict:
    with open_image(str(image), ref) as src, unpacked(src, tmpdir=str(tmp) if tmp else None) as (root, _):
        out = {}
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = p.read_bytes()
        return out


@pytest.mark.parametrize("compression", ["gzip", "zstd", "xz", "none"])
def test_oci_archive_every_compression(tmp_path, compression):
    img = write_oci(tmp_path / "i.tar", [LOWER, UPPER], compression=compression, cmd=["/bin/tool"])
    assert files_of(img) == {"bin/tool": b"#!/bin/sh\n", "new": b"new"}


@pytest.mark.parametrize("declared", ["+gzip", "+zstd", ""])
def test_media_type_is_not_trusted_over_magic(tmp_path, declared):
    # zstd bytes declared as gzip, gzip bytes declared plain...: the magic bytes decide.
    kind = {"+gzip": "zstd", "+zstd": "none", "": "gzip"}[declared]
    img = write_oci(tmp_path / "i.tar", [LOWER], compression=kind,
                    media_type="application/vnd.oci.image.layer.v1.tar" + declared, cmd=["/x"])
    assert "bin/tool" in files_of(img)


def test_oci_layout_directory(tmp_path):
    img = write_oci(tmp_path / "layout", [LOWER, UPPER], archive=False, ref="v3", cmd=["/x"])
    with open_image(str(img)) as src:
        assert src.format == "oci" and src.reference == "v3" and len(src.layers) == 2
        assert src.manifest_digest.startswith("sha256:")
    assert "new" in files_of(img)


def test_sniff():
    assert sniff(compress(b"x", "gzip")) == "gzip"
    assert sniff(compress(b"x", "zstd")) == "zstd"
    assert sniff(compress(b"x", "xz")) == "xz"
    assert sniff(b"usr/\0\0\0") == "none"


def test_docker_archive_old_shape_and_tags(tmp_path):
    other = tar_of([f("other", b"2")])
    img = write_docker_archive(tmp_path / "d.tar", [
        (["app:1", "app:latest"], [LOWER, UPPER], None),
        (["db:9"], [other], None)])
    with pytest.raises(BadInput, match="holds 2 images .*--ref"):
        open_image(str(img))
    assert files_of(img, "app:1") == {"bin/tool": b"#!/bin/sh\n", "new": b"new"}
    with pytest.raises(BadInput, match="no image named 'db'"):
        open_image(str(img), "db")                    # db means db:latest, which is not there
    assert files_of(img, "db:9") == {"other": b"2"}
    assert files_of(img, "docker.io/library/db:9") == {"other": b"2"}
    assert files_of(img, "9") == {"other": b"2"}, "a bare tag is enough when unique"
    with open_image(str(img), "app:latest") as src:
        assert src.reference == "app:latest"
        assert src.format == "docker-archive" and src.manifest_digest is None
        assert src.names == ("app:1", "app:latest")
        assert all(layer.diff_id for layer in src.layers)
    with pytest.raises(BadInput, match="no image named 'nope:1'.*app:1"):
        open_image(str(img), "nope:1")


def test_docker_archive_before_manifest_json(tmp_path):
    """docker save before 1.10: only `repositories` and each layer's json (parent chain)."""
    img = write_docker_archive(tmp_path / "legacy.tar", [(["old:1"], [LOWER, UPPER], None)], manifest=False)
    with open_image(str(img)) as src:
        assert src.reference == "old:1" and [layer.rel.endswith("/layer.tar") for layer in src.layers] == [True, True]
        assert src.config["config"]["Cmd"] == ["/bin/true"]
    assert files_of(img) == {"bin/tool": b"#!/bin/sh\n", "new": b"new"}


def test_untagged_manifest_entry_named_by_repositories(tmp_path):
    img = write_docker_archive(tmp_path / "d.tar", [(["web:2"], [LOWER], None)])
    layout = tmp_path / "x"
    with tarfile.open(img) as t:
        t.extractall(layout, filter="data")
    doc = json.loads((layout / "manifest.json").read_text())
    doc[0]["RepoTags"] = None
    (layout / "manifest.json").write_text(json.dumps(doc))
    with open_image(str(layout), "web:2") as src:      # an unpacked docker-archive dir
        assert src.names == ("web:2",)


def _tamper(img: Path, tmp_path: Path, edit) -> Path:
    layout = tmp_path / "tampered"
    shutil.rmtree(layout, ignore_errors=True)
    with tarfile.open(img) as t:
        t.extractall(layout, filter="data")
    edit(layout)
    return layout


def test_blob_digest_checked_while_reading(tmp_path):
    img = write_oci(tmp_path / "i.tar", [LOWER], compression="none", cmd=["/x"])

    def flip(layout):
        blob = max((layout / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
        data = bytearray(blob.read_bytes())
        data[600] ^= 1           # inside the first file's contents: still a valid tar
        blob.write_bytes(bytes(data))
    with pytest.raises(BadInput, match="does not match its digest"):
        files_of(_tamper(img, tmp_path, flip), tmp=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.tar", "tampered"], "temp root removed"


def test_diff_id_checked(tmp_path):
    wrong = config_doc([sha(b"something else")], cmd=["/x"])
    img = write_oci(tmp_path / "i.tar", [LOWER], wrong)
    with pytest.raises(BadInput, match="diff_id"):
        files_of(img, tmp=tmp_path)


def test_manifest_and_config_digests_checked(tmp_path):
    img = write_oci(tmp_path / "i.tar", [LOWER], cmd=["/x"])

    def edit_config(layout):
        for blob in (layout / "blobs/sha256").iterdir():
            if b'"architecture"' in blob.read_bytes()[:4096] and blob.stat().st_size < 4096:
                blob.write_bytes(blob.read_bytes().replace(b"/x", b"/y"))
    with pytest.raises(BadInput, match="config .*bytes, descriptor says|content does not match"):
        open_image(str(_tamper(img, tmp_path, edit_config)))


@pytest.mark.parametrize("junk,match", [
    (b"", "not an image"), (b"not a tar at all" * 100, "not an image"),
])
def test_not_an_image(tmp_path, junk, match):
    p = tmp_path / "junk.tar"
    p.write_bytes(junk)
    with pytest.raises(BadInput, match=match):
        open_image(str(p))


def test_missing_path(tmp_path):
    with pytest.raises(BadInput, match="no such image"):
        open_image(str(tmp_path / "nope.tar"))


def test_multi_platform_index_takes_the_host_platform(tmp_path):
    """An index inside the layout's index: the linux/<host arch> manifest is chosen."""
    amd = write_oci(tmp_path / "amd", [LOWER], archive=False, cmd=["/x"])
    arm = write_oci(tmp_path / "arm", [UPPER], archive=False, cmd=["/x"], arch="arm64")
    blobs = amd / "blobs/sha256"
    for blob in (arm / "blobs/sha256").iterdir():
        blob.rename(blobs / blob.name)
    entries = []
    for layout, arch in ((amd, "amd64"), (arm, "arm64")):
        desc = json.loads((layout / "index.json").read_text())["manifests"][0]
        desc.pop("annotations")
        desc["platform"] = {"architecture": arch, "os": "linux"}
        entries.append(desc)
    nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": entries[::-1]}).encode()
    (blobs / sha(nested).split(":")[1]).write_bytes(nested)
    (amd / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(nested), "size": len(nested),
         "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
    with open_image(str(amd), arch="amd64") as src:
        assert src.reference == "multi" and src.layers[0].diff_id == sha(LOWER)
    with open_image(str(amd), arch="arm64") as src:
        assert src.layers[0].diff_id == sha(UPPER)
    with pytest.raises(BadInput, match="no linux/s390x image"):
        open_image(str(amd), arch="s390x")

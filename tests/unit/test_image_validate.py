"""Our validator catches what a runtime would trip on: bad digests, sizes, diff_ids,
broken chains, media types, unsafe layer members, a disagreeing manifest.json."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile

import pytest

from closure.image import ImageOptions, write_image
from closure.image.oci import MT_CONFIG, MT_LAYER, MT_MANIFEST, canonical_json, write_json_blob
from closure.image.validate import validate
from closure.model import Closure, Entry, Reason
from closure.root import Root


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    c = Closure(targets=["/usr/bin/env"])
    c.add(Entry("/usr/bin/env", "file", mode=0o755, source="/usr/bin/env"), Reason("target"))
    out = tmp_path_factory.mktemp("good") / "img"
    r = write_image(c, Root("/"), str(out))
    return out, r


@pytest.fixture
def img(good, tmp_path):
    out, r = good
    copy = tmp_path / "img"
    shutil.copytree(out, copy)
    return copy, r


def blob(path, digest):
    return path / "blobs" / "sha256" / digest.split(":")[1]


def test_good_image_is_valid(good):
    assert validate(str(good[0])) == []


def test_flipped_layer_byte(img):
    path, r = img
    b = blob(path, r.layer.digest)
    data = bytearray(b.read_bytes())
    data[len(data) // 2] ^= 0xFF
    b.write_bytes(bytes(data))
    problems = validate(str(path))
    assert any("does not match its digest" in p or "decompress" in p for p in problems), problems


def test_truncated_blob_size(img):
    path, r = img
    b = blob(path, r.config_digest)
    b.write_bytes(b.read_bytes()[:-1])
    assert any("bytes, descriptor says" in p for p in validate(str(path)))


def test_missing_blob(img):
    path, r = img
    blob(path, r.layer.digest).unlink()
    assert any("missing" in p for p in validate(str(path)))


def test_bad_oci_layout_file(img):
    path, _ = img
    (path / "oci-layout").write_text('{"imageLayoutVersion": "9"}')
    assert any("imageLayoutVersion" in p for p in validate(str(path)))


def test_index_media_type_and_missing_manifests(img):
    path, _ = img
    index = json.loads((path / "index.json").read_text())
    index["manifests"][0]["mediaType"] = "application/json"
    (path / "index.json").write_text(json.dumps(index))
    assert any("unexpected media type" in p for p in validate(str(path)))
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    assert any("no manifests" in p for p in validate(str(path)))


def handmade(path, members: list[tuple[tarfile.TarInfo, bytes]], diff_id: str | None = None,
             layer_type=MT_LAYER + "+gzip"):
    """A layout around a crafted layer, with consistent digests unless told otherwise."""
    raw_buf = io.BytesIO()
    with tarfile.open(fileobj=raw_buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data))
    raw = raw_buf.getvalue()
    layer = gzip.compress(raw, mtime=0) if layer_type.endswith("gzip") else raw
    (path / "blobs/sha256").mkdir(parents=True)
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    (path / "blobs/sha256" / digest[7:]).write_bytes(layer)
    config = write_json_blob(str(path), MT_CONFIG, {
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id or "sha256:" + hashlib.sha256(raw).hexdigest()]}})
    manifest = write_json_blob(str(path), MT_MANIFEST, {
        "schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config.to_json(),
        "layers": [{"mediaType": layer_type, "digest": digest, "size": len(layer)}]})
    (path / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": [manifest.to_json()]}))
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def member(name, kind=tarfile.REGTYPE, data=b"", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data), link
    return info, data


def test_handmade_layout_is_valid(tmp_path):
    handmade(tmp_path, [member("etc", tarfile.DIRTYPE), member("etc/x", data=b"1")])
    assert validate(str(tmp_path)) == []


def test_wrong_diff_id(tmp_path):
    handmade(tmp_path, [member("x", data=b"1")], diff_id="sha256:" + "0" * 64)
    assert any("!= diff_id" in p for p in validate(str(tmp_path)))


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../../b"])
def test_unsafe_member_names(tmp_path, name):
    handmade(tmp_path, [member(name, data=b"x")])
    assert any("unsafe member name" in p for p in validate(str(tmp_path)))


def test_hard_link_to_nothing_and_duplicates(tmp_path):
    handmade(tmp_path, [member("a", data=b"1"), member("a", data=b"2"),
                        member("b", tarfile.LNKTYPE, link="nowhere")])
    problems = validate(str(tmp_path))
    assert any("duplicate member" in p for p in problems)
    assert any("not an earlier member" in p for p in problems)


def test_unknown_layer_media_type(tmp_path):
    handmade(tmp_path, [member("x")], layer_type="application/x-tar")
    assert any("unexpected media type" in p for p in validate(str(tmp_path)))


def test_archive_with_disagreeing_manifest_json(tmp_path):
    out = tmp_path / "x.tar"
    write_image(Closure(targets=[]), Root("/"), str(out), ImageOptions(name="empty"))
    assert validate(str(out)) == []
    # Rewrite manifest.json to point at a layer that is not there.
    with tarfile.open(out) as t:
        files = {m.name: (m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()}
    doc = json.loads(files["manifest.json"][1])
    doc[0]["Layers"] = ["blobs/sha256/" + "1" * 64]
    files["manifest.json"] = (files["manifest.json"][0], json.dumps(doc).encode())
    files["manifest.json"][0].size = len(files["manifest.json"][1])
    with tarfile.open(out, "w") as t:
        for m, data in files.values():
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    assert any("manifest.json[0] Layers[0]" in p for p in validate(str(out)))


def test_not_an_image(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    from closure.errors import BadInput
    with pytest.raises(BadInput):
        validate(str(tmp_path / "junk.tar"))
    (tmp_path / "empty").mkdir()
    assert validate(str(tmp_path / "empty")) == ["neither index.json (OCI) nor manifest.json (docker-archive) found"]


def test_media_type_that_lies_about_compression(tmp_path):
    handmade(tmp_path, [member("x", data=b"1")], layer_type=MT_LAYER + "+zstd")   # plain tar bytes
    assert any("but the blob is" in p for p in validate(str(tmp_path)))

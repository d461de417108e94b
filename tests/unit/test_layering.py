"""--layers: files grouped by the package origin that owns them (the host's dpkg database),
each layer deterministic on its own, so images of one root share layer blobs."""
from __future__ import annotations

import json
import os
import tarfile

import pytest

from closure.errors import BadInput
from closure.image import ImageOptions, write_image
from closure.image.layering import MAX_LAYERS, parse_strategy
from closure.image.validate import validate
from closure.root import Root
from tests.image_fixtures import closure_from_ldd, curl_closure, oci_validate  # noqa: F401

pytestmark = pytest.mark.skipif(not os.path.exists("/var/lib/dpkg/status"), reason="needs a dpkg root")


def layer_files(path) -> list[set[str]]:
    """The regular files and links of each layer of the OCI layout at path, bottom first."""
    index = json.load(open(os.path.join(path, "index.json")))
    blob = lambda d: os.path.join(path, "blobs", "sha256", d.split(":")[1])  # noqa: E731
    manifest = json.load(open(blob(index["manifests"][0]["digest"])))
    out = []
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"])) as t:
            out.append({m.name for m in t.getmembers() if not m.isdir()})
    return out


def test_strategies_parse():
    assert parse_strategy("one") == 1 and parse_strategy("auto") == 10 and parse_strategy("4") == 4
    for bad in ("0", str(MAX_LAYERS + 1), "many"):
        with pytest.raises(BadInput):
            parse_strategy(bad)


def test_one_is_the_single_layer_image(curl_closure, tmp_path):  # noqa: F811
    default = write_image(curl_closure, Root("/"), str(tmp_path / "a"))
    one = write_image(curl_closure, Root("/"), str(tmp_path / "b"), ImageOptions(layers="one"))
    assert one.manifest_digest == default.manifest_digest and len(one.layers) == 1


def test_auto_splits_by_package_and_keeps_every_file_once(curl_closure, tmp_path):  # noqa: F811
    single = write_image(curl_closure, Root("/"), str(tmp_path / "one"))
    auto = write_image(curl_closure, Root("/"), str(tmp_path / "auto"), ImageOptions(layers="auto"))
    names = [n for n, _ in auto.layers]
    assert 2 <= len(names) <= MAX_LAYERS and names[-1] == "top" and "glibc" in names
    assert names[:-1] == sorted(names[:-1])
    per_layer = layer_files(tmp_path / "auto")
    everything = layer_files(tmp_path / "one")[0]
    assert set().union(*per_layer) == everything
    assert sum(len(s) for s in per_layer) == len(everything), "no file is in two layers"
    libc = [n for n in everything if n.endswith("/libc.so.6")]
    assert libc and libc[0] in per_layer[names.index("glibc")]
    assert validate(str(tmp_path / "auto")) == [] and oci_validate(tmp_path / "auto").returncode == 0
    assert auto.files == single.files and auto.content_bytes == single.content_bytes
    again = write_image(curl_closure, Root("/"), str(tmp_path / "again"), ImageOptions(layers="auto"))
    assert again.manifest_digest == auto.manifest_digest


def test_a_budget_caps_the_layer_count(curl_closure, tmp_path):  # noqa: F811
    r = write_image(curl_closure, Root("/"), str(tmp_path / "x"), ImageOptions(layers="3"))
    assert len(r.layers) == 3 and r.layers[-1][0] == "top"


def test_same_package_files_same_layer_blob_in_two_images(tmp_path):
    """true and echo need the same glibc files: their glibc layers are one blob."""
    a = write_image(closure_from_ldd("/usr/bin/true"), Root("/"), str(tmp_path / "true"),
                    ImageOptions(layers="auto"))
    b = write_image(closure_from_ldd("/usr/bin/echo"), Root("/"), str(tmp_path / "echo"),
                    ImageOptions(layers="auto"))
    la, lb = dict(a.layers), dict(b.layers)
    assert "glibc" in la and la["glibc"].digest == lb["glibc"].digest
    assert la["top"].digest != lb["top"].digest
    assert a.manifest_digest != b.manifest_digest


def test_archive_carries_every_layer(curl_closure, tmp_path):  # noqa: F811
    r = write_image(curl_closure, Root("/"), str(tmp_path / "c.tar"), ImageOptions(layers="auto"))
    with tarfile.open(tmp_path / "c.tar") as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert len(manifest[0]["Layers"]) == len(r.layers) > 1
    assert validate(str(tmp_path / "c.tar")) == []

"""Fuzzing every reader of untrusted bytes: the ELF reader (64-bit fields set to anything),
ld.so.cache, the image readers (JSON documents of any shape in a layout, layer bytes of
any kind) and the spec loader. The only exceptions allowed are closure's own typed ones:
no traceback, whatever the input."""
from __future__ import annotations

import json
import os
import shutil
import struct
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from closure.audit.imagefs import ImageFS
from closure.elf.ldcache import LdCache, parse_cache
from closure.elf.reader import data_sections, read_elf
from closure.errors import ClosureError, NotElf
from closure.image.read import open_image
from closure.root import Root
from closure.spec import KEYS, load_spec
from tests.hostile_images import layout
from tests.slim_images import d, f, sym, tar_of

TRUE = Path("/usr/bin/true").read_bytes()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _elf_root(tmp: Path, data: bytes) -> Root:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "x").write_bytes(data)
    return Root(str(tmp))


@FUZZ
@given(writes=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 2**64 - 1)), min_size=1, max_size=6))
def test_elf_reader_with_any_64bit_fields(tmp_path, writes):
    data = bytearray(TRUE)
    for off, value in writes:
        data[off:off + 8] = value.to_bytes(8, "little")
    root = _elf_root(tmp_path / "elf", bytes(data[:len(TRUE)]))
    for read in (read_elf, data_sections):
        try:
            read(root, "/x")
        except NotElf:
            pass


def test_elf_offsets_past_2_63_are_not_elf(tmp_path):
    # e_phoff (32) and e_shoff (40), and a PT_DYNAMIC offset: slicing with them overflowed
    for off in (32, 40):
        data = bytearray(TRUE)
        data[off:off + 8] = (2**64 - 9).to_bytes(8, "little")
        root = _elf_root(tmp_path / str(off), bytes(data))
        try:
            read_elf(root, "/x")
        except NotElf:
            pass


def _cache_with(nlibs: int, ext_count: int | None = None) -> bytes:
    head = b"glibc-ld.so.cache1.1" + struct.pack("<IIB3xI", nlibs, 0, 0, 48 if ext_count is not None else 0)
    head += b"\0" * (48 - len(head))
    if ext_count is not None:
        head += struct.pack("<II", 0xEAA42174, ext_count)
    return head + b"\0" * 64


def test_ld_so_cache_claiming_2_28_entries(tmp_path):
    for data in (_cache_with(1 << 28), _cache_with(0, ext_count=1 << 28)):
        try:
            parse_cache(data)
            raise AssertionError("a cache claiming more than it holds parsed")
        except ValueError as e:
            assert "more than it holds" in str(e)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/ld.so.cache").write_bytes(_cache_with(1 << 28))
    start = time.monotonic()
    assert LdCache(Root(str(root))).lookup("libc.so.6", 64, 62) == ()
    assert time.monotonic() - start < 1


host_cache = Path("/etc/ld.so.cache").read_bytes() if os.path.isfile("/etc/ld.so.cache") else b""


@FUZZ
@given(cut=st.integers(0, max(len(host_cache), 1)),
       writes=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1)), max_size=6))
def test_ld_so_cache_fuzzed(cut, writes):
    data = bytearray(host_cache[:cut])
    for off, value in writes:
        data[off:off + 4] = value.to_bytes(4, "little")
    try:
        parse_cache(bytes(data))
    except (ValueError, struct.error):
        pass        # LdCache takes either as "no usable cache"


# -- images -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["sha256:" + "0" * 64, "application/vnd.oci.image.index.v1+json",
                       "application/vnd.oci.image.manifest.v1+json", "linux", "amd64"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["manifests", "mediaType", "digest", "size", "platform", "architecture", "os",
                         "config", "layers", "rootfs", "diff_ids", "Env", "Entrypoint", "Labels",
                         "annotations", "history", "schemaVersion", "Config", "Layers", "RepoTags"])
        | st.text(max_size=8), inner, max_size=6),
    max_leaves=30)


def _read_all(path: Path) -> None:
    try:
        with open_image(str(path)) as img:
            ImageFS.read(img)
    except ClosureError:
        pass


@FUZZ
@given(which=st.sampled_from(["index", "manifest", "config"]), doc=JSON)
def test_image_json_of_any_shape(tmp_path, which, doc):
    d_ = tmp_path / "img"
    shutil.rmtree(d_, ignore_errors=True)
    d_.mkdir()
    make = layout(archive=False, **{which: (lambda _m: doc) if which == "index" else doc})
    if which != "index" and doc is None:
        return
    _read_all(make(d_))


@FUZZ
@given(docker=JSON)
def test_docker_manifest_of_any_shape(tmp_path, docker):
    from tests.hostile_images import docker as docker_archive
    d_ = tmp_path / "dock"
    shutil.rmtree(d_, ignore_errors=True)
    d_.mkdir()
    _read_all(docker_archive(docker, {"c.json": json.dumps({"rootfs": {"diff_ids": []}}).encode()})(d_))


GOOD_LAYER = tar_of([d("etc"), f("etc/a", b"x" * 700), sym("etc/l", "a"), d("usr"), f("usr/.wh.z", b"")])


@FUZZ
@given(cut=st.integers(0, len(GOOD_LAYER)),
       flips=st.lists(st.tuples(st.integers(0, len(GOOD_LAYER) - 1), st.integers(0, 255)), max_size=10))
def test_layer_bytes_of_any_kind(tmp_path, cut, flips):
    data = bytearray(GOOD_LAYER[:cut])
    for off, val in flips:
        if off < len(data):
            data[off] = val
    d_ = tmp_path / "layer"
    shutil.rmtree(d_, ignore_errors=True)
    d_.mkdir()
    # the config's diff_id is left out: the tar parser, not the digest check, meets the bytes
    make = layout(archive=False, layers=[bytes(data)], config={"rootfs": {"type": "layers"}})
    _read_all(make(d_))


# -- specs --------------------------------------------------------------------------------

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


TOML_VALUE = st.recursive(st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=12),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                          max_leaves=10)


@FUZZ
@given(items=st.dictionaries(st.sampled_from(sorted(KEYS)) | st.text(max_size=6), TOML_VALUE, max_size=6))
def test_spec_with_any_values(tmp_path, items):
    p = tmp_path / "closure.toml"
    p.write_text("".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in items.items()))
    try:
        load_spec(str(p))
    except ClosureError:
        pass


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_spec_of_any_bytes(tmp_path, raw):
    p = tmp_path / "closure.toml"
    p.write_bytes(raw)
    try:
        load_spec(str(p))
    except ClosureError:
        pass

"""The layer writer: order, headers, modes, links, digests, streaming, bad input."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tracemalloc

import pytest
import zstandard

from closure.errors import BadInput
from closure.image.compress import GZIP_HEADER, compression
from closure.image.tarlayer import plan_layer, tar_header, write_layer
from closure.model import Closure, Entry, Reason
from closure.root import Root
from tests.image_fixtures import curl_closure  # noqa: F401  (fixture)

R = Reason("include")


def make(*entries: Entry, root_path="/") -> Closure:
    c = Closure(root=root_path, targets=[])
    for e in entries:
        c.add(e, R)
    return c


def layer_bytes(closure, root, kind="none", **kw):
    buf = io.BytesIO()
    digests = write_layer(plan_layer(closure, root, **kw), root, buf, compression(kind), mtime=0)
    return buf.getvalue(), digests


def members(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as t:
        return t.getmembers()


@pytest.fixture
def tree(tmp_path):
    """A small root: files with odd modes, a hard link pair, links, a deep path."""
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (tmp_path / "usr/bin/tool").chmod(0o4755)
    os.link(tmp_path / "usr/bin/tool", tmp_path / "usr/bin/tool-again")
    (tmp_path / "etc").mkdir(mode=0o700)
    (tmp_path / "etc/conf").write_bytes(b"x" * 3000)
    return Root(str(tmp_path))


def test_parents_first_and_made_up_with_0755(tree):
    c = make(Entry("/usr/bin/tool", "file", mode=0o755, source="/usr/bin/tool"),
             Entry("/etc", "dir", mode=0o700),
             Entry("/etc/conf", "file", mode=0o600, source="/etc/conf"),
             Entry("/a/b/c/d", "file", mode=0o644, content=b"deep"))
    plan = plan_layer(c, tree)
    paths = [i.path for i in plan.items]
    assert paths == ["/a", "/a/b", "/a/b/c", "/a/b/c/d", "/etc", "/etc/conf", "/usr", "/usr/bin", "/usr/bin/tool"]
    modes = {i.path: i.mode for i in plan.items}
    assert modes["/a/b"] == 0o755 and modes["/usr"] == 0o755   # made up
    assert modes["/etc"] == 0o700 and modes["/etc/conf"] == 0o600   # kept
    for i, path in enumerate(paths):   # every parent comes before its children
        parent = os.path.dirname(path)
        assert parent == "/" or paths.index(parent) < i


def test_component_order_keeps_a_directory_together(tree):
    c = make(Entry("/usr/bin-x", "file", content=b"1"), Entry("/usr/bin/z", "file", content=b"2"))
    assert [i.path for i in plan_layer(c, tree).items] == ["/usr", "/usr/bin", "/usr/bin/z", "/usr/bin-x"]


def test_headers_are_normalised(tree):
    c = make(Entry("/usr/bin/tool", "file", mode=0o755, source="/usr/bin/tool"),
             Entry("/lib", "symlink", target="usr/lib"))
    raw, _ = layer_bytes(c, tree)
    ms = members(raw)
    assert [m.name for m in ms] == ["lib", "usr", "usr/bin", "usr/bin/tool"]
    for m in ms:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0)
    assert raw[257:265] == b"ustar\x0000"   # POSIX (PAX-capable) magic, not GNU
    assert ms[0].issym() and ms[0].linkname == "usr/lib"


def test_mtime_comes_from_source_date_epoch(tree, monkeypatch):
    from closure.image.epoch import source_date_epoch
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    c = make(Entry("/f", "file", content=b"x"))
    buf = io.BytesIO()
    write_layer(plan_layer(c, tree), tree, buf, compression("none"), mtime=source_date_epoch())
    assert {m.mtime for m in members(buf.getvalue())} == {1700000000}


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", " 12", "1e9", "99999999999999"])
def test_malformed_source_date_epoch_is_bad_input(monkeypatch, value):
    from closure.image.epoch import source_date_epoch
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(BadInput):
        source_date_epoch()


def test_source_date_epoch_default_zero(monkeypatch):
    from closure.image.epoch import rfc3339, source_date_epoch
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch() == 0 and rfc3339(0) == "1970-01-01T00:00:00Z"


def test_setuid_stripped_unless_kept(tree):
    c = make(Entry("/usr/bin/tool", "file", mode=0o6755, source="/usr/bin/tool"))
    assert plan_layer(c, tree).items[-1].mode == 0o755
    assert plan_layer(c, tree, keep_setuid=True).items[-1].mode == 0o6755
    raw, _ = layer_bytes(c, tree, keep_setuid=True)
    assert members(raw)[-1].mode == 0o6755


def test_same_inode_twice_becomes_a_hard_link(tree):
    c = make(Entry("/usr/bin/tool", "file", mode=0o755, source="/usr/bin/tool"),
             Entry("/usr/bin/tool-again", "file", mode=0o755, source="/usr/bin/tool-again"),
             Entry("/opt/copy", "file", mode=0o755, source="/usr/bin/tool"))
    raw, _ = layer_bytes(c, tree)
    by_name = {m.name: m for m in members(raw)}
    assert by_name["opt/copy"].isreg()   # first in order is the real file
    assert by_name["usr/bin/tool"].islnk() and by_name["usr/bin/tool"].linkname == "opt/copy"
    assert by_name["usr/bin/tool-again"].islnk() and by_name["usr/bin/tool-again"].linkname == "opt/copy"
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        assert t.extractfile("usr/bin/tool-again").read() == b"#!/bin/sh\necho tool\n"


def test_source_read_through_links_in_the_root(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real/lib.so.1.2").write_bytes(b"ELF-ish")
    (tmp_path / "lib").symlink_to("/real")   # absolute: must resolve inside the root
    root = Root(str(tmp_path))
    c = make(Entry("/usr/lib/lib.so", "file", mode=0o644, source="/lib/lib.so.1.2"))
    raw, _ = layer_bytes(c, root)
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        assert t.extractfile("usr/lib/lib.so").read() == b"ELF-ish"


def test_symlink_target_is_stored_as_the_link_holds_it(tree):
    c = make(Entry("/lib64/ld.so", "symlink", target="/lib/x86_64-linux-gnu/ld.so"),
             Entry("/usr/lib/libz.so.1", "symlink", target="libz.so.1.2.13"))
    by_name = {m.name: m for m in members(layer_bytes(c, tree)[0])}
    assert by_name["lib64/ld.so"].linkname == "/lib/x86_64-linux-gnu/ld.so"
    assert by_name["usr/lib/libz.so.1"].linkname == "libz.so.1.2.13"
    assert by_name["lib64/ld.so"].mode == 0o777


def test_excludes_take_the_path_and_everything_below(tree):
    c = make(Entry("/usr/share/doc/a/README", "file", content=b"doc"),
             Entry("/usr/share/man/x.1", "file", content=b"man"),
             Entry("/usr/lib/libx.a", "file", content=b"ar"),
             Entry("/usr/lib/libx.so", "file", content=b"so"))
    paths = [i.path for i in plan_layer(c, tree, excludes=["/usr/share/doc", "*.a"]).items]
    assert "/usr/share/doc" not in paths and "/usr/share/doc/a/README" not in paths
    assert "/usr/lib/libx.a" not in paths and "/usr/lib/libx.so" in paths and "/usr/share/man/x.1" in paths


def test_long_and_unicode_names_use_pax(tree):
    long = "/" + "/".join(["d" * 60] * 3) + "/fïle"
    raw, _ = layer_bytes(make(Entry(long, "file", content=b"z")), tree)
    assert members(raw)[-1].name == long.lstrip("/")


@pytest.mark.parametrize("bad", [
    Entry("/usr/../etc/x", "file", content=b""),
    Entry("relative", "file", content=b""),
    Entry("/x", "file"),                     # nothing to copy
    Entry("/x", "fifo"),
    Entry("/x", "symlink"),                  # no target
    Entry("/x", "file", source="/nonexistent"),
    Entry("/x", "file", source="/usr/bin"),  # a directory
])
def test_bad_entries_are_bad_input(tree, bad):
    c = Closure()
    c.entries[bad.path] = bad
    with pytest.raises(BadInput):
        plan_layer(c, tree)


def test_entry_under_a_symlink_entry_is_refused(tree):
    c = make(Entry("/lib", "symlink", target="usr/lib"), Entry("/lib/x.so", "file", content=b""))
    with pytest.raises(BadInput, match="lies under /lib"):
        plan_layer(c, tree)


def test_file_that_changes_after_planning_is_refused(tree, tmp_path):
    c = make(Entry("/etc/conf", "file", mode=0o644, source="/etc/conf"))
    plan = plan_layer(c, tree)
    (tmp_path / "etc/conf").write_bytes(b"short")
    with pytest.raises(BadInput, match="shrank"):
        write_layer(plan, tree, io.BytesIO(), compression("gzip"), mtime=0)
    (tmp_path / "etc/conf").write_bytes(b"y" * 5000)
    with pytest.raises(BadInput, match="grew"):
        write_layer(plan, tree, io.BytesIO(), compression("gzip"), mtime=0)


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_digests_cover_exactly_the_bytes(curl_closure, kind):
    root = Root("/")
    buf = io.BytesIO()
    d = write_layer(plan_layer(curl_closure, root), root, buf, compression(kind), mtime=0)
    blob = buf.getvalue()
    raw = {"gzip": gzip.decompress, "none": bytes,
           "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}[kind](blob)
    assert d.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and d.size == len(blob)
    assert d.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest() and d.raw_size == len(raw)
    assert len(raw) % tarfile.RECORDSIZE == 0
    names = {m.name for m in members(raw)}
    assert "usr/bin/curl" in names and "usr/lib64/ld-linux-x86-64.so.2" in names
    # Same bytes on a second run.
    again = io.BytesIO()
    write_layer(plan_layer(curl_closure, root), root, again, compression(kind), mtime=0)
    assert again.getvalue() == blob


def test_gzip_header_has_no_name_and_no_time(curl_closure):
    root = Root("/")
    buf = io.BytesIO()
    write_layer(plan_layer(curl_closure, root), root, buf, compression("gzip"), mtime=0)
    blob = buf.getvalue()
    assert blob[:10] == GZIP_HEADER
    assert blob[3] == 0 and blob[4:8] == b"\0\0\0\0"   # FLG: no FNAME; MTIME 0


def test_layer_is_streamed_not_held_in_memory(curl_closure, tmp_path):
    root = Root("/")
    plan = plan_layer(curl_closure, root)
    assert plan.content_bytes > 15_000_000
    tracemalloc.start()
    try:
        with open(tmp_path / "layer", "wb") as f:
            write_layer(plan, root, f, compression("gzip"), mtime=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes for a {plan.content_bytes}-byte layer"


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_memory_does_not_grow_with_the_layer(tmp_path, kind):
    """Several times more content than the bound (curl's layer alone, compressed, would fit
    under it): what is held stays a few blocks whatever the layer's size."""
    lib = "/usr/lib/x86_64-linux-gnu"
    c, total = Closure(root="/", targets=[]), 0
    for name in sorted(os.listdir(lib)):
        p = os.path.join(lib, name)
        if total < 80_000_000 and os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.R_OK):
            c.add(Entry(p, "file", mode=0o644, size=os.path.getsize(p), source=p), R)
            total += os.path.getsize(p)
    root = Root("/")
    plan = plan_layer(c, root)
    assert plan.content_bytes > 60_000_000
    tracemalloc.start()
    try:
        with open(tmp_path / "layer", "wb") as f:
            d = write_layer(plan, root, f, compression(kind, 1), mtime=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.size > 12 * 1024 * 1024, "the compressed layer alone is over the bound"
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes for a {plan.content_bytes}-byte layer"


def test_tar_header_is_the_only_header_source(tree):
    from closure.image.tarlayer import LayerItem
    h = tar_header(LayerItem("/etc/x", "file", 0o4755, 10), 42)
    info = tarfile.TarInfo.frombuf(h[:512], "utf-8", "surrogateescape")
    assert (info.name, info.mode, info.size, info.mtime, info.uname) == ("etc/x", 0o4755, 10, 42, "")

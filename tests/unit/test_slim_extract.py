"""Layer extraction for `closure slim`: whiteouts, replacements, in-root links, and hostile
tarballs refused with nothing written outside the temporary root."""
from __future__ import annotations

import os
import tarfile
import uuid
from pathlib import Path

import pytest

from closure.errors import BadInput
from closure.image.extract import Limits, clean_name, unpacked
from closure.image.read import open_image
from tests.slim_images import d, f, hard, member, snapshot, sym, tar_of, write_oci


def unpack(tmp_path: Path, *layers, **kw):
    """Unpack an image made of these layers; return {path: kind or bytes} of the result."""
    img = write_oci(tmp_path / f"img-{uuid.uuid4().hex[:6]}.tar", [tar_of(m) for m in layers], cmd=["/x"])
    with open_image(str(img)) as src, unpacked(src, tmpdir=str(tmp_path), **kw) as (root, stats):
        tree = {}
        for rel in sorted(snapshot(Path(root))):
            p = Path(root) / rel
            if p.is_symlink():
                tree[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                tree[rel] = "dir %o" % (p.stat().st_mode & 0o7777)
            elif p.is_file():
                tree[rel] = p.read_bytes()
            else:
                tree[rel] = "special"
        return tree, stats


def test_clean_name_is_the_one_gate():
    assert clean_name("usr/bin/x") == ("usr", "bin", "x")
    assert clean_name("./usr//bin/./x/") == ("usr", "bin", "x")
    assert clean_name("./") == ()
    for bad in ("/etc/passwd", "../evil", "usr/../../evil", "a/..", "x\0y"):
        with pytest.raises(BadInput):
            clean_name(bad)


def test_layers_apply_in_order_with_whiteouts(tmp_path):
    lower = [d("usr"), f("usr/a", b"a"), f("usr/b", b"b"), d("usr/sub"), f("usr/sub/old", b"o"),
             d("usr/sub/deep"), f("usr/sub/deep/x", b"x"), d("etc"), f("etc/keep", b"k")]
    upper = [f("usr/.wh.a", b""), d("usr/sub"), f("usr/sub/new", b"n"),
             f("usr/sub/.wh..wh..opq", b""),            # after `new`: new must stay
             d("etc", 0o700), f("etc/keep", b"K2")]
    tree, stats = unpack(tmp_path, lower, upper)
    assert "usr/a" not in tree, "whiteout removes a lower file"
    assert tree["usr/b"] == b"b"
    assert tree["usr/sub/new"] == b"n", "opaque dir keeps what its own layer adds"
    assert "usr/sub/old" not in tree and "usr/sub/deep" not in tree, "opaque hides the lower layer"
    assert tree["etc/keep"] == b"K2" and tree["etc"] == "dir 700", "later layer wins, dir mode too"
    assert not any(".wh." in p for p in tree), "whiteout markers are never materialised"
    assert stats.layers == 2 and stats.whiteouts == 2


def test_opaque_marker_before_the_new_entries(tmp_path):
    tree, _ = unpack(tmp_path, [d("a"), f("a/old")], [d("a"), f("a/.wh..wh..opq", b""), f("a/new")])
    assert "a/new" in tree and "a/old" not in tree


def test_replacements_never_write_through_links(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    lower = [sym("link", str(outside / "victim")), d("dir"), f("dir/inner"), f("file")]
    upper = [f("link", b"new"), f("dir", b"now a file"), d("file")]
    tree, _ = unpack(tmp_path, lower, upper)
    assert tree["link"] == b"new" and tree["dir"] == b"now a file" and tree["file"].startswith("dir")
    assert list(outside.iterdir()) == [], "the old link's target was never opened"


def test_relative_links_inside_the_root_are_followed(tmp_path):
    # usrmerge: a later layer writes lib/x through `lib -> usr/lib`, as containerd does.
    tree, _ = unpack(tmp_path, [d("usr"), d("usr/lib"), sym("lib", "usr/lib"), sym("up", "usr/lib/../lib")],
                     [f("lib/x", b"1"), f("up/y", b"2")])
    assert tree["usr/lib/x"] == b"1" and tree["usr/lib/y"] == b"2" and tree["lib"] == "-> usr/lib"


def test_hard_links_and_missing_parents(tmp_path):
    tree, stats = unpack(tmp_path, [f("a/b/c", b"data", 0o755), hard("a/b/d", "a/b/c")])
    assert tree["a/b/d"] == b"data" and tree["a"] == "dir 755"
    assert stats.files == 1


def test_device_nodes_under_dev_are_skipped(tmp_path):
    chr_null = member("dev/null", type=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
    tree, stats = unpack(tmp_path, [d("dev"), chr_null, member("p", type=tarfile.FIFOTYPE)])
    assert "dev/null" not in tree and tree["p"] == "special"
    assert any("dev/null" in s for s in stats.skipped)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_keep_devices_makes_them(tmp_path):
    node = member("opt/null", type=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
    tree, _ = unpack(tmp_path, [node], keep_devices=True)
    assert tree["opt/null"] == "special"


# -- hostile layers ---------------------------------------------------------------------------

CANARY = f"closure-test-evil-{os.getpid()}"

HOSTILE = {
    "dotdot": ([f("../" + CANARY, b"evil")], "'..' in the name"),
    "absolute": ([f("/tmp/" + CANARY, b"evil")], "absolute name"),
    "symlink-to-etc": ([sym("evil", "/etc"), f(f"evil/{CANARY}", b"evil")], "leads out of the root"),
    "symlink-climbing": ([d("a"), sym("a/up", "../../../../../../tmp"), f(f"a/up/{CANARY}", b"evil")],
                         "climbs out of the root"),
    "hardlink-to-etc-passwd": ([hard("passwd", "/etc/passwd")], "absolute name"),
    "hardlink-not-extracted": ([hard("passwd", "etc/passwd")], "not in the image"),
    "hardlink-dotdot": ([hard("passwd", "../../../../etc/passwd")], "'..' in the name"),
    "device-outside-dev": ([member("disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0)], "device node"),
    "file-as-directory": ([f("x"), f("x/y")], "not a directory"),
    "whiteout-dotdot": ([d("a"), f("a/.wh..", b"")], "whiteout of nothing"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layers_are_refused_and_leave_nothing(tmp_path, case):
    members, why = HOSTILE[case]
    work = tmp_path / "work"
    work.mkdir()
    outside_before = snapshot(tmp_path)
    passwd = os.stat("/etc/passwd")
    img = write_oci(tmp_path / "hostile.tar", [tar_of([d("etc"), f("etc/hostname", b"h\n")]), tar_of(members)],
                    cmd=["/x"])
    with open_image(str(img)) as src:
        with pytest.raises(BadInput) as err:
            with unpacked(src, tmpdir=str(work)):
                pass
    assert why in str(err.value)
    assert "layer 2" in str(err.value), "the message names the layer"
    assert list(work.iterdir()) == [], "the partial temp root is removed"
    assert snapshot(tmp_path) - outside_before == {"hostile.tar"}, "nothing written outside"
    assert not os.path.lexists(f"/etc/{CANARY}") and not os.path.lexists(f"/tmp/{CANARY}")
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_ino, after.st_mtime) == (passwd.st_nlink, passwd.st_ino, passwd.st_mtime)


def test_size_caps(tmp_path):
    img = write_oci(tmp_path / "big.tar", [tar_of([f("big", b"x" * 5000)])], cmd=["/x"])
    with open_image(str(img)) as src:
        with pytest.raises(BadInput, match="cap"):
            with unpacked(src, tmpdir=str(tmp_path), limits=Limits(max_file_bytes=4096)):
                pass
        with pytest.raises(BadInput, match="unpacks to more than"):
            with unpacked(src, tmpdir=str(tmp_path), limits=Limits(max_total_bytes=4096)):
                pass
        with pytest.raises(BadInput, match="entries"):
            with unpacked(src, tmpdir=str(tmp_path), limits=Limits(max_entries=0)):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tar"]


def test_truncated_layer_is_bad_input(tmp_path):
    raw = tar_of([f("a", b"y" * 10000)])
    img = write_oci(tmp_path / "cut.tar", [raw[:3000]], cmd=["/x"], compression="none")
    with open_image(str(img)) as src:
        with pytest.raises(BadInput, match="layer 1"):
            with unpacked(src, tmpdir=str(tmp_path)):
                pass


def test_owners_recorded_files_stay_ours(tmp_path):
    img = write_oci(tmp_path / "own.tar", [tar_of([d("srv", 0o700, 1000, 1000), f("srv/su", b"x", 0o4755, 1000, 1000),
                                                  f("srv/gone", b"", 0o644, 7, 7)]),
                                          tar_of([f("srv/.wh.gone", b""), f("srv/new", b"n", 0o644)])], cmd=["/x"])
    with open_image(str(img)) as src, unpacked(src, tmpdir=str(tmp_path)) as (root, stats):
        def owner(name):
            st = os.lstat(os.path.join(root, name))
            assert st.st_uid == os.geteuid(), "the file itself is ours, readable by a probe"
            return stats.owners[(st.st_dev, st.st_ino)], st.st_mode & 0o7777
        assert owner("srv") == ((1000, 1000), 0o700)
        assert owner("srv/su") == ((1000, 1000), 0o4755), "setuid kept"
        assert owner("srv/new") == ((0, 0), 0o644)


def test_huge_tar_header_record_refused(tmp_path):
    info, data = f("a", b"x")
    info.pax_headers = {"comment": "c" * (2 << 20)}    # tarfile would buffer it whole
    img = write_oci(tmp_path / "pax.tar", [tar_of([(info, data)])], cmd=["/x"])
    with open_image(str(img)) as src:
        with pytest.raises(BadInput, match="layer 1.*header record"):
            with unpacked(src, tmpdir=str(tmp_path)):
                pass


def test_decompression_bomb_capped(tmp_path):
    bomb = tar_of([f("a", b"x")]) + b"\0" * (4 << 20)    # 4 MB of zeros after the archive
    img = write_oci(tmp_path / "bomb.tar", [bomb], cmd=["/x"])
    assert img.stat().st_size < 100_000
    with open_image(str(img)) as src:
        with pytest.raises(BadInput, match="unpacks to more than"):
            with unpacked(src, tmpdir=str(tmp_path), limits=Limits(max_total_bytes=1 << 20, max_entries=10)):
                pass

"""The hostile-image corpus: every kind of bad image an attacker (or a broken tool) can hand
closure, generated here from bytes written by hand (never by closure's own writer).

`CASES` maps a case name to a Case: how to make it (a function of the directory to write
into, returning the image path) and what every command must do with it: "refuse" (exit 2,
one line on stderr naming `why`) or "accept" (the command's normal outcome, no traceback,
nothing written outside its temp dirs). Run the corpus with
`.venv/bin/python -m pytest tests/unit/test_hostile_corpus.py -q`.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.slim_images import (MT_CONFIG, MT_INDEX, MT_LAYER, MT_MANIFEST, config_doc, d, f, hard, member,
                               sha, sym, tar_of, write_docker_archive, write_oci)

CANARY = f"closure-hostile-{os.getpid()}"
TRUE = "/usr/bin/true"


@dataclass(frozen=True)
class Case:
    make: object            # (dir: Path) -> image path
    outcome: str            # "refuse" | "accept"
    why: str = ""           # a fragment of the one-line message, for "refuse"
    # commands this outcome holds for (the others: see `also`); all by default
    commands: tuple[str, ...] = ("slim", "inspect", "sbom", "diff", "report", "verify")
    also: tuple[tuple[str, str, str], ...] = ()   # (command, outcome, why) overrides


def _base() -> list:
    return [d("etc"), f("etc/hostname", b"h\n")]


def oci(members_or_layers, *, raw: bool = False, **kw):
    """A maker of an OCI archive whose second layer holds these members (raw: the layers
    are given as bytes)."""
    def make(dir: Path) -> Path:
        layers = members_or_layers if raw else [tar_of(_base()), tar_of(members_or_layers)]
        kw.setdefault("cmd", ["/x"])
        return write_oci(dir / "image.tar", layers, **kw)
    return make


def layout(index=None, manifest=None, config=None, *, layers=None, archive: bool = True,
           edit=None):
    """A maker of an OCI layout (or archive) whose JSON documents are given as Python values
    (any shape at all); None means the well-formed default. `edit(stage)` may change the
    layout dir before it is archived."""
    def make(dir: Path) -> Path:
        stage = dir / "layout"
        blobs = stage / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        def blob(data: bytes) -> dict:
            (blobs / sha(data).split(":")[1]).write_bytes(data)
            return {"digest": sha(data), "size": len(data)}

        raws = layers if layers is not None else [tar_of(_base())]
        descs = [{"mediaType": MT_LAYER, **blob(r)} for r in raws]
        cfg = config if config is not None else config_doc([sha(r) for r in raws], cmd=["/x"])
        cbytes = cfg if isinstance(cfg, bytes) else json.dumps(cfg).encode()
        man = manifest if manifest is not None else {
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, **blob(cbytes)}, "layers": descs}
        if not isinstance(man, bytes):
            blob(cbytes)
        mbytes = man if isinstance(man, bytes) else json.dumps(man).encode()
        mdesc = {"mediaType": MT_MANIFEST, **blob(mbytes)}
        idx = index(mdesc) if callable(index) else index if index is not None else {
            "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [mdesc]}
        (stage / "index.json").write_bytes(idx if isinstance(idx, bytes) else json.dumps(idx).encode())
        (stage / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        if edit is not None:
            edit(stage)
        if not archive:
            return stage
        out = dir / "image.tar"
        with tarfile.open(out, "w") as t:
            for name in ("oci-layout", "index.json", "blobs"):
                t.add(stage / name, arcname=name)
        shutil.rmtree(stage)
        return out
    return make


def docker(entries, files=None):
    """A maker of a docker-archive whose manifest.json is `entries` (any shape), plus files."""
    def make(dir: Path) -> Path:
        out = dir / "image.tar"
        body = {"manifest.json": json.dumps(entries).encode(), **(files or {})}
        with tarfile.open(out, "w") as t:
            for name, data in body.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return out
    return make


def raw_tar(build):
    """A layer tar made by `build(tarfile)`, for headers tarfile's addfile would not write."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        build(t)
    return buf.getvalue()


def _pax(name: str, pax: dict, data: bytes = b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = pax
    return info, io.BytesIO(data)


def _truncated_tar() -> bytes:
    raw = tar_of([f("a", b"y" * 10000)])
    return raw[:3000]


def _zstd_bomb() -> bytes:
    """~2 GB of zeros in a ~70 KB zstd blob, a tar of one file claiming 10 GB."""
    import zstandard
    head = tarfile.TarInfo("bomb")
    head.size = 10 << 30
    c = zstandard.ZstdCompressor(level=3)
    zeros = c.compress(b"\0" * (16 << 20))       # frames concatenated: one stream
    return c.compress(head.tobuf(tarfile.PAX_FORMAT)) + zeros * 128


def _bomb_image(dir: Path) -> Path:
    blob = _zstd_bomb()
    stage = dir / "layout"
    blobs = stage / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (blobs / sha(blob).split(":")[1]).write_bytes(blob)
    cfg = json.dumps(config_doc([sha(b"unknown")], cmd=["/x"])).encode()
    (blobs / sha(cfg).split(":")[1]).write_bytes(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": sha(cfg), "size": len(cfg)},
                      "layers": [{"mediaType": MT_LAYER + "+zstd", "digest": sha(blob), "size": len(blob)}]}).encode()
    (blobs / sha(man).split(":")[1]).write_bytes(man)
    (stage / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MT_MANIFEST, "digest": sha(man), "size": len(man)}]}))
    (stage / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return stage


def _gzip_garbage() -> bytes:
    g = gzip.compress(tar_of([f("a", b"z" * 5000)]), mtime=0)
    return g[:20] + bytes(range(256)) * 4 + g[-8:]


def _nested_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _interp_fifo(where: str):
    """An image whose program is the host's /usr/bin/true with a FIFO at `where` (its ELF
    interpreter or its libc): reading it would block forever."""
    def make(dir: Path) -> Path:
        data = Path(TRUE).read_bytes()
        layer = tar_of([d("usr"), d("usr/bin"), f("usr/bin/true", data, 0o755), d("lib64"),
                        d("lib"), d("lib/x86_64-linux-gnu"), d("etc"),
                        member(where.lstrip("/"), type=tarfile.FIFOTYPE)])
        return write_oci(dir / "image.tar", [layer], entrypoint=["/usr/bin/true"])
    return make


def _fifo_in_layout(name: str):
    def edit(stage: Path) -> None:
        p = stage / name
        p.unlink()
        os.mkfifo(p)
    return layout(archive=False, edit=edit)


def _blob_symlink_out(stage: Path) -> None:
    """The manifest blob replaced by a symlink to a host file."""
    idx = json.loads((stage / "index.json").read_text())
    p = stage / "blobs" / "sha256" / idx["manifests"][0]["digest"].split(":")[1]
    p.unlink()
    p.symlink_to("/etc/passwd")


def _many(n: int) -> bytes:
    return tar_of([d("m")] + [f(f"m/{i}", b"") for i in range(n)])


def _deep(levels: int) -> list:
    parts = ["a"] * levels
    return [d("/".join(parts[:i])) for i in range(1, levels + 1)] + [f("/".join(parts) + "/leaf", b"x")]


def _opaques(n: int) -> list:
    return [tar_of([d(f"o{i}") for i in range(n)] + [f(f"o{i}/x", b"") for i in range(0, n, 50)]),
            tar_of([f(f"o{i}/.wh..wh..opq", b"") for i in range(n)])]


def _index_loop(mdesc: dict) -> dict:
    # an index whose only entry claims to be an index: itself, by digest, forever
    return {"schemaVersion": 2, "manifests": [{"mediaType": MT_INDEX, "digest": mdesc["digest"], "size": mdesc["size"]}]}


def _hl(name: str, pax: dict):
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = "x"
    info.pax_headers = pax
    return info


def _non_utf8(t: tarfile.TarFile) -> None:
    for name in (b"bad\xff\xfename", b"latin\xe9"):
        info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))


def _corrupt_layer(stage: Path) -> None:
    idx = json.loads((stage / "index.json").read_text())
    man = json.loads((stage / "blobs" / "sha256" / idx["manifests"][0]["digest"].split(":")[1]).read_bytes())
    p = stage / "blobs" / "sha256" / man["layers"][0]["digest"].split(":")[1]
    data = bytearray(p.read_bytes())
    data[600] ^= 0xFF       # inside etc/hostname's data: still a tar, wrong digest
    p.write_bytes(bytes(data))


def _member_loop(dir: Path) -> Path:
    out = dir / "image.tar"
    cfg = json.dumps(config_doc([sha(b"x")])).encode()
    with tarfile.open(out, "w") as t:
        for name, data in (("manifest.json", json.dumps([{"Config": "c.json", "Layers": ["a/layer.tar"]}]).encode()),
                           ("c.json", cfg)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for a, b in (("a/layer.tar", "../b/layer.tar"), ("b/layer.tar", "../a/layer.tar")):
            info = tarfile.TarInfo(a)
            info.type = tarfile.SYMTYPE
            info.linkname = b
            t.addfile(info)
    return out


R = "refuse"
A = "accept"
# setuid and friends are accepted: slim strips setuid (unless --keep-setuid), the audits report it
ACCEPT_AUDITS = ("inspect", "sbom", "diff", "report")
# slim unpacks an accepted image whole, then finds no /x to analyse in it
NO_PROGRAM = (("slim", "refuse", "is not in the image"),)

CASES: dict[str, Case] = {
    # -- names ---------------------------------------------------------------------------
    "dotdot": Case(oci([f("../" + CANARY, b"evil")]), R, "'..'"),
    "dotdot-nested": Case(oci([d("a"), f("a/../../" + CANARY, b"evil")]), R, "'..'"),
    "absolute": Case(oci([f("/tmp/" + CANARY, b"evil")]), R, "absolute name"),
    "nul-in-name": Case(oci(raw=True, members_or_layers=[raw_tar(lambda t: t.addfile(*_pax("a", {"path": "x\0y"})))]),
                        R, "NUL"),
    "pax-path-dotdot": Case(oci(raw=True, members_or_layers=[raw_tar(lambda t: t.addfile(*_pax("ok", {"path": "../" + CANARY})))]),
                            R, "'..'"),
    "pax-linkpath-absolute": Case(oci(raw=True, members_or_layers=[raw_tar(lambda t: t.addfile(_hl("h", {"linkpath": "/etc/passwd"})))]), R, "absolute name"),
    "pax-huge-size": Case(oci(raw=True, members_or_layers=[raw_tar(lambda t: t.addfile(*_pax("big", {"size": str(1 << 40)})))]),
                          R, "", also=()),
    "pax-record-huge": Case(oci(raw=True, members_or_layers=[raw_tar(lambda t: t.addfile(*_pax("a", {"comment": "c" * (2 << 20)})))]),
                            R, "header record"),
    "name-too-long": Case(oci([f("x" * 5000, b"")]), R, "too long"),
    "newline-name": Case(oci([d("bin"), f("bin/a\nb", b"x"), f("etc/x\rz\x1b[31m", b"y")]), A,
                         commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "non-utf8-name": Case(oci(raw=True, members_or_layers=[raw_tar(_non_utf8)]), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "deep-255": Case(oci(_deep(255)), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "deep-1500": Case(oci(_deep(1500)), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    # -- links ---------------------------------------------------------------------------
    "symlink-parent-absolute": Case(oci([sym("evil", "/tmp"), f(f"evil/{CANARY}", b"evil")]), R, "leads out of the root"),
    "symlink-parent-climbs": Case(oci([d("a"), sym("a/up", "../../../../tmp"), f(f"a/up/{CANARY}", b"evil")]), R,
                                  "climbs out of the root"),
    "symlink-loop-parent": Case(oci([sym("l1", "l2"), sym("l2", "l1"), f("l1/x", b"")]), R, "symlink"),
    "hardlink-absolute": Case(oci([hard("passwd", "/etc/passwd")]), R, "absolute name"),
    "hardlink-dotdot": Case(oci([hard("passwd", "../../../../etc/passwd")]), R, "'..'"),
    "hardlink-missing": Case(oci([hard("passwd", "etc/passwd")]), R, "not"),
    "hardlink-to-escaping-symlink": Case(oci([sym("s", "/etc/passwd"), hard("h", "s")]), R, "hard link"),
    "hardlink-to-dir": Case(oci([d("dd"), hard("h", "dd")]), R, "hard link"),
    "file-as-directory": Case(oci([f("x"), f("x/y")]), R, "not a directory"),
    # -- whiteouts -----------------------------------------------------------------------
    "whiteout-dotdot": Case(oci([d("a"), f("a/.wh..", b"")]), R, "whiteout"),
    "whiteout-empty": Case(oci([f(".wh.", b"")]), R, "whiteout"),
    "whiteout-as-directory": Case(oci([f(".wh.../x", b"")]), R, "whiteout"),
    "opaque-at-root": Case(oci([f(".wh..wh..opq", b""), f("new", b"n")]), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "opaques-4000": Case(oci(_opaques(4000), raw=True), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    # the case (quadratic once): 40000 dirs, then 40000 opaque markers; ~80000
    # tar headers take seconds to parse, so one command shows it is linear
    "opaques-40000": Case(oci(_opaques(40000), raw=True), A, commands=("inspect",)),
    # -- special files -------------------------------------------------------------------
    "device-outside-dev": Case(oci([member("disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0)]), R, "device node",
                               also=tuple((c, A, "") for c in ACCEPT_AUDITS)),
    "setuid-file": Case(oci([f("su", b"x", 0o4755), f("sg", b"x", 0o2755)]), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "fifo-interp": Case(_interp_fifo("/lib64/ld-linux-x86-64.so.2"), R, "not a regular file",
                        also=tuple((c, A, "") for c in ACCEPT_AUDITS)),
    "fifo-libc": Case(_interp_fifo("/lib/x86_64-linux-gnu/libc.so.6"), R, "not a regular file",
                      also=tuple((c, A, "") for c in ACCEPT_AUDITS)),
    "fifo-ld-so-cache": Case(_interp_fifo("/etc/ld.so.cache"), R, "not a regular file",
                             also=tuple((c, A, "") for c in ACCEPT_AUDITS)),
    # -- sizes ---------------------------------------------------------------------------
    "zstd-bomb": Case(_bomb_image, R, "unpacks to more than"),
    "many-files": Case(oci([_many(10000)], raw=True), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "huge-config": Case(layout(config=b" " * (17 << 20)), R, "more than a metadata file can be"),
    # -- tar and compression -------------------------------------------------------------
    "truncated-tar": Case(oci([_truncated_tar()], raw=True, compression="none"), R, "layer 1"),
    "not-a-tar": Case(oci([bytes(range(256)) * 8], raw=True, compression="none"), R, "layer 1"),
    "gzip-corrupt": Case(layout(layers=[_gzip_garbage()]), R, "corrupt"),
    "duplicate-entries": Case(oci([f("dup", b"1"), f("dup", b"2"), d("dd"), d("dd")]), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "layer-twice": Case(lambda dir: write_oci(dir / "image.tar", [tar_of(_base()), tar_of(_base())], cmd=["/x"]), A,
                        commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    "media-type-lies": Case(oci([f("a", b"x")], media_type=MT_LAYER + "+zstd"), A, commands=ACCEPT_AUDITS, also=NO_PROGRAM),
    # -- metadata: digests and references --------------------------------------------------
    "layer-digest-mismatch": Case(layout(edit=lambda s: _corrupt_layer(s)), R, "does not match"),
    "diff-id-mismatch": Case(layout(config=config_doc([sha(b"other")], cmd=["/x"])), R, "diff_id"),
    "manifest-digest-mismatch": Case(layout(index=lambda m: {"schemaVersion": 2, "manifests": [
        {**m, "digest": sha(b"nope")}]}), R, "missing"),
    "blob-name-escapes": Case(layout(index={"schemaVersion": 2, "manifests": [
        {"mediaType": MT_MANIFEST, "digest": "sha256:../../../../etc/passwd", "size": 10}]}), R, "bad digest"),
    "blob-symlink-out": Case(layout(archive=False, edit=_blob_symlink_out), R, "outside"),
    "index-loop": Case(layout(index=_index_loop), R, ""),
    "index-nested-200000": Case(layout(index=_nested_json(200000)), R, "index.json"),
    "index-fifo": Case(_fifo_in_layout("index.json"), R, "not a regular file"),
    "no-manifests": Case(layout(index={"schemaVersion": 2, "manifests": []}), R, "holds no image"),
    # -- metadata: JSON of the wrong shape -------------------------------------------------
    "index-is-list": Case(layout(index=[1, 2]), R, "index.json"),
    "index-manifest-is-string": Case(layout(index={"manifests": ["x"]}), R, ""),
    "index-platform-string": Case(layout(index=lambda m: {"manifests": [
        {"mediaType": MT_INDEX, "digest": m["digest"], "size": m["size"], "platform": "linux/amd64"}]}), R, ""),
    "index-annotations-list": Case(layout(index=lambda m: {"manifests": [{**m, "annotations": ["a"]}]}), R, ""),
    "manifest-is-list": Case(layout(manifest=[1]), R, "manifest"),
    "manifest-layers-object": Case(layout(manifest={"schemaVersion": 2, "config": {}, "layers": {}}), R, ""),
    "manifest-layer-number": Case(layout(manifest={"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                                   "config": {"digest": sha(b"{}"), "size": 2}, "layers": [7]}), R, ""),
    "manifest-size-string": Case(layout(index=lambda m: {"manifests": [{**m, "size": "12"}]}), R, ""),
    "config-is-list": Case(layout(config=[1, 2]), R, "config"),
    "config-wrong-types": Case(layout(config={"architecture": 7, "os": ["linux"], "config": {
        "Env": "PATH=/bin", "Entrypoint": 5, "Cmd": {"a": 1}, "Labels": ["x"], "User": 0, "WorkingDir": []},
        "rootfs": {"type": "layers", "diff_ids": [sha(tar_of(_base()))]}, "history": "none"}), R, "config"),
    "config-rootfs-wrong": Case(layout(config={"rootfs": {"diff_ids": "sha256:x"}}), R, "diff_ids"),
    "docker-manifest-object-list": Case(docker([{"Config": 5, "Layers": "x"}]), R, "manifest.json"),
    "docker-layers-number": Case(docker([{"Config": "c.json", "Layers": [1]}], {"c.json": b"{}"}), R, ""),
    "docker-repotags-string": Case(docker([{"Config": "c.json", "RepoTags": "a:b", "Layers": []}],
                                          {"c.json": json.dumps(config_doc([])).encode()}), R, ""),
    "docker-config-outside": Case(docker([{"Config": "../../../../etc/passwd", "Layers": []}]), R, ""),
    "docker-member-loop": Case(lambda dir: _member_loop(dir), R, ""),
    "repositories-only-garbage": Case(docker({"a": 1}), R, ""),
}


def outcome(case: Case, command: str) -> tuple[str, str]:
    """(outcome, why) of a case for one command."""
    for c, o, w in case.also:
        if c == command:
            return o, w
    return case.outcome, case.why


def applies(case: Case, command: str) -> bool:
    return command in case.commands or any(c == command for c, _, _ in case.also)


# a good image to diff against
def good_image(dir: Path) -> Path:
    return write_oci(dir / "good.tar", [tar_of(_base())], cmd=["/x"])

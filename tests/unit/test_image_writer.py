"""write_image: formats, inference, config contents, atomic output, --force, bad -o."""
from __future__ import annotations

import json
import os
import tarfile

import pytest

from closure.errors import BadInput
from closure.image import ImageOptions, infer_format, write_image
from closure.image.read import open_image
from closure.image.reasons import LABEL as REASONS_LABEL, decode as decode_reasons
from closure.image.validate import validate
from closure.model import Closure, Entry, Reason
from closure.root import Root
from tests.image_fixtures import curl_closure  # noqa: F401  (fixture)

ROOT = Root("/")


def small() -> Closure:
    c = Closure(targets=["/usr/bin/env"])
    c.add(Entry("/usr/bin/env", "file", mode=0o755, source="/usr/bin/env"), Reason("target"))
    c.add(Entry("/etc/motd", "file", mode=0o644, content=b"hello\n"), Reason("generated"))
    return c


def config_of(path) -> dict:
    with open_image(str(path)) as img:
        return img.config


def litter(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if ".closure-tmp" in n)


@pytest.mark.parametrize("path,fmt", [
    ("out/", "oci"), ("curl.oci", "oci"), ("image", "oci"), ("curl.tar", "oci-archive"),
    ("a.b/curl", "oci"), (".hidden", "oci"),
])
def test_infer_format(path, fmt):
    assert infer_format(path) == fmt


@pytest.mark.parametrize("path", ["curl.tar.gz", "x.zip", "curl.tgz"])
def test_unknown_extension_asks_for_format(path):
    with pytest.raises(BadInput, match="--format"):
        infer_format(path)


def test_existing_dir_is_a_layout(tmp_path):
    (tmp_path / "x.tar").mkdir()
    assert infer_format(str(tmp_path / "x.tar")) == "oci"


def test_oci_layout_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    c = small()
    c.env["SSL_CERT_FILE"] = "/etc/ssl/certs/ca-certificates.crt"
    out = tmp_path / "img"
    r = write_image(c, ROOT, str(out), ImageOptions(
        cmd=("--version",), env=("LANG=C.UTF-8",), user="65534", workdir="/tmp",
        labels={"org.example.team": "infra"}, name="registry.local:5000/tools/env", tag="v1"))
    assert (r.format, r.format_inferred, r.reference) == ("oci", True, "registry.local:5000/tools/env:v1")
    assert validate(str(out)) == []
    index = json.loads((out / "index.json").read_text())
    ann = index["manifests"][0]["annotations"]
    assert ann["org.opencontainers.image.ref.name"] == "v1"
    assert index["manifests"][0]["digest"] == r.manifest_digest
    cfg = config_of(out)
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    # The image says why each file is in: the reasons label round-trips the closure's.
    reasons = decode_reasons(cfg["config"]["Labels"].pop(REASONS_LABEL))
    assert {p: set(rs) for p, rs in reasons.items()} == {p: set(e.reasons) for p, e in c.entries.items()}
    assert cfg["config"] == {
        "Entrypoint": ["/usr/bin/env"], "Cmd": ["--version"], "User": "65534", "WorkingDir": "/tmp",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "LANG=C.UTF-8"],
        "Labels": {"org.example.team": "infra"}}
    assert cfg["rootfs"]["diff_ids"] == [r.layer.diff_id]
    assert cfg["architecture"] and cfg["os"] == "linux"
    assert cfg["history"][0]["created_by"] == "closure build /usr/bin/env"
    assert (out / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'


def test_base_config_is_kept_under_the_options(tmp_path):
    """`closure slim` hands the source's config over: what the options do not set is kept
    as it is, and nothing is defaulted from the closure."""
    from closure.image.config import Platform
    c = small()
    c.env.update({"SSL_CERT_FILE": "/etc/ssl/c.pem", "LANG": "C.UTF-8"})
    base = {"Env": ["LANG=de_DE.UTF-8", "HOME=/srv"], "Cmd": ["serve"], "User": "app",
            "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "Healthcheck": {"Test": ["NONE"]},
            "Labels": {"team": "web", "tier": "old"}, "WorkingDir": ""}
    out = tmp_path / "img"
    write_image(c, ROOT, str(out), ImageOptions(
        base_config=base, user="nobody", labels={"tier": "new"}, env=("HOME=/home",),
        platform=Platform("arm64", "linux", "v8"), created_by="closure slim src:1"))
    cfg = config_of(out)
    assert REASONS_LABEL in cfg["config"]["Labels"]
    del cfg["config"]["Labels"][REASONS_LABEL]
    assert cfg["config"] == {
        "Env": ["LANG=de_DE.UTF-8", "HOME=/home", "SSL_CERT_FILE=/etc/ssl/c.pem"],
        "Cmd": ["serve"], "User": "nobody", "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
        "Healthcheck": {"Test": ["NONE"]}, "Labels": {"team": "web", "tier": "new"}}
    assert (cfg["architecture"], cfg["variant"]) == ("arm64", "v8")
    assert cfg["history"][0]["created_by"] == "closure slim src:1"
    write_image(c, ROOT, str(tmp_path / "img2"), ImageOptions(
        base_config={"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "x"]}, entrypoint=(), cmd=("y",)))
    cfg2 = config_of(tmp_path / "img2")["config"]
    assert set(cfg2.pop("Labels")) == {REASONS_LABEL}
    assert cfg2 == {"Cmd": ["y"], "Env": ["LANG=C.UTF-8", "SSL_CERT_FILE=/etc/ssl/c.pem"]}


def test_entrypoint_can_be_empty(tmp_path):
    write_image(small(), ROOT, str(tmp_path / "img"), ImageOptions(entrypoint=()))
    assert "Entrypoint" not in config_of(tmp_path / "img")["config"]


def test_archive_is_oci_and_docker(tmp_path):
    out = tmp_path / "env.tar"
    r = write_image(small(), ROOT, str(out), ImageOptions(tag="t1"))
    assert r.format == "oci-archive" and r.reference == "env:t1"
    with tarfile.open(out) as t:
        names = t.getnames()
        manifest = json.load(t.extractfile("manifest.json"))
        for m in t.getmembers():
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0)
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    assert manifest == [{"Config": "blobs/sha256/" + r.config_digest[7:], "RepoTags": ["env:t1"],
                         "Layers": ["blobs/sha256/" + r.layer.digest[7:]]}]
    assert validate(str(out)) == []


def test_rootfs_dir_and_tar(tmp_path):
    r = write_image(small(), ROOT, str(tmp_path / "fs"), ImageOptions(format="rootfs"))
    assert r.format == "rootfs" and not r.format_inferred
    assert (tmp_path / "fs/etc/motd").read_bytes() == b"hello\n"
    assert (tmp_path / "fs/usr/bin/env").stat().st_mode & 0o7777 == 0o755
    assert (tmp_path / "fs/etc").stat().st_mtime == 0
    r = write_image(small(), ROOT, str(tmp_path / "fs.tar"), ImageOptions(format="rootfs-tar"))
    with tarfile.open(tmp_path / "fs.tar") as t:
        assert t.getnames() == ["etc", "etc/motd", "usr", "usr/bin", "usr/bin/env"]
    assert r.compression.kind == "none" and r.layer.size == os.path.getsize(tmp_path / "fs.tar")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_rootfs_keeps_the_owners_the_layer_has(tmp_path):
    """A HOME a recipe gives to its user is owned by that user in the rootfs as in the layer."""
    c = small()
    c.add(Entry("/home/nonroot", "dir", mode=0o755, uid=65532, gid=65532), Reason("recipe", recipe="glibc"))
    write_image(c, ROOT, str(tmp_path / "fs"), ImageOptions(format="rootfs"))
    st = (tmp_path / "fs/home/nonroot").stat()
    assert (st.st_uid, st.st_gid) == (65532, 65532)
    assert (tmp_path / "fs/home").stat().st_uid == 0 and (tmp_path / "fs/etc/motd").stat().st_uid == 0
    write_image(c, ROOT, str(tmp_path / "fs.tar"), ImageOptions(format="rootfs-tar"))
    with tarfile.open(tmp_path / "fs.tar") as t:
        assert (t.getmember("home/nonroot").uid, t.getmember("home/nonroot").gid) == (65532, 65532)


def test_modes_do_not_follow_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_image(small(), ROOT, str(tmp_path / "fs"), ImageOptions(format="rootfs"))
    finally:
        os.umask(old)
    assert (tmp_path / "fs/etc/motd").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "fs/usr").stat().st_mode & 0o777 == 0o755


def test_nonempty_dir_needs_force(tmp_path):
    out = tmp_path / "img"
    out.mkdir()
    (out / "keep").write_text("mine")
    with pytest.raises(BadInput, match="--force"):
        write_image(small(), ROOT, str(out))
    assert (out / "keep").read_text() == "mine"
    write_image(small(), ROOT, str(out), ImageOptions(force=True))
    assert not (out / "keep").exists() and validate(str(out)) == []
    assert litter(tmp_path) == []


def test_empty_dir_is_used_an_old_file_needs_force(tmp_path):
    (tmp_path / "img").mkdir()
    write_image(small(), ROOT, str(tmp_path / "img"))
    (tmp_path / "x.tar").write_text("old")
    with pytest.raises(BadInput, match="--force"):
        write_image(small(), ROOT, str(tmp_path / "x.tar"))
    assert (tmp_path / "x.tar").read_text() == "old"
    write_image(small(), ROOT, str(tmp_path / "x.tar"), ImageOptions(force=True))
    assert validate(str(tmp_path / "x.tar")) == []


def test_file_where_a_dir_goes_needs_force(tmp_path):
    (tmp_path / "img").write_text("a file")
    with pytest.raises(BadInput, match="--force"):
        write_image(small(), ROOT, str(tmp_path / "img"), ImageOptions(format="oci"))
    write_image(small(), ROOT, str(tmp_path / "img"), ImageOptions(format="oci", force=True))
    assert (tmp_path / "img").is_dir() and litter(tmp_path) == []


@pytest.mark.parametrize("out,message", [
    ("", "empty"), ("/nonexistent-dir/x.tar", "does not exist"), ("/dev/null", "not a file or directory"),
    ("/proc/x.tar", "cannot write"),
])
def test_bad_output_paths(out, message):
    with pytest.raises(BadInput, match=message):
        write_image(small(), ROOT, out, ImageOptions(format="oci-archive"))


@pytest.mark.parametrize("opts", [
    ImageOptions(format="zip"), ImageOptions(compression="lz4"), ImageOptions(level=42),
    ImageOptions(name="Bad Name"), ImageOptions(tag="bad tag"), ImageOptions(env=("NOVALUE",)),
])
def test_bad_options_write_nothing(tmp_path, opts):
    with pytest.raises(BadInput):
        write_image(small(), ROOT, str(tmp_path / "x.tar"), opts)
    assert os.listdir(tmp_path) == []


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "src").write_bytes(b"x" * 100)
    c = small()
    c.add(Entry("/big", "file", mode=0o644, source=str(tmp_path / "src")), Reason("include"))
    import closure.image.writer as writer
    real_plan = writer.plan_layer

    def plan_then_delete(*a, **kw):   # the source vanishes between planning and writing
        plan = real_plan(*a, **kw)
        os.unlink(tmp_path / "src")
        return plan

    monkeypatch.setattr(writer, "plan_layer", plan_then_delete)
    with pytest.raises(BadInput, match="cannot read"):
        write_image(c, ROOT, str(tmp_path / "x.tar"))
    assert os.listdir(tmp_path) == []


def test_same_closure_same_digest_whatever_the_name(curl_closure, tmp_path):
    a = write_image(curl_closure, ROOT, str(tmp_path / "a"), ImageOptions(name="a"))
    b = write_image(curl_closure, ROOT, str(tmp_path / "b.tar"), ImageOptions(name="b", tag="x"))
    assert a.manifest_digest == b.manifest_digest and a.config_digest == b.config_digest
    assert a.files == b.files == len([e for e in curl_closure.entries.values() if e.type == "file"])

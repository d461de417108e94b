"""Source images for the slim tests, written by hand here (independently of closure's own
writer, so the reader is tested against bytes it did not make): layers as tar files,
an OCI layout or archive, a docker-archive in the old `docker save` shape, and the
debootstrapped Debian images (built once a day, cached under ~/.cache/closure-tests)."""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.tls import TestCA, make_ca

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
FIXTURE_VERSION = 2     # bump when build_debian_images changes what it makes
CACHE = Path(os.environ.get("CLOSURE_TEST_CACHE", Path.home() / ".cache" / "closure-tests"))
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
PODMAN_RUN = PODMAN + ["run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


# -- layers -------------------------------------------------------------------------------

def member(name: str, data: bytes | None = None, *, type=tarfile.REGTYPE, mode=0o644,
           linkname: str = "", devmajor: int = 0, devminor: int = 0, uid: int = 0, gid: int = 0):
    """One hand-made tar member: (TarInfo, data)."""
    info = tarfile.TarInfo(name)
    info.type = type
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.linkname = linkname
    info.devmajor, info.devminor = devmajor, devminor
    if type == tarfile.REGTYPE:
        info.size = len(data or b"")
    return info, (data or b"") if type == tarfile.REGTYPE else None


def d(name: str, mode=0o755, uid: int = 0, gid: int = 0):
    return member(name, type=tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)


def f(name: str, data: bytes = b"x\n", mode=0o644, uid: int = 0, gid: int = 0):
    return member(name, data, mode=mode, uid=uid, gid=gid)


def sym(name: str, target: str):
    return member(name, type=tarfile.SYMTYPE, mode=0o777, linkname=target)


def hard(name: str, target: str):
    return member(name, type=tarfile.LNKTYPE, linkname=target)


def tar_of(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_of_dir(root: Path, out: Path) -> None:
    """A layer of a whole directory tree (owners, modes, hard links and /dev nodes kept)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        for entry in sorted(os.listdir(root)):
            t.add(root / entry, arcname=entry, recursive=True)


def compress(raw: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(raw, compresslevel=1, mtime=0)
    if kind == "zstd":
        import zstandard
        return zstandard.ZstdCompressor(level=1).compress(raw)
    if kind == "xz":
        import lzma
        return lzma.compress(raw)
    return raw


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def config_doc(diff_ids, *, entrypoint=None, cmd=None, env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
               user=None, workdir=None, labels=None, ports=None, arch="amd64") -> dict:
    cfg: dict = {"Env": list(env)}
    for key, value in (("Entrypoint", entrypoint), ("Cmd", cmd), ("User", user),
                       ("WorkingDir", workdir), ("Labels", labels)):
        if value:
            cfg[key] = value
    if ports:
        cfg["ExposedPorts"] = {p: {} for p in ports}
    return {"architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z", "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [{"created_by": "test"} for _ in diff_ids]}


def write_oci(out: Path, layers: list, config: dict | None = None, *, ref: str = "test:1",
              compression: str = "gzip", media_type: str | None = None, archive: bool = True,
              **config_kw) -> Path:
    """An OCI layout (archive=False) or OCI archive holding one image. `layers` are raw tar
    bytes or paths of tar files; config_kw go to config_doc when no config is given."""
    stage = out.with_name(out.name + ".layout")
    shutil.rmtree(stage, ignore_errors=True)
    blobs = stage / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descs, diff_ids = [], []
    for layer in layers:
        raw = layer if isinstance(layer, bytes) else Path(layer).read_bytes()
        diff_ids.append(sha(raw))
        blob = compress(raw, compression)
        (blobs / sha(blob).split(":")[1]).write_bytes(blob)
        mt = media_type if media_type is not None else MT_LAYER + {"gzip": "+gzip", "zstd": "+zstd"}.get(compression, "")
        descs.append({"mediaType": mt, "digest": sha(blob), "size": len(blob)})
    config = config if config is not None else config_doc(diff_ids, **config_kw)
    cbytes = json.dumps(config).encode()
    (blobs / sha(cbytes).split(":")[1]).write_bytes(cbytes)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": sha(cbytes), "size": len(cbytes)},
                "layers": descs}
    mbytes = json.dumps(manifest).encode()
    (blobs / sha(mbytes).split(":")[1]).write_bytes(mbytes)
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_MANIFEST, "digest": sha(mbytes), "size": len(mbytes),
         "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    (stage / "index.json").write_text(json.dumps(index))
    (stage / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    if not archive:
        shutil.rmtree(out, ignore_errors=True)
        stage.rename(out)
        return out
    with tarfile.open(out, "w") as t:
        for name in ("oci-layout", "index.json", "blobs"):
            t.add(stage / name, arcname=name)
    shutil.rmtree(stage)
    return out


def write_docker_archive(out: Path, images: list[tuple[list[str], list[bytes], dict | None]],
                         *, manifest: bool = True) -> Path:
    """The old `docker save` shape: <id>/layer.tar, <id>/json, <hex>.json configs,
    manifest.json (unless manifest=False: before Docker 1.10) and `repositories`."""
    files: dict[str, bytes] = {}
    entries, repos = [], {}
    for tags, layers, config in images:
        diff_ids = [sha(raw) for raw in layers]
        config = config or config_doc(diff_ids, cmd=["/bin/true"])
        cbytes = json.dumps(config).encode()
        files[sha(cbytes).split(":")[1] + ".json"] = cbytes
        parent, paths = None, []
        for raw in layers:
            layer_id = hashlib.sha256((parent or "").encode() + sha(raw).encode()).hexdigest()
            files[f"{layer_id}/layer.tar"] = raw
            meta = {"id": layer_id, **({"parent": parent} if parent else {})}
            if raw is layers[-1]:
                meta.update({k: v for k, v in config.items() if k not in ("rootfs", "history")})
            files[f"{layer_id}/json"] = json.dumps(meta).encode()
            files[f"{layer_id}/VERSION"] = b"1.0"
            paths.append(f"{layer_id}/layer.tar")
            parent = layer_id
        entries.append({"Config": sha(cbytes).split(":")[1] + ".json", "RepoTags": tags, "Layers": paths})
        for t in tags:
            name, tag = t.rsplit(":", 1)
            repos.setdefault(name, {})[tag] = parent
    if manifest:
        files["manifest.json"] = json.dumps(entries).encode()
    files["repositories"] = json.dumps(repos).encode()
    with tarfile.open(out, "w") as t:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out


# -- temp-root hygiene ------------------------------------------------------------------------

def snapshot(path: Path) -> set[str]:
    """Every name under path (links not followed): what a run may have left behind."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), path))
    return out


# -- the Debian images --------------------------------------------------------------------------

def debian_mirror() -> str:
    """The Debian mirror apt on this machine uses (deb822 or one-line sources)."""
    for src in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = src.read_text()
        except OSError:
            continue
        for stanza in text.split("\n\n"):
            if re.search(r"^Suites:.*\bbookworm\b", stanza, re.M) and "security" not in stanza:
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m:
                    return m.group(1)
        m = re.search(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


APP = b'''import json, os, sqlite3, sys
db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
db.execute("insert into t values (42)")
print(json.dumps({"answer": db.execute("select x from t").fetchone()[0], "python": sys.version_info[:2],
                  "data": os.listdir("/app/data")}))    # 0700, the app user's
'''
PYTHON_ONLY = ("python3", "python3.11", "python3-minimal", "python3.11-minimal", "libpython3-stdlib",
               "libpython3.11-minimal", "libpython3.11-stdlib", "media-types", "libreadline8",
               "readline-common", "libsqlite3-0", "tzdata")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _strip_apt_caches(root: Path) -> None:
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for p in root.glob(pattern):
            if p.is_file():
                p.unlink()


def build_debian_images(day_dir: Path) -> dict:
    """debootstrap a minbase bookworm with curl, ca-certificates and python3; trust the test
    CA; write the python app image (two layers: the rootfs, then the app with a whiteout),
    then purge python and write the curl image. Returns the paths."""
    work = day_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "root"
    try:
        p = subprocess.run(["debootstrap", "--variant=minbase", "--include=curl,ca-certificates,python3",
                            "bookworm", str(root), debian_mirror()], capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"debootstrap failed (mirror unreachable?): {p.stdout[-300:]} {p.stderr[-300:]}")
        _strip_apt_caches(root)
        ca = make_ca(day_dir)
        shutil.copy(ca.ca_cert, root / "usr/local/share/ca-certificates/closure-test-ca.crt")
        u = subprocess.run(["chroot", str(root), "update-ca-certificates"], capture_output=True, text=True)
        if u.returncode != 0:   # append by hand: the bundle is what OpenSSL reads
            with open(root / "etc/ssl/certs/ca-certificates.crt", "ab") as fh:
                fh.write(ca.ca_cert.read_bytes())
        with open(root / "etc/passwd", "a") as fh:
            fh.write("app:x:1000:1000:app:/app:/usr/sbin/nologin\n")
        with open(root / "etc/group", "a") as fh:
            fh.write("app:x:1000:\n")

        base = work / "rootfs.tar"
        tar_of_dir(root, base)
        app_layer = tar_of([d("app", uid=1000, gid=1000), f("app/app.py", APP), d("app/data", 0o700, 1000, 1000), d("usr/share"), f("usr/share/.wh.doc", b""),
                            d("usr/share/man"), f("usr/share/man/.wh..wh..opq", b"")])
        write_oci(day_dir / "debian-python.tar", [base, app_layer], ref="debian-python:test",
                  cmd=["python3", "app.py"], workdir="/app", user="app", ports=["8080/tcp"],
                  labels={"org.example.app": "answer"})

        purge = subprocess.run(["chroot", str(root), "dpkg", "--purge", *PYTHON_ONLY],
                               capture_output=True, text=True)
        assert purge.returncode == 0, purge.stderr
        _strip_apt_caches(root)
        tar_of_dir(root, base)
        write_oci(day_dir / "debian-curl.tar", [base], ref="debian-curl:test",
                  entrypoint=["curl"], cmd=["--version"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return debian_paths(day_dir)


def debian_paths(day_dir: Path) -> dict:
    """The images, and the test CA (a tests.tls.TestCA) their trust stores hold."""
    return {"curl": day_dir / "debian-curl.tar", "python": day_dir / "debian-python.tar",
            "ca": TestCA(day_dir / "ca.pem", day_dir / "server.pem", day_dir / "server.key")}   # make_ca's names


@pytest.fixture(scope="session")
def debian_images() -> dict:
    """The two Debian source images, built at most once a day on this machine."""
    for tool in ("debootstrap", "chroot", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    day_dir = CACHE / f"{datetime.date.today().isoformat()}-v{FIXTURE_VERSION}"
    with _locked(CACHE / "debian.lock"):
        paths = debian_paths(day_dir)
        ca = paths["ca"]
        if not all(p.exists() for p in (paths["curl"], paths["python"], ca.ca_cert, ca.cert, ca.key)):
            paths = build_debian_images(day_dir)
        for old in CACHE.iterdir():   # earlier days' images
            if old.is_dir() and old != day_dir and re.fullmatch(r"\d{4}-\d\d-\d\d(-v\d+)?", old.name):
                shutil.rmtree(old, ignore_errors=True)
    return paths


# -- an Alpine-like (musl) image ----------------------------------------------------------------

MUSL_LD = Path("/lib/ld-musl-x86_64.so.1")
HELLO_C = r'''
#include <stdio.h>
int greet(const char *who);
int main(void) {
    char line[128] = "";
    FILE *f = fopen("/etc/greeting", "r");     /* only a probe can see this one */
    if (!f || !fgets(line, sizeof line, f)) { fprintf(stderr, "no /etc/greeting\n"); return 3; }
    return greet(line);
}
'''
GREET_C = r'''
#include <stdio.h>
int vendor(void);
int greet(const char *who) { printf("hello from musl %d: %s", vendor(), who); return 0; }
'''


def musl_cc(out: Path, src: str, *args: str, shared: bool = False) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    c = out.parent / (out.name + ".c")
    c.write_text(src)
    cmd = ["musl-gcc", "-O1", "-o", str(out), str(c), *(["-shared", "-fPIC"] if shared else []), *args]
    subprocess.run(cmd, check=True, capture_output=True)
    c.unlink()


def alpine_like_root(root: Path) -> Path:
    """/lib/ld-musl-x86_64.so.1 (musl's loader and libc in one), its search path file naming
    a vendor dir, a program needing a library in /usr/lib that needs one in the vendor dir,
    a data file the program opens, and things nothing needs."""
    if shutil.which("musl-gcc") is None or not MUSL_LD.exists():
        pytest.skip("needs musl-tools (apt-get install musl musl-tools)")
    (root / "lib").mkdir(parents=True)
    shutil.copy(os.path.realpath(MUSL_LD), root / "lib/ld-musl-x86_64.so.1")
    (root / "lib/libc.musl-x86_64.so.1").symlink_to("ld-musl-x86_64.so.1")
    (root / "etc").mkdir()
    (root / "etc/ld-musl-x86_64.path").write_text("/opt/vendor/lib\n/lib\n/usr/lib\n")
    (root / "etc/greeting").write_text("alpine-like\n")
    (root / "etc/unrelated.conf").write_text("x=1\n")
    musl_cc(root / "opt/vendor/lib/libvendor.so", "int vendor(void){return 7;}", "-Wl,-soname,libvendor.so", shared=True)
    musl_cc(root / "usr/lib/libgreet.so", GREET_C, "-Wl,-soname,libgreet.so",
            f"-L{root}/opt/vendor/lib", "-lvendor", shared=True)
    musl_cc(root / "usr/bin/hello", HELLO_C, f"-L{root}/usr/lib", "-lgreet", f"-L{root}/opt/vendor/lib", "-lvendor")
    musl_cc(root / "usr/lib/libunused.so", "int unused(void){return 1;}", shared=True)
    musl_cc(root / "usr/bin/other", "int main(void){return 0;}")
    (root / "usr/share/junk").mkdir(parents=True)
    (root / "usr/share/junk/blob").write_bytes(os.urandom(1 << 20))
    return root


def musl_image(tmp: Path, **kw) -> Path:
    root = alpine_like_root(tmp / "alpine-root")
    layer = tmp / "alpine.layer.tar"
    tar_of_dir(root, layer)
    kw.setdefault("entrypoint", ["hello"])
    return write_oci(tmp / "alpine.tar", [layer], ref="alpine-like:3", **kw)


# -- running things -------------------------------------------------------------------------------

@contextlib.contextmanager
def loaded(image_tar: Path):
    """`podman load` the archive; yields the loaded name; removes the image afterwards."""
    if shutil.which("podman") is None:
        pytest.skip("needs podman")
    p = subprocess.run(PODMAN + ["load", "-i", str(image_tar)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    name = re.search(r"Loaded image(?:\(s\))?: (\S+)", p.stdout).group(1)
    try:
        yield name
    finally:
        subprocess.run(PODMAN + ["rmi", "-f", name], capture_output=True)


def podman_run(name: str, *args: str, network: str = "none", user: str | None = None) -> subprocess.CompletedProcess:
    cmd = PODMAN_RUN + [f"--network={network}"] + (["--user", user] if user else []) + [name, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

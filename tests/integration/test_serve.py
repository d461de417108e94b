"""`--serve`: real services built into images that podman then runs, talked to from the host.

nginx with Debian's stock /etc/nginx (`user www-data;`), PostgreSQL (initdb + postgres as the
postgres account from an entrypoint script), redis; `closure slim` of a debootstrapped
minbase + nginx image; bad input (a service that exits at once, never gets ready, a
malformed --ready): one line, exit 1 or 2, nothing at -o, no process left."""
from __future__ import annotations

import datetime
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.slim_images import CACHE, PODMAN, _locked, debian_mirror, tar_of_dir, write_oci

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("strace") is None,
                                reason="needs root and strace")
CLOSURE = [os.path.join(os.path.dirname(sys.executable), "closure")]
RUN = PODMAN + ["run", "-d", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
NGINX = "/usr/sbin/nginx"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def closure(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(CLOSURE + list(args), capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_files(archive: Path) -> set[str]:
    """Every path in the image's layers (read straight from the archive's blobs)."""
    with tarfile.open(archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        blob = lambda d: outer.extractfile("blobs/sha256/" + d.split(":", 1)[1])   # noqa: E731
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        names = set()
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob(layer["digest"]))) as t:
                names |= {"/" + n.lstrip("./") for n in t.getnames()}
    return names


class Container:
    """podman load + run -d; stop, remove the container and the image afterwards."""

    def __init__(self, archive: Path, tag: str, *args: str):
        if shutil.which("podman") is None:
            pytest.skip("needs podman")
        p = subprocess.run(PODMAN + ["load", "-i", str(archive)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        self.tag = tag
        r = subprocess.run(RUN + list(args) + [tag], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        self.cid = r.stdout.strip()

    def logs(self) -> str:
        return subprocess.run(PODMAN + ["logs", self.cid], capture_output=True, text=True).stderr

    def close(self) -> None:
        subprocess.run(PODMAN + ["rm", "-f", "-t", "2", self.cid], capture_output=True)
        subprocess.run(PODMAN + ["rmi", "-f", self.tag], capture_output=True)


def until(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            out = check()
            if out:
                return out
        except OSError:
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.3)


def http_get(port: int, path: str = "/") -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode("utf-8", "replace")


def processes_of(exe: str) -> set[int]:
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/exe") == exe:
                    out.add(int(pid))
            except OSError:
                pass
    return out


# -- nginx --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nginx_image(tmp_path_factory):
    if not os.path.exists(NGINX) or not os.path.exists("/etc/nginx/nginx.conf"):
        pytest.skip("needs nginx (apt-get install nginx)")
    out = tmp_path_factory.mktemp("nginx") / "nginx.tar"
    tag = f"test/nginx:{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    r = closure("build", NGINX, "--cmd", "-g 'daemon off;'", "--serve", "--ready", "tcp:80",
                "--http", "GET / 200", "-t", tag, "-o", str(out))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    print(f"\nnginx --serve build: {took:.1f} s, {out.stat().st_size / 1e6:.1f} MB archive")
    return out, tag


def test_nginx_image_serves_the_default_page_with_the_stock_config(nginx_image):
    out, tag = nginx_image
    files = image_files(out)
    assert "/usr/sbin/nginx" in files and "/etc/nginx/nginx.conf" in files
    assert not any(p.endswith("/curl") or "libcurl" in p for p in files)    # the client stayed out
    assert "/var/lib/nginx" in files and "/var/log/nginx" in files       # dirs it creates into
    port = free_port()
    c = Container(out, tag, "-p", f"{port}:80")
    try:
        got = until(lambda: http_get(port))
        assert got is not None, c.logs()
        status, body = got
        assert status == 200 and "Welcome to nginx" in body
    finally:
        c.close()


def test_nginx_accounts_come_from_the_root(nginx_image, tmp_path):
    """www-data (nginx's `user www-data;`, seen as its workers' setuid) is in /etc/passwd as
    the root has it; no shadow anywhere."""
    out, _tag = nginx_image
    files = image_files(out)
    assert "/etc/shadow" not in files and "/etc/gshadow" not in files
    fs = tmp_path / "fs"
    r = closure("build", NGINX, "--cmd", "-g 'daemon off;'", "--serve", "--ready", "tcp:80",
                "--format", "rootfs", "-o", str(fs), "--account", "extra:4242")
    assert r.returncode == 0, r.stderr
    passwd = (fs / "etc/passwd").read_text()
    host = next(line for line in open("/etc/passwd") if line.startswith("www-data:"))
    assert host.strip() in passwd.splitlines()
    assert "extra:x:4242:4242:" in passwd and "extra:x:4242:" in (fs / "etc/group").read_text()


# -- redis ---------------------------------------------------------------------------------------

def test_redis_answers_ping_from_the_image(tmp_path):
    server = shutil.which("redis-server")
    if server is None or shutil.which("redis-cli") is None:
        pytest.skip("needs redis-server and redis-cli")
    out = tmp_path / "redis.tar"
    tag = f"test/redis:{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    r = closure("build", server, "--cmd", "--protected-mode no --save '' --appendonly no",
                "--serve", "--ready", "tcp:6379", "--client", "redis-cli -p 6379 ping | grep -x PONG",
                "-t", tag, "-o", str(out))
    assert r.returncode == 0, r.stderr
    print(f"\nredis --serve build: {time.monotonic() - t0:.1f} s, {out.stat().st_size / 1e6:.1f} MB archive")
    assert not any(p.endswith("/redis-cli") for p in image_files(out))
    port = free_port()
    c = Container(out, tag, "-p", f"{port}:6379")
    try:
        pong = until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                            text=True, timeout=10).stdout.strip() == "PONG")
        assert pong, c.logs()
    finally:
        c.close()


# -- PostgreSQL ---------------------------------------------------------------------------------

ENTRY = """#!/bin/sh
set -e
{bin}/initdb -D /tmp/pgdata -U postgres --auth=trust >/dev/null
exec {bin}/postgres -D /tmp/pgdata -k /tmp -h 127.0.0.1 -p "${{PGPORT:-5432}}"
"""


def test_postgres_answers_select_1_as_the_postgres_account(tmp_path):
    if not (PG_BIN / "postgres").exists() or shutil.which("psql") is None:
        pytest.skip("needs postgresql 15 (apt-get install postgresql)")
    if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        pytest.skip("no postgres account on this host")
    app = Path(tempfile.mkdtemp(prefix="closure-pg-"))    # tmp_path's parents are 0700: postgres could not reach it
    app.chmod(0o755)
    entry = app / "entry.sh"
    entry.write_text(ENTRY.format(bin=PG_BIN))
    entry.chmod(0o755)
    out = tmp_path / "pg.tar"
    tag = f"test/postgres:{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    try:
        r = closure("build", str(entry), "--user", "postgres", "--serve", "--ready", "tcp:5432",
                    "--client", "psql -h 127.0.0.1 -U postgres -tAc 'select 1' | grep -x 1",
                    "-t", tag, "-o", str(out), timeout=400)
    finally:
        shutil.rmtree(app)
    assert r.returncode == 0, r.stderr
    print(f"\npostgres --serve build: {time.monotonic() - t0:.1f} s, {out.stat().st_size / 1e6:.1f} MB archive")
    files = image_files(out)
    assert f"{PG_BIN}/postgres" in files and f"{PG_BIN}/initdb" in files
    assert not any(p.endswith("/psql") for p in files)
    port = free_port()
    c = Container(out, tag, "--network=host", "-e", f"PGPORT={port}")
    try:
        one = until(lambda: subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                            "-tAc", "select 1"], capture_output=True, text=True,
                                           timeout=10).stdout.strip() == "1", timeout=60)
        assert one, c.logs()
    finally:
        c.close()


# -- slim of a debootstrapped nginx image --------------------------------------------------------

NGINX_CACHE_VERSION = 1


@pytest.fixture(scope="module")
def debian_nginx() -> Path:
    """A debootstrapped bookworm minbase + nginx, ENTRYPOINT nginx -g 'daemon off;', no
    USER; built at most once a day (cached beside the other Debian images)."""
    for tool in ("debootstrap", "chroot"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    base = CACHE / "nginx-image"
    out = base / f"{datetime.date.today().isoformat()}-v{NGINX_CACHE_VERSION}.tar"
    with _locked(CACHE / "nginx-image.lock"):
        if out.exists():
            return out
        shutil.rmtree(base, ignore_errors=True)
        work = base / "work"
        work.mkdir(parents=True)
        root = work / "root"
        try:
            p = subprocess.run(["debootstrap", "--variant=minbase", "--include=nginx", "bookworm",
                                str(root), debian_mirror()], capture_output=True, text=True)
            if p.returncode != 0:
                pytest.skip(f"debootstrap failed (mirror unreachable?): {p.stdout[-300:]} {p.stderr[-300:]}")
            for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"):
                for f in root.glob(pattern):
                    if f.is_file():
                        f.unlink()
            layer = work / "rootfs.tar"
            tar_of_dir(root, layer)
            write_oci(out, [layer], ref="debian-nginx:test", entrypoint=["nginx", "-g", "daemon off;"],
                      ports=["80/tcp"])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def test_slim_of_a_debian_nginx_image_serves_the_page(debian_nginx, tmp_path):
    out = tmp_path / "slim.tar"
    tag = f"test/nginx-slim:{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    r = closure("slim", str(debian_nginx), "--serve", "--http", "GET /", "-t", tag, "-o", str(out), "--json")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    print(f"\nslim --serve of debian minbase+nginx: {report['before']['bytes'] / 1e6:.1f} MB -> "
          f"{report['after']['bytes'] / 1e6:.1f} MB ({report['ratio']}x), {took:.1f} s")
    assert not any(p.endswith("/curl") for p in image_files(out))
    port = free_port()
    c = Container(out, tag, "-p", f"{port}:80")
    try:
        got = until(lambda: http_get(port))
        assert got is not None, c.logs()
        assert got[0] == 200 and "Welcome to nginx" in got[1]
    finally:
        c.close()


# -- bad input -----------------------------------------------------------------------------------

def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("closure: error")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_service_that_exits_at_once(tmp_path):
    out = tmp_path / "o.tar"
    r = closure("build", "/bin/sh", "--serve-cmd", "echo bad config line 3 >&2; exit 4", "--ready", "tcp:80",
                "-o", str(out))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "exited 4 before it was ready" in line and "bad config line 3" in line
    assert not out.exists()


def test_a_service_that_never_gets_ready_is_stopped(tmp_path):
    out = tmp_path / "o.tar"
    sleep = os.path.realpath(shutil.which("sleep"))
    before = processes_of(sleep)
    r = closure("build", "/bin/sh", "--serve-cmd", "echo waiting; sleep 7777", "--ready", "tcp:81",
                "--ready-timeout", "2", "-o", str(out))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "not ready after 2 s (tcp:81)" in line and "waiting" in line
    assert not out.exists()
    time.sleep(0.3)
    assert processes_of(sleep) - before == set()


@pytest.mark.parametrize("ready", ["tcp:", "tcp:http", "tcp:70000", "udp:53", "log:(", "http://example.com/"])
def test_a_malformed_ready_is_bad_input(tmp_path, ready):
    out = tmp_path / "o.tar"
    r = closure("build", "/bin/sh", "--serve", "--ready", ready, "-o", str(out))
    assert r.returncode == 2
    assert "--ready" in one_line(r.stderr)
    assert not out.exists()


def test_serve_flags_need_serve(tmp_path):
    r = closure("build", "/bin/sh", "--http", "GET /", "-o", str(tmp_path / "o.tar"))
    assert r.returncode == 2 and "--http needs --serve" in one_line(r.stderr)


def test_a_failing_client_fails_the_build(tmp_path):
    out = tmp_path / "o.tar"
    r = closure("build", "/bin/sh", "--serve-cmd", "echo up; exec sleep 600", "--ready", "log:^up",
                "--client", "echo nope >&2; exit 3", "-o", str(out))
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "--client 'echo nope >&2; exit 3' exited 3: nope" in line
    assert not out.exists()

"""Issue 13's acceptance in podman, no probes: apps found statically (closure build APP)."""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from closure.image.validate import validate
from tests.image_fixtures import PODMAN_FLAGS, need

pytestmark = pytest.mark.podman
CLI = [sys.executable, "-m", "closure.cli.app"]
RUN = ["run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def closure(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=600)


def podman(*args, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(["podman", *PODMAN_FLAGS, *args], capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))}: {p.stderr}")
    return p


@contextlib.contextmanager
def built(tmp: Path, *args: str, cwd=None):
    """closure build ARGS -o x.tar -t test/NAME:uuid; load; yield the tag; remove it."""
    need("podman")
    tag = f"test/apps:{uuid.uuid4().hex[:12]}"
    out = tmp / f"{uuid.uuid4().hex[:8]}.tar"
    p = closure("build", *args, "-o", str(out), "-t", tag, cwd=cwd)
    assert p.returncode == 0, p.stderr
    validate(str(out))
    podman("load", "-i", str(out))
    try:
        yield tag, p
    finally:
        podman("rmi", "-f", tag, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(tag: str, *argv: str):
    """Run the image on the host network under a unique name; stop and remove it after."""
    name = f"closure-test-{uuid.uuid4().hex[:10]}"
    podman(*RUN, "-d", "--name", name, "--network=host", tag, *argv)
    try:
        yield name
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def get(url: str, tries: int = 60) -> bytes:
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"nothing answered at {url}")


def test_flask_app_in_a_venv_under_tmp_serves_json(py_apps, tmp_path):
    with built(tmp_path, "flask_app.py", cwd=py_apps) as (tag, p):
        assert "not taken" not in p.stderr
        port = free_port()
        with serving(tag, str(port)) as name:
            try:
                doc = json.loads(get(f"http://127.0.0.1:{port}/"))
            except AssertionError:
                raise AssertionError(podman("logs", name, check=False).stderr)
        assert doc["ok"] is True and doc["requests"]
        venv_python = str(py_apps / ".venv/bin/python")
        r = podman(*RUN, "--network=none", "--entrypoint", venv_python, tag, "-c",
                   "import requests, idna, flask; print(requests.__version__)", check=False)
        assert r.returncode == 0 and r.stdout.strip() == doc["requests"], r.stderr


def test_numpy_script_prints_the_inverse(py_apps, tmp_path):
    with built(tmp_path, str(py_apps / "numpy_app.py")) as (tag, _):
        venv_python = str(py_apps / ".venv/bin/python")
        r = podman(*RUN, "--network=none", "--entrypoint", venv_python, tag, "-c",
                   "import numpy; print(numpy.linalg.inv([[1,2],[3,4]]))", check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["[[-2.", "1.", "]", "[", "1.5", "-0.5]]"]
        r = podman(*RUN, "--network=none", tag, check=False)   # the entrypoint: python numpy_app.py
        assert r.returncode == 0 and "-0.5" in r.stdout, r.stderr


def test_express_app_built_from_its_directory_serves(express_app, tmp_path):
    with built(tmp_path, str(express_app)) as (tag, _):
        port = free_port()
        with serving(tag, str(port)) as name:
            try:
                doc = json.loads(get(f"http://127.0.0.1:{port}/"))
            except AssertionError:
                raise AssertionError(podman("logs", name, check=False).stderr)
        assert doc == {"ok": True, "from": "express"}


def test_express_app_placed_with_app_dir(express_app, tmp_path):
    """--app-dir DIR:/srv/web: the whole tree at /srv/web, run from there."""
    with built(tmp_path, "--app-dir", f"{express_app}:/srv/web") as (tag, _):
        cfg = json.loads(podman("image", "inspect", tag).stdout)[0]["Config"]
        assert cfg["Entrypoint"][-1] == "/srv/web/server.js" and cfg["WorkingDir"] == "/srv/web"
        port = free_port()
        with serving(tag, str(port)):
            assert json.loads(get(f"http://127.0.0.1:{port}/"))["from"] == "express"


def test_java_version_and_an_https_fetch_trusting_the_ca_given(java_fetch, tmp_path):
    """The JVM recipe (jvm.cfg, libjvm.so, lib/modules, the JDK's own libraries) and
    --ca-cert reaching the JVM's cacerts keystore: the fetch works with it, not without."""
    from tests.tls import https_server, make_ca
    ca = make_ca(tmp_path / "ca")
    jar = tmp_path / "fetch.jar"     # a .jar target: java -jar it, Main-Class from its manifest
    subprocess.run(["jar", "cfe", str(jar), "Fetch", "-C", str(java_fetch), "Fetch.class"], check=True)
    with built(tmp_path, "java", "--include", f"{java_fetch}:/app") as (plain, _), \
         built(tmp_path, str(jar), "--ca-cert", str(ca.ca_cert)) as (trusting, _):
        r = podman(*RUN, "--network=none", "--entrypoint", "java", trusting, "-version", check=False)
        assert r.returncode == 0 and "OpenJDK" in r.stderr + r.stdout, r.stderr
        with https_server(ca) as port:
            url = f"https://localhost:{port}/"
            r = podman(*RUN, "--network=host", trusting, url, check=False)
            assert r.returncode == 0 and r.stdout.startswith("200 hello from the closure test server"), r.stderr
            r = podman(*RUN, "--network=host", plain, "-cp", "/app", "Fetch", url, check=False)
            assert r.returncode != 0 and "PKIX" in r.stderr, r.stderr

"""References, transports, credential lookup (files and a real credential helper program)
and challenge parsing: the parts of the registry client that need no server."""
from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from closure.errors import BadInput
from closure.registry.auth import find_credentials, parse_challenge, parse_creds
from closure.registry.reference import parse as parse_ref
from closure.registry.transport import Destination, parse


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1:5000/tools/curl:1", ("127.0.0.1:5000", "tools/curl", "1", None)),
    ("localhost/app", ("localhost", "app", "latest", None)),
    ("debian:12", ("docker.io", "library/debian", "12", None)),
    ("ghcr.io/me/app@sha256:" + "a" * 64, ("ghcr.io", "me/app", None, "sha256:" + "a" * 64)),
    ("registry.example.com:443/a/b/c:v1.2-rc", ("registry.example.com:443", "a/b/c", "v1.2-rc", None)),
])
def test_references(text, want):
    r = parse_ref(text)
    assert (r.host, r.repo, r.tag, r.digest) == want


@pytest.mark.parametrize("bad", ["127.0.0.1:5000/Tools/curl", "host.io/app:bad tag", "x@sha256:zz", "h.io/"])
def test_bad_references(bad):
    with pytest.raises(BadInput):
        parse_ref(bad)


def test_transports(tmp_path):
    d = tmp_path / "img.oci"
    d.mkdir()
    assert parse(f"oci:{d}:v1").kind == "oci" and parse(f"oci:{d}:v1").path == str(d)
    assert parse(f"oci:{d}:v1").ref == "v1" and parse(f"oci:{d}").ref is None
    tar = tmp_path / "a.tar"
    tar.write_bytes(b"")
    t = parse(f"docker-archive:{tar}:web:1.2")
    assert (t.kind, t.path, t.ref) == ("docker-archive", str(tar), "web:1.2")
    assert parse("docker://127.0.0.1:5000/a:1").registry.repo == "a"
    assert parse("containers-storage:localhost/app:1").ref == "localhost/app:1"
    assert parse(str(d)).kind == "path" and parse("out.tar").kind == "path"
    with pytest.raises(BadInput, match="docker://"):
        parse("docker:foo/bar")
    with pytest.raises(BadInput):
        parse("containers-storage:")


def test_destinations(tmp_path):
    with Destination("docker://127.0.0.1:5000/tools/curl:8") as d:
        assert d.pushes and d.format == "oci" and (d.name, d.tag) == ("127.0.0.1:5000/tools/curl", "8")
        tmp = os.path.dirname(d.path)
        assert os.path.isdir(tmp)
    assert not os.path.exists(tmp), "the temporary layout is removed"
    with Destination(f"oci-archive:{tmp_path / 'x.tar'}") as d:
        assert not d.pushes and d.format == "oci-archive" and d.path == str(tmp_path / "x.tar")
    with pytest.raises(BadInput, match="read only"):
        Destination("containers-storage:app")
    with pytest.raises(BadInput, match="digest"):
        Destination("docker://h.io/a@sha256:" + "b" * 64)


def _auth(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for var in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_credentials_order_and_most_specific_key(home, monkeypatch):
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": _auth("hub", "h")},
        "reg.io": {"auth": _auth("docker", "d")}}}))
    assert find_credentials("docker.io", "library/debian").username == "hub"
    assert find_credentials("reg.io", "a/b").username == "docker"
    assert find_credentials("other.io", "a") is None
    podman = home / "run" / "containers"
    podman.mkdir(parents=True)
    (podman / "auth.json").write_text(json.dumps({"auths": {
        "reg.io": {"auth": _auth("podman", "p")}, "reg.io/team": {"auth": _auth("team", "t")}}}))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    assert find_credentials("reg.io", "x").username == "podman", "podman's file comes before docker's"
    assert find_credentials("reg.io", "team/app").username == "team", "the most specific key wins"
    special = home / "special.json"
    special.write_text(json.dumps({"auths": {"reg.io": {"auth": _auth("env", "e")}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(special))
    c = find_credentials("reg.io", "team/app")
    assert (c.username, c.password, c.source) == ("env", "e", str(special))


def test_credential_helper_program(home, monkeypatch):
    """A real docker-credential-* program on PATH, asked with the host on stdin."""
    bindir = home / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-closuretest"
    helper.write_text('#!/bin/sh\nread host\n[ "$1" = get ] || exit 1\n'
                      'if [ "$host" = reg.io ]; then echo "{\\"Username\\":\\"helped\\",\\"Secret\\":\\"s3\\"}"; '
                      'else echo "credentials not found in native keychain"; exit 1; fi\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text(json.dumps({"credHelpers": {"reg.io": "closuretest"}}))
    c = find_credentials("reg.io", "a")
    assert (c.username, c.password) == ("helped", "s3")
    (home / ".docker" / "config.json").write_text(json.dumps({"credsStore": "closuretest"}))
    assert find_credentials("reg.io", "a").username == "helped"
    assert find_credentials("other.io", "a") is None
    (home / ".docker" / "config.json").write_text(json.dumps({"credsStore": "missing-helper"}))
    with pytest.raises(BadInput, match="docker-credential-missing-helper"):
        find_credentials("reg.io", "a")


def test_bad_credentials_files(home, monkeypatch):
    f = home / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(f))
    f.write_text("{not json")
    with pytest.raises(BadInput, match="not JSON"):
        find_credentials("reg.io", "a")
    f.write_text(json.dumps({"auths": {"reg.io": {"auth": "!!!"}}}))
    with pytest.raises(BadInput, match="base64"):
        find_credentials("reg.io", "a")
    with pytest.raises(BadInput):
        parse_creds("nocolon")


def test_challenges():
    c = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                        'scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer" and c.params == {
        "realm": "https://auth.example/token", "service": "registry.example",
        "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="closure-test"').scheme == "basic"
    assert parse_challenge(None) is None and parse_challenge("") is None

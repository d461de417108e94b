"""closure against a real registry (Debian's docker-registry, distribution 2.8) started by
the tests on 127.0.0.1: plain HTTP, and TLS + htpasswd basic auth with a test CA."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.image_fixtures import need
from tests.registry import PASSWORD, USER, FaultyProxy, registry

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "closure.cli.app"]
PLAIN = ["--tls-verify=false"]


def closure(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(CLI + list(args), capture_output=True, text=True, env=env, timeout=timeout)


def ok(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    with registry(tmp_path_factory.mktemp("reg-plain")) as r:
        yield r


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    with registry(tmp_path_factory.mktemp("reg-tls"), tls=True) as r:
        certs = r.tls.ca_cert.parent / "certs.d"
        certs.mkdir()
        shutil.copy(r.tls.ca_cert, certs / "ca.crt")
        r.cert_dir = certs
        yield r


@pytest.fixture(scope="module")
def echo_image(tmp_path_factory):
    """A small runnable image (echo), as an OCI layout."""
    out = tmp_path_factory.mktemp("img") / "echo.oci"
    doc = ok(closure("build", "/usr/bin/echo", "-o", str(out), "--json"))
    return out, doc["manifest_digest"]


def skopeo_digest(ref: str, *flags: str) -> str:
    need("skopeo")
    p = subprocess.run(["skopeo", "inspect", *flags, ref], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["Digest"]


@pytest.mark.podman
def test_build_push_pull_run_plain_http(plain, echo_image):
    need("podman")
    from closure.verify import verify, working_podman_flags
    verify(str(echo_image[0]), "echo warm-up", runtime="podman")   # finds the flags that work here
    flags = working_podman_flags()
    if flags is None:
        pytest.skip("podman cannot run containers here")
    ref = f"{plain.host}/test/echo:{uuid.uuid4().hex[:12]}"
    doc = ok(closure("build", "/usr/bin/echo", "-o", f"docker://{ref}", "--json", *PLAIN))
    assert doc["pushed"]["digest"] == doc["manifest_digest"]
    assert doc["pushed"]["uploaded"] == 2 and doc["pushed"]["skipped"] == 0
    assert skopeo_digest(f"docker://{ref}", "--tls-verify=false") == doc["manifest_digest"]
    pulled = subprocess.run(["podman", "pull", "-q", "--tls-verify=false", ref], capture_output=True,
                            text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    try:
        run = subprocess.run(["podman", "run", "--rm", *flags, "--network=none", ref,
                              "hello from the registry"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "hello from the registry\n"
    finally:
        subprocess.run(["podman", "rmi", "-f", ref], capture_output=True, timeout=60)


def test_second_push_uploads_no_blob(plain, echo_image):
    layout, digest = echo_image
    ref = f"docker://{plain.host}/test/again:1"
    first = ok(closure("push", str(layout), ref, "--json", *PLAIN))
    assert first["digest"] == digest and first["uploaded"] == 2
    before = plain.uploads()
    second = ok(closure("push", str(layout), ref, "--json", *PLAIN))
    assert second["digest"] == digest
    assert (second["uploaded"], second["mounted"], second["skipped"]) == (0, 0, 2)
    assert second["bytes_uploaded"] == 0
    assert plain.uploads() == before, "the registry's log shows no new blob upload"
    assert skopeo_digest(ref, "--tls-verify=false") == digest


def test_tls_and_basic_auth_from_auth_file(secure, echo_image):
    layout, digest = echo_image
    ref = f"docker://{secure.host}/test/secure:1"
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(secure.auth_file)}
    doc = ok(closure("push", str(layout), ref, "--cert-dir", str(secure.cert_dir), "--json", env=env))
    assert doc["digest"] == digest and doc["uploaded"] == 2
    assert skopeo_digest(ref, "--cert-dir", str(secure.cert_dir), "--creds", f"{USER}:{PASSWORD}") == digest
    # read back through the same client: a pulled layout that inspect reads
    facts = ok(closure("inspect", ref, "--cert-dir", str(secure.cert_dir), "--json", env=env))
    assert facts["manifest_digest"] == digest


def test_wrong_credentials_one_line_exit_2(secure, echo_image):
    layout, _ = echo_image
    start = time.monotonic()
    before = secure.requests("GET") + secure.requests("POST") + secure.requests("PUT")
    p = closure("push", str(layout), f"docker://{secure.host}/test/denied:1",
                "--cert-dir", str(secure.cert_dir), "--creds", f"{USER}:wrong")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and secure.host in lines[0] and "authentication failed" in lines[0], p.stderr
    assert time.monotonic() - start < 20
    sent = secure.requests("GET") + secure.requests("POST") + secure.requests("PUT") - before
    assert sent <= 3, "no retrying of a refused login"


def test_tls_is_verified_by_default(secure, echo_image):
    layout, _ = echo_image
    p = closure("push", str(layout), f"docker://{secure.host}/test/unverified:1", "--creds", f"{USER}:{PASSWORD}")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "TLS" in p.stderr and secure.host in p.stderr


def test_server_errors_are_retried(plain, echo_image):
    layout, digest = echo_image
    with FaultyProxy(int(plain.host.rsplit(":", 1)[1])) as proxy:
        proxy.fail("PUT", r"/blobs/uploads/")          # one blob upload fails once
        proxy.fail("PUT", r"/manifests/")              # and the manifest once
        doc = ok(closure("push", str(layout), f"docker://127.0.0.1:{proxy.port}/test/flaky:1", "--json", *PLAIN))
        assert [s for _, _, s in proxy.seen].count(500) == 2
    assert doc["digest"] == digest and doc["retries"] >= 2
    assert skopeo_digest(f"docker://{plain.host}/test/flaky:1", "--tls-verify=false") == digest


def test_push_killed_midway_then_rerun_completes(plain, tmp_path):
    # A layer big enough that its upload is still under way when it is killed.
    big = tmp_path / "big"
    big.write_bytes(os.urandom(8 << 20))
    layout = tmp_path / "big.oci"
    doc = ok(closure("build", "/usr/bin/echo", "--include", f"{big}:/big", "-o", str(layout),
                     "--compression", "none", "--json"))
    with FaultyProxy(int(plain.host.rsplit(":", 1)[1])) as proxy:
        proxy.hang("PUT", r"/blobs/uploads/")
        ref = f"docker://127.0.0.1:{proxy.port}/test/killed:1"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(CLI + ["push", str(layout), ref, *PLAIN], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proxy.hung.wait(60), "the push never reached a blob upload"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL
    again = ok(closure("push", str(layout), f"docker://{plain.host}/test/killed:1", "--json", *PLAIN))
    assert again["digest"] == doc["manifest_digest"]
    assert again["uploaded"] + again["skipped"] == 2
    assert skopeo_digest(f"docker://{plain.host}/test/killed:1", "--tls-verify=false") == doc["manifest_digest"]


def test_cross_repository_mount(plain, echo_image):
    from closure.registry.push import push
    from closure.registry.reference import parse
    from closure.registry.transport import RegistryOptions
    layout, digest = echo_image
    known: dict[str, str] = {}
    a, b = parse(f"{plain.host}/test/mount-a:1"), parse(f"{plain.host}/test/mount-b:1")
    opts = RegistryOptions(tls_verify=False)
    first = push(str(layout), None, a, opts.client(a), mount_from=known)
    second = push(str(layout), None, b, opts.client(b), mount_from=known)
    assert first.stats.uploaded == 2
    assert (second.stats.mounted, second.stats.uploaded) == (2, 0)
    assert second.digest == digest and plain.requests("POST", r"mount=") >= 2


def _fake_arm64_index(src: Path, out: Path) -> str:
    """A two-platform layout: the real image for amd64 and the same layers labelled arm64."""
    import hashlib
    shutil.copytree(src, out)
    index = json.loads((out / "index.json").read_text())
    amd = index["manifests"][0]
    manifest = json.loads((out / "blobs/sha256" / amd["digest"].split(":")[1]).read_text())
    config = json.loads((out / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]).read_text())

    def blob(doc) -> dict:
        data = json.dumps(doc, sort_keys=True).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (out / "blobs/sha256" / digest.split(":")[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}
    config["architecture"] = "arm64"
    manifest["config"] = {**manifest["config"], **blob(config)}
    arm = {"mediaType": amd["mediaType"], **blob(manifest), "platform": {"architecture": "arm64", "os": "linux"}}
    amd_entry = {k: amd[k] for k in ("mediaType", "digest", "size")} | {"platform": {"architecture": "amd64", "os": "linux"}}
    top = blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [amd_entry, arm]})
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", **top,
         "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
    return top["digest"]


def test_index_push_and_platform_pull(plain, echo_image, tmp_path):
    layout, _ = echo_image
    index_digest = _fake_arm64_index(layout, tmp_path / "multi.oci")
    ref = f"docker://{plain.host}/test/multi:1"
    doc = ok(closure("push", f"oci:{tmp_path / 'multi.oci'}:multi", ref, "--json", *PLAIN))
    assert doc["digest"] == index_digest
    arm = ok(closure("inspect", ref, "--platform", "linux/arm64", "--json", *PLAIN))
    assert arm["platform"]["architecture"] == "arm64"
    amd = ok(closure("inspect", ref, "--platform", "linux/amd64", "--json", *PLAIN))
    assert amd["platform"]["architecture"] == "amd64"
    p = closure("inspect", ref, "--platform", "linux/s390x", *PLAIN)
    assert p.returncode == 2 and "linux/amd64, linux/arm64" in p.stderr


def test_slim_from_registry_to_registry(plain, echo_image):
    layout, digest = echo_image
    src = f"docker://{plain.host}/test/slim-src:1"
    ok(closure("push", str(layout), src, "--json", *PLAIN))
    dst = f"docker://{plain.host}/test/slim-out:1"
    report = ok(closure("slim", src, "-o", dst, "--json", *PLAIN))
    assert report["pushed"]["digest"] == skopeo_digest(dst, "--tls-verify=false")


@pytest.fixture(scope="module")
def family(plain):
    """true, echo and ls built as one family (--each, layers by package) and pushed."""
    tag = uuid.uuid4().hex[:12]
    doc = ok(closure("build", "/usr/bin/true", "/usr/bin/echo", "/usr/bin/ls", "--each",
                     "-o", f"docker://{plain.host}/fam/{{name}}:{tag}", "--json", *PLAIN))
    return doc["images"]


def test_family_shares_its_common_layers(plain, family):
    assert [i["pushed"]["reference"].split("/")[-1].split(":")[0] for i in family] == ["true", "echo", "ls"]
    glibc = {dict((l["name"], l["digest"]) for l in i["layers"])["glibc"] for i in family}
    assert len(glibc) == 1, "one glibc layer for the whole family"
    for i in family:
        assert 2 <= len(i["layers"]) <= 16 and i["layers"][-1]["name"] == "top"
        assert i["pushed"]["digest"] == i["manifest_digest"]
        assert skopeo_digest(f"docker://{i['pushed']['reference']}", "--tls-verify=false") == i["manifest_digest"]
    first, rest = family[0], family[1:]
    assert first["pushed"]["mounted"] == 0
    assert all(i["pushed"]["mounted"] >= 1 for i in rest), "the shared layers are mounted, not sent"
    sent = sum(i["pushed"]["bytes_uploaded"] for i in rest)
    whole = sum(sum(l["size"] for l in i["layers"]) for i in rest)
    assert sent < whole - 0.9 * sum(l["size"] for l in first["layers"] if l["name"] == "glibc") * len(rest)


@pytest.mark.podman
def test_layered_image_pulls_and_runs(plain, family, echo_image):
    need("podman")
    from closure.verify import verify, working_podman_flags
    verify(str(echo_image[0]), "echo warm-up", runtime="podman")
    flags = working_podman_flags()
    if flags is None:
        pytest.skip("podman cannot run containers here")
    ref = family[2]["pushed"]["reference"]
    pulled = subprocess.run(["podman", "pull", "-q", "--tls-verify=false", ref], capture_output=True,
                            text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    try:
        run = subprocess.run(["podman", "run", "--rm", *flags, "--network=none", ref, "/usr/bin"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "ls" in run.stdout.split()
    finally:
        subprocess.run(["podman", "rmi", "-f", ref], capture_output=True, timeout=60)


@pytest.mark.slow
def test_multi_platform_index_built_pushed_and_read(plain, tmp_path):
    """curl for amd64 from / and for arm64 from a debootstrapped arm64 root: one index."""
    from tests.foreign_roots import foreign_root
    from closure.image.validate import validate
    from tests.image_fixtures import oci_validate
    arm64 = foreign_root("arm64")
    out = tmp_path / "multi.oci"
    doc = ok(closure("build", "/usr/bin/curl", "--platform", "linux/amd64=/", "--platform",
                     f"linux/arm64={arm64}", "-o", str(out), "--json"))
    assert [i["platform"]["architecture"] for i in doc["images"]] == ["amd64", "arm64"]
    assert validate(str(out)) == [] and oci_validate(out).returncode == 0
    facts = ok(closure("inspect", str(out), "--json"))
    assert facts["platforms"][:1] == ["linux/amd64"] and facts["platforms"][1].startswith("linux/arm64")
    ref = f"docker://{plain.host}/test/multi-curl:1"
    pushed = ok(closure("push", str(out), ref, "--json", *PLAIN))
    assert pushed["digest"] == doc["index_digest"]
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", ref], capture_output=True,
                         timeout=60)
    import hashlib
    assert raw.returncode == 0 and "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == doc["index_digest"]
    arm = ok(closure("inspect", ref, "--platform", "linux/arm64", "--json", *PLAIN))
    assert arm["platform"]["architecture"] == "arm64"
    assert arm["manifest_digest"] == doc["images"][1]["manifest_digest"]
    wrong = closure("build", "/usr/bin/curl", "--platform", "linux/arm64=/", "-o", str(tmp_path / "w.oci"))
    assert wrong.returncode == 2 and "linux/amd64" in wrong.stderr and not (tmp_path / "w.oci").exists()

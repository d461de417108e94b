"""Secrets stay out of images: credential files wherever HOME is, ssh keys anywhere, PEM
private keys (not certificates), and no probe command line in the image's reasons label."""
from __future__ import annotations

import json
import subprocess

import pytest

from closure.image import ImageOptions, write_image
from closure.image.reasons import LABEL, decode
from closure.model import Closure, Entry, Reason
from closure.root import Root
from closure.trace.parse import Access
from closure.trace.select import is_secret, traced_paths

CREDENTIALS = [
    "/var/lib/jenkins/.aws/credentials", "/srv/app/.docker/config.json", "/opt/ci/.netrc",
    "/srv/app/.npmrc", "/srv/app/.pypirc", "/var/lib/deploy/.kube/config",
    "/srv/app/.config/gcloud/application_default_credentials.json", "/opt/keys/id_ed25519",
    "/srv/app/.ssh/deploy_key", "/etc/ssh/ssh_host_rsa_key", "/srv/app/.git-credentials",
]


@pytest.mark.parametrize("path", CREDENTIALS)
def test_credentials_are_secret_wherever_home_is(path):
    assert is_secret(path)


@pytest.mark.parametrize("path", ["/etc/ssl/certs/ca-certificates.crt", "/usr/bin/aws", "/etc/ssh/ssh_host_rsa_key.pub",
                                  "/usr/share/doc/docker/config.json.example", "/opt/keys/id_ed25519.pub"])
def test_ordinary_files_are_not(path):
    assert not is_secret(path)


@pytest.fixture
def pem_root(tmp_path):
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        pytest.skip("needs openssl")
    d = tmp_path / "srv/tls"
    d.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=t", "-days", "1", "-keyout", str(d / "server.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return Root(str(tmp_path))


def test_pem_private_keys_are_secret_certificates_are_not(pem_root):
    assert is_secret("/srv/tls/server.pem", pem_root)
    assert not is_secret("/srv/tls/cert.pem", pem_root)


def test_a_probe_reading_credentials_takes_none(tmp_path, pem_root):
    home = tmp_path / "var/lib/ci"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws/credentials").write_text("aws_secret_access_key = x\n")
    (home / "app.conf").write_text("ok\n")
    root = Root(str(tmp_path))
    reads = [Access(1, "openat", p, "open", True) for p in
             ("/var/lib/ci/.aws/credentials", "/var/lib/ci/app.conf", "/srv/tls/server.pem", "/srv/tls/cert.pem")]
    kept, warnings = traced_paths(reads, root)
    assert [p for p, _ in kept] == ["/srv/tls/cert.pem", "/var/lib/ci/app.conf"]
    assert len(warnings) == 2 and all("a secret: not taken" in w for w in warnings)


def test_reasons_label_never_carries_a_probe_command_line(tmp_path):
    token = "Bearer s3cr3t-t0ken"
    c = Closure(root="/", targets=["/usr/bin/true"])
    c.add(Entry("/usr/bin/true", "file", mode=0o755, source="/usr/bin/true"), Reason("target"))
    c.add(Entry("/etc/hostname", "file", mode=0o644, content=b"h\n"),
          Reason("traced", probe=f"API_TOKEN=abc123 curl -H 'Authorization: {token}' https://x"))
    out = tmp_path / "img.oci"
    write_image(c, Root("/"), str(out), ImageOptions())
    index = json.loads((out / "index.json").read_text())
    blobs = out / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    config = (blobs / manifest["config"]["digest"].split(":")[1]).read_text()
    label = json.loads(config)["config"]["Labels"][LABEL]
    probe = decode(label)["/etc/hostname"][0].probe
    assert probe.startswith("probe curl sha256:"), probe
    for secret in ("s3cr3t", "abc123", "Authorization"):
        assert secret not in probe and secret not in config

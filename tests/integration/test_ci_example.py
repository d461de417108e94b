"""The README's CI example, run: its GitHub Actions and GitLab CI jobs hold the same
commands, and those commands pass against a TLS registry with basic auth started here
(the private CA in SSL_CERT_FILE, credentials from the job's variables)."""
from __future__ import annotations

import base64
import os
import re
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.image_fixtures import need
from tests.registry import PASSWORD, USER, registry

REPO = Path(__file__).resolve().parents[2]


def ci_commands() -> tuple[list[str], list[str]]:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- ci-example:begin -->", 1)[1].split("<!-- ci-example:end -->", 1)[0]
    github, gitlab = block.split("GitLab CI", 1)
    run = github.split("- run: |", 1)[1].split("```", 1)[0]
    gh = [line.strip() for line in run.splitlines() if line.strip()]
    script = gitlab.split("\n  script:", 1)[1].split("```", 1)[0]
    gl = [line.strip()[2:] for line in script.splitlines() if line.strip().startswith("- ")]
    return gh, gl


def test_github_and_gitlab_jobs_run_the_same_commands():
    gh, gl = ci_commands()
    assert gh == gl and len(gh) >= 5
    assert any(c.startswith("closure push ") for c in gh) and any("--fail-on" in c for c in gh)


def test_the_ci_commands_pass_against_a_real_registry(tmp_path):
    need("podman")
    commands, _ = ci_commands()
    with registry(tmp_path / "reg", tls=True) as reg:
        bindir = tmp_path / "bin"                  # `closure` as the job's PATH has it
        bindir.mkdir()
        (bindir / "closure").write_text(f"#!/bin/sh\nexec {sys.executable} -m closure \"$@\"\n")
        (bindir / "closure").chmod(0o755)
        env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PYTHONPATH=str(REPO),
                   REGISTRY=reg.host, IMAGE_TAG="ci-test", REGISTRY_USER=USER,
                   REGISTRY_PASSWORD=PASSWORD, SSL_CERT_FILE=str(reg.tls.ca_cert))
        work = tmp_path / "job"
        work.mkdir()
        # The image the registry serves now (what the diff gate compares with).
        base = subprocess.run(["closure", "build", "/usr/bin/curl", "-o", "main.tar"], cwd=work, env=env,
                              capture_output=True, text=True)
        assert base.returncode == 0, base.stderr
        p = subprocess.run(["closure", "push", "main.tar", f"docker://{reg.host}/tools/curl:main",
                            "--creds", f"{USER}:{PASSWORD}"], cwd=work, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        for cmd in commands:
            p = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=work, env=env,
                               capture_output=True, text=True, timeout=300)
            assert p.returncode in ((0, 1) if cmd.startswith("closure diff") else (0,)), f"{cmd}\n{p.stderr}"
            if cmd.startswith("closure diff"):
                assert "grew" not in p.stderr, "the same program: no growth to fail on"
        assert (work / "curl.cdx.json").stat().st_size > 1000
        req = urllib.request.Request(f"https://{reg.host}/v2/tools/curl/manifests/ci-test", method="HEAD", headers={
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
            "Accept": "application/vnd.oci.image.manifest.v1+json"})
        ctx = ssl.create_default_context(cafile=str(reg.tls.ca_cert))
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            assert r.status == 200 and re.match(r"sha256:[0-9a-f]{64}$", r.headers["Docker-Content-Digest"])

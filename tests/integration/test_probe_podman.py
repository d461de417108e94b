"""Issue 5's "Must show", in podman, through `closure build` as a user runs it:
- a program that dlopens a plugin named at run time and reads a data file fails in its
  image built without a probe, and works when built with one (on the host, or in the
  candidate image);
- a shell script that runs grep and sed works in its image when its probe runs it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.elf_fixtures import needs_gcc
from tests.image_fixtures import PODMAN_FLAGS, need
from tests.probe_fixtures import APP_OUTPUT, FILTER_OUTPUT, fixture

pytestmark = [pytest.mark.podman, pytest.mark.strace, needs_gcc]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = ["run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
       "--network=none", "--entrypoint", ""]
TAG = "closure-test/probe"


@pytest.fixture(scope="module")
def fx():
    need("podman", "strace", "bwrap")
    with fixture() as f:
        yield f


def podman(*args, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["podman", *PODMAN_FLAGS, *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {p.stderr}")
    return p


def build_and_run(tmp_path, name: str, build_args: list[str], argv: list[str]) -> subprocess.CompletedProcess:
    out = tmp_path / f"{name}.tar"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    b = subprocess.run([sys.executable, "-m", "closure.cli.app", "build", *build_args, "-o", str(out),
                        "-t", f"{TAG}:{name}"], capture_output=True, text=True, env=env, timeout=300)
    assert b.returncode == 0, b.stderr
    podman("load", "-i", str(out))
    try:
        return podman(*RUN, f"{TAG}:{name}", *argv, check=False)
    finally:
        podman("rmi", "-f", f"{TAG}:{name}", check=False)


def test_dlopen_plugin_fails_without_probe(fx, tmp_path):
    p = build_and_run(tmp_path, "app-static", [fx.app], [fx.app, "hello"])
    assert p.returncode == 2, p.stdout + p.stderr
    assert "cannot load plugin" in p.stderr and "libhello.so" in p.stderr


def test_dlopen_plugin_works_with_probe(fx, tmp_path):
    p = build_and_run(tmp_path, "app-probe", [fx.app, "--probe", f"{fx.app} hello"], [fx.app, "hello"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == APP_OUTPUT


def test_dlopen_plugin_works_with_probe_in_image(fx, tmp_path):
    p = build_and_run(tmp_path, "app-inimage", [fx.app, "--probe", f"{fx.app} hello", "--probe-in-image"],
                      [fx.app, "hello"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == APP_OUTPUT


def test_script_running_sed_and_grep_works_with_its_probe(fx, tmp_path):
    p = build_and_run(tmp_path, "filter-probe", [fx.filter, "--probe", fx.filter], [fx.filter])
    assert p.returncode == 0, p.stderr
    assert p.stdout == FILTER_OUTPUT


def test_script_without_probe_lacks_grep_and_sed(fx, tmp_path):
    p = build_and_run(tmp_path, "filter-static", [fx.filter], [fx.filter])
    assert p.stdout != FILTER_OUTPUT
    assert "grep: not found" in p.stderr or "sed: not found" in p.stderr, p.stderr

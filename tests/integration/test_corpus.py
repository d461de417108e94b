"""The whole corpus (../shared/corpus.tsv): build every sample in sample_images/ with
`closure build -f` (its probe included), then run the row's smoke command in podman and
check the exit status and the expected output. Each sample is built twice: its probe run
on the host ("host"), and run in the candidate image until it passes ("in-image",
--probe-in-image).

Builds run two at a time up front; each image is then loaded, run and removed. Rows with
net=host get a loopback HTTPS server (tests/tls.py) whose CA the build adds with
--ca-cert; their URL is rewritten to the server's port. The per-program image size next to
its Debian package's Installed-Size is printed (pytest -s) and kept in the session for
the summary test at the end.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from tests.corpus import (CORPUS_TSV, REPO, corpus_rows, installed_kib, load_sample, package_of, sample_rows,
                          sample_spec)
from tests.image_fixtures import PODMAN_FLAGS, need
from tests.tls import https_server, make_ca

pytestmark = [pytest.mark.podman, pytest.mark.slow, pytest.mark.strace]

# The corpus when it is at hand; else the samples' own copies of its rows, so that a checkout
# without ../shared still builds and runs every sample.
ROWS = corpus_rows() if CORPUS_TSV.exists() else sample_rows()
RUN = ["run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--entrypoint", ""]
TAG = "closure-test/corpus"
MODES = {"host": [], "in-image": ["--probe-in-image"]}
RESULTS: dict[tuple[str, str], dict] = {}


def closure_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "closure.cli.app", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def podman(*args, check: bool = True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(["podman", *PODMAN_FLAGS, *args], capture_output=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))}: {p.stderr!r}")
    return p


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    need("podman", "strace", "bwrap", "openssl")
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def ca(work):
    return make_ca(work / "ca")


@pytest.fixture(scope="module")
def built(work, ca):
    """(id, mode) -> (image tar, build JSON or None, stderr): every sample in every mode,
    two builds at a time."""
    def build(job):
        row, mode = job
        out = work / f"{row.id}-{mode}.tar"
        args = ["build", "-f", str(sample_spec(row.id)), "-o", str(out), "-t", image_name(row, mode),
                "--json", *MODES[mode]]
        if row.net == "host":
            args += ["--ca-cert", str(ca.ca_cert)]
        p = closure_cli(*args)
        return (row.id, mode), (out, json.loads(p.stdout) if p.returncode == 0 else None, p.stderr)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(build, [(row, mode) for row in ROWS for mode in MODES]))


def image_name(row, mode: str) -> str:
    return f"{TAG}:{row.id}-{mode}"


def test_every_row_has_a_sample():
    assert ROWS, f"no corpus rows in {CORPUS_TSV} or {sample_spec('*').parent.parent}"
    if not CORPUS_TSV.exists():
        pytest.skip(f"no corpus at {CORPUS_TSV} to check the samples against (they ran as they are)")
    for row in ROWS:
        spec = load_sample(row.id)
        assert spec["probe"], f"{row.id}: a sample needs a probe"
        smoke = spec["smoke"]
        assert (smoke["argv"], smoke.get("stdin", ""), smoke.get("env", ""), smoke["net"],
                smoke["rc"], smoke["expect"]) == (row.argv, row.stdin, row.env, row.net, row.rc,
                                                   row.expect), row.id


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_smoke_in_podman(row, mode, built, ca):
    out, doc, stderr = built[(row.id, mode)]
    assert doc is not None, f"build of {row.id} ({mode}) failed: {stderr}"
    podman("load", "-i", str(out))
    image = image_name(row, mode)
    try:
        env = [x for kv in row.env_items() for x in ("-e", kv)]
        stdin = row.stdin_bytes()
        interactive = ["-i"] if stdin is not None else []
        if row.net == "host":
            with https_server(ca) as port:
                p = podman(*RUN, "--network=host", "--add-host", "localhost:127.0.0.1", *env,
                           *interactive, image, *row.argv_list(port), check=False, input=stdin, timeout=120)
        else:
            p = podman(*RUN, "--network=none", *env, *interactive, image, *row.argv_list(),
                       check=False, input=stdin, timeout=120)
    finally:
        podman("rmi", "-f", image, check=False)
    output = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    assert p.returncode == row.rc, f"{row.id}: exit {p.returncode}, want {row.rc}: {output[-2000:]}"
    assert row.matches(output), f"{row.id}: {row.expect!r} not in {output[-2000:]!r}"
    target = load_sample(row.id)["targets"][0]
    package = package_of(target)
    kib = installed_kib(package) if package else None
    RESULTS[(row.id, mode)] = {"bytes": doc["content_bytes"], "files": doc["files"], "package": package,
                       "installed_bytes": kib * 1024 if kib else None}


def test_summary_sizes():
    """Runs last: every row passed, and each image's size next to its package's."""
    if not ROWS or not RESULTS:
        pytest.skip("no smoke results in this session")
    lines = [f"{'id':<9} {'mode':<9} {'image MB':>9} {'files':>6}  {'package':<22} {'installed MB':>12}"]
    for row in ROWS:
        for mode in MODES:
            r = RESULTS.get((row.id, mode))
            if r is None:
                lines.append(f"{row.id:<9} {mode:<9} FAILED")
                continue
            inst = f"{r['installed_bytes'] / 1e6:12.2f}" if r["installed_bytes"] else f"{'?':>12}"
            lines.append(f"{row.id:<9} {mode:<9} {r['bytes'] / 1e6:9.2f} {r['files']:>6}  "
                         f"{r['package'] or '?':<22} {inst}")
    want = len(ROWS) * len(MODES)
    print("\n" + "\n".join(lines) + f"\npassed {len(RESULTS)}/{want}")
    assert len(RESULTS) == want, f"passed {len(RESULTS)}/{want}"

"""sbom, report, diff, inspect and explain on bad input, as a user runs them: a missing
path, a directory that is not an image, a truncated archive or blob, garbage bytes, a
malformed analysis, an output that cannot be written. Each must end with one line on
stderr and exit 2, print nothing on stdout and leave no output file."""
from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.image import ImageOptions, write_image
from closure.root import Root

CLI = [sys.executable, "-m", "closure.cli.app"]
REPO = Path(__file__).resolve().parents[2]

# (id, argv with {names} of the inputs below, what the message must say)
CASES = [
    ("sbom-missing", ["sbom", "{d}/nope.oci"], "no such image, directory or program"),
    ("sbom-truncated-tar", ["sbom", "{cut_tar}"], "not an image"),
    ("sbom-truncated-blob", ["sbom", "{cut_blob}"], "blob has"),
    ("sbom-broken-index", ["sbom", "{broken}"], "index.json is not JSON"),
    ("sbom-garbage", ["sbom", "{garbage}"], "not an ELF file"),
    ("sbom-empty", ["sbom", "{empty}"], "empty file"),
    ("sbom-analysis", ["sbom", "{analysis}"], "an analysis JSON file is not accepted here"),
    ("sbom-format", ["sbom", "{tar}", "--format", "xml"], "unknown --format 'xml'"),
    ("sbom-out-missing-dir", ["sbom", "{tar}", "-o", "{d}/nodir/x.json"], "does not exist"),
    ("sbom-out-is-dir", ["sbom", "{tar}", "-o", "{plain}"], "output is a directory"),
    ("sbom-out-proc", ["sbom", "{tar}", "-o", "/proc/closure-test.json"], "cannot write"),
    ("sbom-out-before-work", ["sbom", "{garbage}", "-o", "/proc/closure-test.json"], "cannot write"),
    ("report-missing", ["report", "{d}/nope.oci", "-o", "{d}/r.html"], "no such image"),
    ("report-truncated-tar", ["report", "{cut_tar}", "-o", "{d}/r.html"], "not an image"),
    ("report-truncated-blob", ["report", "{cut_blob}", "-o", "{d}/r.html"], "blob has"),
    ("report-garbage", ["report", "{garbage}", "-o", "{d}/r.html"], "not an ELF file"),
    ("report-bad-analysis", ["report", "{malformed}", "-o", "{d}/r.html"], "malformed analysis entry"),
    ("report-bad-reasons", ["report", "{tar}", "--analysis", "{garbage}", "-o", "{d}/r.html"],
     "not an analysis JSON document"),
    ("report-out-missing-dir", ["report", "{tar}", "-o", "{d}/nodir/r.html"], "does not exist"),
    ("report-out-is-dir", ["report", "{tar}", "-o", "{plain}"], "output is a directory"),
    ("report-out-proc", ["report", "{tar}", "-o", "/proc/closure-test.html"], "cannot write"),
    ("report-out-before-work", ["report", "{garbage}", "-o", "/proc/closure-test.html"], "cannot write"),
    ("diff-missing-a", ["diff", "{d}/nope.oci", "{tar}"], "no such image, directory or analysis file"),
    ("diff-missing-b", ["diff", "{tar}", "{d}/nope.oci"], "nope.oci: no such"),
    ("diff-truncated-tar", ["diff", "{tar}", "{cut_tar}"], "not an image"),
    ("diff-garbage", ["diff", "{garbage}", "{tar}"], "not an image"),
    ("diff-program", ["diff", "{tar}", "/usr/bin/true"], "not an image"),
    ("diff-bad-analysis", ["diff", "{malformed}", "{analysis}"], "malformed analysis entry"),
    ("diff-not-analysis", ["diff", "{nojson}", "{analysis}"], "no entries list"),
    ("inspect-missing", ["inspect", "{d}/nope.oci"], "no such image"),
    ("inspect-plain-dir", ["inspect", "{plain}"], "a rootfs directory is not accepted here"),
    ("inspect-truncated-tar", ["inspect", "{cut_tar}"], "not an image"),
    ("inspect-truncated-blob", ["inspect", "{cut_blob}"], "blob has"),
    ("inspect-garbage", ["inspect", "{garbage}"], "not an image"),
    ("inspect-analysis", ["inspect", "{analysis}"], "is not accepted here"),
    ("explain-missing", ["explain", "{d}/nope", "/etc/passwd"], "no such file"),
    ("explain-dir", ["explain", "{plain}", "/etc/passwd"], "is a directory"),
    ("explain-garbage", ["explain", "{garbage}", "/etc/passwd"], "not an ELF file"),
    ("explain-empty-path", ["explain", "{garbage}", " "], "PATH is empty"),
    ("explain-plan-dir", ["explain", "true", "/x", "--plan", "{plain}"], "is a directory, not a file"),
    ("explain-plan-garbage", ["explain", "true", "/x", "--plan", "{garbage}"], "not an analysis JSON document"),
    ("explain-plan-malformed", ["explain", "true", "/x", "--plan", "{malformed}"], "malformed analysis entry"),
    ("explain-plan-not-analysis", ["explain", "true", "/x", "--plan", "{nojson}"], "no entries list"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once, two at a time: case id -> (CompletedProcess, files in d after)."""
    d = tmp_path_factory.mktemp("bad")
    root = Root("/")
    closure = collect(["/usr/bin/true"], Options(root=root, recipes=False))
    write_image(closure, root, str(d / "true.tar"), ImageOptions())
    write_image(closure, root, str(d / "cut-blob.oci"), ImageOptions())
    blob = max((d / "cut-blob.oci" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    whole = (d / "true.tar").read_bytes()
    (d / "cut.tar").write_bytes(whole[: len(whole) // 2])
    (d / "broken.oci").mkdir()
    (d / "broken.oci" / "index.json").write_text("{not json")
    (d / "plain").mkdir()
    (d / "plain" / "file").write_text("x")
    (d / "garbage").write_bytes(bytes(range(256)) * 20)
    (d / "empty").write_bytes(b"")
    (d / "analysis.json").write_text(json.dumps({"root": "/", "targets": [], "entries": []}))
    (d / "malformed.json").write_text(json.dumps({"entries": [[1]]}))
    (d / "nojson.json").write_text(json.dumps({"x": 1}))
    names = {"d": d, "tar": d / "true.tar", "cut_tar": d / "cut.tar", "cut_blob": d / "cut-blob.oci",
             "broken": d / "broken.oci", "plain": d / "plain", "garbage": d / "garbage",
             "empty": d / "empty", "analysis": d / "analysis.json", "malformed": d / "malformed.json",
             "nojson": d / "nojson.json"}
    before = set(os.listdir(d))
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def run(case):
        argv = [a.format(**names) for a in case[1]]
        return subprocess.run(CLI + argv, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=120)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip([c[0] for c in CASES], pool.map(run, CASES)))
    left = set(os.listdir(d)) - before
    shutil.rmtree(d, ignore_errors=True)
    return done, left


@pytest.mark.parametrize("case_id,argv,want", CASES, ids=[c[0] for c in CASES])
def test_one_line_exit_2(results, case_id, argv, want):
    p = results[0][case_id]
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    assert p.stdout == ""
    assert p.stderr.startswith("closure: error: ") and p.stderr.count("\n") == 1, p.stderr[-2000:]
    assert want in p.stderr, p.stderr


def test_no_output_file_left_behind(results):
    assert results[1] == set()

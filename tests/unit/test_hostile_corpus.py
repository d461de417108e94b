"""Every case of the hostile-image corpus (tests/hostile_images.py) against slim, inspect,
sbom, diff, report and verify. Each command runs through the CLI's own entry point
(closure.cli.app.main) in this process, so exit codes and messages are the user's; a
subprocess run per error class (test_cli_subprocess_per_error_class) proves the same from
a fresh `python -m closure.cli.app` under a memory cap.

Each run: the expected exit status (2 for refused, 0 for accepted), one `closure: error:`
line naming the problem, no traceback, nothing left in its private TMPDIR or at its -o,
nothing written anywhere else, and a bounded time.
"""
from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.hostile_images import CANARY, CASES, applies, good_image, outcome
from tests.slim_images import snapshot

COMMANDS = ("slim", "inspect", "sbom", "diff", "report", "verify")
MAX_SECONDS = 20            # any one command on any one case
MEMORY_CAP = 1 << 30        # address space of a subprocess run
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    """Where the corpus and the runs live: tmpfs when there is one (unpacking thousands of
    directories on a busy disk costs seconds that prove nothing)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        base = Path(tempfile.mkdtemp(prefix="closure-hostile-", dir=shm))
        yield base
        shutil.rmtree(base, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="session")
def corpus(work):
    base = work / "corpus"
    paths = {}
    for name, case in CASES.items():
        d = base / name
        d.mkdir(parents=True)
        paths[name] = case.make(d)
    good = good_image(base)
    return base, paths, good


@pytest.fixture
def scratch(work):
    d = Path(tempfile.mkdtemp(dir=work))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def argv_for(command: str, image: Path, good: Path, out: Path) -> list[str]:
    return {
        "slim": ["slim", str(image), "-o", str(out / "slim.tar")],
        "inspect": ["inspect", str(image)],
        "sbom": ["sbom", str(image)],
        "diff": ["diff", str(image), str(good)],
        "report": ["report", str(image), "-o", str(out / "r.html")],
        "verify": ["verify", str(image), "--", "/x"],
    }[command]


class Hung(BaseException):
    """A command that blocks (a FIFO opened for reading, say) is a failure, not a hang."""


def run_main(argv: list[str], tmpdir: Path) -> tuple[int, str, str, float]:
    """closure's CLI entry point in this process: (exit status, stdout, stderr, seconds)."""
    from closure.cli.app import main
    out, err = io.TextIOWrapper(io.BytesIO(), "utf-8"), io.StringIO()
    old_argv, old_tmp = sys.argv, tempfile.tempdir
    sys.argv = ["closure", *argv]
    tempfile.tempdir = str(tmpdir)
    start = time.monotonic()
    rc = None

    def hung(signum, frame):
        raise Hung(f"closure {' '.join(argv)}: still running after {MAX_SECONDS} s")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(MAX_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        rc = e.code
    finally:
        signal.alarm(0)
        sys.argv, tempfile.tempdir = old_argv, old_tmp
    out.flush()
    return rc, out.buffer.getvalue().decode("utf-8", "replace"), err.getvalue(), time.monotonic() - start


PAIRS = [(c, cmd) for c in sorted(CASES) for cmd in COMMANDS if applies(CASES[c], cmd)]


def test_corpus_is_broad():
    assert len(CASES) >= 40
    assert sum(1 for c in CASES.values() if c.outcome == "refuse") >= 40


@pytest.mark.parametrize("case,command", PAIRS, ids=[f"{c}-{cmd}" for c, cmd in PAIRS])
def test_hostile_image(corpus, scratch, case, command):
    base, paths, good = corpus
    want, why = outcome(CASES[case], command)
    image = paths[case]
    tmp, out = scratch / "tmp", scratch / "out"
    tmp.mkdir()
    out.mkdir()
    before = snapshot(base)
    rc, stdout, stderr, took = run_main(argv_for(command, image, good, out), tmp)
    assert "Traceback" not in stderr, stderr[-3000:]
    if want == "refuse":
        assert rc == 2, (rc, stderr[-2000:])
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        assert last.startswith("closure: error: "), stderr[-2000:]
        assert why in last, last
        assert stdout == ""
        assert list(out.iterdir()) == [], "no output from a refused image"
    else:
        # diff exits 1 when the images differ, as diff(1) does
        assert rc in ((0, None, 1) if command == "diff" else (0, None)), (rc, stderr[-2000:])
    assert took < MAX_SECONDS, f"{command} took {took:.1f} s"
    assert list(tmp.iterdir()) == [], "the private TMPDIR is left empty"
    assert snapshot(base) == before, "nothing written beside the inputs"
    for where in ("/tmp", "/etc", "/"):
        assert not os.path.lexists(os.path.join(where, CANARY))


# One subprocess per (command, error class): the real entry point, a fresh interpreter,
# under an address-space cap.
CLASSES = {
    "name": "dotdot", "link": "symlink-parent-absolute", "whiteout": "whiteout-dotdot",
    "special": "device-outside-dev", "size": "zstd-bomb", "tar": "truncated-tar",
    "digest": "layer-digest-mismatch", "shape": "config-wrong-types", "nesting": "index-nested-200000",
    "fifo": "index-fifo",
}
SUB = [(cls, cmd) for cls in sorted(CLASSES) for cmd in COMMANDS
       if outcome(CASES[CLASSES[cls]], cmd)[0] == "refuse"]


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.parametrize("cls,command", SUB, ids=[f"{c}-{cmd}" for c, cmd in SUB])
def test_cli_subprocess_per_error_class(corpus, tmp_path, cls, command):
    base, paths, good = corpus
    case = CLASSES[cls]
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    p = subprocess.run([sys.executable, "-m", "closure.cli.app", *argv_for(command, paths[case], good, out)],
                       capture_output=True, text=True, env=env, timeout=60, preexec_fn=_cap_memory)
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.startswith("closure: error: ") and p.stderr.count("\n") == 1, p.stderr[-2000:]
    assert outcome(CASES[case], command)[1] in p.stderr
    assert list(out.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []

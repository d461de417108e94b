"""The pure parts of build-time probes: what an in-image
trace says the image lacks, and how a failed probe is reported."""
from __future__ import annotations

import os

import pytest

from closure.errors import JobFailed
from closure.root import Root
from closure.trace.inimage import InImageReport, lacking
from closure.trace.parse import Access
from closure.trace.probe import check_passed, stderr_tail
from closure.trace.probe_sandbox import HELPER_DIR
from closure.trace.run import TraceResult


def result(accesses=(), rc=0, stderr="", timed_out=False) -> TraceResult:
    return TraceResult(argv=("probe",), returncode=None if timed_out else rc, signal=None,
                       timed_out=timed_out, duration=0.1, stdout_tail="", stderr_tail=stderr,
                       strace_messages=(), accesses=tuple(accesses), failed=True)


def enoent(path: str, kind: str = "open", syscall: str = "openat") -> Access:
    return Access(pid=1, syscall=syscall, path=path, kind=kind, ok=False, errno="ENOENT", depth=2)


def tree(base, files=(), links=()):
    for f in files:
        p = os.path.join(base, f.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as fh:
            fh.write("x")
    for link, target in links:
        p = os.path.join(base, link.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.symlink(target, p)
    return Root(str(base))


# -- what the image lacks -------------------------------------------------------------------
def test_lacking_is_what_failed_and_exists_in_the_source(tmp_path):
    source = tree(tmp_path / "src", files=["/usr/lib/plug.so", "/usr/bin/tool", "/etc/shadow",
                                           "/proc/x", f"{HELPER_DIR}/sh"])
    candidate = tree(tmp_path / "img", files=["/usr/bin/tool"])
    accesses = [
        enoent("/usr/lib/plug.so"),                       # in the source, not the image
        enoent("/usr/lib/other.so"),                      # nowhere: an ordinary miss
        enoent("/usr/bin/tool", "exec", "execve"),        # there, but its exec failed
        enoent("/etc/shadow"),                            # a secret
        enoent("/proc/x"),                                # kernel trees never count
        enoent(f"{HELPER_DIR}/sh"),                       # the probe's own shell
    ]
    missing, secrets = lacking(result(accesses), source, candidate)
    assert missing == [("/usr/bin/tool", "exec"), ("/usr/lib/plug.so", "path")]
    assert secrets == ["/etc/shadow"]
    missing, secrets = lacking(result(accesses), source, candidate, include=("/etc/shadow",))
    assert ("/etc/shadow", "path") in missing and secrets == []


def test_lacking_sees_paths_through_source_links(tmp_path):
    source = tree(tmp_path / "src", files=["/usr/lib/x.so"], links=[("/lib", "usr/lib")])
    candidate = tree(tmp_path / "img", files=["/usr/lib/x.so"])
    missing, _ = lacking(result([enoent("/lib/x.so")]), source, candidate)
    assert missing == [("/lib/x.so", "path")]         # the /lib link is what the image lacks


# -- reporting ------------------------------------------------------------------------------
def test_failed_probe_message_has_status_and_stderr_tail():
    with pytest.raises(JobFailed, match=r"probe 'p' exited 3; stderr: .*line 9 \| line 10$") as e:
        check_passed("p", result(rc=3, stderr="".join(f"line {i}\n" for i in range(1, 11))))
    assert "line 4" not in str(e.value)               # only the tail
    with pytest.raises(JobFailed, match="timed out"):
        check_passed("p", result(timed_out=True))
    check_passed("p", result(rc=0))


def test_stderr_tail_without_stderr():
    assert stderr_tail(result(rc=1)) == " (no stderr)"


def test_in_image_summary():
    r = InImageReport("app x", rounds=2, passed=True, added=[["/a", "/b"], []])
    assert r.summary() == "probe 'app x' in the image: passed in round 2; added 2 path(s) the image lacked: /a, /b"
    r = InImageReport("app x", rounds=1, passed=True, added=[[]])
    assert r.summary().endswith("passed in round 1, nothing was missing")
    many = InImageReport("p", rounds=2, passed=True, added=[[f"/f{i}" for i in range(10)]])
    assert many.summary().endswith("/f7 and 2 more")

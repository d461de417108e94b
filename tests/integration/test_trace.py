"""The tracer on real processes: threads, a forking server, exit statuses, timeouts, a
bubblewrap wrapper, and the `closure trace` command end to end."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from closure.errors import BadInput, NotFound
from closure.trace import run_probe

pytestmark = [pytest.mark.strace,
              pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data" / "trace_fixtures"


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    out = tmp_path_factory.mktemp("trace-bins")
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(out / "threads"), str(FIXTURES / "threads.c")], check=True)
    subprocess.run(["gcc", "-O1", "-o", str(out / "forkserver"), str(FIXTURES / "forkserver.c")], check=True)
    return out


def data_files(d: Path, n: int) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        p = d / f"file{i}.dat"
        p.write_text(f"{i}\n" * (i + 1))
        files.append(p)
    return files


def opened(result, path) -> list:
    return [a for a in result.accesses if a.kind == "open" and a.path == str(path) and a.ok]


def closure_cli(*args, env=None, timeout=60):
    e = dict(os.environ, PYTHONPATH=str(REPO))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "closure.cli.app", *args], capture_output=True,
                          text=True, env=e, timeout=timeout, cwd=str(REPO))


def test_eight_concurrent_threads_every_file_seen(bins, tmp_path):
    files = data_files(tmp_path / "d", 8)
    r = run_probe([str(bins / "threads"), "8", *map(str, files)], timeout=30)
    assert r.returncode == 0, r.stderr_tail
    tids = set()
    for f in files:
        [a] = opened(r, f)
        tids.add(a.pid)
    assert len(tids) == 8                           # one open per thread, each its own tid
    [main] = [a.pid for a in r.accesses if a.kind == "exec"]
    assert main not in tids


def test_forking_server_every_file_seen(bins, tmp_path):
    files = data_files(tmp_path / "srv", 5)
    names = [f.name for f in files] + [files[0].name]           # one file asked twice
    r = run_probe([str(bins / "forkserver"), str(tmp_path / "srv"), *names], timeout=30)
    assert r.returncode == 0, r.stderr_tail
    [server] = [a.pid for a in r.accesses if a.kind == "exec"]
    handlers = set()
    for f in files:
        hits = opened(r, f)                         # relative names, cwd inherited by fork
        assert hits, f
        assert all(a.pid != server for a in hits)
        handlers |= {a.pid for a in hits}
    assert len(handlers) == 6 and len(opened(r, files[0])) == 2


def test_exit_status_signal_and_shell_string():
    assert run_probe(["false"]).returncode == 1
    r = run_probe("cd /etc && cat hostname >/dev/null && exit 3")
    assert (r.returncode, r.ok, r.signal) == (3, False, None)
    assert "/etc/hostname" in {a.path for a in r.accesses}
    r = run_probe("kill -TERM $$")
    assert (r.returncode, r.signal) == (143, "SIGTERM")


def test_stderr_tail_and_failed_lookups():
    r = run_probe(["cat", "/nonexistent-closure-file"], failed=True)
    assert r.returncode == 1 and "nonexistent-closure-file" in r.stderr_tail
    [miss] = [a for a in r.accesses if a.path == "/nonexistent-closure-file"]
    assert miss.errno == "ENOENT"
    r = run_probe(["cat", "/nonexistent-closure-file"])          # successful calls only
    assert not [a for a in r.accesses if not a.ok]


def test_timeout_kills_every_tracee_even_escaped_ones():
    t = time.monotonic()
    r = run_probe("setsid sleep 30 & sleep 30; wait", timeout=1)
    assert r.timed_out and r.returncode is None and time.monotonic() - t < 10
    sleepers = {a.pid for a in r.accesses if a.kind == "exec" and a.path.endswith("/sleep")}
    assert len(sleepers) == 2
    time.sleep(0.2)
    for pid in sleepers:
        try:
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().split()[2] == "Z"           # at most a zombie awaiting reaping
        except FileNotFoundError:
            pass


def test_strace_missing_is_bad_input_with_a_hint():
    with pytest.raises(NotFound, match="apt-get install strace"):
        run_probe(["true"], strace="/nonexistent/strace")


def test_command_not_found_is_bad_input():
    with pytest.raises(BadInput, match="no-such-command-closure"):
        run_probe(["no-such-command-closure"])


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bwrap")
def test_wrapper_own_accesses_left_out_and_paths_mapped(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("x\n")
    wrapper = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--tmpfs", "/mnt", "--ro-bind", str(tmp_path / "data"), "/mnt/sandboxed",
               "--unshare-pid", "--"]
    r = run_probe(["cat", "/etc/hostname", "/mnt/sandboxed/f.txt"], wrapper=wrapper,
                  path_map=[("/mnt/sandboxed", "/opt/data")])
    assert r.returncode == 0, r.stderr_tail
    assert r.programs == ["/usr/bin/cat"]                       # not bwrap
    paths = {a.path for a in r.accesses}
    assert {"/etc/hostname", "/opt/data/f.txt"} <= paths
    assert not any(p.startswith("/proc/self/ns") or p.startswith("/newroot") for p in paths)


# -- the command ------------------------------------------------------------------------------
def test_cli_json_lists_hostname():
    p = closure_cli("trace", "--json", "--", "cat", "/etc/hostname")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)                                  # exactly one document
    rows = {r["path"]: r for r in doc["paths"]}
    assert rows["/etc/hostname"]["kind"] == "file"
    assert rows["/etc/hostname"]["size"] == os.path.getsize("/etc/hostname")
    assert doc["exit_status"] == 0 and doc["programs"] == ["/usr/bin/cat"]
    assert doc["static_checked"]
    assert rows["/usr/bin/cat"]["static"] is True              # the target itself
    assert rows["/etc/hostname"]["static"] is False             # only tracing finds it
    t = doc["totals"]
    assert t["static"]["paths"] + t["traced_only"]["paths"] == t["all"]["paths"]
    p = closure_cli("trace", "--json", "--no-static", "--", "cat", "/etc/hostname")
    doc = json.loads(p.stdout)
    assert not doc["static_checked"] and "static" not in doc["paths"][0] and "static" not in doc["totals"]


def test_cli_relative_scratch_is_below_the_working_directory():
    # Not under /tmp: the tracer drops /tmp on its own, so it could not show --scratch.
    work = Path(tempfile.mkdtemp(prefix="closure-trace-test-", dir="/var/tmp"))
    try:
        (work / "own.txt").write_text("x")
        env = dict(os.environ, PYTHONPATH=str(REPO))

        def traced(*args):
            p = subprocess.run([sys.executable, "-m", "closure.cli.app", "trace", "--json", "--no-static",
                                *args, "--", "cat", "own.txt"], capture_output=True, text=True,
                               env=env, cwd=str(work), timeout=60)
            assert p.returncode == 0, p.stderr
            return {r["path"] for r in json.loads(p.stdout)["paths"]}

        assert str(work / "own.txt") in traced()
        paths = traced("--scratch", ".")
        assert str(work / "own.txt") not in paths
        assert "/usr/bin/cat" in paths                  # '.' is the working dir, not /
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_cli_failing_command_reports_status_and_exits_1():
    p = closure_cli("trace", "--json", "--", "sh", "-c", "echo oops >&2; exit 3")
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["exit_status"] == 3 and "oops" in doc["stderr_tail"]
    p = closure_cli("trace", "--", "sh", "-c", "exit 4")
    assert p.returncode == 1 and "exited 4" in p.stdout


def test_cli_human_report_groups_and_marks():
    p = closure_cli("trace", "cat /etc/hostname >/dev/null")     # one argument: a shell string
    assert p.returncode == 0, p.stderr
    assert "/etc  (" in p.stdout and "/etc/hostname" in p.stdout and "by kind:" in p.stdout


def test_cli_secret_touched_is_warned_not_listed():
    if os.geteuid() != 0:
        pytest.skip("needs root to read /etc/shadow")
    p = closure_cli("trace", "--json", "--", "cat", "/etc/shadow")
    doc = json.loads(p.stdout)
    assert "/etc/shadow" not in {r["path"] for r in doc["paths"]}
    assert any("/etc/shadow" in w for w in doc["warnings"])
    assert "closure: warning:" in p.stderr and "/etc/shadow" in p.stderr


def test_cli_bad_input_one_line_exit_2(tmp_path):
    p = closure_cli("trace", "--", "/bin/true", env={"PATH": str(tmp_path)})    # no strace
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "apt-get install strace" in p.stderr
    p = closure_cli("trace", "--", "no-such-command-closure")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and p.stderr.startswith("closure: error:")


def test_cli_untraceable_commands_one_line_exit_2(tmp_path):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(bytes(range(256)) * 8)
    runnable = tmp_path / "garbage-x"
    runnable.write_bytes(bytes(range(256)) * 8)
    runnable.chmod(0o755)
    (tmp_path / "empty").write_bytes(b"")
    for cmd, why in ((tmp_path, "Permission denied"), (garbage, "Permission denied"),
                     (runnable, "Exec format error"), (tmp_path / "empty", "Permission denied"),
                     (tmp_path / "nope", "No such file")):
        for json_flag in ((), ("--json",)):
            p = closure_cli("trace", *json_flag, "--", str(cmd))
            assert p.returncode == 2 and p.stdout == "", (cmd, p.stdout)
            assert p.stderr.startswith(f"closure: error: could not start {cmd} under strace: "), p.stderr
            assert why in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_cli_sigterm_kills_the_tracee_and_leaves_no_temp_files(tmp_path):
    """The traced command runs in the sandbox (its writes never reach the host), so it is
    found by its command line: a sleep length no one else uses."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    length = f"30.{os.getpid()}{int(time.time()) % 1000}"

    def sleepers() -> list[int]:
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[:2] == [b"sleep", length.encode()]:
                        out.append(int(pid))
            except OSError:
                pass
        return out

    p = subprocess.Popen([sys.executable, "-m", "closure.cli.app", "trace", "--", "sleep", length],
                         env=dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(scratch)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO))
    try:
        deadline = time.monotonic() + 20
        while not sleepers():
            assert time.monotonic() < deadline and p.poll() is None, p.stderr.read()
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0 and b"Traceback" not in err, err
    time.sleep(0.2)
    for tracee in sleepers():
        with open(f"/proc/{tracee}/stat") as f:
            assert f.read().split()[2] == "Z"               # at most a zombie awaiting reaping
    assert list(scratch.iterdir()) == []                    # the strace log directory is gone

"""The one sandbox (closure.sandbox), run for real: writes stay inside it, every process it
started is gone when it returns (daemons, double forks, setsid, on SIGTERM and SIGINT too),
ids are real, the environment is exactly the one given, the network is private."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from closure.sandbox import Sandbox, User, prepared

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("strace") is None,
                                reason="needs root and strace")
CLOSURE = [os.path.join(os.path.dirname(sys.executable), "closure")]


def run(sb: Sandbox, timeout: float = 60) -> subprocess.CompletedProcess:
    with prepared(sb) as (argv, _ctl):
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def sh(script: str, **kw) -> Sandbox:
    kw.setdefault("env", {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return Sandbox("/", ("/bin/sh", "-c", script), **kw)


def processes_with(marker: str) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            out.append(f"{pid}: {cmd}")
    return out


# Trees other engineers' runs change meanwhile (podman's store, apt, caches): left out.
BUSY = ("/var/lib/containers", "/var/lib/apt", "/var/lib/dpkg", "/root/.cache", "/var/lib/systemd")


SHALLOW = {"/root": 1}      # a home with toolchains (~270000 files here): its top level


def snapshot(*paths: str) -> str:
    """A checksum of names, types, sizes, modes, owners and mtimes below paths."""
    h = hashlib.sha256()
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            deep = dirpath.count("/") - top.rstrip("/").count("/") + 1
            if deep >= SHALLOW.get(top, 99):
                dirnames.clear()
            dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in BUSY)
            for n in sorted(dirnames + filenames):
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                mtime = 0 if p in BUSY else st.st_mtime_ns
                size = 0 if p in BUSY else st.st_size
                h.update(f"{p} {st.st_mode:o} {size} {st.st_uid} {st.st_gid} {mtime}\n".encode())
    return h.hexdigest()


# -- the host never changes --------------------------------------------------------------------

def test_writes_anywhere_stay_in_the_sandbox(tmp_path):
    tag = uuid.uuid4().hex
    watched = ("/etc", "/root", "/var/lib", "/usr/local", "/home")
    before = snapshot(*watched)
    script = (f"echo x > /etc/{tag} && mkdir -p /var/lib/{tag}/body && echo y > /root/{tag} "
              f"&& echo z > /usr/local/{tag} && mkdir -p /home/{tag} && rm -f /etc/hostname "
              f"&& chown 33:33 /var/lib/{tag}/body && cat /etc/{tag} /root/{tag} && ls -n /var/lib/{tag}")
    r = run(sh(script))
    assert r.returncode == 0, r.stderr
    assert "x\ny\n" in r.stdout and " 33 33 " in r.stdout       # it could write and chown
    assert snapshot(*watched) == before
    assert not any(os.path.exists(p) for p in (f"/etc/{tag}", f"/root/{tag}", f"/var/lib/{tag}"))


def test_host_tmp_is_seen_but_never_written_and_run_is_the_sandboxs_own():
    tag = uuid.uuid4().hex
    Path(f"/tmp/{tag}").write_text("host\n")
    try:
        r = run(sh(f"cat /tmp/{tag} && echo changed > /tmp/{tag} && cat /tmp/{tag} && ls -A /run | wc -l "
                   f"&& touch /run/b"))
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["host", "changed", "0"]
        assert Path(f"/tmp/{tag}").read_text() == "host\n"
    finally:
        os.unlink(f"/tmp/{tag}")


def test_a_probe_that_writes_leaves_the_host_unchanged(tmp_path):
    """closure build with probes that write to /etc, /var, $HOME and /tmp (and nginx -t,
    which makes /var/lib/nginx/* on a host): the host paths are the same afterwards."""
    tag = uuid.uuid4().hex
    watched = ["/etc", "/root", "/var/lib", "/home"]
    probes = [f"touch /etc/{tag} /var/lib/{tag} $HOME/{tag} /tmp/{tag} /root/{tag} && mkdir /home/{tag}"]
    if shutil.which("nginx"):
        probes.append("nginx -t")
    before = snapshot(*watched)
    out = tmp_path / "out.tar"
    args = CLOSURE + ["build", "/usr/bin/touch", "-o", str(out)]
    for p in probes:
        args += ["--probe", p]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out.unlink()
    assert snapshot(*watched) == before


# -- nothing outlives a run -----------------------------------------------------------------

DAEMONS = ("sleep {m}1 & (sleep {m}2 &) ; setsid sleep {m}3 & "
           "sh -c 'sleep {m}4 & exit 0' ; nohup sleep {m}5 >/dev/null 2>&1 &")


def marker() -> str:
    return f"9{uuid.uuid4().int % 10**6:06d}"      # a sleep length no one else uses


def test_daemons_double_forks_and_setsid_die_with_the_sandbox():
    m = marker()
    r = run(sh(DAEMONS.format(m=m) + " echo started"))
    assert r.returncode == 0 and "started" in r.stdout, r.stderr
    assert processes_with(f"sleep {m}") == []


def test_a_probe_leaves_no_process_and_no_hang(tmp_path):
    m = marker()
    t0 = time.monotonic()
    r = subprocess.run(CLOSURE + ["build", "/usr/bin/sleep", "-o", str(tmp_path / "o.tar"),
                                  "--probe", DAEMONS.format(m=m) + " true"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 120
    assert processes_with(f"sleep {m}") == []


def test_a_failing_probe_leaves_no_process(tmp_path):
    m = marker()
    r = subprocess.run(CLOSURE + ["build", "/usr/bin/sleep", "-o", str(tmp_path / "o.tar"),
                                  "--probe", DAEMONS.format(m=m) + " exit 3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "exited 3" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert processes_with(f"sleep {m}") == [] and not (tmp_path / "o.tar").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_killing_closure_kills_what_its_probe_started(tmp_path, sig):
    m = marker()
    p = subprocess.Popen(CLOSURE + ["build", "/usr/bin/sleep", "-o", str(tmp_path / "o.tar"),
                                    "--probe", DAEMONS.format(m=m) + f" sleep {m}6"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(processes_with(f"sleep {m}")) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(processes_with(f"sleep {m}")) >= 5
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    time.sleep(0.5)
    assert processes_with(f"sleep {m}") == []
    assert not (tmp_path / "o.tar").exists()
    assert "Traceback" not in err


def test_gpg_symmetric_probe_finishes_in_seconds(tmp_path):
    """gpg starts gpg-agent, which outlives gpg: the probe still returns at once."""
    if shutil.which("gpg") is None:
        pytest.skip("needs gpg (apt-get install gnupg)")
    t0 = time.monotonic()
    r = subprocess.run(CLOSURE + ["build", "/usr/bin/gpg", "-o", str(tmp_path / "gpg.tar"), "--probe",
                                  "echo secret | gpg --batch --pinentry-mode loopback --passphrase pw "
                                  "--symmetric -o /tmp/s.gpg && gpg --batch --pinentry-mode loopback "
                                  "--passphrase pw -d /tmp/s.gpg"],
                       capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 60, took
    assert processes_with("gpg-agent --homedir /tmp/closure-home") == []


# -- what the program sees -----------------------------------------------------------------------

def test_real_ids_groups_env_and_cwd():
    r = run(sh("id -u; id -g; id -G; pwd; env | sort", user=User(33, 33, (4, 33)),
               env={"PATH": "/usr/bin:/bin", "ONLY": "this"}, cwd="/tmp/work"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["33", "33"] and sorted(lines[2].split()) == ["33", "4"]
    assert lines[3] == "/tmp/work"
    env = dict(line.split("=", 1) for line in lines[4:])
    assert env["ONLY"] == "this" and env["PATH"] == "/usr/bin:/bin"
    assert set(env) <= {"ONLY", "PATH", "PWD", "SHLVL", "_", "OLDPWD"}   # only what the shell adds


def test_network_is_private_with_loopback(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        script = (f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo reached || echo private")
        r = run(Sandbox("/", ("/bin/bash", "-c", script), env={"PATH": "/usr/bin:/bin"}))
        assert r.stdout.strip() == "private"
        r = run(Sandbox("/", ("/bin/bash", "-c", script), env={"PATH": "/usr/bin:/bin"}, share_net=True))
        assert r.stdout.strip() == "reached"


WRITER_C = r"""
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
    FILE *f = fopen("/etc/new", "w");
    if (!f || fputs("x\n", f) < 0 || fclose(f)) return 2;
    if (mkdir("/run/app", 0755) || mkdir("/var", 0755) || mkdir("/var/lib", 0755)) return 3;
    char line[8] = "";
    f = fopen("/etc/new", "r");
    if (!f || !fgets(line, sizeof line, f)) return 4;
    fputs(line, stdout);
    return 0;
}
"""


def test_an_image_root_is_never_written(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "run").mkdir()
    src = tmp_path / "w.c"
    src.write_text(WRITER_C)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(root / "bin/writer"), str(src)], check=True)
    before = snapshot(str(root))
    r = run(Sandbox(str(root), ("/bin/writer",), env={}))
    assert r.returncode == 0 and r.stdout == "x\n", r.stderr
    assert snapshot(str(root)) == before


def test_a_missing_command_is_one_line(tmp_path):
    r = run(Sandbox("/", ("/no/such/prog",), env={}))
    assert r.returncode == 127
    assert r.stderr.strip() == "closure-sandbox: cannot run /no/such/prog: No such file or directory"


def test_closure_itself_writes_only_its_output_temp_dirs_and_cache(tmp_path):
    """strace -f of a build and a slim (no probes: a tracee cannot trace its own probes):
    every file closure opens for writing, or directory it makes, is under -o's directory,
    a temporary directory, ~/.cache/closure, /dev, or a __pycache__ of its own code."""
    from closure.trace.run import run_probe
    image = tmp_path / "curl.tar"
    cache = os.path.join(os.path.expanduser("~"), ".cache", "closure")
    allowed = (str(tmp_path), "/tmp/", "/var/tmp/", cache, "/dev/", "/proc/")
    for cmd in (CLOSURE + ["build", "/usr/bin/curl", "-o", str(image)],
                CLOSURE + ["slim", str(image), "-o", str(tmp_path / "slim.tar")]):
        r = run_probe(cmd, timeout=300)
        assert r.ok, r.stderr_tail
        written = sorted({a.path for a in r.accesses if a.write})
        assert written, "the trace saw no writes at all"
        stray = [p for p in written if not p.startswith(allowed) and "/__pycache__/" not in p]
        assert stray == [], stray


def test_closure_trace_and_verify_leave_the_host_unchanged(tmp_path):
    tag = uuid.uuid4().hex
    watched = ["/etc", "/root", "/var/lib", "/home"]
    before = snapshot(*watched)
    r = subprocess.run(CLOSURE + ["trace", "--", f"touch /etc/{tag} /root/{tag} && mkdir /var/lib/{tag}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "fs"
    b = subprocess.run(CLOSURE + ["build", "/usr/bin/touch", "--format", "rootfs", "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert b.returncode == 0, b.stderr
    v = subprocess.run(CLOSURE + ["verify", str(out), "--runtime", "bwrap", "--", "/usr/bin/touch", f"/etc/{tag}"],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr
    assert not (out / "etc" / tag).exists()                  # nor the rootfs it ran in
    assert snapshot(*watched) == before


def test_probes_and_services_get_the_image_env(tmp_path):
    """--env values reach a probe and a service, as they will in the image."""
    r = subprocess.run(CLOSURE + ["build", "/usr/bin/env", "--env", "APP_PORT=8123", "-o", str(tmp_path / "a.tar"),
                                  "--probe", 'test "$APP_PORT" = 8123'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(CLOSURE + ["build", "/bin/sh", "--env", "APP_PORT=8124", "-o", str(tmp_path / "b.tar"),
                                  "--serve-cmd", 'echo "port=$APP_PORT"; exec sleep 60', "--ready", "log:^port=8124$",
                                  "--ready-timeout", "20"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

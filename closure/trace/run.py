"""Run a command under strace and return what it touched.

Options, and why:
  -f               follow forks, vforks and threads (a server's workers, a shell's commands)
  -qq              no attach/detach or exit-status chatter in the log
  -y               annotate fds and AT_FDCWD with paths: relative opens resolve exactly
  -s 4096          whole strings (path arguments are printed in full regardless)
  -z               successful calls only; dropped when failed=True (in-image probes need
                   the ENOENTs to learn what is missing)
  --seccomp-bpf    stop only at traced syscalls, not at every one (big speed-up)
  --decode-pids=pidns  clone() inside a new pid namespace (bubblewrap) returns an inner
                   pid; this also prints the pid strace knows the child by
  -e signal=none   no "--- SIGCHLD ---" lines
  -o FILE          the log goes to a file, never mixed with the command's stderr
Optional features are tried once against the installed strace and dropped if refused.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Iterator, Mapping, Sequence

from ..errors import BadInput, NotFound
from ..root import Root, normpath
from .parse import ID_SYSCALLS, Access, parse, parse_ids

INSTALL_HINT = "apt-get install strace"

# Every name gets '?' so strace does not reject one this architecture lacks (fstatat64 on
# x86-64, open on arm64).
TRACED_SYSCALLS = (
    "open", "openat", "openat2", "creat", "execve", "execveat",
    "stat", "lstat", "stat64", "lstat64", "newfstatat", "fstatat64", "statx",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "chdir", "fchdir", "mkdir", "mkdirat", "getdents", "getdents64", "connect",
    "clone", "clone3", "fork", "vfork",
) + ID_SYSCALLS
OPTIONAL_FLAGS = ("--seccomp-bpf", "--decode-pids=pidns")
TAIL_BYTES = 4096


@dataclass(frozen=True)
class Strace:
    path: str
    version: tuple[int, ...]
    flags: tuple[str, ...]          # the optional flags this strace accepted


@dataclass(frozen=True)
class TraceResult:
    argv: tuple[str, ...]           # the command as run (without strace or the wrapper)
    returncode: int | None          # exit status; 128+N if killed by signal N; None: timed out
    signal: str | None              # "SIGKILL" when killed by a signal
    timed_out: bool
    duration: float                 # seconds, wall
    stdout_tail: str
    stderr_tail: str                # the command's stderr, strace's own lines removed
    strace_messages: tuple[str, ...]
    accesses: tuple[Access, ...]
    failed: bool = False            # recorded with failed calls too
    uids: frozenset[int] = frozenset()   # ids the run switched to or chowned to (accounts)
    gids: frozenset[int] = frozenset()

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def programs(self) -> list[str]:
        """Every program the command executed (the command itself included), sorted."""
        return sorted({a.path for a in self.accesses if a.kind == "exec" and a.ok})

    def describe_status(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.signal:
            return f"killed by {self.signal}"
        return f"exited {self.returncode}"


def find_strace(strace: str | None = None) -> Strace:
    """Locate strace and learn which optional flags it takes. Raises NotFound with a hint."""
    path = strace if strace and os.sep in strace else shutil.which(strace or "strace")
    if not path or not os.access(path, os.X_OK):
        raise NotFound(f"strace not found{f' at {strace}' if strace else ''}: "
                       f"tracing needs it ({INSTALL_HINT})")
    return _probe_strace(os.path.realpath(path))


@functools.lru_cache(maxsize=8)
def _probe_strace(path: str) -> Strace:
    try:
        out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10)
    except OSError as e:
        raise NotFound(f"cannot run {path}: {e.strerror} ({INSTALL_HINT})") from None
    m = re.search(r"version (\d+(?:\.\d+)*)", out.stdout)
    version = tuple(int(x) for x in m.group(1).split(".")) if m else ()
    true = shutil.which("true") or "/bin/true"
    flags = tuple(f for f in OPTIONAL_FLAGS if _accepts(path, f, true))
    return Strace(path, version, flags)


def _accepts(path: str, flag: str, true: str) -> bool:
    """A trial run: does this strace take the flag here (kernel and all), silently?"""
    try:
        r = subprocess.run([path, "-f", "-qq", flag, "-e", "trace=openat", "-o", os.devnull, true],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and not r.stderr.strip()


def strace_argv(st: Strace, log: str, failed: bool = False) -> list[str]:
    argv = [st.path, "-f", "-qq", "-y", "-s", "4096", "-e", "signal=none"]
    if not failed:
        argv.append("-z")
    argv += st.flags
    argv += ["-e", "trace=" + ",".join("?" + s for s in TRACED_SYSCALLS), "-o", log]
    return argv


def command_argv(cmd: str | Sequence[str]) -> list[str]:
    """A shell string runs via /bin/sh -c; a sequence is an argv as is."""
    if isinstance(cmd, str):
        return ["/bin/sh", "-c", cmd]
    argv = list(cmd)
    if not argv:
        raise BadInput("no command to trace")
    return argv


def run_probe(cmd: str | Sequence[str], root: Root | None = None, *, failed: bool = False,
              timeout: float | None = None, env: Mapping[str, str] | None = None,
              cwd: str | None = None, wrapper: Sequence[str] = (),
              wrapper_execs: int = 1, path_map: Sequence[tuple[str, str]] = (),
              stdin=subprocess.DEVNULL, strace: str | None = None,
              keep_log: str | None = None, started_at: int | None = None) -> TraceResult:
    """Run cmd under strace; return its status, output tails and accesses.

    wrapper: an argv prefix the command runs under (e.g. the sandbox); accesses made by
      the wrapper itself, before it execs the command, are left out. wrapper_execs is how
      many execs the wrapper makes before the command's own (1 for the sandbox; 2 when what
      it runs execs the command in turn).
    path_map: (seen prefix, image prefix) pairs rewriting paths as the tracer saw them into
      image paths; a Root other than / adds (root.path, "/") so host paths under it map too.
    failed: also keep failed calls that said ENOENT (for what-is-missing analysis).
    keep_log: also write the raw strace log there (tests, debugging).
    started_at: the exec depth that proves the command started (default: the command's
      own, wrapper_execs + 1; a probe shell running only builtins execs nothing more).
    """
    with start_trace(cmd, root, failed=failed, env=env, cwd=cwd, wrapper=wrapper,
                     wrapper_execs=wrapper_execs, path_map=path_map, stdin=stdin,
                     strace=strace, started_at=started_at) as running:
        return running.finish(timeout, keep_log=keep_log)


@contextlib.contextmanager
def start_trace(cmd: str | Sequence[str], root: Root | None = None, *, failed: bool = False,
                env: Mapping[str, str] | None = None, cwd: str | None = None,
                wrapper: Sequence[str] = (), wrapper_execs: int = 1,
                path_map: Sequence[tuple[str, str]] = (), stdin=subprocess.DEVNULL,
                strace: str | None = None, started_at: int | None = None) -> Iterator["Running"]:
    """Start cmd under strace and hand back the Running trace (a service is talked to
    while it runs). Leaving the block kills whatever is still traced: no tracee outlives it,
    on an error, Ctrl-C or SIGTERM included."""
    from ..image.atomic import sigterm_raises   # SIGTERM unwinds like Ctrl-C: no tracee left
    st = find_strace(strace)
    argv = command_argv(cmd)
    maps = [(normpath(a), normpath(b)) for a, b in path_map]
    if root is not None and root.path != "/":
        maps.append((root.path, "/"))
    with tempfile.TemporaryDirectory(prefix="closure-trace-") as tmp, sigterm_raises():
        running = Running(st, argv, tmp, failed, wrapper_execs if wrapper else 0, maps,
                          os.path.abspath(cwd) if cwd else os.getcwd())
        if started_at is not None:
            running.started_at = started_at
        full = strace_argv(st, running.log, failed) + ["--"] + list(wrapper) + argv
        with open(running.out_path, "wb") as out, open(running.err_path, "wb") as err:
            try:
                running.proc = subprocess.Popen(full, stdin=stdin, stdout=out, stderr=err, cwd=cwd,
                                                env=dict(env) if env is not None else None,
                                                start_new_session=True)
            except OSError as e:
                raise BadInput(f"cannot run strace: {e.strerror}") from None
        try:
            yield running
        finally:
            if running.proc.poll() is None:
                _kill_traced(running.proc)
                running.proc.wait()


class Running:
    """A command running under strace (start_trace)."""

    def __init__(self, st: Strace, argv: list[str], tmp: str, failed: bool, depth: int,
                 maps: list[tuple[str, str]], cwd: str):
        self.st, self.argv, self.failed, self.depth, self.maps, self.cwd = st, argv, failed, depth, maps, cwd
        self.log = os.path.join(tmp, "strace.log")
        self.out_path, self.err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        self.proc: subprocess.Popen | None = None
        self.t0 = time.monotonic()
        self.started_at = depth + 1

    def poll(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        """The command's output so far (stdout then stderr tails, strace's lines removed)."""
        err, _ = _split_stderr(_tail(self.err_path), (self.st.path + ": ", "strace: "))
        return _tail(self.out_path) + err

    def kill(self) -> None:
        if self.proc.poll() is None:
            _kill_traced(self.proc)

    def finish(self, timeout: float | None = None, keep_log: str | None = None) -> TraceResult:
        """Wait for the command (killing it after timeout seconds) and read the trace."""
        timed_out = False
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_traced(self.proc)
            rc = self.proc.wait()
        except BaseException:       # Ctrl-C, SIGTERM: leave no tracee behind
            _kill_traced(self.proc)
            self.proc.wait()
            raise
        duration = time.monotonic() - self.t0
        stderr, messages = _split_stderr(_tail(self.err_path), (self.st.path + ": ", "strace: "))
        stdout = _tail(self.out_path)
        uids: frozenset[int] = frozenset()
        gids: frozenset[int] = frozenset()
        try:
            with open(self.log, encoding="utf-8", errors="surrogateescape") as f:
                accesses = parse(f, cwd=self.cwd)
            with open(self.log, encoding="utf-8", errors="surrogateescape") as f:
                uids, gids = parse_ids(f)
        except FileNotFoundError:
            accesses = []
        if keep_log and os.path.exists(self.log):
            _copy_atomically(self.log, keep_log)
        # Execs are counted per process lineage: strace execs the wrapper (and the wrapper may
        # exec itself onwards); the command's own exec is the next one.
        depth = self.depth
        started = any(a.kind == "exec" and a.ok and a.depth == self.started_at for a in accesses)
        if not started and not timed_out:
            from ..sandbox import setup_failure
            lines = list(messages) or stderr.strip().splitlines()[-1:] or [f"exit status {rc}"]
            why = setup_failure(rc, stderr) or lines[-1]
            raise BadInput(f"could not start {self.argv[0]} under strace: {why}")
        kept = tuple(_map(a, self.maps) for a in accesses
                     if a.depth > depth and (a.ok or (self.failed and a.errno == "ENOENT")))
        sig = None
        if not timed_out and rc < 0:
            try:
                sig = signal.Signals(-rc).name
            except ValueError:
                sig = f"signal {-rc}"
            rc = 128 - rc
        return TraceResult(
            argv=tuple(self.argv), returncode=None if timed_out else rc, signal=sig,
            timed_out=timed_out, duration=duration, stdout_tail=stdout, stderr_tail=stderr,
            strace_messages=tuple(messages), accesses=kept, failed=self.failed,
            uids=uids, gids=gids)


def _kill_traced(proc: subprocess.Popen) -> None:
    """SIGKILL everything strace traces, then strace itself.

    Killing strace alone would detach its tracees and leave them running (this strace has
    no --kill-on-exit). A tracee is found by its TracerPid, which cannot be a recycled pid.
    """
    for pid in _tracees(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)     # strace leads its own session
    except ProcessLookupError:
        pass


def _tracees(tracer: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"TracerPid:"):
                        if int(line.split()[1]) == tracer:
                            out.append(int(name))
                        break
        except OSError:
            continue
    return out


def _tail(path: str, limit: int = TAIL_BYTES) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - limit))
        data = f.read()
    if size > limit and b"\n" in data:
        data = data[data.index(b"\n") + 1:]       # start at a line boundary
    return data.decode("utf-8", "replace")


def _split_stderr(text: str, prefixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """strace's own complaints ("strace: ...", or its argv[0]) share the command's
    stderr; tell them apart."""
    keep, notes = [], []
    for line in text.splitlines(keepends=True):
        for p in prefixes:
            if line.startswith(p):
                notes.append(line[len(p):].rstrip("\n"))
                break
        else:
            keep.append(line)
    return "".join(keep), notes


def _copy_atomically(src: str, dest: str) -> None:
    tmp = f"{dest}.tmp{os.getpid()}"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _map(a: Access, maps: Sequence[tuple[str, str]]) -> Access:
    if not maps:
        return a
    path, fd_path = _map_path(a.path, maps), _map_path(a.fd_path, maps)
    if path == a.path and fd_path == a.fd_path:
        return a
    return replace(a, path=path, fd_path=fd_path)


def _map_path(path: str | None, maps: Sequence[tuple[str, str]]) -> str | None:
    if path is None:
        return None
    for seen, image in sorted(maps, key=lambda m: -len(m[0])):    # longest prefix wins
        if path == seen or path.startswith(seen.rstrip("/") + "/"):
            return normpath(image + "/" + path[len(seen):])
    return path

"""The one sandbox every program from a root or an image runs in: build probes (host root,
--root, --probe-in-image), `--serve` services, slim's probes and verify's fallback.

It looks like the container runtime to the program (init.py does the work, as its own
process under the tracer):
- the root (the host's /, a --root, an unpacked image, a candidate rootfs) seen through an
  overlay whose upper layer is a tmpfs of the sandbox: the program writes anywhere it could
  in a container, and nothing reaches the root or the host;
- /proc, a minimal /dev, hostname; a tmpfs /run on the host's root (its own /run is the
  host daemons'), a tmpfs /tmp on any other root;
- the User and its groups as real ids (closure runs as root: no user namespace, so a
  service can setuid to www-data and chown its files as under podman; a user namespace
  mapping all 2^32 ids would do the same but needs subordinate id ranges, and file owners
  on the host would not be what the program sees). Not root: a user namespace mapping only
  the caller, which is enough for root probes;
- exactly the given Env and WorkingDir;
- a private network namespace with loopback unless shared; clients join it through
  /proc/PID/ns/net (join_net), outside the traced tree;
- a pid namespace: when the command ends, everything it started is killed.

Why not bubblewrap: bwrap 0.8 (Debian 12) has no overlay options, so it could give a
writable root only by copying it, and as root without a user namespace it cannot set the
command's ids. The price: the sandbox starts a Python interpreter (`-I -S`, stdlib only),
0.1-0.5 s a run on this loaded 2-core machine against bwrap's 0.05 s
(medians of 5 runs of /bin/true: ~0.3 s), small beside a traced run.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

from ..errors import BadInput, ClosureError, NoRuntime

INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init.py")
SETUP_FAILED = 125
MESSAGE_PREFIX = "closure-sandbox: "
HOSTNAME = "closure"
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()


ROOT_USER = User()


@dataclass(frozen=True)
class Sandbox:
    """What to run and how the sandbox looks to it."""

    root: str                               # host directory seen as /
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    user: User = ROOT_USER
    share_net: bool = False
    binds: tuple[tuple[str, str], ...] = ()  # (host dir, path inside), read-only

    @property
    def host_root(self) -> bool:
        return os.path.realpath(self.root) == "/"


def check_usable() -> None:
    """Raise NoRuntime when this machine cannot make the sandbox (no /proc/self/ns)."""
    if not os.path.exists("/proc/self/ns/mnt"):
        raise NoRuntime("the sandbox needs Linux namespaces (/proc/self/ns is missing)")


@contextlib.contextmanager
def prepared(sb: Sandbox) -> Iterator[tuple[list[str], str]]:
    """(argv that runs sb: a prefix for the tracer; the control directory). The control
    directory is removed afterwards; init.py publishes its pid there as `pid`."""
    check_usable()
    if not sb.argv:
        raise BadInput("nothing to run in the sandbox")
    if not os.path.isdir(sb.root):
        raise BadInput(f"{sb.root}: the sandbox root is not a directory")
    ctl = tempfile.mkdtemp(prefix="closure-sandbox-")
    try:
        spec = {
            "root": os.path.abspath(sb.root), "host_root": sb.host_root,
            "argv": list(sb.argv), "env": dict(sb.env), "cwd": sb.cwd or "/",
            "user": {"uid": sb.user.uid, "gid": sb.user.gid, "groups": list(sb.user.groups)},
            "real_ids": os.getuid() == 0, "share_net": sb.share_net, "hostname": HOSTNAME,
            "binds": [list(b) for b in sb.binds], "ctl": ctl,
        }
        with open(os.path.join(ctl, "spec.json"), "w") as f:
            json.dump(spec, f)
        yield [sys.executable, "-I", "-S", INIT, os.path.join(ctl, "spec.json")], ctl
    finally:
        _remove_ctl(ctl)


def _remove_ctl(ctl: str) -> None:
    # Its mount point lived only in the sandbox's mount namespace: here it is an empty dir.
    shutil.rmtree(ctl, ignore_errors=True)


def sandbox_pid(ctl: str) -> int | None:
    """The sandbox's outer process (it holds the network namespace), once published."""
    try:
        with open(os.path.join(ctl, "pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def setup_failure(returncode: int | None, stderr: str) -> str | None:
    """The sandbox's own complaint, when it (not the command) failed."""
    for line in stderr.splitlines():
        if line.startswith(MESSAGE_PREFIX) and (returncode == SETUP_FAILED or "cannot run" in line):
            return line[len(MESSAGE_PREFIX):]
    return None


@contextlib.contextmanager
def join_net(pid: int) -> Iterator[None]:
    """While active, sockets this thread creates live in the sandbox's network namespace
    (a socket stays in the namespace it was made in, so it can be used after)."""
    libc = ctypes.CDLL(None, use_errno=True)
    mine = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        theirs = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    except OSError as e:
        os.close(mine)
        raise ClosureError(f"the sandbox is gone: {e.strerror}") from None
    try:
        if libc.setns(theirs, CLONE_NEWNET) != 0:
            raise NoRuntime(f"cannot join the sandbox's network: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            libc.setns(mine, CLONE_NEWNET)
    finally:
        os.close(theirs)
        os.close(mine)


def net_preexec(pid: int):
    """A subprocess preexec_fn putting the child into the sandbox's network namespace."""
    path = f"/proc/{pid}/ns/net"

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)
    return enter


# -- accounts of the root --------------------------------------------------------------------

def lookup_user(root, spec: str | None) -> User:
    """'name', 'uid', 'name:group', 'uid:gid' against the root's /etc/passwd and /etc/group
    (read through Root, so an image's absolute links stay inside it). A numeric id needs no
    entry, as under podman. Raises BadInput for a name the root does not have."""
    if not spec:
        return ROOT_USER
    name, _, group = spec.partition(":")
    passwd = _table(root, "/etc/passwd")
    uid = gid = None
    for f in passwd:
        if len(f) >= 4 and f[0] == name:
            uid, gid = int(f[2]), int(f[3])
            break
    if uid is None:
        if not name.isdigit():
            raise BadInput(f"user {name!r} is not in the root's /etc/passwd")
        uid = int(name)
        gid = next((int(f[3]) for f in passwd if len(f) >= 4 and f[2] == name), uid)
    groups_tab = _table(root, "/etc/group")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = next((int(f[2]) for f in groups_tab if len(f) >= 3 and f[0] == group), None)
            if found is None:
                raise BadInput(f"group {group!r} is not in the root's /etc/group")
            gid = found
    login = next((f[0] for f in passwd if len(f) >= 3 and f[2] == str(uid)), name)
    extra = sorted({int(f[2]) for f in groups_tab if len(f) >= 4 and f[2].isdigit()
                    and login in f[3].split(",")} | {gid})
    return User(uid, gid, tuple(extra))


def home_of(root, uid: int) -> str | None:
    for f in _table(root, "/etc/passwd"):
        if len(f) >= 6 and f[2] == str(uid):
            return f[5] or None
    return None


def _table(root, path: str) -> list[list[str]]:
    try:
        text = root.read_bytes(path).decode("utf-8", "replace")
    except (ClosureError, OSError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]

"""The sandbox's own process: set up a container-like view of a root, then run one command.

Run as `python3 -I -S init.py SPEC.json` (standard library only: it is started under strace,
before anything of closure could be imported, and keeps running after / has changed).
Steps, and why:

1. unshare the mount, pid, uts, ipc (and, unless shared, network) namespaces. As root the
   ids stay real (no user namespace): a service can setuid to www-data or postgres and chown
   its files exactly as under podman. Not root: a user namespace mapping our own ids to 0.
2. Bring up loopback in the new network namespace and publish our pid (`ctl/pid`): clients
   join the network through /proc/PID/ns/net.
3. fork: the child is pid 1 of the new pid namespace. When it exits the kernel kills every
   other process in the namespace, so no daemon (gpg-agent, a double-forked server) outlives
   the run. PR_SET_PDEATHSIG chains the lifetimes: tracer -> this process -> pid 1.
4. pid 1 mounts, all private to the new mount namespace: a tmpfs holding an overlay whose
   lower layer is the root (read-only to us: the host or an unpacked image is never written)
   and whose upper layer dies with the namespace; /proc, a minimal /dev, a tmpfs /run on
   the host root (tmpfs /tmp on any other); the helper dir; then pivot_root into it.
5. pid 1 forks the command (pid 2): bounding capabilities cut to podman's default set,
   groups, gid, uid set, chdir WorkingDir, execve with exactly the given environment. pid 1
   reaps orphans and forwards SIGTERM & co. to the command, and exits with its status.

A setup failure prints one line "closure-sandbox: ..." on stderr and exits 125; a command
that cannot be executed exits 127 (126 when it is not executable), as a shell would.
"""
import ctypes
import errno
import fcntl
import json
import os
import platform
import signal
import socket
import struct
import sys

SETUP_FAILED = 125
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP = 1, 24
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
# podman's default capability set: chown, dac_override, fowner, fsetid, kill, setgid, setuid,
# setpcap, net_bind_service, sys_chroot, setfcap. Everything else (sys_admin: mount, ...) goes.
KEPT_CAPS = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 31})
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)

libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def check(ret: int, what: str) -> int:
    if ret < 0:
        e = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(e)}")
    return ret


def mount(src, target, fstype, flags=0, data=None, what=None):
    check(libc.mount(src.encode() if src else None, target.encode(),
                     fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                     data.encode() if data else None), what or f"mount {fstype or src} on {target}")


def prctl(option, arg):
    check(libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def die(message: str, code: int = SETUP_FAILED):
    os.write(2, f"closure-sandbox: {message}\n".encode(errors="replace"))
    os._exit(code)


# -- the outer process ----------------------------------------------------------------------------

def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)     # the tracer died: so do we, and pid 1 after us
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC
    if not spec["share_net"]:
        flags |= CLONE_NEWNET
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        flags |= CLONE_NEWUSER
    check(libc.unshare(flags), "unshare (namespaces)")
    if uid != 0:
        map_self(uid, gid)
    if not spec["share_net"]:
        loopback_up()
    publish(spec["ctl"], "pid", str(os.getpid()))
    child = os.fork()
    if child == 0:
        pid1(spec)
    forward_to(child)
    os._exit(wait_status(child))


def map_self(uid: int, gid: int) -> None:
    """Unprivileged: our own ids become 0 inside (nothing else is mapped)."""
    for name, text in (("uid_map", f"0 {uid} 1"), ("setgroups", "deny"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def loopback_up() -> None:
    IFF_UP, IFF_LOOPBACK, IFF_RUNNING, SIOCSIFFLAGS = 0x1, 0x8, 0x40, 0x8914
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


def publish(ctl: str, name: str, value: str) -> None:
    tmp = os.path.join(ctl, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(value)
    os.rename(tmp, os.path.join(ctl, name))


def forward_to(pid: int) -> None:
    def handler(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for sig in FORWARDED:
        signal.signal(sig, handler)


def wait_status(pid: int) -> int:
    while True:
        try:
            got, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return SETUP_FAILED
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


# -- pid 1 ----------------------------------------------------------------------------------------

def pid1(spec: dict) -> None:
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(SETUP_FAILED)      # the outer process is already gone
        make_root(spec)
        libc.sethostname(spec["hostname"].encode(), len(spec["hostname"]))
    except (SetupError, OSError) as e:
        die(str(e))
    service = os.fork()
    if service == 0:
        run_command(spec)
    forward_to(service)
    status = SETUP_FAILED
    while True:                         # reap everything; the command's status is ours
        try:
            got, st = os.wait()
        except InterruptedError:
            continue
        except ChildProcessError:
            break
        if got == service:
            status = os.waitstatus_to_exitcode(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
            break
    os._exit(status)


def make_root(spec: dict) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE, what="making mounts private")
    base = os.path.join(spec["ctl"], "mnt")
    os.mkdir(base, 0o700)
    mount("closure-sandbox", base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
    new = os.path.join(base, "root")
    for i, (lower, at) in enumerate(overlays(spec)):
        upper, work = os.path.join(base, f"upper{i}"), os.path.join(base, f"work{i}")
        os.mkdir(upper)
        os.mkdir(work)
        target = new + at if at != "/" else new
        if at == "/":
            os.mkdir(new)
        elif not os.path.isdir(target):
            continue
        mount("overlay", target, "overlay", 0,
              f"lowerdir={escape(lower)},upperdir={upper},workdir={work}",
              what=f"overlay of {lower}")
    # The host's /run holds its daemons' sockets and pid files: the service gets an empty
    # one. Its /tmp stays visible through the overlay (a program or script may live there;
    # writes stay private). Another root's /tmp is a fresh tmpfs, as a container's scratch.
    dirs = {"run": 0o755} if spec["host_root"] else {"tmp": 0o1777}
    for name, mode in dirs.items():
        path = fresh_dir(new, name, mode)
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
    mount("proc", fresh_dir(new, "proc", 0o555), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    make_dev(fresh_dir(new, "dev", 0o755))
    if spec.get("sysfs", True):
        try:
            mount("sysfs", fresh_dir(new, "sys", 0o555), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except SetupError:
            pass                         # a shared network namespace may refuse it: go without
    for host, at in spec.get("binds", ()):
        if os.path.isdir(host):
            path = fresh_dir(new, at.lstrip("/"), 0o755)
        else:                            # a file: an empty file to bind it onto
            parent, _, name = at.strip("/").rpartition("/")
            path = os.path.join(fresh_dir(new, parent, 0o755) if parent else new, name)
            open(path, "a").close()
        mount(host, path, None, MS_BIND | MS_REC)
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, what=f"read-only {at}")
    os.chdir(new)
    check(libc.syscall(SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")


def overlays(spec: dict) -> list:
    """(lower dir, where) pairs: the root, and on the host root each real filesystem mounted
    below / (an overlay does not cross mount points)."""
    out = [(spec["root"], "/")]
    if spec["host_root"]:
        out += [(m, m) for m in host_mounts(spec["ctl"])]
    return out


PSEUDO = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "mqueue",
                    "debugfs", "tracefs", "securityfs", "pstore", "bpf", "configfs", "fusectl",
                    "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "nsfs", "overlay", "ramfs",
                    "squashfs", "fuse.lxcfs", "rpc_pipefs", "selinuxfs"})
SKIPPED_TOPS = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/run", "/mnt/sandboxing")


def host_mounts(ctl: str) -> list:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point = unescape(fields[4])
            fstype = fields[sep + 1]
            if point == "/" or fstype in PSEUDO or point.startswith(ctl):
                continue
            if any(point == t or point.startswith(t + "/") for t in SKIPPED_TOPS):
                continue
            found.append(point)
    return sorted(set(found), key=lambda p: (p.count("/"), p))


def unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def escape(path: str) -> str:
    """overlay's option syntax: ',' and ':' and '\\' are special in lowerdir."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def fresh_dir(new: str, name: str, mode: int) -> str:
    """new/name as a real directory of the overlay (a link or file there is replaced in the
    upper layer only: a mount never follows an image's symlink)."""
    path = os.path.join(new, name)
    parent = new
    for part in name.split("/"):
        path = os.path.join(parent, part)
        try:
            st = os.lstat(path)
            if not (st.st_mode & 0o170000 == 0o040000):
                os.unlink(path)
                raise FileNotFoundError
        except FileNotFoundError:
            os.mkdir(path, mode)
        parent = path
    return path


def make_dev(dev: str) -> None:
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755")
    for name in DEVICES:
        node = os.path.join(dev, name)
        open(node, "w").close()
        try:
            mount("/dev/" + name, node, None, MS_BIND)
        except SetupError:
            os.unlink(node)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("ptmx", "pts/ptmx")):
        os.symlink(target, os.path.join(dev, name))
    shm = os.path.join(dev, "shm")
    os.mkdir(shm)
    mount("tmpfs", shm, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    pts = os.path.join(dev, "pts")
    os.mkdir(pts)
    try:
        mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    except SetupError:
        pass


# -- pid 2: the command ---------------------------------------------------------------------------

def run_command(spec: dict) -> None:
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    try:
        drop_capabilities()
        user = spec["user"]
        if os.getuid() == 0 and spec["real_ids"]:
            os.setgroups(user["groups"])
            os.setgid(user["gid"])
            os.setuid(user["uid"])
        elif user["uid"] != 0:
            die("a non-root User needs closure run as root (real ids)")
        cwd = spec["cwd"]
        try:
            os.chdir(cwd)
        except FileNotFoundError:
            os.makedirs(cwd, exist_ok=True)
            os.chdir(cwd)
    except (SetupError, OSError) as e:
        die(str(e))
    argv, env = spec["argv"], spec["env"]
    e = exec_on_path(argv, env)
    die(f"cannot run {argv[0]}: {e.strerror}", 126 if e.errno in (errno.EACCES, errno.ENOEXEC) else 127)


def exec_on_path(argv: list, env: dict) -> OSError:
    """execvp with the command's own PATH (os.execvpe would import a module, and the old
    / is gone). Returns the error that mattered when nothing could be executed."""
    name = argv[0]
    dirs = [""] if "/" in name else (env.get("PATH") or "/usr/local/bin:/usr/bin:/bin").split(":")
    first = None
    for d in dirs:
        path = os.path.join(d or ".", name) if d or "/" not in name else name
        try:
            os.execve(path, argv, env)
        except OSError as e:
            if first is None or (e.errno != errno.ENOENT and first.errno == errno.ENOENT):
                first = e
    return first


def drop_capabilities() -> None:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except OSError:
        last = 40
    for cap in range(last + 1):
        if cap not in KEPT_CAPS:
            libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0)


if __name__ == "__main__":
    try:
        main()
    except (SetupError, OSError) as e:
        die(str(e))

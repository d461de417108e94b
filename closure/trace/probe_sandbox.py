"""Run a probe string inside a directory tree with bubblewrap, as if the tree were the image
(a candidate rootfs, a --root, an unpacked image being slimmed). The tree needs no mount
points and no shell of its own.

The sandbox's / is bwrap's own empty tmpfs: each top-level entry of the tree is bound
read-only onto it (top-level symlinks such as usrmerge's /bin -> usr/bin are recreated as
links), then /proc, /dev and a tmpfs /tmp are mounted and / is remounted read-only. Doing
it entry by entry, rather than binding the tree at /, means the tree needs no /proc, /dev
or /tmp of its own (a closure usually has none) and is never written to.

The probe is a shell string, but the tree may have no shell (a curl image has none), so
it runs under a helper: the host's /bin/sh with its libraries and loader, mounted at
HELPER_DIR and started through that loader (`ld.so --library-path DIR sh -c PROBE`), so
nothing of the tree is needed to start it. Its PATH lookups happen inside the tree, which
is exactly what an in-image probe wants to observe.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tempfile
from typing import Iterator, Mapping

from ..errors import NoRuntime, NotFound
from ..root import Root
from .run import TraceResult, run_probe

BWRAP_HINT = "apt-get install bubblewrap"
HELPER_DIR = "/.closure-probe"      # where the helper shell is mounted inside the sandbox
HELPER_SHELL = "sh"
RESERVED = frozenset({"proc", "dev", "tmp", HELPER_DIR.lstrip("/")})


def find_bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise NoRuntime(f"bubblewrap (bwrap) is not installed: probes inside an image need it ({BWRAP_HINT})")
    return path


def bwrap_argv(tree: str, *, env: Mapping[str, str], network: bool = False,
               helper: str | None = None, cwd: str = "/tmp") -> list[str]:
    """The bwrap prefix (ending in "--") that runs a command inside tree.

    helper: a directory made by make_helper, mounted at HELPER_DIR. The environment is
    exactly env (--clearenv): nothing of the caller's leaks into the probe."""
    argv = [find_bwrap(), "--die-with-parent", "--unshare-all"]
    if network:
        argv.append("--share-net")
    for name in sorted(os.listdir(tree)):
        if name in RESERVED:
            continue
        host = os.path.join(tree, name)
        st = os.lstat(host)
        if stat.S_ISLNK(st.st_mode):
            argv += ["--symlink", os.readlink(host), "/" + name]
        elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
            argv += ["--ro-bind", host, "/" + name]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    if helper is not None:
        argv += ["--ro-bind", helper, HELPER_DIR]
    argv += ["--remount-ro", "/", "--chdir", cwd, "--clearenv"]
    for key in sorted(env):
        argv += ["--setenv", key, env[key]]
    argv.append("--")
    return argv


@contextlib.contextmanager
def helper_shell() -> Iterator[str]:
    """A temporary directory holding the helper shell (make_helper), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="closure-probe-") as helper:
        make_helper(helper)
        yield helper


def trace_in_tree(tree: str, probe: str, helper: str, *, env: Mapping[str, str],
                  network: bool = False, cwd: str = "/tmp", timeout: float | None = None,
                  failed: bool = False, keep_shell: bool = False) -> TraceResult:
    """Trace the probe string run by the helper shell inside tree; paths come back as
    image paths (the tree's own prefix mapped to /).

    bwrap is exec 1 and the helper loader running the shell exec 2; the shell's own
    accesses are left out unless keep_shell (its failed PATH lookups are how a program
    missing from the tree shows)."""
    wrapper = bwrap_argv(tree, env=env, network=network, helper=helper, cwd=cwd)
    shell = helper_command(helper, probe)
    return run_probe([probe], None, failed=failed, timeout=timeout, wrapper=wrapper + shell[:-1],
                     wrapper_execs=1 if keep_shell else 2, path_map=[(tree, "/")])


def make_helper(dest: str) -> None:
    """Copy the host's /bin/sh, its libraries and its loader into the empty dir dest."""
    from ..elf.ldso import Loader
    host = Root("/")
    try:
        result = Loader(host).load("/bin/sh")
    except (NotFound, OSError) as e:
        raise NotFound(f"the host's /bin/sh cannot serve as the probe shell: {e}") from None
    if result.interp is None or result.interp.path is None:
        raise NotFound("the host's /bin/sh has no usable ELF interpreter: it cannot serve as the probe shell")
    files = {HELPER_SHELL: result.main.real, loader_name(result.interp.name): result.interp.path}
    for edge in result.edges:
        if edge.path is None:
            raise NotFound(f"the host's /bin/sh needs {edge.name}, which is not found")
        files.setdefault(edge.name, edge.path)
    for name, ipath in sorted(files.items()):
        shutil.copyfile(host.resolve(ipath).path, os.path.join(dest, name))
        os.chmod(os.path.join(dest, name), 0o755)
    with open(os.path.join(dest, "loader"), "w") as f:
        f.write(loader_name(result.interp.name))


def loader_name(interp: str) -> str:
    return posixpath.basename(interp)


def helper_command(helper: str, probe: str) -> list[str]:
    """argv (inside the sandbox) that runs the probe string under the helper shell."""
    with open(os.path.join(helper, "loader")) as f:
        ld = f.read().strip()
    return [f"{HELPER_DIR}/{ld}", "--library-path", HELPER_DIR, f"{HELPER_DIR}/{HELPER_SHELL}",
            "-c", probe]

"""Trace a probe string (or an argv) inside a directory tree, as if the tree were the image:
the host's /, a candidate rootfs, a --root, an unpacked image being slimmed. The tree is
seen through closure.sandbox (a private writable overlay, /proc, /dev, tmpfs /tmp, a pid
namespace), so the program can write where it would in a container and the tree and the
host never change.

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
import tempfile
from typing import Iterator, Mapping, Sequence

from ..errors import NotFound
from ..root import Root
from ..sandbox import ROOT_USER, Sandbox, User, prepared
from .run import TraceResult, run_probe

HELPER_DIR = "/.closure-probe"      # where the helper shell is mounted inside the sandbox
HELPER_SHELL = "sh"


@contextlib.contextmanager
def helper_shell() -> Iterator[str]:
    """A temporary directory holding the helper shell (make_helper), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="closure-probe-") as helper:
        os.chmod(helper, 0o755)             # a service's own user runs it too
        make_helper(helper)
        yield helper


def probe_sandbox(tree: str, probe: str | Sequence[str], helper: str | None, *,
                  env: Mapping[str, str], network: bool = False, cwd: str = "/tmp",
                  user: User = ROOT_USER) -> Sandbox:
    """The sandbox that runs probe: a shell string through the helper shell, an argv as is."""
    if isinstance(probe, str):
        argv = tuple(helper_command(helper, probe))
        binds = ((helper, HELPER_DIR),)
    else:
        argv, binds = tuple(probe), ((helper, HELPER_DIR),) if helper else ()
    return Sandbox(tree, argv, env=dict(env), cwd=cwd, user=user, share_net=network, binds=binds)


def trace_in_tree(tree: str, probe: str | Sequence[str], helper: str | None, *,
                  env: Mapping[str, str], network: bool = False, cwd: str = "/tmp",
                  timeout: float | None = None, failed: bool = False, keep_shell: bool = False,
                  user: User = ROOT_USER) -> TraceResult:
    """Trace the probe run inside tree; paths come back as image paths.

    The sandbox's own process is exec 1 and, for a probe string, the helper loader running
    the shell exec 2; the shell's own accesses are left out unless keep_shell (its failed
    PATH lookups are how a program missing from the tree shows)."""
    sb = probe_sandbox(tree, probe, helper, env=env, network=network, cwd=cwd, user=user)
    shell = isinstance(probe, str)
    with prepared(sb) as (wrapper, _ctl):
        return run_probe(list(sb.argv), None, failed=failed, timeout=timeout, wrapper=wrapper,
                         wrapper_execs=2 if shell and not keep_shell else 1, started_at=2)


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

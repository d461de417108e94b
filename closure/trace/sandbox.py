"""Run a probe inside a root directory (an unpacked image) with bubblewrap, so the program
sees the image's files, libraries and configuration instead of the host's.

The root is bound read-only (a probe must not change what is analysed), with fresh /proc,
/dev and tmpfs /tmp, /var/tmp and /run where the root has those directories (a read-only
root cannot grow mount points: a caller that owns the root creates them first); every namespace is unshared (no network unless
asked: the probe may then reach servers on the host's loopback); the environment is only
what the caller gives (the image config's Env). strace runs outside, on the host, so the
image needs no tracer: bubblewrap is exec #1 of the traced lineage, the command exec #2
(run_probe's wrapper_execs=1).
"""
from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping

from ..errors import NoRuntime

INSTALL_HINT = "apt-get install bubblewrap"
SCRATCH = ("/tmp", "/var/tmp", "/run")   # tmpfs mounts: what the probe writes there is gone


def find_bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise NoRuntime(f"bubblewrap (bwrap) is not installed: probes in an image need it ({INSTALL_HINT})")
    return path


def bwrap_argv(rootfs: str, *, env: Mapping[str, str] | None = None, cwd: str = "/",
               network: bool = False, writable: bool = False) -> list[str]:
    """The bwrap command line (ending in '--') that runs a command inside rootfs."""
    rootfs = os.path.abspath(rootfs)
    argv = [find_bwrap(), "--bind" if writable else "--ro-bind", rootfs, "/"]
    for kind, d in (("--proc", "/proc"), ("--dev", "/dev")) + tuple(("--tmpfs", d) for d in SCRATCH):
        if _is_real_dir(rootfs, d):
            argv += [kind, d]
    argv += ["--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    if network:
        argv.append("--share-net")
    for key, value in sorted((env or {}).items()):
        argv += ["--setenv", key, value]
    argv += ["--chdir", cwd or "/", "--"]
    return argv


def _is_real_dir(rootfs: str, ipath: str) -> bool:
    """A directory, not a link to one (bwrap would follow a link out of the root)."""
    host = rootfs
    for part in ipath.strip("/").split("/"):
        host = os.path.join(host, part)
        try:
            st = os.lstat(host)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
    return True

"""The plan written out as a plain directory tree (`--format rootfs`), for chroot,
bubblewrap or a Dockerfile `COPY`. Same items as the layer, same modes and times."""
from __future__ import annotations

import os
import shutil

from ..root import Root
from .tarlayer import LayerPlan, Progress


def write_rootfs(plan: LayerPlan, root: Root, dest_dir: str, *, mtime: int,
                 progress: Progress | None = None) -> None:
    """Materialise the plan under the existing empty directory dest_dir."""
    dest = Root(dest_dir)
    as_root = os.geteuid() == 0
    done = 0
    for item in plan.items:
        host = dest.host(item.path)
        if item.kind == "dir":
            os.mkdir(host)
        elif item.kind == "symlink":
            os.symlink(item.link, host)
        elif item.kind == "hardlink":
            os.link(dest.host(item.link), host)
            continue   # owner, mode and time belong to the first name
        else:
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                if item.content is not None:
                    out.write(item.content)
                else:
                    with root.open(item.source) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
            done += item.size
            if progress:
                progress(done)
        if as_root:
            os.lchown(host, item.uid, item.gid)   # 0:0, or a recipe's owner (a user's HOME)
        if item.kind != "symlink":
            os.chmod(host, item.mode)   # explicit: the umask must not decide modes
    # Times last, deepest first, so writing a child does not bump its directory's mtime.
    for item in reversed(plan.items):
        if item.kind != "hardlink":
            os.utime(dest.host(item.path), (mtime, mtime), follow_symlinks=False)

"""bubblewrap, which every probe that runs inside a tree (an unpacked image, a candidate
rootfs, a --root) needs: found once, with an install hint when it is absent. How the tree
is mounted is probe_sandbox's business."""
from __future__ import annotations

import shutil

from ..errors import NoRuntime

INSTALL_HINT = "apt-get install bubblewrap"


def find_bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise NoRuntime(f"bubblewrap (bwrap) is not installed: probes inside an image need it ({INSTALL_HINT})")
    return path

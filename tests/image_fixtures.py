"""Helpers for the image tests: a Closure made by hand from `ldd` output (the target, its
libraries, the interpreter and every symlink met on the way), independent of
closure.collect, so the writer is tested against a plan whose contents are known."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from closure.model import Closure, Entry, Reason
from closure.root import Root

_LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)$")
OCI_VALIDATE = Path("/work/shared/tools/oci-validate.py")
PODMAN_FLAGS = ["--runtime", "runc", "--cgroup-manager=cgroupfs"]


def add_host_path(closure: Closure, root: Root, ipath: str, reason: Reason) -> None:
    resolved = root.resolve(ipath)
    for link, target in resolved.links:
        closure.add(Entry(link, "symlink", mode=0o777, target=target), Reason("symlink", by=ipath))
    st = root.lstat(resolved.path)
    closure.add(Entry(resolved.path, "file", mode=st.st_mode & 0o7777, size=st.st_size,
                      source=resolved.path), reason)


def closure_from_ldd(*programs: str, extra: tuple[str, ...] = ()) -> Closure:
    root = Root("/")
    closure = Closure(root="/", targets=list(programs))
    for prog in programs:
        add_host_path(closure, root, prog, Reason("target"))
        out = subprocess.run(["ldd", prog], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            m = _LDD_LINE.match(line)
            if m:
                add_host_path(closure, root, m.group(2), Reason("needed", by=prog, name=m.group(1)))
    for path in extra:
        add_host_path(closure, root, path, Reason("include"))
    return closure


@pytest.fixture(scope="session")
def curl_closure() -> Closure:
    if not os.path.exists("/usr/bin/curl"):
        pytest.skip("needs /usr/bin/curl")
    return closure_from_ldd("/usr/bin/curl")


def oci_validate(path) -> subprocess.CompletedProcess:
    """The shared independent validator, run read-only as a subprocess."""
    if not OCI_VALIDATE.exists():
        pytest.skip(f"needs {OCI_VALIDATE}")
    return subprocess.run([sys.executable, str(OCI_VALIDATE), str(path)], capture_output=True, text=True)


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")

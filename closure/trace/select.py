"""Which traced accesses become image content.

Kernel and runtime trees, the probe's own scratch space and whatever the probe wrote are
dropped; secrets are never taken unless named, and touching one yields a warning; what is
left is classified against the Root (a listed directory is kept as a directory, not as
its contents).
"""
from __future__ import annotations

import fnmatch
import posixpath
import stat
from typing import Iterable, Sequence

from ..errors import BadInput
from ..root import Root, normpath
from .parse import Access

# Virtual or per-boot trees: never image content.
DROPPED_TREES = ("/proc", "/sys", "/dev", "/run", "/tmp")

# Known secret locations. Deliberately a list of places, not a guess from file names:
# "*.key" would also catch public material, and a miss here is what --include is for.
SECRET_FILES = frozenset({
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
    "/etc/security/opasswd", "/etc/krb5.keytab",
})
SECRET_TREES = (
    "/root", "/etc/sudoers.d", "/etc/ssl/private", "/etc/pki/tls/private",
    "/etc/letsencrypt/archive", "/etc/letsencrypt/live", "/etc/letsencrypt/keys",
)
SECRET_GLOBS = ("/etc/ssh/ssh_host_*", "/home/*")   # host keys; every home directory
NOT_SECRET_GLOBS = ("/etc/ssh/ssh_host_*.pub",)      # public halves are fine

# Kinds in traced_paths' answer: an executed program, a file read, a file only
# stat'ed/access'ed, a symlink only read as a link, a directory.
OUT_KINDS = ("exec", "file", "stat", "symlink", "dir")


def under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def is_dropped(path: str, scratch: Sequence[str] = ()) -> bool:
    return path == "/" or any(under(path, t) for t in DROPPED_TREES) or any(under(path, s) for s in scratch)


def is_secret(path: str, root: Root | None = None) -> bool:
    """A known secret place, or a credential file wherever it is (HOME may be anywhere:
    /var/lib/jenkins/.aws, /srv/app/.docker/config.json); with `root`, also a *.pem or
    *.key file that holds a private key."""
    if path in SECRET_FILES or any(under(path, t) for t in SECRET_TREES):
        return True
    if any(fnmatch.fnmatchcase(path, g) for g in NOT_SECRET_GLOBS):
        return False
    if is_credential(path):
        return True
    if root is not None and path.endswith(PRIVATE_KEY_SUFFIXES) and _holds_private_key(root, path):
        return True
    # /home/*: the glob's '*' also spans '/', so everything below a home directory matches.
    return any(fnmatch.fnmatchcase(path, g) for g in SECRET_GLOBS)


# Credentials, wherever they are: even inside the target's own tree (a venv or app under /home).
OWN_TREE_SECRET_PARTS = ("/.ssh/", "/.aws/", "/.docker/", "/.kube/", "/.gnupg/", "/.config/gcloud/",
                         "/.azure/", "/.password-store/")
OWN_TREE_SECRET_NAMES = frozenset({".netrc", ".npmrc", ".pypirc", ".git-credentials",
                                   ".bash_history", ".zsh_history", ".python_history",
                                   ".pgpass", ".my.cnf", ".vault-token",
                                   # ssh private keys, in ~/.ssh or anywhere else
                                   "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk",
                                   "id_ed25519_sk"})
PRIVATE_KEY_SUFFIXES = (".pem", ".key")
_PRIVATE_KEY = b"PRIVATE KEY-----"


def is_credential(path: str) -> bool:
    """A credential file or directory by its name, wherever it is."""
    return (posixpath.basename(path) in OWN_TREE_SECRET_NAMES
            or any(part in path + "/" for part in OWN_TREE_SECRET_PARTS))


def _holds_private_key(root: Root, path: str) -> bool:
    """A PEM file is public (a certificate) or secret (a key): its first 64 KB say which."""
    try:
        r = root.try_resolve(path)
        if r is None or not root.is_file(r.path):
            return False
        with root.open(r.path) as f:
            return _PRIVATE_KEY in f.read(1 << 16)
    except (OSError, BadInput):
        return False


def in_own_tree(path: str, own: Sequence[str]) -> bool:
    """Is path in the target's own tree (its venv, app dir, interpreter prefix) and no
    credential? Such a file is the program's, wherever it lives (/tmp, /home, /root)."""
    return any(under(path, o) for o in own) and path not in SECRET_FILES and not is_credential(path)


def _included(path: str, include: Sequence[str]) -> bool:
    return any(under(path, i) for i in include)


def traced_paths(accesses: Iterable[Access], root: Root, scratch: Sequence[str] = (),
                 include_secrets: Sequence[str] = (), own: Sequence[str] = ()) -> tuple[list[tuple[str, str]], list[str]]:
    """Successful accesses -> (sorted [(image path, kind)], sorted warnings).

    Paths are kept as the program spelled them (the collector adds the symlinks on the way);
    when a spelling does not resolve in the root (e.g. a lexical '..' through a symlink),
    the kernel's view of the opened fd is used instead.
    """
    scratch = tuple(normpath(s) for s in scratch)
    include = tuple(normpath(i) for i in include_secrets)
    kinds: dict[str, set[str]] = {}
    syscalls: dict[str, set[str]] = {}
    fallback: dict[str, str] = {}
    written: set[str] = set()
    sockets: set[str] = set()
    for a in accesses:
        if not a.ok:
            continue
        if a.write:
            written.add(a.path)
            if a.fd_path:
                written.add(a.fd_path)
            continue
        if a.kind == "connect":
            sockets.add(a.path)
            continue
        kinds.setdefault(a.path, set()).add(a.kind)
        syscalls.setdefault(a.path, set()).add(a.syscall)
        if a.fd_path and a.fd_path != a.path:
            fallback.setdefault(a.path, a.fd_path)

    kept: dict[str, str] = {}
    secrets: set[str] = set()

    def admissible(path: str) -> bool:
        if path in written or any(under(path, s) for s in scratch):
            return False
        if in_own_tree(path, own):
            return True
        if is_dropped(path, scratch):
            return False
        if is_secret(path, root) and not _included(path, include):
            secrets.add(path)
            return False
        return True

    for spelled in sorted(kinds):
        path = spelled
        if not admissible(path):
            continue
        resolved = _resolve(root, path)
        if resolved is None and spelled in fallback:
            path = fallback[spelled]
            if not admissible(path):
                continue
            resolved = _resolve(root, path)
        if resolved is None or not admissible(resolved):
            continue                    # gone (a probe's temp file) or lands somewhere dropped
        kind = _classify(root, path, resolved, kinds[spelled], syscalls[spelled])
        if kind is not None:
            kept[path] = _stronger(kept.get(path), kind)

    # A file the probe wrote needs its directory; a socket it connected to, likewise.
    for path in sorted(written | sockets):
        parent = posixpath.dirname(path)
        if parent in kept or not admissible(parent):
            continue
        resolved = _resolve(root, parent)
        if resolved is not None and admissible(resolved) and _is_dir(root, resolved):
            kept[parent] = "dir"

    warnings = [f"probe touched {p}, a secret: not taken (include it explicitly to take it)"
                for p in sorted(secrets)]
    return sorted(kept.items()), warnings


_RANK = {k: i for i, k in enumerate(OUT_KINDS)}


def _stronger(a: str | None, b: str) -> str:
    return b if a is None or _RANK[b] < _RANK[a] else a


def _resolve(root: Root, path: str) -> str | None:
    try:
        r = root.try_resolve(path)
    except BadInput:                    # symlink loops, unreadable components
        return None
    return None if r is None else r.path


def resolves(root: Root, path: str) -> bool:
    """Does path lead somewhere in root (a link loop does not)?"""
    return _resolve(root, path) is not None


def _is_dir(root: Root, resolved: str) -> bool:
    st = root.lstat(resolved)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _classify(root: Root, path: str, resolved: str, kinds: set[str], syscalls: set[str]) -> str | None:
    st = root.lstat(resolved)
    if st is None:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if not stat.S_ISREG(st.st_mode):
        return None                     # fifos, sockets, devices outside /dev: not content
    if "exec" in kinds:
        return "exec"
    if "open" in kinds:
        return "file"
    if "readlink" in kinds:
        link = root.lstat(path)
        if link is not None and stat.S_ISLNK(link.st_mode) and not (
                syscalls - {"readlink", "readlinkat", "lstat", "lstat64", "oldlstat"}):
            return "symlink"            # only the link text was read, not the file
    return "stat"


def missing_paths(accesses: Iterable[Access], source: Root, scratch: Sequence[str] = (),
                  include_secrets: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(paths a probe failed to find (ENOENT) that exist in the source root: what an image
    run lacks; secrets it looked for, not taken), both sorted. Needs a trace recorded with
    failed=True."""
    scratch = tuple(normpath(s) for s in scratch)
    include = tuple(normpath(i) for i in include_secrets)
    out: set[str] = set()
    secrets: set[str] = set()
    for a in accesses:
        if a.ok or a.errno != "ENOENT" or a.write or a.kind in ("mkdir", "connect"):
            continue
        p = a.path
        if is_dropped(p, scratch):
            continue
        resolved = _resolve(source, p)
        if resolved is None or is_dropped(resolved, scratch):
            continue
        if (is_secret(p) or is_secret(resolved)) and not _included(p, include):
            secrets.add(p)
        else:
            out.add(p)
    return sorted(out), sorted(secrets)

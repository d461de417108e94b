"""Choosing what a trace contributes, against a small fake root."""
from __future__ import annotations

import os

import pytest

from closure.root import Root
from closure.trace.parse import Access
from closure.trace.select import is_secret, missing_paths, traced_paths


@pytest.fixture
def root(tmp_path):
    def f(path, data=b"x"):
        p = tmp_path / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def d(path):
        (tmp_path / path.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def ln(path, target):
        p = tmp_path / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)

    for p in ("/etc/hostname", "/etc/shadow", "/etc/ssh/ssh_host_ed25519_key",
              "/etc/ssh/ssh_host_ed25519_key.pub", "/root/.bashrc", "/home/al/.ssh/id_rsa",
              "/usr/bin/app", "/usr/lib/x/libx.so.1", "/usr/share/zoneinfo/UTC",
              "/run/nscd/socket", "/etc/ssl/private/server.key", "/work/scratch/out",
              "/etc/app.conf", "/var/lib/app/db"):
        f(p)
    for p in ("/usr/lib/plugins", "/var/cache/app", "/proc/1", "/tmp/t"):
        d(p)
    ln("/lib", "usr/lib")
    ln("/var/run", "/run")
    ln("/etc/localtime", "/usr/share/zoneinfo/UTC")
    return Root(str(tmp_path))


def acc(path, kind="open", ok=True, errno=None, write=False, fd_path=None, syscall=None):
    syscall = syscall or {"open": "openat", "exec": "execve", "stat": "newfstatat",
                          "readlink": "readlinkat", "listdir": "getdents64", "chdir": "chdir",
                          "mkdir": "mkdirat", "connect": "connect"}[kind]
    return Access(1, syscall, path, kind, ok, errno, write, fd_path, 1)


def test_kinds_are_classified_against_the_root(root):
    kept, warnings = traced_paths([
        acc("/usr/bin/app", "exec"), acc("/usr/bin/app"),         # exec wins over open
        acc("/etc/hostname"),
        acc("/lib/x/libx.so.1"),                                  # spelled through a link
        acc("/usr/lib/plugins", "listdir"),
        acc("/etc/app.conf", "stat"),
        acc("/etc/localtime", "readlink"),
        acc("/usr/share/zoneinfo", "stat"),
    ], root)
    assert kept == [
        ("/etc/app.conf", "stat"), ("/etc/hostname", "file"), ("/etc/localtime", "symlink"),
        ("/lib/x/libx.so.1", "file"), ("/usr/bin/app", "exec"), ("/usr/lib/plugins", "dir"),
        ("/usr/share/zoneinfo", "dir"),
    ]
    assert warnings == []


def test_a_link_that_is_also_opened_is_a_file(root):
    kept, _ = traced_paths([acc("/etc/localtime", "readlink"), acc("/etc/localtime")], root)
    assert kept == [("/etc/localtime", "file")]


def test_runtime_trees_scratch_and_vanished_paths_are_dropped(root):
    kept, _ = traced_paths([
        acc("/proc/1", "listdir"), acc("/tmp/t", "listdir"), acc("/dev/null"),
        acc("/sys/kernel/mm"), acc("/run/nscd/socket", "stat"),
        acc("/var/run/nscd/socket", "stat"),                      # lands in /run via a link
        acc("/work/scratch/out"), acc("/gone/after/the/run"), acc("/"),
    ], root, scratch=["/work/scratch"])
    assert kept == []


def test_written_paths_dropped_but_their_directory_kept(root):
    kept, _ = traced_paths([
        acc("/var/lib/app/db"), acc("/var/lib/app/db", write=True),
        acc("/var/cache/app/new", write=True),                    # created: not in the root
        acc("/var/cache/app/sub", "mkdir", write=True),
    ], root)
    assert kept == [("/var/cache/app", "dir"), ("/var/lib/app", "dir")]


def test_unix_socket_parent_kept_unless_runtime(root):
    kept, _ = traced_paths([acc("/var/lib/app/sock", "connect"),
                            acc("/run/nscd/socket", "connect")], root)
    assert kept == [("/var/lib/app", "dir")]


def test_failed_accesses_are_not_content(root):
    kept, _ = traced_paths([acc("/etc/hostname", ok=False, errno="EACCES")], root)
    assert kept == []


def test_spelling_that_does_not_resolve_falls_back_to_kernel_path(root):
    kept, _ = traced_paths([acc("/opt/nowhere/../x", fd_path="/etc/hostname")], root)
    assert kept == [("/etc/hostname", "file")]


def test_secrets_are_refused_with_a_warning(root):
    touched = [acc("/etc/shadow"), acc("/etc/ssh/ssh_host_ed25519_key"),
               acc("/etc/ssh/ssh_host_ed25519_key.pub"), acc("/root/.bashrc"),
               acc("/home/al/.ssh/id_rsa"), acc("/etc/ssl/private/server.key"),
               acc("/etc/hostname")]
    kept, warnings = traced_paths(touched, root)
    assert kept == [("/etc/hostname", "file"), ("/etc/ssh/ssh_host_ed25519_key.pub", "file")]
    assert len(warnings) == 5
    for p in ("/etc/shadow", "/etc/ssh/ssh_host_ed25519_key", "/root/.bashrc",
              "/home/al/.ssh/id_rsa", "/etc/ssl/private/server.key"):
        assert any(p + "," in w for w in warnings), p


def test_included_secrets_are_taken(root):
    kept, warnings = traced_paths([acc("/etc/shadow"), acc("/root/.bashrc")], root,
                                  include_secrets=["/etc/shadow", "/root"])
    assert kept == [("/etc/shadow", "file"), ("/root/.bashrc", "file")]
    assert warnings == []


def test_secret_reached_through_a_symlink_is_refused(root, tmp_path):
    os.symlink("/etc/shadow", tmp_path / "etc" / "innocent")
    kept, warnings = traced_paths([acc("/etc/innocent")], root)
    assert kept == [] and "/etc/shadow" in warnings[0]


def test_is_secret_boundaries():
    assert is_secret("/root") and is_secret("/home/x") and is_secret("/etc/gshadow-")
    assert not is_secret("/home") and not is_secret("/rootfs/x") and not is_secret("/etc/shadowsocks")
    assert not is_secret("/etc/ssl/certs/ca-certificates.crt")


def test_output_is_sorted_and_deterministic(root):
    accs = [acc("/usr/bin/app", "exec"), acc("/etc/hostname"), acc("/usr/lib/plugins", "listdir")]
    assert traced_paths(accs, root) == traced_paths(list(reversed(accs)), root)


def test_missing_paths_exist_in_source_only(root):
    accs = [acc("/etc/hostname", ok=False, errno="ENOENT"),            # exists in source
            acc("/etc/nothing", ok=False, errno="ENOENT"),             # exists nowhere
            acc("/etc/app.conf", ok=False, errno="EACCES"),            # not a lookup miss
            acc("/etc/shadow", ok=False, errno="ENOENT"),              # a secret
            acc("/proc/1", ok=False, errno="ENOENT"),
            acc("/lib/x/libx.so.1", "stat", ok=False, errno="ENOENT")]
    assert missing_paths(accs, root) == (["/etc/hostname", "/lib/x/libx.so.1"], ["/etc/shadow"])


def test_the_targets_own_tree_is_kept_under_tmp_and_home(root):
    """A venv under /tmp or /home that the target lives in is the program's; its
    credentials are still refused."""
    own = ("/tmp/app/.venv", "/home/al/proj")
    touched = [acc("/tmp/app/.venv/lib/python3.11/site-packages/flask/__init__.py"),
               acc("/home/al/proj/app.py"), acc("/home/al/proj/.netrc"),
               acc("/home/al/proj/.ssh/id_rsa"), acc("/home/al/other.py"), acc("/tmp/elsewhere")]
    for a in touched:
        p = root.host(a.path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").close()
    kept, warnings = traced_paths(touched, root, own=own)
    assert [p for p, _ in kept] == ["/home/al/proj/app.py",
                                     "/tmp/app/.venv/lib/python3.11/site-packages/flask/__init__.py"]
    assert len(warnings) == 3   # .netrc, .ssh/id_rsa, other.py: secrets; /tmp/elsewhere dropped

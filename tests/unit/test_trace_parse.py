"""The strace log parser, on checked-in logs: real ones recorded by
tests/data/strace/regen.sh and a hand-written one for the tricky cases. Goldens come from
the same script; the labelled assertions below say what each golden must show."""
from __future__ import annotations

import json
import os

import pytest

from closure.trace.parse import Access, join_lines, parse, split_args, unescape

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "strace")


def _cases() -> dict[str, str]:
    out = {}
    with open(os.path.join(DATA, "cases.tsv")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, cwd, _failed, _cmd = line.rstrip("\n").split("\t")
                out[name] = cwd
    return out


CASES = _cases()


def load(name: str) -> list[Access]:
    with open(os.path.join(DATA, name + ".log"), encoding="utf-8", errors="surrogateescape") as f:
        return parse(f, cwd=CASES[name])


def find(accs, path=None, kind=None, pid=None, syscall=None):
    return [a for a in accs if (path is None or a.path == path) and (kind is None or a.kind == kind)
            and (pid is None or a.pid == pid) and (syscall is None or a.syscall == syscall)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    with open(os.path.join(DATA, name + ".parsed.json"), encoding="utf-8") as f:
        golden = json.load(f)
    assert [a.to_json() for a in load(name)] == golden, \
        f"parser output changed for {name}.log; if intended, run tests/data/strace/regen.sh --golden"


# -- the hand-written log -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tricky():
    return load("tricky")


def test_relative_execve_resolves_against_initial_cwd(tricky):
    assert find(tricky, "/home/u/bin/app", "exec")[0].depth == 1


def test_relative_open_without_annotation_uses_tracked_cwd(tricky):
    assert find(tricky, "/home/u/data/conf.ini", "open", pid=100)


def test_dirfd_annotation_is_the_base_of_a_relative_open(tricky):
    assert find(tricky, "/etc/passwd", "open")


def test_dotdot_from_a_dirfd_is_normalised_and_kernel_path_kept(tricky):
    [a] = find(tricky, "/usr/share/locale/locale.alias")
    assert a.fd_path == "/etc/locale.alias"


def test_unknown_dirfd_falls_back_to_returned_fd_path(tricky):
    assert find(tricky, "/opt/app/rel/x")
    assert not [a for a in tricky if a.path.endswith("rel/y")]   # no base, no fd: dropped


def test_escapes_decode_to_the_real_bytes(tricky):
    # quote, backslash, newline, tab, UTF-8 octal, \x41, and \001 followed by a digit
    assert find(tricky, '/srv/sp ace"q\\b\nn\tt\u00e9A\x012')
    assert find(tricky, "/srv/" + os.fsdecode(b"\xe9t\xe9"))       # not UTF-8: round-trips
    assert find(tricky, "/srv/lt<gt>")[0].fd_path == "/srv/lt<gt>"  # \74 \76 in annotations


def test_parenthesis_equals_inside_a_path(tricky):
    assert find(tricky, "/srv/paren) = 3")[0].fd_path == "/srv/paren) = 3"


def test_deleted_suffix_dropped_from_fd_path(tricky):
    assert find(tricky, "/srv/deleted")[0].fd_path == "/srv/deleted"


def test_unfinished_and_resumed_are_joined_per_pid(tricky):
    assert find(tricky, "/var/lib/app/state", pid=101)       # child's own chdir
    assert find(tricky, "/home/u/data/other", pid=100)       # parent unaffected by it


def test_child_seen_before_parent_clone_line_inherits_cwd(tricky):
    assert find(tricky, "/home/u/early", pid=102)


def test_thread_chdir_is_shared_under_clone_fs(tricky):
    assert find(tricky, "/srv/www/index.html", pid=100)


def test_fchdir_then_relative_exec_in_child(tricky):
    assert find(tricky, "/opt/tools", "chdir", pid=101)
    [tool] = find(tricky, "/opt/tools/bin/tool", "exec")
    [real] = find(tricky, "/opt/tools/bin/real", "exec", syscall="execveat")  # AT_EMPTY_PATH
    assert (tool.depth, real.depth) == (2, 3)


def test_yy_device_annotation(tricky):
    [a] = find(tricky, "/dev/null", "open")
    assert a.fd_path == "/dev/null" and a.write


def test_fstat_of_an_fd_is_not_an_access(tricky):
    assert [a.syscall for a in find(tricky, "/etc/passwd")] == ["openat"]


def test_stat_family_readlink_mkdir_listdir(tricky):
    assert find(tricky, "/usr/bin", "stat", syscall="statx")
    assert find(tricky, "/usr/bin/env", "stat", syscall="faccessat2")
    assert find(tricky, "/etc/localtime", "readlink", syscall="readlinkat")
    assert find(tricky, "/etc/nsswitch.conf", "stat", syscall="stat")
    assert find(tricky, "/lib64", "stat", syscall="lstat")
    [mk] = find(tricky, "/home/u/cache", "mkdir")
    assert mk.write
    assert find(tricky, "/usr/lib/app/plugins", "listdir")


def test_write_flags_symbolic_raw_and_openat2(tricky):
    assert find(tricky, "/home/u/out.log", syscall="creat")[0].write
    assert find(tricky, "/var/db/x.db")[0].write                 # raw 0x42 = O_RDWR|O_CREAT
    assert not find(tricky, "/etc/hosts", syscall="open")[0].write
    assert not find(tricky, "/etc/openat2.conf")[0].write
    assert find(tricky, "/etc/openat2.new")[0].write


def test_failed_calls_keep_their_errno(tricky):
    assert find(tricky, "/etc/ld.so.preload")[0].errno == "ENOENT"
    [shadow] = find(tricky, "/etc/shadow")
    assert not shadow.ok and shadow.errno == "EACCES"


def test_unix_connects_only(tricky):
    conns = find(tricky, kind="connect")
    assert [(c.path, c.ok) for c in conns] == [
        ("/var/run/nscd/socket", False), ("/run/dbus/system_bus_socket", True)]


def test_timestamp_column_is_skipped(tricky):
    assert find(tricky, "/etc/timestamped")


def test_restarted_unfinished_and_orphan_lines_yield_nothing(tricky):
    assert not find(tricky, "/fifo")
    assert not find(tricky, "/etc/never-finished")
    assert not find(tricky, pid=105)


def test_pid_namespace_clone_uses_strace_pid(tricky):
    # 106 cloned 107 in a new pid namespace (inner pid 2); 106's later chdir is not 107's.
    assert find(tricky, "/home/u/ns-file", pid=107)
    assert find(tricky, "/usr/bin/inner", "exec", pid=107)[0].depth == 2


# -- real logs ------------------------------------------------------------------------------
def test_real_cat_relative_to_cwd():
    accs = load("cat_relative")
    [cat] = find(accs, "/usr/bin/cat", "exec")
    assert find(accs, "/etc/hostname", "open", pid=cat.pid)


def test_real_subshell_chdir_stays_in_the_child():
    accs = load("subshell_cd")
    [ls] = find(accs, "/usr/bin/ls", "exec")
    assert find(accs, "/usr/share/zoneinfo", "listdir", pid=ls.pid)
    [cat] = find(accs, "/usr/bin/cat", "exec")
    assert find(accs, "/usr/lib/os-release", "open", pid=cat.pid)   # parent cwd still /usr


def test_real_failed_lookups_recorded():
    accs = load("failed_lookups")
    assert [a.errno for a in find(accs, "/nonexistent-closure-test", "open")] == ["ENOENT"]
    assert find(accs, "/etc/ssl", "listdir")


def test_real_escaped_names():
    accs = load("escaped_names")
    names = {a.path.rsplit("/", 1)[1] for a in accs
             if a.kind == "open" and a.path.startswith("/tmp/closure-strace-data/names/")}
    assert names == {'quote"q', "back\\slash", "tab\tx", "caf\u00e9", "lt<gt>", "comma,x",
                     "paren) = 3", "ctl\x01x", os.fsdecode(b"latin\xe9"), "new\nline"}


def test_real_threads_unfinished_lines_all_joined():
    with open(os.path.join(DATA, "threads.log")) as f:
        assert "<unfinished ...>" in f.read()       # the log really interleaves
    accs = load("threads")
    stats = [a for a in accs if a.syscall == "newfstatat"]
    assert sorted(a.path for a in stats) == ["/etc/hostname"] * 3 + ["/etc/os-release"] * 3 + \
        ["/nonexistent-closure-test"] * 2
    assert len({a.pid for a in stats}) == 8
    assert len(find(accs, "/etc/hostname", "open")) == 3
    assert len(find(accs, "/etc/os-release", "open")) == 3


def test_real_forkserver_children_inherit_cwd():
    accs = load("forkserver")
    [server] = find(accs, kind="exec")
    opens = [a for a in accs if a.kind == "open" and a.pid != server.pid]
    assert sorted(a.path for a in opens) == ["/etc/hostname", "/etc/hostname", "/etc/os-release"]
    assert len({a.pid for a in opens}) == 3


def test_real_bwrap_pid_namespace_depths():
    accs = load("bwrap_pidns")
    execs = {a.path: a.depth for a in accs if a.kind == "exec"}
    assert execs["/usr/bin/bwrap"] == 1 and execs["/usr/bin/sh"] == 2
    assert execs["/usr/bin/cat"] == 3 and execs["/usr/bin/ls"] == 3
    [cat] = find(accs, "/usr/bin/cat", "exec")
    assert find(accs, "/etc/hostname", "open", pid=cat.pid)


# -- pieces ---------------------------------------------------------------------------------
def test_unescape():
    assert unescape(r"a\"b\\c\n\t\x41\101\0012\33[") == 'a"b\\c\n\tAA\x012\x1b['
    assert unescape("plain") == "plain"


def test_split_args_nesting():
    text = 'x(5</a,b>, "p,q", {flags=O_RDONLY, resolve=0}, [1, 2], 6<UNIX:[1->2]>) = 0'
    assert split_args(text, 2) == ["5</a,b>", '"p,q"', "{flags=O_RDONLY, resolve=0}", "[1, 2]",
                                   "6<UNIX:[1->2]>"]


def test_join_lines_prefixes():
    lines = ["[pid  7] openat(AT_FDCWD, \"/a\", O_RDONLY <unfinished ...>\n",
             "8 openat(AT_FDCWD, \"/b\", O_RDONLY) = 3\n",
             "[pid  7] <... openat resumed>) = 4\n",
             "openat(AT_FDCWD, \"/c\", O_RDONLY) = 5\n"]
    assert join_lines(lines) == [(8, 'openat(AT_FDCWD, "/b", O_RDONLY) = 3'),
                                 (7, 'openat(AT_FDCWD, "/a", O_RDONLY) = 4'),
                                 (0, 'openat(AT_FDCWD, "/c", O_RDONLY) = 5')]

"""strace output -> file accesses. Pure: lines in, Access records out.

Reads what `strace -f -y` writes (with `-o FILE`: "PID  call(...) = ret"; on stderr:
"[pid N] call(...)"; an optional timestamp column is skipped). The hard parts, and how:

- `<unfinished ...>` / `<... name resumed>` pairs are joined per pid before parsing.
- Paths are C-escaped by strace (octal, \\xNN, \\", \\\\, \\n ...); they are decoded to bytes
  and then to str with os.fsdecode, so odd file names survive a round trip.
- Relative paths: `-y` annotates AT_FDCWD and dirfds with the directory they stand for
  (`AT_FDCWD</etc>`, `5</usr/lib>`); that wins. Without it, each process's cwd is tracked
  through chdir/fchdir and inherited on clone/fork/vfork (shared, not copied, under CLONE_FS).
- A child's first line can come before its parent's `clone(...) = PID` line, so a first
  pass collects who cloned whom; the second pass can then seed the child from its parent.
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, asdict
from typing import Iterable

KINDS = ("open", "exec", "stat", "readlink", "listdir", "chdir", "mkdir", "connect")


@dataclass(frozen=True, slots=True)
class Access:
    pid: int
    syscall: str
    path: str                   # absolute, lexically normalised, as the program spelled it
    kind: str                   # one of KINDS
    ok: bool
    errno: str | None = None    # "ENOENT", ... when not ok
    write: bool = False         # opened for writing, created, or a mkdir
    fd_path: str | None = None  # where the returned fd points, per the kernel (-y)
    depth: int = 0              # successful execs in this process's lineage so far

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        if not self.write:
            del d["write"]
        return d


# "PID  " (-f -o FILE) or "[pid  PID] " (-f to stderr), then an optional timestamp.
_PREFIX = re.compile(r"\s*(?:\[pid\s+(\d+)\]\s*|(\d+)\s+)?(?:(?:\d+:\d\d:\d\d|\d+)(?:\.\d+)?\s+)?")
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"<\.\.\. ([\w]+) resumed>")
_CALL = re.compile(r"([a-z_][a-z0-9_]*)\(")
# The end of a finished call: ") = RET[<fd path>][ ERRNO (text)]". Anchored at the end of the
# line so parentheses inside the arguments never confuse it. A fd annotation holds no bare
# '<' '>' (strace escapes them) except -yy's nested "<char 1:3>" and socket "[a->b]".
_RET = re.compile(
    r"\)\s+=\s+(-?\d+|0x[0-9a-fA-F]+|\?)"
    r"(?:<((?:[^<>\[\]]|\[[^\]]*\]|<[^<>]*>)*)>)?"
    r"(?:\s+/\* (\d+) in strace's PID NS \*/)?"   # --decode-pids=pidns
    r"(?:\s+(E[A-Z0-9_]+)(?:\s+\([^()]*\))?)?"
    r"(?:\s+\([A-Z ]+\))?"                      # "(INJECTED)" and the like
    r"(?:\s+<[\d.]+>)?\s*$"                     # -T timings
)
# Argument tokens: a quoted string (maybe truncated "..."), a bracket or comma, or a run of
# anything else (backslash escapes kept inside the run so an escaped quote stays put).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?|[(){}\[\]<>,]|(?:[^"(){}\[\]<>,\\]|\\.)+|\\')
# Fast paths for the usual shapes, "DIRFD[<dir>], "path", FLAGS" and ""path", FLAGS"; anything
# else (nested -yy annotations, odd spacing) goes through split_args.
_STR = r'"(?:[^"\\]|\\.)*"(?=,|\)|$)'
_FAST_AT = re.compile(r"(AT_FDCWD|-?\d+)(<[^<>]*>)?, (" + _STR + r")(?:, ([^,)]+))?")
_FAST_PATH = re.compile(r"(" + _STR + r")(?:, ([^,)]+))?")
_ESCAPE = re.compile(rb"\\(?:x([0-9a-fA-F]{2})|([0-7]{1,3})|(.))", re.S)
_SIMPLE_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f",
                   b"a": b"\a", b"b": b"\b", b"e": b"\x1b"}
_ANNOTATED = re.compile(r"^(AT_FDCWD|-?\d+)<(.*)>$", re.S)
_SUN_PATH = re.compile(r'sun_path=(@?)("(?:[^"\\]|\\.)*")')
_CLONE_FLAGS = re.compile(r"flags=([A-Z0-9_|]+)")

# syscall -> (kind, index of dirfd or None, index of path (None: the path is the fd's))
_SPEC: dict[str, tuple[str, int | None, int | None]] = {
    "open": ("open", None, 0), "openat": ("open", 0, 1), "openat2": ("open", 0, 1),
    "creat": ("open", None, 0),
    "execve": ("exec", None, 0), "execveat": ("exec", 0, 1),
    "stat": ("stat", None, 0), "lstat": ("stat", None, 0), "stat64": ("stat", None, 0),
    "lstat64": ("stat", None, 0), "oldstat": ("stat", None, 0), "oldlstat": ("stat", None, 0),
    "newfstatat": ("stat", 0, 1), "fstatat64": ("stat", 0, 1), "statx": ("stat", 0, 1),
    "access": ("stat", None, 0), "faccessat": ("stat", 0, 1), "faccessat2": ("stat", 0, 1),
    "readlink": ("readlink", None, 0), "readlinkat": ("readlink", 0, 1),
    "chdir": ("chdir", None, 0), "fchdir": ("chdir", 0, None),
    "mkdir": ("mkdir", None, 0), "mkdirat": ("mkdir", 0, 1),
    "getdents": ("listdir", 0, None), "getdents64": ("listdir", 0, None),
    "connect": ("connect", None, None),
}
_FORKS = frozenset({"clone", "clone3", "fork", "vfork"})
_FLAGS_ARG = {"open": 1, "openat": 2, "openat2": 2}
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
_WRITE_BITS = 0o1 | 0o2 | 0o100 | 0o1000    # the same, when strace prints flags raw (-X raw)
_AT_FDCWD_RAW = "-100"


def unescape(text: str) -> str:
    """Decode strace's C-style escapes (the quotes already removed)."""
    if "\\" not in text:
        return text
    raw = text.encode("utf-8", "surrogateescape")
    return os.fsdecode(_ESCAPE.sub(_unescape_one, raw))


def _unescape_one(m: re.Match) -> bytes:
    if m.group(1):
        return bytes([int(m.group(1), 16)])
    if m.group(2):
        return bytes([int(m.group(2), 8) & 0xFF])
    c = m.group(3)
    return _SIMPLE_ESCAPES.get(c, c)


def _string(arg: str) -> str | None:
    """A quoted string argument -> its value; None if not a (complete) string."""
    if len(arg) < 2 or arg[0] != '"' or not arg.endswith('"'):
        return None           # not a string, or truncated ("..." after the quote)
    return unescape(arg[1:-1])


def _fd_path(annotation: str) -> str | None:
    """The path inside a -y annotation ("/etc/x", "/tmp/f (deleted)", "/dev/null<char 1:3>")."""
    if annotation.endswith(">") and "<" in annotation:     # -yy's nested device info
        annotation = annotation[: annotation.rindex("<")]
    if annotation.endswith(" (deleted)"):
        annotation = annotation[: -len(" (deleted)")]
    if not annotation.startswith("/"):
        return None            # sockets, pipes, anon inodes: "UNIX:[123]", "pipe:[4]"
    return unescape(annotation)


def split_args(text: str, start: int, want: int = 99) -> list[str]:
    """Top-level, comma-separated arguments of the call whose '(' ends just before start."""
    args: list[str] = []
    stack: list[str] = []
    cur: list[str] = []
    prev = ""
    for m in _TOKEN.finditer(text, start):
        tok = m.group()
        if tok in "({[":
            stack.append(tok)
        elif tok == "<":
            # A -y annotation follows a number or AT_FDCWD; nested '<' inside one is -yy's.
            if (stack and stack[-1] == "<") or (prev and (prev[-1].isdigit() or prev.endswith("AT_FDCWD"))):
                stack.append(tok)
        elif tok == ">":
            if stack and stack[-1] == "<":
                stack.pop()
        elif tok in ")}]":
            if not stack:
                if tok == ")":
                    break
            elif stack[-1] != "<":
                stack.pop()
        elif tok == "," and not stack:
            args.append("".join(cur).strip())
            cur = []
            prev = tok
            if len(args) >= want:
                return args
            continue
        cur.append(tok)
        prev = tok
    last = "".join(cur).strip()
    if last or args:
        args.append(last)
    return args


class _Fs:
    """Per-process filesystem context; shared between threads (CLONE_FS)."""
    __slots__ = ("cwd",)

    def __init__(self, cwd: str | None):
        self.cwd = cwd


class _Proc:
    __slots__ = ("fs", "depth")

    def __init__(self, fs: _Fs, depth: int):
        self.fs = fs
        self.depth = depth


def _join(base: str | None, path: str) -> str | None:
    if path.startswith("/"):
        return _norm(path)
    if base is None:
        return None
    return _norm(base + "/" + path)


def _norm(path: str) -> str:
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/")


def join_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """Strip prefixes and join unfinished/resumed halves: [(pid, "name(args) = ret"), ...].

    Lines that are not syscalls (+++ exits +++, --- signals ---, strace notes) are dropped.
    """
    pending: dict[int, str] = {}
    out: list[tuple[int, str]] = []
    for line in lines:
        line = line.rstrip("\n")
        m = _PREFIX.match(line)
        pid = int(m.group(1) or m.group(2) or 0)
        body = line[m.end():]
        if not body or body[0] in "+-" or body.startswith("strace:"):
            continue
        if body.endswith(_UNFINISHED):
            pending[pid] = body[: -len(_UNFINISHED)]
            continue
        if body.startswith("<..."):
            r = _RESUMED.match(body)
            head = pending.pop(pid, None)
            if r is None or head is None or not head.startswith(r.group(1) + "("):
                continue                  # resumed without its start (log began mid-call)
            body = head + body[r.end():]
        out.append((pid, body))
    return out


def parse(lines: Iterable[str], cwd: str | None = "/") -> list[Access]:
    """Parse strace output lines into accesses, in log order.

    cwd is the working directory of the first process (None if unknown): it only matters
    for relative paths in logs written without -y.
    """
    calls = join_lines(lines)
    parents: dict[int, tuple[int, bool]] = {}   # child pid -> (parent pid, CLONE_FS)
    for pid, body in calls:
        if body.startswith(("clone", "fork", "vfork")):
            fork = _fork_result(body)
            if fork is not None and fork[0] not in parents:
                parents[fork[0]] = (pid, fork[1])

    procs: dict[int, _Proc] = {}
    first_cwd = _norm(cwd) if cwd else None

    def proc(pid: int) -> _Proc:
        p = procs.get(pid)
        if p is None:
            parent = parents.get(pid)
            if parent is not None and parent[0] in procs:
                pp = procs[parent[0]]
                p = _Proc(pp.fs if parent[1] else _Fs(pp.fs.cwd), pp.depth)
            else:
                p = _Proc(_Fs(first_cwd if not procs else None), 0)
            procs[pid] = p
        return p

    out: list[Access] = []
    for pid, body in calls:
        m = _CALL.match(body)
        if m is None:
            continue
        name = m.group(1)
        p = proc(pid)
        if name in _FORKS:
            fork = _fork_result(body)
            if fork is not None and fork[0] not in procs:
                procs[fork[0]] = _Proc(p.fs if fork[1] else _Fs(p.fs.cwd), p.depth)
            continue
        spec = _SPEC.get(name)
        if spec is None:
            continue
        r = _RET.search(body)
        if r is None:
            continue                     # "= ?" after an exit, or garbled
        ret, ret_annot, errno = r.group(1), r.group(2), r.group(4)
        if ret == "?":
            continue
        ok = not ret.startswith("-")
        kind, dir_i, path_i = spec
        args = _fast_args(body, m.end(), dir_i, path_i) or split_args(body[: r.start() + 1], m.end(), 3)
        acc = _access(pid, name, kind, dir_i, path_i, args, body, p, ok, errno, ret_annot)
        if acc is None:
            continue
        if ok and kind == "chdir":
            p.fs.cwd = acc.fd_path or acc.path
        if ok and kind == "exec":
            p.depth += 1
            acc = _replace_depth(acc, p.depth)
        out.append(acc)
    return out


def _fast_args(body: str, start: int, dir_i: int | None, path_i: int | None) -> list[str] | None:
    if path_i is None:
        return None
    if dir_i is None:
        f = _FAST_PATH.match(body, start)
        return None if f is None else [f.group(1), f.group(2) or ""]
    f = _FAST_AT.match(body, start)
    if f is None:
        return None
    return [f.group(1) + (f.group(2) or ""), f.group(3), f.group(4) or ""]


def _replace_depth(acc: Access, depth: int) -> Access:
    return Access(acc.pid, acc.syscall, acc.path, acc.kind, acc.ok, acc.errno, acc.write,
                  acc.fd_path, depth)


def _fork_result(body: str) -> tuple[int, bool] | None:
    """(child pid, shares fs) of a successful clone/clone3/fork/vfork line."""
    r = _RET.search(body)
    if r is None or not r.group(1).isdigit() or r.group(1) == "0":
        return None
    # In a new pid namespace the call returns the inner pid; strace's pid is the one we see.
    child = int(r.group(3) or r.group(1))
    f = _CLONE_FLAGS.search(body, 0, r.start())
    return child, bool(f and "CLONE_FS" in f.group(1).split("|"))


def _dir_of(arg: str, p: _Proc) -> str | None:
    """The directory a dirfd argument stands for."""
    a = _ANNOTATED.match(arg)
    if a is not None:
        path = _fd_path(a.group(2))
        if a.group(1) in ("AT_FDCWD", _AT_FDCWD_RAW) and path is not None:
            p.fs.cwd = path         # the kernel's word on this process's cwd
        return path
    if arg in ("AT_FDCWD", _AT_FDCWD_RAW):
        return p.fs.cwd
    return None


def _access(pid, name, kind, dir_i, path_i, args, body, p, ok, errno, ret_annot) -> Access | None:
    base = p.fs.cwd
    if dir_i is not None:
        if len(args) <= dir_i:
            return None
        base = _dir_of(args[dir_i], p)
    fd_path = _fd_path(ret_annot) if ret_annot else None
    if kind == "connect":
        s = _SUN_PATH.search(body)
        if s is None or s.group(1):           # not AF_UNIX, or an abstract socket
            return None
        spelled = _string(s.group(2))
        path = _join(p.fs.cwd, spelled) if spelled else None
    elif path_i is None:                      # fchdir, getdents: the fd is the path
        path = base
        fd_path = None
    else:
        if len(args) <= path_i:
            return None
        spelled = _string(args[path_i])
        if spelled is None:
            return None
        if spelled == "":
            # AT_EMPTY_PATH: the dirfd itself. For stats that's an fstat of an fd whose
            # open was already recorded; execveat(fd, "", ..) is fexecve and does count.
            if kind != "exec":
                return None
            path = base
        else:
            path = _join(base, spelled)
    if path is None:
        path = fd_path                        # relative to an unknown dir: trust the kernel
        if path is None:
            return None
    write = kind == "mkdir" or name == "creat"
    if name in _FLAGS_ARG and len(args) > _FLAGS_ARG[name]:
        write = _writes(args[_FLAGS_ARG[name]])
    return Access(pid, name, path, kind, ok, None if ok else errno, write, fd_path, p.depth)


def _writes(flags: str) -> bool:
    if flags.startswith("{"):                 # openat2's struct open_how
        f = re.search(r"flags=([^,}]+)", flags)
        flags = f.group(1) if f else ""
    if flags[:2] == "0x" or flags[:1].isdigit():
        try:
            return bool(int(flags, 0) & _WRITE_BITS)
        except ValueError:
            return False
    return any(w in flags for w in _WRITE_FLAGS)


# Calls that name the ids a program switches to or gives its files: the accounts it needs.
_ID_CALLS = {"setuid": ("u", (0,)), "setreuid": ("u", (0, 1)), "setresuid": ("u", (0, 1, 2)),
             "setgid": ("g", (0,)), "setregid": ("g", (0, 1)), "setresgid": ("g", (0, 1, 2)),
             "chown": ("ug", (1, 2)), "lchown": ("ug", (1, 2)), "fchown": ("ug", (1, 2)),
             "fchownat": ("ug", (2, 3))}
ID_SYSCALLS = tuple(_ID_CALLS)


def parse_ids(lines: Iterable[str]) -> tuple[frozenset[int], frozenset[int]]:
    """(uids, gids) that successful set*id and chown calls named (-1, "unchanged", left out)."""
    uids: set[int] = set()
    gids: set[int] = set()
    for _pid, body in join_lines(lines):
        m = _CALL.match(body)
        if m is None or m.group(1) not in _ID_CALLS:
            continue
        r = _RET.search(body)
        if r is None or r.group(1) != "0":
            continue
        how, where = _ID_CALLS[m.group(1)]
        args = [a.strip() for a in split_args(body[: r.start() + 1], m.end(), 5) if a.strip() != ","]
        vals = [args[i] for i in where if i < len(args)]
        for i, v in enumerate(vals):
            if not v.isdigit():
                continue
            kind = how if len(how) == 1 else how[i]
            (uids if kind == "u" else gids).add(int(v))
    return frozenset(uids), frozenset(gids)

"""Service probes (`--serve`): run the image's own command as its container would, talk to
it from outside, and keep what the service touched.

1. The command (the image's Entrypoint + Cmd, or `--serve 'CMD'`) starts in the sandbox over
   the root, with the image's Env, User and WorkingDir, under the tracer.
2. Ready: `--ready tcp:PORT` (a connect succeeds), `--ready http://127.0.0.1:PORT/PATH` (any
   answer below 500) or `--ready log:REGEX` (its output matches), polled until a timeout.
   Without --ready, the port of `--http`, else the image's first ExposedPort, else the
   service still running after a second.
3. Clients, from outside the traced tree (nothing they touch enters the image): `--http
   'METHOD PATH [STATUS]'` through http.client on a socket made in the sandbox's network
   namespace, `--http-crawl DEPTH` of same-origin links, `--client 'CMD'` run on the host
   inside that network namespace only.
4. SIGTERM (forwarded by the sandbox's pid 1), then SIGKILL of everything after a grace
   period; the shutdown is traced too.

A service that exits before it is ready, never gets ready, or whose client fails is a
failed job (exit 1): one line naming the problem plus the service's last output lines.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from ..errors import BadInput, JobFailed
from .run import TraceResult

READY_TIMEOUT = 60.0
GRACE = 10.0
CLIENT_TIMEOUT = 60.0
TAIL_LINES = 6
CRAWL_PAGES = 50
POLL = 0.1


@dataclass(frozen=True)
class Ready:
    kind: str                   # tcp | http | log
    port: int = 0
    path: str = "/"
    regex: str = ""


@dataclass(frozen=True)
class HttpCheck:
    method: str
    path: str
    status: int | None          # None: any status below 400
    port: int | None = None     # from a full URL


@dataclass(frozen=True)
class ServeOptions:
    command: str | None = None            # None: the image's Entrypoint + Cmd
    ready: Ready | None = None
    http: tuple[HttpCheck, ...] = ()
    crawl: int = 0
    clients: tuple[str, ...] = ()
    ready_timeout: float = READY_TIMEOUT
    grace: float = GRACE
    share_net: bool = False
    exposed: tuple[int, ...] = ()          # the image's ExposedPorts (tcp)
    entrypoint: tuple[str, ...] | None = None   # the image's (None: the first target)
    cmd: tuple[str, ...] = ()
    user: str | None = None                # the image's User, looked up in the root
    workdir: str | None = None


@dataclass
class Served:
    result: TraceResult
    notes: list[str] = field(default_factory=list)


def parse_ready(text: str) -> Ready:
    """`tcp:PORT`, `http://127.0.0.1:PORT/PATH` or `log:REGEX`; anything else is bad input."""
    kind, sep, rest = text.partition(":")
    if kind == "tcp" and sep:
        return Ready("tcp", port=_port(rest, text))
    if kind == "log" and sep and rest:
        try:
            re.compile(rest)
        except re.error as e:
            raise BadInput(f"--ready {text!r}: not a regular expression: {e}") from None
        return Ready("log", regex=rest)
    if kind in ("http", "https") and rest.startswith("//"):
        u = urlsplit(text)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost"):
            raise BadInput(f"--ready {text!r}: give http://127.0.0.1:PORT/PATH (plain http, loopback)")
        try:
            port = u.port or 80
        except ValueError:
            raise BadInput(f"--ready {text!r}: bad port") from None
        return Ready("http", port=port, path=(u.path or "/") + (f"?{u.query}" if u.query else ""))
    raise BadInput(f"--ready {text!r}: give tcp:PORT, http://127.0.0.1:PORT/PATH or log:REGEX")


def parse_http(text: str) -> HttpCheck:
    """'METHOD PATH [STATUS]'; PATH may be a full http://127.0.0.1:PORT/... URL."""
    words = text.split()
    if len(words) not in (2, 3) or not words[0].isalpha():
        raise BadInput(f"--http {text!r}: give 'METHOD PATH [STATUS]', e.g. 'GET / 200'")
    method, path = words[0].upper(), words[1]
    status = None
    if len(words) == 3:
        if not (words[2].isdigit() and 100 <= int(words[2]) <= 599):
            raise BadInput(f"--http {text!r}: the status must be a number from 100 to 599")
        status = int(words[2])
    port = None
    if path.startswith("http://"):
        r = parse_ready(path)
        port, path = r.port, r.path
    elif not path.startswith("/"):
        raise BadInput(f"--http {text!r}: the path must start with / (or be http://127.0.0.1:PORT/...)")
    return HttpCheck(method, path, status, port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadInput(f"--ready {whole!r}: the port must be a number from 1 to 65535")
    return int(text)


def exposed_ports(config: dict) -> tuple[int, ...]:
    """The image's ExposedPorts that are tcp ("80/tcp", "8080")."""
    out = []
    for key in sorted((config or {}).get("ExposedPorts") or {}):
        port, _, proto = str(key).partition("/")
        if port.isdigit() and proto in ("", "tcp"):
            out.append(int(port))
    return tuple(out)


# -- running it --------------------------------------------------------------------------------

def serve_in(tree: str, argv: tuple[str, ...] | str, opts: ServeOptions, *, env: dict, cwd: str,
             user, helper: str) -> Served:
    """Run the service in the sandbox over tree, talk to it, stop it; return the trace."""
    from ..sandbox import prepared
    from .probe_sandbox import probe_sandbox
    from .run import start_trace

    shell = isinstance(argv, str)
    sb = probe_sandbox(tree, argv, helper, env=env, network=opts.share_net, cwd=cwd, user=user)
    what = argv if shell else shlex.join(argv)
    notes: list[str] = []
    with prepared(sb) as (wrapper, ctl), \
            start_trace(list(sb.argv), None, wrapper=wrapper, wrapper_execs=2 if shell else 1,
                        started_at=2) as running:
        pid = _wait_pid(running, ctl, what)
        ready = opts.ready or _default_ready(opts)
        _wait_ready(running, pid, ready, opts.ready_timeout, what)
        port = ready.port or (opts.exposed[0] if opts.exposed else 80)
        for check in opts.http:
            _http(running, pid, check, port, what)
        if opts.crawl:
            notes += _crawl(running, pid, port, opts.crawl, what)
        for client in opts.clients:
            _client(running, pid, client, what)
        if running.poll() is not None:
            raise JobFailed(f"service {what!r} exited {running.poll()} while its clients ran{_tail(running)}")
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        result = running.finish(timeout=opts.grace)
    if result.timed_out:
        notes.append(f"service {what!r} did not stop within {opts.grace:g} s of SIGTERM: killed")
    elif result.returncode not in (0, 128 + signal.SIGTERM):
        notes.append(f"service {what!r} exited {result.returncode} on SIGTERM")
    return Served(result, notes)


def _default_ready(opts: ServeOptions) -> Ready:
    for check in opts.http:
        if check.port:
            return Ready("tcp", port=check.port)
    if opts.http:
        return Ready("tcp", port=opts.exposed[0] if opts.exposed else 80)
    if opts.exposed:
        return Ready("tcp", port=opts.exposed[0])
    return Ready("log", regex="")          # running after a second is all we can know


def _tail(running) -> str:
    lines = [ln.strip() for ln in running.output().splitlines() if ln.strip()]
    if not lines:
        return " (no output)"
    return "; last output: " + " | ".join(lines[-TAIL_LINES:])


def _wait_pid(running, ctl: str, what: str) -> int:
    from ..sandbox import sandbox_pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = sandbox_pid(ctl)
        if pid is not None:
            return pid
        if running.poll() is not None:
            break
        time.sleep(0.02)
    raise JobFailed(f"service {what!r}: the sandbox did not start{_tail(running)}")


def _wait_ready(running, pid: int, ready: Ready, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    settle = 1.0 if ready.kind == "log" and not ready.regex else 0.0
    regex = re.compile(ready.regex) if ready.regex else None
    while True:
        rc = running.poll()
        if rc is not None:
            raise JobFailed(f"service {what!r} exited {rc} before it was ready{_tail(running)}")
        elapsed = time.monotonic() - t0
        if ready.kind == "tcp" and _connects(pid, ready.port):
            return
        if ready.kind == "http" and _http_status(pid, ready.port, "GET", ready.path, 2.0)[0] in range(100, 500):
            return
        if ready.kind == "log" and (regex.search(running.output()) if regex else elapsed >= settle):
            return
        if elapsed > timeout:
            how = {"tcp": f"tcp:{ready.port}", "http": f"http://127.0.0.1:{ready.port}{ready.path}",
                   "log": f"log:{ready.regex}"}[ready.kind]
            raise JobFailed(f"service {what!r} not ready after {timeout:g} s ({how}){_tail(running)}")
        time.sleep(POLL)


def _socket(pid: int) -> socket.socket:
    from ..sandbox import join_net
    with join_net(pid):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def _connects(pid: int, port: int) -> bool:
    s = _socket(pid)
    s.settimeout(1.0)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _http_status(pid: int, port: int, method: str, path: str, timeout: float = 10.0) -> tuple[int, bytes, str]:
    """(status, body, content type) or (0, b"", error)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    s = _socket(pid)
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        conn.sock = s
        conn.request(method, path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(1 << 22)
        return resp.status, body, resp.getheader("Content-Type") or ""
    except (OSError, http.client.HTTPException) as e:
        return 0, b"", str(e) or type(e).__name__
    finally:
        conn.close()
        s.close()


def _http(running, pid: int, check: HttpCheck, port: int, what: str) -> None:
    port = check.port or port
    status, _body, err = _http_status(pid, port, check.method, check.path)
    ok = status == check.status if check.status else 100 <= status < 400
    if not ok:
        got = f"status {status}" if status else f"no answer ({err})"
        want = f"status {check.status}" if check.status else "a status below 400"
        raise JobFailed(f"--http {check.method} {check.path}: {got} from service {what!r}, "
                        f"wanted {want}{_tail(running)}")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.links.append(v)


def _crawl(running, pid: int, port: int, depth: int, what: str) -> list[str]:
    """GET / and same-origin links breadth first, to depth, at most CRAWL_PAGES pages.
    A page that fails is a note, not a failure (links may point at what is not served)."""
    base = f"http://127.0.0.1:{port}/"
    seen, frontier, notes = {"/"}, ["/"], []
    for _level in range(depth + 1):
        nxt = []
        for path in frontier:
            status, body, ctype = _http_status(pid, port, "GET", path)
            if not 100 <= status < 400:
                notes.append(f"--http-crawl: GET {path}: status {status or 'none'}")
                continue
            if "html" not in ctype:
                continue
            parser = _Links()
            parser.feed(body.decode("utf-8", "replace"))
            for link in parser.links:
                u = urlsplit(urljoin(base + path.lstrip("/"), link))
                if u.scheme != "http" or u.netloc != f"127.0.0.1:{port}":
                    continue
                p = (u.path or "/") + (f"?{u.query}" if u.query else "")
                if p not in seen and len(seen) < CRAWL_PAGES:
                    seen.add(p)
                    nxt.append(p)
        frontier = nxt
    return notes


def _client(running, pid: int, command: str, what: str) -> None:
    from ..sandbox import net_preexec
    try:
        r = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, errors="replace", timeout=CLIENT_TIMEOUT,
                           preexec_fn=net_preexec(pid), start_new_session=True)
    except subprocess.TimeoutExpired:
        raise JobFailed(f"--client {command!r} timed out after {CLIENT_TIMEOUT:g} s{_tail(running)}") from None
    if r.returncode != 0:
        out = [ln.strip() for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
        raise JobFailed(f"--client {command!r} exited {r.returncode}"
                        + (f": {' | '.join(out[-3:])}" if out else "") + f"; service{_tail(running)}")

"""A real registry for the tests: Debian's docker-registry (distribution 2.8) started on
127.0.0.1:<free port> with a generated config (never the package's own service), plain
HTTP or TLS (a test CA) + htpasswd basic auth; stopped by the test. Also a small faulty
proxy that answers 500 to chosen requests once, and counts what goes through it."""
from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tls import TestCA, make_ca

REGISTRY = "/usr/bin/docker-registry"
USER, PASSWORD = "closure", "s3cret-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningRegistry:
    host: str               # 127.0.0.1:PORT
    log: Path
    tls: TestCA | None
    auth_file: Path | None  # a podman auth.json holding the right credentials
    proc: subprocess.Popen

    def uploads(self) -> int:
        """Blob upload requests the registry has logged (PUTs that finish an upload)."""
        text = self.log.read_text(errors="replace")
        return len(re.findall(r'"PUT /v2/[^ ]+/blobs/uploads/', text))

    def requests(self, method: str, pattern: str = "") -> int:
        text = self.log.read_text(errors="replace")
        return len(re.findall(rf'"{method} /v2/[^ "]*{pattern}', text))


def _wait_up(port: int, tls: bool, proc: subprocess.Popen, log: Path) -> None:
    ctx = ssl._create_unverified_context()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            conn = (http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2) if tls
                    else http.client.HTTPConnection("127.0.0.1", port, timeout=2))
            conn.request("GET", "/v2/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("docker-registry did not start in 15 s")


@contextlib.contextmanager
def registry(d: Path, tls: bool = False):
    if not os.access(REGISTRY, os.X_OK):
        pytest.skip(f"needs {REGISTRY} (apt-get install docker-registry)")
    d.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    ca = auth_file = None
    extra = ""
    if tls:
        if shutil.which("htpasswd") is None:
            pytest.skip("needs htpasswd (apache2-utils)")
        ca = make_ca(d / "ca")
        line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                              text=True).stdout.strip()
        (d / "htpasswd").write_text(line + "\n")
        extra = (f"  tls:\n    certificate: {ca.cert}\n    key: {ca.key}\n"
                 f"auth:\n  htpasswd:\n    realm: closure-test\n    path: {d / 'htpasswd'}\n")
        import base64
        import json
        auth_file = d / "auth.json"
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        auth_file.write_text(json.dumps({"auths": {f"127.0.0.1:{port}": {"auth": token}}}))
    config = d / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: closure-test-secret\n{extra}")
    log = d / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_up(port, tls, proc, log)
        yield RunningRegistry(f"127.0.0.1:{port}", log, ca, auth_file, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FaultyProxy:
    """Forwards HTTP to a registry; `fail(method, pattern, times)` makes the next matching
    requests answer 500 (the request body is read first, as a real server would);
    `hang(method, pattern)` makes a matching request wait until released (sets `hung`)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.seen: list[tuple[str, str, int]] = []
        self._faults: list[list] = []
        self._hang: tuple[str, str] | None = None
        self.hung = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                for f in proxy._faults:
                    if f[2] > 0 and self.command == f[0] and re.search(f[1], self.path):
                        f[2] -= 1
                        proxy.seen.append((self.command, self.path, 500))
                        msg = b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}'
                        self.send_response(500)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(msg)))
                        self.end_headers()
                        self.wfile.write(msg)
                        return
                if proxy._hang and self.command == proxy._hang[0] and re.search(proxy._hang[1], self.path):
                    proxy.hung.set()
                    proxy.release.wait(60)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                proxy.seen.append((self.command, self.path, resp.status))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_PATCH = do_DELETE = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass   # a client killed mid-request (the SIGKILL test) is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def fail(self, method: str, pattern: str, times: int = 1) -> None:
        self._faults.append([method, pattern, times])

    def hang(self, method: str, pattern: str) -> None:
        self._hang = (method, pattern)

    def __enter__(self) -> "FaultyProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

"""A test CA and a loopback HTTPS server whose certificate it signed, for end-to-end tests
(curl in an image trusting the CA through `--ca-cert`). Bounded in time; 127.0.0.1 only."""
from __future__ import annotations

import contextlib
import http.server
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

TEST_HOST = "closure-test.internal"   # curl resolves this through NSS, unlike `localhost`
BODY = b"hello from the closure test server (s_server-like)\n"


@dataclass(frozen=True)
class TestCA:
    ca_cert: Path
    cert: Path
    key: Path


def make_ca(d: Path, names=(TEST_HOST, "localhost"), ips=("127.0.0.1",)) -> TestCA:
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = d / "ca.key", d / "ca.pem"
    key, csr, cert = d / "server.key", d / "server.csr", d / "server.pem"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca_cert), "-days", "2", "-subj", "/CN=closure test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", f"/CN={names[0]}")
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    ext = d / "ext.cnf"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return TestCA(ca_cert, cert, key)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def https_server(ca: TestCA, timeout: float = 60.0):
    """Serve BODY over HTTPS on 127.0.0.1:<free port>; yields the port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ca.cert, ca.key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.timeout = timeout
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    timer = threading.Timer(timeout, httpd.shutdown)
    timer.start()
    try:
        yield httpd.server_address[1]
    finally:
        timer.cancel()
        httpd.shutdown()
        httpd.server_close()

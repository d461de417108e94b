"""The service-probe options: --ready, --http, --account as typed, and the ids a trace saw."""
from __future__ import annotations

import pytest

from closure.cli.serve_options import parse_accounts, serve_options
from closure.errors import BadInput
from closure.trace.parse import parse_ids
from closure.trace.serve import HttpCheck, Ready, exposed_ports, parse_http, parse_ready


def test_ready_forms():
    assert parse_ready("tcp:80") == Ready("tcp", port=80)
    assert parse_ready("http://127.0.0.1:8080/health?x=1") == Ready("http", port=8080, path="/health?x=1")
    assert parse_ready("http://localhost/") == Ready("http", port=80, path="/")
    assert parse_ready("log:ready to accept") == Ready("log", regex="ready to accept")


@pytest.mark.parametrize("bad", ["", "tcp", "tcp:", "tcp:0", "tcp:65536", "tcp:8o", "udp:53", "log:",
                                 "log:(", "http://example.com/", "https://127.0.0.1/", "http://127.0.0.1:x/"])
def test_malformed_ready_is_bad_input(bad):
    with pytest.raises(BadInput, match="--ready"):
        parse_ready(bad)


def test_http_checks():
    assert parse_http("GET /") == HttpCheck("GET", "/", None)
    assert parse_http("head /x 204") == HttpCheck("HEAD", "/x", 204)
    assert parse_http("GET http://127.0.0.1:81/a 200") == HttpCheck("GET", "/a", 200, 81)
    for bad in ("GET", "/ GET", "GET x", "GET / 99", "GET / 200 extra", "GET / ok"):
        with pytest.raises(BadInput, match="--http"):
            parse_http(bad)


def test_serve_options_need_serve_and_take_a_spec_command():
    assert serve_options({}) is None
    with pytest.raises(BadInput, match="--client needs --serve"):
        serve_options({"client": ["x"]})
    so = serve_options({"serve": "nginx -g 'daemon off;'", "ready": "tcp:80"})
    assert so.command == "nginx -g 'daemon off;'" and so.ready == Ready("tcp", port=80)
    with pytest.raises(BadInput, match="--serve-cmd: empty"):
        serve_options({"serve_cmd": "  "})


def test_accounts_and_exposed_ports():
    assert parse_accounts(["www-data", "svc:900", "app:1000:50"]) == (
        ("account", "www-data", None, None), ("account", "svc", 900, None), ("account", "app", 1000, 50))
    for bad in ("", "a:b", "a:1:2:3", "x y", "a/b:1"):
        with pytest.raises(BadInput, match="--account"):
            parse_accounts([bad])
    assert exposed_ports({"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080": {}}}) == (80, 8080)


def test_parse_ids_reads_set_id_and_chown_calls():
    log = [
        '10 setgid(33) = 0\n',
        '10 setuid(33) = 0\n',
        '11 setresuid(-1, 104, -1) = 0\n',
        '12 setresgid(110, 110, 110) = 0\n',
        '13 chown("/var/lib/nginx/body", 33, 0) = 0\n',
        '13 fchownat(AT_FDCWD</>, "x", 7, 8, 0) = 0\n',
        '14 setuid(999) = -1 EPERM (Operation not permitted)\n',
        '15 fchown(3</tmp/f>, 4242, -1) = 0\n',
    ]
    uids, gids = parse_ids(log)
    assert uids == {33, 104, 7, 4242} and gids == {33, 110, 0, 8}

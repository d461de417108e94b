"""Spec files: option names as TOML keys, typed, unknown keys refused."""
from __future__ import annotations

import os

import pytest

from closure.errors import BadInput
from closure.spec import KEYS, load_spec


def spec(tmp_path, text: str) -> str:
    path = tmp_path / "closure.toml"
    path.write_text(text)
    return str(path)


def test_every_kind_of_value(tmp_path):
    got = load_spec(spec(tmp_path, '''
targets = "/usr/bin/curl"
output = "out/curl.tar"
tag = "tools/curl:8"
level = 3
entrypoint = "/usr/bin/curl -sS"
cmd = ["--version"]
env = { LANG = "C.UTF-8", DEBUG = 1 }
label = ["team=infra"]
keep-setuid = true
no_dlopen_scan = true
root = "rootfs"
ca-cert = ["certs/ca.pem"]
smoke = "curl --version"
'''))
    assert got == {
        "targets": ["/usr/bin/curl"], "output": "out/curl.tar", "tag": "tools/curl:8", "level": 3,
        "entrypoint": ["/usr/bin/curl", "-sS"], "cmd": ["--version"],
        "env": ["LANG=C.UTF-8", "DEBUG=1"], "label": ["team=infra"], "keep_setuid": True,
        "no_dlopen_scan": True, "root": os.path.join(tmp_path, "rootfs"),
        "ca_cert": [os.path.join(tmp_path, "certs/ca.pem")], "smoke": {"argv": "curl --version"}}


def test_smoke_table(tmp_path):
    got = load_spec(spec(tmp_path, '''
[smoke]
argv = "date -d @0 +%Z"
env = "TZ=Europe/Paris"
stdin = 'hi\\n'
net = "none"
rc = 0
expect = "(?m)^CET$"
'''))
    assert got["smoke"] == {"argv": "date -d @0 +%Z", "env": "TZ=Europe/Paris", "stdin": r"hi\n",
                            "net": "none", "rc": 0, "expect": "(?m)^CET$"}


def test_every_sample_loads():
    samples = os.path.join(os.path.dirname(__file__), "..", "..", "sample_images")
    for name in sorted(os.listdir(samples)):
        got = load_spec(os.path.join(samples, name, "closure.toml"))
        assert got["targets"] and got["smoke"]["argv"], name


@pytest.mark.parametrize("text,message", [
    ('colour = "red"', "unknown key 'colour'"),
    ("level = \"3\"", "level must be an integer"),
    ("level = true", "level must be an integer"),
    ("force = 1", "force must be true or false"),
    ("exclude = [1, 2]", "exclude must be a string or a list of strings"),
    ("env = [\"NOEQUALS\"]", "env must be a table"),
    ("env = { A = [1] }", "env must be a table"),
    ("targets = [", "not valid TOML"),
    ("cmd = \"echo 'x\"", "cmd: no closing quotation"),
    ("[smoke]\nrc = 0", "smoke must be a command string or a table"),
    ("[smoke]\nargv = \"x\"\ncolour = 1", "unknown key smoke.colour"),
    ("[smoke]\nargv = \"x\"\nrc = \"0\"", "smoke.rc must be an integer"),
    ("[smoke]\nargv = \"x\"\nnet = \"bridge\"", "smoke.net must be none or host"),
])
def test_bad_specs(tmp_path, text, message):
    with pytest.raises(BadInput, match=message):
        load_spec(spec(tmp_path, text))


def test_missing_spec(tmp_path):
    with pytest.raises(BadInput, match="spec file .*nope.toml: no such file"):
        load_spec(str(tmp_path / "nope.toml"))


def test_binary_spec_is_bad_input(tmp_path):
    path = tmp_path / "closure.toml"
    path.write_bytes(b"targets = '\xff\xfe'\n")
    with pytest.raises(BadInput, match="not UTF-8"):
        load_spec(str(path))


def test_every_key_is_a_build_option():
    import typer.main
    from closure.cli.app import app
    build = typer.main.get_command(app).commands["build"]
    flags = {opt.lstrip("-") for p in build.params for opt in p.opts} | {"targets"}
    assert set(KEYS) - {"smoke"} <= flags

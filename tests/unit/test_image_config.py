"""Image config pieces: platform from ELF headers, env order, names and tags."""
from __future__ import annotations

import os
import struct

import pytest

from closure.errors import BadInput, NotElf
from closure.image.config import DEFAULT_PATH, Platform, closure_platform, elf_platform, image_env
from closure.image.reference import default_name, parse_reference
from closure.model import Closure, Entry, Reason
from closure.root import Root


def header(machine: int, is64=True, little=True) -> bytes:
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1]) + b"\0" * 9
    return ident + struct.pack("<HH" if little else ">HH", 2, machine)


@pytest.mark.parametrize("machine,is64,little,arch", [
    (62, True, True, "amd64"), (183, True, True, "arm64"), (3, False, True, "386"),
    (40, False, True, "arm"), (21, True, True, "ppc64le"), (21, True, False, "ppc64"),
    (22, True, False, "s390x"), (243, True, True, "riscv64"), (8, False, False, "mips"),
    (8, True, True, "mips64le"),
])
def test_arch_from_e_machine(machine, is64, little, arch):
    assert elf_platform(header(machine, is64, little)).architecture == arch


def test_arm64_has_variant_v8():
    assert elf_platform(header(183)).to_json() == {"architecture": "arm64", "os": "linux", "variant": "v8"}


@pytest.mark.parametrize("data", [b"", b"#!/bin/sh\n" + b"\0" * 20, header(9999), b"\x7fELF\x03\x01" + b"\0" * 14])
def test_not_elf_or_unknown_machine(data):
    with pytest.raises(NotElf):
        elf_platform(data)


def test_platform_of_a_host_binary_matches_uname():
    c = Closure(targets=["/usr/bin/env"])
    want = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
    if want is None:
        pytest.skip("unmapped host machine")
    assert closure_platform(c, Root("/")).architecture == want


def test_foreign_root_platform_comes_from_its_elf(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/script").write_bytes(b"#!/bin/prog\n")
    (tmp_path / "bin/prog").write_bytes(header(183) + b"\0" * 64)
    c = Closure(targets=["/bin/script"])
    c.add(Entry("/bin/prog", "file", source="/bin/prog"), Reason("shebang"))
    assert closure_platform(c, Root(str(tmp_path))) == Platform("arm64", "linux", "v8")


def test_env_order_and_override():
    env = image_env({"SSL_CERT_FILE": "/etc/ssl/c.pem", "A": "1"}, ["Z=9", "A=2", "PATH=/bin"])
    assert env == ["PATH=/bin", "A=2", "SSL_CERT_FILE=/etc/ssl/c.pem", "Z=9"]
    assert image_env({}, []) == [f"PATH={DEFAULT_PATH}"]
    assert image_env({}, ["EMPTY="]) [-1] == "EMPTY="


def test_env_over_a_base_keeps_it_as_it_is():
    base = ["B=1", "A=base", "NOVALUE"]
    assert image_env({"A": "recipe", "C": "3"}, ["B=2"], base) == ["B=2", "A=base", "NOVALUE", "C=3"]
    assert image_env({"C": "3"}, [], "A=1") == ["C=3"], "an Env that is no list is ignored"
    assert image_env({}, [], []) == []


def test_run_config_types_checked():
    from closure.image.config import check_run_config
    good = {"Entrypoint": ["/app"], "Cmd": None, "Env": ["A=1"], "User": "app", "Labels": {"a": "b"},
            "ExposedPorts": {"80/tcp": {}}, "Healthcheck": {"Test": ["NONE"]}}
    assert check_run_config(good, "img") is good
    for key, value in (("Entrypoint", "/app"), ("Cmd", [1]), ("Env", ["NOVALUE"]), ("User", 0),
                       ("WorkingDir", ["/"]), ("Labels", {"a": 1}), ("Volumes", ["/data"])):
        with pytest.raises(BadInput, match=f"img: the image config's {key} is not"):
            check_run_config({**good, key: value}, "img")
    with pytest.raises(BadInput, match="not an object"):
        check_run_config([], "img")


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value"])
def test_env_needs_key_value(bad):
    with pytest.raises(BadInput):
        image_env({}, [bad])


@pytest.mark.parametrize("ref,want", [
    ("curl", ("curl", "latest")), ("curl:8", ("curl", "8")),
    ("localhost:5000/team/curl", ("localhost:5000/team/curl", "latest")),
    ("localhost:5000/team/curl:v1.2", ("localhost:5000/team/curl", "v1.2")),
])
def test_parse_reference(ref, want):
    assert parse_reference(ref) == want


@pytest.mark.parametrize("ref", ["Curl", "curl:", "curl:-x", "a//b", "", "curl:" + "x" * 200])
def test_bad_reference(ref):
    with pytest.raises(BadInput):
        parse_reference(ref)


@pytest.mark.parametrize("targets,name", [
    (["/usr/bin/curl"], "curl"), (["/usr/bin/python3.11"], "python3.11"), (["/usr/bin/g++"], "g"),
    (["/opt/My App"], "my-app"), (["/usr/bin/+++"], "image"), ([], "image"),
])
def test_default_name(targets, name):
    assert default_name(targets) == name
    parse_reference(name)


def test_created_time_forms():
    from closure.errors import BadInput
    from closure.image.epoch import created_time
    assert created_time("epoch", {}) == 0
    assert created_time("epoch", {"SOURCE_DATE_EPOCH": "1700000000"}) == 1700000000
    assert created_time("1700000000") == 1700000000
    assert created_time("2023-11-14T22:13:20Z") == 1700000000
    assert created_time("2023-11-14T23:13:20+01:00") == 1700000000
    import time
    assert abs(created_time("now") - time.time()) < 5
    for bad in ("yesterday", "2023-11-14T22:13:20", "-5"):
        with pytest.raises(BadInput, match="--created"):
            created_time(bad)

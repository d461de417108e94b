"""Recipe files: every malformed key is an error that names the file and the key."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from closure.errors import BadInput
from closure.recipes import RecipeError
from closure.recipes.loader import builtin_dir, load_dir
from closure.recipes.schema import ACTION_KINDS

GOOD = """
description = "test recipe"
[trigger]
sonames = ["libfoo.so.*"]
[probes]
ssl = "openssl_dirs"
res = { probe = "imports_any", symbols = ["getaddrinfo"] }
[[add]]
when = "ssl"
path = "{{ ssl.cafile }}"
ca_bundle = true
[[add]]
dir = "/tmp"
mode = "1777"
[[add]]
template = "passwd.j2"
to = "/etc/passwd"
mode = 0o644
"""


def write(tmp_path: Path, text: str, name: str = "foo") -> Path:
    (tmp_path / f"{name}.toml").write_text(textwrap.dedent(text))
    return tmp_path


def load_error(tmp_path: Path, text: str, name: str = "foo") -> str:
    write(tmp_path, text, name)
    with pytest.raises(RecipeError) as ei:
        load_dir(tmp_path, builtin=False)
    msg = str(ei.value)
    assert str(tmp_path / f"{name}.toml") in msg, "the message names the file"
    return msg


def test_good_recipe_parses_into_frozen_data(tmp_path):
    recipes = load_dir(write(tmp_path, GOOD), builtin=False)
    r = recipes["foo"]
    assert r.name == "foo" and not r.builtin
    assert r.trigger.sonames == ("libfoo.so.*",)
    assert [p.bind for p in r.probes] == ["ssl", "res"]
    assert r.probes[1].args == (("symbols", ("getaddrinfo",)),)
    assert [a.kind for a in r.actions] == ["path", "dir", "template"]
    assert r.actions[0].ca_bundle and r.actions[0].when == "ssl"
    assert r.actions[1].mode == 0o1777          # "1777" read as octal
    assert r.actions[2].mode == 0o644           # TOML octal integer
    with pytest.raises(AttributeError):
        r.name = "bar"                          # frozen


def test_recipe_error_is_bad_input_exit_2():
    assert issubclass(RecipeError, BadInput) and RecipeError.exit_code == 2


@pytest.mark.parametrize("text, key", [
    ('description = "x"\ndescripton = "typo"\n', "'descripton'"),
    ('description = "x"\n[trigger]\nsoname = ["libc.so.6"]\n', "'trigger.soname'"),
    ('description = "x"\n[[add]]\npath = "/etc/hosts"\noptinal = true\n', "'add[1].optinal'"),
    ('description = "x"\n[[add]]\ndir = "/a"\n[[add]]\npth = "/etc/hosts"\n', "'add[2].pth'"),
])
def test_unknown_keys_are_errors_naming_the_key(tmp_path, text, key):
    msg = load_error(tmp_path, text)
    assert "unknown key" in msg and key in msg


def test_key_of_another_action_kind_is_named(tmp_path):
    msg = load_error(tmp_path, 'description = "x"\n[[add]]\ndir = "/a"\nto = "/b"\n')
    assert "'add[1].to'" in msg and "does not go with 'dir'" in msg


def test_exactly_one_action_kind(tmp_path):
    msg = load_error(tmp_path, 'description = "x"\n[[add]]\npath = "/a"\ndir = "/b"\n')
    assert "add[1]" in msg and "exactly one of" in msg
    msg = load_error(tmp_path, 'description = "x"\n[[add]]\nwhen = "true"\n')
    assert "has none" in msg
    for kind in ACTION_KINDS:
        assert kind in msg


@pytest.mark.parametrize("text, needle", [
    ('[trigger]\nalways = true\n', "'description' is required"),
    ('description = "x"\n[trigger]\nalways = "yes"\n', "'trigger.always' must be true or false"),
    ('description = "x"\n[trigger]\nsonames = [1]\n', "'trigger.sonames' must be a list"),
    ('description = "x"\n[[add]]\ntemplate = "passwd.j2"\n', "'add[1].to' is required"),
    ('description = "x"\n[[add]]\ncopy = "/a"\n', "'add[1].to' is required"),
    ('description = "x"\n[[add]]\ndir = "/a"\nmode = "rwx"\n', "'add[1].mode' must be an octal mode"),
    ('description = "x"\n[[add]]\ndir = "/a"\nmode = 0o17777\n', "'add[1].mode' must be an octal mode"),
    ('description = "x"\n[[add]]\npath = "/a"\noptional = 1\n', "'add[1].optional' must be true or false"),
    ('description = "x"\n[[add]]\nenv = { "1BAD" = "x" }\n', "'add[1].env.1BAD'"),
    ('description = "x"\n[[add]]\npaths = "/a"\n', "'add[1].paths' must be a list"),
    ('description = "x"\nadd = 3\n', "'add' must be an array of tables"),
])
def test_bad_values_are_errors_naming_the_key(tmp_path, text, needle):
    assert needle in load_error(tmp_path, text)


def test_probes_are_checked_against_the_registry(tmp_path):
    msg = load_error(tmp_path, 'description = "x"\n[probes]\na = "no_such_probe"\n')
    assert "'probes.a'" in msg and "unknown probe 'no_such_probe'" in msg and "openssl_dirs" in msg
    msg = load_error(tmp_path, 'description = "x"\n[probes]\na = { probe = "imports_any", symbol = ["x"] }\n')
    assert "'probes.a'" in msg and "imports_any" in msg
    msg = load_error(tmp_path, 'description = "x"\n[probes]\ntz = "tz_data"\n')
    assert "shadows the context name 'tz'" in msg


def test_invalid_toml_names_the_file(tmp_path):
    msg = load_error(tmp_path, 'description = "x\n')
    assert "invalid TOML" in msg


def test_recipe_file_names_are_checked(tmp_path):
    (tmp_path / "Bad Name.toml").write_text('description = "x"\n')
    with pytest.raises(RecipeError, match="lower-case"):
        load_dir(tmp_path, builtin=False)


def test_every_builtin_recipe_parses():
    recipes = load_dir(builtin_dir(), builtin=True)
    need = {"glibc", "gconv", "locales", "tzdata", "openssl", "gnutls", "mozilla-nss", "p11-kit",
            "certifi", "terminfo", "python", "perl", "shell"}
    assert need <= set(recipes)
    for r in recipes.values():
        assert r.description and r.actions, r.name


def test_to_json_round_trips_the_structure(tmp_path):
    r = load_dir(write(tmp_path, GOOD), builtin=False)["foo"]
    d = r.to_json()
    assert d["trigger"] == {"sonames": ["libfoo.so.*"]}
    assert d["probes"]["res"] == {"probe": "imports_any", "symbols": ["getaddrinfo"]}
    assert d["add"][1] == {"dir": "/tmp", "mode": "1777"}

"""Build spec files (`closure build -f closure.toml`): the build command's long option
names as TOML keys, so a spec reads like the command line it replaces. Flags given on the
command line override the spec; an unknown key or a wrong type is an error naming both.

Inputs on the host (root, ca-cert, recipes) are relative to the spec's directory, so a
spec can sit beside its files; the output is relative to where closure runs, like -o;
image paths (include, exclude, library-path) are paths inside the root, as on the CLI.
"""
from __future__ import annotations

import os
import shlex
import tomllib

from .errors import BadInput, read_input

MAX_SPEC = 1 << 20     # a spec is a screenful of options; tomllib is pure Python (~1 MB/s)

# key -> kind. strlist accepts one string too; argv accepts a list or a shell-style string;
# kv accepts a table {K = "V"} or a list of "K=V".
KEYS: dict[str, str] = {
    "targets": "strlist", "output": "str", "format": "str", "tag": "str",
    "compression": "str", "level": "int", "entrypoint": "argv", "cmd": "argv",
    "env": "kv", "label": "kv", "user": "str", "workdir": "str",
    "include": "strlist", "exclude": "strlist", "root": "path", "keep-setuid": "bool",
    "force": "bool", "library-path": "strlist", "no-dlopen-scan": "bool", "no-package-records": "bool",
    "no-recipes": "bool", "recipes": "pathlist", "probe": "strlist", "verify": "str",
    "probe-in-image": "bool", "probe-network": "bool", "probe-rounds": "int",
    "ca-cert": "pathlist", "locale": "strlist", "tz": "str", "tzdata": "strlist",
    "gconv": "strlist", "nss": "strlist", "pycache": "bool", "strict": "bool",
    "app-dir": "strlist", "runtime": "str", "dlopen-depth": "int", "created": "str",
    "max-size": "str", "max-files": "int", "layers": "str", "each": "bool", "platform": "strlist",
    "serve": "serve", "serve-cmd": "str", "ready": "str", "ready-timeout": "number",
    "http": "strlist", "http-crawl": "int", "client": "strlist", "serve-host-network": "bool",
    "account": "strlist",
    # the sample's smoke check, run by the sample tests, not by build: a command, or a table
    # mirroring a corpus.tsv row
    "smoke": "smoke",
}
# [smoke] mirrors a corpus row: command, stdin, env, network, exit status, output regex.
SMOKE_KEYS = {"argv": str, "stdin": str, "env": str, "net": str, "rc": int, "expect": str}


def load_spec(path: str) -> dict:
    """Read a spec; returns {option_name_with_underscores: value} for the keys it sets."""
    data = read_input(path, f"spec file {path}", MAX_SPEC)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise BadInput(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not valid TOML: not UTF-8 text") from None
    return values(doc, path, os.path.dirname(os.path.abspath(path)))


def values(doc: dict, where: str, base: str) -> dict:
    """Option values from a spec's table (or closure.build()'s keywords), typed and checked
    as the spec's keys are: {option_name_with_underscores: value}; relative paths from base."""
    out = {}
    for key, value in doc.items():
        kind = KEYS.get(key.replace("_", "-"))
        if kind is None:
            raise BadInput(f"{where}: unknown key {key!r} (known: {', '.join(sorted(KEYS))})")
        out[key.replace("-", "_")] = _convert(where, key, kind, value, base)
    return out


def split_argv(text: str, what: str) -> list[str]:
    """A shell-style command line as words; unbalanced quotes are bad input naming `what`."""
    try:
        return shlex.split(text)
    except ValueError as e:
        raise BadInput(f"{what}: {str(e).lower()} in {text!r}") from None


def _convert(path: str, key: str, kind: str, value, base: str):
    def bad(want: str) -> BadInput:
        return BadInput(f"{path}: {key} must be {want}, not {type(value).__name__} {value!r}")

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if kind == "serve":                  # serve = true, or serve = "CMD"
        if not isinstance(value, (bool, str)):
            raise bad('true, or the service command as a string')
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise bad("a positive number")
        return float(value)
    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise bad("a string")
        return os.path.join(base, value) if kind == "path" else value
    if kind in ("strlist", "pathlist"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise bad("a string or a list of strings")
        return [os.path.join(base, v) for v in items] if kind == "pathlist" else list(items)
    if kind == "argv":
        if isinstance(value, str):
            return split_argv(value, f"{path}: {key}")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise bad("a string or a list of strings")
    if kind == "smoke":
        if isinstance(value, str):
            return {"argv": value}
        if not isinstance(value, dict) or "argv" not in value:
            raise bad('a command string or a table with argv = "..."')
        for k, v in value.items():
            want = SMOKE_KEYS.get(k)
            if want is None:
                raise BadInput(f"{path}: unknown key smoke.{k} (known: {', '.join(SMOKE_KEYS)})")
            if not isinstance(v, want) or isinstance(v, bool):
                raise BadInput(f"{path}: smoke.{k} must be {'an integer' if want is int else 'a string'}")
        if value.get("net", "none") not in ("none", "host"):
            raise BadInput(f"{path}: smoke.net must be none or host")
        return dict(value)
    if kind == "kv":
        if isinstance(value, dict):
            if not all(isinstance(v, (str, int, float, bool)) for v in value.values()):
                raise bad("a table of strings")
            return [f"{k}={_scalar(v)}" for k, v in value.items()]
        if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
            return list(value)
        raise bad('a table {KEY = "value"} or a list of "KEY=value"')
    raise AssertionError(kind)


def _scalar(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)

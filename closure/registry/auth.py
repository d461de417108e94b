"""Credentials for a registry, found where podman, skopeo and docker keep them, and the
parsing of a WWW-Authenticate challenge.

Lookup order (containers-auth.json(5), then docker): `--creds`, `$REGISTRY_AUTH_FILE`,
`${XDG_RUNTIME_DIR}/containers/auth.json`, `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`,
`~/.docker/config.json` (`$DOCKER_CONFIG`). In each file the most specific key wins
(`host/ns/repo`, then `host/ns`, then `host`); `credHelpers` / `credsStore` name a
`docker-credential-NAME` program asked with the host on stdin.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import BadInput

log = logging.getLogger(__name__)
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
MAX_AUTH_FILE = 1 << 20


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str           # where they came from, for error messages ("--creds", a file)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def parse_creds(value: str) -> Credentials:
    user, sep, password = value.partition(":")
    if not user or not sep:
        raise BadInput("--creds wants USER:PASSWORD")
    return Credentials(user, password, "--creds")


def auth_files() -> list[str]:
    """The files to look in, in order (the ones that exist are read)."""
    home = os.path.expanduser("~")
    files = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(os.environ["REGISTRY_AUTH_FILE"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files.append(os.path.join(config_home, "containers", "auth.json"))
    files.append(os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker"), "config.json"))
    return files


def _normal_key(key: str) -> str:
    """'https://index.docker.io/v1/' -> 'index.docker.io'; 'host/ns/' -> 'host/ns'."""
    key = re.sub(r"^[a-z]+://", "", key).rstrip("/")
    if key.endswith("/v1") or key.endswith("/v2"):
        key = key[:-3]
    return "docker.io" if key in ("index.docker.io", "registry-1.docker.io") else key


def _candidates(host: str, repo: str) -> list[str]:
    """Keys from the most specific to the host alone."""
    parts = repo.split("/")
    return [f"{host}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)] + [host]


def _read_file(path: str) -> dict | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_AUTH_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BadInput(f"credentials file {path}: cannot read it ({e.strerror})") from None
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"credentials file {path}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise BadInput(f"credentials file {path}: not a JSON object")
    return doc


def _decode_auth(value: str, where: str) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise BadInput(f"{where}: 'auth' is not base64 of USER:PASSWORD")
    return user, password


def _helper(name: str, host: str, where: str) -> Credentials | None:
    """Ask `docker-credential-NAME get` for host's credentials (None: it has none)."""
    prog = shutil.which(f"docker-credential-{name}")
    if prog is None:
        raise BadInput(f"{where}: credential helper docker-credential-{name} is not installed")
    try:
        r = subprocess.run([prog, "get"], input=host, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise BadInput(f"docker-credential-{name}: no answer in 60 s") from None
    if r.returncode != 0:
        if "credentials not found" in (r.stdout + r.stderr).lower():
            return None
        raise BadInput(f"docker-credential-{name} get {host}: failed: "
                       f"{(r.stderr or r.stdout).strip().splitlines()[-1:] or ['no output']}")
    try:
        doc = json.loads(r.stdout)
        return Credentials(str(doc["Username"]), str(doc["Secret"]), f"docker-credential-{name}")
    except (ValueError, KeyError, TypeError):
        raise BadInput(f"docker-credential-{name} get {host}: answer is not {{Username, Secret}}") from None


def find_credentials(host: str, repo: str) -> Credentials | None:
    """The first credentials for host/repo in the files of auth_files(), or None."""
    host = _normal_key(host)
    for path in auth_files():
        doc = _read_file(path)
        if doc is None:
            continue
        helpers = doc.get("credHelpers") or {}
        auths = {_normal_key(k): v for k, v in sorted((doc.get("auths") or {}).items())
                 if isinstance(v, dict)}
        for key in _candidates(host, repo):
            if key in helpers:
                return _helper(str(helpers[key]), key, path)
            entry = auths.get(key)
            if entry is None:
                continue
            if entry.get("auth"):
                user, password = _decode_auth(entry["auth"], path)
                return Credentials(user, password, path)
            if entry.get("username"):
                return Credentials(str(entry["username"]), str(entry.get("password", "")), path)
        if doc.get("credsStore"):
            found = _helper(str(doc["credsStore"]), host, path)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class Challenge:
    scheme: str           # "basic" or "bearer"
    params: dict


def parse_challenge(header: str | None) -> Challenge | None:
    """'Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"' ->
    Challenge('bearer', {...}). None when there is no usable header."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)

"""A client of the OCI distribution API (the `/v2/` endpoints), on urllib3.

Auth follows the challenge the registry sends: `Basic` gets the user's credentials,
`Bearer` gets a token from the realm (with the credentials, when there are any) for the
scopes this client works on. Requests that fail on the server's side (5xx, 429) or on the
way (connection reset, timeout) are retried with exponential backoff; a 401 is retried once,
with credentials, and then is bad input. Bodies are streamed from files, never read whole.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

from ..errors import BadInput, JobFailed
from .auth import Challenge, Credentials, find_credentials, parse_challenge

log = logging.getLogger(__name__)

MAX_MANIFEST = 4 << 20     # distribution refuses manifests over 4 MiB; so do we
CHUNK = 1 << 20
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))


@dataclass(frozen=True)
class ClientOptions:
    tls_verify: bool = True
    cert_dir: str | None = None      # CA *.crt, client *.cert + *.key (containers-certs.d(5))
    creds: Credentials | None = None
    retries: int = 4                 # attempts after the first
    backoff: float = 0.5             # seconds before the first retry; doubles each time
    timeout: float = 60.0


class Retryable(Exception):
    """A failure worth trying again (server error, 429, connection reset)."""


def _ssl_context(host: str, opts: ClientOptions) -> ssl.SSLContext:
    if opts.tls_verify:
        ctx = ssl.create_default_context()
    else:   # nothing is verified: skip loading the system's CA bundle (~0.1 s)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.cert_dir is not None and not os.path.isdir(opts.cert_dir):
        raise BadInput(f"--cert-dir {opts.cert_dir}: not a directory")
    dirs = [opts.cert_dir] if opts.cert_dir else [
        os.path.join("/etc/containers/certs.d", host), os.path.join("/etc/docker/certs.d", host)]
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            try:
                if name.endswith(".crt"):
                    ctx.load_verify_locations(cafile=path)
                elif name.endswith(".cert"):
                    ctx.load_cert_chain(path, path[:-5] + ".key")
            except (ssl.SSLError, OSError) as e:
                raise BadInput(f"{path}: not a usable certificate ({e})") from None
    return ctx


def _error_text(body: bytes) -> str:
    """The first of a registry's {"errors": [{code, message}]}, else the start of the body."""
    try:
        err = json.loads(body)["errors"][0]
        return f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")
    except (ValueError, KeyError, IndexError, TypeError):
        return body[:200].decode("utf-8", "replace").strip()


class Registry:
    """One registry host. Thread-safe: blobs go up in parallel through one client."""

    def __init__(self, host: str, api_host: str | None = None, opts: ClientOptions = ClientOptions(),
                 scopes: Iterable[str] = (), repo: str = ""):
        import urllib3
        self.host = host
        self._api_host = api_host or host
        self._opts = opts
        self._repo = repo                  # for credential lookup by the most specific key
        self._scopes = set(scopes)
        self._lock = threading.Lock()
        self._authz: str | None = None
        self._challenge: Challenge | None = None
        self._creds: Credentials | None = opts.creds
        self._creds_looked_up = opts.creds is not None
        self._scheme: str | None = None
        extra = {} if opts.tls_verify else {"cert_reqs": "CERT_NONE", "assert_hostname": False}
        if not opts.tls_verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=16, retries=False, blocksize=CHUNK,
            timeout=urllib3.Timeout(connect=min(15.0, opts.timeout), read=opts.timeout),
            ssl_context=_ssl_context(self._api_host, opts), **extra)
        self.requests = 0                  # every HTTP request sent (tests count them)
        self.retried = 0                   # every retry after a failure

    def add_scope(self, scope: str) -> None:
        with self._lock:
            self._scopes.add(scope)

    # -- transport ---------------------------------------------------------------------

    def _base(self) -> str:
        with self._lock:
            if self._scheme is not None:
                return f"{self._scheme}://{self._api_host}"
        scheme = self._probe_scheme()
        with self._lock:
            self._scheme = scheme
        return f"{scheme}://{self._api_host}"

    def _probe_scheme(self) -> str:
        """https; plain http only when TLS is not verified and the server does not speak it
        (as skopeo and podman do with --tls-verify=false)."""
        import urllib3
        try:
            self._pool.request("GET", f"https://{self._api_host}/v2/", redirect=False)
            return "https"
        except urllib3.exceptions.SSLError as e:
            if self._opts.tls_verify:
                raise BadInput(f"{self.host}: TLS failed ({_reason(e)}); for a plain-HTTP or "
                               f"self-signed registry use --tls-verify=false or --cert-dir") from None
            return "http"
        except urllib3.exceptions.ProtocolError:
            if self._opts.tls_verify:
                raise BadInput(f"{self.host}: the connection broke during the TLS handshake; "
                               f"for a plain-HTTP registry use --tls-verify=false") from None
            return "http"
        except urllib3.exceptions.HTTPError as e:
            raise BadInput(f"{self.host}: cannot connect ({_reason(e)})") from None

    def url(self, path: str) -> str:
        return urljoin(self._base() + "/", path)

    def _send(self, method: str, url: str, headers: dict, body, stream: bool):
        import urllib3
        self.requests += 1
        try:
            return self._pool.request(method, url, headers=headers, body=body, redirect=False,
                                      preload_content=not stream)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError,
                urllib3.exceptions.NewConnectionError) as e:
            raise Retryable(f"{method} {urlsplit(url).path}: {_reason(e)}") from None
        except urllib3.exceptions.HTTPError as e:
            raise BadInput(f"{self.host}: {method} {urlsplit(url).path}: {_reason(e)}") from None

    def request(self, method: str, path: str, *, headers: dict | None = None,
                body: Callable[[], object] | bytes | None = None, ok: Iterable[int] = (200,),
                stream: bool = False, retry: bool = True):
        """Send, authenticate when challenged, retry what is worth retrying. `body` is bytes
        or a function opening a fresh stream (so a retry resends it from the start). The
        response is returned when its status is in `ok`; anything else raises."""
        ok = tuple(ok)
        attempts = 1 + (self._opts.retries if retry else 0)
        for attempt in range(attempts):
            try:
                return self._request_once(method, path, headers or {}, body, ok, stream)
            except Retryable as e:
                if attempt + 1 >= attempts:
                    if not retry:
                        raise
                    raise JobFailed(f"{self.host}: {e} (gave up after {attempts} attempts)") from None
                self.backoff(attempt, e)
        raise AssertionError("unreachable")

    @property
    def retries(self) -> int:
        return self._opts.retries

    def backoff(self, attempt: int, why) -> None:
        """Wait before retry number attempt+1 (Retry-After when the server gave one)."""
        with self._lock:
            self.retried += 1
        delay = getattr(why, "retry_after", None) or self._opts.backoff * (2 ** attempt)
        delay = min(delay, 30.0) * (0.75 + random.random() / 2)   # jitter: parallel uploads spread out
        log.info("%s: %s; retrying in %.1f s", self.host, why, delay)
        time.sleep(delay)

    def _request_once(self, method, path, headers, body, ok, stream):
        url = self.url(path)
        for auth_round in range(2):
            h = dict(headers)
            with self._lock:
                if self._authz:
                    h["Authorization"] = self._authz
            data = body() if callable(body) else body
            try:
                resp = self._send(method, url, h, data, stream)
            finally:
                if hasattr(data, "close"):
                    data.close()
            if resp.status in ok:
                return resp
            content = resp.data if stream is False else resp.read(64 << 10)
            resp.release_conn()
            if resp.status == 401 and auth_round == 0:
                self._authenticate(resp.headers.get("WWW-Authenticate"), h.get("Authorization"))
                continue
            if resp.status == 401:
                who = f" as {self._creds.username} (from {self._creds.source})" if self._creds else ""
                raise BadInput(f"{self.host}: authentication failed{who}: {_error_text(content) or 'unauthorized'}")
            if resp.status in RETRY_STATUS:
                err = Retryable(f"{method} {urlsplit(url).path}: {resp.status} {_error_text(content)}".rstrip())
                after = resp.headers.get("Retry-After", "")
                err.retry_after = float(after) if after.isdigit() else None
                raise err
            raise RegistryStatus(self.host, method, urlsplit(url).path, resp.status, _error_text(content))
        raise AssertionError("unreachable")

    # -- auth ----------------------------------------------------------------------------

    def _credentials(self) -> Credentials | None:
        with self._lock:
            if not self._creds_looked_up:
                self._creds = find_credentials(self.host, self._repo)
                self._creds_looked_up = True
            return self._creds

    def _authenticate(self, header: str | None, sent: str | None) -> None:
        challenge = parse_challenge(header)
        with self._lock:
            if sent != self._authz:      # another thread already got a new token: use it
                return
        creds = self._credentials()
        if challenge is None or challenge.scheme == "basic":
            if creds is None:
                raise BadInput(f"{self.host}: needs credentials (--creds USER:PASSWORD, "
                               f"or `podman login {self.host}`)")
            with self._lock:
                self._authz = creds.basic()
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise BadInput(f"{self.host}: unsupported authentication {header!r}")
        token = self._token(challenge, creds)
        with self._lock:
            self._authz = f"Bearer {token}"

    def _token(self, challenge: Challenge, creds: Credentials | None) -> str:
        with self._lock:
            scopes = set(self._scopes)
        if challenge.params.get("scope"):
            scopes.update(challenge.params["scope"].split(" "))
        query = [("service", challenge.params["service"])] if challenge.params.get("service") else []
        query += [("scope", s) for s in sorted(scopes)]
        realm = challenge.params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        headers = {"Authorization": creds.basic()} if creds else {}
        try:
            resp = self._send("GET", url, headers, None, stream=False)
        except Retryable as e:
            raise JobFailed(f"{self.host}: token service {realm}: {e}") from None
        if resp.status in (401, 403):
            who = f" as {creds.username} (from {creds.source})" if creds else ""
            raise BadInput(f"{self.host}: authentication failed{who}: token service said {resp.status}")
        if resp.status != 200:
            raise JobFailed(f"{self.host}: token service {realm}: {resp.status}")
        try:
            doc = json.loads(resp.data)
            return str(doc.get("token") or doc["access_token"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadInput(f"{self.host}: token service {realm} answered no token") from None

    # -- the API ---------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/: the scheme, reachability and credentials, checked before any work."""
        self.request("GET", "/v2/")

    def blob_exists(self, repo: str, digest: str) -> bool:
        try:
            self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
            return True
        except RegistryStatus as e:
            if e.status == 404:
                return False
            raise

    def start_upload(self, repo: str, mount: str | None = None, source: str | None = None):
        """POST an upload: (True, None) when the blob was mounted from `source`, else
        (False, the upload URL)."""
        query = "?" + urlencode({"mount": mount, "from": source}) if mount and source else ""
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/{query}", ok=(201, 202))
        if resp.status == 201 and query:
            return True, None
        location = resp.headers.get("Location")
        if not location:
            raise JobFailed(f"{self.host}: upload of a blob to {repo} got no Location")
        return False, urljoin(self.url(f"/v2/{repo}/blobs/uploads/"), location)

    def finish_upload(self, location: str, digest: str, size: int, opener: Callable[[], object]) -> None:
        """PUT the whole blob to the upload URL in one streamed request (monolithic)."""
        sep = "&" if "?" in location else "?"
        self.request("PUT", location + sep + urlencode({"digest": digest}),
                     headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                     body=opener, ok=(201,), retry=False)

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str | None:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}",
                            headers={"Content-Type": media_type}, body=data, ok=(201,))
        return resp.headers.get("Docker-Content-Digest")

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest of the bytes), size-capped; a pinned digest is checked."""
        try:
            resp = self.request("GET", f"/v2/{repo}/manifests/{ref}",
                                headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        except RegistryStatus as e:
            if e.status == 404:
                raise BadInput(f"{self.host}/{repo}: no such image {ref!r} ({e.text})") from None
            raise
        try:
            data = resp.read(MAX_MANIFEST + 1)
        finally:
            resp.release_conn()
        if len(data) > MAX_MANIFEST:
            raise BadInput(f"{self.host}/{repo}:{ref}: manifest is over {MAX_MANIFEST} bytes")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if ref.startswith("sha256:") and digest != ref:
            raise BadInput(f"{self.host}/{repo}@{ref}: manifest content does not match its digest")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return data, media_type, digest

    def get_blob(self, repo: str, digest: str, out, max_size: int) -> int:
        """Stream the blob into `out` (a binary file), checking its digest and that it is
        no bigger than max_size. Registries may redirect to storage elsewhere: followed, and
        the Authorization header is not sent to another host."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", ok=(200, 307, 302, 301, 303, 308), stream=True)
        hops = 0
        while resp.status != 200:
            hops += 1
            location = resp.headers.get("Location")
            resp.release_conn()
            if not location or hops > 5:
                raise JobFailed(f"{self.host}: blob {digest}: bad redirect")
            url = urljoin(self.url(f"/v2/{repo}/blobs/{digest}"), location)
            resp = self._send("GET", url, {}, None, stream=True)
            if resp.status not in (200, 301, 302, 303, 307, 308):
                raise JobFailed(f"{self.host}: blob {digest}: {resp.status} from {urlsplit(url).netloc}")
        sha, size = hashlib.sha256(), 0
        try:
            for chunk in resp.stream(CHUNK):
                size += len(chunk)
                if size > max_size:
                    raise BadInput(f"{self.host}/{repo}: blob {digest} is bigger than its descriptor says ({max_size})")
                sha.update(chunk)
                out.write(chunk)
        finally:
            resp.release_conn()
        if "sha256:" + sha.hexdigest() != digest:
            raise BadInput(f"{self.host}/{repo}: blob {digest}: content does not match its digest")
        return size


class RegistryStatus(JobFailed):
    """The registry answered with a status we did not expect."""

    def __init__(self, host: str, method: str, path: str, status: int, text: str):
        self.status, self.text = status, text
        super().__init__(f"{host}: {method} {path}: {status} {text}".rstrip())
        if status in (403, 404, 400):
            self.exit_code = 2


def _reason(e: Exception) -> str:
    reason = getattr(e, "reason", None) or e
    return (str(reason).splitlines() or [type(e).__name__])[0]

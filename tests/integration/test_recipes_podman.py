"""Issue 4's "Must show", in podman: images built from collect() + the image writer (and
`closure build`) work because of the recipes, and fail without them.

Each case builds its own image of one program, loads it, runs it with the flags these
machines need, and removes it.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.image import ImageOptions, write_image
from closure.recipes import RecipeVars
from closure.root import Root
from tests.image_fixtures import PODMAN_FLAGS, need
from tests.tls import BODY, TEST_HOST, https_server, make_ca

pytestmark = pytest.mark.podman
ROOT = Root("/")
RUN = ["run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
NO_NET = ["--network=none"]
HOST_NET = ["--network=host", "--add-host", f"{TEST_HOST}:127.0.0.1"]


def podman(*args, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(["podman", *PODMAN_FLAGS, *args], capture_output=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))}: {p.stderr!r}")
    return p


@contextlib.contextmanager
def image(tmp: Path, tag: str, targets, vars: RecipeVars | None = None, recipes: bool = True):
    """Build targets into an image archive, load it, yield (name, closure), remove it."""
    closure = collect(list(targets), Options(recipes=recipes, recipe_vars=vars))
    name = f"closure-test/recipes:{tag}"
    out = tmp / f"{tag}.tar"
    write_image(closure, ROOT, str(out), ImageOptions(name="closure-test/recipes", tag=tag, entrypoint=()))
    podman("load", "-i", str(out))
    try:
        yield name, closure
    finally:
        podman("rmi", "-f", name, check=False)


def run(name: str, *argv, net=NO_NET, stdin: bytes | None = None, extra=()) -> subprocess.CompletedProcess:
    return podman(*RUN, *net, *extra, *(["-i"] if stdin is not None else []), name, *argv,
                  check=False, input=stdin, timeout=120)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    need("podman")
    return tmp_path_factory.mktemp("recipes-podman")


@pytest.fixture(scope="module")
def ca(tmp):
    need("openssl")
    return make_ca(tmp / "ca")


# -- TLS: the CA the build added is trusted; without recipes nothing is --------------------

def test_curl_trusts_the_ca_cert_given_at_build_time(tmp, ca):
    vars = RecipeVars.from_options(ca_certs=[ca.ca_cert])
    with image(tmp, "curl-ca", ["/usr/bin/curl"], vars) as (name, _), https_server(ca) as port:
        p = run(name, "curl", "-sS", f"https://{TEST_HOST}:{port}/", net=HOST_NET)
        assert p.returncode == 0, p.stderr
        assert p.stdout == BODY


def test_curl_without_recipes_fails_the_same_fetch(tmp, ca):
    with image(tmp, "curl-bare", ["/usr/bin/curl"], recipes=False) as (name, _), https_server(ca) as port:
        p = run(name, "curl", "-sS", f"https://{TEST_HOST}:{port}/", net=HOST_NET)
        assert p.returncode != 0 and BODY not in p.stdout


def test_openssl_loads_the_legacy_provider_from_modulesdir(tmp):
    with image(tmp, "openssl", ["/usr/bin/openssl"]) as (name, _):
        p = run(name, "openssl", "dgst", "-md4", "-provider", "legacy", "-provider", "default", stdin=b"hi\n")
        assert p.returncode == 0, p.stderr
        assert re.search(rb"MD4\(stdin\)= 7291db6af45a90d1f945751cb095f193", p.stdout + p.stderr)


def test_git_over_gnutls_trusts_the_ca_cert(tmp, ca):
    """git-remote-https uses libcurl-gnutls: the GnuTLS recipe's trust file carries the CA.
    The test server is no git server: git reaching "not valid" means TLS worked."""
    helper = "/usr/lib/git-core/git-remote-https"
    if not os.path.exists(helper):
        pytest.skip("needs git")
    vars = RecipeVars.from_options(ca_certs=[ca.ca_cert])
    with image(tmp, "git-ca", ["/usr/bin/git", helper], vars) as (name, _), https_server(ca) as port:
        p = run(name, "git", "ls-remote", f"https://{TEST_HOST}:{port}/", net=HOST_NET)
        assert p.returncode == 128 and b"info/refs not valid: is this a git repository" in p.stderr, p.stderr
    with image(tmp, "git-noca", ["/usr/bin/git", helper]) as (name, _), https_server(ca) as port:
        p = run(name, "git", "ls-remote", f"https://{TEST_HOST}:{port}/", net=HOST_NET)
        assert p.returncode == 128 and b"certificate" in p.stderr.lower(), p.stderr


# -- glibc ----------------------------------------------------------------------------------

def test_getent_hosts_and_passwd(tmp):
    with image(tmp, "getent", ["/usr/bin/getent"]) as (name, _):
        p = run(name, "getent", "hosts", "localhost")
        assert p.returncode == 0 and re.search(rb"^(127\.0\.0\.1|::1)\s+localhost", p.stdout, re.M), p
        p = run(name, "getent", "passwd", "nonroot")
        assert p.returncode == 0 and p.stdout.startswith(b"nonroot:x:65532:65532:"), p
        p = run(name, "getent", "passwd", "root")
        assert p.stdout.startswith(b"root:x:0:0:")
        p = run(name, "getent", "shadow", "root")
        assert p.returncode != 0 and p.stdout == b""   # no shadow database in the image


def test_busybox_knows_root_by_name(tmp):
    with image(tmp, "busybox", ["/usr/bin/busybox"]) as (name, _):
        p = run(name, "busybox", "id", "-un")
        assert p.returncode == 0 and p.stdout == b"root\n", p


@pytest.mark.skipif(not os.path.exists("/usr/bin/ssh"), reason="needs openssh-client")
def test_ssh_resolves_uid_0_and_reads_its_config(tmp):
    with image(tmp, "ssh", ["/usr/bin/ssh"]) as (name, closure):
        p = run(name, "ssh", "-G", "localhost")
        assert p.returncode == 0 and re.search(rb"(?m)^user root$", p.stdout), p.stderr
        assert "/etc/ssh/ssh_config" in closure.entries
        assert not [x for x in closure.entries if x.startswith("/etc/ssh/ssh_host_") or x == "/etc/ssh/moduli"]


def test_date_with_tz_prints_cet(tmp):
    vars = RecipeVars.from_options(tz="Europe/Paris")
    with image(tmp, "date-tz", ["/usr/bin/date"], vars) as (name, _):
        p = run(name, "date", "-d", "@0", "+%Z")                      # via /etc/localtime
        assert p.returncode == 0 and p.stdout == b"CET\n", p
        p = run(name, "date", "-d", "@0", "+%Z", extra=["-e", "TZ=Europe/Paris"])
        assert p.returncode == 0 and p.stdout == b"CET\n", p


@pytest.mark.skipif(not os.path.exists("/usr/share/i18n/locales/fr_FR") or not shutil.which("localedef"),
                    reason="needs the locales package (localedef, fr_FR source)")
def test_locale_option_adds_that_locales_data(tmp):
    """--locale fr_FR.UTF-8 brings fr_FR's data, generated with localedef into a root made
    from date's own image (the host need not have it): date speaks French only with it."""
    rootfs = tmp / "locale-root"
    write_image(collect(["/usr/bin/date"], Options()), ROOT, str(rootfs), ImageOptions(format="rootfs"))
    subprocess.run(["localedef", "-i", "fr_FR", "-f", "UTF-8", str(rootfs / "usr/lib/locale/fr_FR.utf8")],
                   check=True, capture_output=True)
    root = Root(str(rootfs))
    for tag, locales, want in (("fr", ["fr_FR.UTF-8"], b"jeudi\n"), ("nofr", [], b"Thursday\n")):
        closure = collect(["/usr/bin/date"], Options(root=root, recipe_vars=RecipeVars.from_options(locales=locales)))
        assert ("/usr/lib/locale/fr_FR.utf8/LC_TIME" in closure.entries) == bool(locales)
        name, out = f"closure-test/recipes:locale-{tag}", tmp / f"locale-{tag}.tar"
        write_image(closure, root, str(out), ImageOptions(name="closure-test/recipes", tag=f"locale-{tag}", entrypoint=()))
        podman("load", "-i", str(out))
        try:
            p = run(name, "date", "-d", "@0", "+%A", extra=["-e", "LC_ALL=fr_FR.UTF-8"])
            assert p.returncode == 0 and p.stdout == want, p
        finally:
            podman("rmi", "-f", name, check=False)


def test_iconv_latin9_euro(tmp):
    with image(tmp, "iconv", ["/usr/bin/iconv"]) as (name, closure):
        p = run(name, "iconv", "-f", "ISO-8859-15", "-t", "UTF-8", stdin=b"\xa4")
        assert p.returncode == 0 and p.stdout == "€".encode(), p
        # Only the needed gconv modules, not the 8 MB directory.
        gconv = [e for p, e in closure.entries.items() if "/gconv/" in p and e.type == "file"]
        assert sum(e.size for e in gconv) < 1_000_000


CANCEL_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *run(void *a) { (void)a; for (;;) pause(); return 0; }
int main(void) {
    pthread_t t; void *r;
    pthread_create(&t, 0, run, 0);
    pthread_cancel(t);
    pthread_join(t, &r);
    puts(r == PTHREAD_CANCELED ? "canceled" : "not canceled");
    return r != PTHREAD_CANCELED;
}
"""


def test_pthread_cancel_finds_libgcc_s(tmp):
    """glibc dlopens libgcc_s.so.1 to unwind a cancelled thread: no DT_NEEDED names it."""
    from tests.elf_fixtures import cc
    exe = cc(tmp / "cancel" / "cancel", CANCEL_C, "-pthread")
    with image(tmp, "cancel", [str(exe)]) as (name, closure):
        assert any(p.endswith("/libgcc_s.so.1") for p in closure.entries)
        p = run(name, str(exe))
        assert p.returncode == 0 and p.stdout == b"canceled\n", p
    with image(tmp, "cancel-bare", [str(exe)], recipes=False) as (name, _):
        p = run(name, str(exe))
        assert p.returncode != 0 and b"libgcc_s.so.1 must be installed" in p.stderr, p


# -- Mozilla NSS: the modules libnss3 dlopens by name -------------------------------------------

NSS_C = r"""
#include <stdio.h>
typedef struct CERTCertificateStr CERTCertificate;
int NSS_NoDB_Init(const char *configdir);
void *SECMOD_LoadUserModule(char *spec, void *parent, int recurse);
CERTCertificate *PK11_FindCertFromNickname(const char *nickname, void *wincx);
int main(void) {
    if (NSS_NoDB_Init(NULL) != 0) { puts("NSS_NoDB_Init failed"); return 2; }
    SECMOD_LoadUserModule("name=\"Builtins\" library=libnssckbi.so", NULL, 0);
    CERTCertificate *c = PK11_FindCertFromNickname("Builtin Object Token:ISRG Root X1", NULL);
    puts(c ? "builtin root found" : "no builtin roots");
    return c ? 0 : 1;
}
"""


@pytest.mark.skipif(not os.path.exists("/usr/lib/x86_64-linux-gnu/libnss3.so"), reason="needs libnss3")
def test_nss_program_has_its_softoken_and_builtin_roots(tmp):
    """An NSS program (declared by hand: no libnss3-dev needed) starts NSS, which dlopens
    its softoken, and finds a root CA in the built-in trust module libnssckbi."""
    from tests.elf_fixtures import cc
    exe = cc(tmp / "nss" / "nssprog", NSS_C, "-l:libnss3.so")
    with image(tmp, "nss", [str(exe)]) as (name, _):
        p = run(name, str(exe))
        assert p.returncode == 0 and p.stdout == b"builtin root found\n", p
    with image(tmp, "nss-bare", [str(exe)], recipes=False) as (name, _):
        p = run(name, str(exe))
        assert p.returncode == 2 and p.stdout == b"NSS_NoDB_Init failed\n", p


# -- interpreters and the image's basics ------------------------------------------------------

PY_CHECK = r"""
import hashlib, json, os, sqlite3, ssl, stat
home = os.environ.get("HOME", "")
print(json.dumps({
  "tmp": oct(stat.S_IMODE(os.stat("/tmp").st_mode)), "sticky": bool(os.stat("/tmp").st_mode & stat.S_ISVTX),
  "home": home, "home_is_dir": os.path.isdir(home) and home != "/",
  "home_writable": os.access(home, os.W_OK),
  "secrets": [p for p in ("/etc/shadow", "/etc/gshadow", "/etc/ssh", "/root/.ssh", "/root/.bash_history")
              if os.path.lexists(p)],
  "root_listing": sorted(os.listdir("/root")) if os.access("/root", os.R_OK) else "private",
  "ssl": ssl.OPENSSL_VERSION, "sqlite": sqlite3.sqlite_version, "md5": hashlib.md5(b"").hexdigest(),
}))
"""


@pytest.fixture(scope="module")
def python_image(tmp):
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs /usr/bin/python3")
    with image(tmp, "python3", ["/usr/bin/python3"]) as built:
        yield built


def test_python_imports_ssl_json_sqlite3_hashlib(python_image):
    name, _ = python_image
    p = run(name, "python3", "-c", "import ssl, json, sqlite3, hashlib; print(ssl.OPENSSL_VERSION)")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(b"OpenSSL 3.")


@pytest.mark.parametrize("user, home", [(None, "/root"), ("nonroot", "/home/nonroot")])
def test_tmp_home_and_no_secrets(python_image, user, home):
    import json
    name, closure = python_image
    p = run(name, "python3", "-c", PY_CHECK, extra=(["--user", user] if user else []))
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["tmp"] == "0o1777" and got["sticky"]
    assert got["home"] == home and got["home_is_dir"]
    assert got["home_writable"], "the user owns its HOME"
    assert got["secrets"] == []
    assert got["root_listing"] == ([] if user is None else "private")   # /root is 0700
    # And in the plan itself, whatever podman mounts over it.
    for path in closure.entries:
        assert path not in ("/etc/shadow", "/etc/gshadow")
        assert not path.startswith(("/etc/ssh/ssh_host_", "/root/", "/home/nonroot/"))


def test_python_sets_the_c_utf8_locale(python_image):
    name, _ = python_image
    p = run(name, "python3", "-c", "import locale; print(locale.setlocale(locale.LC_ALL, 'C.UTF-8'))")
    assert p.returncode == 0 and p.stdout == b"C.UTF-8\n", p.stderr


@pytest.mark.skipif(not os.path.exists("/usr/bin/infocmp"), reason="needs ncurses-bin")
def test_terminfo_for_a_tinfo_program(tmp):
    with image(tmp, "infocmp", ["/usr/bin/infocmp"]) as (name, _):
        for term in ("xterm-256color", "vt100", "dumb"):
            p = run(name, "infocmp", term)
            assert p.returncode == 0 and f"{term}|".encode() in p.stdout, p.stderr
        p = run(name, "infocmp", "wy50")     # not in the small set
        assert p.returncode != 0


def test_perl_posix_xs(tmp):
    with image(tmp, "perl", ["/usr/bin/perl"]) as (name, _):
        p = run(name, "perl", "-MPOSIX", "-e", "print POSIX::floor(2.5), qq(\\n)")
        assert p.returncode == 0 and p.stdout == b"2\n", p


def test_sh_script_runs_with_its_shell(tmp):
    d = tmp / "script"
    d.mkdir()
    script = d / "hello.sh"
    script.write_text("#!/bin/sh\nset -e\necho \"hi from $0\"\n")
    script.chmod(0o755)
    with image(tmp, "sh-script", [str(script)]) as (name, _):
        p = run(name, str(script))
        assert p.returncode == 0 and p.stdout == f"hi from {script}\n".encode(), p


# -- the same through the CLI ------------------------------------------------------------------

def test_cli_build_with_ca_cert_and_no_recipes(tmp, ca):
    outs = {}
    for tag, flags in (("cli-ca", ["--ca-cert", str(ca.ca_cert)]), ("cli-bare", ["--no-recipes"])):
        out = tmp / f"{tag}.tar"
        p = subprocess.run([sys.executable, "-m", "closure.cli.app", "build", "/usr/bin/curl", "-o", str(out),
                            "-t", f"closure-test/recipes:{tag}", *flags], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        podman("load", "-i", str(out))
        outs[tag] = f"closure-test/recipes:{tag}"
    try:
        with https_server(ca) as port:
            url = f"https://{TEST_HOST}:{port}/"
            ok = run(outs["cli-ca"], "curl", "-sS", url, net=HOST_NET, extra=["--entrypoint", ""])
            bad = run(outs["cli-bare"], "curl", "-sS", url, net=HOST_NET, extra=["--entrypoint", ""])
        assert ok.returncode == 0 and ok.stdout == BODY, ok.stderr
        assert bad.returncode != 0 and BODY not in bad.stdout
    finally:
        for name in outs.values():
            podman("rmi", "-f", name, check=False)

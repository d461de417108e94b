"""The engine with the real Collector: what each built-in recipe adds for real programs,
the fixed point, --ca-cert bundles, and user recipes on small fake roots."""
from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from functools import lru_cache

import pytest

from closure.collect import Collector, Options, collect
from closure.model import REASON_KINDS, Reason
from closure.recipes import RecipeError, RecipeSet, RecipeVars
from closure.recipes.vars import read_ca_cert
from closure.root import Root

CURL = "/usr/bin/curl"
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def build(targets, vars=None, recipe_dirs=(), root=None):
    opts = Options(root=root or Root("/"), recipe_vars=vars, recipe_dirs=tuple(recipe_dirs))
    return collect(list(targets), opts)


@lru_cache(maxsize=None)
def curl_plain():
    return build([CURL])


def recipe_reasons(entry):
    return sorted({r.recipe for r in entry.reasons if r.kind == "recipe"})


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    d = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=closure test CA", "-keyout", d / "ca.key", "-out", d / "ca.pem"],
                   check=True, capture_output=True)
    # A careless user's file: key and certificate together. Only the certificate may travel.
    (d / "both.pem").write_bytes((d / "ca.key").read_bytes() + (d / "ca.pem").read_bytes())
    return d


# -- curl: TLS and glibc ------------------------------------------------------------------

def test_curl_gets_its_ca_bundle_config_and_providers():
    c = curl_plain()
    e = c.entries
    assert e["/usr/lib/ssl/cert.pem"].type == "symlink" and "openssl" in recipe_reasons(e["/usr/lib/ssl/cert.pem"])
    assert e[BUNDLE].type == "file" and e[BUNDLE].content is None and e[BUNDLE].source == BUNDLE
    assert e["/usr/lib/ssl/openssl.cnf"].type == "symlink" and "/etc/ssl/openssl.cnf" in e
    assert "/usr/lib/x86_64-linux-gnu/ossl-modules/legacy.so" in e
    assert c.env["SSL_CERT_FILE"] == BUNDLE
    reason = next(r for r in e["/usr/lib/ssl/cert.pem"].reasons if r.kind == "recipe")
    assert reason.by.endswith("/libcrypto.so.3")


def test_glibc_files_for_curl():
    c = curl_plain()
    e = c.entries
    passwd = e["/etc/passwd"].content.decode()
    assert passwd.splitlines() == [
        "root:x:0:0:root:/root:/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"]
    assert "nonroot:x:65532:" in e["/etc/group"].content.decode()
    nss = e["/etc/nsswitch.conf"].content.decode()
    assert "hosts:          files dns" in nss and "systemd" not in nss
    assert "localhost" in e["/etc/hosts"].content.decode()
    assert e["/tmp"].type == "dir" and e["/tmp"].mode == 0o1777
    assert e["/root"].type == "dir" and e["/root"].mode == 0o700
    assert e["/home/nonroot"].type == "dir"
    assert "/etc/services" in e and "/etc/protocols" in e          # libcurl calls getaddrinfo
    assert e["/etc/os-release"].type == "symlink"
    if os.path.isfile("/etc/debian_version"):   # what trivy's Debian detector reads
        assert e["/etc/debian_version"].type == "file"
        assert e["/etc/debian_version"].reasons[0].recipe == "os-release"
    assert "/usr/lib/locale/C.utf8/LC_CTYPE" in e
    assert {r.kind for x in e.values() for r in x.reasons} <= REASON_KINDS
    # No secrets and nothing of the host's homes.
    for p in e:
        assert p not in ("/etc/shadow", "/etc/gshadow") and not p.startswith(("/root/", "/home/nonroot/"))
        assert not p.startswith("/etc/ssh/")


def test_merged_usr_links_are_kept():
    e = curl_plain().entries
    for d in ("/bin", "/lib", "/sbin", "/lib64"):
        if os.path.islink(d):
            assert e[d].type == "symlink" and e[d].target == os.readlink(d)


def test_apply_is_a_fixed_point():
    opts = Options(recipe_vars=RecipeVars(tz="Europe/Paris"))
    c = Collector(opts)
    c.closure.targets.append(c.add_target(CURL))
    rs = RecipeSet.load()
    for _ in range(4):
        c.walk_pending()
        before = c.changes
        rs.apply(c, opts.recipe_vars)
        c.walk_pending()
        if c.changes == before:
            break
    else:
        pytest.fail("no fixed point in 4 rounds")
    snapshot = {p: (e.type, e.mode, e.content, tuple(e.reasons)) for p, e in c.closure.entries.items()}
    rs.apply(c, opts.recipe_vars)
    rs2 = RecipeSet.load()                     # a fresh set (no memo) adds nothing new either
    rs2.apply(c, opts.recipe_vars)
    assert {p: (e.type, e.mode, e.content, tuple(e.reasons)) for p, e in c.closure.entries.items()} == snapshot


def test_no_recipes_means_only_the_elf_closure():
    c = collect([CURL], Options(recipes=False))
    assert BUNDLE not in c.entries and "/etc/passwd" not in c.entries and "/tmp" not in c.entries
    assert c.env == {}


def test_ca_cert_is_appended_to_every_bundle(test_ca):
    vars = RecipeVars.from_options(ca_certs=[test_ca / "both.pem"])
    c = build([CURL], vars)
    bundle = c.entries[BUNDLE]
    original = open(BUNDLE, "rb").read()
    pem = (test_ca / "ca.pem").read_bytes()
    assert bundle.content is not None and bundle.content.startswith(original)
    assert bundle.content.endswith(pem if pem.endswith(b"\n") else pem + b"\n")
    assert b"PRIVATE KEY" not in bundle.content
    assert bundle.size == len(bundle.content) and bundle.mode == 0o644
    assert c.entries["/usr/lib/ssl/cert.pem"].type == "symlink"        # the links are kept
    assert {"gnutls", "openssl"} <= set(recipe_reasons(bundle) + recipe_reasons(c.entries["/usr/lib/ssl/cert.pem"]))


def test_certifi_bundle_is_kept_with_its_package_and_gets_the_ca_cert(tmp_path, test_ca):
    """A language runtime's own bundle (Python's certifi) travels when the package is in the
    closure, with --ca-cert appended; without the package it is not taken."""
    pkg = "/usr/lib/python3/dist-packages/certifi"
    r = tmp_path / "root"
    (r / pkg.lstrip("/")).mkdir(parents=True)
    (r / pkg.lstrip("/") / "__init__.py").write_text("from .core import where\n")
    (r / pkg.lstrip("/") / "core.py").write_text("def where(): return __file__[:-7] + 'cacert.pem'\n")
    original = open(BUNDLE, "rb").read()
    (r / pkg.lstrip("/") / "cacert.pem").write_bytes(original)
    (r / "usr/bin").mkdir(parents=True)
    (r / "usr/bin/app").write_text("#!/usr/bin/python3\n")
    vars = RecipeVars.from_options(ca_certs=[test_ca / "ca.pem"])
    opts = Options(root=Root(str(r)), recipe_vars=vars, includes=((f"{pkg}/__init__.py", f"{pkg}/__init__.py"),))
    c = collect(["/usr/bin/app"], opts)
    bundle = c.entries[f"{pkg}/cacert.pem"]
    assert recipe_reasons(bundle) == ["certifi"]
    assert bundle.content == original + (test_ca / "ca.pem").read_bytes()
    c = collect(["/usr/bin/app"], Options(root=Root(str(r)), recipe_vars=vars))
    assert f"{pkg}/cacert.pem" not in c.entries


def test_ca_cert_rejects_files_without_a_certificate(tmp_path, test_ca):
    from closure.errors import BadInput
    with pytest.raises(BadInput, match="no PEM certificate"):
        read_ca_cert(test_ca / "ca.key")
    with pytest.raises(BadInput, match="no such file"):
        RecipeVars.from_options(ca_certs=[tmp_path / "nope.pem"])


def test_tz_adds_the_zone_and_localtime():
    c = build(["/usr/bin/date"], RecipeVars.from_options(tz="Europe/Paris"))
    paris = open("/usr/share/zoneinfo/Europe/Paris", "rb").read()
    assert c.entries["/usr/share/zoneinfo/Europe/Paris"].source == "/usr/share/zoneinfo/Europe/Paris"
    assert c.entries["/etc/localtime"].content == paris
    assert not any(p.startswith("/usr/share/zoneinfo/Asia") for p in c.entries)
    bare = curl_plain()
    assert "/etc/localtime" not in bare.entries
    assert not any(p.startswith("/usr/share/zoneinfo") for p in bare.entries)


def test_bad_options_are_bad_input():
    from closure.errors import BadInput
    for kw in ({"tz": "../../etc/shadow"}, {"tzdata": ["Europe/.."]}, {"locales": ["fr FR"]},
               {"user": "bad user"}, {"gconv": ["a b"]}, {"nss": ["Bad"]}):
        with pytest.raises(BadInput):
            RecipeVars.from_options(**kw)


def test_gconv_only_when_iconv_is_used():
    c = build(["/usr/bin/iconv"])
    assert "/usr/lib/x86_64-linux-gnu/gconv/ISO8859-15.so" in c.entries
    assert "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules" in c.entries
    assert "/usr/lib/x86_64-linux-gnu/gconv/EUC-JP.so" not in c.entries    # not the whole dir
    d = build(["/usr/bin/date"])                                         # date does not iconv
    assert not any("/gconv/" in p for p in d.entries)


# -- interpreters -------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs Debian's python3")
def test_python_stdlib_and_dynload():
    c = build(["/usr/bin/python3"])
    e = c.entries
    stdlib = "/usr/lib/python3.11"
    assert f"{stdlib}/os.py" in e and f"{stdlib}/json/__init__.py" in e and f"{stdlib}/ssl.py" in e
    assert f"{stdlib}/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so" in e
    # lib-dynload modules are walked as ELF: their libraries joined.
    assert any(p.endswith("/libsqlite3.so.0") for p in e) and any(p.endswith("/libssl.so.3") for p in e)
    for p in e:
        assert "/__pycache__" not in p and not p.startswith((f"{stdlib}/test/", f"{stdlib}/idlelib/"))
        assert "/config-3.11" not in p and "_testcapi" not in p
    # Debian's sitecustomize.py is a link into /etc: both ends are there.
    if os.path.islink(f"{stdlib}/sitecustomize.py"):
        assert e[f"{stdlib}/sitecustomize.py"].type == "symlink"
        assert os.path.realpath(f"{stdlib}/sitecustomize.py") in e


@pytest.mark.skipif(not os.path.exists("/usr/lib/python3.11/__pycache__"), reason="needs Debian's compiled stdlib")
def test_pycache_option_keeps_bytecode():
    e = build(["/usr/bin/python3"], RecipeVars(pycache=True)).entries
    assert any(p.startswith("/usr/lib/python3.11/__pycache__/os.cpython-311") for p in e)
    assert not any(p.startswith("/usr/lib/python3.11/test/") for p in e)


def test_only_recipes_naming_closure_lists_rerun_on_growth():
    rs = RecipeSet.load()
    assert not rs._reads_closure(rs.get("terminfo"))      # `ti.paths` is a probe's field
    assert not rs._reads_closure(rs.get("glibc"))


@pytest.mark.skipif(not shutil.which("perl"), reason="needs perl")
def test_perl_core_modules_and_xs():
    e = build(["/usr/bin/perl"]).entries
    base = "/usr/lib/x86_64-linux-gnu/perl-base"
    assert f"{base}/POSIX.pm" in e and f"{base}/auto/POSIX/POSIX.so" in e and f"{base}/strict.pm" in e


def test_sh_script_gets_a_shell(tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    c = build([str(script)])
    sh = os.path.realpath("/bin/sh")
    assert sh in c.entries and "shell" in recipe_reasons(c.entries[sh]) + recipe_reasons(
        c.entries.get("/usr/bin/sh", c.entries[sh]))


def test_static_program_gets_no_glibc_files(tmp_path):
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    src = tmp_path / "s.c"
    src.write_text("int main(void){return 0;}\n")
    subprocess.run(["gcc", "-static", "-o", tmp_path / "s", src], check=True)
    c = build([str(tmp_path / "s")], RecipeVars(tz="UTC"))
    assert "/etc/passwd" not in c.entries and "/etc/nsswitch.conf" not in c.entries
    assert not any(r.kind == "recipe" for r in c.entries["/tmp"].reasons)   # only the target's parent
    assert "/usr/share/zoneinfo/UTC" in c.entries or "/etc/localtime" in c.entries   # tzdata: always


# -- user recipes on fake roots --------------------------------------------------------------

def fake_root(tmp_path):
    r = tmp_path / "root"
    for d in ("usr/lib/app/plugins/sub", "usr/lib/app/plugins/__pycache__", "etc/app", "usr/bin"):
        (r / d).mkdir(parents=True)
    (r / "usr/lib/app/plugins/a.py").write_text("a")
    (r / "usr/lib/app/plugins/sub/b.py").write_text("b")
    (r / "usr/lib/app/plugins/__pycache__/a.pyc").write_text("c")
    (r / "usr/lib/app/plugins/skip.txt").write_text("s")
    (r / "etc/app/real.conf").write_text("conf")
    os.symlink("real.conf", r / "etc/app/app.conf")
    os.symlink("/etc/app/missing.pem", r / "etc/app/ca.pem")     # dangling, like cert.pem without ca-certificates
    (r / "usr/bin/app").write_text("#!/bin/false\n")
    return r


RECIPE = """
description = "test"
[trigger]
programs = ["app"]
[[add]]
tree = "/usr/lib/app/plugins"
exclude = ["__pycache__", "*.txt"]
[[add]]
glob = "/etc/app/*.conf"
[[add]]
copy = "/etc/app/app.conf"
to = "/etc/app/copy.conf"
[[add]]
each = "['one', 'two']"
dir = "/var/{{ item }}"
mode = "0750"
[[add]]
env = { APP_HOME = "{{ trigger.dir }}", WHO = "{{ user }}" }
[[add]]
when = "tz"
warn = "tz is {{ tz }}"
[[add]]
path = "/etc/app/nothere"
[[add]]
path = "/etc/app/nothere-either"
optional = true
[[add]]
path = "/etc/app/ca.pem"
ca_bundle = true
"""


def user_collector(tmp_path, recipe_text=RECIPE, vars=None, prepare=None):
    root = fake_root(tmp_path)
    if prepare is not None:
        prepare(root)
    rdir = tmp_path / "recipes"
    rdir.mkdir()
    (rdir / "app.toml").write_text(textwrap.dedent(recipe_text))
    c = Collector(Options(root=Root(str(root)), recipes=False))
    c.add_path("/usr/bin/app", Reason("target"), walk=False)
    c.closure.targets.append("/usr/bin/app")
    full = RecipeSet.load([rdir])
    rs = RecipeSet({"app": full.get("app")}, full.renderer.template_dirs)   # the user's only
    rs.apply(c, vars or RecipeVars(user="nonroot", tz="UTC"))
    return c


def test_user_recipe_actions(tmp_path, test_ca):
    c = user_collector(tmp_path, vars=RecipeVars(user="nonroot", tz="UTC",
                                                 ca_certs=(read_ca_cert(test_ca / "ca.pem"),)))
    e = c.closure.entries
    assert "/usr/lib/app/plugins/a.py" in e and "/usr/lib/app/plugins/sub/b.py" in e
    assert e["/usr/lib/app/plugins/sub"].type == "dir"
    assert not any("__pycache__" in p or p.endswith(".txt") for p in e)
    assert e["/etc/app/real.conf"].type == "file" and e["/etc/app/app.conf"].type == "symlink"
    assert e["/etc/app/copy.conf"].content == b"conf"
    assert e["/var/one"].mode == 0o750 and e["/var/two"].type == "dir"
    assert c.closure.env == {"APP_HOME": "/usr/bin", "WHO": "nonroot"}
    assert "recipe app: tz is UTC" in c.closure.warnings
    assert "recipe app: /etc/app/nothere not found in the root" in c.closure.warnings
    assert not any("nothere-either" in w for w in c.closure.warnings)
    # The dangling bundle link: the link is kept, the extra CAs alone are where it points.
    assert e["/etc/app/ca.pem"].type == "symlink" and e["/etc/app/ca.pem"].target == "/etc/app/missing.pem"
    assert e["/etc/app/missing.pem"].content == (test_ca / "ca.pem").read_bytes()
    for p, entry in e.items():
        assert entry.reasons, p
    r = next(r for r in e["/usr/lib/app/plugins/a.py"].reasons if r.kind == "recipe")
    assert r == Reason("recipe", by="/usr/bin/app", recipe="app")


def test_user_recipe_errors_name_file_and_key(tmp_path):
    with pytest.raises(RecipeError, match=r"app.toml: add\[1\].path: 'nope' is undefined"):
        user_collector(tmp_path, 'description = "x"\n[trigger]\nalways = true\n[[add]]\npath = "{{ nope }}"\n')


def test_relative_paths_are_rejected(tmp_path):
    with pytest.raises(RecipeError, match="not an absolute image path"):
        user_collector(tmp_path, 'description = "x"\n[trigger]\nalways = true\n[[add]]\npath = "etc/x"\n')


def test_recipe_reruns_when_its_probe_results_change():
    """nsswitch.conf names systemd once libnss_systemd joins the closure."""
    c = Collector(Options())
    c.closure.targets.append(c.add_target("/usr/bin/getent"))
    c.walk_pending()
    rs = RecipeSet.load()
    rs.apply(c, RecipeVars())
    assert b"systemd" not in c.closure.entries["/etc/nsswitch.conf"].content
    c.add_path("/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2", Reason("include"))
    rs.apply(c, RecipeVars())
    assert b"passwd:         files systemd" in c.closure.entries["/etc/nsswitch.conf"].content


def test_user_option_adds_an_account_and_its_home():
    e = build(["/usr/bin/date"], RecipeVars.from_options(user="alice")).entries
    assert "alice:x:1000:1000:alice:/home/alice:/sbin/nologin" in e["/etc/passwd"].content.decode().splitlines()
    assert "alice:x:1000:" in e["/etc/group"].content.decode().splitlines()
    assert e["/home/alice"].type == "dir" and e["/home/alice"].mode == 0o755


@pytest.mark.parametrize("target", [CURL, "/usr/bin/python3"])
def test_recipes_inside_the_image_root_find_the_same_files(tmp_path, target):
    """The image's own root as a foreign root (what `slim` does): probes derive instead of
    running host programs, and the closure found there is the one the image holds."""
    from closure.image import ImageOptions, write_image
    if not os.path.exists(target):
        pytest.skip(f"needs {target}")
    first = build([target])
    write_image(first, Root("/"), str(tmp_path / "rootfs"), ImageOptions(format="rootfs"))
    again = build([target], root=Root(str(tmp_path / "rootfs")))
    assert set(again.entries) == set(first.entries)
    for p in ("/etc/passwd", "/etc/nsswitch.conf"):
        assert again.entries[p].content == first.entries[p].content
    assert again.env == first.env and again.warnings == first.warnings


def test_ca_bundle_on_a_directory_is_left_alone(tmp_path, test_ca):
    recipe = 'description = "x"\n[trigger]\nalways = true\n[[add]]\npath = "/usr/lib/app/plugins"\nca_bundle = true\n'
    c = user_collector(tmp_path, recipe, RecipeVars(ca_certs=(read_ca_cert(test_ca / "ca.pem"),)))
    e = c.closure.entries["/usr/lib/app/plugins"]
    assert e.type == "dir" and e.content is None
    assert any("is a directory; --ca-cert not added" in w for w in c.closure.warnings)


def test_ca_bundle_behind_a_link_loop_is_a_warning(tmp_path, test_ca):
    def loop(root):
        os.symlink("b.pem", root / "etc/app/a.pem")
        os.symlink("a.pem", root / "etc/app/b.pem")
    recipe = 'description = "x"\n[trigger]\nalways = true\n[[add]]\npath = "/etc/app/a.pem"\nca_bundle = true\n'
    c = user_collector(tmp_path, recipe, RecipeVars(ca_certs=(read_ca_cert(test_ca / "ca.pem"),)), loop)
    assert "recipe app: /etc/app/a.pem not found in the root" in c.closure.warnings
    assert not any(p.startswith("/etc/app/") and p.endswith(".pem") for p in c.closure.entries)

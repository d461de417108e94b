"""Each probe on the host's real files, checked against what the real tools say, and on
small fake roots for the layouts this host does not have."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache

import pytest

from closure.collect import Options, collect
from closure.elf.reader import read_elf
from closure.errors import NotElf
from closure.model import Closure, Entry, Reason
from closure.recipes import Hit, ProbeContext, RecipeVars
from closure.recipes import probes as P
from closure.root import Root

HOST = Root("/")


@lru_cache(maxsize=None)
def elf_closure(target: str) -> Closure:
    return collect([target], Options(recipes=False))


def _elf(root: Root):
    def read(real: str):
        try:
            return read_elf(root, real)
        except (NotElf, OSError):
            return None
    return read


def ctx(target: str, trigger: str | None = None, vars: RecipeVars | None = None,
        root: Root = HOST, closure: Closure | None = None) -> ProbeContext:
    if closure is None:
        closure = elf_closure(target) if root is HOST else Closure(root=root.path, targets=[target])
    trigger = trigger or target
    return ProbeContext(root, closure, Hit("soname", trigger, os.path.basename(trigger)),
                        vars or RecipeVars(), _elf(root))


def host_lib(name: str) -> str:
    return HOST.resolve(f"/usr/lib/x86_64-linux-gnu/{name}").path


needs = pytest.mark.skipif


# -- TLS -------------------------------------------------------------------------------------

@needs(not shutil.which("openssl") or not os.path.exists("/usr/bin/curl"), reason="needs curl, openssl")
def test_openssl_dirs_match_openssl_version():
    out = subprocess.run(["openssl", "version", "-d", "-m", "-e"], capture_output=True, text=True).stdout
    want = dict(re.findall(r'^(\w+): "([^"]*)"', out, re.M))
    got = P.openssl_dirs(ctx("/usr/bin/curl"))
    assert got["openssldir"] == want["OPENSSLDIR"]
    assert got["modulesdir"] == want["MODULESDIR"]
    assert got["enginesdir"] == want["ENGINESDIR"]
    assert got["cafile"] == want["OPENSSLDIR"] + "/cert.pem"
    assert got["lib"].endswith("/libcrypto.so.3")
    # cert.pem is a link to the Debian bundle; the probe says where it ends.
    assert got["bundle"] == HOST.resolve(got["cafile"]).path == "/etc/ssl/certs/ca-certificates.crt"


def test_openssl_dirs_none_without_libcrypto():
    assert P.openssl_dirs(ctx("/usr/bin/jq")) is None


@needs(not os.path.exists("/usr/lib/x86_64-linux-gnu/libgnutls.so.30"), reason="needs libgnutls")
def test_gnutls_trust_store_is_the_compiled_in_file():
    lib = host_lib("libgnutls.so.30")
    with open(lib, "rb") as f:
        data = f.read()
    got = P.gnutls_trust_store(ctx("/usr/bin/curl", trigger=lib))
    assert got["lib"] == lib
    assert got["files"] and all(f.encode() + b"\0" in data for f in got["files"])
    assert "/etc/ssl/certs/ca-certificates.crt" in got["files"]   # Debian's configure flag
    assert got["pkcs11"] is None                                    # Debian uses the file


def test_p11_kit_trust_on_a_fake_root(tmp_path):
    r = tmp_path
    (r / "usr/lib/x86_64-linux-gnu/pkcs11").mkdir(parents=True)
    (r / "usr/share/p11-kit/modules").mkdir(parents=True)
    (r / "etc/ssl/certs").mkdir(parents=True)
    (r / "etc/ssl/certs/ca-certificates.crt").write_text("PEM")
    (r / "usr/lib/x86_64-linux-gnu/libp11-kit.so.0").write_bytes(b"\x7fELF")
    (r / "usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-trust.so").write_bytes(
        b"\x7fELF\0junk\0/etc/ssl/certs/ca-certificates.crt:/usr/share/missing-anchors\0")
    (r / "usr/share/p11-kit/modules/p11-kit-trust.module").write_text("module: p11-kit-trust.so\n")
    (r / "usr/share/p11-kit/modules/other.module").write_text("module: opensc-pkcs11.so\n")
    root = Root(str(r))
    c = Closure(root=root.path, targets=["/x"])
    c.add(Entry("/usr/lib/x86_64-linux-gnu/libp11-kit.so.0", "file",
                source="/usr/lib/x86_64-linux-gnu/libp11-kit.so.0"), Reason("target"))
    got = P.p11_kit_trust(ctx("/x", "/usr/lib/x86_64-linux-gnu/libp11-kit.so.0", root=root, closure=c))
    assert got == {"configs": ["/usr/share/p11-kit/modules/p11-kit-trust.module"],
                   "modules": ["/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-trust.so"],
                   "anchors": ["/etc/ssl/certs/ca-certificates.crt"], "anchor_dirs": []}


# -- glibc -----------------------------------------------------------------------------------

def test_glibc_facts_match_getconf():
    ver = subprocess.run(["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True).stdout.split()[1]
    g = P.glibc(ctx("/usr/bin/date"))
    assert g["version"] == ver
    assert g["nss_builtin"] == (tuple(map(int, ver.split("."))) >= (2, 34))
    assert g["gconv_dir"] == "/usr/lib/x86_64-linux-gnu/gconv" and HOST.is_dir(g["gconv_dir"])
    assert g["locale_dir"] == "/usr/lib/locale" and g["zoneinfo"] == "/usr/share/zoneinfo"
    assert g["libgcc_s"] and HOST.is_file(g["libgcc_s"]) and g["libgcc_s"].endswith("/libgcc_s.so.1")


def test_imports_any_agrees_with_pyelftools():
    from elftools.elf.elffile import ELFFile
    got = P.imports_any(ctx("/usr/bin/curl"), symbols=["getaddrinfo"])
    want = []
    for e in elf_closure("/usr/bin/curl").entries.values():
        if e.type != "file":
            continue
        with open(e.source, "rb") as f:
            dynsym = ELFFile(f).get_section_by_name(".dynsym")
            if dynsym and any(s.name == "getaddrinfo" and s["st_shndx"] == "SHN_UNDEF"
                              for s in dynsym.iter_symbols()):
                want.append(e.source)
    assert got == sorted(want) and got   # libcurl resolves names
    assert P.imports_any(ctx("/usr/bin/curl"), symbols=["no_such_symbol_xyz"]) == []
    targets_only = P.imports_any(ctx("/usr/bin/curl"), symbols=["getaddrinfo"], scope="targets")
    assert all(p.endswith("/curl") for p in targets_only)
    with pytest.raises(ValueError):
        P.imports_any(ctx("/usr/bin/curl"), symbols=["x"], scope="everything")


def test_nss_services_filters_the_roots_nsswitch(tmp_path):
    # On the host: glibc 2.36 has files and dns built in; systemd's module is not in the closure.
    got = P.nss_services(ctx("/usr/bin/getent"))
    lines = dict(got["lines"])
    assert lines["passwd"] == "files" and lines["hosts"] == "files dns"
    assert "systemd" not in " ".join(lines.values())
    assert got["modules"] == [] and {"files", "dns"} <= set(got["available"])


def test_nss_services_keeps_actions_of_kept_services_and_adds_requested_modules():
    text = ("passwd: files systemd\nhosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n"
            "netgroup: nis\n# comment: x\n")
    assert P._parse_nsswitch(text) == [
        ("passwd", ["files", "systemd"]),
        ("hosts", ["files", "mdns4_minimal", "[NOTFOUND=return]", "dns", "myhostname"]),
        ("netgroup", ["nis"])]
    got = P.nss_services(ctx("/usr/bin/getent", vars=RecipeVars(nss=("systemd", "nosuchsvc"))))
    lines = dict(got["lines"])
    assert lines["passwd"] == "files systemd"          # --nss systemd: its module is added
    assert got["modules"] == [host_lib("libnss_systemd.so.2").replace(
        HOST.resolve("/usr/lib/x86_64-linux-gnu").path, "/usr/lib/x86_64-linux-gnu")]
    assert got["missing"] == ["nosuchsvc"]


def test_image_users_have_no_secrets():
    got = P.image_users(ctx("/usr/bin/date"))
    names = {u["name"]: u for u in got["users"]}
    assert names["nonroot"]["uid"] == 65532 and names["nonroot"]["home"] == "/home/nonroot"
    assert names["root"]["uid"] == 0 and names["root"]["home"] == "/root"
    assert got["extra"] is None and len(got["users"]) == 3
    alice = P.image_users(ctx("/usr/bin/date", vars=RecipeVars(user="alice")))
    assert alice["extra"] == {"name": "alice", "uid": 1000, "gid": 1000, "gecos": "alice",
                              "home": "/home/alice", "shell": "/sbin/nologin"}
    assert {"name": "alice", "gid": 1000, "members": ""} in alice["groups"]
    bob = P.image_users(ctx("/usr/bin/date", vars=RecipeVars(user="bob:nonroot")))
    assert bob["extra"]["gid"] == 65532 and len(bob["groups"]) == 3
    assert P.image_users(ctx("/usr/bin/date", vars=RecipeVars(user="1000:1000")))["extra"] is None


def test_image_users_take_the_accounts_the_program_needs_from_the_root(tmp_path):
    """Ids a trace saw (setuid, chown), owners of kept entries, --account and --user are
    written as the root has them; an --account the root lacks is made."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
        "postgres:x:104:110:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n"
        "app:x:1001:1001::/app:/bin/sh\nbroken:x:notanumber:1::/:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nadm:x:4:syslog,www-data\nwww-data:x:33:\n"
                                        "postgres:x:110:\nssl-cert:x:111:postgres\napp:x:1001:\n")
    root = Root(str(tmp_path))
    closure = Closure(root=root.path)
    closure.accounts |= {("uid", 33), ("gid", 4), ("account", "svc", None, None), ("account", "app", None, 50)}
    got = P.image_users(ctx("/x", root=root, closure=closure, vars=RecipeVars(user="postgres")))
    users = {u["name"]: u for u in got["users"]}
    groups = {g["name"]: g for g in got["groups"]}
    assert users["www-data"] == {"name": "www-data", "uid": 33, "gid": 33, "gecos": "www-data",
                                 "home": "/var/www", "shell": "/usr/sbin/nologin"}
    assert users["postgres"]["uid"] == 104 and groups["postgres"]["gid"] == 110   # --user, as the root has it
    assert users["app"]["gid"] == 50                                             # --account app::50
    assert users["svc"]["uid"] == 1000 and groups["svc"]["gid"] == 1000          # made: the root lacks it
    assert groups["adm"] == {"name": "adm", "gid": 4, "members": "www-data"}     # members kept only if kept
    assert "broken" not in users and got["extra"] is None


def test_gconv_modules_resolve_aliases_through_the_config():
    c = ctx("/usr/bin/iconv", vars=RecipeVars(gconv=("LATIN9", "EUC-JP", "NOPE-42")))
    got = P.gconv_modules(c, default=["ISO-8859-1", "UTF-16"])
    d = "/usr/lib/x86_64-linux-gnu/gconv"
    assert f"{d}/ISO8859-15.so" in got["modules"]      # LATIN9 is an alias of ISO-8859-15
    assert f"{d}/EUC-JP.so" in got["modules"]          # from gconv-modules.d/*.conf
    assert {f"{d}/ISO8859-1.so", f"{d}/UTF-16.so"} <= set(got["modules"])
    assert got["missing"] == ["NOPE-42"]
    assert got["configs"][0] == f"{d}/gconv-modules" and f"{d}/gconv-modules.cache" in got["configs"]
    assert not got["all"]
    assert P.gconv_modules(ctx("/usr/bin/iconv", vars=RecipeVars(gconv=("all",))))["all"]


def test_merged_usr_links_are_the_hosts():
    got = P.merged_usr_links(ctx("/usr/bin/date"))
    assert got == sorted(d for d in ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin")
                         if os.path.islink(d) and os.path.isdir(d))


# -- locales, zones, terminfo -----------------------------------------------------------------

def test_locale_data_on_the_host_and_on_a_fake_root(tmp_path):
    got = P.locale_data(ctx("/usr/bin/date", vars=RecipeVars(locales=("xx_YY.UTF-8",))))
    assert got["dirs"] == ["/usr/lib/locale/C.utf8"]    # C.UTF-8 found as C.utf8
    assert got["missing"] == ["xx_YY.UTF-8"] or got["archived"] == ["xx_YY.UTF-8"]
    # A fake root: one locale compiled as a directory, one only in the archive.
    (tmp_path / "usr/lib/locale/fr_FR.utf8").mkdir(parents=True)
    (tmp_path / "usr/lib/locale/C.utf8").mkdir(parents=True)
    (tmp_path / "usr/lib/locale/locale-archive").write_bytes(b"archive")
    root = Root(str(tmp_path))
    got = P.locale_data(ctx("/x", root=root, vars=RecipeVars(locales=("fr_FR.UTF-8", "de_DE.UTF-8"))))
    assert got["dirs"] == ["/usr/lib/locale/C.utf8", "/usr/lib/locale/fr_FR.utf8"]
    assert got["archive"] == "/usr/lib/locale/locale-archive" and got["archived"] == ["de_DE.UTF-8"]
    assert P._locale_names("sr_RS.UTF-8@latin") == ["sr_RS.UTF-8@latin", "sr_RS.utf8@latin"]


def test_tz_data():
    c = ctx("/usr/bin/date", vars=RecipeVars(tz="Europe/Paris", tzdata=("Asia", "America/New_York", "Nope/Zone")))
    got = P.tz_data(c)
    assert got["localtime"] == "/usr/share/zoneinfo/Europe/Paris"
    assert got["files"] == ["/usr/share/zoneinfo/Europe/Paris", "/usr/share/zoneinfo/America/New_York"]
    assert got["trees"] == ["/usr/share/zoneinfo/Asia"] and got["missing"] == ["Nope/Zone"]
    assert P.tz_data(ctx("/usr/bin/date", vars=RecipeVars(tzdata=("all",))))["trees"] == ["/usr/share/zoneinfo"]
    assert P.tz_data(ctx("/usr/bin/date"))["files"] == []


@needs(not shutil.which("infocmp"), reason="needs infocmp")
def test_terminfo_uses_ncurses_search_list():
    dirs = subprocess.run(["infocmp", "-D"], capture_output=True, text=True).stdout.split()
    target = shutil.which("infocmp")
    got = P.terminfo(ctx(target), names=["xterm", "dumb", "no-such-term"])
    assert got["dirs"] == dirs
    for name, path in zip(["xterm", "dumb"], got["paths"]):
        want = subprocess.run(["infocmp", "-x", name], capture_output=True, text=True,
                              env={"TERM": "dumb"}).stdout.splitlines()[0]
        assert path.endswith(f"/{name[0]}/{name}") and os.path.isfile(path) and want.startswith("#")
    assert got["missing"] == ["no-such-term"]


# -- interpreters ------------------------------------------------------------------------------

def test_python_paths_on_a_foreign_layout(tmp_path):
    (tmp_path / "opt/py/bin").mkdir(parents=True)
    (tmp_path / "opt/py/lib/python3.12/lib-dynload").mkdir(parents=True)
    (tmp_path / "opt/py/lib/python3.12/site-packages").mkdir()
    (tmp_path / "opt/py/lib/python3.12/os.py").write_text("")
    (tmp_path / "opt/py/bin/python3.12").write_bytes(b"\x7fELF")
    os.symlink("python3.12", tmp_path / "opt/py/bin/python3")
    root = Root(str(tmp_path))
    got = P.python_paths(ctx("/opt/py/bin/python3", root=root))
    assert got == {"version": "3.12", "stdlib": "/opt/py/lib/python3.12",
                   "dynload": "/opt/py/lib/python3.12/lib-dynload",
                   "site": ["/opt/py/lib/python3.12/site-packages"], "exe": "/opt/py/bin/python3.12"}


@needs(not shutil.which("perl"), reason="needs perl")
def test_perl_modules_are_found_in_inc():
    c = ctx("/usr/bin/perl")
    got = P.perl_modules(c, modules=["POSIX", "Carp::Heavy", "Config_heavy.pl", "No::Such"])
    base = "/usr/lib/x86_64-linux-gnu/perl-base"
    assert f"{base}/POSIX.pm" in got["files"] and f"{base}/auto/POSIX/POSIX.so" in got["files"]
    assert f"{base}/Carp/Heavy.pm" in got["files"] and f"{base}/Config_heavy.pl" in got["files"]
    assert got["missing"] == ["No::Such"]


def test_probe_registry_rejects_bad_calls():
    with pytest.raises(ValueError, match="unknown probe"):
        P.check_call("nope", {})
    with pytest.raises(TypeError, match="terminfo"):
        P.check_call("terminfo", {"nmes": []})
    P.check_call("terminfo", {"names": ["xterm"]})
    assert {"openssl_dirs", "gnutls_trust_store", "python_paths", "nss_services"} <= set(P.PROBES)

"""Foreign roots: an arm64 Debian (debootstrap --foreign, unpacked, no ld.so.cache) and a
newer amd64 Debian (trixie, glibc 2.41) analysed and built with --root from this host, each
compared with its own loader: the arm64 one run under qemu-user with the root as its
prefix, the trixie one in a chroot. An arm64 curl image runs under qemu via verify."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from closure.collect import Options, collect
from closure.elf.ldcache import LdCache, parse_cache
from closure.elf.ldso import Loader
from closure.errors import NotElf
from closure.image.config import elf_platform, host_platform
from closure.image.validate import validate
from closure.qemu import binfmt_handler
from closure.root import Root
from tests.foreign_roots import arm64_root, qemu_aarch64, trixie_root  # noqa: F401
from tests.elf_fixtures import parse_loader_list
from tests.measured import MEASURED
from tests.tls import BODY, https_server, make_ca

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
AARCH64_LD = "/lib/ld-linux-aarch64.so.1"
HOST = host_platform().architecture
if HOST == "arm64":
    pytest.skip("the arm64 root is not foreign on an arm64 machine", allow_module_level=True)


def closure(*args, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "closure.cli.app", *map(str, args)],
                          capture_output=True, text=True, env=env)


def elf_programs(root: Path, d: str = "/usr/bin") -> list[str]:
    """Image paths of the ELF files in the root's dir, each real file once."""
    r, out, seen = Root(str(root)), [], set()
    for name in sorted(r.listdir(d)):
        res = r.try_resolve(f"{d}/{name}")
        if res is None or res.path in seen or not r.is_file(res.path):
            continue
        seen.add(res.path)
        with r.open(res.path) as f:
            if f.read(4) == b"\x7fELF":
                out.append(res.path)
    return out


def parse_list(root: Path, stdout: str):
    """(real image paths mapped, names not found) from `ld.so --list` output, the paths
    resolved inside the root (the loader's own line names its host path: qemu opened it)."""
    r = Root(str(root))

    def inside(where: str) -> str:
        return r.resolve(where[len(str(root)):] if where.startswith(str(root) + "/") else where).path
    return parse_loader_list(stdout, inside, "ld.so --list")


def ours(loader: Loader, path: str):
    try:
        result = loader.load(path)
    except NotElf:
        return None
    if result.main.info.interp is None and not result.main.info.needed:
        return None
    return ({o.real for o in result.objects if o is not result.main},
            {e.name for e in result.edges if e.path is None})


def parity(root: Path, reference, paths: list[str]):
    loader = Loader(Root(str(root)))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        real = dict(zip(paths, pool.map(reference, paths)))
    diffs = [(p, want, ours(loader, p)) for p, want in real.items()
             if want is not None and ours(loader, p) != want]
    return diffs, sum(1 for v in real.values() if v is not None)


def help_sections(stdout: str) -> dict[str, list[str]]:
    """`ld.so --help`'s lists: section title -> the names marked searched (or all lines)."""
    out, title = {}, None
    for line in stdout.splitlines():
        if line and not line.startswith(" "):
            title = line.rstrip(":")
            out.setdefault(title, [])
        elif title and line.strip():
            out[title].append(line.strip())
    return out


def copy_into(src: Root, dest: Path, ipath: str) -> None:
    """ipath's file copied from src to the same place under dest, with the links on the
    way (the merged /usr's /lib -> usr/lib...) recreated as they are written."""
    real, links = src.follow(ipath)
    for link, target in links:
        at = dest / link.lstrip("/")
        if not at.is_symlink():
            at.parent.mkdir(parents=True, exist_ok=True)
            at.symlink_to(target)
    at = dest / real.lstrip("/")
    at.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.host(real), at)


# -- arm64 ---------------------------------------------------------------------------------

def qemu_list(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([qemu_aarch64(), "-L", str(root), f"{root}{AARCH64_LD}", *args],
                          capture_output=True, text=True, timeout=120)


def test_arm64_root_analysis_equals_its_loader_under_qemu(arm64_root):
    """Every ELF in the arm64 root's /usr/bin: closure's answer is what the root's own
    ld-linux-aarch64.so.1 maps, run under qemu-aarch64-static with the root as prefix."""
    def reference(path):
        p = qemu_list(arm64_root, "--list", path)
        if p.returncode != 0 or re.search("not a dynamic|statically linked", p.stdout + p.stderr):
            return None
        return parse_list(arm64_root, p.stdout)

    programs = elf_programs(arm64_root)
    diffs, compared = parity(arm64_root, reference, programs)
    MEASURED.append(f"arm64 root /usr/bin vs ld-linux-aarch64.so.1 --list under qemu: "
                    f"{compared} programs compared, {len(diffs)} differences")
    assert compared > 100, f"only {compared} of {len(programs)} ELF programs traced"
    assert not diffs, diffs[:3]


def test_arm64_platform_is_its_loaders(arm64_root):
    """$PLATFORM, the system dirs and the (legacy) hwcap subdirectories come from the
    target's machine and glibc, as its ld.so --help under qemu lists them."""
    sections = help_sections(qemu_list(arm64_root, "--help").stdout)
    loader = Loader(Root(str(arm64_root)))
    plat = loader.platform(loader.elf(loader.root.resolve("/usr/bin/curl").path))
    system = [ln.split()[0] for ln in sections["Shared library search path"] if "system search path" in ln]
    assert tuple(system) == plat.system_dirs
    assert "No subdirectories of glibc-hwcaps directories are searched." in sections
    assert plat.hwcaps == ()
    legacy = sections["Legacy HWCAP subdirectories under library search path directories"]
    names = {ln.split()[0] for ln in legacy if "searched" in ln}
    assert names == {c for sub in plat.subdirs for c in sub.split("/")}
    assert next(ln.split()[0] for ln in legacy if "AT_PLATFORM" in ln) == plat.platform == "aarch64"
    assert plat.lib == "lib/aarch64-linux-gnu"


def test_arm64_legacy_hwcap_subdirectories_in_ldso_order(arm64_root, tmp_path):
    """glibc 2.36 on aarch64 still searches tls, aarch64 and atomics nested in each search
    dir: a copy of a library in every such subdirectory, the best removed each time, and
    closure's pick is the loader's next pick each time."""
    root = tmp_path / "root"
    src = Root(str(arm64_root))
    loader = Loader(src)
    # The program with the fewest objects among those loading a library besides libc:
    # it and everything it loads copied into a small root of its own.
    loads = [loader.load(path) for path in elf_programs(arm64_root)]
    loads = [r for r in loads if r.interp and not any(e.path is None for e in r.edges)
             and any(o.rule not in ("target", "interp") and "libc.so.6" not in o.names for o in r.objects)]
    assert loads, "no program in the arm64 root loads a library besides libc"
    result = min(loads, key=lambda r: (len(r.objects), r.main.real))
    prog = result.main.real
    lib = next(o for o in result.objects if o.rule not in ("target", "interp") and "libc.so.6" not in o.names)
    for spelled in [AARCH64_LD] + [o.spelled for o in result.objects]:
        copy_into(src, root, spelled)
    plat = Loader(Root(str(root))).platform(lib.info)
    libdir = root / "usr/lib/aarch64-linux-gnu"
    subs = list(plat.subdirs) + [""]
    name = next(iter(lib.names))
    for sub in subs:
        (libdir / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(src.host(lib.real), libdir / sub / name)
    others = {Root(str(root)).resolve(o.spelled).path for o in result.objects if o is not lib and o.rule != "target"}
    picks = []
    for _ in subs:
        want, _missing = parse_list(root, qemu_list(root, "--list", prog).stdout)
        got = {o.real for o in Loader(Root(str(root))).load(prog).objects[1:]}
        assert got == want, f"after removing {picks}"
        pick = next(p for p in want - others)
        picks.append(pick)
        os.unlink(root / pick.lstrip("/"))
    assert picks[0] == f"/usr/lib/aarch64-linux-gnu/{subs[0]}/{name}" and len(set(picks)) == len(subs)


def test_arm64_ld_so_cache_entries_and_flags(arm64_root, tmp_path):
    """The cache the root's own ldconfig writes (run under qemu in a sandbox) is read with
    aarch64's flags: every entry ldconfig -p lists, and none for an x86-64 lookup."""
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap")
    out = tmp_path / "out"
    out.mkdir()
    sandbox = ["bwrap", "--ro-bind", str(arm64_root), "/", "--tmpfs", "/tmp", "--bind", str(out), "/tmp/out",
               "--ro-bind", qemu_aarch64(), "/tmp/qemu", "--", "/tmp/qemu"]
    subprocess.run(sandbox + ["/sbin/ldconfig", "-C", "/tmp/out/ld.so.cache"], capture_output=True, check=True)
    listed = subprocess.run(sandbox + ["/sbin/ldconfig", "-p", "-C", "/tmp/out/ld.so.cache"],
                            capture_output=True, text=True, check=True).stdout
    want = set(re.findall(r"^\s+(\S+) \(libc6,AArch64\) => (\S+)$", listed, re.M))
    count = int(re.match(r"(\d+) libs found", listed).group(1))
    assert len(want) == count > 50, listed[:300]
    entries = parse_cache((out / "ld.so.cache").read_bytes())
    assert {(e.name, e.path) for e in entries} == want
    fake = tmp_path / "root"
    (fake / "etc").mkdir(parents=True)
    shutil.copy(out / "ld.so.cache", fake / "etc/ld.so.cache")
    cache = LdCache(Root(str(fake)))
    for name in sorted({n for n, _ in want}):
        assert set(cache.lookup(name, 64, 183)) == {p for n, p in want if n == name}
        assert cache.lookup(name, 64, 62) == (), "an x86-64 object takes no aarch64 entry"
    assert cache.conf_dirs() == (), "a cache: ld.so.conf is not read"
    assert LdCache(Root(str(arm64_root))).conf_dirs()[:3] == (
        "/usr/local/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"), \
        "the --foreign root has no cache: its ld.so.conf and includes"


def test_arm64_curl_analysis_is_all_arm64_and_all_from_the_root(arm64_root):
    """`closure analyze --root` of curl: every file comes from the root, and every ELF
    object among them is aarch64 (nothing of the amd64 host slipped in)."""
    p = closure("analyze", "/usr/bin/curl", "--root", arm64_root, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    r, elf = Root(str(arm64_root)), 0
    for e in doc["entries"]:
        if e["type"] != "file" or "content" in e:
            continue
        host = os.path.realpath(r.host(r.resolve(e.get("source", e["path"])).path))
        assert host.startswith(str(arm64_root) + "/"), e
        with open(host, "rb") as f:
            head = f.read(20)
        if head[:4] == b"\x7fELF":
            elf += 1
            assert elf_platform(head).architecture == "arm64", e["path"]
    assert not doc["missing"] and elf > 30
    MEASURED.append(f"arm64 curl analysis: {elf} ELF objects, all aarch64, all from the root")


def test_arm64_curl_image_runs_under_qemu(arm64_root, tmp_path):
    """`closure build --root` of the arm64 root's curl: an arm64 image (from the ELF
    machine), valid, whose `curl --version` verify runs under qemu and says how."""
    out = tmp_path / "curl-arm64.tar"
    ca = make_ca(tmp_path / "ca")
    t0 = time.monotonic()
    p = closure("build", "/usr/bin/curl", "--root", arm64_root, "--ca-cert", ca.ca_cert, "-o", out)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert "ca-certificates.crt not found" not in p.stderr
    validate(str(out))
    cfg = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{out}"],
                                    capture_output=True, text=True, check=True).stdout) \
        if shutil.which("skopeo") else None
    if cfg is not None:
        assert (cfg["architecture"], cfg.get("variant")) == ("arm64", "v8")
    MEASURED.append(f"arm64 curl image (closure build --root): {took:.2f} s, "
                    f"{out.stat().st_size / 1e6:.1f} MB archive")
    qemu_aarch64()
    v = closure("verify", out, "--json", "--", "curl", "--version")
    assert v.returncode == 0, v.stderr
    doc = json.loads(v.stdout)
    assert "aarch64-unknown-linux-gnu" in doc["stdout"] and doc["stdout"].startswith("curl ")
    if binfmt_handler("arm64"):
        assert doc["runtime"] == "podman" and doc["emulator"].startswith("binfmt_misc handler ")
    else:
        assert doc["runtime"] == "bwrap" and doc["emulator"] == shutil.which("qemu-aarch64-static")
    MEASURED.append(f"arm64 curl image verify: {doc['runtime']}, emulated by {doc['emulator']}")
    # HTTPS from the emulated curl: its OpenSSL, config and the trust store the build wrote.
    with https_server(ca) as port:
        v = closure("verify", out, "--network", "host", "--", "curl", "-sS", f"https://localhost:{port}/")
    assert v.returncode == 0 and v.stdout.encode() == BODY, v.stderr


def test_a_foreign_rootfs_dir_runs_under_qemu_by_its_commands_machine(arm64_root, tmp_path):
    """A rootfs directory has no config: the ELF machine of the command decides."""
    qemu_aarch64()
    fs = tmp_path / "fs"
    p = closure("build", "/usr/bin/ls", "--root", arm64_root, "--format", "rootfs", "-o", fs)
    assert p.returncode == 0, p.stderr
    v = closure("verify", fs, "--runtime", "bwrap", "--json", "--", "ls", "/usr/bin")
    assert v.returncode == 0, v.stderr
    doc = json.loads(v.stdout)
    assert doc["stdout"].split() == ["ls"] and doc["emulator"] == shutil.which("qemu-aarch64-static")


def test_verify_of_a_foreign_image_without_qemu_says_what_to_install(arm64_root, tmp_path):
    out = tmp_path / "true.tar"
    assert closure("build", "/usr/bin/true", "--root", arm64_root, "--no-recipes", "-o", out).returncode == 0
    bin_dir = tmp_path / "bin"   # a PATH with bubblewrap and no qemu
    bin_dir.mkdir()
    if shutil.which("bwrap"):
        (bin_dir / "bwrap").symlink_to(shutil.which("bwrap"))
    env = {**os.environ, "PATH": str(bin_dir)}
    v = closure("verify", out, "--runtime", "bwrap", "--", "true", env=env)
    assert v.returncode == 2
    assert v.stderr.strip().splitlines() == [
        f"closure: error: the image is linux/arm64 and this machine linux/{HOST}: running it "
        "needs qemu-aarch64-static (Debian package qemu-user-static)"], v.stderr
    if binfmt_handler("arm64") is None:
        v = closure("verify", out, "--runtime", "podman", "--", "true", env=env)
        assert v.returncode == 2 and "binfmt_misc" in v.stderr and len(v.stderr.strip().splitlines()) == 1


# -- trixie (glibc 2.41) from this host ---------------------------------------------------------

def chroot(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chroot", str(root), *args], capture_output=True, text=True, timeout=120)


def test_trixie_analysis_takes_nothing_from_the_host(trixie_root):
    """Every ELF in trixie's /usr/bin collected with --root: every source lies in the root
    and is the root's file (its size), the libc is trixie's 2.41, not the host's."""
    programs = elf_programs(trixie_root)
    c = collect(programs, Options(root=Root(str(trixie_root))))
    r = Root(str(trixie_root))
    sources = 0
    for e in c.sorted_entries():
        if e.source is None:
            continue
        sources += 1
        host = r.host(e.source)
        assert os.path.realpath(host).startswith(str(trixie_root) + "/"), e.source
        st = os.lstat(host)
        if e.type == "file":
            assert st.st_size == e.size, e.path
        elif e.type == "symlink":
            assert os.readlink(host) == e.target, e.path
    assert sources > len(programs)
    libc = r.resolve("/lib/x86_64-linux-gnu/libc.so.6").path
    assert b"release version 2.41" in r.read_bytes(libc)
    assert any(e.source == libc for e in c.sorted_entries())
    MEASURED.append(f"trixie root: {len(programs)} programs, {sources} sources, all under the root")


def test_trixie_analysis_equals_its_loader(trixie_root):
    """0 differences from trixie's own ld.so --list (in a chroot) over its /usr/bin."""
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")

    def reference(path):
        p = chroot(trixie_root, "/lib64/ld-linux-x86-64.so.2", "--list", path)
        if p.returncode != 0 or re.search("not a dynamic|statically linked", p.stdout + p.stderr):
            return None
        return parse_list(trixie_root, p.stdout)

    diffs, compared = parity(trixie_root, reference, elf_programs(trixie_root))
    MEASURED.append(f"trixie root /usr/bin vs its ld.so --list: {compared} programs compared, "
                    f"{len(diffs)} differences")
    assert compared > 50 and not diffs, diffs[:3]


def test_trixie_cache_and_hwcaps_read_as_its_glibc_does(trixie_root):
    """glibc 2.41: the ld.so.cache its ldconfig wrote is read entry for entry (ldconfig -p);
    the glibc-hwcaps levels are the ones its ld.so searches on this CPU; the legacy
    subdirectories (tls, x86_64, haswell), gone since 2.37, are not searched."""
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    listed = chroot(trixie_root, "/sbin/ldconfig", "-p").stdout
    want = set(re.findall(r"^\s+(\S+) \([^)]*\) => (\S+)$", listed, re.M))
    entries = parse_cache((trixie_root / "etc/ld.so.cache").read_bytes())
    assert len(want) > 50 and {(e.name, e.path) for e in entries} == want
    sections = help_sections(chroot(trixie_root, "/lib64/ld-linux-x86-64.so.2", "--help").stdout)
    searched = [ln.split()[0] for ln in sections.get("Subdirectories of glibc-hwcaps directories, in priority order", ())
                if "searched" in ln]
    assert not any(t.startswith("Legacy HWCAP") for t in sections), "2.41 has no legacy hwcaps"
    loader = Loader(Root(str(trixie_root)))
    plat = loader.platform(loader.elf(Root(str(trixie_root)).resolve("/usr/bin/bash").path))
    assert plat.hwcaps == tuple(searched)
    assert plat.subdirs == tuple(f"glibc-hwcaps/{h}" for h in searched)


def test_trixie_glibc_hwcaps_cache_entries_in_its_loaders_order(trixie_root, tmp_path):
    """A small root of trixie's loader, libc, static ldconfig and one program: a copy of
    the program's library in every glibc-hwcaps level this CPU has, the cache written by
    trixie's ldconfig (its glibc-hwcaps extension) in a chroot, and closure's pick equals
    trixie's ld.so's each time the best level is removed and the cache rewritten."""
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    src = Root(str(trixie_root))
    loader = Loader(src)
    loads = [loader.load(p) for p in elf_programs(trixie_root)]
    loads = [r for r in loads if r.interp and not any(e.path is None for e in r.edges)
             and any(o.rule not in ("target", "interp") and "libc.so.6" not in o.names for o in r.objects)]
    result = min(loads, key=lambda r: (len(r.objects), r.main.real))
    lib = next(o for o in result.objects if o.rule not in ("target", "interp") and "libc.so.6" not in o.names)
    root = tmp_path / "root"
    for spelled in ["/lib64/ld-linux-x86-64.so.2", "/sbin/ldconfig"] + [o.spelled for o in result.objects]:
        copy_into(src, root, spelled)
    (root / "etc").mkdir(exist_ok=True)
    plat = Loader(Root(str(root))).platform(lib.info)
    if not plat.hwcaps:
        pytest.skip("this CPU has no glibc-hwcaps level above the baseline")
    name = next(iter(lib.names))
    libdir = root / "usr/lib/x86_64-linux-gnu"
    for level in plat.hwcaps:
        (libdir / "glibc-hwcaps" / level).mkdir(parents=True)
        shutil.copy(src.host(lib.real), libdir / "glibc-hwcaps" / level / name)
    picks = []
    for level in list(plat.hwcaps) + [None]:
        assert chroot(root, "/sbin/ldconfig").returncode == 0
        entries = parse_cache((root / "etc/ld.so.cache").read_bytes())
        assert {e.hwcap_subdir for e in entries if e.name == name} == set(plat.hwcaps[len(picks):]) | {None}
        p = chroot(root, "/lib64/ld-linux-x86-64.so.2", "--list", result.main.real)
        want, _ = parse_list(root, p.stdout)
        r = Loader(Root(str(root))).load(result.main.real)
        assert {o.real for o in r.objects[1:]} == want, f"after removing {picks}"
        edge = next(e for e in r.edges if e.name == name)
        assert edge.rule == "ld.so.cache"
        picks.append(edge.path)
        if level is not None:
            assert edge.path == f"/usr/lib/x86_64-linux-gnu/glibc-hwcaps/{level}/{name}"
            shutil.rmtree(libdir / "glibc-hwcaps" / level)
    assert len(set(picks)) == len(plat.hwcaps) + 1

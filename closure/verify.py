"""verify: run a command inside a built image, in a real OCI runtime.

podman first: the image is pulled from its OCI layout / archive into the local store, run
by image ID, and removed again (only what verify added). The podman flags that work on
this machine are found by trying the plain run, then the known workarounds for hosts where
rlimits or cgroups cannot be set (the first set that gets past the runtime wins and is
cached per podman version); CLOSURE_PODMAN_FLAGS fixes them instead. Without podman, the
image is unpacked and run in closure's own sandbox (closure.sandbox; `--runtime bwrap`, its
old name) with the config's Env, WorkingDir and User.

An image whose architecture (its config's, or a rootfs command's ELF machine) is not the
host's runs under qemu-user: in podman when the kernel has a binfmt_misc handler for it
(registered with the F flag, so it works inside the container's root), else in the sandbox
with the static emulator (qemu-aarch64-static...) bound in and the command run through it.
The result says which (`emulator`).

Returns a VerifyResult when the command exits 0; raises JobFailed when it (or loading the
image) fails, NoRuntime when nothing here can run containers.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import BadInput, ClosureError, JobFailed, NoRuntime
from .qemu import Foreign, binfmt_handler
from .root import Root

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "podman", "bwrap")
NETWORKS = ("none", "host")
FLAGS_ENV = "CLOSURE_PODMAN_FLAGS"
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# Tried in order until one gets past the runtime: plain; hosts that refuse rlimits;
# hosts where crun/systemd cgroups fail.
CANDIDATE_FLAGS: tuple[tuple[str, ...], ...] = (
    (),
    ULIMITS,
    ("--runtime", "runc", "--cgroup-manager=cgroupfs") + ULIMITS,
)
# podman's own failure codes (125 podman, 126 cannot invoke, 127 not found)
_PODMAN_CODES = (125, 126, 127)
_RUNTIME_TROUBLE = re.compile(r"rlimit|cgroup|crun|systemd|OCI runtime .*not found|OCI permission denied", re.I)
_COMMAND_TROUBLE = re.compile(r"executable file not found|no such file or directory|exec format error", re.I)
_flag_cache: dict[str, tuple[str, ...]] = {}
_IMAGE_MARKERS = ("index.json", "oci-layout", "manifest.json", "repositories")
_TRANSPORTS = {"oci": "oci", "oci-archive": "oci-archive", "docker-archive": "docker-archive",
               "docker-dir": "dir"}


@dataclass(frozen=True)
class VerifyResult:
    runtime: str                 # "podman" or "bwrap"
    argv: tuple[str, ...]        # the runtime command line that ran (sandbox: then "--" and the command)
    returncode: int
    stdout: str
    stderr: str
    emulator: str | None = None  # a foreign image: "binfmt_misc handler qemu-aarch64", or qemu's path

    @property
    def how(self) -> str:
        """What ran it, for a person: "bwrap", "podman, binfmt_misc qemu-aarch64"..."""
        return f"{self.runtime}, emulated by {self.emulator}" if self.emulator else self.runtime


def verify(image_path: str, cmd: Sequence[str] | str | None = None, *, runtime: str = "auto",
           podman_flags: Sequence[str] = (), network: str = "none", capture: bool = True,
           timeout: float | None = None) -> VerifyResult:
    """Run cmd (argv list or shell-style string; None = the image's Entrypoint+Cmd)."""
    from .spec import split_argv
    if runtime not in RUNTIMES:
        raise BadInput(f"unknown runtime {runtime!r} (choose from {', '.join(RUNTIMES)})")
    if network not in NETWORKS:
        raise BadInput(f"network must be {' or '.join(NETWORKS)}, got {network!r}")
    argv = tuple(split_argv(cmd, "command") if isinstance(cmd, str) else cmd or ())
    if runtime != "bwrap":
        _env_flags()   # a malformed CLOSURE_PODMAN_FLAGS fails before any work
    image_path = os.path.abspath(image_path)
    rootfs = os.path.isdir(image_path) and not any(
        os.path.exists(os.path.join(image_path, name)) for name in _IMAGE_MARKERS)
    if rootfs and not argv:
        raise BadInput(f"{image_path} is a rootfs directory (no image config): give the command to run")
    with contextlib.ExitStack() as stack:
        image = None    # None: a rootfs directory
        if not rootfs:
            from .image.read import open_image
            image = stack.enter_context(open_image(image_path))   # BadInput, early, for no image
            _vet(image)
        foreign = _foreign(image, image_path, argv)
        handler = binfmt_handler(foreign.arch) if foreign else None
        reasons = []
        if runtime in ("auto", "podman"):
            try:
                if foreign and handler is None:
                    raise NoRuntime(f"podman runs a linux/{foreign.arch} image only when binfmt_misc has "
                                    f"a qemu handler for it (with the F flag); this machine has none")
                result = _podman(image_path, image, argv, tuple(podman_flags), network, capture, timeout)
                return dataclasses.replace(result, emulator=f"binfmt_misc handler {handler}") if handler else result
            except NoRuntime as e:
                if runtime == "podman":
                    raise
                reasons.append(str(e))
        try:
            qemu = foreign.emulator() if foreign else None
            return _bwrap(image_path, image, argv, network, capture, timeout, qemu)
        except NoRuntime as e:
            reasons.append(str(e))
            raise NoRuntime("; ".join(reasons)) from None


def _foreign(image, image_path: str, argv: tuple[str, ...]) -> Foreign | None:
    """The image's architecture when it is not this machine's: the config's for an image;
    for a rootfs dir, the ELF machine of the command it is asked to run."""
    from .image.config import host_platform
    host = host_platform().architecture
    if image is not None:
        arch = image.config.get("architecture")
        arch = arch if isinstance(arch, str) and arch else host
    else:
        arch = _command_arch(image_path, argv) or host
    return Foreign(arch, host) if arch != host else None


def _command_arch(rootfs: str, argv: tuple[str, ...]) -> str | None:
    from .image.config import elf_platform
    root = Root(rootfs)
    path = _find_command(root, argv[0], None) if argv else None
    if path is None:
        return None
    try:
        with root.open(root.resolve(path).path) as f:
            return elf_platform(f.read(20)).architecture
    except (ClosureError, OSError):
        return None


def _find_command(root: Root, name: str, env: list | None) -> str | None:
    """The image path of the program `name` names, looked up on the image's PATH inside
    the root (qemu-user takes a path, it does not search PATH itself)."""
    from .model import DEFAULT_PATH
    if "/" in name:
        return name if name.startswith("/") else None
    path = next((e[5:] for e in env or [] if isinstance(e, str) and e.startswith("PATH=")), DEFAULT_PATH)
    for d in path.split(":"):
        candidate = f"{d.rstrip('/')}/{name}" if d.startswith("/") else None
        if candidate and root.is_file(candidate):
            return candidate
    return None


def _vet(image) -> None:
    """Refuse, before any runtime sees it, an image that slim would refuse (its layers read
    by the same rules, in memory), or one with a FIFO or device outside /dev: the loader or
    the program opening it (a FIFO at /etc/ld.so.cache) would block, and the container with it."""
    from .audit.imagefs import ImageFS
    fs = ImageFS.read(image)
    for path in sorted(fs.nodes):
        if fs.nodes[path].type == "other" and not path.startswith("/dev/"):
            raise BadInput(f"{image.path}: {path} is not a regular file (a FIFO or device "
                           f"node outside /dev): a program opening it would block")


def _run(argv: Sequence[str], capture: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, text=True, errors="replace",
                              capture_output=capture, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise JobFailed(f"timed out after {timeout:g} s: {shlex.join(argv)}") from None


def _failed(message: str, result: VerifyResult) -> JobFailed:
    """JobFailed carrying the run, so a caller can still show the command's output."""
    err = JobFailed(message)
    err.result = result
    return err


def _tail(text: str | None) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# -- podman ------------------------------------------------------------------------------

def _names(podman: str, image_id: str) -> set[str] | None:
    """The names on an image in the local store, None when it is not there."""
    r = _run([podman, "image", "inspect", "--format", "{{json .RepoTags}}", image_id])
    if r.returncode != 0:
        return None
    try:
        return set(json.loads(r.stdout.strip() or "[]") or [])
    except ValueError:
        return set()


def _cache_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "closure", "podman-run-flags.json")


def _cached_flags(version: str) -> tuple[str, ...] | None:
    if version in _flag_cache:
        return _flag_cache[version]
    try:
        with open(_cache_file()) as f:
            doc = json.load(f)
        if doc.get("podman") == version and isinstance(doc.get("flags"), list):
            return tuple(doc["flags"])
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _binary_stamp(podman: str | None) -> str:
    """Which podman binary this is, without running it: path, size and mtime."""
    try:
        real = os.path.realpath(podman or "")
        st = os.stat(real)
    except (OSError, ValueError):
        return ""
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _remember_flags(version: str, flags: tuple[str, ...]) -> None:
    _flag_cache[version] = flags
    path = _cache_file()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        doc = {"podman": version, "binary": _binary_stamp(shutil.which("podman")), "flags": list(flags)}
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
    except OSError as e:   # a cache we cannot write only costs time next run
        log.debug("cannot cache podman flags in %s: %s", path, e)


def _env_flags() -> tuple[str, ...] | None:
    if FLAGS_ENV not in os.environ:
        return None
    from .spec import split_argv
    return tuple(split_argv(os.environ[FLAGS_ENV], FLAGS_ENV))


def _podman_version(podman: str) -> str:
    version_run = _run([podman, "--version"])
    if version_run.returncode != 0:
        raise NoRuntime(f"podman does not work: {_tail(version_run.stderr)}")
    return version_run.stdout.strip()


def working_podman_flags() -> tuple[str, ...] | None:
    """The `podman run` flags verify uses here: CLOSURE_PODMAN_FLAGS, else the set it found
    to work with the installed podman; None when it has not run yet (or podman is missing)."""
    flags = _env_flags()
    if flags is not None:
        return flags
    podman = shutil.which("podman")
    if podman is None:
        return None
    # The binary verify recorded: its flags, with no `podman --version` to pay (build's
    # summary prints this line on every run).
    try:
        with open(_cache_file()) as f:
            doc = json.load(f)
        if doc.get("binary") and doc["binary"] == _binary_stamp(podman) and isinstance(doc.get("flags"), list):
            return tuple(doc["flags"])
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return _cached_flags(_podman_version(podman))
    except NoRuntime:
        return None


def runtime_trouble(returncode: int, stderr: str) -> bool:
    """True when podman failed before the command ran, for reasons of the host."""
    return (returncode in _PODMAN_CODES and not _COMMAND_TROUBLE.search(stderr or "")
            and bool(_RUNTIME_TROUBLE.search(stderr or "")))


def _podman(image_path: str, image, argv: tuple[str, ...], extra: tuple[str, ...],
            network: str, capture: bool, timeout: float | None) -> VerifyResult:
    podman = shutil.which("podman")
    if podman is None:
        raise NoRuntime("podman is not installed")
    version = _podman_version(podman)
    if image is None:
        return _podman_run(podman, version, ["--rootfs", image_path, *argv], argv, extra, network,
                           capture, timeout)

    ref = f"{_TRANSPORTS[image.format]}:{image_path}"
    image_id = image.config_digest.split(":", 1)[1]
    names_before = _names(podman, image_id)
    try:
        pulled = _run([podman, "pull", "-q", ref], timeout=timeout)
        if pulled.returncode != 0:
            raise JobFailed(f"podman could not load {image_path}: {_tail(pulled.stderr)}")
        run_tail = ["--entrypoint", json.dumps(list(argv))] if argv else []
        return _podman_run(podman, version, run_tail + [image_id], argv, extra, network, capture, timeout)
    finally:
        _podman_cleanup(podman, image_id, names_before)


def _podman_run(podman: str, version: str, run_tail: list[str], argv: tuple[str, ...],
                extra: tuple[str, ...], network: str, capture: bool,
                timeout: float | None) -> VerifyResult:
    """podman run with the first flag set that gets past the runtime on this host."""
    fixed = _env_flags()
    if fixed is not None:
        candidates: tuple[tuple[str, ...], ...] = (fixed,)
    else:
        cached = _cached_flags(version)
        candidates = ((cached,) if cached is not None else ()) + tuple(
            f for f in CANDIDATE_FLAGS if f != cached)
    last = None
    for flags in candidates:
        cmdline = [podman, "run", "--rm", f"--network={network}", *flags, *extra, *run_tail]
        last = _run(cmdline, capture, timeout)
        if capture and runtime_trouble(last.returncode, last.stderr):
            log.info("podman flags %s failed here: %s", flags or "(none)", _tail(last.stderr))
            continue
        if fixed is None and (last.returncode not in _PODMAN_CODES or not capture):
            _remember_flags(version, flags)
        result = VerifyResult("podman", tuple(cmdline), last.returncode, last.stdout or "", last.stderr or "")
        if last.returncode != 0:
            raise _failed(f"command failed in podman (exit {last.returncode}): "
                          f"{shlex.join(argv) or 'the image entrypoint'}: {_tail(last.stderr)}", result)
        return result
    raise NoRuntime(f"podman cannot start containers here: {_tail(last.stderr if last else '')}")


def _podman_cleanup(podman: str, image_id: str, names_before: set[str] | None) -> None:
    """Remove what verify added to the store: the image, or only the names it added."""
    if names_before is None:
        _run([podman, "rmi", "-f", image_id])
        return
    for name in sorted((_names(podman, image_id) or set()) - names_before):
        _run([podman, "untag", image_id, name])


# -- bubblewrap --------------------------------------------------------------------------

def _bwrap(image_path: str, image, argv: tuple[str, ...], network: str, capture: bool,
           timeout: float | None, qemu: str | None = None) -> VerifyResult:
    """The fallback runtime: closure's own sandbox (closure.sandbox), which looks like a
    container to the command (private writable overlay, the image's User as real ids, its
    Env and WorkingDir, a pid namespace that dies with it). Named bwrap for history."""
    from .sandbox import Sandbox, check_usable, home_of, lookup_user, prepared, setup_failure
    try:
        check_usable()
    except NoRuntime as e:
        raise NoRuntime(f"the sandbox cannot run here: {e}") from None
    with contextlib.ExitStack() as stack:
        if image is None:
            rootfs, config = image_path, {}
        else:
            from .image.extract import unpacked
            rootfs, _ = stack.enter_context(unpacked(image))
            from .image.config import check_run_config
            config = check_run_config(image.config.get("config") or {}, image_path)
        command = argv or tuple((config.get("Entrypoint") or []) + (config.get("Cmd") or []))
        if not command:
            raise BadInput(f"{image_path}: no command given and the image has no Entrypoint or Cmd")
        root = Root(rootfs)
        try:
            user = lookup_user(root, config.get("User"))
        except BadInput as e:
            raise JobFailed(f"{e}") from None
        env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
        env.setdefault("HOME", home_of(root, user.uid) or "/")
        binds: tuple[tuple[str, str], ...] = ()
        if qemu is not None:
            command, binds = _under_qemu(rootfs, command, config.get("Env"), qemu)
        sb = Sandbox(rootfs, tuple(command), env=env, cwd=config.get("WorkingDir") or "/", user=user,
                     share_net=network == "host", binds=binds)
        with prepared(sb) as (line, _ctl):
            r = _run(line, capture, timeout)
        err = r.stderr or ""
        why = setup_failure(r.returncode, err)
        if why is not None and "cannot run" not in why:
            raise NoRuntime(f"the sandbox cannot run here: {why}")
        result = VerifyResult("bwrap", (*line, "--", *command), r.returncode, r.stdout or "", err, qemu)
        if r.returncode != 0:
            raise _failed(f"command failed in the sandbox (exit {r.returncode}): "
                          f"{shlex.join(command)}: {_tail(err)}", result)
        return result


QEMU_IN_SANDBOX = "/tmp/.closure-qemu"   # on the sandbox's own /tmp tmpfs: the root is not touched


def _under_qemu(rootfs: str, command, env, qemu: str) -> tuple[list[str], tuple[tuple[str, str], ...]]:
    """(the command run by the emulator, the emulator's bind): qemu runs the program (by its
    path in the root, found on the image's PATH) with argv[0] kept as given."""
    inside = f"{QEMU_IN_SANDBOX}/{os.path.basename(qemu)}"
    program = _find_command(Root(rootfs), command[0], env)
    if program is None:
        raise JobFailed(f"{command[0]}: not found in the image (PATH of the image config)")
    return [inside, "-0", command[0], program, *command[1:]], ((qemu, inside),)

"""Probes in the candidate image (`closure build --probe CMD --probe-in-image`).

Each round writes the closure so far as a rootfs, runs the probe inside it in the sandbox
(probe_sandbox: a private writable overlay, tmpfs /tmp, fresh /proc and /dev, no network
unless asked) under the host's strace with failed calls recorded, and reads the failures:
a path the probe failed to open, exec or stat (ENOENT) that exists in the source root is
what the image lacks, so it joins the closure (reason `traced`). A failed exec of a
program that is there means its `#!` interpreter or ELF loader is not, so it goes
through add_target. Rounds repeat until the probe passes and nothing new is missing,
at most Options.probe_rounds; the probe must pass at the end or the build fails.

A round whose run fails in the image also traces the same run in the full source root (the
hybrid: trace in the fat root, verify in the slim one) and adds what it touched, once: an
interpreter that lists directories to import, or falls back silently on a non-ENOENT
error, converges in two or three rounds instead of one ENOENT per round.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

from ..errors import JobFailed
from ..image.rootfs import write_rootfs
from ..image.tarlayer import plan_layer
from ..model import Reason
from ..root import Root
from .probe import PROBE_TIMEOUT, add_traced, include_secrets, probe_env, stderr_tail
from .probe_sandbox import HELPER_DIR, helper_shell, trace_in_tree
from .run import TraceResult
from .select import missing_paths, resolves


@dataclass
class InImageReport:
    probe: str
    rounds: int = 0
    passed: bool = False
    added: list[list[str]] = field(default_factory=list)   # per round, sorted
    secrets: list[str] = field(default_factory=list)

    def summary(self) -> str:
        n = sum(len(a) for a in self.added)
        state = "passed" if self.passed else "failed"
        head = f"probe {self.probe!r} in the image: {state} in round {self.rounds}"
        if not n:
            return head + ", nothing was missing"
        shown = [p for a in self.added for p in a]
        more = f" and {len(shown) - 8} more" if len(shown) > 8 else ""
        return f"{head}; added {n} path(s) the image lacked: {', '.join(shown[:8])}{more}"


def probe_in_image(collector, probe: str, rounds: int | None = None) -> InImageReport:
    """Run the probe in the candidate image until it passes with nothing missing."""
    opts = collector.opts
    rounds = rounds or opts.probe_rounds
    report = InImageReport(probe)
    reason = Reason("traced", probe=probe)
    with helper_shell() as helper, tempfile.TemporaryDirectory(prefix="closure-inimage-") as work:
        result = None
        hybrid_done = False
        for n in range(1, rounds + 1):
            report.rounds = n
            collector.walk_pending()
            rootfs = os.path.join(work, f"rootfs{n}")
            os.mkdir(rootfs)
            write_rootfs(plan_layer(collector.closure, collector.root, excludes=opts.excludes),
                         collector.root, rootfs, mtime=0)
            result = trace_in_tree(rootfs, probe, helper, env=probe_env(collector, home="/"),
                                   network=opts.probe_network, timeout=PROBE_TIMEOUT,
                                   failed=True, keep_shell=True)
            missing, secrets = lacking(result, collector.root, Root(rootfs), include_secrets(opts))
            report.secrets = sorted(set(report.secrets) | set(secrets))
            before = collector.changes
            added = []
            for path, kind in missing:
                mark = collector.changes
                add_traced(collector, path, kind, reason)
                if collector.changes != mark:
                    added.append(path)
            if not result.ok and not hybrid_done:
                # A failed run in the slim root: trace the same run in the full source
                # root and take what it touched (imports that list directories, fallbacks
                # that never say ENOENT), instead of waiting for one ENOENT per round.
                hybrid_done = True
                for path in source_run(collector, probe, helper, reason):
                    if path not in added:
                        added.append(path)
            collector.walk_pending()
            report.added.append(added)
            shutil.rmtree(rootfs, ignore_errors=True)
            if collector.changes == before:
                report.passed = result.ok
                break
        else:
            report.passed = result.ok
    for s in report.secrets:
        collector.closure.warnings.append(
            f"probe {probe!r}: looked for {s}, a secret: not taken (include it explicitly to take it)")
    if not report.passed:
        raise JobFailed(f"probe {probe!r} {result.describe_status()} in the image after "
                        f"{report.rounds} round(s){stderr_tail(result)}")
    if report.added and report.added[-1] and report.rounds == rounds:
        collector.closure.warnings.append(
            f"probe {probe!r}: round {rounds} (the last) still added paths; the image was not "
            f"re-checked with them (raise probe-rounds)")
    collector.closure.warnings.append(report.summary())
    return report


def source_run(collector, probe: str, helper: str, reason: Reason) -> list[str]:
    """Trace probe in the sandbox over the source root; add what it touched; return the
    paths that were new to the closure."""
    from .select import traced_paths
    opts = collector.opts
    result = trace_in_tree(collector.root.path, probe, helper, env=probe_env(collector, home="/"),
                           network=opts.probe_network, timeout=PROBE_TIMEOUT)
    kept, _warnings = traced_paths(result.accesses, collector.root, scratch=(HELPER_DIR,),
                                   include_secrets=include_secrets(opts))
    new = []
    for path, kind in kept:
        mark = collector.changes
        add_traced(collector, path, kind, reason)
        if collector.changes != mark:
            new.append(path)
    return new


def lacking(result: TraceResult, source: Root, candidate: Root,
            include: tuple[str, ...] = ()) -> tuple[list[tuple[str, str]], list[str]]:
    """(sorted [(path, kind)] the candidate lacks, secrets the probe looked for).

    kind is "exec" for programs (their interpreter or loader may be what is lacking), else
    "path" (add_path then makes a file, dir or link chain of it, as the source has it)."""
    found, secrets = missing_paths(result.accesses, source, scratch=(HELPER_DIR,), include_secrets=include)
    execs = {a.path for a in result.accesses if a.kind == "exec" and not a.ok}
    out = [(p, "exec" if p in execs else "path") for p in found
           if p in execs or not resolves(candidate, p)]
    return out, secrets

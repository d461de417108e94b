"""Tracing: run a probe under strace (run), read the log (parse), choose what to keep (select)."""
from .parse import Access, parse
from .run import TraceResult, find_strace, run_probe
from .select import missing_paths, traced_paths

__all__ = ["Access", "parse", "TraceResult", "find_strace", "run_probe", "traced_paths",
           "missing_paths"]

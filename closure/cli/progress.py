"""What a long command is doing, on stderr when it is a terminal. A phase shows only once it
has lasted a second, so a quick run stays quiet; nothing shows when stderr is not a terminal
or the command prints --json. rich is imported only when something is shown."""
from __future__ import annotations

import sys
import threading
import time

DELAY = 1.0   # seconds a phase runs before it is shown


class Progress:
    """`step(message)` starts a phase; `bytes(done, total)` says how far it is (a bar with
    sizes and speed). Use as a context manager: the display goes away at the end."""

    def __init__(self, enabled: bool = True, delay: float = DELAY):
        self.enabled = enabled and sys.stderr.isatty()
        self._delay = delay
        self._lock = threading.Lock()
        self._phase = 0            # bumps with every step: a timer of an older phase does nothing
        self._message = ""
        self._started = 0.0
        self._sizes: tuple[int, int] | None = None
        self._timer: threading.Timer | None = None
        self._display = None       # the rich Progress, once shown
        self._task = None
        self._closed = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def step(self, message: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._phase += 1
            self._message, self._sizes = message, None
            self._started = time.monotonic()
            if self._display is not None:
                self._display.remove_task(self._task)
                self._task = self._display.add_task(message, total=None)
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._delay, self._show, (self._phase,))
            self._timer.daemon = True
            self._timer.start()

    def bytes(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._sizes = (done, total)
            if self._display is not None:
                self._display.update(self._task, completed=done, total=total)

    def _show(self, phase: int) -> None:
        with self._lock:
            if self._closed or phase != self._phase or self._display is not None:
                return
            self._display = _rich_display()
            done, total = self._sizes or (0, None)
            self._task = self._display.add_task(self._message, total=total, completed=done)
            for task in self._display.tasks:   # the elapsed time counts from the phase's start
                if task.id == self._task:
                    task.start_time = self._started
            self._display.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._display is not None:
                self._display.stop()


def _rich_display():
    from rich.console import Console
    from rich.progress import (BarColumn, Progress as RichProgress, ProgressColumn, SpinnerColumn,
                               TextColumn, TimeElapsedColumn)
    from rich.text import Text

    class Sizes(ProgressColumn):
        """MB done of the total and the speed, for phases that count bytes."""

        def render(self, task) -> Text:
            if task.total is None:
                return Text("")
            speed = f"  {task.speed / 1e6:.0f} MB/s" if task.speed else ""
            return Text(f"{task.completed / 1e6:.1f}/{task.total / 1e6:.1f} MB{speed}")

    # stdout is not redirected: it may be a pipe while stderr is the terminal.
    return RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), Sizes(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                        redirect_stdout=False)

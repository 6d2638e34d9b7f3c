"""A minimal progress bar on standard error, shown only when standard error is a terminal."""

from __future__ import annotations

import sys
import time


class Bar:
    """``Bar(total, label)``; call :meth:`advance` as work is done and :meth:`close` at the end."""

    def __init__(self, total: int, label: str, *, enabled: bool | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last_draw = 0.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._last_draw > 0.1 or self.done >= self.total):
            self._last_draw = now
            filled = 30 * min(self.done, self.total) // self.total
            sys.stderr.write(
                f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done:,}/{self.total:,}"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()

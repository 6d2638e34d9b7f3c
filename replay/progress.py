"""A progress bar on standard error, for people; silent for pipes, files and ``--quiet``.

Theory of operation
-------------------
Long work (reading a log of millions of commands) reports how many bytes of the log it has
consumed.  :class:`Progress` redraws one line (``\\r``) at most :data:`REDRAW_EVERY_NS` apart,
so calling :meth:`Progress.update` once per batch costs one clock read.  It draws only when
its stream is a terminal: a machine reading standard error never sees control characters.
"""

from __future__ import annotations

import sys
import time
from typing import Self, TextIO

REDRAW_EVERY_NS = 100_000_000
BAR_CELLS = 30


class Progress:
    """One progress line on ``stream`` (standard error by default).

    Parameters
    ----------
    label : str
        What is being done, e.g. ``"audit"``.
    total : int
        Units (bytes) of the whole job; 0 when unknown (only the count is shown).
    enabled : bool
        False (``--quiet``) draws nothing.
    stream : TextIO, optional
        Where to draw; nothing is drawn unless it is a terminal.
    """

    def __init__(
        self, label: str, total: int, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.label, self.total = label, max(total, 0)
        self.active = enabled and _is_terminal(self.stream)
        self._done = 0
        self._next_draw_ns = 0
        self._drawn = False

    def update(self, done: int) -> None:
        """Record that ``done`` units of ``total`` are finished (redraws when due)."""
        self._done = done
        if not self.active:
            return
        now = time.monotonic_ns()
        if now >= self._next_draw_ns:
            self._next_draw_ns = now + REDRAW_EVERY_NS
            self._draw()

    def _draw(self) -> None:
        if self.total:
            done = min(self._done, self.total)
            cells = done * BAR_CELLS // self.total
            percent = done * 100 // self.total
            bar = "#" * cells + "-" * (BAR_CELLS - cells)
            line = f"{self.label} [{bar}] {percent:3d}%"
        else:
            line = f"{self.label} {self._done:,}"
        self.stream.write("\r" + line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the line (the result that follows is printed on a clean line)."""
        if self.active and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.active = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False

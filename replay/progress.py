"""A progress bar on standard error, for people; silent for pipes, files and ``--quiet``.

Theory of operation
-------------------
One thin adapter over ``tqdm``, used by every long job of ours: replay's reads of a log
(progress in bytes consumed, :meth:`Progress.update` with an absolute position) and the
gateway demo's submissions (:meth:`Progress.advance` per command).  tqdm redraws one line at
most ``redraw_every_s`` apart, so calling it once per batch or per request costs a clock read at
most.  It draws only when its stream is a terminal: a machine reading standard error never sees
control characters.  On close the line is blanked, so the result that follows starts clean.
"""

from __future__ import annotations

import sys
from typing import Self, TextIO

from tqdm import tqdm

REDRAW_EVERY_S = 0.1
BAR_FORMAT = "{desc} [{bar:30}] {percentage:3.0f}% {elapsed}<{remaining}"
"""``label [#####-----]  50% 00:03<00:03`` (elapsed<remaining); empty while the total is unknown."""


class _Bar(tqdm):
    # tqdm's monitor thread only tunes ``miniters`` for bars updated rarely; we redraw by time.
    monitor_interval = 0


class Progress:
    """One progress line on ``stream`` (standard error by default).

    Parameters
    ----------
    label : str
        What is being done, e.g. ``"audit"``.
    total : int
        Units of the whole job (bytes, commands); 0 when unknown (the bar stays empty).
        May be set later through :attr:`total`, once known.
    enabled : bool
        False (``--quiet``) draws nothing.
    stream : TextIO, optional
        Where to draw; nothing is drawn unless it is a terminal.
    redraw_every_s : float
        Least time between two redraws.
    """

    def __init__(
        self,
        label: str,
        total: int,
        enabled: bool = True,
        stream: TextIO | None = None,
        redraw_every_s: float = REDRAW_EVERY_S,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.active = enabled and _is_terminal(self.stream)
        self._bar = _Bar(
            total=total if total > 0 else None,
            desc=label,
            file=self.stream,
            disable=not self.active,
            leave=False,
            ascii="-#",
            bar_format=BAR_FORMAT,
            mininterval=redraw_every_s,
            miniters=0,  # redraw by time alone: updates come in bytes, of any size
            dynamic_ncols=False,
        )

    @property
    def total(self) -> int:
        """Units of the whole job; 0 when unknown."""
        return int(self._bar.total or 0)

    @total.setter
    def total(self, total: int) -> None:
        self._bar.total = total if total > 0 else None

    def update(self, done: int) -> None:
        """Record that ``done`` units of ``total`` are finished (redraws when due)."""
        self._bar.update(done - self._bar.n)

    def advance(self, count: int = 1) -> None:
        """Record that ``count`` more units are finished (redraws when due)."""
        self._bar.update(count)

    def close(self) -> None:
        """Blank the line (the result that follows is printed on a clean line)."""
        self._bar.close()
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

"""``diff``: the first sequence number at which two logs, or their outcomes, diverge.

Theory of operation
-------------------
Both logs are replayed side by side, each on its own engine with its own market definition.
Batches need not line up (two writers may have grouped the same commands differently), so
each side keeps a small buffer of the commands and events it has replayed but not yet compared,
and every step compares the seq range both buffers cover: first the command records, byte for
byte, then the recomputed events.  The first command that differs, or the first command whose
events differ, is the divergence; if one log is a prefix of the other, the divergence is the
first seq only the longer one has.

``ignore_time`` compares without the timestamps the sequencer assigned: the same commands
written at other times replay to the same outcomes, which is what a re-run should prove.
"""

from __future__ import annotations

import msgspec
import numpy as np

from engine.core import records as r
from engine.core import schema as s
from replay.datadir import DataDir, LogReader
from replay.progress import Progress
from replay.timeline import batch_applier, engine_class, from_genesis, replay_batches
from replay.typed import RawCommand, decode_command


class DiffResult(msgspec.Struct, frozen=True):
    """Where two logs first differ (``first_seq`` None: identical)."""

    dir_a: str
    dir_b: str
    identical: bool
    compared_through_seq: int
    """Every seq up to this one is identical in both (commands and events)."""
    last_seq_a: int | None
    """Last seq of log A (None when the comparison stopped before its end)."""
    last_seq_b: int | None
    markets_differ: bool
    first_seq: int | None = None
    what: str = ""
    """``"command"``, ``"events"`` or ``"length"`` (one log ends there)."""
    command_a: s.Command | RawCommand | None = None
    command_b: s.Command | RawCommand | None = None
    events_a: list[s.Event] = []
    events_b: list[s.Event] = []


class _Side:
    """One log being replayed, with the commands and events not compared yet."""

    def __init__(self, data: DataDir, progress: Progress | None) -> None:
        self.data = data
        self.reader = LogReader(data, 1, progress)
        engine = engine_class("compiled")(data.market)
        self.batches = replay_batches(from_genesis(self.reader), batch_applier(engine))
        self.commands = np.zeros(0, r.COMMAND_DTYPE)
        self.events = np.zeros((0, r.EVENT_FIELDS), np.int64)
        self.end = 0
        """Last seq replayed."""
        self.done = False

    def fill_past(self, seq: int) -> None:
        """Replay until a seq after ``seq`` is buffered or the log ends."""
        while not self.done and self.end <= seq:
            applied = next(self.batches, None)
            if applied is None:
                self.done = True
                return
            rows = applied.events.view(np.int64).reshape(-1, r.EVENT_FIELDS)
            self.commands = np.concatenate([self.commands, applied.commands])
            self.events = np.concatenate([self.events, rows])
            self.end = int(applied.commands["seq"][-1])

    def take(self, through_seq: int) -> tuple[np.ndarray, np.ndarray]:
        """Remove and return the commands and events of seqs up to ``through_seq``."""
        n = int(np.searchsorted(self.commands["seq"], through_seq, side="right"))
        m = int(np.searchsorted(self.events[:, r.E_SEQ], through_seq, side="right"))
        taken = self.commands[:n], self.events[:m]
        self.commands, self.events = self.commands[n:], self.events[m:]
        return taken


def diff(
    a: DataDir, b: DataDir, ignore_time: bool = False, progress: Progress | None = None
) -> DiffResult:
    """Compare two data directories' logs and their replayed outcomes.

    Parameters
    ----------
    a, b : DataDir
        The two data directories (their market definitions may differ).
    ignore_time : bool
        Ignore the timestamps of commands and events.
    progress : Progress, optional
        Progress over the bytes of the first log.
    """
    side_a, side_b = _Side(a, progress), _Side(b, None)
    compared = 0
    common = (str(a.path), str(b.path))
    markets_differ = a.market_digest != b.market_digest
    while True:
        side_a.fill_past(compared)
        side_b.fill_past(compared)
        through = min(side_a.end, side_b.end)
        if through <= compared:
            break
        (cmd_a, ev_a), (cmd_b, ev_b) = side_a.take(through), side_b.take(through)
        found = _first_difference(cmd_a, ev_a, cmd_b, ev_b, ignore_time)
        if found is not None:
            seq, what = found
            command_a, events_a = _shown(a, cmd_a, ev_a, seq)
            command_b, events_b = _shown(b, cmd_b, ev_b, seq)
            return DiffResult(
                *common,
                False,
                seq - 1,
                None,
                None,
                markets_differ,
                seq,
                what,
                command_a,
                command_b,
                events_a,
                events_b,
            )
        compared = through
    return _ended(common, side_a, side_b, compared, markets_differ)


def _ended(common: tuple, side_a: _Side, side_b: _Side, compared: int, markets_differ: bool):
    if side_a.end == side_b.end:
        return DiffResult(*common, True, compared, side_a.end, side_b.end, markets_differ)
    longer, data = (side_a, side_a.data) if side_a.end > side_b.end else (side_b, side_b.data)
    seq = compared + 1
    commands, events = longer.take(seq)
    command, shown_events = _shown(data, commands, events, seq)
    fields = {"command_a": command, "events_a": shown_events}
    if longer is side_b:
        fields = {"command_b": command, "events_b": shown_events}
    return DiffResult(
        *common,
        False,
        compared,
        side_a.end,
        side_b.end,
        markets_differ,
        seq,
        "length",
        **fields,
    )


def _first_difference(
    cmd_a: np.ndarray, ev_a: np.ndarray, cmd_b: np.ndarray, ev_b: np.ndarray, ignore_time: bool
) -> tuple[int, str] | None:
    """(seq, "command" or "events") of the first difference in one compared range."""
    if ignore_time:
        cmd_a, cmd_b = _without_time(cmd_a), _without_time(cmd_b)
        ev_a, ev_b = ev_a.copy(), ev_b.copy()
        ev_a[:, r.E_TS] = ev_b[:, r.E_TS] = 0
    bytes_a = cmd_a.view(np.uint8).reshape(len(cmd_a), -1)
    bytes_b = cmd_b.view(np.uint8).reshape(len(cmd_b), -1)
    rows = np.flatnonzero((bytes_a != bytes_b).any(axis=1))
    command_seq = int(cmd_a["seq"][rows[0]]) if len(rows) else None
    event_seq = _first_event_difference(ev_a, ev_b)
    if command_seq is not None and (event_seq is None or command_seq <= event_seq):
        return command_seq, "command"
    if event_seq is not None:
        return event_seq, "events"
    return None


def _first_event_difference(ev_a: np.ndarray, ev_b: np.ndarray) -> int | None:
    n = min(len(ev_a), len(ev_b))
    rows = np.flatnonzero((ev_a[:n] != ev_b[:n]).any(axis=1))
    i = int(rows[0]) if len(rows) else n
    if i == len(ev_a) == len(ev_b):
        return None
    seqs = [int(ev[i, r.E_SEQ]) for ev in (ev_a, ev_b) if i < len(ev)]
    return min(seqs)


def _without_time(commands: np.ndarray) -> np.ndarray:
    copy = np.array(commands, copy=True)
    copy["ts_ns"] = 0
    return copy


def _shown(
    data: DataDir, commands: np.ndarray, events: np.ndarray, seq: int
) -> tuple[s.Command | RawCommand | None, list[s.Event]]:
    """The command with ``seq`` and its events, in the typed view."""
    at = np.flatnonzero(commands["seq"] == seq)
    command = decode_command(data.codec, commands[at[0]].tolist()) if len(at) else None
    mine = events[events[:, r.E_SEQ] == seq]
    return command, data.codec.decode_events(mine)

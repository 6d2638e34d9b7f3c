"""Rebuilding engine state at any point of a log's history.

Theory of operation
-------------------
The engine's state after command N is, by definition, the state a fresh engine reaches by
applying commands 1 … N of the log in order.  :func:`replay_batches` does exactly that on the
hot path: every batch's commands go to the engine as the read-only record view the journal
hands out (``np.frombuffer`` over the log's bytes), in one compiled call, and the events come
back as a view of the engine's reusable buffer (``apply_records(copy=False)``) - no Python
object per command or per event.  A :class:`Stop` cuts the last batch at a sequence number or
a timestamp (the batch is applied up to that command: the engine is deterministic command by
command, so where the writer's batches ended does not matter).

Where the replay starts is decided by ``engine.durable.recovery`` - the same code that
recovers an exchange when it opens: from seq 1, or (``--from-snapshot``) from the nearest
snapshot at or before the stop that passes recovery's chain rule (its recorded chain value
equals the log's chain value at its seq, so it belongs to this very log, and its restored
state has the recorded state hash); unusable snapshots are reported and skipped.  Time travel
does not audit the checkpoints (``replay audit`` does, and reports a divergence as a finding).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import numpy as np

from engine.core.interface import Engine
from engine.durable import journal as jr
from engine.durable import recovery as rc
from engine.durable.recovery import Applied, SkippedSnapshot
from replay.datadir import DataDir, LogReader, describe_corruption
from replay.errors import DataError, UsageError
from replay.progress import Progress

ENGINES = ("compiled", "reference")
"""Engines a replay can run on: the compiled one (fast, the default) and the plain-Python
reference of ``docs/MATCHING.md`` (the executable specification; slow)."""


def engine_class(name: str) -> type:
    """The engine class called ``name`` (one of :data:`ENGINES`), imported on first use."""
    if name == "compiled":
        from engine.core.compiled.engine import CompiledEngine

        return CompiledEngine
    if name == "reference":
        from engine.core.reference.engine import ReferenceEngine

        return ReferenceEngine
    raise UsageError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")


def batch_applier(engine: Engine) -> Callable[[np.ndarray], np.ndarray]:
    """``engine.apply_records`` without a copy of the events (they are consumed at once); the
    compiled engine's with the GIL released, so that the log reader's thread runs meanwhile."""
    if hasattr(engine, "append_records"):  # the compiled engine
        return functools.partial(engine.apply_records, copy=False, release_gil=True)
    return functools.partial(engine.apply_records, copy=False)


class Stop(msgspec.Struct, frozen=True):
    """Where a replay ends: after the last command with ``seq <= until_seq`` and
    ``ts_ns <= until_ts_ns`` (None: no bound)."""

    until_seq: int | None = None
    until_ts_ns: int | None = None

    def applies(self, batch: jr.LoggedBatch) -> int:
        """How many leading commands of ``batch`` lie before the stop (0 … count)."""
        count = batch.count
        if self.until_seq is not None and batch.last_seq > self.until_seq:
            count = max(min(count, self.until_seq - batch.first_seq + 1), 0)
        if self.until_ts_ns is not None and batch.ts_last_ns > self.until_ts_ns:
            ts = batch.commands["ts_ns"][:count]
            count = int(np.searchsorted(ts, self.until_ts_ns, side="right"))
        return count


END = Stop()
"""No stop: replay to the end of the log."""


def replay_batches(
    batches: Iterator[jr.LoggedBatch],
    apply: Callable[[np.ndarray], np.ndarray],
    stop: Stop | None = None,
) -> Iterator[Applied]:
    """Apply ``batches`` in order with ``apply`` until ``stop`` (None: the end of the log);
    yield each applied batch."""
    return rc.apply_batches(batches, apply, audit=False, limit=(stop or END).applies)


def from_genesis(reader: LogReader) -> Iterator[jr.LoggedBatch]:
    """The batches of ``reader`` (read from seq 1), refusing a log that does not start at seq
    1: its beginning was removed, and only a snapshot could stand in for it."""
    try:
        batches = rc.from_genesis(iter(reader))
    except jr.LogCorruptError as exc:
        raise DataError(describe_corruption(exc)) from None
    yield from batches


@dataclass
class Rebuilt:
    """An engine rebuilt at a point of history, and how it got there."""

    engine: Any
    last_seq: int = 0
    """Seq of the last command applied (0: none)."""
    last_ts_ns: int = 0
    batches: int = 0
    commands: int = 0
    """Commands applied by this replay (those covered by a snapshot not included)."""
    events: int = 0
    chain_hash: str | None = jr.GENESIS_CHAIN.hex()
    """Log chain value after the last applied batch; None when the stop cut a batch."""
    snapshot_path: str | None = None
    snapshot_seq: int | None = None
    skipped_snapshots: list[SkippedSnapshot] = field(default_factory=list)
    tail: jr.Problem | None = None
    """An unfinished batch at the end of the log that was ignored."""


def rebuild(
    data: DataDir,
    engine: str = "compiled",
    stop: Stop | None = None,
    from_snapshot: bool = False,
    progress: Progress | None = None,
) -> Rebuilt:
    """The engine state after the last command before ``stop``.

    Parameters
    ----------
    data : DataDir
        The data directory.
    engine : str
        One of :data:`ENGINES`.
    stop : Stop, optional
        Where to end (default: the end of the log).
    from_snapshot : bool
        Start from the newest usable snapshot at or before the stop.
    progress : Progress, optional
        Progress over the bytes of log read.

    Raises
    ------
    UsageError
        ``stop.until_seq`` is negative or beyond the end of the log.
    DataError
        A damaged log.
    """
    stop = stop or END
    if stop.until_seq is not None and stop.until_seq < 0:
        raise UsageError(f"seq {stop.until_seq} is negative")
    cls = cast(rc.EngineClass, engine_class(engine))
    start = _starting_point(data, cls, stop, from_snapshot, progress)
    snapshot = start.snapshot
    result = Rebuilt(
        start.engine,
        start.seq,
        start.ts_ns,
        chain_hash=start.chain_hash.hex(),
        snapshot_path=snapshot.path if snapshot is not None else None,
        snapshot_seq=snapshot.last_seq if snapshot is not None else None,
        skipped_snapshots=start.skipped,
    )
    for applied in replay_batches(start.batches, batch_applier(result.engine), stop):
        _account(result, applied)
    reader = start.log
    assert isinstance(reader, LogReader)
    result.tail = reader.tail
    if stop.until_seq is not None and reader.ended and reader.last_seq < stop.until_seq:
        raise UsageError(
            f"seq {stop.until_seq} is beyond the end of the log (last seq {reader.last_seq})"
        )
    return result


def _account(result: Rebuilt, applied: Applied) -> None:
    commands = applied.commands
    result.batches += 1
    result.commands += len(commands)
    result.events += len(applied.events)
    result.last_seq = int(commands["seq"][-1])
    result.last_ts_ns = int(commands["ts_ns"][-1])
    result.chain_hash = applied.batch.chain_after.hex() if applied.complete else None


def _starting_point(
    data: DataDir, cls: rc.EngineClass, stop: Stop, from_snapshot: bool, progress: Progress | None
) -> rc.Start:
    """A fresh engine and the whole log, or a snapshot's engine and the log after it."""
    try:
        return rc.starting_point(
            data.market,
            cls,
            lambda from_seq: LogReader(data, from_seq, progress),
            data.snapshot_dir if from_snapshot else None,
            stop.until_seq,
            stop.until_ts_ns,
        )
    except jr.LogCorruptError as exc:  # the log does not start at seq 1
        raise DataError(describe_corruption(exc)) from None

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

A snapshot (``--from-snapshot``) replaces the replay of the log's beginning: the newest
snapshot at or before the stop whose recorded chain hash equals the log's chain hash at that
seq (so it belongs to this very log) and whose restored state has the recorded state hash is
loaded, and only the log after it is replayed.  Unusable snapshots are reported and skipped.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from engine.core.market import MarketDefinition
from engine.durable import journal as jr
from engine.durable import sequencer as sq
from replay.datadir import DataDir, LogReader
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


def batch_applier(engine: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``engine.apply_records`` without a copy of the events where the engine offers that."""
    if "copy" in inspect.signature(engine.apply_records).parameters:  # the compiled engine
        return functools.partial(engine.apply_records, copy=False)
    return engine.apply_records


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


@dataclass(frozen=True, slots=True)
class Applied:
    """One batch (or the leading part of the last one) applied to the engine.

    ``events`` may be a view of the engine's reusable buffer: valid until the next batch.
    """

    batch: jr.LoggedBatch
    commands: np.ndarray
    events: np.ndarray

    @property
    def complete(self) -> bool:
        """Whether the whole batch was applied (the stop did not cut it)."""
        return len(self.commands) == self.batch.count


def replay_batches(
    batches: Iterator[jr.LoggedBatch],
    apply: Callable[[np.ndarray], np.ndarray],
    stop: Stop | None = None,
) -> Iterator[Applied]:
    """Apply ``batches`` in order with ``apply`` until ``stop`` (None: the end of the log);
    yield each applied batch."""
    stop = stop or END
    for batch in batches:
        count = stop.applies(batch)
        if count == 0:
            return
        commands = batch.commands if count == batch.count else batch.commands[:count]
        yield Applied(batch, commands, apply(commands))
        if count < batch.count:
            return


def from_genesis(reader: LogReader) -> Iterator[jr.LoggedBatch]:
    """The batches of ``reader`` (read from seq 1), refusing a log that does not start at seq
    1: its beginning was removed, and only a snapshot could stand in for it."""
    batches = iter(reader)
    first = next(batches, None)
    if first is None:
        return
    if first.first_seq != 1:
        raise DataError(
            f"damaged log: segment {first.segment}, byte offset {first.offset}, seq "
            f"{first.first_seq}: the log does not start at seq 1"
        )
    yield first
    yield from batches


class SkippedSnapshot(msgspec.Struct, frozen=True):
    """A snapshot that could not be used, and why."""

    path: str
    reason: str


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
    cls = engine_class(engine)
    result, reader, batches = _starting_point(data, cls, stop, from_snapshot, progress)
    apply = batch_applier(result.engine)
    for applied in replay_batches(batches, apply, stop):
        _account(result, applied)
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
    data: DataDir, cls: type, stop: Stop, from_snapshot: bool, progress: Progress | None
) -> tuple[Rebuilt, LogReader, Iterator[jr.LoggedBatch]]:
    """A fresh engine and the whole log, or a snapshot's engine and the log after it."""
    skipped: list[SkippedSnapshot] = []
    if from_snapshot:
        for path in sq.snapshot_paths(data.snapshot_dir):
            try:
                found = _from_snapshot(data, cls, path, stop, progress)
            except (sq.SnapshotError, OSError) as exc:
                skipped.append(SkippedSnapshot(str(path), str(exc)))
                continue
            if found is not None:
                found[0].skipped_snapshots = skipped
                return found
    reader = LogReader(data, 1, progress)
    return Rebuilt(cls(data.market), skipped_snapshots=skipped), reader, from_genesis(reader)


def _from_snapshot(
    data: DataDir, cls: type, path, stop: Stop, progress: Progress | None
) -> tuple[Rebuilt, LogReader, Iterator[jr.LoggedBatch]] | None:
    """Restore ``path`` if it lies before the stop and belongs to this log (else None)."""
    seq = int(path.stem)
    if stop.until_seq is not None and seq > stop.until_seq:
        return None
    info = sq.read_snapshot(path, data.market_digest)
    if stop.until_ts_ns is not None and info.last_ts_ns > stop.until_ts_ns:
        return None
    reader = LogReader(data, max(info.last_seq, 1), progress)
    batches = iter(reader)
    if info.last_seq > 0:
        at = next(batches, None)  # the batch that ends at the snapshot
        if at is None or at.last_seq != info.last_seq or at.chain_after != info.chain_hash:
            raise sq.SnapshotError(f"snapshot at seq {info.last_seq} does not match the log")
    elif info.chain_hash != jr.GENESIS_CHAIN:
        raise sq.SnapshotError("snapshot at seq 0 does not match the log")
    engine = _restore(cls, data.market, info)
    result = Rebuilt(
        engine,
        info.last_seq,
        info.last_ts_ns,
        chain_hash=info.chain_hash.hex(),
        snapshot_path=str(path),
        snapshot_seq=info.last_seq,
    )
    return result, reader, batches


def _restore(cls: type, market: MarketDefinition, info: sq.SnapshotInfo) -> Any:
    from_state = getattr(cls, "from_state", None)
    if from_state is None:
        raise sq.SnapshotError(f"the {cls.__name__} cannot restore snapshots")
    try:
        engine = from_state(market, info.state)
    except Exception as exc:  # noqa: BLE001 - any refusal of the state makes it unusable
        raise sq.SnapshotError(f"the engine refused the state: {exc}") from None
    if engine.state_hash() != info.state_hash:
        raise sq.SnapshotError("restored state hash differs from the recorded one")
    return engine

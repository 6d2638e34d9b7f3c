"""Recovery: the engine state at any seq, from the nearest usable snapshot and the log after it.

Theory of operation
-------------------
The log is the truth: the state after seq N is what a fresh engine reaches by applying
commands 1 … N in order.  A snapshot is a cached prefix of that replay, so the state at N is
rebuilt as *the nearest usable snapshot at or before N, plus the log batches after it*.  This
module is the one implementation of that rule; three callers use it:

- ``Sequencer.open`` recovers to the end of the log (:func:`recover`);
- ``Sequencer.events_since`` regenerates the events from a seq on (a gateway's resend):
  :func:`starting_point` before that seq, then :func:`apply_batches` to the end;
- ``replay.timeline.rebuild`` rebuilds the state at any seq or time (time travel), and may cut
  the last batch at its stop.

**Which snapshot.**  Candidates are the files of ``snapshots/``, newest first, whose seq lies
at or before the target (a seq bound filters by file name, a time bound by the header's
``last_ts_ns``; a candidate beyond the target is not a candidate, so it is not reported).  The
first candidate that passes every test below is used; every candidate that fails one is
reported as a :class:`SkippedSnapshot` with the reason, and the next older one is tried; when
none is left the replay starts from an empty engine at seq 1 (and a log whose first segment
does not start at seq 1 is then refused: only a snapshot could stand in for its beginning).

**The chain rule** (one rule for every caller; ``docs/LOG_FORMAT.md`` section 6): a snapshot
taken after seq N is usable only if

1. its file passes its own checks (``engine.durable.snapshots.read_snapshot``: magic, version,
   checksums, the market digest) and its header's seq is the one its file name says;
2. N is a batch boundary of this log and the snapshot's recorded chain value equals *the log's
   chain value after seq N* - the chain value after the checkpoint of the batch ending at N,
   which is the value the next batch (or the segment header starting at N + 1) links to, or
   the log's final chain value when N is its end; the genesis value (all zero) for N = 0.  A
   snapshot beyond the end of the log is "ahead of the log"; one inside a batch, or whose chain
   value differs, "does not match the log".  The chain value covers every byte of the log up
   to N, so a usable snapshot is one taken of *this* log at exactly that point, never a
   snapshot of another log that happens to have the same seq;
3. the engine restores its state (``from_state``) and the restored engine's state hash equals
   the recorded one.

The chain value at N is read from the log itself by a walk from the batch holding N (the
journal's reader checks every checksum and link on the way), so the rule also holds where the
log's beginning was removed: the first batch then links to the segment header's chain value.

**Auditing.**  :func:`apply_batches` applies the batches after the starting point and, with
``audit`` (the default), compares each complete batch's events with the count and digest its
checkpoint recorded, raising :class:`ReplayDivergenceError` on any difference: recovery proves
the engine is the one that wrote the log.  A batch cut by a stop cannot be audited (its digest
covers the whole batch).  ``replay`` turns the audit off for time travel: ``replay audit`` is
the command that compares, and it reports a divergence as a finding rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from engine.core import market as mk
from engine.durable import journal as jr
from engine.durable.snapshots import SnapshotError, SnapshotInfo, read_snapshot, snapshot_paths


class EngineClass(Protocol):
    """An engine class: ``cls(market)`` and ``cls.from_state(market, data)``, whose engines
    have ``codec``, ``apply_records``, ``state_hash`` and ``export_state``."""

    def __call__(self, market: mk.MarketDefinition) -> Any: ...
    def from_state(self, market: mk.MarketDefinition, data: bytes) -> Any: ...


class ReplayDivergenceError(jr.JournalError):
    """Replaying a batch produced other events than its checkpoint records: the engine is not
    the one that wrote the log, or it is not deterministic."""


class SkippedSnapshot(msgspec.Struct, frozen=True):
    """A snapshot recovery could not use, and why."""

    path: str
    reason: str


class LogRead(Protocol):
    """One read of a log from a seq on: its complete batches (from the batch holding that seq)
    and, once iteration has ended, where the log ended (its last seq and chain value)."""

    def __iter__(self) -> Iterator[jr.LoggedBatch]: ...

    @property
    def last_seq(self) -> int: ...

    @property
    def chain_hash(self) -> bytes: ...


LogOpener = Callable[[int], LogRead]
"""Opens a :class:`LogRead` from a seq (``replay.datadir.LogReader``, :func:`journal_log`)."""


class _JournalRead:
    """A read of an open journal, bounded by its end when the read began."""

    def __init__(self, journal: jr.Journal, from_seq: int) -> None:
        self.last_seq, self.chain_hash = journal.last_seq, journal.chain_hash
        self._batches = journal.read(from_seq)  # bounded by the same last_seq

    def __iter__(self) -> Iterator[jr.LoggedBatch]:
        return self._batches


def journal_log(journal: jr.Journal) -> LogOpener:
    """The :data:`LogOpener` of an open (recovered) journal."""
    return lambda from_seq: _JournalRead(journal, from_seq)


@dataclass
class Start:
    """Where a replay starts: an engine, and the log batches to apply to it."""

    engine: Any
    batches: Iterator[jr.LoggedBatch]
    """The complete batches after the starting point (from the first one on)."""
    log: LogRead
    """The read ``batches`` come from (where the log ended, once they are consumed)."""
    snapshot: SnapshotInfo | None = None
    """The snapshot the engine was restored from (None: an empty engine at seq 0)."""
    skipped: list[SkippedSnapshot] = field(default_factory=list)

    @property
    def seq(self) -> int:
        """Seq of the last command the starting state includes (0: none)."""
        return self.snapshot.last_seq if self.snapshot is not None else 0

    @property
    def ts_ns(self) -> int:
        """Timestamp of that command (0: none)."""
        return self.snapshot.last_ts_ns if self.snapshot is not None else 0

    @property
    def chain_hash(self) -> bytes:
        """The log's chain value after :attr:`seq`."""
        return self.snapshot.chain_hash if self.snapshot is not None else jr.GENESIS_CHAIN


def starting_point(
    market: mk.MarketDefinition,
    engine_class: EngineClass,
    read_log: LogOpener,
    snapshot_dir: Path | None,
    until_seq: int | None = None,
    until_ts_ns: int | None = None,
) -> Start:
    """The nearest usable snapshot at or before the target, and the log after it.

    Parameters
    ----------
    market : MarketDefinition
        The data directory's market (a snapshot of another market is skipped).
    engine_class : EngineClass
        Class of the engine to build.
    read_log : LogOpener
        Opens a read of the log from a seq.
    snapshot_dir : Path or None
        The snapshot directory (None: no snapshot, replay from seq 1).
    until_seq, until_ts_ns : int, optional
        The target: only snapshots at or before this seq and time are candidates.

    Returns
    -------
    Start
        The restored (or empty) engine, the batches after it and the snapshots skipped.

    Raises
    ------
    LogCorruptError
        No usable snapshot and the log does not start at seq 1.
    """
    skipped: list[SkippedSnapshot] = []
    for path in snapshot_paths(snapshot_dir) if snapshot_dir is not None else []:
        if until_seq is not None and int(path.stem) > until_seq:
            continue
        try:
            start = _from_snapshot(path, market, engine_class, read_log, until_ts_ns)
        except (SnapshotError, OSError) as exc:
            skipped.append(SkippedSnapshot(str(path), str(exc)))
            continue
        if start is not None:
            start.skipped = skipped
            return start
    log = read_log(1)
    return Start(engine_class(market), from_genesis(iter(log)), log, None, skipped)


def from_genesis(batches: Iterator[jr.LoggedBatch]) -> Iterator[jr.LoggedBatch]:
    """``batches`` (a read from seq 1), after checking that the log starts at seq 1.

    Raises
    ------
    LogCorruptError
        The first batch starts later: the log's beginning was removed.
    """
    first = next(batches, None)
    if first is None:
        return iter(())
    if first.first_seq != 1:
        raise jr.LogCorruptError(
            first.segment,
            first.offset,
            first.first_seq,
            "the log does not start at seq 1 and no snapshot covers its beginning",
        )
    return _chain_first(first, batches)


def _from_snapshot(
    path: Path,
    market: mk.MarketDefinition,
    engine_class: EngineClass,
    read_log: LogOpener,
    until_ts_ns: int | None,
) -> Start | None:
    """The engine restored from ``path`` and the log after it; None when the snapshot lies
    after the time bound.  Raises SnapshotError when the chain rule refuses it."""
    info = read_snapshot(path, market.digest())
    if info.last_seq != int(path.stem):
        raise SnapshotError(f"file name says seq {int(path.stem)}, header {info.last_seq}")
    if until_ts_ns is not None and info.last_ts_ns > until_ts_ns:
        return None
    log = read_log(max(info.last_seq, 1))
    batches = iter(log)
    try:
        first = next(batches, None)
        _check_chain(info, log, first)
        engine = _restore(engine_class, market, info)
    except BaseException:
        _close(batches)
        raise
    if first is not None and first.first_seq == info.last_seq + 1:
        batches = _chain_first(first, batches)  # the log starts right after the snapshot
    return Start(engine, batches, log, info)


def _check_chain(info: SnapshotInfo, log: LogRead, first: jr.LoggedBatch | None) -> None:
    """The chain rule: the log's chain value after ``info.last_seq`` is the recorded one.

    ``first`` is the first batch of a read from the batch holding that seq (None: the read
    found no batch, and ``log`` tells where the log ended)."""
    seq = info.last_seq
    chain: bytes | None = None
    if first is None:
        if log.last_seq < seq:
            raise SnapshotError(f"snapshot at seq {seq} is ahead of the log")
        if log.last_seq == seq:
            chain = log.chain_hash
    elif first.last_seq == seq:
        chain = first.chain_after
    elif first.first_seq == seq + 1:
        chain = first.chain_before
    if chain is None:
        raise SnapshotError(f"snapshot at seq {seq} does not match the log (not at a batch end)")
    if chain != info.chain_hash:
        raise SnapshotError(f"snapshot at seq {seq} does not match the log there (chain value)")


def _restore(engine_class: EngineClass, market: mk.MarketDefinition, info: SnapshotInfo) -> Any:
    from_state = getattr(engine_class, "from_state", None)
    if from_state is None:
        name = getattr(engine_class, "__name__", "engine")
        raise SnapshotError(f"the {name} cannot restore snapshots")
    try:
        engine = from_state(market, info.state)
    except Exception as exc:  # noqa: BLE001 - any refusal of the state is reported, then skipped
        raise SnapshotError(f"the engine refused the state: {exc}") from None
    if engine.state_hash() != info.state_hash:
        raise SnapshotError("restored state hash differs from the recorded one")
    return engine


def _chain_first(first: jr.LoggedBatch, rest: Iterator[jr.LoggedBatch]):
    yield first
    yield from rest


def _close(batches: Iterable[jr.LoggedBatch]) -> None:
    """End an abandoned read now (a prefetching reader stops its thread)."""
    close = getattr(batches, "close", None)
    if close is not None:
        close()


# ------------------------------------------------------------------------------------------
# Applying the log
# ------------------------------------------------------------------------------------------


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


def apply_batches(
    batches: Iterable[jr.LoggedBatch],
    apply: Callable[[np.ndarray], np.ndarray],
    audit: bool = True,
    limit: Callable[[jr.LoggedBatch], int] | None = None,
) -> Iterator[Applied]:
    """Apply ``batches`` in order with ``apply`` (an engine's ``apply_records``); yield each.

    Parameters
    ----------
    audit : bool
        Compare every complete batch's events with its checkpoint.
    limit : callable, optional
        How many leading commands of a batch to apply; fewer than all ends the replay after
        that batch, 0 before it (None: every batch whole).

    Raises
    ------
    ReplayDivergenceError
        (with ``audit``) the events differ from those the log recorded.
    """
    for batch in batches:
        count = batch.count if limit is None else limit(batch)
        if count == 0:
            return
        commands = batch.commands if count == batch.count else batch.commands[:count]
        events = apply(commands)
        if audit and count == batch.count:
            audit_batch(batch, events)
        yield Applied(batch, commands, events)
        if count < batch.count:
            return


def audit_batch(batch: jr.LoggedBatch, events: np.ndarray) -> None:
    """Raise :class:`ReplayDivergenceError` unless ``events`` are those the batch's
    checkpoint recorded (count and digest)."""
    if len(events) != batch.event_count or jr.events_digest(events) != batch.events_digest:
        raise ReplayDivergenceError(
            f"replay of seq {batch.first_seq}..{batch.last_seq} (segment {batch.segment}, "
            f"offset {batch.offset}) produced {len(events)} events that differ from the "
            f"{batch.event_count} its checkpoint recorded"
        )


class Recovered(msgspec.Struct):
    """An engine recovered to the end of a log, and how (see :func:`recover`)."""

    engine: Any
    snapshot_path: str | None
    snapshot_seq: int | None
    """Seq the loaded snapshot covers (None: full replay from seq 1)."""
    snapshots_skipped: list[SkippedSnapshot]
    batches_replayed: int
    commands_replayed: int
    events_replayed: int


def recover(
    market: mk.MarketDefinition,
    engine_class: EngineClass,
    read_log: LogOpener,
    snapshot_dir: Path | None,
    audit: bool = True,
) -> Recovered:
    """Engine state at the end of the log: :func:`starting_point` plus every batch after it
    (audited unless ``audit`` is False).

    Raises
    ------
    LogCorruptError
        No usable snapshot and the log does not start at seq 1.
    ReplayDivergenceError
        A replayed batch produced other events than its checkpoint recorded.
    """
    start = starting_point(market, engine_class, read_log, snapshot_dir)
    batches = commands = events = 0
    for applied in apply_batches(start.batches, start.engine.apply_records, audit):
        batches += 1
        commands += len(applied.commands)
        events += len(applied.events)
    snapshot = start.snapshot
    return Recovered(
        start.engine,
        snapshot.path if snapshot is not None else None,
        snapshot.last_seq if snapshot is not None else None,
        start.skipped,
        batches,
        commands,
        events,
    )

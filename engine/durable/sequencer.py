"""The sequencer: the one object that owns a data directory and turns commands into durable
events.

Theory of operation
-------------------
The engine is a pure state machine; this module is the I/O shell around it.  An
:class:`Sequencer` owns a data directory::

    LOCK          flock: one writer per directory (a second one is refused)
    market.json   the market definition, written once, atomically (JSON: TOML encoding
                  would need another package)
    log/          the command log (``engine.durable.journal``)
    snapshots/    engine snapshots, ``<seq:020d>.snap``

For every batch it assigns consecutive sequence numbers and one timestamp (from the injected
clock, clamped so it never decreases), encodes the commands to records once, appends the batch
record to the log, applies the records to the engine, appends the checkpoint (digest of the
events) and syncs per the durability policy - and only then returns the events.  Nothing is
acknowledged before it is durable under the chosen policy.  If anything fails half-way (the
engine raises, the disk is full) the exchange refuses further work: its engine may be ahead of
its log, and only a reopen (recovery) restores the rule "state = replay of the log".

Recovery on open: the journal checks every byte of the log and truncates a torn or
unacknowledged tail; then the newest valid snapshot is loaded (a damaged one, one ahead of the
log or one whose log position does not match is reported and skipped in favour of an older one
or a full replay) and the log after it is replayed.  Every replayed batch's events are compared
with the digest its checkpoint recorded, so recovery also audits the engine.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, cast

import crc32c
import msgspec
import numpy as np

from engine.core import limits
from engine.core import market as mk
from engine.core import schema as s
from engine.core.records import COMMAND_DTYPE, EVENT_DTYPE
from engine.durable import journal as jr

_log = logging.getLogger(__name__)

MARKET_FILE = "market.json"
LOG_DIR = "log"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_SUFFIX = ".snap"
SNAPSHOT_MAGIC = b"CETSSNAP"
SNAPSHOT_VERSION = 1
SNAPSHOT_HEADER_BYTES = 192
DEFAULT_SNAPSHOT_EVERY_EVENTS = 1_000_000
DEFAULT_SNAPSHOTS_KEPT = 3
STATE_HASH_BYTES_MAX = 64

# magic, version, header bytes, flags, last seq, last ts, state bytes, state crc, reserved,
# market digest, log chain, state hash (ASCII, zero padded), reserved, header crc
_SNAPSHOT_HEADER = struct.Struct("<8sHHIQqQI4s32s32s64s12sI")
assert _SNAPSHOT_HEADER.size == SNAPSHOT_HEADER_BYTES


class EngineClass(Protocol):
    """An engine class: ``cls(market)`` and ``cls.from_state(market, data)``, whose engines
    have ``codec``, ``apply_records``, ``state_hash`` and ``export_state``."""

    def __call__(self, market: mk.MarketDefinition) -> Any: ...
    def from_state(self, market: mk.MarketDefinition, data: bytes) -> Any: ...


class ReplayDivergenceError(jr.JournalError):
    """Replaying a batch produced other events than its checkpoint records: the engine is not
    the one that wrote the log, or it is not deterministic."""


class SequencerFailedError(RuntimeError):
    """A previous batch failed half-way; the exchange must be reopened (recovered)."""


class SnapshotError(ValueError):
    """A snapshot file that cannot be used (damaged, another market, another version)."""


class SubmitResult(msgspec.Struct, frozen=True):
    """The outcome of one acknowledged batch: its seq range and the events it produced."""

    first_seq: int
    last_seq: int
    events: list[Any]


class SkippedSnapshot(msgspec.Struct, frozen=True):
    """A snapshot recovery could not use, and why."""

    path: str
    reason: str


class RecoveryReport(msgspec.Struct, frozen=True):
    """What :meth:`Sequencer.open` found and did."""

    created: bool
    journal: jr.JournalRecovery
    snapshot_path: str | None
    snapshot_seq: int | None
    """Seq the loaded snapshot covers (None: full replay from seq 1)."""
    snapshots_skipped: list[SkippedSnapshot]
    batches_replayed: int
    commands_replayed: int
    events_replayed: int
    last_seq: int
    state_hash: str
    removed_temp_files: list[str] = []
    """Snapshot files whose writing never finished (a crash): never part of the state."""

    @property
    def truncated_bytes(self) -> int:
        """Bytes of torn or unacknowledged tail the log recovery cut (0 after a clean stop)."""
        return self.journal.truncated_bytes


class SnapshotInfo(msgspec.Struct, frozen=True):
    """A snapshot file's header (``state`` holds the engine's ``export_state()`` bytes)."""

    path: str
    last_seq: int
    last_ts_ns: int
    market_digest: bytes
    chain_hash: bytes
    state_hash: str
    state: bytes = b""


# ------------------------------------------------------------------------------------------
# Small durable-file helpers
# ------------------------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, directory fsync."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    jr.fsync_dir(path.parent)


def write_snapshot(directory: Path, info: SnapshotInfo) -> Path:
    """Write a snapshot file atomically; returns its path."""
    hash_bytes = info.state_hash.encode("ascii")
    if len(hash_bytes) > STATE_HASH_BYTES_MAX:
        raise ValueError("state hash longer than 64 characters")
    head = _SNAPSHOT_HEADER.pack(
        SNAPSHOT_MAGIC,
        SNAPSHOT_VERSION,
        SNAPSHOT_HEADER_BYTES,
        0,
        info.last_seq,
        info.last_ts_ns,
        len(info.state),
        crc32c.crc32c(info.state),
        b"",
        info.market_digest,
        info.chain_hash,
        hash_bytes,
        b"",
        0,
    )[:-4]
    path = directory / f"{info.last_seq:020d}{SNAPSHOT_SUFFIX}"
    write_atomically(path, head + struct.pack("<I", crc32c.crc32c(head)) + info.state)
    return path


def read_snapshot(path: Path, market_digest: bytes) -> SnapshotInfo:
    """Read and check a snapshot file.

    Raises
    ------
    SnapshotError
        Short file, bad magic, version, checksum, or another market's snapshot.
    """
    data = path.read_bytes()
    if len(data) < SNAPSHOT_HEADER_BYTES:
        raise SnapshotError("file shorter than the snapshot header")
    (
        magic,
        version,
        header_bytes,
        flags,
        last_seq,
        last_ts,
        state_bytes,
        state_crc,
        _,
        digest,
        chain,
        state_hash,
        _,
        crc,
    ) = _SNAPSHOT_HEADER.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise SnapshotError(f"bad snapshot magic {magic!r}")
    if crc32c.crc32c(data[: SNAPSHOT_HEADER_BYTES - 4]) != crc:
        raise SnapshotError("snapshot header checksum mismatch")
    if version != SNAPSHOT_VERSION or header_bytes != SNAPSHOT_HEADER_BYTES or flags:
        raise SnapshotError(f"unsupported snapshot version {version}")
    if digest != market_digest:
        raise SnapshotError("snapshot of another market definition")
    state = data[SNAPSHOT_HEADER_BYTES:]
    if len(state) != state_bytes or crc32c.crc32c(state) != state_crc:
        raise SnapshotError("snapshot state damaged (length or checksum mismatch)")
    text = state_hash.rstrip(b"\0").decode("ascii", errors="replace")
    return SnapshotInfo(str(path), last_seq, last_ts, digest, chain, text, state)


def snapshot_paths(directory: Path) -> list[Path]:
    """Snapshot files, newest (highest seq) first."""
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.suffix == SNAPSHOT_SUFFIX and len(p.stem) == 20 and p.stem.isdigit()
    ]
    return sorted(found, key=lambda p: int(p.stem), reverse=True)


def _remove_temporary_files(directory: Path) -> list[str]:
    removed = []
    for tmp in sorted(directory.glob("*.tmp")):
        tmp.unlink()
        removed.append(str(tmp))
    return removed


def default_engine_class() -> EngineClass:
    """The compiled engine, imported on first use (it compiles at start-up)."""
    from engine.core.compiled.engine import CompiledEngine

    return cast(EngineClass, CompiledEngine)


def _decode_market(data: bytes) -> mk.MarketDefinition:
    try:
        return mk.validate(msgspec.json.decode(data, type=mk.MarketDefinition))
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: a JSON string not UTF-8
        raise mk.MarketDefinitionError(f"invalid stored market definition: {exc}") from None


def _load_or_store_market(
    data_dir: Path, market: mk.MarketDefinition | None
) -> tuple[mk.MarketDefinition, bool]:
    """The stored market definition, or ``market`` stored; (definition, created)."""
    path = data_dir / MARKET_FILE
    if path.exists():
        stored = _decode_market(path.read_bytes())
        if market is not None and market.digest() != stored.digest():
            raise jr.MarketMismatchError(
                str(path), 0, None, "the market definition given differs from the stored one"
            )
        return stored, False
    if market is None:
        raise FileNotFoundError(f"{path} does not exist: a new exchange needs a market")
    mk.validate(market)
    data = msgspec.json.format(msgspec.json.encode(market), indent=2) + b"\n"
    if _decode_market(data).digest() != market.digest():  # the round trip must be exact
        raise mk.MarketDefinitionError("market definition does not survive its JSON encoding")
    write_atomically(path, data)
    return market, True


# ------------------------------------------------------------------------------------------
# Replay
# ------------------------------------------------------------------------------------------


def replay_batches(engine: Any, batches: Iterator[jr.LoggedBatch], audit: bool = True) -> tuple:
    """Apply logged batches to ``engine``; returns (batches, commands, events) applied.

    With ``audit`` every batch's events are compared with its checkpoint.

    Raises
    ------
    ReplayDivergenceError
        The events differ from those the log recorded.
    """
    n_batches = n_commands = n_events = 0
    for batch in batches:
        events = engine.apply_records(batch.commands)
        if audit:
            _audit(batch, events)
        n_batches += 1
        n_commands += batch.count
        n_events += len(events)
    return n_batches, n_commands, n_events


def _audit(batch: jr.LoggedBatch, events: np.ndarray) -> None:
    if len(events) != batch.event_count or jr.events_digest(events) != batch.events_digest:
        raise ReplayDivergenceError(
            f"replay of seq {batch.first_seq}..{batch.last_seq} (segment {batch.segment}, "
            f"offset {batch.offset}) produced {len(events)} events that differ from the "
            f"{batch.event_count} its checkpoint recorded"
        )


def _check_links(info: SnapshotInfo, journal: jr.Journal, first: jr.LoggedBatch | None) -> None:
    """A snapshot fits the log only at a batch boundary with the same chain value."""
    if info.last_seq > journal.last_seq:
        raise SnapshotError(f"snapshot at seq {info.last_seq} is ahead of the log")
    if first is None:
        if info.last_seq != journal.last_seq or info.chain_hash != journal.chain_hash:
            raise SnapshotError("snapshot does not match the end of the log")
        return
    if first.first_seq != info.last_seq + 1 or first.chain_before != info.chain_hash:
        raise SnapshotError(f"snapshot at seq {info.last_seq} does not match the log there")


def _from_snapshot(
    path: Path, market: mk.MarketDefinition, engine_class: EngineClass, journal: jr.Journal
) -> tuple[Any, SnapshotInfo, Iterator[jr.LoggedBatch]]:
    """Restore an engine from a snapshot that fits the log; returns the rest of the log."""
    info = read_snapshot(path, market.digest())
    if info.last_seq > journal.last_seq:
        raise SnapshotError(f"snapshot at seq {info.last_seq} is ahead of the log")
    batches = journal.read(info.last_seq + 1)
    first = next(batches, None)
    _check_links(info, journal, first)
    try:
        engine = engine_class.from_state(market, info.state)
    except Exception as exc:  # noqa: BLE001 - any refusal of the state is reported, then skipped
        raise SnapshotError(f"engine refused the state: {exc}") from None
    if engine.state_hash() != info.state_hash:
        raise SnapshotError("restored state hash differs from the recorded one")
    rest = iter(()) if first is None else _chain_first(first, batches)
    return engine, info, rest


def _chain_first(first: jr.LoggedBatch, rest: Iterator[jr.LoggedBatch]):
    yield first
    yield from rest


def recover_engine(
    market: mk.MarketDefinition,
    engine_class: EngineClass,
    journal: jr.Journal,
    snapshot_dir: Path,
    audit: bool = True,
) -> tuple[Any, dict]:
    """Engine state = newest fitting snapshot + replay of the log after it (or full replay)."""
    skipped: list[SkippedSnapshot] = []
    for path in snapshot_paths(snapshot_dir):
        try:
            engine, info, rest = _from_snapshot(path, market, engine_class, journal)
        except (SnapshotError, OSError) as exc:
            skipped.append(SkippedSnapshot(str(path), str(exc)))
            continue
        counts = replay_batches(engine, rest, audit)
        return engine, _report_fields(str(path), info.last_seq, skipped, counts)
    engine = engine_class(market)
    batches = journal.read(1)
    first = next(batches, None)
    if first is not None and first.first_seq != 1:
        raise jr.LogCorruptError(
            first.segment,
            first.offset,
            first.first_seq,
            "log does not start at seq 1 and no snapshot covers its beginning",
        )
    rest = iter(()) if first is None else _chain_first(first, batches)
    counts = replay_batches(engine, rest, audit)
    return engine, _report_fields(None, None, skipped, counts)


def _report_fields(path: str | None, seq: int | None, skipped: list, counts: tuple) -> dict:
    return {
        "snapshot_path": path,
        "snapshot_seq": seq,
        "snapshots_skipped": skipped,
        "batches_replayed": counts[0],
        "commands_replayed": counts[1],
        "events_replayed": counts[2],
    }


# ------------------------------------------------------------------------------------------
# The exchange
# ------------------------------------------------------------------------------------------


class Sequencer:
    """The sequencer and owner of one data directory.  Create with :meth:`open`."""

    def __init__(
        self,
        data_dir: Path,
        market: mk.MarketDefinition,
        engine: Any,
        engine_class: EngineClass,
        journal: jr.Journal,
        lock_fd: int,
        clock: Callable[[], int],
        snapshot_every_events: int | None,
        snapshots_kept: int,
    ) -> None:
        self.data_dir, self.market, self.engine = data_dir, market, engine
        self.engine_class, self.journal = engine_class, journal
        self.codec = engine.codec
        self._lock_fd, self._clock = lock_fd, clock
        self.snapshot_every_events, self.snapshots_kept = snapshot_every_events, snapshots_kept
        self._events_since_snapshot = 0
        self._failure: BaseException | None = None
        self.snapshot_error: Exception | None = None
        """The last automatic snapshot's failure (None once one succeeds again)."""
        self.recovery_report: RecoveryReport | None = None

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        market: mk.MarketDefinition | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        durability: jr.Durability | str = jr.Durability.BATCH,
        sync_interval_s: float = 0.05,
        segment_bytes: int = jr.DEFAULT_SEGMENT_BYTES,
        snapshot_every_events: int | None = DEFAULT_SNAPSHOT_EVERY_EVENTS,
        snapshots_kept: int = DEFAULT_SNAPSHOTS_KEPT,
        engine_factory: EngineClass | None = None,
        audit_replay: bool = True,
    ) -> Sequencer:
        """Create a new exchange in ``data_dir`` or recover the one there.

        Parameters
        ----------
        data_dir : str or Path
            Directory owned by the exchange (created if missing).
        market : MarketDefinition, optional
            Required to create; when recovering it must equal the stored definition.
        clock : callable
            Returns the time in integer nanoseconds (injected; the engine never reads one).
        durability : Durability or str
            ``"batch"`` (sync every batch, default), ``"interval"`` or ``"none"``.
        sync_interval_s : float
            Longest time between syncs under ``"interval"``.
        segment_bytes : int
            Preallocated size of a log segment.
        snapshot_every_events : int or None
            Take a snapshot after this many events (None or 0: only on request).
        snapshots_kept : int
            Snapshot files kept (older ones are deleted after a new one is durable).
        engine_factory : EngineClass, optional
            Engine class: ``engine_factory(market)`` and ``engine_factory.from_state(market,
            bytes)``; default ``engine.core.compiled.engine.CompiledEngine``.
        audit_replay : bool
            Compare the events of every replayed batch with its checkpoint.

        Raises
        ------
        LogLockedError
            Another process has the data directory open.
        LogCorruptError
            Damage before the tail of the log; MarketMismatchError if the market differs.
        ReplayDivergenceError
            Replay produced events other than the recorded ones.
        """
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = jr.acquire_lock(path / jr.LOCK_FILE, f"data directory {path}")
        journal = None
        try:
            market, created = _load_or_store_market(path, market)
            journal = jr.Journal.open(
                path / LOG_DIR,
                market.digest(),
                durability=durability,
                sync_interval_s=sync_interval_s,
                segment_bytes=segment_bytes,
            )
            (path / SNAPSHOT_DIR).mkdir(exist_ok=True)
            removed = _remove_temporary_files(path / SNAPSHOT_DIR)
            engine_class = engine_factory or default_engine_class()
            engine, fields = recover_engine(
                market, engine_class, journal, path / SNAPSHOT_DIR, audit_replay
            )
        except BaseException:
            if journal is not None:
                journal.close()
            os.close(lock_fd)
            raise
        exchange = cls(
            path,
            market,
            engine,
            engine_class,
            journal,
            lock_fd,
            clock,
            snapshot_every_events,
            snapshots_kept,
        )
        assert journal.recovery is not None
        exchange.recovery_report = RecoveryReport(
            created,
            journal.recovery,
            last_seq=journal.last_seq,
            state_hash=engine.state_hash(),
            removed_temp_files=removed,
            **fields,
        )
        return exchange

    # -- properties ------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """Seq of the last acknowledged command (0 before the first)."""
        return self.journal.last_seq

    @property
    def next_seq(self) -> int:
        """Seq the next submitted command will get."""
        return self.journal.next_seq

    def state_hash(self) -> str:
        """The engine's canonical state hash."""
        return self.engine.state_hash()

    # -- the write path ----------------------------------------------------------------------------
    def submit(
        self, commands: Sequence[s.Command], annotations: Sequence[bytes | None] | None = None
    ) -> SubmitResult:
        """Sequence, log, apply and make durable one batch of typed commands.

        Parameters
        ----------
        commands : sequence of Command
            Their ``seq`` and ``ts_ns`` are ignored and assigned here.
        annotations : sequence of bytes or None, optional
            One opaque entry per command, stored in the log with it (e.g. a client order id).

        Returns
        -------
        SubmitResult
            ``first_seq``, ``last_seq`` and the typed events, after the batch is durable.
        """
        self._check_usable()
        count = len(commands)
        if count == 0:
            return SubmitResult(self.next_seq, self.next_seq - 1, [])
        blob = jr.encode_annotations(annotations, count)
        # One encoding, then seq/ts filled in the records: the same values a
        # msgspec.structs.replace per command would give, without a Python object each.
        records = self.codec.encode_commands(list(commands))
        first = self.next_seq
        events = self._process(records, blob)
        return SubmitResult(first, first + count - 1, self.codec.decode_events(events))

    def submit_records(self, records: np.ndarray, annotations: bytes = b"") -> np.ndarray:
        """The hot path: like :meth:`submit` for a :data:`COMMAND_DTYPE` array, whose ``seq``
        and ``ts_ns`` are filled in place; returns the event records."""
        self._check_usable()
        if not isinstance(records, np.ndarray) or records.dtype != COMMAND_DTYPE:
            raise TypeError("records must be a COMMAND_DTYPE array")
        if not records.flags.c_contiguous or not records.flags.writeable:
            raise ValueError("records must be a contiguous, writeable array")
        if len(records) == 0:
            return np.zeros(0, EVENT_DTYPE)
        return self._process(records, annotations)

    def _next_ts(self) -> int:
        ts = self._clock()
        if not isinstance(ts, int | np.integer):
            raise TypeError(f"the clock must return integer nanoseconds, not {type(ts).__name__}")
        return max(int(ts), self.journal.last_ts_ns)

    def _process(self, records: np.ndarray, annotations: bytes) -> np.ndarray:
        count = len(records)
        if count > limits.BATCH_COMMANDS_MAX:
            raise ValueError(f"at most {limits.BATCH_COMMANDS_MAX} commands in one batch")
        first = self.journal.next_seq
        records["seq"] = np.arange(first, first + count, dtype=np.int64)
        records["ts_ns"] = self._next_ts()
        try:
            self.journal.append_batch(records, annotations)
            try:
                events = self.engine.apply_records(records)
            except BaseException:
                self.journal.abort_batch()
                raise
            self.journal.append_checkpoint(events)
        except jr.LogFullError:  # nothing of the batch was written: refused, still usable
            raise
        except BaseException as exc:
            self._failure = exc
            raise
        self._events_since_snapshot += len(events)
        every = self.snapshot_every_events
        if every and self._events_since_snapshot >= every:
            self._automatic_snapshot()
        return events

    def _automatic_snapshot(self) -> None:
        """A snapshot only shortens recovery: its failure must not fail the batch, which is
        already durable.  It is logged, kept in ``snapshot_error``, and retried after another
        ``snapshot_every_events`` events."""
        try:
            self.snapshot()
            self.snapshot_error = None
        except Exception as exc:  # noqa: BLE001 - reported below, never swallowed silently
            self._events_since_snapshot = 0
            self.snapshot_error = exc
            _log.error("automatic snapshot at seq %d failed: %r", self.last_seq, exc)

    def _check_usable(self) -> None:
        if self.journal.closed:
            raise SequencerFailedError("exchange is closed")
        if self._failure is not None:
            raise SequencerFailedError(
                f"a batch failed half-way ({self._failure!r}); reopen the exchange to recover"
            )

    # -- snapshots and reading back ----------------------------------------------------------------
    def snapshot(self) -> Path:
        """Write the engine state atomically (after syncing the log); returns the file."""
        self._check_usable()
        self.journal.sync()  # a snapshot must never be ahead of the durable log
        info = SnapshotInfo(
            "",
            self.last_seq,
            self.journal.last_ts_ns,
            self.market.digest(),
            self.journal.chain_hash,
            self.engine.state_hash(),
            self.engine.export_state(),
        )
        path = write_snapshot(self.data_dir / SNAPSHOT_DIR, info)
        for old in snapshot_paths(self.data_dir / SNAPSHOT_DIR)[max(self.snapshots_kept, 1) :]:
            old.unlink()
        self._events_since_snapshot = 0
        return path

    def events_since(self, seq: int) -> Iterator[s.Event]:
        """Regenerate the events of every command with seq >= ``seq`` up to now, from the log
        (a gateway resends them after a reconnect).  Uses a private engine; the live one is
        not touched."""
        self._check_usable()
        seq, end = max(seq, 1), self.last_seq
        if seq > end:
            return iter(())
        return self._regenerate(seq, end)

    def _regenerate(self, seq: int, end: int) -> Iterator[s.Event]:
        engine, start = self._engine_before(seq)
        for batch in self.journal.read(start):
            if batch.first_seq > end:
                return
            events = engine.apply_records(batch.commands)
            _audit(batch, events)
            if batch.last_seq >= seq:
                yield from self.codec.decode_events(events[events["seq"] >= seq])

    def _engine_before(self, seq: int) -> tuple[Any, int]:
        """A fresh engine at the newest snapshot before ``seq`` (or empty), and the next seq."""
        digest = self.market.digest()
        for path in snapshot_paths(self.data_dir / SNAPSHOT_DIR):
            if int(path.stem) >= seq:
                continue
            try:
                info = read_snapshot(path, digest)
                engine = self.engine_class.from_state(self.market, info.state)
            except Exception:  # noqa: BLE001, S112 - an unusable snapshot costs a longer replay
                continue
            return engine, info.last_seq + 1
        return self.engine_class(self.market), 1

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Sync the log and release the data directory.  Idempotent."""
        if self._lock_fd < 0:
            return
        try:
            self.journal.close()
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

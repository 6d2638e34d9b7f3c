"""The audit: do the outcomes the log recorded follow from the rules?

Theory of operation
-------------------
Every batch record of the log is followed by a checkpoint holding the number of events the
engine produced for it and the blake2b-256 digest of those events' bytes.  The audit replays
the whole log from seq 1 on a fresh engine - batch by batch, each in one compiled call - and
hashes the recomputed events of every batch: equal counts and digests mean the recorded
outcome is exactly what the rules produce.  With ``engine="reference"`` the rules are the
plain-Python executable specification of ``docs/MATCHING.md`` rather than the compiled book.

The first batch that differs stops the audit: the report then holds that batch's location, its
commands and the events recomputed for it (decoded to the typed view only now - nothing on the
hot path is decoded), and the recorded count and digest.  Only digests are recorded, so the
audit can name the batch, not the command inside it that diverged.

``events_hash`` is the blake2b-256 of the sequence of per-batch event digests: one value that
two processes (or two machines) replaying the same log must agree on.

Speed: the work is shared by threads that hand it to each other in chunks of batches (a
hand-over wakes a thread: tens of microseconds, far more on a busy machine, so once per chunk
rather than once per batch).  The reader (:mod:`replay.datadir`) reads the log and checks its checksums
and chain; this thread applies each batch with the compiled engine, the GIL released,
appending its events to a chunk buffer; two digest threads hash the chunk's batches (blake2b
releases the GIL for buffers over 2 KiB) while the engine runs the next chunks - hashing is the
longest stage, about twice the engine's time.  Every thread's heavy work runs without the GIL,
so the two cores are busy until the end.  The results are taken in log order, so the report
does not depend on the threads' timing.  The reference engine applies and hashes batch by
batch on this thread (hashing is not its bottleneck).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import msgspec
import numpy as np

from engine.core import schema as s
from engine.core.records import EVENT_DTYPE, EVENT_FIELDS
from engine.durable import journal as jr
from replay.datadir import DataDir, LogReader
from replay.errors import LogDamageError
from replay.progress import Progress
from replay.timeline import batch_applier, engine_class, from_genesis, replay_batches
from replay.typed import RawCommand, decode_commands


class Divergence(msgspec.Struct, frozen=True):
    """The first batch whose recomputed events differ from its checkpoint."""

    first_seq: int
    last_seq: int
    ts_ns: int
    segment: str
    offset: int
    """Byte offset of the batch record in its segment file."""
    commands: list[s.Command | RawCommand]
    recomputed_events: list[s.Event]
    recomputed_count: int
    recomputed_digest: str
    recorded_count: int
    recorded_digest: str


class AuditReport(msgspec.Struct, frozen=True):
    """Outcome of :func:`audit`; ``ok`` only when every batch matched its checkpoint."""

    data_dir: str
    engine: str
    ok: bool
    batches: int
    """Batches that matched."""
    commands: int
    events: int
    first_seq: int
    last_seq: int
    """Last seq of the last batch that matched."""
    events_hash: str
    state_hash: str
    """The engine's state hash at the end of the log ("" when a batch diverged)."""
    divergence: Divergence | None = None
    tail: jr.Problem | None = None
    """An unfinished batch at the end of the log (never acknowledged; not audited); None
    also when a divergence ended the audit before the end of the log."""
    damage: jr.Problem | None = None
    """Acknowledged data missing from the log (a cut or deleted segment): where it is."""


def audit(data: DataDir, engine: str = "compiled", progress: Progress | None = None) -> AuditReport:
    """Recompute the events of every batch of the log and compare them with its checkpoints.

    Parameters
    ----------
    data : DataDir
        The data directory.
    engine : str
        ``"compiled"`` (default) or ``"reference"``.
    progress : Progress, optional
        Progress over the bytes of log read.

    Returns
    -------
    AuditReport
        Counts, the combined ``events_hash`` and, on the first difference, the
        :class:`Divergence`.

    Raises
    ------
    DataError
        The log cannot be read (damage before its tail, I/O errors); acknowledged data
        missing is not an error but the report's ``damage``.
    """
    rules = engine_class(engine)(data.market)
    reader = LogReader(data, 1, progress)
    tally = _Tally()
    damage = None
    try:
        batches = from_genesis(reader)
        if hasattr(rules, "append_records"):  # the compiled engine
            _audit_pipelined(data, rules, batches, tally)
        else:
            _audit_in_turn(data, rules, batches, tally)
    except LogDamageError as exc:
        if not exc.missing_data:
            raise
        damage = jr.Problem(exc.segment, exc.offset, exc.seq, exc.what, False)
    ok = tally.divergence is None and damage is None
    return AuditReport(
        str(data.path),
        engine,
        ok,
        tally.batches,
        tally.commands,
        tally.events,
        tally.first_seq,
        tally.last_seq,
        tally.combined.hexdigest(),
        rules.state_hash() if ok else "",
        tally.divergence,
        reader.tail if tally.divergence is None else None,
        damage,
    )


def _audit_in_turn(data: DataDir, rules, batches: Iterator[jr.LoggedBatch], tally: _Tally) -> None:
    """Apply and hash every batch on this thread, one after the other."""
    for applied in replay_batches(batches, batch_applier(rules)):
        digest = jr.events_digest(applied.events)
        if not tally.add(data, applied.batch, applied.events, digest):
            return


def _audit_pipelined(
    data: DataDir, rules, batches: Iterator[jr.LoggedBatch], tally: _Tally
) -> None:
    """Apply every batch on this thread while workers hash the chunks applied before.

    A failure (damage to the log, or the engine refusing a record) comes after the batches
    before it: those are compared first, and a divergence among them is the finding, as when
    every batch is applied and compared in turn."""
    with ThreadPoolExecutor(DIGEST_THREADS, thread_name_prefix="replay-audit-digests") as pool:
        chunks = _Chunks(data, rules, tally, pool)
        try:
            for batch in batches:
                if not chunks.add(batch):
                    return
        except Exception:
            if chunks.settle_all():
                raise
            return  # a batch before the failure diverged
        chunks.settle_all()


CHUNK_EVENT_ROWS = 1 << 15
"""A chunk of applied batches goes to the digest thread once it holds this many events (4 MiB)
or :data:`CHUNK_BATCHES` batches."""
CHUNK_BATCHES = 64
CHUNKS_IN_FLIGHT = 3
"""Chunks applied ahead of the comparison with their checkpoints (their buffers are kept)."""
DIGEST_THREADS = 2
"""Threads hashing each chunk's batches, a part each: hashing is the longest of the three
stages (about twice the engine's time), and when the engine and the reader wait, both cores
hash."""

_ROW_BYTES = EVENT_DTYPE.itemsize


def _digests(buffer: np.ndarray, bounds: list[tuple[int, int]]) -> list[bytes]:
    """:func:`engine.durable.journal.events_digest` of each row range of ``buffer``."""
    data = memoryview(buffer).cast("B")
    return [
        hashlib.blake2b(
            data[first * _ROW_BYTES : end * _ROW_BYTES], digest_size=jr.HASH_BYTES
        ).digest()
        for first, end in bounds
    ]


class _Chunks:
    """Applied batches whose events wait in chunk buffers for their digests."""

    def __init__(self, data: DataDir, rules, tally: _Tally, pool: ThreadPoolExecutor) -> None:
        self.data, self.rules, self.tally, self.pool = data, rules, tally, pool
        self.pending: deque[tuple[list[Future], list[jr.LoggedBatch], list, np.ndarray]] = deque()
        self.spare: list[np.ndarray] = []
        self._start_chunk()

    def _start_chunk(self) -> None:
        if self.spare:
            self.buffer = self.spare.pop()
        else:
            self.buffer = np.empty((2 * CHUNK_EVENT_ROWS, EVENT_FIELDS), dtype=np.int64)
        self.rows = 0
        self.batches: list[jr.LoggedBatch] = []
        self.bounds: list[tuple[int, int]] = []

    def add(self, batch: jr.LoggedBatch) -> bool:
        """Apply ``batch``; False once a batch before it turned out to diverge."""
        self.buffer, end = self.rules.append_records(batch.commands, self.buffer, self.rows)
        self.batches.append(batch)
        self.bounds.append((self.rows, end))
        self.rows = end
        if end >= CHUNK_EVENT_ROWS or len(self.batches) >= CHUNK_BATCHES:
            self._hand_over()
            while len(self.pending) > CHUNKS_IN_FLIGHT:
                if not self._settle():
                    return False
        return True

    def _hand_over(self) -> None:
        bounds = self.bounds
        step = -(-len(bounds) // DIGEST_THREADS)
        parts = [bounds[first : first + step] for first in range(0, len(bounds), step)]
        futures = [self.pool.submit(_digests, self.buffer, part) for part in parts]
        self.pending.append((futures, self.batches, bounds, self.buffer))
        self._start_chunk()

    def _settle(self) -> bool:
        """Compare the oldest chunk's batches with their checkpoints, in log order."""
        futures, batches, bounds, buffer = self.pending.popleft()
        digests = [digest for future in futures for digest in future.result()]
        for batch, (first, end), digest in zip(batches, bounds, digests):
            events = buffer[first:end].view(EVENT_DTYPE).reshape(-1)
            if not self.tally.add(self.data, batch, events, digest):
                return False
        self.spare.append(buffer)
        return True

    def settle_all(self) -> bool:
        """Compare every batch applied so far; False when one diverged."""
        if self.batches:
            self._hand_over()
        while self.pending:
            if not self._settle():
                return False
        return True


class _Tally:
    """Counts and the combined hash of the batches that matched, in log order."""

    def __init__(self) -> None:
        self.combined = hashlib.blake2b(digest_size=jr.HASH_BYTES)
        self.batches = self.commands = self.events = self.first_seq = self.last_seq = 0
        self.divergence: Divergence | None = None

    def add(self, data: DataDir, batch: jr.LoggedBatch, events: np.ndarray, digest: bytes) -> bool:
        """Account one batch; False (and ``divergence`` set) when it does not match."""
        if len(events) != batch.event_count or digest != batch.events_digest:
            self.divergence = _divergence(data, batch, events, digest)
            return False
        self.combined.update(digest)
        if self.batches == 0:
            self.first_seq = batch.first_seq
        self.batches += 1
        self.commands += batch.count
        self.events += len(events)
        self.last_seq = batch.last_seq
        return True


def _divergence(
    data: DataDir, batch: jr.LoggedBatch, events: np.ndarray, digest: bytes
) -> Divergence:
    codec = data.codec
    return Divergence(
        batch.first_seq,
        batch.last_seq,
        batch.ts_first_ns,
        batch.segment,
        batch.offset,
        decode_commands(codec, batch.commands),
        codec.decode_events(events),
        len(events),
        digest.hex(),
        batch.event_count,
        batch.events_digest.hex(),
    )

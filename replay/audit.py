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

Speed: the log is read and its chain checked on the reader's thread (:mod:`replay.datadir`)
while this thread applies a batch and hashes its events; both hashes run with the GIL
released.  A third thread hashing events while the engine runs ahead was tried: it needs a
copy of every batch's events (the engine reuses its buffer) and measured no faster on this
shared two-core machine.
"""

from __future__ import annotations

import hashlib

import msgspec
import numpy as np

from engine.core import schema as s
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
    """An unfinished batch at the end of the log (never acknowledged; not audited)."""
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
        for applied in replay_batches(from_genesis(reader), batch_applier(rules)):
            digest = jr.events_digest(applied.events)
            if not tally.add(data, applied.batch, applied.events, digest):
                break
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
        reader.tail,
        damage,
    )


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

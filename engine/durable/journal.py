"""The append-only command log: segments, batch records, checkpoints, verification, recovery.

Theory of operation
-------------------
The log is the source of truth of the exchange: the engine's state is, by definition, what
replaying the log produces.  It lives in one directory of *segment* files named by the
sequence number of their first command (``00000000000000000001.seg``).  Each segment starts
with a 128-byte header (magic, format version, market-definition digest, first sequence number,
the hash chain value it continues from) and is preallocated to ``segment_bytes``; the
zero-filled remainder is free space, so the end of the data is the first all-zero record
header.  A new segment is written under a temporary name, synced, renamed and made durable
together with its directory entry, so a segment either exists whole or not at all.

*Spare segments.*  Zero-filling and syncing a new segment takes tens of milliseconds (64 MiB); done
when the current segment is full, it would stall the batch that needs the new one by as much.  So
the writer prepares the next segment's file ahead of time: once the current segment is a quarter
full (:data:`SPARE_START_FRACTION`; at open if it already is), its own thread (one per journal,
from open to close) creates
``spare-segment.tmp`` in the log directory, writes zeros over its whole ``segment_bytes`` a chunk
at a time - starting each chunk's writeback and waiting for the previous one's, at no more than
:data:`SPARE_FILL_BYTES_PER_S`, so that the device keeps serving the batches' ``fdatasync`` beside
it - and fsyncs it.  A roll then only writes the header and both end records into the spare, syncs
them, renames it to the segment's name and syncs the directory: the bytes and the order of a
segment created on the spot, without the zero-filling.  The thread never touches the journal's
state: it leaves an open file or an exception, which the writer reads once the preparation
signalled its end.  A spare not yet ready at the roll is waited for (unpaced from then on: never
slower than creating the segment there); one whose preparation failed (ENOSPC, EIO) is deleted and
the segment created on the spot, so that the failure surfaces as it always did (a full disk refuses
the batch with :class:`LogFullError`, anything else stops the journal).  While a spare is ready a
full disk does not refuse the batch that rolls (its blocks were allocated when it was prepared);
the next spare's preparation then fails, and so the roll after it refuses.  A spare is never part
of the log: its name ends in ``.tmp``, which no reader takes for a segment and recovery deletes, so
a crash at any moment leaves a log that recovers exactly as without one.  :meth:`Journal.close`
stops a preparation under way, deletes the spare and ends the thread.  Readers open nothing for
writing and prepare nothing.  A test's simulated storage that must see every operation in one
reproducible order has the spare prepared on the writer's thread instead (:class:`SpareSegments`).

One *batch record* holds one batch of commands (the unit of group commit): a 128-byte header
(magic, version, type, first seq, count, timestamp range, body length, CRC32C of the body, the
chain hash of the previous record, CRC32C of the header) and a body of raw
:data:`~engine.core.records.COMMAND_DTYPE` records followed by an optional msgpack *annotations*
blob (per-command opaque bytes, e.g. a gateway's client order id).  Replay hands the body to
the compiled engine through ``np.frombuffer``: no per-command Python work.  After the batch was
applied, a *checkpoint record* stores the count and blake2b-256 digest of the event records it
produced, so an auditor (and every recovery) can prove the recorded outcome is what the rules
produce.  A batch counts as written only with its checkpoint: the writer syncs after the
checkpoint, and the sequencer acknowledges nothing before that.

Every record links to its predecessor: ``chain = blake2b-256(header || body)`` and the next
header stores it, so no record can be changed, dropped or reordered without breaking the chain.
Records start at multiples of 64 bytes; the padding must be zero.

The log attests its own end: every sync first writes an *end record* (last seq, data end,
chain value, CRC32C) into the older of two slots after the segment header, in the same
``fdatasync`` as the data; a rollover seals the old segment with an end record naming its
successor.  Data missing before the attested end - a segment cut on a batch boundary, zeroed
records, a deleted last segment - is :class:`MissingDataError`, never a tail
(``docs/LOG_FORMAT.md`` §5.1 has the decision table).

Recovery (``Journal.open``) reads the whole log and checks every byte.  Damage that a crash can
cause - a short or torn record, garbage after the last record - is tolerated only at the very
tail of the last segment, after its attested end, where no record of a later batch follows it (the pages of the one
unsynced batch may reach the disk in any order): it is truncated and reported, as is a
trailing batch without its checkpoint (never acknowledged).  Anything else - a bad checksum
before the tail, a broken chain, a sequence gap, a wrong magic, version or market digest -
raises :class:`LogCorruptError` naming the segment file, the byte offset and the sequence
number.  Nothing is ever silently skipped.  ``docs/LOG_FORMAT.md`` is the byte-exact format.

One process writes (an ``fcntl.flock`` lock file); any number may read.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

import crc32c
import msgspec
import numpy as np

from engine.core import limits
from engine.core.records import COMMAND_DTYPE
from engine.durable.storage import OS_STORAGE, Storage

FORMAT_VERSION = 2
"""Version of the segment layout (the header and its end records); 1 had no end records."""
RECORD_VERSION = 1
"""Version of the record layout (unchanged since the first log: chain values are too)."""
SEGMENT_MAGIC = b"CETSLOG\x00"
RECORD_MAGIC = b"CETR"
END_MAGIC = b"CETSEND\x00"
SEGMENT_HEADER_BYTES = 128
END_RECORD_BYTES = 128
END_RECORDS = 2
"""Two end-record slots, written alternately: while one is being written the other is durable."""
DATA_START = SEGMENT_HEADER_BYTES + END_RECORDS * END_RECORD_BYTES
"""Offset of a segment's first record."""
RECORD_HEADER_BYTES = 128
RECORD_ALIGN_BYTES = 64
HASH_BYTES = 32
GENESIS_CHAIN = bytes(HASH_BYTES)
"""The chain value the first record of a log links to."""

RT_BATCH = 1
RT_CHECKPOINT = 2

DEFAULT_SEGMENT_BYTES = 64 << 20
SEGMENT_BYTES_MIN = 1024
ANNOTATIONS_BYTES_MAX = 16 << 20
"""Largest annotations blob of one batch."""
RECORD_BODY_BYTES_MAX = limits.BATCH_COMMANDS_MAX * COMMAND_DTYPE.itemsize + ANNOTATIONS_BYTES_MAX
SYNC_SAMPLES = 1_000_000
"""Sync durations :attr:`Journal.sync_seconds` keeps (the most recent)."""
LOCK_FILE = "LOCK"
SEGMENT_SUFFIX = ".seg"

# magic, version, header bytes, flags, first seq, market digest, previous chain, reserved, crc
_SEGMENT_HEADER = struct.Struct("<8sHHIQ32s32s36sI")
# magic, version, type, flags, first seq, count, annotations bytes, ts first, ts last,
# body bytes, body crc, previous chain, reserved, header crc
_RECORD_HEADER = struct.Struct("<4sHBBQIIqqII32s44sI")
# magic, generation, segment first seq, last seq, data end, next segment, chain, reserved, crc
_END_RECORD = struct.Struct("<8sQQQQQ32s44sI")
_CHECKPOINT_BODY = struct.Struct("<Q32s")
_CRC = struct.Struct("<I")

assert _SEGMENT_HEADER.size == SEGMENT_HEADER_BYTES
assert _RECORD_HEADER.size == RECORD_HEADER_BYTES
assert _END_RECORD.size == END_RECORD_BYTES
assert DATA_START % RECORD_ALIGN_BYTES == 0
assert COMMAND_DTYPE.itemsize % 8 == 0
assert RECORD_BODY_BYTES_MAX < 2**32, "body length is a u32"
assert limits.BATCH_COMMANDS_MAX < 2**32, "count is a u32"
assert SEGMENT_BYTES_MIN >= DATA_START + 2 * RECORD_HEADER_BYTES + 2 * 64

_ZERO_HEADER = bytes(RECORD_HEADER_BYTES)
_ANNOTATIONS = msgspec.msgpack.Decoder(list[bytes | None])


class Durability(enum.StrEnum):
    """When the writer forces the log to stable storage (``fdatasync``)."""

    BATCH = "batch"
    """After every batch, before it is acknowledged (the default)."""
    INTERVAL = "interval"
    """After a batch when ``sync_interval_s`` has passed since the last sync (group commit by
    time), and whenever :meth:`Journal.sync_if_due` finds it due - the writer's owner calls it
    from a timer (the gateway does, :meth:`Journal.sync_due_in` telling when), so that a quiet
    log is synced too; a power loss may then lose the batches of the last interval, a process
    crash loses none.  Without such a timer, batches written after the last sync wait for the
    next batch or :meth:`Journal.close`."""
    NONE = "none"
    """Never (the operating system writes back when it likes): for benchmarks and tests."""


class SpareSegments(enum.StrEnum):
    """How the writer prepares the file of its next segment (see "Spare segments" in the
    module docstring)."""

    BACKGROUND = "background"
    """On a thread of its own, paced, while the current segment fills (the default)."""
    INLINE = "inline"
    """On the writer's thread, unpaced, right after a segment starts (and at open): for a
    test's simulated storage, whose operations must come in one reproducible order.  The
    segment's creation moves from the roll to the start of the segment before it."""
    OFF = "off"
    """Never: a roll creates the new segment on the spot, zero-filling included."""


class JournalError(Exception):
    """Base class of the log's errors (broken I/O, misuse, damage)."""


class LogLockedError(JournalError):
    """Another writer holds the log (or data directory) lock."""


class LogCorruptError(JournalError):
    """Damage before the tail of the log: the log cannot be opened until an operator acts.

    Attributes
    ----------
    segment : str
        Path of the segment file.
    offset : int
        Byte offset in that file of the damaged header or record.
    seq : int or None
        Sequence number of the damaged record (the expected one when its header is unreadable).
    what : str
        What is wrong.
    """

    def __init__(self, segment: str, offset: int, seq: int | None, what: str) -> None:
        super().__init__(f"log corrupt: segment {segment}, byte offset {offset}, seq {seq}: {what}")
        self.segment, self.offset, self.seq, self.what = segment, offset, seq, what


class MarketMismatchError(LogCorruptError):
    """The log belongs to another market definition (its digest differs)."""


class MissingDataError(LogCorruptError):
    """Acknowledged data is missing: a segment's end record attests more than its data holds
    (a truncated or zeroed segment), or a sealed segment names a successor that is gone."""


class LogFullError(JournalError):
    """The file system is full (``ENOSPC``/``EDQUOT``) while writing a new batch record or a
    new segment: the batch is refused, nothing of it counts, the journal stays usable and the
    next batch tries again (space may have returned)."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFailedError(JournalError):
    """A write or sync of the log failed: the journal stops for good (a failed ``fdatasync``
    is never retried - the kernel may already have dropped the dirty pages it could not
    write, so a retry that succeeds would prove nothing).  Reopen to recover."""


class Problem(msgspec.Struct, frozen=True):
    """The first thing found wrong in a log.

    ``at_tail`` is true for damage a crash can cause at the end of the last segment (a torn or
    short record, garbage after the end, a batch without its checkpoint): recovery truncates it.
    """

    segment: str
    offset: int
    seq: int | None
    what: str
    at_tail: bool


class SegmentInfo(msgspec.Struct, frozen=True):
    """One segment as :func:`verify` found it."""

    path: str
    first_seq: int
    last_seq: int
    """``first_seq - 1`` for an empty segment."""
    records: int
    data_bytes: int
    """Header plus complete records: the offset where the next record goes."""


class VerifyReport(msgspec.Struct, frozen=True):
    """Outcome of :func:`verify`: what the log holds up to the first problem, if any."""

    log_dir: str
    segments: list[SegmentInfo]
    records: int
    batches: int
    commands: int
    events: int
    first_seq: int
    last_seq: int
    first_ts_ns: int
    last_ts_ns: int
    chain_hash: str
    """Hex chain value after the last complete record (the log's fingerprint)."""
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        """True when the log is clean (no problem, not even a tail to truncate)."""
        return self.problem is None


class JournalRecovery(msgspec.Struct, frozen=True):
    """What :meth:`Journal.open` found and did."""

    created: bool
    segments: int
    batches: int
    last_seq: int
    truncated_bytes: int = 0
    """Non-zero bytes discarded at the tail (a torn record, garbage, an unfinished batch)."""
    truncated_segment: str | None = None
    truncated_offset: int | None = None
    truncated_reason: str | None = None
    dropped_seqs: tuple[int, int] | None = None
    """First and last seq of an unacknowledged batch that was dropped (no checkpoint)."""
    removed_temp_files: list[str] = []


@dataclass(frozen=True, slots=True)
class LoggedBatch:
    """One complete batch as read back from the log (batch record plus its checkpoint).

    ``commands`` is a read-only :data:`~engine.core.records.COMMAND_DTYPE` view of the log's bytes.
    """

    first_seq: int
    count: int
    ts_first_ns: int
    ts_last_ns: int
    commands: np.ndarray
    annotations_blob: bytes
    event_count: int
    events_digest: bytes
    segment: str
    offset: int
    chain_before: bytes
    """Chain value the batch record links to (the state of the log before this batch)."""
    chain_after: bytes
    """Chain value after the checkpoint record (the state of the log after this batch)."""

    @property
    def last_seq(self) -> int:
        """Seq of the batch's last command."""
        return self.first_seq + self.count - 1

    def annotations(self) -> list[bytes | None] | None:
        """The per-command annotations, or None when the batch has none."""
        return decode_annotations(self.annotations_blob, self.count)


# ------------------------------------------------------------------------------------------
# Encoding helpers
# ------------------------------------------------------------------------------------------


def events_digest(events: np.ndarray) -> bytes:
    """blake2b-256 of the event records' bytes, as stored in a checkpoint."""
    return hashlib.blake2b(np.ascontiguousarray(events).data, digest_size=HASH_BYTES).digest()


_ANNOTATION_TYPES = {bytes, type(None)}
_NONE_TYPE = {type(None)}


def encode_annotations(annotations: Sequence[bytes | None] | None, count: int) -> bytes:
    """Per-command annotations -> the blob stored after the commands (b"" when all None).

    Parameters
    ----------
    annotations : sequence of bytes or None, or None
        One entry per command, in batch order; None for commands without one.
    count : int
        Number of commands in the batch; ``len(annotations)`` must equal it.
    """
    if annotations is None:
        return b""
    if len(annotations) != count:
        raise ValueError(f"{len(annotations)} annotations for {count} commands")
    items = list(annotations)
    types = set(map(type, items))  # C-level: ~1,000 items a batch
    if types == _NONE_TYPE:
        return b""
    if not types <= _ANNOTATION_TYPES:
        for item in items:
            if item is not None and not isinstance(item, bytes):
                raise TypeError(f"annotations must be bytes or None, not {type(item).__name__}")
    blob = msgspec.msgpack.encode(items)
    if len(blob) > ANNOTATIONS_BYTES_MAX:
        raise ValueError(f"annotations of one batch exceed {ANNOTATIONS_BYTES_MAX} bytes")
    return blob


def decode_annotations(blob: bytes, count: int) -> list[bytes | None] | None:
    """Inverse of :func:`encode_annotations` (None for an empty blob)."""
    if not blob:
        return None
    items = _ANNOTATIONS.decode(blob)
    if len(items) != count:
        raise ValueError(f"{len(items)} annotations for {count} commands")
    return items


def _padding(body_bytes: int) -> int:
    return -body_bytes % RECORD_ALIGN_BYTES


def record_bytes(body_bytes: int) -> int:
    """Bytes a record with a body of ``body_bytes`` occupies in a segment (header, padding)."""
    return RECORD_HEADER_BYTES + body_bytes + _padding(body_bytes)


CHECKPOINT_RECORD_BYTES = record_bytes(_CHECKPOINT_BODY.size)


def _seal_record(
    rtype: int,
    first_seq: int,
    count: int,
    annotations_bytes: int,
    ts_range: tuple[int, int],
    parts: Sequence,
    prev_chain: bytes,
) -> tuple[bytes, bytes]:
    """Header for a record whose body is the concatenation of ``parts``; returns (header,
    chain value after the record)."""
    body_bytes, body_crc = 0, 0
    for part in parts:
        body_crc = crc32c.crc32c(part, body_crc)
        body_bytes += memoryview(part).nbytes
    head = _RECORD_HEADER.pack(
        RECORD_MAGIC,
        RECORD_VERSION,
        rtype,
        0,
        first_seq,
        count,
        annotations_bytes,
        ts_range[0],
        ts_range[1],
        body_bytes,
        body_crc,
        prev_chain,
        b"",
        0,
    )[:-4]
    header = head + _CRC.pack(crc32c.crc32c(head))
    chain = hashlib.blake2b(header, digest_size=HASH_BYTES)
    for part in parts:
        chain.update(part)
    return header, chain.digest()


def _segment_header(first_seq: int, market_digest: bytes, prev_chain: bytes) -> bytes:
    head = _SEGMENT_HEADER.pack(
        SEGMENT_MAGIC,
        FORMAT_VERSION,
        DATA_START,
        0,
        first_seq,
        market_digest,
        prev_chain,
        b"",
        0,
    )[:-4]
    return head + _CRC.pack(crc32c.crc32c(head))


@dataclass(frozen=True, slots=True)
class EndRecord:
    """One end-record slot of a segment: what the writer attested at one sync.

    ``last_seq``/``data_end``/``chain`` are the log's committed end in this segment when the
    slot was written (``first_seq - 1``, :data:`DATA_START` and the header's ``prev_chain``
    for a segment without batches); ``next_segment`` is 0 while the segment is open and the
    first seq of the next segment once it is sealed.
    """

    generation: int
    last_seq: int
    data_end: int
    next_segment: int
    chain: bytes

    def claim(self) -> tuple[int, int, bytes]:
        """(last seq, data end, chain): what the slot attests about the data."""
        return self.last_seq, self.data_end, self.chain


def _end_record(segment_first_seq: int, record: EndRecord) -> bytes:
    head = _END_RECORD.pack(
        END_MAGIC,
        record.generation,
        segment_first_seq,
        record.last_seq,
        record.data_end,
        record.next_segment,
        record.chain,
        b"",
        0,
    )[:-4]
    return head + _CRC.pack(crc32c.crc32c(head))


def _end_slot_offset(index: int) -> int:
    return SEGMENT_HEADER_BYTES + index * END_RECORD_BYTES


def _parse_end_record(data: bytes, index: int, segment_first_seq: int) -> EndRecord | None:
    """The end record in slot ``index``, or None when the slot is damaged (torn, flipped, or
    written for another segment: the slot repeats the segment's first seq)."""
    at = _end_slot_offset(index)
    raw = bytes(data[at : at + END_RECORD_BYTES])
    if len(raw) < END_RECORD_BYTES:
        return None
    magic, generation, first_seq, last_seq, data_end, next_segment, chain, reserved, crc = (
        _END_RECORD.unpack(raw)
    )
    if magic != END_MAGIC or crc32c.crc32c(raw[:-4]) != crc or any(reserved):
        return None
    if first_seq != segment_first_seq or last_seq < first_seq - 1 or data_end < DATA_START:
        return None
    return EndRecord(generation, last_seq, data_end, next_segment, chain)


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first command has ``first_seq``."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def segment_paths(log_dir: str | Path) -> list[Path]:
    """The log's segment files in order (by the first sequence number in their names)."""
    found = [
        p
        for p in Path(log_dir).iterdir()
        if p.suffix == SEGMENT_SUFFIX and len(p.stem) == 20 and p.stem.isdigit()
    ]
    return sorted(found, key=lambda p: int(p.stem))


# ------------------------------------------------------------------------------------------
# Reading: one walk over the log that checks every byte
# ------------------------------------------------------------------------------------------


class _Damage(Exception):
    """Raised inside a segment scan; the walk decides whether it is a tail or corruption."""

    def __init__(self, offset: int, seq: int | None, what: str, torn: bool) -> None:
        super().__init__(what)
        self.offset, self.seq, self.what, self.torn = offset, seq, what, torn


@dataclass(slots=True)
class _Raw:
    offset: int
    rtype: int
    first_seq: int
    count: int
    annotations_bytes: int
    ts_first_ns: int
    ts_last_ns: int
    body: memoryview
    prev_chain: bytes
    chain: bytes
    end: int


@dataclass(slots=True)
class _Cursor:
    """The committed state of a walk: after the last complete batch (checkpoint included)."""

    chain: bytes
    next_seq: int
    last_ts_ns: int
    offset: int = DATA_START


def _all_zero(data: bytes, start: int) -> bool:
    if start >= len(data):
        return True
    return not np.frombuffer(data, np.uint8, offset=start).any()


def _last_nonzero_end(data: bytes, start: int) -> int:
    """Offset just past the last non-zero byte at or after ``start`` (``start`` if none)."""
    if start >= len(data):
        return start
    nonzero = np.flatnonzero(np.frombuffer(data, np.uint8, offset=start))
    return start + int(nonzero[-1]) + 1 if nonzero.size else start


def _header_ok(data: bytes, pos: int) -> bool:
    head = data[pos : pos + RECORD_HEADER_BYTES]
    if len(head) < RECORD_HEADER_BYTES or head[:4] != RECORD_MAGIC:
        return False
    return crc32c.crc32c(head[:-4]) == _CRC.unpack_from(head, RECORD_HEADER_BYTES - 4)[0]


def _later_batch_after(data: bytes, pos: int, seq: int) -> bool:
    """Whether a valid record header after ``pos`` belongs to a batch after ``seq``.

    This tells damage from a torn tail: the records of the unfinished batch (first seq
    ``seq``) may reach the disk in any order, records of a later batch only after it was
    complete, so damage followed by a later batch is never a crash's doing.
    """
    at = data.find(RECORD_MAGIC, pos + 1)
    while at != -1:
        aligned = at % RECORD_ALIGN_BYTES == 0
        if aligned and _header_ok(data, at) and _RECORD_HEADER.unpack_from(data, at)[4] != seq:
            return True
        at = data.find(RECORD_MAGIC, at + 1)
    return False


def _read_record(data: bytes, pos: int, expected_seq: int) -> _Raw | None:
    """The record at ``pos`` with its integrity checked, or None at the end of the data."""
    head = data[pos : pos + RECORD_HEADER_BYTES]
    if len(head) < RECORD_HEADER_BYTES or head == _ZERO_HEADER:
        if _all_zero(data, pos):
            return None
        what = (
            "truncated record header"
            if len(head) < RECORD_HEADER_BYTES
            else ("non-zero bytes after the end of the log")
        )
        raise _Damage(pos, expected_seq, what, torn=True)
    (
        magic,
        version,
        rtype,
        flags,
        first_seq,
        count,
        ann_bytes,
        ts_first,
        ts_last,
        body_bytes,
        body_crc,
        prev_chain,
        reserved,
        header_crc,
    ) = _RECORD_HEADER.unpack(head)
    if magic != RECORD_MAGIC:
        raise _Damage(pos, expected_seq, f"bad record magic {magic!r}", torn=True)
    if crc32c.crc32c(head[:-4]) != header_crc:
        raise _Damage(pos, expected_seq, "record header checksum mismatch", torn=True)
    if version != RECORD_VERSION:
        raise _Damage(pos, first_seq, f"unsupported record version {version}", torn=False)
    if rtype not in (RT_BATCH, RT_CHECKPOINT) or flags or any(reserved):
        raise _Damage(pos, first_seq, f"unknown record type {rtype} or flags", torn=False)
    if body_bytes > RECORD_BODY_BYTES_MAX:
        raise _Damage(pos, first_seq, f"record body of {body_bytes} bytes too large", torn=False)
    body_at = pos + RECORD_HEADER_BYTES
    end = body_at + body_bytes + _padding(body_bytes)
    if end > len(data):
        raise _Damage(pos, first_seq, "truncated record body", torn=True)
    body = memoryview(data)[body_at : body_at + body_bytes]
    if crc32c.crc32c(body) != body_crc:
        raise _Damage(pos, first_seq, "record body checksum mismatch", torn=True)
    if any(data[body_at + body_bytes : end]):
        raise _Damage(pos, first_seq, "non-zero record padding", torn=True)
    chain = hashlib.blake2b(head, digest_size=HASH_BYTES)
    chain.update(body)
    return _Raw(
        pos,
        rtype,
        first_seq,
        count,
        ann_bytes,
        ts_first,
        ts_last,
        body,
        prev_chain,
        chain.digest(),
        end,
    )


def _check_batch(raw: _Raw, cursor: _Cursor) -> np.ndarray:
    """Semantic checks of a batch record against the log so far; returns its commands."""

    def fail(what: str) -> _Damage:
        return _Damage(raw.offset, raw.first_seq, what, torn=False)

    if raw.prev_chain != cursor.chain:
        raise fail("hash chain broken: record does not link to the previous record")
    if raw.first_seq != cursor.next_seq:
        raise fail(f"sequence gap: expected seq {cursor.next_seq}, found {raw.first_seq}")
    count = raw.count
    if not 1 <= count <= limits.BATCH_COMMANDS_MAX:
        raise fail(f"batch of {count} commands")
    if len(raw.body) != count * COMMAND_DTYPE.itemsize + raw.annotations_bytes:
        raise fail("batch body length does not match its count and annotations")
    if not cursor.last_ts_ns <= raw.ts_first_ns <= raw.ts_last_ns:
        raise fail("timestamps go backwards")
    commands = np.frombuffer(raw.body, COMMAND_DTYPE, count)
    if not commands.flags.aligned:
        commands = commands.copy()
    seqs, ts = commands["seq"], commands["ts_ns"]
    if not np.array_equal(seqs, np.arange(raw.first_seq, raw.first_seq + count, dtype=np.int64)):
        raise fail("command sequence numbers do not match the batch header")
    if ts[0] != raw.ts_first_ns or ts[-1] != raw.ts_last_ns or np.any(ts[1:] < ts[:-1]):
        raise fail("command timestamps do not match the batch header")
    if raw.annotations_bytes:
        try:
            decode_annotations(bytes(raw.body[count * COMMAND_DTYPE.itemsize :]), count)
        except (msgspec.DecodeError, ValueError) as exc:
            raise fail(f"bad annotations: {exc}") from None
    return commands


def _check_checkpoint(raw: _Raw, batch: _Raw) -> tuple[int, bytes]:
    """Semantic checks of a checkpoint record against its batch; returns (count, digest)."""
    if raw.prev_chain != batch.chain:
        raise _Damage(raw.offset, raw.first_seq, "hash chain broken at checkpoint", torn=False)
    same = (raw.first_seq, raw.count, raw.ts_first_ns, raw.ts_last_ns) == (
        batch.first_seq,
        batch.count,
        batch.ts_first_ns,
        batch.ts_last_ns,
    )
    if not same or raw.annotations_bytes or len(raw.body) != _CHECKPOINT_BODY.size:
        raise _Damage(raw.offset, raw.first_seq, "checkpoint does not match its batch", False)
    event_count, digest = _CHECKPOINT_BODY.unpack(raw.body)
    return event_count, digest


@dataclass(slots=True)
class _Ends:
    """A segment's valid end records, and which of them the data reached so far."""

    records: list[EndRecord]
    """The valid slots, oldest first."""
    confirmed: EndRecord
    """What was certainly synced: the older slot of the last segment (while the newer one was
    written, it was durable), the newest of an earlier segment (synced before its successor
    was created)."""
    damaged: Problem | None
    matched: set[int]

    @property
    def newest(self) -> EndRecord:
        return self.records[-1]

    @property
    def sealed(self) -> EndRecord | None:
        return next((record for record in self.records if record.next_segment), None)

    def match(self, path: Path, last_seq: int, data_end: int, chain: bytes) -> None:
        """The data reached ``last_seq``: every end record naming it must agree."""
        for record in self.records:
            if record.last_seq != last_seq:
                continue
            if (record.data_end, record.chain) != (data_end, chain):
                what = f"end record (generation {record.generation}) does not match the data"
                raise LogCorruptError(str(path), data_end, last_seq, f"{what} at seq {last_seq}")
            self.matched.add(record.generation)

    def check_matched(self, path: Path, body_last: int) -> None:
        for record in self.records:
            if record.last_seq <= body_last and record.generation not in self.matched:
                what = f"end record names seq {record.last_seq}, not the end of a batch"
                raise LogCorruptError(str(path), record.data_end, record.last_seq, what)


def _read_ends(path: Path, data: bytes, first_seq: int, is_last: bool) -> _Ends:
    slots = [_parse_end_record(data, i, first_seq) for i in range(END_RECORDS)]
    valid = sorted((r for r in slots if r is not None), key=lambda r: r.generation)
    bad = [_end_slot_offset(i) for i, record in enumerate(slots) if record is None]
    if not valid:
        raise LogCorruptError(str(path), SEGMENT_HEADER_BYTES, first_seq, "end records damaged")
    damaged = None
    if bad:  # a crash may tear the slot being written; the other one was durable then
        what = "end record damaged (torn by a crash, or decayed; the other slot holds)"
        damaged = Problem(str(path), bad[0], first_seq, what, True)
    confirmed = valid[0] if is_last else valid[-1]
    return _Ends(valid, confirmed, damaged, set())


class LogWalk:
    """Iterates the complete batches of a log, checking every byte on the way.

    Damage before the tail raises :class:`LogCorruptError`.  Damage at the tail (see module
    docstring) ends the walk and is left in ``tail`` (a :class:`Problem`); ``cursor`` and
    ``segment`` then describe the committed end of the log (where a writer continues), and
    ``complete`` tells a walk that reached the end from one that stopped at ``until_seq``.

    Parameters
    ----------
    log_dir : str or Path
        The log directory.
    market_digest : bytes, optional
        Expected market digest (default: the first segment's).
    from_seq : int
        Batches ending before this seq are checked but not yielded; segments before the one
        holding it are not read at all.
    until_seq : int, optional
        Stop after the batch holding this seq (a reader of a live log).
    map_segments : bool
        Read segments through a read-only ``mmap`` instead of copying them into memory
        (faster replay; the file must not be truncated while batches are in use).
    """

    def __init__(
        self,
        log_dir: str | Path,
        market_digest: bytes | None = None,
        from_seq: int = 1,
        until_seq: int | None = None,
        map_segments: bool = False,
    ) -> None:
        self.map_segments = map_segments
        self.log_dir = Path(log_dir)
        self.market_digest = market_digest
        self.from_seq, self.until_seq = from_seq, until_seq
        self.cursor: _Cursor | None = None
        self.segment: Path | None = None
        self.tail: Problem | None = None
        self.tail_end = 0
        self.dropped_seqs: tuple[int, int] | None = None
        self._pending: _Raw | None = None
        self.segments: list[SegmentInfo] = []
        self.records = self.batches = self.commands = self.events = 0
        self.first_seq = self.first_ts_ns = 0
        self._records_before = 0
        self.complete = False
        self._ends: _Ends | None = None
        self.repairable: Problem | None = None
        """A damaged end-record slot whose twin holds (reported; recovery rewrites it)."""

    def _start_index(self, paths: list[Path]) -> int:
        start = 0
        for i, path in enumerate(paths):
            if int(path.stem) <= self.from_seq:
                start = i
        return start

    def __iter__(self) -> Iterator[LoggedBatch]:
        paths = segment_paths(self.log_dir)
        for i in range(self._start_index(paths), len(paths)):
            path, is_last = paths[i], i == len(paths) - 1
            data = self._read_segment(path)
            self._open_segment(path, data, is_last)
            try:
                yield from self._segment_batches(path, data, is_last)
            except _Damage as damage:
                self._damaged(path, data, damage, is_last)
            if self.complete or self.tail is not None:
                return
        self.complete = True
        if self.tail is None and self.repairable is not None:
            self.tail = self.repairable

    def _read_segment(self, path: Path) -> bytes:
        if not self.map_segments:
            return path.read_bytes()
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return b""
            mapped = mmap.mmap(handle.fileno(), size, prot=mmap.PROT_READ)
        return mapped  # type: ignore[return-value] # slices, find and buffers, like bytes

    def _open_segment(self, path: Path, data: bytes, is_last: bool) -> None:
        """Check a segment header and its link to the previous segment; reset the cursor."""
        name_seq = int(path.stem)

        def fail(what: str, cls: type[LogCorruptError] = LogCorruptError) -> LogCorruptError:
            return cls(str(path), 0, name_seq, what)

        if len(data) < DATA_START:
            raise fail("segment shorter than its header and end records")
        (magic, version, header_bytes, flags, first_seq, digest, prev_chain, reserved, crc) = (
            _SEGMENT_HEADER.unpack_from(data)
        )
        if magic != SEGMENT_MAGIC:
            raise fail(f"bad segment magic {magic!r}")
        if crc32c.crc32c(data[: SEGMENT_HEADER_BYTES - 4]) != crc:
            raise fail("segment header checksum mismatch")
        if version != FORMAT_VERSION or header_bytes != DATA_START:
            raise fail(f"unsupported segment version {version}")
        if flags or any(reserved):
            raise fail("unknown segment flags")
        if first_seq != name_seq:
            raise fail(f"segment header says first seq {first_seq}, its name {name_seq}")
        if self.market_digest is None:
            self.market_digest = digest
        elif digest != self.market_digest:
            raise fail("market definition digest does not match", MarketMismatchError)
        cursor = self.cursor
        if cursor is not None and first_seq != cursor.next_seq:
            raise fail(f"sequence gap: expected seq {cursor.next_seq}, segment starts {first_seq}")
        if cursor is not None and prev_chain != cursor.chain:
            raise fail("hash chain broken at segment boundary")
        last_ts = cursor.last_ts_ns if cursor is not None else 0
        self.cursor = _Cursor(prev_chain, first_seq, last_ts)
        self.segment = path
        self._records_before = self.records
        self._ends = _read_ends(path, data, first_seq, is_last)
        self._ends.match(path, first_seq - 1, DATA_START, prev_chain)

    def _segment_batches(self, path: Path, data: bytes, is_last: bool) -> Iterator[LoggedBatch]:
        cursor = self.cursor
        assert cursor is not None
        pos, commands = DATA_START, None
        while (raw := _read_record(data, pos, cursor.next_seq)) is not None:
            if raw.rtype == RT_BATCH:
                if self._pending is not None:
                    raise _Damage(raw.offset, raw.first_seq, "batch without checkpoint", False)
                commands, self._pending = _check_batch(raw, cursor), raw
            else:
                pending = self._pending
                if pending is None or commands is None:
                    raise _Damage(raw.offset, raw.first_seq, "checkpoint without batch", False)
                event_count, digest = _check_checkpoint(raw, pending)
                self._pending = None
                batch = self._commit(path, pending, commands, raw, event_count, digest)
                if self.until_seq is not None and batch.first_seq > self.until_seq:
                    self.complete = True
                    return
                if batch.last_seq >= self.from_seq:
                    yield batch
            pos = raw.end
        self._segment_done(path)
        unconfirmed = self._check_end(path, is_last)
        if self._pending is not None:
            offset, seq = self._pending.offset, self._pending.first_seq
            if not is_last:
                raise LogCorruptError(str(path), offset, seq, "batch without checkpoint")
            what = "batch without checkpoint (never acknowledged)"
            self._set_tail(Problem(str(path), offset, seq, what, True), data)
        elif unconfirmed is not None:
            self._set_tail(unconfirmed, data)

    def _check_end(self, path: Path, is_last: bool) -> Problem | None:
        """Hold the segment's data against its end records (see docs/LOG_FORMAT.md §5.1).

        Raises when acknowledged data is missing; returns the tail to cut quietly when only
        the newest end record of the last segment - whose sync may not have completed - names
        more than the data holds (or one slot of it is torn)."""
        cursor, ends = self.cursor, self._ends
        assert cursor is not None and ends is not None
        body_last, where = cursor.next_seq - 1, str(path)
        ends.check_matched(path, body_last)
        attested = ends.confirmed
        if attested.last_seq > body_last:
            lost = attested.last_seq - body_last
            raise MissingDataError(
                where,
                cursor.offset,
                cursor.next_seq,
                f"acknowledged data missing: the end record attests seq {attested.last_seq} "
                f"ending at byte {attested.data_end}, the data ends at seq {body_last} "
                f"(byte {cursor.offset}): {lost} acknowledged commands lost",
            )
        sealed = ends.sealed
        if sealed is not None:
            if body_last != sealed.last_seq:
                what = f"data after the seal (sealed at seq {sealed.last_seq})"
                raise LogCorruptError(where, sealed.data_end, sealed.last_seq + 1, what)
            following = self.log_dir / segment_name(sealed.next_segment)
            if is_last and not following.exists():  # (it may have just been created: done)
                raise MissingDataError(
                    str(following),
                    0,
                    sealed.next_segment,
                    f"segment missing: {path.name} was sealed naming {following.name} as the "
                    "next segment",
                )
        newest = ends.newest
        if is_last and newest.last_seq > body_last:
            return Problem(
                where,
                cursor.offset,
                cursor.next_seq,
                f"the newest end record names seq {newest.last_seq} (byte {newest.data_end}) "
                f"but the data ends at seq {body_last}: its sync never completed "
                "(never acknowledged)",
                True,
            )
        if not is_last:
            self.repairable = self.repairable or ends.damaged
            return None
        return ends.damaged

    def _set_tail(self, problem: Problem, data: bytes) -> None:
        cursor = self.cursor
        assert cursor is not None
        self.tail = problem
        self.tail_end = _last_nonzero_end(data, cursor.offset)
        if self._pending is not None:
            pending = self._pending
            self.dropped_seqs = (pending.first_seq, pending.first_seq + pending.count - 1)

    def _commit(
        self,
        path: Path,
        batch: _Raw,
        commands: np.ndarray,
        checkpoint: _Raw,
        event_count: int,
        digest: bytes,
    ) -> LoggedBatch:
        cursor = self.cursor
        assert cursor is not None
        cursor.chain, cursor.next_seq = checkpoint.chain, batch.first_seq + batch.count
        cursor.last_ts_ns, cursor.offset = batch.ts_last_ns, checkpoint.end
        assert self._ends is not None
        self._ends.match(path, cursor.next_seq - 1, cursor.offset, cursor.chain)
        if self.batches == 0:
            self.first_seq, self.first_ts_ns = batch.first_seq, batch.ts_first_ns
        self.records += 2
        self.batches += 1
        self.commands += batch.count
        self.events += event_count
        annotations = bytes(batch.body[batch.count * COMMAND_DTYPE.itemsize :])
        return LoggedBatch(
            batch.first_seq,
            batch.count,
            batch.ts_first_ns,
            batch.ts_last_ns,
            commands,
            annotations,
            event_count,
            digest,
            str(path),
            batch.offset,
            batch.prev_chain,
            checkpoint.chain,
        )

    def _segment_done(self, path: Path) -> None:
        cursor = self.cursor
        assert cursor is not None
        records = self.records - self._records_before
        info = SegmentInfo(str(path), int(path.stem), cursor.next_seq - 1, records, cursor.offset)
        self.segments.append(info)

    def _damaged(self, path: Path, data: bytes, damage: _Damage, is_last: bool) -> None:
        """A tail when a crash can explain it, else corruption."""
        cursor = self.cursor
        assert cursor is not None
        unfinished = cursor.next_seq  # first seq of the batch that may be unfinished
        assert self._ends is not None
        attested = self._ends.confirmed.last_seq
        if damage.torn and is_last and attested >= unfinished:
            cut = damage.what.startswith("truncated")  # the file ends inside acknowledged data
            what = f"{damage.what} (acknowledged data: the end record attests seq {attested})"
            if cut:
                what = f"acknowledged data missing: {what}"
            error = MissingDataError if cut else LogCorruptError
            raise error(str(path), damage.offset, damage.seq, what)
        if damage.torn and is_last and not _later_batch_after(data, damage.offset, unfinished):
            self._segment_done(path)
            self._set_tail(Problem(str(path), damage.offset, damage.seq, damage.what, True), data)
            return
        raise LogCorruptError(str(path), damage.offset, damage.seq, damage.what)


_Walk = LogWalk  # the name replay.datadir subclasses


def verify(
    log_dir: str | Path, market_digest: bytes | None = None, map_segments: bool = False
) -> VerifyReport:
    """Check every byte of a log without changing it.

    Parameters
    ----------
    log_dir : str or Path
        The log directory (holding the ``*.seg`` files).
    market_digest : bytes, optional
        Expected market-definition digest; by default the first segment's is taken.
    map_segments : bool
        Read through ``mmap`` (see :class:`LogWalk`).

    Returns
    -------
    VerifyReport
        Counts, seq and timestamp ranges and the final chain hash of the valid prefix, and
        ``problem``: None for a clean log, else the first problem (segment, byte offset, seq,
        what, and whether it is tail damage that recovery would truncate).
    """
    walk = LogWalk(log_dir, market_digest, map_segments=map_segments)
    problem: Problem | None = None
    try:
        for _ in walk:
            pass
        problem = walk.tail
    except LogCorruptError as exc:
        problem = Problem(exc.segment, exc.offset, exc.seq, exc.what, False)
    cursor = walk.cursor
    chain = cursor.chain if cursor is not None else GENESIS_CHAIN
    return VerifyReport(
        str(log_dir),
        walk.segments,
        walk.records,
        walk.batches,
        walk.commands,
        walk.events,
        walk.first_seq,
        cursor.next_seq - 1 if cursor else 0,
        walk.first_ts_ns,
        cursor.last_ts_ns if cursor else 0,
        chain.hex(),
        problem,
    )


def read_log(
    log_dir: str | Path,
    from_seq: int = 1,
    market_digest: bytes | None = None,
    map_segments: bool = False,
) -> LogWalk:
    """The complete batches of a log (no lock needed), from the batch holding ``from_seq`` on.

    Every byte read is checked; damage before the tail raises :class:`LogCorruptError`, an
    incomplete tail (a live writer mid-batch, or a crash) ends the iteration and is left in
    the returned walk's ``tail``.
    """
    return LogWalk(log_dir, market_digest, from_seq=from_seq, map_segments=map_segments)


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (created, renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def acquire_lock(path: str | Path, what: str) -> int:
    """Take an exclusive ``flock`` on ``path`` (created if needed); returns the open fd.

    Raises
    ------
    LogLockedError
        Another process (or another open in this one) holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise LogLockedError(
                f"{what} is locked by another writer (pid {holder}, lock file {path})"
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


ZERO_FILL_CHUNK_BYTES = 1 << 20


def _preallocate(io: Storage, fd: int, start: int, size: int) -> None:
    """Write zeros over ``[start, size)`` of the file, so that its blocks are allocated and
    *written* before any record lands there.

    Why not ``posix_fallocate``: on ext4 and XFS it allocates *unwritten* extents, and the
    first write into each block converts the extent - a metadata change, so every batch's
    ``fdatasync`` then has to write that too (the inode, or a journal commit on a journalled
    file system) as well as the data.  Into blocks that were written before, ``fdatasync``
    flushes only the data: measured on this
    project's 2-core VM (ext4, 1.5 KB appends), p50 140-150 us and p99 250-270 us zero-filled
    against 150-170 us and 350-390 us fallocated.  Zero-filling a 64 MiB segment costs about
    35 ms there, once per segment (PostgreSQL zero-fills its WAL segments for the same reason).
    """
    chunk = bytes(min(ZERO_FILL_CHUNK_BYTES, max(size - start, 0)))
    offset = start
    while offset < size:
        part = memoryview(chunk)[: size - offset]
        io.pwrite(fd, [part], offset)
        offset += part.nbytes


SPARE_FILE = "spare-segment.tmp"
"""Name of the spare segment's file in the log directory (a ``.tmp`` file: never a segment)."""
SPARE_FILL_BYTES_PER_S = 64 << 20
"""Pace of a spare's zero-filling in the background: a 64 MiB segment in a second, a
fraction of what the device can write, so that the batches' ``fdatasync`` beside it hardly
wait (at 50,000 orders/s in batches of 30 a segment lasts about three seconds)."""
SPARE_START_FRACTION = 0.25
"""Fill of the current segment from which the background prepares the next one.  Preparing
costs the writer's thread too - the preparing thread takes the interpreter's lock at every
chunk: measured in-process, the gateway's CPU per order rose from 2.72 to 2.94 us while a spare
was being made, and throughput fell ~8% - so it is done once per segment, not from the start of
every log; the three quarters left of a 64 MiB segment last over a second even at 300,000
orders/s, longer than a paced preparation takes."""
SPARE_CHUNK_BYTES = 256 << 10
"""Zeros a spare's preparation writes (and hands to the device) at a time.  At most two
chunks are ever on their way to the device, so a batch's ``fdatasync`` queues behind no more
than that.  Measured on this project's 2-core VM (ext4 on a virtual disk; ``fdatasync`` of
1.5 KB appends, 2,000-3,000 each, ``python -m bench.segment_roll --probe`` and variants):
alone p99 210-260 us; beside 256 KiB chunks at 64 MiB/s p99 280-420 us, p99.9 380-570 us;
beside 1 MiB chunks at 128 MiB/s p99 1.8-3.6 ms; beside an unpaced zero-fill (a segment made
at the roll) p99 28-32 ms."""


class _Abandoned(Exception):
    """The spare's owner gave it up while it was being prepared."""


class _SpareWorker:
    """The journal's thread that prepares its spares, one at a time, for as long as the
    journal is open: started once, so that a roll only hands it the next spare (a wake-up)
    instead of starting a thread (some hundred microseconds on a busy machine)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="cets-spare-segment", daemon=True)
        self.thread.start()  # (RuntimeError when no thread can be had: the caller goes on)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` after the ones handed over before it."""
        self._jobs.put(job)

    def stop(self) -> None:
        """Let the thread finish the jobs handed over, then end; wait for it."""
        self._jobs.put(None)
        self.thread.join()


class _SpareSegment:
    """The file of the next segment, being prepared or ready: :data:`SPARE_FILE` in
    ``log_dir``, ``size`` bytes of zeros, fsynced (the module docstring, "Spare segments").

    The preparation runs on the journal's :class:`_SpareWorker` (``worker``) or at once, on
    the caller's thread (None).  It touches nothing but its own file and this object's ``fd``,
    ``created`` and ``error``, which the owner reads only after :meth:`wait`.  The file is
    created exclusively (``O_EXCL``), so a preparation never overwrites a file it did not
    create, and only the file it created is ever deleted.
    """

    def __init__(self, io: Storage, log_dir: Path, size: int, worker: _SpareWorker | None):
        self.io, self.path, self.size = io, log_dir / SPARE_FILE, size
        self.fd = -1
        self.created = False
        self.error: Exception | None = None
        self._hurry = threading.Event()
        """Set: no more pacing (the owner waits for the file, or gives it up)."""
        self._done = threading.Event()
        self._abandoned = False
        if worker is None:
            self._hurry.set()
            self._prepare()
        else:
            worker.submit(self._prepare)

    def _prepare(self) -> None:
        try:
            fd = self.io.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            self.created = True
            try:
                self._fill(fd)
                self.io.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    self.io.close(fd)
                raise
            self.fd = fd
        except Exception as exc:  # noqa: BLE001 - handed to the owner, who decides
            self.error = exc
        finally:
            self._done.set()

    def _fill(self, fd: int) -> None:
        """Zeros over the whole file, a chunk at a time: paced (at most
        :data:`SPARE_FILL_BYTES_PER_S`, each chunk's writeback started and the previous one's
        waited for, so that little is ever on its way at once) until the owner hurries it.
        The first chunk waits its turn too: the roll that asked for this spare still has its
        batch to sync."""
        io, size = self.io, self.size
        chunk = memoryview(bytes(min(SPARE_CHUNK_BYTES, size)))
        started, offset, previous = time.perf_counter(), 0, 0
        while offset < size:
            part = chunk[: size - offset]
            due = started + (offset + part.nbytes) / SPARE_FILL_BYTES_PER_S - time.perf_counter()
            if due > 0 and not self._hurry.is_set():
                self._hurry.wait(due)
            if self._abandoned:
                raise _Abandoned
            io.pwrite(fd, [part], offset)
            if not self._hurry.is_set():
                io.write_back(fd, offset, part.nbytes)
                if offset:
                    io.write_back(fd, previous, offset - previous, wait=True)
            previous, offset = offset, offset + part.nbytes

    def wait(self) -> None:
        """Wait until the preparation ended (unpaced from now on): ready, or failed."""
        self._hurry.set()
        self._done.wait()

    def take(self) -> int | None:
        """Wait for the preparation (unpaced from now on); the ready file's descriptor, which
        the caller owns from then on, or None when the preparation failed (its file deleted).

        Raises whatever a failed preparation raised if that was not an ``OSError`` (a bug)."""
        self.wait()
        error = self.error
        if self.fd < 0:
            self._delete()
            if error is not None and not isinstance(error, OSError):
                raise error
            return None
        fd, self.fd, self.created = self.fd, -1, False
        return fd

    def abandon(self) -> None:
        """Stop the preparation and close the file, leaving it where it is: what a crash
        leaves behind (recovery deletes it)."""
        self._abandoned = True
        self.wait()
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # a spare's close changes nothing of the log
                self.io.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Stop the preparation, close and delete the file."""
        self.abandon()
        self._delete()

    def _delete(self) -> None:
        if self.created:
            with contextlib.suppress(OSError):  # a .tmp file left over is deleted at open
                self.path.unlink(missing_ok=True)
            self.created = False


def _newest_of(slots: list[EndRecord | None]) -> int:
    """Index of the slot with the highest generation."""
    generations = [slot.generation if slot else -1 for slot in slots]
    return generations.index(max(generations))


@dataclass(slots=True)
class _Pending:
    offset: int
    first_seq: int
    count: int
    ts_range: tuple[int, int]
    chain: bytes
    size: int


class Journal:
    """The single writer of a log directory.

    Use :meth:`open`; then for every batch :meth:`append_batch`, apply it to the engine,
    :meth:`append_checkpoint` with the events (this syncs per the durability policy).

    Every sync first writes an *end record* (the committed end: last seq, byte offset, chain
    value) into the older of the segment's two end-record slots, in the same ``fdatasync`` as
    the data it covers; a failed write or sync stops the journal for good
    (:class:`StorageFailedError`).
    """

    def __init__(
        self,
        log_dir: Path,
        market_digest: bytes,
        durability: Durability,
        sync_interval_s: float,
        segment_bytes: int,
        monotonic: Callable[[], float],
        lock_fd: int,
        storage: Storage = OS_STORAGE,
        spare_segments: SpareSegments = SpareSegments.BACKGROUND,
    ) -> None:
        if segment_bytes < SEGMENT_BYTES_MIN:
            raise ValueError(f"segment_bytes must be at least {SEGMENT_BYTES_MIN}")
        if len(market_digest) != HASH_BYTES:
            raise ValueError("market digest must be 32 bytes")
        self.log_dir, self.market_digest = log_dir, market_digest
        self.durability = Durability(durability)
        self.sync_interval_s, self.segment_bytes = sync_interval_s, segment_bytes
        self._monotonic, self._lock_fd, self._io = monotonic, lock_fd, storage
        self.spare_segments = SpareSegments(spare_segments)
        self._spare: _SpareSegment | None = None
        self._spare_worker: _SpareWorker | None = None
        self._spare_due = (
            int(segment_bytes * SPARE_START_FRACTION)
            if self.spare_segments is SpareSegments.BACKGROUND
            else segment_bytes + 1
        )
        """Offset in the current segment from which the next spare is prepared (beyond the
        segment: :meth:`append_checkpoint` never starts one)."""
        self._fd = -1
        self._segment: Path | None = None
        self._segment_first = 1
        self._offset = self._committed = DATA_START
        self._slots: list[EndRecord | None] = [None] * END_RECORDS
        self._chain, self._next_seq, self._last_ts = GENESIS_CHAIN, 1, 0
        self._pending: _Pending | None = None
        self._last_sync = monotonic()
        self._dirty = False
        self._failure: BaseException | None = None
        self.recovery: JournalRecovery | None = None
        self.sync_seconds: collections.deque[float] = collections.deque(maxlen=SYNC_SAMPLES)
        """How long each of the last ``SYNC_SAMPLES`` ``fdatasync`` calls took (wall clock):
        the storage's share of a batch's latency, which a gateway reports in its stats."""

    @classmethod
    def open(
        cls,
        log_dir: str | Path,
        market_digest: bytes,
        *,
        durability: Durability | str = Durability.BATCH,
        sync_interval_s: float = 0.05,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
        storage: Storage = OS_STORAGE,
        spare_segments: SpareSegments | str = SpareSegments.BACKGROUND,
    ) -> Journal:
        """Open (creating if empty) the log in ``log_dir`` for writing, recovering its tail.

        Parameters
        ----------
        log_dir : str or Path
            Directory of the segment files; created if missing.
        market_digest : bytes
            ``MarketDefinition.digest()``; an existing log must carry the same one.
        durability : Durability or str
            ``"batch"`` (default), ``"interval"`` or ``"none"``.
        sync_interval_s : float
            Longest time between syncs under ``"interval"``.
        segment_bytes : int
            Preallocated size of a segment; a batch that does not fit starts a new one.
        monotonic : callable
            Clock for the sync interval (injected for tests).
        storage : Storage
            The file operations of the writer (a test's faulty one, or the real one).
        spare_segments : SpareSegments or str
            How the next segment's file is prepared ahead of its roll: ``"background"``
            (default), ``"inline"`` (for a storage that must not be used from two threads) or
            ``"off"`` (see "Spare segments" in the module docstring).

        Raises
        ------
        LogLockedError
            Another writer has the log open.
        LogCorruptError
            Damage before the tail (see :attr:`LogCorruptError.segment` and friends);
            :class:`MissingDataError` when acknowledged data is gone (docs/LOG_FORMAT.md §5.1).
        StorageFailedError
            A write or sync failed during recovery.
        """
        path = Path(log_dir)
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = acquire_lock(path / LOCK_FILE, f"log {path}")
        try:
            journal = cls(
                path,
                market_digest,
                Durability(durability),
                sync_interval_s,
                segment_bytes,
                monotonic,
                lock_fd,
                storage,
                SpareSegments(spare_segments),
            )
            journal._recover()
            journal._start_spare()
        except BaseException:
            if "journal" in locals():
                journal._stop_spares()
                if journal._fd >= 0:
                    os.close(journal._fd)
            os.close(lock_fd)
            raise
        return journal

    # -- recovery ------------------------------------------------------------------------------
    def _recover(self) -> None:
        removed = []
        for tmp in sorted(self.log_dir.glob("*.tmp")):
            tmp.unlink()  # a segment whose creation never finished: never part of the log
            removed.append(str(tmp))
        if not segment_paths(self.log_dir):
            self._guarded(self._start_segment, 1, GENESIS_CHAIN)
            self.recovery = JournalRecovery(True, 1, 0, 0, removed_temp_files=removed)
            return
        walk = LogWalk(self.log_dir, self.market_digest, map_segments=True)
        for _ in walk:
            pass
        cursor, segment = walk.cursor, walk.segment
        assert cursor is not None and segment is not None
        self._chain, self._next_seq, self._last_ts = (
            cursor.chain,
            cursor.next_seq,
            cursor.last_ts_ns,
        )
        self._segment, self._offset, self._committed = segment, cursor.offset, cursor.offset
        self._segment_first = int(segment.stem)
        self._fd = self._io.open(segment, os.O_RDWR)
        truncated = self._guarded(self._repair_tail, walk)
        self.recovery = JournalRecovery(
            False,
            len(walk.segments),
            walk.batches,
            self.last_seq,
            removed_temp_files=removed,
            **truncated,
        )

    def _repair_tail(self, walk: LogWalk) -> dict:
        """Cut a torn or unacknowledged tail, fill the segment again, and make both end
        records attest the recovered end (the least trusted slot first: the other one holds
        while it is written)."""
        io, fd = self._io, self._fd
        truncated = self._truncate_tail(walk) if walk.tail is not None else {}
        if io.size(fd) < self.segment_bytes:  # cut back: fill it again
            _preallocate(io, fd, self._offset, self.segment_bytes)  # beyond the data's end
            io.fdatasync(fd)
        head = os.pread(fd, DATA_START, 0)
        self._slots = [_parse_end_record(head, i, self._segment_first) for i in range(2)]
        self._confirm_end()
        return truncated

    def _truncate_tail(self, walk: LogWalk) -> dict:
        """Cut the log back to its committed end (after the last checkpoint)."""
        tail = walk.tail
        assert tail is not None and self._segment is not None
        self._io.ftruncate(self._fd, self._offset)
        self._io.fsync(self._fd)
        return {
            "truncated_bytes": max(walk.tail_end - self._offset, 0),
            "truncated_segment": str(self._segment),
            "truncated_offset": self._offset,
            "truncated_reason": f"{tail.what} at byte offset {tail.offset} (seq {tail.seq})",
            "dropped_seqs": walk.dropped_seqs,
        }

    # -- end records ---------------------------------------------------------------------------
    def _end_claim(self, next_segment: int = 0) -> EndRecord:
        generation = max((slot.generation for slot in self._slots if slot), default=0) + 1
        return EndRecord(generation, self._next_seq - 1, self._committed, next_segment, self._chain)

    def _newest_slot(self) -> int:
        return _newest_of(self._slots)

    def _put_end(self, fd: int, index: int, record: EndRecord, segment_first: int) -> None:
        self._io.pwrite(fd, [_end_record(segment_first, record)], _end_slot_offset(index))

    def _confirm_end(self) -> None:
        """Make both slots attest the committed end, each write synced before the next (so
        that a later cut of the last batch is found even though its sync was the last)."""
        slots = self._slots
        damaged = [i for i, slot in enumerate(slots) if slot is None]
        first = damaged[0] if damaged else self._newest_slot()
        for index in (first, 1 - first):
            slot = slots[index]
            if slot is not None and slot.claim() == self._end_claim().claim():
                continue
            record = self._end_claim()
            self._put_end(self._fd, index, record, self._segment_first)
            self._io.fdatasync(self._fd)
            slots[index] = record

    # -- writing -------------------------------------------------------------------------------
    @property
    def next_seq(self) -> int:
        """Sequence number the next batch must start with."""
        return self._next_seq

    @property
    def last_seq(self) -> int:
        """Last sequence number of the log's last complete batch (0 for an empty log)."""
        return self._next_seq - 1

    @property
    def last_ts_ns(self) -> int:
        """Timestamp of the last complete batch (0 for an empty log); the next may not be
        earlier."""
        return self._last_ts

    @property
    def chain_hash(self) -> bytes:
        """Chain value after the last complete batch."""
        return self._chain

    def _guarded(self, operation: Callable, *args):
        """Run a write operation; an ``OSError`` stops the journal for good (but a full file
        system while creating a segment refuses only the batch: :class:`LogFullError`)."""
        try:
            return operation(*args)
        except LogFullError:
            raise
        except OSError as exc:
            self._failure = exc
            where = self._segment.name if self._segment is not None else str(self.log_dir)
            raise StorageFailedError(
                f"log storage failed ({where}): {exc.strerror or exc}; the log is stopped "
                "(a failed write or sync is never retried), reopen it to recover"
            ) from exc

    def _start_spare(self, now: bool = False) -> None:
        """Start preparing the next segment's file, unless one is under way or ready - in the
        background, once the current segment is :data:`SPARE_START_FRACTION` full (``now``:
        whatever its fill; :meth:`append_checkpoint` calls this as it passes that point)."""
        if self.spare_segments is SpareSegments.OFF or self._spare is not None:
            return
        background = self.spare_segments is SpareSegments.BACKGROUND
        if background and not now and self._offset < self._spare_due:
            return
        worker = self._spare_worker
        if self.spare_segments is SpareSegments.BACKGROUND and worker is None:
            try:
                worker = self._spare_worker = _SpareWorker()
            except RuntimeError:  # no thread to be had: the next roll makes its segment itself
                return
        self._spare = _SpareSegment(self._io, self.log_dir, self.segment_bytes, worker)

    def _take_spare(self) -> int | None:
        """The ready spare's descriptor (waiting for it), or None: no spare, or it failed."""
        spare, self._spare = self._spare, None
        return spare.take() if spare is not None else None

    def _stop_spares(self, delete: bool = True) -> None:
        """Stop a preparation under way and the thread that prepares spares (waiting for it);
        close the spare's file and delete it - or, for a test that simulates a crash, leave
        it where it is (recovery deletes it)."""
        spare, self._spare = self._spare, None
        if spare is not None and delete:
            spare.discard()
        elif spare is not None:
            spare.abandon()
        worker, self._spare_worker = self._spare_worker, None
        if worker is not None:
            worker.stop()

    def _create_segment(self, first_seq: int, prev_chain: bytes) -> tuple[int, Path]:
        """Make a new segment durable (temporary name, sync, rename, directory sync): its
        header and both end-record slots attesting an empty segment.

        Into the spare when one is ready: zero-filled and fsynced already (its size and blocks
        are durable), it needs only the header's bytes synced, by ``fdatasync``.  Else the file
        is made here, as it was before spares: zero-filled and fsynced whole."""
        io = self._io
        final = self.log_dir / segment_name(first_seq)
        spare = self._take_spare()
        if spare is not None:
            fd, tmp, sync = spare, self.log_dir / SPARE_FILE, io.fdatasync
        else:
            tmp, sync = final.with_name(final.name + ".tmp"), io.fsync
            fd = io.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if spare is None:
                _preallocate(io, fd, DATA_START, self.segment_bytes)
            empty = [
                _end_record(first_seq, EndRecord(g, first_seq - 1, DATA_START, 0, prev_chain))
                for g in (1, 2)
            ]
            io.pwrite(fd, [_segment_header(first_seq, self.market_digest, prev_chain), *empty], 0)
            sync(fd)
            io.rename(tmp, final)
            io.fsync_dir(self.log_dir)
        except BaseException:
            io.close(fd)
            tmp.unlink(missing_ok=True)  # never part of the log
            raise
        return fd, final

    def _start_segment(self, first_seq: int, prev_chain: bytes) -> None:
        fd, path = self._create_segment(first_seq, prev_chain)
        self._fd, self._segment, self._segment_first = fd, path, first_seq
        self._offset = self._committed = DATA_START
        empty = EndRecord(0, first_seq - 1, DATA_START, 0, prev_chain)
        self._slots = [replace(empty, generation=1), replace(empty, generation=2)]
        self._last_batch_at = -1

    def _roll(self) -> None:
        """Start a new segment.  The old one is synced first (so only the last can have a
        tail), the new one made durable (in the spare, when one is ready), then the old one
        sealed with an end record naming its successor (so that deleting the last segment is
        found); then the next spare's preparation starts."""
        self._dirty = True  # the newest end record must attest the whole old segment
        self._sync_now()
        old_fd, old_first, old_slots = self._fd, self._segment_first, self._slots
        try:
            self._start_segment(self._next_seq, self._chain)
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            raise LogFullError(f"log storage full: {exc.strerror}; batch refused") from exc
        newest = old_slots[_newest_of(old_slots)]
        assert newest is not None
        seal = replace(newest, generation=newest.generation + 1, next_segment=self._next_seq)
        self._put_end(old_fd, 1 - _newest_of(old_slots), seal, old_first)
        self._io.fdatasync(old_fd)
        self._io.close(old_fd)
        self._start_spare()  # after the seal's sync: its writes do not compete with that

    def append_batch(self, commands: np.ndarray, annotations: bytes = b"") -> None:
        """Write one batch record (not yet durable, not yet complete).

        Parameters
        ----------
        commands : np.ndarray
            :data:`~engine.core.records.COMMAND_DTYPE` records whose ``seq`` run from
            :attr:`next_seq` consecutively and whose ``ts_ns`` never decrease.
        annotations : bytes
            Blob from :func:`encode_annotations` (b"" for none).
        """
        self._check_open()
        if self._pending is not None:
            raise JournalError("the previous batch has no checkpoint yet")
        records = _checked_commands(commands, self._next_seq, self._last_ts)
        if len(annotations) > ANNOTATIONS_BYTES_MAX:
            raise ValueError(f"annotations exceed {ANNOTATIONS_BYTES_MAX} bytes")
        count = len(records)
        body_bytes = count * COMMAND_DTYPE.itemsize + len(annotations)
        size = record_bytes(body_bytes)
        if (
            self._offset + size + CHECKPOINT_RECORD_BYTES > self.segment_bytes
            and self._offset > DATA_START
        ):
            self._guarded(self._roll)
        ts_range = (int(records["ts_ns"][0]), int(records["ts_ns"][-1]))
        parts = [records.view(np.uint8), annotations]
        header, chain = _seal_record(
            RT_BATCH, self._next_seq, count, len(annotations), ts_range, parts, self._chain
        )
        pad = bytes(_padding(body_bytes))
        try:  # beyond the committed end: a partial write is an unacknowledged tail
            self._io.pwrite(self._fd, [header, *parts, pad], self._offset)
        except OSError as exc:
            if exc.errno in _FULL:
                raise LogFullError(f"log storage full: {exc.strerror}; batch refused") from exc
            self._guarded(_raise, exc)
        self._pending = _Pending(self._offset, self._next_seq, count, ts_range, chain, size)
        self._offset += size
        self._dirty = True

    def append_checkpoint(
        self, events: np.ndarray, during: Callable[[], None] | None = None
    ) -> None:
        """Complete the pending batch with the digest of the events it produced, then sync
        according to the durability policy.  After this returns the batch may be acknowledged.

        Parameters
        ----------
        events : np.ndarray
            The event records the batch produced.
        during : callable, optional
            Called once, after the batch and its checkpoint are written and before the sync
            that makes them durable: when a sync is due, the end record is written and the
            device starts writing (:meth:`Storage.start_writeback`) first, so the caller's
            work overlaps the transfer and the ``fdatasync`` afterwards waits only for what
            is left of it.  It must not raise, and must not make anything of the batch
            visible outside the process: the batch is not durable until this method returns.
        """
        self._check_open()
        pending = self._pending
        if pending is None:
            raise JournalError("no batch waiting for its checkpoint")
        body = _CHECKPOINT_BODY.pack(len(events), events_digest(events))
        header, chain = _seal_record(
            RT_CHECKPOINT,
            pending.first_seq,
            pending.count,
            0,
            pending.ts_range,
            [body],
            pending.chain,
        )
        pad = bytes(_padding(len(body)))
        self._guarded(self._io.pwrite, self._fd, [header, body, pad], self._offset)
        self._offset += CHECKPOINT_RECORD_BYTES
        self._committed = self._offset
        self._pending = None
        self._chain, self._next_seq = chain, pending.first_seq + pending.count
        self._last_ts = pending.ts_range[1]
        self._last_batch_at = pending.offset
        self._sync_per_policy(during)
        if self._offset >= self._spare_due and self._spare is None:
            self._start_spare(now=True)  # after the batch's sync: not in its way

    _last_batch_at = -1
    """Offset of the last batch this writer completed in the current segment (-1: none)."""

    def last_batch_bytes(self) -> bytes:
        """The bytes of the last batch this writer completed, exactly as they are in the log:
        its batch record and its checkpoint record (what a replica appends; see
        :func:`decode_batch_bytes`)."""
        self._check_open()
        if self._last_batch_at < 0 or self._pending is not None:
            raise JournalError("no batch completed since the journal was opened")
        return os.pread(self._fd, self._offset - self._last_batch_at, self._last_batch_at)

    def abort_batch(self) -> None:
        """Erase the pending batch record (the engine failed to apply it; never acknowledged)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._offset = pending.offset
        self._guarded(self._io.pwrite, self._fd, [bytes(pending.size)], pending.offset)

    def _sync_per_policy(self, during: Callable[[], None] | None = None) -> None:
        due = self._monotonic() - self._last_sync >= self.sync_interval_s
        if self.durability is Durability.BATCH or (self.durability is Durability.INTERVAL and due):
            self._check_open()
            self._guarded(self._sync_now, during)
        elif during is not None:
            during()

    def sync(self) -> None:
        """Force everything written so far to stable storage, with an end record attesting
        the committed end (written into the older slot, in the same ``fdatasync``)."""
        self._check_open()
        self._guarded(self._sync_now)

    @property
    def durable_to_end(self) -> bool:
        """Everything written is on stable storage: the journal is open, has not failed, and
        nothing was written since the last sync (under ``none``: only before the first
        batch)."""
        return not self._dirty and self._failure is None and not self.closed

    def sync_due_in(self) -> float | None:
        """Under ``interval``: seconds until what is written but not yet synced is due for its
        sync (0 or less: due now); None when nothing waits for one - or another policy, or a
        failed or closed journal (:attr:`durable_to_end` tells those apart)."""
        if (
            self.durability is not Durability.INTERVAL
            or not self._dirty
            or self._failure is not None
            or self.closed
        ):
            return None
        return self._last_sync + self.sync_interval_s - self._monotonic()

    def sync_if_due(self) -> bool:
        """:meth:`sync` if :meth:`sync_due_in` says it is due; whether it synced."""
        due_in = self.sync_due_in()
        if due_in is None or due_in > 0:
            return False
        self.sync()
        return True

    def _sync_now(self, during: Callable[[], None] | None = None) -> None:
        """The end record, then ``fdatasync``; ``during`` (see :meth:`append_checkpoint`) runs
        between the two, once the device was told to start writing.  ``sync_seconds`` counts
        the time spent here without ``during``'s: what the batch waited for the storage."""
        if not self._dirty:
            if during is not None:
                during()
            self._last_sync = self._monotonic()
            return
        started = time.perf_counter()
        index = 1 - self._newest_slot()
        record = self._end_claim()
        self._put_end(self._fd, index, record, self._segment_first)
        waited = 0.0
        if during is not None:
            self._io.start_writeback(self._fd)  # a failure here is the sync's: never retried
            paused = time.perf_counter()
            during()
            waited = time.perf_counter() - paused
        self._io.fdatasync(self._fd)
        self._slots[index] = record
        self.sync_seconds.append(time.perf_counter() - started - waited)
        self._dirty = False
        self._last_sync = self._monotonic()

    def read(self, from_seq: int = 1) -> Iterator[LoggedBatch]:
        """Iterate the complete batches from the one holding ``from_seq`` up to the current
        end (batches appended while iterating are not included).  Segments are memory-mapped:
        the writer never changes a byte of a complete batch once it is open."""
        self._check_open()
        walk = LogWalk(self.log_dir, self.market_digest, from_seq, self.last_seq, map_segments=True)
        return iter(walk)

    def _check_open(self) -> None:
        if self._fd < 0:
            raise JournalError("journal is closed")
        if self._failure is not None:
            raise StorageFailedError(
                f"the log stopped after a storage failure ({self._failure}); reopen to recover"
            )

    @property
    def failed(self) -> BaseException | None:
        """The storage failure that stopped the journal (None while it works)."""
        return self._failure

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._fd < 0

    def close(self) -> None:
        """Erase an unfinished batch, sync, make both end records attest the end, and release
        the lock.  Idempotent.  After a storage failure nothing more is written.  A spare
        segment's preparation under way is stopped (its thread joined) and the spare deleted
        first."""
        if self._fd < 0:
            return
        try:
            self._stop_spares()
            if self._failure is None:
                self.abort_batch()
                self.sync()
                self._guarded(self._confirm_end)
        finally:
            os.close(self._fd)
            self._fd = -1
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raise(exc: BaseException) -> None:
    raise exc


SMALL_BATCH_COMMANDS = 32
"""Batches up to this size are checked with Python lists (6.8 -> 2.3 us for 2 commands)."""


def _checked_commands(commands: np.ndarray, next_seq: int, last_ts: int) -> np.ndarray:
    """The batch as a contiguous COMMAND_DTYPE array, its seq and ts checked."""
    if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
        raise TypeError("commands must be a COMMAND_DTYPE array")
    count = len(commands)
    if not 1 <= count <= limits.BATCH_COMMANDS_MAX:
        raise ValueError(f"a batch holds 1 to {limits.BATCH_COMMANDS_MAX} commands, not {count}")
    records = np.ascontiguousarray(commands)
    if count <= SMALL_BATCH_COMMANDS:  # a gateway at low load: lists beat numpy's call costs
        seq, ts = records["seq"].tolist(), records["ts_ns"].tolist()
        consecutive = seq == list(range(next_seq, next_seq + count))
        ordered = ts[0] >= last_ts and all(a <= b for a, b in zip(ts, ts[1:]))
    else:
        ts = records["ts_ns"]
        expected = np.arange(next_seq, next_seq + count, dtype=np.int64)
        consecutive = np.array_equal(records["seq"], expected)
        ordered = ts[0] >= last_ts and not np.any(ts[1:] < ts[:-1])
    if not consecutive:
        raise ValueError(f"batch seq must run consecutively from {next_seq}")
    if not ordered:
        raise ValueError("timestamps must never decrease")
    return records


# ------------------------------------------------------------------------------------------
# One batch's bytes on their own (replication)
# ------------------------------------------------------------------------------------------


def decode_batch_bytes(data: bytes) -> LoggedBatch:
    """Check and decode one batch as :meth:`Journal.last_batch_bytes` returns it (a batch
    record followed by its checkpoint record), outside any segment.

    Every check of a log walk runs except the link to what precedes the batch (its
    ``chain_before``, ``first_seq`` and timestamps are returned for the caller to compare with
    its own log).  ``segment`` is ``"<bytes>"`` and ``offset`` 0.

    Raises
    ------
    LogCorruptError
        The bytes are not exactly one complete, intact batch.
    """
    where = "<bytes>"
    try:
        raw = _read_record(data, 0, 0)
        if raw is None or raw.rtype != RT_BATCH:
            raise _Damage(0, None, "no batch record at the start", torn=False)
        cursor = _Cursor(raw.prev_chain, raw.first_seq, raw.ts_first_ns)
        commands = _check_batch(raw, cursor)
        check = _read_record(data, raw.end, raw.first_seq)
        if check is None or check.rtype != RT_CHECKPOINT:
            raise _Damage(raw.end, raw.first_seq, "batch without checkpoint", torn=False)
        event_count, digest = _check_checkpoint(check, raw)
        if check.end != len(data):
            raise _Damage(check.end, raw.first_seq, "bytes after the checkpoint", torn=False)
    except _Damage as damage:
        raise LogCorruptError(where, damage.offset, damage.seq, damage.what) from None
    return LoggedBatch(
        raw.first_seq,
        raw.count,
        raw.ts_first_ns,
        raw.ts_last_ns,
        commands,
        bytes(raw.body[raw.count * COMMAND_DTYPE.itemsize :]),
        event_count,
        digest,
        where,
        0,
        raw.prev_chain,
        check.chain,
    )

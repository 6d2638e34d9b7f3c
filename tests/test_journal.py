"""The command log on its own: format round trip, segments, durability policies, and that
every kind of damage is found where it is (tail damage truncated, anything else refused)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest

from engine.core.records import COMMAND_DTYPE, EVENT_DTYPE
from engine.durable import journal as jr

DIGEST = hashlib.blake2b(b"test market", digest_size=32).digest()
SMALL_SEGMENT = 4096


def make_commands(first_seq: int, count: int, ts_ns: int, salt: int = 0) -> np.ndarray:
    """Synthetic command records (the log does not interpret them)."""
    records = np.zeros(count, COMMAND_DTYPE)
    records["seq"] = np.arange(first_seq, first_seq + count)
    records["ts_ns"] = ts_ns
    records["order_id"] = np.arange(count) + 1000 * salt + 1
    records["price_ticks"] = 6000 + np.arange(count)
    records["qty_t"] = 7
    records["kind"] = 1
    return records


def make_events(count: int, salt: int) -> np.ndarray:
    events = np.zeros(count, EVENT_DTYPE)
    events["kind"], events["seq"], events["x5"] = 1, salt, np.arange(count)
    return events


def append(journal: jr.Journal, count: int, ts_ns: int, annotations=None, salt: int = 0):
    commands = make_commands(journal.next_seq, count, ts_ns, salt)
    journal.append_batch(commands, jr.encode_annotations(annotations, count))
    events = make_events(2 * count, salt)
    journal.append_checkpoint(events)
    return commands, events


def abandon(journal: jr.Journal) -> None:
    """A process crash: the journal's files are left as they are (the page cache keeps what
    was written; nothing more is synced; a spare segment stays as it is)."""
    journal._stop_spares(delete=False)
    os.close(journal._fd)
    os.close(journal._lock_fd)
    journal._fd = journal._lock_fd = -1


def write_log(
    path: Path, sizes: list[int], segment_bytes: int = SMALL_SEGMENT, unacknowledged: int = 0
) -> list:
    """A log of batches of the given sizes; returns [(commands, events)] per batch.  The last
    ``unacknowledged`` batches are written without a sync, then the writer crashes: complete
    on disk but never acknowledged (what a power loss may tear)."""
    written = []
    acknowledged = len(sizes) - unacknowledged
    with jr.Journal.open(path, DIGEST, segment_bytes=segment_bytes) as journal:
        for i, size in enumerate(sizes[:acknowledged]):
            written.append(append_numbered(journal, i, size))
    if unacknowledged:
        journal = jr.Journal.open(path, DIGEST, segment_bytes=segment_bytes, durability="none")
        for i, size in enumerate(sizes[acknowledged:], acknowledged):
            written.append(append_numbered(journal, i, size))
        abandon(journal)
    return written


def append_numbered(journal: jr.Journal, i: int, size: int):
    annotations = [b"c%d" % j if j % 2 else None for j in range(size)] if i % 2 else None
    return append(journal, size, 1_000 + 10 * i, annotations, salt=i)


def record_starts(log_dir: Path) -> dict[str, list[tuple[int, int]]]:
    """(start, end) of every record, per segment file, from a clean log."""
    starts: dict[str, list[tuple[int, int]]] = {}
    for batch in jr.read_log(log_dir):
        body = batch.count * COMMAND_DTYPE.itemsize + len(batch.annotations_blob)
        checkpoint = batch.offset + jr.record_bytes(body)
        starts.setdefault(batch.segment, []).extend(
            [(batch.offset, checkpoint), (checkpoint, checkpoint + jr.CHECKPOINT_RECORD_BYTES)]
        )
    return starts


# ------------------------------------------------------------------------------------------
# Round trip
# ------------------------------------------------------------------------------------------


def test_round_trip_batches_annotations_and_checkpoints(tmp_path: Path) -> None:
    written = write_log(tmp_path, [1, 3, 2, 5, 1, 4])
    batches = list(jr.read_log(tmp_path, market_digest=DIGEST))
    assert len(batches) == len(written)
    seq = 1
    for i, (batch, (commands, events)) in enumerate(zip(batches, written, strict=True)):
        assert batch.first_seq == seq and batch.count == len(commands)
        assert batch.commands.tobytes() == commands.tobytes()
        assert batch.ts_first_ns == batch.ts_last_ns == 1_000 + 10 * i
        assert batch.event_count == len(events)
        assert batch.events_digest == jr.events_digest(events)
        expected = [b"c%d" % j if j % 2 else None for j in range(len(commands))] if i % 2 else None
        assert batch.annotations() == expected
        seq += batch.count
    report = jr.verify(tmp_path)
    assert report.ok, report.problem
    assert (report.batches, report.records, report.commands) == (6, 12, 16)
    assert (report.first_seq, report.last_seq) == (1, 16)
    assert (report.first_ts_ns, report.last_ts_ns) == (1_000, 1_050)
    assert report.events == 32
    assert report.chain_hash == batches[-1].chain_after.hex()


def test_read_from_seq_starts_at_the_batch_holding_it(tmp_path: Path) -> None:
    write_log(tmp_path, [2] * 40)  # several segments
    assert len(jr.segment_paths(tmp_path)) > 2
    for from_seq in (1, 2, 3, 37, 38, 79, 80):
        first = next(iter(jr.read_log(tmp_path, from_seq)))
        assert first.first_seq <= from_seq <= first.last_seq
    assert list(jr.read_log(tmp_path, 81)) == []


def test_mapped_segments_read_the_same(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 7, 1] * 10)
    copied = list(jr.read_log(tmp_path, 5))
    mapped = list(jr.read_log(tmp_path, 5, map_segments=True))
    assert len(copied) == len(mapped) > 20
    for a, b in zip(copied, mapped, strict=True):
        assert a.commands.tobytes() == b.commands.tobytes() and a.chain_after == b.chain_after
        assert (a.first_seq, a.annotations(), a.events_digest) == (
            b.first_seq,
            b.annotations(),
            b.events_digest,
        )


def test_the_tail_is_left_in_the_walk(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 2], unacknowledged=1)
    (segment,) = jr.segment_paths(tmp_path)
    end = jr.verify(tmp_path).segments[-1].data_bytes
    data = bytearray(segment.read_bytes())
    data[end - 10] ^= 1  # the last checkpoint
    segment.write_bytes(data)
    walk = jr.read_log(tmp_path)
    assert [b.first_seq for b in walk] == [1]
    assert walk.tail is not None and walk.tail.at_tail and walk.tail.seq == 3


def test_segments_roll_and_link(tmp_path: Path) -> None:
    write_log(tmp_path, [3] * 30)
    report = jr.verify(tmp_path)
    assert report.ok and len(report.segments) > 2
    for previous, segment in zip(report.segments, report.segments[1:]):
        assert segment.first_seq == previous.last_seq + 1
        assert Path(segment.path).name == jr.segment_name(segment.first_seq)
    for path in jr.segment_paths(tmp_path):
        assert path.stat().st_size == SMALL_SEGMENT  # preallocated; the zero tail is free space


def test_a_batch_larger_than_a_segment_grows_it(tmp_path: Path) -> None:
    write_log(tmp_path, [1, 200, 1])  # 200 commands = 12,800 bytes > 4,096
    report = jr.verify(tmp_path)
    assert report.ok and report.commands == 202
    assert max(p.stat().st_size for p in jr.segment_paths(tmp_path)) > SMALL_SEGMENT


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 2])
    before = jr.verify(tmp_path)
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=SMALL_SEGMENT) as journal:
        assert journal.recovery is not None and not journal.recovery.created
        assert journal.recovery.truncated_bytes == 0
        assert journal.last_seq == 4 and journal.chain_hash.hex() == before.chain_hash
        append(journal, 3, 5_000)
    after = jr.verify(tmp_path)
    assert after.ok and after.last_seq == 7 and after.last_ts_ns == 5_000


def test_append_checks_seq_and_timestamps(tmp_path: Path) -> None:
    with jr.Journal.open(tmp_path, DIGEST) as journal:
        with pytest.raises(ValueError, match="consecutively"):
            journal.append_batch(make_commands(2, 1, 10))
        append(journal, 1, 100)
        with pytest.raises(ValueError, match="never decrease"):
            journal.append_batch(make_commands(2, 1, 99))
        with pytest.raises(TypeError):
            journal.append_batch(np.zeros(1, EVENT_DTYPE))
        with pytest.raises(ValueError, match="1 to"):
            journal.append_batch(make_commands(2, 0, 100))
        with pytest.raises(jr.JournalError, match="no batch waiting"):
            journal.append_checkpoint(make_events(1, 0))


@pytest.mark.parametrize("count", [3, jr.SMALL_BATCH_COMMANDS, jr.SMALL_BATCH_COMMANDS + 1, 500])
def test_append_checks_every_seq_and_timestamp_of_small_and_large_batches(
    tmp_path: Path, count: int
) -> None:
    """Small batches are checked with lists, large ones with numpy: both refuse a gap or a
    repeat anywhere in the batch, and a timestamp that goes back anywhere, and write nothing."""
    with jr.Journal.open(tmp_path, DIGEST) as journal:
        append(journal, 1, 100)
        bad = []
        for position in (1, count - 1):
            gap = make_commands(2, count, 100)
            gap["seq"][position:] += 1
            repeat = make_commands(2, count, 100)
            repeat["seq"][position] = repeat["seq"][position - 1]
            back = make_commands(2, count, 100)
            back["ts_ns"][:position] = 200
            bad += [(gap, "consecutively"), (repeat, "consecutively"), (back, "never decrease")]
        early = make_commands(2, count, 99)
        bad.append((early, "never decrease"))
        for records, message in bad:
            with pytest.raises(ValueError, match=message):
                journal.append_batch(records)
        good = make_commands(2, count, 100)
        good["ts_ns"] = 100 + np.arange(count)
        journal.append_batch(good)
        journal.append_checkpoint(make_events(1, 0))
        assert journal.last_seq == 1 + count
    assert jr.verify(tmp_path).last_seq == 1 + count


def _holes(path: Path) -> int:
    """Offset of the first hole (or unwritten extent, which ext4 and XFS report as a hole)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE)
    finally:
        os.close(fd)


def test_segments_are_written_with_zeros_not_fallocated(tmp_path: Path) -> None:
    """Every segment - new, rolled over, or cut back by recovery - is written out to its full
    size, so that no fdatasync of a batch also has to convert an unwritten extent.  (On a file
    system without SEEK_HOLE the whole file reads as data and the hole check is vacuous.)"""
    size = 64 * 1024
    journal = jr.Journal.open(tmp_path, DIGEST, segment_bytes=size)
    for _ in range(60):  # ~60 x 1.3 KB: rolls over into a second segment
        append(journal, 16, 10)
    journal.append_batch(make_commands(journal.next_seq, 16, 10))  # then a crash
    data_end = journal._offset
    abandon(journal)
    segments = jr.segment_paths(tmp_path)
    assert len(segments) >= 2
    for segment in segments:
        assert segment.stat().st_size == size and _holes(segment) == size
    last = segments[-1]
    last.write_bytes(last.read_bytes()[: data_end - 50])  # a crash cut the last record short
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=size) as journal:
        assert journal.recovery.truncated_bytes > 0
        assert last.stat().st_size == size and _holes(last) == size
        end = journal.recovery.truncated_offset
        assert not any(last.read_bytes()[end:])
        append(journal, 2, 10**6)
    assert jr.verify(tmp_path).ok


def test_annotations_are_validated() -> None:
    assert jr.encode_annotations(None, 3) == b""
    assert jr.encode_annotations([None, None], 2) == b""
    blob = jr.encode_annotations([b"x", None], 2)
    assert jr.decode_annotations(blob, 2) == [b"x", None]
    with pytest.raises(ValueError):
        jr.encode_annotations([b"x"], 2)
    with pytest.raises(TypeError):
        jr.encode_annotations(["text", None], 2)  # type: ignore[list-item]
    with pytest.raises(TypeError):  # None by identity, not by equality
        jr.encode_annotations([_EqualsEverything(), None], 2)  # type: ignore[list-item]


class _EqualsEverything:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


def test_abort_erases_the_pending_batch(tmp_path: Path) -> None:
    with jr.Journal.open(tmp_path, DIGEST) as journal:
        append(journal, 2, 10)
        journal.append_batch(make_commands(3, 4, 20))
        journal.abort_batch()
        append(journal, 1, 30)
    report = jr.verify(tmp_path)
    assert report.ok and report.last_seq == 3 and report.batches == 2


def test_close_with_a_pending_batch_drops_it(tmp_path: Path) -> None:
    journal = jr.Journal.open(tmp_path, DIGEST)
    append(journal, 2, 10)
    journal.append_batch(make_commands(3, 4, 20))
    journal.close()
    journal.close()  # idempotent
    assert jr.verify(tmp_path).last_seq == 2 and jr.verify(tmp_path).ok


def test_second_writer_is_refused(tmp_path: Path) -> None:
    with (
        jr.Journal.open(tmp_path, DIGEST),
        pytest.raises(jr.LogLockedError, match=f"pid {os.getpid()}"),
    ):
        jr.Journal.open(tmp_path, DIGEST)
    jr.Journal.open(tmp_path, DIGEST).close()  # released on close


def test_other_market_digest_is_refused(tmp_path: Path) -> None:
    write_log(tmp_path, [1])
    with pytest.raises(jr.MarketMismatchError, match="market definition digest"):
        jr.Journal.open(tmp_path, bytes(32))


def test_leftover_temporary_segment_is_removed(tmp_path: Path) -> None:
    write_log(tmp_path, [1])
    (tmp_path / (jr.segment_name(2) + ".tmp")).write_bytes(b"half a segment")
    with jr.Journal.open(tmp_path, DIGEST) as journal:
        assert journal.recovery is not None and len(journal.recovery.removed_temp_files) == 1
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------------------------------
# Durability policies
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("durability", "expected_syncs"), [("batch", 6), ("interval", 2), ("none", 0)]
)
def test_durability_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str, expected_syncs: int
) -> None:
    now = [0.0]
    journal = jr.Journal.open(
        tmp_path, DIGEST, durability=durability, sync_interval_s=1.0, monotonic=lambda: now[0]
    )
    syncs = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: syncs.append(fd))
    for i in range(6):
        now[0] = 0.5 * i  # interval: syncs at 1.0 s and 2.0 s
        append(journal, 1, i)
    assert len(syncs) == expected_syncs
    journal.close()  # close syncs what is left, then makes both end records attest the end
    assert len(syncs) == expected_syncs + (durability != "batch") + 1
    assert jr.Durability(durability) is journal.durability


def test_interval_tells_when_a_quiet_log_is_due_and_syncs_it_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    syncs: list[int] = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: syncs.append(fd))
    journal = jr.Journal.open(
        tmp_path, DIGEST, durability="interval", sync_interval_s=1.0, monotonic=lambda: now[0]
    )
    opened = len(syncs)
    assert journal.sync_due_in() is None  # nothing written since the last sync
    now[0] = 0.25
    append(journal, 1, 0)  # within the interval: written, not synced
    assert (journal.sync_due_in(), journal.sync_if_due(), len(syncs)) == (0.75, False, opened)
    now[0] = 1.0
    assert journal.sync_due_in() == 0.0
    assert journal.sync_if_due() is True and len(syncs) == opened + 1
    assert (journal.sync_due_in(), journal.sync_if_due()) == (None, False)
    journal.close()
    assert journal.sync_due_in() is None
    for policy in ("batch", "none"):
        other = jr.Journal.open(tmp_path / policy, DIGEST, durability=policy)
        append(other, 1, 0)
        assert (other.sync_due_in(), other.sync_if_due()) == (None, False)
        other.close()


# ------------------------------------------------------------------------------------------
# Damage: the tail is truncated, anything else is refused with segment, offset and seq
# ------------------------------------------------------------------------------------------


def test_truncating_the_last_record_at_every_byte_offset(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 3, 2], unacknowledged=1)
    (segment,) = jr.segment_paths(tmp_path)
    original = segment.read_bytes()
    records = record_starts(tmp_path)[str(segment)]
    last_batch_start, (checkpoint_start, end) = records[-2][0], records[-1]
    padding_start = checkpoint_start + jr.RECORD_HEADER_BYTES + 40
    for cut in range(last_batch_start, end):
        for torn_in_place in (False, True):  # a short file, or a preallocated file with zeros
            data = original[:cut] + (bytes(len(original) - cut) if torn_in_place else b"")
            segment.write_bytes(data)
            if torn_in_place and cut >= padding_start:  # only zero padding lost: complete
                assert jr.verify(tmp_path).ok and jr.verify(tmp_path).last_seq == 7
                continue
            check_cut(tmp_path, cut, last_batch_start, checkpoint_start)
    assert last_batch_start < checkpoint_start < end


def check_cut(log_dir: Path, cut: int, last_batch_start: int, checkpoint_start: int) -> None:
    report = jr.verify(log_dir)
    assert report.last_seq == 5, cut
    assert (report.problem is None) == (cut == last_batch_start), cut
    if report.problem is not None:
        damaged = checkpoint_start if cut > checkpoint_start else last_batch_start
        assert report.problem.at_tail and report.problem.offset == damaged, cut
    with jr.Journal.open(log_dir, DIGEST, segment_bytes=SMALL_SEGMENT) as journal:
        recovery = journal.recovery
        assert recovery is not None and journal.last_seq == 5
        if cut > last_batch_start:
            assert recovery.truncated_offset == last_batch_start
            assert 0 < recovery.truncated_bytes <= cut - last_batch_start
            assert recovery.dropped_seqs in (None, (6, 7))  # (6, 7): the batch was whole
            assert recovery.dropped_seqs == (6, 7) or cut < checkpoint_start
        append(journal, 1, 10**6)
    assert jr.verify(log_dir).ok and jr.verify(log_dir).last_seq == 6


def expected_problem(b: int, segment: str, starts: dict, data_end: dict) -> int:
    """Offset at which a flip of byte ``b`` of ``segment`` must be reported."""
    if b < jr.SEGMENT_HEADER_BYTES:
        return 0
    if b < jr.DATA_START:  # an end-record slot
        return b - (b - jr.SEGMENT_HEADER_BYTES) % jr.END_RECORD_BYTES
    for start, end in starts.get(segment, []):
        if start <= b < end:
            return start
    return data_end[segment]


def test_every_single_bit_flip_is_detected(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    write_log(tmp_path, [1, 1, 1], segment_bytes=jr.SEGMENT_BYTES_MIN, unacknowledged=1)
    paths = jr.segment_paths(tmp_path)
    assert len(paths) == 3
    clean = jr.verify(tmp_path)
    starts = record_starts(tmp_path)
    data_end = {s.path: s.data_bytes for s in clean.segments}
    originals = {p: p.read_bytes() for p in paths}
    for path in paths:
        for b in range(len(originals[path])):
            damaged = bytearray(originals[path])
            damaged[b] ^= 1 << rng.randrange(8)
            path.write_bytes(damaged)
            problem = jr.verify(tmp_path).problem
            assert problem is not None, (path.name, b)
            assert problem.segment == str(path), (path.name, b, problem)
            assert problem.offset == expected_problem(b, str(path), starts, data_end), (b, problem)
            in_slot = jr.SEGMENT_HEADER_BYTES <= b < jr.DATA_START  # its twin holds
            in_tail = path == paths[-1] and b >= starts[str(path)][-2][0]
            assert problem.at_tail == (in_slot or in_tail), (path.name, b, problem)
            check_open_reports(tmp_path, problem)  # rewrites the file; restored below
            path.write_bytes(originals[path])


def check_open_reports(log_dir: Path, problem: jr.Problem) -> None:
    if not problem.at_tail:
        with pytest.raises(jr.LogCorruptError) as caught:
            jr.Journal.open(log_dir, DIGEST).close()
        assert (caught.value.segment, caught.value.offset) == (problem.segment, problem.offset)
        assert str(problem.offset) in str(caught.value)
        return
    with jr.Journal.open(log_dir, DIGEST, segment_bytes=jr.SEGMENT_BYTES_MIN) as journal:
        in_slot = problem.offset in (128, 256) and "end record" in problem.what
        assert journal.recovery is not None and (journal.recovery.truncated_bytes > 0 or in_slot)
        assert journal.recovery.truncated_segment == problem.segment or in_slot


def reseal(path: Path, edit=None) -> None:
    """Recompute every checksum and the chain of a segment after ``edit(data, starts)``: what
    a careful forger (or a buggy writer) would produce.  Only semantic checks can catch it."""
    data = bytearray(path.read_bytes())
    if edit is not None:
        edit(data)
    head = data[: jr.SEGMENT_HEADER_BYTES - 4]
    data[jr.SEGMENT_HEADER_BYTES - 4 : jr.SEGMENT_HEADER_BYTES] = struct.pack(
        "<I", crc32c.crc32c(bytes(head))
    )
    chain = bytes(data[56:88])  # the segment header's prev_chain
    last_seq = struct.unpack_from("<Q", data, 16)[0] - 1
    pos = jr.DATA_START
    while pos < len(data) and any(data[pos : pos + 4]):
        body_bytes = struct.unpack_from("<I", data, pos + 40)[0]
        body = bytes(data[pos + 128 : pos + 128 + body_bytes])
        struct.pack_into("<I", data, pos + 44, crc32c.crc32c(body))
        data[pos + 48 : pos + 80] = chain
        struct.pack_into("<I", data, pos + 124, crc32c.crc32c(bytes(data[pos : pos + 124])))
        chain = hashlib.blake2b(bytes(data[pos : pos + 128]) + body, digest_size=32).digest()
        last_seq = sum(struct.unpack_from("<QI", data, pos + 8)) - 1
        pos += jr.record_bytes(body_bytes)
    reattest(data, last_seq, pos, chain)
    path.write_bytes(data)


def reattest(data: bytearray, last_seq: int, data_end: int, chain: bytes) -> None:
    """Make both end records of a segment attest the given end (a forger's last step)."""
    for at in (jr.SEGMENT_HEADER_BYTES, jr.SEGMENT_HEADER_BYTES + jr.END_RECORD_BYTES):
        magic, generation, first, _, _, following = struct.unpack_from("<8sQQQQQ", data, at)
        head = struct.pack(
            "<8sQQQQQ32s44s", magic, generation, first, last_seq, data_end, following, chain, b""
        )
        data[at : at + 124] = head
        struct.pack_into("<I", data, at + 124, crc32c.crc32c(head))


def test_reseal_of_an_intact_log_changes_nothing(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 3])
    (segment,) = jr.segment_paths(tmp_path)
    before = segment.read_bytes()
    reseal(segment)
    assert segment.read_bytes() == before


def test_broken_chain_is_refused(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 3, 2, 2])
    (segment,) = jr.segment_paths(tmp_path)
    starts = record_starts(tmp_path)[str(segment)]
    data = bytearray(segment.read_bytes())
    data[starts[2][0] + 128 + 16] ^= 0xFF  # a price in batch 2; then fix only its checksums
    body_bytes = struct.unpack_from("<I", data, starts[2][0] + 40)[0]
    body = bytes(data[starts[2][0] + 128 : starts[2][0] + 128 + body_bytes])
    struct.pack_into("<I", data, starts[2][0] + 44, crc32c.crc32c(body))
    struct.pack_into(
        "<I", data, starts[2][0] + 124, crc32c.crc32c(bytes(data[starts[2][0] :][:124]))
    )
    segment.write_bytes(data)
    with pytest.raises(jr.LogCorruptError, match="chain broken") as caught:
        jr.Journal.open(tmp_path, DIGEST)
    assert caught.value.offset == starts[3][0] and caught.value.seq == 3
    assert str(segment) in str(caught.value)


def test_sequence_gap_is_refused(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 3, 2])
    (segment,) = jr.segment_paths(tmp_path)
    starts = record_starts(tmp_path)[str(segment)]

    def skip_one(data: bytearray) -> None:  # batch 2 and everything after: seq + 1
        for start, _ in starts[2:]:
            struct.pack_into(
                "<Q", data, start + 8, struct.unpack_from("<Q", data, start + 8)[0] + 1
            )
        for start, _ in starts[2::2]:
            count = struct.unpack_from("<I", data, start + 16)[0]
            for i in range(count):
                at = start + 128 + 64 * i
                struct.pack_into("<q", data, at, struct.unpack_from("<q", data, at)[0] + 1)

    reseal(segment, skip_one)
    problem = jr.verify(tmp_path).problem
    assert problem is not None and "sequence gap: expected seq 3, found 4" in problem.what
    assert problem.offset == starts[2][0] and problem.seq == 4 and not problem.at_tail
    with pytest.raises(jr.LogCorruptError, match="sequence gap"):
        jr.Journal.open(tmp_path, DIGEST)


def test_unknown_version_is_refused_even_at_the_tail(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 3])
    (segment,) = jr.segment_paths(tmp_path)
    last = record_starts(tmp_path)[str(segment)][-1][0]
    reseal(segment, lambda data: struct.pack_into("<H", data, last + 4, 2))
    with pytest.raises(jr.LogCorruptError, match="unsupported record version 2") as caught:
        jr.Journal.open(tmp_path, DIGEST)
    assert caught.value.offset == last


def test_missing_middle_segment_is_a_gap(tmp_path: Path) -> None:
    write_log(tmp_path, [3] * 30)
    paths = jr.segment_paths(tmp_path)
    paths[1].unlink()
    with pytest.raises(jr.LogCorruptError, match="sequence gap") as caught:
        jr.Journal.open(tmp_path, DIGEST)
    assert caught.value.segment == str(paths[2]) and caught.value.offset == 0


def test_segment_of_another_market_in_the_middle(tmp_path: Path) -> None:
    write_log(tmp_path, [3] * 30)
    second = jr.segment_paths(tmp_path)[1]
    reseal(second, lambda data: data.__setitem__(slice(24, 56), bytes(32)))  # market digest
    with pytest.raises(jr.MarketMismatchError) as caught:
        jr.Journal.open(tmp_path, DIGEST)
    assert caught.value.segment == str(second)


def test_zeroed_record_header_before_valid_records_is_corruption(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 2, 2])
    (segment,) = jr.segment_paths(tmp_path)
    starts = record_starts(tmp_path)[str(segment)]
    data = bytearray(segment.read_bytes())
    data[starts[2][0] : starts[2][0] + 128] = bytes(128)
    segment.write_bytes(data)
    problem = jr.verify(tmp_path).problem
    assert problem is not None and not problem.at_tail and problem.offset == starts[2][0]


def test_unfinished_batch_whose_checkpoint_reached_disk_first_is_a_tail(tmp_path: Path) -> None:
    """Pages of one unsynced batch may reach the disk in any order (power loss)."""
    write_log(tmp_path, [2, 2, 2], unacknowledged=1)
    (segment,) = jr.segment_paths(tmp_path)
    starts = record_starts(tmp_path)[str(segment)]
    data = bytearray(segment.read_bytes())
    data[starts[4][0] + 130] ^= 0x10  # the last batch's body; its checkpoint is intact
    segment.write_bytes(data)
    with jr.Journal.open(tmp_path, DIGEST) as journal:
        assert journal.last_seq == 4 and journal.recovery is not None
        assert journal.recovery.truncated_offset == starts[4][0]


def test_copy_of_a_log_verifies_identically(tmp_path: Path) -> None:
    write_log(tmp_path / "a", [1, 2, 3])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    a, b = jr.verify(tmp_path / "a"), jr.verify(tmp_path / "b")
    assert a.chain_hash == b.chain_hash and a.ok and b.ok


def read_as_documented(log_dir: Path) -> list[tuple[int, int, bytes, bytes, bytes]]:
    """A reader written from docs/LOG_FORMAT.md alone (struct offsets, no engine.durable.journal):
    [(first_seq, count, command bytes, annotations, events digest)] and it checks every CRC,
    the chain, and the segment links."""
    out, chain, next_seq = [], bytes(32), 1
    for path in sorted(log_dir.glob("*.seg")):
        data = path.read_bytes()
        assert data[0:8] == b"CETSLOG\0" and struct.unpack_from("<HH", data, 8) == (2, 384)
        assert struct.unpack_from("<I", data, 124)[0] == crc32c.crc32c(data[:124])
        assert struct.unpack_from("<Q", data, 16)[0] == int(path.stem) == next_seq
        assert data[24:56] == DIGEST and data[56:88] == chain
        slots = [struct.unpack_from("<8sQQQQQ32s44sI", data, at) for at in (128, 256)]
        for at, slot in zip((128, 256), slots):
            assert slot[0] == b"CETSEND\0" and slot[2] == int(path.stem)
            assert slot[-1] == crc32c.crc32c(data[at : at + 124])
        pos = 384
        while pos + 128 <= len(data) and any(data[pos : pos + 128]):
            head = data[pos : pos + 128]
            assert head[:4] == b"CETR"
            assert struct.unpack_from("<I", head, 124)[0] == crc32c.crc32c(head[:124])
            rtype, first, count, ann = head[6], *struct.unpack_from("<QII", head, 8)
            body_bytes, body_crc = struct.unpack_from("<II", head, 40)
            body = data[pos + 128 : pos + 128 + body_bytes]
            assert crc32c.crc32c(body) == body_crc and head[48:80] == chain
            chain = hashlib.blake2b(head + body, digest_size=32).digest()
            if rtype == 1:
                batch = (first, count, body[: 64 * count], body[64 * count :])
                assert first == next_seq and len(body) == 64 * count + ann
                next_seq += count
            else:
                assert rtype == 2 and (first, count) == batch[:2] and len(body) == 40
                out.append((*batch, body[8:40]))
            pos += 128 + body_bytes + (-body_bytes % 64)
        newest = max(slots, key=lambda slot: slot[1])  # the highest generation
        assert (newest[3], newest[4], newest[6]) == (next_seq - 1, pos, chain)
    return out


def test_the_documented_format_is_the_format(tmp_path: Path) -> None:
    written = write_log(tmp_path, [1, 2, 3, 1, 4] * 6, segment_bytes=2048)
    assert len(jr.segment_paths(tmp_path)) > 3
    documented = read_as_documented(tmp_path)
    assert len(documented) == len(written)
    for (first, count, commands, ann, digest), batch in zip(documented, jr.read_log(tmp_path)):
        assert (first, count) == (batch.first_seq, batch.count)
        assert commands == batch.commands.tobytes() and ann == batch.annotations_blob
        assert digest == batch.events_digest
    for (_, _, commands, _, digest), (records, events) in zip(documented, written):
        assert commands == records.tobytes() and digest == jr.events_digest(events)

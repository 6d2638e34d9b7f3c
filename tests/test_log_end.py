"""The log attests its own end (issue 15): every sync writes an end record into one of two
slots of the segment, and a rollover seals the old segment naming its successor.  Missing
acknowledged data - a segment cut on a batch boundary, a deleted last segment, zeroed
records - is damage with its location; a tail that was never acknowledged is still cut
quietly (docs/LOG_FORMAT.md §5.1, the decision table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.durable import journal as jr
from tests.test_journal import DIGEST, SMALL_SEGMENT, abandon, append, record_starts, write_log


def batch_ends(log_dir: Path) -> list[tuple[str, int, int]]:
    """(segment, byte offset after its checkpoint, last seq) of every batch."""
    return [
        (batch.segment, checkpoint_end, batch.last_seq)
        for batch, checkpoint_end in zip(
            jr.read_log(log_dir),
            [end for s in record_starts(log_dir).values() for _, end in s[1::2]],
        )
    ]


def cut(segment: str, at: int) -> None:
    path = Path(segment)
    path.write_bytes(path.read_bytes()[:at])


def assert_missing(log_dir: Path, segment: str, offset: int, seq: int) -> None:
    problem = jr.verify(log_dir).problem
    assert problem is not None and not problem.at_tail, problem
    assert (problem.segment, problem.offset, problem.seq) == (segment, offset, seq), problem
    assert "missing" in problem.what
    with pytest.raises(jr.MissingDataError) as caught:
        jr.Journal.open(log_dir, DIGEST, segment_bytes=SMALL_SEGMENT)
    assert (caught.value.segment, caught.value.offset, caught.value.seq) == (segment, offset, seq)


@pytest.mark.parametrize("zero_filled", [False, True])
def test_cutting_acknowledged_batches_on_a_batch_boundary_is_damage(
    tmp_path: Path, zero_filled: bool
) -> None:
    write_log(tmp_path, [2, 3, 2, 4])
    ends = batch_ends(tmp_path)
    for keep in range(len(ends) - 1):  # cut after batch `keep`: later batches were acknowledged
        segment, at, last_seq = ends[keep]
        original = Path(segment).read_bytes()
        cut(segment, at)
        if zero_filled:
            Path(segment).write_bytes(Path(segment).read_bytes() + bytes(len(original) - at))
        assert_missing(tmp_path, segment, at, last_seq + 1)
        Path(segment).write_bytes(original)
    assert jr.verify(tmp_path).ok


def test_zeroed_acknowledged_records_at_the_end_are_damage(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 3, 2])
    segment, at, last_seq = batch_ends(tmp_path)[1]
    data = bytearray(Path(segment).read_bytes())
    data[at:] = bytes(len(data) - at)
    Path(segment).write_bytes(data)
    assert_missing(tmp_path, segment, at, last_seq + 1)


def test_deleting_the_last_segment_is_damage(tmp_path: Path) -> None:
    write_log(tmp_path, [3] * 30)
    paths = jr.segment_paths(tmp_path)
    assert len(paths) > 2
    paths[-1].unlink()
    assert_missing(tmp_path, str(paths[-1]), 0, int(paths[-1].stem))
    paths[-2].unlink()  # and the one before: still named by the seal of the one before that
    assert_missing(tmp_path, str(paths[-2]), 0, int(paths[-2].stem))


def test_a_cut_after_a_crash_is_damage_beyond_the_last_sync(tmp_path: Path) -> None:
    """After a crash (no clean close) the newest end record's sync may not have completed,
    so only the older one is trusted: a cut of two batches is found, one is the tail."""
    journal = jr.Journal.open(tmp_path, DIGEST, segment_bytes=SMALL_SEGMENT)
    for i in range(4):
        append(journal, 2, 10 + i)
    abandon(journal)
    ends = batch_ends(tmp_path)
    segment = ends[-1][0]
    original = Path(segment).read_bytes()
    cut(segment, ends[1][1])  # two batches gone
    assert_missing(tmp_path, segment, ends[1][1], ends[1][2] + 1)
    Path(segment).write_bytes(original)
    cut(segment, ends[2][1])  # only the last batch: its sync may never have completed
    problem = jr.verify(tmp_path).problem
    assert problem is not None and problem.at_tail and "never completed" in problem.what
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=SMALL_SEGMENT) as journal:
        assert journal.last_seq == ends[2][2] and journal.recovery is not None
        assert "never completed" in (journal.recovery.truncated_reason or "")
    assert jr.verify(tmp_path).ok  # recovery re-attested the end it kept


def test_an_unacknowledged_torn_tail_is_still_cut_quietly(tmp_path: Path) -> None:
    write_log(tmp_path, [2, 3, 2], unacknowledged=1)
    segment, at, _ = batch_ends(tmp_path)[1]
    cut(segment, at + 100)  # the unacknowledged batch torn
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=SMALL_SEGMENT) as journal:
        assert journal.last_seq == 5 and journal.recovery.truncated_offset == at
    assert jr.verify(tmp_path).ok


def test_a_forged_end_record_is_damage(tmp_path: Path) -> None:
    """An end record that names a batch end but disagrees with the data there."""
    from tests.test_journal import reattest

    write_log(tmp_path, [2, 3])
    (segment,) = jr.segment_paths(tmp_path)
    data = bytearray(segment.read_bytes())
    reattest(data, 5, batch_ends(tmp_path)[-1][1], bytes(32))  # the right end, a wrong chain
    segment.write_bytes(data)
    with pytest.raises(jr.LogCorruptError, match="end record"):
        jr.Journal.open(tmp_path, DIGEST)

"""Spare segments (``engine.durable.journal``, "Spare segments"): the next segment's file is
prepared ahead - on a thread, or inline for a storage that must see one order - and a roll only
writes its header into it.  The log's bytes are the same with or without a spare; a crash
with a spare leaves a log that recovers and deletes it; a failed preparation falls back to
making the segment at the roll, with the same errors; close leaves no spare and no thread."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import pytest

from engine.durable import journal as jr
from engine.durable import sequencer as sq
from engine.durable.storage import Storage
from tests.test_journal import DIGEST, abandon, append
from tests.test_sequencer import buy, open_session, small_market

MODES = [mode.value for mode in jr.SpareSegments]
PREPARING = [jr.SpareSegments.BACKGROUND.value, jr.SpareSegments.INLINE.value]
SEGMENT = 2048


@pytest.fixture(autouse=True)
def spares_from_the_start(request, monkeypatch) -> None:
    """The background prepares a spare as soon as a segment starts (it waits until the segment
    is a quarter full otherwise: ``test_the_background_waits_for_a_quarter_segment``)."""
    if "quarter" not in request.node.name:
        monkeypatch.setattr(jr, "SPARE_START_FRACTION", 0.0)


def wait_for_spare(journal: jr.Journal) -> jr._SpareSegment:
    """The journal's spare once its preparation ended."""
    spare = journal._spare
    assert spare is not None
    spare.wait()
    return spare


def segment_bytes(log_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in jr.segment_paths(log_dir)}


def write(log_dir: Path, mode: str, size: int, batches: int, durability: str) -> None:
    with jr.Journal.open(
        log_dir, DIGEST, segment_bytes=size, durability=durability, spare_segments=mode
    ) as journal:
        for i in range(batches):
            append(journal, 1 + i % 7, 100 + i, salt=i)


@pytest.mark.parametrize(
    ("size", "batches", "durability"),
    [(jr.SEGMENT_BYTES_MIN, 40, "batch"), (SEGMENT, 40, "batch"), ((1 << 20) + 4160, 2500, "none")],
)
def test_rolls_with_a_spare_write_the_same_files_as_without(
    tmp_path: Path, size: int, batches: int, durability: str
) -> None:
    for mode in MODES:
        write(tmp_path / mode, mode, size, batches, durability)
    without = segment_bytes(tmp_path / "off")
    assert len(without) > 1
    assert all(len(data) >= size for data in without.values())  # (larger: a batch too big)
    for mode in PREPARING:
        assert segment_bytes(tmp_path / mode) == without, mode
        names = {path.name for path in (tmp_path / mode).iterdir()}
        assert names == {jr.LOCK_FILE, *without}  # no spare left, no temporary file
    assert jr.verify(tmp_path / "background").ok


class Recording(Storage):
    """The OS's file operations, recording the paths opened and renamed."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.renamed: list[tuple[str, str]] = []

    def open(self, path, flags: int, mode: int = 0o644) -> int:
        self.opened.append(Path(path).name)
        return super().open(path, flags, mode)

    def rename(self, source, target) -> None:
        self.renamed.append((Path(source).name, Path(target).name))
        super().rename(source, target)


@pytest.mark.parametrize("mode", PREPARING)
def test_a_roll_renames_the_ready_spare_and_the_next_one_is_prepared(
    tmp_path: Path, mode: str
) -> None:
    storage = Recording()
    with jr.Journal.open(
        tmp_path, DIGEST, segment_bytes=SEGMENT, storage=storage, spare_segments=mode
    ) as journal:
        spare = wait_for_spare(journal)
        assert spare.fd >= 0 and spare.error is None
        path = tmp_path / jr.SPARE_FILE
        assert path.read_bytes() == bytes(SEGMENT)  # zeros over its whole size, not a segment
        assert jr.segment_paths(tmp_path) == [tmp_path / jr.segment_name(1)]
        inode = path.stat().st_ino
        while journal._segment_first == 1:
            append(journal, 5, 10)
        second = tmp_path / jr.segment_name(journal._segment_first)
        assert second.stat().st_ino == inode  # the spare became the segment
        assert storage.renamed[-1] == (jr.SPARE_FILE, second.name)
        assert storage.opened.count(jr.SPARE_FILE) == 2  # and the next spare was started
        assert not any(name.endswith(".seg.tmp") for name in storage.opened[1:])
        assert wait_for_spare(journal).fd >= 0 and path.stat().st_ino != inode
    assert jr.verify(tmp_path).ok


def test_a_reader_never_takes_the_spare_for_a_segment(tmp_path: Path) -> None:
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=SEGMENT) as journal:
        append(journal, 3, 10)
        wait_for_spare(journal)
        assert (tmp_path / jr.SPARE_FILE).exists()
        report = jr.verify(tmp_path, DIGEST)
        assert report.ok and report.last_seq == 3 and len(report.segments) == 1
        assert [batch.count for batch in jr.read_log(tmp_path, market_digest=DIGEST)] == [3]


@pytest.mark.parametrize("ready", [True, False], ids=["ready", "half-prepared"])
def test_a_crash_with_a_spare_recovers_and_deletes_it(tmp_path: Path, ready: bool) -> None:
    journal = jr.Journal.open(tmp_path, DIGEST, segment_bytes=SEGMENT)
    while journal._segment_first == 1:
        append(journal, 4, 10)
    append(journal, 2, 20)
    last_seq, chain = journal.last_seq, journal.chain_hash
    wait_for_spare(journal)
    abandon(journal)  # the process is gone, its spare left as it was
    spare = tmp_path / jr.SPARE_FILE
    if not ready:  # killed while zero-filling, or after the roll wrote the header into it
        spare.write_bytes(jr._segment_header(last_seq + 1, DIGEST, chain) + bytes(100))
    assert jr.verify(tmp_path, DIGEST).ok
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=SEGMENT) as reopened:
        assert reopened.recovery is not None
        assert reopened.recovery.removed_temp_files == [str(spare)]
        assert (reopened.last_seq, reopened.chain_hash) == (last_seq, chain)
        while reopened._segment_first <= last_seq:
            append(reopened, 4, 30)
    assert not spare.exists()
    report = jr.verify(tmp_path, DIGEST)
    assert report.ok and len(report.segments) == 3


class Failing(Storage):
    """The OS's file operations; ``full`` fails a write that extends a file with ENOSPC (writes
    into written blocks still succeed); ``spare_fsync_fails`` fails the spare's fsync with EIO,
    ``fsync_fails`` every fsync (a segment made at the roll is fsynced)."""

    def __init__(self) -> None:
        self.full = self.spare_fsync_fails = self.fsync_fails = False
        self.spares: set[int] = set()

    def open(self, path, flags: int, mode: int = 0o644) -> int:
        fd = super().open(path, flags, mode)
        if Path(path).name == jr.SPARE_FILE:
            self.spares.add(fd)
        return fd

    def close(self, fd: int) -> None:
        self.spares.discard(fd)
        super().close(fd)

    def pwrite(self, fd: int, parts, offset: int) -> None:
        end = offset + sum(memoryview(part).nbytes for part in parts)
        if self.full and end > os.fstat(fd).st_size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().pwrite(fd, parts, offset)

    def fsync(self, fd: int) -> None:
        if self.fsync_fails or (self.spare_fsync_fails and fd in self.spares):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fsync(fd)


def roll(journal: jr.Journal) -> None:
    """Append batches of 4 commands until one went into a new segment."""
    first = journal._segment_first
    while journal._segment_first == first:
        append(journal, 4, 10)


@pytest.mark.parametrize("mode", PREPARING)
def test_a_full_disk_refuses_the_roll_only_without_a_ready_spare(tmp_path: Path, mode: str) -> None:
    """A ready spare has its blocks: the roll into it succeeds on a full disk.  The next
    spare's preparation then fails, and the roll after it makes the segment on the spot as
    without spares: ``LogFullError``, nothing of the batch written, no file left behind; once
    space returns the same batch goes in."""
    storage = Failing()
    with jr.Journal.open(
        tmp_path, DIGEST, segment_bytes=SEGMENT, storage=storage, spare_segments=mode
    ) as journal:
        wait_for_spare(journal)
        storage.full = True
        roll(journal)  # into the ready spare
        spare = wait_for_spare(journal)
        assert isinstance(spare.error, OSError) and spare.error.errno == errno.ENOSPC
        segments = jr.segment_paths(tmp_path)
        assert len(segments) == 2
        with pytest.raises(jr.LogFullError, match="full"):
            roll(journal)
        assert journal.failed is None and jr.segment_paths(tmp_path) == segments
        assert sorted(tmp_path.glob("*.tmp")) == []  # the failed spare's file deleted too
        storage.full = False
        before = journal.last_seq
        append(journal, 4, 10)  # the refused batch again: a segment made on the spot
        assert journal.last_seq == before + 4 and len(jr.segment_paths(tmp_path)) == 3
        assert wait_for_spare(journal).fd >= 0  # and a spare for the next one
    assert jr.verify(tmp_path, DIGEST).ok


@pytest.mark.parametrize("mode", PREPARING)
def test_a_failed_preparation_falls_back_to_making_the_segment_at_the_roll(
    tmp_path: Path, mode: str
) -> None:
    """A spare whose fsync failed is deleted and the segment made at the roll; when that
    fails too, the error is the one of a roll without spares: the journal stops."""
    storage = Failing()
    storage.spare_fsync_fails = True
    log_dir = tmp_path / "log"
    with jr.Journal.open(
        log_dir, DIGEST, segment_bytes=SEGMENT, storage=storage, spare_segments=mode
    ) as journal:
        spare = wait_for_spare(journal)
        assert isinstance(spare.error, OSError) and spare.error.errno == errno.EIO
        roll(journal)  # made at the roll
        roll(journal)
    with jr.Journal.open(
        tmp_path / "off", DIGEST, segment_bytes=SEGMENT, spare_segments="off"
    ) as reference:
        roll(reference)
        roll(reference)
    assert segment_bytes(log_dir) == segment_bytes(tmp_path / "off")
    assert {path.name for path in log_dir.iterdir()} == {jr.LOCK_FILE, *segment_bytes(log_dir)}

    again = tmp_path / "again"
    journal = jr.Journal.open(
        again, DIGEST, segment_bytes=SEGMENT, storage=storage, spare_segments=mode
    )
    wait_for_spare(journal)
    storage.fsync_fails = True
    with pytest.raises(jr.StorageFailedError, match="never retried"):
        roll(journal)
    assert journal.failed is not None
    journal.close()
    assert {path.name for path in again.iterdir()} == {jr.LOCK_FILE, jr.segment_name(1)}


def files_open_in(directory: Path) -> list[str]:
    """The files under ``directory`` this process has a descriptor of."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own descriptor, gone by now)
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)):
                found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("when", ["preparing", "ready", "after-a-failure"])
def test_close_leaves_no_spare_no_descriptor_and_no_thread(tmp_path: Path, when: str) -> None:
    size = 64 << 20 if when == "preparing" else SEGMENT  # paced: a second to prepare
    journal = jr.Journal.open(tmp_path, DIGEST, segment_bytes=size)
    spare, worker = journal._spare, journal._spare_worker
    assert spare is not None and worker is not None
    assert files_open_in(tmp_path)
    thread = worker.thread
    assert thread.is_alive() and thread.name == "cets-spare-segment"
    if when != "preparing":
        spare.wait()
        assert spare.fd >= 0
    if when == "after-a-failure":
        journal._failure = OSError(errno.EIO, "a failed sync")
    journal.close()
    assert not thread.is_alive() and journal._spare is None and journal._spare_worker is None
    assert sorted(tmp_path.glob("*.tmp")) == []
    assert files_open_in(tmp_path) == []


def test_a_journal_prepares_no_spare_when_told_not_to(tmp_path: Path) -> None:
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=SEGMENT, spare_segments="off") as j:
        roll(j)
        assert j._spare is None and j._spare_worker is None
        assert not (tmp_path / jr.SPARE_FILE).exists()


def test_the_sequencer_passes_its_choice_to_the_log(tmp_path: Path) -> None:
    market = small_market()
    for mode in MODES:
        with sq.Sequencer.open(
            tmp_path / mode, market, segment_bytes=SEGMENT, spare_segments=mode
        ) as exchange:
            assert exchange.journal.spare_segments == mode
            assert (exchange.journal._spare is None) == (mode == "off")
            exchange.submit([open_session(20250102), buy(1, 1, 5, 6000)])
        assert not (tmp_path / mode / sq.LOG_DIR / jr.SPARE_FILE).exists()


def test_the_background_waits_for_a_quarter_segment(tmp_path: Path) -> None:
    """A spare is prepared once per segment, from the batch that fills a quarter of it."""
    size = 64 << 10
    due = int(size * jr.SPARE_START_FRACTION)
    assert jr.DATA_START < due
    with jr.Journal.open(tmp_path, DIGEST, segment_bytes=size) as journal:
        assert journal._spare is None and not (tmp_path / jr.SPARE_FILE).exists()
        while journal._offset < due:
            assert journal._spare is None
            append(journal, 5, 10)
        assert wait_for_spare(journal).fd >= 0
        while journal._segment_first == 1:
            append(journal, 5, 10)
        assert journal._spare is None, "a new segment: not before its quarter"
        while journal._offset < due:
            append(journal, 5, 10)
        assert wait_for_spare(journal).fd >= 0
    assert jr.verify(tmp_path).ok

"""The log's sync with work beside it: ``Journal.append_checkpoint``'s ``during`` runs once,
after the batch and its end record are written and the device was told to start writing,
before the ``fdatasync`` that makes the batch durable; a failed start of the writing is a
failed sync; ``Storage.start_writeback`` is a hint that a file or sandbox may refuse."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from engine.durable import journal as jr
from engine.durable import storage
from engine.durable.storage import Storage
from tests.test_journal import DIGEST, make_commands, make_events


class RecordingStorage(Storage):
    """The OS's file operations, recording the order of the syncing ones."""

    def __init__(self, calls: list[str], fail_writeback: bool = False) -> None:
        self.calls, self.fail_writeback = calls, fail_writeback

    def start_writeback(self, fd: int) -> None:
        self.calls.append("start_writeback")
        if self.fail_writeback:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().start_writeback(fd)

    def fdatasync(self, fd: int) -> None:
        self.calls.append("fdatasync")
        super().fdatasync(fd)


def _journal(path: Path, calls: list[str], durability: str = "batch", **kw) -> jr.Journal:
    return jr.Journal.open(
        path, DIGEST, durability=durability, storage=RecordingStorage(calls, **kw)
    )


def test_during_runs_between_the_start_of_writing_and_the_sync(tmp_path: Path) -> None:
    calls: list[str] = []
    with _journal(tmp_path / "log", calls) as journal:
        del calls[:]
        journal.append_batch(make_commands(1, 3, 10))
        journal.append_checkpoint(make_events(6, 0), lambda: calls.append("during"))
        assert calls == ["start_writeback", "during", "fdatasync"]
        assert journal.last_seq == 3
    assert [batch.count for batch in jr.read_log(tmp_path / "log", market_digest=DIGEST)] == [3]


def test_during_runs_inline_when_the_policy_syncs_nothing(tmp_path: Path) -> None:
    calls: list[str] = []
    with _journal(tmp_path / "log", calls, durability="none") as journal:
        del calls[:]
        journal.append_batch(make_commands(1, 2, 10))
        journal.append_checkpoint(make_events(4, 0), lambda: calls.append("during"))
        assert calls == ["during"]


def test_a_failed_start_of_writing_is_a_failed_sync(tmp_path: Path) -> None:
    calls: list[str] = []
    journal = _journal(tmp_path / "log", calls, fail_writeback=True)
    journal.append_batch(make_commands(1, 2, 10))
    with pytest.raises(jr.StorageFailedError):
        journal.append_checkpoint(make_events(4, 0), lambda: calls.append("during"))
    assert calls[-1] == "start_writeback"  # neither the work nor the sync ran: not durable
    with pytest.raises(jr.StorageFailedError):
        journal.sync()  # stopped for good
    journal.close()


def test_start_writeback_raises_a_write_error_and_skips_a_refusal(monkeypatch) -> None:
    read, write = os.pipe()
    try:
        with pytest.raises(OSError) as error:
            Storage().start_writeback(1 << 20)  # not an open file
        assert error.value.errno == errno.EBADF
        if storage._SYNC_FILE_RANGE is not None:  # Linux: a pipe refuses the hint
            monkeypatch.setattr(storage, "_SYNC_FILE_RANGE", storage._SYNC_FILE_RANGE)
            Storage().start_writeback(write)
            assert storage._SYNC_FILE_RANGE is None  # no more hints, no failure
            Storage().start_writeback(write)
    finally:
        os.close(read)
        os.close(write)

"""The log under a deterministic storage-fault simulator (issue 15; ``tests/storage_faults.py``):
torn, lost and misdirected writes, EIO and ENOSPC on write and sync, crashes.  Nothing
acknowledged is lost, every corrupting fault that would lose acknowledged data is detected
with its location, nothing is acknowledged after a failed sync, and a full disk refuses a
batch and resumes.

The campaign in the suite is short; a long run: ``CETS_FAULT_CAMPAIGN=100000 pytest -s
tests/test_storage_faults.py`` (``CETS_FAULT_SEED`` replays a given seed exactly)."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import numpy as np
import pytest

from engine.core.records import COMMAND_DTYPE, EVENT_DTYPE
from engine.durable import journal as jr
from engine.durable import sequencer as sq
from engine.durable.storage import Storage
from tests.storage_faults import FaultyStorage, run_campaign
from tests.test_sequencer import buy, open_session, small_market

CAMPAIGN_FAULTS = int(os.environ.get("CETS_FAULT_CAMPAIGN", "1000"))


def test_the_campaign_loses_nothing_acknowledged_and_detects_the_rest() -> None:
    seed = int(os.environ.get("CETS_FAULT_SEED", random.randrange(2**32)))
    result = run_campaign(seed, CAMPAIGN_FAULTS)
    print(result.summary())
    assert sum(result.faults.values()) >= CAMPAIGN_FAULTS
    assert result.acknowledged_lost == 0 and result.undetected == 0, result.summary()
    assert result.false_alarms == 0 and result.acknowledged_after_failed_sync == 0
    assert result.faults["crash"] > 0 and result.recoveries > 0 and result.detected > 0
    assert result.full_refusals > 0 and result.resumed_after_full > 0


def test_the_campaign_replays_exactly_from_its_seed() -> None:
    assert run_campaign(7, 150).summary() == run_campaign(7, 150).summary()


class FailingSync(Storage):
    def __init__(self) -> None:
        self.fail = False
        self.syncs = 0

    def fdatasync(self, fd: int) -> None:
        self.syncs += 1
        if self.fail:
            raise OSError(errno.EIO, "Input/output error")
        super().fdatasync(fd)


def commands(first_seq: int, count: int) -> np.ndarray:
    records = np.zeros(count, COMMAND_DTYPE)
    records["seq"] = np.arange(first_seq, first_seq + count)
    records["ts_ns"] = 5
    return records


def test_a_failed_sync_is_fatal_and_never_retried(tmp_path: Path) -> None:
    storage = FailingSync()
    journal = jr.Journal.open(tmp_path, b"d" * 32, storage=storage)
    journal.append_batch(commands(1, 2))
    storage.fail = True
    with pytest.raises(jr.StorageFailedError, match="never retried"):
        journal.append_checkpoint(np.zeros(2, EVENT_DTYPE))
    storage.fail = False
    syncs = storage.syncs
    with pytest.raises(jr.StorageFailedError):
        journal.append_batch(commands(3, 1))
    with pytest.raises(jr.StorageFailedError):
        journal.sync()
    journal.close()  # writes nothing more
    assert storage.syncs == syncs and journal.failed is not None
    with jr.Journal.open(tmp_path, b"d" * 32) as reopened:  # recovery decides
        assert reopened.last_seq in (0, 2)


class FullDisk(Storage):
    def __init__(self) -> None:
        self.full = False

    def pwrite(self, fd: int, parts, offset: int) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().pwrite(fd, parts, offset)


def test_a_full_disk_refuses_commands_and_resumes(tmp_path: Path) -> None:
    """The sequencer refuses a batch it could not write (nothing of it counts) and takes the
    next one once space returned."""
    storage = FullDisk()
    market = small_market()
    with sq.Sequencer.open(tmp_path, market, storage=storage) as exchange:
        exchange.submit([open_session(20250102)])
        storage.full = True
        with pytest.raises(jr.LogFullError, match="full"):
            exchange.submit([buy(1, 1, 5, 6000)])
        assert exchange.last_seq == 1
        storage.full = False
        exchange.submit([buy(1, 1, 5, 6000)])
        assert exchange.last_seq == 2
    assert jr.verify(tmp_path / sq.LOG_DIR).ok


def test_a_full_disk_at_rollover_refuses_and_resumes(tmp_path: Path) -> None:
    """Without a spare segment the roll allocates the new segment's blocks."""
    storage = FaultyStorage(random.Random(0), rates={})
    with jr.Journal.open(
        tmp_path, b"d" * 32, segment_bytes=1024, storage=storage, spare_segments="off"
    ) as journal:
        journal.append_batch(commands(1, 4))
        journal.append_checkpoint(np.zeros(1, EVENT_DTYPE))
        storage.full = True
        with pytest.raises(jr.LogFullError):
            journal.append_batch(commands(5, 4))  # needs a new segment: refused
        assert not list(tmp_path.glob("*.tmp")) and len(jr.segment_paths(tmp_path)) == 1
        storage.full = False
        journal.append_batch(commands(5, 4))
        journal.append_checkpoint(np.zeros(1, EVENT_DTYPE))
    report = jr.verify(tmp_path)
    assert report.ok and report.last_seq == 8 and len(report.segments) == 2

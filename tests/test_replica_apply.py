"""A replica's write path without a network: ``Sequencer.replicator`` hands every batch's log
bytes over before the acknowledgement, ``Sequencer.apply_replicated`` appends them to another
log byte for byte (so ``cets replay`` works on a replica), and a replica whose log disagrees
stops with a divergence report instead of applying anything."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.core import schema as s
from engine.durable import journal as jr
from engine.durable import sequencer as sq
from tests.conftest import small_market
from tests.test_sequencer import open_exchange, random_batches


class Recorder:
    """A Replicator that keeps what it is handed (and can refuse)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, bytes]] = []
        self.refuse: Exception | None = None

    def replicate(self, first_seq: int, last_seq: int, data: bytes) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.batches.append((first_seq, last_seq, data))


def segment_bytes(path: Path) -> bytes:
    """The log's segments without their end-record slots: the headers and records are the same
    on every replica, the slots record each writer's own syncs (docs/LOG_FORMAT.md)."""
    parts = []
    for segment in jr.segment_paths(path / "log"):
        data = segment.read_bytes()
        parts.append(data[: jr.SEGMENT_HEADER_BYTES] + data[jr.DATA_START :])
    return b"".join(parts)


def primary_with_batches(path: Path, seed: int = 5) -> tuple[sq.Sequencer, Recorder]:
    market = small_market()
    primary = open_exchange(path, market)
    recorder = Recorder()
    primary.replicator = recorder
    for batch in random_batches(random.Random(seed), 400, market):
        primary.submit(batch)
    return primary, recorder


def test_replica_log_is_byte_identical_and_state_equal(tmp_path: Path) -> None:
    primary, recorder = primary_with_batches(tmp_path / "p")
    assert recorder.batches and recorder.batches[-1][1] == primary.last_seq
    replica = open_exchange(tmp_path / "r", small_market())
    for first, last, data in recorder.batches:
        assert (jr.decode_batch_bytes(data).first_seq, jr.decode_batch_bytes(data).last_seq) == (
            first,
            last,
        )
        replica.apply_replicated(data)
    assert replica.last_seq == primary.last_seq
    assert replica.state_hash() == primary.state_hash()
    assert replica.journal.chain_hash == primary.journal.chain_hash
    primary.close(), replica.close()
    assert segment_bytes(tmp_path / "r") == segment_bytes(tmp_path / "p")
    reopened = open_exchange(tmp_path / "r")  # recovery audits every batch
    assert reopened.state_hash() == replica.state_hash()
    reopened.close()


def test_a_refused_replication_fails_the_primary(tmp_path: Path) -> None:
    primary, recorder = primary_with_batches(tmp_path / "p")
    recorder.refuse = RuntimeError("fenced: wrong last sequence")
    with pytest.raises(RuntimeError, match="fenced"):
        primary.submit([s.OpenSession(trading_date=20260102)])
    with pytest.raises(sq.SequencerFailedError, match="fenced"):
        primary.submit([s.OpenSession(trading_date=20260102)])
    primary.close()


def test_a_batch_that_does_not_continue_the_log_is_divergence(tmp_path: Path) -> None:
    _, recorder = primary_with_batches(tmp_path / "p")
    replica = open_exchange(tmp_path / "r", small_market())
    replica.apply_replicated(recorder.batches[0][2])
    with pytest.raises(sq.ReplicaDivergenceError, match="does not continue"):
        replica.apply_replicated(recorder.batches[2][2])
    with pytest.raises(sq.SequencerFailedError):
        replica.apply_replicated(recorder.batches[1][2])
    replica.close()


def test_a_replica_with_its_own_history_diverges(tmp_path: Path) -> None:
    _, recorder = primary_with_batches(tmp_path / "p")
    replica = open_exchange(tmp_path / "r", small_market())
    replica.submit([s.OpenSession(trading_date=20991231)])  # a batch the primary never had
    before = segment_bytes(tmp_path / "r")
    with pytest.raises(sq.ReplicaDivergenceError, match="does not continue"):
        replica.apply_replicated(recorder.batches[1][2])
    replica.close()
    assert segment_bytes(tmp_path / "r") == before


def test_events_other_than_the_checkpoint_are_divergence(tmp_path: Path) -> None:
    _, recorder = primary_with_batches(tmp_path / "p")
    replica = open_exchange(tmp_path / "r", small_market())
    apply_records = replica.engine.apply_records
    replica.engine.apply_records = lambda records: apply_records(records)[:-1]  # a wrong engine
    with pytest.raises(sq.ReplicaDivergenceError, match="the primary's checkpoint says"):
        replica.apply_replicated(recorder.batches[0][2])
    replica.close()
    assert open_exchange(tmp_path / "r").last_seq == 0  # the unchecked batch was not kept


def test_damaged_batch_bytes_are_refused(tmp_path: Path) -> None:
    _, recorder = primary_with_batches(tmp_path / "p")
    replica = open_exchange(tmp_path / "r", small_market())
    data = recorder.batches[0][2]
    with pytest.raises(jr.LogCorruptError):
        replica.apply_replicated(data[:-1] + b"\x01")  # the checkpoint record's padding
    replica.close()


def test_decode_batch_bytes_refuses_partial_input(tmp_path: Path) -> None:
    _, recorder = primary_with_batches(tmp_path / "p")
    data = recorder.batches[0][2]
    for cut in (0, 64, jr.RECORD_HEADER_BYTES, len(data) - jr.CHECKPOINT_RECORD_BYTES):
        with pytest.raises(jr.LogCorruptError):
            jr.decode_batch_bytes(data[:cut])
    with pytest.raises(jr.LogCorruptError, match="after the checkpoint"):
        jr.decode_batch_bytes(data + bytes(64) + b"x" * 64)

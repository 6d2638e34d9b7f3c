"""The pipelined audit (engine, digest thread and log reader handing chunks to each other)
reports exactly what applying and hashing every batch in turn reports: on an intact log, a
forged one, a damaged one and both; and the engine's ``append_records`` writes exactly the
events ``apply_records`` returns."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from engine.core.compiled.engine import CompiledEngine
from engine.core.records import EVENT_DTYPE, EVENT_FIELDS
from engine.durable import journal as jr
from replay import audit as audit_module
from replay import datadir
from replay.audit import audit
from replay.datadir import open_data_dir
from tests.test_damage_surfaces import halve_last_segment
from tests.test_replay_integrity import reseal
from tests.test_replay_support import Workload, random_log, small_market, write_log


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few batches and events, so that a small log crosses many of them (and
    the buffers grow)."""
    monkeypatch.setattr(audit_module, "CHUNK_EVENT_ROWS", 8)
    monkeypatch.setattr(audit_module, "CHUNK_BATCHES", 3)
    monkeypatch.setattr(datadir, "CHUNK_BATCHES", 2)


def in_turn(data, engine: str = "compiled") -> audit_module.AuditReport:
    """The audit with every batch applied and hashed on the calling thread in turn."""
    saved = audit_module._audit_pipelined
    audit_module._audit_pipelined = audit_module._audit_in_turn  # type: ignore[assignment]
    try:
        return audit(data, engine)
    finally:
        audit_module._audit_pipelined = saved


def forge_one_batch(
    data, rng: random.Random, kind: int | None = None, seqs: tuple[int, int] = (2, 1 << 62)
) -> int:
    """Double the quantity of an order in one batch starting within ``seqs`` (its kind instead
    when ``kind`` is given) and reseal the log; returns the batch's first seq."""
    batches = []
    try:
        for batch in datadir.LogReader(data, prefetch=False):
            batches.append(batch)
    except datadir.LogDamageError:
        pass  # the batches before the damage
    low, high = seqs
    candidates = [
        b for b in batches if (b.commands["kind"] == 1).any() and low <= b.first_seq <= high
    ]
    target = rng.choice(candidates)
    row = int(np.flatnonzero(target.commands["kind"] == 1)[0])
    forged = target.commands.copy()
    if kind is None:
        forged["qty_t"][row] *= 2
    else:
        forged["kind"][row] = kind
    path = Path(target.segment)
    raw = bytearray(path.read_bytes())
    start = target.offset + jr.RECORD_HEADER_BYTES
    raw[start : start + forged.nbytes] = forged.tobytes()
    path.write_bytes(raw)
    reseal(data.log_dir)
    return target.first_seq


@pytest.mark.parametrize("seed", [3, 17])
def test_the_pipelined_audit_reports_what_the_audit_in_turn_reports(
    tmp_path: Path, small_chunks: None, seed: int
) -> None:
    random_log(tmp_path, seed, days=2, per_day=120)
    data = open_data_dir(tmp_path)
    pipelined = audit(data)
    assert pipelined.ok and pipelined.batches > 20
    assert pipelined == in_turn(data)
    reference = audit(data, "reference")
    assert (reference.events_hash, reference.state_hash) == (
        pipelined.events_hash,
        pipelined.state_hash,
    )


@pytest.mark.parametrize("seed", [5, 29])
def test_a_forged_batch_is_the_same_finding_pipelined_or_in_turn(
    tmp_path: Path, small_chunks: None, seed: int
) -> None:
    random_log(tmp_path, seed, days=2, per_day=120)
    data = open_data_dir(tmp_path)
    first_seq = forge_one_batch(data, random.Random(seed))
    pipelined = audit(data)
    assert not pipelined.ok and pipelined.divergence is not None
    assert pipelined.divergence.first_seq == first_seq
    assert pipelined.tail is None, "the audit ended at the divergence"
    assert pipelined == in_turn(data)


def test_damage_after_the_batches_is_the_same_finding_pipelined_or_in_turn(
    tmp_path: Path, small_chunks: None
) -> None:
    market = small_market()
    batches = Workload(41, market).batches(2, 150)
    write_log(tmp_path, batches, market, segment_bytes=jr.SEGMENT_BYTES_MIN * 8)
    halve_last_segment(tmp_path)
    data = open_data_dir(tmp_path)
    pipelined = audit(data)
    assert not pipelined.ok and pipelined.damage is not None and pipelined.batches > 3
    assert pipelined == in_turn(data)
    # a forged batch before the damage: the divergence comes first in the log
    forge_one_batch(data, random.Random(41))
    pipelined = audit(data)
    assert pipelined.divergence is not None and pipelined.damage is None
    assert pipelined == in_turn(data)


def test_a_record_the_engine_refuses_after_a_forged_batch_is_the_same_finding(
    tmp_path: Path, small_chunks: None
) -> None:
    random_log(tmp_path, 23, days=2, per_day=120)
    data = open_data_dir(tmp_path)
    rng = random.Random(23)
    refused = forge_one_batch(data, rng, kind=99, seqs=(150, 1 << 62))  # an unknown kind
    with pytest.raises(ValueError, match="unknown command kind"):
        audit(data)
    # and a forged batch shortly before it: the engine reaches the refused record before the
    # forged batch's digest is compared
    first_seq = forge_one_batch(data, rng, seqs=(refused - 40, refused - 1))
    pipelined = audit(data)
    assert pipelined.divergence is not None and pipelined.divergence.first_seq == first_seq
    assert pipelined == in_turn(data)


def test_append_records_writes_the_events_apply_records_returns(tmp_path: Path) -> None:
    market, _ = random_log(tmp_path, 11, days=2, per_day=150)
    batches = [b.commands for b in datadir.LogReader(open_data_dir(tmp_path), prefetch=False)]
    applied, appended = CompiledEngine(market), CompiledEngine(market)
    buffer = np.full((2, EVENT_FIELDS), -1, dtype=np.int64)  # too small: it must grow
    bounds = []
    at = 0
    for commands in batches:
        expected = applied.apply_records(commands)
        buffer, end = appended.append_records(commands, buffer, at)
        assert np.array_equal(buffer[at:end].view(EVENT_DTYPE).reshape(-1), expected)
        bounds.append((at, end, expected))
        at = end
    for first, end, expected in bounds:  # the rows of earlier batches are kept
        assert np.array_equal(buffer[first:end].view(EVENT_DTYPE).reshape(-1), expected)
    assert appended.state_hash() == applied.state_hash()
    released = CompiledEngine(market)
    for commands in batches:
        released.apply_records(commands, copy=False, release_gil=True)
    assert released.state_hash() == applied.state_hash()


def test_the_reader_hands_over_every_batch_before_the_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datadir, "CHUNK_BATCHES", 4)
    market = small_market()
    write_log(tmp_path, Workload(7, market).batches(2, 150), market)
    halve_last_segment(tmp_path)
    data = open_data_dir(tmp_path)
    expected, failures = [], []
    for prefetch, seen in ((False, expected), (True, [])):
        try:
            for batch in datadir.LogReader(data, prefetch=prefetch):
                seen.append(batch.first_seq)
        except datadir.LogDamageError as exc:
            failures.append(str(exc))
        if prefetch:
            assert seen == expected and len(seen) > 4
    assert len(failures) == 2 and failures[0] == failures[1]

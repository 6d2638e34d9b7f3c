"""Every single-byte change anywhere in a log is detected, exhaustively on a small log; a
careful forgery (checksums and chain recomputed) is caught by the audit; ``verify`` over the
memory-mapped walk reports exactly what ``engine.durable.journal.verify`` reports."""

from __future__ import annotations

import hashlib
import os
import random
import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest

from engine.core import schema as s
from engine.core.records import COMMAND_DTYPE
from engine.durable import journal as jr
from replay.audit import audit
from replay.datadir import open_data_dir
from replay.errors import DataError
from replay.timeline import rebuild
from replay.verify import verify, verify_log
from tests.test_journal import reattest
from tests.test_replay_support import Workload, small_market, write_log

SEGMENT_OFFSET_CHAIN = struct.calcsize("<8sHHIQ32s")
"""Byte offset of the previous chain value in a segment header."""
RECORD_OFFSET_BODY_BYTES = struct.calcsize("<4sHBBQIIqq")


def small_log(path: Path, seed: int) -> None:
    """About eight batches of one to three commands over several 1 KiB segments."""
    market = small_market()
    commands = [c for batch in Workload(seed, market).batches(1, 14) for c in batch][:15]
    rng = random.Random(seed)
    batches, i = [], 0
    while i < len(commands):
        size = rng.randint(1, 3)
        batches.append(commands[i : i + size])
        i += size
    write_log(path, batches, market, segment_bytes=jr.SEGMENT_BYTES_MIN)


def test_every_single_byte_change_is_detected(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    print(f"replay integrity seed {seed}")
    small_log(tmp_path, seed)
    data = open_data_dir(tmp_path)
    clean, _ = verify_log(data)
    assert clean.problem is None and clean.batches >= 5 and len(clean.segments) >= 3
    rng = random.Random(seed)
    changed = 0
    for segment in jr.segment_paths(data.log_dir):
        original = segment.read_bytes()
        fd = os.open(segment, os.O_RDWR)  # in place: reopening with truncation is slow
        try:
            for position in range(len(original)):
                os.pwrite(fd, bytes([original[position] ^ rng.randrange(1, 256)]), position)
                report, _ = verify_log(data)
                assert report.problem is not None, f"seed {seed}: {segment.name} {position}"
                assert report == jr.verify(data.log_dir, data.market_digest), f"at {position}"
                os.pwrite(fd, original[position : position + 1], position)
                changed += 1
        finally:
            os.close(fd)
        assert segment.read_bytes() == original
    assert changed == sum(p.stat().st_size for p in jr.segment_paths(data.log_dir))
    assert verify(data).ok


def test_damage_before_the_tail_is_a_one_line_data_error_for_replay(tmp_path: Path) -> None:
    small_log(tmp_path, 5)
    data = open_data_dir(tmp_path)
    first = jr.segment_paths(data.log_dir)[0]
    damaged = bytearray(first.read_bytes())
    damaged[jr.DATA_START + jr.RECORD_HEADER_BYTES + 3] ^= 0x10  # a command byte
    first.write_bytes(damaged)
    for replay in (rebuild, audit):
        with pytest.raises(DataError) as caught:
            replay(data)
        message = str(caught.value)
        assert "\n" not in message
        assert f"segment {first}, byte offset {jr.DATA_START}" in message
        assert "checksum" in message


def reseal(log_dir: Path) -> None:
    """Recompute every checksum and the whole chain, as a careful forger would."""
    chain = jr.GENESIS_CHAIN
    for segment in jr.segment_paths(log_dir):
        data = bytearray(segment.read_bytes())
        data[SEGMENT_OFFSET_CHAIN : SEGMENT_OFFSET_CHAIN + 32] = chain
        head_end = jr.SEGMENT_HEADER_BYTES - 4
        struct.pack_into("<I", data, head_end, crc32c.crc32c(bytes(data[:head_end])))
        pos = jr.DATA_START
        last_seq = struct.unpack_from("<Q", data, 16)[0] - 1
        while pos < len(data) and any(data[pos : pos + 4]):
            body_bytes = struct.unpack_from("<I", data, pos + RECORD_OFFSET_BODY_BYTES)[0]
            body = bytes(data[pos + 128 : pos + 128 + body_bytes])
            struct.pack_into("<I", data, pos + RECORD_OFFSET_BODY_BYTES + 4, crc32c.crc32c(body))
            data[pos + 48 : pos + 80] = chain
            struct.pack_into("<I", data, pos + 124, crc32c.crc32c(bytes(data[pos : pos + 124])))
            chain = hashlib.blake2b(bytes(data[pos : pos + 128]) + body, digest_size=32).digest()
            last_seq = sum(struct.unpack_from("<QI", data, pos + 8)) - 1
            pos += jr.record_bytes(body_bytes)
        reattest(data, last_seq, pos, chain)
        segment.write_bytes(data)


def test_reseal_of_an_intact_log_changes_nothing(tmp_path: Path) -> None:
    small_log(tmp_path, 9)
    before = [p.read_bytes() for p in jr.segment_paths(tmp_path / "log")]
    reseal(tmp_path / "log")
    assert [p.read_bytes() for p in jr.segment_paths(tmp_path / "log")] == before


FORGED_FIELDS = ("price_ticks", "qty_t", "side", "account", "kind", "order_id", "ts_ns")


@pytest.mark.parametrize("field", FORGED_FIELDS)
def test_a_forged_command_passes_verify_but_not_the_audit(tmp_path: Path, field: str) -> None:
    small_log(tmp_path, 13)
    data = open_data_dir(tmp_path)
    batches = [(b.segment, b.offset, b.count, b.commands.copy()) for b in _batches(data)]
    target = next(
        b for b in batches[1:] if (b[3]["kind"] == s.SubmitOrder.__struct_config__.tag).any()
    )
    segment, offset, count, commands = target
    row = int(np.flatnonzero(commands["kind"] == 1)[0])
    forged = commands.copy()
    forged[field][row] = {
        "price_ticks": forged["price_ticks"][row] + 1,
        "qty_t": forged["qty_t"][row] * 2,
        "side": 3 - forged["side"][row],
        "account": forged["account"][row] + 1,
        "kind": 2,
        "order_id": forged["order_id"][row] + 1000,
        "ts_ns": forged["ts_ns"][row],
    }[field]
    path = Path(segment)
    raw = bytearray(path.read_bytes())
    start = offset + jr.RECORD_HEADER_BYTES
    raw[start : start + count * COMMAND_DTYPE.itemsize] = forged.tobytes()
    if field == "ts_ns":  # a timestamp: change the checkpoint's digest instead
        raw[_checkpoint_digest_at(offset, count)] ^= 0x01
    path.write_bytes(raw)
    reseal(data.log_dir)
    assert verify(data).ok, "the forgery must be consistent for this test to mean anything"
    report = audit(data)
    assert not report.ok and report.divergence is not None
    divergence = report.divergence
    assert divergence.first_seq == int(commands["seq"][0])
    assert divergence.segment == segment and divergence.offset == offset
    assert len(divergence.commands) == count
    assert divergence.recomputed_count == len(divergence.recomputed_events)
    assert divergence.recorded_digest != divergence.recomputed_digest
    assert report.batches == batches.index(target)


def _batches(data) -> list:
    from replay.datadir import LogReader

    return list(LogReader(data, prefetch=False))


def _checkpoint_digest_at(batch_offset: int, count: int) -> int:
    """Byte offset of the first digest byte in the checkpoint after a batch record."""
    checkpoint = batch_offset + jr.record_bytes(count * COMMAND_DTYPE.itemsize)
    return checkpoint + jr.RECORD_HEADER_BYTES + 8

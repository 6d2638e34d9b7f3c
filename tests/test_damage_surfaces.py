"""Damage is reported where an operator looks (issue 15): ``replay verify`` and ``audit``
report missing acknowledged data as a finding (exit 1) with its location, ``cets serve``
refuses a damaged data directory with one line (exit 3) and prints what recovery cut, and
a flipped byte of the market definition is a one-line error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core import market as mk
from engine.durable import journal as jr
from engine.durable import sequencer as sq
from gateway import cli as gateway_cli
from replay import errors
from tests.test_replay_cli import assert_one_line_error, call
from tests.test_replay_integrity import small_log


def halve_last_segment(data_dir: Path) -> Path:
    """Cut the last segment holding batches in half (what the issue's operator found)."""
    segment = [Path(s.path) for s in jr.verify(data_dir / "log").segments if s.records][-1]
    data = segment.read_bytes()
    end = jr.verify(data_dir / "log").segments[-1].data_bytes
    segment.write_bytes(data[: (jr.DATA_START + end) // 2])
    return segment


def serve(capsys, data_dir: Path) -> tuple[int, str, str]:
    code = gateway_cli.main(["serve", "--data-dir", str(data_dir), "--port", "0"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_halved_last_segment_is_a_finding_for_verify_and_audit(
    tmp_path: Path, capsysbinary
) -> None:
    small_log(tmp_path, 21)
    segment = halve_last_segment(tmp_path)
    code, out, _ = call(capsysbinary, "verify", str(tmp_path))
    assert code == errors.EXIT_FINDING
    assert f"log DAMAGED: segment {segment}" in out.decode() and "missing" in out.decode()
    code, out, _ = call(capsysbinary, "audit", str(tmp_path))
    text = out.decode()
    assert code == errors.EXIT_FINDING, text
    assert text.startswith(f"audit FAILED: acknowledged data missing: segment {segment}")
    code, _, err = call(capsysbinary, "run", str(tmp_path))
    assert code == errors.EXIT_UNREADABLE
    assert_one_line_error(err, "damaged log", str(segment))


def test_serve_refuses_a_data_directory_missing_acknowledged_data(tmp_path: Path, capsys) -> None:
    small_log(tmp_path, 22)
    segment = halve_last_segment(tmp_path)
    code, out, err = serve(capsys, tmp_path)
    assert code == gateway_cli.EXIT_UNREADABLE and out == ""
    assert err.startswith("cets serve: error: ") and err.count("\n") == 1, err
    assert str(segment) in err and "acknowledged data missing" in err and "Traceback" not in err
    with pytest.raises(jr.MissingDataError):
        sq.Sequencer.open(tmp_path)


def test_serve_prints_what_recovery_cut() -> None:
    journal = jr.JournalRecovery(
        False,
        1,
        3,
        5,
        truncated_bytes=200,
        truncated_segment="log/1.seg",
        truncated_offset=1024,
        truncated_reason="batch without checkpoint (never acknowledged) at byte offset 1024",
        dropped_seqs=(6, 7),
    )
    skipped = [sq.SkippedSnapshot("snapshots/9.snap", "checksum mismatch")]
    report = sq.RecoveryReport(False, journal, None, None, skipped, 0, 0, 0, 5, "")
    lines = gateway_cli.recovery_lines(report)
    assert lines[0].startswith("recovery cut 200 bytes of unacknowledged tail at log/1.seg")
    assert "seq 6..7 never acknowledged" in lines[0]
    assert lines[1] == "recovery skipped snapshot snapshots/9.snap: checksum mismatch"
    clean = sq.RecoveryReport(
        False, jr.JournalRecovery(False, 1, 3, 5), None, None, [], 0, 0, 0, 5, ""
    )
    assert gateway_cli.recovery_lines(clean) == []


def string_positions(text: bytes) -> list[int]:
    """Offsets of bytes inside the JSON strings of a market file."""
    positions, inside, escaped = [], False, False
    for i, byte in enumerate(text):
        if inside and not escaped and byte == ord('"'):
            inside = False
        elif inside:
            positions.append(i)
            escaped = byte == ord("\\") and not escaped
        elif byte == ord('"'):
            inside = True
    return positions


def test_a_flipped_byte_in_a_market_string_is_a_one_line_error(
    tmp_path: Path, capsysbinary
) -> None:
    small_log(tmp_path, 23)
    market_file = tmp_path / sq.MARKET_FILE
    original = market_file.read_bytes()
    assert json.loads(original)
    for at in string_positions(original)[:40:3]:
        damaged = bytearray(original)
        damaged[at] ^= 0x80  # not UTF-8 any more
        market_file.write_bytes(damaged)
        for command in (["verify"], ["audit"]):
            code, _, err = call(capsysbinary, *command, str(tmp_path))
            assert code == errors.EXIT_UNREADABLE, (at, command, err)
            assert_one_line_error(err, str(market_file))
        with pytest.raises(mk.MarketDefinitionError):
            sq.Sequencer.open(tmp_path)
    market_file.write_bytes(original)

"""The command line: exit codes, one-line errors (never a traceback), ``--json`` output that
decodes into the result Structs, the progress bar only on a terminal, and the wiring into a
host program (``cets replay ...``) and ``python -m replay``."""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import crc32c
import msgspec
import pytest

from engine.durable import journal as jr
from replay import errors
from replay.audit import AuditReport
from replay.cli import add_commands, main
from replay.diff import DiffResult
from replay.progress import Progress
from replay.reports import MarketHistory, Statement, TradeRow
from replay.state import BookReport, RunReport
from replay.verify import VerifyResult
from tests.test_replay_support import random_log

ROOT = Path(__file__).absolute().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay-cli") / "data"
    random_log(path, 31, days=2, per_day=120, registry=True)
    return path


def call(capsysbinary, *argv: str) -> tuple[int, bytes, str]:
    capsysbinary.readouterr()  # what the test printed before (a workload's seed)
    code = main(list(argv))
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("replay: error: ") and err.endswith("\n"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


ALL_COMMANDS = [
    ["verify"],
    ["run"],
    ["audit"],
    ["book", "--instrument", "CCER"],
    ["statement", "--account", "3"],
    ["trades"],
    ["market"],
]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c[0])
def test_a_missing_directory_is_a_one_line_error(tmp_path: Path, capsysbinary, command) -> None:
    code, out, err = call(capsysbinary, command[0], str(tmp_path / "nope"), *command[1:])
    assert code == errors.EXIT_UNREADABLE and out == b""
    assert_one_line_error(err, "no such directory")


def test_a_directory_that_is_not_a_data_directory(tmp_path: Path, capsysbinary) -> None:
    code, _, err = call(capsysbinary, "run", str(tmp_path))
    assert code == errors.EXIT_UNREADABLE
    assert_one_line_error(err, "not a data directory")
    (tmp_path / "market.json").write_text("{not json")
    code, _, err = call(capsysbinary, "audit", str(tmp_path))
    assert code == errors.EXIT_UNREADABLE
    assert_one_line_error(err, "invalid market definition")


def copy_of(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_another_format_version_is_refused_by_every_command(
    data_dir: Path, tmp_path: Path, capsysbinary
) -> None:
    copy = copy_of(data_dir, tmp_path / "v2")
    first = jr.segment_paths(copy / "log")[0]
    head = bytearray(first.read_bytes()[: jr.SEGMENT_HEADER_BYTES])
    struct.pack_into("<H", head, 8, jr.FORMAT_VERSION + 1)
    struct.pack_into("<I", head, len(head) - 4, crc32c.crc32c(bytes(head[:-4])))
    with open(first, "r+b") as handle:
        handle.write(head)
    for command in ALL_COMMANDS:
        code, out, err = call(capsysbinary, command[0], str(copy), *command[1:])
        assert code == errors.EXIT_UNREADABLE and out == b"", command
        assert_one_line_error(err, f"unsupported log format version {jr.FORMAT_VERSION + 1}")


def test_damage_is_a_finding_for_verify_and_an_error_for_the_rest(
    data_dir: Path, tmp_path: Path, capsysbinary
) -> None:
    copy = copy_of(data_dir, tmp_path / "damaged")
    first = jr.segment_paths(copy / "log")[0]
    with open(first, "r+b") as handle:
        handle.seek(jr.DATA_START + jr.RECORD_HEADER_BYTES + 20)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x40]))
    code, out, err = call(capsysbinary, "verify", str(copy))
    assert code == errors.EXIT_FINDING and err == ""
    assert f"log DAMAGED: segment {first}, byte offset {jr.DATA_START}" in out.decode()
    for command in ALL_COMMANDS[1:]:
        code, out, err = call(capsysbinary, command[0], str(copy), *command[1:])
        assert code == errors.EXIT_UNREADABLE and out == b"", command
        assert_one_line_error(err, "damaged log", f"byte offset {jr.DATA_START}")


RESULT_TYPES = {
    "verify": VerifyResult,
    "run": RunReport,
    "audit": AuditReport,
    "book": BookReport,
    "statement": Statement,
    "trades": list[TradeRow],
    "market": MarketHistory,
}


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c[0])
def test_json_output_decodes_into_the_result_struct(data_dir: Path, capsysbinary, command):
    code, out, err = call(capsysbinary, command[0], str(data_dir), *command[1:], "--json")
    assert code == 0 and err == ""  # no progress bar: standard error is not a terminal
    result = msgspec.json.decode(out, type=RESULT_TYPES[command[0]])
    assert msgspec.json.encode(result) + b"\n" == out
    json.loads(out)  # plain JSON for any reader


def test_trades_csv_has_a_header_and_one_row_per_trade(data_dir: Path, capsysbinary) -> None:
    code, out, _ = call(capsysbinary, "trades", str(data_dir), "--format", "json")
    trades = msgspec.json.decode(out, type=list[TradeRow])
    code, out, _ = call(capsysbinary, "trades", str(data_dir), "--instrument", "CEA-2024")
    lines = out.decode().splitlines()
    assert code == 0 and lines[0] == ",".join(TradeRow.__struct_fields__)
    assert len(lines) - 1 == sum(t.instrument == "CEA-2024" for t in trades) > 0


def test_usage_errors_exit_2(data_dir: Path, capsysbinary) -> None:
    code, _, err = call(capsysbinary, "book", str(data_dir), "--instrument", "NOPE")
    assert code == errors.EXIT_USAGE
    assert_one_line_error(err, "unknown instrument 'NOPE'", "CEA-2024")
    code, _, err = call(capsysbinary, "run", str(data_dir), "--until-seq", "99999999")
    assert code == errors.EXIT_USAGE
    assert_one_line_error(err, "beyond the end of the log")
    code, _, err = call(capsysbinary, "statement", str(data_dir), "--account", "64")
    assert code == errors.EXIT_USAGE
    with pytest.raises(SystemExit) as exited:
        main(["run", str(data_dir), "--until-seq", "-3"])
    assert exited.value.code == errors.EXIT_USAGE
    with pytest.raises(SystemExit):
        main(["run", str(data_dir), "--until-seq", "5", "--until-time", "2025-01-02"])


def test_audit_and_diff_exit_codes(data_dir: Path, tmp_path: Path, capsysbinary) -> None:
    code, out, _ = call(capsysbinary, "audit", str(data_dir))
    assert code == 0 and out.startswith(b"audit OK")
    code, out, _ = call(capsysbinary, "diff", str(data_dir), str(data_dir))
    assert code == 0 and out.startswith(b"identical")
    other = tmp_path / "other"
    random_log(other, 32, days=1, per_day=50, registry=True)
    code, out, _ = call(capsysbinary, "diff", str(data_dir), str(other), "--json")
    result = msgspec.json.decode(out, type=DiffResult)
    assert code == errors.EXIT_FINDING and not result.identical and result.first_seq


def test_the_progress_bar_draws_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with Progress("audit", 1000, stream=screen, redraw_every_s=0) as progress:
        progress.update(500)
    assert "\raudit [###############---------------]  50%" in screen.getvalue()
    *_, last_drawn, after = screen.getvalue().split("\r")
    assert last_drawn.strip() == "" and after == ""  # closing blanks the line
    quiet = Terminal()
    with Progress("audit", 1000, enabled=False, stream=quiet) as progress:
        progress.update(500)
    assert quiet.getvalue() == ""
    pipe = io.StringIO()
    with Progress("audit", 1000, stream=pipe) as progress:
        progress.update(500)
    assert pipe.getvalue() == ""


def test_wired_into_a_host_program_as_replay(data_dir: Path, capsysbinary) -> None:
    parser = argparse.ArgumentParser(prog="cets")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["replay", "verify", str(data_dir), "--quiet"])
    assert args.run(args) == 0
    assert capsysbinary.readouterr().out.startswith(b"log intact")
    args = parser.parse_args(["replay", "run", str(data_dir / "missing")])
    assert args.run(args) == errors.EXIT_UNREADABLE


def test_python_dash_m_replay(data_dir: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "replay", "verify", str(data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("log intact"), ok.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "replay", "audit", str(data_dir / "missing")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == errors.EXIT_UNREADABLE and missing.stdout == ""
    assert_one_line_error(missing.stderr, "no such directory")


def test_a_forged_log_fails_the_audit_with_exit_1(tmp_path: Path, capsysbinary) -> None:
    from tests.test_replay_integrity import reseal, small_log

    small_log(tmp_path, 17)
    segment = jr.segment_paths(tmp_path / "log")[-2]  # its first command is an order
    raw = bytearray(segment.read_bytes())
    price_at = jr.DATA_START + jr.RECORD_HEADER_BYTES + 24  # first command's price
    raw[price_at] ^= 0x01
    segment.write_bytes(raw)
    reseal(tmp_path / "log")
    code, out, _ = call(capsysbinary, "verify", str(tmp_path))
    assert code == 0
    code, out, _ = call(capsysbinary, "audit", str(tmp_path), "--show", "1")
    text = out.decode()
    assert code == errors.EXIT_FINDING and text.startswith("audit FAILED: batch seq")
    assert "recorded:" in text and "recomputed:" in text and "commands (" in text


def test_verify_reports_bad_snapshots(tmp_path: Path, capsysbinary) -> None:
    from tests.test_replay_support import Workload, small_market, write_log

    market = small_market()
    for name, seed in (("a", 41), ("b", 42)):
        write_log(
            tmp_path / name, Workload(seed, market).batches(2, 80), market, snapshot_every_events=60
        )
    snapshots = sorted((tmp_path / "a" / "snapshots").glob("*.snap"))
    assert len(snapshots) >= 2
    code, out, _ = call(capsysbinary, "verify", str(tmp_path / "a"))
    assert code == 0 and f"snapshots: {len(snapshots)} intact, 0 bad" in out.decode()
    damaged = bytearray(snapshots[0].read_bytes())
    damaged[-1] ^= 0xFF
    snapshots[0].write_bytes(damaged)
    foreign = sorted((tmp_path / "b" / "snapshots").glob("*.snap"))[-1]
    stranger = tmp_path / "a" / "snapshots" / foreign.name
    if stranger.exists():
        stranger.unlink()
    stranger.write_bytes(foreign.read_bytes())
    code, out, _ = call(capsysbinary, "verify", str(tmp_path / "a"), "--json")
    result = msgspec.json.decode(out, type=VerifyResult)
    assert code == errors.EXIT_FINDING and not result.ok and result.log.problem is None
    problems = {Path(check.path).name: check.problem for check in result.snapshots}
    assert "damaged" in problems[snapshots[0].name]
    assert problems[stranger.name] in (
        "taken of another log (chain value differs)",
        f"seq {int(stranger.stem)} is not at a batch boundary of the intact log",
        f"seq {int(stranger.stem)} is beyond the end of the intact log",
    )

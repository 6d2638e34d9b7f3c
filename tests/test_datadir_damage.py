"""Every file of a data directory is checked (issue 15): a single flipped byte or a
truncation of the market definition, a snapshot, the user file or the lock file gives a clean
one-line message and an exit code (3: unreadable, 1: a finding), never a traceback.

Exhaustive over every byte of the small files (market definition, user file, snapshot
header); the snapshot's state and the slower ``Sequencer.open`` are sampled at a fixed
stride so the file runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from engine.core import market as mk
from engine.core.reference.engine import ReferenceEngine
from engine.durable import journal as jr
from engine.durable import sequencer as sq
from engine.durable import snapshots as snapshots
from gateway.protocol import Role
from gateway.users import User, UserDirectory, UserFileError
from replay import errors
from replay.datadir import open_data_dir
from tests.test_replay_cli import assert_one_line_error, call
from tests.test_replay_integrity import small_log


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("datadir")
    small_log(path, 31)
    with sq.Sequencer.open(path, engine_factory=ReferenceEngine) as exchange:
        exchange.snapshot()
    return path


def damaged_versions(original: bytes, cut_stride: int = 1):
    """(what, bytes): every byte flipped (a different bit each time), and the truncations
    (every ``cut_stride``-th length)."""
    for at in range(len(original)):
        flipped = bytearray(original)
        flipped[at] ^= 1 << (at % 8)
        yield f"byte {at} flipped", bytes(flipped)
    for length in range(0, len(original), cut_stride):
        yield f"cut to {length} bytes", original[:length]


def check_replay_command(capsysbinary, command: str, data_dir: Path, what: str) -> int:
    code, out, err = call(capsysbinary, command, str(data_dir))
    assert code in (errors.EXIT_OK, errors.EXIT_FINDING, errors.EXIT_UNREADABLE), (what, err)
    if code == errors.EXIT_UNREADABLE:
        assert_one_line_error(err)
    return code


def test_every_damage_of_the_market_definition(data_dir: Path, capsysbinary) -> None:
    path = data_dir / sq.MARKET_FILE
    original = path.read_bytes()
    codes = set()
    try:
        for i, (what, damaged) in enumerate(damaged_versions(original, cut_stride=7)):
            path.write_bytes(damaged)
            try:  # what every replay command and cets serve read first
                open_data_dir(data_dir)
            except errors.DataError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc), (what, exc)
            if i % 5 == 0:
                codes.add(check_replay_command(capsysbinary, "verify", data_dir, what))
            if i % 97 == 0:  # sampled: the slower ones
                check_replay_command(capsysbinary, "audit", data_dir, what)
                try:
                    sq.Sequencer.open(data_dir, engine_factory=ReferenceEngine).close()
                except (mk.MarketDefinitionError, jr.MarketMismatchError):
                    pass
    finally:
        path.write_bytes(original)
    assert errors.EXIT_UNREADABLE in codes


def test_every_damage_of_a_snapshot(data_dir: Path, capsysbinary) -> None:
    (path,) = snapshots.snapshot_paths(data_dir / sq.SNAPSHOT_DIR)
    original = path.read_bytes()
    digest = msgspec.json.decode((data_dir / sq.MARKET_FILE).read_bytes(), type=mk.MarketDefinition)
    try:
        for i, (what, damaged) in enumerate(damaged_versions(original, cut_stride=13)):
            at = int(what.split()[1]) if what.startswith("byte") else 0
            if at >= snapshots.SNAPSHOT_HEADER_BYTES and at % 13:  # the state: sampled
                continue
            path.write_bytes(damaged)
            with pytest.raises(snapshots.SnapshotError):
                snapshots.read_snapshot(path, digest.digest())
            if i % 41 == 0:
                code = check_replay_command(capsysbinary, "verify", data_dir, what)
                assert code == errors.EXIT_FINDING, what  # a bad snapshot is a finding
            if i % 211 == 0:  # recovery skips it and replays the log instead
                with sq.Sequencer.open(data_dir, engine_factory=ReferenceEngine) as exchange:
                    assert exchange.recovery_report.snapshots_skipped, what
    finally:
        path.write_bytes(original)
        for stray in (data_dir / sq.SNAPSHOT_DIR).iterdir():
            if stray != path:
                stray.unlink()


def test_every_damage_of_the_user_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    directory = UserDirectory(
        [User(name="alice", role=Role.TRADER, secret_hash="x" * 16, accounts=[3])]
    )
    directory.save(path)
    original = path.read_bytes()
    assert json.loads(original)
    refused = 0
    for _, damaged in damaged_versions(original):
        path.write_bytes(damaged)
        try:
            UserDirectory.load(path)
        except UserFileError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            refused += 1
    assert refused > len(original)


def test_damage_of_the_lock_files_does_not_matter(data_dir: Path) -> None:
    """The locks are flock(2) targets; their content (a pid) is only a hint in a message."""
    for lock in (data_dir / jr.LOCK_FILE, data_dir / sq.LOG_DIR / jr.LOCK_FILE):
        for damaged in (b"", b"\xff\xfe\x00garbage", bytes(range(256))):
            lock.write_bytes(damaged)
            with sq.Sequencer.open(data_dir, engine_factory=ReferenceEngine) as exchange:
                assert exchange.last_seq > 0

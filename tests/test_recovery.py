"""One recovery for every caller: ``Sequencer.open``, ``Sequencer.events_since`` and replay's
time travel apply the same chain rule to snapshots (engine.durable.recovery), and snapshot and
user files are written by the one atomic-write helper."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from engine.durable import journal as jr
from engine.durable import recovery as rc
from engine.durable import sequencer as sq
from engine.durable import snapshots as sn
from engine.durable.files import write_atomically
from gateway.protocol import Role
from gateway.users import User, UserDirectory, hash_secret_pbkdf2
from replay.datadir import open_data_dir
from replay.errors import DataError
from replay.timeline import Stop, rebuild
from tests.conftest import buy, open_session, sell, small_market
from tests.test_sequencer import fabricate_snapshot, open_exchange, random_batches, run, seeded


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "file"
    write_atomically(path, b"old")
    write_atomically(path, b"new" * 10_000, mode=0o600)  # mode only applies to new files
    assert path.read_bytes() == b"new" * 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
    secret = tmp_path / "secret"
    write_atomically(secret, b"x", mode=0o600)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_the_user_file_is_written_atomically_for_its_owner_only(tmp_path: Path) -> None:
    users = UserDirectory([User("ana", Role.TRADER, hash_secret_pbkdf2("pw", iterations=1), [7])])
    path = tmp_path / "users.json"
    users.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["users.json"]
    assert [u.name for u in UserDirectory.load(path)] == ["ana"]


def three_batches(path: Path) -> str:
    """An exchange with batches at seq 1, 2..3 and 4 (closed again); its state hash."""
    with open_exchange(path, small_market(), snapshot_every_events=None) as exchange:
        exchange.submit([open_session(20250102)])
        exchange.submit([buy(1, 1, 5, 6000), buy(2, 1, 5, 6000)])
        exchange.submit([sell(3, 2, 5, 6000)])
        return exchange.state_hash()


def test_a_snapshot_inside_a_batch_is_skipped_by_every_caller(tmp_path: Path) -> None:
    live = three_batches(tmp_path)
    with open_exchange(tmp_path) as exchange:
        inside = fabricate_snapshot(exchange, 2, exchange.journal.chain_hash)
        events = list(exchange.events_since(1))
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_seq is None
        (skipped,) = report.snapshots_skipped
        assert skipped.path == str(inside) and "does not match the log" in skipped.reason
        assert exchange.state_hash() == live
        assert list(exchange.events_since(4)) == [e for e in events if e.seq >= 4]
    rebuilt = rebuild(open_data_dir(tmp_path), "reference", Stop(), from_snapshot=True)
    assert rebuilt.snapshot_seq is None and rebuilt.engine.state_hash() == live
    assert [x.path for x in rebuilt.skipped_snapshots] == [str(inside)]


def test_events_since_never_starts_from_a_snapshot_of_another_log(tmp_path: Path) -> None:
    """Before the one recovery, the resend path took any readable snapshot before the seq."""
    rng = seeded()
    market = small_market()
    with open_exchange(tmp_path, market, snapshot_every_events=None) as exchange:
        live = run(exchange, random_batches(rng, 300, market))
        first_batch_end = next(exchange.journal.read()).last_seq
        # the final state, filed as if it were the state after the first batch
        stranger = fabricate_snapshot(exchange, first_batch_end, bytes(32))
        since = first_batch_end + 1
        assert list(exchange.events_since(since)) == [e for e in live if e.seq >= since]
    assert stranger.exists()


def test_a_snapshot_whose_header_disagrees_with_its_name_is_skipped(tmp_path: Path) -> None:
    three_batches(tmp_path)
    with open_exchange(tmp_path) as exchange:
        exchange.submit([open_session(20250103)])
        good = exchange.snapshot()
        live = exchange.state_hash()
    renamed = good.with_name(sn.snapshot_name(6))
    renamed.write_bytes(good.read_bytes())
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_path == str(good)
        assert report.snapshots_skipped == [
            rc.SkippedSnapshot(str(renamed), "file name says seq 6, header 5")
        ]
        assert exchange.state_hash() == live


def test_a_snapshot_stands_in_for_a_removed_log_beginning(tmp_path: Path) -> None:
    """The log's chain value at the snapshot is the one the next segment links to."""
    rng = random.Random(7)
    market = small_market()
    batches = random_batches(rng, 200, market)
    small_segments = {"segment_bytes": jr.SEGMENT_BYTES_MIN, "snapshots_kept": 1_000}
    with open_exchange(tmp_path, market, snapshot_every_events=None, **small_segments) as exchange:
        for batch in batches:
            exchange.submit(batch)
            if exchange.last_seq < 150:
                exchange.snapshot()  # one after every early batch
        live, last = exchange.state_hash(), exchange.last_seq
    segments = jr.segment_paths(tmp_path / sq.LOG_DIR)
    starts = [int(p.stem) for p in segments]
    cut = next(i for i, seq in enumerate(starts) if seq > 1 and (seq - 1) < 150)
    for path in segments[:cut]:
        path.unlink()
    for path in sn.snapshot_paths(tmp_path / sq.SNAPSHOT_DIR):
        if int(path.stem) >= starts[cut]:
            path.unlink()  # the snapshot at starts[cut] - 1 is now the newest
    rebuilt = rebuild(open_data_dir(tmp_path), "reference", Stop(), from_snapshot=True)
    assert rebuilt.snapshot_seq == starts[cut] - 1 and rebuilt.engine.state_hash() == live
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_seq == starts[cut] - 1
        assert report.commands_replayed == last - report.snapshot_seq
        assert exchange.state_hash() == live
    for path in sn.snapshot_paths(tmp_path / sq.SNAPSHOT_DIR):
        path.unlink()
    with pytest.raises(jr.LogCorruptError, match="does not start at seq 1"):
        open_exchange(tmp_path)
    with pytest.raises(DataError, match="does not start at seq 1"):
        rebuild(open_data_dir(tmp_path), "reference", Stop(), from_snapshot=True)

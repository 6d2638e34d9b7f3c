"""The exchange service: sequencing, durable submit, recovery from snapshots and the log,
``events_since``, the single-writer lock, and determinism across processes."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.core import limits
from engine.core import schema as s
from engine.core.reference.engine import ReferenceEngine
from engine.durable import journal as jr
from engine.durable import recovery as rc
from engine.durable import sequencer as sq
from engine.durable import snapshots as sn
from engine.markets import national_market
from tests.conftest import buy, open_session, random_commands, sell, small_market
from tests.test_journal import record_starts, reseal

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_750_000_000_000_000_000


def clock(start: int = T0, step: int = 1_000):
    return itertools.count(start, step).__next__


def open_exchange(path: Path, market=None, **kw) -> sq.Sequencer:
    kw.setdefault("clock", clock())
    kw.setdefault("engine_factory", ReferenceEngine)
    kw.setdefault("segment_bytes", 64 * 1024)
    return sq.Sequencer.open(path, market, **kw)


def random_batches(rng: random.Random, n: int, market) -> list[list[s.Command]]:
    commands = random_commands(rng, n, market)
    batches, i = [], 0
    while i < len(commands):
        size = rng.choice((1, 1, 2, 5, 17, 60))
        batches.append(commands[i : i + size])
        i += size
    return batches


def run(exchange: sq.Sequencer, batches: list[list[s.Command]]) -> list[s.Event]:
    events: list[s.Event] = []
    for batch in batches:
        events.extend(exchange.submit(batch).events)
    exchange.engine.check_invariants()
    return events


def seeded() -> random.Random:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    return random.Random(seed)


# ------------------------------------------------------------------------------------------
# Creating and sequencing
# ------------------------------------------------------------------------------------------


def test_a_new_exchange_needs_a_market(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="needs a market"):
        open_exchange(tmp_path)


def test_market_is_stored_and_must_match(tmp_path: Path) -> None:
    market = small_market()
    with open_exchange(tmp_path, market) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.created and report.last_seq == 0
    assert (tmp_path / sq.MARKET_FILE).exists()
    with open_exchange(tmp_path) as exchange:  # recovered from the stored definition
        assert exchange.market.digest() == market.digest()
        assert not exchange.recovery_report.created  # type: ignore[union-attr]
    with pytest.raises(jr.MarketMismatchError):
        open_exchange(tmp_path, national_market())
    open_exchange(tmp_path, market).close()  # the lock was released after the refusal


def test_submit_assigns_consecutive_seqs_and_the_clocks_time(tmp_path: Path) -> None:
    times = iter([T0, T0 + 5, T0 - 100, T0 + 9])  # the clock steps back once
    with open_exchange(tmp_path, small_market(), clock=lambda: next(times)) as exchange:
        first = exchange.submit([open_session(20250102)])
        second = exchange.submit([sell(1, 1, 10, 6000), buy(2, 2, 4, 6000)])
        third = exchange.submit([buy(3, 2, 1, 6000)])
        fourth = exchange.submit([buy(4, 2, 1, 5990)])
    assert (first.first_seq, first.last_seq) == (1, 1)
    assert (second.first_seq, second.last_seq, third.first_seq, fourth.last_seq) == (2, 3, 4, 5)
    assert {e.ts_ns for e in first.events} == {T0}
    assert {e.ts_ns for e in second.events} == {T0 + 5}
    assert {e.ts_ns for e in third.events} == {T0 + 5}  # clamped: never backwards
    assert {e.ts_ns for e in fourth.events} == {T0 + 9}
    assert [e.seq for e in second.events] == [2, 3, 3]  # accepted; accepted, traded
    assert type(second.events[-1]) is s.TradeExecuted


def test_the_clock_must_give_integer_nanoseconds(tmp_path: Path) -> None:
    with open_exchange(tmp_path, small_market(), clock=lambda: 1.5) as exchange:
        with pytest.raises(TypeError, match="integer nanoseconds"):
            exchange.submit([open_session(20250102)])
        assert exchange.last_seq == 0


def test_empty_and_oversized_batches(tmp_path: Path) -> None:
    with open_exchange(tmp_path, small_market()) as exchange:
        assert exchange.submit([]) == sq.SubmitResult(1, 0, [])
        too_many = [open_session(20250102)] * (limits.BATCH_COMMANDS_MAX + 1)
        with pytest.raises(ValueError, match="at most"):
            exchange.submit(too_many)
        assert exchange.submit([open_session(20250102)]).first_seq == 1  # still usable


def test_events_are_those_of_the_engine_and_submit_records_agrees(tmp_path: Path) -> None:
    rng = seeded()
    market = small_market()
    batches = random_batches(rng, 600, market)
    plain = ReferenceEngine(market)
    with open_exchange(tmp_path / "a", market) as a, open_exchange(tmp_path / "b", market) as b:
        for batch in batches:
            result = a.submit(batch)
            records = a.codec.encode_commands(batch)
            events = b.submit_records(records)
            assert records["seq"].tolist() == list(range(result.first_seq, result.last_seq + 1))
            assert plain.codec.decode_events(plain.apply_records(records)) == result.events
            assert b.codec.decode_events(events) == result.events
        assert a.state_hash() == b.state_hash() == plain.state_hash()


def test_submit_records_refuses_other_arrays(tmp_path: Path) -> None:
    with open_exchange(tmp_path, small_market()) as exchange:
        with pytest.raises(TypeError):
            exchange.submit_records(np.zeros(2, np.int64))
        records = exchange.codec.encode_commands([open_session(20250102)])
        records.flags.writeable = False
        with pytest.raises(ValueError, match="writeable"):
            exchange.submit_records(records)
        assert len(exchange.submit_records(records[:0].copy())) == 0


def test_annotations_are_logged_with_their_commands(tmp_path: Path) -> None:
    with open_exchange(tmp_path, small_market()) as exchange:
        exchange.submit([open_session(20250102)])
        exchange.submit([buy(1, 1, 5, 6000), buy(2, 1, 5, 6000)], [b"clord-1", None])
        batches = list(exchange.journal.read())
    assert batches[0].annotations() is None
    assert batches[1].annotations() == [b"clord-1", None]
    with open_exchange(tmp_path) as exchange, pytest.raises(ValueError):
        exchange.submit([buy(3, 1, 5, 6000)], [b"a", b"b"])


def test_the_default_engine_is_the_compiled_one(tmp_path: Path) -> None:
    assert sq.default_engine_class().__name__ == "CompiledEngine"
    market = small_market()
    with sq.Sequencer.open(tmp_path, market, snapshot_every_events=None) as exchange:
        assert type(exchange.engine).__name__ == "CompiledEngine"
        exchange.submit([open_session(20250102), sell(1, 1, 10, 6000), buy(2, 2, 4, 6000)])
        live = exchange.state_hash()
    with sq.Sequencer.open(tmp_path, engine_factory=ReferenceEngine) as exchange:
        assert exchange.state_hash() == live  # the log does not depend on the engine


# ------------------------------------------------------------------------------------------
# Recovery
# ------------------------------------------------------------------------------------------


def test_reopen_replays_the_log_to_the_same_state(tmp_path: Path) -> None:
    rng = seeded()
    market = small_market()
    with open_exchange(tmp_path, market, snapshot_every_events=None) as exchange:
        run(exchange, random_batches(rng, 800, market))
        live, last = exchange.state_hash(), exchange.last_seq
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_seq is None
        assert report.commands_replayed == last == exchange.last_seq
        assert exchange.state_hash() == report.state_hash == live
        exchange.submit([open_session(20300101)])  # and it goes on from there
        assert exchange.last_seq == last + 1


@pytest.mark.parametrize("round_", range(3))
def test_snapshot_plus_tail_equals_full_replay(tmp_path: Path, round_: int) -> None:
    rng = seeded()
    market = small_market()
    every = rng.choice((50, 150, 400))  # every command has at least one event
    with open_exchange(tmp_path, market, snapshot_every_events=every, snapshots_kept=2) as ex:
        run(ex, random_batches(rng, rng.randint(700, 1500), market))
        live = ex.state_hash()
    assert len(sn.snapshot_paths(tmp_path / sq.SNAPSHOT_DIR)) in (1, 2)
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_seq is not None
        assert report.commands_replayed == exchange.last_seq - report.snapshot_seq
        assert exchange.state_hash() == live
        exchange.engine.check_invariants()
    for path in sn.snapshot_paths(tmp_path / sq.SNAPSHOT_DIR):
        path.unlink()
    with open_exchange(tmp_path) as exchange:
        assert exchange.recovery_report.snapshot_seq is None  # type: ignore[union-attr]
        assert exchange.state_hash() == live


def test_damaged_snapshots_are_reported_and_skipped(tmp_path: Path) -> None:
    rng = seeded()
    market = small_market()
    batches = random_batches(rng, 600, market)
    with open_exchange(tmp_path, market, snapshot_every_events=None) as exchange:
        run(exchange, batches[:10])
        older = exchange.snapshot()
        run(exchange, batches[10:20])
        newer = exchange.snapshot()
        run(exchange, batches[20:])
        live = exchange.state_hash()
    data = bytearray(newer.read_bytes())
    data[-3] ^= 0x04  # inside the engine state
    newer.write_bytes(data)
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_path == str(older)
        assert [x.path for x in report.snapshots_skipped] == [str(newer)]
        assert "checksum" in report.snapshots_skipped[0].reason
        assert exchange.state_hash() == live
    older.write_bytes(b"CETSSNAP")  # short: unusable too -> full replay
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_seq is None
        assert len(report.snapshots_skipped) == 2 and exchange.state_hash() == live


def test_unfinished_snapshot_files_are_removed(tmp_path: Path) -> None:
    with open_exchange(tmp_path, small_market()) as exchange:
        exchange.submit([open_session(20250102)])
        path = exchange.snapshot()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(path.read_bytes()[:100])  # a crash while writing the next one
    with open_exchange(tmp_path) as exchange:
        assert exchange.recovery_report.removed_temp_files == [str(tmp)]  # type: ignore[union-attr]
        assert exchange.recovery_report.snapshot_path == str(path)  # type: ignore[union-attr]
    assert not tmp.exists()


def fabricate_snapshot(exchange: sq.Sequencer, last_seq: int, chain: bytes) -> Path:
    info = sn.SnapshotInfo(
        "",
        last_seq,
        T0,
        exchange.market.digest(),
        chain,
        exchange.state_hash(),
        exchange.engine.export_state(),
    )
    return sn.write_snapshot(exchange.data_dir / sq.SNAPSHOT_DIR, info)


def test_snapshots_that_do_not_fit_the_log_are_skipped(tmp_path: Path) -> None:
    market = small_market()
    with open_exchange(tmp_path, market, snapshot_every_events=None) as exchange:
        exchange.submit([open_session(20250102)])
        exchange.submit([buy(1, 1, 5, 6000)])
        exchange.submit([sell(2, 2, 5, 6010)])
        live = exchange.state_hash()
        ahead = fabricate_snapshot(exchange, 99, exchange.journal.chain_hash)
        wrong_chain = fabricate_snapshot(exchange, 2, bytes(32))
    with open_exchange(tmp_path) as exchange:
        report = exchange.recovery_report
        assert report is not None and report.snapshot_seq is None
        reasons = {x.path: x.reason for x in report.snapshots_skipped}
        assert "ahead of the log" in reasons[str(ahead)]
        assert "does not match the log" in reasons[str(wrong_chain)]
        assert exchange.state_hash() == live


def test_replay_that_disagrees_with_a_checkpoint_is_refused(tmp_path: Path) -> None:
    market = small_market()
    with open_exchange(tmp_path, market) as exchange:
        exchange.submit([open_session(20250102)])
        exchange.submit([buy(1, 1, 5, 6000)])
        exchange.submit([sell(2, 2, 5, 6000)])
    log = tmp_path / sq.LOG_DIR
    (segment,) = jr.segment_paths(log)
    checkpoint = record_starts(log)[str(segment)][3][0]  # of the second batch
    reseal(segment, lambda data: struct.pack_into("<Q", data, checkpoint + 128, 7))
    assert jr.verify(log).ok  # a well-formed log: only replay can tell
    with pytest.raises(rc.ReplayDivergenceError, match="seq 2..2"):
        open_exchange(tmp_path)


class FailingEngine(ReferenceEngine):
    """Raises on order id 666, as a bug in an engine would."""

    def apply_records(self, records: np.ndarray) -> np.ndarray:
        if 666 in records["order_id"]:
            raise RuntimeError("engine bug")
        return super().apply_records(records)


def test_a_failed_batch_stops_the_exchange_until_it_is_reopened(tmp_path: Path) -> None:
    market = small_market()
    with open_exchange(tmp_path, market, engine_factory=FailingEngine) as exchange:
        exchange.submit([open_session(20250102), buy(1, 1, 5, 6000)])
        before = exchange.state_hash()
        with pytest.raises(RuntimeError, match="engine bug"):
            exchange.submit([buy(2, 1, 5, 6000), buy(666, 1, 5, 6000)])
        with pytest.raises(sq.SequencerFailedError, match="reopen"):
            exchange.submit([buy(3, 1, 5, 6000)])
    assert jr.verify(tmp_path / sq.LOG_DIR).ok
    with open_exchange(tmp_path, engine_factory=FailingEngine) as exchange:
        assert exchange.last_seq == 2 and exchange.state_hash() == before
        assert exchange.submit([buy(3, 1, 5, 6000)]).first_seq == 3


def test_second_exchange_in_another_process_is_refused(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from engine.durable.sequencer import Sequencer
        from engine.durable.journal import LogLockedError
        try:
            Sequencer.open({str(tmp_path)!r})
        except LogLockedError as exc:
            print("refused:", exc)
        """
    )
    with open_exchange(tmp_path, small_market()):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "locked by another writer" in out.stdout
    assert f"pid {os.getpid()}" in out.stdout


@pytest.mark.parametrize("durability", ["batch", "interval", "none"])
def test_every_durability_policy_recovers_after_close(tmp_path: Path, durability: str) -> None:
    market = small_market()
    with open_exchange(tmp_path, market, durability=durability) as exchange:
        exchange.submit([open_session(20250102), buy(1, 1, 5, 6000)])
        live = exchange.state_hash()
    with open_exchange(tmp_path, durability=durability) as exchange:
        assert exchange.state_hash() == live
    with pytest.raises(ValueError):
        open_exchange(tmp_path, durability="sometimes")


class NoSnapshotEngine(ReferenceEngine):
    def export_state(self) -> bytes:
        raise OSError("disk full")


def test_a_failed_automatic_snapshot_does_not_fail_the_durable_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    market = small_market()
    with open_exchange(
        tmp_path, market, engine_factory=NoSnapshotEngine, snapshot_every_events=2
    ) as exchange:
        result = exchange.submit([open_session(20250102)])  # 3 events: a snapshot is due
        assert result.last_seq == 1 and len(result.events) == 3
        assert isinstance(exchange.snapshot_error, OSError)
        assert "automatic snapshot at seq 1 failed" in caplog.text
        exchange.submit([buy(1, 1, 5, 6000)])  # still usable
        with pytest.raises(OSError):
            exchange.snapshot()  # on request: the caller sees the error
        assert exchange.submit([buy(2, 1, 5, 6000)]).first_seq == 3
    assert jr.verify(tmp_path / sq.LOG_DIR).last_seq == 3


def test_snapshots_kept(tmp_path: Path) -> None:
    with open_exchange(tmp_path, small_market(), snapshots_kept=2) as exchange:
        for date in (20250102, 20250103, 20250106, 20250107):
            exchange.submit([open_session(date)])
            exchange.snapshot()
            exchange.submit([s.CloseSession(trading_date=date)])
    names = [p.name for p in sn.snapshot_paths(tmp_path / sq.SNAPSHOT_DIR)]
    assert names == [f"{seq:020d}.snap" for seq in (7, 5)]


# ------------------------------------------------------------------------------------------
# Reading events back
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("snapshots", [False, True])
def test_events_since_regenerates_the_live_events(tmp_path: Path, snapshots: bool) -> None:
    rng = seeded()
    market = small_market()
    every = 150 if snapshots else None
    with open_exchange(tmp_path, market, snapshot_every_events=every) as exchange:
        live = run(exchange, random_batches(rng, 700, market))
        hash_before = exchange.state_hash()
        last = exchange.last_seq
        for since in (1, 2, rng.randint(1, last), rng.randint(1, last), last, last + 1):
            expected = [e for e in live if e.seq >= since]
            assert list(exchange.events_since(since)) == expected, since
        assert list(exchange.events_since(-5)) == live
        assert exchange.state_hash() == hash_before  # the live engine was not touched


# ------------------------------------------------------------------------------------------
# Determinism across processes
# ------------------------------------------------------------------------------------------

REPLAY_SCRIPT = """
import hashlib, sys
sys.path.insert(0, {root!r})
import msgspec
from engine.durable import journal as jr
from engine.core.reference.engine import ReferenceEngine
from engine.core.compiled.engine import CompiledEngine
from engine.durable.sequencer import MARKET_FILE, LOG_DIR, _decode_market
from pathlib import Path
data_dir = Path({data_dir!r})
market = _decode_market((data_dir / MARKET_FILE).read_bytes())
engine = {engine_class}(market)
digests = hashlib.blake2b(digest_size=32)
matches = 0
for batch in jr.read_log(data_dir / LOG_DIR, market_digest=market.digest()):
    digest = jr.events_digest(engine.apply_records(batch.commands))
    digests.update(digest)
    matches += digest == batch.events_digest
print(engine.state_hash(), digests.hexdigest(), matches)
"""


@pytest.mark.parametrize("engine_class", ["ReferenceEngine", "CompiledEngine"])
def test_replay_in_fresh_processes_is_identical(tmp_path: Path, engine_class: str) -> None:
    rng = seeded()
    market = small_market()
    with open_exchange(tmp_path, market) as exchange:
        run(exchange, random_batches(rng, 1500, market))
        live = exchange.state_hash()
        batches = list(exchange.journal.read())
    recorded = hashlib.blake2b(digest_size=32)
    for batch in batches:
        recorded.update(batch.events_digest)
    script = REPLAY_SCRIPT.format(root=str(ROOT), data_dir=str(tmp_path), engine_class=engine_class)
    outputs = []
    for hash_seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        outputs.append(out.stdout.split())
    assert outputs[0] == outputs[1] == [live, recorded.hexdigest(), str(len(batches))]


def test_a_removed_log_is_missing_data_not_a_new_log(tmp_path: Path) -> None:
    """market.json is written after the first segment: a stored market without a log means
    the log was removed, and opening says so instead of starting a new, empty exchange."""
    with open_exchange(tmp_path, small_market()) as exchange:
        exchange.submit([open_session(20250102)])
    for segment in jr.segment_paths(tmp_path / sq.LOG_DIR):
        segment.unlink()
    with pytest.raises(jr.MissingDataError, match="the log was removed"):
        sq.Sequencer.open(tmp_path)
    shutil.rmtree(tmp_path / sq.LOG_DIR)
    with pytest.raises(jr.MissingDataError, match="no segment"):
        sq.Sequencer.open(tmp_path)
    assert not (tmp_path / sq.LOG_DIR).exists()  # refused before creating anything

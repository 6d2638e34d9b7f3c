"""Time travel agrees with live state: the state ``replay run --until-seq N`` rebuilds equals
the state of an engine fed commands 1 … N one at a time, for random N; the same for times,
for books, and when starting from a snapshot."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.core.compiled.engine import CompiledEngine
from replay.datadir import open_data_dir
from replay.errors import UsageError
from replay.state import book, run
from replay.timeline import Stop, engine_class, rebuild
from tests.test_replay_support import SECOND, T0, Workload, random_log, small_market, write_log


def logged_commands(data) -> list:
    """Every command of the log in the typed view, with the seq and time it was given."""
    from replay.datadir import LogReader

    commands = []
    for batch in LogReader(data, prefetch=False):
        commands += data.codec.decode_commands(batch.commands)
    return commands


@pytest.mark.parametrize("registry", [False, True], ids=["matching", "registry"])
def test_state_at_random_seq_equals_live_engine_after_that_command(
    tmp_path: Path, registry: bool
) -> None:
    seed = random.randrange(1 << 30)
    market, batch_hashes = random_log(tmp_path, seed, registry=registry)
    data = open_data_dir(tmp_path)
    commands = logged_commands(data)
    rng = random.Random(seed)
    targets = sorted(rng.sample(range(len(commands) + 1), 12) + [0, len(commands)])
    live = CompiledEngine(market)
    live_hashes = {0: live.state_hash()}
    for n, command in enumerate(commands, 1):
        live.apply(command)
        live_hashes[n] = live.state_hash()
    for n in targets:
        rebuilt = rebuild(data, stop=Stop(until_seq=n))
        assert rebuilt.last_seq == n
        assert rebuilt.engine.state_hash() == live_hashes[n], f"seed {seed}, seq {n}"
    for last_seq, state_hash in batch_hashes.items():  # the sequencer's own live engine
        assert live_hashes[last_seq] == state_hash, f"seed {seed}, seq {last_seq}"


def test_state_at_a_time_is_the_state_after_the_last_command_at_or_before_it(
    tmp_path: Path,
) -> None:
    seed = random.randrange(1 << 30)
    print(f"seed={seed}")
    _, batch_hashes = random_log(tmp_path, seed, days=2, per_day=60)
    data = open_data_dir(tmp_path)
    ends = sorted(batch_hashes)  # batch i (from 0) was stamped T0 + i seconds
    # a short random log may have fewer than 6 batches (seed 871976155: 5): sample what is there
    for i in random.Random(seed).sample(range(len(ends)), min(6, len(ends))):
        for at in (T0 + i * SECOND, T0 + i * SECOND + SECOND - 1):
            rebuilt = rebuild(data, stop=Stop(until_ts_ns=at))
            assert rebuilt.last_seq == ends[i], f"seed {seed}"
            assert rebuilt.engine.state_hash() == batch_hashes[ends[i]]
            assert rebuilt.chain_hash is not None
    before = rebuild(data, stop=Stop(until_ts_ns=T0 - 1))
    assert (
        before.last_seq == 0
        and before.engine.state_hash() == CompiledEngine(data.market).state_hash()
    )


def test_book_at_seq_shows_what_the_live_engine_held(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    market, _ = random_log(tmp_path, seed, days=1, per_day=200)
    data = open_data_dir(tmp_path)
    commands = logged_commands(data)
    n = random.Random(seed).randrange(len(commands) // 2, len(commands))
    live = CompiledEngine(market)
    for command in commands[:n]:
        live.apply(command)
    for symbol in market.symbols:
        levels = book(data, symbol, Stop(until_seq=n), depth=3)
        expected = live.depth(symbol, 3)
        assert (levels.bids, levels.asks) == (expected.bids, expected.asks), f"seed {seed}"
        orders = book(data, symbol, Stop(until_seq=n), orders=True)
        assert orders.bid_orders == live.orders(symbol, 1), f"seed {seed}"
        assert orders.ask_orders == live.orders(symbol, 2), f"seed {seed}"
        assert orders.last_seq == n


def test_seq_beyond_the_end_is_a_usage_error(tmp_path: Path) -> None:
    _, hashes = random_log(tmp_path, 11, days=1, per_day=20)
    data = open_data_dir(tmp_path)
    last = max(hashes)
    assert rebuild(data, stop=Stop(until_seq=last)).last_seq == last
    with pytest.raises(UsageError, match=f"beyond the end of the log \\(last seq {last}\\)"):
        rebuild(data, stop=Stop(until_seq=last + 1))


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_from_snapshot_equals_full_replay_and_skips_what_does_not_fit(
    tmp_path: Path, engine: str
) -> None:
    """Snapshots written by either engine (the snapshot format is shared)."""
    seed = random.randrange(1 << 30)
    print(f"replay snapshot seed {seed}")
    market = small_market()
    batches = Workload(seed, market).batches(3, 120)
    factory = engine_class(engine)
    write_log(tmp_path, batches, market, engine_factory=factory, snapshot_every_events=90)
    data = open_data_dir(tmp_path)
    snapshots = sorted(int(p.stem) for p in data.snapshot_dir.glob("*.snap"))
    assert len(snapshots) >= 2
    newest = snapshots[-1]
    (data.snapshot_dir / f"{snapshots[0]:020d}.snap").write_bytes(b"garbage")
    last = rebuild(data, engine).last_seq
    for stop in (Stop(), Stop(until_seq=newest), Stop(until_seq=(newest + last) // 2)):
        full = rebuild(data, engine, stop)
        fast = rebuild(data, engine, stop, from_snapshot=True)
        assert fast.snapshot_seq == newest, f"seed {seed}"
        assert fast.commands < full.commands
        assert fast.engine.state_hash() == full.engine.state_hash(), f"seed {seed}, {stop}"
    early = rebuild(data, engine, Stop(until_seq=snapshots[1]), from_snapshot=True)
    assert early.snapshot_seq == snapshots[1]
    older = rebuild(data, engine, Stop(until_seq=snapshots[1] - 1), from_snapshot=True)
    assert older.snapshot_seq is None  # the only older snapshot is damaged
    assert [s.path for s in older.skipped_snapshots] == [
        str(data.snapshot_dir / f"{snapshots[0]:020d}.snap")
    ]
    other = "reference" if engine == "compiled" else "compiled"
    report = run(data, other, Stop(), from_snapshot=True)  # restored by the other engine
    assert report.snapshot_seq == newest
    assert report.state_hash == rebuild(data, engine).engine.state_hash(), f"seed {seed}"


def test_a_time_stop_before_a_seq_stop_is_no_error(tmp_path: Path) -> None:
    _, hashes = random_log(tmp_path, 12, days=1, per_day=150)
    data = open_data_dir(tmp_path)
    ends = sorted(hashes)
    assert len(ends) > 3
    both = Stop(until_seq=ends[-1], until_ts_ns=T0 + 2 * SECOND)
    rebuilt = rebuild(data, stop=both)
    assert rebuilt.last_seq == ends[2] and rebuilt.engine.state_hash() == hashes[ends[2]]

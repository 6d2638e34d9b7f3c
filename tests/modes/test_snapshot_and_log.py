"""Trading-mode scenarios (docs/TRADING_MODES.md) against both engines: state, snapshots and the log.

Pure matching without a registry, the state hash words, snapshots of the modes' state, and
replay: a log of every mode replays to the live state.
The market, the desk and the command builders are ``tests/modes/desk.py``'s; every command
goes through ``step`` (invariants and the event round trip after each)."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.core import schema as s
from engine.core import snapshot as snap
from tests.conftest import DATE1, DATE2
from tests.modes.desk import (
    ACCOUNTS,
    AFTERNOON,
    BUY,
    C_,
    CCER,
    CCERB,
    CLOSE_MINUS_BAND,
    MIDDAY,
    PAY_AS_BID,
    PREVIOUS_CLOSE,
    QUOTE_BOOK,
    SELL,
    SYMBOLS,
    TO_AFTERNOON,
    UNIFORM,
    V24,
    V25,
    A,
    B,
    D,
    Desk,
    R,
    accept,
    announce,
    apply_auction,
    bid,
    hit,
    modes_market,
    offer,
    open_desk,
    opening_commands,
    phase,
    run_setup,
    snapshot_of,
)

# ============================================================================================
# Pure matching (registry off): no ledger steps, every account in range is known
# ============================================================================================


def test_block_and_auction_without_a_registry(engine_cls) -> None:
    desk = Desk(engine_cls(modes_market(registry=False)))
    run_setup(desk, [s.OpenSession(trading_date=DATE1), TO_AFTERNOON])
    events = desk.do(offer(offer_id=1, account=9, qty=10**9, counterparty=8))
    assert events == [s.BlockOfferPosted(events[0].seq, 0, 1, 9, V24, SELL, 6000, 10**9, 8)]
    assert [e.reason for e in desk.do(offer(offer_id=2, account=9, counterparty=ACCOUNTS))] == [
        R.INVALID_COUNTERPARTY
    ]
    events = desk.do(accept(offer_id=1, account=8, qty=10**9))
    assert events == [s.BlockTradeExecuted(events[0].seq, 0, 1, V24, 6000, 10**9, 1, SELL, 9, 8)]
    run_setup(desk, [apply_auction(1, 6, CCERB, 10**6), announce(1), bid(1, 1, 0, 5500, 10**6)])
    events = desk.do(s.ClearAuction(auction_id=1))
    assert events[0] == s.AuctionTrade(events[0].seq, 0, 2, 1, CCERB, 5500, 10**6, 1, 0, 6, 0)
    assert desk.engine.account(9) is None
    assert [e.reason for e in desk.do(apply_auction(2, ACCOUNTS, CCERB, 500))] == [
        R.UNKNOWN_ACCOUNT
    ]


def _words_hash(words: list[int]) -> str:
    return hashlib.blake2b(np.array(words, dtype="<i8").tobytes(), digest_size=32).hexdigest()


def test_the_state_hash_words_follow_the_spec(engine_cls) -> None:
    """Registry off: the words of docs/MATCHING.md, then the trading modes' words."""
    desk = Desk(engine_cls(modes_market(registry=False)))
    run_setup(
        desk,
        [
            s.OpenSession(trading_date=DATE1),
            TO_AFTERNOON,
            offer(offer_id=5, account=3, symbol=V24, side=SELL, qty=1_000, price=6000),
            offer(
                offer_id=2, account=4, symbol=CCER, side=BUY, qty=1_000, price=5000, counterparty=3
            ),
            apply_auction(9, 3, CCER, 1_000),
            apply_auction(4, 2, V24, 1_000),
            announce(4, CLOSE_MINUS_BAND, PAY_AS_BID, 100, 200),
            bid(7, 4, 1, 6000, 10),
            bid(3, 4, 5, 5900, 20),
        ],
    )
    words = [4, 1]
    bands = {
        V24: (6000, 5400, 6600),
        V25: (6010, 5410, 6610),
        CCER: (5010, 4510, 5510),
        CCERB: (5000, 4500, 5500),
    }
    for symbol in SYMBOLS:
        words += [1, DATE1, *bands[symbol], 0, 0, 0, 0, 0, 0, 0, 0]  # open, no trades, empty
    for index in range(4):
        words += [2 if index < 3 else 0, 0, 0, 0, 0, 0, 0]  # CCER-B has one phase
    words += [2, 2, 4, 2, BUY, 5000, 1_000, 3, 5, 3, 0, SELL, 6000, 1_000, -1]
    words += [
        2,
        4,
        2,
        0,
        1_000,
        2,
        5801,
        6199,
        PAY_AS_BID,
        CLOSE_MINUS_BAND,
        100,
        200,
        2,
        7,
        1,
        6000,
        10,
        3,
        5,
        5900,
        20,
        9,
        3,
        2,
        1_000,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
    assert desk.hash() == _words_hash(words)


# ============================================================================================
# Snapshots
# ============================================================================================


BUSY = QUOTE_BOOK + [
    hit(101, A, BUY, 50, 12),
    TO_AFTERNOON,
    offer(offer_id=1),
    offer(offer_id=2, account=D, side=BUY, price=6100, counterparty=B),
    offer(offer_id=3, account=A, symbol=CCER, price=5000),
    accept(offer_id=3, account=B, price=5000),
    apply_auction(1, C_, CCER, 1_000),
    announce(1, CLOSE_MINUS_BAND, UNIFORM, 10, 20),
    bid(1, 1, A, 5000, 400),
    bid(2, 1, B, 5200, 700),
    bid(3, 1, D, 5000, 300),
    apply_auction(2, D, V24, 2_000),
    announce(2, PREVIOUS_CLOSE, PAY_AS_BID),
    bid(4, 2, A, 6100, 500),
    bid(5, 2, C_, 6199, 800),
    s.ClearAuction(auction_id=2),
    apply_auction(3, B, CCERB, 500),
    apply_auction(4, A, V24, 1_000),
    announce(4),
    bid(6, 4, B, 6000, 10),
    bid(7, 4, C_, 6150, 990),
    bid(8, 4, D, 6150, 20),
]
"""Mid-day in the afternoon (fee market): resting orders, open and directed block offers, one
block trade, one cleared auction, one auction bidding with bids, one only applied."""


def _busy_desk(engine_cls) -> Desk:
    desk = open_desk(engine_cls(modes_market(buy_bps=30, sell_bps=20)))
    run_setup(desk, BUSY)
    return desk


CONTINUATION = [
    accept(offer_id=2, account=B, price=6100),
    bid(9, 1, D, 5100, 100),
    hit(102, B, BUY, 20, 11),
    s.ClearAuction(auction_id=1),
    announce(3),
    bid(10, 3, A, 5500, 500),
    s.CancelAuction(auction_id=4),
    offer(offer_id=4, account=B, symbol=V25, price=6000),
    phase(MIDDAY),
    s.ClearAuction(auction_id=3),
    phase(AFTERNOON),
    offer(offer_id=5, account=C_, side=BUY, price=6050),
    s.CloseSession(trading_date=DATE1),
    s.OpenSession(trading_date=DATE2),
    s.CloseSession(trading_date=DATE2),
]


def test_snapshot_holds_the_modes_state(engine_cls) -> None:
    desk = _busy_desk(engine_cls)
    modes = desk.modes()
    assert modes.instruments == [
        (2, 0, 0, 0, 500 + 800, 500 * 6100 + 800 * 6199, 2),
        (2, 0, 0, 0, 0, 0, 0),
        (2, 1_000, 5_000_000, 1, 0, 0, 0),
        (0, 0, 0, 0, 0, 0, 0),
    ]
    assert modes.block_offers == [
        snap.BlockOfferSnapshot(1, C_, 0, SELL, 6000, 1_000, -1),
        snap.BlockOfferSnapshot(2, D, 0, BUY, 6100, 1_000, B),
    ]
    bidding, applied = s.AuctionState.BIDDING, s.AuctionState.APPLIED
    assert modes.auctions == [
        snap.AuctionSnapshot(
            1,
            C_,
            2,
            1_000,
            bidding,
            4510,
            5510,
            UNIFORM,
            CLOSE_MINUS_BAND,
            10,
            20,
            [
                snap.BidSnapshot(1, A, 5000, 400),
                snap.BidSnapshot(2, B, 5200, 700),
                snap.BidSnapshot(3, D, 5000, 300),
            ],
        ),
        snap.AuctionSnapshot(3, B, 3, 500, applied, 0, 0, 0, 0, 0, 0, []),
        snap.AuctionSnapshot(
            4,
            A,
            0,
            1_000,
            bidding,
            6000,
            6199,
            UNIFORM,
            PREVIOUS_CLOSE,
            0,
            0,
            [
                snap.BidSnapshot(6, B, 6000, 10),
                snap.BidSnapshot(7, C_, 6150, 990),
                snap.BidSnapshot(8, D, 6150, 20),
            ],
        ),
    ]


@pytest.mark.parametrize("target", ["reference", "compiled"])
def test_snapshot_restores_into_either_engine_and_continues_alike(engine_cls, target) -> None:
    desk = _busy_desk(engine_cls)
    if target == "reference":
        from engine.core.reference.engine import ReferenceEngine as Target
    else:
        from engine.core.compiled.engine import CompiledEngine as Target
    data = desk.engine.export_state()
    restored = Target.from_state(desk.engine.market, data)
    assert restored.state_hash() == desk.hash()
    assert restored.export_state() == data
    assert [restored.account(a) for a in range(ACCOUNTS)] == desk.views()
    again = Desk(restored)
    seq = next(desk.seqs)
    desk.seqs, again.seqs = itertools.count(seq), itertools.count(seq)
    for command in CONTINUATION:
        assert again.do(command) == desk.do(command), command
        assert again.hash() == desk.hash(), command


def test_a_snapshot_without_modes_means_phase_zero_and_nothing_open(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market()))
    run_setup(desk, QUOTE_BOOK)
    saved = snapshot_of(desk.engine)
    assert saved.modes == snap.empty_modes(4)
    old = snap.encode(msgspec.structs.replace(saved, modes=None))
    restored = type(desk.engine).from_state(desk.engine.market, old)
    assert restored.state_hash() == desk.hash()


def _without(saved: snap.EngineSnapshot, **changes) -> bytes:
    return snap.encode(
        msgspec.structs.replace(saved, modes=msgspec.structs.replace(saved.modes, **changes))
    )


TAMPERINGS = {
    "offer-dropped": lambda m: {"block_offers": m.block_offers[1:]},
    "auction-dropped": lambda m: {"auctions": m.auctions[1:]},
    "bid-dropped": lambda m: {
        "auctions": [
            msgspec.structs.replace(m.auctions[0], bids=m.auctions[0].bids[1:]),
            *m.auctions[1:],
        ]
    },
    "offer-qty-changed": lambda m: {
        "block_offers": [
            msgspec.structs.replace(m.block_offers[0], qty_t=1_001),
            *m.block_offers[1:],
        ]
    },
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_a_snapshot_whose_locks_disagree_with_the_modes_is_refused(engine_cls, name) -> None:
    desk = _busy_desk(engine_cls)
    saved = snapshot_of(desk.engine)
    type(desk.engine).from_state(desk.engine.market, _without(saved))  # untouched: fine
    with pytest.raises(snap.SnapshotFormatError):
        type(desk.engine).from_state(
            desk.engine.market, _without(saved, **TAMPERINGS[name](saved.modes))
        )


# ============================================================================================
# Replay is a test: a log of every mode replays to the live state
# ============================================================================================

ENGINE_NAMES = ["reference", "compiled"]


def _engine_class(name: str) -> type:
    if name == "reference":
        from engine.core.reference.engine import ReferenceEngine

        return ReferenceEngine
    from engine.core.compiled.engine import CompiledEngine  # lazily: it may not be built yet

    return CompiledEngine


def _batches(commands: list, rng: random.Random) -> list[list[s.Command]]:
    batches, i = [], 0
    while i < len(commands):
        size = rng.choice((1, 1, 2, 3, 5, 11, 30))
        batches.append(commands[i : i + size])
        i += size
    return batches


def _check_replays(
    path: Path, hashes: dict[int, str], events: list, engine: str, rng: random.Random
) -> None:
    """``replay``'s verify, audit (both rule sets), run and rebuild (from genesis and from
    snapshots, at the end of random batches) agree with the live hashes; a reopened exchange
    recovers the state and regenerates the live events."""
    from engine.durable.sequencer import Sequencer
    from replay.audit import audit
    from replay.datadir import open_data_dir
    from replay.state import run
    from replay.timeline import Stop, rebuild
    from replay.verify import verify

    data = open_data_dir(path)
    checked = verify(data)
    assert checked.ok, checked
    assert checked.snapshots, "the log was meant to have snapshots"
    last = max(hashes)
    for rules in ENGINE_NAMES:
        report = audit(data, rules)
        assert report.ok, report.divergence
        assert report.state_hash == hashes[last] and report.events == len(events)
    assert run(data, engine).state_hash == hashes[last]
    assert rebuild(data, engine, from_snapshot=True).engine.state_hash() == hashes[last]
    seqs = sorted(hashes)
    for seq in sorted(rng.sample(seqs, min(8, len(seqs)))):
        for from_snapshot in (False, True):
            rebuilt = rebuild(data, engine, Stop(until_seq=seq), from_snapshot)
            assert rebuilt.engine.state_hash() == hashes[seq], (seq, from_snapshot)
            rebuilt.engine.check_invariants()
    with Sequencer.open(path, engine_factory=_engine_class(engine), durability="none") as again:
        assert again.state_hash() == hashes[last]
        assert list(again.events_since(1)) == events


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_a_scripted_log_of_every_mode_replays_to_the_live_state(tmp_path: Path, engine) -> None:
    """The busy day above, written through the sequencer, snapshots taken every 25 events (in
    the middle of auctions and with open block offers)."""
    from tests.test_replay_support import write_log

    seed = 7
    print(f"seed={seed} scripted modes log, engine {engine}")
    rng = random.Random(seed)
    market = modes_market(buy_bps=30, sell_bps=20)
    events: list = []
    commands = opening_commands() + BUSY + CONTINUATION
    hashes = write_log(
        tmp_path,
        _batches(commands, rng),
        market,
        events,
        engine_factory=_engine_class(engine),
        snapshot_every_events=25,
    )
    kinds = {type(e).__name__ for e in events}
    for name in (
        "BlockTradeExecuted",
        "AuctionTrade",
        "AuctionBidReleased",
        "AuctionCancelled",
        "BlockOfferCancelled",
        "TradingPhaseChanged",
        "CompositePrice",
        "SessionModeVolumes",
    ):
        assert name in kinds, f"the scripted log has no {name}"
    _check_replays(tmp_path, hashes, events, engine, rng)


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_a_random_log_of_every_mode_replays_to_the_live_state(tmp_path: Path, engine) -> None:
    from tests.test_differential_ledger import CONFIGS
    from tests.test_differential_modes import generate
    from tests.test_differential_modes import modes_market as random_market
    from tests.test_replay_support import write_log

    seed = random.randrange(1 << 30)
    print(f"seed={seed} random modes log, engine {engine}")
    rng = random.Random(seed)
    market = random_market(CONFIGS[1])
    events: list = []
    hashes = write_log(
        tmp_path,
        _batches(generate(seed, market, 1_500), rng),
        market,
        events,
        engine_factory=_engine_class(engine),
        snapshot_every_events=300,
    )
    _check_replays(tmp_path, hashes, events, engine, rng)

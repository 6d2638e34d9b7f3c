"""The market simulation has the real market's shape (docs/TRADING_MODES.md) and the engine
accepts what it sends: trading phases, hit-quote orders on quotes that rest, block trades that
make most of the volume, and eight one-way auctions a year, alternating uniform and pay-as-bid.

The commands go straight into the compiled engine in the order generated, so the simulation's
view of the listing book is the engine's: not even a hit-quote order is refused.
"""

from __future__ import annotations

import random
from collections import Counter

import msgspec
import numpy as np
import pytest

from engine.core import records as r
from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from engine.markets import national_market
from gateway.simulation import AUCTIONS_PER_YEAR, ListingBook, Simulation, trading_dates


class Run:
    """A simulation fed day by day into a compiled engine; events counted by kind."""

    def __init__(self, seed: int, scale: float) -> None:
        self.market = national_market()
        self.engine = CompiledEngine(self.market)
        self.codec = self.engine.codec
        self.sim = Simulation(self.market, seed=seed, scale=scale)
        self.commands: list[s.Command] = []
        self.events: list[np.ndarray] = []
        self.apply(self.sim.setup(2024))

    def apply(self, commands: list[s.Command]) -> np.ndarray:
        events = self.engine.apply_records(self.codec.encode_commands(commands)).copy()
        self.commands += commands
        self.events.append(events)
        return events

    def day(self, date: int, orders: int) -> list[s.Command]:
        references = {sym: self.engine.status(sym).reference_price_ticks for sym in self.sim.fair}
        day = self.sim.day(date, orders, references).commands
        self.apply([s.OpenSession(trading_date=date), *day, s.CloseSession(trading_date=date)])
        return day

    def rows(self) -> np.ndarray:
        return np.concatenate(self.events).view(np.int64).reshape(-1, r.EVENT_FIELDS)

    def decoded(self, kind: int) -> list:
        rows = self.rows()
        return [self.codec.event(row) for row in rows[rows[:, r.E_KIND] == kind].tolist()]


def _types(commands: list[s.Command]) -> Counter[type]:
    return Counter(type(c) for c in commands)


def test_a_simulated_day_has_the_markets_shape_and_is_accepted() -> None:
    run = Run(seed=11, scale=0.05)
    day = run.day(20251215, 1_500)
    types = _types(day)
    phases = [c for c in day if type(c) is s.SetTradingPhase]
    assert [c.phase for c in phases] == [1, 2] and all(c.instrument == "" for c in phases)
    midday = day[day.index(phases[0]) : day.index(phases[1])]
    assert {type(c) for c in midday} <= {s.SetTradingPhase, s.CancelOrder}, "a quiet break"
    afternoon = day[day.index(phases[1]) :]
    assert all(c in afternoon for c in day if type(c) is s.SubmitBlockOffer)
    hit_quotes = [c for c in day if type(c) is s.SubmitOrder and c.quote_order_id]
    assert len(hit_quotes) >= 10 and all(c.order_type == s.OrderType.HIT_QUOTE for c in hit_quotes)
    assert types[s.SubmitBlockOffer] == types[s.AcceptBlockOffer] > 0
    assert types[s.ApplyAuction] == types[s.ClearAuction] == 1  # the first day holds one

    kinds = Counter(run.rows()[:, r.E_KIND].tolist())
    instruments = len(run.market.instruments)
    assert kinds[r.EV_PHASE_CHANGED] == 2 * instruments  # OpenSession sets phase 0 silently
    assert kinds[r.EV_REJECTED] == 0, [e.reason for e in run.decoded(r.EV_REJECTED)][:10]
    accepted = run.decoded(r.EV_ACCEPTED)
    assert sum(e.order_type == s.OrderType.HIT_QUOTE for e in accepted) == len(hit_quotes)
    assert kinds[r.EV_BLOCK_REJECTED] == 0 and kinds[r.EV_AUCTION_REJECTED] == 0
    assert kinds[r.EV_BLOCK_TRADE] == types[s.AcceptBlockOffer]
    assert kinds[r.EV_BID_ACCEPTED] == types[s.SubmitAuctionBid] > 0
    volumes = {v.instrument: v for v in run.decoded(r.EV_MODE_VOLUMES)}
    closes = {c.instrument: c for c in run.decoded(r.EV_SESSION_CLOSED)}
    listing = sum(c.volume_t for c in closes.values())
    block = sum(v.block_volume_t for v in volumes.values())
    auction = sum(v.auction_volume_t for v in volumes.values())
    assert auction > 0 and block > 3 * listing > 0, (listing, block, auction)
    assert len(run.decoded(r.EV_COMPOSITE)) == 1
    for offer in (c for c in day if type(c) is s.SubmitBlockOffer):
        assert offer.qty_t >= 100_000 and offer.counterparty != offer.account
        reference = run.market.instruments[run.market.symbols.index(offer.instrument)]
        assert reference.block_band_bps == 3_000


def test_a_simulated_year_holds_eight_auctions_the_engine_accepts() -> None:
    run = Run(seed=5, scale=0.05)
    commands = 0
    for date in trading_dates(20250102, 242):
        commands += len(run.day(date, 20))
    cleared = run.decoded(r.EV_AUCTION_CLEARED)
    assert len(cleared) == AUCTIONS_PER_YEAR == 8
    assert [c.clearing for c in cleared] == [s.ClearingRule.UNIFORM, s.ClearingRule.PAY_AS_BID] * 4
    assert all(c.sold_t > 0 and c.fills > 0 for c in cleared), cleared
    announced = run.decoded(r.EV_AUCTION_ANNOUNCED)
    assert {a.floor_rule for a in announced} == set(s.FloorRule)
    kinds = Counter(run.rows()[:, r.E_KIND].tolist())
    assert kinds[r.EV_AUCTION_REJECTED] == 0
    assert kinds[r.EV_BID_ACCEPTED] == sum(isinstance(c, s.SubmitAuctionBid) for c in run.commands)
    assert kinds[r.EV_BLOCK_TRADE] > 20 and kinds[r.EV_BLOCK_REJECTED] == 0
    refused = kinds[r.EV_REJECTED] + kinds[r.EV_BLOCK_REJECTED]
    assert refused <= commands // 200, Counter(e.reason for e in run.decoded(r.EV_REJECTED))


def test_the_simulation_is_deterministic() -> None:
    def flow(seed: int) -> bytes:
        market = national_market()
        sim = Simulation(market, seed=seed, scale=0.03)
        references = {i.symbol: i.reference_price_ticks for i in sim.instruments}
        commands = sim.setup(2024)
        for date in trading_dates(20251215, 2):
            commands += sim.day(date, 300, references).commands
        return msgspec.msgpack.encode(commands)

    assert flow(3) == flow(3)
    assert flow(3) != flow(4)


@pytest.mark.parametrize("stp_account", [2, 3])
def test_the_listing_book_matches_by_price_time_with_self_trade_prevention(stp_account) -> None:
    book = ListingBook()
    assert book.submit(1, 1, "X", s.Side.SELL, 6_010, 100) == []
    assert book.submit(2, 2, "X", s.Side.SELL, 6_000, 50) == []
    assert book.submit(3, 4, "X", s.Side.SELL, 6_000, 50) == []
    fills = book.submit(4, stp_account, "X", s.Side.BUY, 6_010, 120)
    assert 4 not in book.orders
    if stp_account == 2:  # its own order is first at 6000: the incoming order is cancelled
        assert fills == []
        assert book.quote("X", s.Side.SELL, 1, 1, random.Random(1)) == 2  # best level, first
        assert book.quote("X", s.Side.SELL, 1, 2, random.Random(1)) == 3  # not the taker's
        assert book.modify(2, 6_000, 10) == [] and book.orders[2][3] == 10  # keeps priority
        assert book.modify(3, 5_990, 50) == []  # a better price: first now
        assert book.quote("X", s.Side.SELL, 1, 1, random.Random(1)) == 3
    else:
        assert fills == [(2, 2, 6_000, 50), (3, 4, 6_000, 50), (1, 1, 6_010, 20)]
        assert book.orders[1][3] == 80
        assert book.quote("X", s.Side.SELL, 5, 1, random.Random(1)) is None  # its own
        assert book.hit(1, 500) == (1, 1, 6_010, 80) and 1 not in book.orders

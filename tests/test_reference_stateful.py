"""Stateful property test of the reference engine (hypothesis rules).

Random submits, cancels, modifies, mass cancels and session commands drive a
``ReferenceEngine``.  After every rule the engine's own invariants are checked, and an
independent ledger rebuilt from the events alone must agree with the book:

* conservation: every order's accepted quantity (adjusted by its modifies) is exactly what it
  traded plus what was cancelled plus what still rests, and its events report the same open
  quantities (``taker_leaves_t``, ``maker_leaves_t``, ``old_qty_t``, cancelled ``qty_t``);
* a wash trade never prints, a post-only order never takes, a trade never breaks the taker's
  limit and prints at the maker's price; time priority holds within every level;
* ``SessionClosed`` reports the statistics of exactly the trades of that session;
* a refused command changes nothing (state hash unchanged);
* a snapshot restores to the same state hash, and the machine carries on with the restored
  engine, so later rules also check that it behaves the same.

Hypothesis prints the failing rule sequence and a reproduction blob (``print_blob``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.core import schema as s
from engine.core.market import Instrument
from engine.core.reference.engine import ReferenceEngine
from tests.conftest import (
    ACCOUNTS,
    SYM_A,
    SYM_B,
    cancel,
    close_session,
    halt,
    mass_cancel,
    modify,
    open_session,
    resume,
    small_market,
    submit,
)

REFUSALS = (s.OrderRejected, s.CancelRejected, s.ModifyRejected, s.CommandRejected)
SYMBOLS = [SYM_A, SYM_B]

# Mostly valid values, with a few faulty ones (hypothesis draws list elements uniformly).
order_ids = st.sampled_from(range(1, 41))
accounts = st.sampled_from([0, 1, 2, 3, 4] * 4 + [ACCOUNTS])
symbols = st.sampled_from([SYM_A] * 5 + [SYM_B] * 4 + ["NOPE"])
scopes = st.sampled_from([SYM_A, SYM_B, s.ALL_INSTRUMENTS, s.ALL_INSTRUMENTS, "NOPE"])
price_offsets = st.sampled_from([*range(-6, 7), -900, 900])
lots = st.sampled_from([*range(1, 13), 0, 100_000])
order_kinds = st.sampled_from(
    [(s.OrderType.LIMIT, s.TimeInForce.DAY)] * 4
    + [(s.OrderType.LIMIT, s.TimeInForce.GTC)] * 3
    + [(s.OrderType.LIMIT, s.TimeInForce.IOC), (s.OrderType.LIMIT, s.TimeInForce.FOK)]
    + [(s.OrderType.MARKET, s.TimeInForce.IOC), (s.OrderType.MARKET, s.TimeInForce.FOK)]
    + [(s.OrderType.POST_ONLY, s.TimeInForce.DAY), (s.OrderType.POST_ONLY, s.TimeInForce.GTC)]
    + [(s.OrderType.MARKET, s.TimeInForce.DAY), (s.OrderType.POST_ONLY, s.TimeInForce.IOC)]
)
session_commands = st.sampled_from(["open", "open", "close", "halt", "resume"])


class ReferenceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.market = small_market(resting_orders=8)  # small: BOOK_FULL happens
        self.engine = ReferenceEngine(self.market)
        self.date = 20250101
        self.open_qty: dict[int, int] = {}  # live order id -> open qty, from events only
        self.prices: dict[int, tuple[s.Side, int]] = {}  # live order id -> side, limit
        self.stamps: dict[int, int] = {}  # live order id -> when it last joined the book
        self.post_only: set[int] = set()  # live post-only order ids
        self.clock = 0
        self.session_trades: dict[str, list[tuple[int, int]]] = {sym: [] for sym in SYMBOLS}
        self.accepted_t = self.modified_t = self.traded_t = self.cancelled_t = 0

    # -- rules -------------------------------------------------------------------------------
    @initialize()
    def open_all(self) -> None:
        self.date += 1
        self.apply(open_session(self.date))

    @rule(
        order_id=order_ids,
        account=accounts,
        instrument=symbols,
        side=st.sampled_from(s.Side),
        lots=lots,
        offset=price_offsets,
        kind=order_kinds,
        stp=st.sampled_from(s.StpMode),
    )
    def submit(self, order_id, account, instrument, side, lots, offset, kind, stp) -> None:
        qty, price = self.qty_price(instrument, lots, offset)
        self.apply(submit(order_id, account, side, qty, price, instrument, *kind, stp))

    @rule(
        order_id=order_ids,
        account=accounts,
        instrument=symbols,
        side=st.sampled_from(s.Side),
        lots=lots,
        through=st.integers(min_value=0, max_value=3),
        kind=order_kinds,
        stp=st.sampled_from(s.StpMode),
    )
    def submit_crossing(self, order_id, account, instrument, side, lots, through, kind, stp):
        """An order priced ``through`` ticks beyond the opposite best: it usually trades."""
        if instrument not in SYMBOLS:
            return
        opposite = self.engine.best_ask if side == s.Side.BUY else self.engine.best_bid
        best = opposite(instrument)
        if best is None:
            return
        tick = self.spec(instrument).tick_ticks
        price = best + through * tick if side == s.Side.BUY else best - through * tick
        qty = lots * self.spec(instrument).lot_t
        self.apply(submit(order_id, account, side, qty, price, instrument, *kind, stp))

    @rule(
        order_id=order_ids,
        account=accounts,
        instrument=st.sampled_from(SYMBOLS),
        side=st.sampled_from(s.Side),
        lots=st.integers(min_value=1, max_value=12),
        gtc=st.booleans(),
    )
    def submit_joining(self, order_id, account, instrument, side, lots, gtc) -> None:
        """A resting limit order that joins the tail of its side's best level (queues form)."""
        best = (self.engine.best_bid if side == s.Side.BUY else self.engine.best_ask)(instrument)
        reference = self.engine.status(instrument).reference_price_ticks
        tick = self.spec(instrument).tick_ticks
        if best is None:
            best = reference - tick if side == s.Side.BUY else reference + tick
        tif = s.TimeInForce.GTC if gtc else s.TimeInForce.DAY
        qty = lots * self.spec(instrument).lot_t
        self.apply(submit(order_id, account, side, qty, best, instrument, tif=tif))

    @rule(data=st.data(), account=accounts, any_id=order_ids)
    def cancel(self, data, account, any_id) -> None:
        order_id, owner = self.pick_order(data, any_id)
        self.apply(cancel(order_id, owner if owner is not None else account))

    @rule(data=st.data(), account=accounts, any_id=order_ids, lots=lots, offset=price_offsets)
    def modify(self, data, account, any_id, lots, offset) -> None:
        order_id, owner = self.pick_order(data, any_id)
        resting = self.engine.order(order_id)
        instrument = SYM_A if resting is None else resting.instrument
        qty, price = self.qty_price(instrument, lots, offset)
        if resting is not None and offset % 2 == 0:  # often: keep the price
            price = resting.price_ticks
        self.apply(modify(order_id, owner if owner is not None else account, price, qty))

    @rule(account=accounts, instrument=scopes)
    def mass_cancel(self, account, instrument) -> None:
        self.apply(mass_cancel(account, instrument))

    @rule(command=session_commands, instrument=scopes, days=st.integers(min_value=0, max_value=2))
    def session(self, command, instrument, days) -> None:
        if command == "open":
            self.date += days
            self.apply(open_session(self.date, instrument))
        elif command == "close":
            self.apply(close_session(self.date, instrument))
        else:
            self.apply((halt if command == "halt" else resume)(instrument))

    @rule()
    def snapshot_round_trip(self) -> None:
        restored = ReferenceEngine.from_state(self.market, self.engine.export_state())
        assert restored.state_hash() == self.engine.state_hash()
        self.engine = restored  # later rules check that it behaves like the original

    # -- checks ------------------------------------------------------------------------------
    @invariant()
    def engine_invariants(self) -> None:
        self.engine.check_invariants()

    @invariant()
    def ledger_matches_book(self) -> None:
        resting = {oid: self.engine.order(oid) for oid in self.open_qty}
        assert all(order is not None for order in resting.values()), "ledger has a gone order"
        assert {oid: o.qty_t for oid, o in resting.items()} == self.open_qty
        assert self.engine.resting_count() == len(self.open_qty)
        for oid, order in resting.items():
            assert (order.side, order.price_ticks) == self.prices[oid]

    @invariant()
    def time_priority(self) -> None:
        """Within a price level, orders are in the order they (last) joined the book."""
        for symbol in SYMBOLS:
            for side in s.Side:
                orders = self.engine.orders(symbol, side)
                for first, second in zip(orders, orders[1:]):
                    if first.price_ticks == second.price_ticks:
                        assert self.stamps[first.order_id] < self.stamps[second.order_id]
                    else:
                        higher = first.price_ticks > second.price_ticks
                        assert higher == (side == s.Side.BUY), "levels not best first"

    @invariant()
    def quantity_is_conserved(self) -> None:
        resting_t = sum(self.open_qty.values())
        assert self.accepted_t + self.modified_t == self.traded_t + self.cancelled_t + resting_t

    # -- helpers -----------------------------------------------------------------------------
    def spec(self, instrument: str) -> Instrument:
        return self.market.instruments[self.market.instrument_index(instrument)]

    def qty_price(self, instrument: str, lots: int, offset: int) -> tuple[int, int]:
        known = instrument if instrument in SYMBOLS else SYM_A
        spec = self.spec(known)
        reference = self.engine.status(known).reference_price_ticks
        return lots * spec.lot_t, reference + offset * spec.tick_ticks

    def pick_order(self, data: st.DataObject, any_id: int) -> tuple[int, int | None]:
        """Usually a resting order and its owner; sometimes any id (owner None)."""
        if self.open_qty and data.draw(st.sampled_from([True] * 4 + [False]), "resting"):
            order_id = data.draw(st.sampled_from(sorted(self.open_qty)), "order id")
            return order_id, self.engine.order(order_id).account
        return any_id, None

    def apply(self, command: s.Command) -> None:
        before = self.engine.state_hash()
        limits = {sym: self.engine.status(sym) for sym in SYMBOLS}
        events = self.engine.apply(command)
        assert events, f"{command!r} produced no event"
        assert all((e.seq, e.ts_ns) == (command.seq, command.ts_ns) for e in events)
        if all(isinstance(e, REFUSALS) for e in events):
            assert len(events) == 1, events
            assert self.engine.state_hash() == before, f"refused {command!r} changed state"
        for event in events:
            self.account(event, limits)
        for oid in [oid for oid, qty in self.open_qty.items() if qty == 0]:
            del self.open_qty[oid], self.prices[oid], self.stamps[oid]
            self.post_only.discard(oid)

    def account(self, e: s.Event, status: dict[str, s.InstrumentStatus]) -> None:
        if isinstance(e, s.OrderAccepted):
            assert self.open_qty.get(e.order_id, 0) == 0, f"order id {e.order_id} accepted twice"
            self.open_qty[e.order_id] = e.qty_t
            self.accepted_t += e.qty_t
            limit = e.price_ticks
            if e.order_type == s.OrderType.MARKET:
                band = status[e.instrument]
                limit = band.upper_band_ticks if e.side == s.Side.BUY else band.lower_band_ticks
            self.prices[e.order_id] = (e.side, limit)
            self.stamp(e.order_id)
            if e.order_type == s.OrderType.POST_ONLY:
                self.post_only.add(e.order_id)
        elif isinstance(e, s.TradeExecuted):
            self.account_trade(e)
        elif isinstance(e, s.OrderCancelled):
            assert self.open_qty[e.order_id] == e.qty_t > 0, e
            assert self.prices[e.order_id][0] == e.side
            self.cancelled_t += e.qty_t
            self.open_qty[e.order_id] = 0
        elif isinstance(e, s.OrderModified):
            assert self.open_qty[e.order_id] == e.old_qty_t, e
            assert self.prices[e.order_id] == (e.side, e.old_price_ticks), e
            same_price = e.price_ticks == e.old_price_ticks
            assert e.priority_kept == (same_price and e.qty_t <= e.old_qty_t), e
            if not e.priority_kept:
                self.stamp(e.order_id)
            self.modified_t += e.qty_t - e.old_qty_t
            self.open_qty[e.order_id] = e.qty_t
            self.prices[e.order_id] = (e.side, e.price_ticks)
        elif isinstance(e, s.SessionOpened):
            self.session_trades[e.instrument] = []
        elif isinstance(e, s.SessionClosed):
            self.check_close(e)

    def stamp(self, order_id: int) -> None:
        self.clock += 1
        self.stamps[order_id] = self.clock

    def account_trade(self, e: s.TradeExecuted) -> None:
        assert e.taker_account != e.maker_account, f"wash trade printed: {e!r}"
        assert e.taker_order_id not in self.post_only, f"a post-only order took: {e!r}"
        assert e.qty_t > 0
        taker_side, limit = self.prices[e.taker_order_id]
        maker_side, maker_price = self.prices[e.maker_order_id]
        assert taker_side == e.aggressor_side and maker_side != taker_side
        assert e.price_ticks == maker_price, "a trade prints at the maker's price"
        if taker_side == s.Side.BUY:
            assert e.price_ticks <= limit, f"buy traded above its limit {limit}: {e!r}"
        else:
            assert e.price_ticks >= limit, f"sell traded below its limit {limit}: {e!r}"
        self.open_qty[e.taker_order_id] -= e.qty_t
        self.open_qty[e.maker_order_id] -= e.qty_t
        assert self.open_qty[e.taker_order_id] == e.taker_leaves_t >= 0
        assert self.open_qty[e.maker_order_id] == e.maker_leaves_t >= 0
        self.traded_t += 2 * e.qty_t  # both orders' open quantities went down
        self.session_trades[e.instrument].append((e.price_ticks, e.qty_t))

    def check_close(self, e: s.SessionClosed) -> None:
        day = self.session_trades[e.instrument]
        assert e.trade_count == len(day)
        assert e.volume_t == sum(q for _, q in day)
        assert e.value_fen == sum(p * q for p, q in day)
        if day:
            prices = [p for p, _ in day]
            assert (e.open_ticks, e.high_ticks, e.low_ticks) == (
                prices[0],
                max(prices),
                min(prices),
            )
            assert e.low_ticks <= e.close_ticks <= e.high_ticks
        assert self.engine.status(e.instrument).reference_price_ticks == e.close_ticks
        for side in s.Side:
            day_orders = [
                o.order_id
                for o in self.engine.orders(e.instrument, side)
                if o.tif == s.TimeInForce.DAY
            ]
            assert day_orders == [], f"DAY orders survived the close of {e.instrument}"


ReferenceMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=80,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestReferenceMachine = ReferenceMachine.TestCase

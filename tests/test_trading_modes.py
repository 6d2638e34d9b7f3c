"""Scenarios of the trading modes (docs/TRADING_MODES.md), run against both engines.

Written from the specification, independently of either implementation: hit-quote orders,
trading phases, block trades, one-way auctions, the session's mode volumes and the composite
price at the close, the state hash and snapshots of all of it.  Every refusal reason of every
new command is checked with the exact event the spec prescribes, in the spec's check order
(each refused command carries a second, later fault as well, so that the order matters), and
a refusal must leave the state hash unchanged.  Each command goes through ``step`` (apply,
``check_invariants``, event round trip through the record view), so the lock invariant of the
spec ("Locks") is checked after every step of every scenario.

The scenario market (``modes_market``): two allowance vintages and two offset instruments,
all but the last on the national schedule (morning: continuous + hit-quote; midday: nothing;
afternoon: continuous + hit-quote + block):

========  ======  =====  ====  ==========================  ================  ===============
symbol    ref     tick   lot   modes                       listing band      auction band
========  ======  =====  ====  ==========================  ================  ===============
CEA-2024  6000    1      1     all four                    5400 … 6600       5801 … 6199 (333 bps)
CEA-2025  6010    5      10    continuous, hit_quote,      5410 … 6610       (no auctions)
                               block
CCER      5010    5      10    hit_quote, block, auction   4510 … 5510       4510 … 5510
CCER-B    5000    1      1     auction (one all-day phase) 4500 … 5500       4500 … 5500
========  ======  =====  ====  ==========================  ================  ===============

Block bands (±30 %): CEA-2024 4200 … 7800, CEA-2025 4210 … 7810, CCER 3510 … 6510.
CCER offers hit-quote within its best 2 levels (``hit_quote_levels = 2``), the others 5.
"""

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
from engine.core.market import Capacity, Fees, Instrument, MarketDefinition, Phase, validate
from tests.conftest import DATE1, DATE2, DATE3, step

R = s.RejectReason
C = s.CancelReason
K = s.AccountKind
BUY, SELL = s.Side.BUY, s.Side.SELL
LIMIT, MARKET, POST_ONLY, HIT = (
    s.OrderType.LIMIT,
    s.OrderType.MARKET,
    s.OrderType.POST_ONLY,
    s.OrderType.HIT_QUOTE,
)
DAY, GTC, IOC, FOK = s.TimeInForce.DAY, s.TimeInForce.GTC, s.TimeInForce.IOC, s.TimeInForce.FOK
UNIFORM, PAY_AS_BID = s.ClearingRule.UNIFORM, s.ClearingRule.PAY_AS_BID
PREVIOUS_CLOSE, CLOSE_MINUS_BAND = s.FloorRule.PREVIOUS_CLOSE, s.FloorRule.CLOSE_MINUS_BAND

V24, V25, CCER, CCERB = "CEA-2024", "CEA-2025", "CCER", "CCER-B"
SYMBOLS = [V24, V25, CCER, CCERB]
MORNING, MIDDAY, AFTERNOON = 0, 1, 2
CONT, HQ, BLK, AUC = 1, 2, 4, 8
"""``TradingMode`` bits."""

ACCOUNTS = 10
FEE, A, B, C_, D, AUTH = 0, 1, 2, 3, 4, 5
"""Fee account; two compliance entities (A, B); two investors (C_, D); an authority.
Accounts 6 … 9 are never opened."""
UNOPENED = 7
TRADERS = (A, B, C_, D)
CASH = 100_000_000
"""Each trader's deposit, in fen (1,000,000 CNY)."""
HELD = 10_000
"""Each trader's allowances of every instrument (the authority holds 10,000 t of CEA-2024)."""

SEEE = [
    Phase(name="morning", start="09:30", end="11:30", modes=["continuous", "hit_quote"]),
    Phase(name="midday", start="11:30", end="13:00", modes=[]),
    Phase(name="afternoon", start="13:00", end="15:00", modes=["continuous", "hit_quote", "block"]),
]


def modes_market(
    buy_bps: int = 0,
    sell_bps: int = 0,
    registry: bool = True,
    resting_orders: int = 100,
    block_offers: int = 16,
    auctions: int = 8,
    auction_bids: int = 32,
    max_price_ticks: int = 20_000,
) -> MarketDefinition:
    """The scenario market of the module docstring."""
    return validate(
        MarketDefinition(
            name="trading modes scenarios",
            instruments=[
                Instrument(
                    symbol=V24,
                    vintage=2024,
                    reference_price_ticks=6000,
                    schedule="seee",
                    block_min_qty_t=1_000,
                    auction_min_qty_t=1_000,
                    auction_band_bps=333,
                ),
                Instrument(
                    symbol=V25,
                    vintage=2025,
                    reference_price_ticks=6010,
                    tick_ticks=5,
                    lot_t=10,
                    min_qty_t=10,
                    max_qty_t=99_990,
                    schedule="seee",
                    modes=["continuous", "hit_quote", "block"],
                    block_min_qty_t=1_000,
                    auction_min_qty_t=1_000,
                ),
                Instrument(
                    symbol=CCER,
                    kind="offset",
                    reference_price_ticks=5010,
                    tick_ticks=5,
                    lot_t=10,
                    min_qty_t=10,
                    max_qty_t=99_990,
                    schedule="seee",
                    modes=["hit_quote", "block", "auction"],
                    hit_quote_levels=2,
                    block_min_qty_t=1_000,
                    auction_min_qty_t=1_000,
                ),
                Instrument(
                    symbol=CCERB,
                    kind="offset",
                    reference_price_ticks=5000,
                    modes=["auction"],
                    auction_min_qty_t=500,
                ),
            ],
            capacity=Capacity(
                accounts=ACCOUNTS,
                resting_orders=resting_orders,
                max_price_ticks=max_price_ticks,
                registry_keys=1024,
                block_offers=block_offers,
                auctions=auctions,
                auction_bids=auction_bids,
            ),
            registry=registry,
            fee_account=FEE,
            fees=Fees(buy_bps=buy_bps, sell_bps=sell_bps),
            schedules={"seee": SEEE},
        )
    )


def fee(value: int, bps: int) -> int:
    """docs/LEDGER.md: ``fee(v, bps) = v × bps // 10000``."""
    return value * bps // 10_000


# ============================================================================================
# The desk: an engine plus the sequencer's chores
# ============================================================================================


class Desk:
    """An engine plus seqs, idempotency keys and short queries (as in the registry tests)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.seqs = itertools.count(1)
        self.keys = itertools.count(1)

    def do(self, command: s.Command) -> list[s.Event]:
        """Apply with the next seq, through ``step`` (invariants and event round trip)."""
        return step(self.engine, msgspec.structs.replace(command, seq=next(self.seqs)))

    def ok(self, command: s.Command) -> list[s.Event]:
        """Apply a command that must not be refused."""
        events = self.do(command)
        assert events and not any(type(e) in REFUSALS for e in events), events
        return events

    def reg(self, cls: type, **fields) -> list[s.Event]:
        fields.setdefault("key", next(self.keys) + 100_000)
        return self.ok(cls(**fields))

    def cash(self, account: int) -> tuple[int, int]:
        status = self.engine.account(account)
        return status.cash_available_fen, status.cash_locked_fen

    def held(self, account: int, symbol: str = V24) -> tuple[int, int, int, int]:
        """(tradable, locked, frozen, unsettled)."""
        status = self.engine.account(account)
        h = next(h for h in status.holdings if h.instrument == symbol)
        return h.tradable_t, h.locked_t, h.frozen_t, h.unsettled_t

    def views(self) -> list:
        return [self.engine.account(a) for a in range(ACCOUNTS)]

    def hash(self) -> str:
        return self.engine.state_hash()

    def modes(self) -> snap.ModesSnapshot:
        return snapshot_of(self.engine).modes


REFUSALS = (
    s.OrderRejected,
    s.CancelRejected,
    s.ModifyRejected,
    s.CommandRejected,
    s.RegistryRejected,
    s.DuplicateCommand,
    s.BlockCommandRejected,
    s.AuctionCommandRejected,
)


def snapshot_of(engine) -> snap.EngineSnapshot:
    return msgspec.msgpack.decode(engine.export_state(), type=snap.EngineSnapshot)


def opening_commands(open_fee_account: bool = True, open_session: bool = True) -> list:
    """The fee account; A, B (compliance), C_, D (investors) with ``CASH`` and ``HELD`` of every
    instrument; an authority with 10,000 t of CEA-2024; every session open on DATE1 (phase 0)."""
    keys = itertools.count(100_001)
    commands: list[s.Command] = []
    if open_fee_account:
        commands.append(s.OpenAccount(key=next(keys), account=FEE, kind=K.FEE))
    for account in TRADERS:
        kind = K.COMPLIANCE if account in (A, B) else K.INVESTOR
        commands.append(s.OpenAccount(key=next(keys), account=account, kind=kind, province=310000))
        commands.append(s.DepositCash(key=next(keys), account=account, amount_fen=CASH))
        for symbol in SYMBOLS:
            commands.append(
                s.IssueAllowances(key=next(keys), account=account, instrument=symbol, qty_t=HELD)
            )
    commands.append(s.OpenAccount(key=next(keys), account=AUTH, kind=K.AUTHORITY, province=310000))
    commands.append(s.IssueAllowances(key=next(keys), account=AUTH, instrument=V24, qty_t=HELD))
    if open_session:
        commands.append(s.OpenSession(trading_date=DATE1))
    return commands


def open_desk(engine, open_fee_account: bool = True, open_session: bool = True) -> Desk:
    """A desk after :func:`opening_commands`."""
    desk = Desk(engine)
    for command in opening_commands(open_fee_account, open_session):
        desk.ok(command)
    desk.keys = itertools.count(500)  # the desk's own keys: 100,501 on
    return desk


@pytest.fixture
def desk(engine_cls) -> Desk:
    return open_desk(engine_cls(modes_market()))


@pytest.fixture
def fee_desk(engine_cls) -> Desk:
    """Like ``desk``, with fees of 30 bps (buyer) and 20 bps (seller)."""
    return open_desk(engine_cls(modes_market(buy_bps=30, sell_bps=20)))


# -- command builders ------------------------------------------------------------------------
def order(order_id, account, side, qty, price, symbol=V24, **kw) -> s.SubmitOrder:
    return s.SubmitOrder(
        order_id=order_id,
        account=account,
        instrument=symbol,
        side=side,
        qty_t=qty,
        price_ticks=price,
        **kw,
    )


def hit(order_id, account, side, qty, quote, symbol=V24, tif=IOC, price=0) -> s.SubmitOrder:
    """A hit-quote order on resting order ``quote``."""
    return order(
        order_id, account, side, qty, price, symbol, order_type=HIT, tif=tif, quote_order_id=quote
    )


def market(order_id, account, side, qty, symbol=V24, tif=IOC) -> s.SubmitOrder:
    return order(order_id, account, side, qty, 0, symbol, order_type=MARKET, tif=tif)


def post(order_id, account, side, qty, price, symbol=V24) -> s.SubmitOrder:
    return order(order_id, account, side, qty, price, symbol, order_type=POST_ONLY)


def phase(index: int, symbol: str = s.ALL_INSTRUMENTS) -> s.SetTradingPhase:
    return s.SetTradingPhase(phase=index, instrument=symbol)


def offer(offer_id=1, account=C_, symbol=V24, side=SELL, qty=1_000, price=6000, counterparty=-1):
    return s.SubmitBlockOffer(
        offer_id=offer_id,
        account=account,
        instrument=symbol,
        side=side,
        qty_t=qty,
        price_ticks=price,
        counterparty=counterparty,
    )


def accept(offer_id=1, account=A, price=6000, qty=1_000) -> s.AcceptBlockOffer:
    return s.AcceptBlockOffer(offer_id=offer_id, account=account, price_ticks=price, qty_t=qty)


def apply_auction(auction_id=1, account=C_, symbol=V24, qty=1_000) -> s.ApplyAuction:
    return s.ApplyAuction(auction_id=auction_id, account=account, instrument=symbol, qty_t=qty)


def announce(auction_id=1, floor_rule=PREVIOUS_CLOSE, clearing=UNIFORM, start=0, end=0):
    return s.AnnounceAuction(
        auction_id=auction_id,
        floor_rule=floor_rule,
        clearing=clearing,
        window_start_ns=start,
        window_end_ns=end,
    )


def bid(bid_id, auction_id, account, price, qty) -> s.SubmitAuctionBid:
    return s.SubmitAuctionBid(
        bid_id=bid_id, auction_id=auction_id, account=account, price_ticks=price, qty_t=qty
    )


def key(n: int) -> int:
    """Idempotency keys of setup commands in the tables (the desk's own start at 100,001)."""
    return 900 + n


def withdraw_all_but(account: int, left_fen: int, n: int = 1) -> s.WithdrawCash:
    return s.WithdrawCash(key=key(n), account=account, amount_fen=CASH - left_fen)


def freeze(account: int, n: int = 2) -> s.FreezeAccount:
    return s.FreezeAccount(key=key(n), account=account)


def listed(symbol: str) -> str:
    """How events name an instrument: a symbol the market does not list is "?"."""
    return symbol if symbol in SYMBOLS else "?"


def run_setup(desk: Desk, setup: list) -> None:
    for command in setup:
        desk.ok(command)


# ============================================================================================
# SubmitOrder: the new checks, in the spec's order
# ============================================================================================

QUOTE_BOOK = [
    order(11, C_, SELL, 100, 6010),
    order(12, C_, SELL, 100, 6020),
    order(13, C_, SELL, 100, 6030),
    order(14, C_, SELL, 100, 6040),
    order(15, C_, SELL, 100, 6050),
    order(16, C_, SELL, 100, 6060),
    order(17, D, SELL, 100, 6010),  # a second order at the best level: levels count prices
    order(21, D, BUY, 100, 5990),
    order(31, C_, SELL, 100, 5020, CCER),
    order(32, C_, SELL, 100, 5030, CCER),
    order(33, C_, SELL, 100, 5040, CCER),
    order(34, D, BUY, 100, 4990, CCER),
]
"""Morning quotes: CEA-2024 asks on six price levels (11 … 16, and 17 at the best price),
a bid 21; CCER (hit-quote levels 2) asks 31 … 33 and a bid 34."""

TO_MIDDAY, TO_AFTERNOON = phase(MIDDAY), phase(AFTERNOON)

# (id, setup after QUOTE_BOOK, refused order - usually with a second, later fault - reason)
ORDER_REFUSALS = [
    (
        "order-type-undefined",
        [],
        order(101, A, BUY, 0, 6000, order_type=5, tif=9),
        R.INVALID_ORDER_TYPE,
    ),
    ("order-type-zero", [], order(101, A, BUY, 0, 6000, order_type=0, tif=9), R.INVALID_ORDER_TYPE),
    ("hit-quote-day", [], hit(101, A, BUY, 0, 11, tif=DAY), R.INVALID_TIME_IN_FORCE),
    ("hit-quote-gtc", [], hit(101, A, BUY, 10, 11, tif=GTC), R.INVALID_TIME_IN_FORCE),
    ("hit-quote-tif-zero", [], hit(101, A, BUY, 10, 11, tif=0), R.INVALID_TIME_IN_FORCE),
    (
        "hit-quote-tif-before-mode",
        [],
        hit(101, A, BUY, 0, 0, CCERB, tif=DAY),
        R.INVALID_TIME_IN_FORCE,
    ),
    ("limit-without-listing-modes", [], order(101, A, BUY, 0, 6000, CCERB), R.MODE_NOT_ALLOWED),
    ("post-only-without-listing-modes", [], post(101, A, SELL, 0, 1, CCERB), R.MODE_NOT_ALLOWED),
    ("hit-quote-without-hit-quote-mode", [], hit(101, A, BUY, 0, 0, CCERB), R.MODE_NOT_ALLOWED),
    ("market-without-continuous", [], market(101, A, BUY, 0, CCER), R.MODE_NOT_ALLOWED),
    (
        "market-without-continuous-at-midday",
        [TO_MIDDAY],
        market(101, A, BUY, 0, CCER),
        R.MODE_NOT_ALLOWED,
    ),
    ("limit-at-midday", [TO_MIDDAY], order(101, A, BUY, 0, 6000), R.MODE_NOT_IN_PHASE),
    ("post-only-at-midday", [TO_MIDDAY], post(101, A, BUY, 0, 5000, CCER), R.MODE_NOT_IN_PHASE),
    ("hit-quote-at-midday", [TO_MIDDAY], hit(101, A, BUY, 0, 11), R.MODE_NOT_IN_PHASE),
    ("market-at-midday", [TO_MIDDAY], market(101, A, BUY, 0), R.MODE_NOT_IN_PHASE),
    ("hit-quote-qty-zero", [], hit(101, A, BUY, 0, 999), R.INVALID_QUANTITY),
    ("hit-quote-qty-above-max", [], hit(101, A, BUY, 100_000, 999), R.INVALID_QUANTITY),
    ("hit-quote-off-lot", [], hit(101, A, BUY, 15, 999, CCER), R.QUANTITY_OFF_LOT),
    ("hit-quote-order-id-zero", [], hit(0, A, BUY, 10, 999), R.INVALID_ORDER_ID),
    ("hit-quote-order-id-negative", [], hit(-4, A, BUY, 10, 999), R.INVALID_ORDER_ID),
    ("hit-quote-id-of-its-quote", [], hit(11, A, BUY, 10, 11), R.DUPLICATE_ORDER_ID),
    ("hit-quote-unknown-quote", [], hit(101, A, BUY, 10, 999), R.QUOTE_NOT_FOUND),
    ("hit-quote-no-quote", [], hit(101, A, BUY, 10, 0), R.QUOTE_NOT_FOUND),
    ("hit-quote-quote-of-another-instrument", [], hit(101, A, BUY, 10, 31), R.QUOTE_NOT_FOUND),
    (
        "hit-quote-quote-of-another-instrument-2",
        [],
        hit(101, A, BUY, 10, 11, V25),
        R.QUOTE_NOT_FOUND,
    ),
    ("hit-quote-same-side", [], hit(101, A, SELL, 10, 11), R.QUOTE_NOT_FOUND),
    ("hit-quote-same-side-own", [], hit(101, C_, SELL, 10, 16), R.QUOTE_NOT_FOUND),
    (
        "hit-quote-names-a-block-offer",
        [TO_AFTERNOON, offer(77, D)],
        hit(101, A, BUY, 10, 77),
        R.QUOTE_NOT_FOUND,
    ),
    ("hit-quote-own-quote", [], hit(101, C_, BUY, 10, 11), R.QUOTE_OWN_ORDER),
    ("hit-quote-own-quote-beyond-levels", [], hit(101, C_, BUY, 10, 16), R.QUOTE_OWN_ORDER),
    ("hit-quote-sixth-level", [], hit(101, A, BUY, 10, 16), R.QUOTE_BEYOND_BEST_LEVELS),
    (
        "hit-quote-third-of-two-levels",
        [],
        hit(101, A, BUY, 10, 33, CCER),
        R.QUOTE_BEYOND_BEST_LEVELS,
    ),
    (
        "hit-quote-levels-before-cash",
        [withdraw_all_but(A, 0)],
        hit(101, A, BUY, 10, 16),
        R.QUOTE_BEYOND_BEST_LEVELS,
    ),
    ("hit-quote-authority", [], hit(101, AUTH, SELL, 10, 21), R.ACCOUNT_MAY_NOT_TRADE),
    ("hit-quote-fee-account", [], hit(101, FEE, BUY, 10, 11), R.ACCOUNT_MAY_NOT_TRADE),
    ("hit-quote-frozen", [freeze(A)], hit(101, A, BUY, 10, 11), R.ACCOUNT_FROZEN),
    (
        "hit-quote-cash-at-the-quotes-price",
        [withdraw_all_but(A, 10 * 6010 - 1)],
        hit(101, A, BUY, 10, 11),
        R.INSUFFICIENT_CASH,
    ),
    (
        "hit-quote-cash-for-the-whole-quantity",
        [withdraw_all_but(A, 100 * 6010)],
        hit(101, A, BUY, 101, 11),
        R.INSUFFICIENT_CASH,
    ),
    ("hit-quote-allowances", [], hit(101, A, SELL, HELD + 1, 21), R.INSUFFICIENT_ALLOWANCES),
    (
        "hit-quote-allowances-locked",
        [order(50, A, SELL, HELD - 5, 6500)],
        hit(101, A, SELL, 10, 21),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    ("limit-crossing-without-continuous", [], order(101, A, BUY, 10, 5020, CCER), R.WOULD_TRADE),
    (
        "limit-through-without-continuous",
        [],
        order(101, A, BUY, 10, 5100, CCER, tif=GTC),
        R.WOULD_TRADE,
    ),
    (
        "limit-ioc-crossing-without-continuous",
        [],
        order(101, A, BUY, 10, 5030, CCER, tif=IOC),
        R.WOULD_TRADE,
    ),
    (
        "limit-fok-crossing-without-continuous",
        [],
        order(101, A, BUY, 10, 5030, CCER, tif=FOK),
        R.WOULD_TRADE,
    ),
    (
        "limit-sell-crossing-without-continuous",
        [],
        order(101, A, SELL, 10, 4990, CCER),
        R.WOULD_TRADE,
    ),
    (
        "limit-crossing-own-quote-without-continuous",
        [],
        order(101, C_, BUY, 10, 5020, CCER),
        R.WOULD_TRADE,
    ),
    (
        "limit-crossing-in-the-afternoon-without-continuous",
        [TO_AFTERNOON],
        order(101, A, BUY, 10, 5020, CCER),
        R.WOULD_TRADE,
    ),
    (
        "limit-cash-before-would-trade",
        [withdraw_all_but(A, 10 * 5020 - 1)],
        order(101, A, BUY, 10, 5020, CCER),
        R.INSUFFICIENT_CASH,
    ),
]


@pytest.mark.parametrize(
    "setup, command, reason", [pytest.param(*case[1:], id=case[0]) for case in ORDER_REFUSALS]
)
def test_order_refusal(desk: Desk, setup, command: s.SubmitOrder, reason: R) -> None:
    run_setup(desk, QUOTE_BOOK + setup)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [
        s.OrderRejected(
            events[0].seq,
            0,
            command.order_id,
            command.account,
            listed(command.instrument),
            int(command.side),
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


def test_a_full_book_refuses_hit_quote_orders(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(resting_orders=3)))
    run_setup(
        desk,
        [
            order(11, C_, SELL, 100, 6010),
            order(12, C_, SELL, 100, 6020),
            order(21, D, BUY, 100, 5990),
        ],
    )
    before = desk.hash()
    for command, reason in [
        (hit(101, A, BUY, 10, 11), R.BOOK_FULL),
        (hit(101, A, BUY, 10, 999), R.BOOK_FULL),  # before QUOTE_NOT_FOUND
        (hit(11, A, BUY, 10, 12), R.DUPLICATE_ORDER_ID),
    ]:
        assert [e.reason for e in desk.do(command)] == [reason]
    assert desk.hash() == before
    desk.ok(s.CancelOrder(order_id=12, account=C_))
    assert [type(e) for e in desk.do(hit(101, A, BUY, 10, 11))] == [
        s.OrderAccepted,
        s.TradeExecuted,
    ]


def test_a_hit_quote_order_ignores_its_price(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    for order_id, price in ((101, 0), (102, -7), (103, 6011), (104, 99_999), (105, 6010)):
        events = desk.do(hit(order_id, A, BUY, 1, 11, price=price))
        assert events[0] == s.OrderAccepted(
            events[0].seq, 0, order_id, A, V24, BUY, HIT, IOC, 6010, 1
        )
        assert [(t.price_ticks, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [
            (6010, 1)
        ]


# ============================================================================================
# Hit-quote execution
# ============================================================================================


def test_hit_quote_fills_what_the_quote_has_and_cancels_the_rest(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 150, 12, price=1))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, A, V24, BUY, HIT, IOC, 6020, 150),
        s.TradeExecuted(seq, 0, 1, V24, 6020, 100, BUY, 101, A, 12, C_, 50, 0),
        s.OrderCancelled(seq, 0, 101, A, V24, BUY, 6020, 50, C.IOC_REMAINDER),
    ]
    assert desk.engine.order(12) is None and desk.engine.order(101) is None
    assert [o.order_id for o in desk.engine.orders(V24, SELL)] == [11, 17, 13, 14, 15, 16]
    assert desk.cash(A) == (CASH - 602_000, 0)  # the remainder's lock came back
    assert desk.held(A) == (HELD, 0, 0, 100)  # T+1
    assert desk.cash(C_) == (CASH + 602_000, 0)
    assert desk.held(C_) == (HELD - 600, 500, 0, 0)


def test_hit_quote_partly_fills_the_quote_which_keeps_its_priority(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 30, 11, tif=FOK))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, A, V24, BUY, HIT, FOK, 6010, 30),
        s.TradeExecuted(seq, 0, 1, V24, 6010, 30, BUY, 101, A, 11, C_, 0, 70),
    ]
    asks = desk.engine.orders(V24, SELL)
    assert [(o.order_id, o.qty_t) for o in asks[:3]] == [(11, 70), (17, 100), (12, 100)]
    # the quote keeps its place at the head of its level: a market buy takes it first
    events = desk.do(market(102, B, BUY, 80))
    assert [(t.maker_order_id, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [
        (11, 70),
        (17, 10),
    ]


def test_hit_quote_fok_the_quote_cannot_fill_is_killed_and_changes_nothing(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    before, views = desk.hash(), desk.views()
    events = desk.do(hit(101, A, BUY, 101, 11, tif=FOK))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, A, V24, BUY, HIT, FOK, 6010, 101),
        s.OrderCancelled(seq, 0, 101, A, V24, BUY, 6010, 101, C.FOK_NOT_FILLABLE),
    ]
    assert desk.hash() == before and desk.views() == views
    # exactly the quote's open quantity is fillable (no other order at its level is used)
    events = desk.do(hit(102, A, BUY, 100, 11, tif=FOK))
    assert events[-1] == s.TradeExecuted(
        events[-1].seq, 0, 1, V24, 6010, 100, BUY, 102, A, 11, C_, 0, 0
    )
    assert desk.engine.order(11) is None and desk.engine.order(17).qty_t == 100


def test_hit_quote_takes_a_quote_within_the_best_levels_not_a_better_price(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 100, 15))  # the 5th level (two orders at the 1st)
    assert [
        (t.maker_order_id, t.price_ticks, t.qty_t) for t in events if type(t) is s.TradeExecuted
    ] == [(15, 6050, 100)]
    assert desk.engine.best_ask(V24) == 6010 and desk.engine.depth_at(V24, SELL, 6010) == (200, 2)
    # 6060 was the 6th level; with 6050 gone it is the 5th
    events = desk.do(hit(102, A, BUY, 10, 16))
    assert events[-1] == s.TradeExecuted(
        events[-1].seq, 0, 2, V24, 6060, 10, BUY, 102, A, 16, C_, 0, 90
    )


def test_hit_quote_sells_into_a_bid(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, B, SELL, 40, 21, tif=FOK))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, B, V24, SELL, HIT, FOK, 5990, 40),
        s.TradeExecuted(seq, 0, 1, V24, 5990, 40, SELL, 101, B, 21, D, 0, 60),
    ]
    assert desk.cash(B) == (CASH + 40 * 5990, 0) and desk.held(B) == (HELD - 40, 0, 0, 0)
    ccer_bid = 100 * 4990  # D's bid 34 in CCER
    assert desk.cash(D) == (CASH - 100 * 5990 - ccer_bid, 60 * 5990 + ccer_bid)
    assert desk.held(D) == (HELD - 100, 100, 0, 40)


def test_hit_quote_with_fees_settles_at_the_quotes_price(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 130, 11, price=6600))
    value = 100 * 6010
    assert [type(e) for e in events] == [s.OrderAccepted, s.TradeExecuted, s.OrderCancelled]
    assert desk.cash(A) == (CASH - value - fee(value, 30), 0)  # 601,000 + 1,803
    assert desk.cash(C_) == (CASH + value - fee(value, 20), 0)  # 601,000 - 1,202
    assert desk.cash(FEE) == (fee(value, 30) + fee(value, 20), 0)
    assert desk.held(A) == (HELD, 0, 0, 100)


def test_the_hit_quote_lock_is_the_quotes_price(desk: Desk) -> None:
    """Exactly qty × quote price is enough (a market buy would lock at the band top)."""
    run_setup(desk, QUOTE_BOOK + [withdraw_all_but(A, 100 * 6010)])
    assert [type(e) for e in desk.do(hit(101, A, BUY, 100, 11, tif=FOK))] == [
        s.OrderAccepted,
        s.TradeExecuted,
    ]
    assert desk.cash(A) == (0, 0)


def test_without_continuous_quotes_rest_and_only_hit_quote_orders_trade(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    assert [type(e) for e in desk.do(order(101, A, BUY, 10, 5015, CCER))] == [s.OrderAccepted]
    assert [type(e) for e in desk.do(post(102, A, BUY, 10, 5000, CCER))] == [s.OrderAccepted]
    assert [type(e) for e in desk.do(order(103, B, SELL, 10, 5025, CCER, tif=IOC))] == [
        s.OrderAccepted,
        s.OrderCancelled,
    ]
    events = desk.do(hit(104, B, BUY, 20, 32, CCER))  # the 2nd level: CCER allows two
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 104, B, CCER, BUY, HIT, IOC, 5030, 20),
        s.TradeExecuted(seq, 0, 1, CCER, 5030, 20, BUY, 104, B, 32, C_, 0, 80),
    ]
    events = desk.do(hit(105, D, SELL, 10, 101, CCER))  # D hits A's bid at 50.15
    assert events[-1] == s.TradeExecuted(
        events[-1].seq, 0, 2, CCER, 5015, 10, SELL, 105, D, 101, A, 0, 0
    )
    desk.ok(phase(AFTERNOON, CCER))  # hit-quote and block: still no continuous trading
    assert [e.reason for e in desk.do(order(106, A, BUY, 10, 5020, CCER))] == [R.WOULD_TRADE]
    assert [type(e) for e in desk.do(hit(106, A, BUY, 10, 31, CCER))][-1] is s.TradeExecuted


def test_hit_quote_trades_are_listing_trades(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    desk.do(hit(101, A, BUY, 50, 12))  # 50 at 60.20
    desk.do(hit(102, B, BUY, 30, 11))  # 30 at 60.10
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V24))
    closed = [e for e in events if type(e) is s.SessionClosed]
    # VWAP (50 x 6020 + 30 x 6010) / 80 = 6016.25 -> 6016
    assert closed == [
        s.SessionClosed(events[0].seq, 0, V24, DATE1, 6020, 6020, 6010, 6016, 80, 481_300, 2)
    ]
    volumes = [e for e in events if type(e) is s.SessionModeVolumes]
    assert volumes == [s.SessionModeVolumes(events[0].seq, 0, V24, DATE1, 0, 0, 0, 0, 0, 0)]


# ============================================================================================
# Trading phases
# ============================================================================================


def test_set_trading_phase_reports_the_modes_each_instrument_has_in_the_phase(desk: Desk):
    def changed(command) -> list[tuple]:
        events = desk.do(command)
        assert all(type(e) is s.TradingPhaseChanged and e.seq == events[0].seq for e in events)
        return [(e.instrument, e.phase, e.modes) for e in events]

    # CCER-B has one phase only: phase 1 or 2 is INVALID_PHASE for it, skipped silently
    assert changed(phase(MIDDAY)) == [(V24, 1, 0), (V25, 1, 0), (CCER, 1, 0)]
    assert changed(phase(AFTERNOON)) == [
        (V24, 2, CONT | HQ | BLK),
        (V25, 2, CONT | HQ | BLK),
        (CCER, 2, HQ | BLK),
    ]
    assert changed(phase(MORNING)) == [
        (V24, 0, CONT | HQ),
        (V25, 0, CONT | HQ),
        (CCER, 0, HQ),
        (CCERB, 0, 0),
    ]
    assert changed(phase(MORNING, V25)) == [(V25, 0, CONT | HQ)]  # also when nothing changes
    desk.ok(s.HaltInstrument(instrument=V24))
    assert changed(phase(AFTERNOON, V24)) == [(V24, 2, CONT | HQ | BLK)]  # also when halted
    assert [row[0] for row in desk.modes().instruments] == [2, 0, 0, 0]


def test_the_phase_is_state(desk: Desk) -> None:
    start = desk.hash()
    desk.ok(phase(MIDDAY, V24))
    midday = desk.hash()
    assert midday != start
    desk.ok(phase(MORNING, V24))
    assert desk.hash() == start  # nothing else changed


PHASE_REFUSALS = [
    ("unknown-instrument", [], phase(9, "NOPE"), "?", R.UNKNOWN_INSTRUMENT),
    (
        "closed",
        [s.CloseSession(trading_date=DATE1, instrument=V24)],
        phase(1, V24),
        V24,
        R.SESSION_NOT_OPEN,
    ),
    (
        "closed-before-invalid-phase",
        [s.CloseSession(trading_date=DATE1, instrument=V24)],
        phase(3, V24),
        V24,
        R.SESSION_NOT_OPEN,
    ),
    ("phase-beyond-schedule", [], phase(3, V24), V24, R.INVALID_PHASE),
    ("phase-negative", [], phase(-1, CCER), CCER, R.INVALID_PHASE),
    ("one-phase-schedule", [], phase(1, CCERB), CCERB, R.INVALID_PHASE),
    ("all-invalid", [], phase(3), "", R.INVALID_PHASE),
    (
        "all-first-reason-wins",
        [s.CloseSession(trading_date=DATE1, instrument=V24)],
        phase(3),
        "",
        R.SESSION_NOT_OPEN,
    ),
    ("all-closed", [s.CloseSession(trading_date=DATE1)], phase(0), "", R.SESSION_NOT_OPEN),
]


@pytest.mark.parametrize(
    "setup, command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in PHASE_REFUSALS]
)
def test_set_trading_phase_refusal(desk: Desk, setup, command, echo: str, reason: R) -> None:
    run_setup(desk, setup)
    before = desk.hash()
    events = desk.do(command)
    assert events == [s.CommandRejected(events[0].seq, 0, 14, echo, reason)]
    assert desk.hash() == before


def test_a_closed_instrument_is_skipped_when_every_instrument_changes(desk: Desk) -> None:
    desk.ok(s.CloseSession(trading_date=DATE1, instrument=V25))
    events = desk.do(phase(MORNING))
    assert [(e.instrument, e.modes) for e in events] == [(V24, CONT | HQ), (CCER, HQ), (CCERB, 0)]


def test_open_session_starts_every_instrument_in_phase_zero(desk: Desk) -> None:
    desk.ok(phase(AFTERNOON))
    desk.ok(s.CloseSession(trading_date=DATE1))
    events = desk.do(s.OpenSession(trading_date=DATE2))
    assert [type(e) for e in events] == [s.SessionOpened] * 4  # no TradingPhaseChanged
    assert [row[0] for row in desk.modes().instruments] == [0, 0, 0, 0]
    assert [e.reason for e in desk.do(offer())] == [R.MODE_NOT_IN_PHASE]
    assert desk.engine.status(V24).phase == 0


def test_the_midday_break_keeps_quotes_and_allows_only_cancels(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(1, A, BUY, 100, 5990, tif=GTC),
            order(2, A, BUY, 100, 5980),
            order(3, A, BUY, 100, 5970),
            order(4, C_, SELL, 100, 6010),
            order(5, C_, SELL, 100, 5020, CCER),
        ],
    )
    desk.ok(phase(MIDDAY))
    for command, reason in [
        (s.ModifyOrder(order_id=9, account=A, price_ticks=5990, qty_t=0), R.UNKNOWN_ORDER),
        (s.ModifyOrder(order_id=1, account=B, price_ticks=5990, qty_t=0), R.NOT_ORDER_OWNER),
        (s.ModifyOrder(order_id=1, account=A, price_ticks=1, qty_t=0), R.MODE_NOT_IN_PHASE),
        (
            s.ModifyOrder(order_id=1, account=A, price_ticks=5990, qty_t=50),
            R.MODE_NOT_IN_PHASE,
        ),  # even a reduction in place
        (s.ModifyOrder(order_id=5, account=C_, price_ticks=5020, qty_t=50), R.MODE_NOT_IN_PHASE),
    ]:
        before = desk.hash()
        events = desk.do(command)
        assert events == [
            s.ModifyRejected(
                events[0].seq,
                0,
                command.order_id,
                command.account,
                command.price_ticks,
                command.qty_t,
                reason,
            )
        ]
        assert desk.hash() == before
    events = desk.do(s.CancelOrder(order_id=2, account=A))
    assert events == [s.OrderCancelled(events[0].seq, 0, 2, A, V24, BUY, 5980, 100, C.REQUESTED)]
    events = desk.do(s.MassCancel(account=C_))
    assert [(type(e), getattr(e, "order_id", None)) for e in events] == [
        (s.OrderCancelled, 4),
        (s.OrderCancelled, 5),
        (s.MassCancelled, None),
    ]
    assert [o.order_id for o in desk.engine.orders(V24, BUY)] == [1, 3]
    assert desk.cash(A) == (CASH - 100 * 5990 - 100 * 5970, 100 * 5990 + 100 * 5970)
    # the afternoon brings continuous trading back, and modifies
    desk.ok(phase(AFTERNOON))
    events = desk.do(s.ModifyOrder(order_id=1, account=A, price_ticks=5990, qty_t=60))
    assert type(events[0]) is s.OrderModified and events[0].priority_kept
    events = desk.do(order(6, B, SELL, 60, 5990))
    assert [(t.maker_order_id, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [(1, 60)]


def test_modify_without_continuous_may_not_cross(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK + [order(40, A, BUY, 100, 4980, CCER)])
    refusals = [
        (s.ModifyOrder(order_id=40, account=A, price_ticks=5020, qty_t=100), R.WOULD_TRADE),
        (s.ModifyOrder(order_id=40, account=A, price_ticks=5100, qty_t=10), R.WOULD_TRADE),
        (s.ModifyOrder(order_id=31, account=C_, price_ticks=4990, qty_t=100), R.WOULD_TRADE),
    ]
    for command, reason in refusals:
        before = desk.hash()
        assert [e.reason for e in desk.do(command)] == [reason]
        assert desk.hash() == before
    # a new price that does not cross, a larger quantity at the same price: fine
    events = desk.do(s.ModifyOrder(order_id=40, account=A, price_ticks=5015, qty_t=100))
    assert [type(e) for e in events] == [s.OrderModified] and not events[0].priority_kept
    events = desk.do(s.ModifyOrder(order_id=40, account=A, price_ticks=5015, qty_t=200))
    assert [type(e) for e in events] == [s.OrderModified]
    # with continuous effective a crossing limit modify trades (CEA-2024)
    desk.ok(order(41, A, BUY, 10, 5900))
    events = desk.do(s.ModifyOrder(order_id=41, account=A, price_ticks=6010, qty_t=10))
    assert [(t.maker_order_id, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [(11, 10)]


def test_modify_checks_cash_before_would_trade_without_continuous(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK + [order(40, A, BUY, 100, 4980, CCER)])
    desk.reg(s.WithdrawCash, account=A, amount_fen=CASH - 100 * 4980)  # all of it is locked
    command = s.ModifyOrder(order_id=40, account=A, price_ticks=5020, qty_t=100)
    assert [e.reason for e in desk.do(command)] == [R.INSUFFICIENT_CASH]


# ============================================================================================
# Block trades
# ============================================================================================

# (id, setup, refused SubmitBlockOffer, reason)
OFFER_REFUSALS = [
    (
        "unknown-instrument",
        [TO_AFTERNOON],
        offer(symbol="NOPE", account=ACCOUNTS, side=3),
        R.UNKNOWN_INSTRUMENT,
    ),
    ("all-instruments-symbol", [TO_AFTERNOON], offer(symbol="", qty=1), R.UNKNOWN_INSTRUMENT),
    (
        "session-closed",
        [TO_AFTERNOON, s.CloseSession(trading_date=DATE1, instrument=V24)],
        offer(account=ACCOUNTS),
        R.SESSION_CLOSED,
    ),
    (
        "halted",
        [TO_AFTERNOON, s.HaltInstrument(instrument=V24)],
        offer(account=ACCOUNTS),
        R.INSTRUMENT_HALTED,
    ),
    ("unopened-account", [TO_AFTERNOON], offer(account=UNOPENED, side=3), R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", [TO_AFTERNOON], offer(account=ACCOUNTS, side=3), R.UNKNOWN_ACCOUNT),
    ("account-negative", [TO_AFTERNOON], offer(account=-1, qty=1), R.UNKNOWN_ACCOUNT),
    ("side-three", [TO_AFTERNOON], offer(side=3, symbol=CCERB), R.INVALID_ORDER_TYPE),
    ("side-zero", [TO_AFTERNOON], offer(side=0, qty=1), R.INVALID_ORDER_TYPE),
    ("no-block-mode", [TO_AFTERNOON], offer(symbol=CCERB, qty=1), R.MODE_NOT_ALLOWED),
    ("no-block-mode-in-the-morning", [], offer(symbol=CCERB, qty=1), R.MODE_NOT_ALLOWED),
    ("morning", [], offer(qty=1), R.MODE_NOT_IN_PHASE),
    ("midday", [TO_MIDDAY], offer(qty=1, symbol=CCER), R.MODE_NOT_IN_PHASE),
    ("below-block-minimum", [TO_AFTERNOON], offer(qty=999, price=1), R.INVALID_QUANTITY),
    ("qty-zero", [TO_AFTERNOON], offer(qty=0, price=1), R.INVALID_QUANTITY),
    ("qty-above-10-12", [TO_AFTERNOON], offer(qty=10**12 + 1, price=1), R.INVALID_QUANTITY),
    ("qty-10-12-is-a-quantity", [TO_AFTERNOON], offer(qty=10**12, price=0), R.PRICE_OFF_TICK),
    ("off-lot", [TO_AFTERNOON], offer(symbol=V25, qty=1_005, price=6001), R.QUANTITY_OFF_LOT),
    (
        "off-tick",
        [TO_AFTERNOON],
        offer(symbol=V25, qty=1_010, price=6001, counterparty=C_),
        R.PRICE_OFF_TICK,
    ),
    ("price-zero", [TO_AFTERNOON], offer(price=0), R.PRICE_OFF_TICK),
    ("price-negative", [TO_AFTERNOON], offer(price=-6000), R.PRICE_OFF_TICK),
    ("below-block-band", [TO_AFTERNOON], offer(price=4199, counterparty=C_), R.PRICE_OUT_OF_BAND),
    ("above-block-band", [TO_AFTERNOON], offer(price=7801), R.PRICE_OUT_OF_BAND),
    ("below-block-band-tick-5", [TO_AFTERNOON], offer(symbol=V25, price=4205), R.PRICE_OUT_OF_BAND),
    ("above-block-band-tick-5", [TO_AFTERNOON], offer(symbol=V25, price=7815), R.PRICE_OUT_OF_BAND),
    ("above-block-band-ccer", [TO_AFTERNOON], offer(symbol=CCER, price=6515), R.PRICE_OUT_OF_BAND),
    (
        "counterparty-itself",
        [TO_AFTERNOON],
        offer(counterparty=C_, offer_id=0),
        R.INVALID_COUNTERPARTY,
    ),
    ("counterparty-unopened", [TO_AFTERNOON], offer(counterparty=UNOPENED), R.INVALID_COUNTERPARTY),
    (
        "counterparty-out-of-range",
        [TO_AFTERNOON],
        offer(counterparty=ACCOUNTS),
        R.INVALID_COUNTERPARTY,
    ),
    ("counterparty-minus-two", [TO_AFTERNOON], offer(counterparty=-2), R.INVALID_COUNTERPARTY),
    ("offer-id-zero", [TO_AFTERNOON], offer(offer_id=0, qty=HELD + 1), R.INVALID_ORDER_ID),
    ("offer-id-negative", [TO_AFTERNOON], offer(offer_id=-1), R.INVALID_ORDER_ID),
    (
        "duplicate-offer-id",
        [TO_AFTERNOON, offer(offer_id=5, account=D, side=BUY)],
        offer(offer_id=5, qty=HELD + 1),
        R.DUPLICATE_ORDER_ID,
    ),
    (
        "duplicate-offer-id-other-instrument",
        [TO_AFTERNOON, offer(offer_id=5, symbol=CCER)],
        offer(offer_id=5, account=AUTH),
        R.DUPLICATE_ORDER_ID,
    ),
    ("authority", [TO_AFTERNOON], offer(account=AUTH), R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", [TO_AFTERNOON], offer(account=FEE, side=BUY), R.ACCOUNT_MAY_NOT_TRADE),
    ("frozen", [TO_AFTERNOON, freeze(C_)], offer(qty=HELD + 1), R.ACCOUNT_FROZEN),
    ("sell-too-much", [TO_AFTERNOON], offer(qty=HELD + 1), R.INSUFFICIENT_ALLOWANCES),
    (
        "sell-locked-by-an-order",
        [order(9, C_, SELL, 9_500, 6500), TO_AFTERNOON],
        offer(qty=1_000),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "sell-locked-by-an-offer",
        [TO_AFTERNOON, offer(offer_id=2, qty=9_500)],
        offer(qty=1_000),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    ("buy-too-much", [TO_AFTERNOON], offer(side=BUY, qty=16_667), R.INSUFFICIENT_CASH),
    (
        "buy-cash-short-by-a-fen",
        [TO_AFTERNOON, withdraw_all_but(C_, 6_000_000 - 1)],
        offer(side=BUY),
        R.INSUFFICIENT_CASH,
    ),
]


@pytest.mark.parametrize(
    "setup, command, reason", [pytest.param(*c[1:], id=c[0]) for c in OFFER_REFUSALS]
)
def test_block_offer_refusal(desk: Desk, setup, command: s.SubmitBlockOffer, reason) -> None:
    run_setup(desk, setup)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [
        s.BlockCommandRejected(
            events[0].seq,
            0,
            40,
            command.offer_id,
            command.account,
            listed(command.instrument),
            int(command.side),
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


OFFERS = [
    TO_AFTERNOON,
    offer(offer_id=1),  # C_ sells 1,000 CEA-2024 at 60.00 to anyone
    offer(offer_id=2, account=D, side=BUY, price=6100, counterparty=B),  # D buys, from B only
    offer(offer_id=3, account=D, side=BUY, qty=HELD + 1, price=5000),  # more than A holds
]

# (id, setup after OFFERS, refused AcceptBlockOffer, offer's instrument echo, reason)
ACCEPT_REFUSALS = [
    (
        "unknown-offer",
        [],
        accept(offer_id=9, account=ACCOUNTS, price=0, qty=0),
        "?",
        R.UNKNOWN_BLOCK_OFFER,
    ),
    (
        "halted",
        [s.HaltInstrument(instrument=V24)],
        accept(account=ACCOUNTS),
        V24,
        R.INSTRUMENT_HALTED,
    ),
    ("unopened-account", [], accept(account=UNOPENED, price=1), V24, R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", [], accept(account=ACCOUNTS, price=1), V24, R.UNKNOWN_ACCOUNT),
    ("own-offer", [], accept(account=C_, price=1), V24, R.NOT_COUNTERPARTY),
    ("directed-at-another", [], accept(offer_id=2, account=A, price=1), V24, R.NOT_COUNTERPARTY),
    ("price-differs", [], accept(price=6001), V24, R.BLOCK_TERMS_MISMATCH),
    ("quantity-smaller", [], accept(qty=999), V24, R.BLOCK_TERMS_MISMATCH),
    ("quantity-larger", [], accept(qty=1_001, account=AUTH), V24, R.BLOCK_TERMS_MISMATCH),
    ("authority", [], accept(account=AUTH), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", [], accept(account=FEE), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("frozen", [freeze(A)], accept(), V24, R.ACCOUNT_FROZEN),
    (
        "cash-short-by-a-fen",
        [withdraw_all_but(A, 6_000_000 - 1)],
        accept(),
        V24,
        R.INSUFFICIENT_CASH,
    ),
    (
        "allowances-short",
        [],
        accept(offer_id=3, price=5000, qty=HELD + 1),
        V24,
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "allowances-locked",
        [order(9, B, SELL, 9_500, 6500)],
        accept(offer_id=2, account=B, price=6100),
        V24,
        R.INSUFFICIENT_ALLOWANCES,
    ),
]


@pytest.mark.parametrize(
    "setup, command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in ACCEPT_REFUSALS]
)
def test_accept_block_offer_refusal(desk: Desk, setup, command, echo: str, reason: R) -> None:
    run_setup(desk, OFFERS + setup)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [
        s.BlockCommandRejected(
            events[0].seq,
            0,
            41,
            command.offer_id,
            command.account,
            echo,
            0,
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


@pytest.mark.parametrize(
    "command, echo, reason",
    [
        (s.CancelBlockOffer(offer_id=9, account=C_), "?", R.UNKNOWN_BLOCK_OFFER),
        (s.CancelBlockOffer(offer_id=0, account=ACCOUNTS), "?", R.UNKNOWN_BLOCK_OFFER),
        (s.CancelBlockOffer(offer_id=1, account=D), V24, R.NOT_ORDER_OWNER),
        (s.CancelBlockOffer(offer_id=2, account=B), V24, R.NOT_ORDER_OWNER),  # the counterparty
    ],
)
def test_cancel_block_offer_refusal(desk: Desk, command, echo: str, reason: R) -> None:
    run_setup(desk, OFFERS)
    before = desk.hash()
    events = desk.do(command)
    assert events == [
        s.BlockCommandRejected(
            events[0].seq, 0, 42, command.offer_id, command.account, echo, 0, 0, 0, reason
        )
    ]
    assert desk.hash() == before


def test_a_full_offer_table_refuses_new_offers(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(block_offers=2)))
    run_setup(desk, [TO_AFTERNOON, offer(offer_id=1), offer(offer_id=2, symbol=CCER, price=5000)])
    before = desk.hash()
    for command, reason in [
        (offer(offer_id=3, account=D), R.BOOK_FULL),
        (offer(offer_id=3, account=D, qty=HELD + 1), R.BOOK_FULL),  # before the ledger
        (offer(offer_id=1, account=D), R.DUPLICATE_ORDER_ID),  # duplicate comes first
        (offer(offer_id=0, account=D), R.INVALID_ORDER_ID),
    ]:
        assert [e.reason for e in desk.do(command)] == [reason]
        assert desk.hash() == before
    desk.ok(s.CancelBlockOffer(offer_id=2, account=C_))
    assert [type(e) for e in desk.do(offer(offer_id=3, account=D))] == [s.BlockOfferPosted]


def test_block_offer_posted_locks_its_need(fee_desk: Desk) -> None:
    desk = fee_desk
    desk.ok(TO_AFTERNOON)
    events = desk.do(offer(offer_id=7, symbol=V25, qty=2_000, price=7810))  # the band's top
    assert events == [s.BlockOfferPosted(events[0].seq, 0, 7, C_, V25, SELL, 7810, 2_000, -1)]
    assert desk.held(C_, V25) == (HELD - 2_000, 2_000, 0, 0)
    events = desk.do(offer(offer_id=8, account=D, symbol=V25, side=BUY, price=4210, counterparty=A))
    assert events == [s.BlockOfferPosted(events[0].seq, 0, 8, D, V25, BUY, 4210, 1_000, A)]
    need = 4_210_000 + fee(4_210_000, 30)
    assert desk.cash(D) == (CASH - need, need)
    # block offers have their own ids: an order may use the same id, and vice versa
    assert [type(e) for e in desk.do(order(7, D, BUY, 10, 6000, V25))] == [s.OrderAccepted]
    modes = desk.modes()
    assert modes.block_offers == [
        snap.BlockOfferSnapshot(7, C_, 1, SELL, 7810, 2_000, -1),
        snap.BlockOfferSnapshot(8, D, 1, BUY, 4210, 1_000, A),
    ]
    # cancelling releases exactly the lock
    events = desk.do(s.CancelBlockOffer(offer_id=8, account=D))
    assert events == [
        s.BlockOfferCancelled(events[0].seq, 0, 8, D, V25, BUY, 4210, 1_000, C.REQUESTED)
    ]
    assert desk.cash(D) == (CASH - 60_000 - fee(60_000, 30), 60_000 + fee(60_000, 30))
    desk.do(s.CancelBlockOffer(offer_id=7, account=C_))
    assert desk.held(C_, V25) == (HELD, 0, 0, 0)
    assert desk.modes().block_offers == []


def test_block_trade_settles_delivery_versus_payment_with_fees(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(desk, [order(1, B, SELL, 10, 6010), order(2, D, BUY, 10, 6010)])  # trade id 1
    desk.ok(TO_AFTERNOON)
    desk.ok(offer(offer_id=7))  # C_ sells 1,000 at 60.00
    exact = 6_000_000 + fee(6_000_000, 30)
    desk.reg(s.WithdrawCash, account=A, amount_fen=CASH - exact)  # exactly enough
    events = desk.do(accept(offer_id=7, account=A))
    assert events == [s.BlockTradeExecuted(events[0].seq, 0, 2, V24, 6000, 1_000, 7, SELL, C_, A)]
    assert desk.cash(A) == (0, 0)
    assert desk.held(A) == (HELD, 0, 0, 1_000)  # T+1
    assert desk.cash(C_) == (CASH + 6_000_000 - fee(6_000_000, 20), 0)
    assert desk.held(C_) == (HELD - 1_000, 0, 0, 0)
    listing_fees = fee(60_100, 30) + fee(60_100, 20)
    assert desk.cash(FEE) == (listing_fees + fee(6_000_000, 30) + fee(6_000_000, 20), 0)
    assert desk.modes().block_offers == []
    # the offer is gone
    events = desk.do(accept(offer_id=7, account=B))
    assert [e.reason for e in events] == [R.UNKNOWN_BLOCK_OFFER]
    # T+1: A cannot sell what it bought today; the next session settles it
    assert [e.reason for e in desk.do(order(3, A, SELL, HELD + 1, 6000))] == [
        R.INSUFFICIENT_ALLOWANCES
    ]
    desk.ok(s.CloseSession(trading_date=DATE1))
    desk.ok(s.OpenSession(trading_date=DATE2))
    assert desk.held(A) == (HELD + 1_000, 0, 0, 0)


def test_a_directed_buy_offer_accepted_by_its_counterparty(desk: Desk) -> None:
    run_setup(desk, OFFERS)
    assert desk.cash(D) == (CASH - 6_100_000 - (HELD + 1) * 5000, 6_100_000 + (HELD + 1) * 5000)
    events = desk.do(accept(offer_id=2, account=B, price=6100))
    assert events == [s.BlockTradeExecuted(events[0].seq, 0, 1, V24, 6100, 1_000, 2, BUY, D, B)]
    assert desk.cash(B) == (CASH + 6_100_000, 0) and desk.held(B) == (HELD - 1_000, 0, 0, 0)
    assert desk.cash(D) == (CASH - 6_100_000 - (HELD + 1) * 5000, (HELD + 1) * 5000)
    assert desk.held(D) == (HELD, 0, 0, 1_000)


def test_offers_live_through_a_halt_and_can_be_cancelled(desk: Desk) -> None:
    run_setup(desk, OFFERS + [s.HaltInstrument(instrument=V24)])
    events = desk.do(s.CancelBlockOffer(offer_id=1, account=C_))
    assert events == [
        s.BlockOfferCancelled(events[0].seq, 0, 1, C_, V24, SELL, 6000, 1_000, C.REQUESTED)
    ]
    assert desk.held(C_) == (HELD, 0, 0, 0)
    desk.ok(s.ResumeInstrument(instrument=V24))
    assert [type(e) for e in desk.do(accept(offer_id=2, account=B, price=6100))] == [
        s.BlockTradeExecuted
    ]


def test_block_offers_expire_when_the_phase_ends_block_trading(desk: Desk) -> None:
    run_setup(
        desk,
        [
            TO_AFTERNOON,
            offer(offer_id=5),
            offer(offer_id=3, account=D, side=BUY),
            offer(offer_id=4, symbol=CCER, price=5000),
            offer(offer_id=9, account=D, symbol=V25, price=6010),
        ],
    )
    events = desk.do(phase(AFTERNOON, V24))  # block stays effective: nothing expires
    assert [type(e) for e in events] == [s.TradingPhaseChanged]
    events = desk.do(phase(MIDDAY, V25))  # one instrument: only its offers expire
    seq = events[0].seq
    assert events == [
        s.BlockOfferCancelled(seq, 0, 9, D, V25, SELL, 6010, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, V25, 1, 0),
    ]
    events = desk.do(phase(MORNING))
    seq = events[0].seq
    assert events == [
        s.BlockOfferCancelled(seq, 0, 3, D, V24, BUY, 6000, 1_000, C.PHASE_END),
        s.BlockOfferCancelled(seq, 0, 5, C_, V24, SELL, 6000, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, V24, 0, CONT | HQ),
        s.TradingPhaseChanged(seq, 0, V25, 0, CONT | HQ),  # 1 -> 0: no offers, none to expire
        s.BlockOfferCancelled(seq, 0, 4, C_, CCER, SELL, 5000, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, CCER, 0, HQ),
        s.TradingPhaseChanged(seq, 0, CCERB, 0, 0),
    ]
    for account in TRADERS:  # every lock released
        assert desk.cash(account) == (CASH, 0)
        assert all(desk.held(account, symbol) == (HELD, 0, 0, 0) for symbol in SYMBOLS)
    assert desk.modes().block_offers == []


def test_a_halted_instruments_offers_end_with_the_block_phase(desk: Desk) -> None:
    """Block "effective" before and after compares the modes of the old and the new phase
    whatever the session state (docs/TRADING_MODES.md, SetTradingPhase)."""
    run_setup(desk, [TO_AFTERNOON, offer(offer_id=5), s.HaltInstrument(instrument=V24)])
    events = desk.do(phase(AFTERNOON, V24))
    assert [type(e) for e in events] == [s.TradingPhaseChanged]
    events = desk.do(phase(MIDDAY, V24))
    seq = events[0].seq
    assert events == [
        s.BlockOfferCancelled(seq, 0, 5, C_, V24, SELL, 6000, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, V24, 1, 0),
    ]
    assert desk.held(C_) == (HELD, 0, 0, 0)


def test_a_closed_instrument_keeps_its_last_phase_until_it_opens(desk: Desk) -> None:
    run_setup(desk, [TO_AFTERNOON, s.CloseSession(trading_date=DATE1, instrument=V24)])
    assert [row[0] for row in desk.modes().instruments] == [2, 2, 2, 0]
    events = desk.do(s.CloseSession(trading_date=DATE1))
    assert [row[0] for row in desk.modes().instruments] == [2, 2, 2, 0]
    events = desk.do(s.OpenSession(trading_date=DATE2, instrument=V25))
    assert [type(e) for e in events] == [s.SessionOpened]
    assert [row[0] for row in desk.modes().instruments] == [2, 0, 2, 0]


def test_auction_commands_are_not_checked_against_the_window(desk: Desk) -> None:
    """The engine reads no clock: the announced window is published, never enforced."""
    run_setup(desk, [apply_auction(1, C_, V24, 1_000), announce(1, start=1_000, end=2_000)])
    events = desk.do(msgspec.structs.replace(bid(1, 1, A, 6000, 100), ts_ns=10**18))
    assert events == [s.AuctionBidAccepted(events[0].seq, 10**18, 1, 1, A, V24, 6000, 100)]
    events = desk.do(msgspec.structs.replace(s.ClearAuction(auction_id=1), ts_ns=1))
    assert [type(e) for e in events] == [s.AuctionTrade, s.AuctionCleared]
    assert all(e.ts_ns == 1 for e in events)


def test_block_trades_do_not_move_the_listing_prices(desk: Desk) -> None:
    run_setup(desk, [order(1, B, SELL, 10, 6051), order(2, D, BUY, 10, 6051)])  # trade id 1
    desk.ok(TO_AFTERNOON)
    run_setup(
        desk,
        [
            offer(offer_id=1, price=7000),
            accept(offer_id=1, price=7000),
            offer(offer_id=2, account=D, side=BUY, qty=2_000, price=4500),
            accept(offer_id=2, account=B, price=4500, qty=2_000),
            offer(offer_id=3, symbol=V25, price=5000),
            accept(offer_id=3, account=D, price=5000),
        ],
    )
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V24))
    seq = events[0].seq
    assert events == [
        s.SessionClosed(seq, 0, V24, DATE1, 6051, 6051, 6051, 6051, 10, 60_510, 1),
        s.SessionModeVolumes(seq, 0, V24, DATE1, 3_000, 7_000_000 + 9_000_000, 2, 0, 0, 0),
    ]
    assert desk.engine.status(V24).reference_price_ticks == 6051
    events = desk.do(s.CloseSession(trading_date=DATE1))  # the others; V25 had no listing trade
    v25 = [e for e in events if getattr(e, "instrument", None) == V25]
    assert v25 == [
        s.SessionClosed(events[0].seq, 0, V25, DATE1, 6010, 6010, 6010, 6010, 0, 0, 0),
        s.SessionModeVolumes(events[0].seq, 0, V25, DATE1, 1_000, 5_000_000, 1, 0, 0, 0),
    ]
    # the counters restart: the next session reports nothing
    desk.ok(s.OpenSession(trading_date=DATE2))
    events = desk.do(s.CloseSession(trading_date=DATE2, instrument=V24))
    assert events[-1] == s.SessionModeVolumes(events[0].seq, 0, V24, DATE2, 0, 0, 0, 0, 0, 0)
    assert desk.modes().instruments[0][1:] == (0, 0, 0, 0, 0, 0)


def test_trade_ids_are_one_sequence_across_modes(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(1, B, SELL, 10, 6000),
            TO_AFTERNOON,
            offer(offer_id=1),
            apply_auction(1, D, CCER, 1_000),
            announce(1),
            bid(1, 1, A, 5010, 1_000),
            order(3, C_, SELL, 5, 6010),
        ],
    )
    trade_ids = [
        desk.do(order(2, A, BUY, 10, 6000))[-1].trade_id,  # listing
        desk.do(accept(offer_id=1, account=B))[-1].trade_id,
    ]  # block
    trade_ids += [
        e.trade_id for e in desk.do(s.ClearAuction(auction_id=1)) if type(e) is s.AuctionTrade
    ]  # auction
    trade_ids.append(desk.do(hit(4, A, BUY, 5, 3))[-1].trade_id)  # hit-quote
    assert trade_ids == [1, 2, 3, 4]


def test_the_block_band_moves_with_the_close(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(1, B, SELL, 10, 6100),
            order(2, D, BUY, 10, 6100),
            s.CloseSession(trading_date=DATE1),
            s.OpenSession(trading_date=DATE2),
            TO_AFTERNOON,
        ],
    )
    # reference 6100: block band 4270 … 7930
    assert [e.reason for e in desk.do(offer(offer_id=1, price=7931))] == [R.PRICE_OUT_OF_BAND]
    assert [e.reason for e in desk.do(offer(offer_id=1, price=4269))] == [R.PRICE_OUT_OF_BAND]
    assert [type(e) for e in desk.do(offer(offer_id=1, price=7930))] == [s.BlockOfferPosted]
    assert [type(e) for e in desk.do(offer(offer_id=2, price=4270))] == [s.BlockOfferPosted]


def test_the_block_band_is_capped_by_the_ladder_but_the_auction_cap_is_not(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(max_price_ticks=6103)))
    desk.ok(TO_AFTERNOON)
    assert [e.reason for e in desk.do(offer(offer_id=1, price=6104))] == [R.PRICE_OUT_OF_BAND]
    assert [type(e) for e in desk.do(offer(offer_id=1, price=6103))] == [s.BlockOfferPosted]
    # tick 5: the ladder's top rounded down to the tick
    assert [e.reason for e in desk.do(offer(offer_id=2, symbol=V25, price=6105))] == [
        R.PRICE_OUT_OF_BAND
    ]
    assert [type(e) for e in desk.do(offer(offer_id=2, symbol=V25, price=6100))] == [
        s.BlockOfferPosted
    ]
    desk.ok(apply_auction(1, D, V24, 1_000))
    events = desk.do(announce(1))
    assert (events[0].floor_price_ticks, events[0].cap_price_ticks) == (6000, 6199)
    desk.ok(bid(1, 1, A, 6199, 400))
    events = desk.do(s.ClearAuction(auction_id=1))
    assert events[0] == s.AuctionTrade(events[0].seq, 0, 1, 1, V24, 6199, 400, 1, A, D, 0)


# ============================================================================================
# One-way auctions: refusals
# ============================================================================================

AUCTIONS = [
    apply_auction(1, C_, V24, 1_000),  # applied only
    apply_auction(2, C_, V24, 2_000),
    announce(2),  # bidding: floor 6000, cap 6199
    apply_auction(3, D, CCER, 1_000),
    announce(3, CLOSE_MINUS_BAND),  # bidding: 4510 … 5510
    bid(1, 2, A, 6000, 100),
]


def _apply_reject(c: s.ApplyAuction, reason: R) -> tuple:
    return (43, c.auction_id, 0, c.account, listed(c.instrument), 0, c.qty_t, reason)


APPLY_REFUSALS = [
    ("unknown-instrument", apply_auction(1, ACCOUNTS, "NOPE", 0), R.UNKNOWN_INSTRUMENT),
    ("unopened-account", apply_auction(1, UNOPENED, V24, 0), R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", apply_auction(1, ACCOUNTS, CCERB, 0), R.UNKNOWN_ACCOUNT),
    ("no-auction-mode", apply_auction(1, C_, V25, 0), R.MODE_NOT_ALLOWED),
    ("below-auction-minimum", apply_auction(1, C_, V24, 999), R.INVALID_QUANTITY),
    ("below-auction-minimum-b", apply_auction(0, C_, CCERB, 499), R.INVALID_QUANTITY),
    ("qty-above-10-12", apply_auction(1, C_, V24, 10**12 + 1), R.INVALID_QUANTITY),
    ("off-lot", apply_auction(0, C_, CCER, 1_005), R.QUANTITY_OFF_LOT),
    ("auction-id-zero", apply_auction(0, C_, V24, HELD + 1), R.INVALID_ORDER_ID),
    ("auction-id-negative", apply_auction(-2, C_, V24, 1_000), R.INVALID_ORDER_ID),
    ("duplicate-applied", apply_auction(1, D, CCER, HELD + 10), R.DUPLICATE_ORDER_ID),
    ("duplicate-bidding", apply_auction(3, A, V24, 1_000), R.DUPLICATE_ORDER_ID),
    ("authority", apply_auction(9, AUTH, V24, 1_000), R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", apply_auction(9, FEE, CCERB, 1_000), R.ACCOUNT_MAY_NOT_TRADE),
    ("too-much", apply_auction(9, A, V24, HELD + 1), R.INSUFFICIENT_ALLOWANCES),
    (
        "lot-of-another-auction-locked",
        apply_auction(9, C_, V24, HELD - 2_999),
        R.INSUFFICIENT_ALLOWANCES,
    ),
]

ANNOUNCE_REFUSALS = [
    ("unknown", announce(9, floor_rule=0, end=77), "?", R.UNKNOWN_AUCTION),
    ("already-bidding", announce(3, floor_rule=0, end=77), CCER, R.AUCTION_STATE),
    ("floor-rule-zero", announce(1, floor_rule=0, clearing=0), V24, R.INVALID_AUCTION_TERMS),
    ("floor-rule-three", announce(1, floor_rule=3, end=77), V24, R.INVALID_AUCTION_TERMS),
    ("clearing-zero", announce(1, clearing=0, end=77), V24, R.INVALID_AUCTION_TERMS),
    ("clearing-three", announce(1, clearing=3, end=77), V24, R.INVALID_AUCTION_TERMS),
    (
        "window-ends-before-it-starts",
        announce(1, start=1_000, end=999),
        V24,
        R.INVALID_AUCTION_TERMS,
    ),
]

BID_REFUSALS = [
    ("unknown-auction", bid(5, 9, ACCOUNTS, 0, 0), "?", R.UNKNOWN_AUCTION),
    ("not-announced", bid(5, 1, ACCOUNTS, 0, 0), V24, R.AUCTION_STATE),
    ("unopened-account", bid(5, 2, UNOPENED, 0, 0), V24, R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", bid(5, 2, ACCOUNTS, 0, 0), V24, R.UNKNOWN_ACCOUNT),
    ("seller", bid(5, 2, C_, 0, 0), V24, R.SELLER_MAY_NOT_BID),
    ("qty-zero", bid(5, 2, B, 0, 0), V24, R.INVALID_QUANTITY),
    ("qty-above-the-lot", bid(5, 2, B, 6000, 2_001), V24, R.INVALID_QUANTITY),
    ("qty-below-the-instruments-lot", bid(5, 3, B, 4512, 5), CCER, R.INVALID_QUANTITY),
    ("qty-off-lot", bid(5, 3, B, 4512, 15), CCER, R.QUANTITY_OFF_LOT),
    ("price-off-tick", bid(0, 3, B, 4512, 10), CCER, R.PRICE_OFF_TICK),
    ("price-zero", bid(0, 2, B, 0, 10), V24, R.PRICE_OFF_TICK),
    ("below-the-floor", bid(0, 2, B, 5999, 10), V24, R.PRICE_OUT_OF_BAND),
    ("above-the-cap", bid(0, 2, B, 6200, 10), V24, R.PRICE_OUT_OF_BAND),
    ("below-the-floor-tick-5", bid(0, 3, B, 4505, 10), CCER, R.PRICE_OUT_OF_BAND),
    ("above-the-cap-tick-5", bid(0, 3, B, 5515, 10), CCER, R.PRICE_OUT_OF_BAND),
    ("bid-id-zero", bid(0, 2, AUTH, 6000, 10), V24, R.INVALID_ORDER_ID),
    ("bid-id-negative", bid(-1, 2, B, 6000, 10), V24, R.INVALID_ORDER_ID),
    ("duplicate-in-another-auction", bid(1, 3, AUTH, 5000, 10), CCER, R.DUPLICATE_ORDER_ID),
    ("duplicate-in-the-same-auction", bid(1, 2, B, 6000, 10), V24, R.DUPLICATE_ORDER_ID),
    ("authority", bid(5, 2, AUTH, 6000, 10), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", bid(5, 2, FEE, 6000, 10), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("cash", bid(5, 2, B, 6199, 2_000), V24, None),  # affordable: accepted (control)
]


@pytest.mark.parametrize("command, reason", [pytest.param(*c[1:], id=c[0]) for c in APPLY_REFUSALS])
def test_apply_auction_refusal(desk: Desk, command: s.ApplyAuction, reason: R) -> None:
    run_setup(desk, AUCTIONS)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [s.AuctionCommandRejected(events[0].seq, 0, *_apply_reject(command, reason))]
    assert desk.hash() == before and desk.views() == views


@pytest.mark.parametrize(
    "command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in ANNOUNCE_REFUSALS]
)
def test_announce_auction_refusal(desk: Desk, command, echo: str, reason: R) -> None:
    run_setup(desk, AUCTIONS)
    before = desk.hash()
    events = desk.do(command)
    assert events == [
        s.AuctionCommandRejected(events[0].seq, 0, 44, command.auction_id, 0, 0, echo, 0, 0, reason)
    ]
    assert desk.hash() == before


@pytest.mark.parametrize(
    "command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in BID_REFUSALS]
)
def test_auction_bid_refusal(desk: Desk, command, echo: str, reason: R | None) -> None:
    run_setup(desk, AUCTIONS)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    if reason is None:
        assert [type(e) for e in events] == [s.AuctionBidAccepted]
        return
    assert events == [
        s.AuctionCommandRejected(
            events[0].seq,
            0,
            45,
            command.auction_id,
            command.bid_id,
            command.account,
            echo,
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


@pytest.mark.parametrize(
    "setup, command, reason",
    [
        ([freeze(B)], bid(5, 2, B, 6000, 10), R.ACCOUNT_FROZEN),
        ([withdraw_all_but(B, 600_000 - 1)], bid(5, 2, B, 6000, 100), R.INSUFFICIENT_CASH),
        ([withdraw_all_but(B, 600_000 - 1), freeze(B)], bid(5, 2, B, 6000, 100), R.ACCOUNT_FROZEN),
        (
            [s.WithdrawCash(key=key(1), account=A, amount_fen=CASH - 600_000)],
            bid(5, 2, A, 6000, 10),
            R.INSUFFICIENT_CASH,
        ),  # A's first bid locks the rest
        ([freeze(C_)], apply_auction(9, C_, CCERB, 500), R.ACCOUNT_FROZEN),
    ],
    ids=["frozen", "cash", "frozen-before-cash", "cash-locked-by-a-bid", "apply-frozen"],
)
def test_auction_ledger_refusals(desk: Desk, setup, command, reason: R) -> None:
    run_setup(desk, AUCTIONS + setup)
    before = desk.hash()
    assert [e.reason for e in desk.do(command)] == [reason]
    assert desk.hash() == before


@pytest.mark.parametrize(
    "command, echo, reason",
    [
        (s.ClearAuction(auction_id=9), "?", R.UNKNOWN_AUCTION),
        (s.ClearAuction(auction_id=0), "?", R.UNKNOWN_AUCTION),
        (s.ClearAuction(auction_id=1), V24, R.AUCTION_STATE),  # applied, never announced
        (s.CancelAuction(auction_id=9), "?", R.UNKNOWN_AUCTION),
    ],
)
def test_clear_and_cancel_auction_refusal(desk: Desk, command, echo: str, reason: R) -> None:
    run_setup(desk, AUCTIONS)
    before = desk.hash()
    events = desk.do(command)
    tag = type(command).__struct_config__.tag
    assert events == [
        s.AuctionCommandRejected(
            events[0].seq, 0, tag, command.auction_id, 0, 0, echo, 0, 0, reason
        )
    ]
    assert desk.hash() == before


def test_full_auction_and_bid_tables(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(auctions=2, auction_bids=3)))
    run_setup(
        desk,
        [
            apply_auction(1, C_, V24),
            apply_auction(2, D, CCER),
            announce(1),
            announce(2),
            bid(1, 1, A, 6000, 10),
            bid(2, 2, A, 5010, 10),
            bid(3, 2, B, 5010, 10),
        ],
    )
    before = desk.hash()
    for command, reason in [
        (apply_auction(3, B, V24), R.BOOK_FULL),
        (apply_auction(3, B, V24, HELD + 1), R.BOOK_FULL),  # before the ledger
        (apply_auction(2, B, V24), R.DUPLICATE_ORDER_ID),
        (bid(4, 1, B, 6000, 10), R.BOOK_FULL),  # bids of every auction count
        (bid(4, 1, B, 6000, HELD * 1_000), R.INVALID_QUANTITY),  # quantity comes first
        (bid(3, 1, D, 6000, 10), R.DUPLICATE_ORDER_ID),
    ]:
        assert [e.reason for e in desk.do(command)] == [reason], command
        assert desk.hash() == before
    desk.ok(s.CancelAuction(auction_id=2))  # releases two bids and one auction
    run_setup(desk, [apply_auction(3, B, V24), bid(2, 1, B, 6000, 10), bid(3, 1, D, 6000, 10)])
    assert [e.reason for e in desk.do(bid(4, 1, B, 6000, 10))] == [R.BOOK_FULL]


def test_fees_need_an_open_fee_account_for_block_and_auction(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(buy_bps=0, sell_bps=5)), open_fee_account=False)
    desk.ok(TO_AFTERNOON)
    for command in (
        offer(qty=HELD + 1),
        offer(side=BUY, qty=10**6),
        apply_auction(1, C_, V24, HELD + 1),
    ):
        events = desk.do(command)
        assert [e.reason for e in events] == [R.FEE_ACCOUNT_NOT_OPEN], command


# ============================================================================================
# One-way auctions: announcing, bidding, clearing, cancelling
# ============================================================================================


def test_apply_locks_the_lot_and_is_not_bound_to_the_session(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market()), open_session=False)  # every session closed
    events = desk.do(apply_auction(7, C_, CCER, 2_000))
    assert events == [s.AuctionApplied(events[0].seq, 0, 7, C_, CCER, 2_000)]
    assert desk.held(C_, CCER) == (HELD - 2_000, 2_000, 0, 0)
    assert desk.modes().auctions == [
        snap.AuctionSnapshot(7, C_, 2, 2_000, s.AuctionState.APPLIED, 0, 0, 0, 0, 0, 0, [])
    ]
    events = desk.do(announce(7, CLOSE_MINUS_BAND, PAY_AS_BID, 5, 5))  # an empty window is fine
    assert events == [
        s.AuctionAnnounced(
            events[0].seq, 0, 7, C_, CCER, 2_000, 4510, 5510, CLOSE_MINUS_BAND, PAY_AS_BID, 5, 5
        )
    ]
    events = desk.do(bid(1, 7, A, 4510, 30))
    assert events == [s.AuctionBidAccepted(events[0].seq, 0, 1, 7, A, CCER, 4510, 30)]
    events = desk.do(s.ClearAuction(auction_id=7))
    assert [type(e) for e in events] == [s.AuctionTrade, s.AuctionCleared]
    desk.do(s.HaltInstrument(instrument=CCER))  # refused: closed; auctions do not care
    assert [type(e) for e in desk.do(apply_auction(7, C_, CCER, 1_000))] == [s.AuctionApplied]


@pytest.mark.parametrize(
    "symbol, floor_rule, floor, cap",
    [
        (V24, PREVIOUS_CLOSE, 6000, 6199),  # 6000 x 1.0333 = 6199.8 -> 6199
        (V24, CLOSE_MINUS_BAND, 5801, 6199),  # 6000 x 0.9667 = 5800.2 -> 5801
        (CCER, PREVIOUS_CLOSE, 5010, 5510),  # 5511 -> 5510 (tick 5)
        (CCER, CLOSE_MINUS_BAND, 4510, 5510),  # 4509 -> 4510 (tick 5)
        (CCERB, PREVIOUS_CLOSE, 5000, 5500),
        (CCERB, CLOSE_MINUS_BAND, 4500, 5500),
    ],
)
def test_announce_sets_floor_and_cap_inward_to_the_tick(
    desk: Desk, symbol: str, floor_rule, floor: int, cap: int
) -> None:
    desk.ok(apply_auction(4, D, symbol, 1_000))
    for clearing in (UNIFORM, PAY_AS_BID):
        if clearing == PAY_AS_BID:
            desk.ok(s.CancelAuction(auction_id=4))
            desk.ok(apply_auction(4, D, symbol, 1_000))
        events = desk.do(announce(4, floor_rule, clearing, 1_000, 2_000))
        assert events == [
            s.AuctionAnnounced(
                events[0].seq,
                0,
                4,
                D,
                symbol,
                1_000,
                floor,
                cap,
                floor_rule,
                clearing,
                1_000,
                2_000,
            )
        ]
        tick = 5 if symbol == CCER else 1
        assert [type(e) for e in desk.do(bid(1, 4, A, floor, 10))] == [s.AuctionBidAccepted]
        assert [type(e) for e in desk.do(bid(2, 4, A, cap, 10))] == [s.AuctionBidAccepted]
        for price in (floor - tick, cap + tick):
            assert [e.reason for e in desk.do(bid(3, 4, A, price, 10))] == [R.PRICE_OUT_OF_BAND]
        saved = [a for a in desk.modes().auctions if a.auction_id == 4]
        assert saved == [
            snap.AuctionSnapshot(
                4,
                D,
                SYMBOLS.index(symbol),
                1_000,
                s.AuctionState.BIDDING,
                floor,
                cap,
                clearing,
                floor_rule,
                1_000,
                2_000,
                [snap.BidSnapshot(1, A, floor, 10), snap.BidSnapshot(2, A, cap, 10)],
            )
        ]


def test_announce_uses_the_reference_price_at_announcement(desk: Desk) -> None:
    desk.ok(apply_auction(1, D, V24, 1_000))
    run_setup(
        desk,
        [
            order(1, B, SELL, 10, 6100),
            order(2, A, BUY, 10, 6100),
            s.CloseSession(trading_date=DATE1),
        ],
    )
    events = desk.do(announce(1, CLOSE_MINUS_BAND))  # reference 6100 now
    # 6100 x 0.9667 = 5896.87 -> 5897; 6100 x 1.0333 = 6303.13 -> 6303
    assert (events[0].floor_price_ticks, events[0].cap_price_ticks) == (5897, 6303)


def test_bids_lock_their_need_until_the_auction_ends(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(desk, [apply_auction(1, C_, V24, 2_000), announce(1)])
    desk.ok(bid(1, 1, A, 6100, 500))
    desk.ok(bid(2, 1, A, 6000, 300))
    need = 500 * 6100 + fee(500 * 6100, 30) + 300 * 6000 + fee(300 * 6000, 30)
    assert desk.cash(A) == (CASH - need, need)
    # a bid id is free for an order, a block offer, an auction: separate id spaces
    run_setup(desk, [order(1, A, BUY, 10, 5900), apply_auction(2, A, V24, 1_000)])


def test_uniform_clearing_with_a_marginal_bid_and_time_priority(desk: Desk) -> None:
    """Lot 1,000 t of CCER.  Ranking: 52.00 (400), 50.00 (400, earlier), 50.00 (300, later;
    fills 200 of 300), 48.00 and 45.10 receive nothing.  Uniform price: 50.00."""
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1, CLOSE_MINUS_BAND),
            bid(11, 1, A, 5000, 400),
            bid(12, 1, B, 5200, 400),
            bid(13, 1, D, 5000, 300),
            bid(14, 1, A, 4800, 200),
            bid(15, 1, B, 4510, 100),
        ],
    )
    assert desk.cash(A) == (CASH - 2_000_000 - 960_000, 2_960_000)
    events = desk.do(s.ClearAuction(auction_id=1))
    seq = events[0].seq
    assert events == [
        s.AuctionTrade(seq, 0, 1, 1, CCER, 5000, 400, 12, B, C_, 0),
        s.AuctionTrade(seq, 0, 2, 1, CCER, 5000, 400, 11, A, C_, 0),
        s.AuctionTrade(seq, 0, 3, 1, CCER, 5000, 200, 13, D, C_, 100),
        s.AuctionBidReleased(seq, 0, 14, 1, A, CCER, 4800, 200),
        s.AuctionBidReleased(seq, 0, 15, 1, B, CCER, 4510, 100),
        s.AuctionCleared(seq, 0, 1, C_, CCER, UNIFORM, 5000, 1_000, 0, 5_000_000, 3, 5),
    ]
    assert desk.cash(A) == (CASH - 2_000_000, 0) and desk.held(A, CCER) == (HELD, 0, 0, 400)
    assert desk.cash(B) == (CASH - 2_000_000, 0) and desk.held(B, CCER) == (HELD, 0, 0, 400)
    assert desk.cash(D) == (CASH - 1_000_000, 0) and desk.held(D, CCER) == (HELD, 0, 0, 200)
    assert desk.cash(C_) == (CASH + 5_000_000, 0) and desk.held(C_, CCER) == (HELD - 1_000, 0, 0, 0)
    assert desk.modes().auctions == []
    assert desk.modes().instruments[2] == (0, 0, 0, 0, 1_000, 5_000_000, 3)
    # the auction's id and the bids' ids are free again
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1),
            bid(11, 1, A, 5010, 10),
            bid(15, 1, B, 5010, 10),
        ],
    )


def test_pay_as_bid_with_fees_and_an_unsold_part(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(
        desk,
        [
            apply_auction(1, D, V24, 2_000),
            announce(1, PREVIOUS_CLOSE, PAY_AS_BID),
            bid(1, 1, A, 6100, 500),
            bid(2, 1, B, 6199, 700),
            bid(3, 1, C_, 6000, 300),
            bid(4, 1, A, 6100, 100),
        ],
    )
    events = desk.do(s.ClearAuction(auction_id=1))
    seq = events[0].seq
    fills = [(2, B, 6199, 700), (1, A, 6100, 500), (4, A, 6100, 100), (3, C_, 6000, 300)]
    value = sum(price * qty for _, _, price, qty in fills)
    assert value == 9_799_300
    assert events == [
        *[
            s.AuctionTrade(seq, 0, n + 1, 1, V24, price, qty, bid_id, buyer, D, 0)
            for n, (bid_id, buyer, price, qty) in enumerate(fills)
        ],
        s.AuctionCleared(seq, 0, 1, D, V24, PAY_AS_BID, 6000, 1_600, 400, value, 4, 4),
    ]
    buy_fees = {
        account: sum(fee(p * q, 30) for _, b, p, q in fills if b == account)
        for account in (A, B, C_)
    }
    assert desk.cash(A) == (CASH - 600 * 6100 - buy_fees[A], 0)
    assert desk.cash(B) == (CASH - 700 * 6199 - buy_fees[B], 0)
    assert desk.cash(C_) == (CASH - 300 * 6000 - buy_fees[C_], 0)
    sell_fees = sum(fee(p * q, 20) for _, _, p, q in fills)  # per fill, rounded down each
    assert desk.cash(D) == (CASH + value - sell_fees, 0)
    assert desk.cash(FEE) == (sum(buy_fees.values()) + sell_fees, 0)
    assert desk.held(D) == (HELD - 1_600, 0, 0, 0)  # the unsold 400 t came back
    assert desk.held(A) == (HELD, 0, 0, 600)


def test_uniform_pays_the_clearing_price_and_releases_the_rest_of_the_lock(fee_desk) -> None:
    desk = fee_desk
    run_setup(
        desk,
        [
            apply_auction(1, D, V24, 1_000),
            announce(1),
            bid(1, 1, A, 6199, 600),
            bid(2, 1, B, 6050, 600),
        ],
    )
    events = desk.do(s.ClearAuction(auction_id=1))
    seq = events[0].seq
    assert events == [
        s.AuctionTrade(seq, 0, 1, 1, V24, 6050, 600, 1, A, D, 0),
        s.AuctionTrade(seq, 0, 2, 1, V24, 6050, 400, 2, B, D, 200),
        s.AuctionCleared(seq, 0, 1, D, V24, UNIFORM, 6050, 1_000, 0, 6_050_000, 2, 2),
    ]
    assert desk.cash(A) == (CASH - 3_630_000 - fee(3_630_000, 30), 0)
    assert desk.cash(B) == (CASH - 2_420_000 - fee(2_420_000, 30), 0)
    sell_fees = fee(3_630_000, 20) + fee(2_420_000, 20)
    assert desk.cash(D) == (CASH + 6_050_000 - sell_fees, 0)


def test_an_auction_without_bids_returns_the_lot(desk: Desk) -> None:
    run_setup(desk, [apply_auction(1, D, V24, 1_000), announce(1)])
    events = desk.do(s.ClearAuction(auction_id=1))
    assert events == [s.AuctionCleared(events[0].seq, 0, 1, D, V24, UNIFORM, 0, 0, 1_000, 0, 0, 0)]
    assert desk.held(D) == (HELD, 0, 0, 0)


def test_cancel_auction_releases_everything_in_arrival_order(desk: Desk) -> None:
    start = desk.hash()
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1, CLOSE_MINUS_BAND),
            bid(11, 1, A, 5000, 400),
            bid(12, 1, B, 5200, 400),
            bid(13, 1, A, 5100, 100),
        ],
    )
    events = desk.do(s.CancelAuction(auction_id=1))
    seq = events[0].seq
    assert events == [
        s.AuctionBidReleased(seq, 0, 11, 1, A, CCER, 5000, 400),
        s.AuctionBidReleased(seq, 0, 12, 1, B, CCER, 5200, 400),
        s.AuctionBidReleased(seq, 0, 13, 1, A, CCER, 5100, 100),
        s.AuctionCancelled(seq, 0, 1, C_, CCER, 1_000, 3),
    ]
    assert desk.hash() == start  # every lock released, nothing left behind
    desk.ok(apply_auction(1, D, V24, 1_000))
    events = desk.do(s.CancelAuction(auction_id=1))  # also while only applied
    assert events == [s.AuctionCancelled(events[0].seq, 0, 1, D, V24, 1_000, 0)]
    assert desk.hash() == start


def test_auction_volumes_count_in_the_session_that_closes_next(desk: Desk) -> None:
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1),
            bid(1, 1, A, 5100, 600),
            s.CloseSession(trading_date=DATE1),
        ],
    )
    events = desk.do(s.ClearAuction(auction_id=1))  # while every session is closed
    assert [type(e) for e in events] == [s.AuctionTrade, s.AuctionCleared]
    desk.ok(s.OpenSession(trading_date=DATE2))
    assert desk.held(A, CCER) == (HELD + 600, 0, 0, 0)  # settled T+1 by CCER's session
    events = desk.do(s.CloseSession(trading_date=DATE2))
    volumes = {e.instrument: e for e in events if type(e) is s.SessionModeVolumes}
    assert volumes[CCER] == s.SessionModeVolumes(
        events[0].seq, 0, CCER, DATE2, 0, 0, 0, 600, 3_060_000, 1
    )
    assert volumes[V24] == s.SessionModeVolumes(events[0].seq, 0, V24, DATE2, 0, 0, 0, 0, 0, 0)
    closed = next(e for e in events if type(e) is s.SessionClosed and e.instrument == CCER)
    assert (closed.volume_t, closed.close_ticks) == (0, 5010)  # listing prices untouched


# ============================================================================================
# The close: expiry, prices, mode volumes, composite price
# ============================================================================================


def test_the_close_in_the_afternoon_emits_everything_in_order(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(40, D, BUY, 100, 5950, tif=GTC),
            order(41, C_, SELL, 100, 6051),
            order(42, A, BUY, 50, 5900),
            order(43, B, BUY, 10, 6051),  # trade 1
            TO_AFTERNOON,
            offer(offer_id=9),
            offer(offer_id=8, account=D, side=BUY, price=6100),
            accept(offer_id=9, account=A),  # block trade 2
            offer(offer_id=12, price=6200),
            offer(offer_id=11, account=D, symbol=CCER, price=5000),
        ],
    )
    events = desk.do(s.CloseSession(trading_date=DATE1))
    seq = events[0].seq
    assert events == [
        s.OrderCancelled(seq, 0, 41, C_, V24, SELL, 6051, 90, C.SESSION_END),
        s.OrderCancelled(seq, 0, 42, A, V24, BUY, 5900, 50, C.SESSION_END),
        s.BlockOfferCancelled(seq, 0, 8, D, V24, BUY, 6100, 1_000, C.SESSION_END),
        s.BlockOfferCancelled(seq, 0, 12, C_, V24, SELL, 6200, 1_000, C.SESSION_END),
        s.SessionClosed(seq, 0, V24, DATE1, 6051, 6051, 6051, 6051, 10, 60_510, 1),
        s.SessionModeVolumes(seq, 0, V24, DATE1, 1_000, 6_000_000, 1, 0, 0, 0),
        s.SessionClosed(seq, 0, V25, DATE1, 6010, 6010, 6010, 6010, 0, 0, 0),
        s.SessionModeVolumes(seq, 0, V25, DATE1, 0, 0, 0, 0, 0, 0),
        s.BlockOfferCancelled(seq, 0, 11, D, CCER, SELL, 5000, 1_000, C.SESSION_END),
        s.SessionClosed(seq, 0, CCER, DATE1, 5010, 5010, 5010, 5010, 0, 0, 0),
        s.SessionModeVolumes(seq, 0, CCER, DATE1, 0, 0, 0, 0, 0, 0),
        s.SessionClosed(seq, 0, CCERB, DATE1, 5000, 5000, 5000, 5000, 0, 0, 0),
        s.SessionModeVolumes(seq, 0, CCERB, DATE1, 0, 0, 0, 0, 0, 0),
        s.CompositePrice(seq, 0, DATE1, 6031, 2),  # (6051 + 6010) / 2 = 6030.5 -> 6031
    ]
    assert desk.cash(D) == (CASH - 100 * 5950, 100 * 5950)  # the GTC bid keeps its lock
    assert desk.held(D, CCER) == (HELD, 0, 0, 0) and desk.held(C_) == (HELD - 1_010, 0, 0, 0)
    assert desk.modes().block_offers == []
    events = desk.do(s.OpenSession(trading_date=DATE2, instrument=V24))
    assert events == [s.SessionOpened(events[0].seq, 0, V24, DATE2, 6051, 5446, 6656)]


def test_composite_price_waits_for_every_allowance_vintage(desk: Desk) -> None:
    run_setup(desk, [order(1, B, SELL, 10, 6001), order(2, D, BUY, 10, 6001)])  # V24 close 6001
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V24))
    assert not [e for e in events if type(e) is s.CompositePrice]
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=CCER))  # an offset
    assert not [e for e in events if type(e) is s.CompositePrice]
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V25))
    assert events[-1] == s.CompositePrice(events[0].seq, 0, DATE1, 6006, 2)  # 6005.5 -> 6006
    # an offset closing after the last vintage does not repeat it
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=CCERB))
    assert [type(e) for e in events] == [s.SessionClosed, s.SessionModeVolumes]
    # a close that closes nothing: no composite either
    events = desk.do(s.CloseSession(trading_date=DATE1))
    assert events == [s.CommandRejected(events[0].seq, 0, 11, "", R.SESSION_NOT_OPEN)]


def test_composite_price_reports_the_latest_trading_date(desk: Desk) -> None:
    run_setup(
        desk,
        [
            s.CloseSession(trading_date=DATE1, instrument=V25),
            s.OpenSession(trading_date=DATE2, instrument=V25),
            order(1, B, SELL, 10, 6015, V25),
            order(2, D, BUY, 10, 6015, V25),
            s.CloseSession(trading_date=DATE2, instrument=V25),
            s.OpenSession(trading_date=DATE3, instrument=V25),
        ],
    )
    events = desk.do(s.CloseSession(trading_date=DATE3))  # V24 (DATE1) and V25 (DATE3)
    composite = [e for e in events if type(e) is s.CompositePrice]
    assert composite == [s.CompositePrice(events[0].seq, 0, DATE3, 6008, 2)]  # 6007.5 -> 6008
    assert type(events[-1]) is s.CompositePrice


def test_composite_price_when_the_last_vintage_closes_with_others_already_closed(desk) -> None:
    run_setup(desk, [s.CloseSession(trading_date=DATE1, instrument=V24)])
    events = desk.do(s.CloseSession(trading_date=DATE1))  # V25, CCER, CCER-B
    assert [type(e) for e in events].count(s.CompositePrice) == 1
    assert events[-1] == s.CompositePrice(events[0].seq, 0, DATE1, 6005, 2)


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

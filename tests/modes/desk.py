"""The trading-mode scenarios' shared market, desk and command builders.

The scenarios (``tests/modes/test_*.py``: hit-quote, phases, block trades, auctions, snapshots
and the log) are of the trading modes (docs/TRADING_MODES.md), run against both engines.

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

import itertools

import msgspec

from engine.core import schema as s
from engine.core import snapshot as snap
from engine.core.market import Capacity, Fees, Instrument, MarketDefinition, Phase, validate
from tests.conftest import DATE1, step

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


# -- tables more than one scenario module starts from -----------------------------------------

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

"""Reports built from the events of a log: trades, daily market statistics, account statements.

Theory of operation
-------------------
The log records commands; events are recomputed by replaying it (:mod:`replay.timeline`), so
every report reads exactly the outcome the rules produce.  One pass feeds any number of
*consumers*.  Each consumer names the event kinds it wants; per batch, the rows of those kinds
are picked out of the engine's event records with one vectorised mask, so the Python work of a
report is proportional to the events it shows, never to the log.

Reports are generic over event kinds through two tables that a new kind of event (the allowance
registry's issuance, transfers, surrenders ...) only has to extend:

* :data:`ACCOUNT_ROLES` - which record columns name an account the event concerns, and in
  which role (``owner``, ``taker``, ``maker``, ``receiver``, ``offerer``, ``buyer`` ...);
* :data:`MOVEMENTS` - what the event moves for the account in that role: tonnes of an
  instrument and fen of cash (a trade: the buyer gains tonnes and pays its value).

The market trades in three modes (``docs/TRADING_MODES.md``): listing (``TradeExecuted``, the
hit-quote order included), block trades (``BlockTradeExecuted``) and one-way auctions (one
``AuctionTrade`` per filled bid).  All three settle alike, so :data:`TRADE_KINDS` names them
and every report treats them as trades, each with its :data:`TRADE_MODES` name.

Trades also move fees, which no event records: they follow from the market definition by the
ledger's rule (``docs/LEDGER.md``; charged only when the market runs the registry), and every
trade of any mode concerns the fee account in the role ``fee``.  So a statement's running
totals reconcile with the balances the engine holds.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from engine.core import records as r
from engine.core import schema as s
from engine.core.market import MarketDefinition
from replay.datadir import DataDir, LogReader
from replay.progress import Progress
from replay.timeline import Stop, batch_applier, engine_class, from_genesis, replay_batches

Row = list[int]
"""One event record as 16 ints (``engine.core.records`` column order)."""

# -- the tables new event kinds extend ------------------------------------------------------

ACCOUNT_ROLES: dict[int, tuple[tuple[int, str], ...]] = {
    r.EV_ACCEPTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_REJECTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_TRADE: ((r.E_ACCOUNT, "taker"), (r.TRADE_EXECUTED.maker_account, "maker")),
    r.EV_CANCELLED: ((r.E_ACCOUNT, "owner"),),
    r.EV_MODIFIED: ((r.E_ACCOUNT, "owner"),),
    r.EV_CANCEL_REJECTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_MODIFY_REJECTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_MASS_CANCELLED: ((r.E_ACCOUNT, "owner"),),
    r.EV_ACCOUNT_OPENED: ((r.E_ACCOUNT, "owner"),),
    r.EV_CASH_DEPOSITED: ((r.E_ACCOUNT, "owner"),),
    r.EV_CASH_WITHDRAWN: ((r.E_ACCOUNT, "owner"),),
    r.EV_ISSUED: ((r.E_ACCOUNT, "owner"),),
    r.EV_CLAWED_BACK: ((r.E_ACCOUNT, "owner"),),
    r.EV_TRANSFERRED: ((r.E_ACCOUNT, "sender"), (r.ALLOWANCES_TRANSFERRED.to_account, "receiver")),
    r.EV_FROZEN: ((r.E_ACCOUNT, "owner"),),
    r.EV_UNFROZEN: ((r.E_ACCOUNT, "owner"),),
    r.EV_ACCOUNT_FROZEN: ((r.E_ACCOUNT, "owner"),),
    r.EV_ACCOUNT_UNFROZEN: ((r.E_ACCOUNT, "owner"),),
    r.EV_CANCELLED_ALLOWANCES: ((r.E_ACCOUNT, "owner"),),
    r.EV_EMISSIONS: ((r.E_ACCOUNT, "owner"),),
    r.EV_SURRENDERED: ((r.E_ACCOUNT, "owner"),),
    r.EV_COMPLIANCE: ((r.E_ACCOUNT, "owner"),),
    r.EV_REGISTRY_REJECTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_BLOCK_POSTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_BLOCK_REJECTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_BLOCK_TRADE: (
        (r.BLOCK_TRADE_EXECUTED.offer_account, "offerer"),
        (r.E_ACCOUNT, "acceptor"),
    ),
    r.EV_BLOCK_CANCELLED: ((r.E_ACCOUNT, "owner"),),
    r.EV_AUCTION_APPLIED: ((r.E_ACCOUNT, "seller"),),
    r.EV_AUCTION_ANNOUNCED: ((r.E_ACCOUNT, "seller"),),
    r.EV_BID_ACCEPTED: ((r.E_ACCOUNT, "bidder"),),
    r.EV_AUCTION_REJECTED: ((r.E_ACCOUNT, "owner"),),
    r.EV_AUCTION_TRADE: ((r.E_ACCOUNT, "buyer"), (r.AUCTION_TRADE.seller_account, "seller")),
    r.EV_BID_RELEASED: ((r.E_ACCOUNT, "bidder"),),
    r.EV_AUCTION_CLEARED: ((r.E_ACCOUNT, "seller"),),
    r.EV_AUCTION_CANCELLED: ((r.E_ACCOUNT, "seller"),),
}
"""Event kind -> (column naming an account, the account's role) pairs."""

ACCOUNT_COMMANDS: dict[int, tuple[int, ...]] = {
    r.EV_AUCTION_REJECTED: (r.K_AUCTION_APPLY, r.K_AUCTION_BID),
}
"""Refusals whose account column means an account only for some commands (their ``command``
column): the operator's auction commands (announce, clear, cancel) name no account, and their
refusals carry 0 there."""
_COMMAND = r.AUCTION_COMMAND_REJECTED.command
"""The column of a refusal holding the refused command's kind (the same in every refusal)."""
assert _COMMAND == r.BLOCK_COMMAND_REJECTED.command == r.REGISTRY_REJECTED.command

TRADE_MODES: dict[int, str] = {
    r.EV_TRADE: "listing",
    r.EV_BLOCK_TRADE: "block",
    r.EV_AUCTION_TRADE: "auction",
}
"""Event kind of a trade -> its trading mode (listing includes hit-quote orders)."""
TRADE_KINDS = frozenset(TRADE_MODES)
_TRADE_KIND_ARRAY = np.array(sorted(TRADE_KINDS), dtype=np.int64)


class Fees(msgspec.Struct, frozen=True):
    """Trading fees the ledger charges (``docs/LEDGER.md``): none when the market runs no
    registry.  ``fee(value, bps) = value * bps // 10000``, rounded down."""

    buy_bps: int = 0
    sell_bps: int = 0

    @classmethod
    def of(cls, market: MarketDefinition) -> Fees:
        """The fees ``market`` charges (none without the registry)."""
        if not market.registry:
            return cls()
        return cls(market.fees.buy_bps, market.fees.sell_bps)

    def fee(self, value_fen: int, buys: bool) -> int:
        """The fee of the buying (``buys``) or selling side of a trade worth ``value_fen``."""
        return value_fen * (self.buy_bps if buys else self.sell_bps) // 10_000


Movement = tuple[int, int, int]
"""(tonnes, fen, of which fee fen): what one event moves for one account."""


def _settled(row: Row, buys: bool, fees: Fees) -> Movement:
    """Delivery versus payment of one trade, for its buyer or its seller."""
    qty, value = row[r.E_QTY], row[r.E_PRICE] * row[r.E_QTY]
    fee = fees.fee(value, buys)
    return (qty, -value - fee, fee) if buys else (-qty, value - fee, fee)


def _fees_collected(row: Row, fees: Fees) -> Movement:
    value = row[r.E_PRICE] * row[r.E_QTY]
    collected = fees.fee(value, True) + fees.fee(value, False)
    return (0, collected, collected)


def _trade(row: Row, role: str, fees: Fees) -> Movement:
    if role == "fee":
        return _fees_collected(row, fees)
    taker_buys = row[r.E_SIDE] == s.Side.BUY
    return _settled(row, taker_buys if role == "taker" else not taker_buys, fees)


def _block_trade(row: Row, role: str, fees: Fees) -> Movement:
    """``E_SIDE`` is the offer's side; the accepting account takes the other."""
    if role == "fee":
        return _fees_collected(row, fees)
    offer_buys = row[r.E_SIDE] == s.Side.BUY
    return _settled(row, offer_buys if role == "offerer" else not offer_buys, fees)


def _auction_trade(row: Row, role: str, fees: Fees) -> Movement:
    if role == "fee":
        return _fees_collected(row, fees)
    return _settled(row, role == "buyer", fees)


def _qty(sign: int) -> Callable[[Row, str, Fees], Movement]:
    return lambda row, role, fees: (sign * row[r.E_QTY], 0, 0)


def _cash(sign: int) -> Callable[[Row, str, Fees], Movement]:
    return lambda row, role, fees: (0, sign * row[r.E_QTY], 0)


def _transfer(row: Row, role: str, fees: Fees) -> Movement:
    return (-row[r.E_QTY] if role == "sender" else row[r.E_QTY], 0, 0)


MOVEMENTS: dict[int, Callable[[Row, str, Fees], Movement]] = {
    r.EV_TRADE: _trade,
    r.EV_BLOCK_TRADE: _block_trade,
    r.EV_AUCTION_TRADE: _auction_trade,
    r.EV_CASH_DEPOSITED: _cash(+1),
    r.EV_CASH_WITHDRAWN: _cash(-1),
    r.EV_ISSUED: _qty(+1),
    r.EV_CLAWED_BACK: _qty(-1),
    r.EV_TRANSFERRED: _transfer,
    r.EV_CANCELLED_ALLOWANCES: _qty(-1),
    r.EV_SURRENDERED: _qty(-1),
}
"""Event kind -> ``f(row, role, fees) -> (tonnes, fen, fee fen)`` the event moves for the
account in that role (fen net of the fee; the fee account's role in a trade is ``fee``)."""

assert set(MOVEMENTS) <= set(ACCOUNT_ROLES), "a movement needs the account it moves"
assert TRADE_KINDS <= set(MOVEMENTS), "every trade moves allowances and cash"


# -- one pass over the events ------------------------------------------------------------------


class Consumer(abc.ABC):
    """Receives the event rows of the kinds in :attr:`kinds`, batch by batch, in log order."""

    kinds: frozenset[int] = frozenset()

    @abc.abstractmethod
    def take(self, rows: np.ndarray) -> None:
        """``rows``: an (n, 16) int64 array of events of :attr:`kinds` (a copy, n >= 1)."""


@dataclass(frozen=True)
class Scan:
    """What :func:`scan_events` leaves behind: the engine at the stop, and the log reader."""

    engine: Any
    reader: LogReader


def scan_events(
    data: DataDir,
    consumers: Sequence[Consumer],
    progress: Progress | None = None,
    stop: Stop | None = None,
) -> Scan:
    """Replay the log up to ``stop`` once and feed every consumer its events."""
    engine = engine_class("compiled")(data.market)
    union = set().union(*(c.kinds for c in consumers))
    wanted = np.array(sorted(union), dtype=np.int64)
    # Each consumer sees only its own kinds (a consumer wanting them all takes the union).
    own = [
        None if c.kinds == union else np.array(sorted(c.kinds), dtype=np.int64) for c in consumers
    ]
    reader = LogReader(data, 1, progress)
    for applied in replay_batches(from_genesis(reader), batch_applier(engine), stop):
        rows = applied.events.view(np.int64).reshape(-1, r.EVENT_FIELDS)
        picked = rows[np.isin(rows[:, r.E_KIND], wanted)]
        if not len(picked):
            continue
        for consumer, kinds in zip(consumers, own):
            mine = picked if kinds is None else picked[np.isin(picked[:, r.E_KIND], kinds)]
            if len(mine):
                consumer.take(mine)
    return Scan(engine, reader)


# -- trades ------------------------------------------------------------------------------------


class TradeRow(msgspec.Struct, frozen=True):
    """One trade of any mode, as exported (``value_fen`` = price x quantity).

    The taker/maker columns, per ``mode``: ``listing`` - the incoming (taker) and the resting
    (maker) order; ``block`` - the accepting account (taker, no order: id 0) and the offer
    (maker: offer id and account); ``auction`` - the bid (taker: bid id and bidder) and the
    auction (maker: auction id and seller).  ``aggressor_side`` is the taker's side.
    ``trading_date`` is the session the trade counts in: an auction cleared while its
    instrument's session is closed counts in the next session (0 until that session opens).
    """

    seq: int
    ts_ns: int
    trade_id: int
    trading_date: int
    instrument: str
    price_ticks: int
    qty_t: int
    value_fen: int
    aggressor_side: str
    taker_order_id: int
    taker_account: int
    maker_order_id: int
    maker_account: int
    mode: str = "listing"
    """``listing`` (hit-quote orders included), ``block`` or ``auction``."""
    buyer_account: int = 0
    seller_account: int = 0


def trade_row(row: Row, trading_date: int, symbol: str) -> TradeRow:
    """One trade record of any mode (:data:`TRADE_KINDS`) as a :class:`TradeRow`."""
    kind, price, qty = row[r.E_KIND], row[r.E_PRICE], row[r.E_QTY]
    head = (row[r.E_SEQ], row[r.E_TS])
    if kind == r.EV_TRADE:
        side = s.Side(row[r.E_SIDE])
        taker, maker = row[r.E_ACCOUNT], row[r.TRADE_EXECUTED.maker_account]
        buyer, seller = (taker, maker) if side == s.Side.BUY else (maker, taker)
        return TradeRow(
            *head,
            row[r.TRADE_EXECUTED.trade_id],
            trading_date,
            symbol,
            price,
            qty,
            price * qty,
            side.name,
            row[r.E_ORDER_ID],
            taker,
            row[r.TRADE_EXECUTED.maker_order_id],
            maker,
            "listing",
            buyer,
            seller,
        )
    if kind == r.EV_BLOCK_TRADE:
        offer_side = s.Side(row[r.E_SIDE])
        side = s.Side.SELL if offer_side == s.Side.BUY else s.Side.BUY
        acceptor, offerer = row[r.E_ACCOUNT], row[r.BLOCK_TRADE_EXECUTED.offer_account]
        buyer, seller = (acceptor, offerer) if side == s.Side.BUY else (offerer, acceptor)
        return TradeRow(
            *head,
            row[r.BLOCK_TRADE_EXECUTED.trade_id],
            trading_date,
            symbol,
            price,
            qty,
            price * qty,
            side.name,
            0,
            acceptor,
            row[r.E_ORDER_ID],
            offerer,
            "block",
            buyer,
            seller,
        )
    buyer, seller = row[r.E_ACCOUNT], row[r.AUCTION_TRADE.seller_account]
    return TradeRow(
        *head,
        row[r.AUCTION_TRADE.trade_id],
        trading_date,
        symbol,
        price,
        qty,
        price * qty,
        s.Side.BUY.name,
        row[r.E_ORDER_ID],
        buyer,
        row[r.AUCTION_TRADE.auction_id],
        seller,
        "auction",
        buyer,
        seller,
    )


class TradesReport(Consumer):
    """Every trade of every mode (of one instrument, or of all), with the trading date of the
    session it counts in, in log order."""

    kinds = TRADE_KINDS | {r.EV_SESSION_OPENED, r.EV_SESSION_CLOSED}

    def __init__(self, data: DataDir, instrument: int | None = None) -> None:
        self.codec, self.instrument = data.codec, instrument
        n = len(data.market.instruments)
        self.dates = [0] * n
        self.open = [False] * n
        self.waiting: list[list[int]] = [[] for _ in range(n)]
        """Per instrument: positions in :attr:`trades` of auction fills made while its session
        was closed; they take the date of the next session."""
        self.trades: list[TradeRow] = []

    def take(self, rows: np.ndarray) -> None:
        """See :meth:`Consumer.take`."""
        if self.instrument is not None:
            rows = rows[rows[:, r.E_INSTRUMENT] == self.instrument]
        symbol = self.codec.symbol
        for row in rows.tolist():
            kind, index = row[r.E_KIND], row[r.E_INSTRUMENT]
            if kind == r.EV_SESSION_OPENED:
                self._opened(index, row[r.SESSION_OPENED.trading_date])
            elif kind == r.EV_SESSION_CLOSED:
                self.open[index] = False
            elif self.open[index]:
                self.trades.append(trade_row(row, self.dates[index], symbol(index)))
            else:
                self.waiting[index].append(len(self.trades))
                self.trades.append(trade_row(row, 0, symbol(index)))

    def _opened(self, index: int, date: int) -> None:
        self.dates[index], self.open[index] = date, True
        for at in self.waiting[index]:
            self.trades[at] = msgspec.structs.replace(self.trades[at], trading_date=date)
        self.waiting[index].clear()


# -- market: one bar per trading day and instrument ----------------------------------------------


class DayBar(msgspec.Struct, frozen=True):
    """One instrument's trading day.  ``close`` is the volume-weighted close of the listing
    trades that sets the next day's price band; ``final`` is false for a session still open at
    the end of the log (its figures so far, the close computed by the same rule).

    ``volume_t``, ``value_fen`` and ``trades`` are the listing mode's (hit-quote orders
    included), which alone make the open, high, low and close; block trades and one-way
    auction fills are counted apart (``docs/TRADING_MODES.md``).
    """

    trading_date: int
    instrument: str
    previous_close_ticks: int
    open_ticks: int
    high_ticks: int
    low_ticks: int
    close_ticks: int
    change_ticks: int
    volume_t: int
    value_fen: int
    trades: int
    final: bool
    block_volume_t: int = 0
    block_value_fen: int = 0
    block_trades: int = 0
    auction_volume_t: int = 0
    auction_value_fen: int = 0
    auction_trades: int = 0
    """Fills (one per accepted bid).  An auction cleared while the session is closed counts in
    the next session, as the engine's ``SessionModeVolumes`` count it."""

    @property
    def total_volume_t(self) -> int:
        return self.volume_t + self.block_volume_t + self.auction_volume_t

    @property
    def total_value_fen(self) -> int:
        return self.value_fen + self.block_value_fen + self.auction_value_fen


class CompositeDay(msgspec.Struct, frozen=True):
    """The composite price of a trading day: the mean of the allowance vintages' closes."""

    trading_date: int
    price_ticks: int
    vintages: int
    change_ticks: int | None
    """Against the previous composite in the log (None for the first)."""


class MarketHistory(msgspec.Struct, frozen=True):
    """The ``market`` report: daily bars by date and instrument, and the composite prices."""

    days: list[DayBar]
    composite: list[CompositeDay]


class _Volume:
    """Volume, value and trade count of one trading mode."""

    __slots__ = ("trades", "value", "volume")

    def __init__(self) -> None:
        self.volume = self.value = self.trades = 0

    def add(self, price: int, qty: int) -> None:
        self.volume += qty
        self.value += price * qty
        self.trades += 1

    def figures(self) -> tuple[int, int, int]:
        return (self.volume, self.value, self.trades)


class _Day:
    """Running figures of an open session (from its ``SessionOpened`` and its trades)."""

    __slots__ = (
        "auction",
        "block",
        "date",
        "high",
        "low",
        "open",
        "reference",
        "trades",
        "value",
        "volume",
    )

    def __init__(self, date: int, reference: int, auction: _Volume) -> None:
        self.date, self.reference = date, reference
        self.open = self.high = self.low = self.volume = self.value = self.trades = 0
        self.block, self.auction = _Volume(), auction

    def add(self, prices: np.ndarray, quantities: np.ndarray) -> None:
        if not self.trades:
            self.open = self.high = self.low = int(prices[0])
        self.high, self.low = max(self.high, int(prices.max())), min(self.low, int(prices.min()))
        self.volume += int(quantities.sum())
        self.value += int((prices * quantities).sum())
        self.trades += len(prices)


class MarketReport(Consumer):
    """Open, high, low, close, volume and value per trading day and instrument, the volume of
    each trading mode, and the composite price of each day.

    A closed day's figures are the engine's own: ``SessionClosed`` (listing) and the
    ``SessionModeVolumes`` that follows it (block, auction).  A day still open is summed from
    its trades.  Listing trades between session events are summed with array operations; block
    trades and auction fills are few and taken one by one.
    """

    kinds = TRADE_KINDS | {
        r.EV_SESSION_OPENED,
        r.EV_SESSION_CLOSED,
        r.EV_MODE_VOLUMES,
        r.EV_COMPOSITE,
    }

    def __init__(self, data: DataDir, instrument: int | None = None) -> None:
        self.codec, self.instrument = data.codec, instrument
        self.ticks = [ins.tick_ticks for ins in data.market.instruments]
        self.days: dict[int, _Day] = {}
        self.between: dict[int, _Volume] = {}
        """Auction fills while an instrument's session is closed: they count in the next."""
        self.bars: list[DayBar] = []
        self.last_bar: dict[int, int] = {}
        """Instrument -> position in :attr:`bars` of its last closed day."""
        self.composite: list[CompositeDay] = []

    def take(self, rows: np.ndarray) -> None:
        """See :meth:`Consumer.take`."""
        if self.instrument is not None:
            keep = (rows[:, r.E_INSTRUMENT] == self.instrument) | (
                rows[:, r.E_KIND] == r.EV_COMPOSITE
            )
            rows = rows[keep]
        is_other = rows[:, r.E_KIND] != r.EV_TRADE
        start = 0
        for at in np.flatnonzero(is_other).tolist() + [len(rows)]:
            self._trades(rows[start:at])
            if at < len(rows):
                self._event(rows[at].tolist())
            start = at + 1

    def _trades(self, trades: np.ndarray) -> None:
        if not len(trades):
            return
        instruments = trades[:, r.E_INSTRUMENT]
        for index in np.unique(instruments).tolist():
            mine = trades[instruments == index]
            day = self.days.get(index)
            if day is not None:
                day.add(mine[:, r.E_PRICE], mine[:, r.E_QTY])

    def _event(self, row: Row) -> None:
        kind, index = row[r.E_KIND], row[r.E_INSTRUMENT]
        if kind == r.EV_SESSION_OPENED:
            carried = self.between.pop(index, None) or _Volume()
            self.days[index] = _Day(row[r.SESSION_OPENED.trading_date], row[r.E_PRICE], carried)
        elif kind == r.EV_SESSION_CLOSED:
            self._closed(row)
        elif kind == r.EV_MODE_VOLUMES:
            self._mode_volumes(row)
        elif kind == r.EV_COMPOSITE:
            previous = self.composite[-1].price_ticks if self.composite else None
            price = row[r.E_PRICE]
            self.composite.append(
                CompositeDay(
                    row[r.COMPOSITE_PRICE.trading_date],
                    price,
                    row[r.COMPOSITE_PRICE.vintages],
                    None if previous is None else price - previous,
                )
            )
        else:
            day = self.days.get(index)
            if kind == r.EV_BLOCK_TRADE:
                if day is not None:
                    day.block.add(row[r.E_PRICE], row[r.E_QTY])
            elif day is not None:
                day.auction.add(row[r.E_PRICE], row[r.E_QTY])
            else:
                self.between.setdefault(index, _Volume()).add(row[r.E_PRICE], row[r.E_QTY])

    def _closed(self, row: Row) -> None:
        index = row[r.E_INSTRUMENT]
        day = self.days.pop(index, None)
        previous = day.reference if day is not None else row[r.SESSION_CLOSED.open_ticks]
        modes = (day.block.figures() + day.auction.figures()) if day is not None else (0,) * 6
        close = row[r.E_PRICE]
        self.last_bar[index] = len(self.bars)
        self.bars.append(
            DayBar(
                row[r.SESSION_CLOSED.trading_date],
                self.codec.symbol(index),
                previous,
                row[r.SESSION_CLOSED.open_ticks],
                row[r.SESSION_CLOSED.high_ticks],
                row[r.SESSION_CLOSED.low_ticks],
                close,
                close - previous,
                row[r.E_QTY],
                row[r.SESSION_CLOSED.value_fen],
                row[r.SESSION_CLOSED.trade_count],
                True,
                *modes,
            )
        )

    def _mode_volumes(self, row: Row) -> None:
        """The engine's block and auction figures of the day it just closed."""
        at = self.last_bar.get(row[r.E_INSTRUMENT])
        if at is None or self.bars[at].trading_date != row[r.SESSION_MODE_VOLUMES.trading_date]:
            return
        self.bars[at] = msgspec.structs.replace(
            self.bars[at],
            block_volume_t=row[r.E_QTY],
            block_value_fen=row[r.SESSION_MODE_VOLUMES.block_value_fen],
            block_trades=row[r.SESSION_MODE_VOLUMES.block_trades],
            auction_volume_t=row[r.SESSION_MODE_VOLUMES.auction_volume_t],
            auction_value_fen=row[r.SESSION_MODE_VOLUMES.auction_value_fen],
            auction_trades=row[r.SESSION_MODE_VOLUMES.auction_trades],
        )

    def result(self) -> MarketHistory:
        """Closed days, then the sessions still open, by trading date and instrument; the
        composite price of every day that published one."""
        bars = list(self.bars)
        for index, day in self.days.items():
            bars.append(self._unfinished(index, day))
        position = {symbol: i for i, symbol in enumerate(self.codec.symbols)}
        bars.sort(key=lambda bar: (bar.trading_date, position[bar.instrument]))
        return MarketHistory(bars, list(self.composite))

    def _unfinished(self, index: int, day: _Day) -> DayBar:
        if day.trades:
            close = vwap_close(day.value, day.volume, self.ticks[index])
            prices = (day.open, day.high, day.low, close)
        else:
            prices = (day.reference,) * 4
        return DayBar(
            day.date,
            self.codec.symbol(index),
            day.reference,
            *prices,
            prices[3] - day.reference,
            day.volume,
            day.value,
            day.trades,
            False,
            *day.block.figures(),
            *day.auction.figures(),
        )


def vwap_close(value_fen: int, volume_t: int, tick_ticks: int) -> int:
    """The closing price rule of ``docs/MATCHING.md``: the volume-weighted average price,
    rounded half up to the tick, in integers."""
    price = (value_fen + volume_t // 2) // volume_t
    return ((price + tick_ticks // 2) // tick_ticks) * tick_ticks


# -- statement: one account's events and what they moved -----------------------------------------


class StatementLine(msgspec.Struct, frozen=True):
    """One event that concerns the account, what it moved, and the running totals after it."""

    seq: int
    ts_ns: int
    event: str
    role: str
    instrument: str
    qty_change_t: int
    cash_change_fen: int
    """Net of fees."""
    fee_fen: int
    """Fee paid (collected, for the fee account) within ``cash_change_fen``."""
    net_t: int
    """The account's net tonnes of ``instrument`` moved since the log began, after this line."""
    net_cash_fen: int
    """Net fen moved since the log began, after this line."""
    detail: s.Event


class Flow(msgspec.Struct, frozen=True):
    """One instrument in a statement: net tonnes moved by every event, and the trades."""

    instrument: str
    net_t: int
    bought_t: int
    sold_t: int
    paid_fen: int
    """Value of the purchases (before fees)."""
    received_fen: int
    """Value of the sales (before fees)."""
    fees_fen: int
    """Fees the account paid on its trades of this instrument."""
    block_t: int = 0
    """Of ``bought_t + sold_t``: tonnes traded in block trades."""
    auction_t: int = 0
    """Of ``bought_t + sold_t``: tonnes bought or sold in one-way auctions."""


class Statement(msgspec.Struct, frozen=True):
    """One account's events in a period, what they moved, and its balances at the end."""

    account: int
    from_ts_ns: int | None
    to_ts_ns: int | None
    opening_net_cash_fen: int
    """Net fen moved before ``from_ts_ns`` (the statement's opening balance)."""
    lines: list[StatementLine]
    flows: list[Flow]
    """Per instrument, over the whole log up to ``to_ts_ns``."""
    net_cash_fen: int
    events_by_kind: dict[str, int]
    balances: s.AccountStatus | None = None
    """The account's balances at the end of the period (registry markets), fees included."""


class StatementReport(Consumer):
    """Every event that names ``account`` (in any role), with the movements it caused.

    Lines are kept for events in ``[from_ts_ns, to_ts_ns)``; the running totals count every
    event before ``to_ts_ns``, so the first line continues from the opening balance.
    """

    kinds = frozenset(ACCOUNT_ROLES)

    def __init__(
        self,
        data: DataDir,
        account: int,
        from_ts_ns: int | None = None,
        to_ts_ns: int | None = None,
    ) -> None:
        self.codec, self.account = data.codec, account
        self.from_ts_ns, self.to_ts_ns = from_ts_ns, to_ts_ns
        self.fees = Fees.of(data.market)
        self.collects_fees = data.market.registry and account == data.market.fee_account
        n = len(data.market.instruments)
        self.net, self.bought, self.sold = [0] * n, [0] * n, [0] * n
        self.paid_fen, self.received_fen, self.fees_fen = [0] * n, [0] * n, [0] * n
        self.block_t, self.auction_t = [0] * n, [0] * n
        self.cash = self.opening_cash = 0
        self.lines: list[StatementLine] = []
        self.counts: dict[str, int] = {}

    def take(self, rows: np.ndarray) -> None:
        """See :meth:`Consumer.take`."""
        kinds = rows[:, r.E_KIND]
        mask = np.zeros(len(rows), dtype=bool)
        for kind, roles in ACCOUNT_ROLES.items():
            of_kind = kinds == kind
            if kind in ACCOUNT_COMMANDS:
                of_kind &= np.isin(rows[:, _COMMAND], ACCOUNT_COMMANDS[kind])
            for column, _ in roles:
                mask |= of_kind & (rows[:, column] == self.account)
        if self.collects_fees:
            mask |= np.isin(kinds, _TRADE_KIND_ARRAY)
        for row in rows[mask].tolist():
            if self.to_ts_ns is not None and row[r.E_TS] >= self.to_ts_ns:
                return
            for role in self._roles(row):
                self._line(row, role)

    def _roles(self, row: Row) -> list[str]:
        kind = row[r.E_KIND]
        roles = []
        if kind not in ACCOUNT_COMMANDS or row[_COMMAND] in ACCOUNT_COMMANDS[kind]:
            roles = [role for column, role in ACCOUNT_ROLES[kind] if row[column] == self.account]
        if self.collects_fees and kind in TRADE_KINDS:
            roles.append("fee")
        return roles

    def _line(self, row: Row, role: str) -> None:
        kind, index = row[r.E_KIND], row[r.E_INSTRUMENT]
        qty, cash, fee = MOVEMENTS.get(kind, _no_movement)(row, role, self.fees)
        listed = 0 <= index < len(self.net)
        if qty and listed:
            self.net[index] += qty
            if kind in TRADE_KINDS:
                self._traded(index, qty, cash + fee, fee)
                if kind == r.EV_BLOCK_TRADE:
                    self.block_t[index] += abs(qty)
                elif kind == r.EV_AUCTION_TRADE:
                    self.auction_t[index] += abs(qty)
        self.cash += cash
        if self.from_ts_ns is not None and row[r.E_TS] < self.from_ts_ns:
            self.opening_cash = self.cash
            return
        event = self.codec.event(row)
        name = type(event).__name__
        instrument = getattr(event, "instrument", "")
        self.counts[name] = self.counts.get(name, 0) + 1
        self.lines.append(
            StatementLine(
                row[r.E_SEQ],
                row[r.E_TS],
                name,
                role,
                instrument,
                qty,
                cash,
                fee,
                self.net[index] if instrument and listed else 0,
                self.cash,
                event,
            )
        )

    def _traded(self, index: int, qty: int, value: int, fee: int) -> None:
        """``value``: the trade's cash before the fee (negative for a purchase)."""
        self.fees_fen[index] += fee
        if qty > 0:
            self.bought[index] += qty
            self.paid_fen[index] -= value
        else:
            self.sold[index] -= qty
            self.received_fen[index] += value

    def result(self, balances: s.AccountStatus | None = None) -> Statement:
        """The statement; ``balances``: the engine's view of the account at the period's end."""
        flows = [
            Flow(
                symbol,
                self.net[i],
                self.bought[i],
                self.sold[i],
                self.paid_fen[i],
                self.received_fen[i],
                self.fees_fen[i],
                self.block_t[i],
                self.auction_t[i],
            )
            for i, symbol in enumerate(self.codec.symbols)
            if self.net[i] or self.bought[i] or self.sold[i]
        ]
        return Statement(
            self.account,
            self.from_ts_ns,
            self.to_ts_ns,
            self.opening_cash,
            self.lines,
            flows,
            self.cash,
            dict(sorted(self.counts.items())),
            balances,
        )


def _no_movement(row: Row, role: str, fees: Fees) -> Movement:
    return (0, 0, 0)

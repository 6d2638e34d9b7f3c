"""The reference order book: one instrument's two sides, price levels and resting orders.

Theory of operation
-------------------
Each side is a ``SortedDict`` from price to a :class:`Level`, whose orders sit in an
``OrderedDict`` in arrival order — price-time priority by construction, obviously correct
rather than fast.  The book also carries its instrument's session state, price band, day
statistics and trading-phase modes, so the matching rules in ``engine.py`` read one object.
``engine/core/compiled/book.py`` is the compiled counterpart.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from sortedcontainers import SortedDict

from engine.core import schema as s
from engine.core.market import Instrument, band_edges

BUY, SELL = s.Side.BUY, s.Side.SELL
OPEN, CLOSED = s.SessionState.OPEN, s.SessionState.CLOSED


class Order:
    """One order while the engine handles it; ``qty_t`` is its open quantity."""

    __slots__ = (
        "order_id",
        "account",
        "instrument",
        "side",
        "price_ticks",
        "qty_t",
        "order_type",
        "tif",
        "stp",
        "lock_price_ticks",
    )

    def __init__(
        self,
        order_id: int,
        account: int,
        instrument: int,
        side: s.Side,
        price_ticks: int,
        qty_t: int,
        order_type: s.OrderType,
        tif: s.TimeInForce,
        stp: s.StpMode,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.instrument = instrument
        self.side = side
        self.price_ticks = price_ticks
        self.qty_t = qty_t
        self.order_type = order_type
        self.tif = tif
        self.stp = stp
        self.lock_price_ticks = price_ticks
        """Price its cash need is computed at (registry): its limit; a market buy's upper band."""


class Level:
    """The orders resting at one price of one side, oldest first."""

    __slots__ = ("price_ticks", "total_t", "orders")

    def __init__(self, price_ticks: int) -> None:
        self.price_ticks = price_ticks
        self.total_t = 0
        self.orders: OrderedDict[int, Order] = OrderedDict()

    def head(self) -> Order:
        return next(iter(self.orders.values()))


class Book:
    """One instrument: session fields, trading phase, day statistics and both sides of its
    order book."""

    def __init__(
        self, index: int, spec: Instrument, max_price_ticks: int, phase_masks: list[int]
    ) -> None:
        self.index = index
        self.spec = spec
        self.symbol = spec.symbol
        self.max_price_ticks = max_price_ticks
        self.phase_masks = phase_masks
        """``TradingMode`` bits each phase of the instrument's schedule allows."""
        self.mode_bits = spec.mode_bits
        """``TradingMode`` bits the instrument offers."""
        self.phase = 0
        self.state = CLOSED
        self.trading_date = 0
        self.set_reference(spec.reference_price_ticks)
        self.reset_day()
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def set_reference(self, reference_ticks: int) -> None:
        """Centre the bands on ``reference_ticks`` (at start-up and at every close)."""
        self.reference_ticks = reference_ticks
        self.lower_ticks, self.upper_ticks = self.band(self.spec.band_bps)
        self.set_block_band()

    def set_block_band(self) -> None:
        """The block band of docs/TRADING_MODES.md (also at restore, from the reference)."""
        self.block_lower_ticks, self.block_upper_ticks = self.band(self.spec.block_band_bps)

    def band(self, band_bps: int) -> tuple[int, int]:
        """``band_edges`` around the reference, the upper edge capped at the price ladder."""
        tick = self.spec.tick_ticks
        lower, upper = band_edges(self.reference_ticks, band_bps, tick)
        # The compiled price ladder ends at max_price_ticks: the band may not reach beyond it.
        ceiling = self.max_price_ticks - self.max_price_ticks % tick
        return lower, min(upper, ceiling)

    def phase_modes(self) -> int:
        """The instrument's modes that its current phase allows (whatever the session state)."""
        return self.mode_bits & self.phase_masks[self.phase]

    def effective_modes(self) -> int:
        """The modes usable now: the phase's modes while the session is ``OPEN``, else none."""
        return self.phase_modes() if self.state == OPEN else 0

    def reset_day(self) -> None:
        self.day_open = self.day_high = self.day_low = 0
        self.day_volume = self.day_value = self.day_trades = 0

    def record_trade(self, price_ticks: int, qty_t: int) -> None:
        if self.day_trades == 0:
            self.day_open = self.day_high = self.day_low = price_ticks
        self.day_high = max(self.day_high, price_ticks)
        self.day_low = min(self.day_low, price_ticks)
        self.day_volume += qty_t
        self.day_value += price_ticks * qty_t
        self.day_trades += 1

    def side(self, side: int) -> SortedDict:
        return self.bids if side == BUY else self.asks

    def best_level(self, side: int) -> Level | None:
        levels = self.side(side)
        if not levels:
            return None
        return levels.peekitem(-1 if side == BUY else 0)[1]

    def best_price(self, side: int) -> int | None:
        level = self.best_level(side)
        return None if level is None else level.price_ticks

    def levels(self, side: int) -> Iterator[Level]:
        """The levels of one side, best price first."""
        levels = self.side(side)
        prices = reversed(levels.keys()) if side == BUY else iter(levels.keys())
        return (levels[price] for price in list(prices))

    def crosses(self, side: int, price_ticks: int) -> bool:
        """Would an order of ``side`` at ``price_ticks`` trade with the opposite best?"""
        best = self.best_price(SELL if side == BUY else BUY)
        if best is None:
            return False
        return price_ticks >= best if side == BUY else price_ticks <= best

    def orders(self) -> Iterator[Order]:
        for levels in (self.bids, self.asks):
            for level in levels.values():
                yield from level.orders.values()


def within(side: int, limit_ticks: int, price_ticks: int) -> bool:
    """Is a resting price acceptable to a taker of ``side`` with limit ``limit_ticks``?"""
    return price_ticks <= limit_ticks if side == BUY else price_ticks >= limit_ticks

"""The reference matching engine: docs/MATCHING.md and docs/TRADING_MODES.md in plain,
obviously correct Python.

Theory of operation
-------------------
Each instrument has a :class:`Book`: its session fields (state, trading date, reference
price, band, the session's statistics) and two ``SortedDict``s, ``bids`` and ``asks``, mapping
a price to a :class:`Level`.  A level holds its orders in an ``OrderedDict`` (order id ->
order) in time priority - oldest first, O(1) removal from anywhere - and the sum of their open
quantities.  The best bid is the highest key of ``bids``, the best ask the lowest of ``asks``.
A level exists exactly while it holds an order.  Every resting order is also reachable by id
(``_orders``) and by account (``_by_account``, for mass cancels).

``apply`` dispatches one typed command to its handler, which first runs the documented
validation checks in their fixed order (the first failure becomes the rejection) and only then
changes state, appending events to an :class:`_Out` that stamps them with the command's
``seq`` and ``ts_ns``.  Matching (:meth:`ReferenceEngine._match`) repeatedly takes the head
order of the opposite best level while its price is within the taker's limit, so a limit order
never trades beyond its own price and every trade prints at the maker's price.  Speed is not a
goal here: clarity is, because this module is the executable specification the compiled
engine is tested against (same events, same state hash for every command sequence).

Readings of docs/MATCHING.md where it is silent or terse (the compiled engine must agree):

* The events of an order accepted as a market order carry price 0 (as ``OrderAccepted``
  does), including its ``OrderCancelled`` (IOC remainder, FOK, self-trade prevention).
* ``BOOK_FULL`` applies to every submit, even IOC/FOK/market orders that could never rest.
* A modify is checked against the current band even at an unchanged price, so a GTC order
  left outside the band by a close can be cancelled but not modified.
* The upper band edge never exceeds ``capacity.max_price_ticks`` (rounded down to the tick):
  the compiled price ladder cannot hold a higher price.
* Events of a refused command name an unlisted instrument "?", as the record view does
  (index -2; for halt/resume, whose record cannot say "every instrument", also ""): every
  event then round-trips exactly through ``Codec.encode_events`` / ``decode_events``, and the
  typed events equal the decoded record events of the same commands.
* Per instrument, the state hash lists the session fields, then that instrument's bids, then
  its asks.

Trading modes (docs/TRADING_MODES.md): each book also holds its trading phase (an index into
its schedule: 0 at ``OpenSession``, then moved by ``SetTradingPhase``); ``Book.effective_modes``
gates the order types (checks 6 and 16 of a submit, ``MODE_NOT_IN_PHASE`` of a modify) and
hit-quote orders trade with their named quote in :meth:`ReferenceEngine._hit_quote`.  Block
offers, auctions and the session's mode volumes live in
:class:`~engine.core.reference.modes.TradingModes`, which shares the books, the ledger and the one
trade-id sequence.  Readings where that specification is silent:

* "Block was effective" for ``SetTradingPhase`` compares the instrument's modes in the old and
  the new phase whatever the session state: a halted instrument's block offers also end with
  the block phase, so no offer ever outlives it.
* A closed instrument keeps its last phase (in the state hash and ``status``) until it opens.
* Every event of a hit-quote order carries the quote's price, its ``FOK_NOT_FILLABLE`` too.

With ``market.registry`` on, the engine is also the registry of docs/LEDGER.md: an
:class:`~engine.core.reference.ledger.Ledger` holds accounts, holdings and locks, and the matching
code calls it where an order is checked (after ``BOOK_FULL``, before ``WOULD_TRADE``), accepted
(lock), filled (settle), leaves with open quantity (unlock) or modified, and where a session
opens (T+1).  Registry commands go to the ledger whole.  With the registry off those calls are
skipped and the engine is the pure matching engine.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable

import numpy as np

from engine.core import records as rec
from engine.core import schema as s
from engine.core import snapshot as snap
from engine.core.market import MarketDefinition
from engine.core.reference.book import Book, Level, Order, within
from engine.core.reference.ledger import Ledger, OpenOrder
from engine.core.reference.modes import TradingModes
from engine.core.schema import CancelReason as CR
from engine.core.schema import RejectReason as RR

BUY, SELL = s.Side.BUY, s.Side.SELL
OPEN, CLOSED, HALTED = s.SessionState.OPEN, s.SessionState.CLOSED, s.SessionState.HALTED
_SIDES = frozenset(int(v) for v in s.Side)
_ORDER_TYPES = frozenset(int(v) for v in s.OrderType)
_TIFS = frozenset(int(v) for v in s.TimeInForce)
_STP_MODES = frozenset(int(v) for v in s.StpMode)
_RESTING_TIFS = (s.TimeInForce.DAY, s.TimeInForce.GTC)
_IMMEDIATE_TIFS = (s.TimeInForce.IOC, s.TimeInForce.FOK)
# plain ints, not IntFlag members: flag arithmetic on enum members costs a Python call each
CONTINUOUS, HIT_QUOTE = int(s.TradingMode.CONTINUOUS), int(s.TradingMode.HIT_QUOTE)
BLOCK = int(s.TradingMode.BLOCK)
_MODES_NEEDED = {
    s.OrderType.LIMIT: CONTINUOUS | HIT_QUOTE,  # quotes that rest
    s.OrderType.POST_ONLY: CONTINUOUS | HIT_QUOTE,
    s.OrderType.MARKET: CONTINUOUS,
    s.OrderType.HIT_QUOTE: HIT_QUOTE,
}
"""An order type needs one of these ``TradingMode`` bits (docs/TRADING_MODES.md)."""


class _Out:
    """The events of one command, stamped with its ``seq`` and ``ts_ns``."""

    def __init__(self, seq: int, ts_ns: int, symbols: list[str]) -> None:
        self.seq, self.ts_ns, self.symbols = seq, ts_ns, symbols
        self.events: list[s.Event] = []

    def cancelled(self, order: Order, reason: CR) -> None:
        self.events.append(
            s.OrderCancelled(
                self.seq,
                self.ts_ns,
                order.order_id,
                order.account,
                self.symbols[order.instrument],
                order.side,
                order.price_ticks,
                order.qty_t,
                reason,
            )
        )

    def command_rejected(self, command: object, instrument: str, reason: RR) -> None:
        tag = type(command).__struct_config__.tag  # type: ignore[attr-defined]
        self.events.append(s.CommandRejected(self.seq, self.ts_ns, tag, instrument, reason))


class ReferenceEngine:
    """Plain-Python implementation of docs/MATCHING.md (the executable specification).

    Parameters
    ----------
    market : MarketDefinition
        Instruments, their trading parameters and the engine's capacities.
    """

    def __init__(self, market: MarketDefinition) -> None:
        self.market = market
        self.codec = rec.Codec(market)
        self._symbols = market.symbols
        max_price = market.capacity.max_price_ticks
        self._books = [
            Book(i, ins, max_price, market.phase_masks(i))
            for i, ins in enumerate(market.instruments)
        ]
        self._by_symbol = {book.symbol: book for book in self._books}
        self._orders: dict[int, Order] = {}
        self._by_account: dict[int, set[int]] = {}
        self._next_trade_id = 1
        self._registry = market.registry
        self._ledger = Ledger(market)
        self._modes = TradingModes(self)
        self._handlers: dict[type, Callable[..., None]] = {
            s.SubmitOrder: self._submit,
            s.CancelOrder: self._cancel,
            s.ModifyOrder: self._modify,
            s.MassCancel: self._mass_cancel,
            s.OpenSession: self._open_session,
            s.CloseSession: self._close_session,
            s.HaltInstrument: self._halt,
            s.ResumeInstrument: self._resume,
            s.SetTradingPhase: self._set_phase,
            **self._modes.handlers,
        }
        for command_type in s.REGISTRY_COMMAND_TYPES:
            self._handlers[command_type] = self._registry_command

    # -- commands ----------------------------------------------------------------------------
    def apply(self, command: s.Command) -> list[s.Event]:
        """Apply one typed command; return the events it produced, in order."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a command: {command!r}")
        out = _Out(command.seq, command.ts_ns, self._symbols)
        handler(command, out)
        return out.events

    def apply_all(self, commands: Iterable[s.Command]) -> list[s.Event]:
        """Apply commands in order; return all their events."""
        events: list[s.Event] = []
        for command in commands:
            events.extend(self.apply(command))
        return events

    def apply_records(self, records: np.ndarray, *, copy: bool = True) -> np.ndarray:
        """Apply a batch of :data:`~engine.core.records.COMMAND_DTYPE` records.

        Returns the events as an :data:`~engine.core.records.EVENT_DTYPE` array, always a
        fresh one (``copy`` is accepted for the ``Engine`` interface; it changes nothing here).
        """
        events: list[s.Event] = []
        for row in records.tolist():
            events.extend(self.apply(self._decode_record(row)))
        return self.codec.encode_events(events)

    def _decode_record(self, row: tuple) -> s.Command:
        """A command record -> typed command.  The codec keeps undefined enum codes (a
        submit's or block offer's side, order type, time in force, STP mode; an announcement's
        floor and clearing rules) as plain ints: the engine must reject them, not crash."""
        return self.codec.decode_command(row)

    # -- submit ------------------------------------------------------------------------------
    def _submit_reject_reason(self, c: s.SubmitOrder, book: Book | None) -> RR:
        """The first failing check of the submit validation (docs/MATCHING.md with the
        additions of docs/TRADING_MODES.md), or ``NONE``."""
        if book is None:
            return RR.UNKNOWN_INSTRUMENT
        if book.state != OPEN:
            return RR.SESSION_CLOSED if book.state == CLOSED else RR.INSTRUMENT_HALTED
        if not self._account_valid(c.account):
            return RR.UNKNOWN_ACCOUNT
        if c.side not in _SIDES or c.order_type not in _ORDER_TYPES or c.stp not in _STP_MODES:
            return RR.INVALID_ORDER_TYPE
        immediate = c.order_type in (s.OrderType.MARKET, s.OrderType.HIT_QUOTE)
        if (
            c.tif not in _TIFS
            or (immediate and c.tif in _RESTING_TIFS)
            or (c.order_type == s.OrderType.POST_ONLY and c.tif in _IMMEDIATE_TIFS)
        ):
            return RR.INVALID_TIME_IN_FORCE
        needed = _MODES_NEEDED[s.OrderType(c.order_type)]
        if not book.mode_bits & needed:
            return RR.MODE_NOT_ALLOWED
        if not book.effective_modes() & needed:
            return RR.MODE_NOT_IN_PHASE
        spec = book.spec
        if not spec.min_qty_t <= c.qty_t <= spec.max_qty_t:
            return RR.INVALID_QUANTITY
        if c.qty_t % spec.lot_t:
            return RR.QUANTITY_OFF_LOT
        if not immediate:  # market and hit-quote orders ignore their price field
            if c.price_ticks <= 0 or c.price_ticks % spec.tick_ticks:
                return RR.PRICE_OFF_TICK
            if not book.lower_ticks <= c.price_ticks <= book.upper_ticks:
                return RR.PRICE_OUT_OF_BAND
        if c.order_id <= 0:
            return RR.INVALID_ORDER_ID
        if c.order_id in self._orders:
            return RR.DUPLICATE_ORDER_ID
        if len(self._orders) >= self.market.capacity.resting_orders:
            return RR.BOOK_FULL
        return self._submit_late_reason(c, book)

    def _submit_late_reason(self, c: s.SubmitOrder, book: Book) -> RR:
        """Steps 14-16: the hit-quote order's quote, the ledger, ``WOULD_TRADE``."""
        if c.order_type == s.OrderType.HIT_QUOTE:
            reason = self._quote_reason(c, book)
            if reason != RR.NONE:
                return reason
            lock_price = self._orders[c.quote_order_id].price_ticks
        elif c.order_type == s.OrderType.MARKET:
            lock_price = book.upper_ticks  # a market buy locks at the upper band (sells: qty)
        else:
            lock_price = c.price_ticks
        if self._registry:  # docs/LEDGER.md checks 12a-12c
            reason = self._ledger.order_reason(c.account, book.index, c.side, c.qty_t, lock_price)
            if reason != RR.NONE:
                return reason
        if self._would_trade(book, c.order_type, c.side, c.price_ticks):
            return RR.WOULD_TRADE
        return RR.NONE

    def _quote_reason(self, c: s.SubmitOrder, book: Book) -> RR:
        """Step 14: may the hit-quote order ``c`` take the quote it names?"""
        quote = self._orders.get(c.quote_order_id)
        if quote is None or quote.instrument != book.index or quote.side == c.side:
            return RR.QUOTE_NOT_FOUND
        if quote.account == c.account:
            return RR.QUOTE_OWN_ORDER
        best = itertools.islice(book.levels(quote.side), book.spec.hit_quote_levels)
        if quote.price_ticks not in [level.price_ticks for level in best]:
            return RR.QUOTE_BEYOND_BEST_LEVELS
        return RR.NONE

    @staticmethod
    def _would_trade(book: Book, order_type: int, side: int, price_ticks: int) -> bool:
        """``WOULD_TRADE``: a post-only order that crosses, or a limit order that crosses while
        continuous trading is not effective (then quotes rest and only hit-quote orders
        trade)."""
        refuses_to_take = order_type == s.OrderType.POST_ONLY or (
            order_type == s.OrderType.LIMIT and not book.effective_modes() & CONTINUOUS
        )
        return refuses_to_take and book.crosses(side, price_ticks)

    def _submit(self, c: s.SubmitOrder, out: _Out) -> None:
        book = self._by_symbol.get(c.instrument)
        reason = self._submit_reject_reason(c, book)
        if reason != RR.NONE:
            out.events.append(
                s.OrderRejected(
                    out.seq,
                    out.ts_ns,
                    c.order_id,
                    c.account,
                    self._echo(c.instrument),
                    int(c.side),
                    c.price_ticks,
                    c.qty_t,
                    reason,
                )
            )
            return
        assert book is not None
        side, order_type = s.Side(c.side), s.OrderType(c.order_type)
        is_market = order_type == s.OrderType.MARKET
        quote = self._orders.get(c.quote_order_id) if order_type == s.OrderType.HIT_QUOTE else None
        if quote is not None:
            price = quote.price_ticks  # a hit-quote order trades at the quote's price
        else:
            price = 0 if is_market else c.price_ticks
        order = Order(
            c.order_id,
            c.account,
            book.index,
            side,
            price,
            c.qty_t,
            order_type,
            s.TimeInForce(c.tif),
            s.StpMode(c.stp),
        )
        out.events.append(
            s.OrderAccepted(
                out.seq,
                out.ts_ns,
                c.order_id,
                c.account,
                book.symbol,
                side,
                order_type,
                order.tif,
                price,
                c.qty_t,
            )
        )
        if quote is not None:
            self._hit_quote(book, order, quote, out)
            return
        if is_market:
            limit = book.upper_ticks if side == BUY else book.lower_ticks
        else:
            limit = price
        if order.tif == s.TimeInForce.FOK and not self._fok_fillable(book, order, limit):
            out.cancelled(order, CR.FOK_NOT_FILLABLE)  # killed before it locked anything
            return
        order.lock_price_ticks = limit
        if self._registry:
            self._ledger.lock(order.account, book.index, side, order.qty_t, limit)
        self._execute(book, order, limit, out)

    def _hit_quote(self, book: Book, order: Order, quote: Order, out: _Out) -> None:
        """Execute an accepted hit-quote order: one trade with ``quote`` at the quote's price
        (no self-trade check: the taker's own quotes were refused), the remainder cancelled."""
        if order.tif == s.TimeInForce.FOK and quote.qty_t < order.qty_t:
            out.cancelled(order, CR.FOK_NOT_FILLABLE)  # killed before it locked anything
            return
        if self._registry:  # lock price: the quote's price (``order.lock_price_ticks``)
            self._ledger.lock(
                order.account, book.index, order.side, order.qty_t, order.lock_price_ticks
            )
        self._trade(book, order, quote, book.side(quote.side)[quote.price_ticks], out)
        if order.qty_t > 0:
            self._unlock(order)
            out.cancelled(order, CR.IOC_REMAINDER)

    def _fok_fillable(self, book: Book, taker: Order, limit_ticks: int) -> bool:
        """Can ``taker`` fill completely now?  Walks the opposite side in priority order."""
        available = 0
        for level in book.levels(SELL if taker.side == BUY else BUY):
            if not within(taker.side, limit_ticks, level.price_ticks):
                return False
            for maker in level.orders.values():
                if maker.account == taker.account:
                    if taker.stp == s.StpMode.CANCEL_RESTING:
                        continue  # it would be cancelled, not traded with
                    return False  # the incoming order would be cancelled here
                available += maker.qty_t
                if available >= taker.qty_t:
                    return True
        return False

    def _execute(self, book: Book, taker: Order, limit_ticks: int, out: _Out) -> None:
        """Steps 3-4 of execution: match, then cancel (IOC/FOK) or rest (DAY/GTC) the rest."""
        if self._match(book, taker, limit_ticks, out) or taker.qty_t == 0:
            return
        if taker.tif in _IMMEDIATE_TIFS:
            self._unlock(taker)
            out.cancelled(taker, CR.IOC_REMAINDER)
        else:
            self._rest(book, taker)

    def _match(self, book: Book, taker: Order, limit_ticks: int, out: _Out) -> bool:
        """Trade ``taker`` against the opposite side; True if self-trade prevention cancelled
        it."""
        maker_side = SELL if taker.side == BUY else BUY
        while taker.qty_t > 0:
            level = book.best_level(maker_side)
            if level is None or not within(taker.side, limit_ticks, level.price_ticks):
                return False
            maker = level.head()
            if maker.account == taker.account:
                if taker.stp != s.StpMode.CANCEL_INCOMING:  # CANCEL_RESTING or CANCEL_BOTH
                    self._remove(book, maker)
                    self._unlock(maker)
                    out.cancelled(maker, CR.SELF_TRADE_PREVENTED)
                if taker.stp == s.StpMode.CANCEL_RESTING:
                    continue
                self._unlock(taker)
                out.cancelled(taker, CR.SELF_TRADE_PREVENTED)
                return True
            self._trade(book, taker, maker, level, out)
        return False

    def _trade(self, book: Book, taker: Order, maker: Order, level: Level, out: _Out) -> None:
        qty = min(taker.qty_t, maker.qty_t)
        price = maker.price_ticks
        if self._registry:  # settles before either order's open quantity shrinks
            buyer, seller = (taker, maker) if taker.side == BUY else (maker, taker)
            self._ledger.settle(
                book.index,
                buyer.account,
                buyer.qty_t,
                buyer.lock_price_ticks,
                seller.account,
                price,
                qty,
            )
        taker.qty_t -= qty
        maker.qty_t -= qty
        level.total_t -= qty
        book.record_trade(price, qty)
        out.events.append(
            s.TradeExecuted(
                out.seq,
                out.ts_ns,
                self._new_trade_id(),
                book.symbol,
                price,
                qty,
                taker.side,
                taker.order_id,
                taker.account,
                maker.order_id,
                maker.account,
                taker.qty_t,
                maker.qty_t,
            )
        )
        if maker.qty_t == 0:
            self._remove(book, maker)

    def _new_trade_id(self) -> int:
        """The next id of the engine's one trade sequence (orders, block trades, auctions)."""
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        return trade_id

    # -- the book ----------------------------------------------------------------------------
    def _rest(self, book: Book, order: Order) -> None:
        """Put ``order`` at the tail of its price level."""
        levels = book.side(order.side)
        level = levels.get(order.price_ticks)
        if level is None:
            level = levels[order.price_ticks] = Level(order.price_ticks)
        level.orders[order.order_id] = order
        level.total_t += order.qty_t
        self._orders[order.order_id] = order
        self._by_account.setdefault(order.account, set()).add(order.order_id)

    def _remove(self, book: Book, order: Order) -> None:
        """Take a resting order out of the book (its open quantity is left untouched)."""
        levels = book.side(order.side)
        level = levels[order.price_ticks]
        del level.orders[order.order_id]
        level.total_t -= order.qty_t
        if not level.orders:
            del levels[order.price_ticks]
        del self._orders[order.order_id]
        ids = self._by_account[order.account]
        ids.discard(order.order_id)
        if not ids:
            del self._by_account[order.account]

    def _unlock(self, order: Order) -> None:
        """Return the whole need of an order leaving with open quantity (registry)."""
        if self._registry:
            self._ledger.unlock(
                order.account, order.instrument, order.side, order.qty_t, order.lock_price_ticks
            )

    def _account_valid(self, account: int) -> bool:
        """May this account trade at all?  With the registry on: has it been opened?"""
        if self._registry:
            return self._ledger.account_open(account)
        return 0 <= account < self.market.capacity.accounts

    def _echo(self, symbol: str, allow_all: bool = False) -> str:
        """The instrument of a refused command as the record view names it: an unlisted symbol
        becomes "?" (index -2), so that every event round-trips through the record view."""
        return self.codec.symbol(self.codec.instrument_index(symbol, allow_all))

    # -- cancel, modify, mass cancel ---------------------------------------------------------
    def _cancel(self, c: s.CancelOrder, out: _Out) -> None:
        order = self._orders.get(c.order_id)
        if order is None or order.account != c.account:
            reason = RR.UNKNOWN_ORDER if order is None else RR.NOT_ORDER_OWNER
            out.events.append(s.CancelRejected(out.seq, out.ts_ns, c.order_id, c.account, reason))
            return
        self._remove(self._books[order.instrument], order)
        self._unlock(order)
        out.cancelled(order, CR.REQUESTED)

    def _modify_reject_reason(self, c: s.ModifyOrder, order: Order | None) -> RR:
        if order is None:
            return RR.UNKNOWN_ORDER
        book = self._books[order.instrument]
        if book.state != OPEN:
            return RR.SESSION_CLOSED if book.state == CLOSED else RR.INSTRUMENT_HALTED
        if order.account != c.account:
            return RR.NOT_ORDER_OWNER
        if not book.effective_modes() & (CONTINUOUS | HIT_QUOTE):
            return RR.MODE_NOT_IN_PHASE  # e.g. the midday break: quotes stay as they are
        spec = book.spec
        if not spec.min_qty_t <= c.qty_t <= spec.max_qty_t:
            return RR.INVALID_QUANTITY
        if c.qty_t % spec.lot_t:
            return RR.QUANTITY_OFF_LOT
        if c.price_ticks <= 0 or c.price_ticks % spec.tick_ticks:
            return RR.PRICE_OFF_TICK
        if not book.lower_ticks <= c.price_ticks <= book.upper_ticks:
            return RR.PRICE_OUT_OF_BAND
        if self._registry:
            reason = self._ledger.modify_reason(
                order.account,
                order.instrument,
                order.side,
                order.qty_t,
                order.lock_price_ticks,
                c.qty_t,
                c.price_ticks,
            )
            if reason != RR.NONE:
                return reason
        if self._would_trade(book, order.order_type, order.side, c.price_ticks):
            return RR.WOULD_TRADE
        return RR.NONE

    def _modify(self, c: s.ModifyOrder, out: _Out) -> None:
        order = self._orders.get(c.order_id)
        reason = self._modify_reject_reason(c, order)
        if reason != RR.NONE:
            out.events.append(
                s.ModifyRejected(
                    out.seq, out.ts_ns, c.order_id, c.account, c.price_ticks, c.qty_t, reason
                )
            )
            return
        assert order is not None
        book = self._books[order.instrument]
        old_price, old_qty = order.price_ticks, order.qty_t
        keeps_priority = c.price_ticks == old_price and c.qty_t <= old_qty
        if self._registry:  # swap the old need for the new one (checked above to fit)
            self._unlock(order)
            self._ledger.lock(order.account, order.instrument, order.side, c.qty_t, c.price_ticks)
        order.lock_price_ticks = c.price_ticks
        if keeps_priority:
            order.qty_t = c.qty_t
            book.side(order.side)[old_price].total_t -= old_qty - c.qty_t
        else:
            self._remove(book, order)
            order.price_ticks, order.qty_t = c.price_ticks, c.qty_t
        out.events.append(
            s.OrderModified(
                out.seq,
                out.ts_ns,
                order.order_id,
                order.account,
                book.symbol,
                order.side,
                order.price_ticks,
                order.qty_t,
                keeps_priority,
                old_price,
                old_qty,
            )
        )
        if not keeps_priority:
            self._execute(book, order, order.price_ticks, out)

    def _mass_cancel(self, c: s.MassCancel, out: _Out) -> None:
        scope: int | None = None  # None: every instrument
        if c.instrument != s.ALL_INSTRUMENTS:
            book = self._by_symbol.get(c.instrument)
            if book is None:
                out.command_rejected(c, self._echo(c.instrument), RR.UNKNOWN_INSTRUMENT)
                return
            scope = book.index
        if not self._account_valid(c.account):
            out.command_rejected(c, c.instrument, RR.UNKNOWN_ACCOUNT)
            return
        ids = sorted(self._by_account.get(c.account, ()))
        victims = [self._orders[i] for i in ids]
        victims = [o for o in victims if scope is None or o.instrument == scope]
        for order in victims:
            self._remove(self._books[order.instrument], order)
            self._unlock(order)
            out.cancelled(order, CR.MASS_CANCEL)
        out.events.append(
            s.MassCancelled(out.seq, out.ts_ns, c.account, c.instrument, len(victims))
        )

    # -- registry ----------------------------------------------------------------------------
    def _registry_command(self, c: s.Command, out: _Out) -> None:
        """Registry commands touch no order: the ledger handles them whole."""
        self._ledger.apply(c, out.seq, out.ts_ns, out.events)

    # -- sessions ----------------------------------------------------------------------------
    def _scope(self, c: s.Command, out: _Out) -> list[Book] | None:
        """The books a session command names; None (after rejecting) if the symbol is unknown."""
        instrument = c.instrument  # type: ignore[union-attr]
        if instrument == s.ALL_INSTRUMENTS:
            return self._books
        book = self._by_symbol.get(instrument)
        if book is None:
            out.command_rejected(c, self._echo(instrument), RR.UNKNOWN_INSTRUMENT)
            return None
        return [book]

    def _open_session(self, c: s.OpenSession, out: _Out) -> None:
        books = self._scope(c, out)
        if books is None:
            return
        first_reason = RR.NONE
        opened = 0
        for book in books:
            if book.state != CLOSED:
                reason = RR.SESSION_ALREADY_OPEN
            elif c.trading_date <= book.trading_date:
                reason = RR.INVALID_TRADING_DATE
            else:
                book.state = OPEN
                book.phase = 0
                book.trading_date = c.trading_date
                book.reset_day()
                if self._registry:  # T+1: earlier sessions' purchases become tradable
                    self._ledger.release_unsettled(book.index)
                out.events.append(
                    s.SessionOpened(
                        out.seq,
                        out.ts_ns,
                        book.symbol,
                        c.trading_date,
                        book.reference_ticks,
                        book.lower_ticks,
                        book.upper_ticks,
                    )
                )
                opened += 1
                continue
            if first_reason == RR.NONE:
                first_reason = reason
        if opened == 0:
            out.command_rejected(c, c.instrument, first_reason)

    def _close_session(self, c: s.CloseSession, out: _Out) -> None:
        books = self._scope(c, out)
        if books is None:
            return
        closing = [book for book in books if book.state != CLOSED]
        if not closing:
            out.command_rejected(c, c.instrument, RR.SESSION_NOT_OPEN)
            return
        for book in closing:
            self._close(book, out)
        self._composite_price(closing, out)

    def _close(self, book: Book, out: _Out) -> None:
        """Expire the book's DAY orders and block offers, publish the day's prices and mode
        volumes, roll the reference."""
        day_orders = sorted(
            (o for o in book.orders() if o.tif == s.TimeInForce.DAY), key=lambda o: o.order_id
        )
        for order in day_orders:
            self._remove(book, order)
            self._unlock(order)
            out.cancelled(order, CR.SESSION_END)
        self._modes.expire_offers(book.index, CR.SESSION_END, out)
        if book.day_trades:
            tick = book.spec.tick_ticks
            vwap = (book.day_value + book.day_volume // 2) // book.day_volume
            close = ((vwap + tick // 2) // tick) * tick
            open_, high, low = book.day_open, book.day_high, book.day_low
        else:
            open_ = high = low = close = book.reference_ticks
        out.events.append(
            s.SessionClosed(
                out.seq,
                out.ts_ns,
                book.symbol,
                book.trading_date,
                open_,
                high,
                low,
                close,
                book.day_volume,
                book.day_value,
                book.day_trades,
            )
        )
        self._modes.report_volumes(book, out)
        book.state = CLOSED
        book.set_reference(close)

    def _composite_price(self, closed: list[Book], out: _Out) -> None:
        """``CompositePrice`` once the command has closed the last open allowance vintage."""
        allowances = [book for book in self._books if book.spec.kind == "allowance"]
        if not any(book.spec.kind == "allowance" for book in closed):
            return
        if any(book.state != CLOSED for book in allowances):
            return
        n = len(allowances)
        price = (sum(book.reference_ticks for book in allowances) + n // 2) // n
        trading_date = max(book.trading_date for book in allowances)
        out.events.append(s.CompositePrice(out.seq, out.ts_ns, trading_date, price, n))

    def _set_phase(self, c: s.SetTradingPhase, out: _Out) -> None:
        books = self._scope(c, out)
        if books is None:
            return
        first_reason = RR.NONE
        changed = 0
        for book in books:
            if book.state == CLOSED:
                reason = RR.SESSION_NOT_OPEN
            elif not 0 <= c.phase < len(book.phase_masks):
                reason = RR.INVALID_PHASE
            else:
                had_block = book.phase_modes() & BLOCK
                book.phase = c.phase
                modes = book.phase_modes()
                if had_block and not modes & BLOCK:  # the block session is over
                    self._modes.expire_offers(book.index, CR.PHASE_END, out)
                out.events.append(
                    s.TradingPhaseChanged(out.seq, out.ts_ns, book.symbol, c.phase, int(modes))
                )
                changed += 1
                continue
            if first_reason == RR.NONE:
                first_reason = reason
        if changed == 0:
            out.command_rejected(c, c.instrument, first_reason)

    def _halt(self, c: s.HaltInstrument, out: _Out) -> None:
        book = self._by_symbol.get(c.instrument)
        if book is None or book.state != OPEN:
            reason = RR.UNKNOWN_INSTRUMENT if book is None else RR.SESSION_NOT_OPEN
            out.command_rejected(c, self._echo(c.instrument), reason)
            return
        book.state = HALTED
        out.events.append(s.InstrumentHalted(out.seq, out.ts_ns, book.symbol))

    def _resume(self, c: s.ResumeInstrument, out: _Out) -> None:
        book = self._by_symbol.get(c.instrument)
        if book is None or book.state != HALTED:
            reason = RR.UNKNOWN_INSTRUMENT if book is None else RR.INSTRUMENT_NOT_HALTED
            out.command_rejected(c, self._echo(c.instrument), reason)
            return
        book.state = OPEN
        out.events.append(s.InstrumentResumed(out.seq, out.ts_ns, book.symbol))

    # -- queries -----------------------------------------------------------------------------
    def _book(self, symbol: str) -> Book:
        book = self._by_symbol.get(symbol)
        if book is None:
            raise KeyError(f"unknown instrument {symbol!r}")
        return book

    def best_bid(self, symbol: str) -> int | None:
        """Highest bid price of ``symbol``, None when there is no bid."""
        return self._book(symbol).best_price(BUY)

    def best_ask(self, symbol: str) -> int | None:
        """Lowest ask price of ``symbol``, None when there is no ask."""
        return self._book(symbol).best_price(SELL)

    def depth_at(self, symbol: str, side: s.Side, price_ticks: int) -> tuple[int, int]:
        """(total open quantity, number of orders) at one price; (0, 0) when empty."""
        level = self._book(symbol).side(side).get(price_ticks)
        return (0, 0) if level is None else (level.total_t, len(level.orders))

    def depth(self, symbol: str, levels: int = 5) -> s.Depth:
        """The best ``levels`` price levels of each side, best first."""
        book = self._book(symbol)

        def top(side: s.Side) -> list[s.DepthLevel]:
            out: list[s.DepthLevel] = []
            for level in book.levels(side):
                if len(out) == levels:
                    break
                out.append(s.DepthLevel(level.price_ticks, level.total_t, len(level.orders)))
            return out

        return s.Depth(symbol, top(BUY), top(SELL))

    def _resting(self, order: Order) -> s.RestingOrder:
        return s.RestingOrder(
            order.order_id,
            order.account,
            self._symbols[order.instrument],
            order.side,
            order.price_ticks,
            order.qty_t,
            order.order_type,
            order.tif,
            order.stp,
        )

    def orders(self, symbol: str, side: s.Side, levels: int | None = None) -> list[s.RestingOrder]:
        """Resting orders of one side in priority order (best price first, then oldest); with
        ``levels``, only those of the best ``levels`` price levels (the quotes a hit-quote
        order may pick)."""
        return [
            self._resting(order)
            for level in itertools.islice(self._book(symbol).levels(side), levels)
            for order in level.orders.values()
        ]

    def order(self, order_id: int) -> s.RestingOrder | None:
        """The resting order with this id, None when no order with this id is resting."""
        order = self._orders.get(order_id)
        return None if order is None else self._resting(order)

    def status(self, symbol: str) -> s.InstrumentStatus:
        """Session state, band, trading phase and the modes usable now (0 unless ``OPEN``)."""
        book = self._book(symbol)
        return s.InstrumentStatus(
            symbol,
            book.state,
            book.trading_date,
            book.reference_ticks,
            book.lower_ticks,
            book.upper_ticks,
            book.phase,
            int(book.effective_modes()),
        )

    def block_offers(self, symbol: str | None = None) -> list[s.BlockOffer]:
        """Live block offers (of ``symbol``, or of every instrument), ascending offer id."""
        return self._modes.block_offers(None if symbol is None else self._book(symbol).index)

    def auctions(self) -> list[s.AuctionStatus]:
        """Auctions applied for or bidding, ascending auction id (bids are sealed: counted)."""
        return self._modes.auction_statuses()

    def resting_count(self) -> int:
        return len(self._orders)

    def account(self, account: int) -> s.AccountStatus | None:
        """Balances of an opened account (registry markets), or None."""
        return self._ledger.account_status(account)

    # -- state hash, snapshots ---------------------------------------------------------------
    def state_hash(self) -> str:
        """The canonical state hash of docs/MATCHING.md, docs/LEDGER.md (registry on) and
        docs/TRADING_MODES.md (blake2b-256, hex)."""
        ints = [len(self._books), self._next_trade_id]
        for book in self._books:
            ints += [
                book.state,
                book.trading_date,
                book.reference_ticks,
                book.lower_ticks,
                book.upper_ticks,
                book.day_open,
                book.day_high,
                book.day_low,
                book.day_volume,
                book.day_value,
                book.day_trades,
            ]
            for side in (BUY, SELL):
                levels = list(book.levels(side))
                ints.append(len(levels))
                for level in levels:
                    ints += [level.price_ticks, level.total_t, len(level.orders)]
                    for o in level.orders.values():
                        ints += [o.order_id, o.account, o.qty_t, o.order_type, o.tif, o.stp]
        if self._registry:
            ints += self._ledger.hash_words()
        for book, volumes in zip(self._books, self._modes.volumes, strict=True):
            ints += [book.phase, *volumes.words()]
        ints += self._modes.hash_words()
        data = np.array(ints, dtype="<i8").tobytes()
        return hashlib.blake2b(data, digest_size=32).hexdigest()

    def export_state(self) -> bytes:
        """A logical snapshot (``engine.core.snapshot``) of the whole engine."""

        def side(book: Book, side: s.Side) -> list[snap.OrderSnapshot]:
            return [
                snap.OrderSnapshot(
                    o.order_id, o.account, o.price_ticks, o.qty_t, o.order_type, o.tif, o.stp
                )
                for level in book.levels(side)
                for o in level.orders.values()
            ]

        instruments = [
            snap.InstrumentSnapshot(
                book.symbol,
                book.state,
                book.trading_date,
                book.reference_ticks,
                book.lower_ticks,
                book.upper_ticks,
                book.day_open,
                book.day_high,
                book.day_low,
                book.day_volume,
                book.day_value,
                book.day_trades,
                side(book, BUY),
                side(book, SELL),
            )
            for book in self._books
        ]
        ledger = self._ledger.export() if self._registry else None
        modes = self._modes.export([book.phase for book in self._books])
        snapshot = snap.EngineSnapshot(
            snap.FORMAT_VERSION,
            self.market.digest(),
            self._next_trade_id,
            instruments,
            ledger,
            modes,
        )
        return snap.encode(snapshot)

    @classmethod
    def from_state(cls, market: MarketDefinition, data: bytes) -> ReferenceEngine:
        """Restore an engine from :meth:`export_state` output (of either implementation).

        Raises
        ------
        engine.core.snapshot.SnapshotFormatError
            Corrupt or inconsistent snapshot, or one taken of another market definition.
        """
        snapshot = snap.load(data, market)
        engine = cls(market)
        engine._next_trade_id = snapshot.next_trade_id
        try:
            for book, saved in zip(engine._books, snapshot.instruments, strict=True):
                engine._restore_book(book, saved)
            if snapshot.ledger is not None:
                engine._ledger.restore(snapshot.ledger)
            modes = snapshot.modes or snap.empty_modes(len(engine._books))  # None: older
            for book, row in zip(engine._books, modes.instruments, strict=True):
                book.phase = row[0]
            engine._modes.restore(modes)
            engine.check_invariants()
        except (AssertionError, ValueError, KeyError) as exc:
            raise snap.SnapshotFormatError(f"inconsistent snapshot: {exc}") from None
        return engine

    def _restore_book(self, book: Book, saved: snap.InstrumentSnapshot) -> None:
        book.state = s.SessionState(saved.state)
        book.trading_date = saved.trading_date
        book.reference_ticks = saved.reference_price_ticks
        book.lower_ticks, book.upper_ticks = saved.lower_band_ticks, saved.upper_band_ticks
        book.set_block_band()
        book.day_open, book.day_high = saved.day_open_ticks, saved.day_high_ticks
        book.day_low, book.day_volume = saved.day_low_ticks, saved.day_volume_t
        book.day_value, book.day_trades = saved.day_value_fen, saved.day_trades
        for side, orders in ((BUY, saved.bids), (SELL, saved.asks)):
            for o in orders:
                if o.order_id in self._orders:
                    raise ValueError(f"order id {o.order_id} appears twice")
                order = Order(
                    o.order_id,
                    o.account,
                    book.index,
                    side,
                    o.price_ticks,
                    o.qty_t,
                    s.OrderType(o.order_type),
                    s.TimeInForce(o.tif),
                    s.StpMode(o.stp),
                )
                self._rest(book, order)

    # -- invariants --------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """Raise AssertionError (with a message) if any structural invariant is broken."""
        assert self._next_trade_id >= 1, f"next trade id {self._next_trade_id}"
        reachable = 0
        for book in self._books:
            self._check_session(book)
            for side in (BUY, SELL):
                reachable += self._check_side(book, side)
            bid, ask = book.best_price(BUY), book.best_price(SELL)
            assert bid == (max(book.bids) if book.bids else None), f"{book.symbol}: best bid"
            assert ask == (min(book.asks) if book.asks else None), f"{book.symbol}: best ask"
            if bid is not None and ask is not None:
                assert bid < ask, f"{book.symbol}: crossed book, bid {bid} >= ask {ask}"
        assert reachable == len(self._orders), (
            f"{len(self._orders)} orders by id but {reachable} in the books"
        )
        capacity = self.market.capacity.resting_orders
        assert len(self._orders) <= capacity, f"{len(self._orders)} resting > capacity {capacity}"
        by_account: dict[int, set[int]] = {}
        for order in self._orders.values():
            by_account.setdefault(order.account, set()).add(order.order_id)
        assert by_account == self._by_account, "account index disagrees with the orders"
        self._modes.check()
        if self._registry:
            self._check_ledger()

    def _check_ledger(self) -> None:
        """docs/LEDGER.md and docs/TRADING_MODES.md "Locks": conservation, locks = the needs of
        open orders, block offers, bids and auction lots, nothing negative."""
        for order in self._orders.values():
            assert order.lock_price_ticks == order.price_ticks, (
                f"order {order.order_id} rests with lock price {order.lock_price_ticks}"
            )
        orders = (
            OpenOrder(o.account, o.instrument, o.side, o.qty_t, o.lock_price_ticks)
            for o in self._orders.values()
        )
        self._ledger.check(itertools.chain(orders, self._modes.locks()))

    def _check_session(self, book: Book) -> None:
        name = book.symbol
        assert book.state in (OPEN, CLOSED, HALTED), f"{name}: state {book.state}"
        assert 0 <= book.phase < len(book.phase_masks), f"{name}: phase {book.phase}"
        assert 1 <= book.lower_ticks <= book.upper_ticks, f"{name}: band"
        assert book.lower_ticks <= book.reference_ticks <= book.upper_ticks, f"{name}: reference"
        if book.day_trades == 0:
            day = (book.day_open, book.day_high, book.day_low, book.day_volume, book.day_value)
            assert day == (0, 0, 0, 0, 0), f"{name}: statistics without trades"
        else:
            assert book.day_low <= book.day_open <= book.day_high, f"{name}: open/high/low"
            assert book.day_volume >= book.day_trades, f"{name}: volume < trade count"
            value = book.day_value
            assert book.day_low * book.day_volume <= value <= book.day_high * book.day_volume, (
                f"{name}: value outside low..high x volume"
            )

    def _check_side(self, book: Book, side: s.Side) -> int:
        """Check one side's levels and orders; return the number of orders found."""
        count = 0
        for price, level in book.side(side).items():
            where = f"{book.symbol} {side.name} {price}"
            assert level.price_ticks == price, f"{where}: level keyed under another price"
            assert level.orders, f"{where}: empty level"
            total = sum(o.qty_t for o in level.orders.values())
            assert level.total_t == total, f"{where}: level total {level.total_t} != {total}"
            for order_id, o in level.orders.items():
                assert o.order_id == order_id, f"{where}: order {o.order_id} keyed as {order_id}"
                by_id = self._orders.get(order_id)
                assert by_id is not None and by_id is o, f"{where}: order {order_id} not by id"
                assert (o.instrument, o.side, o.price_ticks) == (book.index, side, price), (
                    f"{where}: order {order_id} has instrument/side/price "
                    f"{o.instrument}/{o.side}/{o.price_ticks}"
                )
                assert o.qty_t > 0, f"{where}: order {order_id} has open qty {o.qty_t}"
                assert o.tif in _RESTING_TIFS, f"{where}: order {order_id} rests with {o.tif}"
                assert o.order_type in (s.OrderType.LIMIT, s.OrderType.POST_ONLY), (
                    f"{where}: order {order_id} of type {o.order_type} rests"
                )
                count += 1
        return count

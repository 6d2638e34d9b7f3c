"""``bench core``'s peer comparison: the same workloads through liquibook, one command a call.

liquibook (https://github.com/enewhuis/liquibook) is a C++ price-time order book; the
``liquibook`` wheel (``pip install '.[peers]'``) wraps it for Python with SWIG.  This module
drives it the way an embedder drives our lean API (``CompiledEngine.submit``/``cancel``/
``modify``): one Python call per command, addressed by the workload's own order ids, with what
the embedder needs to know of each outcome kept up to date.

Theory of operation
-------------------
Every workload record becomes one call on :class:`LiquibookBook`:

- a limit order (DAY or GTC) -> ``OrderBook.add(SimpleOrder(is_buy, price, qty))``; IOC and FOK
  pass ``oc_immediate_or_cancel`` / ``oc_fill_or_kill`` to ``add`` (the wrapped book's order
  tracker ignores the conditions an order carries itself); a market order is liquibook's
  ``MARKET_ORDER_PRICE`` (0) with IOC or FOK;
- a cancel -> ``OrderBook.cancel(order)``, the order object found under our id;
- a modify (a new open quantity and price) -> ``OrderBook.replace(order, qty - open, price)``:
  liquibook takes a change of quantity, so the embedder must know the open quantity.

The Python book does not update its order objects (liquibook's C++ ``SimpleOrderBook`` does
that in its callback).  So :class:`LiquibookBook` attaches a listener that does what
``SimpleOrderBook`` does - accept, fill, replace the order objects - and counts the traded
quantity: the least an embedder needs to modify orders and to know what traded, as our lean
call's ``(events, reason, filled_t, resting_t)`` is.  Its callbacks into Python are part of
liquibook's figure: without a listener liquibook ran about 1.5x faster on a stream of adds and
cancels, but it can then neither report a fill nor modify an order correctly (the order keeps
its old price, and a later cancel misses it).  liquibook finds an order to cancel or replace
by scanning its price level, so on deep books (``deep``: hundreds of orders a level) a cancel
costs several microseconds.

What liquibook cannot do is :data:`LIMITATIONS`; ``bench core`` prints it beside the figures.
Because of the first two, the traded quantities on a workload's own stream may differ;
:func:`comparable_stream` removes both causes (no modifies, one account per side) and there
:func:`trades_agree` holds every trade, price and quantity, equal between the two books.
"""

from __future__ import annotations

import importlib.metadata
import statistics
import time

import msgspec
import numpy as np

from engine.core.compiled import layout as k
from engine.core.compiled.engine import CompiledEngine
from engine.core.market import MarketDefinition
from engine.core.records import EV_TRADE, K_CANCEL, K_MODIFY, K_OPEN_SESSION, K_SUBMIT

LIMITATIONS = (
    "no self-trade prevention: an order may trade with its own account's (ours cancels it)",
    "a replace always loses time priority (ours keeps it for a same-price quantity cut) and "
    "takes a change of quantity, not the new open quantity",
    "no accounts, ownership, price band, tick, lot or size limits, duplicate-id check or "
    "sessions: the workload's OpenSession is skipped (not counted), its accounts ignored",
    "no ids of the embedder's: the adapter keeps a dict from our order ids to order objects",
    "events are callbacks into Python: no sequence numbers, timestamps, event log or hash",
)
"""What liquibook cannot do of what the workloads ask, and how each is mapped."""


def available() -> str | None:
    """None if liquibook can be imported, else why the peer comparison is skipped."""
    try:
        import liquibook  # noqa: F401
    except ImportError as error:
        return f"liquibook is not installed ({error}); pip install '.[peers]'"
    return None


def version() -> str:
    """The installed liquibook wheel's version."""
    return importlib.metadata.version("liquibook")


_LISTENERS: dict[bool, type] = {}


def _listener_class(record: bool) -> type:
    """The order listener (a SWIG director class, so built once liquibook is importable).

    It updates the order objects as liquibook's own ``SimpleOrderBook`` does and counts the
    traded quantity; with ``record`` it also keeps every fill's (price, quantity)."""
    if record in _LISTENERS:
        return _LISTENERS[record]
    import liquibook

    class Listener(liquibook.OrderListener):
        def __init__(self) -> None:
            liquibook.OrderListener.__init__(self)
            self.traded_t = 0
            self.trades = 0
            self.fills: list[tuple[int, int]] = []

        def on_accept(self, order) -> None:
            order.accept()  # a SimpleOrder replaces itself only once accepted

        def on_fill(self, order, matched_order, qty_t, price_ticks) -> None:
            self.traded_t += qty_t
            self.trades += 1
            order.fill(qty_t, qty_t * price_ticks, 0)
            matched_order.fill(qty_t, qty_t * price_ticks, 0)
            if record:
                self.fills.append((price_ticks, qty_t))

        def on_replace(self, order, size_delta, new_price) -> None:
            order.replace(size_delta, new_price)

        def on_reject(self, order, reason) -> None:
            pass

        def on_cancel(self, order) -> None:
            pass

        def on_cancel_reject(self, order, reason) -> None:
            pass

        def on_replace_reject(self, order, reason) -> None:
            pass

        def on_trigger_stop(self, order) -> None:
            pass

    _LISTENERS[record] = Listener
    return Listener


class LiquibookBook:
    """One liquibook order book behind calls shaped like our lean API's, by our order ids.

    Parameters
    ----------
    record:
        Keep every fill's (price, quantity) in ``listener.fills`` (for :func:`trades_agree`).
    """

    def __init__(self, record: bool = False) -> None:
        import liquibook

        self.book = liquibook.liquibook_book_OrderBook()
        self.listener = _listener_class(record)()
        self.book.set_order_listener(self.listener)
        self.orders: dict[int, object] = {}
        self._new_order = liquibook.SimpleOrder
        self._add, self._cancel, self._replace = self.book.add, self.book.cancel, self.book.replace
        self.conditions = {
            k.DAY: liquibook.oc_no_conditions,
            k.GTC: liquibook.oc_no_conditions,
            k.IOC: liquibook.oc_immediate_or_cancel,
            k.FOK: liquibook.oc_fill_or_kill,
        }

    def submit(self, order_id: int, is_buy: bool, price_ticks: int, qty_t: int, conditions: int):
        """Add an order (``price_ticks`` 0: a market order); only orders without conditions
        can rest, so only they are kept for later cancels and modifies."""
        order = self._new_order(is_buy, price_ticks, qty_t, 0, conditions)
        if not conditions:
            self.orders[order_id] = order
        self._add(order, conditions)

    def cancel(self, order_id: int) -> None:
        """Cancel an order (one already filled is refused by liquibook, as by ours)."""
        order = self.orders.pop(order_id, None)
        if order is not None:
            self._cancel(order)

    def modify(self, order_id: int, qty_t: int, price_ticks: int) -> None:
        """Give a resting order a new open quantity and price (``OrderBook.replace``)."""
        order = self.orders.get(order_id)
        if order is not None:
            self._replace(order, qty_t - order.open_qty(), price_ticks)

    def calls(self, cmds: np.ndarray) -> list:
        """Each workload record as the call an embedder would make: (bound method, arguments).

        The session opening is skipped (liquibook has no sessions); any other kind, and
        post-only or hit-quote orders, raise ``ValueError``: liquibook has no such thing."""
        calls: list = []
        for oid, price, qty, kind, side, order_type, tif in zip(
            *(cmds[name].tolist() for name in _COLUMNS)
        ):
            if kind == K_SUBMIT and order_type in (k.LIMIT, k.MARKET):
                price = price if order_type == k.LIMIT else 0
                calls.append((self.submit, (oid, side == k.BUY, price, qty, self.conditions[tif])))
            elif kind == K_CANCEL:
                calls.append((self.cancel, (oid,)))
            elif kind == K_MODIFY:
                calls.append((self.modify, (oid, qty, price)))
            elif kind != K_OPEN_SESSION:
                raise ValueError(f"liquibook has no counterpart of command kind {kind}")
        return calls


_COLUMNS = ("order_id", "price_ticks", "qty_t", "kind", "side", "order_type", "tif")


class PeerResult(msgspec.Struct):
    """liquibook on one workload, beside our one-command paths."""

    peer: str
    calls: int
    """Commands sent (the workload's less its session opening)."""
    seconds: float
    commands_per_s: float
    traded_t: int
    """liquibook's traded quantity on the workload's own stream."""
    ours_traded_t: int
    comparable_trades: int
    """Trades on :func:`comparable_stream` of the workload (our count)."""
    comparable_trades_equal: bool
    """Every trade there (price, quantity, in order) equal between liquibook and ours."""
    lean_vs_peer: float = 0.0
    """Our lean API's commands/s over liquibook's."""
    typed_vs_peer: float = 0.0
    """Our typed API's commands/s over liquibook's."""


def run(market: MarketDefinition, cmds: np.ndarray, repeats: int = 3) -> PeerResult:
    """liquibook on the workload ``cmds``: the median of ``repeats`` timed passes (each on a
    fresh book; building the list of calls is not timed), and the agreement check."""
    times = []
    for _ in range(repeats):
        book = LiquibookBook()
        calls = book.calls(cmds)
        start = time.perf_counter()
        for call, args in calls:
            call(*args)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    comparable = comparable_stream(cmds)
    equal, trades = trades_agree(market, comparable)
    return PeerResult(
        peer=f"liquibook {version()}",
        calls=len(calls),
        seconds=seconds,
        commands_per_s=len(calls) / seconds,
        traded_t=book.listener.traded_t,
        ours_traded_t=traded_t(market, cmds),
        comparable_trades=trades,
        comparable_trades_equal=equal,
    )


def _our_trades(market: MarketDefinition, cmds: np.ndarray) -> np.ndarray:
    events = CompiledEngine(market).apply_records(cmds)
    return events[events["kind"] == EV_TRADE]


def traded_t(market: MarketDefinition, cmds: np.ndarray) -> int:
    """The quantity our engine trades on ``cmds``."""
    return int(_our_trades(market, cmds)["qty_t"].sum())


def comparable_stream(cmds: np.ndarray) -> np.ndarray:
    """``cmds`` where both books must trade alike: modifies dropped (liquibook's replace loses
    priority where ours keeps it) and every buy of account 0, every sell of account 1, cancels
    naming their order's account (so no order meets its own account: no self-trade
    prevention)."""
    out = cmds[cmds["kind"] != K_MODIFY].copy()
    submits = out[out["kind"] == K_SUBMIT]
    side_of = np.zeros(int(cmds["order_id"].max()) + 1, dtype=np.int64)
    side_of[submits["order_id"]] = submits["side"]
    orders = np.isin(out["kind"], (K_SUBMIT, K_CANCEL))
    out["account"][orders] = side_of[out["order_id"][orders]] - k.BUY
    return out


def trades_agree(market: MarketDefinition, cmds: np.ndarray) -> tuple[bool, int]:
    """(whether liquibook and our engine make the same trades on ``cmds`` - every price and
    quantity, in order - and our number of trades)."""
    ours = _our_trades(market, cmds)
    book = LiquibookBook(record=True)
    for call, args in book.calls(cmds):
        call(*args)
    theirs = book.listener.fills
    expected = list(zip(ours["price_ticks"].tolist(), ours["qty_t"].tolist()))
    return theirs == expected, len(expected)

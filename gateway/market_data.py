"""Public market data: depth snapshots, sequenced level updates, trades and session status.

Theory of operation
-------------------
A subscription starts with a :class:`~gateway.protocol.DepthSnapshot` of the whole aggregated
book as of the exchange's last sequence number.  After every batch the server calls
:meth:`MarketData.publish`: the events say which price levels they touched (an accepted,
cancelled or modified order, the maker side of a trade); for each touched level of a
subscribed instrument the engine is asked for the level's totals *after* the batch, and one
:class:`~gateway.protocol.DepthUpdate` per instrument carries them as absolute values (0 removes
a level).  The conflation is per batch, so intermediate states inside a batch are never
shown, and a client that applies updates with ``seq`` above its snapshot's ``seq`` holds the
engine's book exactly.  Trades and session events are forwarded as they are, without accounts.
"""

from __future__ import annotations

from collections.abc import Callable

from engine import schema as s
from gateway import protocol as p

_STATUS_EVENTS = (s.SessionOpened, s.SessionClosed, s.InstrumentHalted, s.InstrumentResumed)


def touched_levels(event) -> list[tuple[int, int]]:
    """(side, price) of the levels an event changed (none for events that rest nothing)."""
    t = type(event)
    if t is s.OrderAccepted or t is s.OrderCancelled:
        return [(int(event.side), event.price_ticks)] if event.price_ticks > 0 else []
    if t is s.TradeExecuted:
        return [(3 - int(event.aggressor_side), event.price_ticks)]
    if t is s.OrderModified:
        side = int(event.side)
        return [(side, event.price_ticks), (side, event.old_price_ticks)]
    return []


class MarketData:
    """Subscriptions per instrument and the messages a batch produces for them.

    Parameters
    ----------
    engine : CompiledEngine or ReferenceEngine
        The exchange's live engine (read through its query API only).
    symbols : list of str
        The instruments that may be subscribed.
    """

    def __init__(self, engine, symbols: list[str]) -> None:
        self.engine = engine
        self.subscribers: dict[str, set] = {symbol: set() for symbol in symbols}

    def snapshot(self, symbol: str, request_id: int, seq: int) -> p.DepthSnapshot:
        """The whole aggregated book of ``symbol`` now (as of ``seq``)."""
        depth = self.engine.depth(symbol, levels=None)
        status = self.engine.status(symbol)
        return p.DepthSnapshot(
            request_id=request_id, instrument=symbol, seq=seq, state=int(status.state),
            trading_date=status.trading_date, reference_price_ticks=status.reference_price_ticks,
            lower_band_ticks=status.lower_band_ticks, upper_band_ticks=status.upper_band_ticks,
            bids=list(depth.bids), asks=list(depth.asks),
        )  # fmt: skip

    def publish(self, events: list, last_seq: int, emit: Callable[[object, object], None]) -> None:
        """Send one batch's market data to the subscribers: ``emit(connection, message)``."""
        subscribers = self.subscribers
        touched: dict[str, set[tuple[int, int]]] = {}
        for event in events:
            symbol = getattr(event, "instrument", None)
            watchers = subscribers.get(symbol) if symbol else None
            if not watchers:
                continue
            t = type(event)
            if t is s.TradeExecuted:
                trade = p.Trade(
                    instrument=symbol, seq=event.seq, ts_ns=event.ts_ns, trade_id=event.trade_id,
                    price_ticks=event.price_ticks, qty_t=event.qty_t,
                    aggressor_side=int(event.aggressor_side),
                )  # fmt: skip
                for connection in watchers:
                    emit(connection, trade)
            elif t in _STATUS_EVENTS:
                status = p.MarketStatus(instrument=symbol, seq=event.seq, event=event)
                for connection in watchers:
                    emit(connection, status)
            levels = touched_levels(event)
            if levels:
                touched.setdefault(symbol, set()).update(levels)
        for symbol, levels in touched.items():
            update = p.DepthUpdate(instrument=symbol, seq=last_seq, levels=[
                p.LevelUpdate(side, price, *self.engine.depth_at(symbol, side, price))
                for side, price in sorted(levels)
            ])  # fmt: skip
            for connection in subscribers[symbol]:
                emit(connection, update)

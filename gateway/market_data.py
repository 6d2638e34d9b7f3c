"""Public market data: depth snapshots, sequenced level updates, trades and session status.

Theory of operation
-------------------
A subscription starts with a :class:`~gateway.protocol.DepthSnapshot` of the whole aggregated
book as of the exchange's last sequence number.  After every batch the server calls
:meth:`MarketData.publish` with the batch's event records: they say which price levels they
touched (an accepted, cancelled or modified order, the maker side of a trade); for each touched
level of a subscribed instrument the engine is asked for the level's totals *after* the batch,
and one :class:`~gateway.protocol.DepthUpdate` per instrument carries them as absolute values
(0 removes a level).  The conflation is per batch, so intermediate states inside a batch are
never shown, and a client that applies the updates with ``seq`` above its snapshot's ``seq``
holds the engine's book exactly.  Trades (listing, block and auction prints, told apart by
``Trade.mode``) and public events (sessions, phases, mode volumes, auctions) are forwarded
without accounts; bids are sealed and never published.  Open block offers are public so that
any firm can accept one: they are published anonymised (account -1), as are their cancellation
and their trade; offers directed at one counterparty are not published.  The composite price
goes to every subscriber.

Each instrument is a *channel* whose messages (DepthUpdate, Trade, MarketStatus) carry a gapless
``channel_seq``, counting the messages published to the instrument's subscribers; a snapshot is
stamped with the channel sequence it is valid at.  A subscriber needs nothing else to trust
what it holds: it applies the messages numbered above its snapshot's, and a number that is not
the previous + 1 is a gap, after which it asks for a new snapshot (:class:`ChannelFollower` is
that logic for clients).  The composite price is a channel of its own (``instrument`` ""), a
whole value in every message, so a gap there costs nothing but the values missed.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from engine.core import records as r
from gateway import protocol as p

_STATUS_KINDS = frozenset(
    {
        r.EV_SESSION_OPENED,
        r.EV_SESSION_CLOSED,
        r.EV_HALTED,
        r.EV_RESUMED,
        r.EV_PHASE_CHANGED,
        r.EV_MODE_VOLUMES,
        r.EV_AUCTION_ANNOUNCED,
        r.EV_AUCTION_CLEARED,
        r.EV_AUCTION_CANCELLED,
    }
)
_OFFER_KINDS = frozenset({r.EV_BLOCK_POSTED, r.EV_BLOCK_CANCELLED, r.EV_BLOCK_TRADE})
_MODE_LISTING, _MODE_BLOCK, _MODE_AUCTION = 0, 1, 2
_K, _SEQ, _TS, _INST, _SIDE, _PRICE, _QTY = (
    r.E_KIND,
    r.E_SEQ,
    r.E_TS,
    r.E_INSTRUMENT,
    r.E_SIDE,
    r.E_PRICE,
    r.E_QTY,
)


def touched_levels(row: list[int]) -> tuple[tuple[int, int], ...]:
    """(side, price) of the levels an event row changed (none for events that rest nothing)."""
    kind = row[_K]
    if kind == r.EV_ACCEPTED or kind == r.EV_CANCELLED:
        return ((row[_SIDE], row[_PRICE]),) if row[_PRICE] > 0 else ()
    if kind == r.EV_TRADE:
        return ((3 - row[_SIDE], row[_PRICE]),)
    if kind == r.EV_MODIFIED:
        return ((row[_SIDE], row[_PRICE]), (row[_SIDE], row[r.ORDER_MODIFIED.old_price_ticks]))
    return ()


class MarketData:
    """Subscriptions per instrument and the messages a batch produces for them.

    Parameters
    ----------
    engine : CompiledEngine or ReferenceEngine
        The exchange's live engine (read through its query API only).
    codec : engine.core.records.Codec
        The exchange's codec: instrument indices, typed events.
    """

    def __init__(self, engine, codec: r.Codec) -> None:
        self.engine = engine
        self.codec = codec
        self.levels_by_symbol = {
            ins.symbol: ins.hit_quote_levels for ins in engine.market.instruments
        }
        self.symbols = list(codec.symbols)
        self._index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self.subscribers: dict[str, set] = {symbol: set() for symbol in self.symbols}
        self._by_index = [self.subscribers[symbol] for symbol in self.symbols]
        self.channel_seqs = [0] * len(self.symbols)
        """Per instrument index: the ``channel_seq`` of the last message published."""
        self.composite_seq = 0
        self._open_offers: set[int] = {
            o.offer_id for o in engine.block_offers() if o.counterparty < 0
        }

    def snapshot(self, symbol: str, request_id: int, seq: int) -> p.DepthSnapshot:
        """The whole aggregated book of ``symbol`` now (as of ``seq`` and of its channel's
        last message)."""
        depth = self.engine.depth(symbol, levels=None)
        status = self.engine.status(symbol)
        return p.DepthSnapshot(
            request_id=request_id,
            instrument=symbol,
            seq=seq,
            state=int(status.state),
            trading_date=status.trading_date,
            reference_price_ticks=status.reference_price_ticks,
            lower_band_ticks=status.lower_band_ticks,
            upper_band_ticks=status.upper_band_ticks,
            bids=list(depth.bids),
            asks=list(depth.asks),
            phase=status.phase,
            modes=status.modes,
            block_offers=[
                msgspec.structs.replace(o, account=-1)
                for o in (self.engine.block_offers(symbol) if self._open_offers else ())
                if o.counterparty < 0
            ],
            channel_seq=self.channel_seqs[self._index[symbol]],
        )

    def quotes(self, symbol: str, request_id: int, seq: int) -> p.Quotes:
        """The quotes of ``symbol``'s best ``hit_quote_levels`` levels per side, as of ``seq``."""
        levels = self.levels_by_symbol[symbol]
        bids, asks = (
            [
                p.Quote(o.order_id, o.price_ticks, o.qty_t)
                for o in self.engine.orders(symbol, side, levels)
            ]
            for side in (1, 2)
        )
        return p.Quotes(request_id=request_id, instrument=symbol, seq=seq, bids=bids, asks=asks)

    def _mode_message(self, row: list, index: int):
        """The public message of a block or auction event (None: not public)."""
        kind, symbol = row[_K], self.symbols[index]
        if kind == r.EV_BLOCK_TRADE or kind == r.EV_AUCTION_TRADE:
            block = kind == r.EV_BLOCK_TRADE
            return p.Trade(
                instrument=symbol,
                seq=row[_SEQ],
                ts_ns=row[_TS],
                trade_id=row[(r.BLOCK_TRADE_EXECUTED if block else r.AUCTION_TRADE).trade_id],
                price_ticks=row[_PRICE],
                qty_t=row[_QTY],
                aggressor_side=row[_SIDE] if block else 1,
                mode=_MODE_BLOCK if block else _MODE_AUCTION,
            )
        return None

    def _offer_message(self, row: list):
        """An open block offer's public event, anonymised (None: not an open offer's)."""
        offer_id, kind = row[r.E_ORDER_ID], row[_K]
        if kind == r.EV_BLOCK_POSTED:
            if row[r.BLOCK_OFFER_POSTED.counterparty] >= 0:
                return None
            self._open_offers.add(offer_id)
        elif offer_id in self._open_offers:
            self._open_offers.discard(offer_id)
        else:
            return None
        event = self.codec.event(row)
        field = "accepting_account" if kind == r.EV_BLOCK_TRADE else "account"
        changes = {field: -1}
        if kind == r.EV_BLOCK_TRADE:
            changes["offer_account"] = -1
        return p.MarketStatus(
            instrument=self.symbols[row[_INST]],
            seq=row[_SEQ],
            event=msgspec.structs.replace(event, **changes),
        )

    def publish(self, rows: list, last_seq: int, emit: Callable[[object, object], None]) -> None:
        """Send one batch's market data to the subscribers: ``emit(connection, message)``;
        each message to an instrument's subscribers takes the channel's next ``channel_seq``."""
        by_index, count, seqs = self._by_index, len(self._by_index), self.channel_seqs
        touched: dict[int, set[tuple[int, int]]] = {}
        for row in rows:
            if row[_K] in _OFFER_KINDS:  # bookkeeping even when nobody subscribes
                offer = self._offer_message(row)
                audience = by_index[row[_INST]] if offer is not None else ()
                if audience:
                    seqs[row[_INST]] += 1
                    offer = _stamped(offer, seqs[row[_INST]])
                    for connection in audience:
                        emit(connection, offer)
            elif row[_K] == r.EV_COMPOSITE:
                self._publish_composite(row, emit)
                continue
            index = row[_INST]
            if not 0 <= index < count or not by_index[index]:
                continue
            kind = row[_K]
            if kind == r.EV_TRADE:
                seqs[index] += 1
                message = p.Trade(
                    instrument=self.symbols[index],
                    seq=row[_SEQ],
                    ts_ns=row[_TS],
                    trade_id=row[r.TRADE_EXECUTED.trade_id],
                    price_ticks=row[_PRICE],
                    qty_t=row[_QTY],
                    aggressor_side=row[_SIDE],
                    channel_seq=seqs[index],
                )
            elif kind in _STATUS_KINDS:
                seqs[index] += 1
                message = p.MarketStatus(
                    instrument=self.symbols[index],
                    seq=row[_SEQ],
                    event=self.codec.event(row),
                    channel_seq=seqs[index],
                )
            elif kind >= r.EV_BLOCK_POSTED:
                message = self._mode_message(row, index)
                if message is not None:
                    seqs[index] += 1
                    message = _stamped(message, seqs[index])
            else:
                message = None
            if message is not None:
                for connection in by_index[index]:
                    emit(connection, message)
            levels = touched_levels(row)
            if levels:
                touched.setdefault(index, set()).update(levels)
        for index, levels in touched.items():
            symbol = self.symbols[index]
            seqs[index] += 1
            update = p.DepthUpdate(
                instrument=symbol,
                seq=last_seq,
                levels=[
                    p.LevelUpdate(side, price, *self.engine.depth_at(symbol, side, price))
                    for side, price in sorted(levels)
                ],
                channel_seq=seqs[index],
            )
            for connection in by_index[index]:
                emit(connection, update)

    def _publish_composite(self, row: list, emit: Callable[[object, object], None]) -> None:
        audience: set = set()
        for watchers in self._by_index:
            audience.update(watchers)
        if not audience:
            return
        self.composite_seq += 1
        message = p.MarketStatus(
            instrument="",
            seq=row[_SEQ],
            event=self.codec.event(row),
            channel_seq=self.composite_seq,
        )
        for connection in audience:
            emit(connection, message)


def _stamped(message, channel_seq: int):
    """``message`` numbered ``channel_seq`` on its channel."""
    return msgspec.structs.replace(message, channel_seq=channel_seq)


class ChannelFollower:
    """A subscriber's check of one instrument channel (client side, no I/O): feed it the
    snapshot, then every market-data message of the instrument; it says which to apply and
    when the subscriber missed something and must take a new snapshot.

    Examples
    --------
    >>> follower = ChannelFollower()
    >>> follower.snapshot(p.DepthSnapshot(request_id=1, instrument="X", seq=9, state=0,
    ...     trading_date=0, reference_price_ticks=0, lower_band_ticks=0, upper_band_ticks=0,
    ...     bids=[], asks=[], channel_seq=4))
    >>> follower.accept(p.DepthUpdate(instrument="X", seq=10, levels=[], channel_seq=4))
    False
    >>> follower.accept(p.DepthUpdate(instrument="X", seq=11, levels=[], channel_seq=5))
    True
    >>> follower.accept(p.DepthUpdate(instrument="X", seq=12, levels=[], channel_seq=7))
    False
    >>> follower.gap
    True
    """

    def __init__(self) -> None:
        self.last = -1
        """``channel_seq`` of the last message applied (-1: no snapshot yet)."""
        self.gap = False
        """A message was missed: discard the book and subscribe again for a snapshot."""

    def snapshot(self, snapshot: p.DepthSnapshot) -> None:
        """Start (again) from ``snapshot``."""
        self.last, self.gap = snapshot.channel_seq, False

    def accept(self, message) -> bool:
        """Whether to apply ``message``: False for one the snapshot already includes, and for
        every message after a gap (then :attr:`gap` is set) until the next snapshot."""
        if self.gap or self.last < 0 or message.channel_seq <= self.last:
            return False
        if message.channel_seq != self.last + 1:
            self.gap = True
            return False
        self.last = message.channel_seq
        return True

"""The logical snapshot of a matching engine: one format shared by every implementation.

Theory of operation
-------------------
A snapshot is the engine's complete logical state, independent of how an implementation lays
it out in memory: the reference engine (sortedcontainers) and the compiled engine (numpy
arrays) both write and read this format, so a snapshot taken by one restores into the other.
Restoring a snapshot gives the same canonical state hash (``docs/MATCHING.md``) and identical
future behaviour, because the state of the matching rules is exactly:

* the next trade id (trade ids run 1, 2, 3 ... across all instruments);
* per instrument (in market-definition index order): its session state, last trading date,
  reference price, price band and the statistics of its current (or last) session;
* every resting order, with its open quantity, in time priority.

Nothing else influences matching: ids of orders that are gone may be reused, so there is no
"seen ids" set, and time priority is fully described by the order of the lists below.

Encoding: msgpack (``msgspec.msgpack``) of :class:`EngineSnapshot`.  The nested structs are
``array_like`` (encoded as msgpack arrays, field order below) to keep large books compact.

``EngineSnapshot`` (a msgpack map)
    ``format_version``  int, :data:`FORMAT_VERSION`.
    ``market_digest``   bytes, ``MarketDefinition.digest()`` of the market the state belongs
                        to; restoring into a different market definition is refused.
    ``next_trade_id``   int, the id the next trade will receive (1 in a fresh engine).
    ``instruments``     list of :class:`InstrumentSnapshot`, one per instrument, index order.

``InstrumentSnapshot`` (array)
    ``symbol, state, trading_date, reference_price_ticks, lower_band_ticks, upper_band_ticks,
    day_open_ticks, day_high_ticks, day_low_ticks, day_volume_t, day_value_fen, day_trades,
    bids, asks``.  ``state`` is a ``SessionState`` code; ``trading_date`` is the last date a
    session opened (0: never).  The ``day_*`` fields are the statistics of the current session
    (or of the last one, until the next open resets them); open/high/low are 0 before the
    session's first trade.  ``bids`` and ``asks`` are lists of :class:`OrderSnapshot` in
    priority order: best price first (bids highest, asks lowest), oldest first within a price.

``OrderSnapshot`` (array)
    ``order_id, account, price_ticks, qty_t, order_type, tif, stp`` - ``qty_t`` is the open
    (remaining) quantity; the codes are those of ``engine.core.schema``.  Side and instrument are
    given by the list that holds the order.

Schema evolution follows the rest of the codebase: fields are only appended, with defaults;
a change that old readers cannot ignore bumps :data:`FORMAT_VERSION`.
"""

from __future__ import annotations

import msgspec
import numpy as np

FORMAT_VERSION = 1


class SnapshotFormatError(ValueError):
    """A snapshot that cannot be restored (corrupt, another version, another market)."""


class OrderSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    order_id: int
    account: int
    price_ticks: int
    qty_t: int
    order_type: int
    tif: int
    stp: int


class InstrumentSnapshot(msgspec.Struct, frozen=True, array_like=True):
    symbol: str
    state: int
    trading_date: int
    reference_price_ticks: int
    lower_band_ticks: int
    upper_band_ticks: int
    day_open_ticks: int
    day_high_ticks: int
    day_low_ticks: int
    day_volume_t: int
    day_value_fen: int
    day_trades: int
    bids: list[OrderSnapshot]
    asks: list[OrderSnapshot]


class AccountSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """An opened account: ``holdings`` has one ``[tradable, locked, frozen, unsettled]`` per
    instrument, in index order."""

    account: int
    kind: int
    sector: int
    province: int
    frozen: bool
    cash_available_fen: int
    cash_locked_fen: int
    holdings: list[tuple[int, int, int, int]]


class ComplianceSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    year: int
    account: int
    obligation_t: int
    surrendered_t: int
    offsets_t: int
    reported: bool


class KeySnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A remembered idempotency key: the seq, outcome reason and command tag of its first use."""

    key: int
    seq: int
    reason: int
    command: int


class LedgerSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The registry's state (docs/LEDGER.md); absent when the market runs without one.

    ``totals`` has one ``[issued, clawed_back, surrendered, cancelled]`` per instrument;
    ``closed_years`` is a bit mask of compliance-year slots from the market's first year;
    ``accounts`` ascend by account, ``compliance`` by (year, account), ``keys`` by key.
    A resting buy order's lock price is its own price, so orders need no extra field.
    """

    deposited_fen: int
    withdrawn_fen: int
    closed_years: int
    totals: list[tuple[int, int, int, int]]
    accounts: list[AccountSnapshot]
    compliance: list[ComplianceSnapshot]
    keys: list[KeySnapshot]


class BlockOfferSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    offer_id: int
    account: int
    instrument: int
    """Instrument index."""
    side: int
    price_ticks: int
    qty_t: int
    counterparty: int


class BidSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    bid_id: int
    account: int
    price_ticks: int
    qty_t: int


class AuctionSnapshot(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """An auction not yet cleared; ``bids`` in arrival (time-priority) order.  The announced
    terms (floor … window end) are 0 while the auction is only applied."""

    auction_id: int
    seller: int
    instrument: int
    qty_t: int
    state: int
    floor_price_ticks: int
    cap_price_ticks: int
    clearing: int
    floor_rule: int
    window_start_ns: int
    window_end_ns: int
    bids: list[BidSnapshot]


class ModesSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The trading modes' state (docs/TRADING_MODES.md).

    ``instruments`` has one ``[phase, block_volume, block_value, block_trades, auction_volume,
    auction_value, auction_trades]`` per instrument, in index order; ``block_offers`` ascend by
    offer id and ``auctions`` by auction id.
    """

    instruments: list[tuple[int, int, int, int, int, int, int]]
    block_offers: list[BlockOfferSnapshot]
    auctions: list[AuctionSnapshot]


class EngineSnapshot(msgspec.Struct, frozen=True):
    format_version: int
    market_digest: bytes
    next_trade_id: int
    instruments: list[InstrumentSnapshot]
    ledger: LedgerSnapshot | None = None
    """Appended field: the registry, for markets that run one."""
    modes: ModesSnapshot | None = None
    """Appended field: phases, block offers and auctions.  Absent (older snapshots): every
    instrument in phase 0 with no block or auction business, no offers, no auctions."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(EngineSnapshot)
_UINT_WIDTHS = ((128, 1, -1), (256, 2, 0xCC), (65_536, 3, 0xCD), (1 << 32, 5, 0xCE))
"""MessagePack's unsigned forms below a bound, as msgspec picks them: (bound, bytes with the
marker, marker); -1: a positive fixint, the value its own byte.  Larger ones: 0xCF, 9 bytes."""


def encode_orders(rows: np.ndarray) -> msgspec.Raw:
    """``list[OrderSnapshot]`` of ``rows`` (int64, one row of :class:`OrderSnapshot`'s fields
    an order) encoded as msgspec encodes the structs, byte for byte, without making them: the
    array of a book of 200 k orders in a few numpy passes instead of ~0.2 s of objects
    (``export_state``'s ``bids``/``asks`` - the snapshot stops a gateway).  Any negative field
    (none in a valid book) takes the structs' way."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    count = len(rows)
    if count and (rows.shape[1] != len(OrderSnapshot.__struct_fields__) or rows.min() < 0):
        return msgspec.Raw(_encoder.encode([OrderSnapshot(*row) for row in rows.tolist()]))
    if count == 0:
        return msgspec.Raw(b"\x90")
    if count < 16:
        header = bytes([0x90 | count])
    elif count < 65_536:
        header = b"\xdc" + count.to_bytes(2, "big")
    else:
        header = b"\xdd" + count.to_bytes(4, "big")
    values = rows.astype(np.uint64).ravel()
    widths = np.full(len(values), 9, dtype=np.int64)
    for bound, width, _ in reversed(_UINT_WIDTHS):
        widths[values < bound] = width
    row_bytes = 1 + widths.reshape(count, -1).sum(axis=1)  # 0x97: a fixarray of 7
    row_start = len(header) + np.cumsum(row_bytes) - row_bytes
    out = np.empty(len(header) + int(row_bytes.sum()), dtype=np.uint8)
    out[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    out[row_start] = 0x90 | rows.shape[1]
    field_end = np.cumsum(widths.reshape(count, -1), axis=1) + (row_start + 1)[:, None]
    starts = field_end.ravel() - widths
    fixint = widths == 1
    out[starts[fixint]] = values[fixint]
    for _, width, marker in (*_UINT_WIDTHS[1:], (0, 9, 0xCF)):
        chosen = widths == width
        at, wide = starts[chosen], values[chosen]
        out[at] = marker
        for byte in range(1, width):  # big-endian
            out[at + byte] = (wide >> np.uint64(8 * (width - 1 - byte))) & np.uint64(0xFF)
    return msgspec.Raw(out.tobytes())


def encode(snapshot: EngineSnapshot) -> bytes:
    """Serialise a snapshot (msgpack)."""
    return _encoder.encode(snapshot)


def decode(data: bytes, market_digest: bytes) -> EngineSnapshot:
    """Deserialise a snapshot taken of the market whose digest is ``market_digest``.

    Raises
    ------
    SnapshotFormatError
        The bytes are not a snapshot, have another format version, or belong to another
        market definition.
    """
    try:
        snapshot = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotFormatError(f"not an engine snapshot: {exc}") from None
    if snapshot.format_version != FORMAT_VERSION:
        raise SnapshotFormatError(
            f"snapshot format version {snapshot.format_version}, expected {FORMAT_VERSION}"
        )
    if snapshot.market_digest != market_digest:
        raise SnapshotFormatError("snapshot was taken of a different market definition")
    return snapshot


def load(data: bytes, market) -> EngineSnapshot:
    """:func:`decode` plus the structural checks every engine needs before restoring.

    The instruments must be the market's, in its order; each side's orders must be in priority
    order (best price first); a ledger must be present exactly when the market runs a registry.

    Raises
    ------
    SnapshotFormatError
        As :func:`decode`, or a snapshot that breaks one of these rules.
    """
    snapshot = decode(data, market.digest())
    symbols = [instrument.symbol for instrument in market.instruments]
    if [saved.symbol for saved in snapshot.instruments] != symbols:
        raise SnapshotFormatError("snapshot instruments differ from the market's")
    for saved in snapshot.instruments:
        for name, orders, best_first_high in (
            ("bids", saved.bids, True),
            ("asks", saved.asks, False),
        ):
            prices = [o.price_ticks for o in orders]
            if prices != sorted(prices, reverse=best_first_high):
                raise SnapshotFormatError(f"{saved.symbol} {name} are not in priority order")
    if (snapshot.ledger is not None) != market.registry:
        raise SnapshotFormatError("snapshot and market disagree on running a registry")
    if snapshot.modes is not None:
        _check_modes(snapshot.modes, market)
    return snapshot


def empty_modes(n_instruments: int) -> ModesSnapshot:
    """The modes' state of a fresh engine (what an older snapshot without it means)."""
    return ModesSnapshot([(0, 0, 0, 0, 0, 0, 0)] * n_instruments, [], [])


def _check_modes(modes: ModesSnapshot, market) -> None:
    n_inst = len(market.instruments)
    if len(modes.instruments) != n_inst:
        raise SnapshotFormatError("snapshot has trading-mode figures for another instrument count")
    for index, row in enumerate(modes.instruments):
        if not 0 <= row[0] < len(market.phases(index)):
            raise SnapshotFormatError(
                f"instrument {index} is in phase {row[0]}, not in its schedule"
            )
    capacity = market.capacity
    offer_ids = [o.offer_id for o in modes.block_offers]
    auction_ids = [a.auction_id for a in modes.auctions]
    bid_ids = [b.bid_id for a in modes.auctions for b in a.bids]
    for name, ids, limit in (
        ("block offers", offer_ids, capacity.block_offers),
        ("auctions", auction_ids, capacity.auctions),
        ("auction bids", bid_ids, capacity.auction_bids),
    ):
        if len(ids) > limit:
            raise SnapshotFormatError(f"more {name} than capacity")
        if any(i <= 0 for i in ids) or len(set(ids)) != len(ids):
            raise SnapshotFormatError(f"{name} ids must be positive and unique")
    if offer_ids != sorted(offer_ids) or auction_ids != sorted(auction_ids):
        raise SnapshotFormatError("block offers and auctions must ascend by id")
    for offer in modes.block_offers:
        if not 0 <= offer.instrument < n_inst or offer.side not in (1, 2):
            raise SnapshotFormatError(f"block offer {offer.offer_id} is malformed")
    for auction in modes.auctions:
        if not 0 <= auction.instrument < n_inst or auction.state not in (1, 2):
            raise SnapshotFormatError(f"auction {auction.auction_id} is malformed")
        if auction.state == 1 and auction.bids:
            raise SnapshotFormatError(f"auction {auction.auction_id} has bids before bidding")

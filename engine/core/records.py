"""The hot view: commands and events as fixed-width records, and conversion to the typed view.

Theory of operation
-------------------
The compiled kernel and the log never see a Python object.  A batch of commands is a numpy
structured array of :data:`COMMAND_DTYPE` (64 bytes a command, little-endian, the log's body
format); the kernel writes events into a preallocated array of :data:`EVENT_DTYPE` (16 int64
columns).  The ``kind`` of a record equals the msgspec tag of its typed counterpart in
``engine.core.schema``.

Where each typed field lives in its record is declared once, per kind: :data:`COMMAND_LAYOUT`
and :data:`EVENT_LAYOUT`.  Everything else is generated from those two tables at import: the
:class:`Codec`'s encode and decode functions for every kind, both directions (as source, so
each is as fast as a hand-written branch), and the named column aliases of each event kind
(``TRADE_EXECUTED.maker_order_id == 10``), which the compiled kernels, the gateway and replay
use instead of the generic columns ``x0..x5``.

Symbols become dense instrument indices (their position in the market definition) here, at
the boundary, once; -1 means "every instrument" for session and mass-cancel commands.
"""

from __future__ import annotations

import collections
import enum
import operator
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from engine.core import schema as s
from engine.core.market import MarketDefinition

COMMAND_DTYPE = np.dtype(
    [
        ("seq", "<i8"),
        ("ts_ns", "<i8"),
        ("order_id", "<i8"),
        ("price_ticks", "<i8"),
        ("qty_t", "<i8"),
        ("aux", "<i8"),  # trading date (session commands); see the mappings below
        ("account", "<i4"),
        ("instrument", "<i4"),  # -1: all instruments; -2: a symbol the market does not list
        ("kind", "u1"),
        ("side", "u1"),
        ("order_type", "u1"),
        ("tif", "u1"),
        ("stp", "u1"),
        ("flags", "u1"),
        ("year", "<u2"),  # compliance year (registry commands)
    ]
)
assert COMMAND_DTYPE.itemsize == 64

INSTRUMENT_ALL = -1
INSTRUMENT_UNKNOWN = -2


def _tag(cls: type) -> int:
    return cls.__struct_config__.tag  # type: ignore[attr-defined]


# Command kinds: the schema's tags, as plain ints for the kernels.
K_SUBMIT = _tag(s.SubmitOrder)
K_CANCEL = _tag(s.CancelOrder)
K_MODIFY = _tag(s.ModifyOrder)
K_MASS_CANCEL = _tag(s.MassCancel)
K_OPEN_SESSION = _tag(s.OpenSession)
K_CLOSE_SESSION = _tag(s.CloseSession)
K_HALT = _tag(s.HaltInstrument)
K_RESUME = _tag(s.ResumeInstrument)
K_SET_PHASE = _tag(s.SetTradingPhase)
K_OPEN_ACCOUNT = _tag(s.OpenAccount)
K_DEPOSIT = _tag(s.DepositCash)
K_WITHDRAW = _tag(s.WithdrawCash)
K_ISSUE = _tag(s.IssueAllowances)
K_CLAW_BACK = _tag(s.ClawBack)
K_TRANSFER = _tag(s.TransferAllowances)
K_FREEZE = _tag(s.FreezeAllowances)
K_UNFREEZE = _tag(s.UnfreezeAllowances)
K_FREEZE_ACCOUNT = _tag(s.FreezeAccount)
K_UNFREEZE_ACCOUNT = _tag(s.UnfreezeAccount)
K_CANCEL_ALLOWANCES = _tag(s.CancelAllowances)
K_REPORT = _tag(s.ReportEmissions)
K_SURRENDER = _tag(s.SurrenderAllowances)
K_CLOSE_YEAR = _tag(s.CloseComplianceYear)
K_BLOCK_OFFER = _tag(s.SubmitBlockOffer)
K_BLOCK_ACCEPT = _tag(s.AcceptBlockOffer)
K_BLOCK_CANCEL = _tag(s.CancelBlockOffer)
K_AUCTION_APPLY = _tag(s.ApplyAuction)
K_AUCTION_ANNOUNCE = _tag(s.AnnounceAuction)
K_AUCTION_BID = _tag(s.SubmitAuctionBid)
K_AUCTION_CLEAR = _tag(s.ClearAuction)
K_AUCTION_CANCEL = _tag(s.CancelAuction)

# Event columns: every event record is 16 int64 values.  The first ten have one meaning for
# every kind that uses them; x0..x5 mean what EVENT_LAYOUT below says for each kind, and are
# read and written through the per-kind aliases (TRADE_EXECUTED.maker_order_id, ...).
EVENT_FIELDS = 16
(
    E_KIND,
    E_SEQ,
    E_TS,
    E_INSTRUMENT,
    E_ORDER_ID,
    E_ACCOUNT,
    E_SIDE,
    E_PRICE,
    E_QTY,
    E_REASON,
    E_X0,
    E_X1,
    E_X2,
    E_X3,
    E_X4,
    E_X5,
) = range(EVENT_FIELDS)
EVENT_DTYPE = np.dtype(
    [
        (name, "<i8")
        for name in (
            "kind seq ts_ns instrument order_id account side price_ticks qty_t reason "
            "x0 x1 x2 x3 x4 x5"
        ).split()
    ]
)
assert EVENT_DTYPE.itemsize == EVENT_FIELDS * 8
_COMMAND_COLUMNS: tuple[str, ...] = tuple(COMMAND_DTYPE.names or ())
_EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_DTYPE.names or ())

# Event kinds: the schema's tags, as plain ints for the kernels.
EV_ACCEPTED = _tag(s.OrderAccepted)
EV_REJECTED = _tag(s.OrderRejected)
EV_TRADE = _tag(s.TradeExecuted)
EV_CANCELLED = _tag(s.OrderCancelled)
EV_MODIFIED = _tag(s.OrderModified)
EV_CANCEL_REJECTED = _tag(s.CancelRejected)
EV_MODIFY_REJECTED = _tag(s.ModifyRejected)
EV_SESSION_OPENED = _tag(s.SessionOpened)
EV_SESSION_CLOSED = _tag(s.SessionClosed)
EV_HALTED = _tag(s.InstrumentHalted)
EV_RESUMED = _tag(s.InstrumentResumed)
EV_COMMAND_REJECTED = _tag(s.CommandRejected)
EV_MASS_CANCELLED = _tag(s.MassCancelled)
EV_PHASE_CHANGED = _tag(s.TradingPhaseChanged)
EV_MODE_VOLUMES = _tag(s.SessionModeVolumes)
EV_COMPOSITE = _tag(s.CompositePrice)
EV_ACCOUNT_OPENED = _tag(s.AccountOpened)
EV_CASH_DEPOSITED = _tag(s.CashDeposited)
EV_CASH_WITHDRAWN = _tag(s.CashWithdrawn)
EV_ISSUED = _tag(s.AllowancesIssued)
EV_CLAWED_BACK = _tag(s.AllowancesClawedBack)
EV_TRANSFERRED = _tag(s.AllowancesTransferred)
EV_FROZEN = _tag(s.AllowancesFrozen)
EV_UNFROZEN = _tag(s.AllowancesUnfrozen)
EV_ACCOUNT_FROZEN = _tag(s.AccountFrozen)
EV_ACCOUNT_UNFROZEN = _tag(s.AccountUnfrozen)
EV_CANCELLED_ALLOWANCES = _tag(s.AllowancesCancelled)
EV_EMISSIONS = _tag(s.EmissionsReported)
EV_SURRENDERED = _tag(s.AllowancesSurrendered)
EV_COMPLIANCE = _tag(s.ComplianceReported)
EV_YEAR_CLOSED = _tag(s.ComplianceYearClosed)
EV_DUPLICATE = _tag(s.DuplicateCommand)
EV_REGISTRY_REJECTED = _tag(s.RegistryRejected)
EV_BLOCK_POSTED = _tag(s.BlockOfferPosted)
EV_BLOCK_REJECTED = _tag(s.BlockCommandRejected)
EV_BLOCK_TRADE = _tag(s.BlockTradeExecuted)
EV_BLOCK_CANCELLED = _tag(s.BlockOfferCancelled)
EV_AUCTION_APPLIED = _tag(s.AuctionApplied)
EV_AUCTION_ANNOUNCED = _tag(s.AuctionAnnounced)
EV_BID_ACCEPTED = _tag(s.AuctionBidAccepted)
EV_AUCTION_REJECTED = _tag(s.AuctionCommandRejected)
EV_AUCTION_TRADE = _tag(s.AuctionTrade)
EV_BID_RELEASED = _tag(s.AuctionBidReleased)
EV_AUCTION_CLEARED = _tag(s.AuctionCleared)
EV_AUCTION_CANCELLED = _tag(s.AuctionCancelled)

# --- the one declaration per mapping -------------------------------------------------------
# Each entry lists "record_field=typed_field" (or just "name" when both are called the same;
# "record_field=<int>" is a constant).  seq, ts_ns, kind (the tag) and the instrument (symbol
# <-> index) are implied.  Every typed field must appear; record fields left out are 0.
# Conversions follow from the types on either side: enums and bools to ints; into the
# command record's narrow columns a value is clamped (int32 accounts out of range -> -1,
# uint8 codes -> 255, uint16 years -> 0); a command whose instrument defaults to "" may name
# every instrument (-1).  Registry commands without an instrument carry -1.
_KEYED = "order_id=key account"
COMMAND_LAYOUT: dict[type, str] = {
    s.SubmitOrder: (
        "order_id account instrument side order_type tif stp price_ticks qty_t aux=quote_order_id"
    ),
    s.CancelOrder: "order_id account",
    s.ModifyOrder: "order_id account price_ticks qty_t",
    s.MassCancel: "account instrument",
    s.OpenSession: "instrument aux=trading_date",
    s.CloseSession: "instrument aux=trading_date",
    s.HaltInstrument: "instrument",
    s.ResumeInstrument: "instrument",
    s.SetTradingPhase: "instrument aux=phase",
    s.OpenAccount: f"{_KEYED} instrument=-1 side=kind order_type=sector price_ticks=province",
    s.DepositCash: f"{_KEYED} instrument=-1 qty_t=amount_fen",
    s.WithdrawCash: f"{_KEYED} instrument=-1 qty_t=amount_fen",
    s.IssueAllowances: f"{_KEYED} instrument qty_t side=true_up",
    s.ClawBack: f"{_KEYED} instrument qty_t",
    s.TransferAllowances: f"{_KEYED} instrument qty_t aux=to_account",
    s.FreezeAllowances: f"{_KEYED} instrument qty_t",
    s.UnfreezeAllowances: f"{_KEYED} instrument qty_t",
    s.FreezeAccount: f"{_KEYED} instrument=-1",
    s.UnfreezeAccount: f"{_KEYED} instrument=-1",
    s.CancelAllowances: f"{_KEYED} instrument qty_t",
    s.ReportEmissions: (
        f"{_KEYED} instrument=-1 year qty_t=co2_t price_ticks=cf4_kg aux=c2f6_kg side=gwp"
    ),
    s.SurrenderAllowances: f"{_KEYED} instrument qty_t year",
    s.CloseComplianceYear: "order_id=key instrument=-1 year price_ticks=reference_price_ticks",
    s.SubmitBlockOffer: "order_id=offer_id account instrument side price_ticks qty_t aux=counterparty",
    s.AcceptBlockOffer: "order_id=offer_id account price_ticks qty_t",
    s.CancelBlockOffer: "order_id=offer_id account",
    s.ApplyAuction: "order_id=auction_id account instrument qty_t",
    s.AnnounceAuction: (
        "order_id=auction_id side=floor_rule order_type=clearing aux=window_start_ns "
        "price_ticks=window_end_ns"
    ),
    s.SubmitAuctionBid: "order_id=bid_id account price_ticks qty_t aux=auction_id",
    s.ClearAuction: "order_id=auction_id",
    s.CancelAuction: "order_id=auction_id",
}
"""Where each field of a command goes in its :data:`COMMAND_DTYPE` record."""

_ORDER = "order_id account side price_ticks qty_t"
EVENT_LAYOUT: dict[type, str] = {
    s.OrderAccepted: f"{_ORDER} x0=order_type x1=tif",
    s.OrderRejected: f"{_ORDER} reason",
    s.TradeExecuted: (
        "order_id=taker_order_id account=taker_account side=aggressor_side price_ticks qty_t "
        "x0=maker_order_id x1=maker_account x2=trade_id x3=taker_leaves_t x4=maker_leaves_t"
    ),
    s.OrderCancelled: f"{_ORDER} reason",
    s.OrderModified: f"{_ORDER} x0=priority_kept x1=old_price_ticks x2=old_qty_t",
    s.CancelRejected: "order_id account reason",
    s.ModifyRejected: "order_id account price_ticks qty_t reason",
    s.SessionOpened: (
        "price_ticks=reference_price_ticks x0=trading_date x1=lower_band_ticks x2=upper_band_ticks"
    ),
    s.SessionClosed: (
        "price_ticks=close_ticks qty_t=volume_t x0=trading_date x1=open_ticks x2=high_ticks "
        "x3=low_ticks x4=value_fen x5=trade_count"
    ),
    s.InstrumentHalted: "",
    s.InstrumentResumed: "",
    s.CommandRejected: "reason x0=command",
    s.MassCancelled: "account x0=cancelled_count",
    s.TradingPhaseChanged: "x0=phase x1=modes",
    s.SessionModeVolumes: (
        "qty_t=block_volume_t x0=trading_date x1=block_value_fen x2=block_trades "
        "x3=auction_volume_t x4=auction_value_fen x5=auction_trades"
    ),
    s.CompositePrice: "price_ticks x0=trading_date x1=vintages",
    s.AccountOpened: f"{_KEYED} x0=kind x1=sector x2=province",
    s.CashDeposited: f"{_KEYED} qty_t=amount_fen x0=available_fen",
    s.CashWithdrawn: f"{_KEYED} qty_t=amount_fen x0=available_fen",
    s.AllowancesIssued: f"{_KEYED} qty_t x0=true_up x1=tradable_t",
    s.AllowancesClawedBack: f"{_KEYED} qty_t x1=tradable_t",
    s.AllowancesTransferred: f"{_KEYED} qty_t x0=to_account",
    s.AllowancesFrozen: f"{_KEYED} qty_t",
    s.AllowancesUnfrozen: f"{_KEYED} qty_t",
    s.AccountFrozen: _KEYED,
    s.AccountUnfrozen: _KEYED,
    s.AllowancesCancelled: f"{_KEYED} qty_t",
    s.EmissionsReported: (
        f"{_KEYED} qty_t=obligation_t x0=year x1=co2_t x2=cf4_kg x3=c2f6_kg x4=gwp"
    ),
    s.AllowancesSurrendered: f"{_KEYED} qty_t x0=year",
    s.ComplianceReported: (
        "account price_ticks=reference_price_ticks qty_t=obligation_t x0=year x1=surrendered_t "
        "x2=offsets_t x3=shortfall_t x4=penalty_fen"
    ),
    s.ComplianceYearClosed: "order_id=key price_ticks=reference_price_ticks x0=year x1=entities",
    s.DuplicateCommand: "order_id=key reason=original_reason x0=original_seq x1=command",
    s.RegistryRejected: f"{_KEYED} reason x0=command",
    s.BlockOfferPosted: f"{_ORDER.replace('order_id', 'order_id=offer_id')} x0=counterparty",
    s.BlockCommandRejected: f"{_ORDER.replace('order_id', 'order_id=offer_id')} reason x0=command",
    s.BlockTradeExecuted: (
        "order_id=offer_id account=accepting_account side=offer_side price_ticks qty_t "
        "x0=offer_account x1=trade_id"
    ),
    s.BlockOfferCancelled: f"{_ORDER.replace('order_id', 'order_id=offer_id')} reason",
    s.AuctionApplied: "order_id=auction_id account qty_t",
    s.AuctionAnnounced: (
        "order_id=auction_id account qty_t price_ticks=floor_price_ticks x0=cap_price_ticks "
        "x1=floor_rule x2=clearing x3=window_start_ns x4=window_end_ns"
    ),
    s.AuctionBidAccepted: "order_id=bid_id account price_ticks qty_t x0=auction_id",
    s.AuctionCommandRejected: (
        "order_id=auction_id account price_ticks qty_t reason x0=command x1=bid_id"
    ),
    s.AuctionTrade: (
        "order_id=bid_id account=buyer_account price_ticks qty_t x0=auction_id x1=trade_id "
        "x2=seller_account x3=bid_unfilled_t"
    ),
    s.AuctionBidReleased: "order_id=bid_id account price_ticks qty_t x0=auction_id",
    s.AuctionCleared: (
        "order_id=auction_id account side=clearing price_ticks qty_t=sold_t x0=unsold_t "
        "x1=value_fen x2=fills x3=bids"
    ),
    s.AuctionCancelled: "order_id=auction_id account qty_t x0=bids",
}
"""Which of the 16 event columns each field of an event occupies."""

# Codes a registry command carries into the engine as given: an event decodes an unknown one
# to the bare int instead of failing (every other enum of an event is one the engine checked).
_OPEN_ENUMS = (s.AccountKind, s.Sector, s.GwpVersion)
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def _i32(value: int) -> int:
    """An account number for an int32 column; out of range becomes -1 (UNKNOWN_ACCOUNT)."""
    return value if _I32_MIN <= value <= _I32_MAX else -1


def _u8(value: int) -> int:
    """A code for a uint8 column; out of range becomes 255, which no enum uses."""
    return value if 0 <= value <= 255 else 255


def _u16(value: int) -> int:
    """A year for a uint16 column; out of range becomes 0, which no compliance year is."""
    return value if 0 <= value <= 65_535 else 0


_CLAMPS: dict[str, Callable[[int], int] | None] = {
    "<i4": _i32,
    "|u1": _u8,
    "<u2": _u16,
    "<i8": None,
}
_IMPLIED = ("seq", "ts_ns", "instrument")


def _parse(cls: type, spec: str, columns: tuple[str, ...]) -> dict[str, str | int]:
    """A layout entry -> {record column: typed field or constant}, checked against both."""
    mapping: dict[str, str | int] = {}
    for item in spec.split():
        column, _, source = item.partition("=")
        source = source or column
        mapping[column] = int(source) if source.lstrip("-").isdigit() else source
    fields = {f.name for f in msgspec.structs.fields(cls)}
    named = [v for v in mapping.values() if isinstance(v, str)]
    assert set(mapping) <= set(columns) and not {"kind", "seq", "ts_ns"} & set(mapping), cls
    assert len(named) == len(set(named)), cls
    assert set(named) | ({"seq", "ts_ns", "instrument"} & fields) == fields, (cls, fields)
    return mapping


def _field_types(cls: type) -> dict[str, object]:
    return {f.name: f.type for f in msgspec.structs.fields(cls)}


class _Lenient(dict):
    """An enum's members by value, where a value that is no member decodes to itself."""

    def __missing__(self, key: int) -> int:
        return key


class _Bools(dict):
    def __missing__(self, key: int) -> bool:
        return bool(key)


class _Symbols(dict):
    """A market's symbols by instrument index ("" for -1, all); any other index is "?"."""

    def __missing__(self, key: int) -> str:
        return "?"


_BOOLS = _Bools({0: False, 1: True})


def _table(field_type: object, strict: bool) -> dict | None:
    """The lookup converting a record value to a typed field (None: the int is the value)."""
    if field_type is bool:
        return _BOOLS
    if isinstance(field_type, type) and issubclass(field_type, enum.IntEnum):
        members = {m.value: m for m in field_type}
        return members if strict and field_type not in _OPEN_ENUMS else _Lenient(members)
    return None


def _bit(value: bool) -> int:
    return 1 if value else 0


def _plan(cls: type, columns: dict[str, int], strict: bool) -> tuple:
    """How to decode ``cls``: (field names, the record column of each, (column, table)
    conversions).  The instrument's table (None here) is the codec's symbols."""
    fields = [f.name for f in msgspec.structs.fields(cls)]
    types = _field_types(cls)
    conversions = [
        (columns[name], None if name == "instrument" else _table(types[name], strict))
        for name in fields
        if name == "instrument" or _table(types[name], strict) is not None
    ]
    assert len(fields) >= 2, "an itemgetter of one position would not return a tuple"
    return fields, [columns[name] for name in fields], conversions


def _decoder(make: Callable, columns: list[int], conversions: list) -> Callable:
    """decode(record as a list it may overwrite) -> ``make(*fields)``: the columns needing it
    are converted in place (a dict lookup each), then one C itemgetter picks every field.
    Unrolled, not looped: this runs for every event the engine emits."""
    get = operator.itemgetter(*columns)
    if not conversions:
        return lambda r: make(*get(r))
    (c0, t0), *rest = conversions
    if not rest:

        def decode1(r: list) -> Any:
            r[c0] = t0[r[c0]]
            return make(*get(r))

        return decode1
    (c1, t1), *rest = rest
    if not rest:

        def decode2(r: list) -> Any:
            r[c0], r[c1] = t0[r[c0]], t1[r[c1]]
            return make(*get(r))

        return decode2
    (c2, t2), *rest = rest
    if not rest:

        def decode3(r: list) -> Any:
            r[c0], r[c1], r[c2] = t0[r[c0]], t1[r[c1]], t2[r[c2]]
            return make(*get(r))

        return decode3
    (c3, t3), *rest = rest
    if not rest:

        def decode4(r: list) -> Any:
            r[c0], r[c1], r[c2], r[c3] = t0[r[c0]], t1[r[c1]], t2[r[c2]], t3[r[c3]]
            return make(*get(r))

        return decode4
    (c4, t4), *rest = rest
    assert not rest, "at most five converted fields"

    def decode5(r: list) -> Any:
        r[c0], r[c1], r[c2], r[c3] = t0[r[c0]], t1[r[c1]], t2[r[c2]], t3[r[c3]]
        r[c4] = t4[r[c4]]
        return make(*get(r))

    return decode5


def _with_symbols(conversions: list, symbols: dict) -> list:
    return [(column, symbols if table is None else table) for column, table in conversions]


def _order_event_decoders(names: dict) -> dict[int, Callable]:
    """Hand-unrolled decoders of the four events of the order path (accepted, trade,
    cancelled, modified): the typed API decodes one or more for every order command, and
    unpacking the row into locals costs about half of the generated decoder's in-place
    conversions and itemgetter.  ``tests/test_codec.py`` holds them equal to the generated
    ones, which follow :data:`EVENT_LAYOUT`."""
    side, otype, tif = _table(s.Side, True), _table(s.OrderType, True), _table(s.TimeInForce, True)
    cancel, kept = _table(s.CancelReason, True), _BOOLS
    assert side is not None and otype is not None and tif is not None and cancel is not None
    accepted, trade = s.OrderAccepted, s.TradeExecuted
    cancelled, modified = s.OrderCancelled, s.OrderModified

    def decode_accepted(r: list) -> Any:
        _, seq, ts, ins, oid, acct, sd, price, qty, _, x0, x1, _, _, _, _ = r
        return accepted(seq, ts, oid, acct, names[ins], side[sd], otype[x0], tif[x1], price, qty)

    def decode_trade(r: list) -> Any:
        _, seq, ts, ins, oid, acct, sd, price, qty, _, x0, x1, x2, x3, x4, _ = r
        return trade(seq, ts, x2, names[ins], price, qty, side[sd], oid, acct, x0, x1, x3, x4)

    def decode_cancelled(r: list) -> Any:
        _, seq, ts, ins, oid, acct, sd, price, qty, reason, _, _, _, _, _, _ = r
        return cancelled(seq, ts, oid, acct, names[ins], side[sd], price, qty, cancel[reason])

    def decode_modified(r: list) -> Any:
        _, seq, ts, ins, oid, acct, sd, price, qty, _, x0, x1, x2, _, _, _ = r
        return modified(seq, ts, oid, acct, names[ins], side[sd], price, qty, kept[x0], x1, x2)

    return {
        _tag(accepted): decode_accepted,
        _tag(trade): decode_trade,
        _tag(cancelled): decode_cancelled,
        _tag(modified): decode_modified,
    }


def _keywords(cls: type, fields: list[str]) -> Callable:
    """A constructor taking the fields positionally (commands are keyword-only structs)."""
    keys = tuple(fields)
    return lambda *values: cls(**dict(zip(keys, values, strict=True)))


def _command_functions(cls: type, spec: str) -> tuple[Callable, tuple]:
    """(encode(command, index, index_all) -> record tuple, the plan to decode one)."""
    mapping = _parse(cls, spec, _COMMAND_COLUMNS)
    types = _field_types(cls)
    names = _COMMAND_COLUMNS
    column_of = {v: names.index(k) for k, v in mapping.items() if isinstance(v, str)}
    column_of.update(seq=names.index("seq"), ts_ns=names.index("ts_ns"))
    template = [0] * len(names)
    template[names.index("kind")] = _tag(cls)
    for column, value in mapping.items():
        if isinstance(value, int):
            template[names.index(column)] = value
    fields = [f for f in types if f != "instrument"]
    positions = tuple(column_of[f] for f in fields)
    get = operator.attrgetter(*fields)
    clamps = tuple(
        _bit if types[f] is bool else _CLAMPS[COMMAND_DTYPE[names[column_of[f]]].str]
        for f in fields
    )
    plan = tuple(zip(positions, clamps, strict=True))
    instrument = names.index("instrument") if "instrument" in types else -1
    allow_all = any(
        f.name == "instrument" and f.default == s.ALL_INSTRUMENTS
        for f in msgspec.structs.fields(cls)
    )

    def encode(c: Any, index: dict, index_all: dict) -> tuple:
        out = template.copy()
        for (position, clamp), value in zip(plan, get(c)):
            out[position] = value if clamp is None else clamp(value)
        if instrument >= 0:
            symbols = index_all if allow_all else index
            out[instrument] = symbols.get(c.instrument, INSTRUMENT_UNKNOWN)
        return tuple(out)

    return encode, _plan(cls, column_of | {"instrument": instrument}, False)


def _event_functions(cls: type, spec: str) -> tuple[Callable, tuple]:
    """(encode(event, index_all) -> 16-int list, the plan to decode one)."""
    mapping = _parse(cls, spec, _EVENT_COLUMNS)
    types = _field_types(cls)
    column_of = {str(v): _EVENT_COLUMNS.index(k) for k, v in mapping.items()}
    column_of.update(seq=E_SEQ, ts_ns=E_TS, instrument=E_INSTRUMENT)
    template = [0] * EVENT_FIELDS
    template[E_KIND] = _tag(cls)
    fields = [f for f in types if f != "instrument"]
    positions = tuple(column_of[f] for f in fields)
    get = operator.attrgetter(*fields)
    has_instrument = "instrument" in types

    def encode(e: Any, index_all: dict) -> list[int]:
        out = template.copy()
        for position, value in zip(positions, get(e)):
            out[position] = int(value)
        if has_instrument:
            out[E_INSTRUMENT] = index_all.get(e.instrument, INSTRUMENT_UNKNOWN)
        return out

    return encode, _plan(cls, column_of, True)


def _event_columns(cls: type) -> Any:
    """The named column aliases of one event kind, from :data:`EVENT_LAYOUT`: a named tuple of
    ints (Numba reads a global named tuple as constants, so kernels index rows with them)."""
    mapping = _parse(cls, EVENT_LAYOUT[cls], _EVENT_COLUMNS)
    implied = [
        (field, column)
        for field, column in (("seq", E_SEQ), ("ts_ns", E_TS), ("instrument", E_INSTRUMENT))
        if field in _field_types(cls)
    ]
    named = implied + [(str(v), _EVENT_COLUMNS.index(k)) for k, v in mapping.items()]
    columns = collections.namedtuple(f"{cls.__name__}Columns", [f for f, _ in named])  # type: ignore[misc]
    return columns(*[c for _, c in named])


_COMMAND_ENCODERS: dict[type, Callable] = {}
_COMMAND_PLANS: dict[int, tuple] = {}
for _cls, _spec in COMMAND_LAYOUT.items():
    _COMMAND_ENCODERS[_cls], _COMMAND_PLANS[_tag(_cls)] = _command_functions(_cls, _spec)
_COMMAND_CLASSES = {_tag(cls): cls for cls in COMMAND_LAYOUT}
_EVENT_ENCODERS: dict[type, Callable] = {}
_EVENT_PLANS: dict[int, tuple] = {}
for _cls, _spec in EVENT_LAYOUT.items():
    _EVENT_ENCODERS[_cls], _EVENT_PLANS[_tag(_cls)] = _event_functions(_cls, _spec)
_EVENT_CLASSES = {_tag(cls): cls for cls in EVENT_LAYOUT}
assert set(COMMAND_LAYOUT) == set(s.Command.__args__), "every command has a layout"  # type: ignore[attr-defined]
assert set(EVENT_LAYOUT) == set(s.Event.__args__), "every event has a layout"  # type: ignore[attr-defined]

# --- named column aliases, one namespace per event kind ---------------------------------------
ORDER_ACCEPTED = _event_columns(s.OrderAccepted)
ORDER_REJECTED = _event_columns(s.OrderRejected)
TRADE_EXECUTED = _event_columns(s.TradeExecuted)
ORDER_CANCELLED = _event_columns(s.OrderCancelled)
ORDER_MODIFIED = _event_columns(s.OrderModified)
CANCEL_REJECTED = _event_columns(s.CancelRejected)
MODIFY_REJECTED = _event_columns(s.ModifyRejected)
SESSION_OPENED = _event_columns(s.SessionOpened)
SESSION_CLOSED = _event_columns(s.SessionClosed)
INSTRUMENT_HALTED = _event_columns(s.InstrumentHalted)
INSTRUMENT_RESUMED = _event_columns(s.InstrumentResumed)
COMMAND_REJECTED = _event_columns(s.CommandRejected)
MASS_CANCELLED = _event_columns(s.MassCancelled)
TRADING_PHASE_CHANGED = _event_columns(s.TradingPhaseChanged)
SESSION_MODE_VOLUMES = _event_columns(s.SessionModeVolumes)
COMPOSITE_PRICE = _event_columns(s.CompositePrice)
ACCOUNT_OPENED = _event_columns(s.AccountOpened)
CASH_DEPOSITED = _event_columns(s.CashDeposited)
CASH_WITHDRAWN = _event_columns(s.CashWithdrawn)
ALLOWANCES_ISSUED = _event_columns(s.AllowancesIssued)
ALLOWANCES_CLAWED_BACK = _event_columns(s.AllowancesClawedBack)
ALLOWANCES_TRANSFERRED = _event_columns(s.AllowancesTransferred)
ALLOWANCES_FROZEN = _event_columns(s.AllowancesFrozen)
ALLOWANCES_UNFROZEN = _event_columns(s.AllowancesUnfrozen)
ACCOUNT_FROZEN = _event_columns(s.AccountFrozen)
ACCOUNT_UNFROZEN = _event_columns(s.AccountUnfrozen)
ALLOWANCES_CANCELLED = _event_columns(s.AllowancesCancelled)
EMISSIONS_REPORTED = _event_columns(s.EmissionsReported)
ALLOWANCES_SURRENDERED = _event_columns(s.AllowancesSurrendered)
COMPLIANCE_REPORTED = _event_columns(s.ComplianceReported)
COMPLIANCE_YEAR_CLOSED = _event_columns(s.ComplianceYearClosed)
DUPLICATE_COMMAND = _event_columns(s.DuplicateCommand)
REGISTRY_REJECTED = _event_columns(s.RegistryRejected)
BLOCK_OFFER_POSTED = _event_columns(s.BlockOfferPosted)
BLOCK_COMMAND_REJECTED = _event_columns(s.BlockCommandRejected)
BLOCK_TRADE_EXECUTED = _event_columns(s.BlockTradeExecuted)
BLOCK_OFFER_CANCELLED = _event_columns(s.BlockOfferCancelled)
AUCTION_APPLIED = _event_columns(s.AuctionApplied)
AUCTION_ANNOUNCED = _event_columns(s.AuctionAnnounced)
AUCTION_BID_ACCEPTED = _event_columns(s.AuctionBidAccepted)
AUCTION_COMMAND_REJECTED = _event_columns(s.AuctionCommandRejected)
AUCTION_TRADE = _event_columns(s.AuctionTrade)
AUCTION_BID_RELEASED = _event_columns(s.AuctionBidReleased)
AUCTION_CLEARED = _event_columns(s.AuctionCleared)
AUCTION_CANCELLED = _event_columns(s.AuctionCancelled)


class Codec:
    """Converts between the typed view and the record view for one market definition.

    Every conversion is one of the functions generated from :data:`COMMAND_LAYOUT` and
    :data:`EVENT_LAYOUT`; the codec only adds the market's symbol <-> index tables.
    """

    def __init__(self, market: MarketDefinition) -> None:
        self.symbols: list[str] = market.symbols
        self._index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._index_all = {**self._index, s.ALL_INSTRUMENTS: INSTRUMENT_ALL}
        self._names = _Symbols(enumerate(self.symbols))
        self._names[INSTRUMENT_ALL] = s.ALL_INSTRUMENTS
        # the decoders bind this market's symbols (the instrument is one of their lookups)
        self._command_decoders: dict[int, Callable] = {}
        for kind, (fields, picks, conversions) in _COMMAND_PLANS.items():
            make = _keywords(_COMMAND_CLASSES[kind], fields)
            self._command_decoders[kind] = _decoder(
                make, picks, _with_symbols(conversions, self._names)
            )
        self._event_decoders: dict[int, Callable] = {}
        for kind, (_, picks, conversions) in _EVENT_PLANS.items():
            self._event_decoders[kind] = _decoder(
                _EVENT_CLASSES[kind], picks, _with_symbols(conversions, self._names)
            )
        self._event_decoders.update(_order_event_decoders(self._names))

    def instrument_index(self, symbol: str, allow_all: bool = False) -> int:
        """A symbol's instrument index; -2 if the market does not list it (-1: "" if allowed)."""
        return (self._index_all if allow_all else self._index).get(symbol, INSTRUMENT_UNKNOWN)

    def symbol(self, index: int) -> str:
        """An instrument index's symbol ("" for -1, all instruments; "?" if unknown)."""
        return self._names[index]

    # -- commands ----------------------------------------------------------------------------
    def command_tuple(self, c: s.Command) -> tuple:
        """One command as a tuple in :data:`COMMAND_DTYPE` field order."""
        encode = _COMMAND_ENCODERS.get(type(c))
        if encode is None:
            raise TypeError(f"not a command: {c!r}")
        return encode(c, self._index, self._index_all)

    def encode_commands(self, commands: list) -> np.ndarray:
        """Typed commands -> a record array of :data:`COMMAND_DTYPE`."""
        return np.array([self.command_tuple(c) for c in commands], dtype=COMMAND_DTYPE)

    def decode_command(self, r: tuple) -> s.Command:
        """One record (as a tuple, ``array.tolist()`` element) -> its typed command."""
        decode = self._command_decoders.get(r[8])
        if decode is None:
            raise ValueError(f"unknown command kind {r[8]}")
        return decode(list(r))

    def decode_commands(self, records: np.ndarray) -> list:
        """A record array of :data:`COMMAND_DTYPE` -> typed commands."""
        return [self.decode_command(r) for r in records.tolist()]

    # -- events ------------------------------------------------------------------------------
    def event(self, r: list | tuple) -> s.Event:
        """One event record (16 ints) -> its typed event."""
        decode = self._event_decoders.get(r[0])
        if decode is None:
            raise ValueError(f"unknown event kind {r[0]}")
        return decode(list(r))

    def decode_events(self, records: np.ndarray) -> list:
        """Event records (structured or (n, 16) int64) -> typed events."""
        return self.events(records.view(np.int64).reshape(-1, EVENT_FIELDS).tolist())

    def events(self, rows: list) -> list:
        """Event records as lists of 16 ints (``array.tolist()``) -> typed events.

        The decoders convert the lists in place: pass lists nothing else reads afterwards.
        """
        decoders = self._event_decoders
        try:
            return [decoders[r[0]](r) for r in rows]
        except KeyError:  # an unknown kind is a ValueError, as from :meth:`event`
            for r in rows:
                if r[0] not in decoders:
                    raise ValueError(f"unknown event kind {r[0]}") from None
            raise

    def event_row(self, e: s.Event) -> list[int]:
        """A typed event -> its 16-int record (the inverse of :meth:`event`)."""
        return _EVENT_ENCODERS[type(e)](e, self._index_all)

    def encode_events(self, events: list) -> np.ndarray:
        """Typed events -> a record array of :data:`EVENT_DTYPE`."""
        out = np.zeros(len(events), dtype=EVENT_DTYPE)
        if events:
            out.view(np.int64).reshape(-1, EVENT_FIELDS)[:] = [self.event_row(e) for e in events]
        return out

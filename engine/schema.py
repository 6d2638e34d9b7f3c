"""The typed view of every command and event: frozen msgspec Structs with explicit integer tags.

Theory of operation
-------------------
A *command* is imperative (``SubmitOrder``); an *event* is past tense (``OrderAccepted``).  The
engine turns commands into events and nothing else.  Every command carries the sequence number
and timestamp that the sequencer assigned (``seq``, ``ts_ns``); the engine echoes them in every
event the command produced and never reads a clock.

The same commands and events also exist as fixed-width records (``engine.records``): that is
the hot view the compiled kernel and the log use.  The integer ``tag`` of each Struct equals the
``kind`` field of its record, so the two views convert without a lookup table of names.

Schema evolution: fields are only ever appended, with defaults; tags, field names and field
types never change; enum codes are never reused (msgspec's schema-evolution rules).
"""

from __future__ import annotations

import enum
from typing import Union

import msgspec

ALL_INSTRUMENTS = ""
"""``instrument`` value of a session or mass-cancel command that applies to every instrument."""


class Side(enum.IntEnum):
    BUY = 1
    SELL = 2


class OrderType(enum.IntEnum):
    LIMIT = 1
    """Trades up to its limit price; the remainder rests (DAY, GTC) or is cancelled (IOC, FOK)."""
    MARKET = 2
    """Trades at the best prices but never outside the price band; never rests (IOC or FOK)."""
    POST_ONLY = 3
    """A limit order that is refused (``WOULD_TRADE``) if it would trade on arrival."""


class TimeInForce(enum.IntEnum):
    DAY = 1
    """Rests until cancelled or until the instrument's session closes."""
    GTC = 2
    """Good till cancelled: rests across sessions."""
    IOC = 3
    """Immediate or cancel: trades what it can now, the remainder is cancelled."""
    FOK = 4
    """Fill or kill: trades its whole quantity now or nothing at all."""


class StpMode(enum.IntEnum):
    """Self-trade prevention: what happens when an order would trade with its own account.

    The *incoming* order's mode decides.  A wash trade never prints.
    """

    CANCEL_INCOMING = 1
    CANCEL_RESTING = 2
    CANCEL_BOTH = 3


class SessionState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALTED = 2


class RejectReason(enum.IntEnum):
    """Stable codes for every refusal.  Codes are never renumbered or reused.

    Checks run in the fixed order documented in ``docs/MATCHING.md``, so the same bad command
    always receives the same reason.
    """

    NONE = 0
    UNKNOWN_INSTRUMENT = 1
    SESSION_CLOSED = 2
    INSTRUMENT_HALTED = 3
    UNKNOWN_ACCOUNT = 4
    INVALID_ORDER_TYPE = 5
    """Unknown side, order type or self-trade-prevention mode."""
    INVALID_TIME_IN_FORCE = 6
    """Unknown time in force, or one the order type does not allow (market DAY, post-only IOC)."""
    INVALID_QUANTITY = 7
    """Quantity outside the instrument's minimum … maximum order size."""
    QUANTITY_OFF_LOT = 8
    PRICE_OFF_TICK = 9
    PRICE_OUT_OF_BAND = 10
    INVALID_ORDER_ID = 11
    """Order ids are positive integers."""
    DUPLICATE_ORDER_ID = 12
    """A resting order already has this id."""
    BOOK_FULL = 13
    """The engine's resting-order capacity is exhausted."""
    WOULD_TRADE = 14
    """A post-only order (or a post-only order's modify) would trade on arrival."""
    UNKNOWN_ORDER = 15
    """Cancel or modify of an order that is not resting: filled, cancelled, or never seen."""
    NOT_ORDER_OWNER = 16
    SESSION_ALREADY_OPEN = 17
    SESSION_NOT_OPEN = 18
    INSTRUMENT_NOT_HALTED = 19
    INVALID_TRADING_DATE = 20
    """A session may only open on a trading date later than the last one."""


class CancelReason(enum.IntEnum):
    REQUESTED = 1
    IOC_REMAINDER = 2
    """The unfilled remainder of an IOC or market order."""
    FOK_NOT_FILLABLE = 3
    SELF_TRADE_PREVENTED = 4
    MASS_CANCEL = 5
    SESSION_END = 6


# ------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------

_CMD = dict(frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True)


class SubmitOrder(msgspec.Struct, tag=1, **_CMD):
    """Enter a new order.  ``price_ticks`` is ignored for market orders."""

    order_id: int
    account: int
    instrument: str
    side: Side
    qty_t: int
    price_ticks: int = 0
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    stp: StpMode = StpMode.CANCEL_INCOMING
    seq: int = 0
    ts_ns: int = 0


class CancelOrder(msgspec.Struct, tag=2, **_CMD):
    order_id: int
    account: int
    seq: int = 0
    ts_ns: int = 0


class ModifyOrder(msgspec.Struct, tag=3, **_CMD):
    """Change a resting order's price and/or its open (remaining) quantity.

    Same price and a quantity no larger than the open quantity keeps time priority; anything
    else is a cancel plus reinsert that loses priority and may trade on arrival.
    """

    order_id: int
    account: int
    price_ticks: int
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class MassCancel(msgspec.Struct, tag=4, **_CMD):
    """Cancel every resting order of ``account`` (in one instrument, or in all)."""

    account: int
    instrument: str = ALL_INSTRUMENTS
    seq: int = 0
    ts_ns: int = 0


class OpenSession(msgspec.Struct, tag=10, **_CMD):
    """Open continuous trading for ``trading_date`` (YYYYMMDD) in one or every instrument."""

    trading_date: int
    instrument: str = ALL_INSTRUMENTS
    seq: int = 0
    ts_ns: int = 0


class CloseSession(msgspec.Struct, tag=11, **_CMD):
    """Close the session: expire day orders, publish the day's prices, roll the reference."""

    trading_date: int
    instrument: str = ALL_INSTRUMENTS
    seq: int = 0
    ts_ns: int = 0


class HaltInstrument(msgspec.Struct, tag=12, **_CMD):
    instrument: str
    seq: int = 0
    ts_ns: int = 0


class ResumeInstrument(msgspec.Struct, tag=13, **_CMD):
    instrument: str
    seq: int = 0
    ts_ns: int = 0


Command = Union[
    SubmitOrder,
    CancelOrder,
    ModifyOrder,
    MassCancel,
    OpenSession,
    CloseSession,
    HaltInstrument,
    ResumeInstrument,
]
COMMAND_TYPES: tuple[type, ...] = Command.__args__  # type: ignore[attr-defined]

# ------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------

_EVT = dict(frozen=True, tag_field="type")


class OrderAccepted(msgspec.Struct, tag=1, **_EVT):
    seq: int
    ts_ns: int
    order_id: int
    account: int
    instrument: str
    side: Side
    order_type: OrderType
    tif: TimeInForce
    price_ticks: int
    qty_t: int


class OrderRejected(msgspec.Struct, tag=2, **_EVT):
    seq: int
    ts_ns: int
    order_id: int
    account: int
    instrument: str
    side: int
    price_ticks: int
    qty_t: int
    reason: RejectReason


class TradeExecuted(msgspec.Struct, tag=3, **_EVT):
    """One fill.  ``price_ticks`` is the resting (maker) order's price."""

    seq: int
    ts_ns: int
    trade_id: int
    instrument: str
    price_ticks: int
    qty_t: int
    aggressor_side: Side
    taker_order_id: int
    taker_account: int
    maker_order_id: int
    maker_account: int
    taker_leaves_t: int
    maker_leaves_t: int


class OrderCancelled(msgspec.Struct, tag=4, **_EVT):
    """``qty_t`` is the open quantity that was cancelled."""

    seq: int
    ts_ns: int
    order_id: int
    account: int
    instrument: str
    side: Side
    price_ticks: int
    qty_t: int
    reason: CancelReason


class OrderModified(msgspec.Struct, tag=5, **_EVT):
    seq: int
    ts_ns: int
    order_id: int
    account: int
    instrument: str
    side: Side
    price_ticks: int
    qty_t: int
    priority_kept: bool
    old_price_ticks: int
    old_qty_t: int


class CancelRejected(msgspec.Struct, tag=6, **_EVT):
    seq: int
    ts_ns: int
    order_id: int
    account: int
    reason: RejectReason


class ModifyRejected(msgspec.Struct, tag=7, **_EVT):
    seq: int
    ts_ns: int
    order_id: int
    account: int
    price_ticks: int
    qty_t: int
    reason: RejectReason


class SessionOpened(msgspec.Struct, tag=8, **_EVT):
    seq: int
    ts_ns: int
    instrument: str
    trading_date: int
    reference_price_ticks: int
    lower_band_ticks: int
    upper_band_ticks: int


class SessionClosed(msgspec.Struct, tag=9, **_EVT):
    """The day's prices of one instrument.

    ``open`` is the first trade's price, ``close`` the volume-weighted average price of the
    day's trades rounded half up to the tick; both are the previous close when nothing traded,
    as are ``high`` and ``low``.  ``close`` is the next session's reference price.
    """

    seq: int
    ts_ns: int
    instrument: str
    trading_date: int
    open_ticks: int
    high_ticks: int
    low_ticks: int
    close_ticks: int
    volume_t: int
    value_fen: int
    trade_count: int


class InstrumentHalted(msgspec.Struct, tag=10, **_EVT):
    seq: int
    ts_ns: int
    instrument: str


class InstrumentResumed(msgspec.Struct, tag=11, **_EVT):
    seq: int
    ts_ns: int
    instrument: str


class CommandRejected(msgspec.Struct, tag=12, **_EVT):
    """Refusal of a session, halt or mass-cancel command.  ``command`` is the command's tag."""

    seq: int
    ts_ns: int
    command: int
    instrument: str
    reason: RejectReason


class MassCancelled(msgspec.Struct, tag=13, **_EVT):
    """Closes a mass cancel, after one ``OrderCancelled`` per order (ascending order id)."""

    seq: int
    ts_ns: int
    account: int
    instrument: str
    cancelled_count: int


Event = Union[
    OrderAccepted,
    OrderRejected,
    TradeExecuted,
    OrderCancelled,
    OrderModified,
    CancelRejected,
    ModifyRejected,
    SessionOpened,
    SessionClosed,
    InstrumentHalted,
    InstrumentResumed,
    CommandRejected,
    MassCancelled,
]
EVENT_TYPES: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]

# ------------------------------------------------------------------------------------------
# Query results (read-only views of the book; not part of the log)
# ------------------------------------------------------------------------------------------


class RestingOrder(msgspec.Struct, frozen=True):
    order_id: int
    account: int
    instrument: str
    side: Side
    price_ticks: int
    qty_t: int
    """Open (remaining) quantity."""
    order_type: OrderType
    tif: TimeInForce
    stp: StpMode


class DepthLevel(msgspec.Struct, frozen=True, array_like=True):
    price_ticks: int
    qty_t: int
    orders: int


class Depth(msgspec.Struct, frozen=True):
    """Aggregated top-of-book: bids best (highest) first, asks best (lowest) first."""

    instrument: str
    bids: list[DepthLevel]
    asks: list[DepthLevel]


class InstrumentStatus(msgspec.Struct, frozen=True):
    instrument: str
    state: SessionState
    trading_date: int
    reference_price_ticks: int
    lower_band_ticks: int
    upper_band_ticks: int

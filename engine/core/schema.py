"""The typed view of every command and event: frozen msgspec Structs with explicit integer tags.

Theory of operation
-------------------
A *command* is imperative (``SubmitOrder``); an *event* is past tense (``OrderAccepted``).  The
engine turns commands into events and nothing else.  Every command carries the sequence number
and timestamp that the sequencer assigned (``seq``, ``ts_ns``); the engine echoes them in every
event the command produced and never reads a clock.

The same commands and events also exist as fixed-width records (``engine.core.records``): that is
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
    HIT_QUOTE = 4
    """The carbon market's listing mode: trade against one named resting quote
    (``quote_order_id``) within the best five price levels, at its price (IOC or FOK)."""


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
    # --- registry and ledger (docs/LEDGER.md) ---
    ACCOUNT_MAY_NOT_TRADE = 21
    """Provincial-authority and fee accounts do not trade."""
    ACCOUNT_FROZEN = 22
    INSUFFICIENT_ALLOWANCES = 23
    INSUFFICIENT_CASH = 24
    INVALID_KEY = 25
    """Idempotency keys are positive integers."""
    REGISTRY_DISABLED = 26
    """The market definition runs without a registry (pure matching)."""
    INVALID_AMOUNT = 27
    ACCOUNT_EXISTS = 28
    INVALID_ACCOUNT_KIND = 29
    """Unknown account kind or sector code."""
    ACCOUNT_NOT_FROZEN = 30
    NOT_A_COMPLIANCE_ACCOUNT = 31
    INVALID_YEAR = 32
    YEAR_CLOSED = 33
    INVALID_GWP = 34
    VINTAGE_NOT_ELIGIBLE = 35
    """Surrender of a vintage later than the compliance year (no borrowing)."""
    OFFSET_LIMIT_EXCEEDED = 36
    """Offsets beyond the share of the obligation they may cover (5 % in the national ETS)."""
    REGISTRY_FULL = 37
    """The engine's table of idempotency keys is full."""
    FEE_ACCOUNT_NOT_OPEN = 38
    """Fees are charged but the market's fee account is not open (as kind FEE)."""
    # --- trading modes (docs/TRADING_MODES.md) ---
    MODE_NOT_ALLOWED = 39
    """The instrument's market definition does not offer this trading mode."""
    MODE_NOT_IN_PHASE = 40
    """The instrument's current trading phase does not allow this mode (e.g. a block offer
    outside the block session)."""
    QUOTE_NOT_FOUND = 41
    """Hit-quote: no resting order of the other side of this instrument has that id."""
    QUOTE_BEYOND_BEST_LEVELS = 42
    """Hit-quote: the quote is not within the best five price levels of its side."""
    QUOTE_OWN_ORDER = 43
    """Hit-quote: the quote belongs to the taker's own account."""
    UNKNOWN_BLOCK_OFFER = 44
    BLOCK_TERMS_MISMATCH = 45
    """An acceptance whose price or quantity differs from the offer's."""
    NOT_COUNTERPARTY = 46
    """A directed offer accepted by another account, or an offer accepted by its own account."""
    INVALID_COUNTERPARTY = 47
    """A directed offer naming an unknown account or the offering account itself."""
    UNKNOWN_AUCTION = 48
    AUCTION_STATE = 49
    """The auction is not in the state the command needs (announce: applied; bid and clear:
    bidding)."""
    INVALID_AUCTION_TERMS = 50
    """Unknown floor or clearing rule, or a window that ends before it starts."""
    SELLER_MAY_NOT_BID = 51
    INVALID_PHASE = 52
    """A trading-phase index outside the instrument's schedule."""


class AccountKind(enum.IntEnum):
    COMPLIANCE = 1
    """A key emitter with a compliance obligation."""
    INVESTOR = 2
    AUTHORITY = 3
    """A provincial authority: holds and passes on allowances, does not trade."""
    FEE = 4
    """The exchange's fee account: receives fees, does not trade."""


class Sector(enum.IntEnum):
    NONE = 0
    POWER = 1
    STEEL = 2
    CEMENT = 3
    ALUMINIUM = 4
    OTHER = 9


class GwpVersion(enum.IntEnum):
    """IPCC assessment report whose global-warming potentials convert CF4 and C2F6."""

    AR4 = 1
    AR5 = 2
    AR6 = 3


GWP_TABLE: dict[GwpVersion, tuple[int, int]] = {
    GwpVersion.AR4: (7_390, 12_200),
    GwpVersion.AR5: (6_630, 11_100),
    GwpVersion.AR6: (7_380, 12_400),
}
"""(CF4, C2F6) global-warming potentials, tCO2e per tonne of gas; CO2 is 1."""


class CancelReason(enum.IntEnum):
    REQUESTED = 1
    IOC_REMAINDER = 2
    """The unfilled remainder of an IOC or market order."""
    FOK_NOT_FILLABLE = 3
    SELF_TRADE_PREVENTED = 4
    MASS_CANCEL = 5
    SESSION_END = 6
    PHASE_END = 7
    """A block offer expired because the trading phase no longer allows block trades."""


class TradingMode(enum.IntFlag):
    """The national carbon market's trading modes, as bits (docs/TRADING_MODES.md)."""

    CONTINUOUS = 1
    """Price-time matching of limit, market and post-only orders."""
    HIT_QUOTE = 2
    """Listing mode: a taker hits one resting quote within the best five levels."""
    BLOCK = 4
    """Bilateral block trades of at least ``block_min_qty_t``."""
    AUCTION = 8
    """One-way auctions of a seller's lot."""


class FloorRule(enum.IntEnum):
    """An auction's floor price: the previous close, or the close less the auction band."""

    PREVIOUS_CLOSE = 1
    CLOSE_MINUS_BAND = 2


class ClearingRule(enum.IntEnum):
    UNIFORM = 1
    """Every accepted bid pays the lowest accepted bid's price."""
    PAY_AS_BID = 2
    """Every accepted bid pays its own price."""


class AuctionState(enum.IntEnum):
    APPLIED = 1
    """The seller's lot is locked; not yet announced."""
    BIDDING = 2
    """Announced: sealed bids are taken until the operator clears it."""


# ------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------

# gc=False: commands and events hold only ints, strings and enums, so they can never be part of a
# reference cycle; keeping them out of the cyclic collector's sight saves its scans when a
# caller keeps millions of them (measured: the Python API path of `bench core` ~1.4x faster).
_CMD = dict(frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True, gc=False)


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
    quote_order_id: int = 0
    """Hit-quote orders: the resting order to trade against."""


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


class SetTradingPhase(msgspec.Struct, tag=14, **_CMD):
    """Move an open instrument to phase ``phase`` (an index into its schedule).

    Phases say which trading modes are allowed (the national market: continuous and hit-quote
    09:30-11:30 and 13:00-15:00, block trades 13:00-15:00).  The engine never reads a clock:
    the operator (or its scheduler) sends this command at each phase boundary.
    """

    phase: int
    instrument: str = ALL_INSTRUMENTS
    seq: int = 0
    ts_ns: int = 0


class SubmitBlockOffer(msgspec.Struct, tag=40, **_CMD):
    """Post a block (bilateral) offer; ``counterparty`` -1 makes it open to every account."""

    offer_id: int
    account: int
    instrument: str
    side: Side
    qty_t: int
    price_ticks: int
    counterparty: int = -1
    seq: int = 0
    ts_ns: int = 0


class AcceptBlockOffer(msgspec.Struct, tag=41, **_CMD):
    """Accept a block offer: price and quantity must equal the offer's (both parties agree)."""

    offer_id: int
    account: int
    price_ticks: int
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class CancelBlockOffer(msgspec.Struct, tag=42, **_CMD):
    offer_id: int
    account: int
    seq: int = 0
    ts_ns: int = 0


class ApplyAuction(msgspec.Struct, tag=43, **_CMD):
    """A seller applies to sell a lot by one-way auction; the lot is locked at once."""

    auction_id: int
    account: int
    instrument: str
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class AnnounceAuction(msgspec.Struct, tag=44, **_CMD):
    """The operator announces an applied auction; sealed bidding opens.

    The window is published for participants; the operator's scheduler clears the auction at
    its end (the engine never reads a clock).
    """

    auction_id: int
    floor_rule: FloorRule = FloorRule.PREVIOUS_CLOSE
    clearing: ClearingRule = ClearingRule.UNIFORM
    window_start_ns: int = 0
    window_end_ns: int = 0
    seq: int = 0
    ts_ns: int = 0


class SubmitAuctionBid(msgspec.Struct, tag=45, **_CMD):
    """A sealed bid: its funds are locked until the auction clears or is cancelled."""

    bid_id: int
    auction_id: int
    account: int
    price_ticks: int
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class ClearAuction(msgspec.Struct, tag=46, **_CMD):
    """Rank the bids (price, then time) and fill the lot by the auction's clearing rule."""

    auction_id: int
    seq: int = 0
    ts_ns: int = 0


class CancelAuction(msgspec.Struct, tag=47, **_CMD):
    """Withdraw an auction before it clears: every bid and the seller's lot are released."""

    auction_id: int
    seq: int = 0
    ts_ns: int = 0


_REG = dict(frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True, gc=False)


class OpenAccount(msgspec.Struct, tag=20, **_REG):
    """Open ``account`` (a dense number below ``capacity.accounts``)."""

    key: int
    account: int
    kind: AccountKind
    sector: Sector = Sector.NONE
    province: int = 0
    """GB/T 2260 code of the province, e.g. 310000 (Shanghai)."""
    seq: int = 0
    ts_ns: int = 0


class DepositCash(msgspec.Struct, tag=21, **_REG):
    key: int
    account: int
    amount_fen: int
    seq: int = 0
    ts_ns: int = 0


class WithdrawCash(msgspec.Struct, tag=22, **_REG):
    key: int
    account: int
    amount_fen: int
    seq: int = 0
    ts_ns: int = 0


class IssueAllowances(msgspec.Struct, tag=23, **_REG):
    """Allocation (or, with ``true_up``, the final true-up) of a vintage to an account."""

    key: int
    account: int
    instrument: str
    qty_t: int
    true_up: bool = False
    seq: int = 0
    ts_ns: int = 0


class ClawBack(msgspec.Struct, tag=24, **_REG):
    key: int
    account: int
    instrument: str
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class TransferAllowances(msgspec.Struct, tag=25, **_REG):
    """A registry transfer between accounts, outside the order book."""

    key: int
    account: int
    to_account: int
    instrument: str
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class FreezeAllowances(msgspec.Struct, tag=26, **_REG):
    key: int
    account: int
    instrument: str
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class UnfreezeAllowances(msgspec.Struct, tag=27, **_REG):
    key: int
    account: int
    instrument: str
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class FreezeAccount(msgspec.Struct, tag=28, **_REG):
    key: int
    account: int
    seq: int = 0
    ts_ns: int = 0


class UnfreezeAccount(msgspec.Struct, tag=29, **_REG):
    key: int
    account: int
    seq: int = 0
    ts_ns: int = 0


class CancelAllowances(msgspec.Struct, tag=30, **_REG):
    """Voluntary cancellation: the allowances leave circulation for good."""

    key: int
    account: int
    instrument: str
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class ReportEmissions(msgspec.Struct, tag=31, **_REG):
    """Verified emissions of a compliance year; replaces an earlier report of that year."""

    key: int
    account: int
    year: int
    co2_t: int
    cf4_kg: int = 0
    c2f6_kg: int = 0
    gwp: GwpVersion = GwpVersion.AR5
    seq: int = 0
    ts_ns: int = 0


class SurrenderAllowances(msgspec.Struct, tag=32, **_REG):
    """Surrender allowances (vintage <= year) or offsets against a year's obligation."""

    key: int
    account: int
    instrument: str
    year: int
    qty_t: int
    seq: int = 0
    ts_ns: int = 0


class CloseComplianceYear(msgspec.Struct, tag=33, **_REG):
    """Close a year: report every entity's position, with penalties at the given price."""

    key: int
    year: int
    reference_price_ticks: int
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
    OpenAccount,
    DepositCash,
    WithdrawCash,
    IssueAllowances,
    ClawBack,
    TransferAllowances,
    FreezeAllowances,
    UnfreezeAllowances,
    FreezeAccount,
    UnfreezeAccount,
    CancelAllowances,
    ReportEmissions,
    SurrenderAllowances,
    CloseComplianceYear,
    SetTradingPhase,
    SubmitBlockOffer,
    AcceptBlockOffer,
    CancelBlockOffer,
    ApplyAuction,
    AnnounceAuction,
    SubmitAuctionBid,
    ClearAuction,
    CancelAuction,
]
REGISTRY_COMMAND_TYPES: tuple[type, ...] = (
    OpenAccount,
    DepositCash,
    WithdrawCash,
    IssueAllowances,
    ClawBack,
    TransferAllowances,
    FreezeAllowances,
    UnfreezeAllowances,
    FreezeAccount,
    UnfreezeAccount,
    CancelAllowances,
    ReportEmissions,
    SurrenderAllowances,
    CloseComplianceYear,
)
COMMAND_TYPES: tuple[type, ...] = Command.__args__  # type: ignore[attr-defined]
BLOCK_COMMAND_TYPES: tuple[type, ...] = (SubmitBlockOffer, AcceptBlockOffer, CancelBlockOffer)
AUCTION_COMMAND_TYPES: tuple[type, ...] = (
    ApplyAuction,
    AnnounceAuction,
    SubmitAuctionBid,
    ClearAuction,
    CancelAuction,
)

# ------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------

_EVT = dict(frozen=True, tag_field="type", gc=False)


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


class AccountOpened(msgspec.Struct, tag=20, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    kind: AccountKind
    sector: Sector
    province: int


class CashDeposited(msgspec.Struct, tag=21, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    amount_fen: int
    available_fen: int


class CashWithdrawn(msgspec.Struct, tag=22, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    amount_fen: int
    available_fen: int


class AllowancesIssued(msgspec.Struct, tag=23, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    instrument: str
    qty_t: int
    true_up: bool
    tradable_t: int


class AllowancesClawedBack(msgspec.Struct, tag=24, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    instrument: str
    qty_t: int
    tradable_t: int


class AllowancesTransferred(msgspec.Struct, tag=25, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    to_account: int
    instrument: str
    qty_t: int


class AllowancesFrozen(msgspec.Struct, tag=26, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    instrument: str
    qty_t: int


class AllowancesUnfrozen(msgspec.Struct, tag=27, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    instrument: str
    qty_t: int


class AccountFrozen(msgspec.Struct, tag=28, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int


class AccountUnfrozen(msgspec.Struct, tag=29, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int


class AllowancesCancelled(msgspec.Struct, tag=30, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    instrument: str
    qty_t: int


class EmissionsReported(msgspec.Struct, tag=31, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    year: int
    obligation_t: int
    """tCO2e: CO2 plus CF4 and C2F6 converted with the GWP table."""
    co2_t: int
    cf4_kg: int
    c2f6_kg: int
    gwp: GwpVersion


class AllowancesSurrendered(msgspec.Struct, tag=32, **_EVT):
    seq: int
    ts_ns: int
    key: int
    account: int
    instrument: str
    year: int
    qty_t: int


class ComplianceReported(msgspec.Struct, tag=33, **_EVT):
    """One entity's position at the close of a compliance year."""

    seq: int
    ts_ns: int
    account: int
    year: int
    obligation_t: int
    surrendered_t: int
    """Allowances surrendered for the year (all eligible vintages)."""
    offsets_t: int
    shortfall_t: int
    penalty_fen: int
    reference_price_ticks: int


class ComplianceYearClosed(msgspec.Struct, tag=34, **_EVT):
    seq: int
    ts_ns: int
    key: int
    year: int
    entities: int
    reference_price_ticks: int


class DuplicateCommand(msgspec.Struct, tag=35, **_EVT):
    """A registry command whose key was seen before: nothing changed."""

    seq: int
    ts_ns: int
    key: int
    command: int
    original_seq: int
    original_reason: RejectReason


class RegistryRejected(msgspec.Struct, tag=36, **_EVT):
    seq: int
    ts_ns: int
    key: int
    command: int
    account: int
    instrument: str
    reason: RejectReason


class TradingPhaseChanged(msgspec.Struct, tag=14, **_EVT):
    """``modes``: the ``TradingMode`` bits now allowed (the instrument's modes in the phase)."""

    seq: int
    ts_ns: int
    instrument: str
    phase: int
    modes: int


class SessionModeVolumes(msgspec.Struct, tag=15, **_EVT):
    """Follows ``SessionClosed``: the block and auction business of the session (listing
    business is ``SessionClosed``'s own volume), then these counters restart at zero."""

    seq: int
    ts_ns: int
    instrument: str
    trading_date: int
    block_volume_t: int
    block_value_fen: int
    block_trades: int
    auction_volume_t: int
    auction_value_fen: int
    auction_trades: int


class CompositePrice(msgspec.Struct, tag=16, **_EVT):
    """Published with the close once every allowance vintage has closed: the equal-weighted
    mean of the vintages' closes, rounded half up to the fen."""

    seq: int
    ts_ns: int
    trading_date: int
    price_ticks: int
    vintages: int


class BlockOfferPosted(msgspec.Struct, tag=40, **_EVT):
    seq: int
    ts_ns: int
    offer_id: int
    account: int
    instrument: str
    side: Side
    price_ticks: int
    qty_t: int
    counterparty: int
    """-1: open to every account."""


class BlockCommandRejected(msgspec.Struct, tag=41, **_EVT):
    """Refusal of a block command (``command`` is its tag); echoes what the command said."""

    seq: int
    ts_ns: int
    command: int
    offer_id: int
    account: int
    instrument: str
    side: int
    price_ticks: int
    qty_t: int
    reason: RejectReason


class BlockTradeExecuted(msgspec.Struct, tag=42, **_EVT):
    seq: int
    ts_ns: int
    trade_id: int
    instrument: str
    price_ticks: int
    qty_t: int
    offer_id: int
    offer_side: Side
    offer_account: int
    accepting_account: int


class BlockOfferCancelled(msgspec.Struct, tag=43, **_EVT):
    seq: int
    ts_ns: int
    offer_id: int
    account: int
    instrument: str
    side: Side
    price_ticks: int
    qty_t: int
    reason: CancelReason


class AuctionApplied(msgspec.Struct, tag=44, **_EVT):
    seq: int
    ts_ns: int
    auction_id: int
    account: int
    instrument: str
    qty_t: int


class AuctionAnnounced(msgspec.Struct, tag=45, **_EVT):
    seq: int
    ts_ns: int
    auction_id: int
    account: int
    """The seller."""
    instrument: str
    qty_t: int
    floor_price_ticks: int
    cap_price_ticks: int
    floor_rule: FloorRule
    clearing: ClearingRule
    window_start_ns: int
    window_end_ns: int


class AuctionBidAccepted(msgspec.Struct, tag=46, **_EVT):
    seq: int
    ts_ns: int
    bid_id: int
    auction_id: int
    account: int
    instrument: str
    price_ticks: int
    qty_t: int


class AuctionCommandRejected(msgspec.Struct, tag=47, **_EVT):
    seq: int
    ts_ns: int
    command: int
    auction_id: int
    bid_id: int
    account: int
    instrument: str
    price_ticks: int
    qty_t: int
    reason: RejectReason


class AuctionTrade(msgspec.Struct, tag=48, **_EVT):
    """One accepted bid's fill; ``bid_unfilled_t`` of the bid was released."""

    seq: int
    ts_ns: int
    trade_id: int
    auction_id: int
    instrument: str
    price_ticks: int
    qty_t: int
    bid_id: int
    buyer_account: int
    seller_account: int
    bid_unfilled_t: int


class AuctionBidReleased(msgspec.Struct, tag=49, **_EVT):
    """A bid that received nothing (below the clearing price, or the auction was cancelled)."""

    seq: int
    ts_ns: int
    bid_id: int
    auction_id: int
    account: int
    instrument: str
    price_ticks: int
    qty_t: int


class AuctionCleared(msgspec.Struct, tag=50, **_EVT):
    """``price_ticks``: the lowest accepted bid's price (0 when nothing sold)."""

    seq: int
    ts_ns: int
    auction_id: int
    account: int
    """The seller."""
    instrument: str
    clearing: ClearingRule
    price_ticks: int
    sold_t: int
    unsold_t: int
    value_fen: int
    fills: int
    bids: int


class AuctionCancelled(msgspec.Struct, tag=51, **_EVT):
    seq: int
    ts_ns: int
    auction_id: int
    account: int
    instrument: str
    qty_t: int
    bids: int


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
    AccountOpened,
    CashDeposited,
    CashWithdrawn,
    AllowancesIssued,
    AllowancesClawedBack,
    AllowancesTransferred,
    AllowancesFrozen,
    AllowancesUnfrozen,
    AccountFrozen,
    AccountUnfrozen,
    AllowancesCancelled,
    EmissionsReported,
    AllowancesSurrendered,
    ComplianceReported,
    ComplianceYearClosed,
    DuplicateCommand,
    RegistryRejected,
    TradingPhaseChanged,
    SessionModeVolumes,
    CompositePrice,
    BlockOfferPosted,
    BlockCommandRejected,
    BlockTradeExecuted,
    BlockOfferCancelled,
    AuctionApplied,
    AuctionAnnounced,
    AuctionBidAccepted,
    AuctionCommandRejected,
    AuctionTrade,
    AuctionBidReleased,
    AuctionCleared,
    AuctionCancelled,
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


class Holding(msgspec.Struct, frozen=True):
    account: int
    instrument: str
    tradable_t: int
    locked_t: int
    frozen_t: int
    unsettled_t: int
    """Bought today: tradable from the next session (T+1)."""


class AccountStatus(msgspec.Struct, frozen=True):
    account: int
    kind: AccountKind
    sector: Sector
    province: int
    frozen: bool
    cash_available_fen: int
    cash_locked_fen: int
    holdings: list[Holding]


class InstrumentStatus(msgspec.Struct, frozen=True):
    instrument: str
    state: SessionState
    trading_date: int
    reference_price_ticks: int
    lower_band_ticks: int
    upper_band_ticks: int
    phase: int = 0
    """Index of the current trading phase in the instrument's schedule."""
    modes: int = 0
    """``TradingMode`` bits allowed now (0 while the session is closed)."""


class BlockOffer(msgspec.Struct, frozen=True):
    offer_id: int
    account: int
    instrument: str
    side: Side
    price_ticks: int
    qty_t: int
    counterparty: int


class AuctionStatus(msgspec.Struct, frozen=True):
    """An auction that has not yet cleared.  Bids are sealed: only their number is shown."""

    auction_id: int
    account: int
    instrument: str
    qty_t: int
    state: AuctionState
    floor_price_ticks: int
    cap_price_ticks: int
    floor_rule: int
    clearing: int
    window_start_ns: int
    window_end_ns: int
    bids: int

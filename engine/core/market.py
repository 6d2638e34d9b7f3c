"""The market definition: instruments, their trading parameters and the engine's capacities.

A market definition is data, decoded from TOML and validated with msgspec (reading it from a
file is ``engine.markets``' job); every default of
the national market (``engine/data/national.toml``) is a parameter here, never a literal in
code.  An invalid definition raises :class:`MarketDefinitionError` naming the field.

Prices are integer ticks of the price unit (fen: 0.01 CNY), quantities whole tonnes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Literal

import msgspec

from engine.core import limits
from engine.core.schema import TradingMode

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
BasisPoints = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
Mode = Literal["continuous", "hit_quote", "block", "auction"]
PhaseMode = Literal["continuous", "hit_quote", "block"]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]

MODE_BITS: dict[str, int] = {str(mode.name).lower(): int(mode) for mode in TradingMode}
"""``engine.core.schema.TradingMode`` bit of each mode name."""
PHASE_MODES_ALL: tuple[PhaseMode, ...] = ("continuous", "hit_quote", "block")


def mode_bits(modes: Sequence[str]) -> int:
    """The ``TradingMode`` bits of a list of mode names."""
    bits = 0
    for mode in modes:
        bits |= MODE_BITS[mode]
    return bits


class MarketDefinitionError(ValueError):
    """A market definition that cannot be used; the message names the offending field."""


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One tradable instrument: an allowance vintage or an offset family."""

    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    kind: Literal["allowance", "offset"] = "allowance"
    vintage: Annotated[int, msgspec.Meta(ge=2000, le=2100)] | None = None
    tick_ticks: PositiveInt = 1
    """Price increment, in ticks of the price unit (1 = 0.01 CNY)."""
    lot_t: PositiveInt = 1
    reference_price_ticks: PositiveInt = 6_000
    """The previous close: the centre of the first session's price band."""
    band_bps: BasisPoints = 1_000
    """Continuous-trading price band, in basis points either side of the reference."""
    min_qty_t: PositiveInt = 1
    max_qty_t: PositiveInt = 99_999
    modes: list[Mode] = msgspec.field(
        default_factory=lambda: ["continuous", "hit_quote", "block", "auction"]
    )
    """Trading modes the instrument offers (docs/TRADING_MODES.md)."""
    schedule: str = ""
    """Name of its phase schedule in ``MarketDefinition.schedules``; "" is one phase that
    allows every mode the instrument offers."""
    hit_quote_levels: Annotated[int, msgspec.Meta(ge=1, le=limits.HIT_QUOTE_LEVELS_MAX)] = 5
    """A hit-quote order may pick a quote within this many best price levels."""
    block_min_qty_t: PositiveInt = 100_000
    block_band_bps: BasisPoints = 3_000
    """Block trades: price band around the previous close (±30 % in the national market)."""
    auction_min_qty_t: PositiveInt = 100_000
    """Smallest lot a seller may offer by one-way auction."""
    auction_band_bps: BasisPoints = 1_000
    """Auction bids are capped at close + this band; the floor is the close or close − band."""

    @property
    def mode_bits(self) -> int:
        """``engine.core.schema.TradingMode`` bits of ``modes``."""
        return mode_bits(self.modes)


class Phase(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One phase of a trading day, in local time (Asia/Shanghai for the national market).

    The times tell the operator's scheduler when to send ``SetTradingPhase``; the engine itself
    never reads a clock and only knows the phase it was last told.
    """

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    start: ClockTime
    end: ClockTime
    modes: list[PhaseMode] = []

    @property
    def mode_bits(self) -> int:
        """``engine.core.schema.TradingMode`` bits of ``modes``."""
        return mode_bits(self.modes)


class Capacity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Preallocated sizes of the compiled engine."""

    accounts: PositiveInt = limits.DEFAULT_ACCOUNTS
    resting_orders: PositiveInt = limits.DEFAULT_RESTING_ORDERS
    max_price_ticks: PositiveInt = limits.DEFAULT_MAX_PRICE_TICKS
    """Highest price any instrument can ever trade at; sizes the compiled price ladder."""
    registry_keys: PositiveInt = limits.DEFAULT_REGISTRY_KEYS
    """Idempotency keys of registry commands the engine can remember."""
    block_offers: PositiveInt = limits.DEFAULT_BLOCK_OFFERS
    auctions: PositiveInt = limits.DEFAULT_AUCTIONS
    auction_bids: PositiveInt = limits.DEFAULT_AUCTION_BIDS


class Fees(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Trading fees in basis points of trade value, per side (no public schedule: default 0)."""

    buy_bps: BasisPoints = 0
    sell_bps: BasisPoints = 0


class Compliance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    first_year: Annotated[int, msgspec.Meta(ge=2000, le=2100)] = 2019
    """First compliance year the registry can hold (it holds 16 from there)."""
    penalty_multiple: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5
    """Shortfall penalty, as a multiple of the reference price the closing command carries."""
    offset_limit_bps: BasisPoints = 500
    """Share of a year's obligation that offsets (CCER) may cover."""


class MarketDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    currency: str = "CNY"
    price_unit: str = "fen"
    instruments: list[Instrument] = []
    capacity: Capacity = Capacity()
    registry: bool = False
    """Run the allowance registry and ledger (docs/LEDGER.md); off: pure matching."""
    fee_account: Annotated[int, msgspec.Meta(ge=0)] = 0
    """The account (kind FEE) that receives trading fees."""
    fees: Fees = Fees()
    compliance: Compliance = Compliance()
    schedules: dict[str, list[Phase]] = {}
    """Named trading-day schedules: phases in time order (at most 8)."""

    def phases(self, index: int) -> list[Phase]:
        """The phases of instrument ``index``: its schedule, or one all-day phase."""
        instrument = self.instruments[index]
        if instrument.schedule:
            return self.schedules[instrument.schedule]
        return [Phase(name="trading", start="00:00", end="23:59", modes=list(PHASE_MODES_ALL))]

    def phase_masks(self, index: int) -> list[int]:
        """``TradingMode`` bits each phase of instrument ``index`` allows (before the
        instrument's own modes are applied)."""
        return [phase.mode_bits for phase in self.phases(index)]

    def instrument_index(self, symbol: str) -> int:
        """Dense index of ``symbol`` (its position in ``instruments``); -1 when unknown."""
        for index, instrument in enumerate(self.instruments):
            if instrument.symbol == symbol:
                return index
        return -1

    @property
    def symbols(self) -> list[str]:
        return [instrument.symbol for instrument in self.instruments]

    def digest(self) -> bytes:
        """32-byte digest of the canonical encoding; the log records it in every segment."""
        return hashlib.blake2b(msgspec.msgpack.encode(self), digest_size=32).digest()

    def to_toml(self) -> bytes:
        return msgspec.toml.encode(self)


def _fail(path: str, message: str) -> MarketDefinitionError:
    return MarketDefinitionError(f"invalid market definition: {message} - at `{path}`")


def validate(definition: MarketDefinition) -> MarketDefinition:
    """Check the relationships msgspec's per-field constraints cannot express."""
    capacity = definition.capacity
    if not definition.instruments:
        raise _fail("$.instruments", "at least one instrument is required")
    if len(definition.instruments) > limits.INSTRUMENTS_MAX:
        raise _fail("$.instruments", f"at most {limits.INSTRUMENTS_MAX} instruments")
    if capacity.accounts > limits.ACCOUNTS_MAX:
        raise _fail("$.capacity.accounts", f"must be <= {limits.ACCOUNTS_MAX}")
    if capacity.resting_orders > limits.RESTING_ORDERS_MAX:
        raise _fail("$.capacity.resting_orders", f"must be <= {limits.RESTING_ORDERS_MAX}")
    if capacity.max_price_ticks > limits.PRICE_LADDER_MAX_TICKS:
        raise _fail("$.capacity.max_price_ticks", f"must be <= {limits.PRICE_LADDER_MAX_TICKS}")
    if definition.fee_account >= capacity.accounts:
        raise _fail("$.fee_account", "must be below capacity.accounts")
    for name in ("block_offers", "auctions", "auction_bids"):
        if getattr(capacity, name) > limits.TRADING_MODE_TABLE_MAX:
            raise _fail(f"$.capacity.{name}", f"must be <= {limits.TRADING_MODE_TABLE_MAX}")
    for name, phases in definition.schedules.items():
        _validate_schedule(f"$.schedules.{name}", phases)
    seen: set[str] = set()
    for i, ins in enumerate(definition.instruments):
        at = f"$.instruments[{i}]"
        if ins.symbol in seen:
            raise _fail(f"{at}.symbol", f"duplicate symbol {ins.symbol!r}")
        seen.add(ins.symbol)
        if ins.reference_price_ticks % ins.tick_ticks:
            raise _fail(f"{at}.reference_price_ticks", "must be a multiple of tick_ticks")
        if ins.reference_price_ticks > capacity.max_price_ticks:
            raise _fail(f"{at}.reference_price_ticks", "exceeds capacity.max_price_ticks")
        if ins.min_qty_t > ins.max_qty_t:
            raise _fail(f"{at}.min_qty_t", "must be <= max_qty_t")
        if ins.max_qty_t > limits.QTY_MAX_T:
            raise _fail(f"{at}.max_qty_t", f"must be <= {limits.QTY_MAX_T}")
        if ins.min_qty_t % ins.lot_t or ins.max_qty_t % ins.lot_t:
            raise _fail(f"{at}.min_qty_t", "min_qty_t and max_qty_t must be multiples of lot_t")
        _validate_modes(at, ins, definition)
    return definition


def _validate_modes(at: str, ins: Instrument, definition: MarketDefinition) -> None:
    if not ins.modes:
        raise _fail(f"{at}.modes", "at least one trading mode is required")
    if len(set(ins.modes)) != len(ins.modes):
        raise _fail(f"{at}.modes", "a mode is listed twice")
    if ins.schedule and ins.schedule not in definition.schedules:
        raise _fail(f"{at}.schedule", f"no schedule named {ins.schedule!r}")
    for name in ("block_min_qty_t", "auction_min_qty_t"):
        value = getattr(ins, name)
        if value % ins.lot_t:
            raise _fail(f"{at}.{name}", "must be a multiple of lot_t")
        if value > limits.QTY_MAX_T:
            raise _fail(f"{at}.{name}", f"must be <= {limits.QTY_MAX_T}")


def _validate_schedule(at: str, phases: list[Phase]) -> None:
    if not 1 <= len(phases) <= limits.PHASES_MAX:
        raise _fail(at, f"a schedule has 1 to {limits.PHASES_MAX} phases")
    previous_end = "00:00"
    for i, phase in enumerate(phases):
        if phase.start >= phase.end:
            raise _fail(f"{at}[{i}].end", "a phase must end after it starts")
        if phase.start < previous_end:
            raise _fail(f"{at}[{i}].start", "phases must be in time order and must not overlap")
        if len(set(phase.modes)) != len(phase.modes):
            raise _fail(f"{at}[{i}].modes", "a mode is listed twice")
        previous_end = phase.end


def loads(data: bytes | str) -> MarketDefinition:
    """Decode and validate a market definition from TOML text."""
    try:
        definition = msgspec.toml.decode(data, type=MarketDefinition)
    except msgspec.ValidationError as exc:
        raise MarketDefinitionError(f"invalid market definition: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MarketDefinitionError(f"market definition is not valid TOML: {exc}") from None
    return validate(definition)


def band_edges(reference_ticks: int, band_bps: int, tick_ticks: int) -> tuple[int, int]:
    """Price band ``[lower, upper]`` around a reference, both rounded inward to the tick.

    The lower edge never goes below one tick.
    """
    upper = reference_ticks * (10_000 + band_bps) // 10_000
    upper -= upper % tick_ticks
    lower = -((-reference_ticks * (10_000 - band_bps)) // 10_000)
    lower += (-lower) % tick_ticks
    return max(lower, tick_ticks), upper

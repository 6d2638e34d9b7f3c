"""The market definition: instruments, their trading parameters and the engine's capacities.

A market definition is data, loaded from TOML and validated with msgspec; every default of
the national market (``engine/data/national.toml``) is a parameter here, never a literal in
code.  An invalid definition raises :class:`MarketDefinitionError` naming the field.

Prices are integer ticks of the price unit (fen: 0.01 CNY), quantities whole tonnes.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from engine import limits

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
BasisPoints = Annotated[int, msgspec.Meta(ge=0, le=10_000)]


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


class Capacity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Preallocated sizes of the compiled engine."""

    accounts: PositiveInt = limits.DEFAULT_ACCOUNTS
    resting_orders: PositiveInt = limits.DEFAULT_RESTING_ORDERS
    max_price_ticks: PositiveInt = limits.DEFAULT_MAX_PRICE_TICKS
    """Highest price any instrument can ever trade at; sizes the compiled price ladder."""
    registry_keys: PositiveInt = limits.DEFAULT_REGISTRY_KEYS
    """Idempotency keys of registry commands the engine can remember."""


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
    return definition


def loads(data: bytes | str) -> MarketDefinition:
    """Decode and validate a market definition from TOML text."""
    try:
        definition = msgspec.toml.decode(data, type=MarketDefinition)
    except msgspec.ValidationError as exc:
        raise MarketDefinitionError(f"invalid market definition: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MarketDefinitionError(f"market definition is not valid TOML: {exc}") from None
    return validate(definition)


def load(path: str | Path) -> MarketDefinition:
    """Load and validate a market definition file."""
    return loads(Path(path).read_bytes())


def national_market() -> MarketDefinition:
    """The shipped default: China's national ETS, vintages CEA-2019-20 … CEA-2025 and CCER."""
    text = importlib.resources.files("engine").joinpath("data/national.toml").read_bytes()
    return loads(text)


def band_edges(reference_ticks: int, band_bps: int, tick_ticks: int) -> tuple[int, int]:
    """Price band ``[lower, upper]`` around a reference, both rounded inward to the tick.

    The lower edge never goes below one tick.
    """
    upper = reference_ticks * (10_000 + band_bps) // 10_000
    upper -= upper % tick_ticks
    lower = -((-reference_ticks * (10_000 - band_bps)) // 10_000)
    lower += (-lower) % tick_ticks
    return max(lower, tick_ticks), upper

"""What the state was: the ``run`` summary and the ``book`` at a point of history.

Theory of operation
-------------------
Both rebuild the engine up to a stop (:func:`replay.timeline.rebuild`) and then read it through
the engine's query API (``status``, ``depth``, ``orders``, ``state_hash``) - the same views the
live exchange offers, so a book shown here is the book a trader saw after that command.
"""

from __future__ import annotations

import msgspec

from engine.core import schema as s
from engine.core.market import MarketDefinition
from engine.durable import journal as jr
from engine.durable.recovery import SkippedSnapshot
from replay.datadir import DataDir
from replay.progress import Progress
from replay.timeline import Rebuilt, Stop, rebuild

ALL_LEVELS = 1 << 62
"""``depth(levels=...)`` that returns every level."""


class SideSummary(msgspec.Struct, frozen=True):
    """One side of a book: best price (None when empty), levels, orders, open tonnes."""

    best_ticks: int | None
    levels: int
    orders: int
    qty_t: int


class InstrumentSummary(msgspec.Struct, frozen=True):
    """One instrument's session, price band and book totals."""

    instrument: str
    session: str
    """``CLOSED``, ``OPEN`` or ``HALTED``."""
    trading_date: int
    reference_price_ticks: int
    lower_band_ticks: int
    upper_band_ticks: int
    bids: SideSummary
    asks: SideSummary
    phase: str = ""
    """Name of the current trading phase (``docs/TRADING_MODES.md``); "" while closed."""


class AccountKindSummary(msgspec.Struct, frozen=True):
    """Totals over the opened accounts of one kind (registry markets)."""

    kind: str
    accounts: int
    frozen_accounts: int
    cash_available_fen: int
    cash_locked_fen: int
    tradable_t: int
    locked_t: int
    frozen_t: int
    unsettled_t: int


class RunReport(msgspec.Struct, frozen=True):
    """The state after the last command before the stop, and how it was reached."""

    data_dir: str
    engine: str
    last_seq: int
    last_ts_ns: int
    state_hash: str
    chain_hash: str | None
    """The log's chain value after ``last_seq``; None when the stop fell inside a batch."""
    batches: int
    commands: int
    """Commands replayed (those a snapshot covered not included)."""
    events: int
    resting_orders: int
    instruments: list[InstrumentSummary]
    account_kinds: list[AccountKindSummary]
    """Per account kind (registry markets; empty when the market runs no registry)."""
    snapshot_seq: int | None = None
    snapshot_path: str | None = None
    skipped_snapshots: list[SkippedSnapshot] = []
    tail: jr.Problem | None = None


def _side(levels: list[s.DepthLevel]) -> SideSummary:
    return SideSummary(
        levels[0].price_ticks if levels else None,
        len(levels),
        sum(level.orders for level in levels),
        sum(level.qty_t for level in levels),
    )


def summarize(engine: object, symbol: str) -> InstrumentSummary:
    """One instrument's session and book totals, from the engine's query API."""
    status = engine.status(symbol)  # type: ignore[attr-defined]
    depth = engine.depth(symbol, ALL_LEVELS)  # type: ignore[attr-defined]
    state = s.SessionState(status.state)
    phase = ""
    if state != s.SessionState.CLOSED:
        market = engine.market  # type: ignore[attr-defined]
        phases = market.phases(market.symbols.index(symbol))
        phase = phases[status.phase].name if 0 <= status.phase < len(phases) else str(status.phase)
    return InstrumentSummary(
        symbol,
        state.name,
        status.trading_date,
        status.reference_price_ticks,
        status.lower_band_ticks,
        status.upper_band_ticks,
        _side(depth.bids),
        _side(depth.asks),
        phase,
    )


def accounts_by_kind(engine: object, market: MarketDefinition) -> list[AccountKindSummary]:
    """Balances summed per account kind, from the engine's ``account()`` query."""
    query = getattr(engine, "account", None)
    if not market.registry or query is None:
        return []
    totals: dict[s.AccountKind, list[int]] = {}
    for number in range(market.capacity.accounts):
        status = query(number)
        if status is None:
            continue
        row = totals.setdefault(status.kind, [0] * 8)
        row[0] += 1
        row[1] += status.frozen
        row[2] += status.cash_available_fen
        row[3] += status.cash_locked_fen
        for holding in status.holdings:
            row[4] += holding.tradable_t
            row[5] += holding.locked_t
            row[6] += holding.frozen_t
            row[7] += holding.unsettled_t
    return [AccountKindSummary(kind.name, *totals[kind]) for kind in sorted(totals)]


def run(
    data: DataDir,
    engine: str = "compiled",
    stop: Stop | None = None,
    from_snapshot: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    """Rebuild the state up to ``stop``; see :func:`replay.timeline.rebuild`."""
    rebuilt = rebuild(data, engine, stop, from_snapshot, progress)
    return report_of(data, engine, rebuilt)


def report_of(data: DataDir, engine: str, rebuilt: Rebuilt) -> RunReport:
    """The :class:`RunReport` of an engine rebuilt by :func:`replay.timeline.rebuild`."""
    state = rebuilt.engine
    return RunReport(
        str(data.path),
        engine,
        rebuilt.last_seq,
        rebuilt.last_ts_ns,
        state.state_hash(),
        rebuilt.chain_hash,
        rebuilt.batches,
        rebuilt.commands,
        rebuilt.events,
        state.resting_count(),
        [summarize(state, sym) for sym in data.market.symbols],
        accounts_by_kind(state, data.market),
        rebuilt.snapshot_seq,
        rebuilt.snapshot_path,
        rebuilt.skipped_snapshots,
        rebuilt.tail,
    )


class BookReport(msgspec.Struct, frozen=True):
    """One instrument's book after ``last_seq``: aggregated levels, or every resting order in
    priority order (best price first, oldest first within a price)."""

    instrument: str
    last_seq: int
    last_ts_ns: int
    summary: InstrumentSummary
    bids: list[s.DepthLevel] | None = None
    asks: list[s.DepthLevel] | None = None
    bid_orders: list[s.RestingOrder] | None = None
    ask_orders: list[s.RestingOrder] | None = None


def book(
    data: DataDir,
    symbol: str,
    stop: Stop | None = None,
    depth: int = 5,
    orders: bool = False,
    engine: str = "compiled",
    progress: Progress | None = None,
) -> BookReport:
    """The book of ``symbol`` after the last command before ``stop``.

    Parameters
    ----------
    depth : int
        Aggregated levels per side (ignored with ``orders``).
    orders : bool
        Every resting order instead of aggregated levels.
    """
    data.instrument_index(symbol)
    rebuilt = rebuild(data, engine, stop, progress=progress)
    state = rebuilt.engine
    summary = summarize(state, symbol)
    common = (symbol, rebuilt.last_seq, rebuilt.last_ts_ns, summary)
    if orders:
        bids = state.orders(symbol, s.Side.BUY)
        asks = state.orders(symbol, s.Side.SELL)
        return BookReport(*common, bid_orders=bids, ask_orders=asks)
    levels = state.depth(symbol, depth)
    return BookReport(*common, bids=levels.bids, asks=levels.asks)

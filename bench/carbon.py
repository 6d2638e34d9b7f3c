"""``bench carbon``: the national carbon market simulated over a year, and a 100x rush.

Workloads (seeded, ``gateway.simulation``):

``year``
    The 2025 participant mix, allocations from the power benchmark formula, then a year of
    trading days (242) whose activity clusters before the surrender deadline — the base
    number of new orders per day times 1 (January–September), 3 (October), 6 (November) and
    10 (December) — with cancels and reprices, hit-quote orders, the trading phases of each
    day, block trades (most of the volume, as in 2023) and eight one-way auctions, then
    emissions reports, surrender and the compliance close (a handful of defaulters, as in
    reality).
``rush``
    The compliance season at 100 times the peak: the last ``rush_days`` trading days before the
    deadline, each with 100x December's order flow.

Each trading day's flow is generated, encoded to records once and applied in one batch; only
the engine calls are timed.  The full engine (matching + locks + settlement + registry) runs the
year and the rush; the reference engine runs the same year in the same process (for the rush,
whose size would take it minutes, it is skipped), and the event hashes must be equal.
"""

from __future__ import annotations

import hashlib
import time

import msgspec
import numpy as np

from engine.core import records as r
from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from engine.core.records import Codec
from engine.core.reference.engine import ReferenceEngine
from engine.markets import national_market
from gateway.simulation import Simulation, trading_dates

YEAR = 2024
"""Compliance year closed at the end; trading runs through calendar year 2025."""
SEASON = {10: 3, 11: 6, 12: 10}
"""Activity multiple by month (others 1)."""


class CarbonResult(msgspec.Struct):
    workload: str
    days: int
    commands: int
    trades: int
    compiled_seconds: float
    compiled_commands_per_s: float
    reference_seconds: float | None
    reference_commands_per_s: float | None
    events_hash: str
    hashes_equal: bool | None
    complied: int
    short: int
    listing_t: int = 0
    block_t: int = 0
    auction_t: int = 0
    block_trades: int = 0
    auction_fills: int = 0
    auctions: int = 0
    """One-way auctions cleared."""
    composite_price_ticks: int = 0
    """The last composite price of the run."""
    refused: int = 0
    """Orders, block and auction commands the engine refused."""


class _Run:
    """One engine fed day by day, timing only the engine."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.seconds = 0.0
        self.digest = hashlib.blake2b(digest_size=16)
        self.trades = 0
        self.volume_t = {r.EV_TRADE: 0, r.EV_BLOCK_TRADE: 0, r.EV_AUCTION_TRADE: 0}
        self.counts = {r.EV_BLOCK_TRADE: 0, r.EV_AUCTION_TRADE: 0, r.EV_AUCTION_CLEARED: 0}
        self.composite_price_ticks = 0
        self.refused = 0
        self.reports: list[s.ComplianceReported] = []

    def apply(self, records: np.ndarray) -> None:
        start = time.perf_counter()
        events = self.engine.apply_records(records)
        self.seconds += time.perf_counter() - start
        self.digest.update(events.tobytes())
        kinds = events["kind"]
        self.trades += int(np.count_nonzero(kinds == r.EV_TRADE))
        for kind in self.volume_t:
            self.volume_t[kind] += int(events["qty_t"][kinds == kind].sum())
        for kind in self.counts:
            self.counts[kind] += int(np.count_nonzero(kinds == kind))
        self.refused += int(np.count_nonzero(np.isin(kinds, _REFUSALS)))
        composite = events["price_ticks"][kinds == r.EV_COMPOSITE]
        if len(composite):
            self.composite_price_ticks = int(composite[-1])
        for row in events[kinds == r.EV_COMPLIANCE].tolist():
            self.reports.append(self.engine.codec.event(list(row)))


_REFUSALS = np.array([r.EV_REJECTED, r.EV_BLOCK_REJECTED, r.EV_AUCTION_REJECTED])


def _day_flow(sim: Simulation, engine, date: int, orders: int) -> list[s.Command]:
    references = {sym: engine.status(sym).reference_price_ticks for sym in sim.fair}
    day = sim.day(date, orders, references)
    return [s.OpenSession(trading_date=date), *day.commands, s.CloseSession(trading_date=date)]


def _simulate(
    workload: str,
    base_orders: int,
    seed: int,
    runs: list[_Run],
    rush_days: int,
) -> tuple[int, int]:
    """Drive every run through the same flow; returns (days, commands)."""
    market = runs[0].engine.market
    codec = Codec(market)
    sim = Simulation(market, seed=seed)
    setup = codec.encode_commands(sim.setup(YEAR))
    for run in runs:
        run.apply(setup)
    commands = len(setup)
    dates = list(trading_dates(20250102, 242))
    if workload == "rush":
        dates = dates[-rush_days:]
    for date in dates:
        factor = SEASON.get(date // 100 % 100, 1) * (100 if workload == "rush" else 1)
        flow = codec.encode_commands(_day_flow(sim, runs[0].engine, date, base_orders * factor))
        for run in runs:
            run.apply(flow)
        commands += len(flow)
    tradable = runs[0].engine._holdings()[:, :, 0].copy()
    symbols = market.symbols
    reference = runs[0].engine.status(f"CEA-{YEAR}").reference_price_ticks
    closing = sim.compliance(YEAR, reference, lambda a, sym: int(tradable[a, symbols.index(sym)]))
    final = codec.encode_commands(closing)
    for run in runs:
        run.apply(final)
    return len(dates), commands + len(final)


def run_workload(workload: str, base_orders: int, seed: int, rush_days: int) -> CarbonResult:
    market = national_market()
    runs = [_Run(CompiledEngine(market))]
    if workload == "year":
        runs.append(_Run(ReferenceEngine(market)))
    days, commands = _simulate(workload, base_orders, seed, runs, rush_days)
    compiled = runs[0]
    reference = runs[1] if len(runs) > 1 else None
    short = sum(1 for c in compiled.reports if c.shortfall_t > 0)
    return CarbonResult(
        workload,
        days,
        commands,
        compiled.trades,
        compiled.seconds,
        commands / compiled.seconds,
        reference and reference.seconds,
        reference and commands / reference.seconds,
        compiled.digest.hexdigest(),
        None if reference is None else reference.digest.hexdigest() == compiled.digest.hexdigest(),
        len(compiled.reports) - short,
        short,
        compiled.volume_t[r.EV_TRADE],
        compiled.volume_t[r.EV_BLOCK_TRADE],
        compiled.volume_t[r.EV_AUCTION_TRADE],
        compiled.counts[r.EV_BLOCK_TRADE],
        compiled.counts[r.EV_AUCTION_TRADE],
        compiled.counts[r.EV_AUCTION_CLEARED],
        compiled.composite_price_ticks,
        compiled.refused,
    )


def format_table(results: list[CarbonResult]) -> str:
    lines = [
        f"{'workload':<9} {'days':>5} {'commands':>11} {'trades':>10} {'compiled/s':>12} "
        f"{'reference/s':>12} {'speed-up':>9} {'complied':>9} {'short':>6}  events hash"
    ]
    lines.append("-" * len(lines[0]))
    for one in results:
        ref = (
            "-" if one.reference_commands_per_s is None else f"{one.reference_commands_per_s:,.0f}"
        )
        ratio = (
            "-"
            if one.reference_seconds is None
            else f"{one.reference_seconds / one.compiled_seconds:.1f}x"
        )
        lines.append(
            f"{one.workload:<9} {one.days:>5} {one.commands:>11,} {one.trades:>10,} "
            f"{one.compiled_commands_per_s:>12,.0f} {ref:>12} {ratio:>9} {one.complied:>9,} "
            f"{one.short:>6}  {one.events_hash}"
        )
    lines += ["", _modes_table(results)]
    equal = [one.hashes_equal for one in results if one.hashes_equal is not None]
    lines.append(f"compiled and reference event hashes equal: {all(equal)}")
    return "\n".join(lines)


def _modes_table(results: list[CarbonResult]) -> str:
    """Volume per trading mode, the auctions, the last composite price, refusals."""
    lines = [
        f"{'workload':<9} {'listing t':>14} {'block t':>14} {'auction t':>12} "
        f"{'block %':>8} {'blocks':>7} {'auctions':>9} {'fills':>6} {'composite':>10} "
        f"{'refused':>8}"
    ]
    lines.append("-" * len(lines[0]))
    for one in results:
        total = max(1, one.listing_t + one.block_t + one.auction_t)
        lines.append(
            f"{one.workload:<9} {one.listing_t:>14,} {one.block_t:>14,} "
            f"{one.auction_t:>12,} {100 * one.block_t / total:>7.1f}% "
            f"{one.block_trades:>7,} {one.auctions:>9,} {one.auction_fills:>6,} "
            f"{one.composite_price_ticks / 100:>10.2f} {one.refused:>8,}"
        )
    return "\n".join(lines)

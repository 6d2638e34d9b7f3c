"""``bench carbon``: the national carbon market simulated over a year, and a 100x rush.

Workloads (seeded, ``bench.simulation``):

``year``
    The 2025 participant mix, allocations from the power benchmark formula, then a year of
    trading days (242) whose activity clusters before the surrender deadline — the base
    number of new orders per day times 1 (January–September), 3 (October), 6 (November) and
    10 (December) — with cancels and reprices, then emissions reports, surrender and the
    compliance close (a handful of defaulters, as in reality).
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

from bench.simulation import Simulation, trading_dates
from engine import schema as s
from engine.compiled import CompiledEngine
from engine.market import national_market
from engine.records import Codec
from engine.reference import ReferenceEngine

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


class _Run:
    """One engine fed day by day, timing only the engine."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.seconds = 0.0
        self.digest = hashlib.blake2b(digest_size=16)
        self.trades = 0
        self.reports: list[s.ComplianceReported] = []

    def apply(self, records: np.ndarray) -> None:
        start = time.perf_counter()
        events = self.engine.apply_records(records)
        self.seconds += time.perf_counter() - start
        self.digest.update(events.tobytes())
        self.trades += int(np.count_nonzero(events["kind"] == 3))
        for row in events[events["kind"] == 33].tolist():
            self.reports.append(self.engine.codec.event(list(row)))


def _day_flow(sim: Simulation, engine, date: int, orders: int) -> list[s.Command]:
    references = {sym: engine.status(sym).reference_price_ticks for sym in sim.fair}
    day = sim.day(date, orders, references)
    return [s.OpenSession(trading_date=date), *day.commands, s.CloseSession(trading_date=date)]


def _simulate(workload: str, base_orders: int, seed: int, runs: list[_Run], rush_days: int,
              ) -> tuple[int, int]:  # fmt: skip
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
        workload, days, commands, compiled.trades, compiled.seconds,
        commands / compiled.seconds, reference and reference.seconds,
        reference and commands / reference.seconds, compiled.digest.hexdigest(),
        None if reference is None else reference.digest.hexdigest() == compiled.digest.hexdigest(),
        len(compiled.reports) - short, short,
    )  # fmt: skip


def format_table(results: list[CarbonResult]) -> str:
    lines = [f"{'workload':<9} {'days':>5} {'commands':>11} {'trades':>10} {'compiled/s':>12} "
             f"{'reference/s':>12} {'speed-up':>9} {'complied':>9} {'short':>6}  events hash"]  # fmt: skip
    lines.append("-" * len(lines[0]))
    for r in results:
        ref = "-" if r.reference_commands_per_s is None else f"{r.reference_commands_per_s:,.0f}"
        ratio = "-" if r.reference_seconds is None else f"{r.reference_seconds / r.compiled_seconds:.1f}x"
        lines.append(f"{r.workload:<9} {r.days:>5} {r.commands:>11,} {r.trades:>10,} "
                     f"{r.compiled_commands_per_s:>12,.0f} {ref:>12} {ratio:>9} {r.complied:>9,} "
                     f"{r.short:>6}  {r.events_hash}")  # fmt: skip
    equal = [r.hashes_equal for r in results if r.hashes_equal is not None]
    lines.append(f"compiled and reference event hashes equal: {all(equal)}")
    return "\n".join(lines)

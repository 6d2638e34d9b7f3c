"""``cets demo``: the whole product on one trading day of the national carbon market.

It creates a data directory, opens an exchange on the shipped national market definition,
simulates a trading day (``bench.simulation``), closes the session, then reopens the log from
disk and replays it with the audit (every batch's recomputed events against the digest the
log recorded) and prints a short summary.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from bench import progress
from bench.simulation import Simulation, trading_dates
from engine import schema as s
from engine.market import national_market
from engine.sequencer import MARKET_FILE, Exchange

DEFAULT_DATA_DIR = Path("cets-demo-data")
COMPLIANCE_YEAR = 2024
"""The demo trades in December 2025, the last weeks before 2024's surrender deadline."""
BATCH = 256


def _fresh_directory(path: Path) -> None:
    """Start from an empty directory; only a previous demo's directory is ever removed."""
    if path.exists():
        if not (path / MARKET_FILE).exists() and any(path.iterdir()):
            raise SystemExit(f"cets demo: {path} exists and is not a demo data directory")
        shutil.rmtree(path)
    path.mkdir(parents=True)


class DayTotals:
    """What the summary reports, accumulated from the events as they are acknowledged."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.closes: list[s.SessionClosed] = []
        self.accounts: set[int] = set()
        self.compliance: list[s.ComplianceReported] = []
        self.issued_t = 0

    def add(self, events: list) -> None:
        for event in events:
            self.kinds[type(event).__name__] += 1
            if type(event) is s.SessionClosed:
                self.closes.append(event)
            elif type(event) is s.TradeExecuted:
                self.accounts.update((event.taker_account, event.maker_account))
            elif type(event) is s.ComplianceReported:
                self.compliance.append(event)
            elif type(event) is s.AllowancesIssued:
                self.issued_t += event.qty_t


def _run_day(exchange: Exchange, sim: Simulation, date: int, orders: int, totals: DayTotals):
    references = {sym: exchange.engine.status(sym).reference_price_ticks for sym in sim.fair}
    totals.add(exchange.submit([s.OpenSession(trading_date=date)]).events)
    day = sim.day(date, orders, references)
    _submit_all(exchange, day.commands, totals, f"trading day {date}")
    totals.add(exchange.submit([s.CloseSession(trading_date=date)]).events)
    return len(day.commands)


def _submit_all(exchange: Exchange, commands: list, totals: DayTotals, label: str) -> None:
    bar = progress.Bar(len(commands), label)
    for start in range(0, len(commands), BATCH):
        batch = commands[start : start + BATCH]
        totals.add(exchange.submit(batch).events)
        bar.advance(len(batch))
    bar.close()


def _compliance(exchange: Exchange, sim: Simulation, year: int, totals: DayTotals) -> int:
    """Report, surrender and close the compliance year; returns the commands sent."""
    engine = exchange.engine
    symbols = engine.codec.symbols

    def tradable(account: int, symbol: str) -> int:
        status = engine.account(account)
        return 0 if status is None else status.holdings[symbols.index(symbol)].tradable_t

    closes = [c for c in totals.closes if c.instrument == f"CEA-{year}"]
    reference = closes[-1].close_ticks if closes else engine.status(f"CEA-{year}").reference_price_ticks
    commands = sim.compliance(year, reference, tradable)
    _submit_all(exchange, commands, totals, f"compliance {year}")
    return len(commands)


def _print_compliance(totals: DayTotals, year: int) -> None:
    reports = totals.compliance
    short = [r for r in reports if r.shortfall_t > 0]
    obligation = sum(r.obligation_t for r in reports)
    print(f"\ncompliance {year}   {len(reports):,} entities, obligation {obligation:,} tCO2e, "
          f"surrendered {sum(r.surrendered_t for r in reports):,} t "
          f"(offsets {sum(r.offsets_t for r in reports):,} t)")  # fmt: skip
    rate = 100 * (len(reports) - len(short)) / max(1, len(reports))
    print(f"                  {len(reports) - len(short):,} complied ({rate:.2f} %), "
          f"{len(short)} short by {sum(r.shortfall_t for r in short):,} t, penalties "
          f"{sum(r.penalty_fen for r in short) // 100:,} CNY")  # fmt: skip


def _print_summary(sim, totals: DayTotals, commands: int, seconds: float, audit) -> None:
    fen = 100
    print(f"participants      {len(sim.participants):,} accounts "
          f"({', '.join(f'{n} {sector}' for sector, n in _sectors(sim).items())})")  # fmt: skip
    print(f"commands          {commands:,} in {seconds:.2f} s ({commands / seconds:,.0f}/s, "
          "every batch synced to disk before it was acknowledged)")  # fmt: skip
    print(f"orders            {totals.kinds['OrderAccepted']:,} accepted, "
          f"{totals.kinds['OrderRejected']:,} rejected, {totals.kinds['OrderCancelled']:,} "
          f"cancelled or expired, {totals.kinds['OrderModified']:,} modified")  # fmt: skip
    print(f"trades            {totals.kinds['TradeExecuted']:,} between "
          f"{len(totals.accounts):,} accounts")  # fmt: skip
    print(f"registry          {totals.kinds['AccountOpened']:,} accounts opened, "
          f"{totals.issued_t:,} t allocated, {totals.kinds['AllowancesSurrendered']:,} "
          "surrenders")  # fmt: skip
    print(f"\n{'vintage':<12} {'open':>8} {'high':>8} {'low':>8} {'close':>8} "
          f"{'volume t':>12} {'value CNY':>16}")  # fmt: skip
    for c in totals.closes:
        print(f"{c.instrument:<12} {c.open_ticks / fen:>8.2f} {c.high_ticks / fen:>8.2f} "
              f"{c.low_ticks / fen:>8.2f} {c.close_ticks / fen:>8.2f} {c.volume_t:>12,} "
              f"{c.value_fen // fen:>16,}")  # fmt: skip
    _print_compliance(totals, sim_year(sim))
    print(f"\naudit             {audit}")


def sim_year(sim: Simulation) -> int:
    return COMPLIANCE_YEAR


def _sectors(sim: Simulation) -> dict[str, int]:
    return dict(Counter(p.sector for p in sim.participants))


def run(args: argparse.Namespace) -> int:
    """Entry point of ``cets demo``."""
    data_dir = Path(args.data_dir)
    _fresh_directory(data_dir)
    market = national_market()
    sim = Simulation(market, seed=args.seed, scale=args.scale)
    totals = DayTotals()
    print(f"cets demo: national carbon market, data directory {data_dir}/, seed {args.seed}")
    commands = 0
    compile_started = time.perf_counter()
    with Exchange.open(data_dir, market) as exchange:
        print(f"engine ready in {time.perf_counter() - compile_started:.1f} s "
              "(Numba compiles on the first run and caches the machine code)")  # fmt: skip
        started = time.perf_counter()
        setup = sim.setup(COMPLIANCE_YEAR)
        _submit_all(exchange, setup, totals, "registry set-up")
        commands += len(setup)
        for date in trading_dates(args.first_date, args.days):
            commands += _run_day(exchange, sim, date, args.orders, totals)
        commands += _compliance(exchange, sim, COMPLIANCE_YEAR, totals)
        seconds = time.perf_counter() - started
        final_hash = exchange.state_hash()
        last_seq = exchange.last_seq
    with Exchange.open(data_dir, audit_replay=True, snapshot_every_events=None) as replayed:
        report = replayed.recovery_report
        matched = replayed.state_hash() == final_hash and replayed.last_seq == last_seq
    audit = (
        f"replayed {report.commands_replayed:,} commands from the log: every batch's events "
        f"match the recorded digests; state hash {final_hash[:16]}… "
        + ("matches the live engine" if matched else "DIFFERS from the live engine")
    )
    _print_summary(sim, totals, commands, seconds, audit)
    return 0 if matched else 1


def add_command(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="run a simulated trading day end to end")
    demo.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    demo.add_argument("--seed", type=int, default=2025)
    demo.add_argument("--days", type=int, default=1, help="trading days to simulate")
    demo.add_argument("--orders", type=int, default=20_000, help="new orders per day")
    demo.add_argument("--scale", type=float, default=1.0, help="fraction of the 3,398 entities")
    demo.add_argument("--first-date", type=int, default=20251215)
    demo.set_defaults(run=run)


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace()))

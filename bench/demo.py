"""``cets demo``: the whole product on a trading day of the national carbon market.

It creates a data directory, starts the exchange with its TCP gateway on a loopback port and
drives it through real client sessions (``bench.demo_gateway``): the registry opens 3,398
accounts and issues allocations computed with the power-sector benchmark formula, the operator
opens the session, some thirty trading firms trade concurrently, the operator closes the
session, and the registry takes the emissions reports and surrenders and closes the 2024
compliance year.  Then it reads the log back from disk with ``replay``: the audit recomputes
every batch's events and compares them with the digests the log recorded, and the summary
(orders, trades, prices per vintage, compliance position) is built from the replayed events.

``--embedded`` skips the gateway and submits the same flow straight to the sequencer.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench import progress
from bench.simulation import Simulation, trading_dates
from engine import records as r
from engine import schema as s
from engine.market import national_market
from engine.sequencer import MARKET_FILE, Exchange
from replay.audit import audit
from replay.compliance import ComplianceReport
from replay.datadir import open_data_dir
from replay.reports import Consumer, MarketReport, scan_events

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


# -- the embedded path -------------------------------------------------------------------------


def _submit_all(exchange: Exchange, commands: list, label: str) -> int:
    bar = progress.Bar(len(commands), label)
    for start in range(0, len(commands), BATCH):
        batch = commands[start : start + BATCH]
        exchange.submit(batch)
        bar.advance(len(batch))
    bar.close()
    return len(commands)


def run_embedded(data_dir: Path, market, sim: Simulation, dates: list[int], orders: int,
                 year: int) -> tuple[float, int]:  # fmt: skip
    """The same flow as the gateway demo, submitted to the sequencer in this process.

    Returns the start time (after the engine is compiled) and the number of commands."""
    with Exchange.open(data_dir, market) as exchange:
        started = time.perf_counter()
        engine = exchange.engine
        sent = _submit_all(exchange, sim.setup(year), "registry set-up")
        for date in dates:
            references = {sym: engine.status(sym).reference_price_ticks for sym in sim.fair}
            exchange.submit([s.OpenSession(trading_date=date)])
            sent += _submit_all(exchange, sim.day(date, orders, references).commands, f"day {date}")
            exchange.submit([s.CloseSession(trading_date=date)])
            sent += 2
        symbols = market.symbols
        tradable = engine._holdings()[:, :, 0].copy()
        reference = engine.status(f"CEA-{year}").reference_price_ticks
        commands = sim.compliance(year, reference,
                                  lambda a, sym: int(tradable[a, symbols.index(sym)]))  # fmt: skip
        sent += _submit_all(exchange, commands, f"compliance {year}")
    return started, sent


# -- the summary, from the log -----------------------------------------------------------------


class _Counts(Consumer):
    """Events by kind, and the accounts that traded."""

    kinds = frozenset(range(1, 40))

    def __init__(self) -> None:
        self.by_kind: Counter[int] = Counter()
        self.traders: set[int] = set()
        self.allocated_t = 0

    def take(self, rows: np.ndarray) -> None:
        kinds, counts = np.unique(rows[:, r.E_KIND], return_counts=True)
        self.by_kind.update(dict(zip(kinds.tolist(), counts.tolist(), strict=True)))
        trades = rows[rows[:, r.E_KIND] == r.EV_TRADE]
        self.traders.update(trades[:, r.E_ACCOUNT].tolist())
        self.traders.update(trades[:, r.E_X1].tolist())
        self.allocated_t += int(rows[rows[:, r.E_KIND] == r.EV_ISSUED][:, r.E_QTY].sum())


def _print_summary(sim, data_dir: Path, seconds: float, requests: int, refused: int) -> bool:
    data = open_data_dir(data_dir)
    counts, market_report = _Counts(), MarketReport(data)
    compliance = ComplianceReport(data, COMPLIANCE_YEAR)
    scan_events(data, [counts, market_report, compliance])
    checked = audit(data)
    k = counts.by_kind
    sectors = Counter(p.sector for p in sim.participants)
    print(f"participants      {len(sim.participants):,} accounts "
          f"({', '.join(f'{n:,} {sector}' for sector, n in sectors.items())})")  # fmt: skip
    print(f"requests          {requests:,} in {seconds:.2f} s ({requests / seconds:,.0f}/s), each "
          f"acknowledged after its batch was synced to disk; {refused:,} refused by the gateway")  # fmt: skip
    print(f"orders            {k[r.EV_ACCEPTED]:,} accepted, {k[r.EV_REJECTED]:,} rejected, "
          f"{k[r.EV_CANCELLED]:,} cancelled or expired, {k[r.EV_MODIFIED]:,} modified")  # fmt: skip
    print(f"trades            {k[r.EV_TRADE]:,} between {len(counts.traders):,} accounts")
    print(f"registry          {k[r.EV_ACCOUNT_OPENED]:,} accounts opened, "
          f"{counts.allocated_t:,} t allocated, {k[r.EV_SURRENDERED]:,} surrenders")  # fmt: skip
    _print_market(market_report.result())
    _print_compliance(compliance.result())
    print(f"\naudit             {checked.batches:,} batches, {checked.commands:,} commands and "
          f"{checked.events:,} events replayed from the log: "
          + ("every batch matches its recorded digest" if checked.ok else "DIVERGENCE")
          + f"; state hash {checked.state_hash[:16]}…")  # fmt: skip
    return checked.ok


def _print_market(bars) -> None:
    fen = 100
    print(f"\n{'day':<9} {'vintage':<12} {'open':>7} {'high':>7} {'low':>7} {'close':>7} "
          f"{'volume t':>12} {'value CNY':>15}")  # fmt: skip
    for b in bars:
        if b.trades:
            print(f"{b.trading_date:<9} {b.instrument:<12} {b.open_ticks / fen:>7.2f} "
                  f"{b.high_ticks / fen:>7.2f} {b.low_ticks / fen:>7.2f} "
                  f"{b.close_ticks / fen:>7.2f} {b.volume_t:>12,} {b.value_fen // fen:>15,}")  # fmt: skip


def _print_compliance(year) -> None:
    t = year.totals
    print(f"\ncompliance {year.year}   {t.entities:,} entities, obligation {t.obligation_t:,} "
          f"tCO2e, surrendered {t.surrendered_t:,} t (offsets {t.offsets_t:,} t)")  # fmt: skip
    rate = 100 * t.complied / max(1, t.entities)
    penalty = "" if t.penalty_fen is None else f", penalties {t.penalty_fen // 100:,} CNY"
    print(f"                  {t.complied:,} complied ({rate:.2f} %), {t.short} short by "
          f"{t.shortfall_t:,} t{penalty}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Entry point of ``cets demo``."""
    data_dir = Path(args.data_dir)
    _fresh_directory(data_dir)
    market = national_market()
    sim = Simulation(market, seed=args.seed, scale=args.scale)
    dates = list(trading_dates(args.first_date, args.days))
    print(f"cets demo: national carbon market, data directory {data_dir}/, seed {args.seed}")
    if args.embedded:
        started, requests = run_embedded(data_dir, market, sim, dates, args.orders,
                                         COMPLIANCE_YEAR)  # fmt: skip
        refused = 0
    else:
        from bench.demo_gateway import run_through_gateway

        driver = run_through_gateway(data_dir, market, sim, dates, args.orders,
                                     COMPLIANCE_YEAR)  # fmt: skip
        requests, refused = driver.requests, driver.refused
        started = driver.started
    seconds = time.perf_counter() - started
    ok = _print_summary(sim, data_dir, seconds, requests, refused)
    return 0 if ok else 1


def add_command(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="run a simulated trading day end to end")
    demo.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    demo.add_argument("--seed", type=int, default=2025)
    demo.add_argument("--days", type=int, default=1, help="trading days to simulate")
    demo.add_argument("--orders", type=int, default=20_000, help="new orders per day")
    demo.add_argument("--scale", type=float, default=1.0, help="fraction of the 3,398 entities")
    demo.add_argument("--first-date", type=int, default=20251215)
    demo.add_argument("--embedded", action="store_true",
                      help="no gateway: submit straight to the sequencer in this process")  # fmt: skip
    demo.set_defaults(run=run)

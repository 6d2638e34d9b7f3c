"""``cets demo``: the whole product on a trading day of the national carbon market.

It creates a data directory, starts the exchange with its TCP gateway on a loopback port and
drives it through real client sessions (``gateway.demo_clients``): the registry opens 3,398
accounts and issues allocations computed with the power-sector benchmark formula, the operator
opens the session, some fifty trading firms trade concurrently in the three trading modes
(listing orders and hit-quote orders in the morning and afternoon, block trades in the
afternoon, a one-way auction during the morning) while the operator moves the market through
its trading phases, the operator closes the session, and the registry takes the emissions
reports and surrenders and closes the 2024 compliance year.  Then it reads the log back from
disk with ``replay``: the audit recomputes every batch's events and compares them with the
digests the log recorded, and the summary (orders, trades and volume per trading mode, prices
per vintage, the composite price, compliance position) is built from the replayed events.

``--embedded`` skips the gateway and submits the same flow straight to the sequencer.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.core import records as r
from engine.core import schema as s
from engine.durable.sequencer import MARKET_FILE, Sequencer
from engine.markets import national_market
from gateway.precompile import Precompiler
from gateway.simulation import Simulation, trading_dates
from replay.audit import audit
from replay.compliance import ComplianceReport
from replay.datadir import open_data_dir
from replay.progress import Progress
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


def _submit_all(exchange: Sequencer, commands: list, label: str) -> int:
    bar = Progress(label, len(commands))
    for start in range(0, len(commands), BATCH):
        batch = commands[start : start + BATCH]
        exchange.submit(batch)
        bar.advance(len(batch))
    bar.close()
    return len(commands)


def run_embedded(
    data_dir: Path,
    market,
    sim: Simulation,
    dates: list[int],
    orders: int,
    year: int,
    engine_ready: Callable[[], None] | None = None,
) -> tuple[float, int]:
    """The same flow as the gateway demo, submitted to the sequencer in this process;
    ``engine_ready`` is called once the engine is built (compiled).

    Returns the start time (after the engine is compiled) and the number of commands."""
    with Sequencer.open(data_dir, market) as exchange:
        if engine_ready is not None:
            engine_ready()
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
        commands = sim.compliance(
            year, reference, lambda a, sym: int(tradable[a, symbols.index(sym)])
        )
        sent += _submit_all(exchange, commands, f"compliance {year}")
    return started, sent


# -- the summary, from the log -----------------------------------------------------------------


class _Counts(Consumer):
    """Events by kind (and refusals by reason), the accounts that traded, the auctions."""

    kinds = frozenset(range(1, 64))

    def __init__(self) -> None:
        self.by_kind: Counter[int] = Counter()
        self.reasons: Counter[tuple[int, int]] = Counter()
        """(refusal event kind, reason) -> count."""
        self.hit_quotes = 0
        self.traders: set[int] = set()
        self.allocated_t = 0
        self.auctions: list[list[int]] = []
        """Rows of ``AuctionCleared``."""

    def take(self, rows: np.ndarray) -> None:
        kinds_column = rows[:, r.E_KIND]
        kinds, counts = np.unique(kinds_column, return_counts=True)
        self.by_kind.update(dict(zip(kinds.tolist(), counts.tolist(), strict=True)))
        for kind, column in (
            (r.EV_TRADE, r.TRADE_EXECUTED.maker_account),
            (r.EV_BLOCK_TRADE, r.BLOCK_TRADE_EXECUTED.offer_account),
            (r.EV_AUCTION_TRADE, r.AUCTION_TRADE.seller_account),
        ):
            trades = rows[kinds_column == kind]
            self.traders.update(trades[:, r.E_ACCOUNT].tolist())
            self.traders.update(trades[:, column].tolist())
        self.allocated_t += int(rows[kinds_column == r.EV_ISSUED][:, r.E_QTY].sum())
        accepted = rows[kinds_column == r.EV_ACCEPTED]
        self.hit_quotes += int(
            np.count_nonzero(accepted[:, r.ORDER_ACCEPTED.order_type] == s.OrderType.HIT_QUOTE)
        )
        refused = rows[np.isin(kinds_column, _REFUSALS)]
        self.reasons.update(zip(refused[:, r.E_KIND].tolist(), refused[:, r.E_REASON].tolist()))
        self.auctions += rows[kinds_column == r.EV_AUCTION_CLEARED].tolist()

    def refusals(self, kind: int) -> str:
        """``N refused`` with the reasons, for one refusal event kind."""
        mine = sorted((n, reason) for (k, reason), n in self.reasons.items() if k == kind)
        total = sum(n for n, _ in mine)
        if not total:
            return "0"
        detail = ", ".join(f"{s.RejectReason(reason).name} {n:,}" for n, reason in reversed(mine))
        return f"{total:,} ({detail})"


_REFUSALS = np.array([r.EV_REJECTED, r.EV_BLOCK_REJECTED, r.EV_AUCTION_REJECTED])


def _print_summary(sim, data_dir: Path, seconds: float, requests: int, refused: int) -> bool:
    data = open_data_dir(data_dir)
    counts, market_report = _Counts(), MarketReport(data)
    compliance = ComplianceReport(data, COMPLIANCE_YEAR)
    scan_events(data, [counts, market_report, compliance])
    checked = audit(data)
    k = counts.by_kind
    sectors = Counter(p.sector for p in sim.participants)
    print(
        f"participants      {len(sim.participants):,} accounts "
        f"({', '.join(f'{n:,} {sector}' for sector, n in sectors.items())})"
    )
    print(
        f"requests          {requests:,} in {seconds:.2f} s ({requests / seconds:,.0f}/s), each "
        f"acknowledged after its batch was synced to disk; {refused:,} refused by the gateway"
    )
    print(
        f"orders            {k[r.EV_ACCEPTED]:,} accepted ({counts.hit_quotes:,} hit-quote), "
        f"{counts.refusals(r.EV_REJECTED)} rejected, {k[r.EV_CANCELLED]:,} cancelled or "
        f"expired, {k[r.EV_MODIFIED]:,} modified"
    )
    print(
        f"trades            {k[r.EV_TRADE]:,} listing, {k[r.EV_BLOCK_TRADE]:,} block, "
        f"{k[r.EV_AUCTION_TRADE]:,} auction fills, between {len(counts.traders):,} accounts"
    )
    print(
        f"block offers      {k[r.EV_BLOCK_POSTED]:,} posted, {k[r.EV_BLOCK_TRADE]:,} accepted, "
        f"{counts.refusals(r.EV_BLOCK_REJECTED)} refused"
    )
    _print_auctions(counts)
    _print_phases(sim.market, k[r.EV_PHASE_CHANGED])
    print(
        f"registry          {k[r.EV_ACCOUNT_OPENED]:,} accounts opened, "
        f"{counts.allocated_t:,} t allocated, {k[r.EV_SURRENDERED]:,} surrenders"
    )
    history = market_report.result()
    _print_volume(history.days)
    _print_market(history)
    _print_compliance(compliance.result())
    print(
        f"\naudit             {checked.batches:,} batches, {checked.commands:,} commands and "
        f"{checked.events:,} events replayed from the log: "
        + ("every batch matches its recorded digest" if checked.ok else "DIVERGENCE")
        + f"; state hash {checked.state_hash[:16]}…"
    )
    return checked.ok


def _print_phases(market, changes: int) -> None:
    schedules = {tuple(p.name for p in market.phases(i)) for i in range(len(market.symbols))}
    days = "; ".join(" → ".join(names) for names in sorted(schedules))
    print(f"trading phases    {days}: {changes:,} phase changes (each instrument's own)")


def _print_auctions(counts: _Counts) -> None:
    k = counts.by_kind
    print(
        f"auctions          {len(counts.auctions):,} cleared, {k[r.EV_BID_ACCEPTED]:,} sealed "
        f"bids, {counts.refusals(r.EV_AUCTION_REJECTED)} refused"
    )
    for row in counts.auctions:
        lot = row[r.E_QTY] + row[r.AUCTION_CLEARED.unsold_t]
        rule = s.ClearingRule(row[r.E_SIDE]).name.lower().replace("_", "-")
        price = f"at {row[r.E_PRICE] / 100:.2f}" if row[r.E_QTY] else "nothing sold"
        print(
            f"                  {lot:,} t offered ({rule}): {row[r.E_QTY]:,} t sold {price} "
            f"in {row[r.AUCTION_CLEARED.fills]:,} fills of {row[r.AUCTION_CLEARED.bids]:,} bids"
        )


def _print_volume(bars) -> None:
    modes = [
        ("listing", sum(b.volume_t for b in bars)),
        ("block", sum(b.block_volume_t for b in bars)),
        ("auction", sum(b.auction_volume_t for b in bars)),
    ]
    total = max(1, sum(qty for _, qty in modes))
    print(
        "volume            "
        + ", ".join(f"{mode} {qty:,} t ({100 * qty / total:.1f} %)" for mode, qty in modes)
    )


def _print_market(history) -> None:
    fen = 100
    print(
        f"\n{'day':<9} {'vintage':<12} {'open':>7} {'high':>7} {'low':>7} {'close':>7} "
        f"{'listing t':>12} {'block t':>12} {'auction t':>10} {'value CNY':>15}"
    )
    for b in history.days:
        if b.trades or b.block_trades or b.auction_trades:
            print(
                f"{b.trading_date:<9} {b.instrument:<12} {b.open_ticks / fen:>7.2f} "
                f"{b.high_ticks / fen:>7.2f} {b.low_ticks / fen:>7.2f} "
                f"{b.close_ticks / fen:>7.2f} {b.volume_t:>12,} {b.block_volume_t:>12,} "
                f"{b.auction_volume_t:>10,} {b.total_value_fen // fen:>15,}"
            )
    for c in history.composite:
        print(
            f"{c.trading_date:<9} composite price {c.price_ticks / fen:.2f} CNY/t (mean close "
            f"of {c.vintages} vintages)"
        )


def _print_compliance(year) -> None:
    t = year.totals
    print(
        f"\ncompliance {year.year}   {t.entities:,} entities, obligation {t.obligation_t:,} "
        f"tCO2e, surrendered {t.surrendered_t:,} t (offsets {t.offsets_t:,} t)"
    )
    rate = 100 * t.complied / max(1, t.entities)
    penalty = "" if t.penalty_fen is None else f", penalties {t.penalty_fen // 100:,} CNY"
    print(
        f"                  {t.complied:,} complied ({rate:.2f} %), {t.short} short by "
        f"{t.shortfall_t:,} t{penalty}"
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``cets demo``."""
    data_dir = Path(args.data_dir)
    _fresh_directory(data_dir)
    market = national_market()
    sim = Simulation(market, seed=args.seed, scale=args.scale)
    dates = list(trading_dates(args.first_date, args.days))
    print(f"cets demo: national carbon market, data directory {data_dir}/, seed {args.seed}")
    # On a first run the kernels needed after the engine's are compiled meanwhile, on the
    # other core (gateway.precompile); the audit of the summary needs the last of them.
    with Precompiler(market.symbols) as precompiler:
        ready = precompiler.engine_ready
        if args.embedded:
            started, requests = run_embedded(
                data_dir, market, sim, dates, args.orders, COMPLIANCE_YEAR, ready
            )
            refused = 0
        else:
            from gateway.demo_clients import run_through_gateway

            driver = run_through_gateway(
                data_dir, market, sim, dates, args.orders, COMPLIANCE_YEAR, ready
            )
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
    demo.add_argument(
        "--embedded",
        action="store_true",
        help="no gateway: submit straight to the sequencer in this process",
    )
    demo.set_defaults(run=run)

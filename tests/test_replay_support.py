"""Shared helpers of the replay tests (this module holds no tests): small markets, seeded
random workloads, and data directories written by the real sequencer from them.

Every random workload prints its seed, so a failure can be replayed with the same log.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from engine.core import schema as s
from engine.core.market import Capacity, Instrument, MarketDefinition, validate
from engine.durable.sequencer import Sequencer

T0 = 1_735_781_400_000_000_000
"""2025-01-02 09:30:00 +08:00 in nanoseconds."""
SECOND = 1_000_000_000
SYMBOLS = ("CEA-2024", "CEA-2025", "CCER")
TRADERS = tuple(range(1, 9))
SEGMENT_BYTES = 16 * 1024


def small_market(registry: bool = False) -> MarketDefinition:
    """Three instruments, capacities small enough for fast tests."""
    return validate(
        MarketDefinition(
            name="replay test market",
            instruments=[
                Instrument(symbol="CEA-2024", vintage=2024, reference_price_ticks=6000),
                Instrument(
                    symbol="CEA-2025",
                    vintage=2025,
                    reference_price_ticks=7000,
                    tick_ticks=5,
                    lot_t=10,
                    min_qty_t=10,
                    max_qty_t=10_000,
                ),
                Instrument(symbol="CCER", kind="offset", reference_price_ticks=5005),
            ],
            capacity=Capacity(
                accounts=64, resting_orders=20_000, max_price_ticks=20_000, registry_keys=4096
            ),
            registry=registry,
        )
    )


class Workload:
    """A seeded random order flow over several trading days, in batches of typed commands."""

    def __init__(self, seed: int, market: MarketDefinition) -> None:
        self.rng = random.Random(seed)
        self.market = market
        self.specs = {ins.symbol: ins for ins in market.instruments}
        self.next_id = 1
        self.live: list[tuple[int, int]] = []  # (order id, account) submitted, maybe resting
        self.keys = itertools.count(1)

    def batches(
        self, days: int, per_day: int, end_in_session: bool | None = None
    ) -> list[list[s.Command]]:
        """Whole trading days, then (``end_in_session``; None: at random) a session that the
        log leaves open."""
        commands: list[s.Command] = []
        if self.market.registry:
            commands += self._registry_setup()
        for day in range(days):
            date = 20250102 + day
            commands.append(s.OpenSession(trading_date=date))
            commands += [self._command() for _ in range(per_day)]
            commands.append(s.CloseSession(trading_date=date))
        if end_in_session is None:
            end_in_session = self.rng.random() < 0.5
        if end_in_session:
            commands.append(s.OpenSession(trading_date=20250102 + days))
            commands += [self._command() for _ in range(per_day // 2)]
        return self._split(commands)

    def _split(self, commands: list[s.Command]) -> list[list[s.Command]]:
        batches, i = [], 0
        while i < len(commands):
            size = self.rng.choice((1, 1, 2, 3, 7, 20, 40))
            batches.append(commands[i : i + size])
            i += size
        return batches

    def _registry_setup(self) -> list[s.Command]:
        commands: list[s.Command] = []
        for account in TRADERS:
            kind = s.AccountKind.COMPLIANCE if account % 2 else s.AccountKind.INVESTOR
            key = next(self.keys)
            commands.append(s.OpenAccount(key=key, account=account, kind=kind))
            commands.append(s.DepositCash(key=next(self.keys), account=account, amount_fen=10**10))
            for symbol in SYMBOLS:
                commands.append(
                    s.IssueAllowances(
                        key=next(self.keys),
                        account=account,
                        instrument=symbol,
                        qty_t=200_000,
                    )
                )
        return commands

    def _command(self) -> s.Command:
        roll = self.rng.random()
        if roll < 0.62 or not self.live:
            return self._submit()
        order_id, account = self.rng.choice(self.live)
        if roll < 0.80:
            return s.CancelOrder(order_id=order_id, account=account)
        if roll < 0.94:
            symbol = self.rng.choice(SYMBOLS)
            spec = self.specs[symbol]
            price = spec.reference_price_ticks + spec.tick_ticks * self.rng.randint(-20, 20)
            qty = spec.lot_t * self.rng.randint(1, 50)
            return s.ModifyOrder(order_id=order_id, account=account, price_ticks=price, qty_t=qty)
        if roll < 0.96:
            return s.MassCancel(account=account, instrument=self.rng.choice(SYMBOLS + ("",)))
        if roll < 0.98 and self.market.registry:
            return s.TransferAllowances(
                key=next(self.keys),
                account=account,
                to_account=self.rng.choice(TRADERS),
                instrument=self.rng.choice(SYMBOLS),
                qty_t=self.rng.randint(1, 500),
            )
        make = s.HaltInstrument if self.rng.random() < 0.5 else s.ResumeInstrument
        return make(instrument=self.rng.choice(SYMBOLS))

    def _submit(self) -> s.SubmitOrder:
        rng = self.rng
        symbol = rng.choice(SYMBOLS)
        spec = self.specs[symbol]
        order_type = rng.choices(list(s.OrderType)[:3], weights=(85, 10, 5))[0]
        if order_type == s.OrderType.MARKET:
            tif = rng.choice((s.TimeInForce.IOC, s.TimeInForce.FOK))
        else:
            tif = rng.choices(list(s.TimeInForce), weights=(50, 30, 15, 5))[0]
            if order_type == s.OrderType.POST_ONLY:
                tif = s.TimeInForce.DAY
        order_id, account = self.next_id, rng.choice(TRADERS)
        self.next_id += 1
        self.live = (self.live + [(order_id, account)])[-60:]
        return s.SubmitOrder(
            order_id=order_id,
            account=account,
            instrument=symbol,
            side=rng.choice((s.Side.BUY, s.Side.SELL)),
            qty_t=spec.lot_t * rng.randint(1, 60),
            price_ticks=spec.reference_price_ticks + spec.tick_ticks * rng.randint(-25, 25),
            order_type=order_type,
            tif=tif,
            stp=rng.choice(list(s.StpMode)),
        )


def write_log(
    path: Path,
    batches: list[list[s.Command]],
    market: MarketDefinition,
    events: list | None = None,
    **options,
) -> dict[int, str]:
    """Write ``batches`` through the sequencer into a new data directory at ``path``.

    Returns the live engine's state hash after each batch, by the batch's last seq, and
    appends the live events to ``events`` if given.  The clock advances one second per batch
    from :data:`T0`, so the log's bytes depend only on the commands.
    """
    options.setdefault("clock", itertools.count(T0, SECOND).__next__)
    options.setdefault("durability", "none")
    options.setdefault("snapshot_every_events", None)
    options.setdefault("segment_bytes", SEGMENT_BYTES)
    hashes = {}
    with Sequencer.open(path, market, **options) as exchange:
        for batch in batches:
            result = exchange.submit(batch)
            hashes[result.last_seq] = exchange.state_hash()
            if events is not None:
                events.extend(result.events)
    return hashes


def random_log(path: Path, seed: int, days: int = 3, per_day: int = 150, registry=False):
    """A data directory with a seeded random workload; returns (market, hashes by seq)."""
    print(f"replay workload seed {seed} (days {days}, commands per day {per_day})")
    market = small_market(registry)
    batches = Workload(seed, market).batches(days, per_day)
    return market, write_log(path, batches, market)

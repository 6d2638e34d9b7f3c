"""A seeded simulation of trading days on China's national carbon market.

Theory of operation
-------------------
The 2025 participant mix of the national ETS (2,087 power, 232 steel, 962 cement and 97
aluminium entities, plus a few investors) is laid out as dense account numbers, sector by
sector.  Each simulated trading day, a share of the participants is active; an active
participant sends listing-mode limit orders (under 100,000 t) around its own view of the
price, which drifts as a random walk inside the historical 40-110 CNY/t range, and sometimes
cancels or reprices them.  Activity is concentrated in the compliance season (the months
before the surrender deadline), as in the real market.

Everything is drawn from ``random.Random(seed)``: a (seed, days, orders) triple always yields the
same commands, so the demo and the benchmarks are reproducible.  The simulation only produces
typed commands; whoever runs it decides how they reach the engine (embedded, or through the
gateway's client sessions).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import msgspec

from engine import schema as s
from engine.market import MarketDefinition

SECTORS_2025 = (("power", 2_087), ("steel", 232), ("cement", 962), ("aluminium", 97))
INVESTORS = 20
LISTING_MAX_T = 99_999


class Participant(msgspec.Struct, frozen=True):
    account: int
    sector: str
    """power, steel, cement, aluminium, or investor."""
    size_t: int
    """Typical order size of this participant, in tonnes."""


def participants(seed: int, scale: float = 1.0) -> list[Participant]:
    """The 2025 participant mix (``scale`` < 1 for a smaller market)."""
    rng = random.Random(seed)
    result: list[Participant] = []
    sectors = [*SECTORS_2025, ("investor", INVESTORS)]
    for sector, count in sectors:
        for _ in range(max(1, round(count * scale))):
            size = int(rng.lognormvariate(8.0, 1.0))  # median ~3,000 t
            result.append(Participant(len(result), sector, max(100, min(size, 50_000))))
    return result


class TradingDay(msgspec.Struct, frozen=True):
    trading_date: int
    commands: list[s.Command]
    """Order flow of the day, between the session's open and close (not included)."""


class Simulation:
    """Order flow for consecutive trading days on the listed allowance vintages.

    Parameters
    ----------
    market:
        The market definition; orders go to its allowance instruments.
    seed:
        Seed of every random choice.
    scale:
        Fraction of the real participant count to simulate.
    """

    def __init__(self, market: MarketDefinition, seed: int = 1, scale: float = 1.0) -> None:
        self.rng = random.Random(seed)
        self.participants = participants(seed, scale)
        self.instruments = [i for i in market.instruments if i.kind == "allowance"]
        self.fair = {i.symbol: i.reference_price_ticks for i in self.instruments}
        self.band = {i.symbol: i.band_bps for i in self.instruments}
        self.next_order_id = 1
        self.resting: list[tuple[int, int, str]] = []  # (order id, account, symbol)

    def _limit(self, symbol: str, reference: int, side: int) -> int:
        """A price near the fair value, inside the band around ``reference``."""
        rng = self.rng
        fair = self.fair[symbol]
        aggressive = rng.random() < 0.35
        offset = rng.randint(0, 40)
        price = fair + offset if (side == s.Side.BUY) == aggressive else fair - offset
        width = reference * self.band[symbol] // 10_000
        return max(reference - width + 1, min(reference + width - 1, price))

    def _order(self, trader: Participant, symbol: str, reference: int) -> s.SubmitOrder:
        rng = self.rng
        side = s.Side.BUY if rng.random() < 0.5 else s.Side.SELL
        qty = max(1, min(LISTING_MAX_T, int(trader.size_t * rng.uniform(0.2, 2.0))))
        order_id = self.next_order_id
        self.next_order_id += 1
        self.resting.append((order_id, trader.account, symbol))
        return s.SubmitOrder(
            order_id=order_id, account=trader.account, instrument=symbol, side=side, qty_t=qty,
            price_ticks=self._limit(symbol, reference, side),
        )  # fmt: skip

    def _follow_up(self) -> s.Command | None:
        """A cancel or a reprice of an earlier order (it may have traded meanwhile)."""
        if not self.resting:
            return None
        rng = self.rng
        order_id, account, symbol = self.resting.pop(rng.randrange(len(self.resting)))
        if rng.random() < 0.6:
            return s.CancelOrder(order_id=order_id, account=account)
        price = self.fair[symbol] + rng.randint(-30, 30)
        self.resting.append((order_id, account, symbol))
        return s.ModifyOrder(
            order_id=order_id, account=account, price_ticks=price, qty_t=rng.randint(100, 5_000)
        )

    def day(self, trading_date: int, orders: int, references: dict[str, int]) -> TradingDay:
        """One day's order flow: ``orders`` new orders plus cancels and reprices."""
        rng = self.rng
        for instrument in self.instruments:  # the fair value drifts, 40-110 CNY/t
            step = rng.randint(-80, 80)
            self.fair[instrument.symbol] = max(4_000, min(11_000, self.fair[instrument.symbol] + step))
        active = rng.sample(self.participants, k=min(len(self.participants), max(1, orders // 3)))
        weights = [4 if i.vintage and i.vintage >= 2024 else 1 for i in self.instruments]
        commands: list[s.Command] = []
        self.resting.clear()
        for _ in range(orders):
            trader = rng.choice(active)
            symbol = rng.choices(self.instruments, weights=weights)[0].symbol
            commands.append(self._order(trader, symbol, references[symbol]))
            if rng.random() < 0.25:
                follow_up = self._follow_up()
                if follow_up is not None:
                    commands.append(follow_up)
        return TradingDay(trading_date, commands)


def trading_dates(first: int, count: int) -> Iterator[int]:
    """``count`` weekdays from ``first`` (YYYYMMDD), ignoring public holidays."""
    import datetime as dt  # dates only: no clock is read

    day = dt.date(first // 10_000, first // 100 % 100, first % 100)
    produced = 0
    while produced < count:
        if day.weekday() < 5:
            yield day.year * 10_000 + day.month * 100 + day.day
            produced += 1
        day += dt.timedelta(days=1)

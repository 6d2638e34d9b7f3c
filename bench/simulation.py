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

from engine import allocation
from engine import schema as s
from engine.market import MarketDefinition

SECTORS_2025 = (("power", 2_087), ("steel", 232), ("cement", 962), ("aluminium", 97))
INVESTORS = 20
LISTING_MAX_T = 99_999


FEE_ACCOUNT = 0
"""The exchange's fee account; participants are numbered from 1."""
SECTOR_CODES = {"power": s.Sector.POWER, "steel": s.Sector.STEEL, "cement": s.Sector.CEMENT,
                "aluminium": s.Sector.ALUMINIUM, "investor": s.Sector.NONE}  # fmt: skip
MEDIAN_EMISSIONS_T = {"power": 2_000_000, "steel": 3_000_000, "cement": 700_000,
                      "aluminium": 400_000, "investor": 0}  # fmt: skip
PROVINCES = (110000, 130000, 210000, 310000, 320000, 330000, 370000, 410000, 440000, 510000,
             610000, 650000)  # fmt: skip


class Participant(msgspec.Struct, frozen=True):
    account: int
    sector: str
    """power, steel, cement, aluminium, or investor."""
    size_t: int
    """Typical order size of this participant, in tonnes."""
    province: int
    emissions_t: int
    """Verified CO2 emissions of last year (0 for investors)."""
    power_unit: allocation.PowerUnit | None = None
    """Output of this year, for the benchmark allocation of power entities."""


def _power_unit(account: int, emissions_t: int, rng: random.Random) -> allocation.PowerUnit:
    """Synthetic but plausible output: a unit whose benchmark allocation is near its emissions."""
    category = rng.choices(["coal_300mw_plus", "coal_below_300mw", "coal_unconventional", "gas"],
                           weights=[70, 15, 5, 10])[0]  # fmt: skip
    benchmark = {"coal_300mw_plus": 0.791, "coal_below_300mw": 0.8049,
                 "coal_unconventional": 0.8244, "gas": 0.3288}[category]  # fmt: skip
    heat_share = rng.uniform(0.0, 0.2)
    electricity = int(emissions_t * (1 - heat_share) / benchmark * rng.uniform(1.02, 1.08))
    heat = int(emissions_t * heat_share / 0.1033 * rng.uniform(1.02, 1.08))
    correction = rng.randint(995_000, 1_000_000)
    return allocation.PowerUnit(account, category, electricity, heat, correction)


def participants(seed: int, scale: float = 1.0) -> list[Participant]:
    """The 2025 participant mix (``scale`` < 1 for a smaller market)."""
    rng = random.Random(seed)
    result: list[Participant] = []
    sectors = [*SECTORS_2025, ("investor", INVESTORS)]
    for sector, count in sectors:
        for _ in range(max(1, round(count * scale))):
            account = len(result) + 1
            size = max(100, min(int(rng.lognormvariate(8.0, 1.0)), 50_000))  # median ~3,000 t
            median = MEDIAN_EMISSIONS_T[sector]
            emissions = int(rng.lognormvariate(0, 0.8) * median) if median else 0
            if emissions:  # an entity trades in lots small against its position
                size = max(100, min(size, emissions // 400))
            unit = _power_unit(account, emissions, rng) if sector == "power" else None
            result.append(Participant(account, sector, size, rng.choice(PROVINCES), emissions,
                                      unit))  # fmt: skip
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
        self.first_traded_vintage = 0
        self.resting: list[tuple[int, int, str]] = []  # (order id, account, symbol)

    def setup(self, year: int) -> list[s.Command]:
        """Registry set-up: accounts, cash, allocation of ``year`` and pre-allocation of the next.

        Allocation of vintage ``year``: 70 % pre-allocation of last year's emissions, then the
        true-up (power: benchmark formula on the unit's output; other sectors: an
        intensity-based final allocation), all through ``engine.allocation``.
        """
        rng = self.rng
        commands: list[s.Command] = [
            s.OpenAccount(key=1_000_000, account=FEE_ACCOUNT, kind=s.AccountKind.FEE)
        ]
        for p in self.participants:
            kind = s.AccountKind.INVESTOR if p.sector == "investor" else s.AccountKind.COMPLIANCE
            commands.append(s.OpenAccount(key=1_000_000 + p.account, account=p.account, kind=kind,
                                          sector=SECTOR_CODES[p.sector], province=p.province))  # fmt: skip
            cash = 50_000_000_000 if p.sector == "investor" else 2_000_000_000
            commands.append(s.DepositCash(key=2_000_000 + p.account, account=p.account,
                                          amount_fen=cash))  # fmt: skip
        self.first_traded_vintage = year
        entities = [p for p in self.participants if p.emissions_t > 0]
        previous = {p.account: p.emissions_t * rng.randint(95, 105) // 100 for p in entities}
        vintage = f"CEA-{year}"
        pre = allocation.pre_allocate(year, vintage, previous)
        commands += pre
        pre_by_account = {c.account: c.qty_t for c in pre}
        units = [p.power_unit for p in entities if p.power_unit is not None]
        commands += allocation.true_up(year, vintage, units, allocation.benchmarks_2024(),
                                       pre_by_account)  # fmt: skip
        for p in entities:
            if p.power_unit is None:  # intensity-based final allocation for other sectors
                final = p.emissions_t * rng.randint(102, 110) // 100
                top_up = final - pre_by_account.get(p.account, 0)
                if top_up > 0:
                    commands.append(s.IssueAllowances(
                        key=allocation.allocation_key(year, p.account, 2), account=p.account,
                        instrument=vintage, qty_t=top_up, true_up=True))  # fmt: skip
        current = {p.account: p.emissions_t for p in entities}
        commands += allocation.pre_allocate(year + 1, f"CEA-{year + 1}", current)
        return commands

    def compliance(self, year: int, reference_price_ticks: int, tradable) -> list[s.Command]:
        """Report, surrender and close ``year``.  ``tradable(account, symbol)`` gives balances.

        Entities surrender their whole obligation from the eligible vintages they hold, newest
        first; about one in five hundred (and anyone short of allowances) surrenders less.
        """
        rng = self.rng
        eligible = [i.symbol for i in reversed(self.instruments) if (i.vintage or 0) <= year]
        commands: list[s.Command] = []
        key = year * 10**10 + 5_000_000_000
        for p in self.participants:
            if p.emissions_t == 0:
                continue
            cf4 = p.emissions_t // 1000 * rng.randint(5, 20) // 10 if p.sector == "aluminium" else 0
            report = s.ReportEmissions(key=key + 3 * p.account, account=p.account, year=year,
                                       co2_t=p.emissions_t, cf4_kg=cf4, c2f6_kg=cf4 // 8)  # fmt: skip
            commands.append(report)
            gwp = s.GWP_TABLE[report.gwp]
            due = p.emissions_t + (cf4 * gwp[0] + cf4 // 8 * gwp[1] + 500) // 1000
            if rng.random() < 0.002:
                due = due * rng.randint(50, 90) // 100
            for offset, symbol in enumerate(eligible):
                qty = min(due, tradable(p.account, symbol))
                if qty > 0:
                    commands.append(s.SurrenderAllowances(
                        key=key + 3 * p.account + 1 + 10**9 * (offset + 1), account=p.account,
                        instrument=symbol, year=year, qty_t=qty))  # fmt: skip
                    due -= qty
        commands.append(s.CloseComplianceYear(key=key, year=year,
                                              reference_price_ticks=reference_price_ticks))  # fmt: skip
        return commands

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
        side = s.Side.BUY if rng.random() < 0.5 or trader.sector == "investor" else s.Side.SELL
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
        # Entities trade the vintages they were allocated (older ones barely trade any more).
        weights = [1 if (i.vintage or 0) >= self.first_traded_vintage else 0
                   for i in self.instruments]  # fmt: skip
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

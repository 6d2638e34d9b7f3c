"""A seeded simulation of trading days on China's national carbon market.

Theory of operation
-------------------
The 2025 participant mix of the national ETS (2,087 power, 232 steel, 962 cement and 97
aluminium entities, plus a few investors) is laid out as dense account numbers, sector by
sector.  Each simulated trading day, a share of the participants is active; an active
participant sends listing-mode orders (under 100,000 t) around its own view of the price, which
drifts as a random walk inside the historical 40-110 CNY/t range, and sometimes cancels or
reprices them.  Activity is concentrated in the compliance season (the months before the
surrender deadline), as in the real market.

The day has the real market's shape (``docs/TRADING_MODES.md``): the operator moves the
instruments through their trading phases (national market: listing in the morning, a midday
break, listing and block trades in the afternoon), and the day mixes the three trading modes:

* **listing**: limit orders and **hit-quote** orders, which pick a resting quote of the other
  side within the best five price levels.  The simulation keeps its own view of the listing
  book (:class:`ListingBook`: what market data shows a participant), so it picks quotes that
  rest - exactly so when the commands reach the engine in the order generated;
* **block trades** in the block phase: directed offers of 100,000 t and more, priced within a
  few per cent of the fair value (always inside the ±30 % block band), accepted by the
  counterparty with the same terms.  They make most of the volume, as in 2023 (listing 35 Mt,
  block 177 Mt): the block volume follows the day's listing volume at that ratio;
* **one-way auctions**: every thirtieth trading day (at most eight a calendar year, as in
  2025), a seller holding allowances applies, the operator announces the auction, sealed bids
  arrive during the morning and the operator clears it at the window's end; the auctions
  alternate uniform and pay-as-bid clearing.

Sellers of blocks and auction lots, and buyers, are chosen from the simulation's running
estimate of each account's allowances and cash (allocations, deposits and every trade it
arranged or saw in its book), so they can pay and deliver; allowances a compliance entity needs
for its surrender are not sold.

Everything is drawn from ``random.Random(seed)``: a (seed, days, orders) triple always yields the
same commands, so the demo and the benchmarks are reproducible.  The simulation only produces
typed commands, with its own order, offer, auction and bid ids; whoever runs it decides how
they reach the engine (embedded, or through the gateway's client sessions, which assign ids of
their own).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import msgspec
from sortedcontainers import SortedDict

from engine import markets
from engine.core import allocation
from engine.core import schema as s
from engine.core.market import MarketDefinition, band_edges

SECTORS_2025 = (("power", 2_087), ("steel", 232), ("cement", 962), ("aluminium", 97))
INVESTORS = 20
LISTING_MAX_T = 99_999
QUOTE_AGE_ORDERS = 200
"""A hit-quote order picks a quote at least this many new orders old: one the market (and a
participant's market data) has seen for a while, whose id a gateway client already knows."""
HIT_QUOTE_SHARE = 0.1
"""Share of new listing orders that hit a quote (when the book has one to hit); more would
drain the book of the quotes they hit (at 0.25 it holds a few dozen orders by the close)."""
BLOCK_TO_LISTING = (177, 35)
"""Block volume per listing volume: 2023's 177 Mt of block trades to 35 Mt of listing."""
BLOCK_MAX_T = 2_000_000
BLOCK_ACCEPT_GAP = (150, 400)
"""The counterparty accepts a block offer this many of the day's commands after it is posted
(a while later: through the gateway it knows the offer's id by then)."""
BLOCK_PRICE_SPREAD = 0.03
"""Block prices: the fair value ± up to 3 % (the band allows ±30 % of the reference)."""
AUCTION_EVERY_DAYS = 30
AUCTIONS_PER_YEAR = 8
"""One-way auctions of the national market in 2025."""
CASH_MARGIN_FEN = 300_000_000
"""Cash a block buyer or bidder keeps beyond the trade, for its listing orders (3 M CNY)."""
ALLOWANCE_MARGIN_T = 50_000
"""Allowances a block or auction seller keeps beyond its lot, for its listing orders."""
CST_OFFSET_S = 8 * 3600
"""China Standard Time (UTC+08:00): the phase schedule's times are local."""

FEE_ACCOUNT = 0
"""The exchange's fee account; participants are numbered from 1."""
SECTOR_CODES = {
    "power": s.Sector.POWER,
    "steel": s.Sector.STEEL,
    "cement": s.Sector.CEMENT,
    "aluminium": s.Sector.ALUMINIUM,
    "investor": s.Sector.NONE,
}
MEDIAN_EMISSIONS_T = {
    "power": 2_000_000,
    "steel": 3_000_000,
    "cement": 700_000,
    "aluminium": 400_000,
    "investor": 0,
}
PROVINCES = (
    110000,
    130000,
    210000,
    310000,
    320000,
    330000,
    370000,
    410000,
    440000,
    510000,
    610000,
    650000,
)


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
    category = rng.choices(
        ["coal_300mw_plus", "coal_below_300mw", "coal_unconventional", "gas"],
        weights=[70, 15, 5, 10],
    )[0]
    benchmark = {
        "coal_300mw_plus": 0.791,
        "coal_below_300mw": 0.8049,
        "coal_unconventional": 0.8244,
        "gas": 0.3288,
    }[category]
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
            result.append(
                Participant(account, sector, size, rng.choice(PROVINCES), emissions, unit)
            )
    return result


class TradingDay(msgspec.Struct, frozen=True):
    trading_date: int
    commands: list[s.Command]
    """The day's flow between the session's open and close (not included), in order: the
    participants' orders, block offers and acceptances, auction applications and bids, and the
    operator's commands (``SetTradingPhase``, ``AnnounceAuction``, ``ClearAuction``)."""


OPERATOR_COMMANDS = (
    s.OpenSession,
    s.CloseSession,
    s.SetTradingPhase,
    s.AnnounceAuction,
    s.ClearAuction,
    s.CancelAuction,
)
"""Commands the exchange's operator sends (the others come from the participants)."""

Fill = tuple[int, int, int, int]
"""(maker order id, maker account, price ticks, tonnes) of one listing trade."""


class ListingBook:
    """The simulation's view of the listing book: every order it sent that still rests.

    It matches the simulation's own orders by the rules of ``docs/MATCHING.md`` (price-time
    priority, trades at the resting price, self-trade prevention cancelling the incoming order,
    modify keeping priority only for a smaller quantity at the same price) and hit-quote
    orders against their quote.  Fed the commands in the order they reach the engine, it is the
    engine's book; through the gateway, where firms' requests interleave, an approximation (a
    participant's market data is a little late too).

    Why not the reference engine (``engine.core.reference.engine.ReferenceEngine``), which keeps
    the same book?  To know its book the simulation would have to apply every command it makes
    (registry, deposits, blocks, auctions, not only orders) one at a time as it makes it, and it
    would still need this class's list of resting ids (in its swap-remove order, which the
    seeded ``rng.choice`` of a cancel or a modify depends on) and its quote picking.  Measured on
    ``bench carbon --size small``'s year (242 days, 47,274 commands, seed 1; 2-core VM): the
    whole simulation takes 0.23 s, this book 0.12 s of it, and the reference engine applying the
    same commands 1.12 s - replacing the book would make the simulation about five times
    slower for the same stream.
    """

    def __init__(self) -> None:
        self.levels: dict[tuple[str, int], SortedDict] = {}
        """(symbol, side) -> price -> {order id: None} in time priority."""
        self.orders: dict[int, list] = {}
        """order id -> [symbol, side, price, open qty, account]."""
        self.ids: list[int] = []
        self._at: dict[int, int] = {}

    def clear(self) -> None:
        """The session closed: day orders expire."""
        self.levels.clear()
        self.orders.clear()
        self.ids.clear()
        self._at.clear()

    def _side(self, symbol: str, side: int) -> SortedDict:
        book = self.levels.get((symbol, side))
        if book is None:
            book = self.levels[(symbol, side)] = SortedDict()
        return book

    def rest(
        self, order_id: int, account: int, symbol: str, side: int, price: int, qty: int
    ) -> None:
        """Put an order at the tail of its price level."""
        self._side(symbol, side).setdefault(price, {})[order_id] = None
        self.orders[order_id] = [symbol, side, price, qty, account]
        self._at[order_id] = len(self.ids)
        self.ids.append(order_id)

    def remove(self, order_id: int) -> None:
        """Cancel a resting order (nothing if it is not resting)."""
        order = self.orders.pop(order_id, None)
        if order is None:
            return
        book = self.levels[(order[0], order[1])]
        queue = book[order[2]]
        del queue[order_id]
        if not queue:
            del book[order[2]]
        at, last = self._at.pop(order_id), self.ids.pop()
        if last != order_id:
            self.ids[at] = last
            self._at[last] = at

    def submit(
        self, order_id: int, account: int, symbol: str, side: int, price: int, qty: int
    ) -> list[Fill]:
        """A day limit order: trades what crosses, the rest rests."""
        other = self._side(symbol, s.Side.SELL if side == s.Side.BUY else s.Side.BUY)
        fills: list[Fill] = []
        while qty and other:
            best = other.peekitem(0 if side == s.Side.BUY else -1)[0]
            if (best > price) if side == s.Side.BUY else (best < price):
                break
            for maker in list(other[best]):
                resting = self.orders[maker]
                if resting[4] == account:  # self-trade prevention: the incoming is cancelled
                    return fills
                fill = min(qty, resting[3])
                fills.append((maker, resting[4], best, fill))
                qty -= fill
                resting[3] -= fill
                if not resting[3]:
                    self.remove(maker)
                if not qty:
                    break
        if qty:
            self.rest(order_id, account, symbol, side, price, qty)
        return fills

    def modify(self, order_id: int, price: int, qty: int) -> list[Fill]:
        order = self.orders[order_id]
        if price == order[2] and qty <= order[3]:
            order[3] = qty
            return []
        symbol, side, _, _, account = order
        self.remove(order_id)
        return self.submit(order_id, account, symbol, side, price, qty)

    def quote(
        self,
        symbol: str,
        side: int,
        levels: int,
        taker: int,
        rng: random.Random,
        newest: int | None = None,
    ) -> int | None:
        """A resting order of ``side`` within its best ``levels`` price levels that is not
        ``taker``'s and (``newest``) has an id no greater; None when there is none.  The
        earliest such order of a level picked at random."""
        book = self.levels.get((symbol, side))
        if not book:
            return None
        count = min(levels, len(book))
        level = rng.randrange(count)
        price = book.peekitem(-1 - level if side == s.Side.BUY else level)[0]
        for order_id in book[price]:
            if newest is not None and order_id > newest:
                break  # the rest of the level is newer still
            if self.orders[order_id][4] != taker:
                return order_id
        return None

    def hit(self, quote_id: int, qty: int) -> Fill:
        """A hit-quote order of ``qty`` against ``quote_id``: the fill."""
        quote = self.orders[quote_id]
        fill = min(qty, quote[3])
        quote[3] -= fill
        made = (quote_id, quote[4], quote[2], fill)
        if not quote[3]:
            self.remove(quote_id)
        return made


class _Phase(msgspec.Struct, frozen=True):
    """One phase of the traded instruments' day, as the simulation uses it."""

    index: int
    name: str
    start: str
    end: str
    listing: bool
    """Limit orders trade (continuous matching)."""
    hit_quote: bool
    block: bool
    share: float
    """Share of the day's new listing orders sent in this phase (by its duration)."""


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def local_time_ns(trading_date: int, clock: str) -> int:
    """``clock`` ("HH:MM", China Standard Time) of ``trading_date`` in ns since the epoch."""
    day = dt.date(trading_date // 10_000, trading_date // 100 % 100, trading_date % 100)
    seconds = (day - dt.date(1970, 1, 1)).days * 86_400 + _minutes(clock) * 60 - CST_OFFSET_S
    return seconds * 1_000_000_000


class _Auction(msgspec.Struct, frozen=True):
    """One day's auction: the application and announcement, the bids, the clearing."""

    opening: list[s.Command]
    bids: list[s.Command]
    clear: s.ClearAuction


class Simulation:
    """Order flow for consecutive trading days on the listed allowance vintages.

    Parameters
    ----------
    market:
        The market definition; orders go to its allowance instruments, in the trading phases
        of their schedule.
    seed:
        Seed of every random choice.
    scale:
        Fraction of the real participant count to simulate.
    """

    def __init__(self, market: MarketDefinition, seed: int = 1, scale: float = 1.0) -> None:
        self.market = market
        self.rng = random.Random(seed)
        self.participants = participants(seed, scale)
        self.entities = [p for p in self.participants if p.emissions_t > 0]
        self.investors = [p for p in self.participants if p.emissions_t == 0]
        self.by_account = {p.account: p for p in self.participants}
        self.instruments = [i for i in market.instruments if i.kind == "allowance"]
        self.spec = {i.symbol: i for i in self.instruments}
        self.fair = {i.symbol: i.reference_price_ticks for i in self.instruments}
        self.band = {i.symbol: i.band_bps for i in self.instruments}
        self.next_order_id = 1
        self.next_offer_id = self.next_auction_id = self.next_bid_id = 1
        self.first_traded_vintage = 0
        self.book = ListingBook()
        self.phases = self._phases()
        modes = set(self.instruments[0].modes) if self.instruments else set()
        self.blocks = "block" in modes
        self.auctions = "auction" in modes
        self.buy_fee_bps = market.fees.buy_bps if market.registry else 0
        # The simulation's estimate of every account's cash and allowances (see the module
        # docstring): enough to choose counterparties that can pay and deliver.
        self.cash: dict[int, int] = {}
        self.held: dict[tuple[int, str], int] = {}
        self.bought_today: dict[tuple[int, str], int] = {}
        self.proceeds: dict[int, int] = {}
        self.listing_today_t = 0
        self.block_due_t = 0
        self.days_simulated = 0
        self.auctions_held = 0
        self.last_auction_day: int | None = None
        self.auctions_in_year: dict[int, int] = {}

    # -- the market's trading day ------------------------------------------------------------

    def _phases(self) -> list[_Phase]:
        """The phases of the traded vintages' schedule (they share the national schedule)."""
        if not self.instruments:
            return []
        index = self.market.symbols.index(self.instruments[0].symbol)
        phases = self.market.phases(index)
        modes = set(self.instruments[0].modes)
        flags = []
        for phase in phases:
            allowed = set(phase.modes) & modes
            flags.append(("continuous" in allowed, "hit_quote" in allowed, "block" in allowed))
        minutes = [
            _minutes(p.end) - _minutes(p.start) if f[0] else 0 for p, f in zip(phases, flags)
        ]
        total = max(1, sum(minutes))
        return [
            _Phase(i, p.name, p.start, p.end, *f, share=m / total)
            for i, (p, f, m) in enumerate(zip(phases, flags, minutes))
        ]

    def _phase_commands(self, phase: int) -> list[s.Command]:
        """The operator's ``SetTradingPhase`` of every instrument whose schedule has ``phase``:
        one command for all when every instrument has it."""
        counts = [len(self.market.phases(i)) for i in range(len(self.market.instruments))]
        if all(n > phase for n in counts):
            return [s.SetTradingPhase(phase=phase)]
        return [
            s.SetTradingPhase(phase=phase, instrument=symbol)
            for symbol, n in zip(self.market.symbols, counts)
            if n > phase
        ]

    # -- the registry ---------------------------------------------------------------------------

    def setup(self, year: int) -> list[s.Command]:
        """Registry set-up: accounts, cash, allocation of ``year`` and pre-allocation of the next.

        Allocation of vintage ``year``: 70 % pre-allocation of last year's emissions, then the
        true-up (power: benchmark formula on the unit's output; other sectors: an
        intensity-based final allocation), all through ``engine.core.allocation``.
        """
        rng = self.rng
        commands: list[s.Command] = [
            s.OpenAccount(key=1_000_000, account=FEE_ACCOUNT, kind=s.AccountKind.FEE)
        ]
        for p in self.participants:
            kind = s.AccountKind.INVESTOR if p.sector == "investor" else s.AccountKind.COMPLIANCE
            commands.append(
                s.OpenAccount(
                    key=1_000_000 + p.account,
                    account=p.account,
                    kind=kind,
                    sector=SECTOR_CODES[p.sector],
                    province=p.province,
                )
            )
            cash = 50_000_000_000 if p.sector == "investor" else 2_000_000_000
            commands.append(
                s.DepositCash(key=2_000_000 + p.account, account=p.account, amount_fen=cash)
            )
        self.first_traded_vintage = year
        entities = [p for p in self.participants if p.emissions_t > 0]
        previous = {p.account: p.emissions_t * rng.randint(95, 105) // 100 for p in entities}
        vintage = f"CEA-{year}"
        pre = allocation.pre_allocate(year, vintage, previous)
        commands += pre
        pre_by_account = {c.account: c.qty_t for c in pre}
        units = [p.power_unit for p in entities if p.power_unit is not None]
        commands += allocation.true_up(
            year, vintage, units, markets.benchmarks_2024(), pre_by_account
        )
        for p in entities:
            if p.power_unit is None:  # intensity-based final allocation for other sectors
                final = p.emissions_t * rng.randint(102, 110) // 100
                top_up = final - pre_by_account.get(p.account, 0)
                if top_up > 0:
                    commands.append(
                        s.IssueAllowances(
                            key=allocation.allocation_key(year, p.account, 2),
                            account=p.account,
                            instrument=vintage,
                            qty_t=top_up,
                            true_up=True,
                        )
                    )
        current = {p.account: p.emissions_t for p in entities}
        commands += allocation.pre_allocate(year + 1, f"CEA-{year + 1}", current)
        self._estimate(commands)
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
            report = s.ReportEmissions(
                key=key + 3 * p.account,
                account=p.account,
                year=year,
                co2_t=p.emissions_t,
                cf4_kg=cf4,
                c2f6_kg=cf4 // 8,
            )
            commands.append(report)
            gwp = s.GWP_TABLE[report.gwp]
            due = p.emissions_t + (cf4 * gwp[0] + cf4 // 8 * gwp[1] + 500) // 1000
            if rng.random() < 0.002:
                due = due * rng.randint(50, 90) // 100
            for offset, symbol in enumerate(eligible):
                qty = min(due, tradable(p.account, symbol))
                if qty > 0:
                    commands.append(
                        s.SurrenderAllowances(
                            key=key + 3 * p.account + 1 + 10**9 * (offset + 1),
                            account=p.account,
                            instrument=symbol,
                            year=year,
                            qty_t=qty,
                        )
                    )
                    due -= qty
        commands.append(
            s.CloseComplianceYear(key=key, year=year, reference_price_ticks=reference_price_ticks)
        )
        return commands

    def _estimate(self, commands: list[s.Command]) -> None:
        """Account the registry's set-up in the estimate of cash and allowances."""
        for c in commands:
            if type(c) is s.DepositCash:
                self.cash[c.account] = self.cash.get(c.account, 0) + c.amount_fen
            elif type(c) is s.IssueAllowances:
                key = (c.account, c.instrument)
                self.held[key] = self.held.get(key, 0) + c.qty_t
            elif type(c) is s.ClawBack:
                key = (c.account, c.instrument)
                self.held[key] = self.held.get(key, 0) - c.qty_t

    def _settle(
        self, buyer: int, seller: int, symbol: str, price: int, qty: int, paid_now: bool = True
    ) -> None:
        """A trade in the estimate: the buyer pays at once, its allowances are tradable the
        next day (T+1).  The seller's proceeds count at once for a listing trade, and only from
        the next day for a block trade or an auction fill, which may settle later in the day
        than the simulation arranged it (an acceptance comes a while after its offer)."""
        value = price * qty
        self.cash[buyer] = self.cash.get(buyer, 0) - value
        if paid_now:
            self.cash[seller] = self.cash.get(seller, 0) + value
        else:
            self.proceeds[seller] = self.proceeds.get(seller, 0) + value
        self.bought_today[(buyer, symbol)] = self.bought_today.get((buyer, symbol), 0) + qty
        self.held[(seller, symbol)] = self.held.get((seller, symbol), 0) - qty

    def _new_day(self) -> None:
        self.book.clear()  # day orders expired at the close
        for key, qty in self.bought_today.items():
            self.held[key] = self.held.get(key, 0) + qty
        self.bought_today.clear()
        for account, value in self.proceeds.items():
            self.cash[account] = self.cash.get(account, 0) + value
        self.proceeds.clear()
        self.listing_today_t = 0

    def _spare_t(self, participant: Participant, symbol: str) -> int:
        """Allowances of ``symbol`` the participant can sell without falling short of its
        surrender (vintages eligible for the compliance year are kept for it)."""
        held = self.held.get((participant.account, symbol), 0) - ALLOWANCE_MARGIN_T
        vintage = self.spec[symbol].vintage or 0
        if participant.emissions_t and vintage <= self.first_traded_vintage:
            held -= participant.emissions_t * 105 // 100
        return held

    def _seller(self, symbol: str, qty: int, tries: int = 40) -> int | None:
        """A participant that can deliver ``qty`` of ``symbol`` (None if none found)."""
        rng = self.rng
        for _ in range(tries):
            pool = self.investors if self.investors and rng.random() < 0.2 else self.entities
            candidate = rng.choice(pool or self.participants)
            if self._spare_t(candidate, symbol) >= qty:
                return candidate.account
        return None

    def _symbol_and_seller(self, weights: list[int], qty: int) -> tuple[str, int] | None:
        """A traded vintage (by ``weights``) and a seller of ``qty`` of it; the other traded
        vintages when nobody can sell the first."""
        first = self.rng.choices(self.instruments, weights=weights)[0]
        others = [i for i, w in zip(self.instruments, weights) if w and i is not first]
        for instrument in [first, *others]:
            seller = self._seller(instrument.symbol, qty)
            if seller is not None:
                return instrument.symbol, seller
        return None

    def _buyer(self, value_fen: int, seller: int, tries: int = 40) -> int | None:
        """An account other than ``seller`` with the cash for ``value_fen`` (and its fee)."""
        rng = self.rng
        need = value_fen + value_fen * self.buy_fee_bps // 10_000 + CASH_MARGIN_FEN
        for _ in range(tries):
            pool = self.investors if self.investors and rng.random() < 0.3 else self.participants
            candidate = rng.choice(pool).account
            if candidate != seller and self.cash.get(candidate, 0) >= need:
                return candidate
        return None

    # -- listing: limit and hit-quote orders ------------------------------------------------

    def _limit(self, symbol: str, reference: int, side: int) -> int:
        """A price near the fair value, inside the band around ``reference``."""
        rng = self.rng
        fair = self.fair[symbol]
        aggressive = rng.random() < 0.35
        offset = rng.randint(0, 40)
        price = fair + offset if (side == s.Side.BUY) == aggressive else fair - offset
        return self._in_band(symbol, reference, price)

    def _in_band(self, symbol: str, reference: int, price: int) -> int:
        width = reference * self.band[symbol] // 10_000
        return max(reference - width + 1, min(reference + width - 1, price))

    def _listed(self, account: int, symbol: str, side: int, fills: list[Fill]) -> None:
        """Trades of ``account``'s order (the taker, on ``side``) in the estimate."""
        for _, maker, price, qty in fills:
            buyer, seller = (account, maker) if side == s.Side.BUY else (maker, account)
            self._settle(buyer, seller, symbol, price, qty)
            self.listing_today_t += qty

    def _order(
        self, trader: Participant, symbol: str, reference: int, phase: _Phase
    ) -> s.SubmitOrder:
        rng = self.rng
        side = s.Side.BUY if rng.random() < 0.5 or trader.sector == "investor" else s.Side.SELL
        qty = max(1, min(LISTING_MAX_T, int(trader.size_t * rng.uniform(0.2, 2.0))))
        order_id = self.next_order_id
        self.next_order_id += 1
        if phase.hit_quote and rng.random() < HIT_QUOTE_SHARE:
            hit = self._hit_quote(order_id, trader.account, symbol, side, qty)
            if hit is not None:
                return hit
        price = self._limit(symbol, reference, side)
        fills = self.book.submit(order_id, trader.account, symbol, side, price, qty)
        self._listed(trader.account, symbol, side, fills)
        return s.SubmitOrder(
            order_id=order_id,
            account=trader.account,
            instrument=symbol,
            side=side,
            qty_t=qty,
            price_ticks=price,
        )

    def _hit_quote(
        self, order_id: int, account: int, symbol: str, side: int, qty: int
    ) -> s.SubmitOrder | None:
        """A hit-quote order on a quote of the other side within the best levels."""
        rng = self.rng
        other = s.Side.SELL if side == s.Side.BUY else s.Side.BUY
        newest = self.next_order_id - QUOTE_AGE_ORDERS
        quote = self.book.quote(
            symbol, other, self.spec[symbol].hit_quote_levels, account, rng, newest
        )
        if quote is None:
            return None
        tif = s.TimeInForce.IOC
        if rng.random() < 0.2:  # fill or kill, for no more than the quote shows
            tif, qty = s.TimeInForce.FOK, min(qty, self.book.orders[quote][3])
        self._listed(account, symbol, side, [self.book.hit(quote, qty)])
        return s.SubmitOrder(
            order_id=order_id,
            account=account,
            instrument=symbol,
            side=side,
            qty_t=qty,
            order_type=s.OrderType.HIT_QUOTE,
            tif=tif,
            quote_order_id=quote,
        )

    def _follow_up(self, references: dict[str, int], listing: bool) -> s.Command | None:
        """A cancel or (while listing trades) a reprice of a resting order."""
        if not self.book.ids:
            return None
        rng = self.rng
        order_id = rng.choice(self.book.ids)
        symbol, side, _, _, account = self.book.orders[order_id]
        if not listing or rng.random() < 0.6:
            self.book.remove(order_id)
            return s.CancelOrder(order_id=order_id, account=account)
        price = self._in_band(symbol, references[symbol], self.fair[symbol] + rng.randint(-30, 30))
        qty = rng.randint(100, 5_000)
        self._listed(account, symbol, side, self.book.modify(order_id, price, qty))
        return s.ModifyOrder(order_id=order_id, account=account, price_ticks=price, qty_t=qty)

    def _listing_flow(
        self,
        count: int,
        phase: _Phase,
        active: list[Participant],
        weights: list[int],
        references: dict[str, int],
    ) -> list[s.Command]:
        rng = self.rng
        flow: list[s.Command] = []
        for _ in range(count):
            trader = rng.choice(active)
            symbol = rng.choices(self.instruments, weights=weights)[0].symbol
            flow.append(self._order(trader, symbol, references[symbol], phase))
            if rng.random() < 0.25:
                follow_up = self._follow_up(references, True)
                if follow_up is not None:
                    flow.append(follow_up)
        return flow

    def _interleave(
        self, flow: list[s.Command], groups: list[list[s.Command]], gaps: tuple[int, int] = (1, 1)
    ) -> list[s.Command]:
        """``flow`` with the groups' commands inserted at random places: the groups in the
        order they were made (the cash and allowances they move were estimated in that order),
        each group's commands in order, ``gaps`` (a range) of the flow's commands apart."""
        rng = self.rng
        keyed: list[tuple[tuple[int, int, int, int], s.Command]] = [
            ((i, 0, 0, 0), command) for i, command in enumerate(flow)
        ]
        places = sorted(rng.randint(0, len(flow)) for _ in groups)
        for k, (at, group) in enumerate(zip(places, groups)):
            gap = rng.randint(*gaps)
            keyed += [((at + j * gap, 1, k, j), command) for j, command in enumerate(group)]
        keyed.sort(key=lambda item: item[0])
        return [command for _, command in keyed]

    # -- block trades ------------------------------------------------------------------------

    def _on_tick(self, price: int, symbol: str, lower: int, upper: int) -> int:
        tick = self.spec[symbol].tick_ticks
        price = max(lower, min(upper, price))
        return price - price % tick if price - price % tick >= lower else price + (-price) % tick

    def _block(self, weights: list[int], references: dict[str, int]) -> list[s.Command] | None:
        """A block offer and its acceptance by the counterparty, with the same terms."""
        rng = self.rng
        smallest = max(i.block_min_qty_t for i in self.instruments)
        qty = int(smallest * rng.lognormvariate(0.5, 0.6)) // 10_000 * 10_000
        qty = max(smallest, min(BLOCK_MAX_T, qty))
        chosen = self._symbol_and_seller(weights, qty)
        if chosen is None:
            return None
        symbol, seller = chosen
        spec = self.spec[symbol]
        qty += (-qty) % spec.lot_t
        lower, upper = band_edges(references[symbol], spec.block_band_bps, spec.tick_ticks)
        top = self.market.capacity.max_price_ticks
        upper = min(upper, top - top % spec.tick_ticks)
        fair = self.fair[symbol]
        price = fair + round(fair * rng.uniform(-BLOCK_PRICE_SPREAD, BLOCK_PRICE_SPREAD))
        price = self._on_tick(price, symbol, lower, upper)
        buyer = self._buyer(price * qty, seller)
        if buyer is None:
            return None
        seller_offers = rng.random() < 0.5
        offerer, acceptor = (seller, buyer) if seller_offers else (buyer, seller)
        counterparty = acceptor if rng.random() < 0.8 else -1
        offer_id = self.next_offer_id
        self.next_offer_id += 1
        self._settle(buyer, seller, symbol, price, qty, paid_now=False)
        side = s.Side.SELL if seller_offers else s.Side.BUY
        return [
            s.SubmitBlockOffer(
                offer_id=offer_id,
                account=offerer,
                instrument=symbol,
                side=side,
                qty_t=qty,
                price_ticks=price,
                counterparty=counterparty,
            ),
            s.AcceptBlockOffer(offer_id=offer_id, account=acceptor, price_ticks=price, qty_t=qty),
        ]

    def _blocks(self, weights: list[int], references: dict[str, int]) -> list[list[s.Command]]:
        """The day's block trades: their volume follows the listing volume at 2023's ratio
        (what is left over, or overshot, carries to the next day)."""
        due = self.block_due_t + self.listing_today_t * BLOCK_TO_LISTING[0] // BLOCK_TO_LISTING[1]
        smallest = max(i.block_min_qty_t for i in self.instruments)
        pairs, misses = [], 0
        while due >= smallest and misses < 5:
            pair = self._block(weights, references)
            if pair is None:  # no counterparty found this time
                misses += 1
                continue
            pairs.append(pair)
            due -= pair[0].qty_t
        self.block_due_t = due
        return pairs

    # -- one-way auctions ----------------------------------------------------------------------

    def _auction_due(self, trading_date: int) -> bool:
        if not self.auctions:
            return False
        if self.auctions_in_year.get(trading_date // 10_000, 0) >= AUCTIONS_PER_YEAR:
            return False
        last = self.last_auction_day
        return last is None or self.days_simulated - last >= AUCTION_EVERY_DAYS

    def _auction(
        self, trading_date: int, weights: list[int], references: dict[str, int]
    ) -> _Auction | None:
        """A seller's lot sold by one-way auction during the first listing phase."""
        rng = self.rng
        smallest = max(i.auction_min_qty_t for i in self.instruments)
        lot = max(smallest, rng.randint(30, 200) * 10_000)
        chosen = self._symbol_and_seller(weights, lot)
        if chosen is None:
            return None
        symbol, seller = chosen
        spec = self.spec[symbol]
        lot += (-lot) % spec.lot_t
        held = self.auctions_held
        clearing = s.ClearingRule.UNIFORM if held % 2 == 0 else s.ClearingRule.PAY_AS_BID
        floor_rule = (
            s.FloorRule.CLOSE_MINUS_BAND if held // 2 % 2 == 0 else s.FloorRule.PREVIOUS_CLOSE
        )
        reference = references[symbol]
        lower, cap = band_edges(reference, spec.auction_band_bps, spec.tick_ticks)
        floor = reference if floor_rule == s.FloorRule.PREVIOUS_CLOSE else lower
        window = next(p for p in self.phases if p.listing)
        auction_id = self.next_auction_id
        self.next_auction_id += 1
        opening: list[s.Command] = [
            s.ApplyAuction(auction_id=auction_id, account=seller, instrument=symbol, qty_t=lot),
            s.AnnounceAuction(
                auction_id=auction_id,
                floor_rule=floor_rule,
                clearing=clearing,
                window_start_ns=local_time_ns(trading_date, window.start),
                window_end_ns=local_time_ns(trading_date, window.end),
            ),
        ]
        bids = self._bids(auction_id, seller, symbol, lot, floor, cap)
        self._cleared(seller, symbol, lot, clearing, bids)
        self.auctions_held += 1
        self.last_auction_day = self.days_simulated
        year = trading_date // 10_000
        self.auctions_in_year[year] = self.auctions_in_year.get(year, 0) + 1
        return _Auction(opening, bids, s.ClearAuction(auction_id=auction_id))

    def _bids(
        self, auction_id: int, seller: int, symbol: str, lot: int, floor: int, cap: int
    ) -> list[s.SubmitAuctionBid]:
        """Sealed bids near the fair value, inside [floor, cap]; together about 1.5 lots."""
        rng = self.rng
        spec = self.spec[symbol]
        bids = []
        for _ in range(rng.randint(8, 24)):
            qty = max(spec.lot_t, int(lot * rng.uniform(0.04, 0.2)) // 1_000 * 1_000)
            qty = min(lot, qty + (-qty) % spec.lot_t)
            fair = self.fair[symbol]
            price = self._on_tick(fair + round(fair * rng.gauss(0, 0.02)), symbol, floor, cap)
            bidder = self._buyer(price * qty, seller)
            if bidder is None:
                continue
            bids.append(
                s.SubmitAuctionBid(
                    bid_id=self.next_bid_id,
                    auction_id=auction_id,
                    account=bidder,
                    price_ticks=price,
                    qty_t=qty,
                )
            )
            self.next_bid_id += 1
            self.cash[bidder] -= price * qty  # locked until the clearing (released below)
        return bids

    def _cleared(
        self, seller: int, symbol: str, lot: int, clearing: int, bids: list[s.SubmitAuctionBid]
    ) -> None:
        """The clearing in the estimate: ranked by price then arrival, as the engine does."""
        ranked = sorted(range(len(bids)), key=lambda i: (-bids[i].price_ticks, i))
        fills, remaining = [], lot
        for i in ranked:
            fill = min(bids[i].qty_t, remaining)
            if fill:
                fills.append((bids[i], fill))
                remaining -= fill
        for bid in bids:
            self.cash[bid.account] += bid.price_ticks * bid.qty_t
        lowest = fills[-1][0].price_ticks if fills else 0
        for bid, fill in fills:
            price = lowest if clearing == s.ClearingRule.UNIFORM else bid.price_ticks
            self._settle(bid.account, seller, symbol, price, fill, paid_now=False)

    # -- the day -------------------------------------------------------------------------------

    def day(self, trading_date: int, orders: int, references: dict[str, int]) -> TradingDay:
        """One day's flow: ``orders`` new listing orders (limit and hit-quote) plus cancels and
        reprices in the listing phases, the phase changes, block trades in the block phase, and
        on some days a one-way auction."""
        rng = self.rng
        for instrument in self.instruments:  # the fair value drifts, 40-110 CNY/t
            step = rng.randint(-80, 80)
            self.fair[instrument.symbol] = max(
                4_000, min(11_000, self.fair[instrument.symbol] + step)
            )
        self._new_day()
        active = rng.sample(self.participants, k=min(len(self.participants), max(1, orders // 3)))
        # Entities trade the vintages they were allocated (older ones barely trade any more).
        weights = [
            1 if (i.vintage or 0) >= self.first_traded_vintage else 0 for i in self.instruments
        ]
        auction = None
        if self._auction_due(trading_date):
            auction = self._auction(trading_date, weights, references)
        commands: list[s.Command] = list(auction.opening) if auction is not None else []
        listing = [phase for phase in self.phases if phase.listing]
        left = orders
        for phase in self.phases:
            if phase.index:
                commands += self._phase_commands(phase.index)
            if phase.listing:
                count = left if phase is listing[-1] else min(left, round(orders * phase.share))
                left -= count
                flow = self._listing_flow(count, phase, active, weights, references)
            else:  # a break: some participants cancel what they left in the book
                flow = [
                    c
                    for c in (self._follow_up(references, False) for _ in range(orders // 50))
                    if c is not None
                ]
            if phase.block and self.blocks:
                flow = self._interleave(flow, self._blocks(weights, references), BLOCK_ACCEPT_GAP)
            if auction is not None and phase is listing[0]:
                flow = self._interleave(flow, [[bid] for bid in auction.bids]) + [auction.clear]
            commands += flow
        self.days_simulated += 1
        return TradingDay(trading_date, commands)


def trading_dates(first: int, count: int) -> Iterator[int]:
    """``count`` weekdays from ``first`` (YYYYMMDD), ignoring public holidays."""
    day = dt.date(first // 10_000, first // 100 % 100, first % 100)
    produced = 0
    while produced < count:
        if day.weekday() < 5:
            yield day.year * 10_000 + day.month * 100 + day.day
            produced += 1
        day += dt.timedelta(days=1)

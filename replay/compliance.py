"""One compliance year of the registry: each entity's obligation, surrenders, offsets, shortfall
and penalty.

Theory of operation
-------------------
A compliance year (``docs/LEDGER.md``) is told by five kinds of event: ``AccountOpened`` names
the compliance entities (kind COMPLIANCE); ``EmissionsReported`` sets an entity's obligation for
the year (a later report replaces an earlier one); ``AllowancesSurrendered`` counts allowances of
an eligible vintage, or offsets, against it; and ``CloseComplianceYear`` ends the year with one
``ComplianceReported`` per entity (its shortfall, and the penalty at the reference price the
closing command carried) followed by ``ComplianceYearClosed``.

:class:`ComplianceReport` rebuilds every entity's position from the reports and surrenders
alone, the same way for an open year as for a closed one, so an open year shows what a close at
the end of the log would report - except the penalty, which needs the closing price.  For a
closed year the penalty is the one ``ComplianceReported`` recorded, and the rebuilt position is
compared with that event: a difference is a *discrepancy*, a finding like an audit failure (the
events are the engine's own, recomputed by replay, so this checks the engine's bookkeeping of
the year against its individual reports and surrenders).
"""

from __future__ import annotations

import msgspec
import numpy as np

from engine.core import limits
from engine.core import records as r
from engine.core import schema as s
from engine.core.market import MarketDefinition
from replay.datadir import DataDir
from replay.errors import UsageError
from replay.reports import Consumer, Row


class SurrenderedVintage(msgspec.Struct, frozen=True):
    """What an entity surrendered of one instrument (an allowance vintage or an offset family)
    for the year."""

    instrument: str
    kind: str
    """``"allowance"`` or ``"offset"`` (the market definition's instrument kind)."""
    vintage: int | None
    qty_t: int


class EntityPosition(msgspec.Struct, frozen=True):
    """One compliance entity in the year."""

    account: int
    sector: s.Sector
    province: int
    reported: bool
    """Whether the entity reported its emissions for the year (if not, its obligation is 0)."""
    report_seq: int | None
    """Seq of the report in force (the latest)."""
    co2_t: int
    cf4_kg: int
    c2f6_kg: int
    gwp: s.GwpVersion | None
    obligation_t: int
    """tCO2e: CO2 plus CF4 and C2F6 converted with the report's GWP table."""
    surrendered: list[SurrenderedVintage]
    """Per instrument, in the market's instrument order; offsets included."""
    surrendered_t: int
    """Allowances surrendered (every vintage; offsets not included)."""
    offsets_t: int
    offset_limit_t: int
    """The most offsets the obligation admits (``obligation × offset_limit_bps // 10000``)."""
    shortfall_t: int
    """``max(0, obligation − surrendered − offsets)``; in an open year: so far."""
    penalty_fen: int | None
    """As recorded by the year's ``ComplianceReported``; None while the year is open."""


class ComplianceTotals(msgspec.Struct, frozen=True):
    """The year over all entities."""

    entities: int
    complied: int
    """Entities without a shortfall (so far, in an open year)."""
    short: int
    unreported: int
    obligation_t: int
    surrendered_t: int
    offsets_t: int
    shortfall_t: int
    penalty_fen: int | None
    """None while the year is open."""


class ComplianceYear(msgspec.Struct, frozen=True):
    """The ``compliance`` report of one year, read to the end of the log."""

    year: int
    closed: bool
    closed_seq: int | None
    closed_ts_ns: int | None
    reference_price_ticks: int | None
    """The closing command's reference price (fen per tonne); None while open."""
    penalty_multiple: int
    offset_limit_bps: int
    last_seq: int
    """The last seq of the log that was read."""
    entities: list[EntityPosition]
    totals: ComplianceTotals
    discrepancies: list[str]
    """Closed year: every way the rebuilt positions differ from ``ComplianceReported``."""


def compliance_years(market: MarketDefinition) -> range:
    """The compliance years the market's registry holds (``first_year`` and the 15 after)."""
    first = market.compliance.first_year
    return range(first, first + limits.COMPLIANCE_YEARS)


def check_year(market: MarketDefinition, year: int) -> None:
    """Refuse (usage error) a market without a registry, or a year it does not hold."""
    if not market.registry:
        raise UsageError(
            f"market {market.name!r} runs without a registry (registry = false): it has no "
            "compliance years"
        )
    years = compliance_years(market)
    if year not in years:
        raise UsageError(
            f"year {year} is not a compliance year of the market ({years[0]} … {years[-1]})"
        )


class _Entity:
    """Running position of one entity: its account row, its report in force, its surrenders."""

    __slots__ = ("account", "province", "report", "sector", "surrendered")

    def __init__(self, account: int, sector: int, province: int, instruments: int) -> None:
        self.account, self.sector, self.province = account, sector, province
        self.report: Row | None = None
        self.surrendered = [0] * instruments


class ComplianceReport(Consumer):
    """Every compliance entity's position in ``year`` (see the module docstring).

    Raises
    ------
    UsageError
        The market runs no registry, or ``year`` is not one of its compliance years.
    """

    kinds = frozenset(
        {r.EV_ACCOUNT_OPENED, r.EV_EMISSIONS, r.EV_SURRENDERED, r.EV_COMPLIANCE, r.EV_YEAR_CLOSED}
    )

    def __init__(self, data: DataDir, year: int) -> None:
        check_year(data.market, year)
        self.market, self.year = data.market, year
        self.offset = [ins.kind == "offset" for ins in data.market.instruments]
        self.entities: dict[int, _Entity] = {}
        self.recorded: dict[int, Row] = {}
        """``ComplianceReported`` rows of the year, by account."""
        self.close: Row | None = None
        """The year's ``ComplianceYearClosed`` row."""

    def take(self, rows: np.ndarray) -> None:
        """See :meth:`Consumer.take`."""
        opened = rows[:, r.E_KIND] == r.EV_ACCOUNT_OPENED
        entity = opened & (rows[:, r.ACCOUNT_OPENED.kind] == s.AccountKind.COMPLIANCE)
        mine = entity | (~opened & (rows[:, _YEAR] == self.year))
        for row in rows[mine].tolist():
            kind, account = row[r.E_KIND], row[r.E_ACCOUNT]
            if kind == r.EV_ACCOUNT_OPENED:
                if self.close is None:  # opened after the close: no position in this year
                    self.entities[account] = _Entity(
                        account,
                        row[r.ACCOUNT_OPENED.sector],
                        row[r.ACCOUNT_OPENED.province],
                        len(self.offset),
                    )
            elif kind == r.EV_EMISSIONS:
                self._entity(account).report = row
            elif kind == r.EV_SURRENDERED:
                self._entity(account).surrendered[row[r.E_INSTRUMENT]] += row[r.E_QTY]
            elif kind == r.EV_COMPLIANCE:
                self.recorded[account] = row
            else:
                self.close = row

    def _entity(self, account: int) -> _Entity:
        # Only compliance accounts report or surrender; one missing from the opened accounts
        # (impossible from a genuine log) is still shown rather than dropped.
        if account not in self.entities:
            self.entities[account] = _Entity(account, 0, 0, len(self.offset))
        return self.entities[account]

    def result(self, last_seq: int = 0) -> ComplianceYear:
        """The year's report; ``last_seq``: the last seq of the log that was read."""
        close = self.close
        price = None if close is None else close[r.E_PRICE]
        positions = [self._position(e, price) for _, e in sorted(self.entities.items())]
        compliance = self.market.compliance
        return ComplianceYear(
            self.year,
            close is not None,
            None if close is None else close[r.E_SEQ],
            None if close is None else close[r.E_TS],
            price,
            compliance.penalty_multiple,
            compliance.offset_limit_bps,
            last_seq,
            positions,
            _totals(positions, close),
            [] if price is None else self._discrepancies(positions, price),
        )

    def _position(self, e: _Entity, price: int | None) -> EntityPosition:
        report = e.report or [0] * r.EVENT_FIELDS
        obligation = report[r.E_QTY]
        offsets = sum(q for q, offset in zip(e.surrendered, self.offset, strict=True) if offset)
        allowances = sum(e.surrendered) - offsets
        shortfall = max(0, obligation - allowances - offsets)
        penalty = None
        if price is not None:
            recorded = self.recorded.get(e.account)
            penalty = (
                recorded[r.COMPLIANCE_REPORTED.penalty_fen]
                if recorded is not None
                else self._penalty(shortfall, price)
            )
        specs = self.market.instruments
        surrendered = [
            SurrenderedVintage(spec.symbol, spec.kind, spec.vintage, qty)
            for spec, qty in zip(specs, e.surrendered, strict=True)
            if qty
        ]
        return EntityPosition(
            e.account,
            s.Sector(e.sector),
            e.province,
            e.report is not None,
            None if e.report is None else report[r.E_SEQ],
            report[r.EMISSIONS_REPORTED.co2_t],
            report[r.EMISSIONS_REPORTED.cf4_kg],
            report[r.EMISSIONS_REPORTED.c2f6_kg],
            None if e.report is None else s.GwpVersion(report[r.EMISSIONS_REPORTED.gwp]),
            obligation,
            surrendered,
            allowances,
            offsets,
            obligation * self.market.compliance.offset_limit_bps // 10_000,
            shortfall,
            penalty,
        )

    def _penalty(self, shortfall_t: int, price_ticks: int) -> int:
        return shortfall_t * price_ticks * self.market.compliance.penalty_multiple

    def _discrepancies(self, positions: list[EntityPosition], price: int) -> list[str]:
        """Where the rebuilt positions differ from the year's ``ComplianceReported`` events."""
        found = []
        for p in positions:
            row = self.recorded.get(p.account)
            if row is None:
                found.append(f"account {p.account}: no ComplianceReported at the close")
                continue
            rebuilt = (
                p.obligation_t,
                p.surrendered_t,
                p.offsets_t,
                p.shortfall_t,
                self._penalty(p.shortfall_t, price),
            )
            recorded = tuple(row[column] for column in _RECORDED)
            for name, mine, theirs in zip(_COMPARED, rebuilt, recorded, strict=True):
                if mine != theirs:
                    found.append(
                        f"account {p.account}: {name} {theirs:,} recorded at the "
                        f"close, {mine:,} from the reports and surrenders"
                    )
        shown = {p.account for p in positions}
        for account in sorted(set(self.recorded) - shown):
            found.append(
                f"account {account}: ComplianceReported for an account that is not a "
                "compliance entity"
            )
        return found


_COMPARED = ("obligation_t", "surrendered_t", "offsets_t", "shortfall_t", "penalty_fen")
_RECORDED = tuple(getattr(r.COMPLIANCE_REPORTED, name) for name in _COMPARED)
"""The columns of a ``ComplianceReported`` row holding the figures of :data:`_COMPARED`."""
_YEAR = r.EMISSIONS_REPORTED.year
"""The year's column, which every year-scoped registry event shares."""
assert _YEAR == r.ALLOWANCES_SURRENDERED.year == r.COMPLIANCE_REPORTED.year
assert _YEAR == r.COMPLIANCE_YEAR_CLOSED.year


def _totals(positions: list[EntityPosition], close: Row | None) -> ComplianceTotals:
    short = sum(1 for p in positions if p.shortfall_t)
    penalty = None if close is None else sum(p.penalty_fen or 0 for p in positions)
    return ComplianceTotals(
        len(positions),
        len(positions) - short,
        short,
        sum(1 for p in positions if not p.reported),
        sum(p.obligation_t for p in positions),
        sum(p.surrendered_t for p in positions),
        sum(p.offsets_t for p in positions),
        sum(p.shortfall_t for p in positions),
        penalty,
    )

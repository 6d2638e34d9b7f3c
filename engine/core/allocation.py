"""Allowance allocation for the power sector, as registry commands.

Theory of operation
-------------------
The national ETS allocates free allowances to power units by intensity benchmarks::

    A = electricity (MWh) x benchmark (tCO2/MWh) x correction factor + heat (GJ) x heat benchmark

Each year an entity first receives a **pre-allocation** of 70 % of its previous year's verified
emissions (rounded down to whole tonnes); once the year's output is verified, the **true-up**
tops the allocation up to ``A`` or claws back the excess.  This module computes both in integer
arithmetic (benchmarks in micro-tonnes per unit, correction factors in parts per million,
results rounded down) and returns registry commands; it never touches engine state, so the
commands go through the log like any other.

Idempotency keys are derived from (year, account, step) so that re-running an allocation
produces the same keys and the registry applies it once: ``key = year * 10^10 + account * 10 +
step`` with step 1 (pre-allocation) or 2 (true-up).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from engine.core import schema as s

MICRO = 1_000_000
PRE_ALLOCATION_PERCENT = 70

UnitCategory = Literal["coal_300mw_plus", "coal_below_300mw", "coal_unconventional", "gas"]


class Benchmarks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Benchmarks of one year, in micro-tonnes of CO2 per MWh (per GJ for heat)."""

    year: int
    electricity_ut_per_mwh: dict[str, Annotated[int, msgspec.Meta(ge=0)]]
    heat_ut_per_gj: Annotated[int, msgspec.Meta(ge=0)]


class PowerUnit(msgspec.Struct, frozen=True):
    account: int
    category: UnitCategory
    electricity_mwh: int
    heat_gj: int = 0
    correction_ppm: int = MICRO
    """Correction factor (load factor, cooling type ...) in parts per million (1.0 = 10^6)."""


def unit_allocation_t(unit: PowerUnit, benchmarks: Benchmarks) -> int:
    """Allocation of one unit, in whole tonnes (rounded down)."""
    benchmark = benchmarks.electricity_ut_per_mwh[unit.category]
    electricity = unit.electricity_mwh * benchmark * unit.correction_ppm // MICRO
    heat = unit.heat_gj * benchmarks.heat_ut_per_gj
    return (electricity + heat) // MICRO


def pre_allocation_t(previous_verified_t: int) -> int:
    """70 % of the previous year's verified emissions, rounded down."""
    return previous_verified_t * PRE_ALLOCATION_PERCENT // 100


def allocation_key(year: int, account: int, step: int) -> int:
    return year * 10**10 + account * 10 + step


def pre_allocate(
    year: int, instrument: str, previous_verified_t: dict[int, int]
) -> list[s.IssueAllowances]:
    """Pre-allocation commands for every entity (account -> last year's verified emissions)."""
    return [
        s.IssueAllowances(
            key=allocation_key(year, account, 1),
            account=account,
            instrument=instrument,
            qty_t=pre_allocation_t(verified),
        )
        for account, verified in sorted(previous_verified_t.items())
        if pre_allocation_t(verified) > 0
    ]


def true_up(
    year: int,
    instrument: str,
    units: list[PowerUnit],
    benchmarks: Benchmarks,
    pre_allocated_t: dict[int, int],
) -> list[s.IssueAllowances | s.ClawBack]:
    """Final true-up per entity: issue the shortfall or claw back the excess of the
    pre-allocation against the benchmark allocation of its units."""
    final: dict[int, int] = {}
    for unit in units:
        final[unit.account] = final.get(unit.account, 0) + unit_allocation_t(unit, benchmarks)
    commands: list[s.IssueAllowances | s.ClawBack] = []
    for account in sorted(final):
        difference = final[account] - pre_allocated_t.get(account, 0)
        key = allocation_key(year, account, 2)
        if difference > 0:
            commands.append(
                s.IssueAllowances(
                    key=key, account=account, instrument=instrument, qty_t=difference, true_up=True
                )
            )
        elif difference < 0:
            commands.append(
                s.ClawBack(key=key, account=account, instrument=instrument, qty_t=-difference)
            )
    return commands

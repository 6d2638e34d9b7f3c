"""The market definition's trading modes and phase schedules: what is accepted, and the field
each refusal names (docs/TRADING_MODES.md, "Modes, phases and the market definition")."""

from __future__ import annotations

import pytest

from engine.core.market import MarketDefinitionError, loads
from engine.markets import national_market

BASE = """
name = "t"
[[instruments]]
symbol = "A"
{instrument}
{schedules}
"""


def definition(instrument: str = "", schedules: str = "") -> str:
    return BASE.format(instrument=instrument, schedules=schedules)


def test_the_national_schedule_has_three_phases_and_block_only_in_the_afternoon() -> None:
    market = national_market()
    assert [phase.name for phase in market.phases(0)] == ["morning", "midday", "afternoon"]
    assert market.phase_masks(0) == [1 | 2, 0, 1 | 2 | 4]
    assert market.instruments[0].mode_bits == 15


def test_an_instrument_without_a_schedule_has_one_phase_of_every_phase_mode() -> None:
    market = loads(definition('modes = ["hit_quote", "auction"]'))
    assert market.phase_masks(0) == [1 | 2 | 4]
    assert market.instruments[0].mode_bits == 2 | 8


@pytest.mark.parametrize(
    "instrument, schedules, field",
    [
        ('schedule = "nope"', "", "$.instruments[0].schedule"),
        ("modes = []", "", "$.instruments[0].modes"),
        ('modes = ["block", "block"]', "", "$.instruments[0].modes"),
        ('modes = ["swap"]', "", "modes"),
        (
            "lot_t = 1000\nmin_qty_t = 1000\nmax_qty_t = 99000\nblock_min_qty_t = 100500",
            "",
            "$.instruments[0].block_min_qty_t",
        ),
        ("hit_quote_levels = 0", "", "hit_quote_levels"),
        (
            "",
            '[schedules]\nday = [{ name = "x", start = "10:00", end = "09:00" }]',
            "$.schedules.day[0].end",
        ),
        (
            "",
            '[schedules]\nday = [{ name = "a", start = "09:00", end = "11:00" },\n'
            '       { name = "b", start = "10:00", end = "12:00" }]',
            "$.schedules.day[1].start",
        ),
        ("", '[schedules]\nday = [{ name = "a", start = "9:00", end = "11:00" }]', "start"),
        (
            "",
            '[schedules]\nday = [{ name = "a", start = "09:00", end = "11:00", modes = ["auction"] }]',
            "modes",
        ),
        (
            "",
            "[schedules]\nday = ["
            + ", ".join(
                f'{{ name = "p{i}", start = "{i:02d}:00", end = "{i:02d}:30" }}' for i in range(9)
            )
            + "]",
            "$.schedules.day",
        ),
    ],
)
def test_a_bad_mode_or_schedule_is_refused_naming_the_field(instrument, schedules, field) -> None:
    with pytest.raises(MarketDefinitionError) as info:
        loads(definition(instrument, schedules))
    assert field in str(info.value)

"""The hand-unrolled decoders of the order path's events equal the generated ones.

``records._order_event_decoders`` replaces the decoders generated from ``EVENT_LAYOUT`` for the
four events of every order command (speed); this holds them to the same typed events, field for
field, on seeded random rows, invalid codes included (the same exception either way).
"""

from __future__ import annotations

import random

import pytest

from engine.core import records as r
from engine.core import schema as s
from engine.markets import national_market

SEED = 20261204


def _generated(codec: r.Codec) -> dict:
    return {
        kind: r._decoder(r._EVENT_CLASSES[kind], picks, r._with_symbols(conv, codec._names))
        for kind, (_, picks, conv) in r._EVENT_PLANS.items()
    }


def _outcome(decode, row: list):
    try:
        return decode(list(row))
    except Exception as exc:  # noqa: BLE001 - the kind of failure is what is compared
        return type(exc)


@pytest.mark.parametrize(
    "event", [s.OrderAccepted, s.TradeExecuted, s.OrderCancelled, s.OrderModified]
)
def test_hand_decoders_equal_the_generated_ones(event: type) -> None:
    print(f"seed {SEED}")
    codec = r.Codec(national_market())
    generated, kind = _generated(codec), event.__struct_config__.tag
    assert codec._event_decoders[kind] is not generated[kind]
    rng = random.Random(SEED + kind)
    for _ in range(5_000):
        row = [kind] + [rng.randrange(-3, 10**9) for _ in range(15)]
        row[r.E_INSTRUMENT] = rng.randrange(-3, 12)
        for column in (r.E_SIDE, r.E_REASON, r.E_X0, r.E_X1):
            if rng.random() < 0.9:
                row[column] = rng.randrange(0, 9)
        expected = _outcome(generated[kind], row)
        got = _outcome(codec._event_decoders[kind], row)
        assert type(got) is type(expected) and got == expected, row
        if not isinstance(expected, type):
            assert msgspec_fields(got) == msgspec_fields(expected), row


def msgspec_fields(event) -> list:
    return [(f, type(getattr(event, f)), getattr(event, f)) for f in event.__struct_fields__]

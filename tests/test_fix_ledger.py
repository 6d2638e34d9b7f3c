"""``OrderLedger.before``: undoing the last events gives each of them the figures the live
ledger gave it (what a FIX session's missed reports carry), on a seeded random order flow."""

from __future__ import annotations

import random

import msgspec
import pytest

from engine.core import schema as s
from engine.core.records import Codec
from engine.core.reference.engine import ReferenceEngine
from gateway.fix.orders import OrderLedger
from tests.gateway_fixtures import DATE1, SYM_A, SYM_C, small_market


def _flow(rng: random.Random, count: int) -> list:
    """Orders, cancels and modifies (some of them refused) on two instruments."""
    commands: list = [s.OpenSession(trading_date=DATE1)]
    for seq in range(2, count + 2):
        choice, order_id = rng.random(), rng.randrange(2, seq + 1)
        if choice < 0.6:
            commands.append(
                s.SubmitOrder(
                    order_id=seq,
                    account=rng.randrange(1, 5),
                    instrument=rng.choice((SYM_A, SYM_C)),
                    side=rng.choice((s.Side.BUY, s.Side.SELL)),
                    qty_t=rng.randrange(1, 50),
                    price_ticks=rng.randrange(5990, 6020),
                    tif=rng.choice((s.TimeInForce.DAY, s.TimeInForce.IOC)),
                )
            )
        elif choice < 0.75:
            commands.append(s.CancelOrder(order_id=order_id, account=rng.randrange(1, 5)))
        else:
            commands.append(
                s.ModifyOrder(
                    order_id=order_id,
                    account=rng.randrange(1, 5),
                    price_ticks=rng.randrange(5990, 6020),
                    qty_t=rng.randrange(1, 60),
                )
            )
    commands.append(s.CloseSession(trading_date=DATE1))  # what rests expires
    return [msgspec.structs.replace(c, seq=seq, ts_ns=seq) for seq, c in enumerate(commands, 1)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_before_then_apply_gives_the_live_figures(seed: int) -> None:
    print(f"seed {seed}")
    rng = random.Random(seed)
    market = small_market()
    engine, codec = ReferenceEngine(market), Codec(market)
    live, figures, batches = OrderLedger(), {}, []
    commands = _flow(rng, 400)
    while commands:  # batches of random sizes, as the gateway applies them
        size, batch = rng.randrange(1, 40), []
        for command in commands[:size]:
            batch += [codec.event_row(event) for event in engine.apply(command)]
        commands = commands[size:]
        batches.append(batch)
        figures.update(live.apply(batch))
    rows = [row for batch in batches for row in batch]
    kinds = {row[0] for row in rows}
    assert len(kinds) >= 5, "accepted, traded, cancelled, modified, rejected all occur"
    for start in sorted(rng.sample(range(len(rows)), 12)) + [0, len(rows)]:
        while 0 < start < len(rows) and rows[start][1] == rows[start - 1][1]:
            start += 1  # the gap starts at a command's first event
        tail = rows[start:]
        again = live.before(tail).apply(tail)
        assert again == {key: figures[key] for key in again}
        first_seq = tail[0][1] if tail else rows[-1][1] + 1
        assert len(again) == sum(1 for key in figures if key[0] >= first_seq)

"""Seeded differential test: the compiled engine against the reference, event by event.

Random command streams (valid and invalid, every command kind, few accounts so self-trades
happen, few order ids so duplicates and reuse happen, a narrow price range so most orders
trade) go through both engines; every event record and the state hash must be identical.

``CETS_DIFF_COMMANDS`` sets the number of commands per seed (default small for CI; set it to
millions for a long run) and ``CETS_DIFF_SEEDS`` the number of seeds.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from bench import workloads
from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from engine.core.market import Capacity, Instrument, MarketDefinition
from engine.core.records import Codec
from engine.core.reference.engine import ReferenceEngine

COMMANDS = int(os.environ.get("CETS_DIFF_COMMANDS", "6000"))
SEEDS = int(os.environ.get("CETS_DIFF_SEEDS", "4"))

MARKET = MarketDefinition(
    name="differential",
    instruments=[
        Instrument(symbol="CEA-2024", reference_price_ticks=1_000, band_bps=1_000, lot_t=1),
        Instrument(
            symbol="CEA-2025",
            reference_price_ticks=2_000,
            band_bps=500,
            tick_ticks=5,
            lot_t=10,
            min_qty_t=10,
            max_qty_t=500,
        ),
    ],
    capacity=Capacity(accounts=6, resting_orders=400, max_price_ticks=5_000),
)


class CommandStream:
    """Random commands, mostly valid, with every kind of mistake mixed in."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.date = 20250101

    def _price(self, symbol: str) -> int:
        rng = self.rng
        centre, spread = (1_000, 120) if symbol == "CEA-2024" else (2_000, 120)
        price = centre + rng.randint(-spread, spread)
        if symbol == "CEA-2025" and rng.random() < 0.9:
            price -= price % 5
        return price if rng.random() > 0.01 else rng.choice([0, -5, 4_999, 10**6])

    def _submit(self) -> s.SubmitOrder:
        rng = self.rng
        symbol = rng.choice(
            ["CEA-2024", "CEA-2024", "CEA-2025", "NOPE"][: 3 if rng.random() < 0.99 else 4]
        )
        order_type = rng.choices([1, 2, 3, 9], weights=[80, 8, 10, 1])[0]
        tif = rng.choices([1, 2, 3, 4, 7], weights=[50, 20, 15, 12, 1])[0]
        qty = (
            rng.choice([1, 5, 10, 20, 30, 50, 100, 250])
            if rng.random() > 0.02
            else rng.choice([0, -1, 600, 15])
        )
        return s.SubmitOrder(
            order_id=rng.randint(-1, 300),
            account=rng.randint(0, 6) if rng.random() < 0.99 else -1,
            instrument=symbol,
            side=rng.choices([1, 2, 3], weights=[50, 50, 1])[0],
            qty_t=qty,
            price_ticks=self._price(symbol),
            order_type=order_type,
            tif=tif,
            stp=rng.choices([1, 2, 3, 0], weights=[40, 30, 30, 1])[0],
        )

    def _session(self) -> s.Command:
        rng = self.rng
        symbol = rng.choice([s.ALL_INSTRUMENTS, s.ALL_INSTRUMENTS, "CEA-2024", "CEA-2025", "X"])
        roll = rng.random()
        if roll < 0.4:
            self.date += rng.choice([1, 1, 1, 0])
            return s.OpenSession(trading_date=self.date, instrument=symbol)
        if roll < 0.7:
            return s.CloseSession(trading_date=self.date, instrument=symbol)
        if roll < 0.85:
            return s.HaltInstrument(instrument=rng.choice(["CEA-2024", "CEA-2025", "X"]))
        return s.ResumeInstrument(instrument=rng.choice(["CEA-2024", "CEA-2025", "X"]))

    def next(self, seq: int) -> s.Command:
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            command = self._submit()
        elif roll < 0.75:
            command = s.CancelOrder(order_id=rng.randint(0, 300), account=rng.randint(0, 6))
        elif roll < 0.95:
            symbol = rng.choice(["CEA-2024", "CEA-2025"])
            command = s.ModifyOrder(
                order_id=rng.randint(0, 300),
                account=rng.randint(0, 6),
                price_ticks=self._price(symbol),
                qty_t=rng.choice([1, 5, 10, 20, 40, 100, 0]),
            )
        elif roll < 0.97:
            command = s.MassCancel(
                account=rng.randint(0, 6), instrument=rng.choice(["", "CEA-2024", "CEA-2025", "X"])
            )
        else:
            command = self._session()
        return type(command)(**{**_fields(command), "seq": seq, "ts_ns": seq * 1_000})


def _fields(command: s.Command) -> dict:
    return {name: getattr(command, name) for name in command.__struct_fields__}


def _opening() -> list[s.Command]:
    return [s.OpenSession(trading_date=20250101, seq=0)]


@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_commands_agree_event_by_event(seed: int) -> None:
    print(f"differential seed={seed} commands={COMMANDS}")
    stream = CommandStream(seed)
    compiled, reference = CompiledEngine(MARKET), ReferenceEngine(MARKET)
    codec = Codec(MARKET)
    for command in _opening():
        assert (
            codec.encode_events(compiled.apply(command)).tobytes()
            == codec.encode_events(reference.apply(command)).tobytes()
        )
    for seq in range(1, COMMANDS + 1):
        command = stream.next(seq)
        fast, slow = compiled.apply(command), reference.apply(command)
        assert fast == slow, f"seed {seed}, seq {seq}: {command}"
        if seq % 500 == 0:
            assert compiled.state_hash() == reference.state_hash(), f"seed {seed}, seq {seq}"
            compiled.check_invariants()
            reference.check_invariants()
            _assert_same_books(compiled, reference, f"seed {seed}, seq {seq}")
    assert compiled.state_hash() == reference.state_hash()
    assert compiled.export_state() == reference.export_state()


def _assert_same_books(compiled: CompiledEngine, reference: ReferenceEngine, where: str) -> None:
    """Each side's resting orders in priority order, whole and cut to a few levels."""
    for symbol in ("CEA-2024", "CEA-2025"):
        for side in (s.Side.BUY, s.Side.SELL):
            for levels in (None, 0, 1, 3):
                assert compiled.orders(symbol, side, levels) == reference.orders(
                    symbol, side, levels
                ), f"{where}: {symbol} side {side} levels {levels}"


@pytest.mark.parametrize("seed", range(2))
def test_record_batches_agree_with_typed_path(seed: int) -> None:
    """The batch path (records in, records out) equals the typed path of the reference."""
    print(f"differential batch seed={seed}")
    stream = CommandStream(100 + seed)
    commands = _opening() + [stream.next(seq) for seq in range(1, COMMANDS + 1)]
    codec = Codec(MARKET)
    records = codec.encode_commands(commands)
    compiled, reference = CompiledEngine(MARKET), ReferenceEngine(MARKET)
    fast = compiled.apply_records(records)
    slow = codec.encode_events(reference.apply_all(commands))
    assert fast.tobytes() == slow.tobytes()
    assert compiled.state_hash() == reference.state_hash()


@pytest.mark.parametrize("name", sorted(workloads.WORKLOADS))
def test_benchmark_workloads_agree(name: str) -> None:
    market, records = workloads.generate(name, 3_000, seed=7)
    compiled, reference = CompiledEngine(market), ReferenceEngine(market)
    fast = compiled.apply_records(records)
    slow = reference.apply_records(records)
    assert np.array_equal(fast, slow)
    assert compiled.state_hash() == reference.state_hash()
    compiled.check_invariants()

"""Shared fixtures and command builders for the matching-engine tests.

``engine_cls`` runs a test against both implementations of docs/MATCHING.md: the plain-Python
reference and the compiled engine (imported lazily, so ``-k reference`` works without it).
``step`` applies one command and then checks the engine's invariants, as every test should.
"""

from __future__ import annotations

import random

import pytest

from engine.core import schema as s
from engine.core.market import Capacity, Instrument, MarketDefinition, validate

ENGINES = ["reference", "compiled"]

SYM_A = "CEA-A"
"""Tick 1, lot 1, orders 1 … 99,999 t, reference 6000, band ±10 %: 5400 … 6600."""
SYM_B = "CEA-B"
"""Tick 5, lot 100, orders 100 … 10,000 t, reference 6000, band ±10 %: 5400 … 6600."""
SYM_C = "CEA-C"
"""Tick 1, reference 6005, band ±10 % rounded inward: 5405 … 6605."""

DATE1, DATE2, DATE3 = 20250102, 20250103, 20250106
ACCOUNTS = 64


def small_market(resting_orders: int = 20_000, name: str = "test market") -> MarketDefinition:
    """Three instruments with small capacities (validated like a loaded definition); the one
    small market of the engine tests and (named ``"gateway test market"``) the gateway's."""
    return validate(
        MarketDefinition(
            name=name,
            instruments=[
                Instrument(symbol=SYM_A, reference_price_ticks=6000, band_bps=1000),
                Instrument(
                    symbol=SYM_B,
                    reference_price_ticks=6000,
                    band_bps=1000,
                    tick_ticks=5,
                    lot_t=100,
                    min_qty_t=100,
                    max_qty_t=10_000,
                ),
                Instrument(symbol=SYM_C, reference_price_ticks=6005, band_bps=1000),
            ],
            capacity=Capacity(
                accounts=ACCOUNTS, resting_orders=resting_orders, max_price_ticks=20_000
            ),
        )
    )


@pytest.fixture(params=ENGINES, ids=ENGINES)
def engine_cls(request: pytest.FixtureRequest) -> type:
    """The engine class under test: ``ReferenceEngine`` or ``CompiledEngine``."""
    if request.param == "reference":
        from engine.core.reference.engine import ReferenceEngine

        return ReferenceEngine
    from engine.core.compiled.engine import CompiledEngine  # lazily: it may not be built yet

    return CompiledEngine


@pytest.fixture
def market() -> MarketDefinition:
    return small_market()


@pytest.fixture
def closed_engine(engine_cls: type, market: MarketDefinition):
    """A fresh engine: every instrument ``CLOSED``, no orders."""
    return engine_cls(market)


@pytest.fixture
def engine(closed_engine):
    """An engine with every instrument's session open on ``DATE1``."""
    step(closed_engine, open_session(DATE1))
    return closed_engine


# -- stepping --------------------------------------------------------------------------------
def step(engine, command: s.Command) -> list[s.Event]:
    """Apply one command, check the engine's invariants, and check that every event survives
    the record view unchanged."""
    events = engine.apply(command)
    engine.check_invariants()
    for event in events:
        row = engine.codec.event_row(event)
        assert engine.codec.event(row) == event, f"{event!r} does not round-trip"
    return events


def steps(engine, commands: list[s.Command]) -> list[s.Event]:
    """``step`` each command in turn; return all events."""
    events: list[s.Event] = []
    for command in commands:
        events.extend(step(engine, command))
    return events


def of(events: list[s.Event], kind: type) -> list:
    """The events of one type, in order."""
    return [e for e in events if type(e) is kind]


def trades(events: list[s.Event]) -> list[s.TradeExecuted]:
    return of(events, s.TradeExecuted)


def kinds(events: list[s.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- command builders ------------------------------------------------------------------------
def submit(
    order_id: int,
    account: int,
    side: int,
    qty_t: int,
    price_ticks: int = 0,
    instrument: str = SYM_A,
    order_type: int = s.OrderType.LIMIT,
    tif: int = s.TimeInForce.DAY,
    stp: int = s.StpMode.CANCEL_INCOMING,
    seq: int = 0,
    ts_ns: int = 0,
) -> s.SubmitOrder:
    return s.SubmitOrder(
        order_id=order_id,
        account=account,
        instrument=instrument,
        side=side,
        qty_t=qty_t,
        price_ticks=price_ticks,
        order_type=order_type,
        tif=tif,
        stp=stp,
        seq=seq,
        ts_ns=ts_ns,
    )


def buy(order_id: int, account: int, qty_t: int, price_ticks: int, **kw) -> s.SubmitOrder:
    """A limit buy (DAY unless ``tif`` says otherwise)."""
    return submit(order_id, account, s.Side.BUY, qty_t, price_ticks, **kw)


def sell(order_id: int, account: int, qty_t: int, price_ticks: int, **kw) -> s.SubmitOrder:
    """A limit sell (DAY unless ``tif`` says otherwise)."""
    return submit(order_id, account, s.Side.SELL, qty_t, price_ticks, **kw)


def market_order(
    order_id: int, account: int, side: int, qty_t: int, tif: int = s.TimeInForce.IOC, **kw
) -> s.SubmitOrder:
    return submit(order_id, account, side, qty_t, 0, order_type=s.OrderType.MARKET, tif=tif, **kw)


def post_only(order_id: int, account: int, side: int, qty_t: int, price_ticks: int, **kw):
    return submit(
        order_id, account, side, qty_t, price_ticks, order_type=s.OrderType.POST_ONLY, **kw
    )


def cancel(order_id: int, account: int, **kw) -> s.CancelOrder:
    return s.CancelOrder(order_id=order_id, account=account, **kw)


def modify(order_id: int, account: int, price_ticks: int, qty_t: int, **kw) -> s.ModifyOrder:
    return s.ModifyOrder(
        order_id=order_id, account=account, price_ticks=price_ticks, qty_t=qty_t, **kw
    )


def mass_cancel(account: int, instrument: str = s.ALL_INSTRUMENTS, **kw) -> s.MassCancel:
    return s.MassCancel(account=account, instrument=instrument, **kw)


def open_session(trading_date: int, instrument: str = s.ALL_INSTRUMENTS, **kw) -> s.OpenSession:
    return s.OpenSession(trading_date=trading_date, instrument=instrument, **kw)


def close_session(trading_date: int, instrument: str = s.ALL_INSTRUMENTS, **kw) -> s.CloseSession:
    return s.CloseSession(trading_date=trading_date, instrument=instrument, **kw)


def halt(instrument: str, **kw) -> s.HaltInstrument:
    return s.HaltInstrument(instrument=instrument, **kw)


def resume(instrument: str, **kw) -> s.ResumeInstrument:
    return s.ResumeInstrument(instrument=instrument, **kw)


# -- random command streams ------------------------------------------------------------------
def random_commands(rng: random.Random, n: int, market: MarketDefinition) -> list[s.Command]:
    """``n`` random commands for ``market``: mostly valid submits around the reference price,
    with cancels, modifies, mass cancels, sessions, halts, reused ids and a few faulty fields,
    so that every code path of the matching rules is exercised.  Sessions start closed: the
    stream opens them early.  Deterministic for a given ``rng`` state."""
    symbols = market.symbols
    specs = {ins.symbol: ins for ins in market.instruments}
    date = 20250101
    commands: list[s.Command] = [open_session(date + 1)]
    date += 1
    for seq in range(1, n):
        roll = rng.random()
        if roll < 0.60:
            commands.append(_random_submit(rng, seq, symbols, specs))
        elif roll < 0.75:
            commands.append(cancel(rng.randint(1, 300), rng.randint(0, 5), seq=seq))
        elif roll < 0.88:
            spec = specs[rng.choice(symbols)]
            price = spec.reference_price_ticks + spec.tick_ticks * rng.randint(-30, 30)
            qty = spec.lot_t * rng.randint(0, 30) + (1 if rng.random() < 0.03 else 0)
            commands.append(modify(rng.randint(1, 300), rng.randint(0, 5), price, qty, seq=seq))
        elif roll < 0.90:
            instrument = rng.choice(symbols + [s.ALL_INSTRUMENTS, s.ALL_INSTRUMENTS, "NOPE"])
            commands.append(mass_cancel(rng.randint(0, 6), instrument, seq=seq))
        elif roll < 0.95:
            instrument = rng.choice(symbols + [s.ALL_INSTRUMENTS] * 3 + ["NOPE"])
            if rng.random() < 0.5:
                date += rng.choice((0, 1, 1, 3))
                commands.append(open_session(date, instrument, seq=seq))
            else:
                commands.append(close_session(date, instrument, seq=seq))
        else:
            make = halt if rng.random() < 0.5 else resume
            commands.append(make(rng.choice(symbols + ["NOPE"]), seq=seq))
    return commands


def _random_submit(rng: random.Random, seq: int, symbols: list[str], specs: dict):
    symbol = rng.choice(symbols) if rng.random() > 0.01 else "NOPE"
    spec = specs.get(symbol, specs[symbols[0]])
    side = rng.choice((s.Side.BUY, s.Side.SELL))
    price = spec.reference_price_ticks + spec.tick_ticks * rng.randint(-30, 30)
    if rng.random() < 0.02:
        price += 1  # usually off-tick or out of band
    qty = spec.lot_t * rng.randint(1, 40) if rng.random() > 0.02 else rng.choice((0, 1, 10**6))
    order_type = rng.choices(list(s.OrderType)[:3], weights=(80, 8, 12))[0]
    if order_type == s.OrderType.MARKET:
        tif = rng.choice((s.TimeInForce.IOC, s.TimeInForce.FOK))
    elif order_type == s.OrderType.POST_ONLY:
        tif = rng.choice((s.TimeInForce.DAY, s.TimeInForce.GTC))
    else:
        tif = rng.choices(list(s.TimeInForce), weights=(50, 25, 15, 10))[0]
    if rng.random() < 0.02:
        tif = rng.choice(list(s.TimeInForce))  # may be an invalid combination
    return submit(
        rng.randint(1, 300) if rng.random() > 0.01 else 0,
        rng.randint(0, 5) if rng.random() > 0.01 else ACCOUNTS,
        side if rng.random() > 0.005 else 3,
        qty,
        price,
        instrument=symbol,
        order_type=order_type,
        tif=tif,
        stp=rng.choice(list(s.StpMode)),
        seq=seq,
        ts_ns=seq * 1000,
    )

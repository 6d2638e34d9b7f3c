"""The trading schedule as commands (``gateway.schedule``), and the server driving it.

Pure functions of a local date and time: the day's plan of the national market, what is due
between two looks (boundaries crossed once, weekends skipped, a jump over midnight), the
start-up catch-up from the engine's status.  Then a real server with a fake local clock: the
schedule's commands enter the log as the schedule user's and move the engine.
"""

from __future__ import annotations

import datetime as dt
import time

import msgspec
import pytest

from engine.core import schema as s
from engine.markets import national_market
from gateway import schedule as sc
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import small_market, users

THURSDAY = dt.date(2025, 1, 2)
SATURDAY = dt.date(2025, 1, 4)
ALL = s.ALL_INSTRUMENTS


def names(commands) -> list[tuple]:
    return [(type(c).__name__, getattr(c, "phase", None)) for c in commands]


def test_the_national_day_plan() -> None:
    plan = sc.day_plan(national_market(), THURSDAY)
    assert [minute for minute, _ in plan] == [570, 690, 780, 900]
    assert [c for _, c in plan] == [
        s.OpenSession(trading_date=20250102, instrument=ALL),
        s.SetTradingPhase(phase=1, instrument=ALL),
        s.SetTradingPhase(phase=2, instrument=ALL),
        s.CloseSession(trading_date=20250102, instrument=ALL),
    ]
    assert sc.day_plan(national_market(), SATURDAY) == []


def test_commands_are_due_once_as_the_clock_crosses_them() -> None:
    market = national_market()
    due = sc.due_commands
    assert due(market, THURSDAY, dt.time(9, 29, 59), dt.time(9, 30)) == [
        s.OpenSession(trading_date=20250102)
    ]
    assert due(market, THURSDAY, dt.time(9, 30), dt.time(9, 30, 30)) == []
    assert names(due(market, THURSDAY, dt.time(9, 30), dt.time(15, 0))) == [
        ("SetTradingPhase", 1),
        ("SetTradingPhase", 2),
        ("CloseSession", None),
    ]
    assert len(due(market, THURSDAY, None, dt.time(23, 59))) == 4


def test_the_scheduler_watches_and_jumps_over_midnight() -> None:
    scheduler = sc.Scheduler(national_market())
    assert scheduler.due(dt.datetime(2025, 1, 2, 14, 0)) == [], "the first look starts the watch"
    assert scheduler.due(dt.datetime(2025, 1, 2, 13, 0)) == [], "the clock went back: nothing"
    assert names(scheduler.due(dt.datetime(2025, 1, 3, 9, 45))) == [
        ("CloseSession", None),
        ("OpenSession", None),
    ]
    assert scheduler.due(dt.datetime(2025, 1, 3, 9, 46)) == []


def status(symbol: str, state: s.SessionState, date: int, phase: int = 0) -> s.InstrumentStatus:
    return s.InstrumentStatus(symbol, state, date, 6000, 5400, 6600, phase)


def test_catch_up_brings_the_engine_to_the_schedules_state() -> None:
    market = national_market()
    symbols = market.symbols
    closed_before = [status(x, s.SessionState.CLOSED, 20241231) for x in symbols]
    afternoon = sc.catch_up(market, THURSDAY, dt.time(14, 0), closed_before)
    assert names(afternoon) == [("OpenSession", None), ("SetTradingPhase", 2)] * len(symbols)
    assert sc.catch_up(market, THURSDAY, dt.time(8, 0), closed_before) == []
    assert sc.catch_up(market, SATURDAY, dt.time(10, 0), closed_before) == []
    open_yesterday = [status(x, s.SessionState.OPEN, 20250101, 2) for x in symbols]
    assert names(sc.catch_up(market, THURSDAY, dt.time(8, 0), open_yesterday)) == [
        ("CloseSession", None)
    ] * len(symbols)
    open_today = [status(x, s.SessionState.OPEN, 20250102, 0) for x in symbols]
    assert names(sc.catch_up(market, THURSDAY, dt.time(12, 0), open_today)) == [
        ("SetTradingPhase", 1)
    ] * len(symbols)
    assert names(sc.catch_up(market, THURSDAY, dt.time(16, 0), open_today)) == [
        ("CloseSession", None)
    ] * len(symbols)
    closed_today = [status(x, s.SessionState.CLOSED, 20250102) for x in symbols]
    assert sc.catch_up(market, THURSDAY, dt.time(10, 0), closed_today) == [], (
        "a session closed today (by the operator) is not reopened"
    )


def test_the_market_time_zone_is_china_standard_time() -> None:
    moment = dt.datetime(2025, 7, 1, 1, 30, tzinfo=dt.timezone.utc)
    assert moment.astimezone(sc.MARKET_TIME_ZONE).hour == 9, "UTC+8, no daylight saving"


@pytest.fixture
def scheduled_market():
    market = small_market()
    phases = national_market().schedules["seee"]
    return msgspec.structs.replace(
        market,
        schedules={"day": phases},
        instruments=[msgspec.structs.replace(i, schedule="day") for i in market.instruments],
    )


def test_the_server_runs_the_day_by_its_clock(tmp_path, scheduled_market) -> None:
    clock = [dt.datetime(2025, 1, 2, 9, 29, 59)]
    with ServerThread(
        tmp_path / "data",
        users(),
        GatewayConfig(port=0),
        market=scheduled_market,
        durability="none",
        schedule=True,
        local_clock=lambda: clock[0],
    ) as server:
        gateway = server.gateway

        def states() -> list[tuple[int, int, int]]:
            engine = gateway.exchange.engine
            return [
                (int(x.state), x.trading_date, x.phase)
                for x in map(engine.status, gateway.exchange.codec.symbols)
            ]

        def wait_for(expected) -> None:
            for _ in range(500):
                if server.call(states) == expected:
                    return
                time.sleep(0.01)
            assert server.call(states) == expected

        assert server.call(lambda: gateway.exchange.last_seq) == 0, "before 09:30: nothing"
        clock[0] = dt.datetime(2025, 1, 2, 9, 30, 1)
        server.call(gateway._schedule_timer)
        wait_for([(1, 20250102, 0)] * 3)
        clock[0] = dt.datetime(2025, 1, 2, 13, 0, 0)
        server.call(gateway._schedule_timer)
        wait_for([(1, 20250102, 2)] * 3)
        clock[0] = dt.datetime(2025, 1, 2, 15, 0, 0)
        server.call(gateway._schedule_timer)
        wait_for([(0, 20250102, 2)] * 3)
        users_of = [
            batch.annotations()
            for batch in server.call(lambda: list(gateway.exchange.journal.read(1)))
        ]
        assert all(b"schedule" in item for items in users_of for item in items)

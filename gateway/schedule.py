"""The trading-day schedule as commands: which session and phase commands are due when.

Theory of operation
-------------------
The engine never reads a clock: it opens and closes sessions and moves trading phases only when
told (``OpenSession``, ``SetTradingPhase``, ``CloseSession``).  This module decides *what* to
tell it from the market definition's schedules, as pure functions of a local date and time
(:func:`due_commands`, :func:`catch_up`); the server reads the clock at its edge, asks
:class:`Scheduler`, and submits what is due through the sequencer as operator commands, so they
enter the log like any other and a replay does not depend on the clock.

The day of an instrument with a named schedule (``Instrument.schedule``): ``OpenSession`` at its
first phase's start (which puts it in phase 0), ``SetTradingPhase(i)`` at each later phase's
start, ``CloseSession`` at its last phase's end.  Instruments that share a schedule get one
command (``instrument = ""`` when every instrument shares it).  Instruments without a schedule
(one all-day phase) are left to the operator.  Trading days are Monday to Friday; exchange
holidays are the operator's (run with ``--no-schedule`` or close the session by hand).

Time zone: the market definition's times are China's local time.  ``Asia/Shanghai`` from the
system's time-zone database (``zoneinfo``) when it is there, else a fixed UTC+8 offset, which is
the same thing: China has had one time zone and no daylight saving time since 1991.

An operator can still override at any time (halt, open, close, set a phase by hand): the
scheduler acts on boundaries as the clock crosses them, never "corrects" the state in between,
so a manual action stands until the next boundary.  Only when the server starts does it catch
up once (:func:`catch_up`): it brings each scheduled instrument to the state the schedule says
for now, judging from the engine's status, without repeating a day's open or close.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from engine.core import schema as s
from engine.core.market import MarketDefinition

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    MARKET_TIME_ZONE: dt.tzinfo = ZoneInfo("Asia/Shanghai")
except (ImportError, ZoneInfoNotFoundError):  # pragma: no cover - no tz database installed
    MARKET_TIME_ZONE = dt.timezone(dt.timedelta(hours=8), "CST")

TRADING_WEEKDAYS = frozenset(range(5))
"""Monday (0) to Friday (4)."""


def trading_date(day: dt.date) -> int:
    """``day`` as the engine's YYYYMMDD integer."""
    return day.year * 10_000 + day.month * 100 + day.day


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _groups(market: MarketDefinition) -> list[tuple[str, list]]:
    """(instrument of the commands, phases) per schedule in use: ``""`` when every instrument
    follows the same schedule, else one entry per scheduled instrument."""
    names = [instrument.schedule for instrument in market.instruments]
    if names and names[0] and all(name == names[0] for name in names):
        return [(s.ALL_INSTRUMENTS, market.schedules[names[0]])]
    return [
        (instrument.symbol, market.schedules[instrument.schedule])
        for instrument in market.instruments
        if instrument.schedule
    ]


def day_plan(market: MarketDefinition, day: dt.date) -> list[tuple[int, object]]:
    """Every scheduled command of ``day``: (minute of the day, command), in time order (at one
    minute: closes, then opens, then phase changes); nothing on a day that is not a trading day.
    """
    if day.weekday() not in TRADING_WEEKDAYS:
        return []
    date = trading_date(day)
    plan: list[tuple[int, int, object]] = []
    for instrument, phases in _groups(market):
        plan.append(
            (_minutes(phases[0].start), 1, s.OpenSession(trading_date=date, instrument=instrument))
        )
        for index, phase in enumerate(phases[1:], 1):
            plan.append(
                (_minutes(phase.start), 2, s.SetTradingPhase(phase=index, instrument=instrument))
            )
        plan.append(
            (_minutes(phases[-1].end), 0, s.CloseSession(trading_date=date, instrument=instrument))
        )
    plan.sort(key=lambda step: (step[0], step[1]))
    return [(minute, command) for minute, _, command in plan]


def due_commands(
    market: MarketDefinition, day: dt.date, after: dt.time | None, now: dt.time
) -> list:
    """The commands of ``day`` whose time is in ``(after, now]`` (``after`` None: from the
    start of the day, inclusive)."""
    low = -1 if after is None else after.hour * 60 + after.minute  # after < hh:mm:00
    high = now.hour * 60 + now.minute
    return [command for minute, command in day_plan(market, day) if low < minute <= high]


def catch_up(
    market: MarketDefinition, day: dt.date, now: dt.time, statuses: Iterable[s.InstrumentStatus]
) -> list:
    """At start-up: the commands that bring each scheduled instrument to the schedule's state
    for ``now`` on ``day``, judged from its engine status.

    A session left open from an earlier date is closed (with its own date).  Within today's
    hours a closed instrument that has not traded today is opened, and an open one moved to
    the current phase; after today's close, today's open session is closed.  A session closed
    today stays closed (the operator's or the schedule's close is not undone).
    """
    status_of = {status.instrument: status for status in statuses}
    date, minute = trading_date(day), now.hour * 60 + now.minute
    trading = day.weekday() in TRADING_WEEKDAYS
    commands: list = []
    for symbol, phases in _scheduled_symbols(market):
        status = status_of[symbol]
        is_open = status.state != s.SessionState.CLOSED
        if is_open and status.trading_date != date:
            commands.append(s.CloseSession(trading_date=status.trading_date, instrument=symbol))
            is_open = False
        if not trading:
            continue
        start, end = _minutes(phases[0].start), _minutes(phases[-1].end)
        if start <= minute < end:
            phase = max(i for i, p in enumerate(phases) if _minutes(p.start) <= minute)
            if not is_open and status.trading_date != date:
                commands.append(s.OpenSession(trading_date=date, instrument=symbol))
                if phase:
                    commands.append(s.SetTradingPhase(phase=phase, instrument=symbol))
            elif is_open and status.phase != phase:
                commands.append(s.SetTradingPhase(phase=phase, instrument=symbol))
        elif minute >= end and is_open:
            commands.append(s.CloseSession(trading_date=date, instrument=symbol))
    return commands


def _scheduled_symbols(market: MarketDefinition) -> list[tuple[str, list]]:
    return [
        (instrument.symbol, market.schedules[instrument.schedule])
        for instrument in market.instruments
        if instrument.schedule
    ]


class Scheduler:
    """What is due since the last look (no clock: the caller passes the local time).

    Parameters
    ----------
    market : MarketDefinition

    Examples
    --------
    >>> from engine.markets import national_market
    >>> scheduler = Scheduler(national_market())
    >>> scheduler.due(dt.datetime(2025, 1, 2, 9, 29, 59))       # the first look: nothing due
    []
    >>> [type(c).__name__ for c in scheduler.due(dt.datetime(2025, 1, 2, 9, 30, 0))]
    ['OpenSession']
    """

    def __init__(self, market: MarketDefinition) -> None:
        self.market = market
        self.last: dt.datetime | None = None
        """The local time of the last look (None: not looked yet)."""

    def has_schedule(self) -> bool:
        """Whether any instrument follows a named schedule."""
        return any(instrument.schedule for instrument in self.market.instruments)

    def due(self, now: dt.datetime) -> list:
        """The commands whose time was crossed since the last look (none on the first, which
        only starts the watch: see :func:`catch_up`); ``now`` is local (naive or aware)."""
        last, self.last = self.last, now
        if last is None or now <= last:
            return []
        commands: list = []
        day = last.date()
        after: dt.time | None = last.time()
        while day < now.date():  # the rest of each day the clock jumped over
            commands += due_commands(self.market, day, after, dt.time(23, 59, 59))
            day, after = day + dt.timedelta(days=1), None
        return commands + due_commands(self.market, day, after, now.time())

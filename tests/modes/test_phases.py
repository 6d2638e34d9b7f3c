"""Trading-mode scenarios (docs/TRADING_MODES.md) against both engines: trading phases and the close.

What each phase allows (the midday break included), and the close: expiry, prices, mode
volumes, the composite price.
The market, the desk and the command builders are ``tests/modes/desk.py``'s; every command
goes through ``step`` (invariants and the event round trip after each)."""

from __future__ import annotations

import pytest

from engine.core import schema as s
from tests.conftest import DATE1, DATE2, DATE3
from tests.modes.desk import (
    AFTERNOON,
    BLK,
    BUY,
    C_,
    CASH,
    CCER,
    CCERB,
    CONT,
    GTC,
    HELD,
    HQ,
    MIDDAY,
    MORNING,
    QUOTE_BOOK,
    SELL,
    TO_AFTERNOON,
    V24,
    V25,
    A,
    B,
    C,
    D,
    Desk,
    R,
    accept,
    offer,
    order,
    phase,
    run_setup,
)

# ============================================================================================
# Trading phases
# ============================================================================================


def test_set_trading_phase_reports_the_modes_each_instrument_has_in_the_phase(desk: Desk):
    def changed(command) -> list[tuple]:
        events = desk.do(command)
        assert all(type(e) is s.TradingPhaseChanged and e.seq == events[0].seq for e in events)
        return [(e.instrument, e.phase, e.modes) for e in events]

    # CCER-B has one phase only: phase 1 or 2 is INVALID_PHASE for it, skipped silently
    assert changed(phase(MIDDAY)) == [(V24, 1, 0), (V25, 1, 0), (CCER, 1, 0)]
    assert changed(phase(AFTERNOON)) == [
        (V24, 2, CONT | HQ | BLK),
        (V25, 2, CONT | HQ | BLK),
        (CCER, 2, HQ | BLK),
    ]
    assert changed(phase(MORNING)) == [
        (V24, 0, CONT | HQ),
        (V25, 0, CONT | HQ),
        (CCER, 0, HQ),
        (CCERB, 0, 0),
    ]
    assert changed(phase(MORNING, V25)) == [(V25, 0, CONT | HQ)]  # also when nothing changes
    desk.ok(s.HaltInstrument(instrument=V24))
    assert changed(phase(AFTERNOON, V24)) == [(V24, 2, CONT | HQ | BLK)]  # also when halted
    assert [row[0] for row in desk.modes().instruments] == [2, 0, 0, 0]


def test_the_phase_is_state(desk: Desk) -> None:
    start = desk.hash()
    desk.ok(phase(MIDDAY, V24))
    midday = desk.hash()
    assert midday != start
    desk.ok(phase(MORNING, V24))
    assert desk.hash() == start  # nothing else changed


PHASE_REFUSALS = [
    ("unknown-instrument", [], phase(9, "NOPE"), "?", R.UNKNOWN_INSTRUMENT),
    (
        "closed",
        [s.CloseSession(trading_date=DATE1, instrument=V24)],
        phase(1, V24),
        V24,
        R.SESSION_NOT_OPEN,
    ),
    (
        "closed-before-invalid-phase",
        [s.CloseSession(trading_date=DATE1, instrument=V24)],
        phase(3, V24),
        V24,
        R.SESSION_NOT_OPEN,
    ),
    ("phase-beyond-schedule", [], phase(3, V24), V24, R.INVALID_PHASE),
    ("phase-negative", [], phase(-1, CCER), CCER, R.INVALID_PHASE),
    ("one-phase-schedule", [], phase(1, CCERB), CCERB, R.INVALID_PHASE),
    ("all-invalid", [], phase(3), "", R.INVALID_PHASE),
    (
        "all-first-reason-wins",
        [s.CloseSession(trading_date=DATE1, instrument=V24)],
        phase(3),
        "",
        R.SESSION_NOT_OPEN,
    ),
    ("all-closed", [s.CloseSession(trading_date=DATE1)], phase(0), "", R.SESSION_NOT_OPEN),
]


@pytest.mark.parametrize(
    "setup, command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in PHASE_REFUSALS]
)
def test_set_trading_phase_refusal(desk: Desk, setup, command, echo: str, reason: R) -> None:
    run_setup(desk, setup)
    before = desk.hash()
    events = desk.do(command)
    assert events == [s.CommandRejected(events[0].seq, 0, 14, echo, reason)]
    assert desk.hash() == before


def test_a_closed_instrument_is_skipped_when_every_instrument_changes(desk: Desk) -> None:
    desk.ok(s.CloseSession(trading_date=DATE1, instrument=V25))
    events = desk.do(phase(MORNING))
    assert [(e.instrument, e.modes) for e in events] == [(V24, CONT | HQ), (CCER, HQ), (CCERB, 0)]


def test_open_session_starts_every_instrument_in_phase_zero(desk: Desk) -> None:
    desk.ok(phase(AFTERNOON))
    desk.ok(s.CloseSession(trading_date=DATE1))
    events = desk.do(s.OpenSession(trading_date=DATE2))
    assert [type(e) for e in events] == [s.SessionOpened] * 4  # no TradingPhaseChanged
    assert [row[0] for row in desk.modes().instruments] == [0, 0, 0, 0]
    assert [e.reason for e in desk.do(offer())] == [R.MODE_NOT_IN_PHASE]
    assert desk.engine.status(V24).phase == 0


def test_the_midday_break_keeps_quotes_and_allows_only_cancels(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(1, A, BUY, 100, 5990, tif=GTC),
            order(2, A, BUY, 100, 5980),
            order(3, A, BUY, 100, 5970),
            order(4, C_, SELL, 100, 6010),
            order(5, C_, SELL, 100, 5020, CCER),
        ],
    )
    desk.ok(phase(MIDDAY))
    for command, reason in [
        (s.ModifyOrder(order_id=9, account=A, price_ticks=5990, qty_t=0), R.UNKNOWN_ORDER),
        (s.ModifyOrder(order_id=1, account=B, price_ticks=5990, qty_t=0), R.NOT_ORDER_OWNER),
        (s.ModifyOrder(order_id=1, account=A, price_ticks=1, qty_t=0), R.MODE_NOT_IN_PHASE),
        (
            s.ModifyOrder(order_id=1, account=A, price_ticks=5990, qty_t=50),
            R.MODE_NOT_IN_PHASE,
        ),  # even a reduction in place
        (s.ModifyOrder(order_id=5, account=C_, price_ticks=5020, qty_t=50), R.MODE_NOT_IN_PHASE),
    ]:
        before = desk.hash()
        events = desk.do(command)
        assert events == [
            s.ModifyRejected(
                events[0].seq,
                0,
                command.order_id,
                command.account,
                command.price_ticks,
                command.qty_t,
                reason,
            )
        ]
        assert desk.hash() == before
    events = desk.do(s.CancelOrder(order_id=2, account=A))
    assert events == [s.OrderCancelled(events[0].seq, 0, 2, A, V24, BUY, 5980, 100, C.REQUESTED)]
    events = desk.do(s.MassCancel(account=C_))
    assert [(type(e), getattr(e, "order_id", None)) for e in events] == [
        (s.OrderCancelled, 4),
        (s.OrderCancelled, 5),
        (s.MassCancelled, None),
    ]
    assert [o.order_id for o in desk.engine.orders(V24, BUY)] == [1, 3]
    assert desk.cash(A) == (CASH - 100 * 5990 - 100 * 5970, 100 * 5990 + 100 * 5970)
    # the afternoon brings continuous trading back, and modifies
    desk.ok(phase(AFTERNOON))
    events = desk.do(s.ModifyOrder(order_id=1, account=A, price_ticks=5990, qty_t=60))
    assert type(events[0]) is s.OrderModified and events[0].priority_kept
    events = desk.do(order(6, B, SELL, 60, 5990))
    assert [(t.maker_order_id, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [(1, 60)]


def test_modify_without_continuous_may_not_cross(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK + [order(40, A, BUY, 100, 4980, CCER)])
    refusals = [
        (s.ModifyOrder(order_id=40, account=A, price_ticks=5020, qty_t=100), R.WOULD_TRADE),
        (s.ModifyOrder(order_id=40, account=A, price_ticks=5100, qty_t=10), R.WOULD_TRADE),
        (s.ModifyOrder(order_id=31, account=C_, price_ticks=4990, qty_t=100), R.WOULD_TRADE),
    ]
    for command, reason in refusals:
        before = desk.hash()
        assert [e.reason for e in desk.do(command)] == [reason]
        assert desk.hash() == before
    # a new price that does not cross, a larger quantity at the same price: fine
    events = desk.do(s.ModifyOrder(order_id=40, account=A, price_ticks=5015, qty_t=100))
    assert [type(e) for e in events] == [s.OrderModified] and not events[0].priority_kept
    events = desk.do(s.ModifyOrder(order_id=40, account=A, price_ticks=5015, qty_t=200))
    assert [type(e) for e in events] == [s.OrderModified]
    # with continuous effective a crossing limit modify trades (CEA-2024)
    desk.ok(order(41, A, BUY, 10, 5900))
    events = desk.do(s.ModifyOrder(order_id=41, account=A, price_ticks=6010, qty_t=10))
    assert [(t.maker_order_id, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [(11, 10)]


def test_modify_checks_cash_before_would_trade_without_continuous(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK + [order(40, A, BUY, 100, 4980, CCER)])
    desk.reg(s.WithdrawCash, account=A, amount_fen=CASH - 100 * 4980)  # all of it is locked
    command = s.ModifyOrder(order_id=40, account=A, price_ticks=5020, qty_t=100)
    assert [e.reason for e in desk.do(command)] == [R.INSUFFICIENT_CASH]


# ============================================================================================
# The close: expiry, prices, mode volumes, composite price
# ============================================================================================


def test_the_close_in_the_afternoon_emits_everything_in_order(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(40, D, BUY, 100, 5950, tif=GTC),
            order(41, C_, SELL, 100, 6051),
            order(42, A, BUY, 50, 5900),
            order(43, B, BUY, 10, 6051),  # trade 1
            TO_AFTERNOON,
            offer(offer_id=9),
            offer(offer_id=8, account=D, side=BUY, price=6100),
            accept(offer_id=9, account=A),  # block trade 2
            offer(offer_id=12, price=6200),
            offer(offer_id=11, account=D, symbol=CCER, price=5000),
        ],
    )
    events = desk.do(s.CloseSession(trading_date=DATE1))
    seq = events[0].seq
    assert events == [
        s.OrderCancelled(seq, 0, 41, C_, V24, SELL, 6051, 90, C.SESSION_END),
        s.OrderCancelled(seq, 0, 42, A, V24, BUY, 5900, 50, C.SESSION_END),
        s.BlockOfferCancelled(seq, 0, 8, D, V24, BUY, 6100, 1_000, C.SESSION_END),
        s.BlockOfferCancelled(seq, 0, 12, C_, V24, SELL, 6200, 1_000, C.SESSION_END),
        s.SessionClosed(seq, 0, V24, DATE1, 6051, 6051, 6051, 6051, 10, 60_510, 1),
        s.SessionModeVolumes(seq, 0, V24, DATE1, 1_000, 6_000_000, 1, 0, 0, 0),
        s.SessionClosed(seq, 0, V25, DATE1, 6010, 6010, 6010, 6010, 0, 0, 0),
        s.SessionModeVolumes(seq, 0, V25, DATE1, 0, 0, 0, 0, 0, 0),
        s.BlockOfferCancelled(seq, 0, 11, D, CCER, SELL, 5000, 1_000, C.SESSION_END),
        s.SessionClosed(seq, 0, CCER, DATE1, 5010, 5010, 5010, 5010, 0, 0, 0),
        s.SessionModeVolumes(seq, 0, CCER, DATE1, 0, 0, 0, 0, 0, 0),
        s.SessionClosed(seq, 0, CCERB, DATE1, 5000, 5000, 5000, 5000, 0, 0, 0),
        s.SessionModeVolumes(seq, 0, CCERB, DATE1, 0, 0, 0, 0, 0, 0),
        s.CompositePrice(seq, 0, DATE1, 6031, 2),  # (6051 + 6010) / 2 = 6030.5 -> 6031
    ]
    assert desk.cash(D) == (CASH - 100 * 5950, 100 * 5950)  # the GTC bid keeps its lock
    assert desk.held(D, CCER) == (HELD, 0, 0, 0) and desk.held(C_) == (HELD - 1_010, 0, 0, 0)
    assert desk.modes().block_offers == []
    events = desk.do(s.OpenSession(trading_date=DATE2, instrument=V24))
    assert events == [s.SessionOpened(events[0].seq, 0, V24, DATE2, 6051, 5446, 6656)]


def test_composite_price_waits_for_every_allowance_vintage(desk: Desk) -> None:
    run_setup(desk, [order(1, B, SELL, 10, 6001), order(2, D, BUY, 10, 6001)])  # V24 close 6001
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V24))
    assert not [e for e in events if type(e) is s.CompositePrice]
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=CCER))  # an offset
    assert not [e for e in events if type(e) is s.CompositePrice]
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V25))
    assert events[-1] == s.CompositePrice(events[0].seq, 0, DATE1, 6006, 2)  # 6005.5 -> 6006
    # an offset closing after the last vintage does not repeat it
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=CCERB))
    assert [type(e) for e in events] == [s.SessionClosed, s.SessionModeVolumes]
    # a close that closes nothing: no composite either
    events = desk.do(s.CloseSession(trading_date=DATE1))
    assert events == [s.CommandRejected(events[0].seq, 0, 11, "", R.SESSION_NOT_OPEN)]


def test_composite_price_reports_the_latest_trading_date(desk: Desk) -> None:
    run_setup(
        desk,
        [
            s.CloseSession(trading_date=DATE1, instrument=V25),
            s.OpenSession(trading_date=DATE2, instrument=V25),
            order(1, B, SELL, 10, 6015, V25),
            order(2, D, BUY, 10, 6015, V25),
            s.CloseSession(trading_date=DATE2, instrument=V25),
            s.OpenSession(trading_date=DATE3, instrument=V25),
        ],
    )
    events = desk.do(s.CloseSession(trading_date=DATE3))  # V24 (DATE1) and V25 (DATE3)
    composite = [e for e in events if type(e) is s.CompositePrice]
    assert composite == [s.CompositePrice(events[0].seq, 0, DATE3, 6008, 2)]  # 6007.5 -> 6008
    assert type(events[-1]) is s.CompositePrice


def test_composite_price_when_the_last_vintage_closes_with_others_already_closed(desk) -> None:
    run_setup(desk, [s.CloseSession(trading_date=DATE1, instrument=V24)])
    events = desk.do(s.CloseSession(trading_date=DATE1))  # V25, CCER, CCER-B
    assert [type(e) for e in events].count(s.CompositePrice) == 1
    assert events[-1] == s.CompositePrice(events[0].seq, 0, DATE1, 6005, 2)

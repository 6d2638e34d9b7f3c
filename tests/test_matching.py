"""Behaviour of the matching rules (docs/MATCHING.md), run against every engine.

Each test drives an engine through ``step`` (apply + ``check_invariants``) and checks the
outcome: the exact events, and the book afterwards.  The same suite runs against the reference
and the compiled engine (``engine_cls`` in conftest.py).
"""

from __future__ import annotations

import hashlib
import random

import msgspec
import numpy as np
import pytest

from engine.core import records as rec
from engine.core import schema as s
from engine.core.reference.engine import ReferenceEngine
from tests.conftest import (
    ACCOUNTS,
    DATE1,
    DATE2,
    DATE3,
    SYM_A,
    SYM_B,
    SYM_C,
    buy,
    cancel,
    close_session,
    halt,
    kinds,
    market_order,
    mass_cancel,
    modify,
    of,
    open_session,
    post_only,
    random_commands,
    resume,
    sell,
    small_market,
    step,
    steps,
    submit,
    trades,
)

BUY, SELL = s.Side.BUY, s.Side.SELL
R, C = s.RejectReason, s.CancelReason
LIMIT, MARKET, POST_ONLY = s.OrderType.LIMIT, s.OrderType.MARKET, s.OrderType.POST_ONLY
DAY, GTC, IOC, FOK = s.TimeInForce.DAY, s.TimeInForce.GTC, s.TimeInForce.IOC, s.TimeInForce.FOK
INCOMING, RESTING, BOTH = s.StpMode.CANCEL_INCOMING, s.StpMode.CANCEL_RESTING, s.StpMode.CANCEL_BOTH


def listed(engine, symbol: str) -> str:
    """How events name an instrument: unlisted symbols are "?" (the record view's index -2)."""
    return symbol if symbol in engine.market.symbols else "?"


def ids(orders: list[s.RestingOrder]) -> list[int]:
    return [o.order_id for o in orders]


def fills(events: list[s.Event]) -> list[tuple[int, int, int]]:
    """(maker order id, price, qty) of every trade, in order."""
    return [(t.maker_order_id, t.price_ticks, t.qty_t) for t in trades(events)]


# ============================================================================================
# Submit validation: every reason, in the documented order
# ============================================================================================

# (id, setup commands, the refused command - usually with a second, later fault - reason)
SUBMIT_REJECTS = [
    ("unknown-instrument", [], buy(1, ACCOUNTS, 0, 0, instrument="NOPE"), R.UNKNOWN_INSTRUMENT),
    ("all-instruments-symbol", [], buy(1, 1, 10, 6000, instrument=""), R.UNKNOWN_INSTRUMENT),
    ("session-closed", [close_session(DATE1, SYM_A)], buy(1, ACCOUNTS, 10, 6000), R.SESSION_CLOSED),
    ("halted", [halt(SYM_A)], buy(1, ACCOUNTS, 0, 6000), R.INSTRUMENT_HALTED),
    ("account-too-big", [], submit(1, ACCOUNTS, 9, 10, 6000), R.UNKNOWN_ACCOUNT),
    ("account-negative", [], buy(1, -1, 10, 6000, tif=9), R.UNKNOWN_ACCOUNT),
    ("side-undefined", [], submit(1, 1, 3, 10, 6000, tif=9), R.INVALID_ORDER_TYPE),
    ("side-zero", [], submit(1, 1, 0, 0, 6000), R.INVALID_ORDER_TYPE),
    (
        "order-type-undefined",
        [],
        submit(1, 1, BUY, 10, 6000, order_type=9, tif=0),
        R.INVALID_ORDER_TYPE,
    ),
    ("stp-undefined", [], buy(1, 1, 10, 6000, stp=0, tif=0), R.INVALID_ORDER_TYPE),
    ("tif-undefined", [], buy(1, 1, 0, 6000, tif=5), R.INVALID_TIME_IN_FORCE),
    ("tif-zero", [], buy(1, 1, 10, 6000, tif=0), R.INVALID_TIME_IN_FORCE),
    ("market-day", [], market_order(1, 1, BUY, 0, tif=DAY), R.INVALID_TIME_IN_FORCE),
    ("market-gtc", [], market_order(1, 1, SELL, 10, tif=GTC), R.INVALID_TIME_IN_FORCE),
    ("post-only-ioc", [], post_only(1, 1, BUY, 0, 6000, tif=IOC), R.INVALID_TIME_IN_FORCE),
    ("post-only-fok", [], post_only(1, 1, SELL, 10, 6000, tif=FOK), R.INVALID_TIME_IN_FORCE),
    ("qty-zero", [], buy(1, 1, 0, 0), R.INVALID_QUANTITY),
    ("qty-negative", [], sell(1, 1, -5, 6000), R.INVALID_QUANTITY),
    ("qty-above-max", [], buy(1, 1, 100_000, 7000), R.INVALID_QUANTITY),
    ("qty-below-min-and-off-lot", [], buy(1, 1, 50, 6001, instrument=SYM_B), R.INVALID_QUANTITY),
    ("qty-above-max-b", [], buy(1, 1, 10_100, 6000, instrument=SYM_B), R.INVALID_QUANTITY),
    ("market-qty-zero", [], market_order(1, 1, BUY, 0), R.INVALID_QUANTITY),
    ("qty-off-lot", [], buy(1, 1, 150, 6001, instrument=SYM_B), R.QUANTITY_OFF_LOT),
    ("market-off-lot", [], market_order(0, 1, SELL, 250, instrument=SYM_B), R.QUANTITY_OFF_LOT),
    ("price-off-tick", [], buy(1, 1, 100, 6001, instrument=SYM_B), R.PRICE_OFF_TICK),
    ("price-off-tick-and-band", [], sell(0, 1, 100, 6601, instrument=SYM_B), R.PRICE_OFF_TICK),
    (
        "post-only-off-tick",
        [],
        post_only(1, 1, SELL, 100, 6002, instrument=SYM_B),
        R.PRICE_OFF_TICK,
    ),
    ("price-zero", [], buy(0, 1, 10, 0), R.PRICE_OFF_TICK),
    ("price-negative", [], buy(1, 1, 10, -6000), R.PRICE_OFF_TICK),
    ("below-band", [], buy(0, 1, 10, 5399), R.PRICE_OUT_OF_BAND),
    ("above-band", [], sell(1, 1, 10, 6601), R.PRICE_OUT_OF_BAND),
    ("below-band-rounded", [], buy(1, 1, 10, 5404, instrument=SYM_C), R.PRICE_OUT_OF_BAND),
    ("above-band-rounded", [], sell(1, 1, 10, 6606, instrument=SYM_C), R.PRICE_OUT_OF_BAND),
    ("below-band-tick-5", [], buy(1, 1, 100, 5395, instrument=SYM_B), R.PRICE_OUT_OF_BAND),
    ("post-only-out-of-band", [], post_only(-1, 1, BUY, 10, 6601), R.PRICE_OUT_OF_BAND),
    ("order-id-zero", [], buy(0, 1, 10, 6000), R.INVALID_ORDER_ID),
    ("order-id-negative", [sell(7, 2, 10, 6000)], market_order(-5, 1, BUY, 10), R.INVALID_ORDER_ID),
    ("duplicate", [sell(7, 2, 10, 6100)], post_only(7, 1, BUY, 10, 6100), R.DUPLICATE_ORDER_ID),
    (
        "duplicate-across-instruments",
        [sell(7, 2, 10, 6100)],
        buy(7, 1, 10, 6000, instrument=SYM_C),
        R.DUPLICATE_ORDER_ID,
    ),
    ("duplicate-market", [sell(7, 2, 10, 6100)], market_order(7, 1, BUY, 10), R.DUPLICATE_ORDER_ID),
    (
        "would-trade-buy-at-ask",
        [sell(7, 2, 10, 6100)],
        post_only(8, 1, BUY, 10, 6100),
        R.WOULD_TRADE,
    ),
    (
        "would-trade-buy-through",
        [sell(7, 2, 10, 6100)],
        post_only(8, 1, BUY, 10, 6200, tif=GTC),
        R.WOULD_TRADE,
    ),
    (
        "would-trade-sell-at-bid",
        [buy(7, 2, 10, 5900)],
        post_only(8, 1, SELL, 10, 5900),
        R.WOULD_TRADE,
    ),
    (
        "would-trade-own-order",
        [sell(7, 1, 10, 6100)],
        post_only(8, 1, BUY, 10, 6150, stp=RESTING),
        R.WOULD_TRADE,
    ),
]


@pytest.mark.parametrize(
    "setup, command, reason", [pytest.param(*case[1:], id=case[0]) for case in SUBMIT_REJECTS]
)
def test_submit_rejected_with_first_failing_reason(engine, setup, command, reason):
    steps(engine, setup)
    before = engine.state_hash()
    command = msgspec.structs.replace(command, seq=41, ts_ns=1_234_567)
    events = step(engine, command)
    assert events == [
        s.OrderRejected(
            41,
            1_234_567,
            command.order_id,
            command.account,
            listed(engine, command.instrument),
            int(command.side),
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert engine.state_hash() == before


def test_submit_rejected_while_every_session_is_closed(closed_engine):
    events = step(closed_engine, buy(1, ACCOUNTS, 0, 0))
    assert events[0].reason == R.SESSION_CLOSED
    assert closed_engine.resting_count() == 0


def test_book_full_rejects_every_new_order_until_one_leaves(engine_cls):
    engine = engine_cls(small_market(resting_orders=3))
    step(engine, open_session(DATE1))
    steps(engine, [sell(1, 1, 10, 6100), sell(2, 1, 10, 6200), buy(3, 2, 10, 5900)])
    before = engine.state_hash()
    # BOOK_FULL comes before WOULD_TRADE, and also refuses orders that could never rest.
    for command in [
        sell(4, 3, 10, 6300),
        post_only(4, 3, BUY, 10, 6100),
        buy(4, 3, 5, 6100, tif=IOC),
        market_order(4, 3, BUY, 5),
        buy(1, 3, 10, 6000),  # but a duplicate id is reported first
    ]:
        events = step(engine, command)
        expected = R.DUPLICATE_ORDER_ID if command.order_id == 1 else R.BOOK_FULL
        assert [e.reason for e in events] == [expected]
    assert engine.state_hash() == before
    step(engine, cancel(2, 1))
    assert kinds(step(engine, sell(4, 3, 10, 6300))) == ["OrderAccepted"]
    assert engine.resting_count() == 3


@pytest.mark.parametrize("price", [0, -5, 1, 99_999, 6601])
def test_market_order_skips_price_checks_and_reports_price_zero(engine, price):
    step(engine, sell(1, 1, 10, 6000))
    command = msgspec.structs.replace(market_order(2, 2, BUY, 4, tif=FOK), price_ticks=price)
    events = step(engine, command)
    assert events[0] == s.OrderAccepted(0, 0, 2, 2, SYM_A, BUY, MARKET, FOK, 0, 4)
    assert fills(events) == [(1, 6000, 4)]


# ============================================================================================
# Accepting, resting and the query API
# ============================================================================================


def test_accepted_limit_order_rests_and_is_visible_through_every_query(engine):
    events = step(engine, buy(5, 3, 7, 5990, tif=GTC, stp=BOTH, seq=9, ts_ns=99))
    assert events == [s.OrderAccepted(9, 99, 5, 3, SYM_A, BUY, LIMIT, GTC, 5990, 7)]
    resting = s.RestingOrder(5, 3, SYM_A, BUY, 5990, 7, LIMIT, GTC, BOTH)
    assert engine.order(5) == resting
    assert engine.orders(SYM_A, BUY) == [resting]
    assert engine.orders(SYM_A, SELL) == []
    assert engine.best_bid(SYM_A) == 5990 and engine.best_ask(SYM_A) is None
    assert engine.depth_at(SYM_A, BUY, 5990) == (7, 1)
    assert engine.depth_at(SYM_A, SELL, 5990) == (0, 0)
    assert engine.resting_count() == 1
    assert engine.order(6) is None
    assert engine.best_bid(SYM_B) is None


def test_depth_aggregates_levels_best_first_and_truncates(engine):
    steps(
        engine,
        [
            buy(1, 1, 5, 5990),
            buy(2, 2, 6, 5990),
            buy(3, 1, 1, 5980),
            buy(4, 1, 2, 5970),
            sell(5, 3, 4, 6010),
            sell(6, 3, 3, 6020),
            sell(7, 4, 2, 6010),
        ],
    )
    assert engine.depth(SYM_A, levels=2) == s.Depth(
        SYM_A,
        [s.DepthLevel(5990, 11, 2), s.DepthLevel(5980, 1, 1)],
        [s.DepthLevel(6010, 6, 2), s.DepthLevel(6020, 3, 1)],
    )
    assert engine.depth(SYM_A).bids[-1] == s.DepthLevel(5970, 2, 1)
    assert engine.depth(SYM_B) == s.Depth(SYM_B, [], [])
    assert ids(engine.orders(SYM_A, BUY)) == [1, 2, 3, 4]
    assert ids(engine.orders(SYM_A, SELL)) == [5, 7, 6]


def test_every_event_of_a_command_carries_its_seq_and_timestamp(engine):
    steps(engine, [sell(1, 1, 3, 6000), sell(2, 2, 3, 6001)])
    events = step(engine, buy(3, 3, 10, 6001, tif=IOC, seq=77, ts_ns=555))
    assert kinds(events) == ["OrderAccepted", "TradeExecuted", "TradeExecuted", "OrderCancelled"]
    assert {(e.seq, e.ts_ns) for e in events} == {(77, 555)}


# ============================================================================================
# Price-time priority, trade price, marketable limits
# ============================================================================================


def test_price_time_priority_and_exact_trade_events(engine):
    steps(
        engine,
        [
            sell(1, 1, 10, 6000),
            sell(2, 2, 10, 6000),
            sell(3, 3, 10, 5999),
            sell(4, 4, 10, 6000),
        ],
    )
    events = step(engine, buy(5, 5, 35, 6000, seq=8, ts_ns=80))
    assert events == [
        s.OrderAccepted(8, 80, 5, 5, SYM_A, BUY, LIMIT, DAY, 6000, 35),
        s.TradeExecuted(8, 80, 1, SYM_A, 5999, 10, BUY, 5, 5, 3, 3, 25, 0),
        s.TradeExecuted(8, 80, 2, SYM_A, 6000, 10, BUY, 5, 5, 1, 1, 15, 0),
        s.TradeExecuted(8, 80, 3, SYM_A, 6000, 10, BUY, 5, 5, 2, 2, 5, 0),
        s.TradeExecuted(8, 80, 4, SYM_A, 6000, 5, BUY, 5, 5, 4, 4, 0, 5),
    ]
    assert engine.orders(SYM_A, SELL) == [
        s.RestingOrder(4, 4, SYM_A, SELL, 6000, 5, LIMIT, DAY, INCOMING)
    ]
    assert engine.orders(SYM_A, BUY) == []


def test_sell_aggressor_takes_highest_bids_first_in_time_order(engine):
    steps(engine, [buy(1, 1, 10, 5990), buy(2, 2, 10, 6000), buy(3, 3, 10, 6000)])
    events = step(engine, sell(4, 4, 25, 5990))
    assert fills(events) == [(2, 6000, 10), (3, 6000, 10), (1, 5990, 5)]
    assert all(t.aggressor_side == SELL for t in trades(events))
    assert [t.trade_id for t in trades(events)] == [1, 2, 3]
    assert engine.depth_at(SYM_A, BUY, 5990) == (5, 1)


def test_trade_prints_at_the_maker_price_and_remainder_rests_at_own_limit(engine):
    step(engine, sell(1, 1, 10, 5990))
    events = step(engine, buy(2, 2, 15, 6010))
    assert fills(events) == [(1, 5990, 10)]
    assert engine.best_bid(SYM_A) == 6010 and engine.depth_at(SYM_A, BUY, 6010) == (5, 1)
    events = step(engine, sell(3, 3, 2, 5500))
    assert fills(events) == [(2, 6010, 2)]
    assert engine.order(2).qty_t == 3


def test_marketable_limit_stops_at_its_own_price(engine):
    steps(engine, [sell(1, 1, 5, 6000), sell(2, 1, 5, 6001), sell(3, 1, 5, 6002)])
    events = step(engine, buy(4, 2, 20, 6001))
    assert fills(events) == [(1, 6000, 5), (2, 6001, 5)]
    assert engine.best_bid(SYM_A) == 6001 and engine.best_ask(SYM_A) == 6002
    assert engine.order(4).qty_t == 10


def test_trade_ids_are_global_across_instruments(engine):
    steps(engine, [sell(1, 1, 5, 6000), sell(2, 1, 100, 6000, instrument=SYM_B)])
    first = trades(step(engine, buy(3, 2, 5, 6000)))
    second = trades(step(engine, buy(4, 2, 100, 6000, instrument=SYM_B)))
    assert [t.trade_id for t in first + second] == [1, 2]
    assert second[0].instrument == SYM_B


# ============================================================================================
# Market, IOC, FOK, post-only
# ============================================================================================


def test_market_order_sweeps_up_to_the_band_edge_and_never_rests(engine):
    steps(engine, [sell(1, 1, 10, 6000), sell(2, 1, 10, 6600)])
    events = step(engine, market_order(3, 2, BUY, 30))
    assert fills(events) == [(1, 6000, 10), (2, 6600, 10)]
    assert events[-1] == s.OrderCancelled(0, 0, 3, 2, SYM_A, BUY, 0, 10, C.IOC_REMAINDER)
    assert engine.resting_count() == 0 and engine.order(3) is None


def test_market_order_does_not_trade_with_gtc_orders_outside_the_new_band(engine):
    steps(engine, [sell(1, 1, 10, 6600, tif=GTC), sell(2, 1, 10, 5500), buy(3, 2, 10, 5500)])
    step(engine, close_session(DATE1, SYM_A))
    assert engine.status(SYM_A).upper_band_ticks == 6050  # 5500 * 1.1
    step(engine, open_session(DATE2, SYM_A))
    events = step(engine, market_order(4, 2, BUY, 5))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert events[1].reason == C.IOC_REMAINDER and events[1].qty_t == 5
    assert engine.order(1).qty_t == 10
    # outside the band the order can no longer be modified, only cancelled (or traded with)
    assert step(engine, modify(1, 1, 6600, 5))[0].reason == R.PRICE_OUT_OF_BAND
    # the market sell is bounded below by the band's lower edge, 4950
    steps(engine, [buy(5, 1, 3, 4950), buy(6, 1, 3, 4960)])
    events = step(engine, market_order(7, 2, SELL, 10))
    assert fills(events) == [(6, 4960, 3), (5, 4950, 3)]


def test_market_sell_with_empty_book_is_cancelled_whole(engine):
    events = step(engine, market_order(1, 1, SELL, 8, seq=3))
    assert events == [
        s.OrderAccepted(3, 0, 1, 1, SYM_A, SELL, MARKET, IOC, 0, 8),
        s.OrderCancelled(3, 0, 1, 1, SYM_A, SELL, 0, 8, C.IOC_REMAINDER),
    ]


def test_ioc_remainder_is_cancelled_never_rests(engine):
    steps(engine, [sell(1, 1, 5, 6000), sell(2, 1, 5, 6001)])
    events = step(engine, buy(3, 2, 10, 6000, tif=IOC))
    assert fills(events) == [(1, 6000, 5)]
    assert events[-1] == s.OrderCancelled(0, 0, 3, 2, SYM_A, BUY, 6000, 5, C.IOC_REMAINDER)
    assert engine.best_bid(SYM_A) is None and engine.order(3) is None
    events = step(engine, sell(4, 3, 7, 6100, tif=IOC))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"] and events[1].qty_t == 7


def test_fully_filled_ioc_emits_no_cancel(engine):
    step(engine, sell(1, 1, 5, 6000))
    events = step(engine, buy(2, 2, 5, 6000, tif=IOC))
    assert kinds(events) == ["OrderAccepted", "TradeExecuted"]


def test_fok_that_cannot_fill_within_its_limit_changes_nothing(engine):
    steps(engine, [sell(1, 1, 5, 6000), sell(2, 1, 5, 6001)])
    before = engine.state_hash()
    events = step(engine, buy(3, 2, 10, 6000, tif=FOK))
    assert events == [
        s.OrderAccepted(0, 0, 3, 2, SYM_A, BUY, LIMIT, FOK, 6000, 10),
        s.OrderCancelled(0, 0, 3, 2, SYM_A, BUY, 6000, 10, C.FOK_NOT_FILLABLE),
    ]
    assert engine.state_hash() == before


def test_fok_that_can_fill_fills_completely_across_levels(engine):
    steps(engine, [sell(1, 1, 5, 6000), sell(2, 1, 5, 6001), buy(9, 4, 5, 5400)])
    events = step(engine, buy(3, 2, 10, 6001, tif=FOK))
    assert fills(events) == [(1, 6000, 5), (2, 6001, 5)]
    assert kinds(events)[-1] == "TradeExecuted" and trades(events)[-1].taker_leaves_t == 0
    events = step(engine, submit(4, 2, SELL, 6, 5400, tif=FOK))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert events[1].reason == C.FOK_NOT_FILLABLE and engine.order(9).qty_t == 5
    assert fills(step(engine, market_order(5, 2, SELL, 5, tif=FOK))) == [(9, 5400, 5)]


@pytest.mark.parametrize("stp", [INCOMING, BOTH])
def test_fok_walk_ends_at_own_order_under_cancel_incoming_and_both(engine, stp):
    steps(
        engine,
        [
            sell(1, 1, 5, 6000),
            sell(2, 7, 5, 6000),
            sell(3, 3, 5, 6000),
            sell(6, 3, 5, 6000),
        ],
    )
    # 5 t are in front of the own order: enough for 5
    events = step(engine, buy(4, 7, 5, 6000, tif=FOK, stp=stp))
    assert fills(events) == [(1, 6000, 5)]
    # now the own order is at the head: the 10 t behind it do not count
    before = engine.state_hash()
    events = step(engine, buy(5, 7, 10, 6000, tif=FOK, stp=stp))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert events[1].reason == C.FOK_NOT_FILLABLE and events[1].qty_t == 10
    assert engine.state_hash() == before


def test_fok_skips_own_orders_under_cancel_resting(engine):
    steps(engine, [sell(1, 1, 5, 6000), sell(2, 7, 5, 6000), sell(3, 3, 5, 6000)])
    before = engine.state_hash()
    events = step(engine, buy(4, 7, 11, 6000, tif=FOK, stp=RESTING))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert events[1].reason == C.FOK_NOT_FILLABLE
    assert engine.state_hash() == before  # the own order was not cancelled either
    events = step(engine, buy(4, 7, 10, 6000, tif=FOK, stp=RESTING))
    assert kinds(events) == ["OrderAccepted", "TradeExecuted", "OrderCancelled", "TradeExecuted"]
    assert fills(events) == [(1, 6000, 5), (3, 6000, 5)]
    assert events[2] == s.OrderCancelled(0, 0, 2, 7, SYM_A, SELL, 6000, 5, C.SELF_TRADE_PREVENTED)
    assert engine.resting_count() == 0


def test_post_only_rests_when_it_does_not_cross(engine):
    steps(engine, [sell(1, 1, 10, 6100), buy(2, 1, 10, 5900)])
    events = step(engine, post_only(3, 2, BUY, 4, 6099, tif=GTC))
    assert events == [s.OrderAccepted(0, 0, 3, 2, SYM_A, BUY, POST_ONLY, GTC, 6099, 4)]
    assert step(engine, post_only(4, 2, SELL, 4, 6099))[0].reason == R.WOULD_TRADE
    assert kinds(step(engine, post_only(4, 2, SELL, 4, 6100))) == ["OrderAccepted"]
    assert engine.order(3).order_type == POST_ONLY
    assert (engine.best_bid(SYM_A), engine.best_ask(SYM_A)) == (6099, 6100)
    assert ids(engine.orders(SYM_A, SELL)) == [1, 4]


# ============================================================================================
# Self-trade prevention
# ============================================================================================


def _stp_book(engine):
    """Asks: 1 (account 2) @6000, 2 (account 1) @6001, 3 (account 3) @6002, 5 t each."""
    steps(engine, [sell(1, 2, 5, 6000), sell(2, 1, 5, 6001), sell(3, 3, 5, 6002)])


def test_stp_cancel_incoming_stops_at_own_order(engine):
    _stp_book(engine)
    events = step(engine, buy(4, 1, 15, 6002, stp=INCOMING))
    assert fills(events) == [(1, 6000, 5)]
    assert events[-1] == s.OrderCancelled(0, 0, 4, 1, SYM_A, BUY, 6002, 10, C.SELF_TRADE_PREVENTED)
    assert ids(engine.orders(SYM_A, SELL)) == [2, 3] and engine.order(4) is None


def test_stp_cancel_resting_removes_own_order_and_continues(engine):
    _stp_book(engine)
    events = step(engine, buy(4, 1, 15, 6002, stp=RESTING))
    assert kinds(events) == ["OrderAccepted", "TradeExecuted", "OrderCancelled", "TradeExecuted"]
    assert events[2] == s.OrderCancelled(0, 0, 2, 1, SYM_A, SELL, 6001, 5, C.SELF_TRADE_PREVENTED)
    assert fills(events) == [(1, 6000, 5), (3, 6002, 5)]
    assert engine.orders(SYM_A, SELL) == [] and engine.order(4).qty_t == 5


def test_stp_cancel_both_cancels_resting_then_incoming(engine):
    _stp_book(engine)
    events = step(engine, buy(4, 1, 15, 6002, stp=BOTH))
    assert events[2:] == [
        s.OrderCancelled(0, 0, 2, 1, SYM_A, SELL, 6001, 5, C.SELF_TRADE_PREVENTED),
        s.OrderCancelled(0, 0, 4, 1, SYM_A, BUY, 6002, 10, C.SELF_TRADE_PREVENTED),
    ]
    assert ids(engine.orders(SYM_A, SELL)) == [3] and engine.order(4) is None


@pytest.mark.parametrize("stp", list(s.StpMode))
def test_a_wash_trade_never_prints(engine, stp):
    steps(engine, [sell(1, 5, 3, 6000), sell(2, 6, 3, 6000), sell(3, 5, 3, 6000)])
    events = step(engine, market_order(4, 5, BUY, 9, stp=stp))
    assert all(t.maker_account != t.taker_account for t in trades(events))
    # the own order 1 is at the head: only CANCEL_RESTING gets past it
    assert fills(events) == ([(2, 6000, 3)] if stp == RESTING else [])


# ============================================================================================
# Modify
# ============================================================================================


def test_modify_quantity_down_at_same_price_keeps_priority(engine):
    steps(engine, [sell(1, 1, 10, 6000), sell(2, 2, 10, 6000)])
    events = step(engine, modify(1, 1, 6000, 4, seq=5))
    assert events == [s.OrderModified(5, 0, 1, 1, SYM_A, SELL, 6000, 4, True, 6000, 10)]
    assert ids(engine.orders(SYM_A, SELL)) == [1, 2]
    assert engine.depth_at(SYM_A, SELL, 6000) == (14, 2)
    assert fills(step(engine, buy(3, 3, 6, 6000))) == [(1, 6000, 4), (2, 6000, 2)]


def test_modify_that_changes_nothing_keeps_priority_and_state(engine):
    steps(engine, [sell(1, 1, 10, 6000), sell(2, 2, 10, 6000)])
    before = engine.state_hash()
    events = step(engine, modify(1, 1, 6000, 10))
    assert events == [s.OrderModified(0, 0, 1, 1, SYM_A, SELL, 6000, 10, True, 6000, 10)]
    assert engine.state_hash() == before


def test_modify_quantity_up_loses_priority(engine):
    steps(engine, [sell(1, 1, 10, 6000), sell(2, 2, 10, 6000)])
    events = step(engine, modify(1, 1, 6000, 12))
    assert events == [s.OrderModified(0, 0, 1, 1, SYM_A, SELL, 6000, 12, False, 6000, 10)]
    assert ids(engine.orders(SYM_A, SELL)) == [2, 1]
    assert engine.depth_at(SYM_A, SELL, 6000) == (22, 2)


def test_modify_price_loses_priority_even_when_moved_back(engine):
    steps(engine, [buy(1, 1, 10, 6000), buy(2, 2, 10, 6000)])
    steps(engine, [modify(1, 1, 5999, 10), modify(1, 1, 6000, 10)])
    assert ids(engine.orders(SYM_A, BUY)) == [2, 1]
    assert engine.depth_at(SYM_A, BUY, 5999) == (0, 0)


def test_modify_after_partial_fill_works_on_the_open_quantity(engine):
    steps(engine, [sell(1, 1, 10, 6000), sell(2, 2, 10, 6000), buy(3, 3, 4, 6000)])
    events = step(engine, modify(1, 1, 6000, 6))
    assert events[0].priority_kept and events[0].old_qty_t == 6
    events = step(engine, modify(1, 1, 6000, 7))
    assert not events[0].priority_kept
    assert ids(engine.orders(SYM_A, SELL)) == [2, 1]


def test_modify_repricing_through_the_spread_fills_at_maker_prices(engine):
    steps(
        engine,
        [
            buy(1, 1, 10, 5990, tif=GTC),
            sell(2, 2, 4, 6000),
            sell(3, 3, 4, 6005),
            sell(4, 4, 4, 6020),
        ],
    )
    events = step(engine, modify(1, 1, 6010, 10, seq=12))
    assert events == [
        s.OrderModified(12, 0, 1, 1, SYM_A, BUY, 6010, 10, False, 5990, 10),
        s.TradeExecuted(12, 0, 1, SYM_A, 6000, 4, BUY, 1, 1, 2, 2, 6, 0),
        s.TradeExecuted(12, 0, 2, SYM_A, 6005, 4, BUY, 1, 1, 3, 3, 2, 0),
    ]
    assert engine.order(1) == s.RestingOrder(1, 1, SYM_A, BUY, 6010, 2, LIMIT, GTC, INCOMING)
    assert (engine.best_bid(SYM_A), engine.best_ask(SYM_A)) == (6010, 6020)


def test_modify_that_fills_completely_removes_the_order(engine):
    steps(engine, [buy(1, 1, 5, 5990), sell(2, 2, 8, 6000)])
    events = step(engine, modify(1, 1, 6000, 5))
    assert fills(events) == [(2, 6000, 5)] and engine.order(1) is None
    assert engine.order(2).qty_t == 3


def test_modify_into_own_order_applies_the_orders_stp_mode(engine):
    steps(engine, [buy(1, 1, 10, 5990), sell(2, 1, 5, 6000)])
    events = step(engine, modify(1, 1, 6000, 10))
    assert events[1:] == [
        s.OrderCancelled(0, 0, 1, 1, SYM_A, BUY, 6000, 10, C.SELF_TRADE_PREVENTED)
    ]
    assert engine.order(1) is None and engine.order(2).qty_t == 5


def test_modify_keeps_the_post_only_type_and_may_move_without_crossing(engine):
    steps(engine, [post_only(1, 1, BUY, 10, 5990), sell(2, 2, 5, 6000)])
    events = step(engine, modify(1, 1, 5999, 10))
    assert kinds(events) == ["OrderModified"] and engine.order(1).order_type == POST_ONLY


def _modify_book(engine):
    """A: 1 (account 1) GTC sell 10 @6100, 3 (account 1) post-only buy 10 @5900,
    4 (account 2) sell 10 @6050; B: 2 (account 1) GTC sell 500 @6100."""
    steps(
        engine,
        [
            sell(1, 1, 10, 6100, tif=GTC),
            sell(2, 1, 500, 6100, instrument=SYM_B, tif=GTC),
            post_only(3, 1, BUY, 10, 5900),
            sell(4, 2, 10, 6050),
        ],
    )


MODIFY_REJECTS = [
    ("unknown", [], modify(99, 1, 6100, 10), R.UNKNOWN_ORDER),
    ("unknown-and-everything-wrong", [], modify(99, ACCOUNTS, 0, 0), R.UNKNOWN_ORDER),
    ("halted", [halt(SYM_A)], modify(1, 2, 0, 0), R.INSTRUMENT_HALTED),
    ("session-closed", [close_session(DATE1, SYM_A)], modify(1, 2, 0, 0), R.SESSION_CLOSED),
    ("not-owner", [], modify(1, 2, 0, 0), R.NOT_ORDER_OWNER),
    ("not-owner-bad-account", [], modify(1, ACCOUNTS, 6100, 10), R.NOT_ORDER_OWNER),
    ("qty-zero", [], modify(1, 1, 0, 0), R.INVALID_QUANTITY),
    ("qty-above-max", [], modify(1, 1, 6100, 100_000), R.INVALID_QUANTITY),
    ("qty-below-min-and-off-lot", [], modify(2, 1, 6101, 50), R.INVALID_QUANTITY),
    ("qty-off-lot", [], modify(2, 1, 6101, 150), R.QUANTITY_OFF_LOT),
    ("price-off-tick", [], modify(2, 1, 6101, 200), R.PRICE_OFF_TICK),
    ("price-off-tick-and-band", [], modify(2, 1, 7001, 200), R.PRICE_OFF_TICK),
    ("price-zero", [], modify(1, 1, 0, 10), R.PRICE_OFF_TICK),
    ("price-negative", [], modify(1, 1, -6100, 10), R.PRICE_OFF_TICK),
    ("above-band", [], modify(1, 1, 6601, 10), R.PRICE_OUT_OF_BAND),
    ("above-band-tick-5", [], modify(2, 1, 6605, 200), R.PRICE_OUT_OF_BAND),
    ("below-band", [], modify(3, 1, 5399, 10), R.PRICE_OUT_OF_BAND),
    ("post-only-to-ask", [], modify(3, 1, 6050, 10), R.WOULD_TRADE),
    ("post-only-through", [], modify(3, 1, 6100, 5), R.WOULD_TRADE),
]


@pytest.mark.parametrize(
    "setup, command, reason", [pytest.param(*case[1:], id=case[0]) for case in MODIFY_REJECTS]
)
def test_modify_rejected_with_first_failing_reason(engine, setup, command, reason):
    _modify_book(engine)
    steps(engine, setup)
    before = engine.state_hash()
    command = msgspec.structs.replace(command, seq=3, ts_ns=4)
    events = step(engine, command)
    assert events == [
        s.ModifyRejected(
            3, 4, command.order_id, command.account, command.price_ticks, command.qty_t, reason
        )
    ]
    assert engine.state_hash() == before


# ============================================================================================
# Cancel, gone orders, id reuse, deep queues
# ============================================================================================


def test_cancel_reports_open_quantity(engine):
    steps(engine, [sell(1, 1, 10, 6000), buy(2, 2, 3, 6000)])
    events = step(engine, cancel(1, 1, seq=6, ts_ns=7))
    assert events == [s.OrderCancelled(6, 7, 1, 1, SYM_A, SELL, 6000, 7, C.REQUESTED)]
    assert engine.resting_count() == 0 and engine.best_ask(SYM_A) is None


def test_cancel_modify_of_filled_cancelled_unknown_orders_rejected_without_change(engine):
    steps(
        engine,
        [
            sell(1, 1, 10, 6000),
            sell(2, 1, 10, 6010),
            buy(3, 2, 10, 6000),
            cancel(2, 1),
            buy(4, 1, 5, 5900),
            buy(5, 1, 5, 5950, tif=IOC),
        ],
    )
    before = engine.state_hash()
    gone = [1, 2, 3, 5, 99]  # filled maker, cancelled, filled taker, IOC remainder, never seen
    for order_id in gone:
        assert step(engine, cancel(order_id, 1)) == [
            s.CancelRejected(0, 0, order_id, 1, R.UNKNOWN_ORDER)
        ]
        assert step(engine, modify(order_id, 1, 6000, 5)) == [
            s.ModifyRejected(0, 0, order_id, 1, 6000, 5, R.UNKNOWN_ORDER)
        ]
    assert step(engine, cancel(4, 2)) == [s.CancelRejected(0, 0, 4, 2, R.NOT_ORDER_OWNER)]
    assert step(engine, cancel(4, ACCOUNTS)) == [
        s.CancelRejected(0, 0, 4, ACCOUNTS, R.NOT_ORDER_OWNER)
    ]
    assert engine.state_hash() == before


def test_order_id_of_a_gone_order_may_be_reused(engine):
    steps(engine, [sell(1, 1, 10, 6000), buy(2, 2, 5, 5000)])
    assert step(engine, buy(1, 3, 5, 5900))[0].reason == R.DUPLICATE_ORDER_ID
    step(engine, cancel(1, 1))
    assert kinds(step(engine, buy(1, 3, 5, 5900))) == ["OrderAccepted"]  # after a cancel
    step(engine, sell(9, 4, 5, 5900))  # fills order 1
    assert kinds(step(engine, sell(1, 4, 5, 6100))) == ["OrderAccepted"]  # after a fill
    assert step(engine, buy(7, 2, 0, 5900))[0].reason == R.INVALID_QUANTITY
    assert kinds(step(engine, buy(7, 2, 1, 5900))) == ["OrderAccepted"]  # after a reject
    assert engine.order(1).side == SELL and engine.order(7).qty_t == 1


def test_cancel_middle_and_head_of_a_deep_queue_then_sweep(engine):
    makers = list(range(1, 201))
    engine.apply_all([sell(i, 1 + i % 10, 1 + i % 5, 6000) for i in makers])
    engine.check_invariants()
    for order_id in (100, 1, 200, 57):
        step(engine, cancel(order_id, 1 + order_id % 10))
    remaining = [i for i in makers if i not in (100, 1, 200, 57)]
    total = sum(1 + i % 5 for i in remaining)
    assert engine.depth_at(SYM_A, SELL, 6000) == (total, len(remaining))
    events = step(engine, buy(1000, 20, total + 3, 6000))
    assert [t.maker_order_id for t in trades(events)] == remaining
    assert engine.best_ask(SYM_A) is None and engine.order(1000).qty_t == 3


def test_partially_filled_order_keeps_its_place_across_aggressors(engine):
    steps(engine, [sell(1, 1, 10, 6000), sell(2, 2, 10, 6000)])
    assert fills(step(engine, buy(3, 3, 4, 6000))) == [(1, 6000, 4)]
    assert fills(step(engine, buy(4, 3, 3, 6000))) == [(1, 6000, 3)]
    events = step(engine, buy(5, 3, 5, 6000))
    assert fills(events) == [(1, 6000, 3), (2, 6000, 2)]
    assert [t.maker_leaves_t for t in trades(events)] == [0, 8]


def test_cancelling_the_best_level_leaves_no_phantom_best_price(engine):
    steps(engine, [buy(1, 1, 5, 6000), buy(2, 1, 5, 5990), sell(3, 2, 5, 6010)])
    step(engine, cancel(1, 1))
    assert engine.best_bid(SYM_A) == 5990
    assert engine.depth_at(SYM_A, BUY, 6000) == (0, 0)
    assert engine.depth(SYM_A).bids == [s.DepthLevel(5990, 5, 1)]
    assert kinds(step(engine, sell(4, 3, 5, 5995))) == ["OrderAccepted"]  # nothing at 6000
    steps(engine, [cancel(2, 1), cancel(3, 2), cancel(4, 3)])
    assert engine.best_bid(SYM_A) is None and engine.best_ask(SYM_A) is None
    assert engine.depth(SYM_A) == s.Depth(SYM_A, [], [])
    assert kinds(step(engine, buy(5, 1, 5, 6600))) == ["OrderAccepted"]


def test_sweep_of_5000_resting_orders(engine):
    n = 5000
    engine.apply_all([sell(i + 1, 1 + i % 10, 1, 6000 + i % 50) for i in range(n)])
    engine.check_invariants()
    events = step(engine, buy(n + 1, 20, n, 6049))
    fills_ = trades(events)
    assert len(fills_) == n
    assert [t.maker_order_id for t in fills_] == [
        i + 1 for i in sorted(range(n), key=lambda i: (i % 50, i))
    ]
    assert [t.trade_id for t in fills_] == list(range(1, n + 1))
    assert [t.taker_leaves_t for t in fills_] == list(range(n - 1, -1, -1))
    assert [t.price_ticks for t in fills_] == sorted(t.price_ticks for t in fills_)
    assert engine.resting_count() == 0


# ============================================================================================
# Band edges
# ============================================================================================


@pytest.mark.parametrize(
    "symbol, qty, lower, upper, tick",
    [(SYM_A, 1, 5400, 6600, 1), (SYM_B, 100, 5400, 6600, 5), (SYM_C, 1, 5405, 6605, 1)],
)
def test_band_edges_accepted_one_tick_outside_rejected(engine, symbol, qty, lower, upper, tick):
    status = engine.status(symbol)
    assert (status.lower_band_ticks, status.upper_band_ticks) == (lower, upper)
    assert kinds(step(engine, buy(1, 1, qty, lower, instrument=symbol))) == ["OrderAccepted"]
    assert kinds(step(engine, sell(2, 2, qty, upper, instrument=symbol))) == ["OrderAccepted"]
    for order_id, command in [
        (3, buy(3, 1, qty, lower - tick, instrument=symbol)),
        (4, sell(4, 2, qty, upper + tick, instrument=symbol)),
        (5, post_only(5, 1, BUY, qty, lower - tick, instrument=symbol)),
    ]:
        assert step(engine, command)[0].reason == R.PRICE_OUT_OF_BAND, order_id
    assert step(engine, modify(1, 1, lower - tick, qty))[0].reason == R.PRICE_OUT_OF_BAND
    assert kinds(step(engine, modify(1, 1, upper - tick, qty))) == ["OrderModified"]


def test_upper_band_never_exceeds_the_price_ladder(engine_cls):
    market = msgspec.structs.replace(
        small_market(),
        capacity=msgspec.structs.replace(small_market().capacity, max_price_ticks=6500),
    )
    engine = engine_cls(market)
    events = step(engine, open_session(DATE1, SYM_B))
    assert events[0].upper_band_ticks == 6500
    assert step(engine, buy(1, 1, 100, 6505, instrument=SYM_B))[0].reason == R.PRICE_OUT_OF_BAND


# ============================================================================================
# Sessions
# ============================================================================================


def test_open_session_reports_prior_close_and_band_of_each_instrument(closed_engine):
    events = step(closed_engine, open_session(DATE1, seq=1, ts_ns=2))
    assert events == [
        s.SessionOpened(1, 2, SYM_A, DATE1, 6000, 5400, 6600),
        s.SessionOpened(1, 2, SYM_B, DATE1, 6000, 5400, 6600),
        s.SessionOpened(1, 2, SYM_C, DATE1, 6005, 5405, 6605),
    ]
    all_day = s.TradingMode.CONTINUOUS | s.TradingMode.HIT_QUOTE | s.TradingMode.BLOCK
    assert closed_engine.status(SYM_C) == s.InstrumentStatus(
        SYM_C, s.SessionState.OPEN, DATE1, 6005, 5405, 6605, 0, all_day
    )


def test_fresh_engine_is_closed(closed_engine):
    assert closed_engine.status(SYM_A) == s.InstrumentStatus(
        SYM_A, s.SessionState.CLOSED, 0, 6000, 5400, 6600
    )
    assert step(closed_engine, open_session(0, SYM_A)) == [
        s.CommandRejected(0, 0, 10, SYM_A, R.INVALID_TRADING_DATE)
    ]


def test_close_computes_day_prices_expires_day_orders_and_rolls_the_close_forward(engine):
    steps(
        engine,
        [
            sell(1, 1, 10, 6000),
            buy(2, 2, 10, 6000),
            sell(3, 1, 20, 6010),
            buy(4, 2, 20, 6010),
            buy(5, 2, 3, 5990),
            sell(6, 1, 3, 5990),
            sell(9, 3, 5, 6300),
            buy(7, 3, 5, 5800),
            sell(8, 3, 5, 6400, tif=GTC),
        ],
    )
    events = step(engine, close_session(DATE2, SYM_A, seq=30))
    # value 6000*10 + 6010*20 + 5990*3 = 198170, volume 33: VWAP 6005.15 -> 6005
    assert events == [
        s.OrderCancelled(30, 0, 7, 3, SYM_A, BUY, 5800, 5, C.SESSION_END),
        s.OrderCancelled(30, 0, 9, 3, SYM_A, SELL, 6300, 5, C.SESSION_END),
        s.SessionClosed(30, 0, SYM_A, DATE1, 6000, 6010, 5990, 6005, 33, 198170, 3),
        s.SessionModeVolumes(30, 0, SYM_A, DATE1, 0, 0, 0, 0, 0, 0),
    ]
    assert engine.status(SYM_A) == s.InstrumentStatus(
        SYM_A, s.SessionState.CLOSED, DATE1, 6005, 5405, 6605
    )
    assert ids(engine.orders(SYM_A, SELL)) == [8]
    assert step(engine, open_session(DATE2, SYM_A)) == [
        s.SessionOpened(0, 0, SYM_A, DATE2, 6005, 5405, 6605)
    ]
    assert engine.order(8).qty_t == 5
    # the new day starts without statistics: a quiet day closes at the reference
    assert of(step(engine, close_session(DATE2, SYM_A)), s.SessionClosed)[0] == s.SessionClosed(
        0, 0, SYM_A, DATE2, 6005, 6005, 6005, 6005, 0, 0, 0
    )


@pytest.mark.parametrize(
    "symbol, trades_, close",
    [
        (SYM_A, [(6000, 1), (6001, 1)], 6001),  # VWAP 6000.5 rounds half up
        (SYM_A, [(6000, 3), (6001, 1)], 6000),  # 6000.25
        (SYM_A, [(6001, 3), (6000, 1)], 6001),  # 6000.75
        (SYM_B, [(6000, 100), (6005, 100)], 6005),  # 6002.5 -> 6003 -> tick 5 -> 6005
        (SYM_B, [(6000, 300), (6005, 100)], 6000),  # 6001.25 -> 6001 -> 6000
        (SYM_B, [(6005, 100), (6010, 100), (6000, 200)], 6005),  # 6003.75 -> 6004 -> 6005
    ],
)
def test_close_is_vwap_rounded_half_up_to_the_tick(engine, symbol, trades_, close):
    order_id = 0
    for price, qty in trades_:
        order_id += 2
        steps(
            engine,
            [
                sell(order_id, 1, qty, price, instrument=symbol),
                buy(order_id + 1, 2, qty, price, instrument=symbol),
            ],
        )
    closed = of(step(engine, close_session(DATE1, symbol)), s.SessionClosed)[0]
    prices = [p for p, _ in trades_]
    assert (closed.open_ticks, closed.high_ticks, closed.low_ticks, closed.close_ticks) == (
        prices[0],
        max(prices),
        min(prices),
        close,
    )
    assert closed.volume_t == sum(q for _, q in trades_)
    assert closed.value_fen == sum(p * q for p, q in trades_)
    assert closed.trade_count == len(trades_)
    assert engine.status(symbol).reference_price_ticks == close


def test_close_all_closes_each_open_instrument_in_index_order(engine):
    steps(
        engine,
        [
            sell(1, 1, 100, 6100, instrument=SYM_B),
            sell(2, 1, 10, 6100),
            buy(3, 1, 10, 5900, instrument=SYM_C, tif=GTC),
            halt(SYM_C),
        ],
    )
    events = step(engine, close_session(DATE1))
    assert kinds(events) == [
        "OrderCancelled",
        "SessionClosed",
        "SessionModeVolumes",
        "OrderCancelled",
        "SessionClosed",
        "SessionModeVolumes",
        "SessionClosed",
        "SessionModeVolumes",
        "CompositePrice",
    ]
    assert [e.instrument for e in events[:-1]] == [SYM_A] * 3 + [SYM_B] * 3 + [SYM_C] * 2
    assert engine.status(SYM_C).state == s.SessionState.CLOSED and engine.order(3) is not None


def test_open_all_opens_what_it_can_and_skips_the_rest_silently(engine):
    step(engine, close_session(DATE1, SYM_B))
    assert step(engine, open_session(DATE2)) == [
        s.SessionOpened(0, 0, SYM_B, DATE2, 6000, 5400, 6600)
    ]


def test_halt_and_resume(engine):
    steps(engine, [sell(1, 1, 10, 6000, tif=GTC), sell(2, 1, 10, 6010)])
    assert step(engine, halt(SYM_A, seq=4)) == [s.InstrumentHalted(4, 0, SYM_A)]
    assert engine.status(SYM_A).state == s.SessionState.HALTED
    assert step(engine, buy(3, 2, 5, 6000))[0].reason == R.INSTRUMENT_HALTED
    assert step(engine, modify(1, 1, 6000, 5))[0].reason == R.INSTRUMENT_HALTED
    assert kinds(step(engine, buy(3, 2, 100, 6000, instrument=SYM_B))) == ["OrderAccepted"]
    assert step(engine, cancel(2, 1))[0].reason == C.REQUESTED  # cancels always work
    assert step(engine, resume(SYM_A, ts_ns=5)) == [s.InstrumentResumed(0, 5, SYM_A)]
    assert fills(step(engine, buy(4, 2, 5, 6000))) == [(1, 6000, 5)]


def test_gtc_orders_survive_closes_and_can_be_cancelled_while_closed(engine):
    steps(engine, [sell(1, 1, 10, 6000, tif=GTC), close_session(DATE1)])
    assert step(engine, modify(1, 1, 6000, 5))[0].reason == R.SESSION_CLOSED
    assert step(engine, cancel(1, 1))[0].reason == C.REQUESTED


# (id, setup commands, command, expected CommandRejected reason)
SESSION_REJECTS = [
    ("open-open", [], open_session(DATE2, SYM_A), R.SESSION_ALREADY_OPEN),
    ("open-open-same-date", [], open_session(DATE1, SYM_A), R.SESSION_ALREADY_OPEN),
    ("open-halted", [halt(SYM_A)], open_session(DATE2, SYM_A), R.SESSION_ALREADY_OPEN),
    (
        "open-same-date",
        [close_session(DATE1, SYM_A)],
        open_session(DATE1, SYM_A),
        R.INVALID_TRADING_DATE,
    ),
    (
        "open-earlier-date",
        [close_session(DATE1, SYM_A)],
        open_session(DATE1 - 1, SYM_A),
        R.INVALID_TRADING_DATE,
    ),
    ("open-unknown", [], open_session(DATE2, "NOPE"), R.UNKNOWN_INSTRUMENT),
    ("open-all-all-open", [], open_session(DATE2), R.SESSION_ALREADY_OPEN),
    ("open-all-same-date", [close_session(DATE1)], open_session(DATE1), R.INVALID_TRADING_DATE),
    (
        "open-all-first-open",
        [close_session(DATE1, SYM_B), close_session(DATE1, SYM_C)],
        open_session(DATE1),
        R.SESSION_ALREADY_OPEN,
    ),
    (
        "open-all-first-bad-date",
        [close_session(DATE1, SYM_A)],
        open_session(DATE1),
        R.INVALID_TRADING_DATE,
    ),
    (
        "close-closed",
        [close_session(DATE1, SYM_A)],
        close_session(DATE1, SYM_A),
        R.SESSION_NOT_OPEN,
    ),
    ("close-all-closed", [close_session(DATE1)], close_session(DATE2), R.SESSION_NOT_OPEN),
    ("close-unknown", [], close_session(DATE1, "NOPE"), R.UNKNOWN_INSTRUMENT),
    ("halt-halted", [halt(SYM_A)], halt(SYM_A), R.SESSION_NOT_OPEN),
    ("halt-closed", [close_session(DATE1, SYM_A)], halt(SYM_A), R.SESSION_NOT_OPEN),
    ("halt-unknown", [], halt("NOPE"), R.UNKNOWN_INSTRUMENT),
    ("resume-open", [], resume(SYM_A), R.INSTRUMENT_NOT_HALTED),
    ("resume-closed", [close_session(DATE1, SYM_A)], resume(SYM_A), R.INSTRUMENT_NOT_HALTED),
    ("resume-unknown", [], resume("NOPE"), R.UNKNOWN_INSTRUMENT),
    ("mass-cancel-unknown-instrument", [], mass_cancel(ACCOUNTS, "NOPE"), R.UNKNOWN_INSTRUMENT),
    ("mass-cancel-account-too-big", [], mass_cancel(ACCOUNTS), R.UNKNOWN_ACCOUNT),
    ("mass-cancel-account-negative", [], mass_cancel(-1, SYM_A), R.UNKNOWN_ACCOUNT),
]


@pytest.mark.parametrize(
    "setup, command, reason", [pytest.param(*case[1:], id=case[0]) for case in SESSION_REJECTS]
)
def test_session_and_mass_cancel_rejections(engine, setup, command, reason):
    steps(engine, [sell(1, 1, 10, 6100, tif=GTC)] + setup)
    before = engine.state_hash()
    command = msgspec.structs.replace(command, seq=8, ts_ns=9)
    tag = type(command).__struct_config__.tag
    instrument = command.instrument
    if instrument != s.ALL_INSTRUMENTS:
        instrument = listed(engine, instrument)
    assert step(engine, command) == [s.CommandRejected(8, 9, tag, instrument, reason)]
    assert engine.state_hash() == before


@pytest.mark.parametrize("command", [halt(""), resume("")])
def test_halt_and_resume_take_no_all_instruments(engine, command):
    tag = type(command).__struct_config__.tag
    # The record of a halt cannot say "every instrument": "" is an unlisted symbol, "?".
    assert step(engine, command) == [s.CommandRejected(0, 0, tag, "?", R.UNKNOWN_INSTRUMENT)]


# ============================================================================================
# Mass cancel
# ============================================================================================


def test_mass_cancel_by_instrument_then_all(engine):
    steps(
        engine,
        [
            sell(5, 1, 10, 6100),
            buy(2, 1, 10, 5900),
            sell(3, 1, 100, 6100, instrument=SYM_B),
            buy(4, 1, 1, 6000, instrument=SYM_C),
            sell(1, 2, 10, 6200, tif=GTC),
        ],
    )
    assert step(engine, mass_cancel(1, SYM_A, seq=2)) == [
        s.OrderCancelled(2, 0, 2, 1, SYM_A, BUY, 5900, 10, C.MASS_CANCEL),
        s.OrderCancelled(2, 0, 5, 1, SYM_A, SELL, 6100, 10, C.MASS_CANCEL),
        s.MassCancelled(2, 0, 1, SYM_A, 2),
    ]
    events = step(engine, mass_cancel(1))
    assert [(type(e).__name__, getattr(e, "order_id", None)) for e in events] == [
        ("OrderCancelled", 3),
        ("OrderCancelled", 4),
        ("MassCancelled", None),
    ]
    assert events[-1] == s.MassCancelled(0, 0, 1, "", 2)
    assert step(engine, mass_cancel(1)) == [s.MassCancelled(0, 0, 1, "", 0)]
    assert ids(engine.orders(SYM_A, SELL)) == [1]
    step(engine, close_session(DATE1))
    assert kinds(step(engine, mass_cancel(2, SYM_A))) == ["OrderCancelled", "MassCancelled"]
    assert engine.resting_count() == 0


# ============================================================================================
# Record view, canonical hash, snapshots
# ============================================================================================


def _scripted_day() -> list[s.Command]:
    """A mixed sequence touching every command and many outcomes."""
    return [
        open_session(DATE1, seq=1),
        sell(1, 1, 10, 6000, seq=2),
        sell(2, 2, 10, 6000, tif=GTC, seq=3),
        buy(3, 3, 15, 6010, seq=4, ts_ns=44),
        buy(4, 1, 100, 6000, instrument=SYM_B),
        buy(5, 4, 5, 5990, tif=GTC, stp=BOTH),
        post_only(6, 4, SELL, 7, 6020),
        market_order(7, 5, BUY, 3),
        market_order(8, 5, SELL, 30, tif=FOK),
        buy(9, 9, 5, 6000, instrument="NOPE"),
        modify(5, 4, 5995, 4),
        modify(6, 4, 6030, 9),
        modify(99, 1, 6000, 1),
        cancel(1, 2),
        cancel(3, 3),
        halt(SYM_B),
        resume(SYM_B),
        halt("NOPE"),
        submit(10, 1, 3, 5, 6000),
        buy(11, 4, 2, 6030, stp=RESTING),
        mass_cancel(4, SYM_A),
        mass_cancel(ACCOUNTS),
        close_session(DATE1, SYM_A),
        open_session(DATE2),
        close_session(DATE2),
        open_session(DATE3, "NOPE"),
    ]


def test_apply_records_equals_apply(engine_cls, market):
    commands = _scripted_day() + random_commands(random.Random(20250102), 800, market)
    typed, recorded = engine_cls(market), engine_cls(market)
    events = typed.apply_all(commands)
    out = recorded.apply_records(recorded.codec.encode_commands(commands))
    assert out.dtype == rec.EVENT_DTYPE
    assert np.array_equal(out, typed.codec.encode_events(events))
    assert recorded.state_hash() == typed.state_hash()
    recorded.check_invariants()
    empty = recorded.apply_records(np.zeros(0, dtype=rec.COMMAND_DTYPE))
    assert empty.dtype == rec.EVENT_DTYPE and empty.shape == (0,)


def test_apply_records_rejects_undefined_codes_without_crashing(engine):
    commands = [
        submit(1, 1, BUY, 5, 6000, seq=1),
        submit(2, 1, BUY, 5, 6000, seq=2),
        submit(3, 1, BUY, 5, 6000, seq=3),
        submit(4, 1, BUY, 5, 6000, seq=4),
        submit(5, 1, BUY, 5, 6000, instrument="NOPE", seq=5),
    ]
    records = engine.codec.encode_commands(commands)
    records["side"][0] = 9
    records["order_type"][1] = 0
    records["stp"][2] = 7
    records["tif"][3] = 200
    out = engine.apply_records(records)
    assert out["kind"].tolist() == [rec.EV_REJECTED] * 5
    assert out["reason"].tolist() == [
        R.INVALID_ORDER_TYPE,
        R.INVALID_ORDER_TYPE,
        R.INVALID_ORDER_TYPE,
        R.INVALID_TIME_IN_FORCE,
        R.UNKNOWN_INSTRUMENT,
    ]
    assert out["side"].tolist() == [9, 1, 1, 1, 1]
    assert out["seq"].tolist() == [1, 2, 3, 4, 5]
    assert out["instrument"].tolist() == [0, 0, 0, 0, rec.INSTRUMENT_UNKNOWN]
    assert engine.resting_count() == 0


def _hash_of(ints: list[int]) -> str:
    return hashlib.blake2b(np.array(ints, dtype="<i8").tobytes(), digest_size=32).hexdigest()


def test_state_hash_follows_the_documented_layout(closed_engine):
    def header(state, date, ref, lower, upper, day=(0, 0, 0, 0, 0, 0)):
        return [state, date, ref, lower, upper, *day]

    no_modes = [0] * 7 * 3 + [0, 0]  # phase and mode volumes per instrument; no offers, auctions
    assert closed_engine.state_hash() == _hash_of(
        [3, 1]
        + header(0, 0, 6000, 5400, 6600)
        + [0, 0]
        + header(0, 0, 6000, 5400, 6600)
        + [0, 0]
        + header(0, 0, 6005, 5405, 6605)
        + [0, 0]
        + no_modes
    )
    steps(
        closed_engine,
        [
            open_session(DATE1, SYM_A),
            buy(5, 3, 7, 5990, tif=GTC),
            post_only(6, 4, SELL, 2, 6010),
            sell(7, 4, 3, 6010, stp=BOTH),
            sell(8, 4, 4, 6020),
            buy(9, 5, 1, 6020),
        ],
    )
    assert closed_engine.state_hash() == _hash_of(
        [3, 2]
        + header(1, DATE1, 6000, 5400, 6600, (6010, 6010, 6010, 1, 6010, 1))
        + [1, 5990, 7, 1, 5, 3, 7, 1, 2, 1]
        + [2, 6010, 4, 2, 6, 4, 1, 3, 1, 1, 7, 4, 3, 1, 1, 3, 6020, 4, 1, 8, 4, 4, 1, 1, 1]
        + header(0, 0, 6000, 5400, 6600)
        + [0, 0]
        + header(0, 0, 6005, 5405, 6605)
        + [0, 0]
        + no_modes
    )


def _busy_state(engine):
    steps(engine, _scripted_day()[:-3])
    steps(
        engine,
        [
            open_session(DATE2, SYM_A),
            sell(20, 1, 10, 6000),
            sell(21, 2, 10, 6000),
            buy(22, 3, 4, 6000),
            buy(23, 3, 4, 5990, tif=GTC),
            post_only(24, 6, SELL, 4, 6100),
            halt(SYM_A),
        ],
    )


def test_snapshot_round_trip_restores_state_and_future_behaviour(engine_cls, market):
    engine = engine_cls(market)
    _busy_state(engine)
    data = engine.export_state()
    restored = engine_cls.from_state(market, data)
    restored.check_invariants()
    assert restored.state_hash() == engine.state_hash()
    assert restored.export_state() == data
    for symbol in market.symbols:
        for side in (BUY, SELL):
            assert restored.orders(symbol, side) == engine.orders(symbol, side)
        assert restored.status(symbol) == engine.status(symbol)
    future = [resume(SYM_A), buy(30, 9, 20, 6100), close_session(DATE2)]
    future += random_commands(random.Random(7), 400, market)[1:]
    assert restored.apply_all(future) == engine.apply_all(future)
    assert restored.state_hash() == engine.state_hash()


def test_snapshots_are_interchangeable_between_engines(engine_cls, market):
    engine = engine_cls(market)
    _busy_state(engine)
    via_reference = ReferenceEngine.from_state(market, engine.export_state())
    assert via_reference.state_hash() == engine.state_hash()
    back = engine_cls.from_state(market, via_reference.export_state())
    assert back.state_hash() == engine.state_hash()


def test_snapshot_of_another_market_is_refused(engine_cls, market):
    engine = engine_cls(market)
    _busy_state(engine)
    other = msgspec.structs.replace(market, name="another market")
    with pytest.raises(ValueError):
        engine_cls.from_state(other, engine.export_state())
    with pytest.raises(ValueError):
        engine_cls.from_state(market, b"\x93garbage")


# ============================================================================================
# Random streams: the same events as the plain-Python engine
# ============================================================================================


def test_random_stream_gives_the_same_events_as_the_plain_engine(engine_cls, market):
    seed = random.randrange(2**32)
    print(f"random stream seed: {seed}")
    commands = random_commands(random.Random(seed), 3000, market)
    engine, reference = engine_cls(market), ReferenceEngine(market)
    for index, command in enumerate(commands):
        expected = reference.apply(command)
        assert engine.apply(command) == expected, f"seed {seed}, command {index}: {command!r}"
    engine.check_invariants()
    reference.check_invariants()
    assert engine.state_hash() == reference.state_hash(), f"seed {seed}"

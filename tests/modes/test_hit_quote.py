"""Trading-mode scenarios (docs/TRADING_MODES.md) against both engines: hit-quote orders.

The new SubmitOrder checks in the spec's order, and execution against a quote.
The market, the desk and the command builders are ``tests/modes/desk.py``'s; every command
goes through ``step`` (invariants and the event round trip after each)."""

from __future__ import annotations

import pytest

from engine.core import schema as s
from tests.conftest import DATE1
from tests.modes.desk import (
    AFTERNOON,
    AUTH,
    BUY,
    C_,
    CASH,
    CCER,
    CCERB,
    DAY,
    FEE,
    FOK,
    GTC,
    HELD,
    HIT,
    IOC,
    QUOTE_BOOK,
    SELL,
    TO_AFTERNOON,
    TO_MIDDAY,
    V24,
    V25,
    A,
    B,
    C,
    D,
    Desk,
    R,
    fee,
    freeze,
    hit,
    listed,
    market,
    modes_market,
    offer,
    open_desk,
    order,
    phase,
    post,
    run_setup,
    withdraw_all_but,
)

# ============================================================================================
# SubmitOrder: the new checks, in the spec's order
# ============================================================================================


# (id, setup after QUOTE_BOOK, refused order - usually with a second, later fault - reason)
ORDER_REFUSALS = [
    (
        "order-type-undefined",
        [],
        order(101, A, BUY, 0, 6000, order_type=5, tif=9),
        R.INVALID_ORDER_TYPE,
    ),
    ("order-type-zero", [], order(101, A, BUY, 0, 6000, order_type=0, tif=9), R.INVALID_ORDER_TYPE),
    ("hit-quote-day", [], hit(101, A, BUY, 0, 11, tif=DAY), R.INVALID_TIME_IN_FORCE),
    ("hit-quote-gtc", [], hit(101, A, BUY, 10, 11, tif=GTC), R.INVALID_TIME_IN_FORCE),
    ("hit-quote-tif-zero", [], hit(101, A, BUY, 10, 11, tif=0), R.INVALID_TIME_IN_FORCE),
    (
        "hit-quote-tif-before-mode",
        [],
        hit(101, A, BUY, 0, 0, CCERB, tif=DAY),
        R.INVALID_TIME_IN_FORCE,
    ),
    ("limit-without-listing-modes", [], order(101, A, BUY, 0, 6000, CCERB), R.MODE_NOT_ALLOWED),
    ("post-only-without-listing-modes", [], post(101, A, SELL, 0, 1, CCERB), R.MODE_NOT_ALLOWED),
    ("hit-quote-without-hit-quote-mode", [], hit(101, A, BUY, 0, 0, CCERB), R.MODE_NOT_ALLOWED),
    ("market-without-continuous", [], market(101, A, BUY, 0, CCER), R.MODE_NOT_ALLOWED),
    (
        "market-without-continuous-at-midday",
        [TO_MIDDAY],
        market(101, A, BUY, 0, CCER),
        R.MODE_NOT_ALLOWED,
    ),
    ("limit-at-midday", [TO_MIDDAY], order(101, A, BUY, 0, 6000), R.MODE_NOT_IN_PHASE),
    ("post-only-at-midday", [TO_MIDDAY], post(101, A, BUY, 0, 5000, CCER), R.MODE_NOT_IN_PHASE),
    ("hit-quote-at-midday", [TO_MIDDAY], hit(101, A, BUY, 0, 11), R.MODE_NOT_IN_PHASE),
    ("market-at-midday", [TO_MIDDAY], market(101, A, BUY, 0), R.MODE_NOT_IN_PHASE),
    ("hit-quote-qty-zero", [], hit(101, A, BUY, 0, 999), R.INVALID_QUANTITY),
    ("hit-quote-qty-above-max", [], hit(101, A, BUY, 100_000, 999), R.INVALID_QUANTITY),
    ("hit-quote-off-lot", [], hit(101, A, BUY, 15, 999, CCER), R.QUANTITY_OFF_LOT),
    ("hit-quote-order-id-zero", [], hit(0, A, BUY, 10, 999), R.INVALID_ORDER_ID),
    ("hit-quote-order-id-negative", [], hit(-4, A, BUY, 10, 999), R.INVALID_ORDER_ID),
    ("hit-quote-id-of-its-quote", [], hit(11, A, BUY, 10, 11), R.DUPLICATE_ORDER_ID),
    ("hit-quote-unknown-quote", [], hit(101, A, BUY, 10, 999), R.QUOTE_NOT_FOUND),
    ("hit-quote-no-quote", [], hit(101, A, BUY, 10, 0), R.QUOTE_NOT_FOUND),
    ("hit-quote-quote-of-another-instrument", [], hit(101, A, BUY, 10, 31), R.QUOTE_NOT_FOUND),
    (
        "hit-quote-quote-of-another-instrument-2",
        [],
        hit(101, A, BUY, 10, 11, V25),
        R.QUOTE_NOT_FOUND,
    ),
    ("hit-quote-same-side", [], hit(101, A, SELL, 10, 11), R.QUOTE_NOT_FOUND),
    ("hit-quote-same-side-own", [], hit(101, C_, SELL, 10, 16), R.QUOTE_NOT_FOUND),
    (
        "hit-quote-names-a-block-offer",
        [TO_AFTERNOON, offer(77, D)],
        hit(101, A, BUY, 10, 77),
        R.QUOTE_NOT_FOUND,
    ),
    ("hit-quote-own-quote", [], hit(101, C_, BUY, 10, 11), R.QUOTE_OWN_ORDER),
    ("hit-quote-own-quote-beyond-levels", [], hit(101, C_, BUY, 10, 16), R.QUOTE_OWN_ORDER),
    ("hit-quote-sixth-level", [], hit(101, A, BUY, 10, 16), R.QUOTE_BEYOND_BEST_LEVELS),
    (
        "hit-quote-third-of-two-levels",
        [],
        hit(101, A, BUY, 10, 33, CCER),
        R.QUOTE_BEYOND_BEST_LEVELS,
    ),
    (
        "hit-quote-levels-before-cash",
        [withdraw_all_but(A, 0)],
        hit(101, A, BUY, 10, 16),
        R.QUOTE_BEYOND_BEST_LEVELS,
    ),
    ("hit-quote-authority", [], hit(101, AUTH, SELL, 10, 21), R.ACCOUNT_MAY_NOT_TRADE),
    ("hit-quote-fee-account", [], hit(101, FEE, BUY, 10, 11), R.ACCOUNT_MAY_NOT_TRADE),
    ("hit-quote-frozen", [freeze(A)], hit(101, A, BUY, 10, 11), R.ACCOUNT_FROZEN),
    (
        "hit-quote-cash-at-the-quotes-price",
        [withdraw_all_but(A, 10 * 6010 - 1)],
        hit(101, A, BUY, 10, 11),
        R.INSUFFICIENT_CASH,
    ),
    (
        "hit-quote-cash-for-the-whole-quantity",
        [withdraw_all_but(A, 100 * 6010)],
        hit(101, A, BUY, 101, 11),
        R.INSUFFICIENT_CASH,
    ),
    ("hit-quote-allowances", [], hit(101, A, SELL, HELD + 1, 21), R.INSUFFICIENT_ALLOWANCES),
    (
        "hit-quote-allowances-locked",
        [order(50, A, SELL, HELD - 5, 6500)],
        hit(101, A, SELL, 10, 21),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    ("limit-crossing-without-continuous", [], order(101, A, BUY, 10, 5020, CCER), R.WOULD_TRADE),
    (
        "limit-through-without-continuous",
        [],
        order(101, A, BUY, 10, 5100, CCER, tif=GTC),
        R.WOULD_TRADE,
    ),
    (
        "limit-ioc-crossing-without-continuous",
        [],
        order(101, A, BUY, 10, 5030, CCER, tif=IOC),
        R.WOULD_TRADE,
    ),
    (
        "limit-fok-crossing-without-continuous",
        [],
        order(101, A, BUY, 10, 5030, CCER, tif=FOK),
        R.WOULD_TRADE,
    ),
    (
        "limit-sell-crossing-without-continuous",
        [],
        order(101, A, SELL, 10, 4990, CCER),
        R.WOULD_TRADE,
    ),
    (
        "limit-crossing-own-quote-without-continuous",
        [],
        order(101, C_, BUY, 10, 5020, CCER),
        R.WOULD_TRADE,
    ),
    (
        "limit-crossing-in-the-afternoon-without-continuous",
        [TO_AFTERNOON],
        order(101, A, BUY, 10, 5020, CCER),
        R.WOULD_TRADE,
    ),
    (
        "limit-cash-before-would-trade",
        [withdraw_all_but(A, 10 * 5020 - 1)],
        order(101, A, BUY, 10, 5020, CCER),
        R.INSUFFICIENT_CASH,
    ),
]


@pytest.mark.parametrize(
    "setup, command, reason", [pytest.param(*case[1:], id=case[0]) for case in ORDER_REFUSALS]
)
def test_order_refusal(desk: Desk, setup, command: s.SubmitOrder, reason: R) -> None:
    run_setup(desk, QUOTE_BOOK + setup)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [
        s.OrderRejected(
            events[0].seq,
            0,
            command.order_id,
            command.account,
            listed(command.instrument),
            int(command.side),
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


def test_a_full_book_refuses_hit_quote_orders(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(resting_orders=3)))
    run_setup(
        desk,
        [
            order(11, C_, SELL, 100, 6010),
            order(12, C_, SELL, 100, 6020),
            order(21, D, BUY, 100, 5990),
        ],
    )
    before = desk.hash()
    for command, reason in [
        (hit(101, A, BUY, 10, 11), R.BOOK_FULL),
        (hit(101, A, BUY, 10, 999), R.BOOK_FULL),  # before QUOTE_NOT_FOUND
        (hit(11, A, BUY, 10, 12), R.DUPLICATE_ORDER_ID),
    ]:
        assert [e.reason for e in desk.do(command)] == [reason]
    assert desk.hash() == before
    desk.ok(s.CancelOrder(order_id=12, account=C_))
    assert [type(e) for e in desk.do(hit(101, A, BUY, 10, 11))] == [
        s.OrderAccepted,
        s.TradeExecuted,
    ]


def test_a_hit_quote_order_ignores_its_price(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    for order_id, price in ((101, 0), (102, -7), (103, 6011), (104, 99_999), (105, 6010)):
        events = desk.do(hit(order_id, A, BUY, 1, 11, price=price))
        assert events[0] == s.OrderAccepted(
            events[0].seq, 0, order_id, A, V24, BUY, HIT, IOC, 6010, 1
        )
        assert [(t.price_ticks, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [
            (6010, 1)
        ]


# ============================================================================================
# Hit-quote execution
# ============================================================================================


def test_hit_quote_fills_what_the_quote_has_and_cancels_the_rest(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 150, 12, price=1))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, A, V24, BUY, HIT, IOC, 6020, 150),
        s.TradeExecuted(seq, 0, 1, V24, 6020, 100, BUY, 101, A, 12, C_, 50, 0),
        s.OrderCancelled(seq, 0, 101, A, V24, BUY, 6020, 50, C.IOC_REMAINDER),
    ]
    assert desk.engine.order(12) is None and desk.engine.order(101) is None
    assert [o.order_id for o in desk.engine.orders(V24, SELL)] == [11, 17, 13, 14, 15, 16]
    assert desk.cash(A) == (CASH - 602_000, 0)  # the remainder's lock came back
    assert desk.held(A) == (HELD, 0, 0, 100)  # T+1
    assert desk.cash(C_) == (CASH + 602_000, 0)
    assert desk.held(C_) == (HELD - 600, 500, 0, 0)


def test_hit_quote_partly_fills_the_quote_which_keeps_its_priority(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 30, 11, tif=FOK))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, A, V24, BUY, HIT, FOK, 6010, 30),
        s.TradeExecuted(seq, 0, 1, V24, 6010, 30, BUY, 101, A, 11, C_, 0, 70),
    ]
    asks = desk.engine.orders(V24, SELL)
    assert [(o.order_id, o.qty_t) for o in asks[:3]] == [(11, 70), (17, 100), (12, 100)]
    # the quote keeps its place at the head of its level: a market buy takes it first
    events = desk.do(market(102, B, BUY, 80))
    assert [(t.maker_order_id, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [
        (11, 70),
        (17, 10),
    ]


def test_hit_quote_fok_the_quote_cannot_fill_is_killed_and_changes_nothing(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    before, views = desk.hash(), desk.views()
    events = desk.do(hit(101, A, BUY, 101, 11, tif=FOK))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, A, V24, BUY, HIT, FOK, 6010, 101),
        s.OrderCancelled(seq, 0, 101, A, V24, BUY, 6010, 101, C.FOK_NOT_FILLABLE),
    ]
    assert desk.hash() == before and desk.views() == views
    # exactly the quote's open quantity is fillable (no other order at its level is used)
    events = desk.do(hit(102, A, BUY, 100, 11, tif=FOK))
    assert events[-1] == s.TradeExecuted(
        events[-1].seq, 0, 1, V24, 6010, 100, BUY, 102, A, 11, C_, 0, 0
    )
    assert desk.engine.order(11) is None and desk.engine.order(17).qty_t == 100


def test_hit_quote_takes_a_quote_within_the_best_levels_not_a_better_price(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 100, 15))  # the 5th level (two orders at the 1st)
    assert [
        (t.maker_order_id, t.price_ticks, t.qty_t) for t in events if type(t) is s.TradeExecuted
    ] == [(15, 6050, 100)]
    assert desk.engine.best_ask(V24) == 6010 and desk.engine.depth_at(V24, SELL, 6010) == (200, 2)
    # 6060 was the 6th level; with 6050 gone it is the 5th
    events = desk.do(hit(102, A, BUY, 10, 16))
    assert events[-1] == s.TradeExecuted(
        events[-1].seq, 0, 2, V24, 6060, 10, BUY, 102, A, 16, C_, 0, 90
    )


def test_hit_quote_sells_into_a_bid(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, B, SELL, 40, 21, tif=FOK))
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 101, B, V24, SELL, HIT, FOK, 5990, 40),
        s.TradeExecuted(seq, 0, 1, V24, 5990, 40, SELL, 101, B, 21, D, 0, 60),
    ]
    assert desk.cash(B) == (CASH + 40 * 5990, 0) and desk.held(B) == (HELD - 40, 0, 0, 0)
    ccer_bid = 100 * 4990  # D's bid 34 in CCER
    assert desk.cash(D) == (CASH - 100 * 5990 - ccer_bid, 60 * 5990 + ccer_bid)
    assert desk.held(D) == (HELD - 100, 100, 0, 40)


def test_hit_quote_with_fees_settles_at_the_quotes_price(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(desk, QUOTE_BOOK)
    events = desk.do(hit(101, A, BUY, 130, 11, price=6600))
    value = 100 * 6010
    assert [type(e) for e in events] == [s.OrderAccepted, s.TradeExecuted, s.OrderCancelled]
    assert desk.cash(A) == (CASH - value - fee(value, 30), 0)  # 601,000 + 1,803
    assert desk.cash(C_) == (CASH + value - fee(value, 20), 0)  # 601,000 - 1,202
    assert desk.cash(FEE) == (fee(value, 30) + fee(value, 20), 0)
    assert desk.held(A) == (HELD, 0, 0, 100)


def test_the_hit_quote_lock_is_the_quotes_price(desk: Desk) -> None:
    """Exactly qty × quote price is enough (a market buy would lock at the band top)."""
    run_setup(desk, QUOTE_BOOK + [withdraw_all_but(A, 100 * 6010)])
    assert [type(e) for e in desk.do(hit(101, A, BUY, 100, 11, tif=FOK))] == [
        s.OrderAccepted,
        s.TradeExecuted,
    ]
    assert desk.cash(A) == (0, 0)


def test_without_continuous_quotes_rest_and_only_hit_quote_orders_trade(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    assert [type(e) for e in desk.do(order(101, A, BUY, 10, 5015, CCER))] == [s.OrderAccepted]
    assert [type(e) for e in desk.do(post(102, A, BUY, 10, 5000, CCER))] == [s.OrderAccepted]
    assert [type(e) for e in desk.do(order(103, B, SELL, 10, 5025, CCER, tif=IOC))] == [
        s.OrderAccepted,
        s.OrderCancelled,
    ]
    events = desk.do(hit(104, B, BUY, 20, 32, CCER))  # the 2nd level: CCER allows two
    seq = events[0].seq
    assert events == [
        s.OrderAccepted(seq, 0, 104, B, CCER, BUY, HIT, IOC, 5030, 20),
        s.TradeExecuted(seq, 0, 1, CCER, 5030, 20, BUY, 104, B, 32, C_, 0, 80),
    ]
    events = desk.do(hit(105, D, SELL, 10, 101, CCER))  # D hits A's bid at 50.15
    assert events[-1] == s.TradeExecuted(
        events[-1].seq, 0, 2, CCER, 5015, 10, SELL, 105, D, 101, A, 0, 0
    )
    desk.ok(phase(AFTERNOON, CCER))  # hit-quote and block: still no continuous trading
    assert [e.reason for e in desk.do(order(106, A, BUY, 10, 5020, CCER))] == [R.WOULD_TRADE]
    assert [type(e) for e in desk.do(hit(106, A, BUY, 10, 31, CCER))][-1] is s.TradeExecuted


def test_hit_quote_trades_are_listing_trades(desk: Desk) -> None:
    run_setup(desk, QUOTE_BOOK)
    desk.do(hit(101, A, BUY, 50, 12))  # 50 at 60.20
    desk.do(hit(102, B, BUY, 30, 11))  # 30 at 60.10
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V24))
    closed = [e for e in events if type(e) is s.SessionClosed]
    # VWAP (50 x 6020 + 30 x 6010) / 80 = 6016.25 -> 6016
    assert closed == [
        s.SessionClosed(events[0].seq, 0, V24, DATE1, 6020, 6020, 6010, 6016, 80, 481_300, 2)
    ]
    volumes = [e for e in events if type(e) is s.SessionModeVolumes]
    assert volumes == [s.SessionModeVolumes(events[0].seq, 0, V24, DATE1, 0, 0, 0, 0, 0, 0)]

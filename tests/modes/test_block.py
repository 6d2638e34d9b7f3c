"""Trading-mode scenarios (docs/TRADING_MODES.md) against both engines: block trades.

Offer, accept and cancel refusals, locks, settlement, expiry, the block band.
The market, the desk and the command builders are ``tests/modes/desk.py``'s; every command
goes through ``step`` (invariants and the event round trip after each)."""

from __future__ import annotations

import msgspec
import pytest

from engine.core import schema as s
from engine.core import snapshot as snap
from tests.conftest import DATE1, DATE2
from tests.modes.desk import (
    ACCOUNTS,
    AFTERNOON,
    AUTH,
    BUY,
    C_,
    CASH,
    CCER,
    CCERB,
    CONT,
    FEE,
    HELD,
    HQ,
    MIDDAY,
    MORNING,
    SELL,
    SYMBOLS,
    TO_AFTERNOON,
    TO_MIDDAY,
    TRADERS,
    UNOPENED,
    V24,
    V25,
    A,
    B,
    C,
    D,
    Desk,
    R,
    accept,
    announce,
    apply_auction,
    bid,
    fee,
    freeze,
    hit,
    listed,
    modes_market,
    offer,
    open_desk,
    order,
    phase,
    run_setup,
    withdraw_all_but,
)

# ============================================================================================
# Block trades
# ============================================================================================

# (id, setup, refused SubmitBlockOffer, reason)
OFFER_REFUSALS = [
    (
        "unknown-instrument",
        [TO_AFTERNOON],
        offer(symbol="NOPE", account=ACCOUNTS, side=3),
        R.UNKNOWN_INSTRUMENT,
    ),
    ("all-instruments-symbol", [TO_AFTERNOON], offer(symbol="", qty=1), R.UNKNOWN_INSTRUMENT),
    (
        "session-closed",
        [TO_AFTERNOON, s.CloseSession(trading_date=DATE1, instrument=V24)],
        offer(account=ACCOUNTS),
        R.SESSION_CLOSED,
    ),
    (
        "halted",
        [TO_AFTERNOON, s.HaltInstrument(instrument=V24)],
        offer(account=ACCOUNTS),
        R.INSTRUMENT_HALTED,
    ),
    ("unopened-account", [TO_AFTERNOON], offer(account=UNOPENED, side=3), R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", [TO_AFTERNOON], offer(account=ACCOUNTS, side=3), R.UNKNOWN_ACCOUNT),
    ("account-negative", [TO_AFTERNOON], offer(account=-1, qty=1), R.UNKNOWN_ACCOUNT),
    ("side-three", [TO_AFTERNOON], offer(side=3, symbol=CCERB), R.INVALID_ORDER_TYPE),
    ("side-zero", [TO_AFTERNOON], offer(side=0, qty=1), R.INVALID_ORDER_TYPE),
    ("no-block-mode", [TO_AFTERNOON], offer(symbol=CCERB, qty=1), R.MODE_NOT_ALLOWED),
    ("no-block-mode-in-the-morning", [], offer(symbol=CCERB, qty=1), R.MODE_NOT_ALLOWED),
    ("morning", [], offer(qty=1), R.MODE_NOT_IN_PHASE),
    ("midday", [TO_MIDDAY], offer(qty=1, symbol=CCER), R.MODE_NOT_IN_PHASE),
    ("below-block-minimum", [TO_AFTERNOON], offer(qty=999, price=1), R.INVALID_QUANTITY),
    ("qty-zero", [TO_AFTERNOON], offer(qty=0, price=1), R.INVALID_QUANTITY),
    ("qty-above-10-12", [TO_AFTERNOON], offer(qty=10**12 + 1, price=1), R.INVALID_QUANTITY),
    ("qty-10-12-is-a-quantity", [TO_AFTERNOON], offer(qty=10**12, price=0), R.PRICE_OFF_TICK),
    ("off-lot", [TO_AFTERNOON], offer(symbol=V25, qty=1_005, price=6001), R.QUANTITY_OFF_LOT),
    (
        "off-tick",
        [TO_AFTERNOON],
        offer(symbol=V25, qty=1_010, price=6001, counterparty=C_),
        R.PRICE_OFF_TICK,
    ),
    ("price-zero", [TO_AFTERNOON], offer(price=0), R.PRICE_OFF_TICK),
    ("price-negative", [TO_AFTERNOON], offer(price=-6000), R.PRICE_OFF_TICK),
    ("below-block-band", [TO_AFTERNOON], offer(price=4199, counterparty=C_), R.PRICE_OUT_OF_BAND),
    ("above-block-band", [TO_AFTERNOON], offer(price=7801), R.PRICE_OUT_OF_BAND),
    ("below-block-band-tick-5", [TO_AFTERNOON], offer(symbol=V25, price=4205), R.PRICE_OUT_OF_BAND),
    ("above-block-band-tick-5", [TO_AFTERNOON], offer(symbol=V25, price=7815), R.PRICE_OUT_OF_BAND),
    ("above-block-band-ccer", [TO_AFTERNOON], offer(symbol=CCER, price=6515), R.PRICE_OUT_OF_BAND),
    (
        "counterparty-itself",
        [TO_AFTERNOON],
        offer(counterparty=C_, offer_id=0),
        R.INVALID_COUNTERPARTY,
    ),
    ("counterparty-unopened", [TO_AFTERNOON], offer(counterparty=UNOPENED), R.INVALID_COUNTERPARTY),
    (
        "counterparty-out-of-range",
        [TO_AFTERNOON],
        offer(counterparty=ACCOUNTS),
        R.INVALID_COUNTERPARTY,
    ),
    ("counterparty-minus-two", [TO_AFTERNOON], offer(counterparty=-2), R.INVALID_COUNTERPARTY),
    ("offer-id-zero", [TO_AFTERNOON], offer(offer_id=0, qty=HELD + 1), R.INVALID_ORDER_ID),
    ("offer-id-negative", [TO_AFTERNOON], offer(offer_id=-1), R.INVALID_ORDER_ID),
    (
        "duplicate-offer-id",
        [TO_AFTERNOON, offer(offer_id=5, account=D, side=BUY)],
        offer(offer_id=5, qty=HELD + 1),
        R.DUPLICATE_ORDER_ID,
    ),
    (
        "duplicate-offer-id-other-instrument",
        [TO_AFTERNOON, offer(offer_id=5, symbol=CCER)],
        offer(offer_id=5, account=AUTH),
        R.DUPLICATE_ORDER_ID,
    ),
    ("authority", [TO_AFTERNOON], offer(account=AUTH), R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", [TO_AFTERNOON], offer(account=FEE, side=BUY), R.ACCOUNT_MAY_NOT_TRADE),
    ("frozen", [TO_AFTERNOON, freeze(C_)], offer(qty=HELD + 1), R.ACCOUNT_FROZEN),
    ("sell-too-much", [TO_AFTERNOON], offer(qty=HELD + 1), R.INSUFFICIENT_ALLOWANCES),
    (
        "sell-locked-by-an-order",
        [order(9, C_, SELL, 9_500, 6500), TO_AFTERNOON],
        offer(qty=1_000),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "sell-locked-by-an-offer",
        [TO_AFTERNOON, offer(offer_id=2, qty=9_500)],
        offer(qty=1_000),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    ("buy-too-much", [TO_AFTERNOON], offer(side=BUY, qty=16_667), R.INSUFFICIENT_CASH),
    (
        "buy-cash-short-by-a-fen",
        [TO_AFTERNOON, withdraw_all_but(C_, 6_000_000 - 1)],
        offer(side=BUY),
        R.INSUFFICIENT_CASH,
    ),
]


@pytest.mark.parametrize(
    "setup, command, reason", [pytest.param(*c[1:], id=c[0]) for c in OFFER_REFUSALS]
)
def test_block_offer_refusal(desk: Desk, setup, command: s.SubmitBlockOffer, reason) -> None:
    run_setup(desk, setup)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [
        s.BlockCommandRejected(
            events[0].seq,
            0,
            40,
            command.offer_id,
            command.account,
            listed(command.instrument),
            int(command.side),
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


OFFERS = [
    TO_AFTERNOON,
    offer(offer_id=1),  # C_ sells 1,000 CEA-2024 at 60.00 to anyone
    offer(offer_id=2, account=D, side=BUY, price=6100, counterparty=B),  # D buys, from B only
    offer(offer_id=3, account=D, side=BUY, qty=HELD + 1, price=5000),  # more than A holds
]

# (id, setup after OFFERS, refused AcceptBlockOffer, offer's instrument echo, reason)
ACCEPT_REFUSALS = [
    (
        "unknown-offer",
        [],
        accept(offer_id=9, account=ACCOUNTS, price=0, qty=0),
        "?",
        R.UNKNOWN_BLOCK_OFFER,
    ),
    (
        "halted",
        [s.HaltInstrument(instrument=V24)],
        accept(account=ACCOUNTS),
        V24,
        R.INSTRUMENT_HALTED,
    ),
    ("unopened-account", [], accept(account=UNOPENED, price=1), V24, R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", [], accept(account=ACCOUNTS, price=1), V24, R.UNKNOWN_ACCOUNT),
    ("own-offer", [], accept(account=C_, price=1), V24, R.NOT_COUNTERPARTY),
    ("directed-at-another", [], accept(offer_id=2, account=A, price=1), V24, R.NOT_COUNTERPARTY),
    ("price-differs", [], accept(price=6001), V24, R.BLOCK_TERMS_MISMATCH),
    ("quantity-smaller", [], accept(qty=999), V24, R.BLOCK_TERMS_MISMATCH),
    ("quantity-larger", [], accept(qty=1_001, account=AUTH), V24, R.BLOCK_TERMS_MISMATCH),
    ("authority", [], accept(account=AUTH), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", [], accept(account=FEE), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("frozen", [freeze(A)], accept(), V24, R.ACCOUNT_FROZEN),
    (
        "cash-short-by-a-fen",
        [withdraw_all_but(A, 6_000_000 - 1)],
        accept(),
        V24,
        R.INSUFFICIENT_CASH,
    ),
    (
        "allowances-short",
        [],
        accept(offer_id=3, price=5000, qty=HELD + 1),
        V24,
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "allowances-locked",
        [order(9, B, SELL, 9_500, 6500)],
        accept(offer_id=2, account=B, price=6100),
        V24,
        R.INSUFFICIENT_ALLOWANCES,
    ),
]


@pytest.mark.parametrize(
    "setup, command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in ACCEPT_REFUSALS]
)
def test_accept_block_offer_refusal(desk: Desk, setup, command, echo: str, reason: R) -> None:
    run_setup(desk, OFFERS + setup)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [
        s.BlockCommandRejected(
            events[0].seq,
            0,
            41,
            command.offer_id,
            command.account,
            echo,
            0,
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


@pytest.mark.parametrize(
    "command, echo, reason",
    [
        (s.CancelBlockOffer(offer_id=9, account=C_), "?", R.UNKNOWN_BLOCK_OFFER),
        (s.CancelBlockOffer(offer_id=0, account=ACCOUNTS), "?", R.UNKNOWN_BLOCK_OFFER),
        (s.CancelBlockOffer(offer_id=1, account=D), V24, R.NOT_ORDER_OWNER),
        (s.CancelBlockOffer(offer_id=2, account=B), V24, R.NOT_ORDER_OWNER),  # the counterparty
    ],
)
def test_cancel_block_offer_refusal(desk: Desk, command, echo: str, reason: R) -> None:
    run_setup(desk, OFFERS)
    before = desk.hash()
    events = desk.do(command)
    assert events == [
        s.BlockCommandRejected(
            events[0].seq, 0, 42, command.offer_id, command.account, echo, 0, 0, 0, reason
        )
    ]
    assert desk.hash() == before


def test_a_full_offer_table_refuses_new_offers(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(block_offers=2)))
    run_setup(desk, [TO_AFTERNOON, offer(offer_id=1), offer(offer_id=2, symbol=CCER, price=5000)])
    before = desk.hash()
    for command, reason in [
        (offer(offer_id=3, account=D), R.BOOK_FULL),
        (offer(offer_id=3, account=D, qty=HELD + 1), R.BOOK_FULL),  # before the ledger
        (offer(offer_id=1, account=D), R.DUPLICATE_ORDER_ID),  # duplicate comes first
        (offer(offer_id=0, account=D), R.INVALID_ORDER_ID),
    ]:
        assert [e.reason for e in desk.do(command)] == [reason]
        assert desk.hash() == before
    desk.ok(s.CancelBlockOffer(offer_id=2, account=C_))
    assert [type(e) for e in desk.do(offer(offer_id=3, account=D))] == [s.BlockOfferPosted]


def test_block_offer_posted_locks_its_need(fee_desk: Desk) -> None:
    desk = fee_desk
    desk.ok(TO_AFTERNOON)
    events = desk.do(offer(offer_id=7, symbol=V25, qty=2_000, price=7810))  # the band's top
    assert events == [s.BlockOfferPosted(events[0].seq, 0, 7, C_, V25, SELL, 7810, 2_000, -1)]
    assert desk.held(C_, V25) == (HELD - 2_000, 2_000, 0, 0)
    events = desk.do(offer(offer_id=8, account=D, symbol=V25, side=BUY, price=4210, counterparty=A))
    assert events == [s.BlockOfferPosted(events[0].seq, 0, 8, D, V25, BUY, 4210, 1_000, A)]
    need = 4_210_000 + fee(4_210_000, 30)
    assert desk.cash(D) == (CASH - need, need)
    # block offers have their own ids: an order may use the same id, and vice versa
    assert [type(e) for e in desk.do(order(7, D, BUY, 10, 6000, V25))] == [s.OrderAccepted]
    modes = desk.modes()
    assert modes.block_offers == [
        snap.BlockOfferSnapshot(7, C_, 1, SELL, 7810, 2_000, -1),
        snap.BlockOfferSnapshot(8, D, 1, BUY, 4210, 1_000, A),
    ]
    # cancelling releases exactly the lock
    events = desk.do(s.CancelBlockOffer(offer_id=8, account=D))
    assert events == [
        s.BlockOfferCancelled(events[0].seq, 0, 8, D, V25, BUY, 4210, 1_000, C.REQUESTED)
    ]
    assert desk.cash(D) == (CASH - 60_000 - fee(60_000, 30), 60_000 + fee(60_000, 30))
    desk.do(s.CancelBlockOffer(offer_id=7, account=C_))
    assert desk.held(C_, V25) == (HELD, 0, 0, 0)
    assert desk.modes().block_offers == []


def test_block_trade_settles_delivery_versus_payment_with_fees(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(desk, [order(1, B, SELL, 10, 6010), order(2, D, BUY, 10, 6010)])  # trade id 1
    desk.ok(TO_AFTERNOON)
    desk.ok(offer(offer_id=7))  # C_ sells 1,000 at 60.00
    exact = 6_000_000 + fee(6_000_000, 30)
    desk.reg(s.WithdrawCash, account=A, amount_fen=CASH - exact)  # exactly enough
    events = desk.do(accept(offer_id=7, account=A))
    assert events == [s.BlockTradeExecuted(events[0].seq, 0, 2, V24, 6000, 1_000, 7, SELL, C_, A)]
    assert desk.cash(A) == (0, 0)
    assert desk.held(A) == (HELD, 0, 0, 1_000)  # T+1
    assert desk.cash(C_) == (CASH + 6_000_000 - fee(6_000_000, 20), 0)
    assert desk.held(C_) == (HELD - 1_000, 0, 0, 0)
    listing_fees = fee(60_100, 30) + fee(60_100, 20)
    assert desk.cash(FEE) == (listing_fees + fee(6_000_000, 30) + fee(6_000_000, 20), 0)
    assert desk.modes().block_offers == []
    # the offer is gone
    events = desk.do(accept(offer_id=7, account=B))
    assert [e.reason for e in events] == [R.UNKNOWN_BLOCK_OFFER]
    # T+1: A cannot sell what it bought today; the next session settles it
    assert [e.reason for e in desk.do(order(3, A, SELL, HELD + 1, 6000))] == [
        R.INSUFFICIENT_ALLOWANCES
    ]
    desk.ok(s.CloseSession(trading_date=DATE1))
    desk.ok(s.OpenSession(trading_date=DATE2))
    assert desk.held(A) == (HELD + 1_000, 0, 0, 0)


def test_a_directed_buy_offer_accepted_by_its_counterparty(desk: Desk) -> None:
    run_setup(desk, OFFERS)
    assert desk.cash(D) == (CASH - 6_100_000 - (HELD + 1) * 5000, 6_100_000 + (HELD + 1) * 5000)
    events = desk.do(accept(offer_id=2, account=B, price=6100))
    assert events == [s.BlockTradeExecuted(events[0].seq, 0, 1, V24, 6100, 1_000, 2, BUY, D, B)]
    assert desk.cash(B) == (CASH + 6_100_000, 0) and desk.held(B) == (HELD - 1_000, 0, 0, 0)
    assert desk.cash(D) == (CASH - 6_100_000 - (HELD + 1) * 5000, (HELD + 1) * 5000)
    assert desk.held(D) == (HELD, 0, 0, 1_000)


def test_offers_live_through_a_halt_and_can_be_cancelled(desk: Desk) -> None:
    run_setup(desk, OFFERS + [s.HaltInstrument(instrument=V24)])
    events = desk.do(s.CancelBlockOffer(offer_id=1, account=C_))
    assert events == [
        s.BlockOfferCancelled(events[0].seq, 0, 1, C_, V24, SELL, 6000, 1_000, C.REQUESTED)
    ]
    assert desk.held(C_) == (HELD, 0, 0, 0)
    desk.ok(s.ResumeInstrument(instrument=V24))
    assert [type(e) for e in desk.do(accept(offer_id=2, account=B, price=6100))] == [
        s.BlockTradeExecuted
    ]


def test_block_offers_expire_when_the_phase_ends_block_trading(desk: Desk) -> None:
    run_setup(
        desk,
        [
            TO_AFTERNOON,
            offer(offer_id=5),
            offer(offer_id=3, account=D, side=BUY),
            offer(offer_id=4, symbol=CCER, price=5000),
            offer(offer_id=9, account=D, symbol=V25, price=6010),
        ],
    )
    events = desk.do(phase(AFTERNOON, V24))  # block stays effective: nothing expires
    assert [type(e) for e in events] == [s.TradingPhaseChanged]
    events = desk.do(phase(MIDDAY, V25))  # one instrument: only its offers expire
    seq = events[0].seq
    assert events == [
        s.BlockOfferCancelled(seq, 0, 9, D, V25, SELL, 6010, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, V25, 1, 0),
    ]
    events = desk.do(phase(MORNING))
    seq = events[0].seq
    assert events == [
        s.BlockOfferCancelled(seq, 0, 3, D, V24, BUY, 6000, 1_000, C.PHASE_END),
        s.BlockOfferCancelled(seq, 0, 5, C_, V24, SELL, 6000, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, V24, 0, CONT | HQ),
        s.TradingPhaseChanged(seq, 0, V25, 0, CONT | HQ),  # 1 -> 0: no offers, none to expire
        s.BlockOfferCancelled(seq, 0, 4, C_, CCER, SELL, 5000, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, CCER, 0, HQ),
        s.TradingPhaseChanged(seq, 0, CCERB, 0, 0),
    ]
    for account in TRADERS:  # every lock released
        assert desk.cash(account) == (CASH, 0)
        assert all(desk.held(account, symbol) == (HELD, 0, 0, 0) for symbol in SYMBOLS)
    assert desk.modes().block_offers == []


def test_a_halted_instruments_offers_end_with_the_block_phase(desk: Desk) -> None:
    """Block "effective" before and after compares the modes of the old and the new phase
    whatever the session state (docs/TRADING_MODES.md, SetTradingPhase)."""
    run_setup(desk, [TO_AFTERNOON, offer(offer_id=5), s.HaltInstrument(instrument=V24)])
    events = desk.do(phase(AFTERNOON, V24))
    assert [type(e) for e in events] == [s.TradingPhaseChanged]
    events = desk.do(phase(MIDDAY, V24))
    seq = events[0].seq
    assert events == [
        s.BlockOfferCancelled(seq, 0, 5, C_, V24, SELL, 6000, 1_000, C.PHASE_END),
        s.TradingPhaseChanged(seq, 0, V24, 1, 0),
    ]
    assert desk.held(C_) == (HELD, 0, 0, 0)


def test_a_closed_instrument_keeps_its_last_phase_until_it_opens(desk: Desk) -> None:
    run_setup(desk, [TO_AFTERNOON, s.CloseSession(trading_date=DATE1, instrument=V24)])
    assert [row[0] for row in desk.modes().instruments] == [2, 2, 2, 0]
    events = desk.do(s.CloseSession(trading_date=DATE1))
    assert [row[0] for row in desk.modes().instruments] == [2, 2, 2, 0]
    events = desk.do(s.OpenSession(trading_date=DATE2, instrument=V25))
    assert [type(e) for e in events] == [s.SessionOpened]
    assert [row[0] for row in desk.modes().instruments] == [2, 0, 2, 0]


def test_auction_commands_are_not_checked_against_the_window(desk: Desk) -> None:
    """The engine reads no clock: the announced window is published, never enforced."""
    run_setup(desk, [apply_auction(1, C_, V24, 1_000), announce(1, start=1_000, end=2_000)])
    events = desk.do(msgspec.structs.replace(bid(1, 1, A, 6000, 100), ts_ns=10**18))
    assert events == [s.AuctionBidAccepted(events[0].seq, 10**18, 1, 1, A, V24, 6000, 100)]
    events = desk.do(msgspec.structs.replace(s.ClearAuction(auction_id=1), ts_ns=1))
    assert [type(e) for e in events] == [s.AuctionTrade, s.AuctionCleared]
    assert all(e.ts_ns == 1 for e in events)


def test_block_trades_do_not_move_the_listing_prices(desk: Desk) -> None:
    run_setup(desk, [order(1, B, SELL, 10, 6051), order(2, D, BUY, 10, 6051)])  # trade id 1
    desk.ok(TO_AFTERNOON)
    run_setup(
        desk,
        [
            offer(offer_id=1, price=7000),
            accept(offer_id=1, price=7000),
            offer(offer_id=2, account=D, side=BUY, qty=2_000, price=4500),
            accept(offer_id=2, account=B, price=4500, qty=2_000),
            offer(offer_id=3, symbol=V25, price=5000),
            accept(offer_id=3, account=D, price=5000),
        ],
    )
    events = desk.do(s.CloseSession(trading_date=DATE1, instrument=V24))
    seq = events[0].seq
    assert events == [
        s.SessionClosed(seq, 0, V24, DATE1, 6051, 6051, 6051, 6051, 10, 60_510, 1),
        s.SessionModeVolumes(seq, 0, V24, DATE1, 3_000, 7_000_000 + 9_000_000, 2, 0, 0, 0),
    ]
    assert desk.engine.status(V24).reference_price_ticks == 6051
    events = desk.do(s.CloseSession(trading_date=DATE1))  # the others; V25 had no listing trade
    v25 = [e for e in events if getattr(e, "instrument", None) == V25]
    assert v25 == [
        s.SessionClosed(events[0].seq, 0, V25, DATE1, 6010, 6010, 6010, 6010, 0, 0, 0),
        s.SessionModeVolumes(events[0].seq, 0, V25, DATE1, 1_000, 5_000_000, 1, 0, 0, 0),
    ]
    # the counters restart: the next session reports nothing
    desk.ok(s.OpenSession(trading_date=DATE2))
    events = desk.do(s.CloseSession(trading_date=DATE2, instrument=V24))
    assert events[-1] == s.SessionModeVolumes(events[0].seq, 0, V24, DATE2, 0, 0, 0, 0, 0, 0)
    assert desk.modes().instruments[0][1:] == (0, 0, 0, 0, 0, 0)


def test_trade_ids_are_one_sequence_across_modes(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(1, B, SELL, 10, 6000),
            TO_AFTERNOON,
            offer(offer_id=1),
            apply_auction(1, D, CCER, 1_000),
            announce(1),
            bid(1, 1, A, 5010, 1_000),
            order(3, C_, SELL, 5, 6010),
        ],
    )
    trade_ids = [
        desk.do(order(2, A, BUY, 10, 6000))[-1].trade_id,  # listing
        desk.do(accept(offer_id=1, account=B))[-1].trade_id,
    ]  # block
    trade_ids += [
        e.trade_id for e in desk.do(s.ClearAuction(auction_id=1)) if type(e) is s.AuctionTrade
    ]  # auction
    trade_ids.append(desk.do(hit(4, A, BUY, 5, 3))[-1].trade_id)  # hit-quote
    assert trade_ids == [1, 2, 3, 4]


def test_the_block_band_moves_with_the_close(desk: Desk) -> None:
    run_setup(
        desk,
        [
            order(1, B, SELL, 10, 6100),
            order(2, D, BUY, 10, 6100),
            s.CloseSession(trading_date=DATE1),
            s.OpenSession(trading_date=DATE2),
            TO_AFTERNOON,
        ],
    )
    # reference 6100: block band 4270 … 7930
    assert [e.reason for e in desk.do(offer(offer_id=1, price=7931))] == [R.PRICE_OUT_OF_BAND]
    assert [e.reason for e in desk.do(offer(offer_id=1, price=4269))] == [R.PRICE_OUT_OF_BAND]
    assert [type(e) for e in desk.do(offer(offer_id=1, price=7930))] == [s.BlockOfferPosted]
    assert [type(e) for e in desk.do(offer(offer_id=2, price=4270))] == [s.BlockOfferPosted]


def test_the_block_band_is_capped_by_the_ladder_but_the_auction_cap_is_not(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(max_price_ticks=6103)))
    desk.ok(TO_AFTERNOON)
    assert [e.reason for e in desk.do(offer(offer_id=1, price=6104))] == [R.PRICE_OUT_OF_BAND]
    assert [type(e) for e in desk.do(offer(offer_id=1, price=6103))] == [s.BlockOfferPosted]
    # tick 5: the ladder's top rounded down to the tick
    assert [e.reason for e in desk.do(offer(offer_id=2, symbol=V25, price=6105))] == [
        R.PRICE_OUT_OF_BAND
    ]
    assert [type(e) for e in desk.do(offer(offer_id=2, symbol=V25, price=6100))] == [
        s.BlockOfferPosted
    ]
    desk.ok(apply_auction(1, D, V24, 1_000))
    events = desk.do(announce(1))
    assert (events[0].floor_price_ticks, events[0].cap_price_ticks) == (6000, 6199)
    desk.ok(bid(1, 1, A, 6199, 400))
    events = desk.do(s.ClearAuction(auction_id=1))
    assert events[0] == s.AuctionTrade(events[0].seq, 0, 1, 1, V24, 6199, 400, 1, A, D, 0)

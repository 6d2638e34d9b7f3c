"""Trading-mode scenarios (docs/TRADING_MODES.md) against both engines: one-way auctions.

Refusals, then announcing, bidding, clearing (uniform, pay-as-bid) and cancelling.
The market, the desk and the command builders are ``tests/modes/desk.py``'s; every command
goes through ``step`` (invariants and the event round trip after each)."""

from __future__ import annotations

import pytest

from engine.core import schema as s
from engine.core import snapshot as snap
from tests.conftest import DATE1, DATE2
from tests.modes.desk import (
    ACCOUNTS,
    AUTH,
    BUY,
    C_,
    CASH,
    CCER,
    CCERB,
    CLOSE_MINUS_BAND,
    FEE,
    HELD,
    PAY_AS_BID,
    PREVIOUS_CLOSE,
    SELL,
    SYMBOLS,
    TO_AFTERNOON,
    UNIFORM,
    UNOPENED,
    V24,
    V25,
    A,
    B,
    D,
    Desk,
    R,
    announce,
    apply_auction,
    bid,
    fee,
    freeze,
    key,
    listed,
    modes_market,
    offer,
    open_desk,
    order,
    run_setup,
    withdraw_all_but,
)

# ============================================================================================
# One-way auctions: refusals
# ============================================================================================

AUCTIONS = [
    apply_auction(1, C_, V24, 1_000),  # applied only
    apply_auction(2, C_, V24, 2_000),
    announce(2),  # bidding: floor 6000, cap 6199
    apply_auction(3, D, CCER, 1_000),
    announce(3, CLOSE_MINUS_BAND),  # bidding: 4510 … 5510
    bid(1, 2, A, 6000, 100),
]


def _apply_reject(c: s.ApplyAuction, reason: R) -> tuple:
    return (43, c.auction_id, 0, c.account, listed(c.instrument), 0, c.qty_t, reason)


APPLY_REFUSALS = [
    ("unknown-instrument", apply_auction(1, ACCOUNTS, "NOPE", 0), R.UNKNOWN_INSTRUMENT),
    ("unopened-account", apply_auction(1, UNOPENED, V24, 0), R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", apply_auction(1, ACCOUNTS, CCERB, 0), R.UNKNOWN_ACCOUNT),
    ("no-auction-mode", apply_auction(1, C_, V25, 0), R.MODE_NOT_ALLOWED),
    ("below-auction-minimum", apply_auction(1, C_, V24, 999), R.INVALID_QUANTITY),
    ("below-auction-minimum-b", apply_auction(0, C_, CCERB, 499), R.INVALID_QUANTITY),
    ("qty-above-10-12", apply_auction(1, C_, V24, 10**12 + 1), R.INVALID_QUANTITY),
    ("off-lot", apply_auction(0, C_, CCER, 1_005), R.QUANTITY_OFF_LOT),
    ("auction-id-zero", apply_auction(0, C_, V24, HELD + 1), R.INVALID_ORDER_ID),
    ("auction-id-negative", apply_auction(-2, C_, V24, 1_000), R.INVALID_ORDER_ID),
    ("duplicate-applied", apply_auction(1, D, CCER, HELD + 10), R.DUPLICATE_ORDER_ID),
    ("duplicate-bidding", apply_auction(3, A, V24, 1_000), R.DUPLICATE_ORDER_ID),
    ("authority", apply_auction(9, AUTH, V24, 1_000), R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", apply_auction(9, FEE, CCERB, 1_000), R.ACCOUNT_MAY_NOT_TRADE),
    ("too-much", apply_auction(9, A, V24, HELD + 1), R.INSUFFICIENT_ALLOWANCES),
    (
        "lot-of-another-auction-locked",
        apply_auction(9, C_, V24, HELD - 2_999),
        R.INSUFFICIENT_ALLOWANCES,
    ),
]

ANNOUNCE_REFUSALS = [
    ("unknown", announce(9, floor_rule=0, end=77), "?", R.UNKNOWN_AUCTION),
    ("already-bidding", announce(3, floor_rule=0, end=77), CCER, R.AUCTION_STATE),
    ("floor-rule-zero", announce(1, floor_rule=0, clearing=0), V24, R.INVALID_AUCTION_TERMS),
    ("floor-rule-three", announce(1, floor_rule=3, end=77), V24, R.INVALID_AUCTION_TERMS),
    ("clearing-zero", announce(1, clearing=0, end=77), V24, R.INVALID_AUCTION_TERMS),
    ("clearing-three", announce(1, clearing=3, end=77), V24, R.INVALID_AUCTION_TERMS),
    (
        "window-ends-before-it-starts",
        announce(1, start=1_000, end=999),
        V24,
        R.INVALID_AUCTION_TERMS,
    ),
]

BID_REFUSALS = [
    ("unknown-auction", bid(5, 9, ACCOUNTS, 0, 0), "?", R.UNKNOWN_AUCTION),
    ("not-announced", bid(5, 1, ACCOUNTS, 0, 0), V24, R.AUCTION_STATE),
    ("unopened-account", bid(5, 2, UNOPENED, 0, 0), V24, R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", bid(5, 2, ACCOUNTS, 0, 0), V24, R.UNKNOWN_ACCOUNT),
    ("seller", bid(5, 2, C_, 0, 0), V24, R.SELLER_MAY_NOT_BID),
    ("qty-zero", bid(5, 2, B, 0, 0), V24, R.INVALID_QUANTITY),
    ("qty-above-the-lot", bid(5, 2, B, 6000, 2_001), V24, R.INVALID_QUANTITY),
    ("qty-below-the-instruments-lot", bid(5, 3, B, 4512, 5), CCER, R.INVALID_QUANTITY),
    ("qty-off-lot", bid(5, 3, B, 4512, 15), CCER, R.QUANTITY_OFF_LOT),
    ("price-off-tick", bid(0, 3, B, 4512, 10), CCER, R.PRICE_OFF_TICK),
    ("price-zero", bid(0, 2, B, 0, 10), V24, R.PRICE_OFF_TICK),
    ("below-the-floor", bid(0, 2, B, 5999, 10), V24, R.PRICE_OUT_OF_BAND),
    ("above-the-cap", bid(0, 2, B, 6200, 10), V24, R.PRICE_OUT_OF_BAND),
    ("below-the-floor-tick-5", bid(0, 3, B, 4505, 10), CCER, R.PRICE_OUT_OF_BAND),
    ("above-the-cap-tick-5", bid(0, 3, B, 5515, 10), CCER, R.PRICE_OUT_OF_BAND),
    ("bid-id-zero", bid(0, 2, AUTH, 6000, 10), V24, R.INVALID_ORDER_ID),
    ("bid-id-negative", bid(-1, 2, B, 6000, 10), V24, R.INVALID_ORDER_ID),
    ("duplicate-in-another-auction", bid(1, 3, AUTH, 5000, 10), CCER, R.DUPLICATE_ORDER_ID),
    ("duplicate-in-the-same-auction", bid(1, 2, B, 6000, 10), V24, R.DUPLICATE_ORDER_ID),
    ("authority", bid(5, 2, AUTH, 6000, 10), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("fee-account", bid(5, 2, FEE, 6000, 10), V24, R.ACCOUNT_MAY_NOT_TRADE),
    ("cash", bid(5, 2, B, 6199, 2_000), V24, None),  # affordable: accepted (control)
]


@pytest.mark.parametrize("command, reason", [pytest.param(*c[1:], id=c[0]) for c in APPLY_REFUSALS])
def test_apply_auction_refusal(desk: Desk, command: s.ApplyAuction, reason: R) -> None:
    run_setup(desk, AUCTIONS)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    assert events == [s.AuctionCommandRejected(events[0].seq, 0, *_apply_reject(command, reason))]
    assert desk.hash() == before and desk.views() == views


@pytest.mark.parametrize(
    "command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in ANNOUNCE_REFUSALS]
)
def test_announce_auction_refusal(desk: Desk, command, echo: str, reason: R) -> None:
    run_setup(desk, AUCTIONS)
    before = desk.hash()
    events = desk.do(command)
    assert events == [
        s.AuctionCommandRejected(events[0].seq, 0, 44, command.auction_id, 0, 0, echo, 0, 0, reason)
    ]
    assert desk.hash() == before


@pytest.mark.parametrize(
    "command, echo, reason", [pytest.param(*c[1:], id=c[0]) for c in BID_REFUSALS]
)
def test_auction_bid_refusal(desk: Desk, command, echo: str, reason: R | None) -> None:
    run_setup(desk, AUCTIONS)
    before, views = desk.hash(), desk.views()
    events = desk.do(command)
    if reason is None:
        assert [type(e) for e in events] == [s.AuctionBidAccepted]
        return
    assert events == [
        s.AuctionCommandRejected(
            events[0].seq,
            0,
            45,
            command.auction_id,
            command.bid_id,
            command.account,
            echo,
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.hash() == before and desk.views() == views


@pytest.mark.parametrize(
    "setup, command, reason",
    [
        ([freeze(B)], bid(5, 2, B, 6000, 10), R.ACCOUNT_FROZEN),
        ([withdraw_all_but(B, 600_000 - 1)], bid(5, 2, B, 6000, 100), R.INSUFFICIENT_CASH),
        ([withdraw_all_but(B, 600_000 - 1), freeze(B)], bid(5, 2, B, 6000, 100), R.ACCOUNT_FROZEN),
        (
            [s.WithdrawCash(key=key(1), account=A, amount_fen=CASH - 600_000)],
            bid(5, 2, A, 6000, 10),
            R.INSUFFICIENT_CASH,
        ),  # A's first bid locks the rest
        ([freeze(C_)], apply_auction(9, C_, CCERB, 500), R.ACCOUNT_FROZEN),
    ],
    ids=["frozen", "cash", "frozen-before-cash", "cash-locked-by-a-bid", "apply-frozen"],
)
def test_auction_ledger_refusals(desk: Desk, setup, command, reason: R) -> None:
    run_setup(desk, AUCTIONS + setup)
    before = desk.hash()
    assert [e.reason for e in desk.do(command)] == [reason]
    assert desk.hash() == before


@pytest.mark.parametrize(
    "command, echo, reason",
    [
        (s.ClearAuction(auction_id=9), "?", R.UNKNOWN_AUCTION),
        (s.ClearAuction(auction_id=0), "?", R.UNKNOWN_AUCTION),
        (s.ClearAuction(auction_id=1), V24, R.AUCTION_STATE),  # applied, never announced
        (s.CancelAuction(auction_id=9), "?", R.UNKNOWN_AUCTION),
    ],
)
def test_clear_and_cancel_auction_refusal(desk: Desk, command, echo: str, reason: R) -> None:
    run_setup(desk, AUCTIONS)
    before = desk.hash()
    events = desk.do(command)
    tag = type(command).__struct_config__.tag
    assert events == [
        s.AuctionCommandRejected(
            events[0].seq, 0, tag, command.auction_id, 0, 0, echo, 0, 0, reason
        )
    ]
    assert desk.hash() == before


def test_full_auction_and_bid_tables(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(auctions=2, auction_bids=3)))
    run_setup(
        desk,
        [
            apply_auction(1, C_, V24),
            apply_auction(2, D, CCER),
            announce(1),
            announce(2),
            bid(1, 1, A, 6000, 10),
            bid(2, 2, A, 5010, 10),
            bid(3, 2, B, 5010, 10),
        ],
    )
    before = desk.hash()
    for command, reason in [
        (apply_auction(3, B, V24), R.BOOK_FULL),
        (apply_auction(3, B, V24, HELD + 1), R.BOOK_FULL),  # before the ledger
        (apply_auction(2, B, V24), R.DUPLICATE_ORDER_ID),
        (bid(4, 1, B, 6000, 10), R.BOOK_FULL),  # bids of every auction count
        (bid(4, 1, B, 6000, HELD * 1_000), R.INVALID_QUANTITY),  # quantity comes first
        (bid(3, 1, D, 6000, 10), R.DUPLICATE_ORDER_ID),
    ]:
        assert [e.reason for e in desk.do(command)] == [reason], command
        assert desk.hash() == before
    desk.ok(s.CancelAuction(auction_id=2))  # releases two bids and one auction
    run_setup(desk, [apply_auction(3, B, V24), bid(2, 1, B, 6000, 10), bid(3, 1, D, 6000, 10)])
    assert [e.reason for e in desk.do(bid(4, 1, B, 6000, 10))] == [R.BOOK_FULL]


def test_fees_need_an_open_fee_account_for_block_and_auction(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market(buy_bps=0, sell_bps=5)), open_fee_account=False)
    desk.ok(TO_AFTERNOON)
    for command in (
        offer(qty=HELD + 1),
        offer(side=BUY, qty=10**6),
        apply_auction(1, C_, V24, HELD + 1),
    ):
        events = desk.do(command)
        assert [e.reason for e in events] == [R.FEE_ACCOUNT_NOT_OPEN], command


# ============================================================================================
# One-way auctions: announcing, bidding, clearing, cancelling
# ============================================================================================


def test_apply_locks_the_lot_and_is_not_bound_to_the_session(engine_cls) -> None:
    desk = open_desk(engine_cls(modes_market()), open_session=False)  # every session closed
    events = desk.do(apply_auction(7, C_, CCER, 2_000))
    assert events == [s.AuctionApplied(events[0].seq, 0, 7, C_, CCER, 2_000)]
    assert desk.held(C_, CCER) == (HELD - 2_000, 2_000, 0, 0)
    assert desk.modes().auctions == [
        snap.AuctionSnapshot(7, C_, 2, 2_000, s.AuctionState.APPLIED, 0, 0, 0, 0, 0, 0, [])
    ]
    events = desk.do(announce(7, CLOSE_MINUS_BAND, PAY_AS_BID, 5, 5))  # an empty window is fine
    assert events == [
        s.AuctionAnnounced(
            events[0].seq, 0, 7, C_, CCER, 2_000, 4510, 5510, CLOSE_MINUS_BAND, PAY_AS_BID, 5, 5
        )
    ]
    events = desk.do(bid(1, 7, A, 4510, 30))
    assert events == [s.AuctionBidAccepted(events[0].seq, 0, 1, 7, A, CCER, 4510, 30)]
    events = desk.do(s.ClearAuction(auction_id=7))
    assert [type(e) for e in events] == [s.AuctionTrade, s.AuctionCleared]
    desk.do(s.HaltInstrument(instrument=CCER))  # refused: closed; auctions do not care
    assert [type(e) for e in desk.do(apply_auction(7, C_, CCER, 1_000))] == [s.AuctionApplied]


@pytest.mark.parametrize(
    "symbol, floor_rule, floor, cap",
    [
        (V24, PREVIOUS_CLOSE, 6000, 6199),  # 6000 x 1.0333 = 6199.8 -> 6199
        (V24, CLOSE_MINUS_BAND, 5801, 6199),  # 6000 x 0.9667 = 5800.2 -> 5801
        (CCER, PREVIOUS_CLOSE, 5010, 5510),  # 5511 -> 5510 (tick 5)
        (CCER, CLOSE_MINUS_BAND, 4510, 5510),  # 4509 -> 4510 (tick 5)
        (CCERB, PREVIOUS_CLOSE, 5000, 5500),
        (CCERB, CLOSE_MINUS_BAND, 4500, 5500),
    ],
)
def test_announce_sets_floor_and_cap_inward_to_the_tick(
    desk: Desk, symbol: str, floor_rule, floor: int, cap: int
) -> None:
    desk.ok(apply_auction(4, D, symbol, 1_000))
    for clearing in (UNIFORM, PAY_AS_BID):
        if clearing == PAY_AS_BID:
            desk.ok(s.CancelAuction(auction_id=4))
            desk.ok(apply_auction(4, D, symbol, 1_000))
        events = desk.do(announce(4, floor_rule, clearing, 1_000, 2_000))
        assert events == [
            s.AuctionAnnounced(
                events[0].seq,
                0,
                4,
                D,
                symbol,
                1_000,
                floor,
                cap,
                floor_rule,
                clearing,
                1_000,
                2_000,
            )
        ]
        tick = 5 if symbol == CCER else 1
        assert [type(e) for e in desk.do(bid(1, 4, A, floor, 10))] == [s.AuctionBidAccepted]
        assert [type(e) for e in desk.do(bid(2, 4, A, cap, 10))] == [s.AuctionBidAccepted]
        for price in (floor - tick, cap + tick):
            assert [e.reason for e in desk.do(bid(3, 4, A, price, 10))] == [R.PRICE_OUT_OF_BAND]
        saved = [a for a in desk.modes().auctions if a.auction_id == 4]
        assert saved == [
            snap.AuctionSnapshot(
                4,
                D,
                SYMBOLS.index(symbol),
                1_000,
                s.AuctionState.BIDDING,
                floor,
                cap,
                clearing,
                floor_rule,
                1_000,
                2_000,
                [snap.BidSnapshot(1, A, floor, 10), snap.BidSnapshot(2, A, cap, 10)],
            )
        ]


def test_announce_uses_the_reference_price_at_announcement(desk: Desk) -> None:
    desk.ok(apply_auction(1, D, V24, 1_000))
    run_setup(
        desk,
        [
            order(1, B, SELL, 10, 6100),
            order(2, A, BUY, 10, 6100),
            s.CloseSession(trading_date=DATE1),
        ],
    )
    events = desk.do(announce(1, CLOSE_MINUS_BAND))  # reference 6100 now
    # 6100 x 0.9667 = 5896.87 -> 5897; 6100 x 1.0333 = 6303.13 -> 6303
    assert (events[0].floor_price_ticks, events[0].cap_price_ticks) == (5897, 6303)


def test_bids_lock_their_need_until_the_auction_ends(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(desk, [apply_auction(1, C_, V24, 2_000), announce(1)])
    desk.ok(bid(1, 1, A, 6100, 500))
    desk.ok(bid(2, 1, A, 6000, 300))
    need = 500 * 6100 + fee(500 * 6100, 30) + 300 * 6000 + fee(300 * 6000, 30)
    assert desk.cash(A) == (CASH - need, need)
    # a bid id is free for an order, a block offer, an auction: separate id spaces
    run_setup(desk, [order(1, A, BUY, 10, 5900), apply_auction(2, A, V24, 1_000)])


def test_uniform_clearing_with_a_marginal_bid_and_time_priority(desk: Desk) -> None:
    """Lot 1,000 t of CCER.  Ranking: 52.00 (400), 50.00 (400, earlier), 50.00 (300, later;
    fills 200 of 300), 48.00 and 45.10 receive nothing.  Uniform price: 50.00."""
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1, CLOSE_MINUS_BAND),
            bid(11, 1, A, 5000, 400),
            bid(12, 1, B, 5200, 400),
            bid(13, 1, D, 5000, 300),
            bid(14, 1, A, 4800, 200),
            bid(15, 1, B, 4510, 100),
        ],
    )
    assert desk.cash(A) == (CASH - 2_000_000 - 960_000, 2_960_000)
    events = desk.do(s.ClearAuction(auction_id=1))
    seq = events[0].seq
    assert events == [
        s.AuctionTrade(seq, 0, 1, 1, CCER, 5000, 400, 12, B, C_, 0),
        s.AuctionTrade(seq, 0, 2, 1, CCER, 5000, 400, 11, A, C_, 0),
        s.AuctionTrade(seq, 0, 3, 1, CCER, 5000, 200, 13, D, C_, 100),
        s.AuctionBidReleased(seq, 0, 14, 1, A, CCER, 4800, 200),
        s.AuctionBidReleased(seq, 0, 15, 1, B, CCER, 4510, 100),
        s.AuctionCleared(seq, 0, 1, C_, CCER, UNIFORM, 5000, 1_000, 0, 5_000_000, 3, 5),
    ]
    assert desk.cash(A) == (CASH - 2_000_000, 0) and desk.held(A, CCER) == (HELD, 0, 0, 400)
    assert desk.cash(B) == (CASH - 2_000_000, 0) and desk.held(B, CCER) == (HELD, 0, 0, 400)
    assert desk.cash(D) == (CASH - 1_000_000, 0) and desk.held(D, CCER) == (HELD, 0, 0, 200)
    assert desk.cash(C_) == (CASH + 5_000_000, 0) and desk.held(C_, CCER) == (HELD - 1_000, 0, 0, 0)
    assert desk.modes().auctions == []
    assert desk.modes().instruments[2] == (0, 0, 0, 0, 1_000, 5_000_000, 3)
    # the auction's id and the bids' ids are free again
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1),
            bid(11, 1, A, 5010, 10),
            bid(15, 1, B, 5010, 10),
        ],
    )


def test_pay_as_bid_with_fees_and_an_unsold_part(fee_desk: Desk) -> None:
    desk = fee_desk
    run_setup(
        desk,
        [
            apply_auction(1, D, V24, 2_000),
            announce(1, PREVIOUS_CLOSE, PAY_AS_BID),
            bid(1, 1, A, 6100, 500),
            bid(2, 1, B, 6199, 700),
            bid(3, 1, C_, 6000, 300),
            bid(4, 1, A, 6100, 100),
        ],
    )
    events = desk.do(s.ClearAuction(auction_id=1))
    seq = events[0].seq
    fills = [(2, B, 6199, 700), (1, A, 6100, 500), (4, A, 6100, 100), (3, C_, 6000, 300)]
    value = sum(price * qty for _, _, price, qty in fills)
    assert value == 9_799_300
    assert events == [
        *[
            s.AuctionTrade(seq, 0, n + 1, 1, V24, price, qty, bid_id, buyer, D, 0)
            for n, (bid_id, buyer, price, qty) in enumerate(fills)
        ],
        s.AuctionCleared(seq, 0, 1, D, V24, PAY_AS_BID, 6000, 1_600, 400, value, 4, 4),
    ]
    buy_fees = {
        account: sum(fee(p * q, 30) for _, b, p, q in fills if b == account)
        for account in (A, B, C_)
    }
    assert desk.cash(A) == (CASH - 600 * 6100 - buy_fees[A], 0)
    assert desk.cash(B) == (CASH - 700 * 6199 - buy_fees[B], 0)
    assert desk.cash(C_) == (CASH - 300 * 6000 - buy_fees[C_], 0)
    sell_fees = sum(fee(p * q, 20) for _, _, p, q in fills)  # per fill, rounded down each
    assert desk.cash(D) == (CASH + value - sell_fees, 0)
    assert desk.cash(FEE) == (sum(buy_fees.values()) + sell_fees, 0)
    assert desk.held(D) == (HELD - 1_600, 0, 0, 0)  # the unsold 400 t came back
    assert desk.held(A) == (HELD, 0, 0, 600)


def test_uniform_pays_the_clearing_price_and_releases_the_rest_of_the_lock(fee_desk) -> None:
    desk = fee_desk
    run_setup(
        desk,
        [
            apply_auction(1, D, V24, 1_000),
            announce(1),
            bid(1, 1, A, 6199, 600),
            bid(2, 1, B, 6050, 600),
        ],
    )
    events = desk.do(s.ClearAuction(auction_id=1))
    seq = events[0].seq
    assert events == [
        s.AuctionTrade(seq, 0, 1, 1, V24, 6050, 600, 1, A, D, 0),
        s.AuctionTrade(seq, 0, 2, 1, V24, 6050, 400, 2, B, D, 200),
        s.AuctionCleared(seq, 0, 1, D, V24, UNIFORM, 6050, 1_000, 0, 6_050_000, 2, 2),
    ]
    assert desk.cash(A) == (CASH - 3_630_000 - fee(3_630_000, 30), 0)
    assert desk.cash(B) == (CASH - 2_420_000 - fee(2_420_000, 30), 0)
    sell_fees = fee(3_630_000, 20) + fee(2_420_000, 20)
    assert desk.cash(D) == (CASH + 6_050_000 - sell_fees, 0)


def test_an_auction_without_bids_returns_the_lot(desk: Desk) -> None:
    run_setup(desk, [apply_auction(1, D, V24, 1_000), announce(1)])
    events = desk.do(s.ClearAuction(auction_id=1))
    assert events == [s.AuctionCleared(events[0].seq, 0, 1, D, V24, UNIFORM, 0, 0, 1_000, 0, 0, 0)]
    assert desk.held(D) == (HELD, 0, 0, 0)


def test_cancel_auction_releases_everything_in_arrival_order(desk: Desk) -> None:
    start = desk.hash()
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1, CLOSE_MINUS_BAND),
            bid(11, 1, A, 5000, 400),
            bid(12, 1, B, 5200, 400),
            bid(13, 1, A, 5100, 100),
        ],
    )
    events = desk.do(s.CancelAuction(auction_id=1))
    seq = events[0].seq
    assert events == [
        s.AuctionBidReleased(seq, 0, 11, 1, A, CCER, 5000, 400),
        s.AuctionBidReleased(seq, 0, 12, 1, B, CCER, 5200, 400),
        s.AuctionBidReleased(seq, 0, 13, 1, A, CCER, 5100, 100),
        s.AuctionCancelled(seq, 0, 1, C_, CCER, 1_000, 3),
    ]
    assert desk.hash() == start  # every lock released, nothing left behind
    desk.ok(apply_auction(1, D, V24, 1_000))
    events = desk.do(s.CancelAuction(auction_id=1))  # also while only applied
    assert events == [s.AuctionCancelled(events[0].seq, 0, 1, D, V24, 1_000, 0)]
    assert desk.hash() == start


def test_auction_volumes_count_in_the_session_that_closes_next(desk: Desk) -> None:
    run_setup(
        desk,
        [
            apply_auction(1, C_, CCER, 1_000),
            announce(1),
            bid(1, 1, A, 5100, 600),
            s.CloseSession(trading_date=DATE1),
        ],
    )
    events = desk.do(s.ClearAuction(auction_id=1))  # while every session is closed
    assert [type(e) for e in events] == [s.AuctionTrade, s.AuctionCleared]
    desk.ok(s.OpenSession(trading_date=DATE2))
    assert desk.held(A, CCER) == (HELD + 600, 0, 0, 0)  # settled T+1 by CCER's session
    events = desk.do(s.CloseSession(trading_date=DATE2))
    volumes = {e.instrument: e for e in events if type(e) is s.SessionModeVolumes}
    assert volumes[CCER] == s.SessionModeVolumes(
        events[0].seq, 0, CCER, DATE2, 0, 0, 0, 600, 3_060_000, 1
    )
    assert volumes[V24] == s.SessionModeVolumes(events[0].seq, 0, V24, DATE2, 0, 0, 0, 0, 0, 0)
    closed = next(e for e in events if type(e) is s.SessionClosed and e.instrument == CCER)
    assert (closed.volume_t, closed.close_ticks) == (0, 5010)  # listing prices untouched

"""The compiled trading modes outside the order book: block offers and one-way auctions.

Theory of operation
-------------------
Block offers, auctions and auction bids live in three slot tables of the engine's state array
(``engine.core.compiled.layout``: ``BO_*``, ``AU_*``, ``BID_*``).  A row is free when its id (column 0 of
every table) is 0; a table is used up to its high-water mark and rows are found by a linear
scan below it.  The tables are small (``capacity.block_offers`` ~ 1,000 offers, 64 auctions, a
few thousand bids) and touched only by block and auction commands, which are rare next to
orders, so a scan costs less than the hash table the order book needs would.  A free row is
all zeros, so a reused row carries nothing of its previous owner.

Every posted offer, applied lot and accepted bid holds a ledger lock (``engine.core.compiled.ledger``) exactly
as an order of the same side, quantity and price would; it is released when the offer or bid
goes and consumed by ``ledger.settle`` when it trades, so fees and T+1 work as for order
fills.  With the registry off (``st[M_REGISTRY] == 0``) every ledger step is skipped.

Bids rank by price, highest first, then by arrival: each bid gets the next number of the
engine's arrival counter (``M_NEXT_ARRIVAL``) and clearing sorts stably, first by arrival and
then by price.  The rules are those of ``docs/TRADING_MODES.md``; ``engine/core/reference/modes.py``
is their plain-Python statement.  All functions run unchanged under ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import numpy as np

from engine.core.compiled import ledger
from engine.core.compiled.layout import *  # noqa: F403 - the kernels' shared vocabulary
from engine.core.compiled.ledger import emit
from engine.core.records import (
    AUCTION_ANNOUNCED,
    AUCTION_BID_ACCEPTED,
    AUCTION_BID_RELEASED,
    AUCTION_CANCELLED,
    AUCTION_CLEARED,
    AUCTION_COMMAND_REJECTED,
    AUCTION_TRADE,
    BLOCK_COMMAND_REJECTED,
    BLOCK_OFFER_POSTED,
    BLOCK_TRADE_EXECUTED,
    COMPOSITE_PRICE,
    SESSION_MODE_VOLUMES,
)

DEPENDENCIES_DIGEST = "198df066489c01be"
"""See ``engine.numba_cache``: the digest of the files this module compiles in."""

NO_COUNTERPARTY = -1
UNKNOWN = -2
"""Instrument index of an event about an unknown offer or auction (shown as "?")."""

# ------------------------------------------------------------------------------------------
# phases, bands, accounts and the ledger (skipped with the registry off)
# ------------------------------------------------------------------------------------------


@kernel
def phase_modes(st, ins):
    """The instrument's modes that its current phase allows, whatever its session state."""
    io = st[M_OFF_INST] + ins * IF
    mask = (st[io + I_PHASE_MASKS] >> (4 * st[io + I_PHASE])) & 15
    return st[io + I_MODES] & mask


@kernel
def effective_modes(st, ins):
    """The modes usable now: the phase's modes while the session is OPEN, else none."""
    if st[st[M_OFF_INST] + ins * IF + I_STATE] != OPEN:
        return 0
    return phase_modes(st, ins)


@kernel
def band_edges(reference, bps, tick):
    """``engine.core.market.band_edges``: both edges inward to the tick, the lower at least one."""
    upper = reference * (10_000 + bps) // 10_000
    upper -= upper % tick
    lower = -((-reference * (10_000 - bps)) // 10_000)
    lower += (-lower) % tick
    return max(lower, tick), upper


@kernel
def account_known(st, acct):
    """Open (registry on) or merely in range (registry off)."""
    if st[M_REGISTRY] != 0:
        return ledger.account_open(st, acct)
    return 0 <= acct < st[M_N_ACCOUNTS]


@kernel
def _ledger_reason(st, acct, ins, side, qty, price):
    if st[M_REGISTRY] == 0:
        return 0
    return ledger.order_reason(st, acct, ins, side, qty, price)


@inheriting
def _lock(st, acct, ins, side, qty, price):
    if st[M_REGISTRY] != 0:
        ledger.lock(st, acct, ins, side, qty, price)


@inheriting
def _unlock(st, acct, ins, side, qty, price):
    if st[M_REGISTRY] != 0:
        ledger.unlock(st, acct, ins, side, qty, price)


@kernel
def next_trade_id(st):
    """Trade ids run 1, 2, 3 ... across instruments and modes (one sequence, one place)."""
    trade_id = st[M_NEXT_TRADE]
    st[M_NEXT_TRADE] = trade_id + 1
    return trade_id


# ------------------------------------------------------------------------------------------
# slot tables (column 0 is the id in every table; a free row is all zeros)
# ------------------------------------------------------------------------------------------


@inheriting
def find_row(st, off_key, width, hwm_key, ident):
    """Row of the live entry ``ident`` of a table, or -1 (ids are positive)."""
    if ident <= 0:
        return -1
    base = st[off_key]
    for row in range(st[hwm_key]):
        if st[base + row * width] == ident:
            return row
    return -1


@inheriting
def _take_row(st, off_key, width, hwm_key):
    """A free row: the first below the high-water mark, else a new one (capacity is checked
    by the caller)."""
    base = st[off_key]
    for row in range(st[hwm_key]):
        if st[base + row * width] == 0:
            return row
    row = st[hwm_key]
    st[hwm_key] = row + 1
    return row


@inheriting
def _free_row(st, off_key, width, row):
    base = st[off_key] + row * width
    for column in range(width):
        st[base + column] = 0


@allocating
def rows_by_id(st, off_key, width, hwm_key, column, value):
    """Live rows, ascending id; with ``column >= 0`` only those whose ``column`` is ``value``."""
    base = st[off_key]
    rows = np.empty(st[hwm_key], dtype=np.int64)
    ids = np.empty(st[hwm_key], dtype=np.int64)
    count = 0
    for row in range(st[hwm_key]):
        at = base + row * width
        if st[at] == 0 or (column >= 0 and st[at + column] != value):
            continue
        rows[count] = row
        ids[count] = st[at]
        count += 1
    return ledger.in_key_order(rows[:count], ids[:count])


@inheriting
def live_auctions(st):
    count = 0
    base = st[M_OFF_AUCTIONS]
    for row in range(st[M_AUCTIONS_HWM]):
        if st[base + row * AUF + AU_ID] != 0:
            count += 1
    return count


# ------------------------------------------------------------------------------------------
# block offers
# ------------------------------------------------------------------------------------------


@inheriting
def _block_rejected(out, n, seq, ts, command, oid, acct, ins, side, price, qty, reason):
    n = emit(out, n, EV_BLOCK_REJECTED, seq, ts, ins, oid, acct, side, price, qty, reason)
    out[n - 1, BLOCK_COMMAND_REJECTED.command] = command
    return n


@inheriting
def _offer_reason(st, oid, price, qty, counterparty, acct, ins, side):
    """The first failing check of SubmitBlockOffer, in the documented order; 0 if none."""
    if ins < 0 or ins >= st[M_N_INST]:
        return R_UNKNOWN_INSTRUMENT
    io = st[M_OFF_INST] + ins * IF
    if st[io + I_STATE] != OPEN:
        return R_HALTED if st[io + I_STATE] == HALTED else R_SESSION_CLOSED
    if not account_known(st, acct):
        return R_UNKNOWN_ACCOUNT
    if side != BUY and side != SELL:
        return R_ORDER_TYPE
    if st[io + I_MODES] & MODE_BLOCK == 0:
        return R_MODE_NOT_ALLOWED
    if effective_modes(st, ins) & MODE_BLOCK == 0:
        return R_MODE_NOT_IN_PHASE
    if qty < st[io + I_BLOCK_MINQ] or qty > QTY_MAX_T:
        return R_QUANTITY
    if qty % st[io + I_LOT] != 0:
        return R_OFF_LOT
    if price <= 0 or price % st[io + I_TICK] != 0:
        return R_OFF_TICK
    if price < st[io + I_BLOCK_LO] or price > st[io + I_BLOCK_HI]:
        return R_OUT_OF_BAND
    if counterparty != NO_COUNTERPARTY and (
        not account_known(st, counterparty) or counterparty == acct
    ):
        return R_INVALID_COUNTERPARTY
    if oid <= 0:
        return R_ORDER_ID
    if find_row(st, M_OFF_BLOCK, BOF, M_BLOCK_HWM, oid) >= 0:
        return R_DUPLICATE
    if st[M_BLOCK_LIVE] >= st[M_BLOCK_CAP]:
        return R_BOOK_FULL
    return _ledger_reason(st, acct, ins, side, qty, price)


@inheriting
def _submit_offer(st, out, n, seq, ts, oid, price, qty, counterparty, acct, ins, side):
    reason = _offer_reason(st, oid, price, qty, counterparty, acct, ins, side)
    if reason != 0:
        return _block_rejected(
            out, n, seq, ts, K_BLOCK_OFFER, oid, acct, ins, side, price, qty, reason
        )
    row = _take_row(st, M_OFF_BLOCK, BOF, M_BLOCK_HWM)
    o = st[M_OFF_BLOCK] + row * BOF
    st[o + BO_ID] = oid
    st[o + BO_ACCOUNT] = acct
    st[o + BO_INST] = ins
    st[o + BO_SIDE] = side
    st[o + BO_PRICE] = price
    st[o + BO_QTY] = qty
    st[o + BO_COUNTERPARTY] = counterparty
    st[M_BLOCK_LIVE] += 1
    _lock(st, acct, ins, side, qty, price)
    n = emit(out, n, EV_BLOCK_POSTED, seq, ts, ins, oid, acct, side, price, qty, 0)
    out[n - 1, BLOCK_OFFER_POSTED.counterparty] = counterparty
    return n


@inheriting
def _accept_reason(st, row, acct, price, qty):
    if row < 0:
        return R_UNKNOWN_BLOCK
    o = st[M_OFF_BLOCK] + row * BOF
    ins = st[o + BO_INST]
    if st[st[M_OFF_INST] + ins * IF + I_STATE] == HALTED:
        return R_HALTED
    if not account_known(st, acct):
        return R_UNKNOWN_ACCOUNT
    counterparty = st[o + BO_COUNTERPARTY]
    if acct == st[o + BO_ACCOUNT] or (counterparty != NO_COUNTERPARTY and counterparty != acct):
        return R_NOT_COUNTERPARTY
    if price != st[o + BO_PRICE] or qty != st[o + BO_QTY]:
        return R_BLOCK_TERMS
    return _ledger_reason(st, acct, ins, 3 - st[o + BO_SIDE], qty, price)


@inheriting
def _accept_offer(st, out, n, seq, ts, oid, price, qty, acct):
    row = find_row(st, M_OFF_BLOCK, BOF, M_BLOCK_HWM, oid)
    reason = _accept_reason(st, row, acct, price, qty)
    if reason != 0:
        ins = UNKNOWN if row < 0 else st[st[M_OFF_BLOCK] + row * BOF + BO_INST]
        return _block_rejected(
            out, n, seq, ts, K_BLOCK_ACCEPT, oid, acct, ins, 0, price, qty, reason
        )
    o = st[M_OFF_BLOCK] + row * BOF
    ins, side, maker = st[o + BO_INST], st[o + BO_SIDE], st[o + BO_ACCOUNT]
    _lock(st, acct, ins, 3 - side, qty, price)
    if st[M_REGISTRY] != 0:  # both needs are locked at the offer price: settle as a fill
        buyer, seller = (maker, acct) if side == BUY else (acct, maker)
        ledger.settle(st, ins, buyer, qty, price, seller, price, qty)
    io = st[M_OFF_INST] + ins * IF
    st[io + I_BLOCK_VOL] += qty
    st[io + I_BLOCK_VAL] += price * qty
    st[io + I_BLOCK_TRADES] += 1
    _free_row(st, M_OFF_BLOCK, BOF, row)
    st[M_BLOCK_LIVE] -= 1
    n = emit(out, n, EV_BLOCK_TRADE, seq, ts, ins, oid, acct, side, price, qty, 0)
    out[n - 1, BLOCK_TRADE_EXECUTED.offer_account] = maker
    out[n - 1, BLOCK_TRADE_EXECUTED.trade_id] = next_trade_id(st)
    return n


@inheriting
def _withdraw_offer(st, out, n, seq, ts, row, reason):
    """Remove a live offer, release its lock and report ``BlockOfferCancelled(reason)``."""
    o = st[M_OFF_BLOCK] + row * BOF
    ins, acct, side = st[o + BO_INST], st[o + BO_ACCOUNT], st[o + BO_SIDE]
    price, qty = st[o + BO_PRICE], st[o + BO_QTY]
    n = emit(
        out, n, EV_BLOCK_CANCELLED, seq, ts, ins, st[o + BO_ID], acct, side, price, qty, reason
    )
    _unlock(st, acct, ins, side, qty, price)
    _free_row(st, M_OFF_BLOCK, BOF, row)
    st[M_BLOCK_LIVE] -= 1
    return n


@inheriting
def _cancel_offer(st, out, n, seq, ts, oid, acct):
    row = find_row(st, M_OFF_BLOCK, BOF, M_BLOCK_HWM, oid)
    if row < 0:
        return _block_rejected(
            out, n, seq, ts, K_BLOCK_CANCEL, oid, acct, UNKNOWN, 0, 0, 0, R_UNKNOWN_BLOCK
        )
    o = st[M_OFF_BLOCK] + row * BOF
    if st[o + BO_ACCOUNT] != acct:
        return _block_rejected(
            out, n, seq, ts, K_BLOCK_CANCEL, oid, acct, st[o + BO_INST], 0, 0, 0, R_NOT_OWNER
        )
    return _withdraw_offer(st, out, n, seq, ts, row, C_REQUESTED)


@allocating
def expire_offers(st, out, n, seq, ts, ins, reason):
    """Cancel every block offer of instrument ``ins``, ascending offer id (session end, or a
    phase that ends block trading)."""
    for row in rows_by_id(st, M_OFF_BLOCK, BOF, M_BLOCK_HWM, BO_INST, ins):
        n = _withdraw_offer(st, out, n, seq, ts, row, reason)
    return n


# ------------------------------------------------------------------------------------------
# auctions: apply, announce, bid
# ------------------------------------------------------------------------------------------


@inheriting
def _auction_rejected(out, n, seq, ts, command, auction_id, bid_id, acct, ins, price, qty, reason):
    n = emit(out, n, EV_AUCTION_REJECTED, seq, ts, ins, auction_id, acct, 0, price, qty, reason)
    out[n - 1, AUCTION_COMMAND_REJECTED.command] = command
    out[n - 1, AUCTION_COMMAND_REJECTED.bid_id] = bid_id
    return n


@inheriting
def _auction_at(st, row):
    return st[M_OFF_AUCTIONS] + row * AUF


@inheriting
def _apply_reason(st, auction_id, qty, acct, ins):
    if ins < 0 or ins >= st[M_N_INST]:
        return R_UNKNOWN_INSTRUMENT
    if not account_known(st, acct):
        return R_UNKNOWN_ACCOUNT
    io = st[M_OFF_INST] + ins * IF
    if st[io + I_MODES] & MODE_AUCTION == 0:
        return R_MODE_NOT_ALLOWED
    if qty < st[io + I_AUCTION_MINQ] or qty > QTY_MAX_T:
        return R_QUANTITY
    if qty % st[io + I_LOT] != 0:
        return R_OFF_LOT
    if auction_id <= 0:
        return R_ORDER_ID
    if find_row(st, M_OFF_AUCTIONS, AUF, M_AUCTIONS_HWM, auction_id) >= 0:
        return R_DUPLICATE
    if live_auctions(st) >= st[M_AUCTIONS_CAP]:
        return R_BOOK_FULL
    return _ledger_reason(st, acct, ins, SELL, qty, 0)


@inheriting
def _apply(st, out, n, seq, ts, auction_id, qty, acct, ins):
    reason = _apply_reason(st, auction_id, qty, acct, ins)
    if reason != 0:
        return _auction_rejected(
            out, n, seq, ts, K_AUCTION_APPLY, auction_id, 0, acct, ins, 0, qty, reason
        )
    a = _auction_at(st, _take_row(st, M_OFF_AUCTIONS, AUF, M_AUCTIONS_HWM))
    st[a + AU_ID] = auction_id
    st[a + AU_SELLER] = acct
    st[a + AU_INST] = ins
    st[a + AU_QTY] = qty
    st[a + AU_STATE] = AUCTION_STATE_APPLIED  # the terms stay 0 until the announcement
    _lock(st, acct, ins, SELL, qty, 0)
    return emit(out, n, EV_AUCTION_APPLIED, seq, ts, ins, auction_id, acct, 0, 0, qty, 0)


@inheriting
def _announce(st, out, n, seq, ts, auction_id, floor_rule, clearing, start_ns, end_ns):
    row = find_row(st, M_OFF_AUCTIONS, AUF, M_AUCTIONS_HWM, auction_id)
    a = _auction_at(st, row)
    reason = 0
    if row < 0:
        reason = R_UNKNOWN_AUCTION
    elif st[a + AU_STATE] != AUCTION_STATE_APPLIED:
        reason = R_AUCTION_STATE
    elif not FLOOR_CLOSE <= floor_rule <= FLOOR_MINUS_BAND:
        reason = R_AUCTION_TERMS
    elif not CLEAR_UNIFORM <= clearing <= CLEAR_PAY_AS_BID or end_ns < start_ns:
        reason = R_AUCTION_TERMS
    if reason != 0:
        ins = UNKNOWN if row < 0 else st[a + AU_INST]
        return _auction_rejected(
            out, n, seq, ts, K_AUCTION_ANNOUNCE, auction_id, 0, 0, ins, 0, 0, reason
        )
    ins = st[a + AU_INST]
    io = st[M_OFF_INST] + ins * IF
    reference = st[io + I_REF]
    # Not capped by the price ladder: bids never rest in it.
    lower, upper = band_edges(reference, st[io + I_AUCTION_BAND], st[io + I_TICK])
    st[a + AU_STATE] = AUCTION_STATE_BIDDING
    st[a + AU_FLOOR] = reference if floor_rule == FLOOR_CLOSE else lower
    st[a + AU_CAP] = upper
    st[a + AU_CLEARING] = clearing
    st[a + AU_FLOOR_RULE] = floor_rule
    st[a + AU_START] = start_ns
    st[a + AU_END] = end_ns
    n = emit(
        out,
        n,
        EV_AUCTION_ANNOUNCED,
        seq,
        ts,
        ins,
        auction_id,
        st[a + AU_SELLER],
        0,
        st[a + AU_FLOOR],
        st[a + AU_QTY],
        0,
    )
    out[n - 1, AUCTION_ANNOUNCED.cap_price_ticks] = upper
    out[n - 1, AUCTION_ANNOUNCED.floor_rule] = floor_rule
    out[n - 1, AUCTION_ANNOUNCED.clearing] = clearing
    out[n - 1, AUCTION_ANNOUNCED.window_start_ns] = start_ns
    out[n - 1, AUCTION_ANNOUNCED.window_end_ns] = end_ns
    return n


@inheriting
def _bid_reason(st, row, bid_id, price, qty, acct):
    """The first failing check of SubmitAuctionBid, in the documented order; 0 if none."""
    if row < 0:
        return R_UNKNOWN_AUCTION
    a = _auction_at(st, row)
    if st[a + AU_STATE] != AUCTION_STATE_BIDDING:
        return R_AUCTION_STATE
    if not account_known(st, acct):
        return R_UNKNOWN_ACCOUNT
    if acct == st[a + AU_SELLER]:
        return R_SELLER_BID
    io = st[M_OFF_INST] + st[a + AU_INST] * IF
    if qty < st[io + I_LOT] or qty > st[a + AU_QTY]:
        return R_QUANTITY
    if qty % st[io + I_LOT] != 0:
        return R_OFF_LOT
    if price <= 0 or price % st[io + I_TICK] != 0:
        return R_OFF_TICK
    if price < st[a + AU_FLOOR] or price > st[a + AU_CAP]:
        return R_OUT_OF_BAND
    if bid_id <= 0:
        return R_ORDER_ID
    if find_row(st, M_OFF_BIDS, BIDF, M_BIDS_HWM, bid_id) >= 0:
        return R_DUPLICATE
    if st[M_BIDS_LIVE] >= st[M_BIDS_CAP]:
        return R_BOOK_FULL
    return _ledger_reason(st, acct, st[a + AU_INST], BUY, qty, price)


@inheriting
def _bid(st, out, n, seq, ts, bid_id, auction_id, price, qty, acct):
    row = find_row(st, M_OFF_AUCTIONS, AUF, M_AUCTIONS_HWM, auction_id)
    a = _auction_at(st, row)
    reason = _bid_reason(st, row, bid_id, price, qty, acct)
    if reason != 0:
        ins = UNKNOWN if row < 0 else st[a + AU_INST]
        return _auction_rejected(
            out, n, seq, ts, K_AUCTION_BID, auction_id, bid_id, acct, ins, price, qty, reason
        )
    ins = st[a + AU_INST]
    b = st[M_OFF_BIDS] + _take_row(st, M_OFF_BIDS, BIDF, M_BIDS_HWM) * BIDF
    st[b + BID_ID] = bid_id
    st[b + BID_AUCTION] = auction_id
    st[b + BID_ACCOUNT] = acct
    st[b + BID_PRICE] = price
    st[b + BID_QTY] = qty
    st[b + BID_ARRIVAL] = st[M_NEXT_ARRIVAL]
    st[M_NEXT_ARRIVAL] += 1
    st[M_BIDS_LIVE] += 1
    st[a + AU_BIDS] += 1
    _lock(st, acct, ins, BUY, qty, price)
    n = emit(out, n, EV_BID_ACCEPTED, seq, ts, ins, bid_id, acct, 0, price, qty, 0)
    out[n - 1, AUCTION_BID_ACCEPTED.auction_id] = auction_id
    return n


# ------------------------------------------------------------------------------------------
# auctions: clear, cancel
# ------------------------------------------------------------------------------------------


@allocating
def bid_rows(st, auction_id):
    """Rows of the auction's bids in arrival order."""
    base = st[M_OFF_BIDS]
    rows = np.empty(st[M_BIDS_HWM], dtype=np.int64)
    arrivals = np.empty(st[M_BIDS_HWM], dtype=np.int64)
    count = 0
    for row in range(st[M_BIDS_HWM]):
        b = base + row * BIDF
        if st[b + BID_ID] != 0 and st[b + BID_AUCTION] == auction_id:
            rows[count] = row
            arrivals[count] = st[b + BID_ARRIVAL]
            count += 1
    return ledger.in_key_order(rows[:count], arrivals[:count])


@inheriting
def _release_bid(st, out, n, seq, ts, a, row):
    """``AuctionBidReleased``: the bid received nothing; its whole need returns."""
    b = st[M_OFF_BIDS] + row * BIDF
    ins, acct, price, qty = st[a + AU_INST], st[b + BID_ACCOUNT], st[b + BID_PRICE], st[b + BID_QTY]
    n = emit(out, n, EV_BID_RELEASED, seq, ts, ins, st[b + BID_ID], acct, 0, price, qty, 0)
    out[n - 1, AUCTION_BID_RELEASED.auction_id] = st[a + AU_ID]
    _unlock(st, acct, ins, BUY, qty, price)
    return n


@inheriting
def _fill_bid(st, out, n, seq, ts, a, row, price, fill):
    """``AuctionTrade``: settle ``fill`` at ``price`` against the bid's lock at its own price,
    then release the unfilled part."""
    b = st[M_OFF_BIDS] + row * BIDF
    ins, seller = st[a + AU_INST], st[a + AU_SELLER]
    acct, bid_price, qty = st[b + BID_ACCOUNT], st[b + BID_PRICE], st[b + BID_QTY]
    if st[M_REGISTRY] != 0:
        ledger.settle(st, ins, acct, qty, bid_price, seller, price, fill)
        ledger.unlock(st, acct, ins, BUY, qty - fill, bid_price)
    n = emit(out, n, EV_AUCTION_TRADE, seq, ts, ins, st[b + BID_ID], acct, 0, price, fill, 0)
    out[n - 1, AUCTION_TRADE.auction_id] = st[a + AU_ID]
    out[n - 1, AUCTION_TRADE.trade_id] = next_trade_id(st)
    out[n - 1, AUCTION_TRADE.seller_account] = seller
    out[n - 1, AUCTION_TRADE.bid_unfilled_t] = qty - fill
    return n


@inheriting
def _remove_auction(st, row, rows):
    """Free an auction's row and its bids' rows."""
    for bid_row in rows:
        _free_row(st, M_OFF_BIDS, BIDF, bid_row)
    st[M_BIDS_LIVE] -= rows.shape[0]
    _free_row(st, M_OFF_AUCTIONS, AUF, row)


@inheriting
def _operator_refusal(st, out, n, seq, ts, command, auction_id, row):
    """Clear and cancel: ``UNKNOWN_AUCTION``; clear also needs ``BIDDING``.  -1: no refusal."""
    reason = 0
    if row < 0:
        reason = R_UNKNOWN_AUCTION
    elif (
        command == K_AUCTION_CLEAR and st[_auction_at(st, row) + AU_STATE] != AUCTION_STATE_BIDDING
    ):
        reason = R_AUCTION_STATE
    if reason == 0:
        return -1
    ins = UNKNOWN if row < 0 else st[_auction_at(st, row) + AU_INST]
    return _auction_rejected(out, n, seq, ts, command, auction_id, 0, 0, ins, 0, 0, reason)


@allocating
def _clear(st, out, n, seq, ts, auction_id):
    row = find_row(st, M_OFF_AUCTIONS, AUF, M_AUCTIONS_HWM, auction_id)
    refused = _operator_refusal(st, out, n, seq, ts, K_AUCTION_CLEAR, auction_id, row)
    if refused >= 0:
        return refused
    a = _auction_at(st, row)
    arrival = bid_rows(st, auction_id)
    bo = st[M_OFF_BIDS]
    prices = np.empty(arrival.shape[0], dtype=np.int64)
    for i in range(arrival.shape[0]):
        prices[i] = -st[bo + arrival[i] * BIDF + BID_PRICE]
    ranking = ledger.in_key_order(arrival, prices)  # stable: time priority in a price
    fills = np.zeros(ranking.shape[0], dtype=np.int64)
    remaining = st[a + AU_QTY]
    clearing_price = 0
    for i in range(ranking.shape[0]):
        fills[i] = min(st[bo + ranking[i] * BIDF + BID_QTY], remaining)
        remaining -= fills[i]
        if fills[i] > 0:
            clearing_price = st[bo + ranking[i] * BIDF + BID_PRICE]
    value = 0
    accepted = 0
    for i in range(ranking.shape[0]):
        if fills[i] == 0:
            n = _release_bid(st, out, n, seq, ts, a, ranking[i])
            continue
        price = st[bo + ranking[i] * BIDF + BID_PRICE]
        if st[a + AU_CLEARING] == CLEAR_UNIFORM:
            price = clearing_price
        n = _fill_bid(st, out, n, seq, ts, a, ranking[i], price, fills[i])
        value += price * fills[i]
        accepted += 1
    return _cleared(st, out, n, seq, ts, row, arrival, clearing_price, remaining, value, accepted)


@inheriting
def _cleared(st, out, n, seq, ts, row, rows, price, unsold, value, fills):
    """The unsold lot returns to the seller; the session's auction figures grow; the auction
    is gone; ``AuctionCleared``."""
    a = _auction_at(st, row)
    ins, seller, qty = st[a + AU_INST], st[a + AU_SELLER], st[a + AU_QTY]
    _unlock(st, seller, ins, SELL, unsold, 0)
    io = st[M_OFF_INST] + ins * IF
    st[io + I_AUCTION_VOL] += qty - unsold
    st[io + I_AUCTION_VAL] += value
    st[io + I_AUCTION_TRADES] += fills
    n = emit(
        out,
        n,
        EV_AUCTION_CLEARED,
        seq,
        ts,
        ins,
        st[a + AU_ID],
        seller,
        st[a + AU_CLEARING],
        price,
        qty - unsold,
        0,
    )
    out[n - 1, AUCTION_CLEARED.unsold_t] = unsold
    out[n - 1, AUCTION_CLEARED.value_fen] = value
    out[n - 1, AUCTION_CLEARED.fills] = fills
    out[n - 1, AUCTION_CLEARED.bids] = rows.shape[0]
    _remove_auction(st, row, rows)
    return n


@allocating
def _cancel_auction(st, out, n, seq, ts, auction_id):
    row = find_row(st, M_OFF_AUCTIONS, AUF, M_AUCTIONS_HWM, auction_id)
    refused = _operator_refusal(st, out, n, seq, ts, K_AUCTION_CANCEL, auction_id, row)
    if refused >= 0:
        return refused
    a = _auction_at(st, row)
    rows = bid_rows(st, auction_id)
    for bid_row in rows:
        n = _release_bid(st, out, n, seq, ts, a, bid_row)
    ins, seller, qty = st[a + AU_INST], st[a + AU_SELLER], st[a + AU_QTY]
    _unlock(st, seller, ins, SELL, qty, 0)
    n = emit(out, n, EV_AUCTION_CANCELLED, seq, ts, ins, auction_id, seller, 0, 0, qty, 0)
    out[n - 1, AUCTION_CANCELLED.bids] = rows.shape[0]
    _remove_auction(st, row, rows)
    return n


# ------------------------------------------------------------------------------------------
# entry, the close, canonical state
# ------------------------------------------------------------------------------------------


@inheriting
def mode_command(st, out, n, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype):
    """Apply one block or auction command (fields as mapped in ``engine.core.records``)."""
    if kind == K_BLOCK_OFFER:
        return _submit_offer(st, out, n, seq, ts, oid, price, qty, aux, acct, ins, side)
    if kind == K_BLOCK_ACCEPT:
        return _accept_offer(st, out, n, seq, ts, oid, price, qty, acct)
    if kind == K_BLOCK_CANCEL:
        return _cancel_offer(st, out, n, seq, ts, oid, acct)
    if kind == K_AUCTION_APPLY:
        return _apply(st, out, n, seq, ts, oid, qty, acct, ins)
    if kind == K_AUCTION_ANNOUNCE:
        return _announce(st, out, n, seq, ts, oid, side, otype, aux, price)
    if kind == K_AUCTION_BID:
        return _bid(st, out, n, seq, ts, oid, aux, price, qty, acct)
    if kind == K_AUCTION_CLEAR:
        return _clear(st, out, n, seq, ts, oid)
    return _cancel_auction(st, out, n, seq, ts, oid)


@inheriting
def report_volumes(st, out, n, seq, ts, ins):
    """``SessionModeVolumes`` of the session just closed; its six counters restart at 0."""
    io = st[M_OFF_INST] + ins * IF
    n = emit(out, n, EV_MODE_VOLUMES, seq, ts, ins, 0, 0, 0, 0, st[io + I_BLOCK_VOL], 0)
    out[n - 1, SESSION_MODE_VOLUMES.trading_date] = st[io + I_DATE]
    out[n - 1, SESSION_MODE_VOLUMES.block_value_fen] = st[io + I_BLOCK_VAL]
    out[n - 1, SESSION_MODE_VOLUMES.block_trades] = st[io + I_BLOCK_TRADES]
    out[n - 1, SESSION_MODE_VOLUMES.auction_volume_t] = st[io + I_AUCTION_VOL]
    out[n - 1, SESSION_MODE_VOLUMES.auction_value_fen] = st[io + I_AUCTION_VAL]
    out[n - 1, SESSION_MODE_VOLUMES.auction_trades] = st[io + I_AUCTION_TRADES]
    for column in (
        I_BLOCK_VOL,
        I_BLOCK_VAL,
        I_BLOCK_TRADES,
        I_AUCTION_VOL,
        I_AUCTION_VAL,
        I_AUCTION_TRADES,
    ):
        st[io + column] = 0
    return n


@inheriting
def composite_price(st, out, n, seq, ts):
    """``CompositePrice`` when every allowance instrument is closed (the caller checks that
    this command closed one): their mean reference, rounded half up to the fen."""
    total = 0
    count = 0
    date = 0
    for ins in range(st[M_N_INST]):
        io = st[M_OFF_INST] + ins * IF
        if st[io + I_OFFSET] != 0:
            continue
        if st[io + I_STATE] != CLOSED:
            return n
        total += st[io + I_REF]
        count += 1
        date = max(date, st[io + I_DATE])
    if count == 0:
        return n
    # instrument column 0: CompositePrice names no instrument (docs/TRADING_MODES.md)
    n = emit(out, n, EV_COMPOSITE, seq, ts, 0, 0, 0, 0, (total + count // 2) // count, 0, 0)
    out[n - 1, COMPOSITE_PRICE.trading_date] = date
    out[n - 1, COMPOSITE_PRICE.vintages] = count
    return n


@inheriting
def hash_words_size(st):
    return (
        st[M_N_INST] * 7
        + 2
        + st[M_BLOCK_LIVE] * BOF
        + st[M_AUCTIONS_HWM] * AUF
        + st[M_BIDS_LIVE] * 4
    )


@allocating
def hash_words(st, words, k):
    """Append the modes' canonical words (docs/TRADING_MODES.md) at ``words[k:]``; return the
    end."""
    for ins in range(st[M_N_INST]):
        io = st[M_OFF_INST] + ins * IF
        for column in (
            I_PHASE,
            I_BLOCK_VOL,
            I_BLOCK_VAL,
            I_BLOCK_TRADES,
            I_AUCTION_VOL,
            I_AUCTION_VAL,
            I_AUCTION_TRADES,
        ):
            words[k] = st[io + column]
            k += 1
    offers = rows_by_id(st, M_OFF_BLOCK, BOF, M_BLOCK_HWM, -1, 0)
    words[k] = offers.shape[0]
    k += 1
    for row in offers:
        for column in range(BO_COUNTERPARTY + 1):  # offer id ... counterparty, in column order
            words[k] = st[st[M_OFF_BLOCK] + row * BOF + column]
            k += 1
    auctions = rows_by_id(st, M_OFF_AUCTIONS, AUF, M_AUCTIONS_HWM, -1, 0)
    words[k] = auctions.shape[0]
    k += 1
    for row in auctions:
        a = _auction_at(st, row)
        for column in range(AUF):  # auction id ... n_bids, in column order
            words[k] = st[a + column]
            k += 1
        for bid_row in bid_rows(st, st[a + AU_ID]):
            b = st[M_OFF_BIDS] + bid_row * BIDF
            for column in (BID_ID, BID_ACCOUNT, BID_PRICE, BID_QTY):
                words[k] = st[b + column]
                k += 1
    return k

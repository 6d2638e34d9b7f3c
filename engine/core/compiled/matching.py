"""Price-time matching and the order commands: submit, hit-quote, cancel, modify, mass cancel.

The rules are those of ``docs/MATCHING.md`` and ``docs/TRADING_MODES.md`` (hit-quote);
``engine/core/reference/engine.py`` is their plain-Python statement.
"""

from __future__ import annotations

import numpy as np

from engine.core.compiled import ledger, modes
from engine.core.compiled.book import (
    alloc_slot,
    hash_find,
    link_tail,
    release_slot,
    scan_down,
    scan_up,
    unlink,
    within_best_levels,
)
from engine.core.compiled.layout import *  # noqa: F403 - the kernels' vocabulary
from engine.core.compiled.ledger import emit as _ev
from engine.core.records import (
    COMMAND_REJECTED,
    MASS_CANCELLED,
    ORDER_ACCEPTED,
    ORDER_MODIFIED,
    TRADE_EXECUTED,
)

DEPENDENCIES_DIGEST = "76b7fd760e715678"
"""See ``engine.numba_cache``: the digest of the files this module compiles in."""


# ------------------------------------------------------------------------------------------
# events
# ------------------------------------------------------------------------------------------


@kernel
def _ev_order(st, out, n, kind, seq, ts, slot, qty, reason):
    """An event about the order in ``slot`` (cancelled, modified)."""
    oo = st[M_OFF_ORDERS]
    return _ev(
        out,
        n,
        kind,
        seq,
        ts,
        st[oo + (slot) * OF + O_INST],
        st[oo + (slot) * OF + O_ID],
        st[oo + (slot) * OF + O_ACCOUNT],
        st[oo + (slot) * OF + O_SIDE],
        st[oo + (slot) * OF + O_PRICE],
        qty,
        reason,
    )


# ------------------------------------------------------------------------------------------
# matching
# ------------------------------------------------------------------------------------------


@kernel
def _fok_fillable(st, slot, limit):
    """Whether the whole open quantity of ``slot`` can trade now (docs/MATCHING.md step 2)."""
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    lvo = st[M_OFF_LEVELS]
    ins = st[oo + (slot) * OF + O_INST]
    side = st[oo + (slot) * OF + O_SIDE]
    acct = st[oo + (slot) * OF + O_ACCOUNT]
    stp = st[oo + (slot) * OF + O_STP]
    need = st[oo + (slot) * OF + O_LEAVES]
    side_base = ins * 2 + (2 - side)
    ladder = st[M_LADDER]
    price = st[io + (ins) * IF + I_ASK] if side == BUY else st[io + (ins) * IF + I_BID]
    while price != 0 and ((side == BUY and price <= limit) or (side == SELL and price >= limit)):
        maker = st[lvo + (side_base * ladder + price) * LF + L_HEAD]
        while maker >= 0:
            if st[oo + (maker) * OF + O_ACCOUNT] == acct:
                if stp != STP_RESTING:
                    return False
            else:
                need -= st[oo + (maker) * OF + O_LEAVES]
                if need <= 0:
                    return True
            maker = st[oo + (maker) * OF + O_NEXT]
        if side == BUY:
            price = scan_up(st, side_base, price + 1)
        else:
            price = scan_down(st, side_base, price - 1)
    return False


@inlined
def _trade(st, out, n, seq, ts, slot, maker, qty):
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    ins = st[oo + (slot) * OF + O_INST]
    price = st[oo + (maker) * OF + O_PRICE]
    trade_id = modes.next_trade_id(st)
    n = _ev(
        out,
        n,
        EV_TRADE,
        seq,
        ts,
        ins,
        st[oo + (slot) * OF + O_ID],
        st[oo + (slot) * OF + O_ACCOUNT],
        st[oo + (slot) * OF + O_SIDE],
        price,
        qty,
        0,
    )
    out[n - 1, TRADE_EXECUTED.maker_order_id] = st[oo + (maker) * OF + O_ID]
    out[n - 1, TRADE_EXECUTED.maker_account] = st[oo + (maker) * OF + O_ACCOUNT]
    out[n - 1, TRADE_EXECUTED.trade_id] = trade_id
    out[n - 1, TRADE_EXECUTED.taker_leaves_t] = st[oo + (slot) * OF + O_LEAVES] - qty
    out[n - 1, TRADE_EXECUTED.maker_leaves_t] = st[oo + (maker) * OF + O_LEAVES] - qty
    if st[io + (ins) * IF + I_TRADES] == 0:
        st[io + (ins) * IF + I_OPEN] = price
        st[io + (ins) * IF + I_HIGH] = price
        st[io + (ins) * IF + I_LOW] = price
    else:
        st[io + (ins) * IF + I_HIGH] = max(st[io + (ins) * IF + I_HIGH], price)
        st[io + (ins) * IF + I_LOW] = min(st[io + (ins) * IF + I_LOW], price)
    st[io + (ins) * IF + I_VOL] += qty
    st[io + (ins) * IF + I_VAL] += price * qty
    st[io + (ins) * IF + I_TRADES] += 1
    if st[M_REGISTRY] != 0:
        buyer, seller = (slot, maker) if st[oo + slot * OF + O_SIDE] == BUY else (maker, slot)
        ledger.settle(
            st,
            ins,
            st[oo + buyer * OF + O_ACCOUNT],
            st[oo + buyer * OF + O_LEAVES],
            st[oo + buyer * OF + O_LOCK_PRICE],
            st[oo + seller * OF + O_ACCOUNT],
            price,
            qty,
        )
    return n


@inlined
def _execute(st, out, n, seq, ts, slot, limit, cancel_remainder):
    """Match the unlinked order in ``slot`` against the book, then rest or drop its remainder."""
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    lvo = st[M_OFF_LEVELS]
    ins = st[oo + (slot) * OF + O_INST]
    side = st[oo + (slot) * OF + O_SIDE]
    acct = st[oo + (slot) * OF + O_ACCOUNT]
    stp = st[oo + (slot) * OF + O_STP]
    opp_base = ins * 2 + (2 - side)
    ladder = st[M_LADDER]
    while st[oo + (slot) * OF + O_LEAVES] > 0:
        best = st[io + (ins) * IF + I_ASK] if side == BUY else st[io + (ins) * IF + I_BID]
        if best == 0 or (side == BUY and best > limit) or (side == SELL and best < limit):
            break
        row = opp_base * ladder + best
        maker = st[lvo + (row) * LF + L_HEAD]
        if st[oo + (maker) * OF + O_ACCOUNT] == acct:
            if stp != STP_INCOMING:
                n = _ev_order(
                    st,
                    out,
                    n,
                    EV_CANCELLED,
                    seq,
                    ts,
                    maker,
                    st[oo + (maker) * OF + O_LEAVES],
                    C_STP,
                )
                unlock_order(st, maker)
                unlink(st, maker)
                release_slot(st, maker)
            if stp != STP_RESTING:
                n = _ev_order(
                    st, out, n, EV_CANCELLED, seq, ts, slot, st[oo + (slot) * OF + O_LEAVES], C_STP
                )
                unlock_order(st, slot)
                release_slot(st, slot)
                return n
            continue
        qty = min(st[oo + (slot) * OF + O_LEAVES], st[oo + (maker) * OF + O_LEAVES])
        n = _trade(st, out, n, seq, ts, slot, maker, qty)
        st[oo + (slot) * OF + O_LEAVES] -= qty
        if st[oo + (maker) * OF + O_LEAVES] == qty:
            unlink(st, maker)
            release_slot(st, maker)
        else:
            st[oo + (maker) * OF + O_LEAVES] -= qty
            st[lvo + (row) * LF + L_QTY] -= qty
    leaves = st[oo + (slot) * OF + O_LEAVES]
    if leaves == 0:
        release_slot(st, slot)
    elif cancel_remainder:
        n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, leaves, C_IOC)
        unlock_order(st, slot)
        release_slot(st, slot)
    else:
        link_tail(st, slot)
    return n


# ------------------------------------------------------------------------------------------
# order commands
# ------------------------------------------------------------------------------------------


@inlined
def _check_price(st, ins, price):
    io = st[M_OFF_INST]
    if price <= 0 or price % st[io + (ins) * IF + I_TICK] != 0:
        return R_OFF_TICK
    if price < st[io + (ins) * IF + I_LO] or price > st[io + (ins) * IF + I_HI]:
        return R_OUT_OF_BAND
    return 0


@inlined
def _check_qty(st, ins, qty):
    io = st[M_OFF_INST]
    if qty < st[io + (ins) * IF + I_MINQ] or qty > st[io + (ins) * IF + I_MAXQ]:
        return R_QUANTITY
    if qty % st[io + (ins) * IF + I_LOT] != 0:
        return R_OFF_LOT
    return 0


@kernel
def _crosses(st, ins, side, price):
    io = st[M_OFF_INST]
    if side == BUY:
        return st[io + (ins) * IF + I_ASK] != 0 and price >= st[io + (ins) * IF + I_ASK]
    return st[io + (ins) * IF + I_BID] != 0 and price <= st[io + (ins) * IF + I_BID]


@kernel
def account_known(st, acct):
    return modes.account_known(st, acct)


@inlined
def unlock_order(st, slot):
    """Return the whole remaining need of the order in ``slot`` to its account."""
    if st[M_REGISTRY] != 0:
        oo = st[M_OFF_ORDERS] + slot * OF
        ledger.unlock(
            st,
            st[oo + O_ACCOUNT],
            st[oo + O_INST],
            st[oo + O_SIDE],
            st[oo + O_LEAVES],
            st[oo + O_LOCK_PRICE],
        )


@kernel
def _modes_needed(otype):
    """The modes of which an order type needs one (docs/TRADING_MODES.md)."""
    if otype == MARKET:
        return MODE_CONTINUOUS
    if otype == HIT_QUOTE:
        return MODE_HIT_QUOTE
    return MODE_CONTINUOUS | MODE_HIT_QUOTE  # limit and post-only quotes rest


@inlined
def _submit_reason(st, oid, price, qty, acct, ins, side, otype, tif, stp):
    """Checks 1-13 of docs/TRADING_MODES.md's SubmitOrder validation, in order; 0 if all
    pass (the caller runs 14-16)."""
    io = st[M_OFF_INST]
    if ins < 0 or ins >= st[M_N_INST]:
        return R_UNKNOWN_INSTRUMENT
    if st[io + (ins) * IF + I_STATE] != OPEN:
        return R_HALTED if st[io + (ins) * IF + I_STATE] == HALTED else R_SESSION_CLOSED
    if not account_known(st, acct):
        return R_UNKNOWN_ACCOUNT
    if side < BUY or side > SELL or otype < LIMIT or otype > HIT_QUOTE:
        return R_ORDER_TYPE
    if stp < STP_INCOMING or stp > STP_BOTH:
        return R_ORDER_TYPE
    if tif < DAY or tif > FOK:
        return R_TIF
    immediate = otype == MARKET or otype == HIT_QUOTE  # IOC or FOK only; price ignored
    if (immediate and tif <= GTC) or (otype == POST_ONLY and tif >= IOC):
        return R_TIF
    if st[io + ins * IF + I_MODES] & _modes_needed(otype) == 0:
        return R_MODE_NOT_ALLOWED
    if modes.effective_modes(st, ins) & _modes_needed(otype) == 0:
        return R_MODE_NOT_IN_PHASE
    reason = _check_qty(st, ins, qty)
    if reason == 0 and not immediate:
        reason = _check_price(st, ins, price)
    if reason != 0:
        return reason
    if oid <= 0:
        return R_ORDER_ID
    if hash_find(st, oid) >= 0:
        return R_DUPLICATE
    if st[M_LIVE] >= st[M_CAP]:
        return R_BOOK_FULL
    return 0


@kernel
def _quote_reason(st, quote_id, acct, ins, side):
    """Step 14: may a hit-quote order of ``acct`` take the resting order ``quote_id``?"""
    oo = st[M_OFF_ORDERS]
    quote = hash_find(st, quote_id)
    if quote < 0 or st[oo + quote * OF + O_INST] != ins or st[oo + quote * OF + O_SIDE] == side:
        return R_QUOTE_NOT_FOUND
    if st[oo + quote * OF + O_ACCOUNT] == acct:
        return R_QUOTE_OWN
    levels = st[st[M_OFF_INST] + ins * IF + I_QUOTE_LEVELS]
    if not within_best_levels(st, ins, 3 - side, st[oo + quote * OF + O_PRICE], levels):
        return R_QUOTE_BEYOND_LEVELS
    return 0


@inlined
def _refuses_to_take(st, ins, otype):
    """Post-only orders never take; limit orders do not while continuous trading is not
    effective (then quotes rest and only hit-quote orders trade)."""
    if otype == POST_ONLY:
        return True
    return otype == LIMIT and modes.effective_modes(st, ins) & MODE_CONTINUOUS == 0


@inlined
def _late_reason(st, price, qty, aux, acct, ins, side, otype, lock_price):
    """Steps 14-16: the hit-quote order's quote, the ledger, ``WOULD_TRADE``."""
    if otype == HIT_QUOTE:
        reason = _quote_reason(st, aux, acct, ins, side)
        if reason != 0:
            return reason
    if st[M_REGISTRY] != 0:
        reason = ledger.order_reason(st, acct, ins, side, qty, lock_price)
        if reason != 0:
            return reason
    if _refuses_to_take(st, ins, otype) and _crosses(st, ins, side, price):
        return R_WOULD_TRADE
    return 0


@kernel
def _lock_price(st, price, aux, ins, otype):
    """A market buy locks at the upper band, a hit-quote order at its quote's price (0 when
    there is no such quote: the order is refused before the price is used)."""
    if otype == MARKET:
        return st[st[M_OFF_INST] + ins * IF + I_HI]
    if otype == HIT_QUOTE:
        quote = hash_find(st, aux)
        return st[st[M_OFF_ORDERS] + quote * OF + O_PRICE] if quote >= 0 else 0
    return price


@inlined
def submit(st, out, n, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp):
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    reason = _submit_reason(st, oid, price, qty, acct, ins, side, otype, tif, stp)
    lock_price = price
    if reason == 0:
        lock_price = _lock_price(st, price, aux, ins, otype)
        reason = _late_reason(st, price, qty, aux, acct, ins, side, otype, lock_price)
    if reason != 0:
        return _ev(out, n, EV_REJECTED, seq, ts, ins, oid, acct, side, price, qty, reason)
    if otype == MARKET:
        price = 0
        limit = st[io + (ins) * IF + I_HI] if side == BUY else st[io + (ins) * IF + I_LO]
    else:
        price = lock_price  # a hit-quote order trades at (and reports) its quote's price
        limit = price
    n = _ev(out, n, EV_ACCEPTED, seq, ts, ins, oid, acct, side, price, qty, 0)
    out[n - 1, ORDER_ACCEPTED.order_type] = otype
    out[n - 1, ORDER_ACCEPTED.tif] = tif
    slot = alloc_slot(st, oid)
    st[oo + (slot) * OF + O_ACCOUNT] = acct
    st[oo + (slot) * OF + O_INST] = ins
    st[oo + (slot) * OF + O_SIDE] = side
    st[oo + (slot) * OF + O_PRICE] = price
    st[oo + (slot) * OF + O_LEAVES] = qty
    st[oo + (slot) * OF + O_TYPE] = otype
    st[oo + (slot) * OF + O_TIF] = tif
    st[oo + (slot) * OF + O_STP] = stp
    st[oo + slot * OF + O_LOCK_PRICE] = limit
    if otype == HIT_QUOTE:
        return _hit_quote(st, out, n, seq, ts, slot, hash_find(st, aux))
    if tif == FOK and not _fok_fillable(st, slot, limit):
        n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, qty, C_FOK)
        release_slot(st, slot)
        return n
    if st[M_REGISTRY] != 0:
        ledger.lock(st, acct, ins, side, qty, limit)
    return _execute(st, out, n, seq, ts, slot, limit, tif >= IOC)


@kernel
def _hit_quote(st, out, n, seq, ts, slot, quote):
    """Execute an accepted hit-quote order: one trade with ``quote`` at its price (no
    self-trade check: own quotes were refused), the remainder cancelled."""
    oo = st[M_OFF_ORDERS]
    lvo = st[M_OFF_LEVELS]
    o = oo + slot * OF
    q = oo + quote * OF
    qty = st[o + O_LEAVES]
    if st[o + O_TIF] == FOK and st[q + O_LEAVES] < qty:
        n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, qty, C_FOK)
        release_slot(st, slot)  # killed before it locked anything
        return n
    if st[M_REGISTRY] != 0:
        ledger.lock(st, st[o + O_ACCOUNT], st[o + O_INST], st[o + O_SIDE], qty, st[o + O_PRICE])
    fill = min(qty, st[q + O_LEAVES])
    n = _trade(st, out, n, seq, ts, slot, quote, fill)
    st[o + O_LEAVES] -= fill
    if st[q + O_LEAVES] == fill:
        unlink(st, quote)
        release_slot(st, quote)
    else:
        st[q + O_LEAVES] -= fill
        row = (st[q + O_INST] * 2 + st[q + O_SIDE] - 1) * st[M_LADDER] + st[q + O_PRICE]
        st[lvo + row * LF + L_QTY] -= fill
    if st[o + O_LEAVES] > 0:
        n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, st[o + O_LEAVES], C_IOC)
        unlock_order(st, slot)
    release_slot(st, slot)
    return n


@inlined
def cancel(st, out, n, seq, ts, oid, acct):
    oo = st[M_OFF_ORDERS]
    slot = hash_find(st, oid)
    reason = 0
    if slot < 0:
        reason = R_UNKNOWN_ORDER
    elif st[oo + (slot) * OF + O_ACCOUNT] != acct:
        reason = R_NOT_OWNER
    if reason != 0:
        return _ev(out, n, EV_CANCEL_REJECTED, seq, ts, 0, oid, acct, 0, 0, 0, reason)
    n = _ev_order(
        st, out, n, EV_CANCELLED, seq, ts, slot, st[oo + (slot) * OF + O_LEAVES], C_REQUESTED
    )
    unlock_order(st, slot)
    unlink(st, slot)
    release_slot(st, slot)
    return n


@inlined
def _modify_reason(st, slot, acct, price, qty):
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    if slot < 0:
        return R_UNKNOWN_ORDER
    ins = st[oo + (slot) * OF + O_INST]
    if st[io + (ins) * IF + I_STATE] != OPEN:
        return R_HALTED if st[io + (ins) * IF + I_STATE] == HALTED else R_SESSION_CLOSED
    if st[oo + (slot) * OF + O_ACCOUNT] != acct:
        return R_NOT_OWNER
    if modes.effective_modes(st, ins) & (MODE_CONTINUOUS | MODE_HIT_QUOTE) == 0:
        return R_MODE_NOT_IN_PHASE  # e.g. the midday break: quotes stay as they are
    reason = _check_qty(st, ins, qty)
    if reason == 0:
        reason = _check_price(st, ins, price)
    if reason == 0 and st[M_REGISTRY] != 0:
        o = oo + slot * OF
        reason = ledger.modify_reason(
            st, acct, ins, st[o + O_SIDE], st[o + O_LEAVES], st[o + O_LOCK_PRICE], qty, price
        )
    if (
        reason == 0
        and price != st[oo + (slot) * OF + O_PRICE]
        and _refuses_to_take(st, ins, st[oo + (slot) * OF + O_TYPE])
    ):
        if _crosses(st, ins, st[oo + (slot) * OF + O_SIDE], price):
            reason = R_WOULD_TRADE
    return reason


@inlined
def modify(st, out, n, seq, ts, oid, price, qty, acct):
    oo = st[M_OFF_ORDERS]
    lvo = st[M_OFF_LEVELS]
    slot = hash_find(st, oid)
    reason = _modify_reason(st, slot, acct, price, qty)
    if reason != 0:
        return _ev(out, n, EV_MODIFY_REJECTED, seq, ts, 0, oid, acct, 0, price, qty, reason)
    old_price = st[oo + (slot) * OF + O_PRICE]
    old_qty = st[oo + (slot) * OF + O_LEAVES]
    keep = price == old_price and qty <= old_qty
    if st[M_REGISTRY] != 0:  # swap the old need for the new one (checked above to fit)
        unlock_order(st, slot)
        o = oo + slot * OF
        ledger.lock(st, acct, st[o + O_INST], st[o + O_SIDE], qty, price)
        st[o + O_LOCK_PRICE] = price
    if keep:
        row = (st[oo + (slot) * OF + O_INST] * 2 + st[oo + (slot) * OF + O_SIDE] - 1) * st[
            M_LADDER
        ] + price
        st[lvo + (row) * LF + L_QTY] -= old_qty - qty
        st[oo + (slot) * OF + O_LEAVES] = qty
    else:
        unlink(st, slot)
        st[oo + (slot) * OF + O_PRICE] = price
        st[oo + (slot) * OF + O_LEAVES] = qty
    n = _ev_order(st, out, n, EV_MODIFIED, seq, ts, slot, qty, 0)
    out[n - 1, ORDER_MODIFIED.priority_kept] = 1 if keep else 0
    out[n - 1, ORDER_MODIFIED.old_price_ticks] = old_price
    out[n - 1, ORDER_MODIFIED.old_qty_t] = old_qty
    if keep:
        return n
    return _execute(st, out, n, seq, ts, slot, price, False)


@allocating
def cancel_sorted(st, out, n, seq, ts, ids, reason):
    """Cancel the resting orders ``ids`` in ascending id order."""
    oo = st[M_OFF_ORDERS]
    for oid in ledger.in_key_order(ids, ids):
        slot = hash_find(st, oid)
        n = _ev_order(
            st, out, n, EV_CANCELLED, seq, ts, slot, st[oo + (slot) * OF + O_LEAVES], reason
        )
        unlock_order(st, slot)
        unlink(st, slot)
        release_slot(st, slot)
    return n


@allocating
def collect_orders(st, acct, ins, day_only):
    """Ids of resting orders matching an account (-1: any) and instrument (-1: any)."""
    oo = st[M_OFF_ORDERS]
    ids = np.empty(st[M_LIVE], dtype=np.int64)
    count = 0
    for slot in range(st[M_HWM]):
        if st[oo + (slot) * OF + O_ID] == 0:
            continue
        if acct >= 0 and st[oo + (slot) * OF + O_ACCOUNT] != acct:
            continue
        if ins >= 0 and st[oo + (slot) * OF + O_INST] != ins:
            continue
        if day_only and st[oo + (slot) * OF + O_TIF] != DAY:
            continue
        ids[count] = st[oo + (slot) * OF + O_ID]
        count += 1
    return ids[:count].copy()


@allocating
def mass_cancel(st, out, n, seq, ts, acct, ins):
    reason = 0
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        reason = R_UNKNOWN_INSTRUMENT
    elif not account_known(st, acct):
        reason = R_UNKNOWN_ACCOUNT
    if reason != 0:
        n = _ev(out, n, EV_COMMAND_REJECTED, seq, ts, ins, 0, 0, 0, 0, 0, reason)
        out[n - 1, COMMAND_REJECTED.command] = K_MASS_CANCEL
        return n
    ids = collect_orders(st, acct, ins, False)
    n = cancel_sorted(st, out, n, seq, ts, ids, C_MASS)
    n = _ev(out, n, EV_MASS_CANCELLED, seq, ts, ins, 0, acct, 0, 0, 0, 0)
    out[n - 1, MASS_CANCELLED.cancelled_count] = ids.shape[0]
    return n

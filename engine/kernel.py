"""The compiled matching kernel: the whole exchange state in one int64 array, one compiled loop.

Theory of operation
-------------------
All state lives in a single preallocated ``int64`` array ``st``.  Its first ``META_LEN`` words
are a header of sizes and offsets; the rest holds the tables below, addressed by offset
arithmetic (``st[oo + slot * OF + O_PRICE]``) rather than through numpy views: creating a view
costs ~80 ns in compiled code and passing a dozen arrays between compiled functions costs as
much again, while one array and a few integer offsets cost nothing (measured: 3.7 → 12 million
messages/s on the liquid workload).

* ``inst[n_inst, IF]`` – per instrument: session state, band, best bid/ask, day statistics.
* ``orders[cap, OF]`` – one row per order slot; resting orders of a price level form a doubly
  linked FIFO list through ``O_PREV``/``O_NEXT``.  Free slots form a singly linked free list;
  slots above the high-water mark have never been touched (so a large capacity costs no memory
  until it is used).
* ``st[ho + 2 * hcap]`` – order id -> slot, open addressing with linear probing and
  backward-shift deletion (no tombstones), for O(1) cancel and modify.
* ``levels[n_inst * 2 * L, 4]`` – a dense price ladder per (instrument, side): head, tail, total
  open quantity and order count of each price.  ``blocks`` and ``supers`` count the non-empty
  levels in each run of 64 and 4,096 prices, so finding the next best price after a level
  empties skips empty stretches 64 or 4,096 ticks at a time.

Commands arrive either as a record batch (:func:`process_batch`, the log and replay path) or
as scalars (:func:`apply_one`, the one-command Python API); both run :func:`_dispatch`.  Events
are written as 16-int64 rows (``engine.records`` columns) into a caller-provided array.  Before
each command the kernel checks that the output has room for the worst case (one event per
resting order plus a few), and otherwise returns so the caller can grow it: a command is never
half applied.

The rules are those of ``docs/MATCHING.md``; ``engine/reference.py`` is their plain-Python
statement and the differential tests hold the two to identical events and state hashes.  All
functions run unchanged under ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine import ledger, modes
from engine.layout import *  # noqa: F403 - the kernel's vocabulary: columns, codes, offsets
from engine.ledger import emit as _ev
from engine.records import E_X0, E_X1, E_X2, E_X3, E_X4, E_X5

DEPENDENCIES_DIGEST = "be0aa2f4ab607e43"
"""blake2b-64 of engine/layout.py, ledger.py, modes.py and records.py.  Numba's on-disk cache is
keyed on the defining file only, so compiled functions here would keep stale copies of the
constants and ledger and modes code they inline; a test fails until this value is updated,
which changes this file and so invalidates its cache.  ``ledger.py`` and ``modes.py`` carry the
same kind of digest of what they compile in (:data:`DIGESTED`).  Update all three with
``python -m engine.kernel``."""

DIGESTED = {
    "ledger.py": ("layout.py", "records.py"),
    "modes.py": ("layout.py", "ledger.py", "records.py"),
    "kernel.py": ("layout.py", "ledger.py", "modes.py", "records.py"),
}
"""Per compiled module (in refresh order: a module's digest covers the ones before it), the
files whose constants and code it compiles in."""

# ------------------------------------------------------------------------------------------
# order id -> slot hash table
# ------------------------------------------------------------------------------------------


@njit(cache=True)
def _home(key, mask):
    return (key ^ (key >> 16) ^ (key >> 32)) & mask


@njit(cache=True)
def hash_find(st, key):
    """Slot of the resting order ``key``, or -1."""
    ho = st[M_OFF_HASH]
    if key <= 0:
        return -1
    mask = st[M_HCAP] - 1
    i = _home(key, mask)
    while True:
        k = st[ho + 2 * i]
        if k == key:
            return st[ho + 2 * i + 1]
        if k == 0:
            return -1
        i = (i + 1) & mask


@njit(cache=True)
def _hash_put(st, key, slot):
    ho = st[M_OFF_HASH]
    mask = st[M_HCAP] - 1
    i = _home(key, mask)
    while st[ho + 2 * i] != 0:
        i = (i + 1) & mask
    st[ho + 2 * i] = key
    st[ho + 2 * i + 1] = slot


@njit(cache=True)
def _hash_delete(st, key):
    ho = st[M_OFF_HASH]
    mask = st[M_HCAP] - 1
    i = _home(key, mask)
    while st[ho + 2 * i] != key:
        i = (i + 1) & mask
    j = i
    while True:  # backward-shift: pull later members of the cluster into the hole
        j = (j + 1) & mask
        kj = st[ho + 2 * j]
        if kj == 0:
            break
        home = _home(kj, mask)
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if not stays:
            st[ho + 2 * i] = kj
            st[ho + 2 * i + 1] = st[ho + 2 * j + 1]
            i = j
    st[ho + 2 * i] = 0
    st[ho + 2 * i + 1] = 0


# ------------------------------------------------------------------------------------------
# price ladder
# ------------------------------------------------------------------------------------------


@njit(cache=True)
def scan_down(st, side_base, p):
    """Highest non-empty price <= p on ladder ``side_base``; 0 if none."""
    lvo = st[M_OFF_LEVELS]
    bo = st[M_OFF_BLOCKS]
    so = st[M_OFF_SUPERS]
    ladder = st[M_LADDER]
    lbase = side_base * ladder
    bbase = side_base * st[M_NB]
    sbase = side_base * st[M_NS]
    q = min(p, ladder - 1)
    while q > 0:
        if st[so + sbase + (q >> 12)] == 0:
            q = ((q >> 12) << 12) - 1
        elif st[bo + bbase + (q >> 6)] == 0:
            q = ((q >> 6) << 6) - 1
        elif st[lvo + (lbase + q) * LF + L_COUNT] > 0:
            return q
        else:
            q -= 1
    return 0


@njit(cache=True)
def scan_up(st, side_base, p):
    """Lowest non-empty price >= p on ladder ``side_base``; 0 if none."""
    lvo = st[M_OFF_LEVELS]
    bo = st[M_OFF_BLOCKS]
    so = st[M_OFF_SUPERS]
    ladder = st[M_LADDER]
    lbase = side_base * ladder
    bbase = side_base * st[M_NB]
    sbase = side_base * st[M_NS]
    q = max(p, 1)
    while q < ladder:
        if st[so + sbase + (q >> 12)] == 0:
            q = ((q >> 12) + 1) << 12
        elif st[bo + bbase + (q >> 6)] == 0:
            q = ((q >> 6) + 1) << 6
        elif st[lvo + (lbase + q) * LF + L_COUNT] > 0:
            return q
        else:
            q += 1
    return 0


@njit(cache=True)
def _link_tail(st, slot):
    """Append a slot to the tail of its price level and update the best price."""
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    lvo = st[M_OFF_LEVELS]
    bo = st[M_OFF_BLOCKS]
    so = st[M_OFF_SUPERS]
    ins = st[oo + (slot) * OF + O_INST]
    side = st[oo + (slot) * OF + O_SIDE]
    price = st[oo + (slot) * OF + O_PRICE]
    side_base = ins * 2 + side - 1
    row = side_base * st[M_LADDER] + price
    st[oo + (slot) * OF + O_NEXT] = -1
    if st[lvo + (row) * LF + L_COUNT] == 0:
        st[lvo + (row) * LF + L_HEAD] = slot
        st[oo + (slot) * OF + O_PREV] = -1
        st[bo + side_base * st[M_NB] + (price >> 6)] += 1
        st[so + side_base * st[M_NS] + (price >> 12)] += 1
    else:
        tail = st[lvo + (row) * LF + L_TAIL]
        st[oo + (tail) * OF + O_NEXT] = slot
        st[oo + (slot) * OF + O_PREV] = tail
    st[lvo + (row) * LF + L_TAIL] = slot
    st[lvo + (row) * LF + L_QTY] += st[oo + (slot) * OF + O_LEAVES]
    st[lvo + (row) * LF + L_COUNT] += 1
    if side == BUY:
        if price > st[io + (ins) * IF + I_BID]:
            st[io + (ins) * IF + I_BID] = price
    elif st[io + (ins) * IF + I_ASK] == 0 or price < st[io + (ins) * IF + I_ASK]:
        st[io + (ins) * IF + I_ASK] = price


@njit(cache=True)
def _unlink(st, slot):
    """Take a resting slot out of its level (the slot stays allocated); fix the best price."""
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    lvo = st[M_OFF_LEVELS]
    bo = st[M_OFF_BLOCKS]
    so = st[M_OFF_SUPERS]
    ins = st[oo + (slot) * OF + O_INST]
    side = st[oo + (slot) * OF + O_SIDE]
    price = st[oo + (slot) * OF + O_PRICE]
    side_base = ins * 2 + side - 1
    row = side_base * st[M_LADDER] + price
    prev = st[oo + (slot) * OF + O_PREV]
    nxt = st[oo + (slot) * OF + O_NEXT]
    if prev >= 0:
        st[oo + (prev) * OF + O_NEXT] = nxt
    else:
        st[lvo + (row) * LF + L_HEAD] = nxt
    if nxt >= 0:
        st[oo + (nxt) * OF + O_PREV] = prev
    else:
        st[lvo + (row) * LF + L_TAIL] = prev
    st[lvo + (row) * LF + L_QTY] -= st[oo + (slot) * OF + O_LEAVES]
    st[lvo + (row) * LF + L_COUNT] -= 1
    if st[lvo + (row) * LF + L_COUNT] == 0:
        st[bo + side_base * st[M_NB] + (price >> 6)] -= 1
        st[so + side_base * st[M_NS] + (price >> 12)] -= 1
        if side == BUY and st[io + (ins) * IF + I_BID] == price:
            st[io + (ins) * IF + I_BID] = scan_down(st, side_base, price - 1)
        elif side == SELL and st[io + (ins) * IF + I_ASK] == price:
            st[io + (ins) * IF + I_ASK] = scan_up(st, side_base, price + 1)


@njit(cache=True)
def _alloc(st, order_id):
    oo = st[M_OFF_ORDERS]
    slot = st[M_FREE]
    if slot >= 0:
        st[M_FREE] = st[oo + (slot) * OF + O_NEXT]
    else:
        slot = st[M_HWM]
        st[M_HWM] = slot + 1
    st[M_LIVE] += 1
    st[oo + (slot) * OF + O_ID] = order_id
    _hash_put(st, order_id, slot)
    return slot


@njit(cache=True)
def _release(st, slot):
    oo = st[M_OFF_ORDERS]
    _hash_delete(st, st[oo + (slot) * OF + O_ID])
    st[oo + (slot) * OF + O_ID] = 0
    st[oo + (slot) * OF + O_NEXT] = st[M_FREE]
    st[M_FREE] = slot
    st[M_LIVE] -= 1


# ------------------------------------------------------------------------------------------
# events
# ------------------------------------------------------------------------------------------


@njit(cache=True)
def _ev_order(st, out, n, kind, seq, ts, slot, qty, reason):
    """An event about the order in ``slot`` (cancelled, modified)."""
    oo = st[M_OFF_ORDERS]
    return _ev(
        out, n, kind, seq, ts, st[oo + (slot) * OF + O_INST], st[oo + (slot) * OF + O_ID], st[oo + (slot) * OF + O_ACCOUNT],
        st[oo + (slot) * OF + O_SIDE], st[oo + (slot) * OF + O_PRICE], qty, reason,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# matching
# ------------------------------------------------------------------------------------------


@njit(cache=True)
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


@njit(cache=True)
def _trade(st, out, n, seq, ts, slot, maker, qty):
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    ins = st[oo + (slot) * OF + O_INST]
    price = st[oo + (maker) * OF + O_PRICE]
    trade_id = modes.next_trade_id(st)
    n = _ev(
        out, n, EV_TRADE, seq, ts, ins, st[oo + (slot) * OF + O_ID], st[oo + (slot) * OF + O_ACCOUNT],
        st[oo + (slot) * OF + O_SIDE], price, qty, 0,
    )  # fmt: skip
    out[n - 1, E_X0] = st[oo + (maker) * OF + O_ID]
    out[n - 1, E_X1] = st[oo + (maker) * OF + O_ACCOUNT]
    out[n - 1, E_X2] = trade_id
    out[n - 1, E_X3] = st[oo + (slot) * OF + O_LEAVES] - qty
    out[n - 1, E_X4] = st[oo + (maker) * OF + O_LEAVES] - qty
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
            st, ins, st[oo + buyer * OF + O_ACCOUNT], st[oo + buyer * OF + O_LEAVES],
            st[oo + buyer * OF + O_LOCK_PRICE], st[oo + seller * OF + O_ACCOUNT], price, qty,
        )  # fmt: skip
    return n


@njit(cache=True)
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
                n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, maker,
                              st[oo + (maker) * OF + O_LEAVES], C_STP)  # fmt: skip
                _unlock(st, maker)
                _unlink(st, maker)
                _release(st, maker)
            if stp != STP_RESTING:
                n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot,
                              st[oo + (slot) * OF + O_LEAVES], C_STP)  # fmt: skip
                _unlock(st, slot)
                _release(st, slot)
                return n
            continue
        qty = min(st[oo + (slot) * OF + O_LEAVES], st[oo + (maker) * OF + O_LEAVES])
        n = _trade(st, out, n, seq, ts, slot, maker, qty)
        st[oo + (slot) * OF + O_LEAVES] -= qty
        if st[oo + (maker) * OF + O_LEAVES] == qty:
            _unlink(st, maker)
            _release(st, maker)
        else:
            st[oo + (maker) * OF + O_LEAVES] -= qty
            st[lvo + (row) * LF + L_QTY] -= qty
    leaves = st[oo + (slot) * OF + O_LEAVES]
    if leaves == 0:
        _release(st, slot)
    elif cancel_remainder:
        n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, leaves, C_IOC)
        _unlock(st, slot)
        _release(st, slot)
    else:
        _link_tail(st, slot)
    return n


# ------------------------------------------------------------------------------------------
# order commands
# ------------------------------------------------------------------------------------------


@njit(cache=True)
def _check_price(st, ins, price):
    io = st[M_OFF_INST]
    if price <= 0 or price % st[io + (ins) * IF + I_TICK] != 0:
        return R_OFF_TICK
    if price < st[io + (ins) * IF + I_LO] or price > st[io + (ins) * IF + I_HI]:
        return R_OUT_OF_BAND
    return 0


@njit(cache=True)
def _check_qty(st, ins, qty):
    io = st[M_OFF_INST]
    if qty < st[io + (ins) * IF + I_MINQ] or qty > st[io + (ins) * IF + I_MAXQ]:
        return R_QUANTITY
    if qty % st[io + (ins) * IF + I_LOT] != 0:
        return R_OFF_LOT
    return 0


@njit(cache=True)
def _crosses(st, ins, side, price):
    io = st[M_OFF_INST]
    if side == BUY:
        return st[io + (ins) * IF + I_ASK] != 0 and price >= st[io + (ins) * IF + I_ASK]
    return st[io + (ins) * IF + I_BID] != 0 and price <= st[io + (ins) * IF + I_BID]


@njit(cache=True)
def _account_known(st, acct):
    return modes.account_known(st, acct)


@njit(cache=True)
def _unlock(st, slot):
    """Return the whole remaining need of the order in ``slot`` to its account."""
    if st[M_REGISTRY] != 0:
        oo = st[M_OFF_ORDERS] + slot * OF
        ledger.unlock(st, st[oo + O_ACCOUNT], st[oo + O_INST], st[oo + O_SIDE],
                      st[oo + O_LEAVES], st[oo + O_LOCK_PRICE])  # fmt: skip


@njit(cache=True)
def _modes_needed(otype):
    """The modes of which an order type needs one (docs/TRADING_MODES.md)."""
    if otype == MARKET:
        return MODE_CONTINUOUS
    if otype == HIT_QUOTE:
        return MODE_HIT_QUOTE
    return MODE_CONTINUOUS | MODE_HIT_QUOTE  # limit and post-only quotes rest


@njit(cache=True)
def _submit_reason(st, oid, price, qty, acct, ins, side, otype, tif, stp):
    """Checks 1-13 of docs/TRADING_MODES.md's SubmitOrder validation, in order; 0 if all
    pass (the caller runs 14-16)."""
    io = st[M_OFF_INST]
    if ins < 0 or ins >= st[M_N_INST]:
        return R_UNKNOWN_INSTRUMENT
    if st[io + (ins) * IF + I_STATE] != OPEN:
        return R_HALTED if st[io + (ins) * IF + I_STATE] == HALTED else R_SESSION_CLOSED
    if not _account_known(st, acct):
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


@njit(cache=True)
def _within_best_levels(st, ins, side, price, levels):
    """Whether ``price`` is among the best ``levels`` non-empty levels of one side."""
    side_base = ins * 2 + side - 1
    io = st[M_OFF_INST] + ins * IF
    level = st[io + I_BID] if side == BUY else st[io + I_ASK]
    for _ in range(levels):
        if level == 0:
            return False
        if level == price:
            return True
        if side == BUY:
            level = scan_down(st, side_base, level - 1)
        else:
            level = scan_up(st, side_base, level + 1)
    return False


@njit(cache=True)
def _quote_reason(st, quote_id, acct, ins, side):
    """Step 14: may a hit-quote order of ``acct`` take the resting order ``quote_id``?"""
    oo = st[M_OFF_ORDERS]
    quote = hash_find(st, quote_id)
    if quote < 0 or st[oo + quote * OF + O_INST] != ins or st[oo + quote * OF + O_SIDE] == side:
        return R_QUOTE_NOT_FOUND
    if st[oo + quote * OF + O_ACCOUNT] == acct:
        return R_QUOTE_OWN
    levels = st[st[M_OFF_INST] + ins * IF + I_QUOTE_LEVELS]
    if not _within_best_levels(st, ins, 3 - side, st[oo + quote * OF + O_PRICE], levels):
        return R_QUOTE_BEYOND_LEVELS
    return 0


@njit(cache=True)
def _refuses_to_take(st, ins, otype):
    """Post-only orders never take; limit orders do not while continuous trading is not
    effective (then quotes rest and only hit-quote orders trade)."""
    if otype == POST_ONLY:
        return True
    return otype == LIMIT and modes.effective_modes(st, ins) & MODE_CONTINUOUS == 0


@njit(cache=True)
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


@njit(cache=True)
def _lock_price(st, price, aux, ins, otype):
    """A market buy locks at the upper band, a hit-quote order at its quote's price (0 when
    there is no such quote: the order is refused before the price is used)."""
    if otype == MARKET:
        return st[st[M_OFF_INST] + ins * IF + I_HI]
    if otype == HIT_QUOTE:
        quote = hash_find(st, aux)
        return st[st[M_OFF_ORDERS] + quote * OF + O_PRICE] if quote >= 0 else 0
    return price


@njit(cache=True)
def _submit(st, out, n, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp):
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
    out[n - 1, E_X0] = otype
    out[n - 1, E_X1] = tif
    slot = _alloc(st, oid)
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
        _release(st, slot)
        return n
    if st[M_REGISTRY] != 0:
        ledger.lock(st, acct, ins, side, qty, limit)
    return _execute(st, out, n, seq, ts, slot, limit, tif >= IOC)


@njit(cache=True)
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
        _release(st, slot)  # killed before it locked anything
        return n
    if st[M_REGISTRY] != 0:
        ledger.lock(st, st[o + O_ACCOUNT], st[o + O_INST], st[o + O_SIDE], qty, st[o + O_PRICE])
    fill = min(qty, st[q + O_LEAVES])
    n = _trade(st, out, n, seq, ts, slot, quote, fill)
    st[o + O_LEAVES] -= fill
    if st[q + O_LEAVES] == fill:
        _unlink(st, quote)
        _release(st, quote)
    else:
        st[q + O_LEAVES] -= fill
        row = (st[q + O_INST] * 2 + st[q + O_SIDE] - 1) * st[M_LADDER] + st[q + O_PRICE]
        st[lvo + row * LF + L_QTY] -= fill
    if st[o + O_LEAVES] > 0:
        n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, st[o + O_LEAVES], C_IOC)
        _unlock(st, slot)
    _release(st, slot)
    return n


@njit(cache=True)
def _cancel(st, out, n, seq, ts, oid, acct):
    oo = st[M_OFF_ORDERS]
    slot = hash_find(st, oid)
    reason = 0
    if slot < 0:
        reason = R_UNKNOWN_ORDER
    elif st[oo + (slot) * OF + O_ACCOUNT] != acct:
        reason = R_NOT_OWNER
    if reason != 0:
        return _ev(out, n, EV_CANCEL_REJECTED, seq, ts, 0, oid, acct, 0, 0, 0, reason)
    n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, st[oo + (slot) * OF + O_LEAVES], C_REQUESTED)
    _unlock(st, slot)
    _unlink(st, slot)
    _release(st, slot)
    return n


@njit(cache=True)
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
        reason = ledger.modify_reason(st, acct, ins, st[o + O_SIDE], st[o + O_LEAVES],
                                      st[o + O_LOCK_PRICE], qty, price)  # fmt: skip
    if reason == 0 and price != st[oo + (slot) * OF + O_PRICE] and \
            _refuses_to_take(st, ins, st[oo + (slot) * OF + O_TYPE]):  # fmt: skip
        if _crosses(st, ins, st[oo + (slot) * OF + O_SIDE], price):
            reason = R_WOULD_TRADE
    return reason


@njit(cache=True)
def _modify(st, out, n, seq, ts, oid, price, qty, acct):
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
        _unlock(st, slot)
        o = oo + slot * OF
        ledger.lock(st, acct, st[o + O_INST], st[o + O_SIDE], qty, price)
        st[o + O_LOCK_PRICE] = price
    if keep:
        row = (st[oo + (slot) * OF + O_INST] * 2 + st[oo + (slot) * OF + O_SIDE] - 1) * st[M_LADDER] + price
        st[lvo + (row) * LF + L_QTY] -= old_qty - qty
        st[oo + (slot) * OF + O_LEAVES] = qty
    else:
        _unlink(st, slot)
        st[oo + (slot) * OF + O_PRICE] = price
        st[oo + (slot) * OF + O_LEAVES] = qty
    n = _ev_order(st, out, n, EV_MODIFIED, seq, ts, slot, qty, 0)
    out[n - 1, E_X0] = 1 if keep else 0
    out[n - 1, E_X1] = old_price
    out[n - 1, E_X2] = old_qty
    if keep:
        return n
    return _execute(st, out, n, seq, ts, slot, price, False)


@njit(cache=True)
def _cancel_sorted(st, out, n, seq, ts, ids, reason):
    """Cancel the resting orders ``ids`` in ascending id order."""
    oo = st[M_OFF_ORDERS]
    ids.sort()
    for oid in ids:
        slot = hash_find(st, oid)
        n = _ev_order(st, out, n, EV_CANCELLED, seq, ts, slot, st[oo + (slot) * OF + O_LEAVES], reason)
        _unlock(st, slot)
        _unlink(st, slot)
        _release(st, slot)
    return n


@njit(cache=True)
def _collect(st, acct, ins, day_only):
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


@njit(cache=True)
def _mass_cancel(st, out, n, seq, ts, acct, ins):
    reason = 0
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        reason = R_UNKNOWN_INSTRUMENT
    elif not _account_known(st, acct):
        reason = R_UNKNOWN_ACCOUNT
    if reason != 0:
        n = _ev(out, n, EV_COMMAND_REJECTED, seq, ts, ins, 0, 0, 0, 0, 0, reason)
        out[n - 1, E_X0] = K_MASS_CANCEL
        return n
    ids = _collect(st, acct, ins, False)
    n = _cancel_sorted(st, out, n, seq, ts, ids, C_MASS)
    n = _ev(out, n, EV_MASS_CANCELLED, seq, ts, ins, 0, acct, 0, 0, 0, 0)
    out[n - 1, E_X0] = ids.shape[0]
    return n


# ------------------------------------------------------------------------------------------
# sessions
# ------------------------------------------------------------------------------------------


@njit(cache=True)
def capped_band(st, ins, bps):
    """``band_edges`` around the reference, the upper edge capped where the ladder ends."""
    io = st[M_OFF_INST] + ins * IF
    tick = st[io + I_TICK]
    lower, upper = modes.band_edges(st[io + I_REF], bps, tick)
    ceiling = st[M_LADDER] - 1  # the ladder ends at max_price_ticks: so must the band
    return lower, min(upper, ceiling - ceiling % tick)


@njit(cache=True)
def set_band(st, ins):
    """The listing band and the block band around the reference price (market.band_edges)."""
    io = st[M_OFF_INST] + ins * IF
    st[io + I_LO], st[io + I_HI] = capped_band(st, ins, st[io + I_BAND])
    st[io + I_BLOCK_LO], st[io + I_BLOCK_HI] = capped_band(st, ins, st[io + I_BLOCK_BAND])


@njit(cache=True)
def _reject_command(out, n, seq, ts, kind, ins, reason):
    n = _ev(out, n, EV_COMMAND_REJECTED, seq, ts, ins, 0, 0, 0, 0, 0, reason)
    out[n - 1, E_X0] = kind
    return n


@njit(cache=True)
def _open_one(st, ins, date):
    io = st[M_OFF_INST]
    if st[io + (ins) * IF + I_STATE] != CLOSED:
        return R_ALREADY_OPEN
    if date <= st[io + (ins) * IF + I_DATE]:
        return R_TRADING_DATE
    st[io + (ins) * IF + I_STATE] = OPEN
    st[io + (ins) * IF + I_DATE] = date
    st[io + ins * IF + I_PHASE] = 0
    for column in (I_OPEN, I_HIGH, I_LOW, I_VOL, I_VAL, I_TRADES):
        st[io + (ins) * IF + column] = 0
    return 0


@njit(cache=True)
def _open_session(st, out, n, seq, ts, ins, date):
    io = st[M_OFF_INST]
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        return _reject_command(out, n, seq, ts, K_OPEN_SESSION, ins, R_UNKNOWN_INSTRUMENT)
    first = ins if ins >= 0 else 0
    last = ins + 1 if ins >= 0 else st[M_N_INST]
    first_reason = 0
    for i in range(first, last):
        reason = _open_one(st, i, date)
        if reason != 0:
            if first_reason == 0:
                first_reason = reason
            continue
        if st[M_REGISTRY] != 0:
            ledger.release_unsettled(st, i)
        n = _ev(out, n, EV_SESSION_OPENED, seq, ts, i, 0, 0, 0, st[io + (i) * IF + I_REF], 0, 0)
        out[n - 1, E_X0] = date
        out[n - 1, E_X1] = st[io + (i) * IF + I_LO]
        out[n - 1, E_X2] = st[io + (i) * IF + I_HI]
        first_reason = -1
    if first_reason > 0:
        return _reject_command(out, n, seq, ts, K_OPEN_SESSION, ins, first_reason)
    return n


@njit(cache=True)
def _close_one(st, out, n, seq, ts, ins):
    io = st[M_OFF_INST]
    n = _cancel_sorted(st, out, n, seq, ts, _collect(st, -1, ins, True), C_SESSION_END)
    n = modes.expire_offers(st, out, n, seq, ts, ins, C_SESSION_END)
    ref = st[io + (ins) * IF + I_REF]
    vol = st[io + (ins) * IF + I_VOL]
    if vol > 0:
        tick = st[io + (ins) * IF + I_TICK]
        vwap = (st[io + (ins) * IF + I_VAL] + vol // 2) // vol
        close = ((vwap + tick // 2) // tick) * tick
        day_open, high, low = st[io + (ins) * IF + I_OPEN], st[io + (ins) * IF + I_HIGH], st[io + (ins) * IF + I_LOW]
    else:
        close = day_open = high = low = ref
    n = _ev(out, n, EV_SESSION_CLOSED, seq, ts, ins, 0, 0, 0, close, vol, 0)
    out[n - 1, E_X0] = st[io + (ins) * IF + I_DATE]
    out[n - 1, E_X1] = day_open
    out[n - 1, E_X2] = high
    out[n - 1, E_X3] = low
    out[n - 1, E_X4] = st[io + (ins) * IF + I_VAL]
    out[n - 1, E_X5] = st[io + (ins) * IF + I_TRADES]
    n = modes.report_volumes(st, out, n, seq, ts, ins)
    st[io + (ins) * IF + I_STATE] = CLOSED
    st[io + (ins) * IF + I_REF] = close
    set_band(st, ins)
    return n


@njit(cache=True)
def _close_session(st, out, n, seq, ts, ins):
    io = st[M_OFF_INST]
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        return _reject_command(out, n, seq, ts, K_CLOSE_SESSION, ins, R_UNKNOWN_INSTRUMENT)
    first = ins if ins >= 0 else 0
    last = ins + 1 if ins >= 0 else st[M_N_INST]
    closed_any = False
    closed_allowance = False
    for i in range(first, last):
        if st[io + (i) * IF + I_STATE] != CLOSED:
            n = _close_one(st, out, n, seq, ts, i)
            closed_any = True
            closed_allowance = closed_allowance or st[io + i * IF + I_OFFSET] == 0
    if not closed_any:
        return _reject_command(out, n, seq, ts, K_CLOSE_SESSION, ins, R_NOT_OPEN)
    if closed_allowance:
        n = modes.composite_price(st, out, n, seq, ts)
    return n


@njit(cache=True)
def _phase_one(st, out, n, seq, ts, ins, phase):
    """Move one instrument to ``phase``; returns (next row, refusal reason or 0)."""
    io = st[M_OFF_INST] + ins * IF
    if st[io + I_STATE] == CLOSED:
        return n, R_NOT_OPEN
    if phase < 0 or phase >= st[io + I_N_PHASES]:
        return n, R_INVALID_PHASE
    had_block = modes.phase_modes(st, ins) & MODE_BLOCK  # the phase's, also while halted
    st[io + I_PHASE] = phase
    now = modes.phase_modes(st, ins)
    if had_block != 0 and now & MODE_BLOCK == 0:  # the block session is over
        n = modes.expire_offers(st, out, n, seq, ts, ins, C_PHASE_END)
    n = _ev(out, n, EV_PHASE_CHANGED, seq, ts, ins, 0, 0, 0, 0, 0, 0)
    out[n - 1, E_X0] = phase
    out[n - 1, E_X1] = now
    return n, 0


@njit(cache=True)
def _set_phase(st, out, n, seq, ts, ins, phase):
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        return _reject_command(out, n, seq, ts, K_SET_PHASE, ins, R_UNKNOWN_INSTRUMENT)
    first = ins if ins >= 0 else 0
    last = ins + 1 if ins >= 0 else st[M_N_INST]
    first_reason = 0
    for i in range(first, last):
        n, reason = _phase_one(st, out, n, seq, ts, i, phase)
        if reason == 0:
            first_reason = -1
        elif first_reason == 0:
            first_reason = reason
    if first_reason > 0:
        return _reject_command(out, n, seq, ts, K_SET_PHASE, ins, first_reason)
    return n


@njit(cache=True)
def _halt_resume(st, out, n, seq, ts, kind, ins):
    io = st[M_OFF_INST]
    if ins < 0 or ins >= st[M_N_INST]:
        return _reject_command(out, n, seq, ts, kind, ins, R_UNKNOWN_INSTRUMENT)
    if kind == K_HALT:
        if st[io + (ins) * IF + I_STATE] != OPEN:
            return _reject_command(out, n, seq, ts, kind, ins, R_NOT_OPEN)
        st[io + (ins) * IF + I_STATE] = HALTED
        return _ev(out, n, EV_HALTED, seq, ts, ins, 0, 0, 0, 0, 0, 0)
    if st[io + (ins) * IF + I_STATE] != HALTED:
        return _reject_command(out, n, seq, ts, kind, ins, R_NOT_HALTED)
    st[io + (ins) * IF + I_STATE] = OPEN
    return _ev(out, n, EV_RESUMED, seq, ts, ins, 0, 0, 0, 0, 0, 0)


# ------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------


@njit(cache=True)
def _dispatch(st, out, n, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp,
              year):  # fmt: skip
    if kind == K_SUBMIT:
        return _submit(st, out, n, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif,
                       stp)  # fmt: skip
    if kind == K_MODIFY:
        return _modify(st, out, n, seq, ts, oid, price, qty, acct)
    if kind == K_CANCEL:
        return _cancel(st, out, n, seq, ts, oid, acct)
    if kind == K_MASS_CANCEL:
        return _mass_cancel(st, out, n, seq, ts, acct, ins)
    if kind == K_OPEN_SESSION:
        return _open_session(st, out, n, seq, ts, ins, aux)
    if kind == K_CLOSE_SESSION:
        return _close_session(st, out, n, seq, ts, ins)
    if kind == K_HALT or kind == K_RESUME:
        return _halt_resume(st, out, n, seq, ts, kind, ins)
    if kind == K_SET_PHASE:
        return _set_phase(st, out, n, seq, ts, ins, aux)
    if K_BLOCK_OFFER <= kind <= K_AUCTION_CANCEL:
        return modes.mode_command(st, out, n, kind, seq, ts, oid, price, qty, aux, acct, ins,
                                  side, otype)  # fmt: skip
    if K_OPEN_ACCOUNT <= kind <= K_CLOSE_YEAR:
        return ledger.registry_command(st, out, n, kind, seq, ts, oid, price, qty, aux, acct, ins,
                                       side, otype, year)  # fmt: skip
    raise ValueError("unknown command kind")


@njit(cache=True)
def _room(st, out, n):
    # A close cancels every resting order and block offer and reports two events per
    # instrument (SessionClosed, SessionModeVolumes); an auction reports one event per bid.
    reserve = st[M_LIVE] + 2 * st[M_N_INST] + EVENTS_RESERVE + st[M_BLOCK_LIVE] + st[M_BIDS_LIVE]
    if st[M_REGISTRY] != 0:
        reserve += st[M_N_ACCOUNTS]  # closing a compliance year reports every entity
    return out.shape[0] - n >= reserve


@njit(cache=True)
def apply_one(st, out, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp,
              year):  # fmt: skip
    """Apply one command given as scalars; returns the number of events, or -1 if ``out`` is
    too small (nothing was applied)."""
    if not _room(st, out, 0):
        return -1
    return _dispatch(st, out, 0, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype,
                     tif, stp, year)  # fmt: skip


@njit(cache=True)
def process_batch(st, cmds, start, out):
    """Apply records ``cmds[start:]`` until done or ``out`` may overflow.

    Returns ``(next_index, events_written)``; the caller drains ``out`` and calls again from
    ``next_index`` while it is below ``len(cmds)``.
    """
    n = 0
    i = start
    while i < cmds.shape[0]:
        if not _room(st, out, n):
            break
        c = cmds[i]  # fields by name: a numpy record (NUMBA_DISABLE_JIT=1) has no attributes
        n = _dispatch(
            st, out, n, np.int64(c["kind"]), c["seq"], c["ts_ns"], c["order_id"],
            c["price_ticks"], c["qty_t"], c["aux"], np.int64(c["account"]),
            np.int64(c["instrument"]), np.int64(c["side"]), np.int64(c["order_type"]),
            np.int64(c["tif"]), np.int64(c["stp"]), np.int64(c["year"]),
        )  # fmt: skip
        i += 1
    return i, n


@njit(cache=True)
def hash_words(st):
    """The canonical state sequence of docs/MATCHING.md ("Canonical state hash"), then the
    ledger's (registry on) and the trading modes' (docs/TRADING_MODES.md)."""
    oo = st[M_OFF_ORDERS]
    io = st[M_OFF_INST]
    lvo = st[M_OFF_LEVELS]
    ni = st[M_N_INST]
    ladder = st[M_LADDER]
    size = 2 + ni * 13 + st[M_LIVE] * 9 + modes.hash_words_size(st)
    if st[M_REGISTRY] != 0:
        size += ledger.hash_words_size(st)
    words = np.empty(size, dtype=np.int64)
    words[0] = ni
    words[1] = st[M_NEXT_TRADE]
    k = 2
    for i in range(ni):
        for column in (I_STATE, I_DATE, I_REF, I_LO, I_HI, I_OPEN, I_HIGH, I_LOW, I_VOL,
                       I_VAL, I_TRADES):  # fmt: skip
            words[k] = st[io + (i) * IF + column]
            k += 1
        for side in (BUY, SELL):
            side_base = i * 2 + side - 1
            count_at = k
            words[k] = 0
            k += 1
            price = st[io + (i) * IF + I_BID] if side == BUY else st[io + (i) * IF + I_ASK]
            while price != 0:
                row = side_base * ladder + price
                words[count_at] += 1
                words[k] = price
                words[k + 1] = st[lvo + (row) * LF + L_QTY]
                words[k + 2] = st[lvo + (row) * LF + L_COUNT]
                k += 3
                slot = st[lvo + (row) * LF + L_HEAD]
                while slot >= 0:
                    words[k] = st[oo + (slot) * OF + O_ID]
                    words[k + 1] = st[oo + (slot) * OF + O_ACCOUNT]
                    words[k + 2] = st[oo + (slot) * OF + O_LEAVES]
                    words[k + 3] = st[oo + (slot) * OF + O_TYPE]
                    words[k + 4] = st[oo + (slot) * OF + O_TIF]
                    words[k + 5] = st[oo + (slot) * OF + O_STP]
                    k += 6
                    slot = st[oo + (slot) * OF + O_NEXT]
                if side == BUY:
                    price = scan_down(st, side_base, price - 1)
                else:
                    price = scan_up(st, side_base, price + 1)
    if st[M_REGISTRY] != 0:
        k = ledger.hash_words(st, words, k)
    k = modes.hash_words(st, words, k)  # present whether or not the registry is on
    return words[:k].copy()


@njit(cache=True)
def restore_order(st, oid, acct, ins, side, price, leaves, otype, tif, stp):
    """Append a resting order at the tail of its level without matching (snapshot restore)."""
    oo = st[M_OFF_ORDERS]
    slot = _alloc(st, oid)
    st[oo + (slot) * OF + O_ACCOUNT] = acct
    st[oo + (slot) * OF + O_INST] = ins
    st[oo + (slot) * OF + O_SIDE] = side
    st[oo + (slot) * OF + O_PRICE] = price
    st[oo + (slot) * OF + O_LEAVES] = leaves
    st[oo + (slot) * OF + O_TYPE] = otype
    st[oo + (slot) * OF + O_TIF] = tif
    st[oo + (slot) * OF + O_STP] = stp
    st[oo + slot * OF + O_LOCK_PRICE] = price  # a resting order's need is at its own price
    _link_tail(st, slot)
    return slot


def dependencies_digest(module: str = "kernel.py") -> str:
    """The current digest of the files whose code and constants ``module`` compiles in."""
    import hashlib
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sources = b"".join((here / name).read_bytes() for name in DIGESTED[module])
    return hashlib.blake2b(sources, digest_size=8).hexdigest()


def refresh_digests() -> None:
    """Rewrite the ``DEPENDENCIES_DIGEST`` of every compiled module, in dependency order."""
    import re
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for module in DIGESTED:
        path = here / module
        text = path.read_text(encoding="utf-8")
        fresh = f'DEPENDENCIES_DIGEST = "{dependencies_digest(module)}"'
        path.write_text(re.sub(r'^DEPENDENCIES_DIGEST = "[0-9a-f]*"', fresh, text, count=1,
                               flags=re.MULTILINE), encoding="utf-8")  # fmt: skip


if __name__ == "__main__":  # refresh the digests after editing a dependency
    refresh_digests()

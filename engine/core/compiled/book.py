"""The compiled order book: order slots, the order id hash index and the price ladder.


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

The batch loop asks :func:`prefetch_ahead` before each record to start fetching what the
records a little further on will touch (hash buckets, order rows, their levels and
neighbours): a resting order named by a cancel may be anywhere in memory, and waiting for it
was ~40 % of the loop's time.  Prefetching reads the state and changes nothing.
"""

from __future__ import annotations

from engine.core.compiled.layout import *  # noqa: F403 - the kernels' vocabulary

DEPENDENCIES_DIGEST = "393e8fcb7707006c"
"""See ``engine.numba_cache``: the digest of the files this module compiles in."""


# ------------------------------------------------------------------------------------------
# order id -> slot hash table
# ------------------------------------------------------------------------------------------


@kernel
def _home(key, mask):
    return (key ^ (key >> 16) ^ (key >> 32)) & mask


@entry_kernel
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


@kernel
def hash_put(st, key, slot):
    ho = st[M_OFF_HASH]
    mask = st[M_HCAP] - 1
    i = _home(key, mask)
    while st[ho + 2 * i] != 0:
        i = (i + 1) & mask
    st[ho + 2 * i] = key
    st[ho + 2 * i + 1] = slot


@inlined
def hash_delete(st, key):
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


@kernel
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


@kernel
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


@inlined
def link_tail(st, slot):
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


@inlined
def unlink(st, slot):
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


@kernel
def alloc_slot(st, order_id):
    oo = st[M_OFF_ORDERS]
    slot = st[M_FREE]
    if slot >= 0:
        st[M_FREE] = st[oo + (slot) * OF + O_NEXT]
    else:
        slot = st[M_HWM]
        st[M_HWM] = slot + 1
    st[M_LIVE] += 1
    st[oo + (slot) * OF + O_ID] = order_id
    hash_put(st, order_id, slot)
    return slot


@inlined
def release_slot(st, slot):
    oo = st[M_OFF_ORDERS]
    hash_delete(st, st[oo + (slot) * OF + O_ID])
    st[oo + (slot) * OF + O_ID] = 0
    st[oo + (slot) * OF + O_NEXT] = st[M_FREE]
    st[M_FREE] = slot
    st[M_LIVE] -= 1


@kernel
def within_best_levels(st, ins, side, price, levels):
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


@entry_kernel
def restore_order(st, oid, acct, ins, side, price, leaves, otype, tif, stp):
    """Append a resting order at the tail of its level without matching (snapshot restore)."""
    oo = st[M_OFF_ORDERS]
    slot = alloc_slot(st, oid)
    st[oo + (slot) * OF + O_ACCOUNT] = acct
    st[oo + (slot) * OF + O_INST] = ins
    st[oo + (slot) * OF + O_SIDE] = side
    st[oo + (slot) * OF + O_PRICE] = price
    st[oo + (slot) * OF + O_LEAVES] = leaves
    st[oo + (slot) * OF + O_TYPE] = otype
    st[oo + (slot) * OF + O_TIF] = tif
    st[oo + (slot) * OF + O_STP] = stp
    st[oo + slot * OF + O_LOCK_PRICE] = price  # a resting order's need is at its own price
    link_tail(st, slot)
    return slot


# ------------------------------------------------------------------------------------------
# looking ahead
# ------------------------------------------------------------------------------------------


@inlined
def _prefetch_order(st, oid):
    """Prefetch the row of the resting order ``oid`` (its hash bucket should be cached)."""
    slot = hash_find(st, oid)
    if slot >= 0:
        row = st[M_OFF_ORDERS] + slot * OF
        prefetch(st, row, 1)
        prefetch(st, row + OF - 1, 1)


@inlined
def _prefetch_neighbours(st, oid):
    """Prefetch what unlinking the resting order ``oid`` writes besides its own row (which
    should be cached): its level and its neighbours in the level."""
    slot = hash_find(st, oid)
    if slot < 0:
        return
    oo = st[M_OFF_ORDERS]
    o = oo + slot * OF
    side_base = st[o + O_INST] * 2 + st[o + O_SIDE] - 1
    price = st[o + O_PRICE]
    if 0 <= side_base < 2 * st[M_N_INST] and 0 < price < st[M_LADDER]:
        prefetch(st, st[M_OFF_LEVELS] + (side_base * st[M_LADDER] + price) * LF, 1)
    prev = st[o + O_PREV]
    if 0 <= prev < st[M_CAP]:
        prefetch(st, oo + prev * OF + O_NEXT, 1)
    nxt = st[o + O_NEXT]
    if 0 <= nxt < st[M_CAP]:
        prefetch(st, oo + nxt * OF + O_PREV, 1)


@inlined
def prefetch_ahead(st, cmds, out, i, n):
    """Prefetch what the commands after ``cmds[i]`` will touch: a hint, nothing changes.

    A cancel or modify names a resting order that may be anywhere in memory: the id's hash
    bucket, the order's row and its neighbours' rows are three dependent cache misses, and
    on a busy machine each costs as much as a few whole commands (profiled on the crash
    workload: ~40 % of the batch loop's time).  So each step of the chain is fetched a few
    commands before the next step reads it: the bucket sixteen commands ahead, the row (found
    through the bucket, by then cached) eight ahead, the level and the neighbours (from the
    row) four ahead; four commands are ~0.4 µs, about a memory access on a busy machine
    (closer steps, 8/4/2, were ~4 % slower on crash).  The records thirty-two ahead and the
    event rows about to be written are fetched too: the hardware's own prefetching kept up
    with neither."""
    total = cmds.shape[0]
    if i + 32 < total:
        prefetch(cmds, i + 32, 0)
    width = out.shape[1]
    if n + 8 < out.shape[0]:
        for word in range((n + 4) * width, (n + 8) * width, 8):
            prefetch(out, word, 1)
    if i + 16 < total:
        c = cmds[i + 16]
        if (c["kind"] == K_CANCEL or c["kind"] == K_MODIFY) and c["order_id"] > 0:
            prefetch(st, st[M_OFF_HASH] + 2 * _home(c["order_id"], st[M_HCAP] - 1), 0)
    if i + 8 < total:
        c = cmds[i + 8]
        if c["kind"] == K_CANCEL or c["kind"] == K_MODIFY:
            _prefetch_order(st, c["order_id"])
    if i + 4 < total:
        c = cmds[i + 4]
        if c["kind"] == K_CANCEL or c["kind"] == K_MODIFY:
            _prefetch_neighbours(st, c["order_id"])


@inlined
def next_price(st, side_base, side, level):
    """The next non-empty price after ``level`` in the side's priority order (0: none)."""
    if side == BUY:
        return scan_down(st, side_base, level - 1)
    return scan_up(st, side_base, level + 1)


@entry_kernel
def best_prices(st, ins, side, limit, out):
    """Write the best ``limit`` non-empty prices of one side into ``out``, best first; returns
    how many.  Walks from the best price with the 64/4,096-price block counts, so the cost is
    proportional to the levels returned (plus the empty blocks skipped), not to the ladder."""
    side_base = ins * 2 + side - 1
    io = st[M_OFF_INST] + ins * IF
    level = st[io + I_BID] if side == BUY else st[io + I_ASK]
    n = 0
    while n < limit and level != 0:
        out[n] = level
        n += 1
        level = next_price(st, side_base, side, level)
    return n


@entry_kernel
def side_slots(st, ins, side, levels, out):
    """Write the slots of one side's resting orders into ``out`` in priority order (best
    price first, then time), from at most ``levels`` price levels; returns how many, or -1
    if ``out`` is too short.  The walk of :func:`best_prices`, down each level's list."""
    side_base = ins * 2 + side - 1
    io = st[M_OFF_INST] + ins * IF
    oo = st[M_OFF_ORDERS]
    lvo = st[M_OFF_LEVELS]
    ladder = st[M_LADDER]
    level = st[io + I_BID] if side == BUY else st[io + I_ASK]
    n = 0
    walked = 0
    while walked < levels and level != 0:
        slot = st[lvo + (side_base * ladder + level) * LF + L_HEAD]
        while slot >= 0:
            if n >= len(out):
                return -1
            out[n] = slot
            n += 1
            slot = st[oo + slot * OF + O_NEXT]
        walked += 1
        level = next_price(st, side_base, side, level)
    return n

"""The canonical state hash's word sequence, computed from the compiled state array."""

from __future__ import annotations

import numpy as np

from engine.core.compiled import ledger, modes
from engine.core.compiled.book import scan_down, scan_up
from engine.core.compiled.layout import *  # noqa: F403 - the kernels' vocabulary

DEPENDENCIES_DIGEST = "76b7fd760e715678"
"""See ``engine.numba_cache``: the digest of the files this module compiles in."""


@entry_allocating
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
        for column in (
            I_STATE,
            I_DATE,
            I_REF,
            I_LO,
            I_HI,
            I_OPEN,
            I_HIGH,
            I_LOW,
            I_VOL,
            I_VAL,
            I_TRADES,
        ):
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

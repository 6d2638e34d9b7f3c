"""Invariants of the compiled state, checked from outside the kernels (tests call them after
every step through :meth:`CompiledEngine.check_invariants`).

Each check walks the state array with plain numpy and raises AssertionError naming what is
inconsistent: level links and totals, the 64/4,096-price block counts, best prices, the id
index, locks against open orders, block offers and auction bids, and conservation of cash and
allowances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.core import schema as s
from engine.core.compiled import book
from engine.core.compiled import layout as k

if TYPE_CHECKING:
    from engine.core.compiled.engine import CompiledEngine


def _check_ladder(engine: CompiledEngine, index: int, side: int) -> int:
    """Walk one side's levels; return the number of orders found.  Raises AssertionError."""
    st, orders, levels = engine._st, engine._orders(), engine._levels()
    ladder = int(st[k.M_LADDER])
    base = (index * 2 + side - 1) * ladder
    counts = levels[base : base + ladder, k.L_COUNT]
    assert (counts >= 0).all(), "negative level count"
    nonempty = np.flatnonzero(counts)
    for block_size, key in ((64, k.M_OFF_BLOCKS), (4096, k.M_OFF_SUPERS)):
        n_blocks = int(st[k.M_NB if block_size == 64 else k.M_NS])
        start = int(st[key]) + (index * 2 + side - 1) * n_blocks
        expected = np.bincount(nonempty // block_size, minlength=n_blocks)
        assert (st[start : start + n_blocks] == expected).all(), f"{block_size}-block counts"
    found = 0
    for price in nonempty.tolist():
        row = levels[base + price].tolist()
        slot, prev, qty, count = row[k.L_HEAD], -1, 0, 0
        while slot >= 0:
            o = orders[slot].tolist()
            assert o[k.O_PREV] == prev, f"broken back link at slot {slot}"
            assert (o[k.O_INST], o[k.O_SIDE], o[k.O_PRICE]) == (index, side, price), "misfiled"
            assert o[k.O_LEAVES] > 0, f"order {o[k.O_ID]} rests with no quantity"
            assert book.hash_find(st, o[k.O_ID]) == slot, f"order {o[k.O_ID]} not found by id"
            qty += o[k.O_LEAVES]
            count += 1
            prev, slot = slot, o[k.O_NEXT]
        assert row[k.L_TAIL] == prev, f"level {price}: tail is not the last order"
        assert (qty, count) == (row[k.L_QTY], row[k.L_COUNT]), f"level {price} totals differ"
        found += count
    best = int(engine._inst()[index, k.I_BID if side == s.Side.BUY else k.I_ASK])
    if nonempty.size == 0:
        assert best == 0, "phantom best price on an empty side"
    else:
        expected_best = nonempty[-1] if side == s.Side.BUY else nonempty[0]
        assert best == expected_best, f"best price {best} but best level is {expected_best}"
    return found


def check_books(engine: CompiledEngine) -> None:
    """Raise AssertionError if the compiled state is inconsistent (used after every test step)."""
    st = engine._st
    total = 0
    inst = engine._inst()
    for index in range(int(st[k.M_N_INST])):
        bid, ask = int(inst[index, k.I_BID]), int(inst[index, k.I_ASK])
        assert not (bid and ask and bid >= ask), f"crossed book {bid} >= {ask} in {index}"
        total += _check_ladder(engine, index, s.Side.BUY)
        total += _check_ladder(engine, index, s.Side.SELL)
    assert total == int(st[k.M_LIVE]), f"{total} orders in levels but {st[k.M_LIVE]} live"
    offset = int(st[k.M_OFF_HASH])
    keys = st[offset : offset + 2 * int(st[k.M_HCAP]) : 2]
    assert int(np.count_nonzero(keys)) == total, "hash table holds orders no level has"
    assert total <= int(st[k.M_CAP]), "more resting orders than capacity"


def _check_ledger(engine: CompiledEngine) -> None:
    """Conservation of allowances and cash, and locks equal to the open orders' needs."""
    st = engine._st
    accounts, holdings = engine._accounts(), engine._holdings()
    assert (accounts[:, k.A_CASH] >= 0).all() and (accounts[:, k.A_CASH_LOCKED] >= 0).all()
    assert (holdings >= 0).all(), "a negative holding"
    cash = int(accounts[:, k.A_CASH].sum() + accounts[:, k.A_CASH_LOCKED].sum())
    assert cash == int(st[k.M_DEPOSITED] - st[k.M_WITHDRAWN]), "cash is not conserved"
    inst = engine._inst()
    held = holdings.sum(axis=0).sum(axis=1)
    for i in range(int(st[k.M_N_INST])):
        circulating = int(inst[i, k.I_ISSUED] - inst[i, k.I_CLAWED])
        gone = int(inst[i, k.I_SURRENDERED] + inst[i, k.I_CANCELLED])
        assert circulating == int(held[i]) + gone, f"allowances of instrument {i} not conserved"
    cash_need = np.zeros(accounts.shape[0], dtype=np.int64)
    qty_need = np.zeros(holdings.shape[:2], dtype=np.int64)
    buy_bps = int(st[k.M_BUY_BPS])
    for account, ins, side, qty, price in _locks(engine):
        if side == s.Side.SELL:
            qty_need[account, ins] += qty
        else:
            value = qty * price
            cash_need[account] += value + value * buy_bps // 10_000
    assert (cash_need == accounts[:, k.A_CASH_LOCKED]).all(), "locked cash != open buys' needs"
    assert (qty_need == holdings[:, :, k.H_LOCKED]).all(), "locked allowances != open sells"


def _locks(engine: CompiledEngine) -> list[tuple[int, int, int, int, int]]:
    """(account, instrument, side, qty, lock price) of everything that holds a ledger lock:
    open orders, block offers, auction lots (sells) and bids (docs/TRADING_MODES.md "Locks")."""
    st = engine._st
    orders = engine._orders()[: int(st[k.M_HWM])]
    locks = [
        (o[k.O_ACCOUNT], o[k.O_INST], o[k.O_SIDE], o[k.O_LEAVES], o[k.O_LOCK_PRICE])
        for o in orders[orders[:, k.O_ID] != 0].tolist()
    ]
    locks += [
        (o[k.BO_ACCOUNT], o[k.BO_INST], o[k.BO_SIDE], o[k.BO_QTY], o[k.BO_PRICE])
        for o in engine._live_by_id(engine._block_table())
    ]
    instrument_of = {}
    for a in engine._live_by_id(engine._auction_table()):
        locks.append((a[k.AU_SELLER], a[k.AU_INST], s.Side.SELL, a[k.AU_QTY], 0))
        instrument_of[a[k.AU_ID]] = a[k.AU_INST]
    locks += [
        (
            b[k.BID_ACCOUNT],
            instrument_of[b[k.BID_AUCTION]],
            s.Side.BUY,
            b[k.BID_QTY],
            b[k.BID_PRICE],
        )
        for b in engine._live_by_id(engine._bid_table())
    ]
    return locks


def _check_block_offers(engine: CompiledEngine) -> None:
    """Live count and high-water mark, and every offer valid where it stands."""
    st, inst = engine._st, engine._inst()
    table = engine._block_table()
    hwm = int(st[k.M_BLOCK_HWM])
    assert 0 <= hwm <= table.shape[0] and not table[hwm:].any(), "block rows above the mark"
    live = engine._live_by_id(table)
    assert len(live) == int(st[k.M_BLOCK_LIVE]), "block offer count != live rows"
    assert not table[table[:, k.BO_ID] == 0].any(), "a free block row holds data"
    ids = [o[k.BO_ID] for o in live]
    assert len(set(ids)) == len(ids) and all(i > 0 for i in ids), "block offer ids"
    for o in live:
        where = f"block offer {o[k.BO_ID]}"
        ins = o[k.BO_INST]
        assert 0 <= ins < inst.shape[0] and o[k.BO_SIDE] in (1, 2), f"{where}: malformed"
        row = inst[ins]
        assert row[k.I_STATE] != s.SessionState.CLOSED, f"{where}: its session is closed"
        phase_mask = (int(row[k.I_PHASE_MASKS]) >> (4 * int(row[k.I_PHASE]))) & 15
        assert row[k.I_MODES] & phase_mask & k.MODE_BLOCK, f"{where}: no block trades now"
        assert row[k.I_BLOCK_MINQ] <= o[k.BO_QTY] <= k.QTY_MAX_T, f"{where}: quantity"
        assert o[k.BO_QTY] % row[k.I_LOT] == 0 and o[k.BO_PRICE] % row[k.I_TICK] == 0, where
        assert row[k.I_BLOCK_LO] <= o[k.BO_PRICE] <= row[k.I_BLOCK_HI], f"{where}: band"
        assert _known(engine, o[k.BO_ACCOUNT]), f"{where}: unknown account"
        cp = o[k.BO_COUNTERPARTY]
        assert cp == -1 or (_known(engine, cp) and cp != o[k.BO_ACCOUNT]), f"{where}: counterparty"


def _check_auctions(engine: CompiledEngine) -> None:
    """Auction and bid tables: counts, ids, states and every bid within its auction's terms."""
    st, inst = engine._st, engine._inst()
    auctions, bids = engine._auction_table(), engine._bid_table()
    for table, key, name in ((auctions, k.M_AUCTIONS_HWM, "auction"), (bids, k.M_BIDS_HWM, "bid")):
        hwm = int(st[key])
        assert 0 <= hwm <= table.shape[0] and not table[hwm:].any(), f"{name} rows above mark"
        assert not table[table[:, 0] == 0].any(), f"a free {name} row holds data"
    live_bids = engine._live_by_id(bids)
    assert len(live_bids) == int(st[k.M_BIDS_LIVE]), "bid count != live bid rows"
    assert len({b[k.BID_ID] for b in live_bids}) == len(live_bids), "a bid id twice"
    arrivals = [b[k.BID_ARRIVAL] for b in live_bids]
    assert len(set(arrivals)) == len(arrivals), "two bids arrived at once"
    assert all(0 < a < int(st[k.M_NEXT_ARRIVAL]) for a in arrivals), "bid from the future"
    seen = 0
    for a in engine._live_by_id(auctions):
        where = f"auction {a[k.AU_ID]}"
        ins = a[k.AU_INST]
        assert 0 <= ins < inst.shape[0], f"{where}: instrument"
        row = inst[ins]
        assert row[k.I_MODES] & k.MODE_AUCTION, f"{where}: the instrument offers no auctions"
        assert row[k.I_AUCTION_MINQ] <= a[k.AU_QTY] <= k.QTY_MAX_T, f"{where}: lot"
        assert a[k.AU_QTY] % row[k.I_LOT] == 0 and _known(engine, a[k.AU_SELLER]), where
        mine = engine._bids_of(a[k.AU_ID])
        assert a[k.AU_BIDS] == len(mine), f"{where}: bid count"
        seen += len(mine)
        if a[k.AU_STATE] == k.AUCTION_STATE_APPLIED:
            assert not any(a[k.AU_FLOOR : k.AU_BIDS + 1]), f"{where}: terms or bids too early"
            continue
        assert a[k.AU_STATE] == k.AUCTION_STATE_BIDDING, f"{where}: state {a[k.AU_STATE]}"
        assert a[k.AU_FLOOR_RULE] in (1, 2) and a[k.AU_CLEARING] in (1, 2), f"{where}: rules"
        assert 1 <= a[k.AU_FLOOR] <= a[k.AU_CAP] and a[k.AU_START] <= a[k.AU_END], where
        for b in mine:
            assert b[k.BID_ACCOUNT] != a[k.AU_SELLER] and _known(engine, b[k.BID_ACCOUNT]), where
            assert row[k.I_LOT] <= b[k.BID_QTY] <= a[k.AU_QTY], f"{where}: bid quantity"
            assert b[k.BID_QTY] % row[k.I_LOT] == 0 and b[k.BID_PRICE] % row[k.I_TICK] == 0
            assert a[k.AU_FLOOR] <= b[k.BID_PRICE] <= a[k.AU_CAP], f"{where}: bid price"
    assert seen == len(live_bids), "a bid of no live auction"


def _known(engine: CompiledEngine, account: int) -> bool:
    st = engine._st
    if not 0 <= account < int(st[k.M_N_ACCOUNTS]):
        return False
    return not st[k.M_REGISTRY] or bool(engine._accounts()[account, k.A_OPEN])


def _check_modes(engine: CompiledEngine) -> None:
    inst = engine._inst()
    for index in range(inst.shape[0]):
        row = inst[index]
        assert 0 <= row[k.I_PHASE] < row[k.I_N_PHASES], f"instrument {index}: phase"
        figures = row[
            [
                k.I_BLOCK_VOL,
                k.I_BLOCK_VAL,
                k.I_BLOCK_TRADES,
                k.I_AUCTION_VOL,
                k.I_AUCTION_VAL,
                k.I_AUCTION_TRADES,
            ]
        ].tolist()
        assert min(figures) >= 0, f"instrument {index}: negative mode figures"
        assert figures[0] >= figures[2] and figures[3] >= figures[5], "volume < trade count"
    _check_block_offers(engine)
    _check_auctions(engine)


def check_all(engine: CompiledEngine) -> None:
    """Every invariant of the compiled state: books, trading modes and (registry on) the ledger."""
    check_books(engine)
    _check_modes(engine)
    if engine._st[k.M_REGISTRY]:
        _check_ledger(engine)

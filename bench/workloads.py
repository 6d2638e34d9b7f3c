"""Seeded, documented workloads for the matching benchmarks and the differential tests.

Theory of operation
-------------------
A realistic order flow must know which orders still rest: a cancel of an order that already
traded is a cheap reject, not a cancel.  So the generator runs the compiled kernel on a scratch
engine *while* it generates, and draws cancels and modifies only from orders that are really
resting at that moment.  The workload it returns is a plain record array; replaying it on a
fresh engine reproduces exactly the same outcomes (the engine is deterministic), and the
reference engine is fed the very same records.

Random numbers come from numpy's PCG64 with the given seed, drawn up front in vectors; the
compiled assembler consumes them in order, so a (workload, size, seed) triple always yields
the same bytes.

Workloads (``WORKLOADS``):

``liquid``
    exchange-core's published mix on one instrument: 9 % GTC limit orders, 3 % IOC, 6 %
    cancels, 82 % modifies (mostly small price moves, which can cross and trade), ~1,000
    resting orders around a slowly moving mid price, 1,000 accounts.
``deep``
    a deep static book: ~20,000 resting orders on ~60 price levels, mostly cancels (70 %)
    replenished by passive GTC orders (25 %), with 5 % IOC orders sweeping the top levels.
``volatile``
    a book whose mid price random-walks across tens of thousands of ticks: 40 % GTC, 25 %
    IOC, 15 % market orders, 10 % cancels, 10 % modifies; a wide (±90 %) band.
``swing25`` and ``swing40``
    markets that move: the mid price swings ±25 % (±40 %) around the reference price, two
    full triangle cycles over the run, on top of a small random walk.  ~5,000 orders rest up
    to 400 ticks behind the mid, so as the mid travels it runs into the stale side of the
    book and sweeps it level by level: 40 % GTC, 20 % IOC, 5 % market, 15 % cancels, 20 %
    modifies.
``crash``
    a flash crash: a deep, quiet book (~8,000 orders resting up to 600 ticks from the mid)
    whose mid falls 30 % in 2 % of the run, starting a third of the way in, and recovers over
    the next 10 %.  While it falls every aggressive order sells (sweeping many bid levels);
    while it recovers every aggressive order buys; passive orders refill behind the mid.
"""

from __future__ import annotations

import msgspec
import numpy as np
from numba import njit

from engine.core import schema as s
from engine.core.compiled import book, dispatch
from engine.core.compiled import layout as k
from engine.core.compiled.engine import CompiledEngine
from engine.core.market import Capacity, Instrument, MarketDefinition
from engine.core.records import COMMAND_DTYPE, EVENT_FIELDS, Codec


class WorkloadSpec(msgspec.Struct, frozen=True):
    name: str
    reference_price_ticks: int
    band_bps: int
    max_price_ticks: int
    accounts: int
    target_resting: int
    pct_gtc: int
    pct_ioc: int
    pct_market: int
    pct_cancel: int
    pct_modify: int
    spread_ticks: int
    """Passive orders are placed up to this many ticks behind the mid."""
    walk_ticks: int
    """The mid moves by up to this many ticks every 64 commands."""
    max_qty_t: int
    prefill: int
    """Passive orders placed before the measured flow begins (part of the workload)."""
    swing_bps: int = 0
    """The mid swings this far (basis points of the reference price) either side of it."""
    swing_cycles: int = 0
    """Full triangle cycles of the swing over the run."""
    crash_bps: int = 0
    """A flash crash this deep (basis points of the reference price), see ``crash``."""


WORKLOADS: dict[str, WorkloadSpec] = {
    "liquid": WorkloadSpec(
        "liquid", 6_000, 1_000, 20_000, 1_000, 1_000, 9, 3, 0, 6, 82, 30, 1, 2_000, 1_000
    ),
    "deep": WorkloadSpec(
        "deep", 6_000, 1_000, 20_000, 2_000, 20_000, 25, 5, 0, 70, 0, 30, 0, 5_000, 20_000
    ),
    "volatile": WorkloadSpec(
        "volatile",
        50_000,
        9_000,
        100_000,
        1_000,
        2_000,
        40,
        25,
        15,
        10,
        10,
        50,
        120,
        3_000,
        2_000,
    ),
}
WORKLOADS["swing25"] = WorkloadSpec(
    "swing25", 50_000, 9_000, 100_000, 1_000, 5_000, 40, 20, 5, 15, 20, 400, 8, 3_000, 5_000,
    swing_bps=2_500, swing_cycles=2,
)  # fmt: skip
WORKLOADS["swing40"] = msgspec.structs.replace(
    WORKLOADS["swing25"], name="swing40", swing_bps=4_000
)
WORKLOADS["crash"] = WorkloadSpec(
    "crash", 50_000, 9_000, 100_000, 1_000, 8_000, 45, 15, 5, 20, 15, 600, 4, 3_000, 8_000,
    crash_bps=3_000,
)  # fmt: skip
SIZES = {"tiny": 2_000, "small": 200_000, "full": 1_000_000}


def market_for(spec: WorkloadSpec, registry: bool = False) -> MarketDefinition:
    """A one-instrument market sized for the workload; with ``registry`` the full engine
    (locks and settlement), whose fee account is the one after the traders'."""
    capacity = Capacity(
        accounts=spec.accounts + 1,
        resting_orders=max(4 * spec.target_resting, 65_536),
        max_price_ticks=spec.max_price_ticks,
    )
    instrument = Instrument(
        symbol="CEA-2025",
        vintage=2025,
        reference_price_ticks=spec.reference_price_ticks,
        band_bps=spec.band_bps,
        max_qty_t=99_999,
    )
    return MarketDefinition(
        name=f"bench-{spec.name}",
        instruments=[instrument],
        capacity=capacity,
        registry=registry,
        fee_account=spec.accounts,
    )


def registry_setup(name: str) -> tuple[MarketDefinition, np.ndarray]:
    """The full-engine market of workload ``name`` and the records that open, fund and
    allocate every trading account generously enough that no order of the workload is
    refused: its matching events are then exactly those of pure matching."""
    spec = WORKLOADS[name]
    market = market_for(spec, registry=True)
    codec = Codec(market)
    commands: list = [s.OpenAccount(key=1, account=spec.accounts, kind=s.AccountKind.FEE)]
    for account in range(spec.accounts):
        key = 10 * (account + 1)
        commands += [
            s.OpenAccount(key=key, account=account, kind=s.AccountKind.INVESTOR),
            s.DepositCash(key=key + 1, account=account, amount_fen=10**14),
            s.IssueAllowances(key=key + 2, account=account, instrument="CEA-2025", qty_t=10**11),
        ]
    return market, codec.encode_commands(commands)


@njit(cache=True)
def _pick_live(st, pool, pool_n, r):
    """A random order id that is resting now (pool entries that have gone are dropped)."""
    while pool_n > 0:
        j = r % pool_n
        oid = pool[j]
        if book.hash_find(st, oid) >= 0:
            return oid, pool_n
        pool_n -= 1
        pool[j] = pool[pool_n]
        r = r // 7 + 1
    return 0, pool_n


@njit(cache=True)
def _mid_offset(i, n, swing, cycles, crash):
    """(ticks the mid is moved by at command ``i`` of ``n``, forced aggressor side or 0): a
    triangle wave of amplitude ``swing`` and a flash crash ``crash`` ticks deep."""
    offset = 0
    if swing > 0 and cycles > 0:
        quarter = max(n // (4 * cycles), 1)
        t = i % (4 * quarter)
        if t < quarter:
            offset = swing * t // quarter
        elif t < 3 * quarter:
            offset = swing * (2 * quarter - t) // quarter
        else:
            offset = swing * (t - 4 * quarter) // quarter
    forced = 0
    if crash > 0:
        start, fall, recover = n // 3, max(n // 50, 1), max(n // 10, 1)
        if start <= i < start + fall:
            offset -= crash * (i - start) // fall
            forced = k.SELL
        elif start + fall <= i < start + fall + recover:
            offset -= crash * (start + fall + recover - i) // recover
            forced = k.BUY
    return offset, forced


@njit(cache=True)
def _assemble(st, out, cmds, draws, params):  # noqa: C901 - one branch per command kind
    (
        mid,
        lo,
        hi,
        accounts,
        target,
        p_gtc,
        p_ioc,
        p_mkt,
        p_cancel,
        spread,
        walk,
        max_qty,
        prefill,
        swing,
        cycles,
        crash,
    ) = params
    n = cmds.shape[0]
    pool = np.zeros(n + 1, dtype=np.int64)
    pool_n = 0
    next_id = 1
    io = st[k.M_OFF_INST]
    oo = st[k.M_OFF_ORDERS]
    for i in range(n):
        d = draws[i]
        c = cmds[i]
        c.seq = i + 1
        c.ts_ns = 1_700_000_000_000_000_000 + i * 1_000
        c.instrument = 0
        c.stp = 1
        if i == 0:
            c.kind = k.K_OPEN_SESSION
            c.aux = 20250102
            c.instrument = -1
        else:
            if walk > 0 and i % 64 == 0:
                mid = min(max(mid + d[5] % (2 * walk + 1) - walk, lo + spread), hi - spread)
            roll = d[0] % 100
            live = st[k.M_LIVE]
            if i <= prefill:
                roll = 0
            elif live > 2 * target and roll < p_gtc:
                roll = p_gtc + p_ioc + p_mkt  # book too deep: cancel instead
            elif live < target // 2 and roll >= p_gtc:
                roll = 0
            side = 1 + d[1] % 2
            acct = d[2] % accounts
            qty = 1 + d[3] % max_qty
            offset_ticks = 1 + d[4] % spread
            here = mid
            if swing > 0 or crash > 0:
                moved, forced = _mid_offset(i, n, swing, cycles, crash)
                here = min(max(mid + moved, lo + spread), hi - spread)
                if forced != 0 and p_gtc <= roll < p_gtc + p_ioc + p_mkt:
                    side = forced
            passive = here - offset_ticks if side == k.BUY else here + offset_ticks
            aggressive = here + offset_ticks if side == k.BUY else here - offset_ticks
            passive = min(max(passive, lo), hi)
            aggressive = min(max(aggressive, lo), hi)
            c.side = side
            c.account = acct
            c.qty_t = qty
            c.order_type = k.LIMIT
            if roll < p_gtc + p_ioc + p_mkt:
                c.kind = k.K_SUBMIT
                c.order_id = next_id
                next_id += 1
                if roll < p_gtc:
                    c.tif = k.GTC
                    c.price_ticks = passive
                    pool[pool_n] = c.order_id
                    pool_n += 1
                elif roll < p_gtc + p_ioc:
                    c.tif = k.IOC
                    c.price_ticks = aggressive
                else:
                    c.tif = k.IOC
                    c.order_type = k.MARKET
                    c.price_ticks = 0
            else:
                oid, pool_n = _pick_live(st, pool, pool_n, d[6])
                if oid == 0:  # nothing rests: place a passive order instead
                    c.kind = k.K_SUBMIT
                    c.order_id = next_id
                    next_id += 1
                    c.tif = k.GTC
                    c.price_ticks = passive
                    pool[pool_n] = c.order_id
                    pool_n += 1
                else:
                    slot = book.hash_find(st, oid)
                    c.order_id = oid
                    c.account = st[oo + slot * k.OF + k.O_ACCOUNT]
                    if roll < p_gtc + p_ioc + p_mkt + p_cancel:
                        c.kind = k.K_CANCEL
                    else:
                        c.kind = k.K_MODIFY
                        price = st[oo + slot * k.OF + k.O_PRICE] + d[7] % 7 - 3
                        c.price_ticks = min(max(price, lo), hi)
                        c.qty_t = 1 + d[3] % max_qty
        dispatch.dispatch(
            st,
            out,
            0,
            np.int64(c.kind),
            c.seq,
            c.ts_ns,
            c.order_id,
            c.price_ticks,
            c.qty_t,
            c.aux,
            np.int64(c.account),
            np.int64(c.instrument),
            np.int64(c.side),
            np.int64(c.order_type),
            np.int64(c.tif),
            np.int64(c.stp),
            np.int64(c.year),
        )
        ask, bid = st[io + k.I_ASK], st[io + k.I_BID]
        if ask != 0 and bid != 0 and walk == 0:
            mid = (ask + bid) // 2
    return cmds


def generate(name: str, n_commands: int, seed: int) -> tuple[MarketDefinition, np.ndarray]:
    """The workload ``name`` as ``n_commands`` records, and the market it runs on."""
    spec = WORKLOADS[name]
    market = market_for(spec)
    scratch = CompiledEngine(market)
    instrument = market.instruments[0]
    lo, hi = (
        int(scratch._inst()[0, k.I_LO]),
        int(scratch._inst()[0, k.I_HI]),
    )
    rng = np.random.Generator(np.random.PCG64(seed))
    draws = rng.integers(0, 2**62, size=(n_commands, 8), dtype=np.int64)
    params = (
        instrument.reference_price_ticks,
        lo,
        hi,
        spec.accounts,
        spec.target_resting,
        spec.pct_gtc,
        spec.pct_ioc,
        spec.pct_market,
        spec.pct_cancel,
        spec.spread_ticks,
        spec.walk_ticks,
        spec.max_qty_t,
        spec.prefill,
        spec.reference_price_ticks * spec.swing_bps // 10_000,
        spec.swing_cycles,
        spec.reference_price_ticks * spec.crash_bps // 10_000,
    )
    out = np.zeros((scratch._st[k.M_CAP] + 64, EVENT_FIELDS), dtype=np.int64)
    cmds = np.zeros(n_commands, dtype=COMMAND_DTYPE)
    _assemble(scratch._st, out, cmds, draws, params)
    return market, cmds

"""Trading sessions: open and close (bands, day statistics, day-order expiry), phases, halts."""

from __future__ import annotations

from engine.core.compiled import ledger, modes
from engine.core.compiled.layout import *  # noqa: F403 - the kernels' vocabulary
from engine.core.compiled.ledger import emit as _ev
from engine.core.compiled.matching import cancel_sorted, collect_orders
from engine.core.records import (
    COMMAND_REJECTED,
    SESSION_CLOSED,
    SESSION_OPENED,
    TRADING_PHASE_CHANGED,
)

DEPENDENCIES_DIGEST = "4bec2827175689b8"
"""See ``engine.numba_cache``: the digest of the files this module compiles in."""


# ------------------------------------------------------------------------------------------
# sessions
# ------------------------------------------------------------------------------------------


@entry_allocating
def capped_band(st, ins, bps):
    """``band_edges`` around the reference, the upper edge capped where the ladder ends."""
    io = st[M_OFF_INST] + ins * IF
    tick = st[io + I_TICK]
    lower, upper = modes.band_edges(st[io + I_REF], bps, tick)
    ceiling = st[M_LADDER] - 1  # the ladder ends at max_price_ticks: so must the band
    return lower, min(upper, ceiling - ceiling % tick)


@entry_allocating
def set_band(st, ins):
    """The listing band and the block band around the reference price (market.band_edges)."""
    io = st[M_OFF_INST] + ins * IF
    st[io + I_LO], st[io + I_HI] = capped_band(st, ins, st[io + I_BAND])
    st[io + I_BLOCK_LO], st[io + I_BLOCK_HI] = capped_band(st, ins, st[io + I_BLOCK_BAND])


@inheriting
def reject_command(out, n, seq, ts, kind, ins, reason):
    n = _ev(out, n, EV_COMMAND_REJECTED, seq, ts, ins, 0, 0, 0, 0, 0, reason)
    out[n - 1, COMMAND_REJECTED.command] = kind
    return n


@inheriting
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


@inheriting
def open_session(st, out, n, seq, ts, ins, date):
    io = st[M_OFF_INST]
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        return reject_command(out, n, seq, ts, K_OPEN_SESSION, ins, R_UNKNOWN_INSTRUMENT)
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
        out[n - 1, SESSION_OPENED.trading_date] = date
        out[n - 1, SESSION_OPENED.lower_band_ticks] = st[io + (i) * IF + I_LO]
        out[n - 1, SESSION_OPENED.upper_band_ticks] = st[io + (i) * IF + I_HI]
        first_reason = -1
    if first_reason > 0:
        return reject_command(out, n, seq, ts, K_OPEN_SESSION, ins, first_reason)
    return n


@allocating
def _close_one(st, out, n, seq, ts, ins):
    io = st[M_OFF_INST]
    n = cancel_sorted(st, out, n, seq, ts, collect_orders(st, -1, ins, True), C_SESSION_END)
    n = modes.expire_offers(st, out, n, seq, ts, ins, C_SESSION_END)
    ref = st[io + (ins) * IF + I_REF]
    vol = st[io + (ins) * IF + I_VOL]
    if vol > 0:
        tick = st[io + (ins) * IF + I_TICK]
        vwap = (st[io + (ins) * IF + I_VAL] + vol // 2) // vol
        close = ((vwap + tick // 2) // tick) * tick
        day_open, high, low = (
            st[io + (ins) * IF + I_OPEN],
            st[io + (ins) * IF + I_HIGH],
            st[io + (ins) * IF + I_LOW],
        )
    else:
        close = day_open = high = low = ref
    n = _ev(out, n, EV_SESSION_CLOSED, seq, ts, ins, 0, 0, 0, close, vol, 0)
    out[n - 1, SESSION_CLOSED.trading_date] = st[io + (ins) * IF + I_DATE]
    out[n - 1, SESSION_CLOSED.open_ticks] = day_open
    out[n - 1, SESSION_CLOSED.high_ticks] = high
    out[n - 1, SESSION_CLOSED.low_ticks] = low
    out[n - 1, SESSION_CLOSED.value_fen] = st[io + (ins) * IF + I_VAL]
    out[n - 1, SESSION_CLOSED.trade_count] = st[io + (ins) * IF + I_TRADES]
    n = modes.report_volumes(st, out, n, seq, ts, ins)
    st[io + (ins) * IF + I_STATE] = CLOSED
    st[io + (ins) * IF + I_REF] = close
    set_band(st, ins)
    return n


@inheriting
def close_session(st, out, n, seq, ts, ins):
    io = st[M_OFF_INST]
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        return reject_command(out, n, seq, ts, K_CLOSE_SESSION, ins, R_UNKNOWN_INSTRUMENT)
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
        return reject_command(out, n, seq, ts, K_CLOSE_SESSION, ins, R_NOT_OPEN)
    if closed_allowance:
        n = modes.composite_price(st, out, n, seq, ts)
    return n


@inheriting
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
    out[n - 1, TRADING_PHASE_CHANGED.phase] = phase
    out[n - 1, TRADING_PHASE_CHANGED.modes] = now
    return n, 0


@inheriting
def set_phase(st, out, n, seq, ts, ins, phase):
    if ins < INSTRUMENT_ALL or ins >= st[M_N_INST]:
        return reject_command(out, n, seq, ts, K_SET_PHASE, ins, R_UNKNOWN_INSTRUMENT)
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
        return reject_command(out, n, seq, ts, K_SET_PHASE, ins, first_reason)
    return n


@inheriting
def halt_resume(st, out, n, seq, ts, kind, ins):
    io = st[M_OFF_INST]
    if ins < 0 or ins >= st[M_N_INST]:
        return reject_command(out, n, seq, ts, kind, ins, R_UNKNOWN_INSTRUMENT)
    if kind == K_HALT:
        if st[io + (ins) * IF + I_STATE] != OPEN:
            return reject_command(out, n, seq, ts, kind, ins, R_NOT_OPEN)
        st[io + (ins) * IF + I_STATE] = HALTED
        return _ev(out, n, EV_HALTED, seq, ts, ins, 0, 0, 0, 0, 0, 0)
    if st[io + (ins) * IF + I_STATE] != HALTED:
        return reject_command(out, n, seq, ts, kind, ins, R_NOT_HALTED)
    st[io + (ins) * IF + I_STATE] = OPEN
    return _ev(out, n, EV_RESUMED, seq, ts, ins, 0, 0, 0, 0, 0, 0)

"""The compiled entry points: the whole exchange state in one int64 array, one compiled loop.

Commands arrive either as a record batch (:func:`process_batch`, the log and replay path) or
as scalars (:func:`apply_outcome`, the one-command Python APIs, typed and lean: it also sums
up the outcome); both run :func:`dispatch`.  Events
are written as 16-int64 rows (``engine.core.records`` columns) into a caller-provided array.  Before
each command the kernel checks that the output has room for the worst case (one event per
resting order plus a few), and otherwise returns so the caller can grow it: a command is never
half applied.

The rules are those of ``docs/MATCHING.md``; ``engine/core/reference/engine.py`` is their plain-Python
statement and the differential tests hold the two to identical events and state hashes.  All
functions run unchanged under ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import numpy as np

from engine.core.compiled import layout, ledger, modes
from engine.core.compiled.book import hash_find, prefetch_ahead
from engine.core.compiled.layout import *  # noqa: F403 - the kernels' vocabulary
from engine.core.compiled.matching import cancel, mass_cancel, modify, submit
from engine.core.compiled.sessions import close_session, halt_resume, open_session, set_phase
from engine.core.records import E_KIND, E_QTY, E_REASON

DEPENDENCIES_DIGEST = "493abb6cc61e1493"
"""See ``engine.numba_cache``: the digest of the files this module compiles in."""


# ------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------


@inlined
def dispatch(
    st, out, n, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp, year
):
    if kind == K_SUBMIT:
        return submit(st, out, n, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp)
    if kind == K_MODIFY:
        return modify(st, out, n, seq, ts, oid, price, qty, acct)
    if kind == K_CANCEL:
        return cancel(st, out, n, seq, ts, oid, acct)
    if kind == K_MASS_CANCEL:
        return mass_cancel(st, out, n, seq, ts, acct, ins)
    if kind == K_OPEN_SESSION:
        return open_session(st, out, n, seq, ts, ins, aux)
    if kind == K_CLOSE_SESSION:
        return close_session(st, out, n, seq, ts, ins)
    if kind == K_HALT or kind == K_RESUME:
        return halt_resume(st, out, n, seq, ts, kind, ins)
    if kind == K_SET_PHASE:
        return set_phase(st, out, n, seq, ts, ins, aux)
    if K_BLOCK_OFFER <= kind <= K_AUCTION_CANCEL:
        return modes.mode_command(
            st, out, n, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype
        )
    if K_OPEN_ACCOUNT <= kind <= K_CLOSE_YEAR:
        return ledger.registry_command(
            st, out, n, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype, year
        )
    raise ValueError("unknown command kind")


@kernel
def has_room(st, out, n):
    # A close cancels every resting order and block offer and reports two events per
    # instrument (SessionClosed, SessionModeVolumes); an auction reports one event per bid.
    reserve = st[M_LIVE] + 2 * st[M_N_INST] + EVENTS_RESERVE + st[M_BLOCK_LIVE] + st[M_BIDS_LIVE]
    if st[M_REGISTRY] != 0:
        reserve += st[M_N_ACCOUNTS]  # closing a compliance year reports every entity
    return out.shape[0] - n >= reserve


@entry_kernel
def apply_outcome(
    st, out, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp, year
):
    """Apply one command given as scalars, summarised so that a caller in Python needs no
    event rows: ``(events, reason, filled_t, resting_t)`` - the number of events written to
    ``out`` (-1: ``out`` too small, nothing applied), the reject reason (0 if none), and for an
    order command the quantity the order took from the book and what of it rests now.

    The one entry point of both one-command APIs (typed ``apply`` reads only ``events``): a
    second one would compile, optimise and cache the whole command tree again on an empty
    cache (~1.2 s of the first ``CompiledEngine``)."""
    n = -1
    if has_room(st, out, 0):
        n = dispatch(
            st, out, 0, kind, seq, ts, oid, price, qty, aux, acct, ins, side, otype, tif, stp, year
        )
    reason = 0
    filled = 0
    for i in range(max(n, 0)):
        event = out[i, E_KIND]
        if event == EV_TRADE:
            filled += out[i, E_QTY]
        elif event == EV_REJECTED or event == EV_CANCEL_REJECTED or event == EV_MODIFY_REJECTED:
            reason = out[i, E_REASON]
    slot = hash_find(st, oid)
    resting = st[st[M_OFF_ORDERS] + slot * OF + O_LEAVES] if slot >= 0 else 0
    return n, reason, filled, resting


@entry_kernel
def process_batch(st, cmds, start, out):
    """Apply records ``cmds[start:]`` until done or ``out`` may overflow.

    Returns ``(next_index, events_written)``; the caller drains ``out`` and calls again from
    ``next_index`` while it is below ``len(cmds)``.
    """
    n = 0
    i = start
    while i < cmds.shape[0]:
        if not has_room(st, out, n):
            break
        prefetch_ahead(st, cmds, out, i, n)
        c = cmds[i]  # fields by name: a numpy record (NUMBA_DISABLE_JIT=1) has no attributes
        n = dispatch(
            st,
            out,
            n,
            np.int64(c["kind"]),
            c["seq"],
            c["ts_ns"],
            c["order_id"],
            c["price_ticks"],
            c["qty_t"],
            c["aux"],
            np.int64(c["account"]),
            np.int64(c["instrument"]),
            np.int64(c["side"]),
            np.int64(c["order_type"]),
            np.int64(c["tif"]),
            np.int64(c["stp"]),
            np.int64(c["year"]),
        )
        i += 1
    return i, n


@layout._compiled(True, _nrt=False, nogil=True)  # an entry kernel that releases the GIL
def process_batch_released(st, cmds, start, out):
    """:func:`process_batch` with the GIL released while it runs, for a caller whose other
    threads have work meanwhile (``replay audit`` reads and hashes the log beside it).

    A separate entry point, compiled (or loaded from the cache) on first use: the one-command
    paths and the sequencer keep a call that holds the GIL, so no other thread can take it in
    the middle of a client's command.  Call it with the argument types of ``process_batch``'s
    single signature, which it then shares."""
    return process_batch(st, cmds, start, out)

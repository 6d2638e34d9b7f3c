"""The compiled ledger: pre-trade locks, delivery-versus-payment settlement and the registry.

Theory of operation
-------------------
The ledger lives in the same state array as the books (``engine.core.compiled.layout``): an account table
(kind, freeze flag, available and locked cash), a holdings table per (account, instrument)
(tradable, locked, frozen, unsettled), per-instrument totals (issued, clawed back, surrendered,
cancelled), a compliance table per (year, account) and an open-addressing table of the
idempotency keys of registry commands.  The matching kernel calls in here at four points:
before accepting an order (:func:`order_reason`), when it locks or releases an order's need
(:func:`lock`, :func:`unlock`), on every fill (:func:`settle`) and when a session opens
(:func:`release_unsettled`, the T+1 rule).  Registry commands are handled whole by
:func:`registry_command`.  Everything follows ``docs/LEDGER.md``; with the registry off
(``st[M_REGISTRY] == 0``) none of this runs and the engine is a pure matching engine.

The *need* of an open buy order is ``leaves × lock price`` plus the buy fee on that value; a
sell needs its leaves in allowances.  Locked balances always equal the sum of the open orders'
needs, which is what makes every release exact.
"""

from __future__ import annotations

import numpy as np

from engine.core.compiled.layout import *  # noqa: F403 - the kernels' shared vocabulary
from engine.core.records import (
    ACCOUNT_OPENED,
    ALLOWANCES_CLAWED_BACK,
    ALLOWANCES_ISSUED,
    ALLOWANCES_SURRENDERED,
    ALLOWANCES_TRANSFERRED,
    CASH_DEPOSITED,
    CASH_WITHDRAWN,
    COMPLIANCE_REPORTED,
    COMPLIANCE_YEAR_CLOSED,
    DUPLICATE_COMMAND,
    E_ACCOUNT,
    E_INSTRUMENT,
    E_KIND,
    E_ORDER_ID,
    E_PRICE,
    E_QTY,
    E_REASON,
    E_SEQ,
    E_SIDE,
    E_TS,
    E_X0,
    E_X1,
    E_X2,
    E_X3,
    E_X4,
    E_X5,
    EMISSIONS_REPORTED,
    REGISTRY_REJECTED,
)

DEPENDENCIES_DIGEST = "393e8fcb7707006c"
"""See ``engine.numba_cache``: the digest of the files this module compiles in."""


assert CASH_DEPOSITED.available_fen == CASH_WITHDRAWN.available_fen, "_cash writes either"


@kernel
def emit(out, n, kind, seq, ts, ins, oid, acct, side, price, qty, reason):
    """Write one event row (x0..x5 zeroed) and return the next row index."""
    out[n, E_KIND] = kind
    out[n, E_SEQ] = seq
    out[n, E_TS] = ts
    out[n, E_INSTRUMENT] = ins
    out[n, E_ORDER_ID] = oid
    out[n, E_ACCOUNT] = acct
    out[n, E_SIDE] = side
    out[n, E_PRICE] = price
    out[n, E_QTY] = qty
    out[n, E_REASON] = reason
    out[n, E_X0] = 0
    out[n, E_X1] = 0
    out[n, E_X2] = 0
    out[n, E_X3] = 0
    out[n, E_X4] = 0
    out[n, E_X5] = 0
    return n + 1


@allocating
def in_key_order(values, keys):
    """``values`` ordered by ascending ``keys``, equal keys keeping their order: exactly
    ``values[np.argsort(keys, kind="stable")]``, for equal-length int64 arrays.

    The kernels' one sort, a bottom-up merge sort (stable, O(n log n)): Numba's own sorts
    (quicksort for ``ndarray.sort`` and ``np.argsort``, merge sort for ``kind="mergesort"``)
    compiled into some 2 s of a first ``CompiledEngine``, for the few commands that sort."""
    count = keys.shape[0]
    order = np.empty(count, dtype=np.int64)
    spare = np.empty(count, dtype=np.int64)
    for i in range(count):
        order[i] = i
    width = 1
    while width < count:
        for low in range(0, count, 2 * width):
            middle = min(low + width, count)
            high = min(low + 2 * width, count)
            left, right = low, middle
            for k in range(low, high):
                if left < middle and (right >= high or keys[order[left]] <= keys[order[right]]):
                    spare[k] = order[left]
                    left += 1
                else:
                    spare[k] = order[right]
                    right += 1
        order, spare = spare, order
        width *= 2
    result = np.empty(count, dtype=np.int64)
    for i in range(count):
        result[i] = values[order[i]]
    return result


# ------------------------------------------------------------------------------------------
# trading: locks and settlement
# ------------------------------------------------------------------------------------------


@kernel
def fee(value, bps):
    """Fee in fen on a trade value, rounded down.

    Split so that ``value × bps`` never overflows int64: a block offer or auction lot may be
    worth up to ~10^18 fen (exact: with ``value = 10000 q + r``, ``⌊value × bps / 10000⌋ =
    q × bps + ⌊r × bps / 10000⌋``)."""
    return (value // 10_000) * bps + (value % 10_000) * bps // 10_000


@kernel
def need(st, qty, price):
    """Cash an open buy of ``qty`` at lock price ``price`` must have locked."""
    value = qty * price
    return value + fee(value, st[M_BUY_BPS])


@kernel
def _acc(st, acct, column):
    return st[M_OFF_ACC] + acct * AF + column


@kernel
def _hold(st, acct, ins, column):
    return st[M_OFF_HOLD] + (acct * st[M_N_INST] + ins) * HF + column


@kernel
def account_open(st, acct):
    return 0 <= acct < st[M_N_ACCOUNTS] and st[_acc(st, acct, A_OPEN)] == 1


@kernel
def order_reason(st, acct, ins, side, qty, lock_price):
    """Checks 12a-12c of docs/LEDGER.md for a new order; 0 when it may be accepted."""
    kind = st[_acc(st, acct, A_KIND)]
    if kind != COMPLIANCE and kind != INVESTOR:
        return R_MAY_NOT_TRADE
    if st[M_BUY_BPS] + st[M_SELL_BPS] > 0:
        fee_account = st[M_FEE_ACCOUNT]
        if not account_open(st, fee_account) or st[_acc(st, fee_account, A_KIND)] != FEE:
            return R_FEE_ACCOUNT
    if st[_acc(st, acct, A_FROZEN)] != 0:
        return R_ACCOUNT_FROZEN
    if side == SELL:
        if st[_hold(st, acct, ins, H_TRADABLE)] < qty:
            return R_NO_ALLOWANCES
    elif st[_acc(st, acct, A_CASH)] < need(st, qty, lock_price):
        return R_NO_CASH
    return 0


@kernel
def lock(st, acct, ins, side, qty, lock_price):
    """Lock the need of ``qty`` (buy: cash at ``lock_price``; sell: allowances)."""
    if side == SELL:
        st[_hold(st, acct, ins, H_TRADABLE)] -= qty
        st[_hold(st, acct, ins, H_LOCKED)] += qty
    else:
        amount = need(st, qty, lock_price)
        st[_acc(st, acct, A_CASH)] -= amount
        st[_acc(st, acct, A_CASH_LOCKED)] += amount


@kernel
def unlock(st, acct, ins, side, qty, lock_price):
    """Release the need of ``qty`` back to the account (cancel, expiry, remainder)."""
    if side == SELL:
        st[_hold(st, acct, ins, H_LOCKED)] -= qty
        st[_hold(st, acct, ins, H_TRADABLE)] += qty
    else:
        amount = need(st, qty, lock_price)
        st[_acc(st, acct, A_CASH_LOCKED)] -= amount
        st[_acc(st, acct, A_CASH)] += amount


@kernel
def settle(st, ins, buyer, buy_leaves, buy_lock_price, seller, price, qty):
    """Delivery versus payment of one fill, before either order's leaves are reduced."""
    value = price * qty
    buy_fee = fee(value, st[M_BUY_BPS])
    sell_fee = fee(value, st[M_SELL_BPS])
    released = need(st, buy_leaves, buy_lock_price) - need(st, buy_leaves - qty, buy_lock_price)
    st[_acc(st, buyer, A_CASH_LOCKED)] -= released
    st[_acc(st, buyer, A_CASH)] += released - value - buy_fee
    st[_hold(st, buyer, ins, H_UNSETTLED)] += qty
    st[_hold(st, seller, ins, H_LOCKED)] -= qty
    st[_acc(st, seller, A_CASH)] += value - sell_fee
    st[_acc(st, st[M_FEE_ACCOUNT], A_CASH)] += buy_fee + sell_fee


@kernel
def modify_reason(st, acct, ins, side, leaves, lock_price, new_qty, new_price):
    """Whether a modify's grown need can be locked; 0 when it can."""
    if st[_acc(st, acct, A_FROZEN)] != 0:
        return R_ACCOUNT_FROZEN
    if side == SELL:
        if new_qty - leaves > st[_hold(st, acct, ins, H_TRADABLE)]:
            return R_NO_ALLOWANCES
    elif need(st, new_qty, new_price) - need(st, leaves, lock_price) > st[_acc(st, acct, A_CASH)]:
        return R_NO_CASH
    return 0


@kernel
def release_unsettled(st, ins):
    """T+1: what was bought before this session becomes tradable."""
    for acct in range(st[M_N_ACCOUNTS]):
        at = _hold(st, acct, ins, H_UNSETTLED)
        if st[at] != 0:
            st[_hold(st, acct, ins, H_TRADABLE)] += st[at]
            st[at] = 0


# ------------------------------------------------------------------------------------------
# idempotency keys
# ------------------------------------------------------------------------------------------


@kernel
def _key_slot(st, key):
    """Slot of ``key`` in the key table, or of the empty slot where it would go."""
    mask = st[M_KEYS_CAP] - 1
    base = st[M_OFF_KEYS]
    i = (key ^ (key >> 17) ^ (key >> 41)) & mask
    while st[base + i * KF + KEY_KEY] != 0 and st[base + i * KF + KEY_KEY] != key:
        i = (i + 1) & mask
    return base + i * KF


@entry_kernel
def remember(st, key, seq, reason, kind):
    at = _key_slot(st, key)
    st[at + KEY_KEY] = key
    st[at + KEY_SEQ] = seq
    st[at + KEY_REASON] = reason
    st[at + KEY_KIND] = kind
    st[M_KEYS_USED] += 1


# ------------------------------------------------------------------------------------------
# registry commands
# ------------------------------------------------------------------------------------------


@kernel
def _needs_instrument(kind):
    return kind in (
        K_ISSUE,
        K_CLAW_BACK,
        K_TRANSFER,
        K_FREEZE,
        K_UNFREEZE,
        K_CANCEL_ALLOWANCES,
        K_SURRENDER,
    )


@kernel
def _has_amount(kind):
    return kind in (
        K_DEPOSIT,
        K_WITHDRAW,
        K_ISSUE,
        K_CLAW_BACK,
        K_TRANSFER,
        K_FREEZE,
        K_UNFREEZE,
        K_CANCEL_ALLOWANCES,
        K_SURRENDER,
    )


@kernel
def _common_reason(st, kind, acct, ins, qty):
    """REGISTRY_DISABLED → UNKNOWN_INSTRUMENT → UNKNOWN_ACCOUNT → INVALID_AMOUNT."""
    if st[M_REGISTRY] == 0:
        return R_REGISTRY_DISABLED
    if _needs_instrument(kind) and not 0 <= ins < st[M_N_INST]:
        return R_UNKNOWN_INSTRUMENT
    if kind == K_OPEN_ACCOUNT:
        if not 0 <= acct < st[M_N_ACCOUNTS]:
            return R_UNKNOWN_ACCOUNT
    elif kind != K_CLOSE_YEAR and not account_open(st, acct):
        return R_UNKNOWN_ACCOUNT
    if _has_amount(kind):
        limit = CASH_MAX_FEN if kind == K_DEPOSIT or kind == K_WITHDRAW else QTY_MAX_T
        if qty <= 0 or qty > limit:
            return R_INVALID_AMOUNT
    return 0


@kernel
def _year_reason(st, year):
    slot = year - st[M_FIRST_YEAR]
    if slot < 0 or slot >= YEARS:
        return R_INVALID_YEAR
    if (st[M_CLOSED_YEARS] >> slot) & 1:
        return R_YEAR_CLOSED
    return 0


@kernel
def _comp(st, year, acct, column):
    return st[M_OFF_COMP] + ((year - st[M_FIRST_YEAR]) * st[M_N_ACCOUNTS] + acct) * CF + column


@kernel
def _open_account(st, out, n, seq, ts, key, acct, kind, sector, province):
    if st[_acc(st, acct, A_OPEN)] != 0:
        return n, R_ACCOUNT_EXISTS
    if kind < COMPLIANCE or kind > FEE or not (0 <= sector <= 4 or sector == 9):
        return n, R_INVALID_KIND
    st[_acc(st, acct, A_OPEN)] = 1
    st[_acc(st, acct, A_KIND)] = kind
    st[_acc(st, acct, A_SECTOR)] = sector
    st[_acc(st, acct, A_PROVINCE)] = province
    n = emit(out, n, EV_ACCOUNT_OPENED, seq, ts, 0, key, acct, 0, 0, 0, 0)
    out[n - 1, ACCOUNT_OPENED.kind] = kind
    out[n - 1, ACCOUNT_OPENED.sector] = sector
    out[n - 1, ACCOUNT_OPENED.province] = province
    return n, 0


@kernel
def _cash(st, out, n, kind, seq, ts, key, acct, amount):
    cash = _acc(st, acct, A_CASH)
    if kind == K_WITHDRAW:
        if st[_acc(st, acct, A_FROZEN)] != 0:
            return n, R_ACCOUNT_FROZEN
        if st[cash] < amount:
            return n, R_NO_CASH
        st[cash] -= amount
        st[M_WITHDRAWN] += amount
        event = EV_CASH_WITHDRAWN
    else:
        if st[M_DEPOSITED] - st[M_WITHDRAWN] + amount > CASH_TOTAL_MAX_FEN:
            return n, R_INVALID_AMOUNT
        st[cash] += amount
        st[M_DEPOSITED] += amount
        event = EV_CASH_DEPOSITED
    n = emit(out, n, event, seq, ts, 0, key, acct, 0, 0, amount, 0)
    out[n - 1, CASH_DEPOSITED.available_fen] = st[cash]
    return n, 0


@kernel
def _move(st, acct, ins, source, target, qty):
    """Move ``qty`` between two sub-balances of a holding; False if the source is short."""
    if st[_hold(st, acct, ins, source)] < qty:
        return False
    st[_hold(st, acct, ins, source)] -= qty
    st[_hold(st, acct, ins, target)] += qty
    return True


@kernel
def _holding_command(st, out, n, kind, seq, ts, key, acct, ins, qty, aux, side):
    """Issue, claw back, transfer, freeze, unfreeze and cancel allowances."""
    tradable = _hold(st, acct, ins, H_TRADABLE)
    io = st[M_OFF_INST] + ins * IF
    if kind == K_ISSUE:
        st[tradable] += qty
        st[io + I_ISSUED] += qty
    elif kind == K_TRANSFER:
        if not account_open(st, aux):
            return n, R_UNKNOWN_ACCOUNT
        if st[_acc(st, acct, A_FROZEN)] != 0:
            return n, R_ACCOUNT_FROZEN
        if st[tradable] < qty:
            return n, R_NO_ALLOWANCES
        st[tradable] -= qty
        st[_hold(st, aux, ins, H_TRADABLE)] += qty
    elif kind == K_UNFREEZE:
        if not _move(st, acct, ins, H_FROZEN, H_TRADABLE, qty):
            return n, R_NO_ALLOWANCES
    else:
        if kind == K_CANCEL_ALLOWANCES and st[_acc(st, acct, A_FROZEN)] != 0:
            return n, R_ACCOUNT_FROZEN
        if st[tradable] < qty:
            return n, R_NO_ALLOWANCES
        if kind == K_FREEZE:
            _move(st, acct, ins, H_TRADABLE, H_FROZEN, qty)
        else:
            st[tradable] -= qty
            st[io + (I_CLAWED if kind == K_CLAW_BACK else I_CANCELLED)] += qty
    n = emit(out, n, kind, seq, ts, ins, key, acct, 0, 0, qty, 0)
    if kind == K_ISSUE:
        out[n - 1, ALLOWANCES_ISSUED.true_up] = side
        out[n - 1, ALLOWANCES_ISSUED.tradable_t] = st[tradable]
    elif kind == K_TRANSFER:
        out[n - 1, ALLOWANCES_TRANSFERRED.to_account] = aux
    elif kind == K_CLAW_BACK:
        out[n - 1, ALLOWANCES_CLAWED_BACK.tradable_t] = st[tradable]
    return n, 0


@kernel
def _freeze_account(st, out, n, kind, seq, ts, key, acct):
    frozen = _acc(st, acct, A_FROZEN)
    if kind == K_FREEZE_ACCOUNT:
        if st[frozen] != 0:
            return n, R_ACCOUNT_FROZEN
        st[frozen] = 1
    else:
        if st[frozen] == 0:
            return n, R_NOT_FROZEN
        st[frozen] = 0
    return emit(out, n, kind, seq, ts, 0, key, acct, 0, 0, 0, 0), 0


@kernel
def _report(st, out, n, seq, ts, key, acct, year, co2, cf4, c2f6, gwp):
    if st[_acc(st, acct, A_KIND)] != COMPLIANCE:
        return n, R_NOT_COMPLIANCE
    reason = _year_reason(st, year)
    if reason != 0:
        return n, reason
    if gwp < 1 or gwp > 3:
        return n, R_INVALID_GWP
    if not (0 <= co2 <= QTY_MAX_T and 0 <= cf4 <= QTY_MAX_T and 0 <= c2f6 <= QTY_MAX_T):
        return n, R_INVALID_AMOUNT
    obligation = co2 + (cf4 * GWP_CF4[gwp] + c2f6 * GWP_C2F6[gwp] + 500) // 1000
    if obligation > OBLIGATION_MAX_T:
        return n, R_INVALID_AMOUNT
    st[_comp(st, year, acct, C_OBLIGATION)] = obligation
    st[_comp(st, year, acct, C_REPORTED)] = 1
    n = emit(out, n, EV_EMISSIONS, seq, ts, 0, key, acct, 0, 0, obligation, 0)
    out[n - 1, EMISSIONS_REPORTED.year] = year
    out[n - 1, EMISSIONS_REPORTED.co2_t] = co2
    out[n - 1, EMISSIONS_REPORTED.cf4_kg] = cf4
    out[n - 1, EMISSIONS_REPORTED.c2f6_kg] = c2f6
    out[n - 1, EMISSIONS_REPORTED.gwp] = gwp
    return n, 0


@kernel
def _surrender(st, out, n, seq, ts, key, acct, ins, year, qty):
    if st[_acc(st, acct, A_KIND)] != COMPLIANCE:
        return n, R_NOT_COMPLIANCE
    if st[_acc(st, acct, A_FROZEN)] != 0:
        return n, R_ACCOUNT_FROZEN
    reason = _year_reason(st, year)
    if reason != 0:
        return n, reason
    io = st[M_OFF_INST] + ins * IF
    offset = st[io + I_OFFSET] != 0
    if not offset and st[io + I_VINTAGE] > year:
        return n, R_NOT_ELIGIBLE
    if offset:
        cap = st[_comp(st, year, acct, C_OBLIGATION)] * st[M_OFFSET_BPS] // 10_000
        if st[_comp(st, year, acct, C_OFFSETS)] + qty > cap:
            return n, R_OFFSET_LIMIT
    tradable = _hold(st, acct, ins, H_TRADABLE)
    if st[tradable] < qty:
        return n, R_NO_ALLOWANCES
    st[tradable] -= qty
    st[io + I_SURRENDERED] += qty
    st[_comp(st, year, acct, C_OFFSETS if offset else C_SURRENDERED)] += qty
    n = emit(out, n, EV_SURRENDERED, seq, ts, ins, key, acct, 0, 0, qty, 0)
    out[n - 1, ALLOWANCES_SURRENDERED.year] = year
    return n, 0


@kernel
def _close_year(st, out, n, seq, ts, key, year, price):
    reason = _year_reason(st, year)
    if reason != 0:
        return n, reason
    if price <= 0 or price >= st[M_LADDER]:
        return n, R_INVALID_AMOUNT
    entities = 0
    for acct in range(st[M_N_ACCOUNTS]):
        if not account_open(st, acct) or st[_acc(st, acct, A_KIND)] != COMPLIANCE:
            continue
        obligation = st[_comp(st, year, acct, C_OBLIGATION)]
        surrendered = st[_comp(st, year, acct, C_SURRENDERED)]
        offsets = st[_comp(st, year, acct, C_OFFSETS)]
        shortfall = max(0, obligation - surrendered - offsets)
        n = emit(out, n, EV_COMPLIANCE, seq, ts, 0, 0, acct, 0, price, obligation, 0)
        out[n - 1, COMPLIANCE_REPORTED.year] = year
        out[n - 1, COMPLIANCE_REPORTED.surrendered_t] = surrendered
        out[n - 1, COMPLIANCE_REPORTED.offsets_t] = offsets
        out[n - 1, COMPLIANCE_REPORTED.shortfall_t] = shortfall
        out[n - 1, COMPLIANCE_REPORTED.penalty_fen] = shortfall * price * st[M_PENALTY]
        entities += 1
    st[M_CLOSED_YEARS] |= 1 << (year - st[M_FIRST_YEAR])
    n = emit(out, n, EV_YEAR_CLOSED, seq, ts, 0, key, 0, 0, price, 0, 0)
    out[n - 1, COMPLIANCE_YEAR_CLOSED.year] = year
    out[n - 1, COMPLIANCE_YEAR_CLOSED.entities] = entities
    return n, 0


@kernel
def _apply_registry(st, out, n, kind, seq, ts, key, price, qty, aux, acct, ins, side, otype, year):
    reason = _common_reason(st, kind, acct, ins, qty)
    if reason != 0:
        return n, reason
    if kind == K_OPEN_ACCOUNT:
        return _open_account(st, out, n, seq, ts, key, acct, side, otype, price)
    if kind == K_DEPOSIT or kind == K_WITHDRAW:
        return _cash(st, out, n, kind, seq, ts, key, acct, qty)
    if kind == K_FREEZE_ACCOUNT or kind == K_UNFREEZE_ACCOUNT:
        return _freeze_account(st, out, n, kind, seq, ts, key, acct)
    if kind == K_REPORT:
        return _report(st, out, n, seq, ts, key, acct, year, qty, price, aux, side)
    if kind == K_SURRENDER:
        return _surrender(st, out, n, seq, ts, key, acct, ins, year, qty)
    if kind == K_CLOSE_YEAR:
        return _close_year(st, out, n, seq, ts, key, year, price)
    return _holding_command(st, out, n, kind, seq, ts, key, acct, ins, qty, aux, side)


@kernel
def registry_command(st, out, n, kind, seq, ts, key, price, qty, aux, acct, ins, side, otype, year):
    """Apply one registry command with its idempotency rules; return the next event row."""
    reason = 0
    if st[M_REGISTRY] == 0:
        reason = R_REGISTRY_DISABLED  # not remembered: a pure matching market has no registry
    elif key <= 0:
        reason = R_INVALID_KEY
    else:
        at = _key_slot(st, key)
        if st[at + KEY_KEY] == key:
            n = emit(out, n, EV_DUPLICATE, seq, ts, 0, key, 0, 0, 0, 0, st[at + KEY_REASON])
            out[n - 1, DUPLICATE_COMMAND.original_seq] = st[at + KEY_SEQ]
            out[n - 1, DUPLICATE_COMMAND.command] = st[at + KEY_KIND]
            return n
        if st[M_KEYS_USED] >= st[M_KEYS_LIMIT]:
            reason = R_REGISTRY_FULL
    if reason == 0:
        n, reason = _apply_registry(
            st, out, n, kind, seq, ts, key, price, qty, aux, acct, ins, side, otype, year
        )
        remember(st, key, seq, reason, kind)
    if reason != 0:
        n = emit(out, n, EV_REGISTRY_REJECTED, seq, ts, ins, key, acct, 0, 0, 0, reason)
        out[n - 1, REGISTRY_REJECTED.command] = kind
    return n


# ------------------------------------------------------------------------------------------
# canonical state
# ------------------------------------------------------------------------------------------


@kernel
def hash_words_size(st):
    ni = st[M_N_INST]
    na = st[M_N_ACCOUNTS]
    return na * (7 + 4 * ni) + 4 * ni + YEARS * na * 6 + 2


@kernel
def hash_words(st, words, k):
    """Append the ledger's canonical words (docs/LEDGER.md) at ``words[k:]``; return the end."""
    ni = st[M_N_INST]
    for acct in range(st[M_N_ACCOUNTS]):
        if not account_open(st, acct):
            continue
        words[k] = acct
        for j, column in enumerate((A_KIND, A_SECTOR, A_PROVINCE, A_FROZEN, A_CASH, A_CASH_LOCKED)):
            words[k + 1 + j] = st[_acc(st, acct, column)]
        k += 7
        for ins in range(ni):
            for column in range(HF):
                words[k] = st[_hold(st, acct, ins, column)]
                k += 1
    for ins in range(ni):
        io = st[M_OFF_INST] + ins * IF
        for column in (I_ISSUED, I_CLAWED, I_SURRENDERED, I_CANCELLED):
            words[k] = st[io + column]
            k += 1
    for slot in range(YEARS):
        year = st[M_FIRST_YEAR] + slot
        for acct in range(st[M_N_ACCOUNTS]):
            base = _comp(st, year, acct, 0)
            if (
                st[base + C_REPORTED] == 0
                and st[base + C_SURRENDERED] == 0
                and st[base + C_OFFSETS] == 0
            ):
                continue
            words[k] = year
            words[k + 1] = acct
            words[k + 2] = st[base + C_OBLIGATION]
            words[k + 3] = st[base + C_SURRENDERED]
            words[k + 4] = st[base + C_OFFSETS]
            words[k + 5] = st[base + C_REPORTED]
            k += 6
    words[k] = st[M_CLOSED_YEARS]
    words[k + 1] = st[M_KEYS_USED]
    return k + 2

"""The reference ledger: docs/LEDGER.md in plain, obviously correct Python.

Theory of operation
-------------------
The registry's state is a handful of dictionaries: opened accounts (kind, sector, province,
freeze flag, available and locked cash, and one :class:`Holding` per instrument), per
instrument :class:`Totals` (issued, clawed back, surrendered, cancelled), a compliance
:class:`Position` per (year, account) that has a report or a surrender, the set of closed
compliance years, and every idempotency key seen with the seq, outcome and command tag of its
first use.

The reference matching engine (``engine.core.reference.engine``) calls the trading hooks at the points the
compiled kernel does: :meth:`Ledger.order_reason` after the matching checks of a submit,
:meth:`Ledger.lock` when an order is accepted, :meth:`Ledger.settle` on every fill (before the
orders' open quantities shrink), :meth:`Ledger.unlock` whenever an order leaves with open
quantity (cancel, IOC remainder, self-trade prevention, expiry, mass cancel),
:meth:`Ledger.modify_reason` for a modify, and :meth:`Ledger.release_unsettled` when a session
opens (T+1).  A buy's lock is always recomputed from its open quantity and lock price
(:meth:`Ledger.need_fen`), never tracked separately, so a release is exact by construction and
``check`` can rebuild every lock from the open orders alone.

Registry commands go through :meth:`Ledger.apply`: idempotency first (``INVALID_KEY``, a seen
key → ``DuplicateCommand``, ``REGISTRY_FULL``), then the common checks, then the command's own
checks in the documented order; only a command that passed every check changes balances.

Readings of docs/LEDGER.md where it is silent (the compiled engine agrees unless noted):

* The key table holds exactly ``capacity.registry_keys`` keys; the next new key is
  ``REGISTRY_FULL``.  (The compiled engine rounds that capacity up to a power of two.)
* Registry commands are idempotent with the registry off too: the key is remembered with
  ``REGISTRY_DISABLED``.  Such keys are not part of the state hash or of snapshots (there is
  no ledger), so a restored engine has forgotten them.
* ``ReportEmissions`` refuses a gas amount above ``limits.QTY_MAX_T`` (like a negative one)
  with ``INVALID_AMOUNT``.
* Fees credited while the fee account is not yet opened are kept aside and become its opening
  cash balance (the compiled engine's account row simply accumulates them); cash conservation
  counts them.  docs/LEDGER.md requires the fee account to be opened first.
* Events of a refused command carry the account as the record view can (outside int32: -1),
  and ``""`` as the instrument of a command that names none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.core import limits
from engine.core import schema as s
from engine.core import snapshot as snap
from engine.core.market import MarketDefinition
from engine.core.schema import RejectReason as RR

BUY, SELL = s.Side.BUY, s.Side.SELL
TRADING_KINDS = (s.AccountKind.COMPLIANCE, s.AccountKind.INVESTOR)
_KINDS = frozenset(int(k) for k in s.AccountKind)
_SECTORS = frozenset(int(v) for v in s.Sector)
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1

# Commands that name an instrument, and those whose amount the common checks validate.
_WITH_INSTRUMENT = (
    s.IssueAllowances,
    s.ClawBack,
    s.TransferAllowances,
    s.FreezeAllowances,
    s.UnfreezeAllowances,
    s.CancelAllowances,
    s.SurrenderAllowances,
)
_CASH_COMMANDS = (s.DepositCash, s.WithdrawCash)


def fee_fen(value_fen: int, bps: int) -> int:
    """Fee on a trade value, rounded down."""
    return value_fen * bps // 10_000


def obligation_t(co2_t: int, cf4_kg: int, c2f6_kg: int, gwp: s.GwpVersion) -> int:
    """tCO2e of a year's verified emissions (kilograms of CF4/C2F6 rounded half up)."""
    gwp_cf4, gwp_c2f6 = s.GWP_TABLE[gwp]
    return co2_t + (cf4_kg * gwp_cf4 + c2f6_kg * gwp_c2f6 + 500) // 1000


def _record_account(account: int) -> int:
    """The account as the record view carries it (int32; anything else becomes -1)."""
    return account if _I32_MIN <= account <= _I32_MAX else -1


class Holding:
    """One account's allowances of one instrument, by sub-balance."""

    __slots__ = ("tradable_t", "locked_t", "frozen_t", "unsettled_t")

    def __init__(self, tradable_t=0, locked_t=0, frozen_t=0, unsettled_t=0) -> None:
        self.tradable_t, self.locked_t = tradable_t, locked_t
        self.frozen_t, self.unsettled_t = frozen_t, unsettled_t

    def words(self) -> tuple[int, int, int, int]:
        return (self.tradable_t, self.locked_t, self.frozen_t, self.unsettled_t)


class Account:
    """An opened account: what it is, its cash, and a holding per instrument."""

    __slots__ = (
        "kind",
        "sector",
        "province",
        "frozen",
        "cash_available_fen",
        "cash_locked_fen",
        "holdings",
    )

    def __init__(self, kind: int, sector: int, province: int, instruments: int) -> None:
        self.kind = s.AccountKind(kind)
        self.sector = s.Sector(sector)
        self.province = province
        self.frozen = False
        self.cash_available_fen = 0
        self.cash_locked_fen = 0
        self.holdings = [Holding() for _ in range(instruments)]


class Totals:
    """Per instrument: what was ever issued, clawed back, surrendered and cancelled."""

    __slots__ = ("issued_t", "clawed_back_t", "surrendered_t", "cancelled_t")

    def __init__(self, issued_t=0, clawed_back_t=0, surrendered_t=0, cancelled_t=0) -> None:
        self.issued_t, self.clawed_back_t = issued_t, clawed_back_t
        self.surrendered_t, self.cancelled_t = surrendered_t, cancelled_t

    def words(self) -> tuple[int, int, int, int]:
        return (self.issued_t, self.clawed_back_t, self.surrendered_t, self.cancelled_t)


class Position:
    """One entity's compliance position in one year."""

    __slots__ = ("obligation_t", "surrendered_t", "offsets_t", "reported")

    def __init__(self, obligation_t=0, surrendered_t=0, offsets_t=0, reported=False) -> None:
        self.obligation_t, self.surrendered_t = obligation_t, surrendered_t
        self.offsets_t, self.reported = offsets_t, reported


class KeyRecord:
    """The first use of an idempotency key."""

    __slots__ = ("seq", "reason", "command")

    def __init__(self, seq: int, reason: int, command: int) -> None:
        self.seq, self.reason, self.command = seq, reason, command


class OpenOrder:
    """What the ledger needs to know about anything that holds a lock to check it: a resting
    order, and (docs/TRADING_MODES.md) a block offer, a sealed bid (a buy) or an auction lot
    (a sell)."""

    __slots__ = ("account", "instrument", "side", "qty_t", "lock_price_ticks")

    def __init__(self, account, instrument, side, qty_t, lock_price_ticks) -> None:
        self.account, self.instrument, self.side = account, instrument, side
        self.qty_t, self.lock_price_ticks = qty_t, lock_price_ticks


class Ledger:
    """Accounts, holdings, locks, settlement and the registry commands of docs/LEDGER.md.

    Parameters
    ----------
    market : MarketDefinition
        ``registry`` switches the ledger on; ``fee_account``, ``fees``, ``compliance`` and
        ``capacity`` (accounts, registry_keys) parameterise it.
    """

    def __init__(self, market: MarketDefinition) -> None:
        self.market = market
        self.enabled = market.registry
        self.symbols = market.symbols
        self._index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self.n_accounts = market.capacity.accounts
        self.key_capacity = market.capacity.registry_keys
        self.buy_bps, self.sell_bps = market.fees.buy_bps, market.fees.sell_bps
        self.fee_account = market.fee_account
        self.first_year = market.compliance.first_year
        self.accounts: dict[int, Account] = {}
        self.totals = [Totals() for _ in self.symbols]
        self.positions: dict[tuple[int, int], Position] = {}  # (year, account)
        self.closed_years: set[int] = set()
        self.keys: dict[int, KeyRecord] = {}
        self.deposited_fen = self.withdrawn_fen = 0
        self.unassigned_fees_fen = 0
        """Fees credited before the fee account was opened (its opening balance)."""
        self._handlers: dict[type, Callable[..., RR]] = {
            s.OpenAccount: self._open_account,
            s.DepositCash: self._deposit,
            s.WithdrawCash: self._withdraw,
            s.IssueAllowances: self._issue,
            s.ClawBack: self._claw_back,
            s.TransferAllowances: self._transfer,
            s.FreezeAllowances: self._freeze_allowances,
            s.UnfreezeAllowances: self._unfreeze_allowances,
            s.FreezeAccount: self._freeze_account,
            s.UnfreezeAccount: self._unfreeze_account,
            s.CancelAllowances: self._cancel_allowances,
            s.ReportEmissions: self._report,
            s.SurrenderAllowances: self._surrender,
            s.CloseComplianceYear: self._close_year,
        }

    # -- trading hooks -------------------------------------------------------------------------
    def account_open(self, account: int) -> bool:
        return account in self.accounts

    def need_fen(self, qty_t: int, lock_price_ticks: int) -> int:
        """Cash an open buy of ``qty_t`` at ``lock_price_ticks`` keeps locked."""
        value = qty_t * lock_price_ticks
        return value + fee_fen(value, self.buy_bps)

    def order_reason(self, account: int, ins: int, side: int, qty_t: int, lock_price: int) -> RR:
        """Checks 12a-12c of docs/LEDGER.md for a new order of an opened account."""
        a = self.accounts[account]
        if a.kind not in TRADING_KINDS:
            return RR.ACCOUNT_MAY_NOT_TRADE
        if self.buy_bps + self.sell_bps > 0:
            fee_account = self.accounts.get(self.fee_account)
            if fee_account is None or fee_account.kind != s.AccountKind.FEE:
                return RR.FEE_ACCOUNT_NOT_OPEN
        if a.frozen:
            return RR.ACCOUNT_FROZEN
        if side == SELL:
            if a.holdings[ins].tradable_t < qty_t:
                return RR.INSUFFICIENT_ALLOWANCES
        elif a.cash_available_fen < self.need_fen(qty_t, lock_price):
            return RR.INSUFFICIENT_CASH
        return RR.NONE

    def modify_reason(
        self,
        account: int,
        ins: int,
        side: int,
        leaves_t: int,
        lock_price: int,
        new_qty_t: int,
        new_price: int,
    ) -> RR:
        """Can a resting order's need change to that of (new price, new quantity)?"""
        a = self.accounts[account]
        if a.frozen:
            return RR.ACCOUNT_FROZEN
        if side == SELL:
            if new_qty_t - leaves_t > a.holdings[ins].tradable_t:
                return RR.INSUFFICIENT_ALLOWANCES
        else:
            extra = self.need_fen(new_qty_t, new_price) - self.need_fen(leaves_t, lock_price)
            if extra > a.cash_available_fen:
                return RR.INSUFFICIENT_CASH
        return RR.NONE

    def lock(self, account: int, ins: int, side: int, qty_t: int, lock_price: int) -> None:
        """Lock the need of ``qty_t``: a sell's allowances, a buy's cash."""
        a = self.accounts[account]
        if side == SELL:
            holding = a.holdings[ins]
            holding.tradable_t -= qty_t
            holding.locked_t += qty_t
        else:
            amount = self.need_fen(qty_t, lock_price)
            a.cash_available_fen -= amount
            a.cash_locked_fen += amount

    def unlock(self, account: int, ins: int, side: int, qty_t: int, lock_price: int) -> None:
        """Return the need of ``qty_t`` open quantity (the inverse of :meth:`lock`)."""
        a = self.accounts[account]
        if side == SELL:
            holding = a.holdings[ins]
            holding.locked_t -= qty_t
            holding.tradable_t += qty_t
        else:
            amount = self.need_fen(qty_t, lock_price)
            a.cash_locked_fen -= amount
            a.cash_available_fen += amount

    def settle(
        self,
        ins: int,
        buyer: int,
        buy_leaves_t: int,
        buy_lock_price: int,
        seller: int,
        price_ticks: int,
        qty_t: int,
    ) -> None:
        """Delivery versus payment of one fill, given the buy order's open quantity before it."""
        value = price_ticks * qty_t
        buy_fee, sell_fee = fee_fen(value, self.buy_bps), fee_fen(value, self.sell_bps)
        b, sl = self.accounts[buyer], self.accounts[seller]
        released = self.need_fen(buy_leaves_t, buy_lock_price) - self.need_fen(
            buy_leaves_t - qty_t, buy_lock_price
        )
        b.cash_locked_fen -= released
        b.cash_available_fen += released - value - buy_fee
        b.holdings[ins].unsettled_t += qty_t
        sl.holdings[ins].locked_t -= qty_t
        sl.cash_available_fen += value - sell_fee
        fee_account = self.accounts.get(self.fee_account)
        if fee_account is None:
            self.unassigned_fees_fen += buy_fee + sell_fee
        else:
            fee_account.cash_available_fen += buy_fee + sell_fee

    def release_unsettled(self, ins: int) -> None:
        """T+1: what was bought in earlier sessions of ``ins`` becomes tradable."""
        for a in self.accounts.values():
            holding = a.holdings[ins]
            holding.tradable_t += holding.unsettled_t
            holding.unsettled_t = 0

    # -- registry commands ---------------------------------------------------------------------
    def apply(self, c: Any, seq: int, ts_ns: int, events: list) -> None:
        """Apply one registry command, appending its events to ``events``."""
        tag = type(c).__struct_config__.tag
        if not self.enabled:  # a pure matching market has no registry: nothing is remembered
            events.append(self._rejected(c, seq, ts_ns, tag, RR.REGISTRY_DISABLED))
            return
        if c.key <= 0:
            events.append(self._rejected(c, seq, ts_ns, tag, RR.INVALID_KEY))
            return
        seen = self.keys.get(c.key)
        if seen is not None:
            events.append(
                s.DuplicateCommand(seq, ts_ns, c.key, seen.command, seen.seq, RR(seen.reason))
            )
            return
        if len(self.keys) >= self.key_capacity:
            events.append(self._rejected(c, seq, ts_ns, tag, RR.REGISTRY_FULL))
            return
        out: list = []
        reason = self._common_reason(c)
        if reason == RR.NONE:
            reason = self._handlers[type(c)](c, seq, ts_ns, out)
        self.keys[c.key] = KeyRecord(seq, reason, tag)
        if reason != RR.NONE:
            assert not out, "a refused command emitted events"
            events.append(self._rejected(c, seq, ts_ns, tag, reason))
        events.extend(out)

    def _rejected(self, c: Any, seq: int, ts_ns: int, tag: int, reason: RR) -> s.RegistryRejected:
        instrument = getattr(c, "instrument", None)
        if instrument is None:
            echo = s.ALL_INSTRUMENTS
        else:
            echo = instrument if instrument in self._index else "?"
        account = _record_account(getattr(c, "account", 0))
        return s.RegistryRejected(seq, ts_ns, c.key, tag, account, echo, reason)

    def _common_reason(self, c: Any) -> RR:
        """REGISTRY_DISABLED → UNKNOWN_INSTRUMENT → UNKNOWN_ACCOUNT → INVALID_AMOUNT."""
        if not self.enabled:
            return RR.REGISTRY_DISABLED
        if isinstance(c, _WITH_INSTRUMENT) and c.instrument not in self._index:
            return RR.UNKNOWN_INSTRUMENT
        if isinstance(c, s.OpenAccount):
            if not 0 <= c.account < self.n_accounts:
                return RR.UNKNOWN_ACCOUNT
        elif not isinstance(c, s.CloseComplianceYear) and c.account not in self.accounts:
            return RR.UNKNOWN_ACCOUNT
        if isinstance(c, _CASH_COMMANDS):
            if not 0 < c.amount_fen <= limits.CASH_MAX_FEN:
                return RR.INVALID_AMOUNT
        elif isinstance(c, _WITH_INSTRUMENT):
            if not 0 < c.qty_t <= limits.QTY_MAX_T:
                return RR.INVALID_AMOUNT
        return RR.NONE

    def _year_reason(self, year: int) -> RR:
        if not 0 <= year - self.first_year < limits.COMPLIANCE_YEARS:
            return RR.INVALID_YEAR
        if year in self.closed_years:
            return RR.YEAR_CLOSED
        return RR.NONE

    def _open_account(self, c: s.OpenAccount, seq: int, ts: int, out: list) -> RR:
        if c.account in self.accounts:
            return RR.ACCOUNT_EXISTS
        if c.kind not in _KINDS or c.sector not in _SECTORS:
            return RR.INVALID_ACCOUNT_KIND
        a = self.accounts[c.account] = Account(c.kind, c.sector, c.province, len(self.symbols))
        if c.account == self.fee_account:  # fees that settled before it was opened
            a.cash_available_fen, self.unassigned_fees_fen = self.unassigned_fees_fen, 0
        out.append(s.AccountOpened(seq, ts, c.key, c.account, a.kind, a.sector, c.province))
        return RR.NONE

    def _deposit(self, c: s.DepositCash, seq: int, ts: int, out: list) -> RR:
        if self.deposited_fen - self.withdrawn_fen + c.amount_fen > limits.CASH_TOTAL_MAX_FEN:
            return RR.INVALID_AMOUNT
        a = self.accounts[c.account]
        a.cash_available_fen += c.amount_fen
        self.deposited_fen += c.amount_fen
        out.append(s.CashDeposited(seq, ts, c.key, c.account, c.amount_fen, a.cash_available_fen))
        return RR.NONE

    def _withdraw(self, c: s.WithdrawCash, seq: int, ts: int, out: list) -> RR:
        a = self.accounts[c.account]
        if a.frozen:
            return RR.ACCOUNT_FROZEN
        if a.cash_available_fen < c.amount_fen:
            return RR.INSUFFICIENT_CASH
        a.cash_available_fen -= c.amount_fen
        self.withdrawn_fen += c.amount_fen
        out.append(s.CashWithdrawn(seq, ts, c.key, c.account, c.amount_fen, a.cash_available_fen))
        return RR.NONE

    def _holding(self, c: Any) -> Holding:
        return self.accounts[c.account].holdings[self._index[c.instrument]]

    def _issue(self, c: s.IssueAllowances, seq: int, ts: int, out: list) -> RR:
        holding = self._holding(c)
        holding.tradable_t += c.qty_t
        self.totals[self._index[c.instrument]].issued_t += c.qty_t
        out.append(
            s.AllowancesIssued(
                seq,
                ts,
                c.key,
                c.account,
                c.instrument,
                c.qty_t,
                bool(c.true_up),
                holding.tradable_t,
            )
        )
        return RR.NONE

    def _claw_back(self, c: s.ClawBack, seq: int, ts: int, out: list) -> RR:
        holding = self._holding(c)
        if holding.tradable_t < c.qty_t:
            return RR.INSUFFICIENT_ALLOWANCES
        holding.tradable_t -= c.qty_t
        self.totals[self._index[c.instrument]].clawed_back_t += c.qty_t
        out.append(
            s.AllowancesClawedBack(
                seq, ts, c.key, c.account, c.instrument, c.qty_t, holding.tradable_t
            )
        )
        return RR.NONE

    def _transfer(self, c: s.TransferAllowances, seq: int, ts: int, out: list) -> RR:
        if c.to_account not in self.accounts:
            return RR.UNKNOWN_ACCOUNT
        if self.accounts[c.account].frozen:
            return RR.ACCOUNT_FROZEN
        source = self._holding(c)
        if source.tradable_t < c.qty_t:
            return RR.INSUFFICIENT_ALLOWANCES
        source.tradable_t -= c.qty_t
        self.accounts[c.to_account].holdings[self._index[c.instrument]].tradable_t += c.qty_t
        out.append(
            s.AllowancesTransferred(seq, ts, c.key, c.account, c.to_account, c.instrument, c.qty_t)
        )
        return RR.NONE

    def _freeze_allowances(self, c: s.FreezeAllowances, seq: int, ts: int, out: list) -> RR:
        holding = self._holding(c)
        if holding.tradable_t < c.qty_t:
            return RR.INSUFFICIENT_ALLOWANCES
        holding.tradable_t -= c.qty_t
        holding.frozen_t += c.qty_t
        out.append(s.AllowancesFrozen(seq, ts, c.key, c.account, c.instrument, c.qty_t))
        return RR.NONE

    def _unfreeze_allowances(self, c: s.UnfreezeAllowances, seq: int, ts: int, out: list) -> RR:
        holding = self._holding(c)
        if holding.frozen_t < c.qty_t:
            return RR.INSUFFICIENT_ALLOWANCES
        holding.frozen_t -= c.qty_t
        holding.tradable_t += c.qty_t
        out.append(s.AllowancesUnfrozen(seq, ts, c.key, c.account, c.instrument, c.qty_t))
        return RR.NONE

    def _freeze_account(self, c: s.FreezeAccount, seq: int, ts: int, out: list) -> RR:
        a = self.accounts[c.account]
        if a.frozen:
            return RR.ACCOUNT_FROZEN
        a.frozen = True
        out.append(s.AccountFrozen(seq, ts, c.key, c.account))
        return RR.NONE

    def _unfreeze_account(self, c: s.UnfreezeAccount, seq: int, ts: int, out: list) -> RR:
        a = self.accounts[c.account]
        if not a.frozen:
            return RR.ACCOUNT_NOT_FROZEN
        a.frozen = False
        out.append(s.AccountUnfrozen(seq, ts, c.key, c.account))
        return RR.NONE

    def _cancel_allowances(self, c: s.CancelAllowances, seq: int, ts: int, out: list) -> RR:
        if self.accounts[c.account].frozen:
            return RR.ACCOUNT_FROZEN
        holding = self._holding(c)
        if holding.tradable_t < c.qty_t:
            return RR.INSUFFICIENT_ALLOWANCES
        holding.tradable_t -= c.qty_t
        self.totals[self._index[c.instrument]].cancelled_t += c.qty_t
        out.append(s.AllowancesCancelled(seq, ts, c.key, c.account, c.instrument, c.qty_t))
        return RR.NONE

    def _report(self, c: s.ReportEmissions, seq: int, ts: int, out: list) -> RR:
        if self.accounts[c.account].kind != s.AccountKind.COMPLIANCE:
            return RR.NOT_A_COMPLIANCE_ACCOUNT
        reason = self._year_reason(c.year)
        if reason != RR.NONE:
            return reason
        if c.gwp not in s.GWP_TABLE:
            return RR.INVALID_GWP
        if not all(0 <= gas <= limits.QTY_MAX_T for gas in (c.co2_t, c.cf4_kg, c.c2f6_kg)):
            return RR.INVALID_AMOUNT
        gwp = s.GwpVersion(c.gwp)
        obligation = obligation_t(c.co2_t, c.cf4_kg, c.c2f6_kg, gwp)
        if obligation > limits.OBLIGATION_MAX_T:
            return RR.INVALID_AMOUNT
        position = self.positions.setdefault((c.year, c.account), Position())
        position.obligation_t, position.reported = obligation, True
        out.append(
            s.EmissionsReported(
                seq, ts, c.key, c.account, c.year, obligation, c.co2_t, c.cf4_kg, c.c2f6_kg, gwp
            )
        )
        return RR.NONE

    def _surrender(self, c: s.SurrenderAllowances, seq: int, ts: int, out: list) -> RR:
        a = self.accounts[c.account]
        if a.kind != s.AccountKind.COMPLIANCE:
            return RR.NOT_A_COMPLIANCE_ACCOUNT
        if a.frozen:
            return RR.ACCOUNT_FROZEN
        reason = self._year_reason(c.year)
        if reason != RR.NONE:
            return reason
        ins = self._index[c.instrument]
        spec = self.market.instruments[ins]
        is_offset = spec.kind == "offset"
        position = self.positions.get((c.year, c.account), Position())
        if not is_offset and (spec.vintage or 0) > c.year:
            return RR.VINTAGE_NOT_ELIGIBLE
        offset_cap = position.obligation_t * self.market.compliance.offset_limit_bps // 10_000
        if is_offset and position.offsets_t + c.qty_t > offset_cap:
            return RR.OFFSET_LIMIT_EXCEEDED
        holding = a.holdings[ins]
        if holding.tradable_t < c.qty_t:
            return RR.INSUFFICIENT_ALLOWANCES
        holding.tradable_t -= c.qty_t
        self.totals[ins].surrendered_t += c.qty_t
        position = self.positions.setdefault((c.year, c.account), position)
        if is_offset:
            position.offsets_t += c.qty_t
        else:
            position.surrendered_t += c.qty_t
        out.append(
            s.AllowancesSurrendered(seq, ts, c.key, c.account, c.instrument, c.year, c.qty_t)
        )
        return RR.NONE

    def _close_year(self, c: s.CloseComplianceYear, seq: int, ts: int, out: list) -> RR:
        reason = self._year_reason(c.year)
        if reason != RR.NONE:
            return reason
        price = c.reference_price_ticks
        if not 0 < price <= self.market.capacity.max_price_ticks:
            return RR.INVALID_AMOUNT
        multiple = self.market.compliance.penalty_multiple
        entities = 0
        for account in sorted(self.accounts):
            if self.accounts[account].kind != s.AccountKind.COMPLIANCE:
                continue
            p = self.positions.get((c.year, account), Position())
            shortfall = max(0, p.obligation_t - p.surrendered_t - p.offsets_t)
            out.append(
                s.ComplianceReported(
                    seq,
                    ts,
                    account,
                    c.year,
                    p.obligation_t,
                    p.surrendered_t,
                    p.offsets_t,
                    shortfall,
                    shortfall * price * multiple,
                    price,
                )
            )
            entities += 1
        self.closed_years.add(c.year)
        out.append(s.ComplianceYearClosed(seq, ts, c.key, c.year, entities, price))
        return RR.NONE

    # -- queries -------------------------------------------------------------------------------
    def account_status(self, account: int) -> s.AccountStatus | None:
        """Balances of an opened account, a holding per instrument in index order; else None."""
        a = self.accounts.get(account)
        if a is None:
            return None
        holdings = [
            s.Holding(account, symbol, *h.words())
            for symbol, h in zip(self.symbols, a.holdings, strict=True)
        ]
        return s.AccountStatus(
            account,
            a.kind,
            a.sector,
            a.province,
            a.frozen,
            a.cash_available_fen,
            a.cash_locked_fen,
            holdings,
        )

    def closed_mask(self) -> int:
        return sum(1 << (year - self.first_year) for year in self.closed_years)

    def hash_words(self) -> list[int]:
        """The ledger's words of the canonical state hash (docs/LEDGER.md "State hash")."""
        words: list[int] = []
        for account in sorted(self.accounts):
            a = self.accounts[account]
            words += [
                account,
                a.kind,
                a.sector,
                a.province,
                int(a.frozen),
                a.cash_available_fen,
                a.cash_locked_fen,
            ]
            for holding in a.holdings:
                words += holding.words()
        for totals in self.totals:
            words += totals.words()
        for year, account in sorted(self.positions):
            p = self.positions[(year, account)]
            words += [year, account, p.obligation_t, p.surrendered_t, p.offsets_t, int(p.reported)]
        words += [self.closed_mask(), len(self.keys)]
        return words

    # -- snapshots -----------------------------------------------------------------------------
    def export(self) -> snap.LedgerSnapshot:
        accounts = [
            snap.AccountSnapshot(
                account,
                a.kind,
                a.sector,
                a.province,
                a.frozen,
                a.cash_available_fen,
                a.cash_locked_fen,
                [h.words() for h in a.holdings],
            )
            for account, a in sorted(self.accounts.items())
        ]
        compliance = [
            snap.ComplianceSnapshot(
                year, account, p.obligation_t, p.surrendered_t, p.offsets_t, p.reported
            )
            for (year, account), p in sorted(self.positions.items())
        ]
        keys = [
            snap.KeySnapshot(key, r.seq, r.reason, r.command)
            for key, r in sorted(self.keys.items())
        ]
        return snap.LedgerSnapshot(
            self.deposited_fen,
            self.withdrawn_fen,
            self.closed_mask(),
            [t.words() for t in self.totals],
            accounts,
            compliance,
            keys,
        )

    def restore(self, saved: snap.LedgerSnapshot) -> None:
        """Load a snapshot's ledger into this (fresh) ledger.  Raises ValueError."""
        if len(saved.totals) != len(self.symbols):
            raise ValueError("ledger totals for another number of instruments")
        self.deposited_fen, self.withdrawn_fen = saved.deposited_fen, saved.withdrawn_fen
        self.totals = [Totals(*words) for words in saved.totals]
        for row in saved.accounts:
            if not 0 <= row.account < self.n_accounts or row.account in self.accounts:
                raise ValueError(f"account {row.account} is out of range or appears twice")
            if len(row.holdings) != len(self.symbols):
                raise ValueError(f"account {row.account} has holdings of other instruments")
            a = Account(row.kind, row.sector, row.province, len(self.symbols))
            a.frozen, a.cash_available_fen = row.frozen, row.cash_available_fen
            a.cash_locked_fen = row.cash_locked_fen
            a.holdings = [Holding(*words) for words in row.holdings]
            self.accounts[row.account] = a
        for c in saved.compliance:
            if (c.year, c.account) in self.positions:
                raise ValueError(f"compliance position {c.year}/{c.account} appears twice")
            position = Position(c.obligation_t, c.surrendered_t, c.offsets_t, c.reported)
            self.positions[(c.year, c.account)] = position
        if saved.closed_years >> limits.COMPLIANCE_YEARS or saved.closed_years < 0:
            raise ValueError(f"closed-years mask {saved.closed_years:#x}")
        self.closed_years = {
            self.first_year + i
            for i in range(limits.COMPLIANCE_YEARS)
            if saved.closed_years >> i & 1
        }
        for k in saved.keys:
            if k.key <= 0 or k.key in self.keys:
                raise ValueError(f"idempotency key {k.key} is invalid or appears twice")
            self.keys[k.key] = KeyRecord(k.seq, RR(k.reason), k.command)

    # -- invariants ----------------------------------------------------------------------------
    def check(self, locks: Iterable[OpenOrder]) -> None:
        """Raise AssertionError unless every ledger invariant of docs/LEDGER.md holds.

        ``locks`` lists everything that holds a lock: the open orders, and the block offers,
        bids and auction lots of docs/TRADING_MODES.md "Locks".
        """
        self._check_records()
        cash_need: dict[int, int] = {}
        qty_need: dict[tuple[int, int], int] = {}
        for o in locks:
            assert o.account in self.accounts, f"a lock of account {o.account}, not opened"
            if o.side == SELL:
                key = (o.account, o.instrument)
                qty_need[key] = qty_need.get(key, 0) + o.qty_t
            else:
                need = self.need_fen(o.qty_t, o.lock_price_ticks)
                cash_need[o.account] = cash_need.get(o.account, 0) + need
        held = [0] * len(self.symbols)
        cash = self.unassigned_fees_fen
        for account, a in self.accounts.items():
            assert a.cash_available_fen >= 0, f"account {account}: negative available cash"
            assert a.cash_locked_fen == cash_need.get(account, 0), (
                f"account {account}: locked cash {a.cash_locked_fen} != open buys' needs "
                f"{cash_need.get(account, 0)}"
            )
            cash += a.cash_available_fen + a.cash_locked_fen
            for ins, h in enumerate(a.holdings):
                assert min(h.words()) >= 0, f"account {account} {self.symbols[ins]}: {h.words()}"
                assert h.locked_t == qty_need.get((account, ins), 0), (
                    f"account {account} {self.symbols[ins]}: locked {h.locked_t} != open sells "
                    f"{qty_need.get((account, ins), 0)}"
                )
                held[ins] += sum(h.words())
        assert cash == self.deposited_fen - self.withdrawn_fen, (
            f"cash not conserved: balances {cash}, deposited - withdrawn "
            f"{self.deposited_fen - self.withdrawn_fen}"
        )
        for ins, t in enumerate(self.totals):
            assert min(t.words()) >= 0, f"{self.symbols[ins]}: negative total {t.words()}"
            gone = t.surrendered_t + t.cancelled_t
            assert t.issued_t - t.clawed_back_t == held[ins] + gone, (
                f"{self.symbols[ins]}: issued {t.issued_t} - clawed back {t.clawed_back_t} != "
                f"held {held[ins]} + surrendered/cancelled {gone}"
            )

    def _check_records(self) -> None:
        """Kinds, codes, years and keys are all within their documented ranges."""
        assert self.unassigned_fees_fen >= 0 and self.deposited_fen >= self.withdrawn_fen >= 0
        for account, a in self.accounts.items():
            assert 0 <= account < self.n_accounts, f"account {account} out of range"
            assert a.kind in _KINDS and a.sector in _SECTORS, f"account {account}: codes"
        if self.fee_account in self.accounts:
            assert self.unassigned_fees_fen == 0, "fees kept aside after the fee account opened"
        for (year, account), p in self.positions.items():
            assert 0 <= year - self.first_year < limits.COMPLIANCE_YEARS, f"year {year}"
            assert account in self.accounts, f"position of account {account}, not opened"
            assert self.accounts[account].kind == s.AccountKind.COMPLIANCE, "not an entity"
            assert min(p.obligation_t, p.surrendered_t, p.offsets_t) >= 0, f"{year}/{account}"
            assert p.reported or p.surrendered_t or p.offsets_t, f"empty position {year}/{account}"
            assert p.reported or p.obligation_t == 0, f"obligation unreported {year}/{account}"
        assert len(self.keys) <= self.key_capacity, f"{len(self.keys)} keys > capacity"
        # (keys are positive by construction: apply() and restore() refuse any other)

"""Scenarios of the registry and ledger (docs/LEDGER.md), run against both engines.

Every refusal reason of the registry commands and of trading with the registry on, the T+1
rule, locks and their exact release (partial fills below the limit, cancels, expiry, self-trade
prevention, IOC/FOK, mass cancel, modify), fees to the fee account, the offset cap, surrender
eligibility, idempotent retries, snapshots, and a full compliance year for a handful of
entities.  Each command goes through ``step`` (apply, ``check_invariants``, event round trip),
so the conservation and lock invariants are checked after every step of every scenario.
"""

from __future__ import annotations

import itertools

import msgspec
import pytest

from engine import markets
from engine.core import allocation, limits
from engine.core import schema as s
from engine.core import snapshot as snap
from engine.core.market import Capacity, Compliance, Fees, Instrument, MarketDefinition, validate
from tests.conftest import DATE1, DATE2, small_market, step

R = s.RejectReason
C = s.CancelReason
K = s.AccountKind
BUY, SELL = s.Side.BUY, s.Side.SELL
DAY, GTC, IOC, FOK = s.TimeInForce.DAY, s.TimeInForce.GTC, s.TimeInForce.IOC, s.TimeInForce.FOK
V23, V24, V25, CCER = "CEA-2023", "CEA-2024", "CEA-2025", "CCER"
ACCOUNTS = 12
FEE, POWER, ALU, INVESTOR, AUTHORITY = 0, 1, 2, 3, 4
"""The accounts the ``desk`` fixture opens; 5 … 11 start unopened."""
CASH = 10_000_000
"""Each trader's opening deposit, in fen (100,000 CNY)."""


def registry_market(
    buy_bps: int = 0, sell_bps: int = 0, registry_keys: int = 256, resting_orders: int = 100
) -> MarketDefinition:
    """Three vintages (2023-2025) and CCER, bands ±10 % around 60.00 (CCER 50.00) CNY."""
    return validate(
        MarketDefinition(
            name="registry scenarios",
            instruments=[
                Instrument(symbol=V23, vintage=2023, reference_price_ticks=6000),
                Instrument(symbol=V24, vintage=2024, reference_price_ticks=6000),
                Instrument(symbol=V25, vintage=2025, reference_price_ticks=6000),
                Instrument(symbol=CCER, kind="offset", reference_price_ticks=5000),
            ],
            capacity=Capacity(
                accounts=ACCOUNTS,
                resting_orders=resting_orders,
                max_price_ticks=20_000,
                registry_keys=registry_keys,
            ),
            registry=True,
            fee_account=FEE,
            fees=Fees(buy_bps=buy_bps, sell_bps=sell_bps),
            compliance=Compliance(first_year=2021, penalty_multiple=5, offset_limit_bps=500),
        )
    )


class Desk:
    """An engine plus the sequencer's chores: seqs, idempotency keys, and short queries."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.seqs = itertools.count(1)
        self.keys = itertools.count(1)

    def do(self, command: s.Command) -> list[s.Event]:
        """Apply with the next seq (through ``step``: invariants and event round trip)."""
        return step(self.engine, msgspec.structs.replace(command, seq=next(self.seqs)))

    def reg(self, cls: type, **fields) -> list[s.Event]:
        """A registry command with a fresh key (unless ``key`` is given)."""
        fields.setdefault("key", next(self.keys))
        return self.do(cls(**fields))

    def ok(self, cls: type, **fields) -> s.Event:
        """A registry command that must succeed; returns its (last) event."""
        events = self.reg(cls, **fields)
        assert events and not isinstance(events[-1], (s.RegistryRejected, s.DuplicateCommand)), (
            events
        )
        return events[-1]

    def cash(self, account: int) -> tuple[int, int]:
        status = self.engine.account(account)
        return status.cash_available_fen, status.cash_locked_fen

    def held(self, account: int, symbol: str = V24) -> tuple[int, int, int, int]:
        """(tradable, locked, frozen, unsettled)."""
        status = self.engine.account(account)
        h = next(h for h in status.holdings if h.instrument == symbol)
        return h.tradable_t, h.locked_t, h.frozen_t, h.unsettled_t

    def views(self) -> list:
        return [self.engine.account(a) for a in range(ACCOUNTS)]


def order(order_id, account, side, qty, price, symbol=V24, **kw) -> s.SubmitOrder:
    return s.SubmitOrder(
        order_id=order_id,
        account=account,
        instrument=symbol,
        side=side,
        qty_t=qty,
        price_ticks=price,
        **kw,
    )


def market_buy(order_id, account, qty, symbol=V24, tif=IOC) -> s.SubmitOrder:
    return order(order_id, account, BUY, qty, 0, symbol, order_type=s.OrderType.MARKET, tif=tif)


def open_desk(engine) -> Desk:
    """The fee account; two entities (power, aluminium), an investor, each with ``CASH`` and
    1,000 t of CEA-2024; a provincial authority with 10,000 t; every session open on DATE1."""
    desk = Desk(engine)
    desk.ok(s.OpenAccount, account=FEE, kind=K.FEE)
    for account, kind, sector in (
        (POWER, K.COMPLIANCE, s.Sector.POWER),
        (ALU, K.COMPLIANCE, s.Sector.ALUMINIUM),
        (INVESTOR, K.INVESTOR, s.Sector.NONE),
    ):
        desk.ok(s.OpenAccount, account=account, kind=kind, sector=sector, province=310000)
        desk.ok(s.DepositCash, account=account, amount_fen=CASH)
        desk.ok(s.IssueAllowances, account=account, instrument=V24, qty_t=1_000)
    desk.ok(s.OpenAccount, account=AUTHORITY, kind=K.AUTHORITY, province=310000)
    desk.ok(s.IssueAllowances, account=AUTHORITY, instrument=V24, qty_t=10_000)
    desk.do(s.OpenSession(trading_date=DATE1))
    return desk


@pytest.fixture
def desk(engine_cls) -> Desk:
    return open_desk(engine_cls(registry_market()))


@pytest.fixture
def fee_desk(engine_cls) -> Desk:
    """Like ``desk``, with fees of 30 bps (buyer) and 20 bps (seller)."""
    return open_desk(engine_cls(registry_market(buy_bps=30, sell_bps=20)))


# ============================================================================================
# Registry commands: every refusal, in the documented order
# ============================================================================================


def _rejection(command, reason: R, seq: int, market: MarketDefinition) -> s.RegistryRejected:
    """The exact event docs/LEDGER.md prescribes for a refused registry command."""
    symbol = getattr(command, "instrument", None)
    echo = "" if symbol is None else (symbol if symbol in market.symbols else "?")
    tag = type(command).__struct_config__.tag
    return s.RegistryRejected(
        seq, 0, command.key, tag, getattr(command, "account", 0), echo, reason
    )


KEY = 9_999
"""Key of the refused command in REGISTRY_REFUSALS (the setup uses small keys)."""
FREEZE_POWER = s.FreezeAccount(key=900, account=POWER)
CLOSE_2024 = s.CloseComplianceYear(key=901, year=2024, reference_price_ticks=6000)

# (id, setup, refused command - usually with a second, later fault as well - reason)
REGISTRY_REFUSALS = [
    (
        "unknown-instrument",
        [],
        s.IssueAllowances(key=KEY, account=9, instrument="NOPE", qty_t=0),
        R.UNKNOWN_INSTRUMENT,
    ),
    (
        "all-instruments-symbol",
        [],
        s.SurrenderAllowances(key=KEY, account=INVESTOR, instrument="", year=1, qty_t=1),
        R.UNKNOWN_INSTRUMENT,
    ),
    ("unopened-account", [], s.DepositCash(key=KEY, account=9, amount_fen=0), R.UNKNOWN_ACCOUNT),
    ("negative-account", [], s.FreezeAccount(key=KEY, account=-1), R.UNKNOWN_ACCOUNT),
    ("open-out-of-range", [], s.OpenAccount(key=KEY, account=ACCOUNTS, kind=9), R.UNKNOWN_ACCOUNT),
    (
        "transfer-to-unopened",
        [FREEZE_POWER],
        s.TransferAllowances(key=KEY, account=POWER, to_account=9, instrument=V24, qty_t=10**6),
        R.UNKNOWN_ACCOUNT,
    ),
    ("deposit-zero", [], s.DepositCash(key=KEY, account=POWER, amount_fen=0), R.INVALID_AMOUNT),
    (
        "deposit-too-much",
        [],
        s.DepositCash(key=KEY, account=POWER, amount_fen=limits.CASH_MAX_FEN + 1),
        R.INVALID_AMOUNT,
    ),
    (
        "withdraw-negative",
        [FREEZE_POWER],
        s.WithdrawCash(key=KEY, account=POWER, amount_fen=-1),
        R.INVALID_AMOUNT,
    ),
    (
        "issue-too-much",
        [],
        s.IssueAllowances(key=KEY, account=POWER, instrument=V24, qty_t=limits.QTY_MAX_T + 1),
        R.INVALID_AMOUNT,
    ),
    (
        "surrender-zero",
        [],
        s.SurrenderAllowances(key=KEY, account=INVESTOR, instrument=V24, year=1, qty_t=0),
        R.INVALID_AMOUNT,
    ),
    ("account-exists", [], s.OpenAccount(key=KEY, account=POWER, kind=9), R.ACCOUNT_EXISTS),
    ("kind-zero", [], s.OpenAccount(key=KEY, account=9, kind=0), R.INVALID_ACCOUNT_KIND),
    ("kind-five", [], s.OpenAccount(key=KEY, account=9, kind=5), R.INVALID_ACCOUNT_KIND),
    (
        "sector-undefined",
        [],
        s.OpenAccount(key=KEY, account=9, kind=K.INVESTOR, sector=5),
        R.INVALID_ACCOUNT_KIND,
    ),
    (
        "withdraw-frozen",
        [FREEZE_POWER],
        s.WithdrawCash(key=KEY, account=POWER, amount_fen=CASH + 1),
        R.ACCOUNT_FROZEN,
    ),
    (
        "withdraw-too-much",
        [],
        s.WithdrawCash(key=KEY, account=POWER, amount_fen=CASH + 1),
        R.INSUFFICIENT_CASH,
    ),
    (
        "withdraw-locked-cash",
        [order(1, POWER, BUY, 100, 6000)],
        s.WithdrawCash(key=KEY, account=POWER, amount_fen=CASH - 600_000 + 1),
        R.INSUFFICIENT_CASH,
    ),
    (
        "claw-back-too-much",
        [],
        s.ClawBack(key=KEY, account=POWER, instrument=V24, qty_t=1_001),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "claw-back-locked",
        [order(1, POWER, SELL, 600, 6000)],
        s.ClawBack(key=KEY, account=POWER, instrument=V24, qty_t=401),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "transfer-frozen",
        [FREEZE_POWER],
        s.TransferAllowances(key=KEY, account=POWER, to_account=ALU, instrument=V24, qty_t=10**6),
        R.ACCOUNT_FROZEN,
    ),
    (
        "transfer-too-much",
        [],
        s.TransferAllowances(key=KEY, account=POWER, to_account=ALU, instrument=V24, qty_t=1_001),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "transfer-other-vintage",
        [],
        s.TransferAllowances(key=KEY, account=POWER, to_account=ALU, instrument=V23, qty_t=1),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "freeze-too-much",
        [],
        s.FreezeAllowances(key=KEY, account=POWER, instrument=V24, qty_t=1_001),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "unfreeze-more-than-frozen",
        [s.FreezeAllowances(key=902, account=POWER, instrument=V24, qty_t=10)],
        s.UnfreezeAllowances(key=KEY, account=POWER, instrument=V24, qty_t=11),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "freeze-account-twice",
        [FREEZE_POWER],
        s.FreezeAccount(key=KEY, account=POWER),
        R.ACCOUNT_FROZEN,
    ),
    (
        "unfreeze-account-not-frozen",
        [],
        s.UnfreezeAccount(key=KEY, account=POWER),
        R.ACCOUNT_NOT_FROZEN,
    ),
    (
        "cancel-frozen",
        [FREEZE_POWER],
        s.CancelAllowances(key=KEY, account=POWER, instrument=V24, qty_t=10**6),
        R.ACCOUNT_FROZEN,
    ),
    (
        "cancel-too-much",
        [],
        s.CancelAllowances(key=KEY, account=POWER, instrument=V24, qty_t=1_001),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "report-investor",
        [],
        s.ReportEmissions(key=KEY, account=INVESTOR, year=1, co2_t=-1, gwp=9),
        R.NOT_A_COMPLIANCE_ACCOUNT,
    ),
    (
        "report-authority",
        [],
        s.ReportEmissions(key=KEY, account=AUTHORITY, year=2024, co2_t=1),
        R.NOT_A_COMPLIANCE_ACCOUNT,
    ),
    (
        "report-year-before-first",
        [],
        s.ReportEmissions(key=KEY, account=POWER, year=2020, co2_t=-1, gwp=9),
        R.INVALID_YEAR,
    ),
    (
        "report-year-after-last",
        [],
        s.ReportEmissions(key=KEY, account=POWER, year=2037, co2_t=1),
        R.INVALID_YEAR,
    ),
    (
        "report-year-closed",
        [CLOSE_2024],
        s.ReportEmissions(key=KEY, account=POWER, year=2024, co2_t=-1, gwp=9),
        R.YEAR_CLOSED,
    ),
    (
        "report-gwp-zero",
        [],
        s.ReportEmissions(key=KEY, account=POWER, year=2024, co2_t=-1, gwp=0),
        R.INVALID_GWP,
    ),
    (
        "report-gwp-four",
        [],
        s.ReportEmissions(key=KEY, account=POWER, year=2024, co2_t=1, gwp=4),
        R.INVALID_GWP,
    ),
    (
        "report-negative-cf4",
        [],
        s.ReportEmissions(key=KEY, account=POWER, year=2024, co2_t=1, cf4_kg=-1),
        R.INVALID_AMOUNT,
    ),
    (
        "report-huge-co2",
        [],
        s.ReportEmissions(key=KEY, account=POWER, year=2024, co2_t=limits.QTY_MAX_T + 1),
        R.INVALID_AMOUNT,
    ),
    (
        "surrender-investor",
        [],
        s.SurrenderAllowances(key=KEY, account=INVESTOR, instrument=V24, year=1, qty_t=1),
        R.NOT_A_COMPLIANCE_ACCOUNT,
    ),
    (
        "surrender-frozen",
        [FREEZE_POWER],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=V25, year=1, qty_t=1),
        R.ACCOUNT_FROZEN,
    ),
    (
        "surrender-invalid-year",
        [],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=V25, year=2037, qty_t=1),
        R.INVALID_YEAR,
    ),
    (
        "surrender-year-closed",
        [CLOSE_2024],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=V25, year=2024, qty_t=1),
        R.YEAR_CLOSED,
    ),
    (
        "surrender-future-vintage",
        [s.IssueAllowances(key=903, account=POWER, instrument=V25, qty_t=500)],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=V25, year=2024, qty_t=10**6),
        R.VINTAGE_NOT_ELIGIBLE,
    ),
    (
        "offsets-without-obligation",
        [s.IssueAllowances(key=903, account=POWER, instrument=CCER, qty_t=500)],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=CCER, year=2024, qty_t=1),
        R.OFFSET_LIMIT_EXCEEDED,
    ),
    (
        "offsets-over-5-percent",
        [s.ReportEmissions(key=903, account=POWER, year=2024, co2_t=999)],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=CCER, year=2024, qty_t=50),
        R.OFFSET_LIMIT_EXCEEDED,
    ),
    (
        "surrender-too-much",
        [],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=V24, year=2024, qty_t=1_001),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "surrender-locked",
        [order(1, POWER, SELL, 1_000, 6000)],
        s.SurrenderAllowances(key=KEY, account=POWER, instrument=V24, year=2024, qty_t=1),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "close-invalid-year",
        [],
        s.CloseComplianceYear(key=KEY, year=2020, reference_price_ticks=0),
        R.INVALID_YEAR,
    ),
    (
        "close-closed",
        [CLOSE_2024],
        s.CloseComplianceYear(key=KEY, year=2024, reference_price_ticks=0),
        R.YEAR_CLOSED,
    ),
    (
        "close-price-zero",
        [],
        s.CloseComplianceYear(key=KEY, year=2024, reference_price_ticks=0),
        R.INVALID_AMOUNT,
    ),
]


@pytest.mark.parametrize(
    "setup, command, reason",
    [case[1:] for case in REGISTRY_REFUSALS],
    ids=[case[0] for case in REGISTRY_REFUSALS],
)
def test_registry_refusal(desk: Desk, setup, command, reason: R) -> None:
    for setup_command in setup:
        events = desk.do(setup_command)
        assert not any(isinstance(e, (s.RegistryRejected, s.OrderRejected)) for e in events)
    views = desk.views()
    events = desk.do(command)
    seq = events[0].seq
    assert events == [_rejection(command, reason, seq, desk.engine.market)]
    assert desk.views() == views, "a refused command changed balances"
    # The refusal is remembered: its retry changes nothing, not even the state hash.
    remembered = desk.engine.state_hash()
    retry = desk.do(command)
    assert retry == [s.DuplicateCommand(seq + 1, 0, KEY, events[0].command, seq, reason)]
    assert desk.engine.state_hash() == remembered and desk.views() == views


@pytest.mark.parametrize("key", [0, -1, -(2**62)])
def test_a_non_positive_key_is_refused_and_not_remembered(desk: Desk, key: int) -> None:
    before = desk.engine.state_hash()
    command = s.DepositCash(key=key, account=9, amount_fen=0)  # also other faults
    for _ in range(2):  # never a DuplicateCommand: the key was not remembered
        events = desk.do(command)
        assert events == [_rejection(command, R.INVALID_KEY, events[0].seq, desk.engine.market)]
        assert desk.engine.state_hash() == before


def test_a_full_key_table_refuses_new_keys_but_still_answers_retries(engine_cls) -> None:
    # 16 keys is a capacity both engines hold exactly (the compiled table is a power of two).
    desk = Desk(engine_cls(registry_market(registry_keys=16)))
    desk.ok(s.OpenAccount, account=POWER, kind=K.COMPLIANCE)
    for _ in range(15):
        desk.ok(s.DepositCash, account=POWER, amount_fen=1)
    before, views = desk.engine.state_hash(), desk.views()
    full = s.DepositCash(key=100, account=POWER, amount_fen=1)
    for _ in range(2):  # a refusal for a full table is not remembered either
        events = desk.do(full)
        assert events == [_rejection(full, R.REGISTRY_FULL, events[0].seq, desk.engine.market)]
        assert desk.engine.state_hash() == before and desk.views() == views
    retry = desk.reg(s.DepositCash, key=2, account=POWER, amount_fen=1)
    assert retry == [s.DuplicateCommand(retry[0].seq, 0, 2, 21, 2, R.NONE)]
    assert desk.cash(POWER) == (15, 0)


def test_key_table_holds_exactly_registry_keys(engine_cls) -> None:
    """``capacity.registry_keys`` is the number of keys remembered, not a lower bound."""
    desk = Desk(engine_cls(registry_market(registry_keys=5)))
    desk.ok(s.OpenAccount, account=POWER, kind=K.COMPLIANCE)
    for _ in range(4):
        desk.ok(s.DepositCash, account=POWER, amount_fen=1)
    events = desk.reg(s.DepositCash, account=POWER, amount_fen=1)
    assert [e.reason for e in events] == [R.REGISTRY_FULL]


def test_registry_commands_in_a_market_without_registry(engine_cls) -> None:
    engine = engine_cls(small_market())
    desk = Desk(engine)
    command = s.OpenAccount(key=7, account=1, kind=K.INVESTOR)
    events = desk.do(command)
    assert events == [_rejection(command, R.REGISTRY_DISABLED, 1, engine.market)]
    # Nothing is remembered without a registry: the retry is refused the same way.
    assert desk.do(command) == [_rejection(command, R.REGISTRY_DISABLED, 2, engine.market)]
    assert engine.account(1) is None
    desk.do(s.OpenSession(trading_date=DATE1))  # pure matching: any account trades, no locks
    events = desk.do(order(1, 1, SELL, 10**4, 6000, symbol="CEA-A"))
    assert type(events[0]) is s.OrderAccepted


@pytest.mark.parametrize("sector", [256, -1])
def test_a_sector_code_the_record_cannot_carry_is_refused(engine_cls, sector) -> None:
    desk = Desk(engine_cls(registry_market()))
    events = desk.reg(s.OpenAccount, account=9, kind=K.INVESTOR, sector=sector)
    assert [type(e) for e in events] == [s.RegistryRejected]
    assert events[0].reason == R.INVALID_ACCOUNT_KIND and desk.engine.account(9) is None


def test_account_opened_echoes_its_codes_and_view_starts_empty(desk: Desk) -> None:
    assert desk.engine.account(9) is None and desk.engine.account(-1) is None
    assert desk.engine.account(ACCOUNTS) is None
    event = desk.ok(
        s.OpenAccount, key=77, account=9, kind=K.COMPLIANCE, sector=s.Sector.CEMENT, province=440000
    )
    assert event == s.AccountOpened(event.seq, 0, 77, 9, K.COMPLIANCE, s.Sector.CEMENT, 440000)
    status = desk.engine.account(9)
    assert status == s.AccountStatus(
        9,
        K.COMPLIANCE,
        s.Sector.CEMENT,
        440000,
        False,
        0,
        0,
        [s.Holding(9, symbol, 0, 0, 0, 0) for symbol in (V23, V24, V25, CCER)],
    )


def test_cash_and_allowance_events_report_the_balance_after(desk: Desk) -> None:
    assert desk.ok(s.DepositCash, key=50, account=POWER, amount_fen=5).available_fen == CASH + 5
    assert desk.ok(s.WithdrawCash, account=POWER, amount_fen=CASH + 5).available_fen == 0
    issued = desk.ok(
        s.IssueAllowances, key=51, account=POWER, instrument=V23, qty_t=70, true_up=True
    )
    assert issued == s.AllowancesIssued(issued.seq, 0, 51, POWER, V23, 70, True, 70)
    clawed = desk.ok(s.ClawBack, key=52, account=POWER, instrument=V23, qty_t=20)
    assert clawed == s.AllowancesClawedBack(clawed.seq, 0, 52, POWER, V23, 20, 50)
    moved = desk.ok(
        s.TransferAllowances, key=53, account=POWER, to_account=AUTHORITY, instrument=V23, qty_t=30
    )
    assert moved == s.AllowancesTransferred(moved.seq, 0, 53, POWER, AUTHORITY, V23, 30)
    assert desk.held(POWER, V23) == (20, 0, 0, 0) and desk.held(AUTHORITY, V23) == (30, 0, 0, 0)


def test_frozen_account_may_receive_but_not_send(desk: Desk) -> None:
    desk.ok(s.FreezeAccount, account=POWER)
    desk.ok(s.DepositCash, account=POWER, amount_fen=1)
    desk.ok(s.IssueAllowances, account=POWER, instrument=V24, qty_t=1)
    desk.ok(s.TransferAllowances, account=ALU, to_account=POWER, instrument=V24, qty_t=9)
    desk.ok(s.FreezeAllowances, account=POWER, instrument=V24, qty_t=10)  # registry freeze
    desk.ok(s.ReportEmissions, account=POWER, year=2024, co2_t=10)
    assert desk.cash(POWER) == (CASH + 1, 0) and desk.held(POWER) == (1_000, 0, 10, 0)
    assert desk.engine.account(POWER).frozen
    desk.ok(s.UnfreezeAccount, account=POWER)
    desk.ok(s.UnfreezeAllowances, account=POWER, instrument=V24, qty_t=10)
    desk.ok(s.WithdrawCash, account=POWER, amount_fen=CASH + 1)
    assert desk.held(POWER) == (1_010, 0, 0, 0) and desk.cash(POWER) == (0, 0)


def test_cancelled_and_clawed_back_allowances_leave_circulation(desk: Desk) -> None:
    desk.ok(s.CancelAllowances, account=POWER, instrument=V24, qty_t=100)
    desk.ok(s.ClawBack, account=ALU, instrument=V24, qty_t=200)
    assert desk.held(POWER) == (900, 0, 0, 0) and desk.held(ALU) == (800, 0, 0, 0)
    # nothing brings cancelled allowances back; circulation (checked by step) is 13,000 - 300
    total = sum(desk.held(a)[0] for a in range(ACCOUNTS) if desk.engine.account(a))
    assert total == 12_700


# ============================================================================================
# Idempotency
# ============================================================================================

ONE_OF_EACH = [
    s.OpenAccount(key=0, account=9, kind=K.INVESTOR),
    s.DepositCash(key=0, account=POWER, amount_fen=10),
    s.WithdrawCash(key=0, account=POWER, amount_fen=10),
    s.IssueAllowances(key=0, account=POWER, instrument=V23, qty_t=10, true_up=True),
    s.ClawBack(key=0, account=POWER, instrument=V24, qty_t=10),
    s.TransferAllowances(key=0, account=POWER, to_account=ALU, instrument=V24, qty_t=10),
    s.FreezeAllowances(key=0, account=POWER, instrument=V24, qty_t=10),
    s.UnfreezeAllowances(key=0, account=POWER, instrument=V24, qty_t=5),
    s.CancelAllowances(key=0, account=POWER, instrument=V24, qty_t=10),
    s.ReportEmissions(key=0, account=POWER, year=2024, co2_t=100, cf4_kg=3),
    s.SurrenderAllowances(key=0, account=POWER, instrument=V24, year=2024, qty_t=10),
    s.FreezeAccount(key=0, account=ALU),
    s.UnfreezeAccount(key=0, account=ALU),
    s.CloseComplianceYear(key=0, year=2024, reference_price_ticks=6000),
]


def test_every_registry_command_is_idempotent(desk: Desk) -> None:
    assert {type(c) for c in ONE_OF_EACH} == set(s.REGISTRY_COMMAND_TYPES)
    for key, command in enumerate(ONE_OF_EACH, start=500):
        command = msgspec.structs.replace(command, key=key)
        first = desk.do(command)
        assert first and not any(isinstance(e, s.RegistryRejected) for e in first), first
        state, views = desk.engine.state_hash(), desk.views()
        tag = type(command).__struct_config__.tag
        for _ in range(2):
            retry = desk.do(command)
            assert retry == [s.DuplicateCommand(retry[0].seq, 0, key, tag, first[0].seq, R.NONE)]
            assert desk.engine.state_hash() == state and desk.views() == views, command


def test_a_refused_command_stays_refused_when_retried_after_things_changed(desk: Desk) -> None:
    withdraw = s.WithdrawCash(key=600, account=POWER, amount_fen=CASH + 1)
    refused = desk.do(withdraw)
    assert refused[0].reason == R.INSUFFICIENT_CASH
    desk.ok(s.DepositCash, account=POWER, amount_fen=1)  # now it would succeed ...
    retry = desk.do(withdraw)  # ... but the key has its outcome
    assert retry == [
        s.DuplicateCommand(retry[0].seq, 0, 600, 22, refused[0].seq, R.INSUFFICIENT_CASH)
    ]
    assert desk.cash(POWER) == (CASH + 1, 0)
    desk.ok(s.WithdrawCash, key=601, account=POWER, amount_fen=CASH + 1)  # a new key does
    assert desk.cash(POWER) == (0, 0)


def test_a_key_reused_by_another_command_reports_the_first_command(desk: Desk) -> None:
    first = desk.reg(s.DepositCash, key=700, account=POWER, amount_fen=1)
    other = desk.reg(s.IssueAllowances, key=700, account=ALU, instrument=V24, qty_t=5)
    assert other == [s.DuplicateCommand(other[0].seq, 0, 700, 21, first[0].seq, R.NONE)]
    assert desk.held(ALU) == (1_000, 0, 0, 0)


def test_rerunning_an_allocation_applies_it_once(desk: Desk) -> None:
    commands = allocation.pre_allocate(2025, V25, {POWER: 10_000, ALU: 5_001})
    assert [(c.account, c.qty_t) for c in commands] == [(POWER, 7_000), (ALU, 3_500)]
    for run in range(2):
        events = [e for c in commands for e in desk.do(c)]
        expected = s.AllowancesIssued if run == 0 else s.DuplicateCommand
        assert [type(e) for e in events] == [expected, expected]
        assert desk.held(POWER, V25)[0] == 7_000 and desk.held(ALU, V25)[0] == 3_500


def test_keys_survive_a_snapshot(desk: Desk, engine_cls) -> None:
    first = desk.reg(s.DepositCash, key=800, account=POWER, amount_fen=1)
    refused = desk.reg(s.ClawBack, key=801, account=POWER, instrument=V23, qty_t=1)
    restored = Desk(engine_cls.from_state(desk.engine.market, desk.engine.export_state()))
    restored.seqs = itertools.count(100)
    assert restored.reg(s.DepositCash, key=800, account=POWER, amount_fen=1) == [
        s.DuplicateCommand(100, 0, 800, 21, first[0].seq, R.NONE)
    ]
    assert restored.reg(s.ClawBack, key=801, account=POWER, instrument=V23, qty_t=1) == [
        s.DuplicateCommand(101, 0, 801, 24, refused[0].seq, R.INSUFFICIENT_ALLOWANCES)
    ]
    assert restored.cash(POWER) == (CASH + 1, 0)


# ============================================================================================
# Trading with the registry on: refusals
# ============================================================================================

# (id, setup, refused order, reason)
ORDER_REFUSALS = [
    ("unopened-account", [], order(1, 9, BUY, 1, 6000), R.UNKNOWN_ACCOUNT),
    ("account-out-of-range", [], order(1, ACCOUNTS, BUY, 1, 6000), R.UNKNOWN_ACCOUNT),
    ("fee-account", [], order(1, FEE, BUY, 1, 6000), R.ACCOUNT_MAY_NOT_TRADE),
    ("authority-sells", [], order(1, AUTHORITY, SELL, 1, 6000), R.ACCOUNT_MAY_NOT_TRADE),
    (
        "authority-frozen",
        [s.FreezeAccount(key=900, account=AUTHORITY)],
        order(1, AUTHORITY, SELL, 10_001, 6000),
        R.ACCOUNT_MAY_NOT_TRADE,
    ),
    ("matching-checks-first", [], order(1, AUTHORITY, SELL, 1, 7000), R.PRICE_OUT_OF_BAND),
    (
        "duplicate-id-first",
        [order(1, POWER, SELL, 1, 6100)],
        order(1, FEE, SELL, 1, 6000),
        R.DUPLICATE_ORDER_ID,
    ),
    ("frozen", [FREEZE_POWER], order(1, POWER, BUY, 99_999, 6600), R.ACCOUNT_FROZEN),
    ("frozen-sells", [FREEZE_POWER], order(1, POWER, SELL, 1, 6000), R.ACCOUNT_FROZEN),
    ("sell-too-much", [], order(1, POWER, SELL, 1_001, 6000), R.INSUFFICIENT_ALLOWANCES),
    ("sell-other-vintage", [], order(1, POWER, SELL, 1, 6000, V23), R.INSUFFICIENT_ALLOWANCES),
    (
        "sell-locked",
        [order(2, POWER, SELL, 600, 6500)],
        order(1, POWER, SELL, 401, 6000),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "sell-frozen-allowances",
        [s.FreezeAllowances(key=900, account=POWER, instrument=V24, qty_t=1)],
        order(1, POWER, SELL, 1_000, 6000),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    ("buy-too-much", [], order(1, POWER, BUY, 1_667, 6000), R.INSUFFICIENT_CASH),
    (
        "buy-locked-cash",
        [order(2, POWER, BUY, 1_000, 6000, V23)],
        order(1, POWER, BUY, 667, 6000),
        R.INSUFFICIENT_CASH,
    ),
    (
        "post-only-cash-before-would-trade",
        [order(2, ALU, SELL, 10, 6000)],
        order(1, POWER, BUY, 1_700, 6000, order_type=s.OrderType.POST_ONLY),
        R.INSUFFICIENT_CASH,
    ),
    (
        "post-only-allowances-before-would-trade",
        [order(2, ALU, BUY, 10, 6000)],
        order(1, POWER, SELL, 1_001, 6000, order_type=s.OrderType.POST_ONLY),
        R.INSUFFICIENT_ALLOWANCES,
    ),
    (
        "market-buy-locks-at-band-top",
        [
            s.WithdrawCash(key=900, account=POWER, amount_fen=CASH - 659_999),
            order(2, ALU, SELL, 100, 5400),
        ],
        market_buy(1, POWER, 100),
        R.INSUFFICIENT_CASH,
    ),
]


@pytest.mark.parametrize(
    "setup, command, reason",
    [case[1:] for case in ORDER_REFUSALS],
    ids=[case[0] for case in ORDER_REFUSALS],
)
def test_order_refusal(desk: Desk, setup, command: s.SubmitOrder, reason: R) -> None:
    for setup_command in setup:
        events = desk.do(setup_command)
        assert not any(isinstance(e, (s.RegistryRejected, s.OrderRejected)) for e in events)
    before = desk.engine.state_hash()
    events = desk.do(command)
    assert events == [
        s.OrderRejected(
            events[0].seq,
            0,
            command.order_id,
            command.account,
            command.instrument,
            command.side,
            command.price_ticks,
            command.qty_t,
            reason,
        )
    ]
    assert desk.engine.state_hash() == before


def test_mass_cancel_of_an_unopened_account(desk: Desk) -> None:
    events = desk.do(s.MassCancel(account=9))
    assert events == [s.CommandRejected(events[0].seq, 0, 4, "", R.UNKNOWN_ACCOUNT)]


def test_exact_cash_is_enough_and_a_fen_less_is_not(fee_desk: Desk) -> None:
    desk = fee_desk
    need = 100 * 6000 + 100 * 6000 * 30 // 10_000  # 601,800: value plus the buy fee
    desk.ok(s.WithdrawCash, account=POWER, amount_fen=CASH - need + 1)
    assert desk.do(order(1, POWER, BUY, 100, 6000))[0].reason == R.INSUFFICIENT_CASH
    desk.ok(s.DepositCash, account=POWER, amount_fen=1)
    assert type(desk.do(order(1, POWER, BUY, 100, 6000))[0]) is s.OrderAccepted
    assert desk.cash(POWER) == (0, need)


def test_a_market_buy_locks_at_the_band_top_and_pays_the_makers_price(desk: Desk) -> None:
    desk.ok(s.WithdrawCash, account=POWER, amount_fen=CASH - 660_000)  # 100 t at 66.00
    desk.do(order(2, ALU, SELL, 60, 5400))
    desk.do(order(3, INVESTOR, SELL, 100, 5500))
    events = desk.do(market_buy(1, POWER, 100))
    assert [(t.price_ticks, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [
        (5400, 60),
        (5500, 40),
    ]
    paid = 60 * 5400 + 40 * 5500
    assert desk.cash(POWER) == (660_000 - paid, 0)
    assert desk.held(POWER) == (1_000, 0, 0, 100)
    assert desk.cash(ALU) == (CASH + 60 * 5400, 0) and desk.held(ALU) == (940, 0, 0, 0)
    assert desk.held(INVESTOR) == (900, 60, 0, 0)  # 60 t still offered


def test_modify_refusals(desk: Desk) -> None:
    desk.do(order(1, POWER, BUY, 1_000, 6000))  # 6,000,000 locked, 4,000,000 available
    desk.do(order(2, ALU, SELL, 900, 6500))  # 900 locked, 100 tradable
    cases = [
        (
            s.ModifyOrder(order_id=1, account=POWER, price_ticks=6000, qty_t=1_667),
            R.INSUFFICIENT_CASH,
        ),  # needs 10,002,000: 4,002,000 more than it has locked
        (s.ModifyOrder(order_id=1, account=POWER, price_ticks=7000, qty_t=1), R.PRICE_OUT_OF_BAND),
        (
            s.ModifyOrder(order_id=2, account=ALU, price_ticks=6500, qty_t=1_001),
            R.INSUFFICIENT_ALLOWANCES,
        ),
    ]
    for command, reason in cases:
        before = desk.engine.state_hash()
        assert [e.reason for e in desk.do(command)] == [reason]
        assert desk.engine.state_hash() == before
    desk.ok(s.FreezeAccount, account=POWER)
    frozen = s.ModifyOrder(order_id=1, account=POWER, price_ticks=6000, qty_t=10)
    assert [e.reason for e in desk.do(frozen)] == [R.ACCOUNT_FROZEN]
    # a frozen account's orders can still be cancelled, which releases their lock
    assert type(desk.do(s.CancelOrder(order_id=1, account=POWER))[0]) is s.OrderCancelled
    assert desk.cash(POWER) == (CASH, 0)


def test_modify_swaps_the_old_need_for_the_new(fee_desk: Desk) -> None:
    desk = fee_desk
    desk.do(order(1, POWER, BUY, 100, 6000))
    assert desk.cash(POWER) == (CASH - 601_800, 601_800)
    desk.do(s.ModifyOrder(order_id=1, account=POWER, price_ticks=6000, qty_t=40))  # priority kept
    assert desk.cash(POWER) == (CASH - 240_720, 240_720)
    desk.do(s.ModifyOrder(order_id=1, account=POWER, price_ticks=5500, qty_t=1_000))
    need = 5_500_000 + 16_500
    assert desk.cash(POWER) == (CASH - need, need)
    # exactly the rest of its cash may go into the order; one more tonne may not
    desk.do(order(2, ALU, SELL, 10, 6600))
    desk.do(order(3, ALU, SELL, 10, 6600))
    desk.ok(s.WithdrawCash, account=POWER, amount_fen=CASH - need - 1)
    grown = s.ModifyOrder(order_id=1, account=POWER, price_ticks=5500, qty_t=1_001)
    assert [e.reason for e in desk.do(grown)] == [R.INSUFFICIENT_CASH]
    desk.do(order(4, POWER, SELL, 1_000, 6500))
    modified = s.ModifyOrder(order_id=4, account=POWER, price_ticks=6600, qty_t=1_000)
    events = desk.do(modified)  # loses priority, rests behind ALU's asks
    assert type(events[0]) is s.OrderModified and desk.held(POWER) == (0, 1_000, 0, 0)
    assert [
        e.reason
        for e in desk.do(s.ModifyOrder(order_id=4, account=POWER, price_ticks=6600, qty_t=1_001))
    ] == [R.INSUFFICIENT_ALLOWANCES]


def test_a_modify_that_trades_settles_at_the_new_lock_price(desk: Desk) -> None:
    desk.do(order(1, ALU, SELL, 50, 6200))
    desk.do(order(2, POWER, BUY, 100, 6000))
    events = desk.do(s.ModifyOrder(order_id=2, account=POWER, price_ticks=6300, qty_t=100))
    assert [(t.price_ticks, t.qty_t) for t in events if type(t) is s.TradeExecuted] == [(6200, 50)]
    assert desk.cash(POWER) == (CASH - 50 * 6200 - 50 * 6300, 50 * 6300)
    assert desk.held(POWER) == (1_000, 0, 0, 50)


# ============================================================================================
# Settlement, locks and their release
# ============================================================================================


def test_settlement_is_delivery_versus_payment(desk: Desk) -> None:
    desk.do(order(1, ALU, SELL, 300, 6000))
    assert desk.held(ALU) == (700, 300, 0, 0)
    desk.do(order(2, POWER, BUY, 300, 6000))
    assert desk.held(ALU) == (700, 0, 0, 0) and desk.cash(ALU) == (CASH + 1_800_000, 0)
    assert desk.held(POWER) == (1_000, 0, 0, 300) and desk.cash(POWER) == (CASH - 1_800_000, 0)


def test_partial_fill_below_the_limit_releases_the_excess(desk: Desk) -> None:
    desk.do(order(1, ALU, SELL, 50, 6000))
    desk.do(order(2, POWER, BUY, 100, 6100))  # 50 fill at 60.00, 50 rest at 61.00
    assert desk.cash(POWER) == (CASH - 300_000 - 305_000, 305_000)
    desk.do(order(3, INVESTOR, SELL, 20, 6050))  # fills at the resting buy's price, 61.00
    assert desk.cash(POWER) == (CASH - 300_000 - 20 * 6100 - 30 * 6100, 30 * 6100)
    desk.do(s.CancelOrder(order_id=2, account=POWER))
    assert desk.cash(POWER) == (CASH - 300_000 - 20 * 6100, 0)
    assert desk.held(POWER) == (1_000, 0, 0, 70)
    assert desk.cash(INVESTOR) == (CASH + 20 * 6100, 0)


@pytest.mark.parametrize("stp", list(s.StpMode))
def test_self_trade_prevention_releases_exactly(desk: Desk, stp: s.StpMode) -> None:
    desk.do(order(1, POWER, SELL, 100, 6000))
    events = desk.do(order(2, POWER, BUY, 100, 6000, stp=stp))
    cancelled = {e.order_id for e in events if type(e) is s.OrderCancelled}
    expected = {
        s.StpMode.CANCEL_INCOMING: {2},
        s.StpMode.CANCEL_RESTING: {1},
        s.StpMode.CANCEL_BOTH: {1, 2},
    }[stp]
    assert cancelled == expected
    buy_rests, sell_rests = 2 not in cancelled, 1 not in cancelled
    assert desk.cash(POWER) == (CASH - 600_000 * buy_rests, 600_000 * buy_rests)
    assert desk.held(POWER) == (1_000 - 100 * sell_rests, 100 * sell_rests, 0, 0)


def test_ioc_remainder_fok_kill_and_mass_cancel_release_exactly(fee_desk: Desk) -> None:
    desk = fee_desk
    desk.do(order(1, ALU, SELL, 10, 6000))
    desk.do(order(2, POWER, BUY, 30, 6100, tif=IOC))  # 10 fill, 20 cancelled
    paid = 60_000 + 60_000 * 30 // 10_000
    assert desk.cash(POWER) == (CASH - paid, 0)
    events = desk.do(order(3, POWER, BUY, 30, 6100, tif=FOK))  # nothing to fill: killed
    assert events[-1].reason == C.FOK_NOT_FILLABLE and desk.cash(POWER) == (CASH - paid, 0)
    desk.do(order(4, POWER, BUY, 7, 5999, tif=GTC))
    desk.do(order(5, POWER, SELL, 9, 6300, symbol=V24))
    desk.do(order(6, POWER, BUY, 3, 5401, symbol=V23))
    assert desk.cash(POWER)[1] == (
        7 * 5999 + 7 * 5999 * 30 // 10_000 + 3 * 5401 + 3 * 5401 * 30 // 10_000
    )
    events = desk.do(s.MassCancel(account=POWER))
    assert events[-1].cancelled_count == 3
    assert desk.cash(POWER) == (CASH - paid, 0) and desk.held(POWER) == (1_000, 0, 0, 10)


def test_session_end_releases_day_orders_and_keeps_gtc_locked(desk: Desk) -> None:
    desk.do(order(1, POWER, BUY, 100, 5900))
    desk.do(order(2, POWER, BUY, 100, 5800, tif=GTC))
    desk.do(order(3, ALU, SELL, 100, 6200))
    desk.do(order(4, ALU, SELL, 200, 6300, tif=GTC))
    events = desk.do(s.CloseSession(trading_date=DATE1))
    assert [e.order_id for e in events if type(e) is s.OrderCancelled] == [1, 3]
    assert desk.cash(POWER) == (CASH - 580_000, 580_000)
    assert desk.held(ALU) == (800, 200, 0, 0)


# ============================================================================================
# T+1
# ============================================================================================


def test_bought_today_is_sellable_only_from_the_next_session(desk: Desk) -> None:
    desk.do(order(1, INVESTOR, SELL, 100, 6000))
    desk.do(order(2, ALU, BUY, 100, 6000))
    assert desk.held(ALU) == (1_000, 0, 0, 100)
    # neither trading, nor transfer, nor surrender can use it today
    assert desk.do(order(3, ALU, SELL, 1_001, 6000))[0].reason == R.INSUFFICIENT_ALLOWANCES
    refused = desk.reg(
        s.TransferAllowances, account=ALU, to_account=POWER, instrument=V24, qty_t=1_001
    )
    assert refused[0].reason == R.INSUFFICIENT_ALLOWANCES
    refused = desk.reg(s.SurrenderAllowances, account=ALU, instrument=V24, year=2024, qty_t=1_001)
    assert refused[0].reason == R.INSUFFICIENT_ALLOWANCES
    desk.do(s.CloseSession(trading_date=DATE1))
    assert desk.held(ALU) == (1_000, 0, 0, 100)  # closing does not settle
    desk.do(s.OpenSession(trading_date=DATE2, instrument=V23))  # another vintage's session
    assert desk.held(ALU) == (1_000, 0, 0, 100)
    desk.do(s.OpenSession(trading_date=DATE2, instrument=V24))
    assert desk.held(ALU) == (1_100, 0, 0, 0)
    assert type(desk.do(order(3, ALU, SELL, 1_100, 6000))[0]) is s.OrderAccepted


def test_sale_proceeds_are_usable_the_same_day(desk: Desk) -> None:
    desk.ok(s.WithdrawCash, account=ALU, amount_fen=CASH)
    desk.do(order(1, ALU, SELL, 100, 6000))
    desk.do(order(2, POWER, BUY, 100, 6000))
    assert desk.cash(ALU) == (600_000, 0)
    desk.ok(s.IssueAllowances, account=INVESTOR, instrument=V23, qty_t=100)
    desk.do(order(3, INVESTOR, SELL, 100, 6000, V23))
    assert [type(e) for e in desk.do(order(4, ALU, BUY, 100, 6000, V23))] == [
        s.OrderAccepted,
        s.TradeExecuted,
    ]
    assert desk.cash(ALU) == (0, 0) and desk.held(ALU, V23) == (0, 0, 0, 100)


def test_t_plus_one_survives_a_snapshot(desk: Desk, engine_cls) -> None:
    desk.do(order(1, INVESTOR, SELL, 100, 6000, tif=GTC))
    desk.do(order(2, ALU, BUY, 60, 6000))
    desk.ok(s.ReportEmissions, account=ALU, year=2024, co2_t=2_000)
    desk.ok(s.CloseComplianceYear, year=2023, reference_price_ticks=6000)
    market = desk.engine.market
    restored = engine_cls.from_state(market, desk.engine.export_state())
    assert restored.state_hash() == desk.engine.state_hash()
    assert [restored.account(a) for a in range(ACCOUNTS)] == desk.views()
    again = Desk(restored)
    again.seqs = itertools.count(1_000)
    again.do(s.CloseSession(trading_date=DATE1))
    again.do(s.OpenSession(trading_date=DATE2))
    assert again.held(ALU) == (1_060, 0, 0, 0) and again.held(INVESTOR) == (900, 40, 0, 0)


# ============================================================================================
# Fees
# ============================================================================================


def test_fees_go_to_the_fee_account(fee_desk: Desk) -> None:
    desk = fee_desk
    desk.do(order(1, ALU, SELL, 100, 6000))
    desk.do(order(2, POWER, BUY, 100, 6100))  # trades 100 at 60.00
    value = 600_000
    assert desk.cash(POWER) == (CASH - value - 1_800, 0)  # 30 bps of 600,000
    assert desk.cash(ALU) == (CASH + value - 1_200, 0)  # 20 bps
    assert desk.cash(FEE) == (3_000, 0)


def test_fees_are_rounded_down_per_trade(fee_desk: Desk) -> None:
    desk = fee_desk
    desk.do(order(1, ALU, SELL, 1, 6001))
    desk.do(order(2, ALU, SELL, 2, 6003))
    desk.do(order(3, POWER, BUY, 3, 6003))
    buy_fees = 6001 * 30 // 10_000 + 12_006 * 30 // 10_000  # 18 + 36
    sell_fees = 6001 * 20 // 10_000 + 12_006 * 20 // 10_000  # 12 + 24
    assert (buy_fees, sell_fees) == (54, 36)
    assert desk.cash(POWER) == (CASH - 18_007 - buy_fees, 0)
    assert desk.cash(ALU) == (CASH + 18_007 - sell_fees, 0)
    assert desk.cash(FEE) == (buy_fees + sell_fees, 0)


def test_a_buy_filled_below_its_limit_with_fees_releases_the_rest(fee_desk: Desk) -> None:
    desk = fee_desk
    desk.do(order(1, POWER, BUY, 3, 6001))
    need = 18_003 + 18_003 * 30 // 10_000
    assert desk.cash(POWER) == (CASH - need, need)
    desk.do(order(2, ALU, SELL, 1, 6000))  # taker sells into the resting buy at 60.01
    paid = 6001 + 6001 * 30 // 10_000
    rest = 2 * 6001 + 2 * 6001 * 30 // 10_000
    assert desk.cash(POWER) == (CASH - paid - rest, rest)
    desk.do(s.CancelOrder(order_id=1, account=POWER))
    assert desk.cash(POWER) == (CASH - paid, 0)


# ============================================================================================
# Compliance
# ============================================================================================


@pytest.mark.parametrize(
    "co2_t, cf4_kg, c2f6_kg, gwp, obligation",
    [
        (1_000, 0, 0, s.GwpVersion.AR5, 1_000),
        (0, 50, 0, s.GwpVersion.AR5, 332),  # 331.5 t rounds half up
        (0, 1, 0, s.GwpVersion.AR5, 7),  # 6.63
        (0, 0, 1, s.GwpVersion.AR5, 11),  # 11.1
        (1_000, 121, 15, s.GwpVersion.AR5, 1_969),  # 802.23 + 166.5 = 968.73
        (1_000, 121, 15, s.GwpVersion.AR6, 2_079),  # 892.98 + 186.0 = 1,078.98
        (1_000, 121, 15, s.GwpVersion.AR4, 2_077),  # 894.19 + 183.0 = 1,077.19
        (0, 0, 0, s.GwpVersion.AR6, 0),
    ],
)
def test_obligation_in_tco2e(desk: Desk, co2_t, cf4_kg, c2f6_kg, gwp, obligation) -> None:
    event = desk.ok(
        s.ReportEmissions,
        key=40,
        account=ALU,
        year=2024,
        co2_t=co2_t,
        cf4_kg=cf4_kg,
        c2f6_kg=c2f6_kg,
        gwp=gwp,
    )
    assert event == s.EmissionsReported(
        event.seq, 0, 40, ALU, 2024, obligation, co2_t, cf4_kg, c2f6_kg, gwp
    )


def test_the_offset_cap_is_5_percent_of_the_obligation(desk: Desk) -> None:
    desk.ok(s.IssueAllowances, account=POWER, instrument=CCER, qty_t=200)
    desk.ok(s.ReportEmissions, account=POWER, year=2024, co2_t=1_000)  # cap 50
    desk.ok(s.SurrenderAllowances, account=POWER, instrument=CCER, year=2024, qty_t=30)
    desk.ok(s.SurrenderAllowances, account=POWER, instrument=CCER, year=2024, qty_t=20)
    refused = desk.reg(s.SurrenderAllowances, account=POWER, instrument=CCER, year=2024, qty_t=1)
    assert refused[0].reason == R.OFFSET_LIMIT_EXCEEDED
    # a corrected (larger) report raises the cap; the cap is per year
    desk.ok(s.ReportEmissions, account=POWER, year=2024, co2_t=1_039)  # cap 51
    desk.ok(s.SurrenderAllowances, account=POWER, instrument=CCER, year=2024, qty_t=1)
    desk.ok(s.ReportEmissions, account=POWER, year=2025, co2_t=400)  # cap 20
    desk.ok(s.SurrenderAllowances, account=POWER, instrument=CCER, year=2025, qty_t=20)
    assert desk.held(POWER, CCER) == (129, 0, 0, 0)


def test_banking_is_allowed_and_borrowing_is_not(desk: Desk) -> None:
    for symbol in (V23, V24, V25):
        desk.ok(s.IssueAllowances, account=POWER, instrument=symbol, qty_t=10)
    desk.ok(s.SurrenderAllowances, account=POWER, instrument=V23, year=2024, qty_t=10)
    desk.ok(s.SurrenderAllowances, account=POWER, instrument=V24, year=2024, qty_t=10)
    refused = desk.reg(s.SurrenderAllowances, account=POWER, instrument=V25, year=2024, qty_t=10)
    assert refused[0].reason == R.VINTAGE_NOT_ELIGIBLE
    desk.ok(s.SurrenderAllowances, account=POWER, instrument=V25, year=2025, qty_t=10)
    assert desk.held(POWER, V25) == (0, 0, 0, 0) and desk.held(POWER, V23) == (0, 0, 0, 0)


def _allocate_2024(desk: Desk) -> None:
    """Five entities (two power, two aluminium, one cement), an investor and an authority;
    power allocated by benchmark (pre-allocation, then true-up), the rest by plain issuance."""
    desk.ok(s.OpenAccount, account=FEE, kind=K.FEE)
    entities = {
        1: s.Sector.POWER,
        2: s.Sector.POWER,
        5: s.Sector.ALUMINIUM,
        6: s.Sector.ALUMINIUM,
        7: s.Sector.CEMENT,
    }
    for account, sector in entities.items():
        desk.ok(s.OpenAccount, account=account, kind=K.COMPLIANCE, sector=sector, province=150000)
        desk.ok(s.DepositCash, account=account, amount_fen=5_000_000)
    desk.ok(s.OpenAccount, account=3, kind=K.INVESTOR)
    desk.ok(s.OpenAccount, account=4, kind=K.AUTHORITY, province=150000)

    previous = {1: 10_000, 2: 5_000}
    for command in allocation.pre_allocate(2024, V24, previous):
        desk.do(command)
    units = [
        allocation.PowerUnit(1, "coal_300mw_plus", electricity_mwh=12_000, heat_gj=5_000),
        allocation.PowerUnit(2, "gas", electricity_mwh=8_000),
    ]
    true_up = allocation.true_up(2024, V24, units, markets.benchmarks_2024(), {1: 7_000, 2: 3_500})
    # 12,000 MWh x 0.7910 + 5,000 GJ x 0.1033 = 10,008.5 → 10,008 t; 8,000 x 0.3288 = 2,630.4
    assert [(type(c), c.account, c.qty_t) for c in true_up] == [
        (s.IssueAllowances, 1, 3_008),
        (s.ClawBack, 2, 870),
    ]
    for command in true_up:
        desk.do(command)
    desk.ok(s.IssueAllowances, account=4, instrument=V24, qty_t=500)
    desk.ok(s.TransferAllowances, account=4, to_account=3, instrument=V24, qty_t=500)
    desk.ok(s.IssueAllowances, account=5, instrument=V24, qty_t=1_800)
    desk.ok(s.IssueAllowances, account=5, instrument=V23, qty_t=100)  # banked from 2023
    desk.ok(s.IssueAllowances, account=5, instrument=CCER, qty_t=200)
    desk.ok(s.IssueAllowances, account=6, instrument=V24, qty_t=1_900)
    desk.ok(s.IssueAllowances, account=6, instrument=V25, qty_t=500)
    assert desk.held(1) == (10_008, 0, 0, 0) and desk.held(2) == (2_630, 0, 0, 0)


def _trade_2024(desk: Desk) -> None:
    """Entity 1 is short and buys from the investor and from entity 2 (settled T+1)."""
    desk.do(s.OpenSession(trading_date=DATE1))
    desk.do(order(1, 3, SELL, 100, 6000))
    desk.do(order(2, 2, SELL, 200, 6050))
    events = desk.do(order(3, 1, BUY, 300, 6100))
    assert [
        (t.maker_order_id, t.price_ticks, t.qty_t) for t in events if type(t) is s.TradeExecuted
    ] == [(1, 6000, 100), (2, 6050, 200)]
    assert desk.cash(1) == (5_000_000 - 600_000 - 1_210_000, 0)  # the excess lock came back
    desk.do(s.CloseSession(trading_date=DATE1))
    refused = desk.reg(
        s.SurrenderAllowances, account=1, instrument=V24, year=2024, qty_t=10_308
    )  # bought yesterday, not yet settled (T+1)
    assert refused[0].reason == R.INSUFFICIENT_ALLOWANCES
    desk.do(s.OpenSession(trading_date=DATE2))


def _report_and_surrender_2024(desk: Desk) -> None:
    """Verified emissions (aluminium under AR5 and under AR6), then surrenders: banking of
    2023, offsets up to 5 %, no borrowing of 2025; entity 6 stays 179 t short."""
    reports = {
        1: dict(co2_t=10_500),
        2: dict(co2_t=2_400),
        5: dict(co2_t=1_000, cf4_kg=121, c2f6_kg=15, gwp=s.GwpVersion.AR5),
        6: dict(co2_t=1_000, cf4_kg=121, c2f6_kg=15, gwp=s.GwpVersion.AR6),
    }
    obligations = {
        account: desk.ok(s.ReportEmissions, account=account, year=2024, **report).obligation_t
        for account, report in reports.items()
    }
    assert obligations == {1: 10_500, 2: 2_400, 5: 1_969, 6: 2_079}
    desk.ok(s.SurrenderAllowances, account=1, instrument=V24, year=2024, qty_t=10_308)
    desk.ok(s.IssueAllowances, account=1, instrument=CCER, qty_t=192)
    desk.ok(s.SurrenderAllowances, account=1, instrument=CCER, year=2024, qty_t=192)  # ≤ 525
    desk.ok(s.SurrenderAllowances, account=2, instrument=V24, year=2024, qty_t=2_400)
    desk.ok(s.SurrenderAllowances, account=5, instrument=V24, year=2024, qty_t=1_800)
    desk.ok(s.SurrenderAllowances, account=5, instrument=V23, year=2024, qty_t=100)
    refused = desk.reg(s.SurrenderAllowances, account=5, instrument=CCER, year=2024, qty_t=99)
    assert refused[0].reason == R.OFFSET_LIMIT_EXCEEDED  # 5 % of 1,969 is 98
    desk.ok(s.SurrenderAllowances, account=5, instrument=CCER, year=2024, qty_t=69)
    refused = desk.reg(s.SurrenderAllowances, account=6, instrument=V25, year=2024, qty_t=179)
    assert refused[0].reason == R.VINTAGE_NOT_ELIGIBLE
    desk.ok(s.SurrenderAllowances, account=6, instrument=V24, year=2024, qty_t=1_900)


def test_a_full_compliance_year(engine_cls) -> None:
    """Allocate (power benchmarks) → trade → report (aluminium under AR5 and AR6) → surrender
    (banking, offsets) → close: the report names each entity's shortfall and penalty."""
    desk = Desk(engine_cls(registry_market()))
    _allocate_2024(desk)
    _trade_2024(desk)
    _report_and_surrender_2024(desk)
    # one ComplianceReported per entity, ascending, then the closing event
    events = desk.reg(s.CloseComplianceYear, key=4242, year=2024, reference_price_ticks=6_000)
    seq = events[0].seq
    report = [e for e in events if type(e) is s.ComplianceReported]
    assert report == [
        s.ComplianceReported(seq, 0, 1, 2024, 10_500, 10_308, 192, 0, 0, 6_000),
        s.ComplianceReported(seq, 0, 2, 2024, 2_400, 2_400, 0, 0, 0, 6_000),
        s.ComplianceReported(seq, 0, 5, 2024, 1_969, 1_900, 69, 0, 0, 6_000),
        s.ComplianceReported(seq, 0, 6, 2024, 2_079, 1_900, 0, 179, 179 * 6_000 * 5, 6_000),
        s.ComplianceReported(seq, 0, 7, 2024, 0, 0, 0, 0, 0, 6_000),  # never reported
    ]
    assert events[-1] == s.ComplianceYearClosed(seq, 0, 4242, 2024, 5, 6_000)
    assert len(events) == 6

    # a closed year takes nothing more; surrendered allowances are gone for good
    late = desk.reg(s.SurrenderAllowances, account=6, instrument=V24, year=2024, qty_t=1)
    assert late[0].reason == R.YEAR_CLOSED
    assert desk.reg(s.ReportEmissions, account=6, year=2024, co2_t=1)[0].reason == R.YEAR_CLOSED
    assert desk.held(2) == (30, 0, 0, 0) and desk.held(6, V25) == (500, 0, 0, 0)
    restored = engine_cls.from_state(desk.engine.market, desk.engine.export_state())
    assert restored.state_hash() == desk.engine.state_hash()


# ============================================================================================
# The invariants can fail: a snapshot with a broken ledger is refused
# ============================================================================================


def _tampered(desk: Desk, change) -> bytes:
    saved = msgspec.msgpack.decode(desk.engine.export_state(), type=snap.EngineSnapshot)
    return snap.encode(msgspec.structs.replace(saved, ledger=change(saved.ledger)))


def _account_change(ledger: snap.LedgerSnapshot, account: int, **fields) -> snap.LedgerSnapshot:
    accounts = [
        msgspec.structs.replace(a, **fields) if a.account == account else a for a in ledger.accounts
    ]
    return msgspec.structs.replace(ledger, accounts=accounts)


LEDGER_CORRUPTIONS = {
    "cash-appears": lambda ledger: _account_change(ledger, ALU, cash_available_fen=CASH + 1),
    "lock-too-small": lambda ledger: _account_change(
        ledger, POWER, cash_available_fen=CASH - 599_999, cash_locked_fen=599_999
    ),
    "allowances-unlocked": lambda ledger: _account_change(
        ledger, ALU, holdings=[(0, 0, 0, 0), (1_000, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)]
    ),
    "allowances-appear": lambda ledger: msgspec.structs.replace(
        ledger, totals=[(0, 0, 0, 0), (12_999, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)]
    ),
    "negative-balance": lambda ledger: _account_change(
        ledger, INVESTOR, holdings=[(0, 0, 0, 0), (1_001, 0, 0, -1), (0, 0, 0, 0), (0, 0, 0, 0)]
    ),
    "no-ledger": lambda ledger: None,
}


@pytest.mark.parametrize("name", sorted(LEDGER_CORRUPTIONS))
def test_a_snapshot_with_a_broken_ledger_is_refused(desk: Desk, engine_cls, name: str) -> None:
    desk.do(order(1, POWER, BUY, 100, 6000))  # 600,000 fen locked
    desk.do(order(2, ALU, SELL, 100, 6100))  # 100 t locked
    engine_cls.from_state(desk.engine.market, _tampered(desk, lambda ledger: ledger))
    with pytest.raises(snap.SnapshotFormatError):
        engine_cls.from_state(desk.engine.market, _tampered(desk, LEDGER_CORRUPTIONS[name]))

"""Stateful property test of the reference ledger (hypothesis rules).

Random trading (submits of every type, cancels, modifies, mass cancels, sessions) mixed with
every registry command (valid and invalid, retries of earlier keys) drive a registry-market
``ReferenceEngine``.  After every rule:

* ``check_invariants()`` holds: allowances conserved per instrument, cash conserved, locks
  equal to the open orders' needs, no negative balance;
* an independent model rebuilt from the events alone agrees with every account: its total cash
  (deposits − withdrawals ± trade values − fees; the fee account receives the fees), its total
  allowances per instrument (issued, transferred, clawed back, cancelled, surrendered, traded)
  and its unsettled (bought since that instrument's last session opened);
* a refused trading command changes nothing (same state hash), a refused registry command
  changes no balance, and a retried key changes nothing at all;
* a snapshot restores to the same state hash and the machine carries on with the restored
  engine.

Hypothesis prints the failing rule sequence and a reproduction blob (``print_blob``).
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.core import schema as s
from engine.core.market import Capacity, Compliance, Fees, Instrument, MarketDefinition, validate
from engine.core.reference.engine import ReferenceEngine

SYMBOLS = ["CEA-2023", "CEA-2024", "CCER"]
ACCOUNTS = 6
FEE = 0
BUY_BPS, SELL_BPS = 30, 20
TRADE_REFUSALS = (s.OrderRejected, s.CancelRejected, s.ModifyRejected, s.CommandRejected)

MARKET = validate(
    MarketDefinition(
        name="ledger property test",
        instruments=[
            Instrument(symbol="CEA-2023", vintage=2023, reference_price_ticks=1_000),
            Instrument(
                symbol="CEA-2024",
                vintage=2024,
                reference_price_ticks=1_000,
                lot_t=10,
                tick_ticks=5,
                min_qty_t=10,
                max_qty_t=1_000,
            ),
            Instrument(symbol="CCER", kind="offset", reference_price_ticks=500),
        ],
        capacity=Capacity(
            accounts=ACCOUNTS, resting_orders=8, max_price_ticks=5_000, registry_keys=4_096
        ),
        registry=True,
        fee_account=FEE,
        fees=Fees(buy_bps=BUY_BPS, sell_bps=SELL_BPS),
        compliance=Compliance(first_year=2022),
    )
)
SPECS = {ins.symbol: ins for ins in MARKET.instruments}

accounts = st.sampled_from([1, 2, 3] * 4 + [0, 4, 5, ACCOUNTS, -1])
symbols = st.sampled_from(SYMBOLS * 4 + ["NOPE"])
order_ids = st.integers(1, 24)
tonnes = st.sampled_from([1, 5, 10, 30, 100, 400, 0, -3])
cash_amounts = st.sampled_from([1, 1_000, 50_000, 400_000, 0])
years = st.sampled_from([2023, 2023, 2024, 2024, 2025, 2021, 2038])
order_kinds = st.sampled_from(
    [(s.OrderType.LIMIT, s.TimeInForce.DAY)] * 4
    + [(s.OrderType.LIMIT, s.TimeInForce.GTC)] * 2
    + [(s.OrderType.LIMIT, s.TimeInForce.IOC), (s.OrderType.LIMIT, s.TimeInForce.FOK)]
    + [(s.OrderType.MARKET, s.TimeInForce.IOC), (s.OrderType.MARKET, s.TimeInForce.FOK)]
    + [(s.OrderType.POST_ONLY, s.TimeInForce.DAY)]
)


def fee(value: int, bps: int) -> int:
    return value * bps // 10_000


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = ReferenceEngine(MARKET)
        self.seq = itertools.count(1)
        self.keys = itertools.count(1)
        self.date = 20250101
        self.sent: list[s.Command] = []  # registry commands whose key was remembered
        self.frozen: set[int] = set()  # frozen accounts, from events only
        self.may_trade: set[int] = set()  # opened compliance and investor accounts
        self.cash: dict[int, int] = {}  # account -> available + locked, from events only
        self.held: dict[tuple[int, str], int] = {}  # (account, symbol) -> all sub-balances
        self.unsettled: dict[tuple[int, str], int] = {}

    # -- applying and the model --------------------------------------------------------------
    def apply(self, command: s.Command) -> list[s.Event]:
        fields = {name: getattr(command, name) for name in command.__struct_fields__}
        command = type(command)(**{**fields, "seq": next(self.seq)})
        before_hash = self.engine.state_hash()
        before = [self.engine.account(a) for a in range(ACCOUNTS)]
        events = self.engine.apply(command)
        if len(events) == 1 and isinstance(events[0], TRADE_REFUSALS + (s.DuplicateCommand,)):
            assert self.engine.state_hash() == before_hash, f"{events[0]} changed the state"
        if len(events) == 1 and isinstance(events[0], s.RegistryRejected):
            assert [self.engine.account(a) for a in range(ACCOUNTS)] == before
        for event in events:
            self.observe(event)
        return events

    def registry(self, command: s.Command) -> list[s.Event]:
        events = self.apply(command)
        forgotten = (s.RejectReason.INVALID_KEY, s.RejectReason.REGISTRY_FULL)
        if not (type(events[0]) is s.RegistryRejected and events[0].reason in forgotten):
            self.sent.append(command)
        return events

    def add(self, table: dict, key, amount: int) -> None:
        table[key] = table.get(key, 0) + amount

    def observe(self, e: s.Event) -> None:  # noqa: C901 - one branch per event kind, flat
        t = type(e)
        if t in (s.OrderAccepted, s.OrderModified):
            assert e.account in self.may_trade and e.account not in self.frozen, e
        elif t in (
            s.CashWithdrawn,
            s.AllowancesTransferred,
            s.AllowancesSurrendered,
            s.AllowancesCancelled,
        ):
            assert e.account not in self.frozen, f"{e} out of a frozen account"
        if t is s.AccountOpened:
            if e.kind in (s.AccountKind.COMPLIANCE, s.AccountKind.INVESTOR):
                self.may_trade.add(e.account)
        elif t is s.AccountFrozen:
            self.frozen.add(e.account)
        elif t is s.AccountUnfrozen:
            self.frozen.remove(e.account)
        elif t is s.CashDeposited:
            self.add(self.cash, e.account, e.amount_fen)
        elif t is s.CashWithdrawn:
            self.add(self.cash, e.account, -e.amount_fen)
        elif t is s.AllowancesIssued:
            self.add(self.held, (e.account, e.instrument), e.qty_t)
        elif t in (s.AllowancesClawedBack, s.AllowancesCancelled, s.AllowancesSurrendered):
            self.add(self.held, (e.account, e.instrument), -e.qty_t)
        elif t is s.AllowancesTransferred:
            self.add(self.held, (e.account, e.instrument), -e.qty_t)
            self.add(self.held, (e.to_account, e.instrument), e.qty_t)
        elif t is s.TradeExecuted:
            taker_buys = e.aggressor_side == s.Side.BUY
            buyer = e.taker_account if taker_buys else e.maker_account
            seller = e.maker_account if taker_buys else e.taker_account
            value = e.price_ticks * e.qty_t
            self.add(self.cash, buyer, -value - fee(value, BUY_BPS))
            self.add(self.cash, seller, value - fee(value, SELL_BPS))
            self.add(self.cash, FEE, fee(value, BUY_BPS) + fee(value, SELL_BPS))
            self.add(self.held, (buyer, e.instrument), e.qty_t)
            self.add(self.held, (seller, e.instrument), -e.qty_t)
            self.add(self.unsettled, (buyer, e.instrument), e.qty_t)
        elif t is s.SessionOpened:
            for account in range(ACCOUNTS):
                self.unsettled.pop((account, e.instrument), None)

    # -- set-up --------------------------------------------------------------------------------
    @initialize()
    def open_market(self) -> None:
        self.registry(s.OpenAccount(key=next(self.keys), account=FEE, kind=s.AccountKind.FEE))
        for account, kind in ((1, 1), (2, 1), (3, 2), (4, 3)):
            self.registry(s.OpenAccount(key=next(self.keys), account=account, kind=kind))
            self.registry(s.DepositCash(key=next(self.keys), account=account, amount_fen=120_000))
            for symbol in SYMBOLS:
                self.registry(
                    s.IssueAllowances(
                        key=next(self.keys), account=account, instrument=symbol, qty_t=100
                    )
                )
        self.apply(s.OpenSession(trading_date=self.date))

    # -- trading rules -------------------------------------------------------------------------
    @rule(
        order_id=order_ids,
        account=accounts,
        symbol=symbols,
        side=st.sampled_from(s.Side),
        lots=st.integers(1, 12),
        offset=st.integers(-12, 12),
        kind=order_kinds,
        stp=st.sampled_from(s.StpMode),
    )
    def submit(self, order_id, account, symbol, side, lots, offset, kind, stp) -> None:
        spec = SPECS.get(symbol, SPECS["CEA-2023"])
        price = spec.reference_price_ticks + spec.tick_ticks * offset * 3
        self.apply(
            s.SubmitOrder(
                order_id=order_id,
                account=account,
                instrument=symbol,
                side=side,
                qty_t=lots * spec.lot_t,
                price_ticks=price,
                order_type=kind[0],
                tif=kind[1],
                stp=stp,
            )
        )

    @rule(
        order_id=order_ids,
        maker=accounts,
        taker=accounts,
        symbol=st.sampled_from(SYMBOLS),
        maker_side=st.sampled_from(s.Side),
        lots=st.integers(1, 12),
        taker_lots=st.integers(1, 15),
        offset=st.integers(-6, 6),
        through=st.integers(0, 4),
        market=st.booleans(),
    )
    def cross(
        self, order_id, maker, taker, symbol, maker_side, lots, taker_lots, offset, through, market
    ) -> None:
        """A resting order, then an opposite order that reaches it (limit or market)."""
        spec = SPECS[symbol]
        price = spec.reference_price_ticks + spec.tick_ticks * offset
        taker_side = s.Side.BUY if maker_side == s.Side.SELL else s.Side.SELL
        limit = price + spec.tick_ticks * through * (1 if taker_side == s.Side.BUY else -1)
        self.apply(
            s.SubmitOrder(
                order_id=order_id,
                account=maker,
                instrument=symbol,
                side=maker_side,
                qty_t=lots * spec.lot_t,
                price_ticks=price,
                tif=s.TimeInForce.GTC,
            )
        )
        kind = (
            (s.OrderType.MARKET, s.TimeInForce.IOC)
            if market
            else (s.OrderType.LIMIT, s.TimeInForce.DAY)
        )
        self.apply(
            s.SubmitOrder(
                order_id=order_id + 100,
                account=taker,
                instrument=symbol,
                side=taker_side,
                qty_t=taker_lots * spec.lot_t,
                price_ticks=limit,
                order_type=kind[0],
                tif=kind[1],
            )
        )

    @rule(order_id=order_ids, account=accounts)
    def cancel(self, order_id, account) -> None:
        self.apply(s.CancelOrder(order_id=order_id, account=account))

    @rule(data=st.data(), lots=st.integers(1, 15), offset=st.integers(-12, 12), owner=st.booleans())
    def modify(self, data, lots, offset, owner) -> None:
        """Mostly a resting order by its owner; sometimes any id, any account."""
        resting_ids = sorted(self.engine._orders)
        if resting_ids and owner:
            order_id = data.draw(st.sampled_from(resting_ids))
            account = self.engine.order(order_id).account
        else:
            order_id, account = data.draw(order_ids), data.draw(accounts)
        resting = self.engine.order(order_id)
        spec = SPECS[resting.instrument] if resting else SPECS["CEA-2023"]
        price = spec.reference_price_ticks + spec.tick_ticks * offset * 3
        self.apply(
            s.ModifyOrder(
                order_id=order_id, account=account, price_ticks=price, qty_t=lots * spec.lot_t
            )
        )

    @rule(account=accounts, scope=st.sampled_from(SYMBOLS + [s.ALL_INSTRUMENTS]))
    def mass_cancel(self, account, scope) -> None:
        self.apply(s.MassCancel(account=account, instrument=scope))

    @rule(
        action=st.sampled_from(["open", "open", "close", "halt", "resume"]),
        scope=st.sampled_from([s.ALL_INSTRUMENTS] * 3 + SYMBOLS),
    )
    def session(self, action, scope) -> None:
        if action == "open":
            self.date += 1
            self.apply(s.OpenSession(trading_date=self.date, instrument=scope))
        elif action == "close":
            self.apply(s.CloseSession(trading_date=self.date, instrument=scope))
        else:
            cls = s.HaltInstrument if action == "halt" else s.ResumeInstrument
            self.apply(cls(instrument=scope or SYMBOLS[0]))

    # -- registry rules ------------------------------------------------------------------------
    @rule(
        account=accounts,
        kind=st.sampled_from([1, 2, 3, 4, 7]),
        key=st.sampled_from([None] * 6 + [0, -1]),
    )
    def open_account(self, account, kind, key) -> None:
        """Also with a key that is refused (INVALID_KEY) and so never remembered."""
        key = next(self.keys) if key is None else key
        self.registry(s.OpenAccount(key=key, account=account, kind=kind))

    @rule(account=accounts, amount=cash_amounts, deposit=st.booleans())
    def cash_move(self, account, amount, deposit) -> None:
        cls = s.DepositCash if deposit else s.WithdrawCash
        self.registry(cls(key=next(self.keys), account=account, amount_fen=amount))

    @rule(
        kind=st.sampled_from(
            [
                s.IssueAllowances,
                s.ClawBack,
                s.FreezeAllowances,
                s.UnfreezeAllowances,
                s.CancelAllowances,
            ]
        ),
        account=accounts,
        symbol=symbols,
        qty=tonnes,
    )
    def holding_command(self, kind, account, symbol, qty) -> None:
        self.registry(kind(key=next(self.keys), account=account, instrument=symbol, qty_t=qty))

    @rule(account=accounts, to_account=accounts, symbol=symbols, qty=tonnes)
    def transfer(self, account, to_account, symbol, qty) -> None:
        self.registry(
            s.TransferAllowances(
                key=next(self.keys),
                account=account,
                to_account=to_account,
                instrument=symbol,
                qty_t=qty,
            )
        )

    @rule(account=accounts, freeze=st.booleans())
    def freeze_account(self, account, freeze) -> None:
        cls = s.FreezeAccount if freeze else s.UnfreezeAccount
        self.registry(cls(key=next(self.keys), account=account))

    @rule(
        account=accounts,
        year=years,
        co2=st.integers(0, 3_000),
        cf4=st.sampled_from([0, 80]),
        gwp=st.sampled_from([1, 2, 3, 0]),
    )
    def report(self, account, year, co2, cf4, gwp) -> None:
        self.registry(
            s.ReportEmissions(
                key=next(self.keys),
                account=account,
                year=year,
                co2_t=co2,
                cf4_kg=cf4,
                c2f6_kg=cf4 // 8,
                gwp=gwp,
            )
        )

    @rule(account=accounts, symbol=symbols, year=years, qty=tonnes)
    def surrender(self, account, symbol, year, qty) -> None:
        self.registry(
            s.SurrenderAllowances(
                key=next(self.keys), account=account, instrument=symbol, year=year, qty_t=qty
            )
        )

    @rule(year=years, price=st.sampled_from([6_000, 0]))
    def close_year(self, year, price) -> None:
        events = self.registry(
            s.CloseComplianceYear(key=next(self.keys), year=year, reference_price_ticks=price)
        )
        for e in events:
            if type(e) is s.ComplianceReported:
                assert e.shortfall_t == max(0, e.obligation_t - e.surrendered_t - e.offsets_t)
                assert e.penalty_fen == e.shortfall_t * price * MARKET.compliance.penalty_multiple

    @rule(data=st.data())
    def retry(self, data) -> None:
        """An earlier registry command again, with its key: nothing happens."""
        command = data.draw(st.sampled_from(self.sent))
        events = self.apply(command)
        assert [type(e) for e in events] == [s.DuplicateCommand], command

    @rule()
    def snapshot(self) -> None:
        restored = ReferenceEngine.from_state(MARKET, self.engine.export_state())
        assert restored.state_hash() == self.engine.state_hash()
        self.engine = restored

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def ledger_is_consistent(self) -> None:
        self.engine.check_invariants()
        for account in range(ACCOUNTS):
            status = self.engine.account(account)
            if status is None:
                assert self.cash.get(account, 0) == 0, f"cash of unopened account {account}"
                continue
            total = status.cash_available_fen + status.cash_locked_fen
            assert total == self.cash.get(account, 0), f"account {account} cash {total}"
            for h in status.holdings:
                key = (account, h.instrument)
                assert h.tradable_t + h.locked_t + h.frozen_t + h.unsettled_t == self.held.get(
                    key, 0
                ), f"{key}: {h}"
                assert h.unsettled_t == self.unsettled.get(key, 0), f"{key}: unsettled {h}"


LedgerMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedger = LedgerMachine.TestCase

"""The reports agree with what the live exchange emitted and holds: trades, daily bars,
statements that reconcile with the ledger's balances, and ``diff`` of logs that differ in
commands, outcomes or length."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.core import records as r
from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from replay.datadir import open_data_dir
from replay.diff import diff
from replay.render import cny, parse_time, timestamp, trading_date
from replay.reports import (
    ACCOUNT_ROLES,
    MOVEMENTS,
    Fees,
    MarketReport,
    StatementReport,
    TradesReport,
    scan_events,
    vwap_close,
)
from tests.test_replay_support import TRADERS, Workload, small_market, write_log


def live_log(path: Path, seed: int, registry: bool = False, **kw) -> tuple[list, object]:
    print(f"replay reports seed {seed}")
    market = small_market(registry)
    events: list = []
    write_log(path, Workload(seed, market).batches(3, 150), market, events, **kw)
    return events, market


def test_trades_are_the_live_trades_with_their_trading_dates(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    events, _ = live_log(tmp_path, seed)
    data = open_data_dir(tmp_path)
    report = TradesReport(data)
    scan_events(data, [report])
    live = [e for e in events if isinstance(e, s.TradeExecuted)]
    assert len(report.trades) == len(live) > 0, f"seed {seed}"
    date = {}
    for event in events:
        if isinstance(event, s.SessionOpened):
            date[event.instrument] = event.trading_date
        if isinstance(event, s.TradeExecuted):
            row = report.trades[event.trade_id - 1]
            assert (row.seq, row.trade_id, row.instrument, row.price_ticks, row.qty_t) == (
                event.seq,
                event.trade_id,
                event.instrument,
                event.price_ticks,
                event.qty_t,
            )
            assert (row.taker_account, row.maker_account) == (
                event.taker_account,
                event.maker_account,
            )
            assert row.trading_date == date[event.instrument]
            assert row.value_fen == event.price_ticks * event.qty_t
    only = TradesReport(data, data.instrument_index("CCER"))
    scan_events(data, [only])
    assert only.trades == [t for t in report.trades if t.instrument == "CCER"]


def test_closed_days_are_the_session_closes_and_an_open_day_closes_as_computed(
    tmp_path: Path,
) -> None:
    seed = random.randrange(1 << 30)
    print(f"replay market seed {seed}")
    market = small_market()
    workload = Workload(seed, market)
    batches = workload.batches(2, 200, end_in_session=False)
    batches.append([s.OpenSession(trading_date=20250110)])
    batches += [[workload._command() for _ in range(5)] for _ in range(30)]
    events: list = []
    write_log(tmp_path / "open", batches, market, events)
    closing = [[s.CloseSession(trading_date=20250110)]]
    write_log(tmp_path / "closed", batches + closing, market)
    bars = {}
    for name in ("open", "closed"):
        data = open_data_dir(tmp_path / name)
        report = MarketReport(data)
        scan_events(data, [report])
        bars[name] = report.result().days
    closes = [e for e in events if isinstance(e, s.SessionClosed)]
    finals = [b for b in bars["open"] if b.final]
    closes.sort(key=lambda e: (e.trading_date, market.symbols.index(e.instrument)))
    assert [
        (b.trading_date, b.instrument, b.close_ticks, b.volume_t, b.value_fen) for b in finals
    ] == [(e.trading_date, e.instrument, e.close_ticks, e.volume_t, e.value_fen) for e in closes], (
        f"seed {seed}"
    )
    unfinished = [b for b in bars["open"] if not b.final]
    assert len(unfinished) == 3
    last_day = [b for b in bars["closed"] if b.trading_date == 20250110]
    assert unfinished == [msgspec.structs.replace(b, final=False) for b in last_day], f"{seed}"


def test_vwap_close_rounds_half_up_to_the_tick() -> None:
    assert vwap_close(6000 * 10 + 6001 * 10, 20, 1) == 6001  # 6000.5 rounds up
    assert vwap_close(6000 * 3 + 6001, 4, 1) == 6000
    assert vwap_close(7002 * 10, 10, 5) == 7000
    assert vwap_close(7003 * 10, 10, 5) == 7005


@pytest.mark.parametrize("fee_bps", [0, 7])
def test_statements_reconcile_with_the_ledger_balances(tmp_path: Path, fee_bps: int) -> None:
    seed = random.randrange(1 << 30)
    market = small_market(registry=True)
    market = msgspec.structs.replace(
        market, fees=msgspec.structs.replace(market.fees, buy_bps=fee_bps, sell_bps=fee_bps)
    )
    batches = Workload(seed, market).batches(3, 150)
    batches.insert(0, [s.OpenAccount(key=10**6, account=0, kind=s.AccountKind.FEE)])
    write_log(tmp_path, batches, market)
    data = open_data_dir(tmp_path)
    reports = [StatementReport(data, account) for account in (0, *TRADERS)]
    scan = scan_events(data, reports)
    for report in reports:
        statement = report.result()
        balances = scan.engine.account(report.account)
        cash = balances.cash_available_fen + balances.cash_locked_fen
        assert statement.net_cash_fen == cash, f"seed {seed}, account {report.account}"
        held = {
            h.instrument: h.tradable_t + h.locked_t + h.frozen_t + h.unsettled_t
            for h in balances.holdings
        }
        for flow in statement.flows:
            assert flow.net_t == held[flow.instrument], f"seed {seed}, {report.account}"
        assert sum(held.values()) == sum(f.net_t for f in statement.flows)
    fees_collected = reports[0].result().net_cash_fen
    assert (fees_collected > 0) == (fee_bps > 0), f"seed {seed}"


def test_a_statement_period_continues_from_its_opening_balance(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    live_log(tmp_path, seed, registry=True)
    data = open_data_dir(tmp_path)
    whole = StatementReport(data, 3)
    scan_events(data, [whole])
    lines = whole.result().lines
    start, end = lines[len(lines) // 3].ts_ns, lines[2 * len(lines) // 3].ts_ns
    part = StatementReport(data, 3, start, end)
    scan_events(data, [part])
    statement = part.result()
    expected = [line for line in lines if start <= line.ts_ns < end]
    assert statement.lines == expected, f"seed {seed}"
    before = [line for line in lines if line.ts_ns < start]
    assert statement.opening_net_cash_fen == (before[-1].net_cash_fen if before else 0)
    moved = sum(line.cash_change_fen for line in statement.lines)
    assert statement.net_cash_fen == statement.opening_net_cash_fen + moved


def _row(codec, event: s.Event) -> list[int]:
    return codec.event_row(event)


def test_registry_movements_follow_the_typed_events() -> None:
    """Each movement rule reads the record columns the codec writes for the typed event."""
    market = small_market(registry=True)
    codec = CompiledEngine(market).codec
    cases = [
        (s.AllowancesIssued(1, 2, 3, 4, "CCER", 500, False, 500), "owner", (500, 0)),
        (s.AllowancesClawedBack(1, 2, 3, 4, "CCER", 70, 430), "owner", (-70, 0)),
        (s.AllowancesTransferred(1, 2, 3, 4, 5, "CCER", 60), "sender", (-60, 0)),
        (s.AllowancesTransferred(1, 2, 3, 4, 5, "CCER", 60), "receiver", (60, 0)),
        (s.AllowancesCancelled(1, 2, 3, 4, "CCER", 9), "owner", (-9, 0)),
        (s.AllowancesSurrendered(1, 2, 3, 4, "CCER", 2025, 11), "owner", (-11, 0)),
        (s.CashDeposited(1, 2, 3, 4, 1000, 1000), "owner", (0, 1000)),
        (s.CashWithdrawn(1, 2, 3, 4, 400, 600), "owner", (0, -400)),
    ]
    for event, role, (qty, cash) in cases:
        row = _row(codec, event)
        accounts = {name: row[column] for column, name in ACCOUNT_ROLES[row[r.E_KIND]]}
        assert accounts[role] == (5 if role == "receiver" else 4), event
        assert MOVEMENTS[row[r.E_KIND]](row, role, Fees())[:2] == (qty, cash), event
    trade = s.TradeExecuted(1, 2, 3, "CCER", 5000, 10, s.Side.SELL, 11, 4, 12, 5, 0, 0)
    row = _row(codec, trade)
    fees = Fees(buy_bps=10, sell_bps=20)
    assert MOVEMENTS[r.EV_TRADE](row, "taker", fees) == (-10, 50_000 - 100, 100)
    assert MOVEMENTS[r.EV_TRADE](row, "maker", fees) == (10, -50_000 - 50, 50)
    assert MOVEMENTS[r.EV_TRADE](row, "fee", fees) == (0, 150, 150)


# -- diff ----------------------------------------------------------------------------------------


def two_logs(tmp_path: Path, seed: int, edit=None, market_b=None, **kw_b):
    market = small_market()
    batches = Workload(seed, market).batches(2, 100)
    write_log(tmp_path / "a", batches, market)
    if edit is not None:
        batches = edit(batches)
    write_log(tmp_path / "b", batches, market_b or market, **kw_b)
    return open_data_dir(tmp_path / "a"), open_data_dir(tmp_path / "b"), batches


def test_diff_of_identical_logs(tmp_path: Path) -> None:
    a, b, _ = two_logs(tmp_path, random.randrange(1 << 30))
    result = diff(a, b)
    assert result.identical and result.first_seq is None
    assert result.compared_through_seq == result.last_seq_a == result.last_seq_b > 0


def test_diff_finds_the_first_other_command_regardless_of_batching(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    flat: list = []

    def edit(batches):
        commands = [c for batch in batches for c in batch]
        target = next(i for i, c in enumerate(commands) if isinstance(c, s.SubmitOrder) and i > 40)
        bigger = commands[target].qty_t + 10
        commands[target] = msgspec.structs.replace(commands[target], qty_t=bigger)
        flat.append(target + 1)
        return [commands[i : i + 5] for i in range(0, len(commands), 5)]

    a, b, _ = two_logs(tmp_path, seed, edit, clock=iter(range(10**18, 2 * 10**18, 10**9)).__next__)
    result = diff(a, b, ignore_time=True)
    assert not result.identical and result.what == "command", f"seed {seed}"
    assert result.first_seq == flat[0] and result.compared_through_seq == flat[0] - 1
    assert result.command_a.qty_t + 10 == result.command_b.qty_t
    timed = diff(a, b)  # other clock: the very first command differs in its timestamp
    assert timed.first_seq == 1 and timed.what == "command"


def test_diff_finds_other_outcomes_of_the_same_commands(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    market = small_market()
    wider = msgspec.structs.replace(
        market,
        instruments=[msgspec.structs.replace(i, band_bps=30) for i in market.instruments],
    )
    a, b, _ = two_logs(tmp_path, seed, market_b=wider)
    result = diff(a, b)
    assert result.markets_differ and result.what == "events", f"seed {seed}"
    assert result.command_a == result.command_b
    assert result.events_a != result.events_b


def test_diff_of_a_log_and_its_prefix(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    a, b, batches = two_logs(tmp_path, seed, lambda batches: batches[:-3])
    result = diff(a, b)
    ends = sum(len(batch) for batch in batches)
    assert result.what == "length" and result.first_seq == ends + 1, f"seed {seed}"
    assert result.last_seq_b == ends and result.last_seq_a > ends
    assert result.command_a is not None and result.command_b is None


# -- rendering -----------------------------------------------------------------------------------


def test_money_and_times_are_rendered_with_integers_only() -> None:
    assert cny(6205) == "62.05" and cny(-5) == "-0.05" and cny(123_456_789) == "1,234,567.89"
    assert trading_date(20250102) == "2025-01-02" and trading_date(0) == "-"
    ns = 1_735_781_400_123_456_789
    assert timestamp(ns) == "2025-01-02T09:30:00.123456789+08:00"
    assert parse_time(timestamp(ns)) == ns
    assert parse_time("2025-01-02T09:30:00.123456789") == ns
    assert parse_time("2025-01-02 01:30:00.123456789Z") == ns
    assert parse_time(str(ns)) == ns and parse_time(str(ns), end=True) == ns + 1
    midnight = parse_time("2025-01-02")
    assert parse_time("2025-01-02", end=True) == midnight + 86_400 * 10**9
    assert parse_time("2025-01-01T16:00+00:00") == midnight
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


def test_event_rows_are_picked_by_kind_without_python_per_event(tmp_path: Path) -> None:
    """The consumers see copies of exactly the rows of their kinds, in log order."""
    live_log(tmp_path, 21)
    data = open_data_dir(tmp_path)

    class Spy(TradesReport):
        seen: list

        def take(self, rows: np.ndarray) -> None:
            self.seen.append(rows)

    spy = Spy(data)
    spy.seen = []
    scan_events(data, [spy])
    rows = np.concatenate(spy.seen)
    assert set(rows[:, r.E_KIND].tolist()) <= Spy.kinds
    assert (np.diff(rows[:, r.E_SEQ]) >= 0).all()

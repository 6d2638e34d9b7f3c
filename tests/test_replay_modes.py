"""Reports of logs that mix the three trading modes (docs/TRADING_MODES.md): the market report's
volume by mode and composite price agree with the engine's ``SessionClosed``,
``SessionModeVolumes`` and ``CompositePrice``; the trades report holds listing, block and
auction trades with their mode; statements of every party reconcile with the engine's balances.

The scripted log is the golden scenario ``tests/golden/modes_day.toml``; the simulated one is a
small market day of ``gateway.simulation`` (hit-quote orders, phases, block trades, an auction).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from engine.core import schema as s
from engine.markets import national_market
from replay.cli import main
from replay.datadir import open_data_dir
from replay.render import parse_time
from replay.reports import (
    MarketHistory,
    MarketReport,
    StatementReport,
    TradeRow,
    TradesReport,
    scan_events,
)
from tests.test_replay_golden import load, typed_command
from tests.test_replay_support import write_log

MODE_OF = {s.TradeExecuted: "listing", s.BlockTradeExecuted: "block", s.AuctionTrade: "auction"}


def scenario_log(path: Path) -> list:
    """Write the golden modes scenario to ``path``; return the live events."""
    scenario = load("modes_day")
    times = iter([parse_time(batch.time) for batch in scenario.batch])
    batches = [[typed_command(c) for c in batch.commands] for batch in scenario.batch]
    events: list = []
    write_log(path, batches, scenario.market, events, clock=times.__next__)
    return events


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("modes") / "data"
    return path, scenario_log(path)


def _of(events: list, kind: type) -> list:
    return [e for e in events if type(e) is kind]


def test_the_scenario_exercises_every_mode(scripted) -> None:
    """Guards the premise of the tests below: the engine did what the scenario says."""
    _, events = scripted
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds["BlockTradeExecuted"] == 3 and kinds["AuctionTrade"] == 5
    assert kinds["AuctionCleared"] == 2 and kinds["CompositePrice"] == 1
    assert kinds["TradingPhaseChanged"] == 3 * 2 + 1
    hit = [e for e in _of(events, s.OrderAccepted) if e.order_type == s.OrderType.HIT_QUOTE]
    assert len(hit) == 2
    reasons = {e.reason for e in _of(events, s.BlockCommandRejected)}
    assert reasons == {s.RejectReason.MODE_NOT_IN_PHASE, s.RejectReason.BLOCK_TERMS_MISMATCH}
    assert {e.reason for e in _of(events, s.AuctionCommandRejected)} == {
        s.RejectReason.SELLER_MAY_NOT_BID,
        s.RejectReason.PRICE_OUT_OF_BAND,
        s.RejectReason.UNKNOWN_AUCTION,
    }


def test_market_report_splits_the_modes_as_the_engine_counts_them(scripted) -> None:
    path, events = scripted
    data = open_data_dir(path)
    report = MarketReport(data)
    scan_events(data, [report])
    history = report.result()
    bars = {(b.trading_date, b.instrument): b for b in history.days}
    closes = _of(events, s.SessionClosed)
    volumes = _of(events, s.SessionModeVolumes)
    assert len(closes) == len(volumes) == 3
    for closed, modes in zip(closes, volumes, strict=True):
        bar = bars[(closed.trading_date, closed.instrument)]
        assert bar.final and (modes.trading_date, modes.instrument) == (
            closed.trading_date,
            closed.instrument,
        )
        assert (bar.close_ticks, bar.volume_t, bar.value_fen, bar.trades) == (
            closed.close_ticks,
            closed.volume_t,
            closed.value_fen,
            closed.trade_count,
        )
        assert (bar.block_volume_t, bar.block_value_fen, bar.block_trades) == (
            modes.block_volume_t,
            modes.block_value_fen,
            modes.block_trades,
        )
        assert (bar.auction_volume_t, bar.auction_value_fen, bar.auction_trades) == (
            modes.auction_volume_t,
            modes.auction_value_fen,
            modes.auction_trades,
        )
    day_one = bars[(20250102, "CEA-2024")]
    assert (day_one.volume_t, day_one.block_volume_t, day_one.block_trades) == (7_000, 320_000, 2)
    assert day_one.block_value_fen == 200_000 * 6_100 + 120_000 * 5_900
    assert day_one.auction_volume_t == 0
    auction_day = bars[(20250102, "CEA-2025")]
    assert (auction_day.volume_t, auction_day.auction_volume_t, auction_day.auction_trades) == (
        0,
        150_000,
        3,
    )
    assert auction_day.close_ticks == auction_day.previous_close_ticks == 6_100  # listing only
    # The second day is still open: summed from its events, the pay-as-bid auction cleared
    # between the sessions included (it counts in the next session, as the engine counts it).
    open_day = bars[(20250103, "CEA-2024")]
    assert not open_day.final
    assert (open_day.volume_t, open_day.block_volume_t, open_day.auction_volume_t) == (
        500,
        100_000,
        100_000,
    )
    assert open_day.auction_value_fen == 70_000 * 6_300 + 30_000 * 6_100
    assert open_day.auction_trades == 2 and open_day.block_trades == 1
    assert [(c.trading_date, c.price_ticks, c.vintages) for c in history.composite] == [
        (e.trading_date, e.price_ticks, e.vintages) for e in _of(events, s.CompositePrice)
    ]
    composite = history.composite[0]
    assert composite.price_ticks == (day_one.close_ticks + auction_day.close_ticks + 1) // 2


def test_market_report_of_one_instrument_keeps_the_composite(scripted) -> None:
    path, _ = scripted
    data = open_data_dir(path)
    whole, only = MarketReport(data), MarketReport(data, data.instrument_index("CEA-2025"))
    scan_events(data, [whole, only])
    history = only.result()
    assert history.days == [b for b in whole.result().days if b.instrument == "CEA-2025"]
    assert history.composite == whole.result().composite and history.composite


def test_trades_report_holds_every_mode(scripted) -> None:
    path, events = scripted
    data = open_data_dir(path)
    report = TradesReport(data)
    scan_events(data, [report])
    live = [e for e in events if type(e) in MODE_OF]
    assert [(t.trade_id, t.seq, t.mode) for t in report.trades] == [
        (e.trade_id, e.seq, MODE_OF[type(e)]) for e in live
    ]
    assert [t.trade_id for t in report.trades] == list(range(1, len(live) + 1))
    for row, event in zip(report.trades, live, strict=True):
        assert (row.instrument, row.price_ticks, row.qty_t) == (
            event.instrument,
            event.price_ticks,
            event.qty_t,
        )
        assert row.value_fen == event.price_ticks * event.qty_t
        if type(event) is s.BlockTradeExecuted:
            offer_buys = event.offer_side == s.Side.BUY
            buyer = event.offer_account if offer_buys else event.accepting_account
            seller = event.accepting_account if offer_buys else event.offer_account
            assert (row.maker_order_id, row.maker_account, row.taker_account) == (
                event.offer_id,
                event.offer_account,
                event.accepting_account,
            )
        elif type(event) is s.AuctionTrade:
            buyer, seller = event.buyer_account, event.seller_account
            assert (row.taker_order_id, row.maker_order_id) == (event.bid_id, event.auction_id)
        else:
            taker_buys = event.aggressor_side == s.Side.BUY
            buyer = event.taker_account if taker_buys else event.maker_account
            seller = event.maker_account if taker_buys else event.taker_account
        assert (row.buyer_account, row.seller_account) == (buyer, seller)
    dates = Counter((t.trading_date, t.mode) for t in report.trades)
    assert dates == {
        (20250102, "listing"): 3,
        (20250102, "block"): 2,
        (20250102, "auction"): 3,
        # cleared at 17:00 while the session was closed: it counts in the next session
        (20250103, "auction"): 2,
        (20250103, "listing"): 1,
        (20250103, "block"): 1,
    }


def _reconcile(scan, reports: list[StatementReport], note: str) -> None:
    for report in reports:
        statement = report.result()
        balances = scan.engine.account(report.account)
        cash = balances.cash_available_fen + balances.cash_locked_fen
        assert statement.net_cash_fen == cash, f"{note}: account {report.account}"
        held = {
            h.instrument: h.tradable_t + h.locked_t + h.frozen_t + h.unsettled_t
            for h in balances.holdings
        }
        for flow in statement.flows:
            assert flow.net_t == held[flow.instrument], f"{note}: {report.account} {flow}"
        assert sum(held.values()) == sum(f.net_t for f in statement.flows), note


def test_statements_of_every_party_reconcile_with_the_balances(scripted) -> None:
    path, events = scripted
    data = open_data_dir(path)
    reports = [StatementReport(data, account) for account in range(5)]
    scan = scan_events(data, reports)
    _reconcile(scan, reports, "modes scenario")
    fees, _, second, third, _ = (report.result() for report in reports)
    assert fees.net_cash_fen > 0
    fee_events = {line.event for line in fees.lines}
    assert {"TradeExecuted", "BlockTradeExecuted", "AuctionTrade"} <= fee_events
    # The operator's refused ClearAuction names no account: not a line of account 0.
    assert "AuctionCommandRejected" not in fee_events
    flows = {f.instrument: f for f in third.flows}
    assert flows["CEA-2024"].block_t == 300_000 and flows["CEA-2024"].auction_t == 30_000
    assert flows["CEA-2025"].auction_t == 80_000 and flows["CEA-2025"].bought_t == 80_000
    roles = {(line.event, line.role) for line in third.lines}
    assert {
        ("BlockTradeExecuted", "acceptor"),
        ("BlockTradeExecuted", "offerer"),
        ("AuctionTrade", "buyer"),
        ("AuctionBidAccepted", "bidder"),
    } <= roles
    roles = {(line.event, line.role) for line in second.lines}
    assert {
        ("AuctionApplied", "seller"),
        ("AuctionAnnounced", "seller"),
        ("AuctionCleared", "seller"),
        ("AuctionTrade", "seller"),
        ("AuctionCommandRejected", "owner"),
        ("BlockOfferCancelled", "owner"),
        ("BlockTradeExecuted", "acceptor"),
    } <= roles
    sold = sum(line.qty_change_t for line in second.lines if line.event == "AuctionTrade")
    assert sold == -150_000


def test_cli_renders_modes_and_json_decodes(scripted, capsysbinary) -> None:
    path, _ = scripted
    capsysbinary.readouterr()
    assert main(["market", str(path), "--json"]) == 0
    history = msgspec.json.decode(capsysbinary.readouterr().out, type=MarketHistory)
    assert history.composite and any(b.block_volume_t for b in history.days)
    assert main(["market", str(path)]) == 0
    text = capsysbinary.readouterr().out.decode()
    assert "block t" in text and "auction t" in text and "composite price" in text
    assert main(["trades", str(path), "--format", "json"]) == 0
    trades = msgspec.json.decode(capsysbinary.readouterr().out, type=list[TradeRow])
    assert {t.mode for t in trades} == {"listing", "block", "auction"}
    assert main(["trades", str(path)]) == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert lines[0].split(",")[-3:] == ["mode", "buyer_account", "seller_account"]
    assert sum(line.split(",")[-3] == "block" for line in lines[1:]) == 3


# -- a simulated day of the national market ------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    from gateway.simulation import Simulation, trading_dates

    market = national_market()
    sim = Simulation(market, seed=7, scale=0.04)
    batches = [sim.setup(2024)]
    references = {i.symbol: i.reference_price_ticks for i in sim.instruments}
    dates = list(trading_dates(20251215, 2))
    for date in dates[:-1]:
        day = sim.day(date, 400, references)
        batches += [
            [s.OpenSession(trading_date=date)],
            *_chunks(day.commands, 50),
            [s.CloseSession(trading_date=date)],
        ]
    last = sim.day(dates[-1], 400, references)  # the log ends in this session
    batches += [[s.OpenSession(trading_date=dates[-1])], *_chunks(last.commands, 50)]
    path = tmp_path_factory.mktemp("simulated") / "data"
    events: list = []
    write_log(path, batches, market, events)
    return path, events


def _chunks(commands: list, size: int) -> list[list]:
    return [commands[i : i + size] for i in range(0, len(commands), size)]


def test_simulated_market_statements_reconcile(simulated) -> None:
    path, events = simulated
    traders = set()
    for e in events:
        if type(e) is s.BlockTradeExecuted:
            traders |= {e.offer_account, e.accepting_account}
        elif type(e) is s.AuctionTrade:
            traders |= {e.buyer_account, e.seller_account}
    assert len(traders) >= 4
    data = open_data_dir(path)
    reports = [StatementReport(data, account) for account in sorted(traders | {0})]
    market = MarketReport(data)
    trades = TradesReport(data)
    scan = scan_events(data, [*reports, market, trades])
    _reconcile(scan, reports, "simulated market")
    days = market.result().days
    for mode, kind in (
        ("listing", s.TradeExecuted),
        ("block", s.BlockTradeExecuted),
        ("auction", s.AuctionTrade),
    ):
        live = [e for e in events if type(e) is kind]
        rows = [t for t in trades.trades if t.mode == mode]
        assert len(rows) == len(live) > 0, mode
        volume = {"listing": "volume_t", "block": "block_volume_t", "auction": "auction_volume_t"}
        assert sum(getattr(b, volume[mode]) for b in days) == sum(e.qty_t for e in live), mode


def test_block_and_auction_movements_follow_the_typed_events() -> None:
    """Each movement rule reads the record columns the codec writes for the typed event."""
    from engine.core import records as r
    from engine.core.records import Codec
    from replay.reports import ACCOUNT_ROLES, MOVEMENTS, Fees

    codec = Codec(load("modes_day").market)
    fees = Fees(buy_bps=10, sell_bps=20)
    value = 6_000 * 100_000
    buy, sell = (
        (100_000, -value - value // 1_000, value // 1_000),
        (-100_000, value - value // 500, value // 500),
    )
    for offer_side, offerer, acceptor in ((s.Side.SELL, sell, buy), (s.Side.BUY, buy, sell)):
        event = s.BlockTradeExecuted(1, 2, 7, "CEA-2024", 6_000, 100_000, 5, offer_side, 4, 9)
        row = codec.event_row(event)
        accounts = {role: row[column] for column, role in ACCOUNT_ROLES[row[r.E_KIND]]}
        assert accounts == {"offerer": 4, "acceptor": 9}
        assert MOVEMENTS[row[r.E_KIND]](row, "offerer", fees) == offerer
        assert MOVEMENTS[row[r.E_KIND]](row, "acceptor", fees) == acceptor
        assert MOVEMENTS[row[r.E_KIND]](row, "fee", fees) == (0, buy[2] + sell[2], buy[2] + sell[2])
    fill = s.AuctionTrade(1, 2, 8, 3, "CEA-2024", 6_000, 100_000, 11, 9, 4, 0)
    row = codec.event_row(fill)
    accounts = {role: row[column] for column, role in ACCOUNT_ROLES[row[r.E_KIND]]}
    assert accounts == {"buyer": 9, "seller": 4}
    assert MOVEMENTS[row[r.E_KIND]](row, "buyer", fees) == buy
    assert MOVEMENTS[row[r.E_KIND]](row, "seller", fees) == sell


def test_each_consumer_of_one_scan_sees_only_its_kinds(scripted) -> None:
    """Reports share one pass over the log; none may see another's kinds (a trades report
    fed session events of every kind would take them for trades)."""
    path, _ = scripted
    data = open_data_dir(path)
    alone_market, alone_trades = MarketReport(data), TradesReport(data)
    scan_events(data, [alone_market])
    scan_events(data, [alone_trades])
    market, trades, statement = MarketReport(data), TradesReport(data), StatementReport(data, 3)
    scan_events(data, [statement, market, trades])
    assert market.result() == alone_market.result()
    assert trades.trades == alone_trades.trades

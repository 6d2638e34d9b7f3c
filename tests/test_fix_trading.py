"""FIX 4.4 order entry and market data against native-protocol clients, on real sockets.

A simplefix initiator (``tests.test_fix_client.FixClient``) trades for alice (account 1) while
native clients (``gateway.client.SyncClient``) trade for bob and watch alice's account: every
FIX execution report must say what the native port says about the same order.
"""

from __future__ import annotations

import time

from engine.core import schema as s
from gateway import protocol as p
from gateway.client import SyncClient
from tests.gateway_fixtures import DATE1, SYM_A, SYM_B, SYM_C, password
from tests.test_fix_client import FixClient, close_fix_clients, field, start_fix_server

BUY, SELL = s.Side.BUY, s.Side.SELL
__all__ = ["close_fix_clients"]  # the fixture, used by every test here
ET = p.ExecType
_FIX_EXEC = {
    "0": ET.ACCEPTED,
    "8": ET.REJECTED,
    "4": ET.CANCELLED,
    "C": ET.EXPIRED,
    "5": ET.MODIFIED,
}


def native(server, user: str) -> SyncClient:
    return SyncClient("127.0.0.1", server.port, user, password(user))


def order(
    fix: FixClient, cl: str, side: str, qty: int, price: str | None, symbol: str = SYM_A, **tags
) -> None:
    fields = [(11, cl), (55, symbol), (54, side), (38, qty), (40, "2" if price else "1")]
    if price is not None:
        fields.append((44, price))
    fields += [(60, "20250101-09:30:00.000"), *tags.items()]
    fix.send("D", [(int(t) if isinstance(t, str) and t.isdigit() else t, v) for t, v in fields])


def reports(fix: FixClient, count: int) -> list:
    return [fix.expect("8") for _ in range(count)]


def summary(report) -> tuple:
    """(OrderID, ExecType, OrdStatus, CumQty, LeavesQty, LastQty, LastPx, AvgPx)."""
    return tuple(field(report, tag) for tag in (37, 150, 39, 14, 151, 32, 31, 6))


def as_native(report) -> tuple:
    """A FIX report as the facts a native ExecutionReport states: (order id, exec type,
    leaves, last qty, last price in fen)."""
    exec_type = field(report, 150)
    if exec_type == "F":
        native_type = ET.FILLED if field(report, 39) == "2" else ET.PARTIALLY_FILLED
    else:
        native_type = _FIX_EXEC[exec_type]
    last_px = field(report, 31)
    return (
        int(field(report, 37)),
        int(native_type),
        int(field(report, 151)),
        int(field(report, 32) or 0),
        round(float(last_px) * 100) if last_px else 0,
    )


def test_fix_trades_against_a_native_client_and_agrees_with_the_native_port(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    op, bob, watcher = native(server, "op"), native(server, "bob"), native(server, "alice")
    fix = FixClient(server.fix_port, "ALICE1")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        logon = fix.logon("alice")
        assert (field(logon, 49), field(logon, 56), field(logon, 34)) == ("CETS", "ALICE1", "1")
        fix_reports = []

        order(fix, "s1", "2", 100, "60.00")
        (new,) = reports(fix, 1)
        sell_id = field(new, 37)
        assert summary(new) == (sell_id, "0", "0", "0", "100", None, None, "0")
        assert (field(new, 11), field(new, 38), field(new, 44), field(new, 1)) == (
            "s1",
            "100",
            "60.00",
            "1",
        )
        fix_reports.append(new)

        bought = bob.new_order(SYM_A, BUY, 60, 6010, client_order_id="b1")
        assert [r.exec_type for r in bought.reports] == [ET.ACCEPTED, ET.FILLED]
        (fill,) = reports(fix, 1)
        assert summary(fill) == (sell_id, "F", "1", "60", "40", "60", "60.00", "60")
        assert (field(fill, 851), field(fill, 11)) == ("1", "s1")
        fix_reports.append(fill)

        # replace: OrderQty is the new total (60 filled + 20 open), the price moves
        fix.send("G", [(11, "s1r"), (41, "s1"), (55, SYM_A), (54, "2"), (38, 80), (40, "2"),
                       (44, "60.05"), (60, "20250101-09:31:00.000")])  # fmt: skip
        (replaced,) = reports(fix, 1)
        assert summary(replaced) == (sell_id, "5", "1", "60", "20", None, None, "60")
        assert [field(replaced, t) for t in (11, 41, 38, 44)] == ["s1r", "s1", "80", "60.05"]
        fix_reports.append(replaced)

        # a partial fill of the FIX order as taker: IOC buy 50 against bob's 30
        bob.new_order(SYM_C, SELL, 30, 6100, client_order_id="b2")
        order(fix, "t1", "1", 50, "61.00", symbol=SYM_C, **{"59": "3"})
        taker = reports(fix, 3)
        taker_id = field(taker[0], 37)
        assert [summary(r) for r in taker] == [
            (taker_id, "0", "0", "0", "50", None, None, "0"),
            (taker_id, "F", "1", "30", "20", "30", "61.00", "61"),
            (taker_id, "4", "4", "30", "0", None, None, "61"),
        ]
        assert field(taker[1], 851) == "2" and field(taker[2], 58) == "IOC_REMAINDER"
        fix_reports += taker

        # cancel by the replace's ClOrdID; a second cancel is refused with OrderCancelReject
        fix.send("F", [(11, "c1"), (41, "s1r"), (55, SYM_A), (54, "2"), (60, "20250101-09:32:00")])
        (cancelled,) = reports(fix, 1)
        assert summary(cancelled) == (sell_id, "4", "4", "60", "0", None, None, "60")
        assert [field(cancelled, t) for t in (11, 41)] == ["c1", "s1r"]
        fix_reports.append(cancelled)
        fix.send("F", [(11, "c2"), (41, "s1"), (55, SYM_A), (54, "2"), (60, "20250101-09:33:00")])
        refused = fix.expect("9")
        assert [field(refused, t) for t in (37, 11, 41, 39, 434, 102, 58)] == [
            sell_id, "c2", "s1", "4", "1", "1", "UNKNOWN_ORDER",
        ]  # fmt: skip

        # mass cancel of every instrument
        order(fix, "m1", "1", 5, "59.00", **{"59": "1"})
        order(fix, "m2", "1", 5, "59.00", symbol=SYM_C)
        fix_reports += reports(fix, 2)
        fix.send("q", [(11, "mc"), (530, "7"), (60, "20250101-09:34:00")])
        mass = reports(fix, 2)
        assert [field(r, 150) for r in mass] == ["4", "4"]
        fix_reports += mass
        done = fix.expect("r")
        assert [field(done, t) for t in (11, 530, 531, 533)] == ["mc", "7", "7", "2"]

        # the native port's reports of account 1's orders say the same
        expected = [as_native(r) for r in fix_reports]
        deadline = time.monotonic() + 10
        while True:
            native_reports = [
                (r.order_id, r.exec_type, r.leaves_qty_t, r.last_qty_t, r.last_price_ticks)
                for r in watcher.stream
                if type(r) is p.ExecutionReport and r.exec_type < ET.CANCEL_REJECTED
            ]
            if len(native_reports) >= len(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert native_reports == expected
    finally:
        fix.close()
        for client in (op, bob, watcher):
            client.shutdown()
        server.stop()


def test_prices_hit_quote_post_only_and_refusals(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    op, bob = native(server, "op"), native(server, "bob")
    fix = FixClient(server.fix_port, "ALICE2")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        fix.logon("alice")
        order(fix, "x1", "1", 10, "60.001")
        (sub_fen,) = reports(fix, 1)
        assert (field(sub_fen, 150), field(sub_fen, 39)) == ("8", "8")
        assert "not a whole number of fen" in field(sub_fen, 58)
        order(fix, "x2", "1", 100, "60.03", symbol=SYM_B)
        (off_tick,) = reports(fix, 1)
        assert (field(off_tick, 150), field(off_tick, 58)) == ("8", "PRICE_OFF_TICK")
        assert field(off_tick, 20002) == str(int(s.RejectReason.PRICE_OFF_TICK))
        order(fix, "x2", "1", 100, "60.05", symbol=SYM_B)
        (duplicate,) = reports(fix, 1)
        assert field(duplicate, 150) == "8" and "DUPLICATE_CLIENT_ORDER_ID" in field(duplicate, 58)

        quote = bob.new_order(SYM_A, SELL, 10, 6020, client_order_id="q")
        fix.send("D", [(11, "h1"), (55, SYM_A), (54, "1"), (38, 4), (40, "D"),
                       (20001, quote.order_id), (60, "20250101-09:30:00")])  # fmt: skip
        hit = reports(fix, 2)
        assert [summary(r)[1:] for r in hit] == [
            ("0", "0", "0", "4", None, None, "0"),
            ("F", "2", "4", "0", "4", "60.20", "60.2"),
        ]
        assert field(hit[0], 40) == "D"
        order(fix, "p1", "1", 5, "60.20", **{"18": "6"})
        (post_only,) = reports(fix, 1)
        assert (field(post_only, 150), field(post_only, 58)) == ("8", "WOULD_TRADE")
        order(fix, "p2", "1", 5, "60.10", **{"18": "6"})
        (resting,) = reports(fix, 1)
        assert [field(resting, t) for t in (150, 40, 18)] == ["0", "2", "6"]

        fix.send("x", [(320, "all"), (559, "4")])
        listing = fix.expect("y")
        assert field(listing, 146) == "3"
        symbols = [field(listing, 55, n) for n in (1, 2, 3)]
        assert symbols == [SYM_A, SYM_B, SYM_C]
        assert [field(listing, 969, n) for n in (1, 2)] == ["0.01", "0.05"]
        assert field(listing, 561, 2) == "100"
    finally:
        fix.close()
        op.shutdown()
        bob.shutdown()
        server.stop()


def test_market_data_snapshot_and_incremental_refresh(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    op, bob, dave = native(server, "op"), native(server, "bob"), native(server, "dave")
    fix = FixClient(server.fix_port, "VIEW1")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        bob.new_order(SYM_A, SELL, 30, 6100)
        bob.new_order(SYM_A, BUY, 20, 5990)
        fix.logon("viewer")
        fix.send("V", [(262, "md1"), (263, "1"), (264, 0), (267, 2), (269, "0"), (269, "1"),
                       (146, 1), (55, SYM_A)])  # fmt: skip
        snapshot = fix.expect("W")
        assert [field(snapshot, t) for t in (262, 55, 268)] == ["md1", SYM_A, "2"]
        entries = [(field(snapshot, 269, n), field(snapshot, 270, n), field(snapshot, 271, n))
                   for n in (1, 2)]  # fmt: skip
        assert entries == [("0", "59.90", "20"), ("1", "61.00", "30")]
        bob.new_order(SYM_A, BUY, 5, 6000)
        update = fix.expect("X")
        assert [field(update, t) for t in (262, 279, 269, 270, 271)] == [
            "md1", "0", "0", "60.00", "5",
        ]  # fmt: skip
        dave.new_order(SYM_A, BUY, 10, 6100)  # takes 10 of the 30 offered
        trade = fix.expect("X")
        changed = fix.expect("X")
        assert [field(trade, t) for t in (269, 270, 271)] == ["2", "61.00", "10"]
        assert [field(changed, t) for t in (279, 269, 270, 271)] == ["1", "1", "61.00", "20"]
        fix.send("V", [(262, "md2"), (263, "0"), (264, 0), (146, 1), (55, "NOPE")])
        refused = fix.expect("Y")
        assert (field(refused, 262), field(refused, 281)) == ("md2", "0")
    finally:
        fix.close()
        op.shutdown()
        bob.shutdown()
        dave.shutdown()
        server.stop()


def test_the_fix_benchmark_runs_at_a_tiny_size() -> None:
    from bench import gateway as bench

    result = bench.run_fix(orders=200, window=50, durability="none")
    assert result.orders == 200 and result.orders_per_s > 0
    assert 0 < result.latency_us_p50 <= result.latency_us_p99
    assert result.accepted + result.rejected == result.orders
    assert result.reject_share == 0.0  # the native workload, its STP modes in tag 20004


def test_self_trade_prevention_is_custom_tag_20004(tmp_path) -> None:
    """SelfTradePrevention (20004) is the native NewOrder's ``stp``: 2 cancels the resting
    order of the same account; the default (1) cancels the incoming one; 4 is refused."""
    server = start_fix_server(tmp_path / "data")
    op = native(server, "op")
    fix = FixClient(server.fix_port, "ALICE1")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        fix.logon("alice")
        order(fix, "r1", "2", 10, "60.00")
        resting = field(reports(fix, 1)[0], 37)
        order(fix, "i1", "1", 10, "60.00")  # default: the incoming order is cancelled
        incoming = reports(fix, 2)
        assert [field(r, 150) for r in incoming] == ["0", "4"]
        assert field(incoming[1], 37) != resting
        assert field(incoming[1], 58) == s.CancelReason.SELF_TRADE_PREVENTED.name
        order(fix, "i2", "1", 10, "60.00", **{"20004": 2})  # the resting order is cancelled
        both = reports(fix, 2)  # ... and the incoming one rests in its place
        assert sorted((field(r, 11), field(r, 150)) for r in both) == [("i2", "0"), ("r1", "4")]
        assert field(next(r for r in both if field(r, 11) == "r1"), 37) == resting
        order(fix, "i3", "1", 10, "60.00", **{"20004": 4})
        refused = fix.expect("3")
        assert (field(refused, 371), field(refused, 373)) == ("20004", "5")
    finally:
        fix.close()
        op.shutdown()
        server.stop()

"""Execution reports generated while a FIX session was logged out are delivered at its next
Logon: regenerated from the exchange's log, in MsgSeqNum order, each once, across restarts.

alice trades over FIX (account 1); bob (native) fills her resting orders while she is away,
and the operator closes the day (her day orders expire).
"""

from __future__ import annotations

from engine.core import schema as s
from gateway.client import SyncClient
from tests.gateway_fixtures import DATE1, SYM_A, password
from tests.test_fix_client import FixClient, close_fix_clients, field, kind, start_fix_server

__all__ = ["close_fix_clients"]  # the fixture, used by every test here
BUY = s.Side.BUY


def _native(server, user: str) -> SyncClient:
    return SyncClient("127.0.0.1", server.port, user, password(user))


def _sell(fix: FixClient, cl: str, qty: int, price: str) -> None:
    fix.send("D", [(11, cl), (55, SYM_A), (54, "2"), (38, qty), (40, "2"), (44, price)])


def _log_out(fix: FixClient) -> None:
    fix.send("5", [])
    assert [kind(m) for m in fix.until_closed()] == ["5"]


def _after_logon(fix: FixClient) -> list:
    """Every message up to the answer to a TestRequest sent right after the Logon."""
    fix.send("1", [(112, "mark")])
    messages = []
    while True:
        message = fix.receive()
        assert message is not None, "the session stays open"
        if kind(message) == "0" and field(message, 112) == "mark":
            return messages
        messages.append(message)


def _report(message) -> tuple:
    """(ClOrdID, ExecType, OrdStatus, LastQty, CumQty, LeavesQty, AvgPx, OrderQty)."""
    return tuple(field(message, tag) for tag in (11, 150, 39, 32, 14, 151, 6, 38))


def test_reports_missed_while_logged_out_arrive_at_the_next_logon(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    op, bob = _native(server, "op"), _native(server, "bob")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        _sell(fix, "s1", 100, "60.00")
        _sell(fix, "s2", 50, "60.10")
        live = [fix.expect("8"), fix.expect("8")]
        assert [field(m, 150) for m in live] == ["0", "0"]
        bob.new_order(SYM_A, BUY, 60, 6000, client_order_id="b1")  # while connected: live
        fill = fix.expect("8")
        assert _report(fill) == ("s1", "F", "1", "60", "60", "40", "60", "100")
        _log_out(fix)  # MsgSeqNums 1..8: Logon, 3 statuses, 2 news, the fill, the Logout

        with _native(server, "alice") as alice:  # her native session: s2 now 70 t
            assert alice.modify(6010, 70, client_order_id="s2").ok
        bob.new_order(SYM_A, BUY, 30, 6000, client_order_id="b2")
        bob.new_order(SYM_A, BUY, 20, 6010, client_order_id="b3")

        fix = FixClient(server.fix_port, "ALICE")
        fix.seq = 5
        assert field(fix.logon("alice"), 34) == "9"  # 10..12: the market status
        missed = _after_logon(fix)
        assert [_report(m) for m in missed] == [
            ("s2", "5", "0", None, "0", "70", "0", "70"),
            ("s1", "F", "1", "30", "90", "10", "60", "100"),
            ("s1", "F", "2", "10", "100", "0", "60", "100"),
            ("s2", "F", "1", "10", "10", "60", "60.1", "70"),
        ]
        assert [field(m, 34) for m in missed] == ["13", "14", "15", "16"]
        exec_ids = [field(m, 17) for m in missed]
        assert len(set(exec_ids)) == 4 and field(fill, 17) not in exec_ids

        # a resend covers them like any report, marked as possible duplicates
        fix.send("2", [(7, 13), (16, 16)])
        again = [fix.receive() for _ in range(4)]
        assert [(field(m, 34), field(m, 43), field(m, 17)) for m in again] == [
            (field(m, 34), "Y", field(m, 17)) for m in missed
        ]
        _log_out(fix)

        # connected the whole time, nothing is delivered twice
        fix = FixClient(server.fix_port, "ALICE")
        fix.seq = 9
        fix.logon("alice")
        assert _after_logon(fix) == []
    finally:
        op.shutdown()
        bob.shutdown()
        server.stop()


def test_missed_reports_survive_a_restart_and_are_never_sent_twice(tmp_path) -> None:
    data = tmp_path / "data"
    server = start_fix_server(data, durability="batch")
    try:
        with _native(server, "op") as op:
            op.engine(s.OpenSession(trading_date=DATE1))
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        _sell(fix, "s1", 100, "60.00")
        _sell(fix, "s2", 50, "60.10")
        assert [field(fix.expect("8"), 150) for _ in range(2)] == ["0", "0"]
        _log_out(fix)  # 1..7
        with _native(server, "bob") as bob:
            bob.new_order(SYM_A, BUY, 40, 6000, client_order_id="b1")
        with _native(server, "op") as op:
            op.engine(s.CloseSession(trading_date=DATE1))  # the day orders expire
    finally:
        server.stop()

    server = start_fix_server(data, durability="batch")
    try:
        fix = FixClient(server.fix_port, "ALICE")
        fix.seq = 5
        assert field(fix.logon("alice"), 34) == "8"
        missed = _after_logon(fix)
        assert [_report(m) for m in missed] == [
            ("s1", "F", "1", "40", "40", "60", "60", "100"),
            ("s1", "C", "C", None, "40", "0", "60", "100"),
            ("s2", "C", "C", None, "0", "0", "0", "50"),
        ]
        assert [field(m, 34) for m in missed] == ["12", "13", "14"]
        fix.close()  # no Logout: the connection just drops
    finally:
        server.stop()

    # the store's last "E" record is lost (a crash before it reached the disk): the reports
    # recorded before it still say how far generation got, and none is generated again
    store = data / "fix" / "ALICE-CETS.fixlog"
    lines = store.read_bytes().split(b"\n")[:-1]
    last_report = max(k for k, line in enumerate(lines) if line.startswith(b"O "))
    kept = [line for k, line in enumerate(lines) if k < last_report or not line.startswith(b"E ")]
    assert len(kept) < len(lines)
    store.write_bytes(b"\n".join(kept) + b"\n")
    server = start_fix_server(data, durability="batch")
    try:
        fix = FixClient(server.fix_port, "ALICE")
        fix.seq = 7
        fix.logon("alice")
        assert _after_logon(fix) == []
        fix.send("2", [(7, 12), (16, 14)])
        again = [fix.receive() for _ in range(3)]
        assert [(field(m, 34), field(m, 43)) for m in again] == [
            ("12", "Y"),
            ("13", "Y"),
            ("14", "Y"),
        ]
    finally:
        server.stop()

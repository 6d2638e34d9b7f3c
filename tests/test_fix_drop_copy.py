"""A FIX drop copy: a read-only (or operator) user's FIX session that logs on with DropCopy
(20030) = Y receives the ExecutionReports of every account's orders - live, and those missed
while it was logged out at its next Logon - and enters none."""

from __future__ import annotations

from engine.core import schema as s
from gateway.client import SyncClient
from tests.gateway_fixtures import DATE1, SYM_A, password
from tests.test_fix_client import FixClient, close_fix_clients, field, kind, start_fix_server

__all__ = ["close_fix_clients"]  # the fixture, used by every test here
BUY, SELL = s.Side.BUY, s.Side.SELL
DROP_COPY = [(20030, "Y")]


def _native(server, user: str) -> SyncClient:
    return SyncClient("127.0.0.1", server.port, user, password(user))


def _copy(report) -> tuple:
    """(Account, ClOrdID, ExecType, LastQty, CumQty, LeavesQty)."""
    return tuple(field(report, tag) for tag in (1, 11, 150, 32, 14, 151))


def test_a_drop_copy_gets_every_accounts_reports_live_and_after_a_logout(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    op, alice, bob = _native(server, "op"), _native(server, "alice"), _native(server, "bob")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        copy = FixClient(server.fix_port, "DROP")
        copy.logon("viewer", extra=DROP_COPY)
        alice.new_order(SYM_A, SELL, 100, 6000, client_order_id="a1")
        bob.new_order(SYM_A, BUY, 40, 6000, client_order_id="b1")
        live = [_copy(copy.expect("8")) for _ in range(4)]
        assert live == [
            ("1", "a1", "0", None, "0", "100"),
            ("2", "b1", "0", None, "0", "40"),
            ("2", "b1", "F", "40", "40", "0"),  # the taker's leg
            ("1", "a1", "F", "40", "40", "60"),  # the maker's leg
        ]
        copy.send("D", [(11, "x"), (55, SYM_A), (54, "1"), (38, 1), (40, "2"), (44, "60")])
        refused = copy.expect("8")
        assert field(refused, 150) == "8" and "NOT_PERMITTED" in field(refused, 58)
        copy.send("5", [])
        assert [kind(m) for m in copy.until_closed()] == ["5"]

        bob.new_order(SYM_A, BUY, 10, 6000, client_order_id="b2")
        again = FixClient(server.fix_port, "DROP")
        again.seq = copy.seq
        again.logon("viewer", extra=DROP_COPY)
        missed = [_copy(again.expect("8")) for _ in range(3)]
        assert missed == [
            ("2", "b2", "0", None, "0", "10"),
            ("2", "b2", "F", "10", "10", "0"),
            ("1", "a1", "F", "10", "50", "50"),
        ]

        trader = FixClient(server.fix_port, "ALICE")  # a trader may not have a drop copy
        trader.send("A", [(98, 0), (108, 30), (553, "alice"), (554, password("alice")),
                          *DROP_COPY])  # fmt: skip
        (logout,) = trader.until_closed()
        assert kind(logout) == "5" and "NOT_PERMITTED" in field(logout, 58)
    finally:
        for client in (op, alice, bob):
            client.shutdown()
        server.stop()

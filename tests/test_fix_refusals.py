"""Every refusal reaches a FIX client as a reject message, never as a closed connection.

The defect this file was written for: ``bench gateway fix --orders 50000`` stopped after 10,000
orders with "the FIX session was closed".  The cause was not the open-order limit (the account
had 5,100 open orders) but ``codec.FixReader``: once more than 64 KiB arrived at once it
dropped everything before the last ``8=FIX``, as if it were garbage.  The reports of one window
of orders outgrew 64 KiB when MsgSeqNums and order ids reached five digits; the bench's reader
lost them, stopped sending and the acceptor's idle timeout closed the session.  The acceptor
read its own input with the same reader, so a client's burst of orders was lost the same way.
"""

from __future__ import annotations

from engine.core import schema as s
from gateway import protocol as p
from gateway.fix import codec as c
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import SYM_A, password, small_market, users
from tests.test_fix_client import FixClient, close_fix_clients, field, kind, start_fix_server
from tests.test_fix_session import _open
from tests.test_gateway_full_disk import SwitchableFullDisk

__all__ = ["close_fix_clients"]  # the fixture, used by every test here

ORDERS = 800
"""Orders sent in one write: about 110 KiB, well above the old reader's 64 KiB."""


def _order_fields(cl: str, price: str = "60.00", qty: int = 10, **tags) -> list:
    fields = [(11, cl), (55, SYM_A), (54, "2"), (38, qty), (40, "2"), (44, price)]
    return fields + [(int(tag), value) for tag, value in tags.items()]


def _rejected(report, text: str, gateway_code: int | None, engine_code: int | None) -> None:
    """An ExecutionReport Rejected (35=8, 150=8, 39=8) with OrdRejReason and the reason."""
    assert kind(report) == "8", report
    assert (field(report, 150), field(report, 39), field(report, 103)) == ("8", "8", "99")
    assert text in field(report, 58), field(report, 58)
    assert field(report, 20003) == (None if gateway_code is None else str(gateway_code))
    assert field(report, 20002) == (None if engine_code is None else str(engine_code))


def test_a_burst_of_well_framed_messages_is_never_taken_for_garbage() -> None:
    messages = [
        c.encode("8", seq, "CETS", "FIRM", "20250101-09:30:00.000", [(58, "x" * 150)])
        for seq in range(1, 2_001)
    ]
    burst = b"".join(messages)
    assert len(burst) > 8 * c.MESSAGE_BYTES_MAX
    reader = c.FixReader()
    reader.receive_data(burst[:7])
    reader.receive_data(burst[7:])
    seqs = []
    while (message := reader.next()) is not None:
        seqs.append(int(message.get(34)))
    assert seqs == list(range(1, 2_001))
    assert reader.buffered == 0


def test_orders_past_the_open_order_limit_in_one_burst_are_each_rejected(tmp_path) -> None:
    """Logon and 800 orders in one write, the account allowed 100 open orders: 100 are new,
    700 get an ExecutionReport Rejected (OPEN_ORDER_LIMIT), and the session carries on."""
    server = start_fix_server(tmp_path / "data", open_orders_per_account=100)
    try:
        _open(server)
        fix = FixClient(server.fix_port, "ALICE")
        logon = fix.build("A", [(98, 0), (108, 30), (553, "alice"), (554, password("alice"))])
        orders = [fix.build("D", _order_fields(f"o{k}")) for k in range(ORDERS)]
        burst = logon + b"".join(orders)
        assert len(burst) > 4 * c.MESSAGE_BYTES_MAX
        fix.send_raw(burst)
        assert kind(fix.receive()) == "A"
        assert [kind(fix.receive()) for _ in range(3)] == ["h", "h", "h"]  # market status
        answers = [fix.receive() for _ in range(ORDERS)]
        assert {kind(m) for m in answers} == {"8"}, "no ResendRequest, no Logout"
        by_status: dict[str, list] = {}
        for report in answers:
            by_status.setdefault(field(report, 150), []).append(report)
        assert sorted((k, len(v)) for k, v in by_status.items()) == [("0", 100), ("8", 700)]
        code = int(p.RejectCode.OPEN_ORDER_LIMIT)
        for report in by_status["8"]:
            _rejected(report, "OPEN_ORDER_LIMIT: account 1 has 100 open orders", code, None)
            assert field(report, 37) == "NONE" and field(report, 11).startswith("o")
        seqs = [int(field(m, 34)) for m in answers]
        assert seqs == list(range(5, ORDERS + 5))
        fix.send("1", [(112, "still-there")])
        assert field(fix.expect("0"), 112) == "still-there"
    finally:
        server.stop()


def test_gateway_and_engine_refusals_are_reports_not_disconnects(tmp_path) -> None:
    """Throttle, an account the user is not bound to, a closed market, an unknown symbol
    (an off-tick price: ``test_fix_trading``): each an ExecutionReport Rejected with the
    native port's reason."""
    server = start_fix_server(tmp_path / "data", messages_per_second=5)
    try:
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        fix.send("D", _order_fields("closed"))
        _rejected(fix.expect("8"), "SESSION_CLOSED", None, int(s.RejectReason.SESSION_CLOSED))
        _open(server)
        fix.send("D", _order_fields("acct", **{"1": 2}))
        code = int(p.RejectCode.ACCOUNT_NOT_PERMITTED)
        _rejected(fix.expect("8"), "ACCOUNT_NOT_PERMITTED", code, None)
        fix.send("D", [(11, "sym"), (55, "NOPE"), (54, "1"), (38, 10), (40, "2"), (44, "60")])
        unknown = int(s.RejectReason.UNKNOWN_INSTRUMENT)
        _rejected(fix.expect("8"), "UNKNOWN_INSTRUMENT", None, unknown)
        fix.send_raw(b"".join(fix.build("D", _order_fields(f"t{k}")) for k in range(12)))
        answers = [fix.expect("8") for _ in range(12)]
        throttled = [r for r in answers if field(r, 150) == "8"]
        assert throttled, "5 messages a second: some of 12 at once are throttled"
        for report in throttled:
            _rejected(report, "THROTTLED", int(p.RejectCode.THROTTLED), None)
        fix.send("1", [(112, "alive")])
        assert field(fix.expect("0"), 112) == "alive"
    finally:
        server.stop()


def test_a_full_log_is_a_storage_full_reject_and_the_order_goes_in_later(tmp_path) -> None:
    disk = SwitchableFullDisk()
    server = ServerThread(
        tmp_path / "data",
        users(),
        GatewayConfig(port=0),
        market=small_market(),
        durability="batch",
        storage=disk,
        fix_port=0,
    ).start()
    try:
        _open(server)
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        disk.full = True
        fix.send("D", _order_fields("full"))
        _rejected(fix.expect("8"), "STORAGE_FULL", int(p.RejectCode.STORAGE_FULL), None)
        disk.full = False
        fix.send("D", _order_fields("full"))  # nothing was recorded: the same ClOrdID is new
        accepted = fix.expect("8")
        assert (field(accepted, 150), field(accepted, 11)) == ("0", "full")
    finally:
        server.stop()


def test_a_shutdown_is_a_logout_with_its_reason(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    try:
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
    finally:
        server.stop()
    messages = fix.until_closed()
    assert [(kind(m), field(m, 58)) for m in messages] == [("5", "server shutting down")]

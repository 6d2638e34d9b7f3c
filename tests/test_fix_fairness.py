"""A FIX connection cannot hold the gateway's loop: the native fairness rules, on real sockets.

A FIX session works a turn's budget of messages (``gateway.session.TURN_UNITS``) and then
yields to the other connections; its unread input beyond ``gateway.server.READ_PAUSE_BYTES``
pauses reading; a ResendRequest is answered a turn's slice at a time and waits while the
socket is full.  Checked by order and outcome, never by time: the server's loop is held while
the flood and the honest request both reach its sockets, so both are readable in the same
turn; the honest order's id (its seq) then shows how many flood orders were judged before it.
Nothing is lost or reordered for the flooding client.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest
import simplefix

from engine.core import schema as s
from gateway.client import SyncClient
from gateway.fix.acceptor import FixConnection
from gateway.server import READ_PAUSE_BYTES
from gateway.session import TURN_UNITS
from tests.gateway_fixtures import DATE1, SYM_A, password
from tests.test_fix_client import FixClient, close_fix_clients, field, kind, start_fix_server

__all__ = ["close_fix_clients"]  # the fixture, used by every test here
FLOOD_ORDERS = 3_000
"""Orders of the flood: ~450 kB of NewOrderSingle, more than one read of the socket holds."""


@pytest.fixture
def server(tmp_path):
    server = start_fix_server(tmp_path / "data")
    op = SyncClient("127.0.0.1", server.port, "op", password("op"))
    op.engine(s.OpenSession(trading_date=DATE1))
    op.shutdown()
    yield server
    server.stop()


def ioc_buys(fix: FixClient, count: int, prefix: str, text: str = "") -> bytes:
    """``count`` pipelined IOC buys no one sells to (each: New, then Cancelled), each with
    ``text`` as its Text (58) if given."""
    extra = [(58, text)] if text else []
    return b"".join(
        fix.build(
            "D",
            [
                (11, f"{prefix}{k}"),
                (55, SYM_A),
                (54, "1"),
                (38, 1),
                (40, "2"),
                (44, "60.00"),
                (59, "3"),
                *extra,
            ],
        )  # fmt: skip
        for k in range(count)
    )


def server_socket(server, match) -> int:
    """The file descriptor of the server's side of the connection whose session matches."""

    def find() -> int:
        (connection,) = [c for c in server.gateway.connections if match(c)]
        return connection.transport.get_extra_info("socket").fileno()

    return server.call(find)


def fix_key(key: str):
    return lambda c: isinstance(c, FixConnection) and c.session.key == key


class HeldLoop:
    """Holds the server's loop (a callback that waits) until :meth:`release`, then waits
    until every given server-side socket is readable: the loop's next poll sees them all."""

    def __init__(self, server, fds: list[int]) -> None:
        self.fds, self.held, self.go = fds, threading.Event(), threading.Event()
        server.loop.call_soon_threadsafe(self._hold)
        assert self.held.wait(10), "the server's loop took the hold"

    def _hold(self) -> None:
        self.held.set()
        self.go.wait(10)
        waiting = set(self.fds)
        while waiting:
            ready, _, _ = select.select(list(waiting), [], [], 10)
            assert ready, "the clients' bytes reached the server"
            waiting -= set(ready)

    def release(self) -> None:
        self.go.set()


def wait_readable(fd: int) -> None:
    assert select.select([fd], [], [], 10)[0], "the bytes reached the server's socket"


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    thread = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    thread.start()
    return thread


def read_reports(fix: FixClient, count: int) -> list[simplefix.FixMessage]:
    """The next ``count`` ExecutionReports, checking that MsgSeqNum has no gap."""
    reports: list[simplefix.FixMessage] = []
    last = None
    while len(reports) < count:
        message = fix.receive()
        assert message is not None, f"closed after {len(reports)} of {count} reports"
        seq = int(field(message, 34))
        assert last is None or seq == last + 1, "MsgSeqNum without gaps"
        last = seq
        if kind(message) == "8":
            reports.append(message)
    return reports


def check_flood_answers(reports: list, prefix: str, count: int) -> None:
    """Each flood order answered New then Cancelled (IOC remainder), in the order sent."""
    news = [field(r, 11) for r in reports if field(r, 150) == "0"]
    assert news == [f"{prefix}{k}" for k in range(count)], "every order, in order"
    for k in range(count):
        assert [field(r, 150) for r in reports[2 * k : 2 * k + 2]] == ["0", "4"]
        assert field(reports[2 * k], 11) == field(reports[2 * k + 1], 11)


@pytest.mark.parametrize("honest", ["fix", "native"])
def test_a_fix_order_flood_waits_while_an_honest_order_is_judged(server, honest) -> None:
    flooder = FixClient(server.fix_port, "ALICE1")
    flooder.logon("alice")
    flood = ioc_buys(flooder, FLOOD_ORDERS, "f")
    if honest == "fix":
        bob = FixClient(server.fix_port, "BOB1")
        bob.logon("bob")
        honest_fd = server_socket(server, fix_key("BOB1-CETS"))
    else:
        native = SyncClient("127.0.0.1", server.port, "bob", password("bob"))
        honest_fd = server_socket(server, lambda c: c.session.user_name == "bob")
    flood_fd = server_socket(server, fix_key("ALICE1-CETS"))
    try:
        hold = HeldLoop(server, [flood_fd, honest_fd])
        sender = send_in_background(flooder.sock, flood)  # the flood is readable first
        wait_readable(flood_fd)
        if honest == "fix":
            bob.send("D", [(11, "honest"), (55, SYM_A), (54, "2"), (38, 1), (40, "2"),
                           (44, "65.00")])  # fmt: skip
        else:
            request_id = native.send_new_order(SYM_A, s.Side.SELL, 1, 6_500)
        hold.release()
        if honest == "fix":
            honest_id = int(field(bob.expect("8"), 37))
        else:
            honest_id = native.outcome(request_id).reports[0].order_id
        reports = read_reports(flooder, 2 * FLOOD_ORDERS)
        sender.join(10)
        check_flood_answers(reports, "f", FLOOD_ORDERS)
        first_flood_id = int(field(reports[0], 37))
        assert honest_id < first_flood_id + 2 * TURN_UNITS, (
            f"the honest order was judged after {honest_id - first_flood_id} flood orders"
        )
    finally:
        if honest == "native":
            native.shutdown()


def test_a_huge_resend_request_is_answered_in_slices_and_input_pauses(server) -> None:
    flooder = FixClient(server.fix_port, "ALICE1")
    flooder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # fills quickly
    flooder.logon("alice")
    stored = 4_000  # 8,000 ExecutionReports (~1.8 MB) in the session's store
    flooder.send_raw(ioc_buys(flooder, stored, "s"))
    original = read_reports(flooder, 2 * stored)
    last_sent = int(field(original[-1], 34))
    bob = FixClient(server.fix_port, "BOB1")
    bob.logon("bob")
    flood_fd = server_socket(server, fix_key("ALICE1-CETS"))
    honest_fd = server_socket(server, fix_key("BOB1-CETS"))
    hold = HeldLoop(server, [flood_fd, honest_fd])
    flooder.send("2", [(7, 1), (16, 0)])  # everything again, and the flooder reads nothing
    wait_readable(flood_fd)
    bob.send("D", [(11, "honest"), (55, SYM_A), (54, "2"), (38, 1), (40, "2"), (44, "65.00")])
    hold.release()
    assert field(bob.expect("8"), 11) == "honest"

    def resend_state() -> tuple[bool, bool, int]:
        (connection,) = [c for c in server.gateway.connections if fix_key("ALICE1-CETS")(c)]
        session = connection.session
        return session.resending is not None, connection.read_paused, session.reader.buffered

    assert server.call(resend_state)[0], "the honest order was answered during the resend"
    more = 1_500  # ~1.6 MB more input while the resend waits for the reader: reading pauses
    sender = send_in_background(flooder.sock, ioc_buys(flooder, more, "m", "x" * 900))
    resending, paused, buffered = server.call(resend_state)
    for _ in range(1_000):  # until the server has read what it takes (bounded: not a timer)
        if paused:
            break
        sender.join(0.01)
        if not sender.is_alive():  # all sent into the kernel's buffers: the server still reads
            time.sleep(0.01)
        resending, paused, buffered = server.call(resend_state)
    assert resending and paused, "reading paused while the resend waits"
    assert READ_PAUSE_BYTES < buffered <= READ_PAUSE_BYTES + (256 << 10)
    bob.send("D", [(11, "honest2"), (55, SYM_A), (54, "2"), (38, 1), (40, "2"), (44, "65.00")])
    assert field(bob.expect("8"), 11) == "honest2", "others go on meanwhile"

    # the flooder reads: the whole resend, in order, then the answers to the later orders
    flooder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    resent: list[simplefix.FixMessage] = []
    while len(resent) < last_sent:
        message = flooder.receive()
        assert message is not None
        assert field(message, 43) == "Y" and int(field(message, 34)) == len(resent) + 1
        resent.append(message)
        if kind(message) == "4":  # a gap fill of administrative messages
            resent += [message] * (int(field(message, 36)) - len(resent) - 1)
    again = [m for m in resent if kind(m) == "8"]
    assert [(field(m, 17), field(m, 150)) for m in again] == [
        (field(m, 17), field(m, 150)) for m in original
    ], "every stored report resent, in order"
    sender.join(10)
    check_flood_answers(read_reports(flooder, 2 * more), "m", more)


def test_missed_reports_are_caught_up_in_slices_and_live_ones_wait_their_turn(server) -> None:
    fix = FixClient(server.fix_port, "ALICE1")
    fix.logon("alice")
    fix.send("5", [])
    assert [kind(m) for m in fix.until_closed()] == ["5"]
    alice = SyncClient("127.0.0.1", server.port, "alice", password("alice"))
    try:
        missed = 4_000  # 8,000 reports (~1.8 MB) missed while logged out
        ids = [
            alice.send_new_order(SYM_A, s.Side.BUY, 1, 6_000, tif=s.TimeInForce.IOC)
            for _ in range(missed)
        ]
        for request_id in ids:
            alice.outcome(request_id)
        fix = FixClient(server.fix_port, "ALICE1")
        fix.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # fills quickly
        fix.seq = 3
        fix.logon("alice")

        def catch_up_state() -> tuple[bool, bool]:
            (connection,) = [c for c in server.gateway.connections if fix_key("ALICE1-CETS")(c)]
            return connection.session.catching_up is not None, connection.paused

        catching_up, paused = server.call(catch_up_state)
        for _ in range(1_000):  # until the socket is full (bounded: not a timer)
            if paused or not catching_up:
                break
            threading.Event().wait(0.01)
            catching_up, paused = server.call(catch_up_state)
        assert catching_up and paused, "the catch-up waits for the reader"
        bob = FixClient(server.fix_port, "BOB1")
        bob.logon("bob")
        bob.send("D", [(11, "honest"), (55, SYM_A), (54, "2"), (38, 1), (40, "2"), (44, "65.00")])
        assert field(bob.expect("8"), 11) == "honest", "answered during the catch-up"
        live = alice.send_new_order(SYM_A, s.Side.BUY, 1, 6_000, client_order_id="live1",
                                    tif=s.TimeInForce.IOC)  # fmt: skip
        assert alice.outcome(live).ok
        assert server.call(catch_up_state)[0], "the live report is held behind the catch-up"

        fix.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        reports = read_reports(fix, 2 * missed + 2)
        seqs = [int(field(r, 17).split("-")[0]) for r in reports]
        assert seqs == sorted(seqs), "in event order"
        assert len(set(seqs)) == missed + 1, "every order reported, the live one too"
        assert [field(r, 11) for r in reports[-2:]] == ["live1", "live1"], "the live one last"
        assert [field(r, 150) for r in reports] == ["0", "4"] * (missed + 1)
    finally:
        alice.shutdown()

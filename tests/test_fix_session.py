"""The FIX session layer on a real loopback port: garbled and malformed messages, sequence
gaps both ways, resends after a disconnect and after a server restart, and a seeded fuzz.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from pathlib import Path

import pytest

from engine.core import schema as s
from gateway.client import SyncClient
from gateway.fix import codec as c
from gateway.fix.store import FixStore
from tests.gateway_fixtures import DATE1, SYM_A, password
from tests.test_fix_client import FixClient, close_fix_clients, field, kind, start_fix_server

__all__ = ["close_fix_clients"]  # the fixture, used by every test here


def _open(server) -> None:
    with SyncClient("127.0.0.1", server.port, "op", password("op")) as op:
        op.engine(s.OpenSession(trading_date=DATE1))


def _refused(fix: FixClient) -> list:
    """(RefTagID, SessionRejectReason) of the next Reject (3)."""
    reject = fix.expect("3")
    return [field(reject, 371), field(reject, 373)]


def _order(fix: FixClient, cl: str, qty: int = 10, price: str = "60.00", **kw) -> None:
    fix.send("D", [(11, cl), (55, SYM_A), (54, "2"), (38, qty), (40, "2"), (44, price),
                   (60, "20250101-09:30:00")], **kw)  # fmt: skip


def test_logon_is_checked_against_the_users_file(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    try:
        wrong = FixClient(server.fix_port, "ALICE")
        wrong.send("A", [(98, 0), (108, 30), (553, "alice"), (554, "not-the-secret")])
        (logout,) = wrong.until_closed()
        assert kind(logout) == "5" and "BAD_CREDENTIALS" in field(logout, 58)
        early = FixClient(server.fix_port, "ALICE")
        _order(early, "x")
        (logout,) = early.until_closed()
        assert kind(logout) == "5" and "Logon" in field(logout, 58)
        alice = FixClient(server.fix_port, "ALICE")
        alice.logon("alice")
        twin = FixClient(server.fix_port, "ALICE")
        twin.send("A", [(98, 0), (108, 30), (553, "alice"), (554, password("alice"))])
        (logout,) = twin.until_closed()
        assert "already logged on" in field(logout, 58)
        bob = FixClient(server.fix_port, "ALICE")  # another user cannot take alice's session
        alice.send("5", [(58, "bye")])
        assert [kind(m) for m in alice.until_closed()] == ["5"]
        bob.send("A", [(98, 0), (108, 30), (553, "bob"), (554, password("bob"))])
        (logout,) = bob.until_closed()
        assert "belongs to another user" in field(logout, 58)
        viewer = FixClient(server.fix_port, "VIEW")
        viewer.logon("viewer")
        _order(viewer, "v1")
        refused = viewer.expect("8")
        assert field(refused, 150) == "8" and "NOT_PERMITTED" in field(refused, 58)
    finally:
        server.stop()


def test_garbled_and_malformed_messages(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    try:
        _open(server)
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        good = fix.build("1", [(112, "t1")])  # seq 2
        garbled = good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 1) % 256)
        fix.send_raw(garbled)  # discarded, not counted: seq 2 is still expected
        fix.send_raw(good)
        assert field(fix.expect("0"), 112) == "t1"
        body_length = fix.build("1", [(112, "t2")])  # seq 3, BodyLength three short
        length = int(body_length.split(b"\x01")[1][2:])
        fix.send_raw(body_length.replace(b"9=%d" % length, b"9=%d" % (length - 3), 1))
        fix.seq -= 1
        fix.send("1", [(112, "t3")])
        assert field(fix.expect("0"), 112) == "t3"

        fix.send("D", [(11, "m1"), (55, SYM_A), (38, 10), (40, "2"), (44, "60.00")])  # no Side
        reject = fix.expect("3")
        assert [field(reject, t) for t in (45, 371, 372, 373)] == ["4", "54", "D", "1"]
        fix.send("D", [(11, "m2"), (55, SYM_A), (54, "7"), (38, 10), (40, "2"), (44, "1")])
        reject = fix.expect("3")
        assert [field(reject, t) for t in (371, 373)] == ["54", "5"]
        fix.send("D", [(11, "m3"), (55, SYM_A), (54, "1"), (38, "ten"), (40, "2"), (44, "1")])
        assert _refused(fix) == ["38", "6"]
        fix.send("1", [])  # TestRequest without TestReqID
        assert _refused(fix) == ["112", "1"]
        fix.send("ZZ", [])
        assert _refused(fix) == ["35", "11"]
        fix.send("R", [(131, "q1")])  # QuoteRequest: FIX 4.4, not supported here
        business = fix.expect("j")
        assert [field(business, t) for t in (372, 380)] == ["R", "3"]
        fix.send("1", [(112, "")])  # a tag without a value
        assert _refused(fix) == ["112", "4"]
        _order(fix, "ok")  # the session goes on after all of that
        assert field(fix.expect("8"), 150) == "0"
    finally:
        server.stop()


def test_sequence_gaps_both_ways(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    try:
        _open(server)
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        _order(fix, "a1")  # seq 2
        fix.expect("8")
        fix.seq = 5  # 3 and 4 are "lost": the acceptor asks for them, drops 5
        _order(fix, "a5")
        ask = fix.expect("2")
        assert (field(ask, 7), field(ask, 16)) == ("3", "0")
        # the initiator resends 3 (a gap fill for 3-4) and 5 with PossDupFlag
        fix.send("4", [(123, "Y"), (36, 5)], seq=3, poss_dup=True)
        _order(fix, "a5", seq=5, poss_dup=True)
        fix.seq = 6
        assert (field(fix.expect("8"), 11)) == "a5"
        _order(fix, "a5dup", seq=4, poss_dup=True)  # too low with PossDupFlag: ignored
        fix.send("1", [(112, "still")])
        assert field(fix.expect("0"), 112) == "still"
        assert not [m for m in fix.inbox if field(m, 11) == "a5dup"]

        # the other way: the initiator missed the acceptor's 5..6 (after the Logon answer, 1,
        # and the market status, 2..4) and asks for them
        fix.send("2", [(7, 5), (16, 0)])
        resent = [fix.receive() for _ in range(3)]
        assert [(kind(m), field(m, 34), field(m, 43)) for m in resent] == [
            ("8", "5", "Y"),
            ("4", "6", "Y"),  # the ResendRequest the acceptor sent: gap-filled
            ("8", "7", "Y"),
        ]
        assert field(resent[1], 36) == "7" and field(resent[1], 123) == "Y"
        assert field(resent[0], 122) is not None and field(resent[0], 11) == "a1"
        fix.send("4", [(36, 50)])  # SequenceReset-Reset: the next expected is 50
        fix.seq = 50
        fix.send("1", [(112, "after-reset")])
        assert field(fix.expect("0"), 112) == "after-reset"

        fix.seq = 10  # too low without PossDupFlag: Logout, and the connection closes
        fix.send("1", [(112, "low")])
        closing = fix.until_closed()
        assert kind(closing[-1]) == "5" and "too low" in field(closing[-1], 58)
    finally:
        server.stop()


def test_resend_after_disconnect_and_after_restart(tmp_path) -> None:
    data = tmp_path / "data"
    server = start_fix_server(data, durability="batch")
    try:
        _open(server)
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        _order(fix, "r1")
        first = fix.expect("8")
        _order(fix, "r2", price="60.10")
        fix.close()  # the connection drops before the initiator read r2's report
        fix = FixClient(server.fix_port, "ALICE")
        fix.seq = 4
        logon = fix.logon("alice")
        assert field(logon, 34) == "7"  # r2's report went out as 6 (2..4: market status)
        fix.send("2", [(7, 5), (16, 7)])
        again = [fix.receive() for _ in range(3)]
        assert [(kind(m), field(m, 34), field(m, 11), field(m, 43)) for m in again] == [
            ("8", "5", "r1", "Y"),
            ("8", "6", "r2", "Y"),
            ("4", "7", None, "Y"),  # the Logon answer: gap-filled
        ]
        assert field(again[0], 17) == field(first, 17)
        assert field(again[0], 122) == field(first, 52)
        fix.send("5", [])
        assert [(kind(m), field(m, 34)) for m in fix.until_closed()] == [("5", "11")]
    finally:
        server.stop()
    server = start_fix_server(data, durability="batch")
    try:
        fix = FixClient(server.fix_port, "ALICE")
        fix.seq = 3  # the acceptor remembers it expects 7: this is too low
        fix.send("A", [(98, 0), (108, 30), (553, "alice"), (554, password("alice"))])
        (logout,) = fix.until_closed()
        assert "expecting 7 but received 3" in field(logout, 58)
        fix = FixClient(server.fix_port, "ALICE")
        fix.seq = 7
        logon = fix.logon("alice")
        assert field(logon, 34) == "13"  # 12 was the Logout above
        fix.send("2", [(7, 1), (16, 6)])
        again = [fix.receive() for _ in range(6)]
        assert [(kind(m), field(m, 34)) for m in again] == [
            ("4", "1"),
            ("h", "2"),
            ("h", "3"),
            ("h", "4"),
            ("8", "5"),
            ("8", "6"),
        ]
        assert field(again[0], 36) == "2"
        _order(fix, "r3", qty=5, price="60.20")
        assert field(fix.expect("8"), 34) == "17"
        reset = FixClient(server.fix_port, "ALICE2")
        assert field(reset.logon("alice", reset=True), 141) == "Y"
    finally:
        server.stop()


def test_fuzzed_sessions_never_hurt_the_server_or_other_sessions(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    seed = int(os.environ.get("CETS_FIX_FUZZ_SEED", "20251215"))  # a fixed budget: 40 rounds
    print(f"fuzz seed {seed} (CETS_FIX_FUZZ_SEED to change it)")
    rng = random.Random(seed)
    server = start_fix_server(tmp_path / "data")
    try:
        _open(server)
        steady = FixClient(server.fix_port, "STEADY")
        steady.logon("bob")
        templates = []
        fuzzer = FixClient(server.fix_port, "FUZZ")
        for msg_type, fields in (
            ("D", [(11, "f"), (55, SYM_A), (54, "1"), (38, 10), (40, "2"), (44, "59.00")]),
            ("F", [(11, "c"), (41, "f"), (55, SYM_A), (54, "1")]),
            ("G", [(11, "g"), (41, "f"), (38, 5), (40, "2"), (44, "59.50")]),
            ("V", [(262, "m"), (263, "1"), (264, 0), (146, 1), (55, SYM_A)]),
            ("2", [(7, 1), (16, 0)]),
            ("4", [(123, "Y"), (36, 3)]),
            ("q", [(11, "q"), (530, "7")]),
            ("x", [(320, "s"), (559, "4")]),
        ):
            templates.append(fuzzer.build(msg_type, fields))
        fuzzer.close()
        for round_ in range(40):
            fuzzer = FixClient(server.fix_port, f"FUZZ{round_ % 3}")
            if rng.random() < 0.7:
                fuzzer.send("A", [(98, 0), (108, 30), (553, "alice"), (554, password("alice"))],
                            seq=rng.choice([1, 1, 2, 10**6]))  # fmt: skip
            stream = b"".join(_mutate(rng, rng.choice(templates)) for _ in range(20))
            try:
                fuzzer.send_raw(stream)
                fuzzer.sock.shutdown(socket.SHUT_WR)
                fuzzer.until_closed(timeout=10)
            except OSError:
                pass
            fuzzer.close()
            steady.send("1", [(112, f"alive-{round_}")])
            assert field(steady.expect("0"), 112) == f"alive-{round_}", f"seed {seed}"
        _order(steady, "after-fuzz", price="61.00")
        assert field(steady.expect("8"), 150) == "0", f"seed {seed}"
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, f"seed {seed}: the server logged {errors}"
    finally:
        server.stop()


def _mutate(rng: random.Random, message: bytes) -> bytes:
    data = bytearray(message)
    for _ in range(rng.randrange(4)):
        choice = rng.random()
        position = rng.randrange(len(data))
        if choice < 0.4:
            data[position] = rng.randrange(256)
        elif choice < 0.6:
            del data[position : position + rng.randrange(1, 8)]
        elif choice < 0.8:
            data[position:position] = rng.choice([b"\x01", b"=", b"9=", b"10=", b"8=FIX.4.4\x01"])
        else:
            data = data[:position] + data[position:] * rng.randrange(1, 3)
    return bytes(data)


# ------------------------------------------------------------------------------------------
# The session stores under the interval policy
# ------------------------------------------------------------------------------------------


def test_a_store_written_without_syncs_is_synced_when_asked(tmp_path, monkeypatch) -> None:
    syncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: syncs.append(fd) or real(fd))
    path = tmp_path / "fix" / "CETS-ALICE.fixlog"
    store = FixStore(path)
    store.bind("alice")

    def send(cl: str) -> None:
        raw = c.encode("8", store.next_out, "CETS", "ALICE", "20250101-09:30:00.000", [(11, cl)])
        store.sent_app(store.next_out, raw)
        store.flush(sync=False)  # the interval policy's write: no sync

    send("a")
    assert syncs == [] and store.unsynced > 0
    store.sync()
    assert len(syncs) == 1 and store.unsynced == 0
    store.sync()  # nothing new: no sync
    assert len(syncs) == 1
    send("b")
    store.close()  # written, not synced: the caller did not say the log is durable
    assert len(syncs) == 1
    reopened = FixStore(path)
    assert (reopened.user, reopened.next_out, reopened.unsynced) == ("alice", 3, 0)
    assert c.parse_body(reopened.stored(2)[reopened.stored(2).index(b"35=") : -7]).pairs
    send_again = c.encode("8", 3, "CETS", "ALICE", "20250101-09:30:01.000", [(11, "c")])
    reopened.sent_app(3, send_again)
    reopened.close(sync=True)  # the caller knows the log is durable: synced before closing
    assert len(syncs) == 2


@pytest.mark.parametrize(
    ("interval", "by"), [(0.0, "the batch that synced the log"), (0.3, "the interval timer")]
)
def test_interval_durability_syncs_the_session_stores_once_the_log_is_synced(
    tmp_path, interval, by
) -> None:
    """Under ``interval`` a FIX session's store is written as its output goes out and synced
    once the log is durable to its end: at the end of a batch that synced the log (an
    interval of 0: every batch does), or when the gateway's timer synced it."""
    server = start_fix_server(tmp_path / "data", durability="interval", sync_interval_s=interval)
    try:
        _open(server)
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        gateway = server.call(lambda: server.gateway)
        exchange, acceptor = gateway.exchange, gateway.fix_acceptor
        if interval:  # first a batch that leaves the log unsynced, its report in the store
            for k in range(40):  # ~2 s: the timer syncs meanwhile, and the next batch does not
                _order(fix, f"i{k}")
                assert field(fix.expect("8"), 11) == f"i{k}"
                waiting, unsynced = server.call(
                    lambda: (
                        exchange.sync_due_in(),
                        next(iter(acceptor.active.values())).store.unsynced,
                    )
                )
                if waiting is not None and waiting > interval / 2:
                    assert unsynced > 0, "the store was synced ahead of the log"
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("no batch left the log unsynced long enough to look")
        else:
            _order(fix, "i0")
            assert field(fix.expect("8"), 11) == "i0"
        deadline = time.monotonic() + interval + 2.0  # no more traffic from here on
        while server.call(lambda: next(iter(acceptor.active.values())).store.unsynced) > 0:
            assert time.monotonic() < deadline, f"the store was not synced after {by}"
            time.sleep(0.02)
        assert server.call(lambda: exchange.log_durable_to_end)  # the log first
    finally:
        server.stop()


def test_a_graceful_stop_under_interval_syncs_the_log_then_the_session_stores(
    tmp_path, monkeypatch
) -> None:
    """Stopping syncs what the interval left unsynced - the log first, then each FIX store as
    its session closes - instead of leaving both to the operating system's writeback."""
    synced: list[str] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    server = start_fix_server(tmp_path / "data", durability="interval", sync_interval_s=60.0)
    try:
        _open(server)
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        _order(fix, "g1")
        assert field(fix.expect("8"), 11) == "g1"
        store = server.call(lambda: next(iter(server.gateway.fix_acceptor.active.values())).store)
        assert server.call(lambda: store.unsynced) > 0  # 60 s: nothing synced it yet
        before = len(synced)
    finally:
        server.stop()
    during = [Path(path) for path in synced[before:]]
    stores = [k for k, path in enumerate(during) if path.suffix == ".fixlog"]
    logs = [k for k, path in enumerate(during) if path.parent.name == "log"]
    assert stores, f"the session's store was never synced: {during}"
    assert logs and logs[0] < stores[0], f"the store was synced ahead of the log: {during}"


def test_interval_output_of_no_batch_is_synced_when_the_log_is_durable(tmp_path) -> None:
    """A Logon's answer and market statuses come from no batch: on an exchange whose log is
    durable to its end, the store is synced with them (as under ``batch``), not left to the
    operating system's writeback until some batch comes."""
    server = start_fix_server(tmp_path / "data", durability="interval", sync_interval_s=60.0)
    try:
        fix = FixClient(server.fix_port, "ALICE")
        fix.logon("alice")
        fix.send("1", [(112, "ping")])  # a TestRequest: its Heartbeat answer comes after all
        while not (kind(answer := fix.receive()) == "0" and field(answer, 112) == "ping"):
            pass
        acceptor = server.call(lambda: server.gateway.fix_acceptor)
        assert server.call(lambda: server.gateway.exchange.log_durable_to_end)  # no batch yet
        store = server.call(lambda: next(iter(acceptor.active.values())).store)
        assert server.call(lambda: store.unsynced) == 0
    finally:
        server.stop()

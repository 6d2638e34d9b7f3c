"""The gateway's pure parts: framing, decoding and its error codes, the permission table,
secrets, user files, the record shortcut and the execution-report mapping."""

from __future__ import annotations

import io
import os
import random
import stat

import msgspec
import pytest

from engine.core import records as rec
from engine.core import schema as s
from engine.core.records import Codec
from gateway import cli, permissions, reports
from gateway import protocol as p
from gateway.core import submit_record
from gateway.orders import Annotation, OrderTracker, decode_annotation, encode_annotation
from gateway.server import GatewayConfig
from gateway.users import (
    User,
    UserDirectory,
    UserFileError,
    check_user,
    hash_secret,
    hash_secret_pbkdf2,
    verify_secret,
)
from tests.gateway_fixtures import SYM_A, small_market

# -- framing ---------------------------------------------------------------------------------


def test_frames_split_at_any_chunking() -> None:
    messages = [p.Heartbeat(), p.Logout(reason="x" * 250), p.Subscribe(instrument=SYM_A)]
    stream = b"".join(p.encode(m) for m in messages)
    rng = random.Random(7)
    for _ in range(50):
        reader, bodies, position = p.FrameReader(1024), [], 0
        while position < len(stream):
            step = rng.randint(1, 40)
            bodies += reader.feed(stream[position : position + step])
            position += step
        assert [p.decode_client(b) for b in bodies] == messages
        assert reader.buffered == 0


def test_frame_length_is_checked_before_the_body_arrives() -> None:
    reader = p.FrameReader(1024)
    with pytest.raises(p.FrameError) as info:
        reader.feed((1025).to_bytes(4, "big"))  # no body at all
    assert info.value.code is p.ProtocolErrorCode.FRAME_TOO_LARGE
    with pytest.raises(p.FrameError) as info:
        p.FrameReader(1024).feed(bytes(4))
    assert info.value.code is p.ProtocolErrorCode.EMPTY_FRAME


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xc1", p.ProtocolErrorCode.MALFORMED),
        (msgspec.msgpack.encode([1, 2]), p.ProtocolErrorCode.MALFORMED),
        (msgspec.msgpack.encode({"type": 99}), p.ProtocolErrorCode.UNKNOWN_MESSAGE_TYPE),
        (msgspec.msgpack.encode({"type": 101}), p.ProtocolErrorCode.UNKNOWN_MESSAGE_TYPE),
        (msgspec.msgpack.encode({"type": "1"}), p.ProtocolErrorCode.UNKNOWN_MESSAGE_TYPE),
        (msgspec.msgpack.encode({"user": "x"}), p.ProtocolErrorCode.UNKNOWN_MESSAGE_TYPE),
        (msgspec.msgpack.encode({"type": 1, "user": "x"}), p.ProtocolErrorCode.INVALID_FIELD),
        (
            msgspec.msgpack.encode(
                {"type": 10, "client_order_id": "a", "instrument": "A", "side": 1, "qty_t": "10"}
            ),
            p.ProtocolErrorCode.INVALID_FIELD,
        ),
        (
            msgspec.msgpack.encode(
                {"type": 10, "client_order_id": "a", "instrument": "A", "side": 256, "qty_t": 10}
            ),
            p.ProtocolErrorCode.INVALID_FIELD,
        ),
        (
            msgspec.msgpack.encode(
                {"type": 10, "client_order_id": "a", "instrument": "A", "side": 1, "qty_t": 2**63}
            ),
            p.ProtocolErrorCode.INVALID_FIELD,
        ),
        (
            msgspec.msgpack.encode(
                {"type": 10, "client_order_id": "", "instrument": "A", "side": 1, "qty_t": 1}
            ),
            p.ProtocolErrorCode.INVALID_FIELD,
        ),
        (
            msgspec.msgpack.encode(
                {"type": 10, "client_order_id": "x" * 37, "instrument": "A", "side": 1, "qty_t": 1}
            ),
            p.ProtocolErrorCode.INVALID_FIELD,
        ),
        (
            msgspec.msgpack.encode(
                {
                    "type": 10,
                    "client_order_id": "a",
                    "instrument": "A",
                    "side": 1,
                    "qty_t": 1,
                    "account": 2**31,
                }
            ),
            p.ProtocolErrorCode.INVALID_FIELD,
        ),
        (
            msgspec.msgpack.encode({"type": 13, "command": {"type": 77}}),
            p.ProtocolErrorCode.INVALID_FIELD,
        ),
    ],
)
def test_decode_errors_name_their_code(body: bytes, code: p.ProtocolErrorCode) -> None:
    with pytest.raises(p.FrameError) as info:
        p.decode_client(body)
    assert info.value.code is code
    assert info.value.text


def test_every_message_round_trips_and_tags_are_partitioned() -> None:
    client_tags = [t.__struct_config__.tag for t in p.CLIENT_MESSAGE_TYPES]
    server_tags = [t.__struct_config__.tag for t in p.SERVER_MESSAGE_TYPES]
    assert len(set(client_tags)) == len(client_tags) and len(set(server_tags)) == len(server_tags)
    both = {p.Heartbeat, p.Logout}
    assert all(1 <= t < 100 for t in client_tags)
    assert all(100 <= t < 200 for c, t in zip(p.SERVER_MESSAGE_TYPES, server_tags) if c not in both)
    order = p.NewOrder(
        request_id=3,
        client_order_id="c-1",
        instrument=SYM_A,
        side=1,
        qty_t=5,
        price_ticks=6000,
        tif=3,
    )
    wrapped = p.EngineRequest(request_id=4, command=s.OpenSession(trading_date=20250102))
    for message in (order, wrapped, p.Logon(user="u", password="pw", protocol_version=1)):
        assert p.decode_client(p.encode(message)[4:]) == message
    report = reports.order_report(
        [1, 5, 9, 0, 5, 1, 1, 6000, 10, 0, 1, 1, 1, 0, 0, 0], 0, 0, {5: "c-1"}, 3, SYM_A
    )
    for message in (
        report,
        p.Ack(1, 2, 3, "c"),
        p.DropCopy(
            seq=1,
            index=0,
            user="u",
            request_id=0,
            client_order_id="",
            event=s.InstrumentHalted(1, 2, SYM_A),
        ),
    ):
        assert p.decode_server(p.encode(message)[4:]) == message


def test_append_frame_equals_encode() -> None:
    buffer = bytearray(b"prefix")
    p.append_frame(buffer, p.Logout(reason="bye"))
    assert bytes(buffer) == b"prefix" + p.encode(p.Logout(reason="bye"))


# -- the record shortcut and the report mapping ---------------------------------------------


def test_submit_record_equals_the_codec() -> None:
    codec, rng = Codec(small_market()), random.Random(11)
    for _ in range(500):
        m = p.NewOrder(
            request_id=rng.randint(0, 9),
            client_order_id="x",
            instrument=rng.choice([SYM_A, "NOPE"]),
            side=rng.randint(0, 255),
            qty_t=rng.randint(-(2**63), 2**63 - 1),
            price_ticks=rng.randint(-(2**63), 2**63 - 1),
            order_type=rng.randint(0, 255),
            tif=rng.randint(0, 255),
            stp=rng.randint(0, 255),
            account=rng.randint(0, 2**31 - 1),
            quote_order_id=rng.choice([0, rng.randint(1, 2**63 - 1)]),
        )
        order_id = rng.randint(1, 2**62)
        command = s.SubmitOrder(
            seq=order_id,  # an order's id is its claimed seq, which its record carries
            order_id=order_id,
            account=m.account,
            instrument=m.instrument,
            side=m.side,
            qty_t=m.qty_t,
            price_ticks=m.price_ticks,
            order_type=m.order_type,
            tif=m.tif,
            stp=m.stp,
            quote_order_id=m.quote_order_id,
        )
        index = codec.instrument_index(m.instrument)
        assert submit_record(order_id, m.account, index, m) == codec.command_tuple(command)


def _typed_order_events() -> list:
    common = dict(seq=7, ts_ns=99)
    return [
        s.OrderAccepted(
            **common,
            order_id=5,
            account=1,
            instrument=SYM_A,
            side=s.Side.BUY,
            order_type=s.OrderType.LIMIT,
            tif=s.TimeInForce.GTC,
            price_ticks=6000,
            qty_t=10,
        ),
        s.OrderRejected(
            **common,
            order_id=5,
            account=1,
            instrument=SYM_A,
            side=3,
            price_ticks=1,
            qty_t=0,
            reason=s.RejectReason.INVALID_QUANTITY,
        ),
        s.TradeExecuted(
            **common,
            trade_id=4,
            instrument=SYM_A,
            price_ticks=6001,
            qty_t=3,
            aggressor_side=s.Side.SELL,
            taker_order_id=5,
            taker_account=1,
            maker_order_id=2,
            maker_account=2,
            taker_leaves_t=7,
            maker_leaves_t=0,
        ),
        s.OrderCancelled(
            **common,
            order_id=5,
            account=1,
            instrument=SYM_A,
            side=s.Side.BUY,
            price_ticks=6000,
            qty_t=4,
            reason=s.CancelReason.SESSION_END,
        ),
        s.OrderCancelled(
            **common,
            order_id=5,
            account=1,
            instrument=SYM_A,
            side=s.Side.BUY,
            price_ticks=6000,
            qty_t=4,
            reason=s.CancelReason.REQUESTED,
        ),
        s.OrderModified(
            **common,
            order_id=5,
            account=1,
            instrument=SYM_A,
            side=s.Side.BUY,
            price_ticks=6002,
            qty_t=8,
            priority_kept=False,
            old_price_ticks=6000,
            old_qty_t=10,
        ),
        s.CancelRejected(**common, order_id=5, account=1, reason=s.RejectReason.UNKNOWN_ORDER),
        s.ModifyRejected(
            **common,
            order_id=5,
            account=1,
            price_ticks=1,
            qty_t=2,
            reason=s.RejectReason.NOT_ORDER_OWNER,
        ),
    ]


def test_order_reports_carry_the_event_fields() -> None:
    codec, ET = Codec(small_market()), p.ExecType
    client_of = {5: "mine", 2: "theirs"}
    got = []
    for event in _typed_order_events():
        row = codec.event_row(event)
        for leg, _account in reports.legs(row):
            got.append(reports.order_report(row, 3, leg, client_of, 42, codec.symbol(row[3])))
    accepted, rejected, taker, maker, expired, cancelled, modified, crej, mrej = got
    assert (accepted.exec_type, accepted.leaves_qty_t, accepted.tif, accepted.client_order_id) == (
        ET.ACCEPTED,
        10,
        s.TimeInForce.GTC,
        "mine",
    )
    assert (rejected.exec_type, rejected.side, rejected.reason) == (ET.REJECTED, 3, 7)
    assert (
        taker.exec_type,
        taker.account,
        taker.side,
        taker.leaves_qty_t,
        taker.last_qty_t,
        taker.last_price_ticks,
        taker.trade_id,
        taker.liquidity,
    ) == (ET.PARTIALLY_FILLED, 1, s.Side.SELL, 7, 3, 6001, 4, p.Liquidity.TAKER)
    assert (
        maker.exec_type,
        maker.account,
        maker.order_id,
        maker.client_order_id,
        maker.side,
        maker.leg,
        maker.liquidity,
    ) == (ET.FILLED, 2, 2, "theirs", s.Side.BUY, 1, p.Liquidity.MAKER)
    assert (expired.exec_type, cancelled.exec_type, cancelled.qty_t) == (
        ET.EXPIRED,
        ET.CANCELLED,
        4,
    )
    assert (
        modified.exec_type,
        modified.old_price_ticks,
        modified.old_qty_t,
        modified.leaves_qty_t,
    ) == (ET.MODIFIED, 6000, 10, 8)
    assert (crej.exec_type, crej.reason, mrej.exec_type, mrej.price_ticks) == (
        ET.CANCEL_REJECTED,
        s.RejectReason.UNKNOWN_ORDER,
        ET.MODIFY_REJECTED,
        1,
    )
    assert all((r.seq, r.index, r.request_id) == (7, 3, 42) for r in got)


def test_the_routing_rule_hides_counterparties() -> None:
    codec = Codec(small_market())
    trade = codec.event_row(_typed_order_events()[2])
    annotation = Annotation("alice", 9, "mine")
    alice = reports.Scope("alice", frozenset({1}))
    bob = reports.Scope("bob", frozenset({2}))
    stranger = reports.Scope("eve", frozenset({9}))
    viewer = reports.Scope("viewer", frozenset(), drop_copy=True)
    [mine] = reports.messages_for(alice, trade, 0, annotation, {}, codec)
    [theirs] = reports.messages_for(bob, trade, 0, annotation, {}, codec)
    assert (mine.leg, mine.request_id, mine.account) == (0, 9, 1)
    assert (theirs.leg, theirs.request_id) == (1, 0)
    assert "2" not in {str(v) for v in (mine.order_id, mine.account)}
    assert reports.messages_for(stranger, trade, 0, annotation, {}, codec) == []
    [copy] = reports.messages_for(viewer, trade, 0, annotation, {}, codec)
    assert type(copy) is p.DropCopy and copy.event.maker_account == 2 and copy.user == "alice"
    halted = codec.event_row(s.InstrumentHalted(3, 4, SYM_A))
    [own] = reports.messages_for(
        reports.Scope("op", frozenset()), halted, 0, Annotation("op", 5), {}, codec
    )
    assert type(own) is p.EventReport and own.request_id == 5
    assert reports.messages_for(alice, halted, 0, Annotation("op", 5), {}, codec) == []


# -- permissions ---------------------------------------------------------------------------------


def test_every_engine_command_has_a_permission_row() -> None:
    assert set(s.COMMAND_TYPES) <= set(permissions.ROLES_BY_COMMAND), (
        "a new engine command needs a line in gateway.permissions.ROLES_BY_COMMAND"
    )
    for command, roles in permissions.ROLES_BY_COMMAND.items():
        assert roles and roles <= set(p.Role), command
        assert p.Role.READ_ONLY not in roles


@pytest.mark.parametrize("role", list(p.Role))
def test_refusals_follow_the_table(role: p.Role) -> None:
    accounts = frozenset({7})
    samples = {
        s.MassCancel: s.MassCancel(account=7),
        s.OpenSession: s.OpenSession(trading_date=20250102),
        s.HaltInstrument: s.HaltInstrument(instrument=SYM_A),
        s.CancelOrder: s.CancelOrder(order_id=1, account=7),
    }
    for kind, command in samples.items():
        allowed = role in permissions.ROLES_BY_COMMAND[kind]
        expected = None if allowed else p.RejectCode.NOT_PERMITTED
        assert permissions.command_refusal(role, accounts, command) is expected
        account = getattr(command, "account", None)
        assert permissions.refusal(role, kind, account, accounts) is expected
    other = permissions.refusal(role, s.CancelOrder, 8, accounts)
    assert other is (
        p.RejectCode.ACCOUNT_NOT_PERMITTED if role is p.Role.TRADER else p.RejectCode.NOT_PERMITTED
    )
    assert permissions.command_refusal(role, accounts, s.CancelOrder(order_id=1, account=8)) is (
        other
    )
    transfer = getattr(s, "TransferAllowances", None)
    if transfer is not None:
        command = transfer(key=1, account=7, to_account=8, instrument=SYM_A, qty_t=1)
        assert permissions.command_refusal(role, accounts, command) is (
            None if role is p.Role.REGISTRY else p.RejectCode.NOT_PERMITTED
        )
        assert permissions.refusal(role, transfer, 7, accounts, to_account=8) is (
            None if role is p.Role.REGISTRY else p.RejectCode.NOT_PERMITTED
        )


# -- secrets and users ---------------------------------------------------------------------------


def test_secrets_are_salted_slow_hashes() -> None:
    first, second = hash_secret("pw-123456", log2_n=4), hash_secret("pw-123456", log2_n=4)
    assert first != second and "pw-123456" not in first
    assert verify_secret("pw-123456", first) and verify_secret("pw-123456", second)
    assert not verify_secret("pw-123457", first)
    pbkdf2 = hash_secret_pbkdf2("pw-123456", iterations=1_000)
    assert verify_secret("pw-123456", pbkdf2) and not verify_secret("x", pbkdf2)
    for broken in ("", "scrypt$4$8", "scrypt$99$8$1$AA==$AA==", "md5$x$y", "scrypt$a$b$c$d$e"):
        assert not verify_secret("pw-123456", broken)
    assert hash_secret("x").startswith("scrypt$15$8$1$")  # the production cost by default


def test_user_checks() -> None:
    secret = hash_secret("pw", log2_n=2)
    for bad in (
        User(name="t", role=p.Role.TRADER, secret_hash=secret),
        User(name="o", role=p.Role.OPERATOR, secret_hash=secret, accounts=[1]),
        User(name="", role=p.Role.READ_ONLY, secret_hash=secret),
        User(name="t", role=p.Role.TRADER, secret_hash=secret, accounts=[1, 1]),
        User(name="t", role=p.Role.TRADER, secret_hash=secret, accounts=[-1]),
    ):
        with pytest.raises(UserFileError):
            check_user(bad)
    directory = UserDirectory(
        [User(name="t", role=p.Role.TRADER, secret_hash=secret, accounts=[1])]
    )
    assert directory.authenticate("t", "pw").name == "t"
    assert directory.authenticate("t", "wrong") is None
    assert directory.authenticate("nobody", "pw") is None


def test_user_cli_round_trip(tmp_path, monkeypatch, capsys) -> None:
    path = tmp_path / "users.json"

    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return cli.main(["users", "--file", str(path), *argv])

    assert (
        run(
            "add",
            "alice",
            "--role",
            "trader",
            "--account",
            "1",
            "--account",
            "2",
            "--password-stdin",
            "--scrypt-log2n",
            "4",
            stdin="correct horse\n",
        )
        == 0
    )
    assert run("add", "ops", "--role", "operator", "--generate-key", "--scrypt-log2n", "4") == 0
    key = capsys.readouterr().out.strip().rsplit(" ", 1)[1]
    assert (
        run(
            "add",
            "bad",
            "--role",
            "operator",
            "--account",
            "3",
            "--password-stdin",
            "--scrypt-log2n",
            "4",
            stdin="long enough pw\n",
        )
        == 2
    )
    assert (
        run(
            "add",
            "alice",
            "--role",
            "trader",
            "--account",
            "1",
            "--password-stdin",
            stdin="correct horse\n",
        )
        == 2
    )  # exists
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    directory = UserDirectory.load(path)
    assert directory.authenticate("alice", "correct horse").accounts == [1, 2]
    assert directory.authenticate("ops", key).role is p.Role.OPERATOR
    assert "correct horse" not in path.read_text() and key not in path.read_text()
    assert run("disable", "alice") == 0
    assert UserDirectory.load(path).authenticate("alice", "correct horse") is None
    assert run("remove", "ops") == 0 and run("list") == 0
    listing = capsys.readouterr().out
    assert "alice\ttrader\taccounts 1,2 (disabled)" in listing and "ops" not in listing


# -- annotations and configuration -----------------------------------------------------------


def test_annotations_round_trip_and_tolerate_garbage() -> None:
    annotation = Annotation("alice", 2**63 - 1, "c" * 36)
    assert decode_annotation(encode_annotation(annotation)) == annotation
    assert decode_annotation(None).user == "" and decode_annotation(b"\xc1").user == ""


def test_tracker_counts_open_orders_from_event_rows() -> None:
    codec, tracker = Codec(small_market()), OrderTracker()
    tracker.reserve(1, "a", 5)
    tracker.reserve(2, "b", 2)
    tracker.reserve(1, "c", 6)
    rows = [codec.event_row(e) for e in _typed_order_events()[:3]]  # accept, reject 5, trade
    tracker.apply(rows)
    assert tracker.open_count == {1: 1, 2: 0}
    assert tracker.lookup(1, "a") == 5 and tracker.lookup(2, "a") is None


def test_configuration_limits_are_enforced() -> None:
    GatewayConfig().check()
    for bad in (
        dict(frame_bytes_max=10**9),
        dict(messages_per_second=0),
        dict(heartbeat_interval_s=20.0, idle_timeout_s=30.0),
        dict(port=70_000),
    ):
        with pytest.raises(ValueError):
            GatewayConfig(**bad).check()


def test_event_kinds_match_the_engine() -> None:
    order_events = (
        s.OrderAccepted,
        s.OrderRejected,
        s.TradeExecuted,
        s.OrderCancelled,
        s.OrderModified,
        s.CancelRejected,
        s.ModifyRejected,
    )
    assert reports.ORDER_KINDS == {t.__struct_config__.tag for t in order_events}
    assert rec.EV_TRADE == s.TradeExecuted.__struct_config__.tag

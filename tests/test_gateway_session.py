"""The gateway's session logic without a socket: bytes and times into ``GatewayCore`` sessions,
frames out of their buffers, batches sequenced by the test itself.

Logon (accepted, refused), an order to its Ack and execution report, permission refusals,
the throttle, malformed frames, heartbeat and idle timeouts, and the sequencer's check of
claimed seqs.  No event loop, no socket, no clock: every time is a number the test passes.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import limits
from engine.core import schema as s
from engine.durable.sequencer import Sequencer
from gateway import protocol as p
from gateway.core import GatewayConfig, GatewayCore
from gateway.session import Session, State
from tests.gateway_fixtures import DATE1, SYM_A, password, small_market, users

BUY = int(s.Side.BUY)


@pytest.fixture
def exchange(tmp_path):
    exchange = Sequencer.open(tmp_path / "data", small_market(), durability="none")
    exchange.submit([s.OpenSession(trading_date=DATE1)])
    yield exchange
    exchange.close()


@pytest.fixture(scope="module")
def directory():
    return users()


def make_core(exchange, **config) -> GatewayCore:
    return GatewayCore(exchange, GatewayConfig(port=0, **config))


def output(session: Session) -> list:
    """The messages the session queued since the last call (decoded, in order)."""
    data, frames = session.take_output()
    messages = [
        p.decode_server(body)
        for body in p.FrameReader(limits.OUTBOUND_FRAME_BYTES_MAX).feed(bytes(data))
    ]
    assert len(messages) == frames
    return messages


def logon(core: GatewayCore, directory, name: str, now: float = 0.0, **kw) -> Session:
    """A session logged on as ``name`` (credentials checked here, as the adapter's thread does)."""
    session = core.open_session(len(core.sessions) + 1, now)
    request = p.Logon(user=name, password=password(name), protocol_version=1, **kw)
    session.receive_data(p.encode(request), now)
    assert session.state is State.LOGGING_ON and core.logons == [(session, request)]
    core.logons.clear()
    assert core.logon_precheck(request) is None
    user = directory.authenticate(request.user, request.password)
    assert core.complete_logon(session, request, None, user)
    [accepted] = output(session)
    assert type(accepted) is p.LogonAccepted and accepted.user == name
    return session


def sequence(core: GatewayCore, exchange: Sequencer) -> None:
    """What the adapter's group commit does: submit every batch, hand back the events."""
    for batch in core.take_batches():
        events = exchange.submit_records(batch.command_records(), batch.annotation_blob())
        core.batch_committed(batch, events)


def order(request_id: int, client_order_id: str, **kw) -> bytes:
    fields = dict(instrument=SYM_A, side=BUY, qty_t=10, price_ticks=6_000)
    fields.update(kw)
    return p.encode(p.NewOrder(request_id=request_id, client_order_id=client_order_id, **fields))


def test_logon_is_accepted_after_the_credentials(exchange, directory) -> None:
    core = make_core(exchange)
    session = logon(core, directory, "alice")
    assert session.state is State.ACTIVE and session.accounts == frozenset({1})
    assert core.by_user["alice"] == {session} and core.by_account[1] == {session}


def test_requests_before_logon_are_a_protocol_error(exchange) -> None:
    core = make_core(exchange)
    session = core.open_session(1, 0.0)
    session.receive_data(order(1, "a"), 0.0)
    [error] = output(session)
    assert type(error) is p.ProtocolError and error.code == p.ProtocolErrorCode.NOT_LOGGED_ON
    assert session.state is State.CLOSING and core.dirty == [session]


def test_rejected_logons(exchange, directory) -> None:
    core = make_core(exchange)
    session = core.open_session(1, 0.0)
    request = p.Logon(user="alice", password="wrong", protocol_version=1)
    session.receive_data(p.encode(request), 0.0)
    user = directory.authenticate(request.user, request.password)
    assert user is None
    assert not core.complete_logon(session, request, p.LogonRejectCode.BAD_CREDENTIALS, user)
    [rejected] = output(session)
    assert type(rejected) is p.LogonRejected
    assert rejected.code == p.LogonRejectCode.BAD_CREDENTIALS
    assert session.state is State.CLOSING and "alice" not in core.by_user

    old = p.Logon(user="alice", password=password("alice"), protocol_version=99)
    assert core.logon_precheck(old) is p.LogonRejectCode.UNSUPPORTED_VERSION
    trader = core.open_session(2, 0.0)
    drop_copy = p.Logon(
        user="alice", password=password("alice"), protocol_version=1, drop_copy=True
    )
    trader.receive_data(p.encode(drop_copy), 0.0)
    user = directory.authenticate("alice", password("alice"))
    assert not core.complete_logon(trader, drop_copy, None, user)
    [rejected] = output(trader)
    assert rejected.code == p.LogonRejectCode.NOT_PERMITTED


def test_an_order_becomes_one_record_then_its_report_and_ack(exchange, directory) -> None:
    core = make_core(exchange)
    alice = logon(core, directory, "alice")
    before = exchange.last_seq
    alice.receive_data(order(7, "first"), 1.0)
    assert output(alice) == [] and exchange.last_seq == before, "nothing before it is durable"
    [batch] = core.take_batches()
    assert len(batch) == 1 and batch.first_seq == exchange.next_seq
    assert batch.records[0][2] == batch.first_seq, "an order's id is its claimed seq"
    events = exchange.submit_records(batch.command_records(), batch.annotation_blob())
    core.batch_committed(batch, events)
    report, ack = output(alice)
    assert type(report) is p.ExecutionReport and report.exec_type == p.ExecType.ACCEPTED
    assert (report.request_id, report.client_order_id) == (7, "first")
    assert ack == p.Ack(7, before + 1, before + 1, "first")
    assert core.tracker.lookup(1, "first") == before + 1

    alice.receive_data(order(8, "first"), 1.0)  # a client order id is used once per account
    [reject] = output(alice)
    assert reject.code == p.RejectCode.DUPLICATE_CLIENT_ORDER_ID and not core.has_batch


def test_other_sessions_of_the_account_get_the_report(exchange, directory) -> None:
    core = make_core(exchange)
    first, second = logon(core, directory, "carol"), logon(core, directory, "carol")
    first.receive_data(order(1, "c1", account=3), 0.0)
    sequence(core, exchange)
    report, ack = output(first)
    assert type(report) is p.ExecutionReport and type(ack) is p.Ack
    assert output(second) == [report], "the user's other session: the report, not the Ack"


def test_permission_refusals_reach_no_batch(exchange, directory) -> None:
    core = make_core(exchange)
    alice = logon(core, directory, "alice")
    alice.receive_data(order(1, "x", account=2), 0.0)  # bob's account
    halt = p.EngineRequest(request_id=2, command=s.HaltInstrument(instrument=SYM_A))
    alice.receive_data(p.encode(halt), 0.0)
    cancel = p.CancelRequest(request_id=3, order_id=5, account=2)
    alice.receive_data(p.encode(cancel), 0.0)
    refused = output(alice)
    assert [(m.request_id, m.code) for m in refused] == [
        (1, p.RejectCode.ACCOUNT_NOT_PERMITTED),
        (2, p.RejectCode.NOT_PERMITTED),
        (3, p.RejectCode.ACCOUNT_NOT_PERMITTED),
    ]
    assert refused[0].text == "SubmitOrder: ACCOUNT_NOT_PERMITTED"
    assert refused[1].text == "HaltInstrument: NOT_PERMITTED"
    assert not core.has_batch

    carol = logon(core, directory, "carol")  # two accounts: a request must name one
    carol.receive_data(order(4, "y"), 0.0)
    [reject] = output(carol)
    assert reject.code == p.RejectCode.ACCOUNT_REQUIRED and not core.has_batch


def test_the_throttle_refuses_requests_above_the_rate(exchange, directory) -> None:
    core = make_core(exchange, messages_per_second=2)
    alice = logon(core, directory, "alice", now=10.0)
    alice.receive_data(order(1, "a") + order(2, "b") + order(3, "c"), 10.0)
    [throttled] = output(alice)
    assert (throttled.request_id, throttled.code) == (3, p.RejectCode.THROTTLED)
    assert len(core.pending) == 2
    alice.receive_data(order(4, "d"), 10.5)  # half a second refills one token
    assert output(alice) == [] and len(core.pending) == 3
    sequence(core, exchange)
    assert [type(m) for m in output(alice)] == [p.ExecutionReport, p.Ack] * 3


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\x00\x00\x00", p.ProtocolErrorCode.EMPTY_FRAME),
        ((1 << 20).to_bytes(4, "big"), p.ProtocolErrorCode.FRAME_TOO_LARGE),
        (b"\x00\x00\x00\x01\xc1", p.ProtocolErrorCode.MALFORMED),
        (b"\x00\x00\x00\x01\x90", p.ProtocolErrorCode.MALFORMED),  # an array, not a map
        (p.encode(p.Ack(1, 2)), p.ProtocolErrorCode.UNKNOWN_MESSAGE_TYPE),
    ],
)
def test_a_malformed_frame_is_a_protocol_error(exchange, directory, data, code) -> None:
    core = make_core(exchange, frame_bytes_max=4096)
    alice = logon(core, directory, "alice")
    alice.receive_data(order(1, "ok") + data + order(2, "never read"), 0.0)
    [error] = output(alice)
    assert type(error) is p.ProtocolError and error.code == code
    assert alice.state is State.CLOSING and alice.reader.buffered == 0
    assert len(core.pending) == 1, "the frame before the bad one was taken"
    alice.receive_data(order(3, "after"), 0.0)
    assert output(alice) == [] and len(core.pending) == 1


def test_frames_split_anywhere_and_logon_stops_reading(exchange, directory) -> None:
    core = make_core(exchange)
    session = core.open_session(1, 0.0)
    request = p.Logon(user="alice", password=password("alice"), protocol_version=1)
    stream = p.encode(request) + order(1, "a")
    for i in range(len(stream)):
        session.receive_data(stream[i : i + 1], 0.0)
    assert session.state is State.LOGGING_ON and not core.has_batch
    assert session.reader.buffered == len(order(1, "a")), "held until the logon is decided"
    user = directory.authenticate("alice", password("alice"))
    assert core.complete_logon(session, request, None, user)
    session.process()
    assert len(core.pending) == 1


def test_heartbeats_and_timeouts_follow_the_times_given(exchange, directory) -> None:
    core = make_core(exchange, heartbeat_interval_s=1.0, idle_timeout_s=3.0, logon_timeout_s=2.0)
    alice = logon(core, directory, "alice", now=0.0)
    alice.last_sent = 0.0
    silent = core.open_session(9, 0.0)
    core.tick(1.5)
    assert output(alice) == [p.Heartbeat()]
    alice.last_sent = 1.5
    assert output(silent) == []
    core.tick(2.5)
    [timeout] = output(silent)
    assert timeout.code == p.ProtocolErrorCode.LOGON_TIMEOUT and silent.state is State.CLOSING
    assert output(alice) == [p.Heartbeat()]  # the adapter sets last_sent when it writes
    alice.last_sent = 2.5
    alice.receive_data(p.encode(p.Heartbeat()), 2.5)
    core.tick(4.0)
    assert output(alice) == [p.Heartbeat()] and alice.state is State.ACTIVE
    core.tick(6.0)
    [idle] = output(alice)
    assert idle.code == p.ProtocolErrorCode.IDLE_TIMEOUT and alice.state is State.CLOSING


def test_cancel_on_disconnect_queues_the_cancels(exchange, directory) -> None:
    core = make_core(exchange)
    alice = logon(core, directory, "alice", cancel_on_disconnect=True)
    alice.receive_data(order(1, "rest"), 0.0)
    sequence(core, exchange)
    order_id = output(alice)[-1].order_id
    core.session_closed(alice)
    assert alice.state is State.CLOSED and alice not in core.sessions
    [batch] = core.take_batches()
    assert batch.origins == [None] and batch.records[0][2] == order_id
    events = exchange.submit_records(batch.command_records(), batch.annotation_blob())
    core.batch_committed(batch, events)
    assert exchange.engine.order(order_id) is None


@pytest.mark.parametrize("orders", [2, 40], ids=["small", "numpy-checked"])
def test_the_sequencer_checks_claimed_seqs(exchange, directory, orders) -> None:
    core = make_core(exchange)
    alice = logon(core, directory, "alice")
    alice.receive_data(b"".join(order(k + 1, f"c{k}") for k in range(orders)), 0.0)
    [batch] = core.take_batches()
    records = batch.command_records()
    last_seq = exchange.last_seq
    with pytest.raises(ValueError, match="claimed"):
        exchange.submit_records(records[::-1].copy(), b"")
    with pytest.raises(ValueError, match="claimed"):
        exchange.submit_records(records[1:].copy(), b"")
    assert exchange.last_seq == last_seq, "nothing was logged"
    events = exchange.submit_records(records, batch.annotation_blob())
    seqs = list(range(last_seq + 1, last_seq + orders + 1))
    assert np.unique(events["seq"]).tolist() == seqs
    core.batch_committed(batch, events)
    assert [m.order_id for m in output(alice) if type(m) is p.Ack] == seqs


def test_a_full_batch_is_sealed_and_reading_waits(exchange, directory, monkeypatch) -> None:
    monkeypatch.setattr("gateway.core.BATCH_MAX", 2)
    core = make_core(exchange)
    alice = logon(core, directory, "alice")
    third = order(3, "c")
    alice.receive_data(order(1, "a") + order(2, "b") + third, 0.0)
    assert len(core.sealed) == 1 and len(core.pending) == 0
    assert alice.reader.buffered == len(third), "judged only after the full batch is durable"
    sequence(core, exchange)
    alice.process()
    assert len(core.pending) == 1 and alice.reader.buffered == 0
    sequence(core, exchange)
    acks = [m for m in output(alice) if type(m) is p.Ack]
    assert [a.request_id for a in acks] == [1, 2, 3]


def test_command_records_are_numpys_own_conversion_of_the_tuples() -> None:
    """``Batch.command_records`` packs the tuples with ``struct``: the array is numpy's own
    conversion of them, and a value that does not fit its column is numpy's OverflowError."""
    import random

    from engine.core.records import COMMAND_DTYPE
    from gateway.core import Batch

    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    bounds = [
        (-(2**63), 2**63 - 1) if COMMAND_DTYPE[name] == np.dtype(np.int64)
        else (int(np.iinfo(COMMAND_DTYPE[name]).min), int(np.iinfo(COMMAND_DTYPE[name]).max))
        for name in COMMAND_DTYPE.names
    ]  # fmt: skip
    batch = Batch()
    batch.records = [
        tuple(rng.choice([low, high, rng.randint(low, high)]) for low, high in bounds)
        for _ in range(300)
    ]
    assert batch.command_records().tobytes() == np.array(batch.records, COMMAND_DTYPE).tobytes()
    assert batch.command_records().flags.writeable
    for column, (low, high) in enumerate(bounds):
        for value in (low - 1, high + 1):
            record = list(batch.records[0])
            record[column] = value
            batch.records = [tuple(record)]
            with pytest.raises(OverflowError):
                batch.command_records()

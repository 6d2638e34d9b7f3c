"""One session cannot freeze the others: the property at a tiny size, without timing.

Sans-I/O (``GatewayCore`` sessions, no loop): a session that pipelines a storm of requests
(quotes, subscribe churn, garbage) handles one turn's budget and yields with its backlog still
buffered, so an honest session's order is judged before the abuser's backlog; large answers
cost throttle tokens by size.  On a real server: a deferred backlog is worked off completely;
an honest order is acknowledged while a resume from seq 1 is still being replayed; the resend
from the log (``gateway.resend``) equals the sequencer's regenerated events.  Market data: the
channel sequence is gapless and the snapshot is stamped with it.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from engine.core import schema as s
from engine.core.records import E_SEQ, EVENT_FIELDS
from engine.durable.sequencer import Sequencer
from gateway import protocol as p
from gateway import resend
from gateway.market_data import ChannelFollower
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from gateway.session import TURN_UNITS
from tests.gateway_fixtures import DATE1, SYM_A, password, small_market, users
from tests.test_gateway_server import open_market, run, session
from tests.test_gateway_session import logon, make_core, order, output, sequence

BUY, SELL = int(s.Side.BUY), int(s.Side.SELL)


@pytest.fixture
def exchange(tmp_path):
    exchange = Sequencer.open(tmp_path / "data", small_market(), durability="none")
    exchange.submit([s.OpenSession(trading_date=DATE1)])
    yield exchange
    exchange.close()


@pytest.fixture(scope="module")
def directory():
    return users()


def storm(kind: str, count: int) -> bytes:
    """``count`` pipelined requests of one abusive kind, as one write."""
    if kind == "quotes":
        frames = [p.QuotesRequest(request_id=i, instrument=SYM_A) for i in range(count)]
    elif kind == "subscribe":
        frames = [
            (p.Subscribe if i % 2 == 0 else p.Unsubscribe)(request_id=i, instrument=SYM_A)
            for i in range(count)
        ]
    else:  # garbage: well-formed requests that can only be refused
        frames = [p.CancelRequest(request_id=i, client_order_id=f"nope{i}") for i in range(count)]
    return b"".join(p.encode(frame) for frame in frames)


def answers(session) -> int:
    """Answers to requests among the session's output (not the market data it subscribed)."""
    return sum(hasattr(m, "request_id") for m in output(session))


@pytest.mark.parametrize("kind", ["quotes", "subscribe", "garbage"])
def test_an_honest_order_is_judged_while_the_abusive_backlog_waits(
    exchange, directory, kind
) -> None:
    core = make_core(exchange)
    abuser = logon(core, directory, "bob")
    alice = logon(core, directory, "alice")
    abuser.receive_data(storm(kind, 4 * TURN_UNITS), 0.0)
    assert abuser.yielded and abuser.reader.buffered > 0, "one turn's budget, then yield"
    answered = answers(abuser)
    assert 0 < answered < 4 * TURN_UNITS
    alice.receive_data(order(1, "honest"), 0.0)
    assert len(core.pending) == 1, "the honest order is in the batch before the backlog"
    assert abuser.reader.buffered > 0, "while the abusive backlog is still queued"
    sequence(core, exchange)
    assert [type(m) for m in output(alice)] == [p.ExecutionReport, p.Ack]
    turns = 0
    while abuser.yielded:  # what the server's deferred resumes do, a turn at a time
        abuser.resume()
        answered += answers(abuser)
        turns += 1
    assert abuser.reader.buffered == 0 and turns >= 2
    assert answered == 4 * TURN_UNITS, "every request answered in the end"


def test_large_answers_cost_throttle_tokens_by_size(exchange, directory) -> None:
    core = make_core(exchange, messages_per_second=20)
    alice = logon(core, directory, "alice")
    for k in range(200):  # a book of 200 bid levels
        alice.receive_data(order(k, f"b{k}", price_ticks=5_500 + k), float(k))
    sequence(core, exchange)
    output(alice)
    viewer = logon(core, directory, "viewer", now=300.0)
    viewer.receive_data(p.encode(p.Subscribe(request_id=1, instrument=SYM_A)), 300.0)
    [snapshot] = output(viewer)
    assert len(snapshot.bids) == 200
    assert viewer.tokens <= 19 - 3, "the snapshot cost more than one token"
    viewer.receive_data(storm("quotes", 19), 300.0)
    answers = output(viewer)
    throttled = [m for m in answers if type(m) is p.Reject and m.code == p.RejectCode.THROTTLED]
    assert len(answers) == 19 and len(throttled) >= 3


def test_channel_sequence_is_gapless_and_the_snapshot_is_stamped(exchange, directory) -> None:
    core = make_core(exchange)
    alice, bob = logon(core, directory, "alice"), logon(core, directory, "bob")
    alice.receive_data(order(1, "a1", price_ticks=6_000), 0.0)
    sequence(core, exchange)
    viewer = logon(core, directory, "viewer")
    viewer.receive_data(p.encode(p.Subscribe(request_id=1, instrument=SYM_A)), 0.0)
    [snapshot] = output(viewer)
    follower = ChannelFollower()
    follower.snapshot(snapshot)
    for k in range(5):
        alice.receive_data(order(10 + k, f"a{10 + k}", price_ticks=6_001 + k), 0.0)
        sequence(core, exchange)
        bob.receive_data(order(20 + k, f"b{k}", side=SELL, price_ticks=6_000), 0.0)
        sequence(core, exchange)
    messages = [m for m in output(viewer) if hasattr(m, "channel_seq")]
    numbers = [m.channel_seq for m in messages]
    assert numbers == list(range(snapshot.channel_seq + 1, snapshot.channel_seq + 1 + len(numbers)))
    assert {type(m) for m in messages} >= {p.DepthUpdate, p.Trade}
    assert all(follower.accept(m) for m in messages) and not follower.gap
    assert not follower.accept(messages[-1]), "an old message is not applied twice"
    gap = p.Trade(
        instrument=SYM_A,
        seq=0,
        ts_ns=0,
        trade_id=0,
        price_ticks=1,
        qty_t=1,
        aggressor_side=1,
        channel_seq=numbers[-1] + 2,
    )
    assert not follower.accept(gap) and follower.gap


def test_resend_slices_equal_the_sequencers_regenerated_events(exchange, directory) -> None:
    core = make_core(exchange)
    alice, bob = logon(core, directory, "alice"), logon(core, directory, "bob")
    for k in range(150):  # batches of 3 orders, 2 trading, so slices cut through batches
        alice.receive_data(order(k, f"a{k}", price_ticks=6_000 + k % 7), 0.0)
        bob.receive_data(order(k, f"b{k}", side=SELL, price_ticks=6_000 + k % 5), 0.0)
        alice.receive_data(order(1000 + k, f"c{k}", price_ticks=5_000), 0.0)
        sequence(core, exchange)
    end = exchange.last_seq
    for from_seq in (1, 2, end // 2, end):
        expected = [exchange.codec.event_row(e) for e in exchange.events_since(from_seq)]
        rows = []
        for slice_rows, first_seq, notes in resend.event_slices(
            resend.starting_point(exchange, from_seq), from_seq, end
        ):
            assert len(slice_rows) <= resend.SLICE_COMMANDS * 8
            for row in slice_rows:
                assert 0 <= row[E_SEQ] - first_seq < len(notes)
            rows += slice_rows
        assert rows == expected
    assert np.asarray(rows).shape[1] == EVENT_FIELDS


# ------------------------------------------------------------------------------------------
# A real server
# ------------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path):
    server = ServerThread(
        tmp_path / "data",
        users(),
        GatewayConfig(port=0),
        market=small_market(),
        durability="none",
    ).start()
    yield server
    server.stop()


def test_a_deferred_backlog_is_worked_off_and_honest_orders_go_through(server) -> None:
    async def scenario():
        async with session(server, "op") as op, session(server, "alice") as alice:
            await open_market(op)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            logon = p.Logon(user="bob", password=password("bob"), protocol_version=1)
            count = 8 * TURN_UNITS
            writer.write(p.encode(logon) + storm("quotes", count))
            assert (await alice.new_order(SYM_A, BUY, 1, 5_900)).ok
            frames, answered = p.FrameReader(p.limits.OUTBOUND_FRAME_BYTES_MAX), 0
            while answered < count:
                data = await asyncio.wait_for(reader.read(1 << 16), 10)
                assert data
                for body in frames.feed(data):
                    answered += type(p.decode_server(body)) in (p.Quotes, p.Reject)
            writer.close()

    run(scenario())


def test_an_honest_order_is_acknowledged_while_a_resume_from_1_replays(server) -> None:
    async def scenario():
        async with session(server, "op") as op, session(server, "alice") as alice:
            await open_market(op)
            for _ in range(20):
                ids = [
                    alice.send_new_order(SYM_A, side, 1, 6000, tif=s.TimeInForce.IOC)
                    for side in (BUY, SELL) * 100
                ]
                for request_id in ids:
                    await alice.outcome(request_id)
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            logon = p.Logon(
                user="alice", password=password("alice"), protocol_version=1, resume_from_seq=1
            )
            sock.sendall(p.encode(logon))  # and never read: the replay cannot finish

            def replaying() -> bool:
                return any(c.replaying for c in server.gateway.connections)

            while not server.call(replaying):
                await asyncio.sleep(0.01)
            assert (await alice.new_order(SYM_A, BUY, 1, 5_900)).ok
            assert server.call(replaying), "answered while the replay is still queued"
            sock.close()

    run(scenario())

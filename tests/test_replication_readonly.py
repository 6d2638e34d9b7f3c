"""A follower's gateway without NATS: the read-only mode itself (``read_only`` of
``gateway.service.run``, ``Gateway.set_read_only``) and the client library's move to the next
address on ``NOT_PRIMARY``.  Reads are served, every request that would be sequenced is refused
``NOT_PRIMARY`` and changes nothing, the trading schedule waits for the node to become the
primary, and the same session trades once it is (the NATS-backed tests are
``test_replication_follower.py``)."""

from __future__ import annotations

import asyncio
import datetime as dt

from engine.core import schema as s
from gateway import protocol as p
from gateway.client import Client
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import DATE1, SYM_A, password, small_market, users
from tests.test_schedule import scheduled_market  # noqa: F401 - a fixture

READ_ONLY = "f is a follower (read-only), not the primary: the primary is p"


def test_a_read_only_gateway_serves_reads_refuses_writes_then_takes_orders(
    tmp_path,
    scheduled_market,  # noqa: F811 - the fixture
) -> None:
    clock = [dt.datetime(2025, 1, 2, 10, 0, 0)]  # trading hours: the schedule would open
    server = ServerThread(
        tmp_path / "f",
        users(),
        GatewayConfig(port=0),
        market=scheduled_market,
        durability="none",
        schedule=True,
        local_clock=lambda: clock[0],
        read_only=READ_ONLY,
    ).start()
    gateway = server.gateway

    def last_seq() -> int:
        return server.call(lambda: gateway.exchange.last_seq)

    def open_instruments() -> int:
        engine = gateway.exchange.engine
        return sum(engine.status(x).state == 1 for x in gateway.exchange.codec.symbols)

    async def scenario() -> None:
        alice = Client("127.0.0.1", server.port, "alice", password("alice"))
        viewer = Client("127.0.0.1", server.port, "viewer", password("viewer"), drop_copy=True)
        op = Client("127.0.0.1", server.port, "op", password("op"))
        for session in (alice, viewer, op):
            accepted = await session.connect()
            assert accepted.read_only == READ_ONLY, "a follower says so at logon"
        snapshot = await viewer.subscribe(SYM_A)
        assert snapshot.seq == 0 and (await alice.account()).seq == 0
        refused = [
            await alice.new_order(SYM_A, s.Side.BUY, 5, 6_000),
            await alice.cancel(order_id=1),
            await alice.modify(6_001, 5, order_id=1),
            await alice.mass_cancel(1),
            await op.engine(s.OpenSession(trading_date=DATE1)),
        ]
        for outcome in refused:
            assert outcome.not_primary and outcome.reject.text == READ_ONLY, outcome
        assert server.call(lambda: gateway._schedule_handle) is None, "the schedule waits"
        assert last_seq() == 0, "nothing sequenced"

        server.call(gateway.set_read_only, None)  # this node became the primary
        for _ in range(500):  # the schedule catches up: the sessions open
            if server.call(open_instruments) == 3:
                break
            await asyncio.sleep(0.01)
        assert server.call(open_instruments) == 3
        caught_up = last_seq()
        traded = await alice.new_order(SYM_A, s.Side.BUY, 5, 6_000)
        assert traded.ok and traded.seq == caught_up + 1
        assert traded.exec_types() == [p.ExecType.ACCEPTED]
        late = Client("127.0.0.1", server.port, "bob", password("bob"))
        assert (await late.connect()).read_only == "", "the primary takes orders"
        await late.close()
        await asyncio.sleep(0.1)
        assert viewer.stream[-1].seq == traded.seq, "the same drop-copy session goes on"
        for session in (alice, viewer, op):
            await session.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_order_entry_moves_from_a_follower_to_the_next_address(tmp_path) -> None:
    follower = ServerThread(
        tmp_path / "f",
        users(),
        GatewayConfig(port=0),
        market=small_market(),
        durability="none",
        read_only=READ_ONLY,
    ).start()
    primary = ServerThread(
        tmp_path / "p", users(), GatewayConfig(port=0), market=small_market(), durability="none"
    ).start()

    async def scenario() -> None:
        op = Client(
            "127.0.0.1",
            follower.port,
            "op",
            password("op"),
            addresses=[("127.0.0.1", primary.port)],
        )
        await op.connect()
        assert op.port == follower.port
        pipelined = await op.outcome(op.send_engine(s.OpenSession(trading_date=DATE1)))
        assert pipelined.not_primary, "a pipelining caller sees it and moves itself"
        opened = await op.engine(s.OpenSession(trading_date=DATE1))
        assert opened.ok and opened.seq == 1 and op.port == primary.port
        await op.close()

    try:
        asyncio.run(scenario())
        assert follower.call(lambda: follower.gateway.exchange.last_seq) == 0
    finally:
        follower.stop()
        primary.stop()

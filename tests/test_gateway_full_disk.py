"""A full disk at the gateway: requests are refused with ``STORAGE_FULL`` and nothing of them is
recorded; the gateway goes on, and when space returns the same requests succeed.

The log writes through ``engine.durable.storage``; this test gives the server the real OS
storage with one switch: while ``full`` is set, every write reports ``ENOSPC`` as a full file
system does (``tests/test_full_disk.py`` fills a real tmpfs at the sequencer's level).
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


class SwitchableFullDisk(Storage):
    """The OS's file operations, except that writes fail with ENOSPC while ``full``."""

    def __init__(self) -> None:
        self.full = False

    def pwrite(self, fd: int, parts, offset: int) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().pwrite(fd, parts, offset)


def test_a_full_disk_refuses_requests_and_the_gateway_goes_on(tmp_path) -> None:
    disk = SwitchableFullDisk()
    server = ServerThread(
        tmp_path / "data",
        users(),
        GatewayConfig(port=0),
        market=small_market(),
        durability="batch",
        storage=disk,
    ).start()

    def position(of: ServerThread = server) -> tuple[int, str]:
        exchange = of.gateway.exchange
        return exchange.last_seq, exchange.state_hash()

    async def scenario() -> None:
        op = Client("127.0.0.1", server.port, "op", password("op"))
        alice = Client("127.0.0.1", server.port, "alice", password("alice"))
        await op.connect()
        await alice.connect()
        assert (await op.engine(s.OpenSession(trading_date=DATE1))).ok
        before = server.call(position)
        disk.full = True
        refused = await alice.new_order(SYM_A, s.Side.SELL, 10, 6000, client_order_id="s1")
        assert refused.reject is not None
        assert refused.reject.code == p.RejectCode.STORAGE_FULL, refused.reject
        assert refused.reject.client_order_id == "s1" and refused.seq == 0
        assert "full" in refused.reject.text
        assert server.call(position) == before  # nothing recorded, nothing applied
        disk.full = False
        accepted = await alice.new_order(SYM_A, s.Side.SELL, 10, 6000, client_order_id="s1")
        assert accepted.ok and accepted.seq == before[0] + 1  # the same id, the next seq
        assert accepted.reports[0].exec_type == p.ExecType.ACCEPTED
        await alice.close()
        await op.close()

    try:
        asyncio.run(scenario())
        last_seq, state_hash = server.call(position)
    finally:
        server.stop()
    again = ServerThread(tmp_path / "data", users(), GatewayConfig(port=0)).start()
    try:
        assert again.call(position, again) == (last_seq, state_hash)
    finally:
        again.stop()

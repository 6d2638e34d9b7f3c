"""Connection slots under a flood of sockets that never log on, with real sockets.

Sockets without a Logon have their own, small allowance (``pre_logon_connections_max``) and a
short logon timeout; they never take the slots of logged-on sessions
(``connections_max``), and a stranger without the password never uses up a user's own
session limit (sessions are counted only once their credentials were checked).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway import protocol as p
from gateway.client import Client, LogonError
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import password, small_market, users


@pytest.fixture
def server(tmp_path):
    config = GatewayConfig(
        port=0,
        connections_max=2,
        pre_logon_connections_max=3,
        sessions_per_user=1,
        logon_timeout_s=0.6,
    )
    server = ServerThread(
        tmp_path / "data", users(), config, market=small_market(), durability="none"
    ).start()
    yield server
    server.stop()


async def _silent_socket(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


async def _answer(reader: asyncio.StreamReader):
    """The first frame the server sends on a raw socket, decoded (None: closed silently)."""
    header = await asyncio.wait_for(reader.read(4), 5)
    if not header:
        return None
    body = await asyncio.wait_for(reader.readexactly(int.from_bytes(header, "big")), 5)
    return p.decode_server(body)


@contextlib.asynccontextmanager
async def logged_on(port: int, name: str, secret: str | None = None):
    client = Client("127.0.0.1", port, name, secret if secret is not None else password(name))
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


def test_sockets_without_logon_cannot_take_logged_on_slots(server) -> None:
    async def scenario():
        # a flood of silent sockets: beyond the pre-logon allowance each is refused at once
        silent = [await _silent_socket(server.port) for _ in range(3)]
        reader, writer = await _silent_socket(server.port)
        refused = await _answer(reader)
        assert refused.code == p.ProtocolErrorCode.TOO_MANY_CONNECTIONS
        writer.close()
        # the silent ones are dropped after the (short) logon timeout ...
        for reader, writer in silent:
            timed_out = await _answer(reader)
            assert timed_out.code == p.ProtocolErrorCode.LOGON_TIMEOUT
            writer.close()
        # ... and logged-on sessions do not count against the pre-logon allowance
        async with logged_on(server.port, "alice"), logged_on(server.port, "bob"):
            flood = [await _silent_socket(server.port) for _ in range(3)]
            # a connect returns before the server's accept callback has run: wait for it
            counted = 0
            for _ in range(200):
                counted = server.call(lambda: len(server.gateway.core.logging_on))
                if counted == 3:
                    break
                await asyncio.sleep(0.01)
            assert counted == 3
            for _reader, writer in flood:
                writer.close()
            # the logged-on limit (2) is reached: a third user is refused after its logon
            with pytest.raises(LogonError) as full:
                async with logged_on(server.port, "carol"):
                    pass
            assert full.value.code == p.LogonRejectCode.SERVER_FULL
            with pytest.raises(LogonError) as stranger:
                async with logged_on(server.port, "carol", "wrong"):
                    pass
            assert stranger.value.code == p.LogonRejectCode.BAD_CREDENTIALS, "learns nothing"

    asyncio.run(scenario())


def test_a_stranger_cannot_use_up_a_users_session_limit(server) -> None:
    async def scenario():
        # strangers trying alice's name without her password, several at once and again
        for _ in range(3):
            attempts = [logged_on(server.port, "alice", "guess").__aenter__() for _ in range(3)]
            for outcome in await asyncio.gather(*attempts, return_exceptions=True):
                assert isinstance(outcome, LogonError), outcome
                assert outcome.code in (p.LogonRejectCode.BAD_CREDENTIALS, p.LogonRejectCode.BUSY)
        async with logged_on(server.port, "alice") as alice:  # her one session is hers
            assert alice.connected
            with pytest.raises(LogonError) as second:
                async with logged_on(server.port, "alice"):
                    pass
            assert second.value.code == p.LogonRejectCode.SESSION_LIMIT
            with pytest.raises(LogonError) as stranger:
                async with logged_on(server.port, "alice", "guess"):
                    pass
            assert stranger.value.code == p.LogonRejectCode.BAD_CREDENTIALS

    asyncio.run(scenario())

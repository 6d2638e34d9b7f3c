"""A NATS connection on its own thread and event loop.

The gateway's event loop must not await NATS (the sequencer's write path is synchronous: the
loop blocks while a batch is made durable, as it does for the log's fsync), so the NATS client
runs on a background loop and synchronous callers wait on its futures (:meth:`NatsLink.run`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats

log = logging.getLogger("gateway.replication")

T = TypeVar("T")
CONNECT_TIMEOUT_S = 30.0
RECONNECT_WAIT_S = 0.2


class NatsLink:
    """One NATS client connection, served by a daemon thread's event loop.

    Parameters
    ----------
    servers : list of str
        NATS URLs (any node of the cluster; the client reconnects to the others).
    name : str
        Connection name shown by the server.
    """

    def __init__(self, servers: list[str], name: str = "cets") -> None:
        self.servers, self.name = list(servers), name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="nats", daemon=True)
        self.nc: Any = None
        self.js: Any = None

    def start(self) -> NatsLink:
        """Start the thread and connect (retrying until ``CONNECT_TIMEOUT_S``)."""
        self._thread.start()
        self.run(self._connect(), CONNECT_TIMEOUT_S + 5)
        return self

    async def _connect(self) -> None:
        deadline = self.loop.time() + CONNECT_TIMEOUT_S
        while True:
            try:
                self.nc = await nats.connect(
                    servers=self.servers,
                    name=self.name,
                    connect_timeout=1,
                    reconnect_time_wait=RECONNECT_WAIT_S,
                    max_reconnect_attempts=-1,
                )
                break
            except Exception as exc:  # noqa: BLE001 - no node up yet: retry until the deadline
                if self.loop.time() > deadline:
                    raise ConnectionError(f"no NATS server at {self.servers}: {exc!r}") from exc
                await asyncio.sleep(RECONNECT_WAIT_S)
        self.js = self.nc.jetstream()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the link's loop and wait for its result (from another thread)."""
        return self.submit(coroutine).result(timeout)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the link's loop; its future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        """Close the connection and stop the thread.  Idempotent."""
        if not self._thread.is_alive():
            return
        if self.nc is not None and not self.nc.is_closed:
            try:
                self.run(self.nc.close(), 5)
            except Exception as exc:  # noqa: BLE001 - closing anyway
                log.warning("closing the NATS connection: %r", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

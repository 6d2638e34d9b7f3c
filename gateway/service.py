"""Running the gateway: open the exchange, serve until a signal, shut down gracefully.

Theory of operation
-------------------
:func:`run` is the whole life of a server process: recover the exchange from its data
directory (``Sequencer.open`` replays the log), build the gateway (which rebuilds its order ids
from the log), listen, and on SIGTERM/SIGINT stop accepting, answer what is pending, say
Logout, drain and close the exchange (which syncs the log).  With ``schedule`` the gateway also
runs the trading day by the market's schedule (``gateway.schedule``).  :class:`ServerThread` runs the
same thing on a background thread, for tests and benchmarks that want a real server on a
loopback port inside their own process.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from engine.core.market import MarketDefinition
from engine.durable.sequencer import DEFAULT_SNAPSHOT_EVERY_EVENTS, Sequencer
from engine.durable.storage import OS_STORAGE, Storage
from gateway.schedule import Scheduler
from gateway.server import Gateway, GatewayConfig, GatewayStats
from gateway.users import UserDirectory

GC_GEN0_THRESHOLD = 2_000
"""Allocations between young collections while serving (CPython's default is 700).

A young collection stops the loop for as long as it walks what survived since the last one:
at 50,000 orders/s (``bench.gateway.run_latency``) 1.5-2.0 ms each with 10,000 (four per
4 s run, every order in flight then late by as much), ~0.3 ms with 2,000, for the same server
CPU per order in-process (``run_inprocess``: 4.7 us at batches of 250, 4.2-4.3 us at 1,000,
either way)."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else the standard one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is an optional dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def run(
    data_dir: str | Path,
    users: UserDirectory,
    config: GatewayConfig,
    *,
    market: MarketDefinition | None = None,
    durability: str = "batch",
    sync_interval_s: float = 0.05,
    snapshot_every_events: int | None = DEFAULT_SNAPSHOT_EVERY_EVENTS,
    ready: Callable[[Gateway], None] | None = None,
    handle_signals: bool = True,
    prepare: Callable[[Sequencer], None] | None = None,
    fix_port: int | None = None,
    schedule: bool = False,
    local_clock: Callable[[], datetime.datetime] | None = None,
    storage: Storage = OS_STORAGE,
    read_only: str | None = None,
) -> GatewayStats:
    """Serve until shut down.

    Parameters
    ----------
    data_dir : str or Path
        The exchange's data directory (created with ``market`` if new, else recovered).
    users : UserDirectory
    config : GatewayConfig
    market : MarketDefinition, optional
        Required to create a new data directory; must match a recovered one.
    durability : str
        ``"batch"`` (sync before every acknowledgement), ``"interval"`` or ``"none"``.
    ready : callable, optional
        Called with the gateway once it listens.
    handle_signals : bool
        Install SIGTERM/SIGINT handlers that start a graceful shutdown (main thread only).
    prepare : callable, optional
        Called with the recovered exchange before the gateway is built (a replicated node
        connects to its stream here: ``ReplicatedNode.service_options``).
    fix_port : int, optional
        Also accept FIX 4.4 sessions on this port (0: a free one; ``Gateway.fix_port``).
    schedule : bool
        Run the trading day by the market's schedule (``gateway.schedule``: sessions opened
        and closed, phases moved, as the clock crosses their local times).  Off by default
        (tests, the demo); ``cets serve`` turns it on unless ``--no-schedule``.
    local_clock : callable, optional
        The market's local time now, for the schedule (default: the wall clock).
    storage : Storage
        The log writer's file operations (``engine.durable.storage``).
    read_only : str, optional
        Listen as a follower of a replicated exchange: every request that would be sequenced
        is refused ``NOT_PRIMARY`` with this text until ``Gateway.set_read_only(None)`` (the
        node became the primary; the schedule starts then).

    Returns
    -------
    GatewayStats
        The gateway's counters and its own latency, at shutdown.
    """
    exchange = Sequencer.open(
        data_dir,
        market,
        durability=durability,
        sync_interval_s=sync_interval_s,
        snapshot_every_events=snapshot_every_events,
        storage=storage,
    )
    thresholds = gc.get_threshold()
    try:
        if prepare is not None:
            prepare(exchange)
        fix = None
        if fix_port is not None:
            from gateway.fix.acceptor import FixConfig

            fix = FixConfig(port=fix_port)
        scheduler = Scheduler(exchange.market) if schedule else None
        gateway = Gateway(exchange, users, config, scheduler, local_clock, fix=fix)
        gateway.set_read_only(read_only)
        await gateway.start()
        # Imports and recovery made ~10^5 long-lived objects; out of the collector's sight,
        # a full collection later walks only what the gateway allocates (milliseconds, not tens).
        gc.freeze()
        # A batch of 1,000 orders allocates ~10^4 short-lived containers (records, rows,
        # reports) that are all garbage by the batch's end: the default gen-0 threshold (700)
        # ran ~15 young collections a batch, each walking the batch's live objects; a much
        # higher one makes each collection a pause of milliseconds (GC_GEN0_THRESHOLD).
        gc.set_threshold(GC_GEN0_THRESHOLD, *thresholds[1:])
        loop = asyncio.get_running_loop()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, gateway.request_shutdown)
        if ready is not None:
            ready(gateway)
        try:
            await gateway.wait_stopped()
        finally:
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
        return gateway.stats()
    finally:
        gc.set_threshold(*thresholds)
        exchange.close()


def serve(data_dir: str | Path, users: UserDirectory, config: GatewayConfig, **kw) -> GatewayStats:
    """:func:`run` on a fresh (uv)loop, from synchronous code; returns after shutdown."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(run(data_dir, users, config, **kw))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class ServerThread:
    """A real gateway on a loopback port, served from a background thread.

    Parameters are those of :func:`run` (signals are never handled on a thread; ``ready`` is
    called on the server's loop before :meth:`start` returns).

    Examples
    --------
    >>> config = GatewayConfig(port=0)
    >>> with ServerThread(data_dir, users, config, market=m) as server:  # doctest: +SKIP
    ...     client = SyncClient("127.0.0.1", server.port, "alice", "secret")
    """

    def __init__(
        self, data_dir: str | Path, users: UserDirectory, config: GatewayConfig, **kw
    ) -> None:
        self._args = (data_dir, users, config)
        self._then_ready: Callable[[Gateway], None] | None = kw.pop("ready", None)
        self._kw = kw
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.gateway: Gateway | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="gateway", daemon=True)

    @property
    def port(self) -> int:
        assert self.gateway is not None
        return self.gateway.port

    @property
    def fix_port(self) -> int:
        """The FIX port (0 unless started with ``fix_port``)."""
        assert self.gateway is not None
        return self.gateway.fix_port

    def _on_ready(self, gateway: Gateway) -> None:
        self.gateway = gateway
        try:
            if self._then_ready is not None:
                self._then_ready(gateway)
        finally:
            self._ready.set()

    def _main(self) -> None:
        self.loop = new_event_loop()
        try:
            self.loop.run_until_complete(
                run(*self._args, ready=self._on_ready, handle_signals=False, **self._kw)
            )
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def start(self, timeout: float = 600.0) -> ServerThread:
        """Start the server thread and wait until it listens.  The timeout is generous: the
        first start on a machine compiles the engine's kernels (about 11 s, longer on a
        busy machine); later starts load them from Numba's cache in about a second."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the gateway did not start")
        if self._error is not None:
            raise RuntimeError("the gateway failed to start") from self._error
        return self

    def call(self, function: Callable, *args, timeout: float = 10.0):
        """Run ``function(*args)`` on the server's loop and return its result."""
        import concurrent.futures

        future: concurrent.futures.Future = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return future.result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown; returns when the exchange is closed."""
        if self._thread.is_alive() and self.gateway is not None:
            self.loop.call_soon_threadsafe(self.gateway.request_shutdown)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the gateway did not stop")
        if self._error is not None:
            raise RuntimeError("the gateway failed") from self._error

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

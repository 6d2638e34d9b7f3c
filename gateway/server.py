"""The TCP gateway's asyncio adapter: sockets, timers, logon threads, group commit, replay.

Theory of operation
-------------------
All the session logic lives in :class:`gateway.core.GatewayCore` and :class:`gateway.session.
Session` (sans-I/O: bytes and times in, frames and engine records out).  This module is the
thin layer that does the I/O around them.  One asyncio event loop (uvloop when installed) owns
the :class:`~engine.durable.sequencer.Sequencer`.  Each connection is an
:class:`asyncio.Protocol` (:class:`Connection`) whose ``data_received`` hands the bytes and
``loop.time()`` to its session; the core turns complete requests into engine records in its
*pending batch* - nothing is sent yet.  The first request of a batch schedules
:meth:`Gateway._flush` with ``call_soon``, which runs after every connection that had data in
this turn of the loop was read: the *group commit*, frames that arrive together from all
connections become one ``Sequencer.submit_records`` (one log record, one sync).  While a batch
is being made durable the loop is blocked, and whatever arrives meanwhile forms the next batch:
the batch size adapts to the load by itself (smart batching).

The core routes a batch's events, the Acks and market data into the sessions' outbound
buffers *while the log's sync is under way* (``submit_records``' ``prepare``, called once the
device was told to start writing the batch: the routing's CPU overlaps the transfer, and the
``fdatasync`` afterwards waits only for the rest).  Nothing of it is written before
``submit_records`` returns (durable under the exchange's policy); the adapter then writes each
connection's frames with one ``transport.write``, batch by batch, in log order.  If the sync
fails instead, the routed frames are dropped and every requester of the batch is told the
outcome is unknown.

Limits (``engine.core.limits``, overridable downwards in :class:`GatewayConfig`) are enforced by
the core, except the outbound queue per connection, which is the transport's: when the socket's
buffer is full, frames wait in a backlog; a backlog above its frame limit disconnects the slow
reader instead of growing memory.  Logons are verified on a thread pool (slow hashes), at most
``logons_in_flight_max`` at a time, while the session's reading is paused.

Fairness between connections: a session handles at most one turn's budget of frames per
callback (``gateway.session.TURN_UNITS``); a session that stops with frames left is put on
the *deferred* list and resumed by a ``call_soon`` callback, i.e. after the loop has polled the
sockets again and every other connection had its turn.  A connection whose unprocessed input
grows past :data:`READ_PAUSE_BYTES` stops being read until it is worked down (TCP then pushes
back on the sender).

A session's durable stream (execution reports, event reports, drop copy) is a function of the
log, so a client that logs on with ``resume_from_seq`` gets it replayed from the log
(``gateway.resend``) before live traffic, even across gateway restarts.  The replay is a
background task: the private engine is restored on a worker thread, then the log is applied
and turned into frames in slices of at most :data:`REPLAY_SLICE_S` of the loop's time each.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime
import itertools
import logging
import socket
import time
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING

import msgspec

from engine.core import limits
from engine.core.records import E_SEQ
from engine.durable import journal as jr
from gateway import protocol as p
from gateway import resend, schedule
from gateway.core import BATCH_MAX, GatewayConfig, GatewayCore, submit_record
from gateway.orders import OrderTracker
from gateway.reports import messages_for
from gateway.session import Session, State
from gateway.users import User, UserDirectory

if TYPE_CHECKING:
    from gateway.fix.acceptor import FixAcceptor, FixConfig

__all__ = ["BATCH_MAX", "Connection", "Gateway", "GatewayConfig", "GatewayStats", "submit_record"]

log = logging.getLogger("gateway")

REPLAY_SLICE_S = 0.0005
"""Replay yields to the event loop after this much of its time, so live sessions keep going."""
REPLAY_CHUNK_FRAMES = 4_096
"""… or after this many frames (at most a quarter of the outbound queue limit); and it waits for
the socket to drain before the next chunk, so a replay never overflows a healthy reader."""
WRITE_BUFFER_HIGH_BYTES = 256 << 10
"""Transport buffer above which asyncio pauses us and frames go to the counted backlog."""
SOCKET_SEND_BUFFER_BYTES = 256 << 10
"""Kernel send buffer of a connection (fixed, so it cannot auto-tune to megabytes)."""
SCHEDULE_PERIOD_S = 1.0
"""How often the trading schedule's timer reads the clock."""
SCHEDULE_USER = "schedule"
"""The user the schedule's commands are annotated with in the log."""
READ_PAUSE_BYTES = 1 << 20
"""Unprocessed input of a connection above which it is not read until worked down to half."""
assert READ_PAUSE_BYTES >= 2 * limits.FRAME_BYTES_MAX, "a whole frame always fits"


class GatewayStats(msgspec.Struct, frozen=True):
    """What :meth:`Gateway.stats` reports (latencies over the last million batches)."""

    batches: int
    commands: int
    connections: int
    batch_latency_us_p50: float
    batch_latency_us_p99: float
    batch_latency_us_p999: float
    batch_latency_us_max: float
    sync_us_p50: float = 0.0
    """The log's ``fdatasync`` (``Journal.sync_seconds``, the last million): the storage's
    part of the batch latency above."""
    sync_us_p99: float = 0.0
    sync_us_p999: float = 0.0
    sync_us_max: float = 0.0
    syncs: int = 0


_ids = itertools.count(1)


# ------------------------------------------------------------------------------------------
# Connections
# ------------------------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """The transport side of one client connection: feeds its :class:`Session`, writes what
    the session queued (or holds it during a replay, or backlogs it while the socket is full).
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.closing = False
        """The transport was told to close (after the session went CLOSING)."""
        self.paused = False
        self.drained = asyncio.Event()
        """Set while the transport accepts writes (replay waits on it between chunks)."""
        self.drained.set()
        self.backlog: list = []
        self.backlog_frames = 0
        self.replaying = False
        self.held: list = []
        self.held_frames = 0
        self.replay_task: asyncio.Task | None = None
        self.deferred = False
        """On the gateway's list of sessions to resume next turn."""
        self.read_paused = False
        """Reading paused because too much input waits unprocessed."""

    @property
    def id(self) -> int:
        return self.session.id

    @property
    def state(self) -> State:
        return self.session.state

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH_BYTES)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER_BYTES)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.gw._connected(self)

    def data_received(self, data: bytes) -> None:
        gateway, session = self.gw, self.session
        if session.state >= State.CLOSING:
            return
        if gateway._batch_started is None:
            started = time.monotonic()
        session.receive_data(data, gateway.loop.time())
        if gateway._batch_started is None and gateway.core.has_batch:
            gateway._batch_started = started
        gateway._after_io(session)

    def open_session(self, core: GatewayCore, session_id: int, now: float) -> Session:
        """The session of a new connection (a FIX connection opens a FIX session)."""
        return core.open_session(session_id, now)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.drained.set()
        self.gw._disconnected(self)

    def pause_writing(self) -> None:
        self.paused = True
        self.drained.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.drained.set()
        if self.backlog and self.session.state < State.CLOSED:
            data, self.backlog, self.backlog_frames = b"".join(self.backlog), [], 0
            self.transport.write(data)

    # -- output --------------------------------------------------------------------------------
    def flush_out(self) -> None:
        """Hand the frames the session queued to the socket (or hold them during replay);
        close the transport once the session is closing."""
        session = self.session
        if session.state is State.CLOSING and not self.closing:
            self._close()
            return
        data, frames = session.take_output()
        if not data or session.state is State.CLOSED:
            return
        if self.replaying:
            self.held.append(data)
            self.held_frames += frames
            self._check_queue()
        else:
            self.write(data, frames)

    def write(self, data, frames: int) -> None:
        """Write now, or into the backlog while the transport is paused."""
        if self.session.state is State.CLOSED:
            return
        self.session.last_sent = self.gw.loop.time()
        if self.paused:
            self.backlog.append(data)
            self.backlog_frames += frames
            self._check_queue()
        else:
            self.transport.write(data)

    def _check_queue(self) -> None:
        if self.backlog_frames + self.held_frames > self.gw.config.outbound_queue_frames:
            log.warning("connection %d: slow consumer, disconnected", self.id)
            self.session.state = State.CLOSING
            self.closing = True
            self.transport.abort()

    def end_replay(self) -> None:
        """After ReplayComplete: release the live frames held during the replay."""
        self.replaying = False
        held, frames = self.held, self.held_frames
        self.held, self.held_frames = [], 0
        if held:
            self.write(b"".join(held), frames)

    def _close(self) -> None:
        """The session is closing: write what is queued, then close the transport."""
        self.closing = True
        if self.replaying:  # the replay is cut short: the client resumes again later
            self.replaying = False
            self.held, self.held_frames = [], 0
            if self.replay_task is not None:
                self.replay_task.cancel()
        data, frames = self.session.take_output()
        if data:
            self.write(data, frames)
        if self.backlog:
            self.transport.write(b"".join(self.backlog))
            self.backlog, self.backlog_frames = [], 0
        self.transport.close()


# ------------------------------------------------------------------------------------------
# The gateway
# ------------------------------------------------------------------------------------------


class Gateway:
    """The server around one open :class:`~engine.durable.sequencer.Sequencer`.

    Parameters
    ----------
    exchange : Sequencer
        Owned by the caller, who closes it after :meth:`wait_stopped`.
    users : UserDirectory
    config : GatewayConfig
    scheduler : gateway.schedule.Scheduler, optional
        Submit the trading schedule's session and phase commands as the clock crosses their
        times (None: the operator sends them).
    local_clock : callable, optional
        The market's local time now (default: the wall clock in ``schedule.MARKET_TIME_ZONE``);
        read only by the schedule's timer.

    Examples
    --------
    >>> async def main(exchange, users):  # doctest: +SKIP
    ...     gateway = Gateway(exchange, users, GatewayConfig(port=0))
    ...     await gateway.start()
    ...     await gateway.wait_stopped()     # until shutdown() or request_shutdown()
    """

    def __init__(
        self,
        exchange,
        users: UserDirectory,
        config: GatewayConfig | None = None,
        scheduler: schedule.Scheduler | None = None,
        local_clock: Callable[[], datetime.datetime] | None = None,
        fix: FixConfig | None = None,
    ):
        self.exchange = exchange
        self.scheduler = scheduler
        """Moves the trading day by the market's schedule (None: the operator does)."""
        self._local_clock = local_clock or _market_local_now
        self._schedule_handle: asyncio.TimerHandle | None = None
        self.users = users
        self.config = (config or GatewayConfig()).check()
        self.core = GatewayCore(exchange, self.config, OrderTracker.recover(exchange))
        self.connections: set[Connection] = set()
        self._flush_handle: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._logons_in_flight = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._server: asyncio.Server | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._sync_handle: asyncio.TimerHandle | None = None
        """Under ``interval`` durability: the timer that syncs the log's last batches."""
        self._deferred: list[Session] = []
        """Sessions that spent their turn with frames left (see :meth:`_pace`)."""
        self._resume_handle: asyncio.Handle | None = None
        self.stopping = False
        self.closed = False
        """Shut down: nothing more is submitted (the owner closes the exchange next)."""
        self.port = 0
        self.batches = 0
        self.commands_submitted = 0
        self._batch_started: float | None = None
        """``time.monotonic()`` when the first request of the pending batch was being read."""
        self._batch_latency_s: collections.deque = collections.deque(maxlen=1_000_000)
        self.fix_config = fix
        self.fix_acceptor: FixAcceptor | None = None
        self.fix_port = 0
        self._fix_server: asyncio.Server | None = None

    @property
    def failure(self) -> BaseException | None:
        """Why the exchange failed (None while it works)."""
        return self.core.failure

    @property
    def drop_copies(self) -> set[Session]:
        return self.core.drop_copies

    @property
    def tracker(self) -> OrderTracker:
        return self.core.tracker

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> int:
        """Bind and start accepting; returns the port."""
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.config.logons_in_flight_max, thread_name_prefix="gateway-logon"
        )
        self._server = await self.loop.create_server(
            lambda: Connection(self), self.config.host, self.config.port, backlog=512
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.fix_config is not None:
            await self._start_fix(self.fix_config)
        self._schedule_tick()
        if self.core.read_only is None:
            self._start_schedule_if_any()
        log.info("gateway listening on %s:%d", self.config.host, self.port)
        return self.port

    def _start_schedule_if_any(self) -> None:
        if self.scheduler is not None and self.scheduler.has_schedule():
            self._start_schedule()

    # -- replication (gateway.replication: a follower's gateway) ------------------------------
    def set_read_only(self, reason: str | None) -> None:
        """Refuse every request that would be sequenced with ``Reject(NOT_PRIMARY, reason)``
        (a follower), or take them again (``None``: this node became the primary; the trading
        schedule, if any, starts now).  Sessions stay connected either way."""
        was_read_only = self.core.read_only is not None
        self.core.read_only = reason
        if was_read_only and reason is None and self._server is not None:
            self._start_schedule_if_any()

    def publish_applied(self, batch, events) -> None:
        """Route a batch that was applied outside this gateway - a follower's replicated batch
        (``Sequencer.apply_replicated``) - through the same fan-out as the gateway's own
        batches: reports to the accounts' sessions, drop copy, market data, FIX."""
        self.core.batch_committed(batch, events)
        if self.fix_acceptor is not None:
            self.fix_acceptor.batch_committed(events)
        self._write_dirty()
        self._after_batches()

    async def _start_fix(self, fix: FixConfig) -> None:
        """Listen for FIX 4.4 connections too (``gateway.fix``), on the same host."""
        from gateway.fix.acceptor import FixAcceptor, FixConnection

        self.fix_acceptor = FixAcceptor(self.exchange, fix)
        self._fix_server = await self.loop.create_server(
            lambda: FixConnection(self), self.config.host, fix.port, backlog=512
        )
        self.fix_port = self._fix_server.sockets[0].getsockname()[1]
        log.info("FIX 4.4 acceptor listening on %s:%d", self.config.host, self.fix_port)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def request_shutdown(self) -> None:
        """Start a graceful shutdown (safe to call from a signal handler or callback)."""
        if not self.stopping:
            self._spawn(self.shutdown())

    async def shutdown(self) -> None:
        """Stop accepting, answer what is pending, say Logout, drain, close.  Idempotent."""
        if self.stopping:
            await self._stopped.wait()
            return
        self.stopping = self.core.stopping = True
        self._server.close()
        if self._fix_server is not None:
            self._fix_server.close()
        self._flush()
        if self.core.failure is None:  # interval: the log durable before the sessions close,
            self._sync_log(force=True)  # so that a FIX store closed at logout is synced too
        self.core.shutdown()
        self._write_dirty()
        deadline = self.loop.time() + self.config.shutdown_drain_s
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.transport.abort()
        await asyncio.sleep(0)
        self._flush()  # cancel-on-disconnect of the sessions that just ended
        await self._server.wait_closed()
        if self._fix_server is not None:
            await self._fix_server.wait_closed()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self._schedule_handle is not None:
            self._schedule_handle.cancel()
        if self._sync_handle is not None:
            self._sync_handle.cancel()  # the exchange's close syncs what is left
        for task in list(self._tasks):
            task.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.closed = self.core.closed = True
        self._stopped.set()

    def _spawn(self, coroutine) -> asyncio.Task:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- connections ---------------------------------------------------------------------------
    def _connected(self, connection: Connection) -> None:
        connection.session = session = connection.open_session(
            self.core, next(_ids), self.loop.time()
        )
        session.owner = connection
        self.connections.add(connection)
        self._write_dirty()

    def _disconnected(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if connection.replay_task is not None:
            connection.replay_task.cancel()
        self.core.session_closed(connection.session)
        self._after_io(None)

    def _after_io(self, session: Session | None) -> None:
        """End of a callback: start the logons asked for, sequence a full batch at once (then
        let the session read on), defer a session that spent its turn, schedule the batch,
        write what was queued."""
        core = self.core
        if core.logons:
            self._start_logons()
        while core.sealed and core.failure is None and not self.closed:
            self._flush()
            if session is not None and session.state is State.ACTIVE and not session.yielded:
                session.process()
                if core.logons:
                    self._start_logons()
        if session is not None:
            self._pace(session)
        if core.has_batch:
            if self._batch_started is None:
                self._batch_started = time.monotonic()
            if self._flush_handle is None:
                self._flush_handle = self.loop.call_soon(self._flush)
        self._write_dirty()

    def _pace(self, session: Session) -> None:
        """Resume a session that spent its turn on a later turn; stop reading a connection
        whose unprocessed input is too large (and read it again once worked down)."""
        connection = session.owner
        if session.yielded and not connection.deferred and session.state < State.CLOSING:
            connection.deferred = True
            self._deferred.append(session)
            if self._resume_handle is None:
                self._resume_handle = self.loop.call_soon(self._resume_deferred)
        if connection.closing or session.state >= State.CLOSING:
            return
        buffered = session.reader.buffered
        if not connection.read_paused and buffered > READ_PAUSE_BYTES:
            connection.read_paused = True
            connection.transport.pause_reading()
        elif connection.read_paused and buffered <= READ_PAUSE_BYTES // 2:
            connection.read_paused = False
            if session.state is not State.LOGGING_ON:  # else the logon resumes reading
                connection.transport.resume_reading()

    def _resume_deferred(self) -> None:
        """A new turn for the sessions that spent their last one with frames left."""
        self._resume_handle = None
        sessions, self._deferred = self._deferred, []
        for session in sessions:
            session.owner.deferred = False
            if self.closed or session.state not in (State.CONNECTED, State.ACTIVE):
                continue
            if self._batch_started is None:
                started = time.monotonic()
            session.resume()
            if self._batch_started is None and self.core.has_batch:
                self._batch_started = started
            self._after_io(session)

    def _write_dirty(self) -> None:
        for session in self.core.take_dirty():
            session.owner.flush_out()

    # -- logon ---------------------------------------------------------------------------------
    def _start_logons(self) -> None:
        logons, self.core.logons = self.core.logons, []
        for session, logon in logons:
            session.owner.transport.pause_reading()
            self._spawn(self._logon(session.owner, logon))

    async def _logon(self, connection: Connection, logon: p.Logon) -> None:
        code, user = await self._authenticate(logon)
        session = connection.session
        if not self.core.complete_logon(session, logon, code, user):
            self._after_io(None)
            return
        connection.flush_out()  # LogonAccepted before anything a replay holds back
        if logon.resume_from_seq > 0:
            self._start_replay(connection, logon.resume_from_seq)
        if not connection.read_paused:
            connection.transport.resume_reading()
        if self._batch_started is None:
            started = time.monotonic()
        session.resume()
        if self._batch_started is None and self.core.has_batch:
            self._batch_started = started
        self._after_io(session)

    async def _authenticate(self, logon: p.Logon) -> tuple[p.LogonRejectCode | None, User | None]:
        code = self.core.logon_precheck(logon)
        if code is not None:
            return code, None
        if self._logons_in_flight >= self.config.logons_in_flight_max:
            return p.LogonRejectCode.BUSY, None
        self._logons_in_flight += 1
        try:
            user = await self.loop.run_in_executor(
                self._executor, self.users.authenticate, logon.user, logon.password
            )
        finally:
            self._logons_in_flight -= 1
        return (None, user) if user is not None else (p.LogonRejectCode.BAD_CREDENTIALS, None)

    # -- replay --------------------------------------------------------------------------------
    def _start_replay(self, connection: Connection, from_seq: int) -> None:
        """Capture the log's end now (synchronously), so live frames after it are held."""
        connection.replaying = True
        end = self.exchange.last_seq
        connection.replay_task = self._spawn(self._replay(connection, from_seq, end))

    async def _replay(self, connection: Connection, from_seq: int, end: int) -> None:
        """Resend the session's reports of seqs ``from_seq .. end``, then ReplayComplete; in
        slices of at most :data:`REPLAY_SLICE_S` of the loop, waiting for the socket to drain
        between them (a replay never overflows a healthy reader)."""
        out, frames, sent = bytearray(), 0, 0
        if from_seq <= end:
            start = await self.loop.run_in_executor(
                None, resend.starting_point, self.exchange, from_seq
            )
            slices = resend.event_slices(start, from_seq, end)
            chunk_frames = max(1, min(REPLAY_CHUNK_FRAMES, self.config.outbound_queue_frames // 4))
            scope, client_of = connection.session.scope, self.core.tracker.client_of
            codec = self.core.codec
            seq, index, deadline = 0, 0, perf_counter() + REPLAY_SLICE_S
            try:
                for rows, first_seq, annotations in slices:
                    for row in rows:
                        if row[E_SEQ] != seq:
                            seq, index = row[E_SEQ], 0
                        annotation = annotations[seq - first_seq]
                        for message in messages_for(
                            scope, row, index, annotation, client_of, codec
                        ):
                            p.append_frame(out, message)
                            frames += 1
                        index += 1
                    if frames >= chunk_frames or perf_counter() >= deadline:
                        sent += frames
                        connection.write(out, frames)
                        out, frames = bytearray(), 0
                        await asyncio.sleep(0)
                        while connection.paused and connection.state < State.CLOSING:
                            await connection.drained.wait()
                        if connection.state >= State.CLOSING:
                            return
                        deadline = perf_counter() + REPLAY_SLICE_S
            finally:
                slices.close()
        sent += frames
        p.append_frame(out, p.ReplayComplete(from_seq=from_seq, last_seq=end, messages=sent))
        connection.write(out, frames + 1)
        connection.end_replay()

    # -- group commit --------------------------------------------------------------------------
    def _flush(self) -> None:
        """Sequence the waiting batches (one ``submit_records`` each, normally one per turn of
        the loop).  The core routes a batch's events, Acks and market data into the sessions'
        buffers while the log's sync is under way (``submit_records``' ``prepare``); they are
        written once it returned - the batch is durable - batch by batch, in log order, and
        dropped if it raised instead."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        core = self.core
        if not core.has_batch or core.failure is not None or self.closed:
            return
        self._write_dirty()  # so that the buffers hold nothing but the batch's own answers
        batches = core.take_batches()
        for position, batch in enumerate(batches):
            routing = _Routing(core, batch)
            try:
                events = self.exchange.submit_records(
                    batch.command_records(), batch.annotation_blob(), routing
                )
            except jr.LogFullError as exc:  # nothing of it recorded (nor routed): refuse, go on
                log.error("log full, %d batches refused: %s", len(batches) - position, exc)
                self.exchange.release_claims()  # the later batches' claims go with them
                core.batches_refused(batches[position:], str(exc))
                self._write_dirty()
                self._arm_sync()  # the batches logged before it still need their sync
                return
            except Exception as exc:  # noqa: BLE001 - broken I/O: fail safe, tell everyone
                log.critical("exchange failed, shutting down: %r", exc, exc_info=exc)
                if routing.ran:
                    self._discard_unsent()  # never durable: none of its answers goes out
                core.batch_failed(batches[position:], exc)
                self._write_dirty()
                self.request_shutdown()
                return
            self.batches += 1
            self.commands_submitted += len(batch)
            if routing.error is not None:
                raise routing.error
            if self.fix_acceptor is not None:
                self.fix_acceptor.batch_committed(events)
            self._write_dirty()
        if self._batch_started is not None:
            self._batch_latency_s.append(time.monotonic() - self._batch_started)
            self._batch_started = None
        self._after_batches()

    def _discard_unsent(self) -> None:
        """Drop the frames that a batch's routing queued (its sync failed: nothing of it is
        acknowledged).  The buffers held nothing else: :meth:`_flush` wrote them first."""
        for session in self.core.take_dirty():
            session.out, session.out_frames, session.dirty = bytearray(), 0, False

    def stats(self) -> GatewayStats:
        """Counters, and the gateway's own latency: from the first request of a batch being
        decoded to the last answer of the batch handed to the sockets (the oldest request's
        time inside the gateway, sync included; not the network or the scheduler before it)."""
        latency = _percentiles_us(self._batch_latency_s)
        sync = _percentiles_us(self.exchange.journal.sync_seconds)
        return GatewayStats(
            batches=self.batches,
            commands=self.commands_submitted,
            connections=len(self.connections),
            batch_latency_us_p50=latency[0],
            batch_latency_us_p99=latency[1],
            batch_latency_us_p999=latency[2],
            batch_latency_us_max=latency[3],
            sync_us_p50=sync[0],
            sync_us_p99=sync[1],
            sync_us_p999=sync[2],
            sync_us_max=sync[3],
            syncs=len(self.exchange.journal.sync_seconds),
        )

    # -- timers --------------------------------------------------------------------------------
    def _schedule_tick(self) -> None:
        config = self.config
        period = min(config.heartbeat_interval_s, config.logon_timeout_s) / 4
        self._tick_handle = self.loop.call_later(period, self._tick)

    def _start_schedule(self) -> None:
        """Catch up with the schedule once (see ``schedule.catch_up``), then watch the clock."""
        now = self._local_clock()
        self.scheduler.due(now)  # starts the watch
        engine = self.exchange.engine
        statuses = [engine.status(symbol) for symbol in self.exchange.codec.symbols]
        self._submit_scheduled(
            schedule.catch_up(self.exchange.market, now.date(), now.time(), statuses)
        )
        self._schedule_handle = self.loop.call_later(SCHEDULE_PERIOD_S, self._schedule_timer)

    def _schedule_timer(self) -> None:
        self._submit_scheduled(self.scheduler.due(self._local_clock()))
        if not self.stopping:
            self._schedule_handle = self.loop.call_later(SCHEDULE_PERIOD_S, self._schedule_timer)

    def _submit_scheduled(self, commands: list) -> None:
        """Sequence the schedule's commands as operator commands (user ``schedule``)."""
        core = self.core
        if not commands or self.stopping or core.failure is not None:
            return
        for command in commands:
            log.info("schedule: %r", command)
            core.enqueue_operator_command(command, SCHEDULE_USER)
        self._after_io(None)

    def _after_batches(self) -> None:
        """Under ``interval``: time the log's sync, and sync the FIX stores if the log is
        durable to its end (a batch just synced it); nothing to do under the other policies."""
        self._arm_sync()
        if self.fix_acceptor is not None:
            self.fix_acceptor.sync_stores()

    def _arm_sync(self) -> None:
        """Under ``interval`` durability, time the sync of the batches written since the last
        one (``Sequencer.sync_due_in``): a batch syncs the log only once the interval has
        passed, so without this timer a quiet exchange's last batches would wait for the next
        batch to reach the device, acknowledged for longer than the policy says."""
        if self._sync_handle is not None:
            return  # armed: it re-arms itself for whatever is due after it
        due_in = self.exchange.sync_due_in()
        if due_in is not None and not self.closed:
            self._sync_handle = self.loop.call_later(max(due_in, 0.0), self._sync_timer)

    def _sync_timer(self) -> None:
        self._sync_handle = None
        if not self.closed and self.core.failure is None and self._sync_log():
            self._arm_sync()  # more came meanwhile: time its sync

    def _sync_log(self, force: bool = False) -> bool:
        """Sync the log if its sync is due (``force``: if anything waits for one at all), then
        the FIX session stores, which may follow a log durable to its end.  False when the
        sync failed: the gateway stops, as for a batch's failed sync, its queued requesters
        told the outcome is unknown."""
        if self.exchange.sync_due_in() is not None:  # else synced meanwhile, or failed (fenced)
            try:
                if force:
                    self.exchange.sync()
                else:
                    self.exchange.sync_if_due()
            except Exception as exc:  # noqa: BLE001 - broken I/O: fail safe, as _flush does
                log.critical("log sync failed, shutting down: %r", exc, exc_info=exc)
                self.core.batch_failed(self.core.take_batches(), exc)  # their outcome: unknown
                self._write_dirty()
                self.request_shutdown()
                return False
        if self.fix_acceptor is not None:
            self.fix_acceptor.sync_stores()  # after the log, which is durable to its end now
        return True

    def _tick(self) -> None:
        self.core.tick(self.loop.time())
        self._write_dirty()
        if not self.stopping:
            self._schedule_tick()


class _Routing:
    """``Sequencer.submit_records``' ``prepare`` for one batch: the core routes the batch's
    events into the sessions' buffers while the log's sync is under way.  An exception is
    kept for the caller (the exchange is not at fault)."""

    __slots__ = ("core", "batch", "ran", "error")

    def __init__(self, core: GatewayCore, batch) -> None:
        self.core, self.batch = core, batch
        self.ran = False
        self.error: Exception | None = None

    def __call__(self, events) -> None:
        self.ran = True
        try:
            self.core.batch_committed(self.batch, events)
        except Exception as exc:  # noqa: BLE001 - raised again by Gateway._flush
            self.error = exc


def _market_local_now() -> datetime.datetime:
    """The wall clock in the market's time zone, as a naive local time."""
    return datetime.datetime.now(schedule.MARKET_TIME_ZONE).replace(tzinfo=None)


def _percentiles_us(seconds) -> tuple[float, float, float, float]:
    """p50, p99, p99.9 and max of durations in seconds, in microseconds (0 when empty)."""
    values = sorted(seconds)
    if not values:
        return 0.0, 0.0, 0.0, 0.0
    last = len(values) - 1
    return tuple(
        round(values[min(last, int(q * len(values)))] * 1e6, 1) for q in (0.5, 0.99, 0.999, 1.0)
    )

"""The TCP gateway: sessions, order entry, group commit, reports, market data, shutdown.

Theory of operation
-------------------
One asyncio event loop (uvloop when installed) owns the :class:`~engine.durable.sequencer.Sequencer`.
Each connection is an :class:`asyncio.Protocol`; ``data_received`` splits frames (the length
is checked before the body is buffered), decodes them, authorises the request and turns it
into an engine command appended to the *pending batch* - nothing is sent yet.  The first
request of a batch schedules :meth:`Gateway._flush` with ``call_soon``, which runs after every
connection that had data in this turn of the loop was read: frames that arrive together from
all connections become one ``Sequencer.submit`` (one log record, one sync).  While a batch is
being made durable the loop is blocked, and whatever arrives meanwhile forms the next batch:
the batch size adapts to the load by itself (smart batching).

Only after ``submit`` returns (durable under the exchange's policy) are the events routed:
each event goes to the sessions it concerns (``gateway.reports.messages_for``), then every
request is answered by an ``Ack`` to the session that sent it, then market data is published.
A connection's outbound frames of one batch are written with one ``transport.write``.

Limits (``engine.core.limits``, overridable downwards in :class:`GatewayConfig`): frame size,
messages per second per session (token bucket; excess requests get ``Reject(THROTTLED)``),
sessions per user, open orders per account, connections, logons being verified, and the
outbound queue per connection - when the socket's buffer is full, frames wait in a backlog;
a backlog above its frame limit disconnects the slow reader instead of growing memory.

A session's durable stream (execution reports, event reports, drop copy) is a function of the
log, so a client that logs on with ``resume_from_seq`` gets it replayed from the log
(``Sequencer.events_since``) before live traffic, even across gateway restarts.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import enum
import itertools
import logging
import socket
import struct
import time

import msgspec
import numpy as np

from engine.core import limits
from engine.core import schema as s
from engine.core.records import (
    COMMAND_DTYPE,
    E_ACCOUNT,
    E_INSTRUMENT,
    E_X1,
    EV_TRADE,
    EVENT_FIELDS,
    INSTRUMENT_UNKNOWN,
    K_SUBMIT,
)
from engine.durable import journal as jr
from gateway import protocol as p
from gateway.market_data import MarketData
from gateway.orders import (
    NO_ANNOTATION,
    Annotation,
    OrderTracker,
    decode_annotation,
    encode_annotation,
)
from gateway.permissions import ASSIGNED_ID_FIELDS, GATEWAY_ASSIGNED, ROLES_BY_COMMAND, refusal
from gateway.reports import ORDER_KINDS, Scope, accounts_of, messages_for, order_report
from gateway.users import User, UserDirectory

log = logging.getLogger("gateway")
assert (E_INSTRUMENT, E_ACCOUNT, E_X1) == (3, 5, 11), "the hot path indexes event rows by number"
_encode_into = p.encoder.encode_into
_pack_length = struct.Struct(">I").pack_into
_unpack_length = struct.Struct(">I").unpack_from
_decode_client = p.client_decoder.decode

REPLAY_CHUNK_EVENTS = 2_048
"""Replay yields to the event loop after this many events, so live sessions keep going."""
REPLAY_CHUNK_FRAMES = 4_096
"""… or this many frames (at most a quarter of the outbound queue limit); and it waits for
the socket to drain before the next chunk, so a replay never overflows a healthy reader."""
WRITE_BUFFER_HIGH_BYTES = 256 << 10
"""Transport buffer above which asyncio pauses us and frames go to the counted backlog."""
SOCKET_SEND_BUFFER_BYTES = 256 << 10
"""Kernel send buffer of a connection (fixed, so it cannot auto-tune to megabytes)."""

assert 2 * limits.PRICE_LADDER_MAX_TICKS * 20 + 1024 < limits.OUTBOUND_FRAME_BYTES_MAX, (
    "a full-depth snapshot must fit one outbound frame"
)
ANNOTATION_BYTES_MAX = 4 * (limits.USER_NAME_CHARS_MAX + limits.CLIENT_ORDER_ID_CHARS_MAX) + 24
"""The largest encoded annotation (UTF-8 text: up to four bytes a character, plus framing)."""
BATCH_MAX = min(limits.BATCH_COMMANDS_MAX, jr.ANNOTATIONS_BYTES_MAX // ANNOTATION_BYTES_MAX - 1)
"""Commands the gateway puts in one batch: the engine's limit, or fewer so that the batch's
annotations always fit the log's limit for them."""
assert BATCH_MAX * ANNOTATION_BYTES_MAX + 8 < jr.ANNOTATIONS_BYTES_MAX


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Server settings; every limit defaults to (and may not exceed) ``engine.core.limits``."""

    host: str = "127.0.0.1"
    port: int = 7878
    """0 picks a free port (see :attr:`Gateway.port`)."""
    frame_bytes_max: int = limits.FRAME_BYTES_MAX
    messages_per_second: int = limits.MESSAGES_PER_SECOND_PER_SESSION
    sessions_per_user: int = limits.SESSIONS_PER_USER_MAX
    open_orders_per_account: int = limits.OPEN_ORDERS_PER_ACCOUNT_MAX
    outbound_queue_frames: int = limits.OUTBOUND_QUEUE_FRAMES_MAX
    connections_max: int = limits.CONNECTIONS_MAX
    logons_in_flight_max: int = limits.LOGONS_IN_FLIGHT_MAX
    subscriptions_per_session: int = limits.SUBSCRIPTIONS_PER_SESSION_MAX
    heartbeat_interval_s: float = limits.HEARTBEAT_INTERVAL_S
    idle_timeout_s: float = limits.IDLE_TIMEOUT_S
    logon_timeout_s: float = limits.LOGON_TIMEOUT_S
    shutdown_drain_s: float = limits.SHUTDOWN_DRAIN_S

    def check(self) -> GatewayConfig:
        """Raise ValueError unless every limit is positive and within ``engine.core.limits``."""
        ceilings = {
            "frame_bytes_max": limits.FRAME_BYTES_MAX,
            "messages_per_second": limits.MESSAGES_PER_SECOND_PER_SESSION,
            "sessions_per_user": limits.SESSIONS_PER_USER_MAX,
            "open_orders_per_account": limits.OPEN_ORDERS_PER_ACCOUNT_MAX,
            "outbound_queue_frames": limits.OUTBOUND_QUEUE_FRAMES_MAX,
            "connections_max": limits.CONNECTIONS_MAX,
            "logons_in_flight_max": limits.LOGONS_IN_FLIGHT_MAX,
            "subscriptions_per_session": limits.SUBSCRIPTIONS_PER_SESSION_MAX,
        }
        for name, ceiling in ceilings.items():
            if not 1 <= getattr(self, name) <= ceiling:
                raise ValueError(f"{name} must be 1 … {ceiling}")
        if self.frame_bytes_max < 1024:
            raise ValueError("frame_bytes_max must be at least 1024")
        if not 0 < self.heartbeat_interval_s * 2 < self.idle_timeout_s:
            raise ValueError("heartbeat_interval_s must be positive and < idle_timeout_s / 2")
        if self.logon_timeout_s <= 0 or self.shutdown_drain_s < 0 or not 0 <= self.port < 65536:
            raise ValueError("timeouts must be positive and the port 0 … 65535")
        return self


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


class State(enum.IntEnum):
    CONNECTED = 0
    LOGGING_ON = 1
    ACTIVE = 2
    CLOSING = 3
    CLOSED = 4


Origin = tuple
"""Who sent a pending command, for its Ack: (connection, request_id, order_id, client_order_id)."""


_ORDER_LEGS = (0,)
_TRADE_LEGS = (0, 1)


def submit_record(order_id: int, account: int, instrument_index: int, m: p.NewOrder) -> tuple:
    """A NewOrder as the record tuple of its ``SubmitOrder`` (``COMMAND_DTYPE`` field order).

    The hot path's shortcut for ``codec.command_tuple(SubmitOrder(...))``; the protocol has
    already range-checked every field, and the test suite holds the two equal.
    """
    return (
        0,
        0,
        order_id,
        m.price_ticks,
        m.qty_t,
        m.quote_order_id,
        account,
        instrument_index,
        K_SUBMIT,
        m.side,
        m.order_type,
        m.tif,
        m.stp,
        0,
        0,
    )


# ------------------------------------------------------------------------------------------
# Connections
# ------------------------------------------------------------------------------------------

_READING = (State.CONNECTED, State.ACTIVE)

_ids = itertools.count(1)


class Connection(asyncio.Protocol):
    """One client connection and, after logon, its session."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.id = next(_ids)
        self.transport: asyncio.Transport | None = None
        self.state = State.CONNECTED
        self.buffer = bytearray()
        now = gateway.loop.time()
        self.connected_at = self.last_received = self.last_sent = now
        self.user: User | None = None
        self.scope = Scope(user="", accounts=frozenset())
        self.user_name = ""
        """``scope.user`` (the routing loop's hot attribute)."""
        self.accounts: frozenset[int] = frozenset()
        self.only_account = -1
        self.may_submit = False
        self.cancel_on_disconnect = False
        self.live_orders: dict[int, int] = {}
        self.subscriptions: set[str] = set()
        self.tokens = float(gateway.config.messages_per_second)
        self.token_time = now
        self.out = bytearray()
        self.out_frames = 0
        self.dirty = False
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
        if self.state >= State.CLOSING:
            return
        self.last_received = self.gw.loop.time()
        self.buffer += data
        self.process()
        self.gw._after_io()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = State.CLOSED
        self.drained.set()
        self.gw._disconnected(self)

    def pause_writing(self) -> None:
        self.paused = True
        self.drained.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.drained.set()
        if self.backlog and self.state < State.CLOSED:
            data, self.backlog, self.backlog_frames = b"".join(self.backlog), [], 0
            self.transport.write(data)

    # -- input ---------------------------------------------------------------------------------
    def process(self) -> None:
        """Decode and handle the complete frames in the buffer (stops while logging on).

        A NewOrder of an active session within its rate goes straight to its handler (the
        common case); everything else through :meth:`on_message`."""
        buffer, position, end = self.buffer, 0, len(self.buffer)
        limit, unpack, decode = self.gw.config.frame_bytes_max, _unpack_length, _decode_client
        gateway, new_order, active = self.gw, p.NewOrder, State.ACTIVE
        try:
            with memoryview(buffer) as view:
                while end - position >= 4 and self.state in _READING:
                    n = unpack(buffer, position)[0]
                    if not 0 < n <= limit:
                        p.frame_length(view[position : position + 4], limit)  # raises
                    if end - position - 4 < n:
                        break
                    try:
                        message = decode(view[position + 4 : position + 4 + n])
                    except Exception:  # the FrameError that names the problem:
                        p.decode_client(view[position + 4 : position + 4 + n])
                        raise
                    position += 4 + n
                    if type(message) is new_order and self.state is active and self.take_token():
                        gateway._new_order(self, message)
                    else:
                        self.on_message(message)
        except p.FrameError as exc:
            self.protocol_error(exc.code, exc.text)
            position = end
        del buffer[:position]

    def on_message(self, message) -> None:
        t = type(message)
        if t is p.Heartbeat:
            return
        if self.state is State.CONNECTED:
            if t is p.Logon:
                self.gw._start_logon(self, message)
            else:
                self.protocol_error(
                    p.ProtocolErrorCode.NOT_LOGGED_ON, f"{t.__name__} before a successful Logon"
                )
            return
        if t is p.Logout:
            self.send(p.Logout(reason="logout acknowledged"))
            self.close()
        elif t is p.Logon:
            self.protocol_error(p.ProtocolErrorCode.UNEXPECTED_MESSAGE, "already logged on")
        elif self.take_token():
            self.gw.handlers[t](self, message)
        else:
            limit = self.gw.config.messages_per_second
            self.reject(message, p.RejectCode.THROTTLED, f"more than {limit} messages per second")

    def take_token(self) -> bool:
        """Token bucket: ``messages_per_second`` tokens a second, as many at most; the clock
        is the arrival time of the data being processed."""
        now = self.last_received
        if now != self.token_time:
            rate = self.gw.config.messages_per_second
            self.tokens = min(float(rate), self.tokens + (now - self.token_time) * rate)
            self.token_time = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    # -- output --------------------------------------------------------------------------------
    def send(self, message) -> None:
        """Queue a live message; written at the end of the current callback."""
        p.append_frame(self.out, message)
        self.out_frames += 1
        if not self.dirty:
            self.dirty = True
            self.gw._dirty.append(self)

    def reject(self, request, code: p.RejectCode, text: str) -> None:
        self.send(
            p.Reject(
                request_id=getattr(request, "request_id", 0),
                code=int(code),
                text=text,
                client_order_id=getattr(request, "client_order_id", "") or "",
            )
        )

    def flush_out(self) -> None:
        """Hand the frames queued by :meth:`send` to the socket (or hold them during replay)."""
        self.dirty = False
        if not self.out or self.state is State.CLOSED:
            self.out, self.out_frames = bytearray(), 0
            return
        data, frames = self.out, self.out_frames
        self.out, self.out_frames = bytearray(), 0
        if self.replaying:
            self.held.append(data)
            self.held_frames += frames
            self._check_queue()
        else:
            self.write(data, frames)

    def write(self, data, frames: int) -> None:
        """Write now, or into the backlog while the transport is paused."""
        if self.state is State.CLOSED:
            return
        self.last_sent = self.gw.loop.time()
        if self.paused:
            self.backlog.append(data)
            self.backlog_frames += frames
            self._check_queue()
        else:
            self.transport.write(data)

    def _check_queue(self) -> None:
        if self.backlog_frames + self.held_frames > self.gw.config.outbound_queue_frames:
            log.warning("connection %d: slow consumer, disconnected", self.id)
            self.state = State.CLOSING
            self.transport.abort()

    def end_replay(self) -> None:
        """After ReplayComplete: release the live frames held during the replay."""
        self.replaying = False
        held, frames = self.held, self.held_frames
        self.held, self.held_frames = [], 0
        if held:
            self.write(b"".join(held), frames)

    def protocol_error(self, code: p.ProtocolErrorCode, text: str) -> None:
        log.info("connection %d: protocol error %s: %s", self.id, code.name, text)
        self.send(p.ProtocolError(code=int(code), text=text[: limits.TEXT_CHARS_MAX]))
        self.close()

    def close(self) -> None:
        """Close after what is queued has been written."""
        if self.state >= State.CLOSING:
            return
        self.state = State.CLOSING
        if self.replaying:  # the replay is cut short: the client resumes again later
            self.replaying = False
            self.held, self.held_frames = [], 0
            if self.replay_task is not None:
                self.replay_task.cancel()
        self.flush_out()
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

    Examples
    --------
    >>> async def main(exchange, users):  # doctest: +SKIP
    ...     gateway = Gateway(exchange, users, GatewayConfig(port=0))
    ...     await gateway.start()
    ...     await gateway.wait_stopped()     # until shutdown() or request_shutdown()
    """

    def __init__(self, exchange, users: UserDirectory, config: GatewayConfig | None = None):
        self.exchange = exchange
        self.users = users
        self.config = (config or GatewayConfig()).check()
        self.tracker = OrderTracker.recover(exchange)
        self.codec = exchange.codec
        self._instrument_index = {symbol: i for i, symbol in enumerate(exchange.codec.symbols)}
        self._symbols = ["?", s.ALL_INSTRUMENTS, *exchange.codec.symbols]
        """Symbol by instrument index + 2 (the codec's convention: -2 unknown, -1 all)."""
        self.market_data = MarketData(exchange.engine, exchange.codec)
        self.connections: set[Connection] = set()
        self.by_user: dict[str, set[Connection]] = {}
        self.by_account: dict[int, set[Connection]] = {}
        self.drop_copies: set[Connection] = set()
        self._records: list[tuple] = []
        self._first_seq = 0
        """``exchange.next_seq`` when the pending batch began: the seq of its first command."""
        self._annotations: list[Annotation] = []
        self._origins: list[Origin | None] = []
        self._flush_handle: asyncio.Handle | None = None
        self._dirty: list[Connection] = []
        self._tasks: set[asyncio.Task] = set()
        self._logons_in_flight = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._server: asyncio.Server | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self.stopping = False
        self.closed = False
        """Shut down: nothing more is submitted (the owner closes the exchange next)."""
        self.failure: BaseException | None = None
        self.port = 0
        self.batches = 0
        self.commands_submitted = 0
        self._batch_started = 0.0
        self._batch_latency_s: collections.deque = collections.deque(maxlen=1_000_000)
        self.handlers = {
            p.NewOrder: self._new_order,
            p.CancelRequest: self._cancel,
            p.ModifyRequest: self._modify,
            p.EngineRequest: self._engine_request,
            p.Subscribe: self._subscribe,
            p.Unsubscribe: self._unsubscribe,
            p.QuotesRequest: self._quotes,
        }

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
        self._schedule_tick()
        log.info("gateway listening on %s:%d", self.config.host, self.port)
        return self.port

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
        self.stopping = True
        self._server.close()
        self._flush()
        for connection in list(self.connections):
            if connection.state is State.ACTIVE:
                connection.send(p.Logout(reason="server shutting down"))
            if connection.state < State.CLOSING:
                connection.close()
        self._write_dirty()
        deadline = self.loop.time() + self.config.shutdown_drain_s
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.transport.abort()
        await asyncio.sleep(0)
        self._flush()  # cancel-on-disconnect of the sessions that just ended
        await self._server.wait_closed()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.closed = True
        self._stopped.set()

    def _spawn(self, coroutine) -> asyncio.Task:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- connections ---------------------------------------------------------------------------
    def _connected(self, connection: Connection) -> None:
        self.connections.add(connection)
        if len(self.connections) > self.config.connections_max:
            connection.protocol_error(
                p.ProtocolErrorCode.TOO_MANY_CONNECTIONS,
                f"more than {self.config.connections_max} connections",
            )
            self._write_dirty()

    def _disconnected(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if connection.replay_task is not None:
            connection.replay_task.cancel()
        for symbol in connection.subscriptions:
            self.market_data.subscribers[symbol].discard(connection)
        if connection.user is None:
            return
        self.by_user.get(connection.user.name, set()).discard(connection)
        for account in connection.accounts:
            self.by_account.get(account, set()).discard(connection)
        self.drop_copies.discard(connection)
        if connection.cancel_on_disconnect and self.failure is None and not self.closed:
            for order_id, account in sorted(connection.live_orders.items()):
                self._enqueue(
                    self.codec.command_tuple(s.CancelOrder(order_id=order_id, account=account)),
                    Annotation(connection.user.name, 0, self.tracker.client_of.get(order_id, "")),
                    None,
                )
            connection.live_orders.clear()
        self._after_io()

    # -- logon ---------------------------------------------------------------------------------
    def _start_logon(self, connection: Connection, logon: p.Logon) -> None:
        connection.state = State.LOGGING_ON
        connection.transport.pause_reading()
        self._spawn(self._logon(connection, logon))

    async def _logon(self, connection: Connection, logon: p.Logon) -> None:
        code, user = await self._authenticate(logon)
        if connection.state is not State.LOGGING_ON:
            return  # closed while the secret was checked
        if code is None:
            code = self._session_refusal(user, logon)
        if code is not None:
            log.info("connection %d: logon of %r refused: %s", connection.id, logon.user, code.name)
            connection.send(p.LogonRejected(code=int(code), text=code.name))
            connection.close()
            return
        self._activate(connection, user, logon)
        connection.transport.resume_reading()
        connection.process()
        self._after_io()

    async def _authenticate(self, logon: p.Logon) -> tuple[p.LogonRejectCode | None, User | None]:
        if self.stopping:
            return p.LogonRejectCode.SHUTTING_DOWN, None
        if logon.protocol_version != p.PROTOCOL_VERSION:
            return p.LogonRejectCode.UNSUPPORTED_VERSION, None
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

    def _session_refusal(self, user: User, logon: p.Logon) -> p.LogonRejectCode | None:
        if self.stopping:
            return p.LogonRejectCode.SHUTTING_DOWN
        if logon.drop_copy and user.role not in (p.Role.OPERATOR, p.Role.READ_ONLY):
            return p.LogonRejectCode.NOT_PERMITTED
        if len(self.by_user.get(user.name, ())) >= self.config.sessions_per_user:
            return p.LogonRejectCode.SESSION_LIMIT
        return None

    def _activate(self, connection: Connection, user: User, logon: p.Logon) -> None:
        connection.state = State.ACTIVE
        connection.user = user
        connection.accounts = frozenset(user.accounts)
        connection.only_account = user.accounts[0] if len(user.accounts) == 1 else -1
        connection.may_submit = user.role in ROLES_BY_COMMAND[s.SubmitOrder]
        connection.scope = Scope(user.name, connection.accounts, logon.drop_copy)
        connection.user_name = user.name
        connection.cancel_on_disconnect = logon.cancel_on_disconnect
        self.by_user.setdefault(user.name, set()).add(connection)
        for account in connection.accounts:
            self.by_account.setdefault(account, set()).add(connection)
        if logon.drop_copy:
            self.drop_copies.add(connection)
        config = self.config
        connection.send(
            p.LogonAccepted(
                session_id=connection.id,
                user=user.name,
                role=user.role.value,
                accounts=sorted(connection.accounts),
                protocol_version=p.PROTOCOL_VERSION,
                heartbeat_interval_ms=int(config.heartbeat_interval_s * 1000),
                idle_timeout_ms=int(config.idle_timeout_s * 1000),
                messages_per_second=config.messages_per_second,
                frame_bytes_max=config.frame_bytes_max,
                last_seq=self.exchange.last_seq,
                resume_from_seq=logon.resume_from_seq,
                cancel_on_disconnect=logon.cancel_on_disconnect,
                drop_copy=logon.drop_copy,
            )
        )
        connection.flush_out()
        log.info("connection %d: %s logged on as %s", connection.id, user.name, user.role.value)
        if logon.resume_from_seq > 0:
            self._start_replay(connection, logon.resume_from_seq)

    # -- replay --------------------------------------------------------------------------------
    def _start_replay(self, connection: Connection, from_seq: int) -> None:
        """Capture the log's end now (synchronously), so live frames after it are held."""
        connection.replaying = True
        end = self.exchange.last_seq
        if from_seq <= end:
            events = self.exchange.events_since(from_seq)
            batches = self.exchange.journal.read(from_seq)
        else:
            events, batches = iter(()), iter(())
        connection.replay_task = self._spawn(
            self._replay(connection, from_seq, end, events, batches)
        )

    async def _replay(
        self, connection: Connection, from_seq: int, end: int, events, batches
    ) -> None:
        annotations = _AnnotationCursor(batches)
        chunk_frames = max(1, min(REPLAY_CHUNK_FRAMES, self.config.outbound_queue_frames // 4))
        out, frames, sent = bytearray(), 0, 0
        scope, client_of, codec = connection.scope, self.tracker.client_of, self.codec
        seq, index = 0, 0
        for count, event in enumerate(events, 1):
            if event.seq != seq:
                seq, index = event.seq, 0
            row = codec.event_row(event)
            for message in messages_for(scope, row, index, annotations.at(seq), client_of, codec):
                p.append_frame(out, message)
                frames += 1
            index += 1
            if frames >= chunk_frames or count % REPLAY_CHUNK_EVENTS == 0:
                sent += frames
                connection.write(out, frames)
                out, frames = bytearray(), 0
                await asyncio.sleep(0)
                while connection.paused and connection.state < State.CLOSING:
                    await connection.drained.wait()
                if connection.state >= State.CLOSING:
                    return
        sent += frames
        p.append_frame(out, p.ReplayComplete(from_seq=from_seq, last_seq=end, messages=sent))
        connection.write(out, frames + 1)
        connection.end_replay()

    # -- requests ------------------------------------------------------------------------------
    def _account_for(self, connection: Connection, account: int) -> int:
        """The account a request acts for: as named, or the user's only one (-1: ambiguous)."""
        if account == -1 and len(connection.accounts) == 1:
            return next(iter(connection.accounts))
        return account

    def _refuse(self, connection: Connection, request, command, named: int) -> bool:
        """Reject and return True if the request may not go to the engine."""
        if self.stopping or self.failure is not None:
            code = (
                p.RejectCode.SHUTTING_DOWN
                if self.failure is None
                else (p.RejectCode.EXCHANGE_UNAVAILABLE)
            )
            connection.reject(request, code, code.name)
            return True
        if command is None:
            return False
        code = refusal(connection.user.role, connection.accounts, command)
        if code is p.RejectCode.ACCOUNT_NOT_PERMITTED and named == -1:
            code = p.RejectCode.ACCOUNT_REQUIRED
        if code is not None:
            connection.reject(request, code, f"{type(command).__name__}: {code.name}")
            return True
        return False

    def _new_order(self, connection: Connection, m: p.NewOrder) -> None:
        account = m.account
        if account == -1 and len(connection.accounts) == 1:
            account = connection.only_account
        if not (connection.may_submit and account in connection.accounts):
            command = s.SubmitOrder(
                order_id=1, account=account, instrument=m.instrument, side=m.side, qty_t=m.qty_t
            )
            self._refuse(connection, m, command, m.account)
            return
        if self.stopping or self.failure is not None:
            self._refuse(connection, m, None, m.account)
            return
        tracker, client_order_id = self.tracker, m.client_order_id
        if tracker.lookup(account, client_order_id) is not None:
            connection.reject(
                m,
                p.RejectCode.DUPLICATE_CLIENT_ORDER_ID,
                f"account {account} already used {client_order_id!r}",
            )
            return
        if tracker.open_count.get(account, 0) >= self.config.open_orders_per_account:
            connection.reject(
                m,
                p.RejectCode.OPEN_ORDER_LIMIT,
                f"account {account} has {self.config.open_orders_per_account} open orders",
            )
            return
        records = self._records
        order_id = (self._first_seq if records else self.exchange.next_seq) + len(records)
        tracker.reserve(
            account,
            client_order_id,
            order_id,
            connection if connection.cancel_on_disconnect else None,
        )
        index = self._instrument_index.get(m.instrument, INSTRUMENT_UNKNOWN)
        self._enqueue(
            submit_record(order_id, account, index, m),
            Annotation(connection.user.name, m.request_id, client_order_id),
            (connection, m.request_id, order_id, client_order_id),
        )

    def _target(self, connection: Connection, m, account: int) -> int | None:
        """The engine order id a cancel/modify names (None: rejected)."""
        if bool(m.client_order_id) == bool(m.order_id):
            connection.reject(
                m, p.RejectCode.INVALID_REQUEST, "name exactly one of client_order_id and order_id"
            )
            return None
        if m.order_id:
            return m.order_id
        order_id = self.tracker.lookup(account, m.client_order_id)
        if order_id is None:
            connection.reject(
                m,
                p.RejectCode.UNKNOWN_CLIENT_ORDER_ID,
                f"account {account} never used {m.client_order_id!r}",
            )
        return order_id

    def _cancel(self, connection: Connection, m: p.CancelRequest) -> None:
        account = self._account_for(connection, m.account)
        command = s.CancelOrder(order_id=0, account=account)
        if self._refuse(connection, m, command, m.account):
            return
        order_id = self._target(connection, m, account)
        if order_id is not None:
            self._submit_for(connection, m, s.CancelOrder(order_id=order_id, account=account))

    def _modify(self, connection: Connection, m: p.ModifyRequest) -> None:
        account = self._account_for(connection, m.account)
        command = s.ModifyOrder(order_id=0, account=account, price_ticks=0, qty_t=0)
        if self._refuse(connection, m, command, m.account):
            return
        order_id = self._target(connection, m, account)
        if order_id is not None:
            self._submit_for(
                connection,
                m,
                s.ModifyOrder(
                    order_id=order_id, account=account, price_ticks=m.price_ticks, qty_t=m.qty_t
                ),
            )

    def _engine_request(self, connection: Connection, m: p.EngineRequest) -> None:
        command = m.command
        if type(command) in GATEWAY_ASSIGNED:
            connection.reject(
                m,
                p.RejectCode.INVALID_REQUEST,
                "orders are entered with NewOrder (the gateway assigns order ids)",
            )
            return
        if self._refuse(connection, m, command, 0):  # engine commands always name the account
            return
        id_field = ASSIGNED_ID_FIELDS.get(type(command))
        if id_field is not None:  # a new offer, auction or bid: its id is its seq, like orders
            records = self._records
            assigned = (self._first_seq if records else self.exchange.next_seq) + len(records)
            command = msgspec.structs.replace(command, **{id_field: assigned})
        try:
            np.array([self.codec.command_tuple(command)], dtype=COMMAND_DTYPE)
        except (OverflowError, ValueError, TypeError) as exc:
            connection.reject(m, p.RejectCode.INVALID_REQUEST, f"unrepresentable command: {exc}")
            return
        self._submit_for(connection, m, command)

    def _submit_for(self, connection: Connection, m, command) -> None:
        id_field = ASSIGNED_ID_FIELDS.get(type(command))
        if id_field is not None:
            self._enqueue(
                self.codec.command_tuple(command),
                Annotation(connection.user.name, m.request_id, ""),
                (connection, m.request_id, getattr(command, id_field), ""),
            )
            return
        order_id = getattr(command, "order_id", 0)
        client_order_id = self.tracker.client_of.get(order_id, "") if order_id else ""
        self._enqueue(
            self.codec.command_tuple(command),
            Annotation(connection.user.name, m.request_id, client_order_id),
            (connection, m.request_id, order_id, client_order_id),
        )

    def _subscribe(self, connection: Connection, m: p.Subscribe) -> None:
        watchers = self.market_data.subscribers.get(m.instrument)
        if watchers is None:
            connection.reject(m, p.RejectCode.UNKNOWN_INSTRUMENT, f"no instrument {m.instrument!r}")
            return
        if (
            m.instrument not in connection.subscriptions
            and len(connection.subscriptions) >= self.config.subscriptions_per_session
        ):
            connection.reject(
                m,
                p.RejectCode.SUBSCRIPTION_LIMIT,
                f"at most {self.config.subscriptions_per_session} subscriptions",
            )
            return
        connection.subscriptions.add(m.instrument)
        watchers.add(connection)
        connection.send(
            self.market_data.snapshot(m.instrument, m.request_id, self.exchange.last_seq)
        )

    def _quotes(self, connection: Connection, m: p.QuotesRequest) -> None:
        if m.instrument not in self.market_data.subscribers:
            connection.reject(m, p.RejectCode.UNKNOWN_INSTRUMENT, f"no instrument {m.instrument!r}")
            return
        connection.send(self.market_data.quotes(m.instrument, m.request_id, self.exchange.last_seq))

    def _unsubscribe(self, connection: Connection, m: p.Unsubscribe) -> None:
        connection.subscriptions.discard(m.instrument)
        self.market_data.subscribers.get(m.instrument, set()).discard(connection)
        connection.send(p.Unsubscribed(request_id=m.request_id, instrument=m.instrument))

    # -- batching ------------------------------------------------------------------------------
    def _enqueue(self, record: tuple, annotation: Annotation, origin: Origin | None) -> None:
        """Append one command (as its record tuple) to the pending batch."""
        if not self._records:
            self._first_seq = self.exchange.next_seq
            self._batch_started = time.monotonic()
        self._records.append(record)
        self._annotations.append(annotation)
        self._origins.append(origin)
        if len(self._records) >= BATCH_MAX:
            self._flush()

    def _after_io(self) -> None:
        """End of a callback: schedule the batch, write what was queued."""
        if self._records and self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)
        self._write_dirty()

    def _write_dirty(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush_out()

    def _flush(self) -> None:
        """Submit the pending batch; route its events, Acks and market data."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._records or self.failure is not None or self.closed:
            return
        pending, annotations, origins = self._records, self._annotations, self._origins
        self._records, self._annotations, self._origins = [], [], []
        try:
            records = np.array(pending, dtype=COMMAND_DTYPE)
            blob = jr.encode_annotations(
                [encode_annotation(a) for a in annotations], len(annotations)
            )
            events = self.exchange.submit_records(records, blob)
        except Exception as exc:  # noqa: BLE001 - broken I/O: fail safe, tell everyone
            self._exchange_failed(exc, origins)
            return
        self.batches += 1
        self.commands_submitted += len(records)
        rows = events.view(np.int64).reshape(-1, EVENT_FIELDS).tolist()
        self.tracker.apply(rows)
        self._route(int(records[0]["seq"]), rows, annotations, origins)
        self.market_data.publish(rows, int(records[-1]["seq"]), _emit)
        self._write_dirty()
        self._batch_latency_s.append(time.monotonic() - self._batch_started)

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

    def _route(self, first_seq: int, rows: list, annotations: list, origins: list) -> None:
        """Send every event of the batch to its audience, then each request's Ack.

        The fast form of :func:`gateway.reports.messages_for` (the test suite holds the live
        stream equal to its replay, which uses ``messages_for`` itself).  This loop runs for
        every report the gateway sends, so it is written flat: one function, locals only, the
        frame encoding of ``protocol.append_frame`` inlined (measured: 4.8 -> 3.0 us of routing
        per order of the throughput workload, in-process).
        """
        by_account, client_of, dirty = self.by_account, self.tracker.client_of, self._dirty
        symbols, symbol_end = self._symbols, len(self._symbols) - 2
        drop_copies, order_kinds, report = self.drop_copies, ORDER_KINDS, order_report
        encode_into, pack_length, active, ack = _encode_into, _pack_length, State.ACTIVE, p.Ack
        position, total = 0, len(rows)
        for k, annotation in enumerate(annotations):
            seq, index = first_seq + k, 0
            user, request_id = annotation.user, annotation.request_id
            while position < total:
                row = rows[position]
                if row[1] != seq:
                    break
                if row[0] not in order_kinds:
                    self._route_other_event(row, index, annotation)
                    position += 1
                    index += 1
                    continue
                instrument = row[3]
                symbol = symbols[instrument + 2] if -2 <= instrument < symbol_end else "?"
                # leg 0: the order's account (E_ACCOUNT, row[5]); a trade's leg 1: the
                # resting order's account (E_X1, row[11])
                for leg in _TRADE_LEGS if row[0] == EV_TRADE else _ORDER_LEGS:
                    connections = by_account.get(row[11] if leg else row[5])
                    if not connections:
                        continue
                    own = other = None
                    for connection in connections:
                        if leg == 0 and connection.user_name == user:
                            if own is None:
                                own = report(row, index, 0, client_of, request_id, symbol)
                            message = own
                        else:
                            if other is None:
                                other = report(row, index, leg, client_of, 0, symbol)
                            message = other
                        out = connection.out
                        start = len(out)
                        encode_into(message, out, start + 4)
                        pack_length(out, start, len(out) - start - 4)
                        connection.out_frames += 1
                        if not connection.dirty:
                            connection.dirty = True
                            dirty.append(connection)
                if drop_copies:
                    self._route_other_event(row, index, annotation, drop_copies_only=True)
                position += 1
                index += 1
            origin = origins[k]
            if origin is not None:
                connection = origin[0]
                if connection.state is active:
                    out = connection.out
                    start = len(out)
                    encode_into(ack(origin[1], seq, origin[2], origin[3]), out, start + 4)
                    pack_length(out, start, len(out) - start - 4)
                    connection.out_frames += 1
                    if not connection.dirty:
                        connection.dirty = True
                        dirty.append(connection)

    def _route_other_event(
        self, row: list, index: int, annotation: Annotation, drop_copies_only: bool = False
    ) -> None:
        audience = set(self.drop_copies)
        if not drop_copies_only:
            audience.update(self.by_user.get(annotation.user, ()))
            for account in accounts_of(self.codec.event(row)):
                audience.update(self.by_account.get(account, ()))
        for connection in audience:
            for message in messages_for(
                connection.scope, row, index, annotation, self.tracker.client_of, self.codec
            ):
                connection.send(message)

    def _exchange_failed(self, exc: BaseException, origins: list) -> None:
        log.critical("exchange failed, shutting down: %r", exc, exc_info=exc)
        self.failure = exc
        for origin in origins:
            if origin is not None and origin[0].state is State.ACTIVE:
                origin[0].send(
                    p.Reject(
                        request_id=origin[1],
                        code=int(p.RejectCode.EXCHANGE_UNAVAILABLE),
                        text="the exchange failed; outcome unknown until a resumed session replays",
                        client_order_id=origin[3],
                    )
                )
        self._write_dirty()
        self.request_shutdown()

    # -- timers --------------------------------------------------------------------------------
    def _schedule_tick(self) -> None:
        config = self.config
        period = min(config.heartbeat_interval_s, config.logon_timeout_s) / 4
        self._tick_handle = self.loop.call_later(period, self._tick)

    def _tick(self) -> None:
        now, config = self.loop.time(), self.config
        for connection in list(self.connections):
            if connection.state is State.CONNECTED:
                if now - connection.connected_at > config.logon_timeout_s:
                    connection.protocol_error(
                        p.ProtocolErrorCode.LOGON_TIMEOUT,
                        f"no Logon within {config.logon_timeout_s} s",
                    )
            elif connection.state is State.ACTIVE:
                if now - connection.last_received > config.idle_timeout_s:
                    connection.protocol_error(
                        p.ProtocolErrorCode.IDLE_TIMEOUT,
                        f"nothing received for {config.idle_timeout_s} s",
                    )
                elif now - connection.last_sent >= config.heartbeat_interval_s:
                    connection.send(p.Heartbeat())
        self._write_dirty()
        if not self.stopping:
            self._schedule_tick()


def _percentiles_us(seconds) -> tuple[float, float, float, float]:
    """p50, p99, p99.9 and max of durations in seconds, in microseconds (0 when empty)."""
    values = sorted(seconds)
    if not values:
        return 0.0, 0.0, 0.0, 0.0
    last = len(values) - 1
    return tuple(
        round(values[min(last, int(q * len(values)))] * 1e6, 1) for q in (0.5, 0.99, 0.999, 1.0)
    )


def _emit(connection: Connection, message) -> None:
    if connection.state is State.ACTIVE:
        connection.send(message)


class _AnnotationCursor:
    """Annotations of logged commands by seq, read in ascending order alongside a replay."""

    def __init__(self, batches) -> None:
        self._batches = batches
        self._batch = None
        self._items: list | None = None

    def at(self, seq: int) -> Annotation:
        batch = self._batch
        while batch is None or batch.last_seq < seq:
            batch = next(self._batches, None)
            if batch is None:
                return NO_ANNOTATION
            self._batch, self._items = batch, batch.annotations()
        if self._items is None or seq < batch.first_seq:
            return NO_ANNOTATION
        return decode_annotation(self._items[seq - batch.first_seq])

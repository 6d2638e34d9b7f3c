"""The client library: an asyncio client and a small synchronous wrapper.

Theory of operation
-------------------
:class:`Client` speaks ``docs/PROTOCOL.md`` over one connection.  Every request gets a fresh
``request_id``; the server answers it either with a ``Reject`` (refused by the gateway,
nothing happened) or with the execution/event reports it caused followed by an ``Ack``
carrying the sequence number under which it is durable.  ``await client.new_order(...)``
returns that as one :class:`Outcome`; ``client.send_new_order(...)`` only sends and returns
the request id, for pipelining, and ``await client.outcome(request_id)`` collects it later.

Every durable message (execution report, event report, drop copy) is appended to
:attr:`Client.stream` exactly once, in the server's order; ``(seq, index, leg)`` of the last
one is remembered, so :meth:`Client.reconnect` logs on with ``resume_from_seq`` and drops the
replayed messages it already has: the stream has no gap and no duplicate across reconnects
and gateway restarts.  Requests in flight when a connection drops fail with
:class:`ConnectionLost`; their outcome, if they were sequenced, arrives in the replay.

Market data: :meth:`Client.subscribe` returns the depth snapshot and keeps a :class:`Book`
per instrument current from the updates; trades and status messages are kept in lists.

A replicated exchange has one primary and followers that serve everything but order entry
(``docs/PROTOCOL.md`` §15): give the client every gateway's address.  An order-entry call
awaited with :meth:`Client.new_order`, :meth:`~Client.cancel`, :meth:`~Client.modify`,
:meth:`~Client.engine` or :meth:`~Client.mass_cancel` that a follower refuses with
``Reject(NOT_PRIMARY)`` (nothing happened) moves to the next address
(:meth:`Client.next_address`, the stream resumed there) and sends the request again, until a
gateway takes it or ``primary_wait_s`` has passed.  Pipelining callers (``send_*`` then
:meth:`Client.outcome`) see the ``NOT_PRIMARY`` outcome and call :meth:`Client.next_address`
themselves.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
from collections.abc import Callable, Sequence

import msgspec

from engine.core import limits
from engine.core import schema as s
from gateway import protocol as p

Key = tuple[int, int, int]
NOT_PRIMARY = int(p.RejectCode.NOT_PRIMARY)
PRIMARY_RETRY_PAUSE_S = 0.2
"""Pause after every address in the list has answered ``NOT_PRIMARY`` (a failover is under way:
the new primary takes orders about a lease TTL after the old one stopped)."""


class ClientError(Exception):
    """Base of the client's errors."""


class LogonError(ClientError):
    """The server refused the logon (``code`` is a :class:`~gateway.protocol.LogonRejectCode`)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"logon refused: {text} ({code})")
        self.code = code


class Refused(ClientError):
    """The gateway refused a query or subscription (``reject`` is its ``Reject``)."""

    def __init__(self, text: str, reject: p.Reject) -> None:
        super().__init__(text)
        self.reject = reject


class ConnectionLost(ClientError):
    """The connection ended before the answer arrived."""


class Outcome(msgspec.Struct):
    """The answer to one request."""

    request_id: int
    seq: int = 0
    """Sequence number of the command (0: refused by the gateway, never sequenced)."""
    order_id: int = 0
    client_order_id: str = ""
    reports: list = []
    """Execution/event reports (or drop copies) that carried this request's id."""
    reject: p.Reject | None = None

    @property
    def ok(self) -> bool:
        """Sequenced (the engine may still have rejected it: see ``reports``)."""
        return self.reject is None

    @property
    def not_primary(self) -> bool:
        """Refused by a follower of a replicated exchange: send it to the primary."""
        return self.reject is not None and self.reject.code == NOT_PRIMARY

    def exec_types(self) -> list[int]:
        return [r.exec_type for r in self.reports if type(r) is p.ExecutionReport]


class Book:
    """A local copy of one instrument's aggregated book, kept from snapshot plus updates."""

    def __init__(self, snapshot: p.DepthSnapshot) -> None:
        self.instrument = snapshot.instrument
        self.seq = snapshot.seq
        self.sides: dict[int, dict[int, tuple[int, int]]] = {
            int(s.Side.BUY): {lv.price_ticks: (lv.qty_t, lv.orders) for lv in snapshot.bids},
            int(s.Side.SELL): {lv.price_ticks: (lv.qty_t, lv.orders) for lv in snapshot.asks},
        }

    def apply(self, update: p.DepthUpdate) -> None:
        if update.seq <= self.seq:
            return
        for level in update.levels:
            side = self.sides[level.side]
            if level.qty_t == 0:
                side.pop(level.price_ticks, None)
            else:
                side[level.price_ticks] = (level.qty_t, level.orders)
        self.seq = update.seq

    def levels(self, side: int) -> list[tuple[int, int, int]]:
        """``[(price_ticks, qty_t, orders)]`` best first."""
        book = self.sides[int(side)]
        prices = sorted(book, reverse=int(side) == int(s.Side.BUY))
        return [(price, *book[price]) for price in prices]


def stream_key(message) -> Key:
    """Position of a durable message in its session's stream."""
    return (message.seq, message.index, getattr(message, "leg", 0))


class _Pending:
    __slots__ = ("future", "reports")

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future
        self.reports: list = []


def _consume(future: asyncio.Future) -> None:
    """Mark a failed future's exception as seen (it is raised again to whoever awaits it)."""
    if not future.cancelled():
        future.exception()


class _Protocol(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client
        self.reader = p.FrameReader(limits.OUTBOUND_FRAME_BYTES_MAX)
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        client = self.client
        decode = p.server_decoder.decode
        for body in self.reader.feed(data):
            client._dispatch(decode(body))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        self.client._lost(self)


class Client:
    """An asyncio client of the gateway.

    Parameters
    ----------
    host, port : str, int
    user, password : str
    cancel_on_disconnect, drop_copy : bool
        Session options sent at logon.
    on_message : callable, optional
        Called with every decoded server message (after the client's own handling).
    addresses : sequence of (host, port), optional
        The other gateways of a replicated exchange.  :meth:`connect` tries ``(host, port)``
        and then these, in order; :meth:`failover` keeps trying them all until one accepts
        the logon, and resumes the stream from the last message received.  Awaited
        order-entry calls refused ``NOT_PRIMARY`` move on to the next address (see the module
        docstring).
    primary_wait_s : float
        How long an awaited order-entry call keeps moving along the addresses while each one
        it reaches is a follower.

    Examples
    --------
    >>> client = Client("127.0.0.1", 7878, "alice", "secret")   # doctest: +SKIP
    >>> await client.connect()
    >>> outcome = await client.new_order("CEA-2024", s.Side.BUY, 1_000, 6_100)
    >>> outcome.order_id, outcome.exec_types()
    (17, [1])
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        cancel_on_disconnect: bool = False,
        drop_copy: bool = False,
        on_message: Callable | None = None,
        addresses: Sequence[tuple[str, int]] = (),
        primary_wait_s: float = 60.0,
    ) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.primary_wait_s = primary_wait_s
        self.addresses = [(host, port), *[(h, int(port)) for h, port in addresses]]
        self.cancel_on_disconnect, self.drop_copy = cancel_on_disconnect, drop_copy
        self.on_message = on_message
        self._request_ids = itertools.count(1)
        self._client_ids = itertools.count(1)
        self._prefix = secrets.token_hex(4)
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._logon: asyncio.Future | None = None
        self._pending: dict[int, _Pending] = {}
        self._snapshots: dict[int, asyncio.Future] = {}
        self._heartbeat: asyncio.Task | None = None
        self._replay_done: asyncio.Event | None = None
        self.session: p.LogonAccepted | None = None
        self.stream: list = []
        """Every durable message received, once each, in stream order."""
        self.last_key: Key = (0, -1, -1)
        self.rejects: list[p.Reject] = []
        """Rejects that matched no pending request."""
        self.books: dict[str, Book] = {}
        self.trades: list[p.Trade] = []
        self.statuses: list[p.MarketStatus] = []
        self.errors: list[p.ProtocolError] = []
        self.logouts: list[p.Logout] = []
        self.replays: list[p.ReplayComplete] = []

    # -- connection ----------------------------------------------------------------------------
    async def connect(self, resume_from_seq: int = 0, timeout: float = 10.0) -> p.LogonAccepted:
        """Connect and log on; ``resume_from_seq`` > 0 first replays the stream from there.

        Raises
        ------
        LogonError
            The server refused the logon.
        """
        loop = asyncio.get_running_loop()
        rotation = self._rotation()
        for position, (host, port) in enumerate(rotation):
            try:
                self._transport, self._protocol = await asyncio.wait_for(
                    loop.create_connection(lambda: _Protocol(self), host, port), timeout
                )
                break
            except OSError:
                if position == len(rotation) - 1:
                    raise
        self.host, self.port = host, port
        self._logon = loop.create_future()
        self._replay_done = asyncio.Event()
        self._send(
            p.Logon(
                user=self.user,
                password=self.password,
                protocol_version=p.PROTOCOL_VERSION,
                resume_from_seq=resume_from_seq,
                cancel_on_disconnect=self.cancel_on_disconnect,
                drop_copy=self.drop_copy,
            )
        )
        try:
            self.session = await asyncio.wait_for(self._logon, timeout)
        except BaseException:
            await self._abort()
            raise
        self._heartbeat = loop.create_task(self._heartbeats(self.session.heartbeat_interval_ms))
        if resume_from_seq > 0:
            await asyncio.wait_for(self._replay_done.wait(), timeout)
        return self.session

    @property
    def resume_seq(self) -> int:
        """Where a reconnect resumes: the seq of the last durable message received (the
        replay of that seq's remaining messages is deduplicated), or 1."""
        return max(self.last_key[0], 1)

    async def reconnect(self, timeout: float = 10.0) -> p.LogonAccepted:
        """Close (if needed) and log on again, replaying everything missed."""
        await self._abort()
        return await self.connect(resume_from_seq=self.resume_seq, timeout=timeout)

    def _rotation(self) -> list[tuple[str, int]]:
        """The addresses, starting with the one last connected to."""
        current = (self.host, self.port)
        if current not in self.addresses:  # host and port set by hand
            return [current, *self.addresses]
        at = self.addresses.index(current)
        return self.addresses[at:] + self.addresses[:at]

    async def failover(self, timeout: float = 60.0, pause_s: float = 0.1) -> p.LogonAccepted:
        """Reconnect to whichever gateway accepts the logon, trying every address until
        ``timeout``, and resume the stream where it stopped (no gap, no duplicate).

        Followers of a replicated exchange accept logons too (read-only: they resend the
        stream from their own log, serve market data and queries), so the gateway reached may
        be a follower; the awaited order-entry calls move on from it when it answers
        ``NOT_PRIMARY``.  During a failover the old primary refuses connections (or was
        fenced and closed them) and a follower takes orders once it holds the lease and has
        applied the whole stream; requests in flight when the connection dropped failed with
        :class:`ConnectionLost` - their outcome, if they were sequenced, is in the replay.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return await self.reconnect(timeout=max(1.0, deadline - loop.time()))
            except (OSError, ClientError, asyncio.TimeoutError):
                if loop.time() + pause_s > deadline:
                    raise
                await asyncio.sleep(pause_s)
                rotation = self._rotation()
                self.host, self.port = rotation[1 % len(rotation)]

    async def next_address(self, timeout: float = 60.0) -> p.LogonAccepted:
        """Log on at the next address of the list (or the one after, until one accepts),
        resuming the durable stream where it stopped: what to do when this gateway answered
        ``NOT_PRIMARY``.  Requests still in flight on this connection fail with
        :class:`ConnectionLost`."""
        rotation = self._rotation()
        self.host, self.port = rotation[1 % len(rotation)]
        return await self.failover(timeout)

    async def _entered(self, send: Callable[[], int]) -> Outcome:
        """Send an order-entry request and wait for its outcome; while a follower refuses it
        ``NOT_PRIMARY`` (nothing was sequenced), move to the next address and send it again."""
        outcome = await self.outcome(send())
        if not outcome.not_primary or len(self.addresses) < 2:
            return outcome
        loop = asyncio.get_running_loop()
        deadline, moves = loop.time() + self.primary_wait_s, 0
        while outcome.not_primary and loop.time() < deadline:
            moves += 1
            if moves % len(self.addresses) == 0:  # each one is a follower: a failover is on
                await asyncio.sleep(PRIMARY_RETRY_PAUSE_S)
            await self.next_address(timeout=max(1.0, deadline - loop.time()))
            outcome = await self.outcome(send())
        return outcome

    async def logout(self, timeout: float = 5.0) -> None:
        """Say Logout, wait for the server to close."""
        if self._transport is None or self._transport.is_closing():
            await self._abort()
            return
        self._send(p.Logout())
        try:
            await asyncio.wait_for(asyncio.shield(self._protocol.closed), timeout)
        except asyncio.TimeoutError:
            pass
        await self._abort()

    close = logout

    async def __aenter__(self) -> Client:
        if not self.connected:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _abort(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        transport, protocol = self._transport, self._protocol
        self._transport = None
        if transport is not None:
            transport.close()
            await asyncio.shield(protocol.closed)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait until the server closes the connection."""
        if self._protocol is not None:
            await asyncio.wait_for(asyncio.shield(self._protocol.closed), timeout)

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def _heartbeats(self, interval_ms: int) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            if self.connected:
                self._send(p.Heartbeat())

    def _send(self, message) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionLost("not connected")
        self._transport.write(p.encode(message))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests of hostile input)."""
        self._transport.write(data)

    # -- incoming ------------------------------------------------------------------------------
    def _dispatch(self, m) -> None:  # noqa: C901 - one branch per message type, flat
        t = type(m)
        if t is p.ExecutionReport or t is p.EventReport or t is p.DropCopy:
            key = (m.seq, m.index, getattr(m, "leg", 0))
            if key > self.last_key:
                self.last_key = key
                self.stream.append(m)
                pending = self._pending.get(m.request_id) if m.request_id else None
                if pending is not None:
                    pending.reports.append(m)
        elif t is p.Ack:
            pending = self._pending.get(m.request_id)
            if pending is not None and not pending.future.done():
                pending.future.set_result(
                    Outcome(m.request_id, m.seq, m.order_id, m.client_order_id, pending.reports)
                )
        elif t is p.Reject:
            pending = self._pending.get(m.request_id)
            if pending is not None and not pending.future.done():
                pending.future.set_result(
                    Outcome(m.request_id, client_order_id=m.client_order_id, reject=m)
                )
            else:
                self.rejects.append(m)
        elif t is p.DepthUpdate:
            book = self.books.get(m.instrument)
            if book is not None:
                book.apply(m)
        elif t is p.Trade:
            self.trades.append(m)
        elif t is p.MarketStatus:
            self.statuses.append(m)
        elif t is p.DepthSnapshot or t is p.Quotes or t is p.AccountState:
            if t is p.DepthSnapshot:
                self.books[m.instrument] = Book(m)
            future = self._snapshots.pop(m.request_id, None)
            if future is not None and not future.done():
                future.set_result(m)
        elif t is p.LogonAccepted or t is p.LogonRejected:
            if self._logon is not None and not self._logon.done():
                if t is p.LogonAccepted:
                    self._logon.set_result(m)
                else:
                    self._logon.set_exception(LogonError(m.code, m.text))
        elif t is p.ReplayComplete:
            self.replays.append(m)
            self._replay_done.set()
        elif t is p.ProtocolError:
            self.errors.append(m)
        elif t is p.Logout:
            self.logouts.append(m)
        if self.on_message is not None:
            self.on_message(m)

    def _lost(self, protocol: _Protocol) -> None:
        if protocol is not self._protocol:
            return
        self._transport = None
        error = ConnectionLost("connection lost")
        if self._logon is not None and not self._logon.done():
            text = self.errors[-1].text if self.errors else "connection closed"
            self._logon.set_exception(ConnectionLost(text))
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
                pending.future.add_done_callback(_consume)
        for future in self._snapshots.values():
            if not future.done():
                future.set_exception(error)
        self._snapshots.clear()

    # -- requests ------------------------------------------------------------------------------
    def next_client_order_id(self) -> str:
        return f"{self._prefix}-{next(self._client_ids)}"

    def _request(self, build: Callable[[int], object]) -> int:
        request_id = next(self._request_ids)
        self._send(build(request_id))
        self._pending[request_id] = _Pending(asyncio.get_running_loop().create_future())
        return request_id

    async def outcome(self, request_id: int, timeout: float = 10.0) -> Outcome:
        """Wait for the answer to a request sent with a ``send_*`` method.

        Answers are kept until collected here once.

        Raises
        ------
        ConnectionLost
            The connection ended before the answer (the request may still have been
            sequenced: its reports arrive in the replay after :meth:`reconnect`).
        """
        pending = self._pending.get(request_id)
        if pending is None:
            raise KeyError(f"no request {request_id} in flight (or its outcome was collected)")
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        finally:
            if pending.future.done():
                self._pending.pop(request_id, None)

    def send_new_order(
        self,
        instrument: str,
        side: int,
        qty_t: int,
        price_ticks: int = 0,
        *,
        client_order_id: str | None = None,
        order_type: int = s.OrderType.LIMIT,
        tif: int = s.TimeInForce.DAY,
        stp: int = s.StpMode.CANCEL_INCOMING,
        account: int = -1,
        quote_order_id: int = 0,
    ) -> int:
        """Send a NewOrder; returns its request id (see :meth:`outcome`).  A hit-quote order
        is ``order_type=OrderType.HIT_QUOTE`` with ``quote_order_id`` and ``tif`` IOC or FOK."""
        client_order_id = client_order_id or self.next_client_order_id()
        return self._request(
            lambda request_id: p.NewOrder(
                request_id=request_id,
                client_order_id=client_order_id,
                instrument=instrument,
                side=int(side),
                qty_t=qty_t,
                price_ticks=price_ticks,
                order_type=int(order_type),
                tif=int(tif),
                stp=int(stp),
                account=account,
                quote_order_id=quote_order_id,
            )
        )

    async def new_order(
        self, instrument: str, side: int, qty_t: int, price_ticks: int = 0, **kw
    ) -> Outcome:
        """Enter an order and wait for its outcome (reports, then the durable Ack); on a
        follower's ``NOT_PRIMARY``, again at the next address (same client order id)."""
        if not kw.get("client_order_id"):
            kw["client_order_id"] = self.next_client_order_id()
        return await self._entered(
            lambda: self.send_new_order(instrument, side, qty_t, price_ticks, **kw)
        )

    def send_cancel(
        self, *, client_order_id: str = "", order_id: int = 0, account: int = -1
    ) -> int:
        return self._request(
            lambda request_id: p.CancelRequest(
                request_id=request_id,
                client_order_id=client_order_id,
                order_id=order_id,
                account=account,
            )
        )

    async def cancel(self, **kw) -> Outcome:
        """Cancel by ``client_order_id=`` or ``order_id=`` (and ``account=`` if several)."""
        return await self._entered(lambda: self.send_cancel(**kw))

    def send_modify(
        self,
        price_ticks: int,
        qty_t: int,
        *,
        client_order_id: str = "",
        order_id: int = 0,
        account: int = -1,
    ) -> int:
        return self._request(
            lambda request_id: p.ModifyRequest(
                request_id=request_id,
                client_order_id=client_order_id,
                order_id=order_id,
                account=account,
                price_ticks=price_ticks,
                qty_t=qty_t,
            )
        )

    async def modify(self, price_ticks: int, qty_t: int, **kw) -> Outcome:
        return await self._entered(lambda: self.send_modify(price_ticks, qty_t, **kw))

    def send_engine(self, command) -> int:
        return self._request(
            lambda request_id: p.EngineRequest(request_id=request_id, command=command)
        )

    async def engine(self, command) -> Outcome:
        """Send any engine command (operator, registry, or a trader's mass cancel)."""
        return await self._entered(lambda: self.send_engine(command))

    async def mass_cancel(self, account: int, instrument: str = s.ALL_INSTRUMENTS) -> Outcome:
        return await self.engine(s.MassCancel(account=account, instrument=instrument))

    async def subscribe(self, instrument: str, timeout: float = 10.0) -> p.DepthSnapshot:
        """Subscribe to an instrument's market data; returns the snapshot.

        Raises
        ------
        ClientError
            The gateway rejected the subscription.
        """
        return await self._ask(p.Subscribe, instrument, timeout, "subscription")

    async def quotes(self, instrument: str, timeout: float = 10.0) -> p.Quotes:
        """The resting quotes of the best levels (order ids to name in a hit-quote order).

        Raises
        ------
        ClientError
            The gateway rejected the request.
        """
        return await self._ask(p.QuotesRequest, instrument, timeout, "quotes request")

    async def account(self, account: int = -1, timeout: float = 10.0) -> p.AccountState:
        """An account's cash, holdings and open orders (``-1``: the user's only account).

        Raises
        ------
        Refused
            The gateway rejected the query (``reject.code``: ``UNKNOWN_ACCOUNT`` …).
        """
        return await self._ask_for(
            lambda request_id: p.AccountQuery(request_id=request_id, account=account),
            timeout,
            "account query",
        )

    async def _ask(self, message_type: type, instrument: str, timeout: float, what: str):
        """Send a request about an instrument answered by one message of its own."""
        return await self._ask_for(
            lambda request_id: message_type(request_id=request_id, instrument=instrument),
            timeout,
            what,
        )

    async def _ask_for(self, build: Callable[[int], object], timeout: float, what: str):
        """Send a request answered by one message of its own (or a Reject); return it."""
        request_id = next(self._request_ids)
        future = asyncio.get_running_loop().create_future()
        self._snapshots[request_id] = future
        self._pending[request_id] = _Pending(asyncio.get_running_loop().create_future())
        self._send(build(request_id))
        reject = self._pending[request_id].future
        done, _ = await asyncio.wait(
            {future, reject}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        self._pending.pop(request_id, None)
        self._snapshots.pop(request_id, None)
        if future in done:
            reject.cancel()
            return future.result()
        future.cancel()
        if reject in done and reject.result().reject is not None:
            refusal = reject.result().reject
            raise Refused(f"{what} refused: {refusal.text}", refusal)
        raise ClientError(f"no answer to the {what}")

    async def unsubscribe(self, instrument: str) -> None:
        self._send(p.Unsubscribe(request_id=next(self._request_ids), instrument=instrument))
        self.books.pop(instrument, None)


class SyncClient:
    """A synchronous wrapper: the asyncio client runs on a private background loop.

    Every coroutine method of :class:`Client` is available as a blocking method with the same
    name and arguments; attributes (``stream``, ``books``, ``session`` …) are read through.

    Examples
    --------
    >>> with SyncClient("127.0.0.1", 7878, "alice", "secret") as client:  # doctest: +SKIP
    ...     outcome = client.new_order("CEA-2024", s.Side.BUY, 1_000, 6_100)
    """

    _BLOCKING = frozenset(
        {
            "connect",
            "reconnect",
            "failover",
            "next_address",
            "logout",
            "close",
            "outcome",
            "new_order",
            "cancel",
            "modify",
            "engine",
            "mass_cancel",
            "subscribe",
            "unsubscribe",
            "wait_closed",
        }
    )

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        timeout: float = 30.0,
        connect: bool = True,
        **kw,
    ) -> None:
        self._client = None
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gateway-client", daemon=True
        )
        self._thread.start()
        self._client = self._run_sync(lambda: Client(host, port, user, password, **kw))
        if connect:
            try:
                self.connect()
            except BaseException:
                self.shutdown()
                raise

    def _run_sync(self, function: Callable):
        async def call():
            return function()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(self._timeout)

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name in self._BLOCKING:

            def blocking(*args, **kw):
                future = asyncio.run_coroutine_threadsafe(attribute(*args, **kw), self._loop)
                return future.result(self._timeout)

            return blocking
        if name.startswith("send_") or name == "next_client_order_id":
            return lambda *args, **kw: self._run_sync(lambda: attribute(*args, **kw))
        return attribute

    def shutdown(self) -> None:
        """Log out (if connected) and stop the background loop."""
        if self._loop.is_closed():
            return
        try:
            if self._client is not None and self._client.connected:
                self.logout()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

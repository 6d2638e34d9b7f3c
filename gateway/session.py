"""One client session as a sans-I/O state machine: bytes and a clock value in, frames out.

Theory of operation
-------------------
A :class:`Session` is what the gateway knows about one connection, and nothing about how the
bytes travel (the h11 pattern): :meth:`Session.receive_data` takes the bytes that arrived and
the time they arrived (a number the caller reads from its clock; the session never reads one),
splits them into frames with the protocol's one :class:`~gateway.protocol.FrameReader`,
decodes each and hands it to the :class:`~gateway.core.GatewayCore` that owns the session.
Everything the session has to say is appended, as complete frames, to its outbound buffer
:attr:`Session.out`; :meth:`Session.take_output` hands that buffer to whoever writes it.

States: CONNECTED (only a Logon is accepted) -> LOGGING_ON (reading stops while the credentials
are checked elsewhere) -> ACTIVE -> CLOSING (a ProtocolError, LogonRejected or Logout has been
queued: the transport writes what is queued and closes) -> CLOSED (the transport is gone).

Fairness: a session handles at most :data:`TURN_UNITS` units of work per call to
:meth:`Session.process` (a frame costs one unit plus one per :data:`TURN_COST_BYTES` bytes of
answer it produced at once), then stops with :attr:`Session.yielded` set; the transport calls
:meth:`Session.resume` on a later turn of its loop, after the other connections had theirs.  So
a connection that pipelines thousands of requests in one write cannot hold the loop for longer
than one turn's budget (measured: 8,000 Subscribes in one write used to delay every other
session for 28 s).

Per-session bookkeeping lives here too: the token bucket that throttles requests (its clock is
the arrival time of the data being processed; a request costs one token, more for the kinds
that are expensive to answer (:data:`REQUEST_EXTRA_TOKENS`), plus one per
:data:`ANSWER_BYTES_PER_TOKEN` bytes of the answer it produced at once, so a full-depth
snapshot costs its size and a session cannot spend its whole rate on the most expensive
request there is), the times of the last frame received and sent
(for the core's heartbeat and idle checks), the user and accounts after logon, the live orders
for cancel-on-disconnect and the market-data subscriptions.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Any

from engine.core import limits
from gateway import intake
from gateway import protocol as p
from gateway.reports import Scope

if TYPE_CHECKING:
    from gateway.core import GatewayCore
    from gateway.users import User

log = logging.getLogger("gateway")
_decode_client = p.client_decoder.decode
_NEW_ORDER_TAG = p.NewOrder.__struct_config__.tag
_KEY_AT, _FIXSTR4, _TAG_AT = p.FRAME_HEADER_BYTES + 1, 0xA4, p.FRAME_HEADER_BYTES + 6
"""Where a frame starting ``{"type": <tag>`` (a fixmap, the fixstr "type", a fixint) holds
the fixstr marker of its first key and the tag: the peek before a compiled intake run."""


TURN_UNITS = 128
"""Work a session may do per turn of the loop (see the module docstring): about a millisecond
of requests handled at most (128 orders, or ~12 QuotesRequests of a five-level book, or one
snapshot of any size; measured with ``bench gateway abuse``)."""
TURN_COST_BYTES = 16
"""Bytes of immediate answer that count as one more unit of a turn's work (making an answer
costs in proportion to its items, ~8 bytes each)."""
REQUEST_EXTRA_TOKENS: dict[type, int] = {p.QuotesRequest: 3, p.Subscribe: 3}
"""Tokens a request costs beyond the first, by type, before its answer's size: a QuotesRequest
or a Subscribe costs the server about four NewOrders' time (measured in-process: ~20 us for the
quotes of a five-level book)."""
ANSWER_BYTES_PER_TOKEN = 128
"""Bytes of immediate answer that cost one more throttle token (small answers, such as a
Reject or an Unsubscribed, cost one token as before; a five-level Quotes about two; a snapshot
of a book of ``n`` levels about ``n / 8`` more)."""


class State(enum.IntEnum):
    CONNECTED = 0
    LOGGING_ON = 1
    ACTIVE = 2
    CLOSING = 3
    CLOSED = 4


_READING = (State.CONNECTED, State.ACTIVE)
_ACTIVE = State.ACTIVE


class Session:
    """One client connection and, after logon, its session (no I/O).

    Parameters
    ----------
    core : GatewayCore
        The gateway-level state machine the session's requests go to.
    session_id : int
        Reported to the client in ``LogonAccepted``.
    now : float
        The time the connection was made (seconds, the caller's monotonic clock).
    """

    def __init__(self, core: GatewayCore, session_id: int, now: float) -> None:
        self.core = core
        self.id = session_id
        self.state = State.CONNECTED
        self.reader = p.FrameReader(core.config.frame_bytes_max)
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
        self.tokens = float(core.config.messages_per_second)
        self.token_time = now
        self.turn_units = TURN_UNITS
        """Work left in this turn (see :meth:`resume`)."""
        self.yielded = False
        """The last :meth:`process` stopped on the turn budget with frames maybe left."""
        self.out = bytearray()
        """Outbound frames queued since the last :meth:`take_output`."""
        self.out_frames = 0
        self.dirty = False
        """In the core's list of sessions with output (or a close) to hand to the transport."""
        self.owner: Any = None
        """The transport adapter's object for this session (opaque here)."""
        self._more = False

    # -- input ---------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes arrived at ``now``: buffer them and handle complete frames (a turn's worth:
        if :attr:`yielded` is then set, call :meth:`resume` on a later turn)."""
        if self.state >= State.CLOSING:
            return
        self.last_received = now
        self.reader.receive_data(data)
        if not self.yielded:  # else a resume is due: keep the order of arrival
            self.turn_units = TURN_UNITS
            self.process()

    def resume(self) -> None:
        """A new turn: handle the next frames still buffered (a turn's budget of them)."""
        self.yielded = False
        self.turn_units = TURN_UNITS
        self.process()

    def process(self) -> None:
        """Handle the complete buffered frames; stops while logging on, after a protocol error,
        when the core has sealed a full batch (the caller sequences it, then calls again) and
        when the turn's budget is spent (:attr:`yielded`)."""
        if self.state not in _READING:
            return
        try:
            if self.state is _ACTIVE and self.core.scanner is not None and intake.ready():
                self._process_orders_first()
            else:
                self.reader.drain(self._frame)
        except p.FrameError as exc:
            self.protocol_error(exc.code, exc.text)

    def _process_orders_first(self) -> None:
        """:meth:`process` for an active session: each run of plain NewOrder frames at the head
        of the input is taken by the core in one call (``GatewayCore.take_orders``, the
        compiled intake); any other frame - or an order the run stopped at - is handled the
        typed way (:meth:`_frame`), one at a time, before the next run.  The outcome is the
        typed path's, frame by frame."""
        core, reader, tag = self.core, self.reader, _NEW_ORDER_TAG
        while True:
            buffer = reader.buffer
            if len(buffer) > _TAG_AT and buffer[_TAG_AT] == tag and buffer[_KEY_AT] == _FIXSTR4:
                core.take_orders(self)  # peeked: the next frame may be a NewOrder
                if self.turn_units <= 0:
                    self.yielded = self.state in _READING
                    return
                if self.state is not _ACTIVE or core.sealed:
                    return
            self._more = False
            reader.drain(self._one_frame)
            if not self._more:
                return

    def _one_frame(self, body: memoryview) -> bool:
        """:meth:`_frame` for one frame only (remembering whether to go on in :attr:`_more`)."""
        self._more = self._frame(body)
        return False

    def _frame(self, body: memoryview) -> bool:
        """One frame's body.  A NewOrder of an active session within its rate goes straight
        to its handler (the common case); everything else through :meth:`on_message`."""
        try:
            message = _decode_client(body)
        except Exception:  # the FrameError that names the problem:
            p.decode_client(body)
            raise
        taken = False
        if type(message) is p.NewOrder and self.state is _ACTIVE:
            if self.token_time == self.last_received and self.tokens >= 1.0:
                self.tokens -= 1.0  # take_token's common case, inlined: no refill due
                taken = True
            else:
                taken = self.take_token()
        if taken:
            self.core.new_order(self, message)
            self.turn_units -= 1
        else:
            before = len(self.out)
            self.on_message(message)
            self.turn_units -= 1 + (len(self.out) - before) // TURN_COST_BYTES
        if self.turn_units <= 0:
            self.yielded = self.state in _READING
            return False
        return self.state in _READING and not self.core.sealed

    def on_message(self, message) -> None:
        t = type(message)
        if t is p.Heartbeat:
            return
        if self.state is State.CONNECTED:
            if t is p.Logon:
                self.state = State.LOGGING_ON
                self.core.logon_requested(self, message)
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
            before = len(self.out)
            self.core.handlers[t](self, message)
            answer_tokens = (len(self.out) - before) // ANSWER_BYTES_PER_TOKEN
            self.tokens -= REQUEST_EXTRA_TOKENS.get(t, 0) + answer_tokens  # may go below 0
        else:
            limit = self.core.config.messages_per_second
            self.reject(message, p.RejectCode.THROTTLED, f"more than {limit} messages per second")

    def take_token(self) -> bool:
        """Token bucket: ``messages_per_second`` tokens a second, as many at most; the clock
        is the arrival time of the data being processed.  An expensive answer is charged after
        it is made (:data:`ANSWER_BYTES_PER_TOKEN`), so the balance may be negative: the
        session then waits until it has paid."""
        now = self.last_received
        if now != self.token_time:
            rate = self.core.config.messages_per_second
            self.tokens = min(float(rate), self.tokens + (now - self.token_time) * rate)
            self.token_time = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    # -- output --------------------------------------------------------------------------------
    def send(self, message) -> None:
        """Queue a message as a frame in :attr:`out`."""
        p.append_frame(self.out, message)
        self.out_frames += 1
        if not self.dirty:
            self.dirty = True
            self.core.dirty.append(self)

    def reject(self, request, code: p.RejectCode, text: str) -> None:
        self.send(
            p.Reject(
                request_id=getattr(request, "request_id", 0),
                code=int(code),
                text=text,
                client_order_id=getattr(request, "client_order_id", "") or "",
            )
        )

    def take_output(self) -> tuple[bytearray, int]:
        """The queued frames (bytes, count), handed over: :attr:`out` starts empty again."""
        data, frames = self.out, self.out_frames
        self.out, self.out_frames, self.dirty = bytearray(), 0, False
        return data, frames

    def protocol_error(self, code: p.ProtocolErrorCode, text: str) -> None:
        """Queue a ProtocolError and close: the peer broke the protocol."""
        log.info("connection %d: protocol error %s: %s", self.id, code.name, text)
        self.send(p.ProtocolError(code=int(code), text=text[: limits.TEXT_CHARS_MAX]))
        self.close()

    def close(self) -> None:
        """Close after what is queued has been written (the transport sees CLOSING)."""
        if self.state >= State.CLOSING:
            return
        self.state = State.CLOSING
        if not self.dirty:
            self.dirty = True
            self.core.dirty.append(self)

"""A FIX 4.4 session over the gateway's core: FIX in, native requests; native reports, FIX out.

Theory of operation
-------------------
:class:`FixSession` *is* a gateway :class:`~gateway.session.Session` - the core routes to it,
authorises it, throttles it and counts it exactly like a native connection - with two
translations around the core, both without I/O (bytes and times in, bytes out):

* **In**: :meth:`receive_data` splits the stream into FIX messages (``codec.FixReader``) and
  runs the FIX session layer - Logon (A) with Username (553) / Password (554) handed to the
  core's logon path as a native ``Logon``; MsgSeqNum checks (too low without PossDupFlag:
  Logout; too high: ResendRequest, and the message is dropped until the gap is filled);
  Heartbeat, TestRequest, ResendRequest, SequenceReset, Logout; Reject (3) naming the offending
  tag; BusinessMessageReject (j) for unsupported MsgTypes.  Application messages become the
  native requests the core already understands (``NewOrder``, ``CancelRequest``,
  ``ModifyRequest``, ``EngineRequest(MassCancel)``, ``Subscribe``/``Unsubscribe``; the block
  offer messages U1-U3 of ``gateway.fix.blocks`` become ``EngineRequest`` too), each with a
  request id that this session remembers with its FIX identifiers (:class:`Request`).
* **Out**: whatever the core queues for the session (native frames in :attr:`out`, written by
  the core's routing loop) is decoded and translated, in order, into FIX messages when the
  output is taken (and right after each durable batch, so execution reports carry the order's
  figures as of their event: ``orders.OrderLedger``).  Each outbound message takes the next
  MsgSeqNum; application messages are kept in the session's ``store.FixStore`` for resends,
  administrative ones are gap-filled.  The store is written (and synced when the exchange syncs)
  before the bytes are handed to the transport.

Fairness, as the native :class:`~gateway.session.Session` (the server's pacing is shared):
:meth:`process` works at most ``TURN_UNITS`` of messages per turn and then sets
:attr:`yielded`; the server resumes it on a later turn and pauses reading while its
:attr:`reader` holds too much.  A ResendRequest (:attr:`resending`) and a Logon's catch-up of
missed reports (:attr:`catching_up`) are continued a turn's budget at a time, before any
further input, and wait while the transport's buffer is full (:attr:`output_paused`); live
output that comes during a catch-up is held and released after it, in order.

The acceptor (``gateway.fix.acceptor``) supplies the session's store, the wall clock for
SendingTime and the per-event order figures; it is the only part that touches files or time.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from engine.core import limits
from engine.core import schema as s
from engine.core.records import E_KIND, E_SEQ
from gateway import protocol as p
from gateway.fix import blocks, status
from gateway.fix import codec as c
from gateway.fix.codec import FixFieldError, FixMessage, Garbled
from gateway.fix.orders import CANCELLED, FILLED, LIVE
from gateway.reports import ORDER_KINDS, legs, messages_for, order_report
from gateway.session import TURN_UNITS, Session, State

if TYPE_CHECKING:
    from gateway.core import GatewayCore
    from gateway.fix.acceptor import FixAcceptor
    from gateway.fix.store import FixStore

log = logging.getLogger("gateway.fix")

_READING = (State.CONNECTED, State.ACTIVE)
FIX_TURN_COST_BYTES = 64
"""Bytes of immediate FIX answer that count as one more unit of a turn's work (the native
``TURN_COST_BYTES`` for FIX's longer text: a tag=value field is ~4x its binary encoding)."""
RESEND_MESSAGE_UNITS = 4
"""Turn units one resent message costs (read from the store, re-parsed and re-encoded with
PossDupFlag; measured on the loaded test machine: ~55 us for a 200-byte ExecutionReport,
against ~23 us to read and parse a NewOrderSingle before the core's own work), so a turn
resends at most ``TURN_UNITS / 4`` = 32 of them (~1-2 ms)."""
CATCH_UP_EVENT_UNITS = 4
"""Turn units a missed event's reports cost at Logon (made from the event row, encoded -
~20 us for an ExecutionReport - and stored): 32 events a turn."""
_COMP_ID = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_SIDES = {"1": int(s.Side.BUY), "2": int(s.Side.SELL)}
_SIDE_CODES = {int(s.Side.BUY): "1", int(s.Side.SELL): "2"}
_TIFS = {
    "0": int(s.TimeInForce.DAY),
    "1": int(s.TimeInForce.GTC),
    "3": int(s.TimeInForce.IOC),
    "4": int(s.TimeInForce.FOK),
}
_TIF_CODES = {value: key for key, value in _TIFS.items()}
_ORD_TYPES = {"1": int(s.OrderType.MARKET), "2": int(s.OrderType.LIMIT), "D": 4}
_ORD_TYPE_CODES = {1: "2", 2: "1", 3: "2", 4: "D"}
QUOTE_ORDER_ID = 20001
"""Custom tag: the OrderID (37) of the resting quote a hit-quote order (OrdType=D) takes."""
REJECT_CODE = 20002
"""Custom tag: the engine's ``RejectReason`` (or ``CancelReason``) code of a refusal."""
GATEWAY_REJECT_CODE = 20003
"""Custom tag: the gateway's ``RejectCode`` when the gateway refused before the engine."""
STP_MODE = 20004
"""Custom tag: NewOrderSingle's self-trade prevention (``StpMode``: 1 cancel incoming, the
default; 2 cancel resting; 3 cancel both), the native NewOrder's ``stp``."""
DROP_COPY = 20030
"""Custom Logon tag: ``Y`` makes the session a drop copy (operator and read-only users): the
ExecutionReports of every account's orders, and no order entry."""
VALID_MSG_TYPES = frozenset(
    "0 1 2 3 4 5 6 7 8 9 A B C D E F G H J K L M N P Q R S T U V W X Y Z a b c d e f g h i j "
    "k l m n o p q r s t u v w x y z AA AB AC AD AE AF AG AH AI AJ AK AL AM AN AO AP AQ AR AS "
    "AT AU AV AW AX AY AZ BA BB BC BD BE BF BG BH".split()
)
"""MsgTypes FIX 4.4 defines (others are refused with Reject, SessionRejectReason 11)."""

_ET = p.ExecType
_EXEC = {
    int(_ET.ACCEPTED): ("0", "0"),
    int(_ET.REJECTED): ("8", "8"),
    int(_ET.PARTIALLY_FILLED): ("F", "1"),
    int(_ET.FILLED): ("F", "2"),
    int(_ET.CANCELLED): ("4", "4"),
    int(_ET.EXPIRED): ("C", "C"),
    int(_ET.MODIFIED): ("5", ""),
}
"""Native exec type -> (ExecType 150, OrdStatus 39); "" = New or Partially filled."""


class Request:
    """A request this session sent to the core, remembered until it is answered."""

    __slots__ = ("kind", "cl_ord_id", "orig", "symbol", "side", "qty", "detail")

    def __init__(
        self, kind: str, cl_ord_id: str, orig: str = "", symbol: str = "", side: int = 0
    ) -> None:
        self.kind, self.cl_ord_id, self.orig, self.symbol, self.side = (
            kind,
            cl_ord_id,
            orig,
            symbol,
            side,
        )
        self.qty = 0
        self.detail = ""


class CatchUp:
    """A Logon's catch-up of missed reports, made a turn's budget at a time."""

    __slots__ = ("events", "figures", "already", "end", "position", "held", "live_seq")

    def __init__(self, events: list, figures: dict, already: tuple, end: int) -> None:
        self.events, self.figures, self.already, self.end = events, figures, already, end
        self.position = 0
        self.held: list[Any] = []
        """Live output that came meanwhile, to release in order after the last report."""
        self.live_seq = 0
        """The last durable batch's seq whose reports are held."""


class FixSession(Session):
    """One FIX connection (see the module docstring).

    Parameters
    ----------
    core : GatewayCore
    session_id : int
    now : float
        The connection's time (the caller's monotonic clock).
    acceptor : FixAcceptor
        Stores, wall clock, order figures, CompID.
    """

    def __init__(
        self, core: GatewayCore, session_id: int, now: float, acceptor: FixAcceptor
    ) -> None:
        super().__init__(core, session_id, now)
        self.acceptor = acceptor
        self.fix_reader = c.FixReader()
        self.fix_out = bytearray()
        self.fix_count = 0
        self.store: FixStore | None = None
        self.peer = ""
        self.key = ""
        self.logon_message: FixMessage | None = None
        self.requests: dict[int, Request] = {}
        self.feeds: dict[str, tuple[str, set[tuple[int, int]]]] = {}
        """Subscribed symbol -> (MDReqID, the price levels the peer was told of)."""
        self.aliases: dict[str, str] = {}
        """ClOrdID of an accepted replace -> the order's first ClOrdID (what the core knows)."""
        self.resend_asked_to = 0
        self.status_updates = True
        """Send TradingSessionStatus on every change (a request with 263=2 stops them)."""
        self._translating = False
        self.reader = self.fix_reader  # type: ignore[assignment]  # the transport's pacing
        self.resending: list | None = None
        """A ResendRequest being answered a turn's budget at a time: [next seq, EndSeqNo,
        first seq of the pending gap (0: none)]; input waits until it is done."""
        self.catching_up: CatchUp | None = None
        """A Logon's catch-up of missed reports under way (input waits until it is done)."""
        self.output_paused = False
        """The transport's buffer is full (``FixConnection``): a resend or a catch-up waits for
        it to drain."""
        self._handlers = {
            "0": _ignore,
            "3": _ignore,
            "1": self._test_request,
            "2": self._resend_request,
            "4": self._sequence_reset,
            "5": self._logout,
            "A": self._second_logon,
            "D": self._new_order,
            "F": self._cancel,
            "G": self._replace,
            "q": self._mass_cancel,
            "V": self._market_data_request,
            "x": self._security_list_request,
            "g": self._trading_session_status_request,
            "U1": lambda m: blocks.new_offer(self, m),
            "U2": lambda m: blocks.accept_offer(self, m),
            "U3": lambda m: blocks.cancel_offer(self, m),
        }

    # ------------------------------------------------------------------------------------------
    # Input
    # ------------------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes arrived at ``now``: buffer them and handle complete messages, a turn's worth
        (as the native session: if :attr:`yielded` is then set, :meth:`resume` on a later
        turn)."""
        if self.state >= State.CLOSING:
            return
        self.last_received = now
        self.fix_reader.receive_data(data)
        if not self.yielded:  # else a resume is due: keep the order of arrival
            self.turn_units = TURN_UNITS
            self.process()

    def process(self) -> None:
        """Handle the buffered messages; stops while logging on, once closing, when the core
        has sealed a full batch (the caller sequences it, then calls again), when the turn's
        budget is spent (:attr:`yielded`: a message costs one unit plus one per
        :data:`FIX_TURN_COST_BYTES` of answer it produced at once) and while a catch-up of
        missed reports or a resend waits for the transport to drain
        (:meth:`output_drained`); input waits until they are done."""
        while self.state in _READING and not self.core.sealed:
            if self.turn_units <= 0:
                self.yielded = True
                return
            if self.catching_up is not None:
                self._go_on_catching_up()
                if self.catching_up is not None and self.output_paused:
                    return  # output_drained() resumes
                continue
            if self.resending is not None:
                self._go_on_resending()
                if self.resending is not None and self.output_paused:
                    return  # output_drained() resumes
                continue
            try:
                message = self.fix_reader.next()
            except Garbled as exc:
                log.info("fix connection %d: garbled message discarded: %s", self.id, exc)
                self.turn_units -= 1
                continue
            if message is None:
                return
            before = len(self.fix_out)
            self._receive(message)
            self.turn_units -= 1 + max(0, len(self.fix_out) - before) // FIX_TURN_COST_BYTES

    def output_drained(self) -> bool:
        """The transport's buffer drained: True if a resend or a catch-up was waiting for it
        (the caller then resumes this session on a later turn)."""
        self.output_paused = False
        if (self.resending is None and self.catching_up is None) or self.state not in _READING:
            return False
        self.yielded = True
        return True

    def _receive(self, message: FixMessage) -> None:
        if message.problem is not None and not message.msg_type:
            log.info("fix connection %d: message without MsgType discarded", self.id)
            return
        if self.state is State.CONNECTED:
            self._first(message)
            return
        if not self._in_sequence(message):
            return
        try:
            if message.problem is not None:
                raise FixFieldError(*message.problem)
            message.require(52)
            handler = self._handlers.get(message.msg_type)
            if handler is not None:
                handler(message)
            elif message.msg_type in VALID_MSG_TYPES:
                self._business_reject(message, 3, "unsupported MsgType")
            else:
                raise FixFieldError(35, c.INVALID_MSG_TYPE, f"invalid MsgType {message.msg_type!r}")
        except FixFieldError as exc:
            self._session_reject(message, exc.tag, exc.reason, exc.text)

    def _first(self, message: FixMessage) -> None:
        """The first message: a Logon, whose credentials go to the core's logon path."""
        if message.msg_type != "A" or message.problem is not None:
            self._logout_and_close("the first message must be a well-formed Logon (A)")
            return
        try:
            peer, target = message.require(49), message.require(56)
            message.integer(34, low=1)
            message.require(52)
            encrypt = message.integer(98)
            message.integer(108, high=3_600)
            user, password = message.require(553), message.require(554)
        except FixFieldError as exc:
            self._logout_and_close(f"Logon refused: {exc.text}")
            return
        if not _COMP_ID.fullmatch(peer):
            self._logout_and_close("SenderCompID (49) must be 1-32 of A-Z a-z 0-9 _ . -")
        elif target != self.acceptor.comp_id:
            self._logout_and_close(f"TargetCompID (56) must be {self.acceptor.comp_id}")
        elif encrypt != 0:
            self._logout_and_close("EncryptMethod (98) must be 0")
        elif not (
            1 <= len(user) <= limits.USER_NAME_CHARS_MAX
            and len(password) <= limits.SECRET_CHARS_MAX
        ):
            self._logout_and_close("Logon refused: BAD_CREDENTIALS")
        else:
            self.peer, self.key = peer, f"{peer}-{target}"
            self.logon_message = message
            self.state = State.LOGGING_ON
            logon = p.Logon(
                user=user,
                password=password,
                protocol_version=p.PROTOCOL_VERSION,
                drop_copy=message.get(DROP_COPY) == "Y",
            )
            self.core.logon_requested(self, logon)

    def _logon_accepted(self, accepted: p.LogonAccepted) -> None:
        """The core activated the session: bind the FIX session's store and check MsgSeqNum."""
        message = self.logon_message
        assert message is not None, "a LogonAccepted answers this session's Logon"
        if not self.acceptor.claim(self.key, self):
            self._logout_and_close(f"session {self.key} is already logged on")
            return
        store = self.acceptor.open_store(self.key)
        if store.user and store.user != accepted.user:
            store.close()
            self.acceptor.release(self)
            self._logout_and_close(f"SenderCompID {self.peer} belongs to another user")
            return
        self.store = store
        seq = int(message.fields[34])
        reset = message.get(141) == "Y"
        if reset:
            if seq != 1:
                self._logout_and_close("ResetSeqNumFlag=Y needs MsgSeqNum 1")
                return
            store.reset(accepted.user)
        store.bind(accepted.user)
        if seq < store.next_in:
            self._too_low(seq)
            return
        reply: list[tuple[int, object]] = [
            (98, 0),
            (108, int(self.core.config.heartbeat_interval_s)),
        ]
        self._send_admin("A", reply + ([(141, "Y")] if reset else []))
        log.info("fix connection %d: %s logged on as %s", self.id, self.key, accepted.user)
        if seq == store.next_in:
            store.received(seq)
        else:
            self._ask_resend(seq)
        board = self.acceptor.board
        for state in board.states.values():  # the market as it is, then what was missed
            self._send_app("h", board.fields(state, unsolicited=True))
        self._catch_up()

    def _catch_up(self) -> None:
        """After the Logon answer: the reports of the events since this session's reports
        were last generated (while none of its connections was logged on), regenerated from
        the exchange's log, in event order, each with a new MsgSeqNum (and stored for
        resends).  A new session starts at the log's end.  The events and their order figures
        are read now; their reports are made a turn's budget at a time
        (:meth:`_go_on_catching_up`), and until the last is made, input waits and live output
        is held back (:attr:`catching_up`)."""
        store = self.store
        assert store is not None, "a logged-on session has its store"
        end = self.core.exchange.last_seq
        if store.generated < 0 or store.generated >= end:
            store.generated = end
            return
        try:
            events = self.acceptor.missed_events(store.generated + 1, end)
            figures = self.acceptor.figures
        except Exception:  # noqa: BLE001 - a broken log or snapshot: say so, keep the server
            log.exception("fix connection %d: missed reports not regenerated", self.id)
            self._logout_and_close("missed reports could not be regenerated; try again later")
            return
        finally:
            self.acceptor.end_missed()
        log.info("fix connection %d: %d events since the last logon", self.id, len(events))
        self.catching_up = CatchUp(events, figures, store.last_report, end)

    def _go_on_catching_up(self) -> None:
        """Make the next missed reports, within the turn's budget (:data:`CATCH_UP_EVENT_UNITS`
        an event) and while the transport takes them; after the last, release the live output
        held back meanwhile, in order."""
        catch_up, store = self.catching_up, self.store
        assert catch_up is not None and store is not None, "a catch-up is under way"
        scope, client_of, codec = self.scope, self.core.tracker.client_of, self.core.codec
        events, position, already = catch_up.events, catch_up.position, catch_up.already
        self.acceptor.figures = catch_up.figures
        try:
            while position < len(events) and self.turn_units > 0 and not self.output_paused:
                row, index, annotation = events[position]
                for message in messages_for(scope, row, index, annotation, client_of, codec):
                    if (message.seq, message.index, getattr(message, "leg", 0)) > already:
                        self._native(message)
                position += 1
                self.turn_units -= CATCH_UP_EVENT_UNITS
        finally:
            self.acceptor.figures = {}
        catch_up.position = position
        if position < len(events):  # reports are made up to here: a reconnect goes on here
            store.generated = max(store.generated, events[position][0][E_SEQ] - 1)
            return
        self.catching_up = None
        store.generated = max(catch_up.end, catch_up.live_seq)
        for release in catch_up.held:
            release()

    def _in_sequence(self, message: FixMessage) -> bool:
        """The MsgSeqNum rules; True if the message is next and is to be processed."""
        store = self.store
        assert store is not None, "only a logged-on session checks sequence numbers"
        try:
            seq = message.integer(34, low=1)
        except FixFieldError as exc:
            self._logout_and_close(f"MsgSeqNum (34): {exc.text}")
            return False
        if message.get(49) != self.peer or message.get(56) != self.acceptor.comp_id:
            self._session_reject(message, 49, c.COMP_ID_PROBLEM, "CompID problem")
            self._logout_and_close("SenderCompID or TargetCompID differs from the Logon's")
            return False
        if message.msg_type == "4" and message.get(123) != "Y":
            self._reset_mode(message)
            return False
        expected = store.next_in
        if seq == expected:
            store.received(seq)
            if self.resend_asked_to and store.next_in > self.resend_asked_to:
                self.resend_asked_to = 0
            return True
        if seq > expected:
            if message.msg_type in ("2", "5"):  # answered even across a gap
                self._handlers[message.msg_type](message)
            if not self.resend_asked_to:
                self._ask_resend(seq)
            return False
        if message.get(43) == "Y":
            return False  # a possible duplicate of what was processed: ignored
        self._too_low(seq)
        return False

    def _too_low(self, seq: int) -> None:
        assert self.store is not None
        expected = self.store.next_in
        self._logout_and_close(f"MsgSeqNum too low, expecting {expected} but received {seq}")

    def _ask_resend(self, received: int) -> None:
        assert self.store is not None
        self.resend_asked_to = received
        self._send_admin("2", [(7, self.store.next_in), (16, 0)])

    # ------------------------------------------------------------------------------------------
    # Administrative messages
    # ------------------------------------------------------------------------------------------
    def _test_request(self, message: FixMessage) -> None:
        self._send_admin("0", [(112, message.require(112))])

    def _second_logon(self, message: FixMessage) -> None:
        raise FixFieldError(35, c.VALUE_INCORRECT, "already logged on")

    def _logout(self, message: FixMessage) -> None:
        if self.state is State.ACTIVE:
            self._send_admin("5", [(58, "logout acknowledged")])
        self.close()

    def _sequence_reset(self, message: FixMessage) -> None:
        """SequenceReset-GapFill (in sequence): the next expected MsgSeqNum moves forward."""
        assert self.store is not None
        new = message.integer(36, low=1)
        if new < self.store.next_in:
            raise FixFieldError(36, c.VALUE_INCORRECT, f"NewSeqNo {new} would lower MsgSeqNum")
        self.store.set_next_in(new)
        if self.resend_asked_to and new > self.resend_asked_to:
            self.resend_asked_to = 0

    def _reset_mode(self, message: FixMessage) -> None:
        """SequenceReset-Reset: MsgSeqNum is ignored; NewSeqNo may not lower the expected."""
        assert self.store is not None
        try:
            new = message.integer(36, low=1)
            if new < self.store.next_in:
                raise FixFieldError(36, c.VALUE_INCORRECT, f"NewSeqNo {new} lowers MsgSeqNum")
        except FixFieldError as exc:
            self._session_reject(message, exc.tag, exc.reason, exc.text)
            return
        self.store.set_next_in(new)
        self.resend_asked_to = 0

    def _resend_request(self, message: FixMessage) -> None:
        """Send again what was sent as ``BeginSeqNo .. EndSeqNo`` (0: everything): stored
        application messages with PossDupFlag=Y, gaps of administrative ones as
        SequenceReset-GapFill."""
        store = self.store
        assert store is not None
        begin = message.integer(7, low=1)
        end = message.integer(16, low=0)
        if end and end < begin:
            raise FixFieldError(16, c.VALUE_INCORRECT, "EndSeqNo before BeginSeqNo")
        self._translate()
        last = store.next_out - 1
        end = last if end == 0 or end > last else end
        self.resending = [begin, end, 0]
        self._go_on_resending()

    def _go_on_resending(self) -> None:
        """Resend the next messages of the ResendRequest being answered, within the turn's
        budget (:data:`RESEND_MESSAGE_UNITS` each, one per administrative seq gap-filled) and
        while the transport takes them."""
        store, resending = self.store, self.resending
        assert store is not None and resending is not None, "a resend is being answered"
        seq, end, gap, now = resending[0], resending[1], resending[2], self._now()
        while seq <= end and self.turn_units > 0 and not self.output_paused:
            raw = store.stored(seq)
            if raw is None:
                gap = gap or seq
                self.turn_units -= 1
            else:
                if gap:
                    self._queue(self._gap_fill(gap, seq, now))
                    gap = 0
                self._queue(c.restamp(raw, now))
                self.turn_units -= RESEND_MESSAGE_UNITS
            seq += 1
        if seq <= end:
            resending[0], resending[2] = seq, gap
            return
        if gap:
            self._queue(self._gap_fill(gap, end + 1, now))
        self.resending = None

    def _gap_fill(self, seq: int, new: int, now: str) -> bytes:
        fields: list[tuple[int, object]] = [(123, "Y"), (36, new)]
        return c.encode("4", seq, self.acceptor.comp_id, self.peer, now, fields, poss_dup_of=now)

    def _session_reject(self, message: FixMessage, tag: int, reason: int, text: str) -> None:
        fields: list[tuple[int, object]] = [(45, message.get(34) or "0")]
        if tag:
            fields.append((371, tag))
        if message.msg_type:
            fields.append((372, message.msg_type))
        fields += [(373, reason), (58, text[: limits.TEXT_CHARS_MAX])]
        self._send_admin("3", fields)

    def _business_reject(self, message: FixMessage, reason: int, text: str) -> None:
        fields: list[tuple[int, object]] = [
            (45, message.get(34) or "0"),
            (372, message.msg_type),
            (380, reason),
            (58, text),
        ]
        self._send_app("j", fields)

    def _logout_and_close(self, text: str) -> None:
        log.info("fix connection %d: logout: %s", self.id, text)
        self._send_admin("5", [(58, text[: limits.TEXT_CHARS_MAX])])
        self.close()

    # ------------------------------------------------------------------------------------------
    # Application messages in
    # ------------------------------------------------------------------------------------------
    def _request(self, request: Request) -> int:
        request_id = self.acceptor.next_request_id()
        self.requests[request_id] = request
        return request_id

    def _new_order(self, m: FixMessage) -> None:
        cl_ord_id = _cl_ord_id(m, 11)
        symbol, side = _symbol(m), _side(m)
        qty = m.integer(38, low=-(2**62))
        ord_type = _ORD_TYPES.get(m.require(40))
        if ord_type is None:
            raise FixFieldError(40, c.VALUE_INCORRECT, "OrdType must be 1, 2 or D")
        immediate = ord_type != int(s.OrderType.LIMIT)
        tif = _TIFS.get(m.get(59) or ("3" if immediate else "0"))
        if tif is None:
            raise FixFieldError(59, c.VALUE_INCORRECT, "TimeInForce must be 0, 1, 3 or 4")
        instructions = (m.get(18) or "").split()
        if any(code != "6" for code in instructions) or (instructions and immediate):
            raise FixFieldError(18, c.VALUE_INCORRECT, "ExecInst: only 6 on limit orders")
        if instructions:
            ord_type = int(s.OrderType.POST_ONLY)
        request = Request("D", cl_ord_id, symbol=symbol, side=side)
        request.qty = qty
        price = 0
        if ord_type in (int(s.OrderType.LIMIT), int(s.OrderType.POST_ONLY)):
            try:
                price = c.price_fen(m.require(44))
            except ValueError as exc:
                self._order_rejected(request, str(exc), 0)
                return
        quote = m.integer(QUOTE_ORDER_ID, low=1) if ord_type == 4 else 0
        stp = m.integer(STP_MODE, default=int(s.StpMode.CANCEL_INCOMING), low=1, high=3)
        self.on_message(
            p.NewOrder(
                request_id=self._request(request),
                client_order_id=cl_ord_id,
                instrument=symbol,
                side=side,
                qty_t=qty,
                price_ticks=price,
                order_type=ord_type,
                tif=tif,
                account=_account(m),
                quote_order_id=quote,
                stp=stp,
            )
        )

    def _target(self, m: FixMessage) -> tuple[str, int]:
        """(OrigClOrdID, OrderID) of a cancel/replace: the first if given, else the second."""
        orig = m.get(41)
        if orig is not None:
            return self.aliases.get(orig, _cl_ord_id(m, 41)), 0
        if m.get(37) is None:
            raise FixFieldError(41, c.REQUIRED_TAG_MISSING, "OrigClOrdID (41) or OrderID (37)")
        return "", m.integer(37, low=1)

    def _cancel(self, m: FixMessage) -> None:
        cl_ord_id = _cl_ord_id(m, 11)
        orig, order_id = self._target(m)
        request = Request("F", cl_ord_id, m.get(41) or "", m.get(55) or "", _side_or_0(m))
        self.on_message(
            p.CancelRequest(
                request_id=self._request(request),
                client_order_id=orig,
                order_id=order_id,
                account=_account(m),
            )
        )

    def _replace(self, m: FixMessage) -> None:
        """OrderQty (38) is the order's new total quantity: the open quantity asked of the
        engine is OrderQty - CumQty (as the exchange knows it when the request is judged)."""
        cl_ord_id = _cl_ord_id(m, 11)
        orig, order_id = self._target(m)
        qty = m.integer(38, low=-(2**62))
        if m.get(40) not in (None, "2"):
            raise FixFieldError(40, c.VALUE_INCORRECT, "only limit orders are replaced")
        account = _account(m)
        request = Request("G", cl_ord_id, m.get(41) or "", m.get(55) or "", _side_or_0(m))
        try:
            price = c.price_fen(m.require(44))
        except ValueError as exc:
            self._cancel_rejected(request, order_id, 0, str(exc), 0)
            return
        target = order_id
        if orig:
            named = account if account != -1 or len(self.accounts) != 1 else self.only_account
            target = self.core.tracker.lookup(named, orig) or 0
        filled = self.acceptor.ledger.status(target)[1] if target else 0
        self.on_message(
            p.ModifyRequest(
                request_id=self._request(request),
                client_order_id=orig,
                order_id=order_id,
                account=account,
                price_ticks=price,
                qty_t=qty - filled,
            )
        )

    def _mass_cancel(self, m: FixMessage) -> None:
        cl_ord_id = _cl_ord_id(m, 11)
        kind = m.require(530)
        if kind not in ("1", "7"):
            raise FixFieldError(530, c.VALUE_INCORRECT, "MassCancelRequestType must be 1 or 7")
        symbol = _symbol(m) if kind == "1" else s.ALL_INSTRUMENTS
        request = Request("q", cl_ord_id, symbol=symbol)
        request.detail = kind
        account = _account(m)
        if account == -1:
            if len(self.accounts) != 1:
                self._mass_cancel_report(request, "0", 0, "Account (1) required", "NONE")
                return
            account = self.only_account
        command = s.MassCancel(account=account, instrument=symbol)
        self.on_message(p.EngineRequest(request_id=self._request(request), command=command))

    def _market_data_request(self, m: FixMessage) -> None:
        md_req_id = m.require(262)[:64]
        kind = m.require(263)
        if kind not in ("0", "1", "2"):
            raise FixFieldError(263, c.VALUE_INCORRECT, "SubscriptionRequestType must be 0-2")
        if kind != "2":
            m.integer(264)
        symbols = [entry[55] for entry in m.groups(146, 55)]
        if not symbols:
            raise FixFieldError(146, c.REQUIRED_TAG_MISSING, "NoRelatedSym (146): no symbol")
        for symbol in symbols:
            request = Request("V", md_req_id, symbol=symbol)
            if kind == "2":
                self.feeds.pop(symbol, None)
                self.on_message(p.Unsubscribe(request_id=self._request(request), instrument=symbol))
            elif kind == "1":
                self.feeds[symbol] = (md_req_id, set())
                self.on_message(p.Subscribe(request_id=self._request(request), instrument=symbol))
            else:
                self._snapshot_only(request)

    def _snapshot_only(self, request: Request) -> None:
        market_data = self.core.market_data
        if request.symbol not in market_data.subscribers:
            self._md_reject(request, "0", f"no instrument {request.symbol!r}")
        elif not self.take_token():
            self._md_reject(request, "2", "throttled")
        else:
            snapshot = market_data.snapshot(request.symbol, 0, self.core.exchange.last_seq)
            self._send_app("W", _snapshot_fields(request.cl_ord_id, snapshot))

    def _security_list_request(self, m: FixMessage) -> None:
        request_id = m.require(320)[:64]
        kind = m.require(559)
        if kind not in ("0", "4"):
            raise FixFieldError(559, c.VALUE_INCORRECT, "SecurityListRequestType must be 0 or 4")
        if not self.take_token():
            self._business_reject(m, 0, "throttled")
            return
        wanted = _symbol(m) if kind == "0" else None
        instruments = [i for i in self.acceptor.instruments if wanted in (None, i.symbol)]
        fields: list[tuple[int, object]] = [
            (320, request_id),
            (322, f"{self.id}-{m.fields[34]}"),
            (560, 0 if instruments else 2),
            (146, len(instruments)),
        ]
        for instrument in instruments:
            fields += [
                (55, instrument.symbol),
                (15, "CNY"),
                (969, c.format_fen(instrument.tick_ticks)),
                (561, instrument.lot_t),
            ]
        self._send_app("y", fields)

    def _trading_session_status_request(self, m: FixMessage) -> None:
        """TradingSessionStatusRequest (g): the current status of every instrument (or of
        Symbol 55), as TradingSessionStatus (h) with 325=N; 263=2 stops the unsolicited ones,
        263=1 starts them again."""
        request_id = m.require(335)[:64]
        kind = m.require(263)
        if kind not in ("0", "1", "2"):
            raise FixFieldError(263, c.VALUE_INCORRECT, "SubscriptionRequestType must be 0-2")
        if kind != "0":
            self.status_updates = kind == "1"
        board, wanted, session_id = self.acceptor.board, m.get(55), m.get(336)
        states = [
            state
            for state in board.states.values()
            if wanted in (None, state.symbol) and session_id in (None, str(state.trading_date))
        ]
        if not self.take_token():
            self._status_rejected(request_id, session_id, 99, "throttled")
        elif not states:
            unknown = (
                f"Symbol {wanted!r}" if wanted is not None else f"TradingSessionID {session_id!r}"
            )
            self._status_rejected(request_id, session_id, 99 if wanted else 1, f"no {unknown}")
        elif kind != "2":
            for state in states:
                self._send_app("h", board.fields(state, unsolicited=False, request_id=request_id))

    def _status_rejected(self, request_id: str, session_id: str | None, reason: int, text: str):
        fields: list[tuple[int, object]] = [
            (335, request_id),
            (336, session_id or "0"),
            (340, status.REQUEST_REJECTED),
            (567, reason),
            (58, text[: limits.TEXT_CHARS_MAX]),
        ]
        self._send_app("h", fields)

    def market_status(self, changes: list) -> None:
        """A durable batch changed the market status of instruments (``status.StatusBoard``)."""
        if self.catching_up is not None:
            self.catching_up.held.append(lambda: self.market_status(changes))
        elif self.state is State.ACTIVE and self.status_updates:
            board = self.acceptor.board
            for state in changes:
                self._send_app("h", board.fields(state, unsolicited=True))

    # ------------------------------------------------------------------------------------------
    # Output
    # ------------------------------------------------------------------------------------------
    def send(self, message) -> None:
        if type(message) is p.LogonAccepted:
            self._logon_accepted(message)
        else:
            super().send(message)

    def take_output(self) -> tuple[bytearray, int]:
        """The FIX messages queued since the last call, after the store has them on disk."""
        self._translate()
        if self.store is not None:
            # batch: synced with the batch's log sync; interval: when the log is durable to
            # its end now (output of no batch - Logon answers, statuses, catch-up, resends)
            self.store.flush(self.acceptor.sync or self.acceptor.stores_may_sync())
        data, count = self.fix_out, self.fix_count
        self.fix_out, self.fix_count, self.dirty = bytearray(), 0, False
        return data, count

    def translate(self) -> None:
        """Translate what the core queued now (called after each durable batch)."""
        self._translate()

    def _translate(self) -> None:
        if self._translating:
            return
        catch_up = self.catching_up
        if catch_up is not None:  # live output waits until the missed reports are made
            if self.out:
                data, figures = bytes(self.out), self.acceptor.figures
                self.out, self.out_frames = bytearray(), 0
                catch_up.held.append(lambda: self._translate_held(data, figures))
            return
        self._translating = True
        try:
            while self.out:
                data = bytes(self.out)
                self.out, self.out_frames = bytearray(), 0
                self._translate_frames(data)
        finally:
            self._translating = False

    def _translate_frames(self, data: bytes) -> None:
        position = 0
        while position < len(data):
            length = int.from_bytes(data[position : position + 4], "big")
            body = data[position + 4 : position + 4 + length]
            position += 4 + length
            self._native(p.decode_server(body))

    def _translate_held(self, data: bytes, figures: dict) -> None:
        """Live frames held back during a catch-up, with the order figures of their batch."""
        self.acceptor.figures = figures
        self._translating = True
        try:
            self._translate_frames(data)
        finally:
            self._translating = False
            self.acceptor.figures = {}

    def _now(self) -> str:
        return c.utc_timestamp(self.acceptor.clock())

    def _queue(self, raw: bytes) -> None:
        self.fix_out += raw
        self.fix_count += 1
        if not self.dirty:
            self.dirty = True
            self.core.dirty.append(self)

    def _send_admin(self, msg_type: str, fields: list[tuple[int, object]]) -> None:
        self._translate()
        store = self.store
        seq = store.next_out if store is not None else 1
        comp_id, peer = self.acceptor.comp_id, self.peer or "UNKNOWN"
        raw = c.encode(msg_type, seq, comp_id, peer, self._now(), fields)
        if store is not None:
            store.sent_admin(seq)
        self._queue(raw)

    def _send_app(self, msg_type: str, fields: list[tuple[int, object]]) -> None:
        self._translate()
        store = self.store
        if store is None:
            return  # not logged on: nothing application-level is said
        raw = c.encode(
            msg_type, store.next_out, self.acceptor.comp_id, self.peer, self._now(), fields
        )
        store.sent_app(store.next_out, raw)
        self._queue(raw)

    def _native(self, m: Any) -> None:
        """One native message the core queued, as FIX (or nothing)."""
        t = type(m)
        if t is p.ExecutionReport:
            self._execution_report(m)
        elif t is p.Ack:
            self.requests.pop(m.request_id, None)
        elif t is p.Reject:
            self._rejected(m)
        elif t is p.EventReport:
            self._event_report(m)
        elif t is p.DepthSnapshot:
            self._depth_snapshot(m)
        elif t is p.DepthUpdate:
            self._depth_update(m)
        elif t is p.DropCopy:
            self._drop_copy(m)
        elif t is p.Trade:
            self._trade(m)
        elif t is p.Heartbeat:
            self._send_admin("0", [])
        elif t is p.Logout:
            self._send_admin("5", [(58, m.reason)])
        elif t in (p.ProtocolError, p.LogonRejected):
            self._send_admin("5", [(58, m.text or "refused")])

    # -- execution reports ---------------------------------------------------------------------
    def _execution_report(self, m: p.ExecutionReport) -> None:
        request = self.requests.get(m.request_id) if m.request_id else None
        if m.exec_type in (int(_ET.CANCEL_REJECTED), int(_ET.MODIFY_REJECTED)):
            if request is not None:  # only the requester hears of a refused cancel/replace
                self._cancel_rejected(
                    request, m.order_id, m.reason, s.RejectReason(m.reason).name, m.ts_ns
                )
            return
        ledger = self.acceptor.ledger
        figures = self.acceptor.figures.get((m.seq, m.index, m.leg))
        order = ledger.orders.get(m.order_id)
        if figures is None:  # pragma: no cover - reports are translated right after their batch
            figures = (order[0], order[1], order[2]) if order else (m.qty_t, 0, 0)
        qty, filled, cost = figures
        exec_type, status = _EXEC[m.exec_type]
        if not status:
            status = "1" if filled else "0"
        fields: list[tuple[int, object]] = [(37, m.order_id)]
        if request is not None and request.kind in ("F", "G"):
            fields += [(11, request.cl_ord_id), (41, request.orig or m.client_order_id)]
            if m.exec_type == int(_ET.MODIFIED) and m.client_order_id:
                self.aliases[request.cl_ord_id] = m.client_order_id
        elif m.client_order_id:
            fields.append((11, m.client_order_id))
        fields += [
            (17, f"{m.seq}-{m.index}-{m.leg}"),
            (150, exec_type),
            (39, status),
            (1, m.account),
            (55, m.instrument),
            (54, _SIDE_CODES.get(m.side, "1")),
            (38, qty),
        ]
        price = order[3] if order is not None else m.price_ticks
        if price > 0:
            fields.append((44, c.format_fen(price)))
        if m.exec_type == int(_ET.ACCEPTED):
            fields += [
                (40, _ORD_TYPE_CODES.get(m.order_type, "2")),
                (59, _TIF_CODES.get(m.tif, "0")),
            ]
            if m.order_type == int(s.OrderType.POST_ONLY):
                fields.append((18, "6"))
        if m.last_qty_t:
            fields += [
                (32, m.last_qty_t),
                (31, c.format_fen(m.last_price_ticks)),
                (851, 1 if m.liquidity == int(p.Liquidity.MAKER) else 2),
                (880, m.trade_id),
            ]
        fields += [
            (151, m.leaves_qty_t),
            (14, filled),
            (6, c.format_average(cost, filled)),
            (60, c.utc_timestamp(m.ts_ns)),
        ]
        if m.exec_type == int(_ET.REJECTED):
            fields += [(103, 99), (58, s.RejectReason(m.reason).name), (REJECT_CODE, m.reason)]
        elif m.exec_type in (int(_ET.CANCELLED), int(_ET.EXPIRED)):
            fields += [(58, s.CancelReason(m.reason).name), (REJECT_CODE, m.reason)]
        self._send_app("8", fields)

    def _drop_copy(self, m: p.DropCopy) -> None:
        """A drop copy session's copy of an event: the ExecutionReport of each leg of an order
        event, whichever account it is (other events have no FIX drop copy)."""
        row = self.core.codec.event_row(m.event)
        if row[E_KIND] not in ORDER_KINDS:
            return
        client_of, symbol = self.core.tracker.client_of, m.event.instrument
        for leg, _ in legs(row):
            self._execution_report(order_report(row, m.index, leg, client_of, 0, symbol))

    def _cancel_rejected(
        self, request: Request, order_id: int, reason: int, text: str, code: int
    ) -> None:
        """OrderCancelReject (9) for a refused cancel (F) or replace (G)."""
        status, filled = self.acceptor.ledger.status(order_id) if order_id else (None, 0)
        if status == LIVE:
            ord_status = "1" if filled else "0"
        else:
            ord_status = {FILLED: "2", CANCELLED: "4"}.get(status, "8")  # type: ignore[arg-type]
        unknown = reason == int(s.RejectReason.UNKNOWN_ORDER) or code == 5
        fields: list[tuple[int, object]] = [
            (37, order_id or "NONE"),
            (11, request.cl_ord_id),
            (41, request.orig or "NONE"),
            (39, ord_status),
            (434, 1 if request.kind == "F" else 2),
            (102, 1 if unknown else 99),
            (58, text[: limits.TEXT_CHARS_MAX]),
        ]
        if reason:
            fields.append((REJECT_CODE, reason))
        if code:
            fields.append((GATEWAY_REJECT_CODE, code))
        self._send_app("9", fields)

    def _order_rejected(self, request: Request, text: str, code: int) -> None:
        """An ExecutionReport (Rejected) for a NewOrderSingle refused before the engine."""
        fields: list[tuple[int, object]] = [
            (37, "NONE"),
            (11, request.cl_ord_id),
            (17, f"R{self.id}-{self.acceptor.next_request_id()}"),
            (150, "8"),
            (39, "8"),
            (55, request.symbol),
            (54, _SIDE_CODES.get(request.side, "1")),
            (38, request.qty),
            (151, 0),
            (14, 0),
            (6, "0"),
            (103, 6 if code == int(p.RejectCode.DUPLICATE_CLIENT_ORDER_ID) else 99),
            (58, text[: limits.TEXT_CHARS_MAX]),
        ]
        if code:
            fields.append((GATEWAY_REJECT_CODE, code))
        self._send_app("8", fields)

    def _rejected(self, m: p.Reject) -> None:
        """The gateway refused a request before the engine saw it."""
        request = self.requests.pop(m.request_id, None)
        if request is None:
            return
        text = f"{p.RejectCode(m.code).name}: {m.text}" if m.code in _REJECT_CODES else m.text
        if request.kind == "D":
            self._order_rejected(request, text, m.code)
        elif request.kind in ("F", "G"):
            order_id = 0
            self._cancel_rejected(request, order_id, 0, text, m.code)
        elif request.kind == "V":
            self.feeds.pop(request.symbol, None)
            unknown = m.code == int(p.RejectCode.UNKNOWN_INSTRUMENT)
            self._md_reject(request, "0" if unknown else "2", text)
        elif request.kind == "q":
            self._mass_cancel_report(request, "0", 0, text, "NONE")
        elif request.kind in blocks.KINDS:
            blocks.rejected(self, request, text, m.code)

    def _md_reject(self, request: Request, reason: str, text: str) -> None:
        self._send_app("Y", [(262, request.cl_ord_id), (281, reason), (58, text)])

    def _event_report(self, m: p.EventReport) -> None:
        request = self.requests.get(m.request_id) if m.request_id else None
        event = m.event
        if type(event) in blocks.EVENT_TYPES:
            blocks.report(self, m, request)
            return
        if request is None or request.kind != "q":
            return
        if type(event) is s.MassCancelled:
            self._mass_cancel_report(request, request.detail, event.cancelled_count, "", m.seq)
        else:
            reason = getattr(event, "reason", 0)
            text = type(event).__name__ + (f": {s.RejectReason(reason).name}" if reason else "")
            self._mass_cancel_report(request, "0", 0, text, m.seq)

    def _mass_cancel_report(
        self, request: Request, response: str, count: int, text: str, order_id: object
    ) -> None:
        fields: list[tuple[int, object]] = [
            (11, request.cl_ord_id),
            (37, order_id),
            (530, request.detail or "7"),
            (531, response),
        ]
        if response == "0":
            fields += [(532, 99), (58, text[: limits.TEXT_CHARS_MAX])]
        else:
            fields.append((533, count))
        if request.symbol and request.symbol != s.ALL_INSTRUMENTS:
            fields.append((55, request.symbol))
        self._send_app("r", fields)

    # -- market data ---------------------------------------------------------------------------
    def _depth_snapshot(self, m: p.DepthSnapshot) -> None:
        request = self.requests.pop(m.request_id, None)
        feed = self.feeds.get(m.instrument)
        if request is None or feed is None:
            return
        feed[1].clear()
        feed[1].update((1, level.price_ticks) for level in m.bids)
        feed[1].update((2, level.price_ticks) for level in m.asks)
        self._send_app("W", _snapshot_fields(feed[0], m))

    def _depth_update(self, m: p.DepthUpdate) -> None:
        feed = self.feeds.get(m.instrument)
        if feed is None:
            return
        known, entries = feed[1], 0
        fields: list[tuple[int, object]] = []
        for level in m.levels:
            key = (level.side, level.price_ticks)
            if level.qty_t == 0:
                if key not in known:
                    continue  # a level that came and went within the batch
                action = "2"
                known.discard(key)
            else:
                action = "1" if key in known else "0"
                known.add(key)
            entries += 1
            fields += [
                (279, action),
                (269, "0" if level.side == 1 else "1"),
                (55, m.instrument),
                (270, c.format_fen(level.price_ticks)),
                (271, level.qty_t),
                (346, level.orders),
            ]
        if entries:
            self._send_app("X", [(262, feed[0]), (268, entries), *fields])

    def _trade(self, m: p.Trade) -> None:
        feed = self.feeds.get(m.instrument)
        if feed is None:
            return
        fields: list[tuple[int, object]] = [
            (262, feed[0]),
            (268, 1),
            (279, "0"),
            (269, "2"),
            (55, m.instrument),
            (278, m.trade_id),
            (270, c.format_fen(m.price_ticks)),
            (271, m.qty_t),
            (273, c.utc_timestamp(m.ts_ns)[9:]),
        ]
        self._send_app("X", fields)

    # -- lifecycle -----------------------------------------------------------------------------
    def release(self) -> None:
        """The connection is gone: persist and close the store, free the FIX session."""
        if self.store is not None:
            self.store.close(sync=self.acceptor.stores_may_sync())
            self.store = None
        self.acceptor.release(self)


_REJECT_CODES = frozenset(int(code) for code in p.RejectCode)


def _ignore(message: FixMessage) -> None:
    return None


def _cl_ord_id(m: FixMessage, tag: int) -> str:
    value = m.require(tag)
    if len(value) > limits.CLIENT_ORDER_ID_CHARS_MAX:
        raise FixFieldError(tag, c.VALUE_INCORRECT, f"tag {tag}: longer than 36 characters")
    return value


def _symbol(m: FixMessage) -> str:
    value = m.require(55)
    if len(value) > limits.SYMBOL_CHARS_MAX:
        raise FixFieldError(55, c.VALUE_INCORRECT, "Symbol (55) longer than 32 characters")
    return value


def _side(m: FixMessage) -> int:
    side = _SIDES.get(m.require(54))
    if side is None:
        raise FixFieldError(54, c.VALUE_INCORRECT, "Side (54) must be 1 (buy) or 2 (sell)")
    return side


def _side_or_0(m: FixMessage) -> int:
    return _SIDES.get(m.get(54) or "", 0)


def _account(m: FixMessage) -> int:
    return m.integer(1, default=-1, high=p.I32_MAX)


def _snapshot_fields(md_req_id: str, m: p.DepthSnapshot) -> list[tuple[int, object]]:
    """MarketDataSnapshotFullRefresh (W) fields of a native depth snapshot."""
    fields: list[tuple[int, object]] = [
        (262, md_req_id),
        (55, m.instrument),
        (268, len(m.bids) + len(m.asks)),
    ]
    for entry_type, levels in (("0", m.bids), ("1", m.asks)):
        for position, level in enumerate(levels, 1):
            fields += [
                (269, entry_type),
                (270, c.format_fen(level.price_ticks)),
                (271, level.qty_t),
                (346, level.orders),
                (290, position),
            ]
    return fields

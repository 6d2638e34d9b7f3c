"""The wire protocol: framing, every message, every code.  ``docs/PROTOCOL.md`` is its prose.

Theory of operation
-------------------
A connection carries *frames* in both directions: a 4-byte big-endian unsigned length ``n``
followed by ``n`` bytes of one MessagePack map, the *message*.  Every message is a msgspec
``Struct`` with an explicit integer tag in its ``"type"`` key: client-to-server messages form
the :data:`ClientMessage` union, server-to-client messages the :data:`ServerMessage` union (tags
1-99 are sent by clients, 100-199 by the server; ``Heartbeat`` and ``Logout`` go both ways).
A frame's length is checked against the limit *before* its body is read, so a peer cannot make
the server buffer more than one frame's worth.

Integer fields a client sends are range-checked here, by the decoder, to the width the engine's
record view stores them in (``engine.core.records.COMMAND_DTYPE``); a value outside is a protocol
error.  Codes inside the range but undefined (``side = 7``) are *not* refused here: the engine
refuses them as a business outcome with its documented reason, in the log.

Schema evolution follows the engine's rules: fields are only appended, with defaults; tags,
names and types never change; codes are never reused.  A change a peer must understand bumps
:data:`PROTOCOL_VERSION`; the client names its version at logon.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Annotated, Union

import msgspec

from engine.core import limits
from engine.core import schema as s

PROTOCOL_VERSION = 1
"""The version this module implements; a logon naming another is refused."""

FRAME_HEADER_BYTES = 4
_unpack_length = struct.Struct(">I").unpack_from

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

Int64 = Annotated[int, msgspec.Meta(ge=I64_MIN, le=I64_MAX)]
Code8 = Annotated[int, msgspec.Meta(ge=0, le=255)]
"""A one-byte code (side, order type, time in force, STP mode); the engine judges its value."""
AccountField = Annotated[int, msgspec.Meta(ge=-1, le=I32_MAX)]
"""An account number, or -1: "my only account"."""
RequestId = Annotated[int, msgspec.Meta(ge=0, le=I64_MAX)]
OrderIdField = Annotated[int, msgspec.Meta(ge=0, le=I64_MAX)]
SeqField = Annotated[int, msgspec.Meta(ge=0, le=I64_MAX)]
Symbol = Annotated[str, msgspec.Meta(max_length=limits.SYMBOL_CHARS_MAX)]
ClientOrderId = Annotated[str, msgspec.Meta(max_length=limits.CLIENT_ORDER_ID_CHARS_MAX)]
UserName = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.USER_NAME_CHARS_MAX)]
Secret = Annotated[str, msgspec.Meta(max_length=limits.SECRET_CHARS_MAX)]
Text = Annotated[str, msgspec.Meta(max_length=limits.TEXT_CHARS_MAX)]


# ------------------------------------------------------------------------------------------
# Codes
# ------------------------------------------------------------------------------------------


class Role(enum.StrEnum):
    """What a user may do.  Stored in the user file and reported at logon."""

    TRADER = "trader"
    """Order entry for the accounts the user is bound to; their execution reports."""
    REGISTRY = "registry"
    """Registry commands (accounts, cash, allowances, freezes, compliance: types 20-33)."""
    OPERATOR = "operator"
    """Market operations: sessions, halts, mass cancel of any account; drop copy."""
    READ_ONLY = "read-only"
    """Market data and drop copy; no command of any kind."""


class ExecType(enum.IntEnum):
    """``ExecutionReport.exec_type``: what happened to an order."""

    ACCEPTED = 1
    REJECTED = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELLED = 5
    EXPIRED = 6
    """Cancelled because its session ended (a DAY order at the close)."""
    MODIFIED = 7
    CANCEL_REJECTED = 8
    MODIFY_REJECTED = 9


class Liquidity(enum.IntEnum):
    NONE = 0
    MAKER = 1
    """The report's order was resting (passive) when it traded."""
    TAKER = 2
    """The report's order arrived (or was modified) and traded on arrival."""


class RejectCode(enum.IntEnum):
    """``Reject.code``: the gateway refused a request; nothing was sequenced or changed."""

    NOT_PERMITTED = 1
    """The user's role may not send this command."""
    ACCOUNT_NOT_PERMITTED = 2
    """The account named is not one the user is bound to."""
    ACCOUNT_REQUIRED = 3
    """The user is bound to several accounts: the request must name one."""
    DUPLICATE_CLIENT_ORDER_ID = 4
    """The account already used this client order id (since the log began)."""
    UNKNOWN_CLIENT_ORDER_ID = 5
    """Cancel or modify of a client order id the account never used."""
    THROTTLED = 6
    """More messages per second than the session's limit; this one was dropped."""
    OPEN_ORDER_LIMIT = 7
    """The account has as many open (and in-flight) orders as it may."""
    INVALID_REQUEST = 8
    """Inconsistent fields, e.g. both or neither of ``client_order_id`` and ``order_id``, a
    ``SubmitOrder`` wrapped in ``EngineRequest``, or a value the engine's records cannot hold."""
    UNKNOWN_INSTRUMENT = 9
    """Subscription to an instrument the market does not list."""
    SUBSCRIPTION_LIMIT = 10
    SHUTTING_DOWN = 11
    """The gateway is draining; resend after it restarts."""
    EXCHANGE_UNAVAILABLE = 12
    """The exchange failed while this request was in flight: its outcome is unknown until
    the gateway restarts and a resumed session replays the log."""
    UNKNOWN_ACCOUNT = 13
    """A query named an account that does not exist - or, for a trader, any account it is not
    bound to (the two answers are the same, byte for byte)."""
    STORAGE_FULL = 14
    """The exchange's log could not take the batch (its file system is full): nothing of the
    request was recorded - send it again (the same client order id is free again)."""
    NOT_PRIMARY = 15
    """This gateway is a follower of a replicated exchange (``cets follow``): it serves market
    data, drop copy, queries and resend, but takes no order and no other command until it
    becomes the primary - send it to the primary (the client library moves on to its next
    address)."""


class LogonRejectCode(enum.IntEnum):
    """``LogonRejected.code``; the server closes the connection after sending it."""

    BAD_CREDENTIALS = 1
    """Unknown user, wrong secret or disabled user (deliberately indistinguishable)."""
    UNSUPPORTED_VERSION = 2
    SESSION_LIMIT = 3
    """The user already has the maximum number of sessions."""
    NOT_PERMITTED = 4
    """The logon asked for something the role may not have (drop copy for a trader)."""
    BUSY = 5
    """Too many logons are being verified at once; retry after a pause."""
    SHUTTING_DOWN = 6
    SERVER_FULL = 7
    """The gateway holds its maximum number of logged-on sessions (checked only after the
    credentials, like SESSION_LIMIT)."""


class ProtocolErrorCode(enum.IntEnum):
    """``ProtocolError.code``; the server closes the connection after sending it."""

    FRAME_TOO_LARGE = 1
    """The length prefix exceeds the frame limit (checked before reading the body)."""
    EMPTY_FRAME = 2
    MALFORMED = 3
    """The body is not one MessagePack map."""
    UNKNOWN_MESSAGE_TYPE = 4
    """Missing ``type`` or one no client message has."""
    INVALID_FIELD = 5
    """A field is missing, of the wrong type or out of range (the text names it)."""
    UNEXPECTED_MESSAGE = 6
    """A valid message at the wrong time (a second Logon)."""
    NOT_LOGGED_ON = 7
    """Anything but Logon (or Heartbeat) before a successful logon."""
    LOGON_TIMEOUT = 8
    IDLE_TIMEOUT = 9
    """Nothing received for longer than the idle timeout."""
    SLOW_CONSUMER = 10
    """The connection's outbound queue exceeded its limit (usually not deliverable)."""
    TOO_MANY_CONNECTIONS = 11
    """Too many connections are waiting to log on (sockets without a Logon yet)."""


# ------------------------------------------------------------------------------------------
# Messages both ways
# ------------------------------------------------------------------------------------------


class Heartbeat(msgspec.Struct, tag=3, frozen=True, kw_only=True, tag_field="type"):
    """Keeps an idle connection alive; either side sends it when it has sent nothing else
    for a heartbeat interval."""


class Logout(msgspec.Struct, tag=2, frozen=True, kw_only=True, tag_field="type"):
    """Ends the session.  The server answers a client's Logout with its own, then closes; it
    also sends one (with a reason) before closing at shutdown."""

    reason: Text = ""


# ------------------------------------------------------------------------------------------
# Client -> server
# ------------------------------------------------------------------------------------------


class Logon(msgspec.Struct, tag=1, frozen=True, kw_only=True, tag_field="type"):
    """The first message of a connection.

    ``resume_from_seq`` > 0 asks for every durable message of the session's scope whose
    ``seq`` is >= it, replayed from the log before live traffic (then ``ReplayComplete``).
    """

    user: UserName
    password: Secret
    protocol_version: Annotated[int, msgspec.Meta(ge=0, le=I32_MAX)]
    resume_from_seq: SeqField = 0
    cancel_on_disconnect: bool = False
    drop_copy: bool = False


class NewOrder(msgspec.Struct, tag=10, frozen=True, kw_only=True, tag_field="type"):
    """Enter an order.  The gateway assigns the engine order id (reported in ``Ack`` and in
    every execution report); ``client_order_id`` must be new for the account."""

    request_id: RequestId = 0
    client_order_id: Annotated[
        str, msgspec.Meta(min_length=1, max_length=limits.CLIENT_ORDER_ID_CHARS_MAX)
    ]
    instrument: Symbol
    side: Code8
    qty_t: Int64
    price_ticks: Int64 = 0
    order_type: Code8 = int(s.OrderType.LIMIT)
    tif: Code8 = int(s.TimeInForce.DAY)
    stp: Code8 = int(s.StpMode.CANCEL_INCOMING)
    account: AccountField = -1
    quote_order_id: OrderIdField = 0
    """Hit-quote orders (``order_type`` 4): the engine order id of the resting quote to hit."""


class CancelRequest(msgspec.Struct, tag=11, frozen=True, kw_only=True, tag_field="type"):
    """Cancel a resting order named by exactly one of ``client_order_id`` or ``order_id``."""

    request_id: RequestId = 0
    client_order_id: ClientOrderId = ""
    order_id: OrderIdField = 0
    account: AccountField = -1


class ModifyRequest(msgspec.Struct, tag=12, frozen=True, kw_only=True, tag_field="type"):
    """Change a resting order's price and open quantity (``docs/MATCHING.md``)."""

    request_id: RequestId = 0
    client_order_id: ClientOrderId = ""
    order_id: OrderIdField = 0
    account: AccountField = -1
    price_ticks: Int64
    qty_t: Int64


class EngineRequest(msgspec.Struct, tag=13, frozen=True, kw_only=True, tag_field="type"):
    """Any engine command (``engine.core.schema``), for the roles the permission table allows:
    sessions and halts (operator), mass cancel (trader for its accounts, operator for any),
    cancel/modify by engine order id (trader), registry commands (registry), block offers,
    acceptances and auction applications and bids (trader), auction announcement, clearing and
    cancellation and trading phases (operator).  ``seq`` and ``ts_ns`` inside are ignored.
    ``SubmitOrder`` is refused: use ``NewOrder``.  The gateway assigns the id of a new block
    offer, auction or bid (``offer_id``, ``auction_id``, ``bid_id``: whatever the client sent is
    replaced by the command's sequence number) and reports it in the ``Ack``'s ``order_id``."""

    request_id: RequestId = 0
    command: s.Command


class Subscribe(msgspec.Struct, tag=20, frozen=True, kw_only=True, tag_field="type"):
    """Market data of one instrument: a ``DepthSnapshot``, then updates, trades, status."""

    request_id: RequestId = 0
    instrument: Symbol


class Unsubscribe(msgspec.Struct, tag=21, frozen=True, kw_only=True, tag_field="type"):
    request_id: RequestId = 0
    instrument: Symbol


class QuotesRequest(msgspec.Struct, tag=22, frozen=True, kw_only=True, tag_field="type"):
    """The resting quotes a hit-quote order may pick: answered by one ``Quotes``."""

    request_id: RequestId = 0
    instrument: Symbol


class AccountQuery(msgspec.Struct, tag=23, frozen=True, kw_only=True, tag_field="type"):
    """An account's cash, holdings per vintage and open orders: answered by one
    ``AccountState`` (or a ``Reject``).  Traders ask for their own accounts, operators and the
    registry for any."""

    request_id: RequestId = 0
    account: AccountField = -1


ClientMessage = Union[
    Logon,
    Logout,
    Heartbeat,
    NewOrder,
    CancelRequest,
    ModifyRequest,
    EngineRequest,
    Subscribe,
    Unsubscribe,
    QuotesRequest,
    AccountQuery,
]
CLIENT_MESSAGE_TYPES: tuple[type[msgspec.Struct], ...] = ClientMessage.__args__  # type: ignore[attr-defined]
CLIENT_TAGS = frozenset(t.__struct_config__.tag for t in CLIENT_MESSAGE_TYPES)

# ------------------------------------------------------------------------------------------
# Server -> client
# ------------------------------------------------------------------------------------------


class LogonAccepted(msgspec.Struct, tag=101, frozen=True, kw_only=True, tag_field="type"):
    """The session is open.  ``last_seq`` is the exchange's last sequenced command."""

    session_id: int
    user: str
    role: str
    accounts: list[int]
    protocol_version: int
    heartbeat_interval_ms: int
    idle_timeout_ms: int
    messages_per_second: int
    frame_bytes_max: int
    last_seq: int
    resume_from_seq: int
    cancel_on_disconnect: bool
    drop_copy: bool
    read_only: str = ""
    """Empty when this gateway takes orders; else it is a follower of a replicated exchange
    and this says so and names the primary (the text of its ``NOT_PRIMARY`` rejects)."""


class LogonRejected(msgspec.Struct, tag=102, frozen=True, kw_only=True, tag_field="type"):
    code: int
    text: str = ""


class Reject(msgspec.Struct, tag=104, frozen=True, kw_only=True, tag_field="type"):
    """The gateway refused a request (``RejectCode``); nothing was sequenced."""

    request_id: int
    code: int
    text: str = ""
    client_order_id: str = ""


class ProtocolError(msgspec.Struct, tag=105, frozen=True, kw_only=True, tag_field="type"):
    """A violation of the protocol (``ProtocolErrorCode``); the connection closes after it."""

    code: int
    text: str = ""


# Ack and ExecutionReport are built positionally on the hot path (no kw_only): their field
# order is part of the Python API only.


class Ack(msgspec.Struct, tag=106, frozen=True, tag_field="type"):
    """The request was sequenced as ``seq`` and is durable; every report it caused for this
    session was sent before this message.  ``order_id`` is the engine order id of a
    ``NewOrder`` (or the target of a cancel/modify), the assigned id of a new block offer,
    auction or bid, else 0."""

    request_id: int
    seq: int
    order_id: int = 0
    client_order_id: str = ""


class ExecutionReport(msgspec.Struct, tag=110, frozen=True, tag_field="type"):
    """One thing that happened to an order of one of the session's accounts.

    Durable and replayable; ``(seq, index, leg)`` is its position in the session's stream.
    """

    seq: int
    """Sequence number of the command that caused it."""
    index: int
    """Position of the engine event among that command's events (0-based)."""
    leg: int
    """0, or 1 for the resting (maker) order's report of a trade."""
    ts_ns: int
    exec_type: int
    account: int
    order_id: int
    client_order_id: str
    request_id: int
    """The causing request's id, on reports to its sender's sessions about the order(s) it
    targeted; else 0."""
    instrument: str
    side: int
    price_ticks: int
    """The order's limit price (0 for market orders and on fill reports)."""
    qty_t: int
    """ACCEPTED/REJECTED: the order's quantity; CANCELLED/EXPIRED: the quantity cancelled;
    MODIFIED/MODIFY_REJECTED: the requested open quantity; fills: 0."""
    leaves_qty_t: int
    """Open quantity after this event."""
    last_qty_t: int = 0
    last_price_ticks: int = 0
    trade_id: int = 0
    liquidity: int = 0
    reason: int = 0
    """``engine.core.schema.RejectReason`` for the *_REJECTED types, ``CancelReason`` for CANCELLED
    and EXPIRED, else 0."""
    order_type: int = 0
    tif: int = 0
    priority_kept: bool = False
    old_price_ticks: int = 0
    old_qty_t: int = 0


class EventReport(msgspec.Struct, tag=111, frozen=True, kw_only=True, tag_field="type"):
    """An engine event that is not an order report (a session opened, a mass cancel done, a
    command refused), sent to the sessions of the accounts it names and to the sessions of
    the user whose command caused it.  Durable and replayable."""

    seq: int
    index: int
    request_id: int
    event: s.Event


class DropCopy(msgspec.Struct, tag=112, frozen=True, kw_only=True, tag_field="type"):
    """Every engine event of every command, for drop-copy sessions (operator, read-only)."""

    seq: int
    index: int
    user: str
    """Who sent the command ("" if it did not come through the gateway)."""
    request_id: int
    client_order_id: str
    event: s.Event


class ReplayComplete(msgspec.Struct, tag=113, frozen=True, kw_only=True, tag_field="type"):
    """Ends the replay a Logon asked for: messages with ``seq`` in ``from_seq .. last_seq``
    were replayed (``messages`` of them); live messages follow."""

    from_seq: int
    last_seq: int
    messages: int


class DepthSnapshot(msgspec.Struct, tag=120, frozen=True, kw_only=True, tag_field="type"):
    """The whole aggregated book of one instrument as of ``seq`` (every command up to it)."""

    request_id: int
    instrument: str
    seq: int
    state: int
    """``engine.core.schema.SessionState``."""
    trading_date: int
    reference_price_ticks: int
    lower_band_ticks: int
    upper_band_ticks: int
    bids: list[s.DepthLevel]
    """Best (highest) first; each level ``[price_ticks, qty_t, orders]``."""
    asks: list[s.DepthLevel]
    phase: int = 0
    """Index of the trading phase in the instrument's schedule."""
    modes: int = 0
    """``engine.core.schema.TradingMode`` bits allowed now."""
    block_offers: list[s.BlockOffer] = []
    """Open (undirected) block offers, ascending offer id, ``account`` hidden as -1."""
    channel_seq: int = 0
    """The instrument's market-data channel sequence this snapshot is valid at: the
    ``channel_seq`` of the last DepthUpdate, Trade or MarketStatus of the instrument published
    before it.  Apply the messages numbered above it; a number that is not the previous + 1 is
    a gap (subscribe again for a fresh snapshot)."""


class LevelUpdate(msgspec.Struct, frozen=True, array_like=True):
    """One price level's new totals; ``qty_t == 0`` removes the level."""

    side: int
    price_ticks: int
    qty_t: int
    orders: int


class DepthUpdate(msgspec.Struct, tag=121, frozen=True, kw_only=True, tag_field="type"):
    """Levels of one instrument changed by the batch ending at ``seq`` (absolute values)."""

    instrument: str
    seq: int
    levels: list[LevelUpdate]
    channel_seq: int = 0
    """Gapless number of the message on the instrument's channel (see DepthSnapshot)."""


class Trade(msgspec.Struct, tag=122, frozen=True, kw_only=True, tag_field="type"):
    """A public trade print (anonymous)."""

    instrument: str
    seq: int
    ts_ns: int
    trade_id: int
    price_ticks: int
    qty_t: int
    aggressor_side: int
    """Listing trades: the taker's side; block trades: the offer's side; auctions: 1 (buy)."""
    mode: int = 0
    """0 listing (continuous or hit-quote), 1 block, 2 auction."""
    channel_seq: int = 0
    """Gapless number of the message on the instrument's channel (see DepthSnapshot)."""


class MarketStatus(msgspec.Struct, tag=123, frozen=True, kw_only=True, tag_field="type"):
    """A public event of a subscribed instrument: session opened, closed, halted, resumed;
    trading phase changed; the session's block and auction volumes; an auction announced,
    cleared or cancelled; an open block offer posted, cancelled or traded (accounts hidden as
    -1); and the composite price (sent to every subscriber, ``instrument`` "")."""

    instrument: str
    seq: int
    event: s.Event
    channel_seq: int = 0
    """Gapless number of the message on the instrument's channel (see DepthSnapshot); the
    composite price's channel (``instrument`` "") has its own numbering."""


class Unsubscribed(msgspec.Struct, tag=124, frozen=True, kw_only=True, tag_field="type"):
    request_id: int
    instrument: str


class Quote(msgspec.Struct, frozen=True, array_like=True):
    """One resting order, anonymous: ``[order_id, price_ticks, qty_t]``."""

    order_id: int
    price_ticks: int
    qty_t: int


class Quotes(msgspec.Struct, tag=125, frozen=True, kw_only=True, tag_field="type"):
    """Order by order, in priority order, the resting orders of the best price levels of each
    side (the instrument's ``hit_quote_levels``, 5 in the national market) as of ``seq``:
    the quotes a hit-quote order may name.  Not durable; ask again for a fresh view."""

    request_id: int
    instrument: str
    seq: int
    bids: list[Quote]
    asks: list[Quote]


class HoldingState(msgspec.Struct, frozen=True, array_like=True):
    """One instrument's allowances of an account:
    ``[instrument, tradable_t, locked_t, frozen_t, bought_today_t]``."""

    instrument: str
    tradable_t: int
    """Free to sell or transfer now."""
    locked_t: int
    """Set aside for open sell orders, block offers and auction lots."""
    frozen_t: int
    """Frozen by the registry."""
    bought_today_t: int
    """Bought in the current session: tradable from the next one (T+1)."""


class OpenOrder(msgspec.Struct, frozen=True, array_like=True):
    """One resting order of an account: ``[order_id, client_order_id, instrument, side,
    price_ticks, qty_t, order_type, tif]`` (``qty_t`` is the open quantity)."""

    order_id: int
    client_order_id: str
    instrument: str
    side: int
    price_ticks: int
    qty_t: int
    order_type: int
    tif: int


class AccountState(msgspec.Struct, tag=126, frozen=True, kw_only=True, tag_field="type"):
    """The answer to an ``AccountQuery``: the account as of ``seq`` (every command up to it
    applied; commands still in flight are not).  Not durable; ask again for a fresh view."""

    request_id: int
    account: int
    seq: int
    registry: bool
    """False: the market keeps no balances (no registry); cash and holdings are then empty."""
    frozen: bool
    cash_available_fen: int
    cash_locked_fen: int
    """Set aside for open buy orders, acceptances and auction bids."""
    holdings: list[HoldingState]
    """Every instrument of the market, in the market definition's order."""
    orders: list[OpenOrder]
    """The account's resting orders, ascending order id."""


ServerMessage = Union[
    LogonAccepted,
    LogonRejected,
    Logout,
    Heartbeat,
    Reject,
    ProtocolError,
    Ack,
    ExecutionReport,
    EventReport,
    DropCopy,
    ReplayComplete,
    DepthSnapshot,
    DepthUpdate,
    Trade,
    MarketStatus,
    Unsubscribed,
    Quotes,
    AccountState,
]
SERVER_MESSAGE_TYPES: tuple[type, ...] = ServerMessage.__args__  # type: ignore[attr-defined]

DURABLE_TYPES = (ExecutionReport, EventReport, DropCopy)
"""Messages that are part of a session's durable stream (replayed on resume)."""


# ------------------------------------------------------------------------------------------
# Framing
# ------------------------------------------------------------------------------------------


class FrameError(Exception):
    """A peer's violation of the protocol; ``code`` is a :class:`ProtocolErrorCode`."""

    def __init__(self, code: ProtocolErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def frame_length(header: bytes | bytearray | memoryview, frame_bytes_max: int) -> int:
    """Body length from a 4-byte header; raises FrameError if it is 0 or above the limit."""
    n = int.from_bytes(header[:FRAME_HEADER_BYTES], "big")
    if n == 0:
        raise FrameError(ProtocolErrorCode.EMPTY_FRAME, "frame of length 0")
    if n > frame_bytes_max:
        raise FrameError(
            ProtocolErrorCode.FRAME_TOO_LARGE,
            f"frame of {n} bytes exceeds the limit of {frame_bytes_max}",
        )
    return n


class FrameReader:
    """Incremental frame splitter for a byte stream: the one length-prefix parser of the
    project (the server's sessions, the client, the benchmarks' raw clients and echo server).

    :meth:`receive_data` buffers bytes; :meth:`drain` hands each complete frame's body to a
    callback without copying it, and stops when the callback says so (a session that starts
    logging on stops reading until the logon is decided); :meth:`feed` is both in one, for
    callers that want the bodies as ``bytes``.  A frame's length is checked as soon as its
    header is buffered, before its body is waited for.

    Examples
    --------
    >>> reader = FrameReader(1024)
    >>> list(reader.feed(b"\\x00\\x00\\x00\\x01\\xc0\\x00"))
    [b'\\xc0']
    """

    def __init__(self, frame_bytes_max: int) -> None:
        self.frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as part of a complete frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Append ``data`` to the buffer (split by the next :meth:`drain`)."""
        self._buffer += data

    def clear(self) -> None:
        """Drop everything buffered (after a protocol error nothing more is read)."""
        self._buffer.clear()

    @property
    def buffer(self) -> bytearray:
        """The bytes buffered, for a caller that splits frames itself (``gateway.intake``)
        and then :meth:`consume` s them; not to be modified otherwise."""
        return self._buffer

    def consume(self, count: int) -> None:
        """Drop the first ``count`` buffered bytes: whole frames a caller has handled."""
        del self._buffer[:count]

    def drain(self, handle: Callable[[memoryview], object]) -> None:
        """Call ``handle(body)`` for each complete buffered frame, in order, until it returns
        a false value; the frames handed out are dropped, the rest stay buffered.

        ``body`` is a view into the buffer, valid only during the call.

        Raises
        ------
        FrameError
            A length prefix of 0 or above the limit, or a FrameError raised by ``handle``;
            the buffer is then cleared (a stream is not resynchronised after an error).
        """
        buffer, limit, unpack = self._buffer, self.frame_bytes_max, _unpack_length
        position, end, failure = 0, len(buffer), None
        try:
            with memoryview(buffer) as view:
                while end - position >= FRAME_HEADER_BYTES:
                    n = unpack(buffer, position)[0]
                    if not 0 < n <= limit:
                        frame_length(view[position : position + FRAME_HEADER_BYTES], limit)
                    start = position + FRAME_HEADER_BYTES
                    if end - start < n:
                        break
                    position = start + n
                    if not handle(view[start:position]):
                        break
        except FrameError as exc:  # its traceback holds views of the buffer: raised anew below
            failure, position = (exc.code, exc.text), end
        if position:
            del buffer[:position]
        if failure is not None:
            raise FrameError(*failure)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the bodies of the frames it completed.

        Raises
        ------
        FrameError
            A length prefix of 0 or above the limit (nothing after it is read).
        """
        self._buffer += data
        bodies: list[bytes] = []
        append = bodies.append
        self.drain(lambda body: append(bytes(body)) or True)
        return bodies


encoder = msgspec.msgpack.Encoder()
_encoder = encoder


def encode(message: msgspec.Struct) -> bytes:
    """One message as a complete frame (length prefix and body)."""
    body = _encoder.encode(message)
    return len(body).to_bytes(FRAME_HEADER_BYTES, "big") + body


_pack_length = struct.Struct(">I").pack_into


def append_frame(buffer: bytearray, message: msgspec.Struct) -> None:
    """Append one message as a frame to ``buffer`` (no intermediate copies)."""
    start = len(buffer)
    _encoder.encode_into(message, buffer, start + FRAME_HEADER_BYTES)
    _pack_length(buffer, start, len(buffer) - start - FRAME_HEADER_BYTES)


client_decoder = msgspec.msgpack.Decoder(ClientMessage)
server_decoder = msgspec.msgpack.Decoder(ServerMessage)
_any_decoder = msgspec.msgpack.Decoder()


def decode_client(body: bytes | memoryview) -> ClientMessage:
    """Decode a client's frame body; raises FrameError naming the problem."""
    try:
        return client_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise FrameError(*_classify(body, exc, CLIENT_TAGS)) from None
    except msgspec.DecodeError as exc:
        raise FrameError(ProtocolErrorCode.MALFORMED, str(exc)) from None
    except RecursionError:
        raise FrameError(ProtocolErrorCode.MALFORMED, "nesting too deep") from None
    except ValueError as exc:  # invalid UTF-8 in a string, and the like
        raise FrameError(ProtocolErrorCode.MALFORMED, f"{type(exc).__name__}: {exc}") from None


def _classify(
    body: bytes | memoryview, exc: Exception, tags: frozenset
) -> tuple[ProtocolErrorCode, str]:
    """Tell an unknown message type from a bad field (error path only)."""
    try:
        raw = _any_decoder.decode(body)
    except RecursionError:
        return ProtocolErrorCode.MALFORMED, "nesting too deep"
    except (msgspec.DecodeError, ValueError) as inner:
        return ProtocolErrorCode.MALFORMED, f"{type(inner).__name__}: {inner}"
    if not isinstance(raw, dict):
        return ProtocolErrorCode.MALFORMED, f"expected a map, got {type(raw).__name__}"
    if any(type(key) is not str for key in raw):
        return ProtocolErrorCode.MALFORMED, "the message's map keys must be strings"
    tag = raw.get("type")
    if type(tag) is not int or tag not in tags:
        return ProtocolErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown message type {tag!r}"[:200]
    return ProtocolErrorCode.INVALID_FIELD, str(exc)


def decode_server(body: bytes | memoryview) -> ServerMessage:
    """Decode a server's frame body (used by clients); raises msgspec errors."""
    return server_decoder.decode(body)

"""FIX 4.4 tag=value encoding: framing, BodyLength, CheckSum, fields, prices.

Theory of operation
-------------------
A FIX message is ``8=FIX.4.4<SOH>9=<BodyLength><SOH>`` + body + ``10=<CheckSum><SOH>``, where
BodyLength counts the body's bytes (from the ``35=`` field to the SOH before ``10=``) and
CheckSum is the sum of every byte before ``10=``, modulo 256, as three digits.
:class:`FixReader` splits a byte stream into messages.  A message whose framing does not hold
(BeginString, BodyLength, the trailer's place or its CheckSum) is *garbled*: per the FIX
session specification it is discarded without being counted, the reader resynchronises at the
next ``8=FIX`` and the counterparty's later messages reveal the gap (the session then asks for
a resend).  A message with sound framing is parsed into tag/value pairs; a defect inside it (a
tag that is not a number, a tag without a value, MsgType not third) is recorded as the
message's :attr:`FixMessage.problem` for the session to answer with Reject (3) naming the tag.

Prices travel as decimal CNY strings and become integer fen here, exactly (``decimal``, never a
float): a price that is not a whole number of fen is refused with a reason.  Outbound, fen are
written with two decimals.  Nothing here reads a clock: timestamps are formatted from the
nanoseconds the caller passes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

SOH = b"\x01"
BEGIN_STRING = "FIX.4.4"
_BEGIN = b"8=FIX.4.4\x019="
_START = b"8=FIX"
MESSAGE_BYTES_MAX = 16_384
"""The largest message the acceptor reads (a longer BodyLength is garbled)."""
_TRAILER_BYTES = 7  # "10=ddd" SOH
_BODY_LENGTH_DIGITS_MAX = 5
assert len(str(MESSAGE_BYTES_MAX)) <= _BODY_LENGTH_DIGITS_MAX

# SessionRejectReason (373)
INVALID_TAG_NUMBER = 0
REQUIRED_TAG_MISSING = 1
TAG_NOT_DEFINED_FOR_MESSAGE = 2
UNDEFINED_TAG = 3
TAG_WITHOUT_VALUE = 4
VALUE_INCORRECT = 5
INCORRECT_DATA_FORMAT = 6
COMP_ID_PROBLEM = 9
SENDING_TIME_ACCURACY = 10
INVALID_MSG_TYPE = 11
TAG_OUT_OF_ORDER = 14
OTHER = 99


class Garbled(Exception):
    """A message whose framing does not hold; it was discarded (``text`` says why)."""


class FixFieldError(Exception):
    """A field of a well-framed message is missing or wrong: answered with Reject (3)."""

    def __init__(self, tag: int, reason: int, text: str) -> None:
        super().__init__(text)
        self.tag, self.reason, self.text = tag, reason, text


class FixMessage:
    """One parsed message: its (tag, value) pairs in order, the first value of each tag, and
    the first defect found while parsing (``problem``: (tag, SessionRejectReason, text))."""

    __slots__ = ("pairs", "fields", "problem", "raw")

    def __init__(self, pairs: list[tuple[int, str]], raw: bytes = b"") -> None:
        self.pairs = pairs
        self.fields: dict[int, str] = {}
        for tag, value in pairs:
            self.fields.setdefault(tag, value)
        self.problem: tuple[int, int, str] | None = None
        self.raw = raw

    @property
    def msg_type(self) -> str:
        return self.fields.get(35, "")

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self.fields.get(tag, default)

    def require(self, tag: int) -> str:
        """The tag's value; FixFieldError (required tag missing) without one."""
        value = self.fields.get(tag)
        if value is None:
            raise FixFieldError(tag, REQUIRED_TAG_MISSING, f"required tag {tag} missing")
        return value

    def integer(self, tag: int, default: int | None = None, low: int = 0, high: int = 2**62) -> int:
        """The tag's value as an integer within [low, high] (FixFieldError otherwise)."""
        value = self.fields.get(tag)
        if value is None:
            if default is None:
                raise FixFieldError(tag, REQUIRED_TAG_MISSING, f"required tag {tag} missing")
            return default
        if not _INTEGER.fullmatch(value):
            raise FixFieldError(tag, INCORRECT_DATA_FORMAT, f"tag {tag}: {value!r} not an integer")
        number = int(value)
        if not low <= number <= high:
            raise FixFieldError(tag, VALUE_INCORRECT, f"tag {tag}: {number} out of range")
        return number

    def groups(self, count_tag: int, first_tag: int) -> list[dict[int, str]]:
        """The entries of a repeating group: each starts at ``first_tag``; the count must match.

        Fields of an entry are those after its ``first_tag`` up to the next ``first_tag`` or
        the end of the message (this acceptor's groups are the messages' last fields)."""
        count = self.integer(count_tag, default=0, high=1_000)
        entries: list[dict[int, str]] = []
        inside = False
        for tag, value in self.pairs:
            if tag == count_tag:
                inside = True
            elif inside and tag == first_tag:
                entries.append({tag: value})
            elif inside and entries and tag not in (10,):
                entries[-1].setdefault(tag, value)
        if len(entries) != count:
            raise FixFieldError(
                count_tag, VALUE_INCORRECT, f"{count_tag}={count} but {len(entries)} entries"
            )
        return entries


_INTEGER = re.compile(r"-?[0-9]{1,18}")
_TAG = re.compile(rb"[1-9][0-9]{0,8}")


class FixReader:
    """Incremental splitter of a FIX byte stream into messages.

    Examples
    --------
    >>> reader = FixReader()
    >>> reader.receive_data(encode("0", 1, "A", "B", "20250101-00:00:00.000", []))
    >>> reader.next().msg_type
    '0'
    """

    def __init__(self, message_bytes_max: int = MESSAGE_BYTES_MAX) -> None:
        self.message_bytes_max = message_bytes_max
        self._buffer = bytearray()
        self._start = 0
        """Where the unconsumed bytes begin: consumed messages are cut off the front only now
        and then (:data:`_COMPACT_BYTES`), not one by one - a megabyte of pipelined messages
        would otherwise be moved once per message."""

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._start

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes that arrived.  Nothing is dropped here, however much arrives at once
        (a burst of well-framed messages is not garbage): :meth:`next` consumes the buffer
        message by message and discards what is garbled, so the buffer holds what arrived
        since the caller last drained it, plus at most one message's bytes."""
        self._buffer += data

    def clear(self) -> None:
        self._buffer.clear()
        self._start = 0

    def next(self) -> FixMessage | None:
        """The next complete message (None: more bytes needed).

        Raises
        ------
        Garbled
            The bytes at the start of the buffer are not a well-framed message; they were
            dropped up to the next ``8=FIX`` (call again to go on).
        """
        buffer, at = self._buffer, self._start
        start = buffer.find(_START, at)
        if start < 0:
            keep = len(_START) - 1  # a start split across reads
            if len(buffer) - at > keep:
                self._consume(len(buffer) - keep)
            return None
        if start > at:
            self._consume(start)
            raise Garbled(f"{start - at} bytes before BeginString")
        if len(buffer) - at < len(_BEGIN):
            return None
        if not buffer.startswith(_BEGIN, at):
            self._skip()
            raise Garbled("BeginString is not FIX.4.4 or BodyLength (9) is not second")
        digits_at = at + len(_BEGIN)
        digits_end = buffer.find(SOH, digits_at, digits_at + _BODY_LENGTH_DIGITS_MAX + 1)
        if digits_end < 0:
            if len(buffer) > digits_at + _BODY_LENGTH_DIGITS_MAX:
                self._skip()
                raise Garbled("BodyLength (9) is not a number of at most 5 digits")
            return None
        digits = bytes(buffer[digits_at:digits_end])
        if not digits.isdigit() or int(digits) > self.message_bytes_max:
            self._skip()
            raise Garbled(f"BodyLength (9) {digits!r} invalid or above {self.message_bytes_max}")
        body_start = digits_end + 1
        body_end = body_start + int(digits)
        if len(buffer) < body_end + _TRAILER_BYTES:
            return None
        trailer = bytes(buffer[body_end : body_end + _TRAILER_BYTES])
        if not (trailer.startswith(b"10=") and trailer[3:6].isdigit() and trailer[6:] == SOH):
            self._skip()
            raise Garbled("CheckSum (10) not where BodyLength (9) says the body ends")
        raw = bytes(buffer[at : body_end + _TRAILER_BYTES])
        checksum = sum(raw[: body_end - at]) % 256
        if checksum != int(trailer[3:6]):
            self._skip()
            raise Garbled(f"CheckSum (10) {trailer[3:6].decode()} but the bytes sum to {checksum}")
        body = raw[body_start - at : body_end - at]
        self._consume(body_end + _TRAILER_BYTES)
        return parse_body(body, raw)

    def _consume(self, position: int) -> None:
        """The bytes before ``position`` are done with."""
        buffer = self._buffer
        if position >= len(buffer):
            buffer.clear()
            self._start = 0
        elif position >= _COMPACT_BYTES and 2 * position >= len(buffer):
            del buffer[:position]
            self._start = 0
        else:
            self._start = position

    def _skip(self) -> None:
        """Drop the garbled message's bytes: up to the next start of a message."""
        following = self._buffer.find(_START, self._start + 1)
        self._consume(following if following > 0 else len(self._buffer))


_COMPACT_BYTES = 64 << 10
"""Consumed bytes at the front of a reader's buffer that are cut off once they are at least
half of it (amortised: each byte is moved a bounded number of times)."""


def parse_body(body: bytes, raw: bytes = b"") -> FixMessage:
    """The (tag, value) pairs of a message body (from ``35=`` to the SOH before ``10=``)."""
    pairs: list[tuple[int, str]] = []
    problem = None
    if not body.endswith(SOH):
        problem = (0, INCORRECT_DATA_FORMAT, "body does not end with SOH")
    for item in body.split(SOH)[:-1] if body.endswith(SOH) else body.split(SOH):
        tag_bytes, equals, value_bytes = item.partition(b"=")
        if not _TAG.fullmatch(tag_bytes) or not equals:
            problem = problem or (0, INVALID_TAG_NUMBER, f"invalid tag {tag_bytes[:12]!r}")
            continue
        tag = int(tag_bytes)
        if not value_bytes:
            problem = problem or (tag, TAG_WITHOUT_VALUE, f"tag {tag} without a value")
            continue
        try:
            value = value_bytes.decode("utf-8")
        except UnicodeDecodeError:
            problem = problem or (tag, INCORRECT_DATA_FORMAT, f"tag {tag}: not UTF-8")
            continue
        pairs.append((tag, value))
    message = FixMessage(pairs, raw)
    if not pairs or pairs[0][0] != 35:
        problem = problem or (35, TAG_OUT_OF_ORDER, "MsgType (35) must be the third field")
    message.problem = problem
    return message


def _clean(value: object) -> bytes:
    text = value if type(value) is str else str(value)
    return text.replace("\x01", " ").replace("\n", " ").encode("utf-8")


def _field(tag: int, value: object) -> bytes:
    """``tag=value``: an int as its digits (nothing to clean), anything else via :func:`_clean`."""
    if type(value) is int:
        return b"%d=%d" % (tag, value)
    return b"%d=%s" % (tag, _clean(value))


def frame(body: bytes) -> bytes:
    """BeginString, BodyLength, ``body`` and its CheckSum: a complete message."""
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    checksum = (sum(head) + sum(body)) % 256
    return head + body + b"10=%03d\x01" % checksum


def encode(
    msg_type: str,
    seq: int,
    sender: str,
    target: str,
    sending_time: str,
    fields: Sequence[tuple[int, object]],
    poss_dup_of: str | None = None,
) -> bytes:
    """A complete message.  ``poss_dup_of``: a resend - PossDupFlag=Y, OrigSendingTime."""
    parts = [b"35=" + _clean(msg_type), b"49=" + _clean(sender), b"56=" + _clean(target)]
    parts.append(b"34=%d" % seq)
    if poss_dup_of is not None:
        parts += [b"43=Y", b"122=" + _clean(poss_dup_of)]
    parts.append(b"52=" + _clean(sending_time))
    parts += [_field(tag, value) for tag, value in fields]
    return frame(SOH.join(parts) + SOH)


def restamp(raw: bytes, sending_time: str) -> bytes:
    """A stored message as its resend: the same MsgSeqNum and fields, PossDupFlag=Y,
    OrigSendingTime = its SendingTime, a new SendingTime."""
    body = raw[raw.index(SOH, len(_BEGIN)) + 1 : -_TRAILER_BYTES]
    message = parse_body(body)
    header = {tag: value for tag, value in message.pairs if tag in (35, 49, 56, 34, 52)}
    fields = [(tag, value) for tag, value in message.pairs if tag not in _HEADER_TAGS]
    return encode(
        header[35],
        int(header[34]),
        header[49],
        header[56],
        sending_time,
        fields,
        poss_dup_of=header[52],
    )


_HEADER_TAGS = frozenset({35, 49, 56, 34, 43, 122, 52})


def utc_timestamp(ts_ns: int) -> str:
    """UTCTimestamp with milliseconds: ``YYYYMMDD-HH:MM:SS.sss``.

    The ``YYYYMMDD-HH:MM:SS`` of the last second formatted is kept: a session stamps two
    fields of every report (SendingTime, TransactTime) within the same second, and ``strftime``
    cost more than the rest of the call."""
    global _last_second
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    last = _last_second  # one tuple, replaced whole: never a second with another's text
    if last[0] != seconds:
        last = _last_second = (seconds, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(seconds)))
    return f"{last[1]}.{rest // 1_000_000:03d}"


_last_second = (0, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(0)))


# ------------------------------------------------------------------------------------------
# Prices: decimal CNY <-> integer fen
# ------------------------------------------------------------------------------------------

_PRICE = re.compile(r"-?[0-9]{1,15}(\.[0-9]{0,12})?")
_HUNDRED = Decimal(100)


def price_fen(text: str) -> int:
    """A decimal CNY price as integer fen, exactly.

    Raises
    ------
    ValueError
        Not a decimal number, or not a whole number of fen (0.01 CNY).

    Examples
    --------
    >>> price_fen("62.5"), price_fen("62.50"), price_fen("0.01")
    (6250, 6250, 1)
    >>> price_fen("62.005")
    Traceback (most recent call last):
    ...
    ValueError: price 62.005 CNY is not a whole number of fen (0.01 CNY)
    """
    if not _PRICE.fullmatch(text):
        raise ValueError(f"price {text!r} is not a decimal number")
    try:
        fen = Decimal(text) * _HUNDRED
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"price {text!r} is not a decimal number") from None
    if fen != fen.to_integral_value():
        raise ValueError(f"price {text} CNY is not a whole number of fen (0.01 CNY)")
    return int(fen)


def format_fen(fen: int) -> str:
    """Integer fen as decimal CNY with two decimals (``6250`` -> ``"62.50"``, ``-5`` ->
    ``"-0.05"``): the text ``str(Decimal(fen).scaleb(-2))`` gives, in integer arithmetic."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"


_AVERAGE_QUANTUM = Decimal("0.000001")


def format_average(cost_fen: int, qty: int) -> str:
    """AvgPx: ``cost_fen / qty`` fen in CNY, rounded half-even to 6 decimals (0 if no qty)."""
    if qty <= 0:
        return "0"
    average = (Decimal(cost_fen) / (_HUNDRED * qty)).quantize(_AVERAGE_QUANTUM)
    return format(average.normalize(), "f")

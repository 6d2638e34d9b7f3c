"""A FIX 4.4 test client on the independent library ``simplefix``, and the codec's own tests.

The client (:class:`FixClient`) is deliberately not built on ``gateway.fix``: messages are
encoded and parsed by simplefix, so the acceptor is checked against another implementation of
the format, not against itself.
"""

from __future__ import annotations

import random
import socket
import time
from decimal import Decimal

import pytest
import simplefix

from gateway.fix import codec as c
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import password, small_market, users

TIMEOUT_S = 10.0


@pytest.fixture(autouse=True)
def close_fix_clients():
    """Close every client a test opened (the tests' sockets never leak)."""
    yield
    while FixClient.opened:
        FixClient.opened.pop().close()


class FixClient:
    """A FIX initiator over a blocking socket: send by hand, receive parsed messages."""

    opened: list[FixClient] = []

    def __init__(self, port: int, sender: str, target: str = "CETS") -> None:
        self.port, self.sender, self.target = port, sender, target
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.parser = simplefix.FixParser()
        self.seq = 1
        self.inbox: list[simplefix.FixMessage] = []
        self.backlog: list[simplefix.FixMessage] = []
        """Received, not yet returned by :meth:`receive`."""
        self.statuses: list[simplefix.FixMessage] = []
        FixClient.opened.append(self)

    # -- sending -------------------------------------------------------------------------------
    def build(self, msg_type: str, fields, seq: int | None = None, poss_dup: bool = False) -> bytes:
        message = simplefix.FixMessage()
        message.append_pair(8, "FIX.4.4", header=True)
        message.append_pair(35, msg_type, header=True)
        message.append_pair(49, self.sender, header=True)
        message.append_pair(56, self.target, header=True)
        message.append_pair(34, self.seq if seq is None else seq, header=True)
        if poss_dup:
            message.append_pair(43, "Y", header=True)
            message.append_utc_timestamp(122, precision=3, header=True)
        message.append_utc_timestamp(52, precision=3, header=True)
        for tag, value in fields:
            message.append_pair(tag, value)
        if seq is None:
            self.seq += 1
        return message.encode()

    def send(self, msg_type: str, fields=(), **kw) -> None:
        self.sock.sendall(self.build(msg_type, fields, **kw))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def logon(
        self,
        user: str,
        secret: str | None = None,
        reset: bool = False,
        instruments: int = 3,
        extra=(),
        **kw,
    ):
        """Log on (with the ``extra`` fields); the answer.  The TradingSessionStatus (h) of
        each of the market's ``instruments`` that follows it is kept in :attr:`statuses`."""
        fields = [(98, 0), (108, 30), (553, user), (554, secret or password(user)), *extra]
        if reset:
            fields.append((141, "Y"))
        self.send("A", fields, **kw)
        answer = self.expect("A")
        others = []
        self.statuses = []
        while len(self.statuses) < instruments:
            message = self.receive()
            assert message is not None, "closed while waiting for the market status"
            (self.statuses if kind(message) == "h" else others).append(message)
        self.backlog = others + self.backlog
        return answer

    # -- receiving -----------------------------------------------------------------------------
    def receive(self, timeout: float = TIMEOUT_S) -> simplefix.FixMessage | None:
        """The next message (None: the connection closed)."""
        if self.backlog:
            return self.backlog.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            message = self.parser.get_message()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [m.to_string("|") for m in self.inbox[-3:]]
                raise TimeoutError(f"no FIX message; last: {seen}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.parser.append_buffer(data)

    def expect(self, msg_type: str, timeout: float = TIMEOUT_S) -> simplefix.FixMessage:
        """The next message of ``msg_type``; the ones before it are kept in :attr:`inbox`."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(0.001, deadline - time.monotonic()))
            if message is None:
                seen = [m.to_string("|") for m in self.inbox[-3:]]
                raise ConnectionError(f"closed while waiting for {msg_type}; last: {seen}")
            if kind(message) == msg_type:
                return message
            if kind(message) != "0":
                self.inbox.append(message)

    def until_closed(self, timeout: float = TIMEOUT_S) -> list[simplefix.FixMessage]:
        messages = []
        while True:
            message = self.receive(timeout)
            if message is None:
                return messages
            messages.append(message)

    def close(self) -> None:
        self.sock.close()


def kind(message: simplefix.FixMessage) -> str:
    return message.get(35).decode()


def field(message: simplefix.FixMessage, tag: int, nth: int = 1) -> str | None:
    value = message.get(tag, nth)
    return None if value is None else value.decode()


def start_fix_server(
    data_dir, durability: str = "none", sync_interval_s: float = 0.05, **config
) -> ServerThread:
    return ServerThread(
        data_dir,
        users(),
        GatewayConfig(port=0, **config),
        market=small_market(),
        durability=durability,
        sync_interval_s=sync_interval_s,
        fix_port=0,
    ).start()


# ------------------------------------------------------------------------------------------
# The codec
# ------------------------------------------------------------------------------------------


def test_prices_convert_exactly_and_refuse_fractions_of_a_fen() -> None:
    assert [c.price_fen(t) for t in ("62", "62.5", "62.50", "0.01", "62.000")] == [
        6200,
        6250,
        6250,
        1,
        6200,
    ]
    for text in ("62.001", "0.005", "1e3", "abc", "", "62,5", "nan", "inf"):
        with pytest.raises(ValueError):
            c.price_fen(text)
    assert c.price_fen("12345678901.23") == 1234567890123  # no float would hold this
    assert [c.format_fen(f) for f in (6200, 6205, 1, 0)] == ["62.00", "62.05", "0.01", "0.00"]
    assert c.format_average(6200 * 3 + 6201, 4) == "62.0025"
    assert c.format_average(1, 3) == "0.003333"
    assert c.format_average(0, 0) == "0"


def test_fen_and_timestamps_are_formatted_as_their_plain_definitions_give() -> None:
    """The integer ``format_fen`` against Decimal's text, and the per-second cache of
    ``utc_timestamp`` against ``strftime`` for every stamp, over random values (seed printed)."""
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    fens = [0, 1, -1, 5, -5, 99, 100, -100, 10**15, -(10**15), 2**62]
    fens += [rng.randrange(-(10**12), 10**12) for _ in range(2_000)]
    for fen in fens:
        assert c.format_fen(fen) == str(Decimal(fen).scaleb(-2)), fen
    stamps = [0, 999_999_999, 1_000_000_000, 1_767_225_599_999_000_000]
    base = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
    stamps += [base + rng.randrange(-3 * 10**9, 3 * 10**9) for _ in range(2_000)]  # back and forth
    for ts in stamps:
        seconds, rest = divmod(ts, 1_000_000_000)
        expected = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(seconds))
        assert c.utc_timestamp(ts) == f"{expected}.{rest // 1_000_000:03d}", ts


def test_the_codec_and_simplefix_agree_on_framing_both_ways() -> None:
    raw = c.encode("D", 7, "CETS", "FIRM", "20250101-09:30:00.000", [(11, "x"), (44, "62.00")])
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    parsed = parser.get_message()
    assert parsed.encode() == raw, "simplefix computes the same BodyLength and CheckSum"
    client = FixClient.__new__(FixClient)
    client.sender, client.target, client.seq = "FIRM", "CETS", 3
    theirs = client.build("0", [(112, "ping")])
    reader = c.FixReader()
    reader.receive_data(theirs[:10])
    assert reader.next() is None, "half a message waits for the rest"
    reader.receive_data(theirs[10:])
    message = reader.next()
    assert (message.msg_type, message.get(34), message.get(112), message.problem) == (
        "0",
        "3",
        "ping",
        None,
    )


def test_garbled_messages_are_dropped_and_the_reader_resynchronises() -> None:
    good = c.encode("0", 1, "A", "B", "20250101-00:00:00.000", [])
    bad_sum = good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 1) % 256)
    length = int(good.split(b"\x01")[1][2:])
    short = good.replace(b"9=%d" % length, b"9=%d" % (length - 3), 1)
    long = good.replace(b"9=%d" % length, b"9=%d" % (length + 20), 1)
    for garbage in (bad_sum, short, long, b"junk" + good[:20]):
        reader = c.FixReader()
        reader.receive_data(garbage + good + good)
        with pytest.raises(c.Garbled):
            reader.next()
        while True:
            try:
                message = reader.next()
                break
            except c.Garbled:
                continue
        assert message is not None and message.get(34) == "1"
    problem = c.parse_body(b"35=D\x0111=\x01").problem
    assert problem[:2] == (11, c.TAG_WITHOUT_VALUE)
    assert c.parse_body(b"35=D\x01x1=2\x01").problem[1] == c.INVALID_TAG_NUMBER
    assert c.parse_body(b"49=A\x0135=D\x01").problem[:2] == (35, c.TAG_OUT_OF_ORDER)


def test_a_resend_keeps_the_fields_and_marks_the_duplicate() -> None:
    raw = c.encode("8", 5, "CETS", "FIRM", "20250101-09:30:00.000", [(37, 9), (58, "a\nb")])
    again = c.restamp(raw, "20250101-10:00:00.000")
    reader = c.FixReader()
    reader.receive_data(again)
    message = reader.next()
    assert [message.get(t) for t in (34, 43, 122, 52, 37, 58)] == [
        "5",
        "Y",
        "20250101-09:30:00.000",
        "20250101-10:00:00.000",
        "9",
        "a b",
    ]

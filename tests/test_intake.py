"""The compiled intake (``gateway.intake``) against the typed decoder and the typed path.

The kernel may only take a frame the typed decoder reads as the same NewOrder; it must take
every plainly encoded one; and a session that takes runs of orders through it must end in
exactly the state, batches and output of a session that decodes every frame the typed way.
"""

from __future__ import annotations

import random
import struct

import msgspec
import pytest

from engine.core import limits
from engine.core import schema as s
from engine.durable.sequencer import Sequencer
from gateway import core as gateway_core
from gateway import intake
from gateway import protocol as p
from gateway.core import GatewayConfig, GatewayCore
from gateway.orders import OrderTracker
from tests.gateway_fixtures import DATE1, SYM_A, SYM_B, password, small_market, users

SYMBOLS = [SYM_A, SYM_B, "CEA-2026"]
FIELDS = [name for name in p.NewOrder.__struct_fields__]


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    assert intake.compile_scanner(wait=True), "the compiled intake must compile"


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def _int(value: int, form: str) -> bytes:
    """``value`` in a chosen MessagePack integer form (non-canonical ones included)."""
    if form == "u8":
        return b"\xcc" + struct.pack(">B", value)
    if form == "u16":
        return b"\xcd" + struct.pack(">H", value)
    if form == "u32":
        return b"\xce" + struct.pack(">I", value)
    if form == "u64":
        return b"\xcf" + struct.pack(">Q", value)
    if form == "i8":
        return b"\xd0" + struct.pack(">b", value)
    if form == "i16":
        return b"\xd1" + struct.pack(">h", value)
    if form == "i32":
        return b"\xd2" + struct.pack(">i", value)
    return b"\xd3" + struct.pack(">q", value)


def _forms(value: int) -> list[str]:
    forms = ["i64"]
    for form, low, high in (
        ("u8", 0, 255), ("u16", 0, 65535), ("u32", 0, 2**32 - 1), ("u64", 0, 2**64 - 1),
        ("i8", -128, 127), ("i16", -(2**15), 2**15 - 1), ("i32", -(2**31), 2**31 - 1),
    ):  # fmt: skip
        if low <= value <= high:
            forms.append(form)
    return forms


def _value(rng: random.Random, name: str):
    if name == "client_order_id":
        choice = rng.random()
        if choice < 0.05:
            return ""
        if choice < 0.1:
            return "é" + str(rng.randrange(100))  # not ASCII: the typed decoder's
        if choice < 0.15:
            return "x" * rng.choice([36, 37, 40])
        return "".join(rng.choice("abcXYZ019-_\n\x00 ") for _ in range(rng.randrange(1, 20)))
    if name == "instrument":
        return rng.choice([*SYMBOLS, SYMBOLS[0], "NOPE", ""])
    edges = {
        "request_id": [0, 1, 2**63 - 1, -1, 12345],
        "account": [-1, 0, 1, 2**31 - 1, 2**31, -2, 7],
        "side": [0, 1, 2, 255, 256, -1],
        "order_type": [0, 1, 4, 255, 256],
        "tif": [0, 1, 3, 255, 256],
        "stp": [0, 1, 2, 300],
        "qty_t": [1, 1000, -5, 2**63 - 1, -(2**63), 0],
        "price_ticks": [0, 6200, -1, 2**63 - 1, -(2**63)],
        "quote_order_id": [0, 5, 2**63 - 1, -1],
    }
    value = rng.choice(edges[name])
    if rng.random() < 0.3:
        value = rng.randrange(-(2**20), 2**40)
    return value


def random_body(rng: random.Random) -> bytes:
    """A NewOrder-like map: random fields, values, key order and integer forms, sometimes
    an unknown or repeated key, a missing required one, the tag elsewhere, a float, a
    trailing byte - or another message altogether."""
    roll = rng.random()
    if roll < 0.4:  # what the project's clients send
        return p.encoder.encode(
            p.NewOrder(
                request_id=rng.randrange(2**40), client_order_id=f"c{rng.randrange(10**6)}",
                instrument=rng.choice(SYMBOLS), side=rng.choice([1, 2]),
                qty_t=rng.randrange(1, 10**6), price_ticks=rng.randrange(-5, 10**5),
                order_type=rng.randrange(6), tif=rng.randrange(4), stp=rng.randrange(4),
                account=rng.randrange(-1, 2**31), quote_order_id=rng.choice([0, 2**62]),
            )
        )  # fmt: skip
    if roll < 0.45:
        return p.encoder.encode(p.Heartbeat())
    if roll < 0.48:
        return p.encoder.encode(p.CancelRequest(request_id=3, order_id=9))
    if roll < 0.5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
    names = [name for name in FIELDS if rng.random() < 0.8 or name in ("client_order_id",)]
    if rng.random() < 0.5:
        rng.shuffle(names)
    entries = [("type", p.encoder.encode(rng.choice([10, 10, 10, 11])))]
    for name in names:
        value = _value(rng, name)
        if isinstance(value, int) and rng.random() < 0.4:
            encoded = _int(value, rng.choice(_forms(value))) if -(2**63) <= value < 2**64 else b""
            encoded = encoded or p.encoder.encode(value)
        elif rng.random() < 0.02:
            encoded = p.encoder.encode(float(1.5))
        else:
            encoded = p.encoder.encode(value)
        entries.append((name, encoded))
    if rng.random() < 0.05:
        entries.append(("extra", p.encoder.encode(1)))
    if rng.random() < 0.05:
        entries.append(entries[-1])
    if rng.random() < 0.05:
        entries.insert(1, entries.pop(0))  # the tag second
    head = (
        bytes([0x80 | len(entries)])
        if len(entries) < 16
        else b"\xde" + struct.pack(">H", len(entries))
    )
    body = head + b"".join(p.encoder.encode(k) + v for k, v in entries)
    if rng.random() < 0.03:
        body += b"\x00"
    return body


def typed(body: bytes):
    try:
        return p.client_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def test_the_kernel_takes_only_what_the_typed_decoder_reads_the_same() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    scanner = intake.OrderScanner(SYMBOLS, 4096)
    taken = plain = 0
    for _ in range(6000):
        body = random_body(rng)
        rows = scanner.scan(bytearray(frame(body)), 1)
        message = typed(body)
        if len(rows):
            taken += 1
            assert type(message) is p.NewOrder, (seed, body)
            [row] = rows.tolist()
            data = frame(body)
            assert row[intake.R_FRAME_END] == len(data)
            coid = data[row[intake.R_COID_START] : row[intake.R_COID_END]].decode("ascii")
            assert coid == message.client_order_id
            assert SYMBOLS[row[intake.R_INSTRUMENT]] == message.instrument
            got = (
                row[intake.R_REQUEST_ID], row[intake.R_ACCOUNT], row[intake.R_SIDE],
                row[intake.R_QTY], row[intake.R_PRICE], row[intake.R_ORDER_TYPE],
                row[intake.R_TIF], row[intake.R_STP], row[intake.R_QUOTE_ORDER_ID],
            )  # fmt: skip
            m = message
            assert got == (
                m.request_id, m.account, m.side, m.qty_t, m.price_ticks, m.order_type, m.tif,
                m.stp, m.quote_order_id,
            ), (seed, body)  # fmt: skip
        if (
            type(message) is p.NewOrder
            and message.instrument in SYMBOLS
            and message.client_order_id.isascii()
            and p.encoder.encode(message) == body
        ):
            plain += 1
            assert len(rows) == 1, ("a plainly encoded order must be taken", seed, body)
    assert taken >= 2000 and plain >= 2000, (taken, plain)


def test_a_run_stops_before_the_first_frame_it_cannot_judge() -> None:
    scanner = intake.OrderScanner(SYMBOLS, 4096)

    def new_order(k: int, instrument: str = SYM_A) -> bytes:
        body = p.encoder.encode(
            p.NewOrder(
                request_id=k, client_order_id=f"c{k}", instrument=instrument, side=1, qty_t=5
            )
        )
        return frame(body)

    orders = b"".join(new_order(k) for k in range(1, 6))
    stream = orders + frame(p.encoder.encode(p.Heartbeat())) + new_order(6)
    rows = scanner.scan(bytearray(stream), 100)
    assert rows[:, intake.R_REQUEST_ID].tolist() == [1, 2, 3, 4, 5]
    assert rows[-1, intake.R_FRAME_END] == len(orders)
    assert len(scanner.scan(bytearray(stream), 3)) == 3, "at most the limit"
    assert len(scanner.scan(bytearray(orders[:-1]), 100)) == 4, "an incomplete frame waits"
    unknown = new_order(1) + new_order(2, "NOPE") + new_order(3)
    assert len(scanner.scan(bytearray(unknown), 100)) == 1, "an unknown symbol is the typed path's"
    small = intake.OrderScanner(SYMBOLS, 20)
    assert len(small.scan(bytearray(orders), 100)) == 0, "an oversized frame is the typed path's"
    assert len(scanner.scan(bytearray(b"\x00\x00\x00\x00" + orders), 100)) == 0


# -- the whole session: compiled intake on and off ---------------------------------------------
def _core(tmp_path, name: str, scanner: bool) -> tuple[Sequencer, GatewayCore]:
    exchange = Sequencer.open(tmp_path / name, small_market(), durability="none")
    exchange.submit([s.OpenSession(trading_date=DATE1)])
    core = GatewayCore(
        exchange,
        GatewayConfig(port=0, messages_per_second=400, open_orders_per_account=60),
    )
    if not scanner:
        core.scanner = None
    return exchange, core


def _logon(core: GatewayCore, directory, name: str, **kw):
    session = core.open_session(len(core.sessions) + 1, 0.0)
    request = p.Logon(user=name, password=password(name), protocol_version=1, **kw)
    session.receive_data(p.encode(request), 0.0)
    core.logons.clear()
    assert core.complete_logon(session, request, None, directory.authenticate(name, password(name)))
    return session


def _stream(rng: random.Random, count: int, runs: bool = False) -> bytes:
    """Orders, mostly plain, with duplicates, foreign and missing accounts, unknown symbols,
    other requests and the odd re-encoded one, for carol (accounts 3 and 4); with ``runs``,
    in runs of up to 80 orders for one account, and fewer other frames."""
    parts = []
    account = 3
    for k in range(1, count + 1):
        roll = rng.random()
        if runs:
            roll = 0.12 + 0.88 * roll if rng.random() < 0.95 else roll
        coid = f"o{rng.randrange(count // 2)}"
        if not runs:
            account = rng.choice([3, 3, 4, 4, -1, 5])
        elif rng.random() < 1 / 40:
            account = rng.choice([3, 3, 4, 4, -1, 5])
        instrument = rng.choice([SYM_A, SYM_A, SYM_B, "NOPE"] if roll < 0.1 else [SYM_A, SYM_B])
        m = p.NewOrder(
            request_id=k, client_order_id=coid, instrument=instrument, side=rng.choice([1, 2]),
            qty_t=rng.choice([1, 5, 10, 100]), price_ticks=rng.choice([5990, 6000, 6010]),
            account=account, stp=rng.choice([1, 2]),
        )  # fmt: skip
        if roll < 0.05:
            body = p.encoder.encode(p.CancelRequest(request_id=k, client_order_id=coid, account=3))
        elif roll < 0.08:
            body = p.encoder.encode(p.Heartbeat())
        elif roll < 0.12:
            body = msgspec.msgpack.encode(
                {"type": 10, "qty_t": m.qty_t, "side": m.side, "instrument": m.instrument,
                 "client_order_id": coid, "request_id": k, "account": 3, "price_ticks": 6000}
            )  # fmt: skip
        else:
            body = p.encoder.encode(m)
        parts.append(frame(body))
    return b"".join(parts)


@pytest.mark.parametrize("partitioned", [False, True])
@pytest.mark.parametrize("runs", [False, True])
@pytest.mark.parametrize("cancel_on_disconnect", [False, True])
def test_sessions_end_the_same_with_the_compiled_intake_or_without(
    tmp_path, monkeypatch, cancel_on_disconnect, runs, partitioned
) -> None:
    """The typed path, the compiled intake order by order, and the compiled intake a group
    at a time (``GatewayCore._take_in_bulk``, forced for every run here) end alike; with
    ``partitioned``, the accounts' reserved ids become ``PartitionedIds`` early in the stream."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    directory = users()
    data = _stream(rng, 1500, runs)
    cuts = sorted(rng.sample(range(1, len(data)), 60))
    times = sorted(rng.uniform(0.0, 3.0) for _ in cuts)
    outcomes = []
    split = 8 if partitioned else OrderTracker.part_ids
    modes = [(False, 1, OrderTracker.part_ids), (True, 10**9, split), (True, 1, split)]
    if partitioned:
        modes.append((False, 1, split))
    for mode, (scanner, bulk_min, part_ids) in enumerate(modes):
        monkeypatch.setattr(gateway_core, "BULK_ORDERS_MIN", bulk_min)
        exchange, core = _core(tmp_path, f"d{mode}", scanner)
        core.tracker.part_ids = part_ids
        try:
            carol = _logon(core, directory, "carol", cancel_on_disconnect=cancel_on_disconnect)
            carol.take_output()
            out = bytearray()
            batches = []
            for start, end, now in zip([0, *cuts], [*cuts, len(data)], [*times, 3.0], strict=True):
                carol.receive_data(data[start:end], now)
                while True:
                    while carol.yielded:
                        carol.resume()
                    for batch in core.take_batches():
                        blob = batch.annotation_blob()
                        records = batch.command_records()
                        batches.append((records.tobytes(), blob))
                        core.batch_committed(batch, exchange.submit_records(records, blob))
                    carol.process()
                    if not carol.yielded and not core.has_batch:
                        break
                out += carol.take_output()[0]
            outcomes.append(
                (
                    bytes(out), batches, carol.tokens, carol.reader.buffered,
                    dict(core.tracker.client_of), {a: set(v) for a, v in core.tracker.live.items()},
                    {a: dict(v) for a, v in core.tracker.by_client.items()},
                    dict(carol.live_orders),
                )
            )  # fmt: skip
        finally:
            exchange.close()
    typed_path = outcomes[0]
    assert len(typed_path[1]) > 5, "the stream must make batches"
    for compiled_path in outcomes[1:]:
        assert _messages(typed_path[0]) == _messages(compiled_path[0]), seed
        for position, (a, b) in enumerate(zip(typed_path[1:], compiled_path[1:], strict=True)):
            assert a == b, (seed, position)


def _messages(data: bytes) -> list:
    """The frames decoded, with the sequencer's wall-clock times taken out."""
    reader = p.FrameReader(limits.OUTBOUND_FRAME_BYTES_MAX)
    messages = [p.decode_server(body) for body in reader.feed(data)]
    return [msgspec.structs.replace(m, ts_ns=0) if hasattr(m, "ts_ns") else m for m in messages]


def test_a_session_takes_orders_through_the_kernel(tmp_path) -> None:
    """The fast path is the one taken for plain orders (else the comparison above proves
    nothing): the typed decoder is never called for them."""
    exchange, core = _core(tmp_path, "d", True)
    try:
        alice = _logon(core, users(), "alice")
        orders = b"".join(
            frame(p.encoder.encode(
                p.NewOrder(request_id=k, client_order_id=f"a{k}", instrument=SYM_A, side=1,
                           qty_t=1, price_ticks=6000)
            ))
            for k in range(1, 41)
        )  # fmt: skip
        calls = []
        original = alice._frame
        alice._frame = lambda body: calls.append(1) or original(body)
        alice.receive_data(orders, 0.0)
        assert len(core.pending) == 40 and calls == [] and alice.reader.buffered == 0
        assert [r[0] for r in core.pending.origins] == [alice] * 40
        assert limits.CLIENT_ORDER_ID_CHARS_MAX == intake.COID_CHARS_MAX
    finally:
        exchange.close()

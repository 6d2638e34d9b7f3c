"""Hostile input: random bytes, truncated and oversized frames, wrong types, unknown tags,
floods.  The server survives, well-behaved sessions trading at the same time are unaffected,
and the log and the books change only by what the well-behaved sessions did.

A fixed budget of seeded cases runs in the suite; a long run::

    CETS_GATEWAY_FUZZ_CASES=20000 CETS_GATEWAY_FUZZ_SEED=7 pytest tests/test_gateway_hostile.py
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time

import msgspec

from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from gateway import protocol as p
from gateway.client import Client
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import DATE1, SYM_A, password, small_market, users

CASES = int(os.environ.get("CETS_GATEWAY_FUZZ_CASES", "300"))
SEED = int(os.environ.get("CETS_GATEWAY_FUZZ_SEED", "20251123"))
CONCURRENT = 16
FRAME_MAX = 4096
_encode = msgspec.msgpack.encode


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def _random_value(rng: random.Random, depth: int = 0):
    roll = rng.randrange(9 if depth < 3 else 6)
    if roll == 0:
        return rng.randint(-(2**63), 2**64 - 1)
    if roll == 1:
        return rng.choice([0, 1, -1, 255, 256, 2**31, 2**63 - 1, 2**63])
    if roll == 2:
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.choice([0, 1, 5, 40, 300])))
    if roll == 3:
        return rng.random() * 10 ** rng.randint(-3, 30)
    if roll == 4:
        return rng.choice([None, True, False, b"\x00\xff"])
    if roll == 5:
        return rng.randbytes(rng.randint(0, 50))
    if roll == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        str(_random_value(rng, depth + 1))[:8]: _random_value(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


_ORDER = {
    "type": 10,
    "client_order_id": "c",
    "instrument": SYM_A,
    "side": 1,
    "qty_t": 1,
    "price_ticks": 6000,
    "order_type": 1,
    "account": -1,
    "request_id": 1,
}
_VALID = [
    (p.NewOrder, _ORDER),
    (p.CancelRequest, {"type": 11, "client_order_id": "c", "order_id": 0, "account": -1}),
    (p.ModifyRequest, {"type": 12, "order_id": 5, "price_ticks": 1, "qty_t": 1}),
    (p.Subscribe, {"type": 20, "instrument": SYM_A, "request_id": 3}),
]
_TEXT_BAD = [1, None, [1], b"\xff", 1.5]
_INT_BAD = ["1", 1.5, None, [1], 2**64 - 1, True]
_BAD = {
    "client_order_id": [*_TEXT_BAD, "x" * 37],
    "instrument": [*_TEXT_BAD, "x" * 33],
    "side": [*_INT_BAD, 256, -1],
    "order_type": [*_INT_BAD, 300],
    "qty_t": _INT_BAD,
    "price_ticks": _INT_BAD,
    "account": [*_INT_BAD, -2, 2**31],
    "request_id": [*_INT_BAD, -1],
    "order_id": [*_INT_BAD, -1],
}
"""Values each field must refuse (``True`` is not an int for msgspec)."""


def _malformed_message(rng: random.Random) -> bytes:
    """The body of a message that must be refused by the decoder."""
    roll = rng.randrange(7)
    if roll == 0:
        return rng.randbytes(rng.randint(1, 200))
    if roll == 1:
        return _encode(rng.choice([[1, 2, 3], 7, "x", None, b"raw", [{"type": 10}]]))
    if roll == 2:
        return _encode({"type": rng.choice([0, 4, 9, 14, 99, 101, 106, -1, 2**40, "10", 1.0])})
    if roll == 3:  # a real message type with one of its fields replaced by a wrong value
        kind, fields = rng.choice(_VALID)
        field = rng.choice(sorted(set(fields) - {"type"}))
        fields = dict(fields, **{field: rng.choice(_BAD[field])})
        return _encode(fields)
    if roll == 4:
        return b"\x91" * rng.choice([100, 1000, 3000]) + b"\x00"  # deep nesting
    if roll == 5:
        return _encode(
            {"type": 13, "command": {"type": rng.choice([1, 77, 10]), "bogus": _random_value(rng)}}
        )
    return _encode(
        {
            "type": rng.choice(sorted(p.CLIENT_TAGS)),
            **{str(rng.randint(0, 3)): _random_value(rng) for _ in range(3)},
        }
    )


def hostile_case(rng: random.Random) -> tuple[str, bytes, bool]:
    """(name, bytes to send, log on as a trader first)."""
    roll = rng.randrange(10)
    logged_on = rng.random() < 0.4
    if roll == 0:
        return "random bytes", rng.randbytes(rng.randint(1, 3000)), logged_on
    if roll == 1:
        return (
            "oversized",
            rng.randint(FRAME_MAX + 1, 2**32 - 1).to_bytes(4, "big")
            + rng.randbytes(rng.randint(0, 100)),
            logged_on,
        )
    if roll == 2:
        return "empty frame", bytes(4), logged_on
    if roll == 3:
        body = _malformed_message(rng)
        return "truncated", _frame(body)[: rng.randint(1, len(body) + 3)], logged_on
    if roll == 4:
        flood = b"".join(_frame(_encode({"type": 3})) for _ in range(rng.randint(100, 2000)))
        return "heartbeat flood", flood + _frame(_malformed_message(rng)), logged_on
    if roll == 5:
        name = rng.choice(["alice", "nobody", "op", "x" * 40, ""])
        logon = {
            "type": 1,
            "user": name,
            "password": _random_value(rng),
            "protocol_version": rng.choice([1, 2, 0, -1]),
        }
        return "random logon", _frame(_encode(logon)), False
    if roll == 6:
        junk = [_frame(_malformed_message(rng)) for _ in range(rng.randint(1, 5))]
        return "malformed messages", b"".join(junk), logged_on
    if roll == 7:
        return (
            "second logon",
            _frame(_encode({"type": 1, "user": "dave", "password": "x", "protocol_version": 1})),
            True,
        )
    if roll == 8:
        order = p.encode(
            p.NewOrder(client_order_id="h", instrument=SYM_A, side=1, qty_t=1, price_ticks=6000)
        )
        return "order before logon", order, False
    return "split header", _frame(_malformed_message(rng))[:2], logged_on


async def attack(port: int, name: str, data: bytes, logged_on: bool) -> None:
    """Send one hostile payload; the server must answer with an error (or nothing) and close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if logged_on:
            writer.write(
                p.encode(
                    p.Logon(
                        user="dave", password=password("dave"), protocol_version=p.PROTOCOL_VERSION
                    )
                )
            )
        writer.write(data)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        received = await asyncio.wait_for(reader.read(), 10)
    except OSError:  # reset by the server, or closed before our half-close
        received = b""
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    frames = p.FrameReader(p.limits.OUTBOUND_FRAME_BYTES_MAX).feed(received)
    messages = [p.decode_server(body) for body in frames]
    allowed = (p.ProtocolError, p.LogonRejected, p.LogonAccepted, p.Heartbeat, p.Reject, p.Logout)
    # a query answer (nothing changes) only for an account the attacking user is bound to
    assert all(
        type(m) in allowed or (type(m) is p.AccountState and m.account == 5) for m in messages
    ), (name, messages)
    assert all(
        len(m.text) <= p.limits.TEXT_CHARS_MAX for m in messages if type(m) is p.ProtocolError
    )


async def honest_trading(server: ServerThread, ready: asyncio.Event, stop: asyncio.Event) -> list:
    """Two traders crossing orders until told to stop; every request must succeed."""
    alice = Client("127.0.0.1", server.port, "alice", password("alice"))
    bob = Client("127.0.0.1", server.port, "bob", password("bob"))
    await alice.connect()
    await bob.connect()
    ready.set()
    commands, k = [], 0
    try:
        while not stop.is_set():
            side = s.Side.BUY if k % 2 else s.Side.SELL
            client, account = (alice, 1) if k % 3 else (bob, 2)
            tif = s.TimeInForce.DAY if k % 4 == 0 else s.TimeInForce.IOC
            price = 5995 + k % 11
            outcome = await client.new_order(SYM_A, side, 1 + k % 5, price, tif=tif)
            assert outcome.ok and outcome.reports, (outcome, repr(server.gateway.failure))
            commands.append(
                s.SubmitOrder(
                    order_id=outcome.order_id,
                    account=account,
                    instrument=SYM_A,
                    side=side,
                    qty_t=1 + k % 5,
                    price_ticks=price,
                    tif=tif,
                    seq=outcome.seq,
                )
            )
            k += 1
    finally:
        await alice.close()
        await bob.close()
    return commands


def test_hostile_input_changes_nothing_and_hurts_no_one(tmp_path, caplog) -> None:
    config = GatewayConfig(
        port=0, frame_bytes_max=FRAME_MAX, logon_timeout_s=2.0, messages_per_second=5_000
    )
    rng = random.Random(SEED)
    print(f"seed {SEED}, {CASES} cases")
    with ServerThread(
        tmp_path / "data", users(), config, market=small_market(), durability="none"
    ) as server:

        async def scenario() -> list:
            op = Client("127.0.0.1", server.port, "op", password("op"))
            await op.connect()
            opened = await op.engine(s.OpenSession(trading_date=DATE1))
            await op.close()
            stop, ready = asyncio.Event(), asyncio.Event()
            honest = asyncio.create_task(honest_trading(server, ready, stop))
            await ready.wait()
            semaphore = asyncio.Semaphore(CONCURRENT)
            seen: dict[str, int] = {}
            slowest: list = []

            async def one(case: tuple[str, bytes, bool]) -> None:
                async with semaphore:
                    seen[case[0]] = seen.get(case[0], 0) + 1
                    started = time.monotonic()
                    await attack(server.port, *case)
                    slowest.append((time.monotonic() - started, case[0], case[2]))

            await asyncio.gather(*[one(hostile_case(rng)) for _ in range(CASES)])
            stop.set()
            commands = await honest
            assert len(seen) == 10, seen
            print("slowest attacks", sorted(slowest)[-3:])
            return [s.OpenSession(trading_date=DATE1, seq=opened.seq), *commands]

        commands = asyncio.run(scenario())
        last_seq, state_hash = server.call(
            lambda: (server.gateway.exchange.last_seq, server.gateway.exchange.state_hash())
        )
        assert last_seq == len(commands), "only the honest sessions' commands were sequenced"
        engine = CompiledEngine(small_market())
        engine.apply_all(sorted(commands, key=lambda c: c.seq))
        assert state_hash == engine.state_hash()
        assert len(commands) > 10, "the honest sessions kept trading throughout"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"the server logged errors: {[r.getMessage() for r in errors][:5]}"

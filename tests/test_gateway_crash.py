"""Crash: SIGKILL the gateway process under load, restart it, and check that every order that
was acknowledged is in the recovered state and that clients resume with resend and miss
nothing.

``CETS_GATEWAY_CRASH_ROUNDS=10 pytest tests/test_gateway_crash.py`` kills it more times.
"""

from __future__ import annotations

import asyncio
import os
import random

from bench import gateway as bench
from engine.core import schema as s
from engine.core.records import K_SUBMIT
from engine.durable import journal as jr
from gateway import protocol as p
from gateway.client import Client, ConnectionLost
from gateway.orders import decode_annotation

ROUNDS = int(os.environ.get("CETS_GATEWAY_CRASH_ROUNDS", "1"))
TRADERS = 3


async def _load(client: Client, rng: random.Random, acked: dict, stop: asyncio.Event) -> None:
    """Pipeline orders (and some cancels) until the connection dies or ``stop`` is set."""
    k = 0
    in_flight: list[tuple[int, str]] = []
    try:
        while not stop.is_set():
            for _ in range(20):
                client_order_id = client.next_client_order_id()
                request_id = client.send_new_order(
                    bench.SYMBOL,
                    rng.choice([1, 2]),
                    rng.randint(1, 20),
                    bench.REFERENCE_TICKS + rng.randint(-10, 10),
                    tif=rng.choice([1, 1, 3]),
                    client_order_id=client_order_id,
                )
                in_flight.append((request_id, client_order_id))
                k += 1
            while len(in_flight) > 60:
                request_id, client_order_id = in_flight.pop(0)
                outcome = await client.outcome(request_id)
                assert outcome.ok, outcome
                acked[client_order_id] = outcome.seq
    except ConnectionLost:
        return


async def _fresh_stream(port: int, user: str) -> list:
    client = Client("127.0.0.1", port, user, bench.PASSWORD)
    await client.connect(resume_from_seq=1, timeout=60)
    await client.close()
    return client.stream


def _logged_orders(data_dir) -> dict[int, tuple[int, str]]:
    """seq -> (order id, client order id) of every SubmitOrder in the log."""
    orders = {}
    for batch in jr.read_log(data_dir / "log"):
        annotations = batch.annotations() or [None] * batch.count
        for i, record in enumerate(batch.commands.tolist()):
            if record[8] == K_SUBMIT:
                orders[record[0]] = (record[2], decode_annotation(annotations[i]).client_order_id)
    return orders


def test_sigkill_under_load_loses_no_acknowledged_order(tmp_path) -> None:
    data = tmp_path / "data"
    rng = random.Random(99)
    print(f"seed 99, {ROUNDS} rounds")
    server = bench.ServerProcess(data, TRADERS, "batch").start()
    bench._open_market(server.port)
    acked: dict[str, int] = {}

    async def scenario() -> list[Client]:
        nonlocal server
        loop = asyncio.get_running_loop()
        clients = [
            Client("127.0.0.1", server.port, f"t{i}", bench.PASSWORD) for i in range(TRADERS)
        ]
        for client in clients:
            await client.connect()
        for _ in range(ROUNDS):
            stop = asyncio.Event()
            load = [
                asyncio.create_task(_load(c, random.Random(rng.random()), acked, stop))
                for c in clients
            ]
            await asyncio.sleep(0.6 + rng.random() * 0.4)
            await loop.run_in_executor(None, server.kill)  # SIGKILL, mid-batch or not
            await asyncio.gather(*load)
            server = await loop.run_in_executor(
                None, lambda: bench.ServerProcess(data, TRADERS, "batch").start()
            )
            for client in clients:
                await client.wait_closed()
                client.port = server.port
                await client.reconnect(timeout=60)
        for i, client in enumerate(clients):
            assert client.stream == await _fresh_stream(server.port, f"t{i}"), (
                f"t{i} missed or repeated something across the crash"
            )
            await client.close()
        return clients

    try:
        clients = asyncio.run(scenario())
    finally:
        server.stop()
    print(f"{len(acked)} orders acknowledged before the kills")
    assert len(acked) > 100, "the load ran"
    logged = _logged_orders(data)
    missing = [(cid, seq) for cid, seq in acked.items() if logged.get(seq) != (seq, cid)]
    assert not missing, f"acknowledged orders missing from the log: {missing[:5]}"
    for client in clients:
        accepted = {
            r.client_order_id
            for r in client.stream
            if type(r) is p.ExecutionReport
            and r.exec_type in (p.ExecType.ACCEPTED, p.ExecType.REJECTED)
        }
        mine = {cid for cid in acked if cid.startswith(client._prefix)}
        assert mine <= accepted, "every acknowledged order was reported to its owner"
    assert all(seq > 0 for seq in acked.values()) and s.Side.BUY == 1

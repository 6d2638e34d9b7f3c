"""The gateway on a real loopback port: order entry, reports, concurrency against the engine
fed directly, replay, security refusals, limits, timeouts, market data, cancel-on-disconnect,
graceful shutdown and restart.

Every test runs a real server (``ServerThread``: the gateway's own event loop on a thread of
this process) and real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time

import msgspec
import pytest

from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from engine.core.records import Codec
from gateway import protocol as p
from gateway.client import Client, ConnectionLost, LogonError, Outcome
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import DATE1, DATE2, SYM_A, SYM_B, SYM_C, password, small_market, users

ET, RC = p.ExecType, p.RejectCode
BUY, SELL = s.Side.BUY, s.Side.SELL


@pytest.fixture
def start(tmp_path):
    """Start a gateway over a fresh (or given) data directory; stopped at the end."""
    servers: list[ServerThread] = []

    def start_server(data_dir=None, durability="none", extra_users=None, market=None, **config):
        server = ServerThread(
            data_dir or tmp_path / "data",
            users(extra=extra_users),
            GatewayConfig(port=0, **config),
            market=market or small_market(),
            durability=durability,
        ).start()
        servers.append(server)
        return server

    yield start_server
    for server in servers:
        server.stop()


def state(server: ServerThread) -> tuple[int, str]:
    """(last seq, state hash) of the server's exchange, read on its own loop."""
    return server.call(
        lambda: (server.gateway.exchange.last_seq, server.gateway.exchange.state_hash())
    )


@contextlib.asynccontextmanager
async def session(server: ServerThread, name: str, **kw):
    client = Client("127.0.0.1", server.port, name, password(name), **kw)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


def run(coroutine):
    return asyncio.run(coroutine)


def reports_of(outcome: Outcome) -> list[tuple]:
    return [(r.exec_type, r.order_id, r.leaves_qty_t) for r in outcome.reports]


async def open_market(op: Client, date: int = DATE1) -> Outcome:
    outcome = await op.engine(s.OpenSession(trading_date=date))
    assert outcome.ok and type(outcome.reports[0].event) is s.SessionOpened
    return outcome


def test_stats_count_batches_and_time_every_log_sync(start, tmp_path) -> None:
    """Under ``batch`` durability every batch is synced once and each sync is timed; under
    ``none`` nothing is synced."""
    for durability in ("batch", "none"):
        server = start(data_dir=tmp_path / durability, durability=durability)

        async def scenario(server: ServerThread) -> None:
            async with session(server, "op") as op, session(server, "alice") as alice:
                await open_market(op)
                for k in range(5):
                    await alice.new_order(SYM_A, SELL, 10, 6000 + k, client_order_id=f"s{k}")

        run(scenario(server))
        stats = server.call(server.gateway.stats)
        assert stats.batches == stats.commands == 6
        if durability == "batch":
            assert stats.syncs == 6
            assert 0 < stats.sync_us_p50 <= stats.sync_us_p99 <= stats.sync_us_p999
            assert stats.sync_us_p999 <= stats.sync_us_max <= stats.batch_latency_us_max
        else:
            assert (stats.syncs, stats.sync_us_max) == (0, 0.0)


def test_interval_durability_syncs_a_quiet_exchange_once_the_interval_has_passed(tmp_path):
    """Under ``interval`` a batch syncs the log only once the interval has passed since the
    last sync; the gateway's timer syncs the last batches of a quiet exchange too."""
    interval = 1.0
    server = ServerThread(
        tmp_path / "data",
        users(),
        GatewayConfig(port=0),
        market=small_market(),
        durability="interval",
        sync_interval_s=interval,
    ).start()
    try:
        exchange = server.call(lambda: server.gateway.exchange)

        def look() -> tuple[float | None, int]:  # on the server's loop, in one go
            return exchange.sync_due_in(), len(exchange.journal.sync_seconds)

        async def scenario(server: ServerThread) -> tuple[float | None, int]:
            async with session(server, "op") as op, session(server, "alice") as alice:
                await open_market(op)
                for k in range(40):  # ~2 s: until a batch is left for the timer, with margin
                    await alice.new_order(SYM_A, SELL, 10, 6000 + k, client_order_id=f"q{k}")
                    waiting, syncs = server.call(look)
                    if waiting is not None and waiting > interval / 2:
                        return waiting, syncs
                    await asyncio.sleep(0.05)
            raise AssertionError("no batch left the log unsynced long enough to look")

        waiting, syncs = run(scenario(server))
        assert interval / 2 < waiting <= interval  # acknowledged, not yet synced
        deadline = time.monotonic() + interval + 10.0
        while server.call(exchange.sync_due_in) is not None:  # no traffic from here on
            assert time.monotonic() < deadline, "the quiet exchange's last batch never synced"
            time.sleep(0.05)
        assert server.call(lambda: len(exchange.journal.sync_seconds)) == syncs + 1
        assert server.call(exchange.sync_if_due) is False  # nothing left to sync
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------
# Order entry and reports
# ------------------------------------------------------------------------------------------


def test_order_lifecycle_reports_and_acks(start) -> None:
    server = start()

    async def scenario() -> None:
        async with (
            session(server, "op") as op,
            session(server, "alice") as alice,
            session(server, "bob") as bob,
            session(server, "carol") as carol,
        ):
            opened = await open_market(op)
            assert opened.seq == 1 and opened.reports[0].request_id == opened.request_id
            sell = await alice.new_order(SYM_A, SELL, 100, 6000, client_order_id="s1")
            assert (sell.seq, sell.order_id, sell.client_order_id) == (2, 2, "s1")
            assert reports_of(sell) == [(ET.ACCEPTED, 2, 100)]
            buy = await bob.new_order(SYM_A, BUY, 60, 6010, client_order_id="b1")
            assert reports_of(buy) == [(ET.ACCEPTED, 3, 60), (ET.FILLED, 3, 0)]
            fill = buy.reports[1]
            assert (fill.last_qty_t, fill.last_price_ticks, fill.liquidity, fill.leg) == (
                60,
                6000,
                p.Liquidity.TAKER,
                0,
            )
            await asyncio.sleep(0.05)
            maker = alice.stream[-1]
            assert (
                maker.exec_type,
                maker.leg,
                maker.client_order_id,
                maker.request_id,
                maker.leaves_qty_t,
                maker.side,
                maker.liquidity,
            ) == (ET.PARTIALLY_FILLED, 1, "s1", 0, 40, SELL, p.Liquidity.MAKER)
            assert all(r.account == 2 for r in bob.stream), "bob sees only his own account"
            modified = await alice.modify(6005, 30, client_order_id="s1")
            assert [
                (r.exec_type, r.priority_kept, r.old_price_ticks, r.old_qty_t)
                for r in modified.reports
            ] == [(ET.MODIFIED, False, 6000, 40)]
            cancelled = await alice.cancel(client_order_id="s1")
            assert [(r.exec_type, r.qty_t, r.reason) for r in cancelled.reports] == [
                (ET.CANCELLED, 30, s.CancelReason.REQUESTED)
            ]
            again = await alice.cancel(client_order_id="s1")
            assert again.ok and [(r.exec_type, r.reason) for r in again.reports] == [
                (ET.CANCEL_REJECTED, s.RejectReason.UNKNOWN_ORDER)
            ]
            ambiguous = await carol.new_order(SYM_B, BUY, 100, 5995)
            assert ambiguous.reject.code == RC.ACCOUNT_REQUIRED
            day = await carol.new_order(SYM_B, BUY, 100, 5995, account=4, client_order_id="d")
            bad = await carol.new_order(SYM_B, BUY, 150, 5995, account=3)
            assert bad.ok and [(r.exec_type, r.reason) for r in bad.reports] == [
                (ET.REJECTED, s.RejectReason.QUANTITY_OFF_LOT)
            ]
            closed = await op.engine(s.CloseSession(trading_date=DATE1))
            assert [type(r.event) for r in closed.reports] == [
                s.SessionClosed,
                s.SessionModeVolumes,
            ] * 3 + [s.CompositePrice]
            await asyncio.sleep(0.05)
            expired = carol.stream[-1]
            assert (
                expired.exec_type,
                expired.order_id,
                expired.client_order_id,
                expired.request_id,
            ) == (ET.EXPIRED, day.order_id, "d", 0)
            await open_market(op, DATE2)
            await alice.new_order(SYM_C, BUY, 5, 6000, tif=s.TimeInForce.GTC)
            await alice.new_order(SYM_A, BUY, 5, 6000)
            mass = await alice.mass_cancel(1)
            kinds = [type(r).__name__ for r in mass.reports]
            assert kinds == ["ExecutionReport", "ExecutionReport", "EventReport"]
            assert mass.reports[-1].event.cancelled_count == 2

    run(scenario())


# ------------------------------------------------------------------------------------------
# Concurrency: the same results as the engine fed directly
# ------------------------------------------------------------------------------------------

TRADERS = {"alice": 1, "bob": 2, "dave": 5, "t6": 6, "t7": 7, "t8": 8}


async def _trade_randomly(client: Client, account: int, rng: random.Random, n: int) -> list:
    """Pipeline ``n`` random requests; return (request, outcome) pairs."""
    sent, mine = [], []
    for k in range(n):
        roll = rng.random()
        if roll < 0.7 or not mine:
            symbol = rng.choice([SYM_A, SYM_A, SYM_C])
            price = 6000 + rng.randint(-15, 15) + (2000 if rng.random() < 0.02 else 0)
            order_type = rng.choices([1, 2, 3], weights=[80, 8, 12])[0]
            tif = {1: rng.choice([1, 1, 2, 3, 4]), 2: rng.choice([3, 4]), 3: rng.choice([1, 2])}[
                order_type
            ]
            request = p.NewOrder(
                client_order_id=f"{account}-{k}",
                instrument=symbol,
                side=rng.choice([1, 2]),
                qty_t=rng.randint(1, 40),
                price_ticks=price,
                order_type=order_type,
                tif=tif,
                stp=rng.choice([1, 2, 3]),
            )
            request_id = client.send_new_order(
                request.instrument,
                request.side,
                request.qty_t,
                request.price_ticks,
                client_order_id=request.client_order_id,
                order_type=request.order_type,
                tif=request.tif,
                stp=request.stp,
            )
            mine.append(request.client_order_id)
        elif roll < 0.82:
            request = p.CancelRequest(client_order_id=rng.choice(mine + ["never-used"]))
            request_id = client.send_cancel(client_order_id=request.client_order_id)
        elif roll < 0.97:
            request = p.ModifyRequest(
                client_order_id=rng.choice(mine),
                price_ticks=6000 + rng.randint(-15, 15),
                qty_t=rng.randint(1, 40),
            )
            request_id = client.send_modify(
                request.price_ticks, request.qty_t, client_order_id=request.client_order_id
            )
        else:
            request = p.EngineRequest(command=s.MassCancel(account=account))
            request_id = client.send_engine(request.command)
        sent.append((request, request_id))
        if k % 25 == 0:
            await asyncio.sleep(0)
    return [(request, await client.outcome(request_id)) for request, request_id in sent]


def _command_of(request, outcome: Outcome, account: int):
    """The engine command a sequenced request became, rebuilt from the client's side."""
    seq = outcome.seq
    if type(request) is p.NewOrder:
        assert outcome.order_id == seq, "the gateway's order id is the command's seq"
        return s.SubmitOrder(
            order_id=seq,
            account=account,
            instrument=request.instrument,
            side=request.side,
            qty_t=request.qty_t,
            price_ticks=request.price_ticks,
            order_type=request.order_type,
            tif=request.tif,
            stp=request.stp,
            seq=seq,
        )
    if type(request) is p.CancelRequest:
        return s.CancelOrder(order_id=outcome.order_id, account=account, seq=seq)
    if type(request) is p.ModifyRequest:
        return s.ModifyOrder(
            order_id=outcome.order_id,
            account=account,
            seq=seq,
            price_ticks=request.price_ticks,
            qty_t=request.qty_t,
        )
    return msgspec.structs.replace(request.command, seq=seq)


def _fact(report) -> tuple:
    """What a report says, independent of its encoding."""
    category = {
        ET.ACCEPTED: "new",
        ET.REJECTED: "rej",
        ET.PARTIALLY_FILLED: "fill",
        ET.FILLED: "fill",
        ET.CANCELLED: "out",
        ET.EXPIRED: "out",
        ET.MODIFIED: "mod",
        ET.CANCEL_REJECTED: "crej",
        ET.MODIFY_REJECTED: "mrej",
    }[report.exec_type]
    amount = report.last_qty_t if category == "fill" else report.qty_t
    return (
        report.seq,
        report.index,
        report.leg,
        category,
        report.account,
        report.order_id,
        amount,
        report.leaves_qty_t if category in ("fill", "new", "mod") else 0,
    )


def _expected_facts(events: list, account: int) -> set[tuple]:
    """The same facts, derived from the engine's typed events without the gateway's code."""
    facts, index, seq = set(), 0, None
    for e in events:
        index = index + 1 if e.seq == seq else 0
        seq = e.seq
        t = type(e)
        if t is s.TradeExecuted:
            for leg, (acct, oid, leaves) in enumerate(
                [
                    (e.taker_account, e.taker_order_id, e.taker_leaves_t),
                    (e.maker_account, e.maker_order_id, e.maker_leaves_t),
                ]
            ):
                if acct == account:
                    facts.add((e.seq, index, leg, "fill", acct, oid, e.qty_t, leaves))
            continue
        if getattr(e, "account", None) != account or t is s.MassCancelled:
            continue
        category, amount, leaves = {
            s.OrderAccepted: ("new", e.qty_t if t is s.OrderAccepted else 0, None),
            s.OrderRejected: ("rej", getattr(e, "qty_t", 0), 0),
            s.OrderCancelled: ("out", getattr(e, "qty_t", 0), 0),
            s.OrderModified: ("mod", getattr(e, "qty_t", 0), None),
            s.CancelRejected: ("crej", 0, 0),
            s.ModifyRejected: ("mrej", getattr(e, "qty_t", 0), 0),
        }[t]
        facts.add(
            (
                e.seq,
                index,
                0,
                category,
                account,
                e.order_id,
                amount,
                amount if leaves is None else leaves,
            )
        )
    return facts


def test_concurrent_clients_match_the_engine_fed_directly(start) -> None:
    extra = {name: [account] for name, account in TRADERS.items() if name.startswith("t")}
    extra["watcher"] = [6, 7]  # another user of two traders' accounts: sees, never sends
    server = start(extra_users=extra)
    rng = random.Random(20250102)
    print(f"seed {20250102}")

    async def scenario():
        async with contextlib.AsyncExitStack() as stack:
            viewer = await stack.enter_async_context(session(server, "viewer", drop_copy=True))
            op = await stack.enter_async_context(session(server, "op"))
            watcher = await stack.enter_async_context(session(server, "watcher"))
            clients = {
                name: await stack.enter_async_context(session(server, name)) for name in TRADERS
            }
            opened = await open_market(op)
            trading = asyncio.gather(
                *[
                    _trade_randomly(client, TRADERS[name], random.Random(rng.random()), 150)
                    for name, client in clients.items()
                ]
            )
            await asyncio.sleep(0.05)
            kill = await op.mass_cancel(7)  # the operator's kill switch, mid-flow
            results = await trading
            await asyncio.sleep(0.1)
            return viewer, watcher, opened, kill, clients, results

    viewer, watcher, opened, kill, clients, results = run(scenario())
    commands = {
        opened.seq: s.OpenSession(trading_date=DATE1, seq=opened.seq),
        kill.seq: s.MassCancel(account=7, seq=kill.seq),
    }
    rejected = 0
    for name, pairs in zip(TRADERS, results):
        for request, outcome in pairs:
            if outcome.reject is not None:
                rejected += 1
                assert outcome.reject.code == RC.UNKNOWN_CLIENT_ORDER_ID
                continue
            commands[outcome.seq] = _command_of(request, outcome, TRADERS[name])
    assert sorted(commands) == list(range(1, len(commands) + 1)), "no seq missing, none extra"
    assert rejected > 0, "the workload exercises gateway rejects"
    engine = CompiledEngine(small_market())
    events = engine.apply_all([commands[seq] for seq in sorted(commands)])
    assert state(server) == (len(commands), engine.state_hash())
    for name, client in clients.items():
        got = {_fact(m) for m in client.stream if type(m) is p.ExecutionReport}
        assert got == _expected_facts(events, TRADERS[name]), name
        assert len(got) == sum(type(m) is p.ExecutionReport for m in client.stream)
    codec = Codec(small_market())
    assert [codec.event_row(m.event)[3:] for m in viewer.stream] == [
        codec.event_row(e)[3:] for e in events
    ], "the drop copy is every event, in order"

    async def replayed(name: str, **kw) -> list:
        client = Client("127.0.0.1", server.port, name, password(name), **kw)
        await client.connect(resume_from_seq=1)
        await client.close()
        assert client.replays[0].last_seq == len(commands)
        return client.stream

    for name in ("alice", "t7"):
        assert run(replayed(name)) == clients[name].stream, "replay == live, message for message"
    assert run(replayed("watcher")) == watcher.stream
    assert {m.account for m in watcher.stream if type(m) is p.ExecutionReport} == {6, 7}
    assert not any(m.request_id for m in watcher.stream), "others' request ids are not echoed"
    assert run(replayed("viewer", drop_copy=True)) == viewer.stream


# ------------------------------------------------------------------------------------------
# Security
# ------------------------------------------------------------------------------------------


def test_security_refusals_have_codes_and_change_nothing(start) -> None:
    server = start()

    async def scenario():
        async with session(server, "op") as op, session(server, "alice") as alice:
            await open_market(op)
            victim = await alice.new_order(SYM_A, SELL, 10, 6100, client_order_id="v1")
            before = state(server)
            for name, secret in (("alice", "wrong"), ("nobody", "alice-secret")):
                with pytest.raises(LogonError) as info:
                    await Client("127.0.0.1", server.port, name, secret).connect()
                assert info.value.code == p.LogonRejectCode.BAD_CREDENTIALS
            with pytest.raises(LogonError) as info:
                await Client(
                    "127.0.0.1", server.port, "bob", password("bob"), drop_copy=True
                ).connect()
            assert info.value.code == p.LogonRejectCode.NOT_PERMITTED
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                p.encode(
                    p.NewOrder(
                        client_order_id="x",
                        instrument=SYM_A,
                        side=1,
                        qty_t=1,
                        price_ticks=6000,
                        account=1,
                    )
                )
            )
            error = p.decode_server((await reader.read(1 << 16))[4:])
            assert (type(error), error.code) == (p.ProtocolError, p.ProtocolErrorCode.NOT_LOGGED_ON)
            assert await reader.read() == b"", "closed after the protocol error"
            writer.close()
            await writer.wait_closed()
            async with (
                session(server, "bob") as bob,
                session(server, "viewer") as viewer,
                session(server, "reg") as reg,
            ):
                refusals = [
                    (await bob.cancel(client_order_id="v1", account=1), RC.ACCOUNT_NOT_PERMITTED),
                    (await bob.cancel(client_order_id="v1"), RC.UNKNOWN_CLIENT_ORDER_ID),
                    (
                        await bob.modify(6000, 1, order_id=victim.order_id, account=1),
                        RC.ACCOUNT_NOT_PERMITTED,
                    ),
                    (await bob.mass_cancel(1), RC.ACCOUNT_NOT_PERMITTED),
                    (
                        await bob.new_order(SYM_A, BUY, 10, 6100, account=1),
                        RC.ACCOUNT_NOT_PERMITTED,
                    ),
                    (await bob.engine(s.HaltInstrument(instrument=SYM_A)), RC.NOT_PERMITTED),
                    (await bob.engine(s.OpenSession(trading_date=DATE2)), RC.NOT_PERMITTED),
                    (
                        await bob.engine(
                            s.SubmitOrder(
                                order_id=99,
                                account=2,
                                instrument=SYM_A,
                                side=BUY,
                                qty_t=1,
                                price_ticks=6000,
                            )
                        ),
                        RC.INVALID_REQUEST,
                    ),
                    (await op.new_order(SYM_A, BUY, 10, 6100, account=1), RC.NOT_PERMITTED),
                    (await viewer.new_order(SYM_A, BUY, 10, 6100), RC.NOT_PERMITTED),
                    (await viewer.mass_cancel(1), RC.NOT_PERMITTED),
                    (await reg.engine(s.HaltInstrument(instrument=SYM_A)), RC.NOT_PERMITTED),
                    (
                        await alice.new_order(SYM_A, SELL, 10, 6100, client_order_id="v1"),
                        RC.DUPLICATE_CLIENT_ORDER_ID,
                    ),
                    (await op.engine(s.OpenSession(trading_date=2**64 - 1)), RC.INVALID_REQUEST),
                ]
                if hasattr(s, "IssueAllowances"):
                    refusals.append(
                        (
                            await bob.engine(
                                s.IssueAllowances(key=1, account=2, instrument=SYM_A, qty_t=10**6)
                            ),
                            RC.NOT_PERMITTED,
                        )
                    )
                for outcome, code in refusals:
                    assert (outcome.seq, outcome.reject.code) == (0, code), outcome.reject
                assert state(server) == before, "no refusal reached the log"
                stolen = await bob.engine(s.CancelOrder(order_id=victim.order_id, account=2))
                # answered as for an order that does not exist: nothing of alice's reaches bob
                assert [(r.exec_type, r.reason, r.client_order_id) for r in stolen.reports] == [
                    (ET.CANCEL_REJECTED, s.RejectReason.UNKNOWN_ORDER, "")
                ]
                assert stolen.client_order_id == ""
                assert state(server)[1] == before[1], "the engine refused it: books unchanged"
                assert all(r.account == 1 for r in alice.stream)
                assert not any(
                    getattr(r, "request_id", 0) and r.account != 2
                    for r in bob.stream
                    if type(r) is p.ExecutionReport
                )

    run(scenario())


# ------------------------------------------------------------------------------------------
# Limits and timeouts
# ------------------------------------------------------------------------------------------


def test_limits_throttle_open_orders_sessions_subscriptions(start) -> None:
    server = start(
        messages_per_second=40,
        open_orders_per_account=3,
        sessions_per_user=2,
        subscriptions_per_session=2,
    )

    async def scenario():
        async with (
            session(server, "op") as op,
            session(server, "alice") as alice,
            session(server, "alice") as alice2,
        ):
            await open_market(op)
            with pytest.raises(LogonError) as info:
                await Client("127.0.0.1", server.port, "alice", password("alice")).connect()
            assert info.value.code == p.LogonRejectCode.SESSION_LIMIT
            resting = [await alice.new_order(SYM_A, BUY, 1, 5990 + i) for i in range(3)]
            assert all(o.ok for o in resting)
            full = await alice2.new_order(SYM_A, BUY, 1, 5990)
            assert full.reject.code == RC.OPEN_ORDER_LIMIT
            await alice.cancel(order_id=resting[0].order_id)
            assert (await alice2.new_order(SYM_A, BUY, 1, 5990)).ok, "a slot was freed"
            for symbol in (SYM_A, SYM_B):
                await alice.subscribe(symbol)
            with pytest.raises(Exception, match="subscription"):
                await alice.subscribe(SYM_C)
            with pytest.raises(Exception, match="subscription"):
                await alice.subscribe("NOPE")
            await asyncio.sleep(1.1)  # a full bucket
            ids = [alice.send_cancel(client_order_id="never") for _ in range(80)]
            outcomes = [await alice.outcome(i) for i in ids]
            codes = [o.reject.code for o in outcomes]
            assert codes.count(RC.THROTTLED) >= 30 and codes.count(RC.UNKNOWN_CLIENT_ORDER_ID) >= 35
            assert alice.connected, "throttling rejects, it does not disconnect"
            await asyncio.sleep(0.5)
            assert (await alice.cancel(client_order_id="never")).reject.code == (
                RC.UNKNOWN_CLIENT_ORDER_ID
            )

    run(scenario())


def test_timeouts_and_heartbeats(start) -> None:
    server = start(heartbeat_interval_s=0.1, idle_timeout_s=0.5, logon_timeout_s=0.3)

    async def scenario():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        error = p.decode_server((await asyncio.wait_for(reader.read(1 << 16), 5))[4:])
        assert error.code == p.ProtocolErrorCode.LOGON_TIMEOUT
        writer.close()
        await writer.wait_closed()
        silent = Client("127.0.0.1", server.port, "bob", password("bob"))
        await silent.connect()
        silent._heartbeat.cancel()  # stop our heartbeats: the server must time us out
        await silent.wait_closed(5)
        assert silent.errors[-1].code == p.ProtocolErrorCode.IDLE_TIMEOUT
        beats = []
        async with session(server, "alice", on_message=beats.append) as alice:
            await asyncio.sleep(0.8)
            assert alice.connected, "a client that heartbeats is never idle"
        assert sum(type(m) is p.Heartbeat for m in beats) >= 3

    run(scenario())


def test_slow_reader_is_disconnected_and_others_unaffected(start) -> None:
    server = start(outbound_queue_frames=200)

    async def scenario():
        async with session(server, "op") as op, session(server, "alice") as alice:
            await open_market(op)
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(
                p.encode(
                    p.Logon(
                        user="viewer",
                        password=password("viewer"),
                        protocol_version=1,
                        drop_copy=True,
                    )
                )
            )
            await asyncio.sleep(0.2)  # logged on, and never reads again
            for _ in range(30):
                ids = [
                    alice.send_new_order(SYM_A, side, 1, 6000, tif=s.TimeInForce.IOC)
                    for side in (BUY, SELL) * 100
                ]
                for request_id in ids:
                    assert (await alice.outcome(request_id)).ok
                if server.call(lambda: len(server.gateway.drop_copies)) == 0:
                    break
            assert server.call(lambda: len(server.gateway.drop_copies)) == 0, "slow reader dropped"
            assert (await alice.new_order(SYM_A, BUY, 1, 5900)).ok
            sock.close()

    run(scenario())


def _slow_resume(port: int, user: str) -> list:
    """Log on with resume_from_seq=1 and read nothing for a while (the server's socket buffers
    fill up), then read; return the durable messages up to ReplayComplete."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(
        p.encode(p.Logon(user=user, password=password(user), protocol_version=1, resume_from_seq=1))
    )
    reader, messages = p.FrameReader(p.limits.OUTBOUND_FRAME_BYTES_MAX), []
    time.sleep(0.5)
    try:
        while not messages or type(messages[-1]) is not p.ReplayComplete:
            data = sock.recv(16384)
            assert data, "the server dropped a slow but healthy reader"
            messages += [p.decode_server(body) for body in reader.feed(data)]
    finally:
        sock.close()
    return [m for m in messages if type(m) is p.ExecutionReport]


def test_a_long_replay_respects_backpressure_instead_of_dropping_the_reader(start) -> None:
    server = start(outbound_queue_frames=400)

    async def scenario():
        async with session(server, "op") as op, session(server, "alice") as alice:
            await open_market(op)
            for _ in range(12):
                ids = [
                    alice.send_new_order(SYM_A, side, 1, 6000, tif=s.TimeInForce.IOC)
                    for side in (BUY, SELL) * 100
                ]
                for request_id in ids:
                    await alice.outcome(request_id)
            assert len(alice.stream) > 4_000
            replayed = await asyncio.get_running_loop().run_in_executor(
                None, _slow_resume, server.port, "alice"
            )
            assert replayed == alice.stream

    run(scenario())


# ------------------------------------------------------------------------------------------
# Market data
# ------------------------------------------------------------------------------------------


def test_market_data_book_follows_the_engine(start) -> None:
    server = start()
    rng = random.Random(5)

    async def scenario():
        async with (
            session(server, "op") as op,
            session(server, "alice") as alice,
            session(server, "bob") as bob,
            session(server, "viewer") as viewer,
        ):
            await alice.new_order(SYM_A, BUY, 5, 5990)  # refused: session closed
            snapshot = await viewer.subscribe(SYM_A)
            assert (snapshot.state, snapshot.bids, snapshot.asks) == (s.SessionState.CLOSED, [], [])
            await open_market(op)
            for k in range(120):
                client = alice if k % 2 else bob
                client.send_new_order(
                    SYM_A,
                    rng.choice([BUY, SELL]),
                    rng.randint(1, 30),
                    6000 + rng.randint(-8, 8),
                    tif=rng.choice([s.TimeInForce.DAY, s.TimeInForce.IOC]),
                )
            await alice.new_order(SYM_A, BUY, 1, 5900)
            await bob.new_order(SYM_A, BUY, 1, 5900)
            late = Client("127.0.0.1", server.port, "dave", password("dave"))
            await late.connect()
            await late.subscribe(SYM_A)
            await op.engine(s.HaltInstrument(instrument=SYM_A))
            await asyncio.sleep(0.2)
            depth = server.call(lambda: server.gateway.exchange.engine.depth(SYM_A, levels=None))
            for client in (viewer, late):
                book = client.books[SYM_A]
                for side, levels in ((BUY, depth.bids), (SELL, depth.asks)):
                    assert book.levels(side) == [(v.price_ticks, v.qty_t, v.orders) for v in levels]
            assert viewer.trades and all(t.instrument == SYM_A for t in viewer.trades)
            assert [t.trade_id for t in viewer.trades] == sorted(t.trade_id for t in viewer.trades)
            assert type(viewer.statuses[-1].event) is s.InstrumentHalted
            assert not any(hasattr(t, "maker_account") for t in viewer.trades)
            await late.close()

    run(scenario())


# ------------------------------------------------------------------------------------------
# Cancel on disconnect, shutdown and restart
# ------------------------------------------------------------------------------------------


def test_cancel_on_disconnect_cancels_only_that_sessions_orders(start) -> None:
    server = start()

    async def scenario():
        async with session(server, "op") as op, session(server, "alice") as keeper:
            await open_market(op)
            kept = await keeper.new_order(SYM_A, BUY, 5, 5990)
            cod = Client(
                "127.0.0.1", server.port, "alice", password("alice"), cancel_on_disconnect=True
            )
            await cod.connect()
            mine = [await cod.new_order(SYM_A, BUY, 5, 5980 + i) for i in range(3)]
            filled = await cod.new_order(SYM_C, BUY, 5, 6005, tif=s.TimeInForce.IOC)
            await cod.close()
            await asyncio.sleep(0.2)
            cancelled = [
                r
                for r in keeper.stream
                if r.exec_type == ET.CANCELLED and r.reason == s.CancelReason.REQUESTED
            ]
            assert sorted(r.order_id for r in cancelled) == [o.order_id for o in mine]
            assert all(r.request_id == 0 for r in cancelled)
            resting = server.call(
                lambda: [o.order_id for o in server.gateway.exchange.engine.orders(SYM_A, BUY)]
            )
            assert resting == [kept.order_id]
            assert filled.ok

    run(scenario())


def test_graceful_shutdown_and_restart_recover_everything(start, tmp_path) -> None:
    data = tmp_path / "restart"
    first = start(data_dir=data, durability="batch", open_orders_per_account=3)

    async def scenario():
        loop = asyncio.get_running_loop()
        op = Client("127.0.0.1", first.port, "op", password("op"))
        alice = Client("127.0.0.1", first.port, "alice", password("alice"))
        await op.connect()
        await alice.connect()
        await open_market(op)
        orders = [
            await alice.new_order(SYM_A, BUY, 5, 5990 + i, client_order_id=f"r{i}")
            for i in range(3)
        ]
        carol = Client(
            "127.0.0.1", first.port, "carol", password("carol"), cancel_on_disconnect=True
        )
        await carol.connect()
        carols = await carol.new_order(SYM_A, SELL, 5, 6050, account=3)
        await loop.run_in_executor(None, first.stop)
        await alice.wait_closed()
        await carol.wait_closed()
        assert [m.reason for m in alice.logouts] == ["server shutting down"]
        second = await loop.run_in_executor(
            None, lambda: start(data_dir=data, durability="batch", open_orders_per_account=3)
        )
        alice.port = second.port
        received = list(alice.stream)
        await alice.reconnect()
        assert alice.replays[-1].messages == 1, "seq 4 again (resume is inclusive)"
        assert alice.stream == received, "nothing was missed, the repeat was dropped"
        duplicate = await alice.new_order(SYM_A, BUY, 5, 5990, client_order_id="r0")
        assert duplicate.reject.code == RC.DUPLICATE_CLIENT_ORDER_ID
        full = await alice.new_order(SYM_A, BUY, 5, 5990, client_order_id="r9")
        assert full.reject.code == RC.OPEN_ORDER_LIMIT, "open orders recovered from the books"
        cancelled = await alice.cancel(client_order_id="r1")
        assert [(r.exec_type, r.order_id, r.client_order_id) for r in cancelled.reports] == [
            (ET.CANCELLED, orders[1].order_id, "r1")
        ]
        fresh = Client("127.0.0.1", second.port, "alice", password("alice"))
        await fresh.connect(resume_from_seq=1)
        assert fresh.stream == alice.stream, "the stream survives the restart"
        await fresh.close()
        carol.port = second.port
        await carol.reconnect()
        assert [(r.exec_type, r.order_id) for r in carol.stream] == [
            (ET.ACCEPTED, carols.order_id),
            (ET.CANCELLED, carols.order_id),
        ], "cancel-on-disconnect applied at shutdown, seen after the restart"
        await carol.close()
        await alice.close()
        await op.close()

    run(scenario())


def test_requests_during_shutdown_and_after_close_are_answered(start) -> None:
    server = start(shutdown_drain_s=0.5)

    async def scenario():
        alice = Client("127.0.0.1", server.port, "alice", password("alice"))
        await alice.connect()
        server.loop.call_soon_threadsafe(server.gateway.request_shutdown)
        await alice.wait_closed(10)
        assert alice.logouts and not alice.connected
        with pytest.raises(ConnectionLost):
            alice.send_new_order(SYM_A, BUY, 1, 6000)
        await alice.close()

    run(scenario())
    deadline = time.monotonic() + 5
    while server.gateway.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.gateway.connections


# ------------------------------------------------------------------------------------------
# Registry commands
# ------------------------------------------------------------------------------------------


def test_registry_commands_reach_the_registry_user_and_the_account_holders(start) -> None:
    server = start(market=msgspec.structs.replace(small_market(), registry=True))

    async def scenario():
        async with (
            session(server, "reg") as reg,
            session(server, "alice") as alice,
            session(server, "bob") as bob,
            session(server, "carol") as carol,
        ):
            commands = [
                s.OpenAccount(key=1, account=1, kind=s.AccountKind.COMPLIANCE),
                s.OpenAccount(key=2, account=2, kind=s.AccountKind.INVESTOR),
                s.IssueAllowances(key=3, account=1, instrument=SYM_A, qty_t=1_000),
                s.TransferAllowances(key=4, account=1, to_account=2, instrument=SYM_A, qty_t=5),
            ]
            for command in commands:
                outcome = await reg.engine(command)
                assert outcome.ok and outcome.reports[0].request_id == outcome.request_id
            refused = await alice.engine(
                s.IssueAllowances(key=9, account=1, instrument=SYM_A, qty_t=10**6)
            )
            assert refused.reject.code == RC.NOT_PERMITTED
            await asyncio.sleep(0.1)
            seen = {
                name: [type(m.event).__name__ for m in client.stream]
                for name, client in (("alice", alice), ("bob", bob), ("carol", carol))
            }
        assert seen["alice"] == ["AccountOpened", "AllowancesIssued", "AllowancesTransferred"]
        assert seen["bob"] == ["AccountOpened", "AllowancesTransferred"], "the receiving side too"
        assert seen["carol"] == []
        assert all(m.request_id == 0 for m in alice.stream), "request ids stay with their sender"

    run(scenario())


# ------------------------------------------------------------------------------------------
# The synchronous client
# ------------------------------------------------------------------------------------------


def test_sync_client_wraps_the_async_one(start) -> None:
    from gateway.client import SyncClient

    server = start()
    with (
        SyncClient("127.0.0.1", server.port, "op", password("op")) as op,
        SyncClient("127.0.0.1", server.port, "alice", password("alice")) as alice,
    ):
        assert op.session.role == "operator" and alice.session.accounts == [1]
        assert op.engine(s.OpenSession(trading_date=DATE1)).ok
        snapshot = alice.subscribe(SYM_A)
        assert snapshot.instrument == SYM_A and snapshot.state == s.SessionState.OPEN
        request_id = alice.send_new_order(SYM_A, BUY, 7, 5999, client_order_id="sync-1")
        outcome = alice.outcome(request_id)
        assert outcome.exec_types() == [ET.ACCEPTED] and outcome.client_order_id == "sync-1"
        assert alice.cancel(client_order_id="sync-1").exec_types() == [ET.CANCELLED]
        assert [m.exec_type for m in alice.stream] == [ET.ACCEPTED, ET.CANCELLED]
        with pytest.raises(LogonError):
            SyncClient("127.0.0.1", server.port, "alice", "wrong")

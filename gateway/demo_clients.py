"""The demo's trading through the real TCP gateway: server on a loopback port, client sessions.

Theory of operation
-------------------
A gateway (``gateway.service.ServerThread``) serves the data directory on a loopback port the
operating system picks.  The market is driven as it would be in production, over real sockets:

* a **registry** session opens the accounts, deposits cash and issues the allocations, and at
  the end reports emissions, surrenders and closes the compliance year;
* an **operator** session opens and closes the trading sessions, moves the instruments through
  their trading phases (``SetTradingPhase``) and announces and clears the one-way auctions;
* one **trader** session per trading firm (participants are grouped into firms of
  ``FIRM_SIZE`` accounts, like brokers' client accounts) enters, cancels and reprices orders
  with client order ids, hits quotes, posts and accepts block offers, applies for auctions and
  bids, all firms concurrently, each keeping a window of requests in flight.

The day's flow is cut at each operator command: the firms' requests before it are all answered
before the operator sends it (a phase change applies to what follows it).  The gateway assigns
the ids of orders, block offers, auctions and bids itself (the command's seq, reported in the
``Ack``); the driver learns them from the Acks and puts them into the later requests that name
them (a hit-quote's quote, an acceptance's offer, an auction's announcement, bids and
clearing), waiting for that Ack if it has not arrived yet.

Every request is answered only after its batch is durable in the log (the gateway coalesces
what arrives together into one batch, one log record, one fsync).  The engine itself is only
touched through the gateway, except for the balances the compliance phase reads (on the
server's own loop, between sessions).
"""

from __future__ import annotations

import asyncio
import heapq
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import numpy as np

from engine.core import schema as s
from engine.core.market import MarketDefinition
from gateway.client import Client, Outcome
from gateway.protocol import Role
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from gateway.simulation import OPERATOR_COMMANDS, Simulation
from gateway.users import User, UserDirectory, hash_secret
from replay.progress import Progress

FIRM_SIZE = 64
"""Accounts per trading firm (a trader user may act for at most 64 accounts)."""
WINDOW = 256
"""Requests a session keeps in flight (pipelining)."""
LEAD = 128
"""Commands of the day's flow a firm may send beyond the earliest one not yet sent."""
HOST = "127.0.0.1"


class Sessions:
    """The demo's users (created fresh, with random secrets, for this run only)."""

    def __init__(self, sim: Simulation) -> None:
        self.secrets: dict[str, str] = {}
        self.firm_of: dict[int, str] = {}
        firms: dict[str, list[int]] = defaultdict(list)
        for p in sim.participants:
            firm = f"firm{(p.account - 1) // FIRM_SIZE:02d}"
            firms[firm].append(p.account)
            self.firm_of[p.account] = firm
        self.firms = dict(firms)
        users = [self._user("registry", Role.REGISTRY), self._user("operator", Role.OPERATOR)]
        users += [self._user(firm, Role.TRADER, accounts) for firm, accounts in firms.items()]
        self.directory = UserDirectory(users)

    def _user(self, name: str, role: Role, accounts: list[int] | None = None) -> User:
        secret = secrets.token_urlsafe(16)
        self.secrets[name] = secret
        # A moderate scrypt cost: these users live for one demo run.
        return User(
            name=name,
            role=role,
            secret_hash=hash_secret(secret, log2_n=12),
            accounts=accounts or [],
        )

    def client(self, port: int, name: str) -> Client:
        return Client(HOST, port, name, self.secrets[name])


Sent = tuple[int, Awaitable[Outcome]]
Send = Callable[[Client], Sent | Awaitable[Sent]]
"""Sends one request on a client; returns its request id and an awaitable of its outcome (as
a coroutine when it first waits for an id it needs)."""


class AssignedIds:
    """The ids the gateway assigned to the simulation's orders, block offers and auctions,
    learnt from the Acks: ``("order" | "offer" | "auction", simulation's id) -> engine id``
    (0 when the request was refused by the gateway)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, int], asyncio.Future] = {}

    def _future(self, key: tuple[str, int]) -> asyncio.Future:
        future = self._ids.get(key)
        if future is None:
            future = self._ids[key] = asyncio.get_running_loop().create_future()
        return future

    async def of(self, kind: str, sim_id: int) -> int:
        """The engine's id (waits for the Ack of the request that created it)."""
        return await asyncio.wait_for(asyncio.shield(self._future((kind, sim_id))), 120.0)

    def learn(self, client: Client, request_id: int, kind: str, sim_id: int) -> asyncio.Task:
        """Collect the outcome of ``request_id`` as soon as it arrives and remember its id."""

        async def collect() -> Outcome:
            outcome = await client.outcome(request_id, timeout=60.0)
            future = self._future((kind, sim_id))
            if not future.done():
                future.set_result(outcome.order_id if outcome.reject is None else 0)
            return outcome

        return asyncio.ensure_future(collect())


class Pacer:
    """Keeps the firms' sessions on the simulated day's timeline: a firm sends the day's
    command number ``i`` only once every command before ``i - LEAD`` has been sent (in
    whichever firm's session), so no firm runs ahead of the others by more than ``LEAD``
    commands and the requests reach the engine roughly in the simulation's order.  (Not
    exactly: hit-quote orders whose quote another firm's request took first are refused.)

    It cannot deadlock: the earliest unsent command never waits for the pacer, and what it may
    wait for - the Ack of an earlier order or offer, or of its own session's earlier requests -
    has been sent.
    """

    def __init__(self, count: int) -> None:
        self.done = bytearray(count)
        self.low = 0
        """Every command before this one has been sent."""
        self._waiting: list[tuple[int, int, asyncio.Future]] = []

    async def turn(self, index: int) -> None:
        """Wait until command ``index`` may be sent."""
        threshold = index - LEAD
        if threshold <= self.low:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (threshold, index, future))
        await future

    def sent(self, index: int) -> None:
        """Command ``index`` has been sent."""
        self.done[index] = 1
        while self.low < len(self.done) and self.done[self.low]:
            self.low += 1
        while self._waiting and self._waiting[0][0] <= self.low:
            heapq.heappop(self._waiting)[2].set_result(None)


async def _pipeline(
    client: Client,
    sends: list[Send],
    bar: Progress | None,
    pacer: Pacer | None = None,
    indices: list[int] | None = None,
) -> list:
    """Send requests keeping ``WINDOW`` in flight; return their outcomes in order.
    ``indices``: the requests' places in the day's flow, for the ``pacer``."""
    in_flight: deque[Awaitable[Outcome]] = deque()
    outcomes = []
    for n, send in enumerate(sends):
        if pacer is not None:
            await pacer.turn(indices[n])
        sent = send(client)
        request_id, outcome = sent if type(sent) is tuple else await sent
        in_flight.append(outcome)
        if pacer is not None:
            pacer.sent(indices[n])
        if len(in_flight) >= WINDOW:
            outcomes.append(await in_flight.popleft())
            if bar:
                bar.advance()
    while in_flight:
        outcomes.append(await in_flight.popleft())
        if bar:
            bar.advance()
    return outcomes


def _outcome(client: Client, request_id: int) -> Awaitable[Outcome]:
    return client.outcome(request_id, timeout=60.0)


def request(command: s.Command, ids: AssignedIds, quotes: frozenset[int]) -> Send:
    """The gateway request that carries one of the simulation's commands, with the engine's
    ids in place of the simulation's.  ``quotes``: orders a later hit-quote order names (their
    ids are learnt as soon as they are acknowledged)."""
    t = type(command)
    c = command
    if t is s.SubmitOrder:

        def send(client: Client, quote: int = 0) -> Sent:
            request_id = client.send_new_order(
                c.instrument,
                c.side,
                c.qty_t,
                c.price_ticks,
                client_order_id=f"o{c.order_id}",
                order_type=c.order_type,
                tif=c.tif,
                stp=c.stp,
                account=c.account,
                quote_order_id=quote,
            )
            if c.order_id in quotes:
                return request_id, ids.learn(client, request_id, "order", c.order_id)
            return request_id, _outcome(client, request_id)

        async def hit(client: Client) -> Sent:
            return send(client, await ids.of("order", c.quote_order_id))

        return hit if c.quote_order_id else send
    if t is s.CancelOrder:
        return _plain(
            lambda client: client.send_cancel(client_order_id=f"o{c.order_id}", account=c.account)
        )
    if t is s.ModifyOrder:
        return _plain(
            lambda client: client.send_modify(
                c.price_ticks, c.qty_t, client_order_id=f"o{c.order_id}", account=c.account
            )
        )
    if t in CREATES:
        kind, field = CREATES[t]

        async def create(client: Client) -> Sent:
            wrapped = await _with_ids(c, ids)
            request_id = client.send_engine(msgspec.structs.replace(wrapped, **{field: 0}))
            return request_id, ids.learn(client, request_id, kind, getattr(c, field))

        return create

    async def engine(client: Client) -> Sent:
        request_id = client.send_engine(await _with_ids(c, ids))
        return request_id, _outcome(client, request_id)

    return engine


def _plain(send: Callable[[Client], int]) -> Send:
    def plain(client: Client) -> Sent:
        request_id = send(client)
        return request_id, _outcome(client, request_id)

    return plain


CREATES: dict[type, tuple[str, str]] = {
    s.SubmitBlockOffer: ("offer", "offer_id"),
    s.ApplyAuction: ("auction", "auction_id"),
}
"""Commands whose new id later commands name: (kind of id, field).  Bids get ids too, but no
later command names one."""
NAMES: dict[str, str] = {"offer_id": "offer", "auction_id": "auction"}
"""Fields of a command naming something the gateway assigned an id to -> the kind of id."""


async def _with_ids(command: s.Command, ids: AssignedIds) -> s.Command:
    """``command`` naming the engine's offer or auction instead of the simulation's."""
    changes = {}
    for field, kind in NAMES.items():
        if hasattr(command, field) and type(command) not in CREATES:
            changes[field] = await ids.of(kind, getattr(command, field))
    if type(command) is s.SubmitAuctionBid:
        changes["bid_id"] = 0  # the gateway assigns it
    return msgspec.structs.replace(command, **changes) if changes else command


def hit_quotes(commands: list[s.Command]) -> frozenset[int]:
    """The orders that hit-quote orders of ``commands`` name."""
    return frozenset(
        c.quote_order_id for c in commands if type(c) is s.SubmitOrder and c.quote_order_id
    )


def segments(commands: list[s.Command]) -> Iterator[s.Command | list[s.Command]]:
    """The flow cut at each operator command: runs of participants' commands, and operator
    commands one by one, in order."""
    run: list[s.Command] = []
    for command in commands:
        if isinstance(command, OPERATOR_COMMANDS):
            if run:
                yield run
                run = []
            yield command
        else:
            run.append(command)
    if run:
        yield run


class Driver:
    """Runs the demo's phases against a live gateway."""

    def __init__(self, server: ServerThread, sessions: Sessions, sim: Simulation) -> None:
        self.server, self.sessions, self.sim = server, sessions, sim
        self.registry = sessions.client(server.port, "registry")
        self.operator = sessions.client(server.port, "operator")
        self.traders = {firm: sessions.client(server.port, firm) for firm in sessions.firms}
        self.refused = 0
        self.requests = 0
        self.ids = AssignedIds()
        self.quotes: frozenset[int] = frozenset()
        self.started = time.perf_counter()
        """When the server was up (its engine compiled): the demo's clock starts here."""

    async def connect(self) -> None:
        for client in [self.registry, self.operator, *self.traders.values()]:
            await client.connect()  # one at a time: the gateway limits logons in flight

    async def close(self) -> None:
        clients = [self.registry, self.operator, *self.traders.values()]
        await asyncio.gather(*(c.logout() for c in clients))

    def _count(self, outcomes: list) -> None:
        self.requests += len(outcomes)
        self.refused += sum(1 for o in outcomes if o.reject is not None)

    async def registry_commands(self, commands: list, label: str) -> None:
        bar = Progress(label, len(commands))
        sends = [_plain(lambda client, c=c: client.send_engine(c)) for c in commands]
        self._count(await _pipeline(self.registry, sends, bar))
        bar.close()

    async def operator_command(self, command: s.Command) -> None:
        sent = request(command, self.ids, self.quotes)(self.operator)
        _, outcome = sent if type(sent) is tuple else await sent
        self._count([await outcome])

    async def trade(self, commands: list, label: str) -> None:
        """All firms at once, each over its own session, paced on the day's timeline."""
        by_firm: dict[str, list[Send]] = defaultdict(list)
        places: dict[str, list[int]] = defaultdict(list)
        for index, command in enumerate(commands):
            firm = self.sessions.firm_of[command.account]
            by_firm[firm].append(request(command, self.ids, self.quotes))
            places[firm].append(index)
        bar = Progress(label, len(commands))
        pacer = Pacer(len(commands))
        results = await asyncio.gather(
            *(
                _pipeline(self.traders[firm], sends, bar, pacer, places[firm])
                for firm, sends in by_firm.items()
            )
        )
        bar.close()
        for outcomes in results:
            self._count(outcomes)

    async def day(self, commands: list[s.Command], label: str) -> None:
        """A trading day's flow: the firms' requests between the operator's commands."""
        self.quotes = hit_quotes(commands)
        names = [phase.name for phase in self.sim.phases]
        phase = 0
        for segment in segments(commands):
            if isinstance(segment, list):
                name = names[phase] if phase < len(names) else f"phase {phase}"
                await self.trade(segment, f"{label}, {name}")
            else:
                await self.operator_command(segment)
                if type(segment) is s.SetTradingPhase:
                    phase = segment.phase

    async def balances(self, symbols: list[str]) -> tuple[np.ndarray, dict[str, int]]:
        """Tradable holdings (accounts x instruments) and reference prices, read on the
        server's loop while no session is trading."""

        def read():
            engine = self.server.gateway.exchange.engine
            tradable = engine._holdings()[:, :, 0].copy()
            references = {sym: engine.status(sym).reference_price_ticks for sym in symbols}
            return tradable, references

        return await asyncio.to_thread(self.server.call, read)


async def drive(
    server: ServerThread,
    sessions: Sessions,
    sim: Simulation,
    dates: list[int],
    orders: int,
    year: int,
    market: MarketDefinition,
) -> Driver:
    """Set up the registry, trade ``dates``, then report, surrender and close ``year``."""
    driver = Driver(server, sessions, sim)
    await driver.connect()
    await driver.registry_commands(sim.setup(year), "registry set-up")
    symbols = market.symbols
    for date in dates:
        _, references = await driver.balances(symbols)
        await driver.operator_command(s.OpenSession(trading_date=date))
        day = sim.day(date, orders, references)
        await driver.day(day.commands, f"trading day {date}")
        await driver.operator_command(s.CloseSession(trading_date=date))
    tradable, references = await driver.balances(symbols)
    reference = references[f"CEA-{year}"]
    commands = sim.compliance(
        year, reference, lambda account, symbol: int(tradable[account, symbols.index(symbol)])
    )
    await driver.registry_commands(commands, f"compliance {year}")
    await driver.close()
    return driver


def run_through_gateway(
    data_dir: Path,
    market: MarketDefinition,
    sim: Simulation,
    dates: list[int],
    orders: int,
    year: int,
    engine_ready: Callable[[], None] | None = None,
) -> Driver:
    """Serve ``data_dir`` on a loopback port and run the demo through client sessions;
    ``engine_ready`` is called once the gateway listens (its engine is built, compiled)."""
    sessions = Sessions(sim)
    config = GatewayConfig(host=HOST, port=0)
    print(
        "starting the exchange (the first run compiles the engine: about 11 s, then cached)",
        flush=True,
    )
    with ServerThread(
        data_dir, sessions.directory, config, market=market, durability="batch"
    ) as server:
        if engine_ready is not None:
            engine_ready()
        print(
            f"gateway listening on {HOST}:{server.port}: 1 registry, 1 operator and "
            f"{len(sessions.firms)} trading-firm sessions"
        )
        return asyncio.run(drive(server, sessions, sim, dates, orders, year, market))

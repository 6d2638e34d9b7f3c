"""The demo's trading through the real TCP gateway: server on a loopback port, client sessions.

Theory of operation
-------------------
A gateway (``gateway.service.ServerThread``) serves the data directory on a loopback port the
operating system picks.  The market is driven as it would be in production, over real sockets:

* a **registry** session opens the accounts, deposits cash and issues the allocations, and at
  the end reports emissions, surrenders and closes the compliance year;
* an **operator** session opens and closes the trading sessions;
* one **trader** session per trading firm (participants are grouped into firms of
  ``FIRM_SIZE`` accounts, like brokers' client accounts) enters, cancels and reprices orders
  with client order ids, all firms concurrently, each keeping a window of requests in flight.

Every request is answered only after its batch is durable in the log (the gateway coalesces
what arrives together into one batch, one log record, one fsync).  The engine itself is only
touched through the gateway, except for the balances the compliance phase reads (on the
server's own loop, between sessions).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench import progress
from bench.simulation import Simulation
from engine import schema as s
from engine.market import MarketDefinition
from gateway.client import Client
from gateway.protocol import Role
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from gateway.users import User, UserDirectory, hash_secret

FIRM_SIZE = 64
"""Accounts per trading firm (a trader user may act for at most 64 accounts)."""
WINDOW = 256
"""Requests a session keeps in flight (pipelining)."""
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
        return User(name=name, role=role, secret_hash=hash_secret(secret, log2_n=12),
                    accounts=accounts or [])  # fmt: skip

    def client(self, port: int, name: str) -> Client:
        return Client(HOST, port, name, self.secrets[name])


async def _pipeline(client: Client, senders: list, bar: progress.Bar | None) -> list:
    """Send requests keeping ``WINDOW`` in flight; return their outcomes in order."""
    in_flight: list[int] = []
    outcomes = []
    for send in senders:
        in_flight.append(send())
        if len(in_flight) >= WINDOW:
            outcomes.append(await client.outcome(in_flight.pop(0), timeout=60.0))
            if bar:
                bar.advance()
    for request_id in in_flight:
        outcomes.append(await client.outcome(request_id, timeout=60.0))
        if bar:
            bar.advance()
    return outcomes


def _trader_sender(client: Client, command: s.Command):
    """The gateway request that carries a simulated trader's command."""
    if type(command) is s.SubmitOrder:
        c = command
        return lambda: client.send_new_order(
            c.instrument, c.side, c.qty_t, c.price_ticks, client_order_id=f"o{c.order_id}",
            order_type=c.order_type, tif=c.tif, stp=c.stp, account=c.account,
        )  # fmt: skip
    if type(command) is s.CancelOrder:
        return lambda: client.send_cancel(client_order_id=f"o{command.order_id}",
                                          account=command.account)  # fmt: skip
    return lambda: client.send_modify(command.price_ticks, command.qty_t,
                                      client_order_id=f"o{command.order_id}",
                                      account=command.account)  # fmt: skip


class Driver:
    """Runs the demo's phases against a live gateway."""

    def __init__(self, server: ServerThread, sessions: Sessions, sim: Simulation) -> None:
        self.server, self.sessions, self.sim = server, sessions, sim
        self.registry = sessions.client(server.port, "registry")
        self.operator = sessions.client(server.port, "operator")
        self.traders = {firm: sessions.client(server.port, firm) for firm in sessions.firms}
        self.refused = 0
        self.requests = 0
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
        bar = progress.Bar(len(commands), label)
        senders = [lambda c=c: self.registry.send_engine(c) for c in commands]
        self._count(await _pipeline(self.registry, senders, bar))
        bar.close()

    async def operator_command(self, command: s.Command) -> None:
        self._count([await self.operator.engine(command)])

    async def trade(self, commands: list, label: str) -> None:
        """All firms at once, each over its own session."""
        by_firm: dict[str, list] = defaultdict(list)
        for command in commands:
            firm = self.sessions.firm_of[command.account]
            by_firm[firm].append(_trader_sender(self.traders[firm], command))
        bar = progress.Bar(len(commands), label)
        results = await asyncio.gather(*(
            _pipeline(self.traders[firm], senders, bar) for firm, senders in by_firm.items()
        ))  # fmt: skip
        bar.close()
        for outcomes in results:
            self._count(outcomes)

    async def balances(self, symbols: list[str]) -> tuple[np.ndarray, dict[str, int]]:
        """Tradable holdings (accounts x instruments) and reference prices, read on the
        server's loop while no session is trading."""

        def read():
            engine = self.server.gateway.exchange.engine
            tradable = engine._holdings()[:, :, 0].copy()
            references = {sym: engine.status(sym).reference_price_ticks for sym in symbols}
            return tradable, references

        return await asyncio.to_thread(self.server.call, read)


async def drive(server: ServerThread, sessions: Sessions, sim: Simulation, dates: list[int],
                orders: int, year: int, market: MarketDefinition) -> Driver:  # fmt: skip
    """Set up the registry, trade ``dates``, then report, surrender and close ``year``."""
    driver = Driver(server, sessions, sim)
    await driver.connect()
    await driver.registry_commands(sim.setup(year), "registry set-up")
    symbols = market.symbols
    for date in dates:
        _, references = await driver.balances(symbols)
        await driver.operator_command(s.OpenSession(trading_date=date))
        day = sim.day(date, orders, references)
        await driver.trade(day.commands, f"trading day {date}")
        await driver.operator_command(s.CloseSession(trading_date=date))
    tradable, references = await driver.balances(symbols)
    reference = references[f"CEA-{year}"]
    commands = sim.compliance(year, reference,
                              lambda account, symbol: int(tradable[account, symbols.index(symbol)]))  # fmt: skip
    await driver.registry_commands(commands, f"compliance {year}")
    await driver.close()
    return driver


def run_through_gateway(data_dir: Path, market: MarketDefinition, sim: Simulation,
                        dates: list[int], orders: int, year: int) -> Driver:  # fmt: skip
    """Serve ``data_dir`` on a loopback port and run the demo through client sessions."""
    sessions = Sessions(sim)
    config = GatewayConfig(host=HOST, port=0)
    print("starting the exchange (the first run compiles the engine: about 40 s, then cached)",
          flush=True)  # fmt: skip
    with ServerThread(data_dir, sessions.directory, config, market=market,
                      durability="batch") as server:  # fmt: skip
        print(f"gateway listening on {HOST}:{server.port}: 1 registry, 1 operator and "
              f"{len(sessions.firms)} trading-firm sessions")  # fmt: skip
        return asyncio.run(drive(server, sessions, sim, dates, orders, year, market))

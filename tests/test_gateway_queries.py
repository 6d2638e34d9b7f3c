"""Account queries: a trader asks for its account's cash, holdings and open orders; operators
and the registry for any account; each answer states the seq it is valid at.  A trader asking
for another firm's account gets exactly the answer for an account that does not exist.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from engine.core import schema as s
from gateway import protocol as p
from gateway.client import Client, Refused
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import DATE1, SYM_A, SYM_B, password, small_market, users
from tests.test_gateway_confidentiality import World, decoded

BUY, SELL = s.Side.BUY, s.Side.SELL


@pytest.fixture
def server(tmp_path):
    market = msgspec.structs.replace(small_market(), registry=True)
    server = ServerThread(
        tmp_path / "data", users(), GatewayConfig(port=0), market=market, durability="none"
    ).start()
    yield server
    server.stop()


async def _client(server, name: str) -> Client:
    client = Client("127.0.0.1", server.port, name, password(name))
    await client.connect()
    return client


def test_a_trader_sees_its_cash_holdings_and_open_orders(server) -> None:
    async def scenario():
        reg, op, alice, bob, viewer = [
            await _client(server, name) for name in ("reg", "op", "alice", "bob", "viewer")
        ]
        try:
            for command in (
                s.OpenAccount(key=1, account=1, kind=s.AccountKind.COMPLIANCE),
                s.OpenAccount(key=2, account=2, kind=s.AccountKind.INVESTOR),
                s.IssueAllowances(key=3, account=1, instrument=SYM_A, qty_t=1_000),
                s.DepositCash(key=4, account=2, amount_fen=10_000_000),
            ):
                assert (await reg.engine(command)).ok
            assert (await op.engine(s.OpenSession(trading_date=DATE1))).ok
            sell = await alice.new_order(SYM_A, SELL, 100, 6_100, client_order_id="ask-1")
            await alice.new_order(SYM_A, SELL, 50, 6_000, client_order_id="ask-2")
            bought = await bob.new_order(SYM_A, BUY, 50, 6_000, client_order_id="bid-1")
            assert bought.exec_types()[-1] == p.ExecType.FILLED
            mine = await alice.account()
            assert (mine.account, mine.registry, mine.seq) == (1, True, bought.seq)
            [held, *others] = mine.holdings
            assert (held.instrument, held.tradable_t, held.locked_t, held.frozen_t) == (
                SYM_A,
                850,
                100,
                0,
            )
            assert [h.instrument for h in others] == [SYM_B, "CEA-C"]
            assert [(o.order_id, o.client_order_id, o.qty_t) for o in mine.orders] == [
                (sell.order_id, "ask-1", 100)
            ]
            assert mine.cash_available_fen == 50 * 6_000  # the sale's proceeds
            theirs = await bob.account(2)
            assert (theirs.holdings[0].bought_today_t, theirs.orders) == (50, [])
            assert theirs.cash_available_fen == 10_000_000 - 50 * 6_000
            # operators and the registry see any account; a read-only user none
            assert (await op.account(1)).orders == mine.orders
            assert (await reg.account(2)).cash_available_fen == theirs.cash_available_fen
            with pytest.raises(Refused) as refused:
                await viewer.account(1)
            assert refused.value.reject.code == p.RejectCode.NOT_PERMITTED
            # another firm's account reads as one that does not exist
            for client, account in ((bob, 1), (bob, 63), (op, 63), (op, 10**6)):
                with pytest.raises(Refused) as unknown:
                    await client.account(account)
                assert unknown.value.reject.code == p.RejectCode.UNKNOWN_ACCOUNT
        finally:
            for client in (reg, op, alice, bob, viewer):
                await client.close()

    asyncio.run(scenario())


def test_another_firms_account_is_answered_as_an_unknown_one(tmp_path) -> None:
    world = World(tmp_path / "data")  # no registry: accounts 0 … 63 exist
    try:
        world.send(
            "alice",
            p.NewOrder(
                request_id=1,
                client_order_id="a",
                instrument=SYM_A,
                side=int(SELL),
                qty_t=5,
                price_ticks=6_100,
            ),
        )
        answers = {
            account: world.send("bob", p.AccountQuery(request_id=7, account=account))
            for account in (1, 3, 64, 10**6)
        }
        for account, answer in answers.items():  # one template, existing account or not
            unknown = p.Reject(
                request_id=7, code=int(p.RejectCode.UNKNOWN_ACCOUNT), text=f"no account {account}"
            )
            assert answer == p.encode(unknown), decoded(answer)
        [own] = decoded(world.send("alice", p.AccountQuery(request_id=8)))
        assert (own.registry, own.holdings, [o.client_order_id for o in own.orders]) == (
            False,
            [],
            ["a"],
        )
        [carol] = decoded(world.send("carol", p.AccountQuery(request_id=9)))
        assert carol.code == p.RejectCode.ACCOUNT_REQUIRED
    finally:
        world.close()


# -- the document and the server agree ----------------------------------------------------------


@pytest.mark.parametrize(
    "body, code",
    [
        (b"\x82\xa4type\x03\x01\x02", p.ProtocolErrorCode.MALFORMED),  # a key that is an int
        (
            msgspec.msgpack.encode(
                {"type": 13, "command": {"type": 10, "trading_date": 1, "x": 1}}
            ),
            p.ProtocolErrorCode.INVALID_FIELD,  # engine commands are strict: a protocol error
        ),
    ],
)
def test_documented_protocol_errors(body, code) -> None:
    with pytest.raises(p.FrameError) as error:
        p.decode_client(body)
    assert error.value.code == code


def test_unknown_keys_are_skipped_unread() -> None:
    """PROTOCOL.md §1: the value of a key the server does not know is skipped without being
    checked (invalid UTF-8 there goes unnoticed); the message's own strings are checked."""
    assert p.decode_client(b"\x82\xa4type\x03\xa3zzz\xa2\xff\xfe") == p.Heartbeat()
    with pytest.raises(p.FrameError) as error:
        p.decode_client(b"\x82\xa4type\x02\xa6reason\xa2\xff\xfe")
    assert error.value.code == p.ProtocolErrorCode.MALFORMED


def test_the_documented_logon_frame_decodes() -> None:
    """PROTOCOL.md §14's bytes are a valid Logon, and its password one ``cets users`` accepts
    (at least 8 characters)."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "PROTOCOL.md").read_text()
    dump = text[text.index("## 14.") :].split("```")[1]
    frame = bytearray()
    for line in dump.splitlines():
        for token in line.split():
            if not re.fullmatch("[0-9a-f]{2}", token):
                break
            frame.append(int(token, 16))
    logon = p.decode_client(bytes(frame[4:]))
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert (logon.user, logon.password) == ("alice", "alice-secret")
    assert len(logon.password) >= 8

"""The carbon market's trading modes through the gateway (docs/TRADING_MODES.md, PROTOCOL.md):
hit-quote orders, block offers (directed and open), one-way auctions with sealed bids, trading
phases, and what each session and the public market data see of them.

Real server on a loopback port, real sockets; the market has no registry (locks and settlement
are the engine tests' business), one all-day phase, and every mode.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from engine.core import schema as s
from gateway import protocol as p
from gateway.client import Client, ClientError
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import DATE1, SYM_A, SYM_C, password, small_market, users

BUY, SELL = s.Side.BUY, s.Side.SELL
ET, RC = p.ExecType, p.RejectCode


def start(tmp_path) -> ServerThread:
    return ServerThread(
        tmp_path / "data", users(), GatewayConfig(port=0), market=small_market(), durability="none"
    ).start()


@contextlib.asynccontextmanager
async def session(server: ServerThread, name: str):
    client = Client("127.0.0.1", server.port, name, password(name))
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


def events_of(client: Client, kind: type) -> list:
    return [m.event for m in client.stream if type(m) is p.EventReport and type(m.event) is kind]


async def settle() -> None:
    await asyncio.sleep(0.2)  # let the last batch's messages reach every session


def test_hit_quote_order_through_new_order(tmp_path) -> None:
    server = start(tmp_path)

    async def scenario():
        async with (
            session(server, "op") as op,
            session(server, "alice") as alice,
            session(server, "bob") as bob,
        ):
            await op.engine(s.OpenSession(trading_date=DATE1))
            best = await bob.new_order(SYM_A, SELL, 50, 6010)
            second = await bob.new_order(SYM_A, SELL, 30, 6020)
            for k in range(6):  # seven bid levels: the quotes view stops at the best five
                await bob.new_order(SYM_A, BUY, 1, 5990 - k)
            await bob.new_order(SYM_A, BUY, 2, 5990)
            # the taker learns the quote ids from the quotes view (anonymous, order by order)
            view = await alice.quotes(SYM_A)
            assert [(q.order_id, q.price_ticks, q.qty_t) for q in view.asks] == [
                (best.order_id, 6010, 50),
                (second.order_id, 6020, 30),
            ]
            assert [q.price_ticks for q in view.bids] == [5990, 5990, 5989, 5988, 5987, 5986]
            hit = await alice.new_order(
                SYM_A,
                BUY,
                40,
                0,
                order_type=s.OrderType.HIT_QUOTE,
                tif=s.TimeInForce.IOC,
                quote_order_id=view.asks[1].order_id,
            )
            # the taker picked the second level: it trades there, at that quote's price,
            # leaving the better quote alone; the 10 t beyond the quote are cancelled
            accepted, fill, rest = hit.reports
            assert (accepted.exec_type, accepted.order_type, accepted.price_ticks) == (
                ET.ACCEPTED,
                s.OrderType.HIT_QUOTE,
                6020,
            )
            assert (fill.exec_type, fill.last_qty_t, fill.last_price_ticks, fill.leaves_qty_t) == (
                ET.PARTIALLY_FILLED,
                30,
                6020,
                10,
            )
            assert (rest.exec_type, rest.qty_t) == (ET.CANCELLED, 10)
            assert (
                server.call(lambda: server.gateway.exchange.engine.order(best.order_id)) is not None
            )
            own = await bob.new_order(
                SYM_A,
                BUY,
                5,
                0,
                order_type=s.OrderType.HIT_QUOTE,
                tif=s.TimeInForce.IOC,
                quote_order_id=best.order_id,
            )
            assert (own.reports[0].exec_type, own.reports[0].reason) == (
                ET.REJECTED,
                s.RejectReason.QUOTE_OWN_ORDER,
            )
            with pytest.raises(ClientError):
                await alice.quotes("NOPE")

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_block_offers_ids_routing_and_public_board(tmp_path) -> None:
    server = start(tmp_path)

    async def scenario():
        async with (
            session(server, "op") as op,
            session(server, "alice") as alice,
            session(server, "bob") as bob,
            session(server, "dave") as dave,
            session(server, "viewer") as viewer,
        ):
            await op.engine(s.OpenSession(trading_date=DATE1))
            await viewer.subscribe(SYM_A)
            directed = await alice.engine(
                s.SubmitBlockOffer(
                    offer_id=999,
                    account=1,
                    instrument=SYM_A,
                    side=SELL,
                    qty_t=150_000,
                    price_ticks=6_500,
                    counterparty=2,
                )
            )
            # the gateway assigns the offer id (the command's seq), whatever the client sent
            assert directed.ok and directed.order_id == directed.seq != 999
            posted = directed.reports[0].event
            assert type(posted) is s.BlockOfferPosted and posted.offer_id == directed.order_id
            await settle()
            assert events_of(bob, s.BlockOfferPosted) == [posted]  # the named counterparty
            assert events_of(dave, s.BlockOfferPosted) == []  # nobody else
            wrong = await dave.engine(
                s.AcceptBlockOffer(
                    offer_id=directed.order_id, account=5, price_ticks=6_500, qty_t=150_000
                )
            )
            # a directed offer is its two parties' business: to anyone else it does not exist
            rejected = wrong.reports[0].event
            assert (rejected.reason, rejected.instrument) == (
                s.RejectReason.UNKNOWN_BLOCK_OFFER,
                "?",
            )
            other = await bob.engine(
                s.AcceptBlockOffer(
                    offer_id=directed.order_id, account=1, price_ticks=6_500, qty_t=150_000
                )
            )
            assert other.reject is not None and other.reject.code == RC.ACCOUNT_NOT_PERMITTED
            done = await bob.engine(
                s.AcceptBlockOffer(
                    offer_id=directed.order_id, account=2, price_ticks=6_500, qty_t=150_000
                )
            )
            trade = done.reports[0].event
            assert type(trade) is s.BlockTradeExecuted
            assert (trade.offer_account, trade.accepting_account, trade.qty_t) == (1, 2, 150_000)
            await settle()
            assert events_of(alice, s.BlockTradeExecuted) == [trade]  # both parties hear it
            assert [(t.mode, t.qty_t, t.price_ticks) for t in viewer.trades] == [
                (1, 150_000, 6_500)
            ]
            # a directed offer is not on the public board; an open one is, anonymised
            assert not [m for m in viewer.statuses if type(m.event) is s.BlockOfferPosted]
            open_offer = await dave.engine(
                s.SubmitBlockOffer(
                    offer_id=0,
                    account=5,
                    instrument=SYM_A,
                    side=BUY,
                    qty_t=200_000,
                    price_ticks=5_800,
                )
            )
            await settle()
            public = [m.event for m in viewer.statuses if type(m.event) is s.BlockOfferPosted]
            assert [(e.offer_id, e.account, e.qty_t) for e in public] == [
                (open_offer.order_id, -1, 200_000)
            ]
            late = await viewer.subscribe(SYM_A)
            assert [(o.offer_id, o.account) for o in late.block_offers] == [
                (open_offer.order_id, -1)
            ]
            await dave.engine(s.CancelBlockOffer(offer_id=open_offer.order_id, account=5))
            await settle()
            assert type(viewer.statuses[-1].event) is s.BlockOfferCancelled
            assert viewer.statuses[-1].event.account == -1

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_auction_bids_are_sealed_and_fills_reach_both_parties(tmp_path) -> None:
    server = start(tmp_path)

    async def scenario():
        async with (
            session(server, "op") as op,
            session(server, "alice") as alice,
            session(server, "bob") as bob,
            session(server, "dave") as dave,
            session(server, "viewer") as viewer,
        ):
            await viewer.subscribe(SYM_A)
            applied = await alice.engine(
                s.ApplyAuction(auction_id=0, account=1, instrument=SYM_A, qty_t=100_000)
            )
            auction_id = applied.order_id
            assert type(applied.reports[0].event) is s.AuctionApplied
            refused = await alice.engine(s.AnnounceAuction(auction_id=auction_id))
            assert refused.reject is not None and refused.reject.code == RC.NOT_PERMITTED
            announced = await op.engine(
                s.AnnounceAuction(auction_id=auction_id, clearing=s.ClearingRule.UNIFORM)
            )
            terms = announced.reports[0].event
            assert (terms.floor_price_ticks, terms.cap_price_ticks) == (6_000, 6_600)
            bob_bid = await bob.engine(
                s.SubmitAuctionBid(
                    bid_id=0, auction_id=auction_id, account=2, price_ticks=6_300, qty_t=60_000
                )
            )
            dave_bid = await dave.engine(
                s.SubmitAuctionBid(
                    bid_id=0, auction_id=auction_id, account=5, price_ticks=6_200, qty_t=60_000
                )
            )
            assert bob_bid.order_id == bob_bid.seq and dave_bid.order_id == dave_bid.seq
            await settle()
            # sealed: a bidder sees its own bid only; the public sees no bid
            assert [e.bid_id for e in events_of(bob, s.AuctionBidAccepted)] == [bob_bid.order_id]
            assert [e.bid_id for e in events_of(dave, s.AuctionBidAccepted)] == [dave_bid.order_id]
            assert events_of(alice, s.AuctionBidAccepted) == []
            assert not [m for m in viewer.statuses if type(m.event) is s.AuctionBidAccepted]
            cleared = await op.engine(s.ClearAuction(auction_id=auction_id))
            kinds = [type(r.event) for r in cleared.reports]
            assert kinds == [s.AuctionTrade, s.AuctionTrade, s.AuctionCleared]
            await settle()
            # uniform price: the lowest accepted bid's; dave's bid is the marginal one
            assert [
                (e.qty_t, e.price_ticks, e.bid_unfilled_t) for e in events_of(dave, s.AuctionTrade)
            ] == [(40_000, 6_200, 20_000)]
            assert len(events_of(alice, s.AuctionTrade)) == 2  # the seller hears every fill
            assert [(t.mode, t.qty_t) for t in viewer.trades] == [(2, 60_000), (2, 40_000)]
            public = [type(m.event) for m in viewer.statuses]
            assert s.AuctionAnnounced in public and s.AuctionCleared in public

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_phase_change_and_composite_price_reach_subscribers(tmp_path) -> None:
    server = start(tmp_path)

    async def scenario():
        async with session(server, "op") as op, session(server, "viewer") as viewer:
            await viewer.subscribe(SYM_C)
            await op.engine(s.OpenSession(trading_date=DATE1))
            refused = await op.engine(s.SetTradingPhase(phase=1))
            assert refused.reports[0].event.reason == s.RejectReason.INVALID_PHASE
            await op.engine(s.SetTradingPhase(phase=0, instrument=SYM_C))
            await op.engine(s.CloseSession(trading_date=DATE1))
            await settle()
            kinds = [type(m.event) for m in viewer.statuses]
            assert s.TradingPhaseChanged in kinds and s.SessionModeVolumes in kinds
            composite = [m for m in viewer.statuses if type(m.event) is s.CompositePrice]
            # equal-weighted mean of the three closes 6000, 6000, 6005, rounded half up
            assert [(m.instrument, m.event.price_ticks, m.event.vintages) for m in composite] == [
                ("", 6_002, 3)
            ]

    try:
        asyncio.run(scenario())
    finally:
        server.stop()

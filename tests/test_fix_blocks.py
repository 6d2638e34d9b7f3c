"""Block offers over FIX (docs/FIX.md, "Block offers"): BlockOfferNew (U1), BlockOfferAccept
(U2) and BlockOfferCancel (U3) in, BlockOfferReport (U4) out, against native clients.

A simplefix initiator trades for alice (account 1); bob (account 2) and dave (account 5) are
native clients.  The market (``small_market``) allows block trades all day.
"""

from __future__ import annotations

from engine.core import schema as s
from gateway.client import SyncClient
from tests.gateway_fixtures import DATE1, SYM_A, password
from tests.test_fix_client import FixClient, close_fix_clients, field, start_fix_server

SELL = s.Side.SELL
__all__ = ["close_fix_clients"]  # the fixture, used by every test here


def native(server, user: str) -> SyncClient:
    return SyncClient("127.0.0.1", server.port, user, password(user))


def facts(report, *tags: int) -> tuple:
    return tuple(field(report, tag) for tag in tags)


def test_a_directed_block_offer_posted_over_fix_is_accepted_natively(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    op, bob = native(server, "op"), native(server, "bob")
    fix = FixClient(server.fix_port, "ALICE1")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        fix.logon("alice")
        fix.send("U1", [(11, "blk1"), (55, SYM_A), (54, "2"), (38, 150_000), (44, "65.00"),
                        (20010, 2)])  # fmt: skip
        posted = fix.expect("U4")
        offer_id = field(posted, 20011)
        assert facts(posted, 11, 39, 1, 55, 54, 38, 44, 20010) == (
            "blk1", "0", "1", SYM_A, "2", "150000", "65.00", "2",
        )  # fmt: skip
        # the native counterparty sees the same offer id and accepts it
        done = bob.engine(
            s.AcceptBlockOffer(offer_id=int(offer_id), account=2, price_ticks=6_500, qty_t=150_000)
        )
        trade = done.reports[0].event
        assert type(trade) is s.BlockTradeExecuted and trade.offer_id == int(offer_id)
        traded = fix.expect("U4")
        assert facts(traded, 20011, 39, 1, 20010, 54, 32, 31, 880) == (
            offer_id, "2", "1", "2", "2", "150000", "65.00", str(trade.trade_id),
        )  # fmt: skip
        assert field(traded, 11) is None  # the trade was bob's request, not this session's
    finally:
        fix.close()
        for client in (op, bob):
            client.shutdown()
        server.stop()


def test_offers_to_fix_accepted_and_cancelled_and_others_offers_look_unknown(tmp_path) -> None:
    server = start_fix_server(tmp_path / "data")
    op, bob, dave = native(server, "op"), native(server, "bob"), native(server, "dave")
    fix = FixClient(server.fix_port, "ALICE1")
    try:
        op.engine(s.OpenSession(trading_date=DATE1))
        fix.logon("alice")
        # bob's directed offer to alice reaches the FIX session unsolicited; alice accepts by U2
        offer = bob.engine(
            s.SubmitBlockOffer(offer_id=0, account=2, instrument=SYM_A, side=SELL,
                               qty_t=120_000, price_ticks=6_400, counterparty=1)
        )  # fmt: skip
        told = fix.expect("U4")
        assert facts(told, 20011, 39, 1, 54, 38, 44, 20010) == (
            str(offer.order_id), "0", "2", "2", "120000", "64.00", "1",
        )  # fmt: skip
        fix.send("U2", [(11, "acc1"), (20011, offer.order_id), (44, "64.00"), (38, 120_000)])
        accepted = fix.expect("U4")
        assert facts(accepted, 11, 20011, 39, 1, 20010, 32) == (
            "acc1", str(offer.order_id), "2", "2", "1", "120000",
        )  # fmt: skip

        # an open offer posted over FIX (no 20010), then cancelled over FIX
        fix.send("U1", [(11, "blk2"), (55, SYM_A), (54, "1"), (38, 200_000), (44, "58.00")])
        open_offer = fix.expect("U4")
        assert facts(open_offer, 11, 39, 20010) == ("blk2", "0", None)
        fix.send("U3", [(11, "cx1"), (20011, field(open_offer, 20011))])
        cancelled = fix.expect("U4")
        assert facts(cancelled, 11, 20011, 39, 58) == (
            "cx1", field(open_offer, 20011), "4", "REQUESTED",
        )  # fmt: skip

        # dave's offer to bob is none of alice's business: the same answer as an unknown id
        hidden = dave.engine(
            s.SubmitBlockOffer(offer_id=0, account=5, instrument=SYM_A, side=SELL,
                               qty_t=100_000, price_ticks=6_300, counterparty=2)
        )  # fmt: skip
        answers = []
        for offer_id in (hidden.order_id, 999_999):
            fix.send("U3", [(11, f"x{offer_id}"), (20011, offer_id)])
            answers.append(fix.expect("U4"))
        unknown = (39, 1, 55, 372, 58, 20002)
        assert facts(answers[0], *unknown) == facts(answers[1], *unknown)
        assert facts(answers[0], 39, 58) == ("8", "UNKNOWN_BLOCK_OFFER")
        for offer_id in (hidden.order_id, 999_999):
            fix.send("U2", [(20011, offer_id), (44, "63.00"), (38, 100_000)])
            answers.append(fix.expect("U4"))
        assert facts(answers[2], *unknown) == facts(answers[3], *unknown)

        # refused by the acceptor: a fraction of a fen
        fix.send("U1", [(11, "blk3"), (55, SYM_A), (54, "2"), (38, 1), (44, "65.001")])
        bad = fix.expect("U4")
        assert facts(bad, 11, 20011, 39, 372) == ("blk3", "NONE", "8", "U1")
    finally:
        fix.close()
        for client in (op, bob, dave):
            client.shutdown()
        server.stop()

"""Confidentiality: nothing about another account's orders, offers or auctions reaches a trader.

Every request that names an order, a block offer, an auction or an account the session does
not own is answered, byte for byte, as the same request naming an id that does not exist:
same Reject or the same sequenced refusal (reason, instrument, client order id), same Ack.

Each case runs the same script in several *worlds* that differ only in what the victim's
command at the targeted seq did (it rested, it ended, it was no order at all), on a sequencer
with a fixed clock, so the attacker's answer must be the same bytes in every world.  The log
must not attribute the victim's client order id to the attacker's command either.
"""

from __future__ import annotations

import itertools

import msgspec
import pytest

from engine.core import limits
from engine.core import schema as s
from engine.durable.sequencer import Sequencer
from gateway import protocol as p
from gateway.core import GatewayConfig, GatewayCore
from gateway.orders import decode_annotation
from gateway.session import Session
from tests.gateway_fixtures import DATE1, SYM_A, password, small_market, users

BUY, SELL = int(s.Side.BUY), int(s.Side.SELL)
DIRECTORY = users()
TARGET = "target"
"""Placeholder the scripts use for the victim's id (the seq of the victim's command)."""


class World:
    """One exchange with a fixed clock, a gateway core and logged-on sessions."""

    def __init__(self, path) -> None:
        ticks = itertools.count(1_700_000_000_000_000_000, 1_000)
        self.exchange = Sequencer.open(
            path, small_market(), durability="none", clock=lambda: next(ticks)
        )
        self.core = GatewayCore(self.exchange, GatewayConfig(port=0))
        self.sessions = {
            name: self._logon(k, name) for k, name in enumerate(["op", "alice", "bob", "carol"])
        }
        self.send("op", p.EngineRequest(request_id=1, command=s.OpenSession(trading_date=DATE1)))

    def _logon(self, session_id: int, name: str) -> Session:
        session = self.core.open_session(session_id, 0.0)
        logon = p.Logon(user=name, password=password(name), protocol_version=1)
        session.receive_data(p.encode(logon), 0.0)
        self.core.logons.clear()
        user = DIRECTORY.authenticate(name, password(name))
        assert self.core.complete_logon(session, logon, None, user)
        session.take_output()
        return session

    def send(self, name: str, message) -> bytes:
        """``message`` from ``name``'s session, sequenced; the bytes it got back."""
        session = self.sessions[name]
        session.take_output()
        session.receive_data(p.encode(message), 0.0)
        for batch in self.core.take_batches():
            events = self.exchange.submit_records(batch.command_records(), batch.annotation_blob())
            self.core.batch_committed(batch, events)
        return bytes(session.take_output()[0])

    def last_annotation(self):
        *_, batch = self.exchange.journal.read(1)
        return decode_annotation(batch.annotations()[-1])

    def close(self) -> None:
        self.exchange.close()


def decoded(data: bytes) -> list:
    return [
        p.decode_server(body) for body in p.FrameReader(limits.OUTBOUND_FRAME_BYTES_MAX).feed(data)
    ]


def order(request_id: int, client_order_id: str, **kw) -> p.NewOrder:
    fields = dict(instrument=SYM_A, side=SELL, qty_t=10, price_ticks=6_100, account=1)
    fields.update(kw)
    return p.NewOrder(request_id=request_id, client_order_id=client_order_id, **fields)


def engine(request_id: int, command) -> p.EngineRequest:
    return p.EngineRequest(request_id=request_id, command=command)


def _with_target(message, target: int):
    """``message`` with every field holding the TARGET placeholder set to ``target``."""
    changes = {}
    for field in message.__struct_fields__:
        value = getattr(message, field)
        if value == TARGET:
            changes[field] = target
        elif isinstance(value, msgspec.Struct):
            changes[field] = _with_target(value, target)
    return msgspec.structs.replace(message, **changes) if changes else message


# The victim's command at the targeted seq, per world: it leaves a live order / offer / auction
# of account 1, it leaves an ended one, or it is no such thing (an empty mass cancel).
ORDER_WORLDS = {
    "resting": ("alice", order(7, "secret-7")),
    "resting-gtc": ("alice", order(7, "secret-7", tif=int(s.TimeInForce.GTC))),
    "ended": ("alice", order(7, "secret-7", price_ticks=9_999)),  # out of band: rejected
    "cancelled": ("alice", order(7, "secret-7", tif=int(s.TimeInForce.IOC))),
    "no order": ("alice", engine(7, s.MassCancel(account=1))),
    "another firm's": ("carol", order(7, "secret-7", account=3)),
}
DIRECTED = s.SubmitBlockOffer(
    offer_id=0,
    account=1,
    instrument=SYM_A,
    side=SELL,
    qty_t=150_000,
    price_ticks=6_500,
    counterparty=3,
)
OFFER_WORLDS = {
    "directed elsewhere": ("alice", engine(7, DIRECTED)),
    "no offer": ("alice", engine(7, s.MassCancel(account=1))),
    "rejected offer": ("alice", engine(7, msgspec.structs.replace(DIRECTED, qty_t=1))),
}
OPEN_OFFER_WORLDS = {
    **OFFER_WORLDS,
    "open": ("alice", engine(7, msgspec.structs.replace(DIRECTED, counterparty=-1))),
}
AUCTION_WORLDS = {
    "applied, not announced": (
        "alice",
        engine(7, s.ApplyAuction(auction_id=0, account=1, instrument=SYM_A, qty_t=100_000)),
    ),
    "no auction": ("alice", engine(7, s.MassCancel(account=1))),
}

CASES = {
    # name: (worlds, setup after the victim's command, the attacker's request)
    "CancelRequest": (ORDER_WORLDS, [], p.CancelRequest(request_id=9, order_id=TARGET)),
    "ModifyRequest": (
        ORDER_WORLDS,
        [],
        p.ModifyRequest(request_id=9, order_id=TARGET, price_ticks=6_050, qty_t=5),
    ),
    "ModifyRequest, instrument halted": (
        ORDER_WORLDS,
        [("op", engine(8, s.HaltInstrument(instrument=SYM_A)))],
        p.ModifyRequest(request_id=9, order_id=TARGET, price_ticks=6_050, qty_t=5),
    ),
    "ModifyRequest with invalid terms": (
        ORDER_WORLDS,
        [],
        p.ModifyRequest(request_id=9, order_id=TARGET, price_ticks=0, qty_t=0),
    ),
    "EngineRequest CancelOrder": (
        ORDER_WORLDS,
        [],
        engine(9, s.CancelOrder(order_id=TARGET, account=2)),
    ),
    "EngineRequest ModifyOrder": (
        ORDER_WORLDS,
        [("op", engine(8, s.HaltInstrument(instrument=SYM_A)))],
        engine(9, s.ModifyOrder(order_id=TARGET, account=2, price_ticks=6_050, qty_t=5)),
    ),
    "hit-quote beyond the best levels": (
        {
            "resting beyond": ORDER_WORLDS["resting"],
            "ended": ORDER_WORLDS["ended"],
            "no order": ORDER_WORLDS["no order"],
        },
        [
            ("carol", order(20 + k, f"better-{k}", account=3, price_ticks=6_000 + k))
            for k in range(6)
        ],
        p.NewOrder(
            request_id=9,
            client_order_id="hq",
            instrument=SYM_A,
            side=BUY,
            qty_t=5,
            order_type=int(s.OrderType.HIT_QUOTE),
            tif=int(s.TimeInForce.IOC),
            quote_order_id=TARGET,
        ),
    ),
    "AcceptBlockOffer": (
        OFFER_WORLDS,
        [],
        engine(9, s.AcceptBlockOffer(offer_id=TARGET, account=2, price_ticks=6_500, qty_t=150_000)),
    ),
    "AcceptBlockOffer, instrument halted": (
        OFFER_WORLDS,
        [("op", engine(8, s.HaltInstrument(instrument=SYM_A)))],
        engine(9, s.AcceptBlockOffer(offer_id=TARGET, account=2, price_ticks=1, qty_t=1)),
    ),
    "CancelBlockOffer": (
        OPEN_OFFER_WORLDS,
        [],
        engine(9, s.CancelBlockOffer(offer_id=TARGET, account=2)),
    ),
    "SubmitAuctionBid": (
        AUCTION_WORLDS,
        [],
        engine(
            9,
            s.SubmitAuctionBid(
                bid_id=0, auction_id=TARGET, account=2, price_ticks=6_300, qty_t=60_000
            ),
        ),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_another_accounts_ids_are_answered_as_unknown_ids(tmp_path, case) -> None:
    worlds, setup, attack = CASES[case]
    answers, annotations = {}, {}
    for k, (world_name, (victim, command)) in enumerate(worlds.items()):
        world = World(tmp_path / f"world{k}")
        try:
            target = world.exchange.next_seq
            world.send(victim, command)
            for name, message in setup:
                world.send(name, message)
            answers[world_name] = world.send("bob", _with_target(attack, target))
            annotations[world_name] = world.last_annotation()
        finally:
            world.close()
    reference = answers["no order" if "no order" in answers else next(reversed(answers))]
    messages = decoded(reference)
    assert messages and type(messages[-1]) in (p.Ack, p.Reject), messages
    for world_name, answer in answers.items():
        assert answer == reference, (world_name, decoded(answer), messages)
        annotation = annotations[world_name]
        assert annotation.user == "bob" and annotation.client_order_id in ("", "hq")
    assert b"secret" not in reference and "secret" not in repr(annotations)


def test_walking_order_ids_harvests_nothing(tmp_path) -> None:
    """The issue's attack: cancel ids 1 … N; every answer is an unknown order's."""
    world = World(tmp_path / "data")
    try:
        for k in range(5):
            world.send("alice", order(k, f"alice-secret-{k}", price_ticks=6_100 + k))
        last = world.exchange.last_seq
        for order_id in range(1, last + 3):
            answer = decoded(world.send("bob", p.CancelRequest(request_id=1, order_id=order_id)))
            *reports, ack = answer
            assert type(ack) is p.Ack and (ack.order_id, ack.client_order_id) == (order_id, "")
            assert [(r.exec_type, r.reason, r.client_order_id) for r in reports] == [
                (p.ExecType.CANCEL_REJECTED, s.RejectReason.UNKNOWN_ORDER, "")
            ]
            assert world.last_annotation().client_order_id == ""
        # alice herself still gets her client id and the engine's answer for her own orders
        mine = decoded(world.send("alice", p.CancelRequest(request_id=2, order_id=last)))
        assert [type(m) for m in mine] == [p.ExecutionReport, p.Ack]
        assert mine[0].exec_type == p.ExecType.CANCELLED and mine[1].client_order_id.startswith(
            "alice-secret"
        )
        again = decoded(world.send("alice", p.CancelRequest(request_id=3, order_id=last)))
        assert (again[0].reason, again[0].client_order_id) == (
            s.RejectReason.UNKNOWN_ORDER,
            mine[1].client_order_id,
        )
    finally:
        world.close()


def test_a_drop_copy_still_sees_the_engines_answer(tmp_path) -> None:
    world = World(tmp_path / "data")
    try:
        viewer = world.core.open_session(99, 0.0)
        logon = p.Logon(user="op", password=password("op"), protocol_version=1, drop_copy=True)
        viewer.receive_data(p.encode(logon), 0.0)
        world.core.logons.clear()
        assert world.core.complete_logon(
            viewer, logon, None, DIRECTORY.authenticate("op", password("op"))
        )
        target = world.exchange.next_seq
        world.send("alice", order(1, "mine"))
        viewer.take_output()
        world.send("bob", p.CancelRequest(request_id=1, order_id=target))
        [copy] = decoded(bytes(viewer.take_output()[0]))
        assert (copy.user, copy.client_order_id, copy.event.reason) == (
            "bob",
            "",
            s.RejectReason.NOT_ORDER_OWNER,
        )
    finally:
        world.close()


# -- the order tracker's memory is bounded by live orders plus one trading day ---------------


def _tracker_state(tracker) -> tuple:
    return (
        tracker.by_client,
        tracker.client_of,
        {account: orders for account, orders in tracker.live.items() if orders},
        sorted(zip(tracker.ended_today[::2], tracker.ended_today[1::2])),
        tracker.trading_date,
        tracker.day_start_seq,
    )


def test_client_order_ids_age_out_after_their_trading_day(tmp_path) -> None:
    from gateway.orders import OrderTracker

    world = World(tmp_path / "data")
    try:
        core, per_day, sizes = world.core, 40, []
        gtc = order(1, "gtc-0", tif=int(s.TimeInForce.GTC), price_ticks=6_300)
        assert type(decoded(world.send("alice", gtc))[-1]) is p.Ack
        for day in range(6):
            date = DATE1 + day
            if day:
                world.send("op", engine(1, s.OpenSession(trading_date=date)))
            for k in range(per_day):  # IOC orders with nothing to trade against: they end
                answer = world.send(
                    "alice", order(k, f"d{day}-{k}", tif=int(s.TimeInForce.IOC), side=BUY)
                )
                assert type(decoded(answer)[-1]) is p.Ack
            # a duplicate of today's ended order and of the live GTC order are refused
            for client_order_id in (f"d{day}-0", "gtc-0"):
                [reject] = decoded(world.send("alice", order(1, client_order_id)))
                assert reject.code == p.RejectCode.DUPLICATE_CLIENT_ORDER_ID
            if day:  # yesterday's ended orders were forgotten when today began
                assert core.tracker.lookup(1, f"d{day - 1}-0") is None
            sizes.append(core.tracker.size())
            recovered = OrderTracker.recover(world.exchange)
            assert _tracker_state(recovered) == _tracker_state(core.tracker), day
            world.send("op", engine(2, s.CloseSession(trading_date=date)))
        assert max(sizes) == sizes[1] and sizes[1] <= 3 * (per_day + 1) + 2, sizes
        reused = decoded(world.send("alice", order(5, "d0-0", side=BUY, tif=3)))
        assert type(reused[-1]) is p.Ack, "an id of an earlier day may be used again"
    finally:
        world.close()

"""The compiled fan-out (``gateway.fastpath``) sends exactly the bytes of the typed one.

``GatewayCore._route`` builds each ``ExecutionReport`` and ``Ack`` as a msgspec Struct and
encodes it with ``protocol.encoder``; ``ReportRouter.route`` writes the frames straight from the
event rows.  Over many random batches of order events - every order kind, integers at every
MessagePack width boundary, client order ids of every string width and of any script,
sessions sharing accounts and users, hidden commands, requesters gone or never routed - each
session must receive the same bytes, the same frame count, and be marked dirty in the same
order.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest

from engine.core import records as r
from gateway import fastpath
from gateway import orders as orders_module
from gateway import protocol as p
from gateway.batch import Batch
from gateway.core import GatewayCore
from gateway.orders import Annotation, OrderTracker
from gateway.session import State

SYMBOLS = ["?", "", "CEA-A", "CEA-B", "深圳-碳"]
"""As ``GatewayCore._symbols``: "?", all instruments, the market's symbols."""
EDGES = [
    0,
    1,
    31,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**63 - 1,
    -1,
    -31,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2**31),
    -(2**31) - 1,
    -(2**63),
]
KINDS = sorted(
    fastpath_kinds := {
        r.EV_ACCEPTED,
        r.EV_REJECTED,
        r.EV_TRADE,
        r.EV_CANCELLED,
        r.EV_MODIFIED,
        r.EV_CANCEL_REJECTED,
        r.EV_MODIFY_REJECTED,
    }
)


class FakeSession:
    """What both fan-outs touch of a session."""

    def __init__(self, user_name: str, state: State = State.ACTIVE) -> None:
        self.user_name, self.state = user_name, state
        self.out, self.out_frames, self.dirty = bytearray(), 0, False


def _text(rng: random.Random) -> str:
    length = rng.choice([0, 1, 5, 31, 32, 33, 100, 255, 256, 300])
    alphabet = rng.choice(["abc-XYZ_019", "碳排放配额", "ab\u00e9\U0001f600"])
    return "".join(rng.choice(alphabet) for _ in range(length))


def _value(rng: random.Random) -> int:
    return rng.choice(EDGES) if rng.random() < 0.5 else rng.randrange(-(10**6), 10**9)


def _batch(rng: random.Random, first_seq: int, commands: int, accounts: int):
    rows, annotations = [], []
    for k in range(commands):
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            row = [_value(rng) for _ in range(r.EVENT_FIELDS)]
            row[r.E_KIND] = rng.choice(KINDS)
            row[r.E_SEQ] = first_seq + k
            row[r.E_INSTRUMENT] = rng.randrange(-3, len(SYMBOLS))
            row[r.E_SIDE] = rng.randrange(0, 256)  # a one-byte code (a maker's side is 3 - it)
            row[r.E_ACCOUNT] = rng.randrange(-1, accounts + 2)
            row[r.TRADE_EXECUTED.maker_account] = rng.randrange(-1, accounts + 2)
            if rng.random() < 0.5:
                row[r.E_ORDER_ID] = rng.randrange(1, 50)
                row[r.TRADE_EXECUTED.maker_order_id] = rng.randrange(1, 50)
            if rng.random() < 0.5:  # leaves: filled or not
                row[r.TRADE_EXECUTED.taker_leaves_t] = rng.choice([0, 5])
                row[r.TRADE_EXECUTED.maker_leaves_t] = rng.choice([0, 5])
            if rng.random() < 0.3:
                row[r.E_REASON] = rng.randrange(0, 40)
            rows.append(row)
        annotations.append(
            Annotation(
                rng.choice(["alice", "bob", "carol", "", "nobody"]),
                _value(rng) & (2**63 - 1),
                _text(rng),
                rng.random() < 0.2,
            )
        )
    return rows, annotations


def _as_batch(first_seq: int, annotations: list, requesters: list) -> Batch:
    """A batch of the commands with these annotations and (session or None, Ack's order id)."""
    batch = Batch()
    for k, (annotation, (session, order_id)) in enumerate(zip(annotations, requesters)):
        batch.add((first_seq + k,), annotation, session, order_id)
    return batch


def _fan_out(rows, batch: Batch, sessions, by_account, client_of, fast: bool):
    for session in sessions:
        session.out, session.out_frames, session.dirty = bytearray(), 0, False
    dirty: list = []
    if fast:
        router = fastpath.ReportRouter(SYMBOLS)
        table = np.array(rows, dtype=np.int64).reshape(-1, r.EVENT_FIELDS)
        routed = router.route(table, batch, client_of, by_account, dirty)
        assert routed
    else:
        core = SimpleNamespace(
            by_account=by_account,
            tracker=SimpleNamespace(client_of=client_of),
            dirty=dirty,
            _symbols=SYMBOLS,
            drop_copies=set(),
        )
        GatewayCore._route(core, batch.first_seq, rows, batch.annotations, batch.origins)
    return [(bytes(s.out), s.out_frames) for s in sessions], dirty


@pytest.mark.parametrize("seed", range(40))
def test_compiled_fan_out_sends_the_typed_bytes(seed: int) -> None:
    print(f"seed {seed}")
    rng = random.Random(seed)
    accounts = rng.choice([1, 3, 6])
    sessions = [FakeSession(rng.choice(["alice", "bob", "carol"])) for _ in range(5)]
    sessions.append(FakeSession("dave", State.CLOSING))
    by_account = {a: {s for s in sessions if rng.random() < 0.4} for a in range(accounts)}
    by_account = {a: members for a, members in by_account.items() if members}
    client_of = {order_id: _text(rng) for order_id in range(1, 50) if rng.random() < 0.7}
    first_seq = rng.randrange(1, 10**6)
    rows, annotations = _batch(rng, first_seq, rng.randrange(1, 60), accounts)
    loner = FakeSession("erin")  # a requester routed by no account
    requesters = [
        rng.choice([(None, 0), (rng.choice([*sessions, loner]), _value(rng) & 0xFFFF)])
        for _ in annotations
    ]
    batch = _as_batch(first_seq, annotations, requesters)
    everyone = [*sessions, loner]
    typed, typed_dirty = _fan_out(rows, batch, everyone, by_account, client_of, False)
    fast, fast_dirty = _fan_out(rows, batch, everyone, by_account, client_of, True)
    assert fast == typed
    assert fast_dirty == typed_dirty
    assert any(out for out, _ in typed) or not rows


def test_frames_decode_as_the_typed_messages() -> None:
    """A plain case read back: an accepted order's report and its Ack."""
    alice = FakeSession("alice")
    row = [0] * r.EVENT_FIELDS
    row[r.E_KIND], row[r.E_SEQ], row[r.E_INSTRUMENT] = r.EV_ACCEPTED, 7, 0
    row[r.E_ORDER_ID], row[r.E_ACCOUNT], row[r.E_QTY], row[r.E_PRICE] = 7, 1, 300, 6000
    annotation = Annotation("alice", 42, "c-1")
    batch = _as_batch(7, [annotation], [(alice, 7)])
    _fan_out([row], batch, [alice], {1: {alice}}, {7: "c-1"}, True)
    frames = p.FrameReader(1 << 20).feed(bytes(alice.out))
    report, ack = (p.decode_server(frame) for frame in frames)
    assert report.exec_type == p.ExecType.ACCEPTED and report.client_order_id == "c-1"
    assert (report.instrument, report.qty_t, report.leaves_qty_t) == ("CEA-A", 300, 300)
    assert ack == p.Ack(42, 7, 7, "c-1")


def test_a_batch_with_another_event_is_left_to_the_general_fan_out() -> None:
    alice = FakeSession("alice")
    row = [0] * r.EVENT_FIELDS
    row[r.E_KIND], row[r.E_SEQ], row[r.E_ACCOUNT] = r.EV_SESSION_OPENED, 3, 1
    assert r.EV_SESSION_OPENED not in fastpath_kinds
    router = fastpath.ReportRouter(SYMBOLS)
    table = np.array([row], dtype=np.int64)
    batch = _as_batch(3, [Annotation("alice", 1)], [(alice, 0)])
    dirty: list = []
    assert not router.route(table, batch, {}, {1: {alice}}, dirty)
    assert not alice.out and not dirty


def test_keys_are_msgspecs() -> None:
    """The map keys the kernels write are those msgspec writes."""
    report = p.ExecutionReport(
        *(("" if f in ("client_order_id", "instrument") else 0) for f in fastpath.REPORT_FIELDS)
    )
    encoded = msgspec.msgpack.encode(report)
    assert encoded.startswith(b"\xde\x00\x19" + bytes(fastpath.KEYS[: fastpath.KEY_ENDS[0]]))


@pytest.mark.parametrize("seed", range(20))
def test_tracker_table_form_equals_the_row_form(seed: int) -> None:
    """``OrderTracker.apply_table`` (large batches), and the compiled pass that picks out
    the orders that end (``fastpath.ended_orders``, once compiled), leave the state ``apply``
    (a few rows) does: live orders, owners, forgotten and remembered client order ids, ended
    orders in order, offers and auctions."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    kinds = [*KINDS, *sorted(orders_module._MODE_KINDS), r.EV_SESSION_OPENED]
    rows = []
    accounts = 1 + seed % 3  # one account (the tracker's shortcut), or several
    for _ in range(rng.randrange(0, 80)):
        row = [rng.randrange(0, 5) for _ in range(r.EVENT_FIELDS)]
        row[r.E_KIND] = rng.choice(kinds)
        row[r.E_ORDER_ID] = rng.randrange(1, 40)
        row[r.TRADE_EXECUTED.maker_order_id] = rng.randrange(1, 40)
        row[r.E_ACCOUNT] = row[r.E_ORDER_ID] % accounts
        row[r.TRADE_EXECUTED.maker_account] = row[r.TRADE_EXECUTED.maker_order_id] % accounts
        rows.append(row)
    trackers = []
    router = fastpath.ReportRouter(SYMBOLS)
    for form in ("rows", "table", "compiled"):
        tracker = OrderTracker()
        if seed % 2:
            tracker.part_ids = 4  # the accounts' ids in parts
        owner = SimpleNamespace(live_orders={})
        for order_id in range(1, 40):
            owned = owner if order_id % 2 else None
            tracker.reserve(order_id % accounts, f"c{order_id}", order_id, owned)
        tracker.day_start_seq = 20
        tracker.offers = {k: (k % 3, -1) for k in range(1, 40, 3)}
        tracker.auctions = {k: (k % 3, False) for k in range(2, 40, 3)}
        table = np.array(rows, dtype=np.int64).reshape(-1, r.EVENT_FIELDS)
        if form == "rows":
            tracker.apply(rows)
        elif form == "table":
            tracker.apply_table(table)
        else:  # as GatewayCore.batch_committed does with the compiled pass
            ended, others = router.ended(table)
            tracker.end_orders(ended[:, 0], ended[:, 1])
            if others:
                tracker.apply_mode_events(table)
        trackers.append((tracker, owner))
    (one, one_owner), *rest = trackers
    for other, other_owner in rest:
        for name in ("by_client", "client_of", "live", "offers", "auctions"):
            assert getattr(one, name) == getattr(other, name), name
        assert list(one.ended_today) == list(other.ended_today)
        assert set(one.owner) == set(other.owner)
        assert one_owner.live_orders == other_owner.live_orders

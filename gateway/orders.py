"""The gateway's memory of orders: client order ids, open-order counts, session ownership.

Theory of operation
-------------------
The gateway assigns every new order its engine order id: the sequence number the order's
``SubmitOrder`` command receives, claimed from the sequencer as the command is made
(``Sequencer.claim``; the submission checks the batch carries the claimed seqs).  Ids are therefore positive, unique for the life of the data directory, and need no
counter of their own.

Each command the gateway submits carries an :class:`Annotation` in the log - who sent it, the
request id, the client order id - so everything this module knows is a function of the log:

* ``by_client[account][client_order_id] -> order_id`` and ``client_of[order_id]`` cover
  every order ever submitted (client order ids are unique per account for the life of the
  data directory), rebuilt at start-up by reading the annotations of the whole log;
* ``open_count[account]`` counts resting orders plus orders in flight; at start-up it is
  taken from the recovered engine's books, then kept current from the events.

Connections (for cancel-on-disconnect) are the only thing not recovered: they do not survive
a restart.

The maps hold only ints and strings, so CPython's cycle collector never tracks (never walks)
them: their size costs no garbage-collection pauses.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from engine.core import schema as s
from engine.core.records import (
    E_ACCOUNT,
    E_KIND,
    E_ORDER_ID,
    EV_CANCELLED,
    EV_REJECTED,
    EV_TRADE,
    K_SUBMIT,
    TRADE_EXECUTED,
)


class Annotation(msgspec.Struct, frozen=True, array_like=True):
    """What the gateway stores in the log with each command (a MessagePack array)."""

    user: str
    request_id: int = 0
    client_order_id: str = ""
    """The order's client id (for a cancel or modify: of the order it targets)."""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Annotation).decode
NO_ANNOTATION = Annotation(user="")
_TAKER_LEAVES, _MAKER_LEAVES = TRADE_EXECUTED.taker_leaves_t, TRADE_EXECUTED.maker_leaves_t
_MAKER_ORDER_ID, _MAKER_ACCOUNT = TRADE_EXECUTED.maker_order_id, TRADE_EXECUTED.maker_account


def encode_annotation(annotation: Annotation) -> bytes:
    return _encode(annotation)


def decode_annotation(data: bytes | None) -> Annotation:
    """The annotation of a logged command (NO_ANNOTATION when absent or unreadable)."""
    if not data:
        return NO_ANNOTATION
    try:
        return _decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return NO_ANNOTATION


class OrderTracker:
    """Client order ids, open-order counts and cancel-on-disconnect ownership."""

    def __init__(self) -> None:
        self.by_client: dict[int, dict[str, int]] = {}
        self.client_of: dict[int, str] = {}
        self.open_count: dict[int, int] = {}
        self.owner: dict[int, Any] = {}
        """order id -> the connection that entered it (only cancel-on-disconnect ones)."""

    # -- requests ------------------------------------------------------------------------------
    def lookup(self, account: int, client_order_id: str) -> int | None:
        """The engine order id of an account's client order id (None: never used)."""
        known = self.by_client.get(account)
        return None if known is None else known.get(client_order_id)

    def reserve(self, account: int, client_order_id: str, order_id: int, owner=None) -> None:
        """Record a new order about to be submitted: its ids, one more open order, its owner."""
        known = self.by_client.get(account)
        if known is None:
            known = self.by_client[account] = {}
        known[client_order_id] = order_id
        self.client_of[order_id] = client_order_id
        self.open_count[account] = self.open_count.get(account, 0) + 1
        if owner is not None:
            self.owner[order_id] = owner
            owner.live_orders[order_id] = account

    # -- events --------------------------------------------------------------------------------
    def _ended(self, order_id: int, account: int) -> None:
        self.open_count[account] = self.open_count.get(account, 1) - 1
        owner = self.owner.pop(order_id, None)
        if owner is not None:
            owner.live_orders.pop(order_id, None)

    def apply(self, rows: list) -> None:
        """Update the counts from a batch's event records (an order ends exactly once)."""
        ended = self._ended
        for row in rows:
            kind = row[E_KIND]
            if kind == EV_TRADE:
                if row[_TAKER_LEAVES] == 0:
                    ended(row[E_ORDER_ID], row[E_ACCOUNT])
                if row[_MAKER_LEAVES] == 0:
                    ended(row[_MAKER_ORDER_ID], row[_MAKER_ACCOUNT])
            elif kind == EV_CANCELLED or kind == EV_REJECTED:
                ended(row[E_ORDER_ID], row[E_ACCOUNT])

    # -- recovery ------------------------------------------------------------------------------
    @classmethod
    def recover(cls, exchange) -> OrderTracker:
        """Rebuild from the exchange's log (annotations) and its recovered engine (books)."""
        tracker = cls()
        for batch in exchange.journal.read(1):
            commands = batch.commands
            submits = np.flatnonzero(commands["kind"] == K_SUBMIT)
            if not len(submits):
                continue
            annotations = batch.annotations()
            if annotations is None:
                continue
            accounts = commands["account"][submits].tolist()
            order_ids = commands["order_id"][submits].tolist()
            for i, account, order_id in zip(submits.tolist(), accounts, order_ids):
                client_order_id = decode_annotation(annotations[i]).client_order_id
                if client_order_id:
                    tracker.by_client.setdefault(account, {})[client_order_id] = order_id
                    tracker.client_of[order_id] = client_order_id
        engine = exchange.engine
        for symbol in exchange.market.symbols:
            for side in (s.Side.BUY, s.Side.SELL):
                for order in engine.orders(symbol, side):
                    tracker.open_count[order.account] = tracker.open_count.get(order.account, 0) + 1
        return tracker

"""A follower's gateway: replicated batches reach its sessions through the gateway's own fan-out.

Theory of operation
-------------------
A follower (``cets follow``, or ``cets serve --replication quorum`` before it holds the lease)
listens at once with its gateway in read-only mode (``GatewayCore.read_only``: every request
that would be sequenced is refused ``NOT_PRIMARY``).  Each batch the stream delivers is applied
on the gateway's event loop - the one thread that owns the sequencer - by :meth:`ReplicaFeed.
apply`: ``Sequencer.apply_replicated`` appends and checks it, then the batch is handed to
``Gateway.publish_applied``, the same routing the primary ran after its own ``submit_records``:
execution and event reports to the sessions of the accounts concerned, drop copy, market data
(snapshots and gapless channel sequence numbers, as on the primary), FIX.  Because the routing
is a function of the log's commands, annotations and events, a follower's sessions receive what
the primary's received for the same batches (only the Acks, which answer a request on the
primary's connection, and the channel sequence numbers, which count one gateway's subscribers'
messages, are the primary's own).

The gateway's order memory (``gateway.orders.OrderTracker``) is kept as the primary keeps it:
the primary reserves a client order id, and records a new block offer or auction, as it makes
the command; here the same is done from the logged command and its annotation just before the
batch is routed (which then applies its events, as on the primary).  So when the follower
becomes the primary its gateway already knows every live order and every client order id in
use, exactly as ``OrderTracker.recover`` would rebuild them from the log.
"""

from __future__ import annotations

import numpy as np

from engine.core.records import (
    COMMAND_DTYPE,
    K_AUCTION_APPLY,
    K_BLOCK_OFFER,
    K_OPEN_SESSION,
    K_SUBMIT,
)
from engine.durable import journal as jr
from gateway.core import Batch
from gateway.orders import NO_ANNOTATION, OrderTracker, decode_annotation

_COLUMNS = tuple(COMMAND_DTYPE.names or ())
_SEQ_AT, _ORDER_ID_AT, _AUX_AT, _ACCOUNT_AT = (
    _COLUMNS.index(name) for name in ("seq", "order_id", "aux", "account")
)
"""Positions in a command record tuple (``aux`` holds an ``OpenSession``'s trading date)."""


def routed_batch(logged: jr.LoggedBatch, tracker: OrderTracker, codec) -> Batch:
    """The :class:`~gateway.core.Batch` the gateway's fan-out takes for a replicated batch (no
    origins: nobody here sent its requests), after reserving in ``tracker`` what the primary's
    gateway reserved as it made the batch's commands."""
    batch = Batch()
    commands = logged.commands
    records = commands.tolist()
    items = logged.annotations()
    annotations = (
        [NO_ANNOTATION] * logged.count
        if items is None
        else [decode_annotation(item) for item in items]
    )
    for record, annotation in zip(records, annotations, strict=True):
        batch.add(tuple(record), annotation, None, 0)
    kinds = commands["kind"]
    for i in np.flatnonzero(kinds == K_SUBMIT).tolist():
        record, client_order_id = records[i], annotations[i].client_order_id
        order_id, account = record[_ORDER_ID_AT], record[_ACCOUNT_AT]
        if client_order_id:
            tracker.reserve(account, client_order_id, order_id)
        else:  # not entered through a gateway: live all the same
            tracker.live.setdefault(account, set()).add(order_id)
    for i in np.flatnonzero(kinds == K_OPEN_SESSION).tolist():
        batch.sessions_opened.append((records[i][_SEQ_AT], records[i][_AUX_AT]))
    for i in np.flatnonzero((kinds == K_BLOCK_OFFER) | (kinds == K_AUCTION_APPLY)).tolist():
        tracker.created(codec.decode_command(records[i]), records[i][_SEQ_AT])
    return batch


class ReplicaFeed:
    """Applies replicated batches to a follower's exchange and routes them to its sessions.

    Call :meth:`apply` on the gateway's event loop only (it owns the sequencer).

    Parameters
    ----------
    gateway : gateway.server.Gateway
        Listening, read-only until this node becomes the primary.
    """

    def __init__(self, gateway) -> None:
        self.gateway = gateway
        self.batches = 0

    def apply(self, data: bytes) -> None:
        """Append, apply and check one batch (``Sequencer.apply_replicated``), then route it.

        Raises
        ------
        ReplicaDivergenceError
            The batch does not continue the local log or gave other results (nothing is
            routed; the sequencer accepts nothing more).
        """
        gateway = self.gateway
        logged = jr.decode_batch_bytes(data)
        events = gateway.exchange.apply_replicated(data)
        gateway.publish_applied(
            routed_batch(logged, gateway.tracker, gateway.exchange.codec), events
        )
        self.batches += 1

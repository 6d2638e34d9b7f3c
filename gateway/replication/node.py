"""One replicated node: a read-only gateway while it follows the stream, the primary once it
holds the lease.

``cets serve --replication quorum`` and ``cets follow`` run a :class:`ReplicatedNode` around
``gateway.service.run`` (:meth:`ReplicatedNode.service_options`):

1. ``prepare`` (:meth:`ReplicatedNode.connect`): connect to NATS, create the stream and lease
   bucket if needed, find where the local log ends in the stream (a log that disagrees stops
   the node here with a ``ReplicaDivergenceError``).
2. The gateway listens at once, read-only (``Gateway.set_read_only``): members log on with the
   same users file and get market data, drop copy, account queries and resend from the local
   log; every order and every other state-changing request is refused ``NOT_PRIMARY``.
3. ``ready`` (:meth:`ReplicatedNode.ready`): the follower runs on the NATS thread; each run of
   batches it receives is applied on the gateway's loop by a
   :class:`~gateway.replication.serving.ReplicaFeed` (the sequencer and the sessions live
   there) and routed to the sessions by the gateway's own fan-out.
4. When this node takes the lease, has applied the whole stream and appended its term message,
   a :class:`~gateway.replication.primary.StreamReplicator` is attached to the sequencer and
   the *same* gateway takes orders (``set_read_only(None)``): sessions logged on while it
   followed stay and can trade.

A fenced primary's gateway shuts down (nothing more is acknowledged) and the process exits with
the reason; so does a follower whose log diverges from the stream (:attr:`failure`).

:meth:`prepare` is the blocking form for a node without a gateway (tests, tools): catch up and
return once primary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import time
from collections.abc import Callable

from engine.durable.sequencer import Sequencer
from gateway.replication import stream as st
from gateway.replication.follower import Follower
from gateway.replication.link import NatsLink
from gateway.replication.primary import AsyncStreamReplicator, StreamReplicator
from gateway.replication.serving import ReplicaFeed

log = logging.getLogger("gateway.replication")

STOP_TIMEOUT_S = 10.0
REPLICATORS = {"quorum": StreamReplicator, "async": AsyncStreamReplicator}
"""The primary's replicator of each ``--replication`` mode."""


class GatewayStoppedError(RuntimeError):
    """The gateway stopped while the follower handed it batches (a normal end of following)."""


class ReplicatedNode:
    """A data directory kept in step with the stream, primary once it holds the lease.

    Parameters
    ----------
    servers : list of str
        NATS URLs of the cluster.
    names : StreamNames
        Stream name, replicas, lease TTL.
    node : str, optional
        This node's name (default ``<hostname>:<pid>``).
    takeover : bool
        Become primary when the lease is free (False: follow only, never serve orders).
    on_primary : callable, optional
        Called with the gateway, on its loop, once it takes orders as the primary.
    replication : str
        How the primary acknowledges: ``"quorum"`` (after the stream's quorum has the batch)
        or ``"async"`` (after the local log; published in the background - see
        :class:`~gateway.replication.primary.AsyncStreamReplicator` for what that can lose).
    """

    def __init__(
        self,
        servers: list[str],
        names: st.StreamNames,
        node: str | None = None,
        takeover: bool = True,
        on_primary: Callable[[object], None] | None = None,
        replication: str = "quorum",
    ) -> None:
        if replication not in REPLICATORS:
            raise ValueError(f"replication must be one of {sorted(REPLICATORS)}")
        self.names, self.takeover, self.on_primary = names, takeover, on_primary
        self.replication = replication
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        self.link = NatsLink(servers, name=f"cets {self.node}")
        self.follower: Follower | None = None
        self.replicator: StreamReplicator | None = None
        self.gateway = None
        self.feed: ReplicaFeed | None = None
        self.became_primary_at: float | None = None
        self.failure: BaseException | None = None
        """Why following stopped the node (a divergence, a broken stream), else None."""
        self._following: concurrent.futures.Future | None = None
        self._stop: asyncio.Event | None = None
        self._primary_named: str | None = None

    # -- the blocking form (no gateway) --------------------------------------------------------
    def prepare(self, exchange: Sequencer) -> None:
        """Catch up with the stream; block until this node is primary (``takeover``)."""
        follower = self.connect(exchange)
        if not self.link.run(follower.follow(self.takeover)):
            raise RuntimeError("stopped following before becoming primary")
        self._attach(exchange, self._replicator())

    # -- a serving node --------------------------------------------------------------------------
    def service_options(self) -> dict:
        """``gateway.service.run`` keywords: connect in ``prepare``, listen read-only, follow
        from ``ready``."""
        return {"prepare": self.connect, "ready": self.ready, "read_only": self.read_only_text()}

    def connect(self, exchange: Sequencer) -> Follower:
        """Connect, set the stream up, find where ``exchange``'s log ends in it.

        Raises
        ------
        ReplicaDivergenceError
            The local log ends with a batch the stream does not hold.
        """
        self.link.start()
        self.link.run(st.ensure(self.link.js, self.names))
        self.follower = follower = Follower(self.link, self.names, exchange, self.node)
        position = self.link.run(follower.locate())
        log.info(
            "%s: local log ends at seq %d; stream position %d",
            self.node,
            exchange.last_seq,
            position,
        )
        return follower

    def read_only_text(self) -> str:
        """The text of a follower's ``NOT_PRIMARY`` rejects."""
        primary = self.follower.primary if self.follower is not None else None
        known = f"the primary is {primary}" if primary else "no primary is known yet"
        return f"{self.node} is a follower (read-only), not the primary: {known}"

    def ready(self, gateway) -> None:
        """The gateway listens (read-only): follow the stream into it until primary."""
        self.gateway = gateway
        self.feed = ReplicaFeed(gateway)
        self._stop = asyncio.Event()
        self._following = self.link.submit(self._follow(self._stop))

    async def _follow(self, stop: asyncio.Event) -> None:
        """On the link's loop: follow, then lead; a failure stops the gateway."""
        try:
            if await self.follower.follow(self.takeover, stop, self._deliver):
                await self._lead()
        except GatewayStoppedError:
            return
        except Exception as exc:  # noqa: BLE001 - reported, and the node stops
            self.failure = exc
            log.critical("%s stops following the stream: %s", self.node, exc)
            self._gateway_call(self.gateway.request_shutdown)

    async def _deliver(self, run: list[bytes]) -> None:
        """Apply a run of batches on the gateway's loop (which owns the sequencer); wait."""
        await asyncio.wrap_future(self._gateway_call(self._apply_run, run))

    def _apply_run(self, run: list[bytes]) -> None:
        if self.gateway.stopping:
            raise GatewayStoppedError("the gateway is stopping")
        for data in run:
            self.feed.apply(data)
        if self.follower.primary != self._primary_named:
            self._primary_named = self.follower.primary
            self.gateway.set_read_only(self.read_only_text())

    async def _lead(self) -> None:
        """The term message is appended: attach the replicator, take orders."""
        replicator = self._replicator()
        taken = await asyncio.wrap_future(self._gateway_call(self._take_orders, replicator))
        if not taken:
            log.warning("%s became primary while its gateway stopped", self.node)

    def _take_orders(self, replicator: StreamReplicator) -> bool:
        gateway = self.gateway
        if gateway.stopping:
            return False  # close() releases the lease
        self._attach(gateway.exchange, replicator)
        gateway.set_read_only(None)
        if self.on_primary is not None:
            self.on_primary(gateway)
        return True

    def _gateway_call(self, function, *args) -> concurrent.futures.Future:
        """Run ``function(*args)`` on the gateway's loop; its future."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                future.set_exception(exc)

        try:
            self.gateway.loop.call_soon_threadsafe(call)
        except RuntimeError:  # its loop is closed
            future.set_exception(GatewayStoppedError("the gateway's loop is closed"))
        return future

    # -- primary -------------------------------------------------------------------------------
    def _replicator(self) -> StreamReplicator:
        follower = self.follower
        self.replicator = REPLICATORS[self.replication](
            self.link, self.names, follower.lease, follower.position - 1, self._fenced
        )
        return self.replicator

    def _attach(self, exchange: Sequencer, replicator: StreamReplicator) -> None:
        follower = self.follower
        exchange.replicator = replicator
        self.became_primary_at = time.monotonic()
        log.warning(
            "%s is primary (%s) at stream seq %d, log seq %d (%d batches applied while following)",
            self.node,
            self.replication,
            follower.position - 1,
            exchange.last_seq,
            follower.batches_applied,
        )

    def _fenced(self, reason: str) -> None:
        gateway = self.gateway
        if gateway is not None:
            gateway.loop.call_soon_threadsafe(gateway.request_shutdown)

    @property
    def fenced(self) -> str | None:
        """Why this primary stopped acknowledging (None while it may)."""
        return None if self.replicator is None else self.replicator.fenced

    @property
    def is_primary(self) -> bool:
        """This node's sequencer has its replicator attached (it takes orders)."""
        return self.became_primary_at is not None

    def close(self) -> None:
        """Stop following, release the lease (unless fenced), close the NATS connection."""
        following = self._following
        if following is not None and not following.done():
            stop = self._stop
            if stop is not None:
                self.link.loop.call_soon_threadsafe(stop.set)
            if self.gateway.loop.is_closed():  # a run handed to it may never be applied
                following.cancel()
            try:
                following.result(STOP_TIMEOUT_S)
            except concurrent.futures.TimeoutError:
                following.cancel()
            except BaseException as exc:  # noqa: BLE001 - already reported by _follow
                log.debug("following ended: %r", exc)
        if self.replicator is not None:
            self.replicator.close()
        self.link.close()

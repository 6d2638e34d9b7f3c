"""One replicated node: follow the stream until this node holds the lease, then serve.

``cets serve --replication quorum`` and ``cets follow`` run a :class:`ReplicatedNode` as the
``prepare`` step of ``gateway.service.run``: the recovered data directory first catches up
with the stream (a new primary's log must hold every batch the stream has), the node takes
the lease when it is free, appends its term message, attaches a
:class:`~gateway.replication.primary.StreamReplicator` to the sequencer, and only then does the
gateway listen.  A fenced primary's gateway shuts down (nothing more is acknowledged) and the
process exits with the reason.
"""

from __future__ import annotations

import logging
import socket
import time

from engine.durable.sequencer import Sequencer
from gateway.replication import stream as st
from gateway.replication.follower import Follower
from gateway.replication.link import NatsLink
from gateway.replication.primary import StreamReplicator

log = logging.getLogger("gateway.replication")


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
    """

    def __init__(
        self,
        servers: list[str],
        names: st.StreamNames,
        node: str | None = None,
        takeover: bool = True,
    ) -> None:
        self.names, self.takeover = names, takeover
        self.node = node or f"{socket.gethostname()}:{__import__('os').getpid()}"
        self.link = NatsLink(servers, name=f"cets {self.node}")
        self.follower: Follower | None = None
        self.replicator: StreamReplicator | None = None
        self.gateway = None
        self.became_primary_at: float | None = None

    def prepare(self, exchange: Sequencer) -> None:
        """Catch up with the stream; block until this node is primary (``takeover``)."""
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
        if not self.link.run(follower.follow(self.takeover)):
            raise RuntimeError("stopped following before becoming primary")
        self.became_primary_at = time.monotonic()
        self.replicator = StreamReplicator(
            self.link, self.names, follower.lease, follower.position - 1, self._fenced
        )
        exchange.replicator = self.replicator
        log.warning(
            "%s is primary at stream seq %d, log seq %d (%d batches applied while following)",
            self.node,
            follower.position - 1,
            exchange.last_seq,
            follower.batches_applied,
        )

    def ready(self, gateway) -> None:
        """The gateway listens (``gateway.service.run``'s ``ready``)."""
        self.gateway = gateway

    def _fenced(self, reason: str) -> None:
        gateway = self.gateway
        if gateway is not None:
            gateway.loop.call_soon_threadsafe(gateway.request_shutdown)

    @property
    def fenced(self) -> str | None:
        """Why this primary stopped acknowledging (None while it may)."""
        return None if self.replicator is None else self.replicator.fenced

    def close(self) -> None:
        """Release the lease (unless fenced) and close the NATS connection."""
        if self.replicator is not None:
            self.replicator.close()
        self.link.close()

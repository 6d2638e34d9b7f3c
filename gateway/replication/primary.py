"""The primary's side: every batch published to the stream before it is acknowledged.

:class:`StreamReplicator` is the sequencer's :class:`~engine.durable.sequencer.Replicator`.  It
is called on the gateway's loop (synchronously, like the log's fsync) and waits for the NATS
thread to publish and for the stream's quorum to acknowledge.  While the cluster has no quorum
(two of three nodes down) the publish is retried - same message id, same expected sequence -
and nothing is acknowledged until it succeeds: the primary stalls and resumes by itself.  A
refused publish (the stream has another last sequence) or a lost lease *fences* the primary:
the replicator raises :class:`FencedError` now and on every later call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.replication.lease import Lease, LeaseLostError
from gateway.replication.link import NatsLink
from gateway.replication.stream import (
    TRANSIENT,
    StreamNames,
    batch_headers,
    is_in_process,
    is_wrong_last_sequence,
)

log = logging.getLogger("gateway.replication")

PUBLISH_TIMEOUT_S = 1.0
RETRY_PAUSE_S = 0.05


class FencedError(RuntimeError):
    """This primary may no longer append to the stream (another primary has, or holds the
    lease): it acknowledges nothing more."""


class StreamReplicator:
    """Publishes each batch with the stream's expected last sequence and waits for its quorum.

    Parameters
    ----------
    link : NatsLink
    names : StreamNames
    lease : Lease
        Held by this node; renewed here every quarter TTL.
    stream_seq : int
        The stream's last sequence when this node became primary (its term message's).
    on_fenced : callable, optional
        Called (on the NATS thread) with the reason when the primary is fenced while idle.
    """

    def __init__(
        self,
        link: NatsLink,
        names: StreamNames,
        lease: Lease,
        stream_seq: int,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        self.link, self.names, self.lease = link, names, lease
        self.stream_seq = stream_seq
        self.on_fenced = on_fenced
        self.fenced: str | None = None
        self.published = self.duplicates = self.stalls = 0
        self._keeper = link.submit(self._keep_lease())

    # -- Replicator ----------------------------------------------------------------------------
    def replicate(self, first_seq: int, last_seq: int, data: bytes) -> None:
        """Publish one batch and wait until the stream's quorum has it.

        Raises
        ------
        FencedError
            The stream holds another writer's message where this batch belongs, or the lease
            is lost: this batch and every later one stay unacknowledged.
        """
        if self.fenced is not None:
            raise FencedError(self.fenced)
        headers = batch_headers(first_seq, last_seq, self.stream_seq, data)
        while True:
            try:
                ack = self.link.run(self._publish(data, headers), PUBLISH_TIMEOUT_S * 2 + 1)
                break
            except TRANSIENT as exc:
                self._stalled(exc)
            except Exception as exc:
                if is_in_process(exc):
                    self._stalled(exc)
                    continue
                if not is_wrong_last_sequence(exc):
                    raise
                self._fence(
                    f"fenced: stream {self.names.name} no longer ends at sequence "
                    f"{self.stream_seq} (another primary has appended); batch of seqs "
                    f"{first_seq}..{last_seq} is not acknowledged"
                )
            if self.fenced is not None:
                raise FencedError(self.fenced)
        if ack.seq != self.stream_seq + 1:  # a duplicate of another message: never ours
            self._fence(f"fenced: stream acknowledged seq {ack.seq}, not {self.stream_seq + 1}")
            raise FencedError(self.fenced)
        self.duplicates += bool(ack.duplicate)
        self.published += 1
        self.stream_seq = ack.seq

    def _stalled(self, exc: BaseException) -> None:
        self.stalls += 1
        if self.stalls == 1 or self.stalls % 10 == 0:
            log.warning("stream %s: no quorum (%r); retrying", self.names.name, exc)
        time.sleep(RETRY_PAUSE_S)

    async def _publish(self, data: bytes, headers: dict):
        return await self.link.js.publish(
            self.names.batch_subject, data, timeout=PUBLISH_TIMEOUT_S, headers=headers
        )

    # -- the lease -----------------------------------------------------------------------------
    async def _keep_lease(self) -> None:
        period = self.names.lease_ttl_s / 4
        while self.fenced is None:
            await asyncio.sleep(period)
            try:
                await self.lease.renew()
            except LeaseLostError as exc:
                self._fence(f"fenced: {exc}")
                if self.on_fenced is not None:
                    self.on_fenced(self.fenced)
            except TRANSIENT as exc:
                log.warning("lease renewal: %r; retrying", exc)

    def _fence(self, reason: str) -> None:
        if self.fenced is None:
            self.fenced = reason
            log.critical("%s", reason)

    def close(self, release: bool = True) -> None:
        """Stop renewing the lease and, unless fenced, release it."""
        self._keeper.cancel()
        if release and self.fenced is None:
            try:
                self.link.run(self.lease.release(), 5)
            except Exception as exc:  # noqa: BLE001 - a follower then waits for the TTL
                log.warning("releasing the lease: %r", exc)

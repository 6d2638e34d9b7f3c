"""The primary's side: every batch published to the stream, before it is acknowledged (quorum)
or after (async).

:class:`StreamReplicator` is the sequencer's :class:`~engine.durable.sequencer.Replicator`.  It
is called on the gateway's loop (synchronously, like the log's fsync) and waits for the NATS
thread to publish and for the stream's quorum to acknowledge.  While the cluster has no quorum
(two of three nodes down) the publish is retried - same message id, same expected sequence -
and nothing is acknowledged until it succeeds: the primary stalls and resumes by itself.  A
refused publish (the stream has another last sequence) or a lost lease *fences* the primary:
the replicator raises :class:`FencedError` now and on every later call.

:class:`AsyncStreamReplicator` (``--replication async``) only queues the batch: it is
acknowledged once the local log has it (synced per the durability policy) and published in the
background, in order, with the same headers.  The guarantee is weaker: a batch acknowledged but
not yet in the stream when the primary is lost (killed, partitioned from NATS until its lease
expires) is not on the new primary - acknowledged and lost.  The deposed primary's log then
holds batches the stream does not: its background publish is refused (it is fenced), and a
restart on that data directory stops with a divergence report.  The backlog is bounded
(:data:`ASYNC_BACKLOG_MAX`): when the stream falls that far behind, the primary waits as in
quorum mode.
"""

from __future__ import annotations

import asyncio
import logging
import threading
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
ASYNC_BACKLOG_MAX = 10_000
"""Batches an async primary acknowledges ahead of the stream at most (then it waits)."""
DRAIN_TIMEOUT_S = 30.0
"""How long a clean stop of an async primary waits for its backlog to reach the stream."""


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
                time.sleep(RETRY_PAUSE_S)
            except Exception as exc:
                if is_in_process(exc):
                    self._stalled(exc)
                    time.sleep(RETRY_PAUSE_S)
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
                self._tell_fenced()
            except TRANSIENT as exc:
                log.warning("lease renewal: %r; retrying", exc)

    def _fence(self, reason: str) -> None:
        if self.fenced is None:
            self.fenced = reason
            log.critical("%s", reason)

    def _tell_fenced(self) -> None:
        if self.on_fenced is not None:
            self.on_fenced(self.fenced)

    def close(self, release: bool = True) -> None:
        """Stop renewing the lease and, unless fenced, release it."""
        self._keeper.cancel()
        if release and self.fenced is None:
            try:
                self.link.run(self.lease.release(), 5)
            except Exception as exc:  # noqa: BLE001 - a follower then waits for the TTL
                log.warning("releasing the lease: %r", exc)


class AsyncStreamReplicator(StreamReplicator):
    """``--replication async``: acknowledged after the local log, published in the background.

    :meth:`replicate` queues the batch and returns; one task on the link's loop publishes the
    queue in order (retrying while there is no quorum, exactly as the quorum mode does).  A
    refused publish fences the primary (``on_fenced`` is told: the gateway stops); later
    :meth:`replicate` calls raise :class:`FencedError`.  See the module docstring for what is
    lost when the primary is.

    Parameters are those of :class:`StreamReplicator`.
    """

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.queued = 0
        """Batches queued since this node became primary (``published`` of them are in the
        stream)."""
        self._room = threading.Semaphore(ASYNC_BACKLOG_MAX)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._publisher = self.link.submit(self._publish_queue())

    def replicate(self, first_seq: int, last_seq: int, data: bytes) -> None:
        """Queue one batch for the stream; wait only while :data:`ASYNC_BACKLOG_MAX` batches
        are queued.

        Raises
        ------
        FencedError
            A background publish was refused, or the lease is lost.
        """
        while self.fenced is None and not self._room.acquire(timeout=PUBLISH_TIMEOUT_S):
            self._stalled(TimeoutError(f"{ASYNC_BACKLOG_MAX} batches wait for the stream"))
        if self.fenced is not None:
            raise FencedError(self.fenced)
        self.queued += 1
        item = (first_seq, last_seq, bytes(data))
        self.link.loop.call_soon_threadsafe(self._queue.put_nowait, item)

    @property
    def backlog(self) -> int:
        """Batches acknowledged here and not (yet) in the stream."""
        return self.queued - self.published

    async def _publish_queue(self) -> None:
        while self.fenced is None:
            first_seq, last_seq, data = await self._queue.get()
            headers = batch_headers(first_seq, last_seq, self.stream_seq, data)
            ack = await self._publish_retrying(data, headers, first_seq, last_seq)
            if ack is None:
                self._tell_fenced()
                return
            if ack.seq != self.stream_seq + 1:
                self._fence(f"fenced: stream acknowledged seq {ack.seq}, not {self.stream_seq + 1}")
                self._tell_fenced()
                return
            self.duplicates += bool(ack.duplicate)
            self.stream_seq = ack.seq
            self.published += 1
            self._room.release()

    async def _publish_retrying(self, data: bytes, headers: dict, first_seq: int, last_seq: int):
        """The stream's acknowledgement, or None when the publish is refused (fenced)."""
        while True:
            try:
                return await self._publish(data, headers)
            except TRANSIENT as exc:
                self._stalled(exc)
            except Exception as exc:  # noqa: BLE001 - anything else refuses: fenced
                if not is_in_process(exc):
                    why = (
                        f"it no longer ends at sequence {self.stream_seq} (another primary "
                        "has appended)"
                        if is_wrong_last_sequence(exc)
                        else repr(exc)
                    )
                    self._fence(
                        f"fenced: stream {self.names.name} refused the batch of seqs "
                        f"{first_seq}..{last_seq}, acknowledged here: {why}; "
                        f"{self.backlog} acknowledged batches are not in the stream"
                    )
                    return None
                self._stalled(exc)
            await asyncio.sleep(RETRY_PAUSE_S)

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until every queued batch is in the stream (or fenced, or ``timeout``);
        whether none is left."""
        deadline = time.monotonic() + timeout
        while self.backlog and self.fenced is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.backlog == 0

    def close(self, release: bool = True) -> None:
        """Publish the backlog (a clean stop loses nothing), then stop and release the lease."""
        if not self.drain():
            log.error(
                "stopping with %d acknowledged batches not in stream %s%s",
                self.backlog,
                self.names.name,
                "" if self.fenced is None else f" ({self.fenced})",
            )
            release = False  # a follower must not take over before the TTL says so
        self._publisher.cancel()
        super().close(release)

"""The follower's side: apply the stream to a local data directory; take over when allowed.

:class:`Follower` consumes the stream in order (a JetStream ordered consumer, starting after
the batch its log ends with) and hands every batch message to ``Sequencer.apply_replicated``
(engine applied, checkpoint digest checked, log bytes identical to the primary's) - here, on
the NATS thread, or through a ``deliver`` coroutine that applies them where the sequencer
lives (a serving follower's gateway loop, ``gateway.replication.node``), a run of consecutive
batches at a time.  A run's position in the stream advances only once it is applied.  Term
messages only name the primary of each term.  With ``takeover``, every quarter lease TTL it
looks at the lease: when nobody holds it, it takes it, waits until it has applied the whole
stream, and appends its own term message with the stream's expected last sequence - which
fails if anything was appended meanwhile (it then applies that and tries again).  After its
term message the stream accepts batches from this node only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from engine.durable.sequencer import Sequencer
from gateway.replication.lease import Lease, LeaseLostError
from gateway.replication.link import NatsLink
from gateway.replication.stream import (
    EXPECTED_LAST_SEQUENCE,
    LAST_SEQ,
    TRANSIENT,
    StreamNames,
    find_position,
    is_wrong_last_sequence,
    last_stream_seq,
    retrying,
)

log = logging.getLogger("gateway.replication")

POLL_S = 0.05
RUN_MAX = 64
"""Batch messages handed to ``deliver`` at most at once (those already received)."""
Deliver = Callable[[list[bytes]], Awaitable[None]]
"""Applies a run of consecutive batch messages' bytes, in order (see :meth:`Follower.follow`)."""


class Follower:
    """Applies the stream to ``exchange``; optionally becomes primary.

    Parameters
    ----------
    link : NatsLink
    names : StreamNames
    exchange : Sequencer
        The follower's own data directory (same market as the primary's).
    node : str
        This node's name (its lease value and term message).
    """

    def __init__(self, link: NatsLink, names: StreamNames, exchange: Sequencer, node: str):
        self.link, self.names, self.exchange, self.node = link, names, exchange, node
        self.lease = Lease(link.js, names, node)
        self.position = 0
        """The stream sequence of the next message to apply."""
        self.batches_applied = 0
        self.primary: str | None = None
        """The node named by the last term message applied."""

    async def locate(self) -> int:
        """Find where the local log ends in the stream (divergence raises); the position."""
        self.position = await find_position(self.link.js, self.names, self.exchange.journal)
        return self.position

    async def follow(
        self, takeover: bool, stop: asyncio.Event | None = None, deliver: Deliver | None = None
    ) -> bool:
        """Apply the stream until ``stop`` is set (False) or, with ``takeover``, until this
        node is primary (True: its term message is the stream's last).

        ``deliver`` applies each run of batches (default: ``apply_replicated`` right here, on
        the link's thread - only while nothing else uses the sequencer).

        Raises
        ------
        ReplicaDivergenceError
            A batch does not continue the local log, or applying it gave other results.
        """
        deliver = deliver or self._apply_here
        if self.position == 0:
            await self.locate()
        subscription = await retrying(self._subscribe)  # a busy cluster may time out an ask
        loop = asyncio.get_running_loop()
        next_look = loop.time()
        try:
            while stop is None or not stop.is_set():
                messages = await _received(subscription)
                if messages:
                    await self._apply(messages, deliver)
                if takeover and loop.time() >= next_look:
                    next_look = loop.time() + self.names.lease_ttl_s / 4
                    if await self._try_to_lead():
                        return True
            return False
        finally:
            await subscription.unsubscribe()

    async def _subscribe(self):
        """An ordered consumer of the stream from :attr:`position`, with a config of its own
        at each attempt (nats-py fills a config's inbox in: a retry after a timed-out attempt
        must not reuse the abandoned consumer's)."""
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.position
        )
        return await self.link.js.subscribe(
            f"{self.names.name}.*", stream=self.names.name, ordered_consumer=True, config=config
        )

    async def _apply(self, messages: list, deliver: Deliver) -> None:
        """Apply messages in stream order: runs of batches through ``deliver``, terms here."""
        run: list[bytes] = []
        for message in messages:
            seq = message.metadata.sequence.stream
            if seq != self.position + len(run):
                raise RuntimeError(
                    f"stream delivered message {seq}, expected {self.position + len(run)}"
                )
            if message.subject == self.names.batch_subject:
                run.append(message.data)
                continue
            await self._deliver(run, deliver)
            run = []
            self.primary = message.data.decode(errors="replace")
            self.position = seq + 1
        await self._deliver(run, deliver)

    async def _deliver(self, run: list[bytes], deliver: Deliver) -> None:
        if run:
            await deliver(run)
            self.batches_applied += len(run)
            self.position += len(run)

    async def _apply_here(self, run: list[bytes]) -> None:
        for data in run:
            self.exchange.apply_replicated(data)

    async def _try_to_lead(self) -> bool:
        """Take the lease if free; once held and the stream fully applied, append the term
        message.  Whether this node is now primary."""
        try:
            if self.lease.revision is None:
                if not await self.lease.acquire():
                    return False
                log.warning(
                    "%s took the primary lease (revision %s)", self.node, self.lease.revision
                )
            else:
                await self.lease.renew()
            applied = self.position - 1
            if await last_stream_seq(self.link.js, self.names) != applied:
                return False  # apply the rest first
            headers = {EXPECTED_LAST_SEQUENCE: str(applied), LAST_SEQ: str(self.exchange.last_seq)}
            ack = await self.link.js.publish(
                self.names.term_subject, self.node.encode(), timeout=1.0, headers=headers
            )
        except TRANSIENT as exc:
            log.warning("taking over: %r; will retry", exc)
            return False
        except LeaseLostError:
            self.lease.revision = None  # another follower was faster
            return False
        except Exception as exc:
            if is_wrong_last_sequence(exc):
                return False  # the old primary appended meanwhile: apply it, then try again
            raise
        self.position, self.primary = ack.seq + 1, self.node
        return True


async def _received(subscription) -> list:
    """The next message (waiting up to ``POLL_S``) and those already received after it (up to
    ``RUN_MAX`` in all); empty when none came."""
    try:
        messages = [await subscription.next_msg(timeout=POLL_S)]
    except nats.errors.TimeoutError:
        return []
    while subscription.pending_msgs and len(messages) < RUN_MAX:
        messages.append(await subscription.next_msg(timeout=POLL_S))
    return messages

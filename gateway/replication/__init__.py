"""Replication of the exchange on NATS JetStream (the optional extra ``replication``).

Theory of operation
-------------------
The primary's log is copied, batch by batch, into one JetStream stream (file storage, 3
replicas, Raft-replicated by the NATS cluster): one message per batch carrying the batch's log
bytes (batch record + checkpoint record, ``Journal.last_batch_bytes``).  The sequencer hands
each batch to a :class:`~gateway.replication.primary.StreamReplicator` after its own log has it
and before the batch is acknowledged; the replicator publishes it with
``Nats-Expected-Last-Sequence`` (the stream's last sequence as this primary left it: exactly one
writer can append) and ``Nats-Msg-Id`` (a digest of the bytes: a retried publish is a
duplicate, never a second copy) and waits for the stream's quorum to acknowledge it.  A publish
that finds another sequence in the stream means another primary has written: the replicator
raises, the sequencer fails, nothing more is acknowledged, and the reason is logged and sent to
every session.

A follower (:class:`~gateway.replication.follower.Follower`) consumes the stream in order and
appends every batch to its own data directory with ``Sequencer.apply_replicated`` - applied by
the deterministic engine, its events checked against the batch's checkpoint digest, its log
bytes equal to the primary's (``cets replay`` works on it).  A follower whose log disagrees
with the stream stops with a :class:`~engine.durable.sequencer.ReplicaDivergenceError`.  While
it follows, its gateway serves read-only sessions (``serving``): the batches are applied on the
gateway's loop and routed by the gateway's own fan-out; requests that would be sequenced are
refused ``NOT_PRIMARY``.

Leadership is a lease: a key in a JetStream key-value bucket whose entries expire after the
lease's TTL (:class:`~gateway.replication.lease.Lease`).  The primary renews it (compare-and-
set on its revision) every quarter TTL.  A follower that finds the key gone takes it
(create-if-absent), finishes applying the stream, and appends a *term* message with the
expected last sequence it applied: from then on a deposed primary's publish carries a stale
expected sequence and is refused, and the follower's gateway takes orders.  The stream, not the clock, decides who may append: a
primary paused past its lease and resumed is fenced by its next publish or lease renewal.

Modules: ``link`` (a NATS connection on its own thread), ``stream`` (names, headers, stream and
bucket set-up, finding a log's position in the stream), ``lease``, ``primary``, ``follower``,
``serving`` (a follower's read-only gateway), ``node`` (one process: serve read-only while
following, take orders once leading), ``cluster`` (local nats-server
processes for tests, benchmarks and the README's recipe).  ``nats`` is imported only here, so
the package costs nothing to users without the extra.
"""

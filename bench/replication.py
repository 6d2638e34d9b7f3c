"""``bench replication``: the gateway with quorum replication on a local 3-node NATS cluster.

Beside the single-node gateway, on the same machine and in the same run: sustained orders/s
from pipelining clients, open-loop order-to-Ack latency (p50/p99/p99.9) at a fixed offered rate
- with ``--replication quorum`` an Ack waits for the log's fsync *and* the stream's quorum -
and the failover time: a primary and a follower (``cets follow``) run, the primary is killed
with SIGKILL, and the time until the follower takes orders as the new primary (lease TTL,
takeover check every quarter TTL, term message; it listened read-only all along) and then until
a first order is acknowledged there.
The NATS nodes share the machine's cores with the gateway and the load generator.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
from pathlib import Path

import msgspec

from bench import gateway as gw
from gateway.replication.cluster import LocalCluster, find_server

LEASE_TTL_S = 2.0
_streams = itertools.count(1)


class FailoverResult(msgspec.Struct, frozen=True):
    lease_ttl_s: float
    listening_s: float
    """SIGKILL of the primary -> the follower takes orders as primary (its ``gateway listening
    on`` line; it listened read-only before)."""
    first_ack_s: float
    """SIGKILL of the primary -> the first order acknowledged by the new primary."""
    orders_before: int


def replication_args(urls: list[str], stream: str, node: str) -> tuple[str, ...]:
    """``cets serve`` arguments of a quorum-replicated node."""
    return (
        "--replication", "quorum", "--nats", ",".join(urls), "--stream", stream,
        "--node", node, "--lease-ttl-s", str(LEASE_TTL_S),
    )  # fmt: skip


def run_failover(urls: list[str], directory: Path, orders: int = 200) -> FailoverResult:
    """Kill -9 a primary with a follower beside it; time the takeover."""
    stream = f"FAILOVER{next(_streams)}"
    primary = gw.ServerProcess(directory / "a", 2, "batch", replication_args(urls, stream, "a"))
    primary.start()
    gw._open_market(primary.port)
    follow_args = replication_args(urls, stream, "b")[2:]  # cets follow: no --replication
    follower = gw.ServerProcess(directory / "b", 2, "batch", follow_args, command="follow")
    listening: list[float | BaseException] = []
    # The follower prints "gateway listening on" only when it takes orders (its read-only
    # line before says "follower (read-only) gateway listening on"): start() waits for it,
    # on a thread, while the primary is loaded and killed.
    waiter = threading.Thread(target=lambda: listening.append(_started(follower)), daemon=True)
    waiter.start()
    session = gw.RawSession(primary.port, "t0")
    gw._pump([session], [gw.order_frames(0, orders, 1)], 50)
    session.close()
    time.sleep(1.0)  # the follower applies the stream (a cold one may still be compiling)
    killed = time.monotonic()
    primary.kill()
    waiter.join(120)
    started = listening[0] if listening else None
    if not isinstance(started, float):
        if follower.process is not None and follower.process.poll() is None:
            follower.kill()
        why = "no listening line within 120 s" if started is None else repr(started)
        raise RuntimeError(f"the follower did not take over after the primary's SIGKILL: {why}")
    session = gw.RawSession(follower.port, "t0")
    gw._pump([session], [gw.order_frames(0, 1, 1, prefix="f")], 1)
    first_ack = time.monotonic() - killed
    session.close()
    follower.stop()
    return FailoverResult(LEASE_TTL_S, round(started - killed, 3), round(first_ack, 3), orders)


def _started(server: gw.ServerProcess) -> float | BaseException:
    """When ``server`` listens, or why it never did (its stderr says more)."""
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported by run_failover
        return exc
    return time.monotonic()


def run(size: str, rate: int, clients: int) -> dict:
    """Single node and quorum replication side by side, then the failover time."""
    orders = {"tiny": 300, "small": 5_000, "full": 25_000}[size]
    seconds = {"tiny": 0.3, "small": 3.0, "full": 10.0}[size]
    results: dict = {}
    with (
        tempfile.TemporaryDirectory(prefix="repl-bench-") as tmp,
        LocalCluster(Path(tmp) / "nats") as cluster,
    ):
        for name, args in (
            ("single node", ()),
            ("quorum", replication_args(cluster.urls, f"BENCH{next(_streams)}", "t")),
        ):
            throughput = gw.run_throughput(clients, orders, server_args=args)
            latency_args = args
            if args:
                latency_args = replication_args(cluster.urls, f"BENCH{next(_streams)}", "l")
            latency = gw.run_latency(rate, seconds, server_args=latency_args)
            results[name] = {"throughput": throughput, "latency": latency}
        results["failover"] = run_failover(cluster.urls, Path(tmp))
    return results


def format_report(results: dict) -> str:
    """One line per configuration, then the failover."""
    lines = ["| | orders/s (pipelining) | latency p50 / p99 / p99.9 (us) at offered rate |"]
    lines.append("|---|---|---|")
    for name in ("single node", "quorum"):
        t, lat = results[name]["throughput"], results[name]["latency"]
        lines.append(
            f"| {name} | {t.orders_per_s:,.0f} | {lat.latency_us_p50:,.0f} / "
            f"{lat.latency_us_p99:,.0f} / {lat.latency_us_p999:,.0f} "
            f"({lat.achieved_per_s:,.0f} of {lat.offered_per_s:,} orders/s) |"
        )
    f = results["failover"]
    lines.append(
        f"failover (lease TTL {f.lease_ttl_s} s): SIGKILL -> follower takes orders "
        f"{f.listening_s} s, -> first order acknowledged {f.first_ack_s} s"
    )
    return "\n".join(lines)


def available() -> str | None:
    """Why the benchmark cannot run here (None when it can)."""
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed (pip install '.[replication]')"
    return None if find_server() else "nats-server not found (pip install '.[replication]')"

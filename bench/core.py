"""``bench core``: the compiled batch path, the one-command Python API and the reference book,
side by side on the same seeded workloads in one process.

For each workload it prints messages per second of each path, the number of trades, the hash
of the event stream (which must be equal for all paths: a fast wrong answer shows up here) and
the speed-up over the reference.  JIT compilation is excluded: every engine is constructed
(which warms the kernel) before its clock starts.
"""

from __future__ import annotations

import hashlib
import statistics
import time

import msgspec
import numpy as np

from bench import workloads
from engine.core.compiled.engine import CompiledEngine
from engine.core.records import EV_TRADE, Codec
from engine.core.reference.engine import ReferenceEngine


class PathResult(msgspec.Struct):
    path: str
    messages: int
    seconds: float
    messages_per_s: float
    events_hash: str


class WorkloadResult(msgspec.Struct):
    workload: str
    messages: int
    resting_at_end: int
    trades: int
    paths: list[PathResult]
    hashes_equal: bool
    speedup_batch_vs_reference: float
    speedup_api_vs_reference: float
    full_engine_cost_ratio: float
    """Time of the full engine (matching + locks + settlement) over pure matching."""


def events_digest(events: np.ndarray) -> str:
    """Hash of an event record stream (16 bytes of blake2b, hex)."""
    return hashlib.blake2b(np.ascontiguousarray(events).tobytes(), digest_size=16).hexdigest()


def _run_batch(market, cmds, repeats: int) -> tuple[float, np.ndarray, int]:
    times = []
    events = np.zeros(0)
    resting = 0
    for _ in range(repeats):
        engine = CompiledEngine(market)
        engine.reserve_events(4 * len(cmds) + 1024)
        start = time.perf_counter()
        events = engine.apply_records(cmds, copy=False)
        times.append(time.perf_counter() - start)
        resting = engine.resting_count()
    return statistics.median(times), events, resting


def _run_full(name: str, cmds: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    """The same flow through the full engine (registry on), after an untimed set-up."""
    market, setup = workloads.registry_setup(name)
    times = []
    events = np.zeros(0)
    for _ in range(repeats):
        engine = CompiledEngine(market)
        engine.apply_records(setup)
        engine.reserve_events(4 * len(cmds) + 1024)
        start = time.perf_counter()
        events = engine.apply_records(cmds, copy=False)
        times.append(time.perf_counter() - start)
        engine.check_invariants()
    return statistics.median(times), events


def _run_api(engine_cls, market, commands) -> tuple[float, np.ndarray]:
    engine = engine_cls(market)
    apply = engine.apply
    collected: list = []
    extend = collected.extend
    start = time.perf_counter()
    for command in commands:
        extend(apply(command))
    seconds = time.perf_counter() - start
    return seconds, Codec(market).encode_events(collected)


def run_workload(name: str, size: int, seed: int, repeats: int = 3) -> WorkloadResult:
    market, cmds = workloads.generate(name, size, seed)
    n = len(cmds)
    typed = Codec(market).decode_commands(cmds)
    batch_s, batch_events, resting = _run_batch(market, cmds, repeats)
    full_s, full_events = _run_full(name, cmds, repeats)
    api_s, api_events = _run_api(CompiledEngine, market, typed)
    ref_s, ref_events = _run_api(ReferenceEngine, market, typed)
    paths = [
        PathResult("compiled batch", n, batch_s, n / batch_s, events_digest(batch_events)),
        PathResult("full engine", n, full_s, n / full_s, events_digest(full_events)),
        PathResult("compiled API", n, api_s, n / api_s, events_digest(api_events)),
        PathResult("reference", n, ref_s, n / ref_s, events_digest(ref_events)),
    ]
    trades = int(np.count_nonzero(batch_events["kind"] == EV_TRADE))
    return WorkloadResult(
        workload=name,
        messages=n,
        resting_at_end=resting,
        trades=trades,
        paths=paths,
        hashes_equal=len({p.events_hash for p in paths}) == 1,
        speedup_batch_vs_reference=ref_s / batch_s,
        speedup_api_vs_reference=ref_s / api_s,
        full_engine_cost_ratio=full_s / batch_s,
    )


def format_table(results: list[WorkloadResult]) -> str:
    header = (
        f"{'workload':<10} {'path':<15} {'messages':>10} {'seconds':>9} {'msg/s':>13} "
        f"{'trades':>9} {'events hash':<34} speed-up"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        ref = next(p for p in r.paths if p.path == "reference")
        for p in r.paths:
            lines.append(
                f"{r.workload:<10} {p.path:<15} {p.messages:>10,} {p.seconds:>9.3f} "
                f"{p.messages_per_s:>13,.0f} {r.trades:>9,} {p.events_hash:<34} "
                f"{ref.seconds / p.seconds:>7.1f}x"
            )
    worst = min(r.paths[0].messages_per_s for r in results)
    lines.append(f"worst case, compiled batch: {worst:,.0f} msg/s")
    ratios = ", ".join(f"{r.workload} {r.full_engine_cost_ratio:.2f}x" for r in results)
    lines.append(f"full engine cost / pure matching: {ratios}")
    lines.append("event hashes equal across paths: " + str(all(r.hashes_equal for r in results)))
    return "\n".join(lines)


def run(size: int, seed: int, names: list[str] | None = None) -> list[WorkloadResult]:
    return [run_workload(name, size, seed) for name in (names or list(workloads.WORKLOADS))]

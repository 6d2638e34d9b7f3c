"""``bench core``: the compiled batch path, the one-command Python API and the reference book,
side by side on the same seeded workloads in one process.

The paths: the compiled batch (one compiled loop over the records), the full engine (the
same with the registry on), the typed one-command API (``CompiledEngine.apply``), the lean
one-command API (``CompiledEngine.submit``/``cancel``/``modify``: ints in, a tuple of ints
out, events decoded only when asked for) and the plain-Python reference; and, when the
``peers`` extra is installed, the peer comparison (``bench.peers``): the same commands, one a
call, through liquibook, a C++ order book wrapped for Python, beside our lean and typed API.

For each workload it prints messages per second of each path, the number of trades, the hash
of the event stream (which must be equal for all paths: a fast wrong answer shows up here) and
the speed-up over the reference.  JIT compilation is excluded: every engine is constructed
(which warms the batch kernel) and its one-command entry point compiled before its clock
starts.
"""

from __future__ import annotations

import hashlib
import statistics
import time

import msgspec
import numpy as np

from bench import peers, workloads
from engine.core.compiled.engine import CompiledEngine
from engine.core.records import EV_TRADE, K_CANCEL, K_MODIFY, K_SUBMIT, Codec
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
    peer: peers.PeerResult | None = None
    """liquibook on the same commands (None: not installed, see :func:`peer_note`)."""


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
    if isinstance(engine, CompiledEngine):
        engine.compile_one_command()
    apply = engine.apply
    collected: list = []
    extend = collected.extend
    start = time.perf_counter()
    for command in commands:
        extend(apply(command))
    seconds = time.perf_counter() - start
    return seconds, Codec(market).encode_events(collected)


def _lean_calls(engine: CompiledEngine, cmds: np.ndarray) -> list:
    """Each record as the lean call an embedder would make: (bound method, its arguments)."""
    calls: list = []
    for r in cmds.tolist():
        seq, ts, oid, price, qty, aux, acct, ins, kind, side, otype, tif, stp = r[:13]
        if kind == K_SUBMIT:
            calls.append(
                (engine.submit, (oid, acct, ins, side, qty, price, otype, tif, stp, aux, seq, ts))
            )
        elif kind == K_CANCEL:
            calls.append((engine.cancel, (oid, acct, seq, ts)))
        elif kind == K_MODIFY:
            calls.append((engine.modify, (oid, acct, qty, price, seq, ts)))
        else:
            calls.append((engine.apply, (engine.codec.decode_command(r),)))
    return calls


def _run_lean(market, cmds: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    """The lean one-command calls (``CompiledEngine.submit`` ...), timed without looking at
    the events; an identical untimed pass collects every call's event rows for the hash."""
    times = []
    for _ in range(repeats):
        engine = CompiledEngine(market)
        engine.compile_one_command()
        calls = _lean_calls(engine, cmds)
        start = time.perf_counter()
        for call, args in calls:
            call(*args)
        times.append(time.perf_counter() - start)
    engine = CompiledEngine(market)
    rows = []
    for call, args in _lean_calls(engine, cmds):
        result = call(*args)
        if call == engine.apply:
            rows.append(engine.codec.encode_events(result))
        else:
            rows.append(engine.last_event_rows().copy())
    return statistics.median(times), np.concatenate(rows)


def run_workload(name: str, size: int, seed: int, repeats: int = 3) -> WorkloadResult:
    market, cmds = workloads.generate(name, size, seed)
    n = len(cmds)
    typed = Codec(market).decode_commands(cmds)
    batch_s, batch_events, resting = _run_batch(market, cmds, repeats)
    full_s, full_events = _run_full(name, cmds, repeats)
    api_s, api_events = _run_api(CompiledEngine, market, typed)
    lean_s, lean_events = _run_lean(market, cmds, repeats)
    ref_s, ref_events = _run_api(ReferenceEngine, market, typed)
    paths = [
        PathResult("compiled batch", n, batch_s, n / batch_s, events_digest(batch_events)),
        PathResult("full engine", n, full_s, n / full_s, events_digest(full_events)),
        PathResult("compiled API", n, api_s, n / api_s, events_digest(api_events)),
        PathResult("lean API", n, lean_s, n / lean_s, events_digest(lean_events)),
        PathResult("reference", n, ref_s, n / ref_s, events_digest(ref_events)),
    ]
    trades = int(np.count_nonzero(batch_events["kind"] == EV_TRADE))
    peer = None
    if peers.available() is None:
        peer = peers.run(market, cmds, repeats)
        peer.lean_vs_peer = (n / lean_s) / peer.commands_per_s
        peer.typed_vs_peer = (n / api_s) / peer.commands_per_s
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
        peer=peer,
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
    lean = [p.messages_per_s for r in results for p in r.paths if p.path == "lean API"]
    lines.append(f"worst case, lean API (one command a call): {min(lean):,.0f} msg/s")
    ratios = ", ".join(f"{r.workload} {r.full_engine_cost_ratio:.2f}x" for r in results)
    lines.append(f"full engine cost / pure matching: {ratios}")
    lines.append("event hashes equal across paths: " + str(all(r.hashes_equal for r in results)))
    lines.append(format_peers(results))
    return "\n".join(lines)


def peer_note() -> str:
    """What the peer comparison compares, or why it was skipped."""
    missing = peers.available()
    if missing is not None:
        return f"peer comparison skipped: {missing}"
    return (
        f"peer comparison, one command a call: liquibook {peers.version()} (C++ order book, "
        "SWIG wrapper) beside our lean and typed API, in M commands/s"
    )


def format_peers(results: list[WorkloadResult]) -> str:
    """The peer table (our one-command paths, liquibook, the ratios, the traded quantities and
    the agreement where comparable) and what liquibook cannot do."""
    lines = [peer_note()]
    if any(r.peer is None for r in results):
        return lines[0]
    header = (
        f"{'workload':<10} {'lean API':>9} {'typed API':>10} {'liquibook':>10} {'lean/lb':>8} "
        f"{'typed/lb':>9}  {'traded t: ours / liquibook':<30} comparable stream"
    )
    lines += [header, "-" * len(header)]
    for r in results:
        p = r.peer
        rates = {path.path: path.messages_per_s for path in r.paths}
        traded = f"{p.ours_traded_t:,} / {p.traded_t:,}"
        lines.append(
            f"{r.workload:<10} {rates['lean API'] / 1e6:>9.3f} {rates['compiled API'] / 1e6:>10.3f} "
            f"{p.commands_per_s / 1e6:>10.3f} {p.lean_vs_peer:>7.2f}x {p.typed_vs_peer:>8.2f}x  "
            f"{traded:<30} trades equal: {p.comparable_trades_equal} "
            f"({p.comparable_trades:,} trades)"
        )
    lines.append(
        "comparable stream: the workload without modifies, buys of one account, sells of "
        "another (every trade, price and quantity, compared in order)"
    )
    lines.append("liquibook cannot (how it is mapped):")
    lines += [f"  - {limitation}" for limitation in peers.LIMITATIONS]
    return "\n".join(lines)


def run(size: int, seed: int, names: list[str] | None = None) -> list[WorkloadResult]:
    return [run_workload(name, size, seed) for name in (names or list(workloads.WORKLOADS))]

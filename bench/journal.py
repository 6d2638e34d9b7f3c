"""``bench journal``: the durable path — append per durability policy, recovery and replay.

* **append**: ``Sequencer.submit_records`` of the ``liquid`` workload in batches of 1, 100 and
  1,000 commands under each durability policy (``batch``: fsync before every acknowledgement;
  ``interval``; ``none``).  Each batch is sequenced, logged, applied by the compiled engine,
  checkpointed and synced per the policy before the next one starts, exactly as a client's.
* **recovery**: reopening the data directory: verifying every record, replaying the whole log
  and comparing every batch's events with its checkpoint.
* **replay / audit**: ``replay``'s own throughput functions over the same log (the numbers
  ``cets replay run`` and ``cets replay audit`` reach).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np

from bench import workloads
from engine.durable.sequencer import Sequencer
from replay import throughput

POLICIES = ("batch", "interval", "none")
REPLAY_REPEATS = 5
BATCH_SIZES = (1, 100, 1000)


class AppendResult(msgspec.Struct):
    policy: str
    batch_size: int
    commands: int
    seconds: float
    commands_per_s: float
    batches_per_s: float


class JournalResults(msgspec.Struct):
    append: list[AppendResult]
    log_commands: int
    log_bytes: int
    recovery_seconds: float
    recovery_events_per_s: float
    replay_events_per_s: float
    audit_events_per_s: float
    """Medians of :data:`REPLAY_REPEATS` passes."""
    replay_best_events_per_s: float = 0.0
    audit_best_events_per_s: float = 0.0
    load_average: float = 0.0
    """The machine's one-minute load average after the replay and audit passes (2 cores)."""


def _append(data_dir: Path, market, cmds: np.ndarray, policy: str, batch: int) -> AppendResult:
    with Sequencer.open(data_dir, market, durability=policy, snapshot_every_events=None) as ex:
        start = time.perf_counter()
        for first in range(0, len(cmds), batch):
            ex.submit_records(cmds[first : first + batch].copy())
        seconds = time.perf_counter() - start
    n = len(cmds)
    return AppendResult(policy, batch, n, seconds, n / seconds, n / batch / seconds)


def _commands_for(batch: int, size: int) -> int:
    """Fewer commands for tiny batches under fsync (each costs a disk flush)."""
    return max(batch * 20, min(size, batch * 2_000))


def run(size: int, seed: int) -> JournalResults:
    market, cmds = workloads.generate("liquid", size, seed)
    root = Path(tempfile.mkdtemp(prefix="cets-bench-journal-"))
    try:
        results = []
        for policy in POLICIES:
            for batch in BATCH_SIZES:
                n = _commands_for(batch, size) if policy == "batch" else size
                target = root / f"{policy}-{batch}"
                results.append(_append(target, market, cmds[:n], policy, batch))
        log_dir = root / "none-1000"
        log_bytes = sum(p.stat().st_size for p in (log_dir / "log").iterdir())
        start = time.perf_counter()
        with Sequencer.open(log_dir, snapshot_every_events=None) as recovered:
            events = recovered.recovery_report.events_replayed
        recovery_s = time.perf_counter() - start
        replay = throughput.run_throughput(log_dir, REPLAY_REPEATS)
        audit = throughput.audit_throughput(log_dir, REPLAY_REPEATS)
        return JournalResults(
            results,
            size,
            log_bytes,
            recovery_s,
            events / recovery_s,
            replay.events_per_s,
            audit.events_per_s,
            replay.best_events_per_s,
            audit.best_events_per_s,
            os.getloadavg()[0],
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def format_table(r: JournalResults) -> str:
    lines = [
        f"{'policy':<9} {'batch':>6} {'commands':>10} {'seconds':>9} {'commands/s':>13} "
        f"{'batches/s':>11}"
    ]
    lines.append("-" * len(lines[0]))
    for a in r.append:
        lines.append(
            f"{a.policy:<9} {a.batch_size:>6} {a.commands:>10,} {a.seconds:>9.3f} "
            f"{a.commands_per_s:>13,.0f} {a.batches_per_s:>11,.0f}"
        )
    lines.append(
        f"log of {r.log_commands:,} commands ({r.log_bytes / 2**20:,.1f} MiB on disk, "
        f"preallocated): recovery with full audit {r.recovery_seconds:.3f} s "
        f"({r.recovery_events_per_s:,.0f} events/s)"
    )
    lines.append(
        f"replay run {r.replay_events_per_s:,.0f} events/s (best {r.replay_best_events_per_s:,.0f}"
        f"); replay audit {r.audit_events_per_s:,.0f} events/s (best "
        f"{r.audit_best_events_per_s:,.0f}); medians of {REPLAY_REPEATS} passes, load average "
        f"{r.load_average:.2f}"
    )
    return "\n".join(lines)

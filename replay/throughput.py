"""Replay and audit throughput on an existing data directory, for the benchmark suite.

Theory of operation
-------------------
The benchmark (``bench``) writes a large log and calls :func:`run_throughput` and
:func:`audit_throughput`; they time exactly what ``replay run`` and ``replay audit`` do - read
and check the log, apply every batch in one compiled call, and for the audit hash every batch's
events - with the JIT warmed before the clock starts.  Each result carries the state hash (and
the audit's events hash), so a fast wrong answer is visible.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import msgspec

from replay.audit import audit
from replay.datadir import open_data_dir
from replay.timeline import engine_class, rebuild


class Throughput(msgspec.Struct, frozen=True):
    """Median of ``repeats`` timed passes over one data directory."""

    what: str
    """``"run"`` or ``"audit"``."""
    data_dir: str
    batches: int
    commands: int
    events: int
    repeats: int
    elapsed_ns: int
    """Median wall time of one pass."""
    events_per_s: int
    commands_per_s: int
    state_hash: str
    events_hash: str
    """The audit's combined events hash ("" for ``run``)."""
    ok: bool
    """For ``audit``: every batch matched its checkpoint."""
    best_elapsed_ns: int = 0
    """Wall time of the fastest pass (on a shared machine, the one least disturbed)."""
    best_events_per_s: int = 0


def _timed(what: str, data_dir: str | Path, repeats: int, one_pass) -> Throughput:
    data = open_data_dir(data_dir)
    engine_class("compiled")(data.market)  # compile (or load the JIT cache) off the clock
    times, result = [], None
    for _ in range(max(repeats, 1)):
        start = time.perf_counter_ns()
        result = one_pass(data)
        times.append(time.perf_counter_ns() - start)
    assert result is not None
    elapsed = max(int(statistics.median(times)), 1)
    best = max(min(times), 1)
    batches, commands, events, state_hash, events_hash, ok = result
    return Throughput(
        what,
        str(data.path),
        batches,
        commands,
        events,
        len(times),
        elapsed,
        events * 1_000_000_000 // elapsed,
        commands * 1_000_000_000 // elapsed,
        state_hash,
        events_hash,
        ok,
        best,
        events * 1_000_000_000 // best,
    )


def run_throughput(data_dir: str | Path, repeats: int = 3) -> Throughput:
    """Time ``replay run`` (rebuild the final state from the whole log, no snapshot).

    Parameters
    ----------
    data_dir : str or Path
        An existing data directory.
    repeats : int
        Timed passes; the median is reported.
    """

    def one_pass(data):
        rebuilt = rebuild(data)
        state = rebuilt.engine.state_hash()
        return rebuilt.batches, rebuilt.commands, rebuilt.events, state, "", True

    return _timed("run", data_dir, repeats, one_pass)


def audit_throughput(data_dir: str | Path, repeats: int = 3) -> Throughput:
    """Time ``replay audit`` (replay and compare every batch's events with its checkpoint).

    Parameters
    ----------
    data_dir : str or Path
        An existing data directory.
    repeats : int
        Timed passes; the median is reported.
    """

    def one_pass(data):
        report = audit(data)
        return (
            report.batches,
            report.commands,
            report.events,
            report.state_hash,
            report.events_hash,
            report.ok,
        )

    return _timed("audit", data_dir, repeats, one_pass)

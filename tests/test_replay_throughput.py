"""The throughput API the benchmark suite calls, at a tiny size so it cannot rot: it replays
what ``run`` and ``audit`` replay and reports hashes that expose a fast wrong answer."""

from __future__ import annotations

from pathlib import Path

from replay.audit import audit
from replay.datadir import open_data_dir
from replay.throughput import Throughput, audit_throughput, run_throughput
from tests.test_replay_support import random_log


def test_run_and_audit_throughput_on_a_tiny_log(tmp_path: Path) -> None:
    _, hashes = random_log(tmp_path, 3, days=2, per_day=80, registry=True)
    ran = run_throughput(tmp_path, repeats=2)
    audited = audit_throughput(str(tmp_path), repeats=1)
    expected = audit(open_data_dir(tmp_path))
    assert isinstance(ran, Throughput) and ran.what == "run" and ran.repeats == 2
    assert (ran.commands, ran.events, ran.batches) == (
        expected.commands,
        expected.events,
        expected.batches,
    )
    assert ran.state_hash == audited.state_hash == hashes[max(hashes)]
    assert audited.ok and audited.events_hash == expected.events_hash
    assert ran.commands == max(hashes) and ran.elapsed_ns > 0
    assert ran.events_per_s == ran.events * 10**9 // ran.elapsed_ns

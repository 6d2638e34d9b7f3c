"""pytest-benchmark suite for the hot functions: kernel batch, codec, journal append, replay.

In the normal test suite (``--benchmark-disable`` in pyproject.toml) each runs once at a tiny
size, so the benchmarks cannot rot; to measure, run this file on its own::

    python -m pytest tests/test_benchmarks_hot.py --benchmark-enable

The sizes grow with ``CETS_HOT_SIZE`` (default 2,000 commands).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench import workloads
from engine.core.compiled.engine import CompiledEngine
from engine.core.records import Codec
from engine.durable.sequencer import Sequencer
from replay import throughput

SIZE = int(os.environ.get("CETS_HOT_SIZE", "2000"))


@pytest.fixture(scope="module")
def liquid():
    return workloads.generate("liquid", SIZE, seed=11)


def test_kernel_batch(benchmark, liquid) -> None:
    market, records = liquid

    def run():
        engine = CompiledEngine(market)
        return engine.apply_records(records, copy=False).shape[0]

    events = benchmark(run)
    assert events >= len(records)


def test_codec_round_trip(benchmark, liquid) -> None:
    market, records = liquid
    codec = Codec(market)

    typed = codec.decode_commands(records)

    def run():
        return codec.decode_commands(codec.encode_commands(typed))

    assert benchmark(run) == typed


def test_journal_append(benchmark, liquid, tmp_path) -> None:
    market, records = liquid
    counter = iter(range(10**6))

    def run():
        with Sequencer.open(
            tmp_path / str(next(counter)), market, durability="none", snapshot_every_events=None
        ) as exchange:
            for first in range(0, len(records), 500):
                exchange.submit_records(records[first : first + 500].copy())
            return exchange.last_seq

    assert benchmark(run) == len(records)


def test_replay_run(benchmark, liquid, tmp_path) -> None:
    market, records = liquid
    with Sequencer.open(tmp_path / "log", market, durability="none") as exchange:
        events = exchange.submit_records(records.copy())
        live_hash = exchange.state_hash()
    result = benchmark(throughput.run_throughput, tmp_path / "log", 1)
    assert result.state_hash == live_hash
    assert result.events == np.asarray(events).shape[0]

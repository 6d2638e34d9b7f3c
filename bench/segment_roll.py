"""What a segment roll costs the batch that triggers it, and what a spare's preparation costs
the foreground's syncs: a measurement script (``python -m bench.segment_roll``), not part of
``cets bench``.

* **roll**: a :class:`~engine.durable.sequencer.Sequencer` with ``durability="batch"`` on a
  real directory takes batches of 30 ``SubmitOrder`` records (buys and sells around the
  reference price, so they trade) until its log has rolled ``--rolls`` segments of
  ``--segment-mib``; it prints the slowest ``submit_records`` call, the percentiles, every
  roll batch's time and the journal's ``fdatasync`` percentiles.
* **fsync probe** (``--probe``): a foreground loop appends 1.5 KB and ``fdatasync``s, alone,
  while the journal's paced spare preparation runs beside it (when the journal has one), and
  while an unpaced zero-fill of a segment's size runs beside it (what preparing a segment in
  one go would cost the syncs).

Point ``--dir`` at the file system the log will live on (not a tmpfs: check ``df``); the
script removes what it wrote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import machine, workloads
from engine.core import schema as s
from engine.durable import journal as jr
from engine.durable.sequencer import Sequencer

BATCH_COMMANDS = 30
PROBE_WRITE_BYTES = 1536
PROBE_SYNCS = 2_000
WARMUP_BATCHES = 50
"""Batches before the measured ones (the first calls of a fresh engine)."""


def _market():
    return workloads.market_for(workloads.WORKLOADS["liquid"])


def _template(exchange: Sequencer, market) -> np.ndarray:
    """One batch of limit orders, half buys (accounts 0-14), half sells (15-29)."""
    symbol = market.instruments[0].symbol
    orders = [
        s.SubmitOrder(
            order_id=i + 1,
            account=i,
            instrument=symbol,
            side=s.Side.BUY if i < BATCH_COMMANDS // 2 else s.Side.SELL,
            qty_t=10,
            price_ticks=market.instruments[0].reference_price_ticks,
        )
        for i in range(BATCH_COMMANDS)
    ]
    return exchange.codec.encode_commands(orders)


def _percentiles(seconds) -> str:
    us = np.array(seconds) * 1e6
    p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
    return f"p50 {p50:.0f} us, p99 {p99:.0f} us, p99.9 {p999:.0f} us, max {us.max():.0f} us"


def measure_rolls(directory: Path, segment_bytes: int, rolls: int, seed: int) -> None:
    """Submit batches until the log rolled ``rolls`` times; print the figures."""
    market = _market()
    reference = market.instruments[0].reference_price_ticks
    rng = np.random.default_rng(seed)
    with Sequencer.open(
        directory,
        market,
        durability="batch",
        segment_bytes=segment_bytes,
        snapshot_every_events=None,
    ) as exchange:
        template = _template(exchange, market)
        journal = exchange.journal
        times, roll_times, order_id, first_segment = [], [], 1, journal._segment_first
        batches, preparing, syncs = 0, [], []
        while len(roll_times) < rolls:
            records = template.copy()
            records["order_id"] = np.arange(order_id, order_id + BATCH_COMMANDS)
            records["price_ticks"] = reference + rng.integers(-3, 4, BATCH_COMMANDS)
            order_id += BATCH_COMMANDS
            segment = journal._segment_first
            spare = getattr(journal, "_spare", None)  # (None: a journal without spares)
            beside = spare is not None and not spare._done.is_set()
            started = time.perf_counter()
            exchange.submit_records(records)
            elapsed = time.perf_counter() - started
            batches += 1
            if batches <= WARMUP_BATCHES:
                continue
            times.append(elapsed)
            syncs.append(journal.sync_seconds[-1])  # the batch's own (a roll syncs more)
            preparing.append(beside)
            if journal._segment_first != segment:
                roll_times.append(elapsed)
    print(
        f"{batches:,} batches of {BATCH_COMMANDS} SubmitOrder, segments of "
        f"{segment_bytes / 2**20:g} MiB from seq {first_segment}, {rolls} rolls"
    )
    print(f"submit_records: {_percentiles(times)}")
    print("roll batches: " + ", ".join(f"{t * 1e3:.2f} ms" for t in roll_times))
    without_rolls = sorted(times)[: len(times) - len(roll_times)]
    print(f"submit_records without the roll batches: {_percentiles(without_rolls)}")
    print(f"journal fdatasync: {_percentiles(syncs)}")
    beside, syncs = np.array(preparing), np.array(syncs)
    if beside.any():
        print(
            f"  while a spare was being prepared ({beside.sum():,} batches): "
            f"{_percentiles(syncs[beside])}"
        )
        print(f"  otherwise: {_percentiles(syncs[~beside])}")


def _probe(directory: Path, beside=None) -> list[float]:
    """fdatasync durations of ``PROBE_SYNCS`` appends, with ``beside()`` running on a thread
    (restarted whenever it finishes) until the probe is done."""
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            beside(done)

    thread = threading.Thread(target=loop) if beside is not None else None
    path = directory / "probe.dat"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        jr._preallocate(jr.OS_STORAGE, fd, 0, PROBE_SYNCS * PROBE_WRITE_BYTES)
        os.fsync(fd)
        if thread is not None:
            thread.start()
        data, seconds = os.urandom(PROBE_WRITE_BYTES), []
        for i in range(PROBE_SYNCS):
            os.pwrite(fd, data, i * PROBE_WRITE_BYTES)
            started = time.perf_counter()
            os.fdatasync(fd)
            seconds.append(time.perf_counter() - started)
            time.sleep(0.0002)  # a gateway's batches come apart
    finally:
        done.set()
        if thread is not None:
            thread.join()
        os.close(fd)
        path.unlink()
    return seconds


def _unpaced_fill(directory: Path, segment_bytes: int):
    def fill(done: threading.Event) -> None:
        path = directory / "unpaced.tmp"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            jr._preallocate(jr.OS_STORAGE, fd, 0, segment_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)
            path.unlink()

    return fill


def _paced_spare(directory: Path, segment_bytes: int):
    if not hasattr(jr, "_SpareSegment"):  # a journal without spare segments
        return None

    def fill(done: threading.Event) -> None:
        worker = jr._SpareWorker()
        spare = jr._SpareSegment(jr.OS_STORAGE, directory, segment_bytes, worker)
        spare._done.wait()  # (not spare.wait(): that would hurry it)
        spare.discard()
        worker.stop()

    return fill


def measure_syncs(directory: Path, segment_bytes: int) -> None:
    """The fsync probe (see the module docstring)."""
    print(f"fdatasync of {PROBE_WRITE_BYTES} B appends, {PROBE_SYNCS:,} each:")
    print(f"  alone:                          {_percentiles(_probe(directory))}")
    paced = _paced_spare(directory, segment_bytes)
    if paced is not None:
        print(f"  beside a paced spare:           {_percentiles(_probe(directory, paced))}")
    unpaced = _unpaced_fill(directory, segment_bytes)
    print(f"  beside an unpaced zero-fill:    {_percentiles(_probe(directory, unpaced))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.segment_roll", description=__doc__)
    parser.add_argument("--dir", default=".", help="where to make the scratch data directory")
    parser.add_argument("--segment-mib", type=float, default=64)
    parser.add_argument("--rolls", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--probe", action="store_true", help="also run the fsync probe")
    args = parser.parse_args(argv)
    segment_bytes = int(args.segment_mib * 2**20)
    print(machine.line(machine.describe()))
    root = Path(tempfile.mkdtemp(prefix="cets-segment-roll-", dir=args.dir))
    try:
        measure_rolls(root / "data", segment_bytes, args.rolls, args.seed)
        if args.probe:
            measure_syncs(root, segment_bytes)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

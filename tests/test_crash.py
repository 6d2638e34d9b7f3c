"""Crash safety: a writer process is killed with SIGKILL at random moments, again and again.

After every kill: every batch whose ``submit`` returned is in the log with exactly the
commands that were submitted, no partial batch is visible, the log verifies (at most a tail
that recovery truncates), and the state recovered from snapshot + log equals a clean replay
of the whole log in a fresh engine.  Writers are forked from the test process (cheap, so many
kills fit in the suite); one test also kills fresh interpreters.

``CETS_CRASH_KILLS=5000 pytest tests/test_crash.py`` runs thousands of kills;
``CETS_CRASH_SEED`` repeats a printed seed (the kill moments still vary with timing).
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from engine.core.reference.engine import ReferenceEngine
from engine.durable import journal as jr
from engine.durable import sequencer as sq
from tests.conftest import random_commands, small_market

ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("CETS_CRASH_KILLS", "30"))
KILLS_PER_DIRECTORY = 10
"""A fresh data directory now and then keeps the clean replay after each kill short."""
WRITER_TIMEOUT_S = 30.0
"""A writer that does not make progress for this long fails the test instead of hanging it."""
POLICIES = ("batch", "interval", "none")  # a process crash loses nothing under any of them


def content_digest(records: np.ndarray) -> str:
    """Digest of a batch's commands without the seq and time the sequencer fills in."""
    copy = np.array(records, copy=True)
    copy["seq"], copy["ts_ns"] = 0, 0
    return hashlib.blake2b(copy.tobytes(), digest_size=16).hexdigest()


def emit(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())  # one short write to a pipe: never interleaved


def writer(data_dir: str, seed: int, out_fd: int, durability: str) -> None:
    """The victim: recovers the exchange, then submits random batches until killed.

    Prints ``I first last digest`` before each submit and ``A first last`` after it returned.
    """
    rng = random.Random(seed)
    market = small_market()
    exchange = sq.Sequencer.open(
        data_dir,
        market,
        durability=durability,
        segment_bytes=16 * 1024,
        snapshot_every_events=rng.choice((100, 400, None)),
        snapshots_kept=2,
        engine_factory=ReferenceEngine,
    )
    emit(out_fd, f"R {exchange.last_seq}")
    for _ in range(40):  # generated in small chunks: writing starts at once
        commands = random_commands(rng, 100, market)
        while commands:
            size = rng.randint(1, 40)
            batch, commands = commands[:size], commands[size:]
            submit(exchange, batch, rng, out_fd)
    exchange.close()
    emit(out_fd, "D")


def submit(exchange: sq.Sequencer, batch: list, rng: random.Random, out_fd: int) -> None:
    records = exchange.codec.encode_commands(batch)
    first, last = exchange.next_seq, exchange.next_seq + len(batch) - 1
    emit(out_fd, f"I {first} {last} {content_digest(records)}")
    if rng.random() < 0.5:
        exchange.submit_records(records)
    else:
        exchange.submit(batch, [b"%d" % j if j % 3 else None for j in range(len(batch))])
    emit(out_fd, f"A {first} {last}")


def fork_writer(data_dir: Path, seed: int, durability: str) -> tuple[int, int]:
    """(pid, read end of its pipe)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        code = 0
        try:
            os.close(read_fd)
            writer(str(data_dir), seed, write_fd, durability)
        except BaseException:  # noqa: BLE001 - report anything to the parent
            emit(write_fd, "E " + traceback.format_exc().replace("\n", " | "))
            code = 1
        os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def kill_writer(pid: int, fd: int, rng: random.Random, acks_wanted: int) -> list[str]:
    """SIGKILL the writer after ``acks_wanted`` acknowledged batches plus a moment (mid-write),
    or, with ``acks_wanted`` < 0, after a random time (maybe while it recovers); returns its
    complete output lines."""
    output = b""
    if acks_wanted >= 0:
        deadline = time.monotonic() + WRITER_TIMEOUT_S
        while output.count(b"\nA ") < acks_wanted:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"writer stalled: {output[-300:]!r}"
            if select.select([fd], [], [], remaining)[0]:
                if not (chunk := os.read(fd, 65536)):
                    break  # it ended (finished, or failed: its "E" line is in the output)
                output += chunk
        time.sleep(rng.uniform(0.0, 0.004))
    else:
        time.sleep(rng.uniform(0.0, 0.08))
    os.kill(pid, signal.SIGKILL)
    while chunk := os.read(fd, 65536):
        output += chunk
    text = output.decode()
    return text.split("\n")[:-1]  # a line cut by the kill has no newline: ignored


class Ledger:
    """What the writers said: intended batches (latest per first seq) and acknowledged ones."""

    def __init__(self) -> None:
        self.intents: dict[int, tuple[int, str]] = {}
        self.acked: set[tuple[int, int]] = set()

    def take(self, lines: list[str]) -> None:
        for line in lines:
            kind, *fields = line.split(" ")
            assert kind != "E", line
            if kind == "I":
                self.intents[int(fields[0])] = (int(fields[1]), fields[2])
            elif kind == "A":
                self.acked.add((int(fields[0]), int(fields[1])))

    def check_batches(self, batches: list[jr.LoggedBatch]) -> None:
        by_range = {(b.first_seq, b.last_seq): b for b in batches}
        for first, last in self.acked:
            assert (first, last) in by_range, f"acknowledged batch {first}..{last} is lost"
        for batch in batches:  # present = exactly an intended batch: never a partial one
            assert self.intents[batch.first_seq] == (
                batch.last_seq,
                content_digest(batch.commands),
            ), f"batch {batch.first_seq}..{batch.last_seq} is not what was submitted"


def check_recovery(data_dir: Path, ledger: Ledger) -> None:
    """Recover as the next writer would, and compare with a clean replay of the log."""
    log = data_dir / sq.LOG_DIR
    if not (data_dir / sq.MARKET_FILE).exists():  # killed before it was created
        assert not ledger.acked
        return
    if log.exists():
        report = jr.verify(log)
        assert report.problem is None or report.problem.at_tail, report.problem
    with sq.Sequencer.open(data_dir, engine_factory=ReferenceEngine) as exchange:
        batches = list(exchange.journal.read())
        ledger.check_batches(batches)
        clean = ReferenceEngine(exchange.market)
        for batch in batches:
            clean.apply_records(batch.commands)
        assert exchange.state_hash() == clean.state_hash()
        exchange.engine.check_invariants()
        assert not list((data_dir / sq.SNAPSHOT_DIR).glob("*.tmp"))  # unfinished snapshots
    assert jr.verify(log).ok


def check_without_recovery(data_dir: Path, ledger: Ledger) -> None:
    """Read-only checks; the next writer recovers the tail itself (and may be killed doing
    it)."""
    log = data_dir / sq.LOG_DIR
    if not log.exists():
        assert not ledger.acked
        return
    report = jr.verify(log)
    assert report.problem is None or report.problem.at_tail, report.problem
    ledger.check_batches(list(jr.read_log(log)))


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    seed = int(os.environ.get("CETS_CRASH_SEED", random.randrange(2**32)))
    print(f"seed={seed} kills={KILLS}")
    rng = random.Random(seed)
    ledger, data_dir, acked, wanted = Ledger(), tmp_path, 0, 0
    for kill in range(KILLS):
        if kill % KILLS_PER_DIRECTORY == 0:
            ledger, data_dir = Ledger(), tmp_path / f"d{kill}"
        pid, fd = fork_writer(data_dir, rng.randrange(2**32), POLICIES[kill % 3])
        acks_wanted = rng.randint(0, 20) if rng.random() < 0.7 else -1
        lines = kill_writer(pid, fd, rng, acks_wanted)
        os.close(fd)
        os.waitpid(pid, 0)
        ledger.take(lines)
        acked += sum(line.startswith("A ") for line in lines)
        wanted += max(acks_wanted, 0)
        if kill % 2 == 0 or kill % KILLS_PER_DIRECTORY == KILLS_PER_DIRECTORY - 1:
            check_recovery(data_dir, ledger)
        else:
            check_without_recovery(data_dir, ledger)
    print(f"acknowledged batches: {acked}")
    assert acked >= wanted > 0  # the kills did land while batches were being written


SPAWNED_WRITER = """
import sys
sys.path.insert(0, {root!r})
from tests.test_crash import writer
writer({data_dir!r}, {seed}, 1, "batch")
"""


def test_sigkill_of_fresh_interpreters(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    ledger = Ledger()
    for _ in range(3):
        script = SPAWNED_WRITER.format(
            root=str(ROOT), data_dir=str(tmp_path), seed=rng.randrange(2**32)
        )
        with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as child:
            assert child.stdout is not None
            lines = kill_writer(child.pid, child.stdout.fileno(), rng, rng.randint(1, 10))
        ledger.take(lines)
        check_recovery(tmp_path, ledger)
    assert ledger.acked

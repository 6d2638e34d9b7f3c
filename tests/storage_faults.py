"""A deterministic, seeded faulty storage for the log writer, and a campaign over it.

Theory of operation
-------------------
:class:`FaultyStorage` is an :class:`engine.durable.storage.Storage` over real files that
also keeps, per file, what a disk would hold: the *durable* bytes (as of the last successful
sync) and the writes since (in the page cache only).  Readers see the real files, that is
the page cache.  It injects, with seeded probabilities:

- ``eio_write`` / ``enospc_write``: a ``pwrite`` fails (EIO after a torn prefix reached the
  cache; ENOSPC with nothing written);
- ``eio_sync``: a sync fails; what it should have written stays unsynced (and is lost at the
  next crash, as after Linux drops the pages of a failed writeback);
- ``lost``: a write reported done never reaches the disk, even after a sync (firmware);
- ``misdirected``: a write reaches the disk at another offset of the file;
- ``crash``: power loss: every file reverts to its durable bytes plus a random subset of the
  writes since the last sync, each possibly ``torn`` (only some of its 512-byte sectors);
  files whose directory entry was never synced may vanish.

:func:`run_campaign` drives ``Journal`` through it until ``faults`` faults were injected and
checks after every recovery: every acknowledged batch is still there, byte for byte (the
chain value at the last acknowledged seq is the one acknowledged), unless a *corrupting*
fault (lost or misdirected write) happened - then the damage must be detected (the open
refuses with segment, offset and seq), never accepted; nothing is acknowledged after a
failed sync; a full disk refuses the batch and the writer resumes when space returns.

A :class:`FaultyStorage` serves one thread: its faults come from one seeded generator, in the
order of the calls, so a second thread's calls would make a campaign unrepeatable (it refuses
them).  The journal's spare segments (``engine.durable.journal``) are therefore prepared on
the writer's thread (``spare_segments="inline"``) in half of the campaign's logs, and not at
all in the other half, so that both ways of making a segment meet every fault.
"""

from __future__ import annotations

import collections
import errno
import os
import random
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.core.records import COMMAND_DTYPE, EVENT_DTYPE
from engine.durable import journal as jr
from engine.durable.storage import Storage

SECTOR_BYTES = 512
DIGEST = bytes(range(32))
RATES = {
    "eio_write": 0.002,
    "enospc_write": 0.004,
    "eio_sync": 0.004,
    "lost": 0.0015,
    "misdirected": 0.0015,
}
CORRUPTING = ("lost", "misdirected")


@dataclass
class _File:
    durable: bytearray
    pending: list = field(default_factory=list)
    """("write", offset, bytes) or ("truncate", size), in order, since the last sync."""
    name_durable: bool = True
    diverged: bool = False
    """The disk differs from the page cache (a lost or misdirected write was synced)."""


class FaultyStorage(Storage):
    """See the module docstring.  ``faults`` counts what was injected, by kind."""

    def __init__(self, rng: random.Random, rates: dict[str, float] = RATES) -> None:
        self.rng, self.rates = rng, dict(rates)
        self.files: dict[str, _File] = {}
        self.fds: dict[int, str] = {}
        self.faults: collections.Counter[str] = collections.Counter()
        self.corrupted = False
        self.full = False
        """While set, every ``pwrite`` that needs new blocks (beyond the file's end) fails with
        ENOSPC: the disk is full (writes into preallocated blocks still succeed)."""
        self.thread = threading.get_ident()

    def _roll(self, kind: str) -> bool:
        assert threading.get_ident() == self.thread, "a FaultyStorage serves one thread"
        if self.rng.random() < self.rates.get(kind, 0.0):
            self.faults[kind] += 1
            return True
        return False

    def _model(self, path: str) -> _File:
        if path not in self.files:
            data = Path(path).read_bytes() if os.path.exists(path) else b""
            self.files[path] = _File(bytearray(data))
        return self.files[path]

    def open(self, path, flags: int, mode: int = 0o644) -> int:
        existed = os.path.exists(path)
        fd = os.open(path, flags, mode)
        key = str(path)
        if not existed:
            self.files[key] = _File(bytearray(), name_durable=False)
        model = self._model(key)
        if flags & os.O_TRUNC:
            model.pending.append(("truncate", 0))
        self.fds[fd] = key
        return fd

    def close(self, fd: int) -> None:
        self.fds.pop(fd, None)
        os.close(fd)

    def pwrite(self, fd: int, parts, offset: int) -> None:
        data = b"".join(bytes(part) for part in parts)
        model = self._model(self.fds[fd])
        allocating = offset + len(data) > os.fstat(fd).st_size
        if (self.full and allocating) or self._roll("enospc_write"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if self._roll("eio_write"):
            prefix = data[: self.rng.randrange(len(data) + 1)]
            os.pwrite(fd, prefix, offset)
            model.pending.append(("write", offset, prefix))
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.pwrite(fd, data, offset)
        if self._roll("lost"):
            self.corrupted = True
            model.pending.append(("lost", offset, data))
        elif self._roll("misdirected"):
            self.corrupted = True
            shift = self.rng.choice([-8, -4, -2, -1, 1, 2, 4, 8]) * SECTOR_BYTES
            model.pending.append(("write", max(0, offset + shift), data, "misdirected"))
        else:
            model.pending.append(("write", offset, data))

    def _sync(self, fd: int) -> None:
        model = self._model(self.fds[fd])
        if self._roll("eio_sync"):
            self._failed_sync(model)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        for op in model.pending:
            _apply(model.durable, op)
        model.diverged |= any(op[0] == "lost" or len(op) == 4 for op in model.pending)
        model.pending = []

    def _failed_sync(self, model: _File) -> None:
        """Linux may drop the dirty pages of a failed writeback: they stay in the cache (and
        the real file) but never reach the disk."""
        model.pending = [("lost", *op[1:3]) if op[0] == "write" else op for op in model.pending]

    def fdatasync(self, fd: int) -> None:
        self._sync(fd)

    def fsync(self, fd: int) -> None:
        self._sync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)
        self._model(self.fds[fd]).pending.append(("truncate", size))

    def rename(self, source, target) -> None:
        os.rename(source, target)
        model = self.files.pop(str(source))
        model.name_durable = False
        self.files[str(target)] = model
        for fd, path in self.fds.items():
            if path == str(source):
                self.fds[fd] = str(target)

    def fsync_dir(self, path) -> None:
        for name, model in self.files.items():
            if Path(name).parent == Path(path):
                model.name_durable = True  # (the model is the disk: no real sync needed)

    def crash(self) -> None:
        """Power loss: every file as the disk holds it (see the module docstring)."""
        self.faults["crash"] += 1
        for path, model in list(self.files.items()):
            if not model.name_durable and self.rng.random() < 0.5:
                Path(path).unlink(missing_ok=True)
                del self.files[path]
                continue
            if not model.pending and not model.diverged:
                continue  # the disk holds what the page cache does
            content = bytearray(model.durable)
            for op in model.pending:
                if op[0] == "write" and self.rng.random() < 0.5:
                    if self.rng.random() < 0.3:
                        self.faults["torn"] += 1
                        op = _torn(op, self.rng)
                    _apply(content, op)
                elif op[0] == "truncate" and self.rng.random() < 0.5:
                    _apply(content, op)
            model.durable, model.pending, model.diverged = content, [], False
            if os.path.exists(path):
                Path(path).write_bytes(content)
        self.fds.clear()


def _apply(content: bytearray, op: tuple) -> None:
    if op[0] == "truncate":
        del content[op[1] :]
    elif op[0] == "write":
        offset, data = op[1], op[2]
        if len(content) < offset:
            content.extend(bytes(offset - len(content)))
        content[offset : offset + len(data)] = data


def _torn(op: tuple, rng: random.Random) -> tuple:
    """Only some sectors of a write persisted: keep a random prefix of whole sectors."""
    offset, data = op[1], op[2]  # (a misdirected write's mark is dropped: torn anyway)
    keep = rng.randrange(0, len(data) + 1, SECTOR_BYTES) if len(data) > SECTOR_BYTES else 0
    return ("write", offset, data[:keep])


# ------------------------------------------------------------------------------------------
# The campaign
# ------------------------------------------------------------------------------------------


@dataclass
class CampaignResult:
    seed: int
    faults: collections.Counter
    trials: int = 0
    batches_acknowledged: int = 0
    recoveries: int = 0
    detected: int = 0
    """Opens refused after a corrupting fault, with segment, offset and seq."""
    full_refusals: int = 0
    resumed_after_full: int = 0
    acknowledged_lost: int = 0
    undetected: int = 0
    lost_in_last_sync_window: int = 0
    """A lying disk (a lost or misdirected write) lost the batch of the very last sync before
    a crash: indistinguishable from a power loss during that sync (LOG_FORMAT.md §5.1), so
    cut as never acknowledged.  Counted apart; anything older lost is ``undetected``."""
    false_alarms: int = 0
    acknowledged_after_failed_sync: int = 0

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()))
        return (
            f"storage-fault campaign seed {self.seed}: {sum(self.faults.values())} faults "
            f"({kinds}); {self.trials} logs, {self.recoveries} recoveries, "
            f"{self.batches_acknowledged} batches acknowledged; detected {self.detected}; "
            f"disk full: {self.full_refusals} batches refused, resumed {self.resumed_after_full}"
            f"; acknowledged lost {self.acknowledged_lost}, undetected {self.undetected} "
            f"(and {self.lost_in_last_sync_window} last-sync batches a lying disk lost, cut as "
            f"unconfirmed), false alarms {self.false_alarms}, acknowledged after a failed sync "
            f"{self.acknowledged_after_failed_sync}"
        )


class _Trial:
    """One log directory driven through faults and crashes."""

    def __init__(self, path: Path, storage: FaultyStorage, result: CampaignResult) -> None:
        self.path, self.storage, self.result = path, storage, result
        self.rng = storage.rng
        self.acked_seq, self.acked_chain = 0, jr.GENESIS_CHAIN
        self.confirmed = (0, jr.GENESIS_CHAIN)
        """The acknowledged end before the last sync: what the older end record attests."""
        self.ts = 1
        self.spare = storage.rng.choice((jr.SpareSegments.OFF, jr.SpareSegments.INLINE))
        """Segments made at the roll, or in a spare prepared when the segment before starts
        (on the writer's thread: this storage must see its operations in one order)."""

    def open(self) -> jr.Journal | None:
        """Recover (retrying through crashes); None when the log was refused as damaged."""
        for _ in range(50):
            try:
                journal = jr.Journal.open(
                    self.path,
                    DIGEST,
                    segment_bytes=2048,
                    storage=self.storage,
                    spare_segments=self.spare,
                )
            except jr.StorageFailedError:
                self.storage.crash()
                continue
            except jr.LogCorruptError as exc:
                assert exc.segment and exc.offset is not None, exc
                if self.storage.corrupted:
                    self.result.detected += 1
                else:
                    self.result.false_alarms += 1
                return None
            self.result.recoveries += 1
            self.check_recovered(journal)
            return journal
        raise AssertionError("recovery never succeeded")

    def check_recovered(self, journal: jr.Journal) -> None:
        if not self.holds(journal, self.acked_seq, self.acked_chain):
            if not self.storage.corrupted:
                self.result.acknowledged_lost += 1
            elif self.holds(journal, *self.confirmed):
                self.result.lost_in_last_sync_window += 1
            else:
                self.result.undetected += 1
        self.acked_seq, self.acked_chain = journal.last_seq, journal.chain_hash
        self.confirmed = (self.acked_seq, self.acked_chain)

    def holds(self, journal: jr.Journal, seq: int, chain: bytes) -> bool:
        """Whether the recovered log holds the acknowledged log up to ``seq``, byte for byte."""
        if journal.last_seq == seq:
            return journal.chain_hash == chain
        return journal.last_seq > seq and self.chain_at(seq) == chain

    def chain_at(self, seq: int) -> bytes | None:
        if seq == 0:
            return jr.GENESIS_CHAIN
        for batch in jr.read_log(self.path, from_seq=seq, market_digest=DIGEST):
            if batch.last_seq == seq:
                return batch.chain_after
        return None

    def step(self, journal: jr.Journal) -> bool:
        """One batch; False when the journal stopped (a crash follows)."""
        count = self.rng.randint(1, 12)
        records = np.zeros(count, COMMAND_DTYPE)
        records["seq"] = np.arange(journal.next_seq, journal.next_seq + count)
        records["ts_ns"] = self.ts
        records["order_id"] = self.rng.randrange(1 << 40)
        self.ts += 1
        try:
            journal.append_batch(records)
        except jr.LogFullError:
            self.result.full_refusals += 1
            self.storage.full = self.rng.random() < 0.5  # space may return
            return self.after_full(journal)
        except jr.StorageFailedError:
            return self.failed(journal)
        events = np.zeros(count, EVENT_DTYPE)
        events["seq"] = records["seq"]
        try:
            journal.append_checkpoint(events)
        except jr.StorageFailedError:
            return self.failed(journal)
        self.confirmed = (self.acked_seq, self.acked_chain)
        self.acked_seq, self.acked_chain = journal.last_seq, journal.chain_hash
        self.result.batches_acknowledged += 1
        return True

    def after_full(self, journal: jr.Journal) -> bool:
        self.storage.full = False
        before = self.result.batches_acknowledged
        alive = self.step(journal)
        if self.result.batches_acknowledged > before:
            self.result.resumed_after_full += 1
        return alive

    def failed(self, journal: jr.Journal) -> bool:
        """After a failed write or sync nothing more may be acknowledged."""
        try:
            journal.append_batch(np.zeros(1, COMMAND_DTYPE))
            self.result.acknowledged_after_failed_sync += 1
        except jr.StorageFailedError:
            pass
        return False


def run_campaign(seed: int, faults: int) -> CampaignResult:
    """Drive logs through faults until ``faults`` were injected (see the module docstring)."""
    rng = random.Random(seed)
    result = CampaignResult(seed, collections.Counter())
    root = Path(tempfile.mkdtemp(prefix="cets-faults-"))
    try:
        while sum(result.faults.values()) < faults:
            storage = FaultyStorage(rng)
            storage.faults = result.faults  # one tally over the whole campaign
            path = root / f"log{result.trials}"
            result.trials += 1
            _run_trial(_Trial(path, storage, result), rng)
            shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def _run_trial(trial: _Trial, rng: random.Random) -> None:
    journal = trial.open()
    for _ in range(rng.randint(20, 120)):
        if journal is None:
            return
        alive = trial.step(journal)
        if not alive or rng.random() < 0.08:
            _abandon(journal)
            trial.storage.crash()
            journal = trial.open()
    if journal is not None:
        _abandon(journal)


def _abandon(journal: jr.Journal) -> None:
    """The process is gone: its descriptors close, nothing more is written (a spare segment
    stays where it is)."""
    journal._stop_spares(delete=False)
    if journal._fd >= 0:
        os.close(journal._fd)
    if journal._lock_fd >= 0:
        os.close(journal._lock_fd)
    journal._fd = journal._lock_fd = -1

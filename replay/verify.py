"""``verify``: is every byte of a data directory's log (and every snapshot) intact?

Theory of operation
-------------------
The log is checked by the journal's own walk (``engine.durable.journal``): segment headers, record
checksums, the hash chain across records and segments, sequence continuity, timestamps, and a
checkpoint (event count and digest) after every batch.  :func:`verify_log` is
``engine.durable.journal.verify`` over memory-mapped segments with a progress bar, and it also keeps the
chain value at the seqs where snapshots claim to stand; the tests check that it reports exactly
what ``engine.durable.journal.verify`` reports, for every damaged byte.

A snapshot is intact when its header and state checksums hold, it belongs to this market, and
the chain value it recorded equals the log's chain value after its seq: it was taken of this
very log.  Snapshots are a cache (recovery skips a bad one), but a bad one is still reported.
"""

from __future__ import annotations

import msgspec

from engine.durable import journal as jr
from engine.durable import snapshots as sn
from replay.datadir import DataDir, progress_bases
from replay.progress import Progress


class SnapshotCheck(msgspec.Struct, frozen=True):
    """One snapshot file; ``problem`` is None when it is intact and belongs to the log."""

    path: str
    seq: int
    problem: str | None = None


class VerifyResult(msgspec.Struct, frozen=True):
    """The log's :class:`engine.durable.journal.VerifyReport` and the snapshot checks."""

    data_dir: str
    market: str
    market_digest: str
    log: jr.VerifyReport
    snapshots: list[SnapshotCheck]
    ok: bool


def verify_log(
    data: DataDir, progress: Progress | None = None, keep_chain_at: frozenset[int] = frozenset()
) -> tuple[jr.VerifyReport, dict[int, bytes]]:
    """``engine.durable.journal.verify`` of the data directory's log, and the chain value after each
    seq of ``keep_chain_at`` that ends a batch."""
    walk = jr.LogWalk(data.log_dir, data.market_digest, map_segments=True)
    chains: dict[int, bytes] = {}
    problem: jr.Problem | None = None
    bases, total = progress_bases(data.log_dir)
    if progress is not None:
        progress.total = total
    try:
        for batch in walk:
            if batch.last_seq in keep_chain_at:
                chains[batch.last_seq] = batch.chain_after
            if progress is not None:
                progress.update(bases.get(batch.segment, 0) + batch.offset)
        problem = walk.tail
    except jr.LogCorruptError as exc:
        problem = jr.Problem(exc.segment, exc.offset, exc.seq, exc.what, False)
    cursor = walk.cursor
    chain = cursor.chain if cursor is not None else jr.GENESIS_CHAIN
    report = jr.VerifyReport(
        str(data.log_dir),
        walk.segments,
        walk.records,
        walk.batches,
        walk.commands,
        walk.events,
        walk.first_seq,
        cursor.next_seq - 1 if cursor else 0,
        walk.first_ts_ns,
        cursor.last_ts_ns if cursor else 0,
        chain.hex(),
        problem,
    )
    return report, chains


def verify(data: DataDir, progress: Progress | None = None) -> VerifyResult:
    """Check the log and the snapshots of a data directory without changing anything.

    Returns
    -------
    VerifyResult
        ``ok`` when the log has no problem (not even an unfinished tail) and every snapshot
        is intact and belongs to the log.
    """
    paths = sn.snapshot_paths(data.snapshot_dir)
    seqs = frozenset(int(path.stem) for path in paths)
    report, chains = verify_log(data, progress, seqs)
    checks = [_check_snapshot(data, path, report, chains) for path in paths]
    ok = report.problem is None and all(check.problem is None for check in checks)
    return VerifyResult(
        str(data.path), data.market.name, data.market_digest.hex(), report, checks, ok
    )


def _check_snapshot(
    data: DataDir, path, report: jr.VerifyReport, chains: dict[int, bytes]
) -> SnapshotCheck:
    seq = int(path.stem)
    try:
        info = sn.read_snapshot(path, data.market_digest)
    except (sn.SnapshotError, OSError) as exc:
        return SnapshotCheck(str(path), seq, str(exc))
    if info.last_seq != seq:
        return SnapshotCheck(str(path), seq, f"file name says seq {seq}, header {info.last_seq}")
    chain = jr.GENESIS_CHAIN if seq == 0 else chains.get(seq)
    if chain is None:
        where = "beyond the end of" if seq > report.last_seq else "not at a batch boundary of"
        return SnapshotCheck(str(path), seq, f"seq {seq} is {where} the intact log")
    if chain != info.chain_hash:
        return SnapshotCheck(str(path), seq, "taken of another log (chain value differs)")
    return SnapshotCheck(str(path), seq)

"""Snapshot files: the engine's exported state at a batch boundary of the log.

Theory of operation
-------------------
A snapshot only shortens recovery: the log is the truth, and a snapshot is a cached prefix of
its replay.  One file per snapshot, ``<last_seq:020d>.snap`` in the data directory's
``snapshots/``: a 192-byte header (magic, version, last seq and timestamp, the state's length
and CRC32C, the market digest, the log's chain value after ``last_seq``, the engine's state
hash, the header's CRC32C) followed by the engine's ``export_state()`` bytes
(``docs/LOG_FORMAT.md`` section 6 is the byte-exact format).  Files are written with
:func:`~engine.durable.files.write_atomically`; a ``.tmp`` file is a write a crash interrupted
and is never read (:func:`remove_temporary_files`).

:func:`read_snapshot` checks everything the file itself can prove (magic, version, checksums,
the market); whether the snapshot belongs to *this* log - its chain value - and whether the
engine restores it to the recorded state hash is decided by ``engine.durable.recovery``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import msgspec

from engine.durable.files import TEMPORARY_SUFFIX, write_atomically

SNAPSHOT_SUFFIX = ".snap"
SNAPSHOT_MAGIC = b"CETSSNAP"
SNAPSHOT_VERSION = 1
SNAPSHOT_HEADER_BYTES = 192
STATE_HASH_BYTES_MAX = 64

# magic, version, header bytes, flags, last seq, last ts, state bytes, state crc, reserved,
# market digest, log chain, state hash (ASCII, zero padded), reserved, header crc
_SNAPSHOT_HEADER = struct.Struct("<8sHHIQqQI4s32s32s64s12sI")
assert _SNAPSHOT_HEADER.size == SNAPSHOT_HEADER_BYTES


class SnapshotError(ValueError):
    """A snapshot file that cannot be used (damaged, another market, another version, or -
    raised by recovery - one that does not fit the log or that the engine refuses)."""


class SnapshotInfo(msgspec.Struct, frozen=True):
    """A snapshot file's header (``state`` holds the engine's ``export_state()`` bytes)."""

    path: str
    last_seq: int
    last_ts_ns: int
    market_digest: bytes
    chain_hash: bytes
    state_hash: str
    state: bytes = b""


def snapshot_name(last_seq: int) -> str:
    """The file name of the snapshot taken after ``last_seq``."""
    return f"{last_seq:020d}{SNAPSHOT_SUFFIX}"


def write_snapshot(directory: Path, info: SnapshotInfo) -> Path:
    """Write a snapshot file atomically; returns its path."""
    hash_bytes = info.state_hash.encode("ascii")
    if len(hash_bytes) > STATE_HASH_BYTES_MAX:
        raise ValueError("state hash longer than 64 characters")
    head = _SNAPSHOT_HEADER.pack(
        SNAPSHOT_MAGIC,
        SNAPSHOT_VERSION,
        SNAPSHOT_HEADER_BYTES,
        0,
        info.last_seq,
        info.last_ts_ns,
        len(info.state),
        crc32c.crc32c(info.state),
        b"",
        info.market_digest,
        info.chain_hash,
        hash_bytes,
        b"",
        0,
    )[:-4]
    path = directory / snapshot_name(info.last_seq)
    write_atomically(path, head + struct.pack("<I", crc32c.crc32c(head)) + info.state)
    return path


def read_snapshot(path: Path, market_digest: bytes) -> SnapshotInfo:
    """Read and check a snapshot file.

    Raises
    ------
    SnapshotError
        Short file, bad magic, version, checksum, or another market's snapshot.
    """
    data = path.read_bytes()
    if len(data) < SNAPSHOT_HEADER_BYTES:
        raise SnapshotError("file shorter than the snapshot header")
    (
        magic,
        version,
        header_bytes,
        flags,
        last_seq,
        last_ts,
        state_bytes,
        state_crc,
        _,
        digest,
        chain,
        state_hash,
        _,
        crc,
    ) = _SNAPSHOT_HEADER.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise SnapshotError(f"bad snapshot magic {magic!r}")
    if crc32c.crc32c(data[: SNAPSHOT_HEADER_BYTES - 4]) != crc:
        raise SnapshotError("snapshot header checksum mismatch")
    if version != SNAPSHOT_VERSION or header_bytes != SNAPSHOT_HEADER_BYTES or flags:
        raise SnapshotError(f"unsupported snapshot version {version}")
    if digest != market_digest:
        raise SnapshotError("snapshot of another market definition")
    state = data[SNAPSHOT_HEADER_BYTES:]
    if len(state) != state_bytes or crc32c.crc32c(state) != state_crc:
        raise SnapshotError("snapshot state damaged (length or checksum mismatch)")
    text = state_hash.rstrip(b"\0").decode("ascii", errors="replace")
    return SnapshotInfo(str(path), last_seq, last_ts, digest, chain, text, state)


def snapshot_paths(directory: Path) -> list[Path]:
    """Snapshot files, newest (highest seq) first."""
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.suffix == SNAPSHOT_SUFFIX and len(p.stem) == 20 and p.stem.isdigit()
    ]
    return sorted(found, key=lambda p: int(p.stem), reverse=True)


def remove_snapshots(directory: Path, kept: int) -> None:
    """Delete all but the ``kept`` newest snapshot files (at least one is kept)."""
    for old in snapshot_paths(directory)[max(kept, 1) :]:
        old.unlink()


def remove_temporary_files(directory: Path) -> list[str]:
    """Delete the unfinished (``.tmp``) files a crash left behind; returns their paths."""
    removed = []
    for tmp in sorted(directory.glob("*" + TEMPORARY_SUFFIX)):
        tmp.unlink()
        removed.append(str(tmp))
    return removed

"""Read-only access to an exchange's data directory: its market definition, log and snapshots.

Theory of operation
-------------------
A data directory is what ``engine.durable.sequencer.Sequencer`` owns: ``market.json``, ``log/`` (the
segments of ``engine.durable.journal``) and ``snapshots/``.  The replay tool only ever reads it - it
takes no lock, so it can inspect the directory of a running exchange - and it checks what it
reads with the journal's own reader, which verifies every checksum and the hash chain on the
way.  Every failure to read becomes a one-line :class:`~replay.errors.DataError`.

:class:`LogReader` iterates the complete batches with the journal's walk over memory-mapped
segments (no copy of the log).  Damage before the tail of the log stops it with an error; an
unfinished batch at the very end (a crash, or a live writer mid-batch) ends the iteration and
is left in :attr:`LogReader.tail` so commands can mention it.  By default the walk runs on a
background thread a few chunks of batches ahead of the consumer: its checks (CRC32C, the
blake2b chain) run in C with the GIL released, so reading the log overlaps with the engine's
work.  Batches are handed over in chunks (about 1 MiB of commands): a hand-over wakes a
thread (tens of microseconds, far more on a busy machine), once per chunk instead of per
batch.  A failure to read comes after every batch before it, so the consumer sees exactly what
a walk on its own thread would show.

Progress is measured in bytes of log data.  Segments are preallocated and zero-filled, so the
end of the data in the last segment is estimated by a binary search for the first all-zero
64-byte block (every 64-byte block of a record holds a non-zero byte: each command record has
a non-zero seq, headers a magic) - an estimate for a progress bar, never used for reading.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c
import msgspec

from engine.core import market as mk
from engine.core.records import Codec
from engine.durable import journal as jr
from engine.durable import sequencer as sq
from replay.errors import DataError, LogDamageError, UsageError
from replay.progress import Progress

_SEGMENT_PREFIX = struct.Struct("<8sH")


@dataclass(frozen=True)
class DataDir:
    """An opened (checked, read-only) data directory."""

    path: Path
    market: mk.MarketDefinition
    market_digest: bytes
    codec: Codec

    @property
    def log_dir(self) -> Path:
        """The directory of the log's segment files."""
        return self.path / sq.LOG_DIR

    @property
    def snapshot_dir(self) -> Path:
        """The directory of the engine snapshots."""
        return self.path / sq.SNAPSHOT_DIR

    def instrument_index(self, symbol: str) -> int:
        """Index of ``symbol``; raises a usage error naming the listed symbols."""
        index = self.market.instrument_index(symbol)
        if index < 0:
            listed = ", ".join(self.market.symbols)
            raise UsageError(f"unknown instrument {symbol!r} (the market lists {listed})")
        return index


def open_data_dir(path: str | Path) -> DataDir:
    """Check that ``path`` is a readable data directory of a supported format version.

    Raises
    ------
    DataError
        Missing directory, no ``market.json`` or ``log/``, an invalid market definition, no
        segment, or a log written in another format version.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such directory")
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    market = _read_market(root / sq.MARKET_FILE)
    log_dir = root / sq.LOG_DIR
    if not log_dir.is_dir():
        raise DataError(f"{root}: not a data directory (no {sq.LOG_DIR}/ directory)")
    segments = _segments(log_dir)
    if not segments:
        raise DataError(f"{log_dir}: the log has no segment files")
    _check_format_version(segments[0])
    return DataDir(root, market, market.digest(), Codec(market))


def _read_market(path: Path) -> mk.MarketDefinition:
    if not path.is_file():
        raise DataError(f"{path.parent}: not a data directory (no {path.name})")
    try:
        data = path.read_bytes()
        return mk.validate(msgspec.json.decode(data, type=mk.MarketDefinition))
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    except (msgspec.DecodeError, mk.MarketDefinitionError, ValueError) as exc:  # bad UTF-8 too
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: invalid market definition: {first_line}") from None


def _segments(log_dir: Path) -> list[Path]:
    try:
        return jr.segment_paths(log_dir)
    except OSError as exc:
        raise DataError(f"cannot read {log_dir}: {exc.strerror}") from None


def _check_format_version(segment: Path) -> None:
    """Refuse another format version - but only when the header is intact: a damaged version
    field is damage, which the walk reports with its location."""
    try:
        with open(segment, "rb") as handle:
            head = handle.read(jr.SEGMENT_HEADER_BYTES)
    except OSError as exc:
        raise DataError(f"cannot read {segment}: {exc.strerror}") from None
    if len(head) < jr.SEGMENT_HEADER_BYTES:
        return
    magic, version = _SEGMENT_PREFIX.unpack_from(head)
    intact = crc32c.crc32c(head[:-4]) == struct.unpack_from("<I", head, len(head) - 4)[0]
    if intact and magic == jr.SEGMENT_MAGIC and version != jr.FORMAT_VERSION:
        raise DataError(
            f"{segment}: unsupported log format version {version} "
            f"(this tool reads version {jr.FORMAT_VERSION})"
        )


def describe_corruption(exc: jr.LogCorruptError) -> str:
    """One line for a damaged log (the journal's message names segment, offset and seq)."""
    if isinstance(exc, jr.MarketMismatchError):
        return f"{exc.segment}: the log belongs to another market definition than market.json"
    return (
        f"damaged log: segment {exc.segment}, byte offset {exc.offset}, seq {exc.seq}: {exc.what}"
    )


class LogReader:
    """The complete batches of a data directory's log, from the batch holding ``from_seq``.

    Parameters
    ----------
    data : DataDir
        The opened data directory.
    from_seq : int
        First seq of interest; iteration starts with the batch that holds it.
    progress : Progress, optional
        Updated with the bytes read so far.
    prefetch : bool
        Read and check the log on a background thread, up to :data:`PREFETCH_CHUNKS` chunks
        of batches ahead of the consumer (the checks hash in C with the GIL released, so they
        overlap with the engine's work).

    Raises
    ------
    DataError
        (while iterating) damage before the tail of the log, or an I/O error.
    """

    def __init__(
        self,
        data: DataDir,
        from_seq: int = 1,
        progress: Progress | None = None,
        prefetch: bool = True,
    ) -> None:
        self.data, self.from_seq, self.progress = data, from_seq, progress
        self.prefetch = prefetch
        self._walk = jr.LogWalk(data.log_dir, data.market_digest, from_seq, map_segments=True)

    @property
    def tail(self) -> jr.Problem | None:
        """An unfinished batch (or torn record) at the end of the log, once iteration ended."""
        return self._walk.tail

    @property
    def ended(self) -> bool:
        """Whether the walk reached the end of the log (clean, or at an unfinished tail); it
        may run ahead of the consumer (see ``prefetch``)."""
        return self._walk.complete or self._walk.tail is not None

    @property
    def last_seq(self) -> int:
        """Last seq of the complete batches walked so far (of the log, once :attr:`ended`)."""
        cursor = self._walk.cursor
        return cursor.next_seq - 1 if cursor is not None else 0

    @property
    def chain_hash(self) -> bytes:
        """The log's chain value after :attr:`last_seq` (the genesis value before any)."""
        cursor = self._walk.cursor
        return cursor.chain if cursor is not None else jr.GENESIS_CHAIN

    def __iter__(self) -> Iterator[jr.LoggedBatch]:
        bases, total = progress_bases(self.data.log_dir, self.from_seq)
        progress = self.progress
        if progress is not None:
            progress.total = total
        batches = _prefetched(self._checked()) if self.prefetch else self._checked()
        for batch in batches:
            if progress is not None:
                progress.update(bases.get(batch.segment, 0) + batch.offset)
            yield batch

    def _checked(self) -> Iterator[jr.LoggedBatch]:
        try:
            yield from self._walk
        except jr.LogCorruptError as exc:
            missing = isinstance(exc, jr.MissingDataError)
            message = describe_corruption(exc)
            raise LogDamageError(
                message, exc.segment, exc.offset, exc.seq, exc.what, missing
            ) from None
        except OSError as exc:
            raise DataError(f"cannot read the log: {exc}") from None


PREFETCH_CHUNKS = 3
"""Chunks of batches the reader thread may hold ready for the consumer."""
CHUNK_COMMAND_BYTES = 1 << 20
"""A chunk is handed over once its batches hold this many bytes of commands (16 batches of
1,000 commands) ..."""
CHUNK_BATCHES = 64
"""... or this many batches (the module docstring says why batches travel in chunks)."""
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _chunks(source: Iterator[jr.LoggedBatch]) -> Iterator[list[jr.LoggedBatch] | _Failure]:
    """The batches of ``source`` in chunks; a failure comes after the batches before it."""
    chunk: list[jr.LoggedBatch] = []
    size = 0
    while True:
        try:
            batch = next(source)
        except StopIteration:
            break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            if chunk:
                yield chunk
            yield _Failure(exc)
            return
        chunk.append(batch)
        size += batch.commands.nbytes
        if size >= CHUNK_COMMAND_BYTES or len(chunk) >= CHUNK_BATCHES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _prefetched(source: Iterator[jr.LoggedBatch]) -> Iterator[jr.LoggedBatch]:
    """Items of ``source``, produced on a daemon thread and handed over in chunks (up to
    PREFETCH_CHUNKS ahead)."""
    items: queue.Queue = queue.Queue(PREFETCH_CHUNKS)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        for chunk in _chunks(source):
            if not put(chunk):
                return
        put(_END)

    worker = threading.Thread(target=produce, name="replay-log-reader", daemon=True)
    worker.start()
    try:
        while (item := items.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield from item
    finally:
        stop.set()
        worker.join()


def progress_bases(log_dir: Path, from_seq: int = 1) -> tuple[dict[str, int], int]:
    """For a progress bar over a read starting at ``from_seq``: the bytes of data before each
    segment read (by path), and the estimated total."""
    paths = _segments(log_dir)
    start = 0
    for i, path in enumerate(paths):
        if int(path.stem) <= from_seq:
            start = i
    bases: dict[str, int] = {}
    total = 0
    for i in range(start, len(paths)):
        bases[str(paths[i])] = total
        total += data_end_estimate(paths[i]) if i == len(paths) - 1 else _size(paths[i])
    return bases, total


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def data_end_estimate(path: Path) -> int:
    """Estimated end of the data in a preallocated segment (see the module docstring)."""
    block = jr.RECORD_ALIGN_BYTES
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        size = os.fstat(fd).st_size
        low, high = jr.SEGMENT_HEADER_BYTES // block, size // block  # block index range
        while low < high:
            middle = (low + high) // 2
            if any(os.pread(fd, block, middle * block)):
                low = middle + 1
            else:
                high = middle
        return low * block
    finally:
        os.close(fd)

"""The file operations the log writer performs, behind one small interface.

Theory of operation
-------------------
:class:`engine.durable.journal.Journal` never calls ``os`` directly to write: it goes through a
:class:`Storage`, so that a test can put a deterministic, seeded faulty one in its place
(``tests/storage_faults.py``: torn, lost and misdirected writes, EIO and ENOSPC on write and
on sync, a crash that drops everything written after the last successful sync).  The real one,
:data:`OS_STORAGE`, is a thin veneer over ``os``: every method is one system call (``pwritev``
is finished with ``pwrite`` after a short write; :meth:`Storage.start_writeback` and
:meth:`Storage.write_back` are Linux's ``sync_file_range``, nothing where it is missing or
refused).  Readers (the log walk, verify, replay) read files directly: what a fault did to the
bytes is what they must find.

The journal calls its storage from a second thread too: the one that prepares its spare
segment (``engine.durable.journal``, "Spare segments").  The real one is safe to share (it
keeps no state but the switch that turns refused hints off); a test's storage that is not -
the seeded faulty one, whose faults must come in one reproducible order - has the journal
prepare its spares on the writer's thread (``SpareSegments.INLINE``) or not at all.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Sequence


def _sync_file_range():
    """libc's ``sync_file_range`` (Linux; None elsewhere): ``os`` has no binding for it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP})
SYNC_FILE_RANGE_WRITE = 2
"""Start writeback of the range's dirty pages; do not wait (``<linux/fs.h>``)."""
_WAIT_BEFORE = 1
"""Wait for the writeback of the range's pages already under way before starting."""
_WAIT_AFTER = 4
"""Wait until the range's pages were written."""


class Storage:
    """The real file system (every method raises ``OSError`` as ``os`` does)."""

    def open(self, path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
        """``os.open``."""
        return os.open(path, flags, mode)

    def close(self, fd: int) -> None:
        """``os.close``."""
        os.close(fd)

    def pwrite(self, fd: int, parts: Sequence, offset: int) -> None:
        """Write the concatenation of ``parts`` at ``offset``, all of it (or raise)."""
        total = sum(memoryview(part).nbytes for part in parts)
        written = os.pwritev(fd, parts, offset)
        if written != total:  # short write: finish it from one contiguous copy
            rest = b"".join(bytes(part) for part in parts)[written:]
            while rest:
                n = os.pwrite(fd, rest, offset + written)
                written += n
                rest = rest[n:]

    def fdatasync(self, fd: int) -> None:
        """``os.fdatasync``: the file's data (and the size) on stable storage."""
        os.fdatasync(fd)

    def start_writeback(self, fd: int) -> None:
        """Start writing the file's dirty pages to the device and return at once (Linux
        ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` over the whole file; nothing where it does
        not exist).  It makes nothing durable - :meth:`fdatasync` still does - but the data's
        transfer then overlaps whatever the caller does before that ``fdatasync``, which
        afterwards only waits for the rest (and the device's cache flush)."""
        global _SYNC_FILE_RANGE
        if _SYNC_FILE_RANGE is not None and _SYNC_FILE_RANGE(fd, 0, 0, SYNC_FILE_RANGE_WRITE):
            error = ctypes.get_errno()
            if error in _UNSUPPORTED:  # a sandbox's or file's refusal of the hint: no more hints
                _SYNC_FILE_RANGE = None
                return
            raise OSError(error, os.strerror(error))  # a write error: the journal stops

    def write_back(self, fd: int, offset: int, nbytes: int, wait: bool = False) -> None:
        """Write ``[offset, offset + nbytes)`` of the file's dirty pages to the device: start
        it and return at once, or with ``wait`` start it and wait until every page of the
        range was written (Linux ``sync_file_range``; nothing where it does not exist).  Like
        :meth:`start_writeback` it makes nothing durable (no metadata, no cache flush); a
        writer that streams a large file uses it to keep only a bounded amount of it dirty
        (the journal's spare segments: ``engine.durable.journal``)."""
        global _SYNC_FILE_RANGE
        flags = SYNC_FILE_RANGE_WRITE | (_WAIT_BEFORE | _WAIT_AFTER if wait else 0)
        if _SYNC_FILE_RANGE is not None and _SYNC_FILE_RANGE(fd, offset, nbytes, flags):
            error = ctypes.get_errno()
            if error in _UNSUPPORTED:
                _SYNC_FILE_RANGE = None
                return
            raise OSError(error, os.strerror(error))

    def fsync(self, fd: int) -> None:
        """``os.fsync``."""
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        """``os.ftruncate``."""
        os.ftruncate(fd, size)

    def size(self, fd: int) -> int:
        """The file's size in bytes."""
        return os.fstat(fd).st_size

    def rename(self, source: str | os.PathLike, target: str | os.PathLike) -> None:
        """``os.rename`` (atomic within a directory)."""
        os.rename(source, target)

    def fsync_dir(self, path: str | os.PathLike) -> None:
        """Make a directory's entries (created, renamed files) durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


OS_STORAGE = Storage()
"""The storage every journal uses unless a test gives it another."""

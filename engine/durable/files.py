"""Durable files: replacing a file's contents so that a crash leaves the old or the new bytes.

Theory of operation
-------------------
A file is never rewritten in place.  :func:`write_atomically` writes the new bytes to a
temporary file beside it (``<name>.tmp``), fsyncs that file, renames it over the old name
(atomic on POSIX) and fsyncs the directory, so that the rename itself survives a power loss.
After a crash the directory holds either the old file or the new one - plus, at worst, an
unfinished ``.tmp`` file that its owner removes on the next start (the sequencer does for its
snapshots).  ``fsync_dir`` is the journal's (``engine.durable.journal``), which makes its new
segments durable the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.durable.journal import fsync_dir

__all__ = ["TEMPORARY_SUFFIX", "fsync_dir", "write_atomically"]

TEMPORARY_SUFFIX = ".tmp"


def write_atomically(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, directory fsync.

    Parameters
    ----------
    path : str or Path
        The file to replace (or create).
    data : bytes
        Its new contents.
    mode : int
        Permission bits of a newly created file (e.g. ``0o600`` for secrets).
    """
    path = Path(path)
    tmp = path.with_name(path.name + TEMPORARY_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(path.parent)

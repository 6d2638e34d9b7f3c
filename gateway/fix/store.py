"""One FIX session's durable state: its sequence numbers and the messages it sent.

Theory of operation
-------------------
A FIX session (a SenderCompID/TargetCompID pair) outlives connections and server restarts: its
MsgSeqNums continue, and a counterparty may ask for any message it missed (ResendRequest).  Each
session has one append-only file, ``<data dir>/fix/<SenderCompID>-<TargetCompID>.fixlog``, of
newline-terminated records:

* ``U <user>`` - the user the session belongs to (written once; another user cannot log on to
  it, so nobody reads another firm's resends);
* ``O <message>`` - an application message sent, verbatim (its MsgSeqNum is inside): a resend
  sends it again with PossDupFlag=Y;
* ``A <seq>`` - an administrative message sent as ``seq`` (resent as SequenceReset-GapFill);
* ``I <seq>`` - every inbound message up to ``seq`` has been processed;
* ``E <seq>`` - the session's reports of every exchange event up to log seq ``seq`` have been
  generated (the ``O`` records before it): a Logon regenerates those of the events after it
  from the exchange's log (:attr:`FixStore.generated`).  The ``E`` record is written with the
  next records that are written anyway, and when the store is closed; if a crash loses it,
  the reports recorded after the last ``E`` say how far generation had got
  (:attr:`FixStore.last_report`), so no report is generated twice.

Records are buffered while a turn of the event loop builds output and written, and fsynced
when the exchange syncs its own log, *before* the output goes to the socket (:meth:`flush`):
a message the counterparty has seen is always on disk.  Under the exchange's ``interval``
policy the records are written before the output goes out (a process crash loses none) and
synced (:meth:`flush`, :meth:`sync`, :meth:`close`) only at moments when every batch of the
log is on stable storage - with output made while it is, after the gateway's batches, its
interval timer and as it stops - so that a sync never makes a message durable ahead of the
batch it describes; the operating system's own writeback may still, which a power loss under
``interval`` may show as a store ahead of the log.  On opening, a torn last record is
ignored.  A Logon with ResetSeqNumFlag=Y starts the file again (``write_atomically``).
Messages never contain a newline (the codec replaces it), so a record is one line.  A write
that fails (a full disk) is logged and its records stay buffered for the next flush: the
session goes on, and resends are served from the buffer meanwhile.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engine.durable.files import write_atomically

log = logging.getLogger("gateway.fix")


class FixStore:
    """Sequence numbers and sent messages of one FIX session (see the module docstring).

    Parameters
    ----------
    path : Path
        The session's file (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.user = ""
        self.next_in = 1
        self.next_out = 1
        self._offsets: dict[int, tuple[int, int]] = {}
        self._pending = bytearray()
        self._persisted_in = 1
        self.generated = -1
        """Log seq up to which this session's reports were generated (-1: not yet, a new
        session: it starts at the log's end)."""
        self._persisted_generated = -1
        self.last_report = (0, 0, 0)
        """The greatest ``(seq, index, leg)`` ExecID recorded after the last ``E`` record."""
        self._fd = -1
        self._size = 0
        self._synced = 0
        """Bytes of the file known to be on stable storage."""
        self._load()

    def _load(self) -> None:
        data = self.path.read_bytes() if self.path.exists() else b""
        end = data.rfind(b"\n") + 1  # a torn last record is ignored (and overwritten)
        position, tail = 0, []
        while position < end:
            line_end = data.index(b"\n", position)
            kind, value = data[position : position + 1], data[position + 2 : line_end]
            if kind == b"O":
                seq = _seq_of(value)
                self._offsets[seq] = (position + 2, line_end - position - 2)
                self.next_out = max(self.next_out, seq + 1)
                tail.append(value)
            elif kind == b"E":
                self.generated, tail = int(value), []
            elif kind == b"A":
                self.next_out = max(self.next_out, int(value) + 1)
            elif kind == b"I":
                self.next_in = max(self.next_in, int(value) + 1)
            elif kind == b"U":
                self.user = value.decode("utf-8")
            position = line_end + 1
        self._persisted_in = self.next_in
        self._persisted_generated = self.generated
        self.last_report = max((_exec_id_of(raw) for raw in tail), default=(0, 0, 0))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, end)
        self._size = self._synced = end

    # -- records -------------------------------------------------------------------------------
    def bind(self, user: str) -> None:
        """Record the session's user (once)."""
        if not self.user:
            self.user = user
            self._pending += b"U " + user.encode("utf-8") + b"\n"

    def sent_app(self, seq: int, raw: bytes) -> None:
        """An application message was queued as ``seq`` (kept for resends)."""
        assert seq == self.next_out and b"\n" not in raw, "messages are stored in order, one line"
        offset = self._size + len(self._pending) + 2
        self._pending += b"O " + raw + b"\n"
        self._offsets[seq] = (offset, len(raw))
        self.next_out = seq + 1

    def sent_admin(self, seq: int) -> None:
        """An administrative message was queued as ``seq`` (a resend gap-fills it)."""
        assert seq == self.next_out, "sequence numbers are used in order"
        self._pending += b"A %d\n" % seq
        self.next_out = seq + 1

    def received(self, seq: int) -> None:
        """Inbound ``seq`` was processed: the next one expected is ``seq + 1``."""
        self.next_in = seq + 1

    def set_next_in(self, seq: int) -> None:
        """SequenceReset: the next inbound message expected is ``seq``."""
        self.next_in = seq

    def stored(self, seq: int) -> bytes | None:
        """The application message sent as ``seq`` (None: an administrative one, or none)."""
        place = self._offsets.get(seq)
        if place is None:
            return None
        offset, length = place
        if offset >= self._size:  # still in the buffer
            start = offset - self._size
            return bytes(self._pending[start : start + length])
        return os.pread(self._fd, length, offset)

    # -- durability ----------------------------------------------------------------------------
    def flush(self, sync: bool) -> None:
        """Write the buffered records (and the inbound position); fsync them if ``sync``."""
        if self.next_in != self._persisted_in:
            self._pending += b"I %d\n" % (self.next_in - 1)
            self._persisted_in = self.next_in
        if not self._pending:
            return
        if self.generated != self._persisted_generated:
            self._pending += b"E %d\n" % self.generated
            self._persisted_generated = self.generated
        data = bytes(self._pending)
        try:
            written = 0
            while written < len(data):
                written += os.pwrite(self._fd, data[written:], self._size + written)
            if sync:
                os.fdatasync(self._fd)
                self._synced = self._size + len(data)
        except OSError as exc:  # a full disk: keep the records, write them at the next flush
            log.error(
                "FIX session store %s not written (kept for the next try): %s", self.path, exc
            )
            return
        del self._pending[: len(data)]
        self._size += len(data)

    @property
    def unsynced(self) -> int:
        """Bytes written to the file and not yet known to be on stable storage."""
        return self._size - self._synced

    def sync(self) -> None:
        """``fdatasync`` what :meth:`flush` wrote without a sync (the ``interval`` policy); a
        failure is logged and tried again at the next call."""
        if self._fd < 0 or self._synced >= self._size:
            return
        size = self._size
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            log.error("FIX session store %s not synced (tried again later): %s", self.path, exc)
            return
        self._synced = size

    def reset(self, user: str) -> None:
        """Start the session again at MsgSeqNum 1 both ways (ResetSeqNumFlag=Y); how far its
        reports were generated is kept (a reset renumbers messages, it forgets no report)."""
        self.close()
        generated = b"E %d\n" % self.generated if self.generated >= 0 else b""
        write_atomically(self.path, b"U " + user.encode("utf-8") + b"\n" + generated)
        self.user, self.next_in, self.next_out = "", 1, 1
        self._offsets.clear()
        self._pending.clear()
        self._load()

    def close(self, sync: bool = False) -> None:
        """Write what is buffered and close the file; ``sync``: :meth:`sync` it first (the
        caller knows the log is durable to its end)."""
        if self._fd >= 0:
            if self.generated != self._persisted_generated:
                self._pending += b"E %d\n" % self.generated
                self._persisted_generated = self.generated
            self.flush(sync=False)
            if sync:
                self.sync()
            os.close(self._fd)
            self._fd = -1


def _exec_id_of(raw: bytes) -> tuple[int, int, int]:
    """The ``(seq, index, leg)`` of an event's report (ExecID 17 = ``seq-index-leg``, or
    ``seq-index`` for a block offer's report); (0, 0, 0) for any other message."""
    start = raw.find(b"\x0117=")
    if start < 0:
        return (0, 0, 0)
    value = raw[start + 4 : raw.index(b"\x01", start + 4)].split(b"-")
    if not all(part.isdigit() for part in value) or len(value) not in (2, 3):
        return (0, 0, 0)
    seq, index, leg = (int(part) for part in (*value, b"0")[:3])
    return (seq, index, leg)


def _seq_of(raw: bytes) -> int:
    start = raw.index(b"\x0134=") + 4
    return int(raw[start : raw.index(b"\x01", start)])

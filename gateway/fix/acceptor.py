"""The FIX acceptor: the glue between the asyncio gateway and its FIX sessions.

Theory of operation
-------------------
:class:`FixAcceptor` is what FIX sessions share, owned by the :class:`~gateway.server.Gateway`
when it serves a FIX port: the acceptor's CompID, the directory of session stores
(``<data dir>/fix``), which FIX session (SenderCompID-TargetCompID) is logged on where (one
connection each), the wall clock for SendingTime, and the :class:`~gateway.fix.orders.
OrderLedger` with each durable batch's per-event order figures, and every instrument's market
status (``status.StatusBoard``).  After every durable batch the server calls
:meth:`FixAcceptor.batch_committed`: the ledger and the board take the batch's events, then
every FIX session translates the reports the core just routed to it, while the figures of that
batch are at hand, notes that its reports are generated up to the batch's last seq (the
session store's mark for reports missed while logged out) and reports the market status
changes.

:class:`FixConnection` is the server's :class:`~gateway.server.Connection` with a
:class:`~gateway.fix.session.FixSession` instead of a native session; everything else about
the transport (backpressure, slow-consumer limit, logon threads, group commit, the per-turn
budget and the read pause of ``gateway.server``) is shared.  It also tells its session when
the socket's buffer fills and drains: a ResendRequest is answered a turn's budget at a time,
and waits while the socket is full (as a native replay waits for the socket to drain).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import msgspec
import numpy as np

from engine.core.records import E_SEQ, EVENT_FIELDS
from engine.durable.journal import Durability
from gateway import protocol as p
from gateway import resend
from gateway.fix.orders import OrderLedger
from gateway.fix.session import FixSession
from gateway.fix.status import StatusBoard
from gateway.fix.store import FixStore
from gateway.orders import Annotation
from gateway.server import Connection

COMP_ID = "CETS"
"""The acceptor's SenderCompID (the peers' TargetCompID)."""
REQUEST_ID_BASE = 1 << 52
"""FIX sessions' native request ids start here (apart from native clients' own counters)."""


class FixConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The FIX port's settings (the host is the gateway's)."""

    port: int = 0
    """0 picks a free port (see ``Gateway.fix_port``)."""
    comp_id: str = COMP_ID


class FixAcceptor:
    """State the FIX sessions of one gateway share (see the module docstring).

    Parameters
    ----------
    exchange : Sequencer
        The gateway's exchange: its data directory, durability, market and log.
    config : FixConfig
    """

    def __init__(self, exchange, config: FixConfig) -> None:
        self.config = config
        self.exchange = exchange
        self.comp_id = config.comp_id
        self.directory = Path(exchange.data_dir) / "fix"
        self.sync = exchange.journal.durability is Durability.BATCH
        """Sync a session's store with each batch's output (``batch``; under ``interval`` the
        gateway calls :meth:`sync_stores` once the log is synced)."""
        self.instruments = list(exchange.market.instruments)
        self.ledger = OrderLedger.recover(exchange)
        self.board = StatusBoard(exchange)
        self.figures: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        self.sessions: set[FixSession] = set()
        self.active: dict[str, FixSession] = {}
        self.clock = time.time_ns
        """Wall clock for SendingTime (nanoseconds since the epoch)."""
        self._request_ids = itertools.count(REQUEST_ID_BASE)

    def stores_may_sync(self) -> bool:
        """May the session stores be synced now: every batch they can describe is durable in
        the log (``Sequencer.log_durable_to_end``), never under ``none``."""
        return self.exchange.journal.durability is not Durability.NONE and (
            self.exchange.log_durable_to_end
        )

    def sync_stores(self) -> None:
        """Sync what the connected sessions' stores wrote unsynced, if :meth:`stores_may_sync`
        (the gateway calls it after its batches and its ``interval`` timer)."""
        if self.sync or not self.stores_may_sync():  # batch: each output synced its store
            return
        for session in self.active.values():
            store = session.store
            if store is not None and store.unsynced:
                store.sync()

    def next_request_id(self) -> int:
        return next(self._request_ids)

    def new_session(self, core, session_id: int, now: float) -> FixSession:
        """A new FIX connection's session, counted like the core's own (``open_session``)."""
        session = FixSession(core, session_id, now, self)
        core.sessions.add(session)
        self.sessions.add(session)
        if len(core.sessions) > core.config.connections_max:
            session.protocol_error(
                p.ProtocolErrorCode.TOO_MANY_CONNECTIONS,
                f"more than {core.config.connections_max} connections",
            )
        return session

    def claim(self, key: str, session: FixSession) -> bool:
        """Make ``session`` the connection of FIX session ``key`` (False: it has one)."""
        if self.active.setdefault(key, session) is not session:
            return False
        return True

    def open_store(self, key: str) -> FixStore:
        return FixStore(self.directory / f"{key}.fixlog")

    def release(self, session: FixSession) -> None:
        if self.active.get(session.key) is session:
            del self.active[session.key]

    def forget(self, session: FixSession) -> None:
        self.sessions.discard(session)
        self.release(session)

    def batch_committed(self, events: np.ndarray) -> None:
        """A durable batch was routed: update the ledger, let each FIX session translate."""
        rows = events.view(np.int64).reshape(-1, EVENT_FIELDS).tolist()
        self.figures = self.ledger.apply(rows)
        changes = self.board.apply(rows)
        last_seq = self.exchange.last_seq
        for session in self.sessions:
            if session.out:
                session.translate()
            if session.store is not None:
                if session.catching_up is not None:  # its reports are held: see _catch_up
                    session.catching_up.live_seq = last_seq
                else:
                    session.store.generated = last_seq
                if changes:
                    session.market_status(changes)
        self.figures = {}

    def missed_events(self, from_seq: int, end: int) -> list[tuple[list[int], int, Annotation]]:
        """The events of the commands ``from_seq .. end`` (``end``: the log's end now), each
        as (row, index within its command, the command's annotation), regenerated from the
        log (``gateway.resend``: the nearest snapshot and the log after it); and from here
        until :meth:`end_missed`, :attr:`figures` are the order figures as of each of them
        (``OrderLedger.before``: the live ledger is at ``end``).  Synchronous: the loop waits
        while the log is read (the session then makes the reports in slices)."""
        assert end == self.exchange.last_seq, "the ledger is as of the log's end"
        start = resend.starting_point(self.exchange, from_seq)
        events: list[tuple[list[int], int, Annotation]] = []
        seq, index = 0, 0
        slices = resend.event_slices(start, from_seq, end)
        try:
            for rows, first_seq, annotations in slices:
                for row in rows:
                    if row[E_SEQ] != seq:
                        seq, index = row[E_SEQ], 0
                    events.append((row, index, annotations[seq - first_seq]))
                    index += 1
        finally:
            slices.close()
        rows = [row for row, _, _ in events]
        self.figures = self.ledger.before(rows).apply(rows)
        return events

    def end_missed(self) -> None:
        self.figures = {}


class FixConnection(Connection):
    """A FIX client's connection: the server's transport around a :class:`FixSession`."""

    def open_session(self, core, session_id: int, now: float) -> FixSession:
        acceptor = self.gw.fix_acceptor
        assert acceptor is not None, "FIX connections exist only beside an acceptor"
        return acceptor.new_session(core, session_id, now)

    def pause_writing(self) -> None:
        super().pause_writing()
        session = self.session
        assert isinstance(session, FixSession)
        session.output_paused = True

    def resume_writing(self) -> None:
        """The socket drained: a resend that waited for it goes on next turn."""
        super().resume_writing()
        session = self.session
        assert isinstance(session, FixSession)
        if session.output_drained() and not self.closing:
            self.gw._after_io(session)  # defers it: resumed after the others had their turn

    def connection_lost(self, exc: Exception | None) -> None:
        session, acceptor = self.session, self.gw.fix_acceptor
        assert isinstance(session, FixSession) and acceptor is not None
        super().connection_lost(exc)
        session.release()
        acceptor.forget(session)

"""The compiled engine: the embedding API around the kernels of ``engine.core.compiled``.

Theory of operation
-------------------
:class:`CompiledEngine` owns one state array (see ``engine.core.compiled.book`` and ``layout``) and a reusable event
buffer.  Typed commands are turned into scalars and applied by one compiled call each
(:meth:`apply`); record batches go through one compiled loop for the whole batch
(:meth:`apply_records`).  The compiled entry points are resolved once per process: calling a
compiled function's entry point directly skips Numba's per-call type dispatch, which is most
of the cost of a call from Python.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from engine.core import schema as s
from engine.core import snapshot as snap
from engine.core.compiled import book, dispatch, ledger, sessions, state_hash
from engine.core.compiled import layout as k
from engine.core.market import MarketDefinition
from engine.core.records import COMMAND_DTYPE, EVENT_DTYPE, EVENT_FIELDS, INSTRUMENT_UNKNOWN, Codec

_I64 = np.int64
_K_SUBMIT, _K_CANCEL, _K_MODIFY = k.K_SUBMIT, k.K_CANCEL, k.K_MODIFY
_SIDES = {int(member): member for member in s.Side}
_ORDER_TYPES = {int(member): member for member in s.OrderType}
_TIFS = {int(member): member for member in s.TimeInForce}
_STPS = {int(member): member for member in s.StpMode}
_SNAPSHOT_COLUMNS = [k.O_ID, k.O_ACCOUNT, k.O_PRICE, k.O_LEAVES, k.O_TYPE, k.O_TIF, k.O_STP]


def _entry(function, *example_args):
    """The compiled entry point of ``function`` (itself when the JIT is disabled)."""
    overloads = getattr(function, "overloads", None)
    if overloads is None:
        return function
    function(*example_args)
    if len(overloads) != 1:  # pragma: no cover - a second signature would be a bug
        raise RuntimeError(f"{function.__name__} compiled for {len(overloads)} signatures")
    return next(iter(overloads.values())).entry_point


def _grown(out: np.ndarray, rows_used: int, rows: int) -> np.ndarray:
    """A larger event buffer holding the first ``rows_used`` rows of ``out``."""
    grown = np.empty((rows, EVENT_FIELDS), dtype=_I64)
    grown[:rows_used] = out[:rows_used]
    return grown


class CompiledEngine:
    """The matching engine, compiled with Numba.

    Parameters
    ----------
    market:
        The market definition: instruments, their parameters, and the capacities that size
        the preallocated state.

    Notes
    -----
    Building one compiles the batch loop (:meth:`apply_records`) and the depth walk, or loads
    them from Numba's on-disk cache; the one-command API's entry point (:meth:`apply`,
    :meth:`submit`, :meth:`cancel`, :meth:`modify`) on its first call in the process, or at
    start-up with :meth:`compile_one_command`.

    Examples
    --------
    >>> from engine.core import schema as s
    >>> from engine.core.compiled.engine import CompiledEngine
    >>> from engine.markets import national_market
    >>> engine = CompiledEngine(national_market())
    >>> _ = engine.apply(s.OpenAccount(key=1, account=7, kind=s.AccountKind.INVESTOR))
    >>> _ = engine.apply(s.IssueAllowances(key=2, account=7, instrument="CEA-2024", qty_t=1000))
    >>> _ = engine.apply(s.OpenSession(trading_date=20250102))
    >>> engine.apply(s.SubmitOrder(order_id=1, account=7, instrument="CEA-2024",
    ...     side=s.Side.SELL, qty_t=1000, price_ticks=6200))[0].__class__.__name__
    'OrderAccepted'
    """

    def __init__(self, market: MarketDefinition) -> None:
        self.market = market
        self.codec = Codec(market)
        self._index = {symbol: i for i, symbol in enumerate(market.symbols)}
        capacity = market.capacity
        ladder = capacity.max_price_ticks + 1
        words, header = k.state_size(
            len(market.instruments),
            capacity.resting_orders,
            ladder,
            capacity.accounts,
            capacity.registry_keys,
            capacity.block_offers,
            capacity.auctions,
            capacity.auction_bids,
        )
        self._st = np.zeros(words, dtype=_I64)
        for key, value in header.items():
            self._st[key] = value
        self._st[k.M_FREE] = -1
        self._st[k.M_NEXT_TRADE] = 1
        self._st[k.M_REGISTRY] = int(market.registry)
        self._st[k.M_FEE_ACCOUNT] = market.fee_account
        self._st[k.M_BUY_BPS], self._st[k.M_SELL_BPS] = market.fees.buy_bps, market.fees.sell_bps
        self._st[k.M_FIRST_YEAR] = market.compliance.first_year
        self._st[k.M_PENALTY] = market.compliance.penalty_multiple
        self._st[k.M_OFFSET_BPS] = market.compliance.offset_limit_bps
        inst = self._inst()
        for i, ins in enumerate(market.instruments):
            row = inst[i]
            row[k.I_REF] = ins.reference_price_ticks
            row[k.I_TICK], row[k.I_LOT], row[k.I_BAND] = ins.tick_ticks, ins.lot_t, ins.band_bps
            row[k.I_MINQ], row[k.I_MAXQ] = ins.min_qty_t, ins.max_qty_t
            row[k.I_VINTAGE] = ins.vintage or 0
            row[k.I_OFFSET] = int(ins.kind == "offset")
            self._init_modes(i)
            sessions.set_band(self._st, i)  # listing and block bands: the kernel's own rule
        self._out = np.zeros((1024, EVENT_FIELDS), dtype=_I64)
        self._process_batch = _entry(
            dispatch.process_batch, self._st, np.zeros(0, COMMAND_DTYPE), 0, self._out
        )
        # The one-command entry point is compiled (or loaded from the cache) on first use in the
        # process (compile_one_command): the sequencer and the gateway apply records only, and
        # on an empty cache compiling it costs ~1.4 s of their first run.
        self._apply_outcome: Any = CompiledEngine._one_command or self._first_apply_outcome
        self._last_events = 0
        self._price_buffer = np.zeros(64, dtype=_I64)
        self._slot_buffer = np.zeros(64, dtype=_I64)
        self._best_prices = _entry(book.best_prices, self._st, 0, 1, 0, self._price_buffer)

    def compile_one_command(self) -> None:
        """Compile the entry point of the one-command API (:meth:`apply`, :meth:`submit`,
        :meth:`cancel`, :meth:`modify`), or load it from Numba's cache, now rather than on the
        first such call in the process: for a host whose first command must not wait for it
        (about 1.4 s on an empty cache, 0.05 s on a warm one)."""
        entry = CompiledEngine._one_command
        if entry is None:
            # Warm-up: a halt of an unknown instrument, with no room for events: nothing is done.
            warm = (k.K_HALT, 0, 0, 0, 0, 0, 0, 0, INSTRUMENT_UNKNOWN, 0, 0, 0, 0, 0)
            no_room = np.zeros((0, EVENT_FIELDS), dtype=_I64)
            entry = _entry(dispatch.apply_outcome, self._st, no_room, *warm)
            CompiledEngine._one_command = entry  # one per process, like the cache
        self._apply_outcome = entry

    _one_command: Any = None

    def _first_apply_outcome(self, *args: Any) -> Any:
        """:meth:`compile_one_command`, then the call."""
        self.compile_one_command()
        return self._apply_outcome(*args)

    def _init_modes(self, index: int) -> None:
        """The trading-mode columns of instrument ``index`` (docs/TRADING_MODES.md)."""
        ins = self.market.instruments[index]
        row = self._inst()[index]
        masks = self.market.phase_masks(index)
        row[k.I_MODES] = ins.mode_bits
        row[k.I_PHASE_MASKS] = sum(mask << (4 * phase) for phase, mask in enumerate(masks))
        row[k.I_N_PHASES] = len(masks)
        row[k.I_QUOTE_LEVELS] = ins.hit_quote_levels
        row[k.I_BLOCK_MINQ], row[k.I_BLOCK_BAND] = ins.block_min_qty_t, ins.block_band_bps
        row[k.I_AUCTION_MINQ], row[k.I_AUCTION_BAND] = ins.auction_min_qty_t, ins.auction_band_bps

    # -- views ---------------------------------------------------------------------------------
    def _inst(self) -> np.ndarray:
        st = self._st
        offset = st[k.M_OFF_INST]
        return st[offset : offset + st[k.M_N_INST] * k.IF].reshape(-1, k.IF)

    def _orders(self) -> np.ndarray:
        st = self._st
        offset = st[k.M_OFF_ORDERS]
        return st[offset : offset + st[k.M_CAP] * k.OF].reshape(-1, k.OF)

    def _levels(self) -> np.ndarray:
        st = self._st
        offset = st[k.M_OFF_LEVELS]
        size = st[k.M_N_INST] * 2 * st[k.M_LADDER] * k.LF
        return st[offset : offset + size].reshape(-1, k.LF)

    def _grow_out(self) -> None:
        size = max(2 * self._out.shape[0], 2 * self._reserve_rows())
        self._out = np.zeros((size, EVENT_FIELDS), dtype=_I64)

    # -- commands ------------------------------------------------------------------------------
    def apply(self, c: s.Command) -> list[s.Event]:
        """Apply one typed command; return the events it produced, in order."""
        # the compiled entry point is called directly (no Python helper in between): this
        # path is the typed API's whole cost besides decoding the events
        if isinstance(c, s.SubmitOrder):
            index = self._index.get(c.instrument, INSTRUMENT_UNKNOWN)
            n = self._apply_outcome(
                self._st,
                self._out,
                1,
                c.seq,
                c.ts_ns,
                c.order_id,
                c.price_ticks,
                c.qty_t,
                c.quote_order_id,
                c.account,
                index,
                c.side,
                c.order_type,
                c.tif,
                c.stp,
                0,
            )[0]
            if n == 1:
                return [self.codec.event(self._out[0].tolist())]
        elif isinstance(c, s.ModifyOrder):
            n = self._apply_outcome(
                self._st,
                self._out,
                3,
                c.seq,
                c.ts_ns,
                c.order_id,
                c.price_ticks,
                c.qty_t,
                0,
                c.account,
                0,
                0,
                0,
                0,
                0,
                0,
            )[0]
        elif isinstance(c, s.CancelOrder):
            n = self._apply_outcome(
                self._st,
                self._out,
                2,
                c.seq,
                c.ts_ns,
                c.order_id,
                0,
                0,
                0,
                c.account,
                0,
                0,
                0,
                0,
                0,
                0,
            )[0]
        else:
            n = -1
        if n < 0:
            args = self.codec.command_tuple(c)
            args = (args[8], *args[0:8], *args[9:13], args[14])
            n = self._apply_outcome(self._st, self._out, *args)[0]
            while n < 0:
                self._grow_out()
                n = self._apply_outcome(self._st, self._out, *args)[0]
        return self.codec.events(self._out[:n].tolist())

    # -- lean calls: one order command, a tuple of ints back ------------------------------------
    def instrument_index(self, symbol: str) -> int:
        """The index the lean calls take for ``symbol`` (-2 for a symbol the market lacks)."""
        return self._index.get(symbol, INSTRUMENT_UNKNOWN)

    def _grown_outcome(self, *args: int) -> tuple[int, int, int, int]:
        """A lean call whose events did not fit the buffer (nothing was applied): grow, redo."""
        outcome = (-1, 0, 0, 0)
        while outcome[0] < 0:
            self._grow_out()
            outcome = self._apply_outcome(self._st, self._out, *args)
        self._last_events = outcome[0]
        return outcome

    def submit(
        self,
        order_id: int,
        account: int,
        instrument: int,
        side: int,
        qty_t: int,
        price_ticks: int,
        order_type: int = k.LIMIT,
        tif: int = k.GTC,
        stp: int = k.STP_INCOMING,
        quote_order_id: int = 0,
        seq: int = 0,
        ts_ns: int = 0,
    ) -> tuple[int, int, int, int]:
        """Submit an order without building typed objects: the lean twin of
        ``apply(SubmitOrder(...))``, with the same rules and the same events.

        Parameters
        ----------
        instrument:
            The instrument's index (:meth:`instrument_index`), not its symbol.
        side, order_type, tif, stp:
            The codes of ``Side``, ``OrderType``, ``TimeInForce``, ``StpMode`` (IntEnums pass).

        Returns
        -------
        tuple of int
            ``(events, reason, filled_t, resting_t)``: the number of events the command
            produced, the ``RejectReason`` code (0: accepted), the quantity traded, and the
            quantity left resting on the book.  The events themselves are
            :meth:`last_events` (or :meth:`last_event_rows`) until the next call.
        """
        args = (_K_SUBMIT, seq, ts_ns, order_id, price_ticks, qty_t, quote_order_id, account,
                instrument, side, order_type, tif, stp, 0)  # fmt: skip
        outcome = self._apply_outcome(self._st, self._out, *args)
        if outcome[0] < 0:
            return self._grown_outcome(*args)
        self._last_events = outcome[0]
        return outcome

    def cancel(
        self, order_id: int, account: int, seq: int = 0, ts_ns: int = 0
    ) -> tuple[int, int, int, int]:
        """Cancel a resting order (the lean ``apply(CancelOrder(...))``); returns
        ``(events, reason, 0, 0)`` (reason 0: cancelled)."""
        args = (_K_CANCEL, seq, ts_ns, order_id, 0, 0, 0, account, 0, 0, 0, 0, 0, 0)
        outcome = self._apply_outcome(self._st, self._out, *args)
        if outcome[0] < 0:
            return self._grown_outcome(*args)
        self._last_events = outcome[0]
        return outcome

    def modify(
        self, order_id: int, account: int, qty_t: int, price_ticks: int, seq: int = 0,
        ts_ns: int = 0,
    ) -> tuple[int, int, int, int]:  # fmt: skip
        """Modify a resting order (the lean ``apply(ModifyOrder(...))``); returns
        ``(events, reason, filled_t, resting_t)`` as :meth:`submit` does."""
        args = (_K_MODIFY, seq, ts_ns, order_id, price_ticks, qty_t, 0, account, 0, 0, 0, 0, 0, 0)
        outcome = self._apply_outcome(self._st, self._out, *args)
        if outcome[0] < 0:
            return self._grown_outcome(*args)
        self._last_events = outcome[0]
        return outcome

    def last_event_rows(self) -> np.ndarray:
        """The event records of the last lean call (a view, valid until the next call)."""
        return self._out[: self._last_events].view(EVENT_DTYPE).reshape(-1)

    def last_events(self) -> list[s.Event]:
        """The typed events of the last lean call, decoded when asked for."""
        return self.codec.events(self._out[: self._last_events].tolist())

    def apply_all(self, commands) -> list[s.Event]:
        """Apply typed commands one after another; return all their events."""
        events: list[s.Event] = []
        for command in commands:
            events.extend(self.apply(command))
        return events

    def reserve_events(self, rows: int) -> None:
        """Preallocate (and touch) room for ``rows`` events, e.g. before a timed run."""
        if self._out.shape[0] < rows:
            self._out = np.zeros((rows, EVENT_FIELDS), dtype=_I64)
        self._out[:rows].fill(0)

    def apply_records(
        self, records: np.ndarray, *, copy: bool = True, release_gil: bool = False
    ) -> np.ndarray:
        """Apply a batch of :data:`COMMAND_DTYPE` records in one compiled loop.

        Returns the events as an array of :data:`EVENT_DTYPE`.  With ``copy=False`` the
        result is a view of the engine's reusable event buffer, valid until the next call.
        With ``release_gil=True`` the compiled loop runs with the GIL released (other Python
        threads run meanwhile; see :meth:`append_records`).
        """
        entry = self._released_entry() if release_gil else self._process_batch
        self._out, written = self._run_batch(entry, records, self._out, 0)
        events = self._out[:written]
        if copy:
            events = events.copy()
        return events.view(EVENT_DTYPE).reshape(-1)

    def append_records(
        self, records: np.ndarray, events: np.ndarray, at: int
    ) -> tuple[np.ndarray, int]:
        """Apply a batch like :meth:`apply_records`, with the GIL released, writing its events
        into the caller's buffer from row ``at`` on.

        Parameters
        ----------
        records : np.ndarray
            :data:`COMMAND_DTYPE` records.
        events : np.ndarray
            C-contiguous int64 rows of :data:`EVENT_FIELDS` columns; rows before ``at`` are
            kept.
        at : int
            First row to write.

        Returns
        -------
        tuple of (np.ndarray, int)
            The buffer holding the events (``events``, or a larger copy of it when it had no
            room) and the row after the batch's last event.
        """
        return self._run_batch(self._released_entry(), records, events, at)

    def _released_entry(self):
        """``dispatch.process_batch_released``, compiled (or loaded from the cache) on first
        use with the argument types of ``process_batch``."""
        entry = self._process_batch_released
        if entry is None:
            example = (self._st, np.zeros(0, COMMAND_DTYPE), 0, self._out)
            entry = _entry(dispatch.process_batch_released, *example)
            CompiledEngine._process_batch_released = entry  # one per process, like the cache
        return entry

    _process_batch_released: Any = None

    def _run_batch(self, entry, records: np.ndarray, out: np.ndarray, written: int):
        """Run ``entry`` (a ``process_batch``) over all of ``records``, its events written to
        ``out`` from row ``written``; ``out`` is replaced by a larger copy whenever the kernel
        asks for room.  Returns ``(out, end row)``."""
        if records.dtype != COMMAND_DTYPE:
            raise TypeError(f"records must have COMMAND_DTYPE, not {records.dtype}")
        records = np.ascontiguousarray(records)
        total = records.shape[0]
        start = 0
        while start < total:
            need = written + 2 * (total - start) + self._reserve_rows()
            if out.shape[0] < need:
                out = _grown(out, written, max(need, 2 * out.shape[0]))
            before = start
            start, n = entry(self._st, records, start, out[written:])
            written += n
            if start == before:  # defensive: never spin if the kernel asks for more room
                out = _grown(out, written, 2 * out.shape[0] + self._reserve_rows())
        return out, written

    def _reserve_rows(self) -> int:
        """Free event rows the kernel insists on before a command (see ``dispatch.has_room``)."""
        st = self._st
        reserve = int(st[k.M_LIVE] + 2 * st[k.M_N_INST]) + k.EVENTS_RESERVE
        reserve += int(st[k.M_BLOCK_LIVE] + st[k.M_BIDS_LIVE])
        if st[k.M_REGISTRY]:
            reserve += int(st[k.M_N_ACCOUNTS])
        return reserve

    # -- queries -------------------------------------------------------------------------------
    def _require(self, symbol: str) -> int:
        index = self._index.get(symbol, -1)
        if index < 0:
            raise KeyError(f"unknown instrument {symbol!r}")
        return index

    def best_bid(self, symbol: str) -> int | None:
        """Best bid price in ticks, or None when no bid rests."""
        price = int(self._inst()[self._require(symbol), k.I_BID])
        return price or None

    def best_ask(self, symbol: str) -> int | None:
        """Best ask price in ticks, or None when no ask rests."""
        price = int(self._inst()[self._require(symbol), k.I_ASK])
        return price or None

    def _level_row(self, index: int, side: int, price: int) -> int:
        return (index * 2 + side - 1) * int(self._st[k.M_LADDER]) + price

    def depth_at(self, symbol: str, side: int, price_ticks: int) -> tuple[int, int]:
        """(total open quantity, number of orders) resting at one price."""
        index = self._require(symbol)
        if not 0 < price_ticks < int(self._st[k.M_LADDER]):
            return (0, 0)
        row = self._levels()[self._level_row(index, side, price_ticks)]
        return (int(row[k.L_QTY]), int(row[k.L_COUNT]))

    def _prices(self, index: int, side: int, limit: int | None = None) -> list[int]:
        """Non-empty prices of one side, best first (at most ``limit``).

        Walked from the best price by a compiled helper that skips empty runs of 64 and 4,096
        prices, so the cost is proportional to the levels returned, not to the ladder's size
        (100,001 ticks a side: a full scan cost ~70 us per call, and a client can ask for a
        snapshot or quotes tens of thousands of times a second)."""
        ladder = int(self._st[k.M_LADDER])  # more levels than prices there are not
        limit = ladder if limit is None else max(0, min(limit, ladder))
        out = self._price_buffer
        if len(out) < limit:
            out = self._price_buffer = np.empty(limit, dtype=_I64)
        count = self._best_prices(self._st, index, side, limit, out)
        return out[:count].tolist()

    def depth(self, symbol: str, levels: int | None = 5) -> s.Depth:
        """Aggregated depth: the best ``levels`` price levels of each side (None: all)."""
        index = self._require(symbol)
        level_table = self._levels()
        sides = []
        for side in (s.Side.BUY, s.Side.SELL):
            prices = self._prices(index, side, levels)
            rows = level_table[self._level_row(index, side, 0) + np.array(prices, dtype=_I64)]
            totals = rows[:, [k.L_QTY, k.L_COUNT]].tolist()
            sides.append([s.DepthLevel(p, q, n) for p, (q, n) in zip(prices, totals)])
        return s.Depth(symbol, sides[0], sides[1])

    def _resting(self, slot: int) -> s.RestingOrder:
        row = self._orders()[slot].tolist()
        return s.RestingOrder(
            order_id=row[k.O_ID],
            account=row[k.O_ACCOUNT],
            instrument=self.codec.symbol(row[k.O_INST]),
            side=s.Side(row[k.O_SIDE]),
            price_ticks=row[k.O_PRICE],
            qty_t=row[k.O_LEAVES],
            order_type=s.OrderType(row[k.O_TYPE]),
            tif=s.TimeInForce(row[k.O_TIF]),
            stp=s.StpMode(row[k.O_STP]),
        )

    def orders(self, symbol: str, side: int, levels: int | None = None) -> list[s.RestingOrder]:
        """Every resting order of one side, in priority order (best price, then oldest); with
        ``levels``, only those of the best ``levels`` price levels."""
        index = self._require(symbol)
        symbol = self.codec.symbol(index)
        sides, types, tifs, stps = _SIDES, _ORDER_TYPES, _TIFS, _STPS
        return [  # the rows read at once, the enums looked up (a call each costs ~0.3 us)
            s.RestingOrder(
                row[k.O_ID],
                row[k.O_ACCOUNT],
                symbol,
                sides[row[k.O_SIDE]],
                row[k.O_PRICE],
                row[k.O_LEAVES],
                types[row[k.O_TYPE]],
                tifs[row[k.O_TIF]],
                stps[row[k.O_STP]],
            )
            for row in self._orders()[self._side_slots(index, side, levels)].tolist()
        ]

    def _side_slots(self, index: int, side: int, levels: int | None = None) -> np.ndarray:
        """The slots of one side's resting orders in priority order (``book.side_slots``: one
        compiled walk; a walk in Python cost ~3 us an order, 0.6 s for a snapshot of 200 k)."""
        limit = int(self._st[k.M_LADDER]) if levels is None else max(0, levels)
        out = self._slot_buffer  # reused: the caller's fancy index copies the rows out
        if len(out) < int(self._st[k.M_LIVE]):
            out = self._slot_buffer = np.empty(2 * int(self._st[k.M_LIVE]), dtype=_I64)
        count = book.side_slots(self._st, index, int(side), limit, out)  # one signature
        if count < 0:  # pragma: no cover - the side holds more orders than are live
            raise RuntimeError("the book's lists hold more orders than the live count")
        return out[:count]

    def order(self, order_id: int) -> s.RestingOrder | None:
        """The resting order with this id, or None."""
        slot = book.hash_find(self._st, order_id)
        return None if slot < 0 else self._resting(int(slot))

    def status(self, symbol: str) -> s.InstrumentStatus:
        """Session state, band, trading phase and the modes usable now (0 unless ``OPEN``)."""
        row = self._inst()[self._require(symbol)].tolist()
        modes = 0
        if row[k.I_STATE] == s.SessionState.OPEN:  # the effective modes: none while not open
            modes = row[k.I_MODES] & (row[k.I_PHASE_MASKS] >> (4 * row[k.I_PHASE])) & 15
        return s.InstrumentStatus(
            symbol,
            s.SessionState(row[k.I_STATE]),
            row[k.I_DATE],
            row[k.I_REF],
            row[k.I_LO],
            row[k.I_HI],
            row[k.I_PHASE],
            modes,
        )

    def _block_table(self) -> np.ndarray:
        return self._table(k.M_OFF_BLOCK, int(self._st[k.M_BLOCK_CAP]), k.BOF)

    def _auction_table(self) -> np.ndarray:
        return self._table(k.M_OFF_AUCTIONS, int(self._st[k.M_AUCTIONS_CAP]), k.AUF)

    def _bid_table(self) -> np.ndarray:
        return self._table(k.M_OFF_BIDS, int(self._st[k.M_BIDS_CAP]), k.BIDF)

    @staticmethod
    def _live_by_id(table: np.ndarray) -> list[list[int]]:
        """The live rows (id != 0) of a slot table, ascending id (column 0)."""
        live = table[table[:, 0] != 0]
        return live[np.argsort(live[:, 0], kind="stable")].tolist()

    def _bids_of(self, auction_id: int) -> list[list[int]]:
        """The auction's bid rows in arrival order."""
        bids = self._bid_table()
        mine = bids[(bids[:, k.BID_ID] != 0) & (bids[:, k.BID_AUCTION] == auction_id)]
        return mine[np.argsort(mine[:, k.BID_ARRIVAL], kind="stable")].tolist()

    def block_offers(self, symbol: str | None = None) -> list[s.BlockOffer]:
        """Live block offers (of one instrument, or of all), ascending offer id."""
        index = None if symbol is None else self._require(symbol)
        return [
            s.BlockOffer(
                o[k.BO_ID],
                o[k.BO_ACCOUNT],
                self.codec.symbol(o[k.BO_INST]),
                s.Side(o[k.BO_SIDE]),
                o[k.BO_PRICE],
                o[k.BO_QTY],
                o[k.BO_COUNTERPARTY],
            )
            for o in self._live_by_id(self._block_table())
            if index is None or o[k.BO_INST] == index
        ]

    def auctions(self) -> list[s.AuctionStatus]:
        """Auctions not yet cleared or cancelled, ascending id (bids are sealed: a count)."""
        return [
            s.AuctionStatus(
                a[k.AU_ID],
                a[k.AU_SELLER],
                self.codec.symbol(a[k.AU_INST]),
                a[k.AU_QTY],
                s.AuctionState(a[k.AU_STATE]),
                a[k.AU_FLOOR],
                a[k.AU_CAP],
                a[k.AU_FLOOR_RULE],
                a[k.AU_CLEARING],
                a[k.AU_START],
                a[k.AU_END],
                a[k.AU_BIDS],
            )
            for a in self._live_by_id(self._auction_table())
        ]

    def _table(self, offset_key: int, rows: int, width: int) -> np.ndarray:
        offset = int(self._st[offset_key])
        return self._st[offset : offset + rows * width].reshape(rows, width)

    def _accounts(self) -> np.ndarray:
        return self._table(k.M_OFF_ACC, int(self._st[k.M_N_ACCOUNTS]), k.AF)

    def _holdings(self) -> np.ndarray:
        """(accounts, instruments, HF) view of every holding."""
        n_acc, n_inst = int(self._st[k.M_N_ACCOUNTS]), int(self._st[k.M_N_INST])
        return self._table(k.M_OFF_HOLD, n_acc * n_inst, k.HF).reshape(n_acc, n_inst, k.HF)

    def account(self, account: int) -> s.AccountStatus | None:
        """Balances of an opened account (registry markets), or None."""
        if not 0 <= account < int(self._st[k.M_N_ACCOUNTS]):
            return None
        row = self._accounts()[account].tolist()
        if not row[k.A_OPEN]:
            return None
        holdings = [
            s.Holding(account, symbol, *self._holdings()[account, i].tolist())
            for i, symbol in enumerate(self.codec.symbols)
        ]
        return s.AccountStatus(
            account,
            s.AccountKind(row[k.A_KIND]),
            s.Sector(row[k.A_SECTOR]),
            row[k.A_PROVINCE],
            bool(row[k.A_FROZEN]),
            row[k.A_CASH],
            row[k.A_CASH_LOCKED],
            holdings,
        )

    def resting_count(self) -> int:
        return int(self._st[k.M_LIVE])

    # -- snapshots -----------------------------------------------------------------------------
    def export_state(self) -> bytes:
        """A logical snapshot (``engine.core.snapshot``), restorable by either engine."""
        inst = self._inst().tolist()
        orders = self._orders()
        instruments = []
        for index, symbol in enumerate(self.codec.symbols):
            row = inst[index]
            sides: list[Any] = [  # the side's orders in priority order, encoded (msgspec.Raw:
                # the encoder writes it as it is, the bytes of list[OrderSnapshot])
                snap.encode_orders(orders[slots][:, _SNAPSHOT_COLUMNS])
                for slots in (self._side_slots(index, side) for side in (s.Side.BUY, s.Side.SELL))
            ]
            instruments.append(
                snap.InstrumentSnapshot(
                    symbol,
                    row[k.I_STATE],
                    row[k.I_DATE],
                    row[k.I_REF],
                    row[k.I_LO],
                    row[k.I_HI],
                    row[k.I_OPEN],
                    row[k.I_HIGH],
                    row[k.I_LOW],
                    row[k.I_VOL],
                    row[k.I_VAL],
                    row[k.I_TRADES],
                    sides[0],
                    sides[1],
                )
            )
        snapshot = snap.EngineSnapshot(
            snap.FORMAT_VERSION,
            self.market.digest(),
            int(self._st[k.M_NEXT_TRADE]),
            instruments,
            **self._export_ledger(),
            modes=self._export_modes(),
        )
        return snap.encode(snapshot)

    @classmethod
    def from_state(cls, market: MarketDefinition, data: bytes) -> CompiledEngine:
        """Restore an engine from :meth:`export_state` output (of either implementation).

        Raises
        ------
        engine.core.snapshot.SnapshotFormatError
            Corrupt or inconsistent snapshot, or one taken of another market definition.
        """
        snapshot = snap.load(data, market)
        engine = cls(market)
        try:
            engine._restore(snapshot)
            engine.check_invariants()
        except (AssertionError, ValueError, KeyError, IndexError) as exc:
            raise snap.SnapshotFormatError(f"inconsistent snapshot: {exc}") from None
        return engine

    def _restore(self, snapshot: snap.EngineSnapshot) -> None:
        self._st[k.M_NEXT_TRADE] = snapshot.next_trade_id
        inst = self._inst()
        for index, saved in enumerate(snapshot.instruments):
            inst[
                index,
                [
                    k.I_STATE,
                    k.I_DATE,
                    k.I_REF,
                    k.I_LO,
                    k.I_HI,
                    k.I_OPEN,
                    k.I_HIGH,
                    k.I_LOW,
                    k.I_VOL,
                    k.I_VAL,
                    k.I_TRADES,
                ],
            ] = [
                saved.state,
                saved.trading_date,
                saved.reference_price_ticks,
                saved.lower_band_ticks,
                saved.upper_band_ticks,
                saved.day_open_ticks,
                saved.day_high_ticks,
                saved.day_low_ticks,
                saved.day_volume_t,
                saved.day_value_fen,
                saved.day_trades,
            ]
            for side, orders in ((s.Side.BUY, saved.bids), (s.Side.SELL, saved.asks)):
                for o in orders:
                    if book.hash_find(self._st, o.order_id) >= 0 or o.order_id <= 0:
                        raise ValueError(f"order id {o.order_id} is invalid or appears twice")
                    if int(self._st[k.M_LIVE]) >= int(self._st[k.M_CAP]):
                        raise ValueError("more resting orders than capacity")
                    if not 0 < o.price_ticks < int(self._st[k.M_LADDER]):
                        raise ValueError(f"order {o.order_id} price outside the ladder")
                    book.restore_order(
                        self._st,
                        o.order_id,
                        o.account,
                        index,
                        side,
                        o.price_ticks,
                        o.qty_t,
                        o.order_type,
                        o.tif,
                        o.stp,
                    )
        self._restore_ledger(snapshot)
        self._restore_modes(snapshot.modes or snap.empty_modes(len(snapshot.instruments)))
        for index in range(len(snapshot.instruments)):  # the block band follows the reference
            row = inst[index]
            row[k.I_BLOCK_LO], row[k.I_BLOCK_HI] = sessions.capped_band(
                self._st, index, int(row[k.I_BLOCK_BAND])
            )

    _MODE_COLUMNS = [
        k.I_PHASE,
        k.I_BLOCK_VOL,
        k.I_BLOCK_VAL,
        k.I_BLOCK_TRADES,
        k.I_AUCTION_VOL,
        k.I_AUCTION_VAL,
        k.I_AUCTION_TRADES,
    ]
    """Instrument columns of ``ModesSnapshot.instruments``, in its order."""

    def _export_modes(self) -> snap.ModesSnapshot:
        figures = self._inst()[:, self._MODE_COLUMNS].tolist()
        offers = [
            snap.BlockOfferSnapshot(*o[: k.BO_COUNTERPARTY + 1])
            for o in self._live_by_id(self._block_table())
        ]
        auctions = [
            snap.AuctionSnapshot(  # type: ignore[call-arg]  # the table row's leading columns
                *a[: k.AU_BIDS],  # type: ignore[arg-type]
                [
                    snap.BidSnapshot(b[k.BID_ID], b[k.BID_ACCOUNT], b[k.BID_PRICE], b[k.BID_QTY])
                    for b in self._bids_of(a[k.AU_ID])
                ],
            )
            for a in self._live_by_id(self._auction_table())
        ]
        return snap.ModesSnapshot([tuple(row) for row in figures], offers, auctions)

    def _restore_modes(self, modes: snap.ModesSnapshot) -> None:
        """Load offers, auctions and figures (snapshot_format.load checked counts, ids and
        codes); bids get arrival numbers 1 … n in the snapshot's order."""
        st = self._st
        self._inst()[:, self._MODE_COLUMNS] = modes.instruments
        blocks, auctions, bids = self._block_table(), self._auction_table(), self._bid_table()
        for row, o in enumerate(modes.block_offers):
            blocks[row, : k.BO_COUNTERPARTY + 1] = [
                o.offer_id,
                o.account,
                o.instrument,
                o.side,
                o.price_ticks,
                o.qty_t,
                o.counterparty,
            ]
        st[k.M_BLOCK_HWM] = st[k.M_BLOCK_LIVE] = len(modes.block_offers)
        arrival = 0
        for row, a in enumerate(modes.auctions):
            auctions[row] = [
                a.auction_id,
                a.seller,
                a.instrument,
                a.qty_t,
                a.state,
                a.floor_price_ticks,
                a.cap_price_ticks,
                a.clearing,
                a.floor_rule,
                a.window_start_ns,
                a.window_end_ns,
                len(a.bids),
            ]
            for b in a.bids:
                bids[arrival] = [
                    b.bid_id,
                    a.auction_id,
                    b.account,
                    b.price_ticks,
                    b.qty_t,
                    arrival + 1,
                ]
                arrival += 1
        st[k.M_AUCTIONS_HWM] = len(modes.auctions)
        st[k.M_BIDS_HWM] = st[k.M_BIDS_LIVE] = arrival
        st[k.M_NEXT_ARRIVAL] = arrival + 1

    def _export_ledger(self) -> dict:
        """The ``ledger`` field of the snapshot (None when the registry is off)."""
        st = self._st
        if not st[k.M_REGISTRY]:
            return {"ledger": None}
        accounts = self._accounts()
        holdings = self._holdings()
        opened = np.flatnonzero(accounts[:, k.A_OPEN]).tolist()
        account_rows = [
            snap.AccountSnapshot(  # type: ignore[call-arg]  # kind, sector, province
                acct,
                *accounts[acct, [k.A_KIND, k.A_SECTOR, k.A_PROVINCE]].tolist(),
                bool(accounts[acct, k.A_FROZEN]),
                int(accounts[acct, k.A_CASH]),
                int(accounts[acct, k.A_CASH_LOCKED]),
                [tuple(h) for h in holdings[acct].tolist()],
            )
            for acct in opened
        ]
        totals = self._inst()[:, [k.I_ISSUED, k.I_CLAWED, k.I_SURRENDERED, k.I_CANCELLED]]
        comp = self._table(k.M_OFF_COMP, k.YEARS * accounts.shape[0], k.CF)
        comp = comp.reshape(k.YEARS, accounts.shape[0], k.CF)
        first_year = int(st[k.M_FIRST_YEAR])
        compliance = [
            snap.ComplianceSnapshot(  # type: ignore[call-arg]  # obligation, surrendered, offsets
                first_year + slot,
                acct,
                *comp[slot, acct, :3].tolist(),
                bool(comp[slot, acct, k.C_REPORTED]),
            )
            for slot, acct in zip(*(axis.tolist() for axis in np.nonzero(comp.any(axis=2))))
        ]
        keys = self._table(k.M_OFF_KEYS, int(st[k.M_KEYS_CAP]), k.KF)
        used = keys[keys[:, k.KEY_KEY] != 0]
        used = used[np.argsort(used[:, k.KEY_KEY], kind="stable")]
        return {
            "ledger": snap.LedgerSnapshot(
                int(st[k.M_DEPOSITED]),
                int(st[k.M_WITHDRAWN]),
                int(st[k.M_CLOSED_YEARS]),
                [tuple(row) for row in totals.tolist()],
                account_rows,
                compliance,
                [snap.KeySnapshot(*row) for row in used.tolist()],
            )
        }

    def _restore_ledger(self, snapshot: snap.EngineSnapshot) -> None:
        saved = snapshot.ledger  # snapshot.load checked it matches the market
        if saved is None:
            return
        st = self._st
        st[k.M_DEPOSITED], st[k.M_WITHDRAWN] = saved.deposited_fen, saved.withdrawn_fen
        st[k.M_CLOSED_YEARS] = saved.closed_years
        self._inst()[:, [k.I_ISSUED, k.I_CLAWED, k.I_SURRENDERED, k.I_CANCELLED]] = saved.totals
        accounts, holdings = self._accounts(), self._holdings()
        for a in saved.accounts:
            accounts[a.account, : k.A_CASH_LOCKED + 1] = [
                1,
                a.kind,
                a.sector,
                a.province,
                int(a.frozen),
                a.cash_available_fen,
                a.cash_locked_fen,
            ]
            holdings[a.account] = a.holdings
        n_acc = accounts.shape[0]
        comp = self._table(k.M_OFF_COMP, k.YEARS * n_acc, k.CF).reshape(k.YEARS, n_acc, k.CF)
        for c in saved.compliance:
            comp[c.year - int(st[k.M_FIRST_YEAR]), c.account] = [
                c.obligation_t,
                c.surrendered_t,
                c.offsets_t,
                int(c.reported),
            ]
        for key in saved.keys:
            ledger.remember(st, key.key, key.seq, key.reason, key.command)

    def check_invariants(self) -> None:
        """Raise AssertionError if the state is inconsistent (``engine.core.compiled.invariants``)."""
        from engine.core.compiled import invariants

        invariants.check_all(self)

    def state_hash(self) -> str:
        """Canonical hash of the books (identical for the reference engine)."""
        words = state_hash.hash_words(self._st).astype("<i8")
        return hashlib.blake2b(words.tobytes(), digest_size=32).hexdigest()

"""Market status on FIX: TradingSessionStatus (h), after Logon, on every change, on request.

Theory of operation
-------------------
The engine keeps, per instrument, a session state (closed, open, halted), the trading date of
the last session opened and the index of its trading phase in the instrument's schedule
(``engine.core.market``); the modes a phase allows are the instrument's modes within the
phase's.  :class:`StatusBoard` holds that status for every instrument as of the last durable
batch: read from the engine once at start-up, then kept current from each batch's events
(SessionOpened, SessionClosed, InstrumentHalted, InstrumentResumed, TradingPhaseChanged), in
event order, so every change is reported - also two within one batch.

Each FIX session is sent one TradingSessionStatus per instrument after its Logon, one for each
change as it becomes durable (unsolicited, 325=Y), and the current ones when it asks with
TradingSessionStatusRequest (g) (325=N, echoing TradSesReqID).  FIX 4.4's TradingSessionStatus
has no instrument; as FIX 5.0 does, this acceptor names it with Symbol (55).  The enumerations
are in ``docs/FIX.md``.
"""

from __future__ import annotations

from engine.core import records as r
from engine.core import schema as s
from gateway.fix.codec import utc_timestamp

STATUS_KINDS = frozenset(
    {r.EV_SESSION_OPENED, r.EV_SESSION_CLOSED, r.EV_HALTED, r.EV_RESUMED, r.EV_PHASE_CHANGED}
)
"""Events that change an instrument's market status."""
TRADING_MODES = 20020
"""Custom tag: the ``TradingMode`` bits usable now (1 continuous, 2 hit-quote, 4 block,
8 auction; 0 unless the session is open)."""
TRADING_PHASE = 20021
"""Custom tag: the index of the trading phase in the instrument's schedule."""
TRAD_SES_STATUS = {
    s.SessionState.HALTED: 1,
    s.SessionState.OPEN: 2,
    s.SessionState.CLOSED: 3,
}
"""SessionState -> TradSesStatus (340): 1 halted, 2 open, 3 closed (6: request rejected)."""
REQUEST_REJECTED = 6


class InstrumentState:
    """One instrument's status as FIX reports it."""

    __slots__ = ("symbol", "state", "trading_date", "phase", "modes", "ts_ns")

    def __init__(self, status: s.InstrumentStatus) -> None:
        self.symbol = status.instrument
        self.state = s.SessionState(status.state)
        self.trading_date = status.trading_date
        self.phase = status.phase
        self.modes = status.modes
        self.ts_ns = 0
        """Time of the event that made this status (0: as found at start-up)."""


class StatusBoard:
    """Every instrument's market status (see the module docstring).

    Parameters
    ----------
    exchange : Sequencer
        Its market (schedules, modes), codec and engine (the status at start-up).
    """

    def __init__(self, exchange) -> None:
        market, self.codec = exchange.market, exchange.codec
        self.states = {
            symbol: InstrumentState(exchange.engine.status(symbol)) for symbol in self.codec.symbols
        }
        self.phase_names = [
            [phase.name for phase in market.phases(index)]
            for index in range(len(market.instruments))
        ]
        self.phase_modes = [
            [instrument.mode_bits & mask for mask in market.phase_masks(index)]
            for index, instrument in enumerate(market.instruments)
        ]
        """Per instrument, per phase: the modes usable in the phase while the session is open."""
        self._index = {symbol: index for index, symbol in enumerate(self.codec.symbols)}

    def apply(self, rows: list) -> list[InstrumentState]:
        """A batch's event rows: the status after each change among them, in order (copies:
        a later change of the same batch does not alter an earlier one's report)."""
        kind_at, kinds, event = r.E_KIND, STATUS_KINDS, self.codec.event
        return [self._change(event(row)) for row in rows if row[kind_at] in kinds]

    def _change(self, event) -> InstrumentState:
        state = self.states[event.instrument]
        kind = type(event)
        if kind is s.SessionOpened:  # a session opens in its first phase
            state.state, state.trading_date, state.phase = (
                s.SessionState.OPEN,
                event.trading_date,
                0,
            )
        elif kind is s.SessionClosed:
            state.state = s.SessionState.CLOSED
        elif kind is s.InstrumentHalted:
            state.state = s.SessionState.HALTED
        elif kind is s.InstrumentResumed:
            state.state = s.SessionState.OPEN
        else:  # TradingPhaseChanged
            state.phase = event.phase
        modes = self.phase_modes[self._index[event.instrument]]
        open_ = state.state is s.SessionState.OPEN and 0 <= state.phase < len(modes)
        state.modes = modes[state.phase] if open_ else 0
        state.ts_ns = event.ts_ns
        copy = InstrumentState.__new__(InstrumentState)
        for name in InstrumentState.__slots__:
            setattr(copy, name, getattr(state, name))
        return copy

    def phase_name(self, state: InstrumentState) -> str:
        names = self.phase_names[self._index[state.symbol]]
        return names[state.phase] if 0 <= state.phase < len(names) else str(state.phase)

    def fields(self, state: InstrumentState, unsolicited: bool, request_id: str = ""):
        """The TradingSessionStatus (h) fields of ``state``."""
        fields: list[tuple[int, object]] = [(335, request_id)] if request_id else []
        fields += [
            (336, state.trading_date),
            (625, self.phase_name(state)),
            (325, "Y" if unsolicited else "N"),
            (340, TRAD_SES_STATUS[state.state]),
            (55, state.symbol),
            (TRADING_PHASE, state.phase),
            (TRADING_MODES, state.modes),
        ]
        if state.ts_ns:
            fields.append((60, utc_timestamp(state.ts_ns)))
        return fields

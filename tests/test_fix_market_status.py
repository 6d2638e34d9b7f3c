"""Market status on FIX: TradingSessionStatus (h) after Logon, on every change of an
instrument's session (opened, phase, halted, resumed, closed), and on request (g).

The market here runs the national market's day schedule (morning, midday, afternoon) on all
three instruments; the operator moves it by hand, natively.
"""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import pytest

from engine.core import schema as s
from engine.core.records import Codec
from engine.core.reference.engine import ReferenceEngine
from engine.markets import national_market
from gateway.client import SyncClient
from gateway.fix.status import StatusBoard
from gateway.server import GatewayConfig
from gateway.service import ServerThread
from tests.gateway_fixtures import DATE1, SYM_A, SYM_B, SYM_C, password, small_market, users
from tests.test_fix_client import FixClient, close_fix_clients, field, kind

__all__ = ["close_fix_clients"]  # the fixture, used by every test here
SYMBOLS = [SYM_A, SYM_B, SYM_C]


@pytest.fixture
def server(tmp_path):
    market = small_market()
    market = msgspec.structs.replace(
        market,
        schedules={"day": national_market().schedules["seee"]},
        instruments=[msgspec.structs.replace(i, schedule="day") for i in market.instruments],
    )
    server = ServerThread(
        tmp_path / "data", users(), GatewayConfig(port=0), market=market, fix_port=0
    ).start()
    yield server
    server.stop()


def status(message) -> tuple:
    """(Symbol, TradSesStatus, TradingSessionID, TradingSessionSubID, phase, modes, unsolicited)."""
    assert kind(message) == "h", message
    return tuple(field(message, tag) for tag in (55, 340, 336, 625, 20021, 20020, 325))


def engine_status(server, symbol: str) -> tuple:
    """The same facts from the engine (``InstrumentStatus``)."""
    state = server.call(lambda: server.gateway.exchange.engine.status(symbol))
    code = {s.SessionState.HALTED: "1", s.SessionState.OPEN: "2", s.SessionState.CLOSED: "3"}
    return (symbol, code[state.state], str(state.trading_date), str(state.phase), str(state.modes))


def changes(fix: FixClient, count: int) -> list:
    return [status(fix.expect("h")) for _ in range(count)]


def test_status_after_logon_and_on_every_change(server) -> None:
    fix = FixClient(server.fix_port, "ALICE")
    fix.logon("alice")
    assert [status(m) for m in fix.statuses] == [
        (symbol, "3", "0", "morning", "0", "0", "Y") for symbol in SYMBOLS
    ]
    with SyncClient("127.0.0.1", server.port, "op", password("op")) as op:
        op.engine(s.OpenSession(trading_date=DATE1))
        opened = changes(fix, 3)
        assert opened == [(sym, "2", str(DATE1), "morning", "0", "3", "Y") for sym in SYMBOLS]
        op.engine(s.SetTradingPhase(phase=1, instrument=SYM_A))
        assert changes(fix, 1) == [(SYM_A, "2", str(DATE1), "midday", "1", "0", "Y")]
        op.engine(s.SetTradingPhase(phase=2, instrument=SYM_A))
        assert changes(fix, 1) == [(SYM_A, "2", str(DATE1), "afternoon", "2", "7", "Y")]
        op.engine(s.HaltInstrument(instrument=SYM_B))
        assert changes(fix, 1) == [(SYM_B, "1", str(DATE1), "morning", "0", "0", "Y")]
        op.engine(s.ResumeInstrument(instrument=SYM_B))
        assert changes(fix, 1) == [(SYM_B, "2", str(DATE1), "morning", "0", "3", "Y")]
        for symbol in SYMBOLS:  # the board agrees with the engine
            fix.send("g", [(335, f"q-{symbol}"), (263, "0"), (55, symbol)])
            answer = fix.expect("h")
            assert field(answer, 335) == f"q-{symbol}" and field(answer, 325) == "N"
            facts = status(answer)
            assert (*facts[:3], *facts[4:6]) == engine_status(server, symbol)
        op.engine(s.CloseSession(trading_date=DATE1))
        closed = changes(fix, 3)
        assert [facts[:3] + facts[5:6] for facts in closed] == [
            (sym, "3", str(DATE1), "0") for sym in SYMBOLS
        ]
    # a later Logon starts with the status as it is now
    fix.send("5", [])
    fix.until_closed()
    again = FixClient(server.fix_port, "ALICE")
    again.seq = fix.seq
    again.logon("alice")
    assert [status(m)[:3] for m in again.statuses] == [(sym, "3", str(DATE1)) for sym in SYMBOLS]


def test_trading_session_status_request(server) -> None:
    fix = FixClient(server.fix_port, "ALICE")
    fix.logon("alice")
    fix.send("g", [(335, "all"), (263, "0")])
    answers = [fix.expect("h") for _ in SYMBOLS]
    assert [(field(m, 335), field(m, 55), field(m, 325)) for m in answers] == [
        ("all", sym, "N") for sym in SYMBOLS
    ]
    fix.send("g", [(335, "nope"), (263, "0"), (55, "NOPE")])
    refused = fix.expect("h")
    assert [field(refused, t) for t in (335, 340, 567)] == ["nope", "6", "99"]
    fix.send("g", [(335, "day"), (263, "0"), (336, "20991231")])
    refused = fix.expect("h")
    assert [field(refused, t) for t in (335, 336, 340, 567)] == ["day", "20991231", "6", "1"]
    fix.send("g", [(335, "bad"), (263, "5")])
    reject = fix.expect("3")
    assert [field(reject, t) for t in (371, 373)] == ["263", "5"]

    # 263=2: no more unsolicited statuses on this connection; 263=1: again
    fix.send("g", [(335, "stop"), (263, "2")])
    with SyncClient("127.0.0.1", server.port, "op", password("op")) as op:
        op.engine(s.OpenSession(trading_date=DATE1))
        fix.send("1", [(112, "after-open")])
        assert field(fix.expect("0"), 112) == "after-open"
        assert not [m for m in fix.inbox if kind(m) == "h"]
        fix.send("g", [(335, "start"), (263, "1"), (55, SYM_C)])
        (answer,) = changes(fix, 1)
        assert answer == (SYM_C, "2", str(DATE1), "morning", "0", "3", "N")
        op.engine(s.HaltInstrument(instrument=SYM_C))
        assert changes(fix, 1) == [(SYM_C, "1", str(DATE1), "morning", "0", "0", "Y")]


def test_every_change_of_one_batch_is_reported_as_it_was() -> None:
    """Several status changes in one batch (the schedule's catch-up sends them together):
    one TradingSessionStatus each, as of its event; the board ends where the engine does."""
    market = small_market()
    market = msgspec.structs.replace(
        market,
        schedules={"day": national_market().schedules["seee"]},
        instruments=[msgspec.structs.replace(i, schedule="day") for i in market.instruments],
    )
    engine, codec = ReferenceEngine(market), Codec(market)
    board = StatusBoard(SimpleNamespace(market=market, codec=codec, engine=engine))
    commands = [
        s.OpenSession(trading_date=DATE1, instrument=SYM_A),
        s.SetTradingPhase(phase=1, instrument=SYM_A),
        s.SetTradingPhase(phase=2, instrument=SYM_A),
        s.HaltInstrument(instrument=SYM_A),
        s.ResumeInstrument(instrument=SYM_A),
        s.OpenSession(trading_date=DATE1, instrument=SYM_C),
        s.CloseSession(trading_date=DATE1, instrument=SYM_C),
    ]
    events = [
        event
        for seq, command in enumerate(commands, 1)
        for event in engine.apply(msgspec.structs.replace(command, seq=seq, ts_ns=seq))
    ]
    changes = board.apply([codec.event_row(event) for event in events])
    assert [(c.symbol, int(c.state), c.phase, c.modes, c.ts_ns) for c in changes] == [
        (SYM_A, 1, 0, 3, 1),
        (SYM_A, 1, 1, 0, 2),
        (SYM_A, 1, 2, 7, 3),
        (SYM_A, 2, 2, 0, 4),
        (SYM_A, 1, 2, 7, 5),
        (SYM_C, 1, 0, 3, 6),
        (SYM_C, 0, 0, 0, 7),
    ]
    for symbol, state in board.states.items():
        now = engine.status(symbol)
        assert (state.state, state.trading_date, state.phase, state.modes) == (
            now.state,
            now.trading_date,
            now.phase,
            now.modes,
        )

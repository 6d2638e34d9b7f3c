"""The lean one-command calls (``CompiledEngine.submit``/``cancel``/``modify``): the same
events as the batch and the typed API, and an outcome tuple that agrees with those events."""

from __future__ import annotations

import numpy as np
import pytest

from bench import workloads
from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from engine.core.records import EV_TRADE, EVENT_FIELDS, K_CANCEL, K_MODIFY, K_SUBMIT


def _lean(engine: CompiledEngine, record: tuple) -> tuple[int, int, int, int] | None:
    seq, ts, oid, price, qty, aux, acct, ins, kind, side, otype, tif, stp = record[:13]
    if kind == K_SUBMIT:
        return engine.submit(oid, acct, ins, side, qty, price, otype, tif, stp, aux, seq, ts)
    if kind == K_CANCEL:
        return engine.cancel(oid, acct, seq, ts)
    if kind == K_MODIFY:
        return engine.modify(oid, acct, qty, price, seq, ts)
    return None


@pytest.mark.parametrize("name", ["liquid", "swing40", "crash"])
def test_lean_calls_match_the_batch_and_their_events(name: str) -> None:
    market, records = workloads.generate(name, 3_000, seed=5)
    expected = CompiledEngine(market).apply_records(records)
    engine = CompiledEngine(market)
    rows = []
    for record in records.tolist():
        outcome = _lean(engine, record)
        if outcome is None:
            rows.append(
                engine.codec.encode_events(engine.apply(engine.codec.decode_command(record)))
            )
            continue
        events, reason, filled, resting = outcome
        got = engine.last_event_rows().copy()
        assert events == len(got) and [type(e) for e in engine.last_events()] == [
            type(e) for e in engine.codec.decode_events(got)
        ]
        trades = got[got["kind"] == EV_TRADE]
        assert filled == int(trades["qty_t"].sum())
        assert reason == (int(got["reason"][0]) if int(got["kind"][0]) in _REJECT_KINDS else 0)
        order = engine.order(record[2])
        assert resting == (order.qty_t if order is not None else 0)
        rows.append(got)
    assert np.array_equal(np.concatenate(rows), expected)


_REJECT_KINDS = {
    int(cls.__struct_config__.tag)  # type: ignore[attr-defined]
    for cls in (s.OrderRejected, s.CancelRejected, s.ModifyRejected)
}


def test_lean_call_grows_a_full_event_buffer() -> None:
    market, records = workloads.generate("liquid", 200, seed=3)
    engine = CompiledEngine(market)
    engine.apply_records(records)
    engine._out = np.zeros((1, EVENT_FIELDS), dtype=np.int64)  # too small for any command
    outcome = engine.submit(10**9, 0, 0, int(s.Side.BUY), 5, 6_000)
    assert outcome[0] >= 1 and engine._out.shape[0] > 1
    assert isinstance(engine.last_events()[0], (s.OrderAccepted, s.OrderRejected))


def test_lean_submit_reports_a_reject_reason() -> None:
    market, _ = workloads.generate("liquid", 10, seed=1)
    engine = CompiledEngine(market)  # no session open: every order is refused
    events, reason, filled, resting = engine.submit(1, 0, 0, int(s.Side.BUY), 5, 6_000)
    assert (events, reason, filled, resting) == (1, int(s.RejectReason.SESSION_CLOSED), 0, 0)
    assert engine.last_events()[0].reason == s.RejectReason.SESSION_CLOSED

"""``bench core``'s peer comparison (``bench.peers``): liquibook on the same commands.

liquibook is an optional extra (``.[peers]``); the tests that drive it are skipped, with the
reason, where it is not installed.  Nothing here asserts a speed.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import core, peers, workloads
from engine.core import schema as s
from engine.core.records import EV_CANCEL_REJECTED, K_CANCEL, K_MODIFY, K_SUBMIT, Codec

needs_liquibook = pytest.mark.skipif(
    peers.available() is not None,
    reason=f"{peers.available()} - the peer comparison needs the optional extra",
)


def _records(market, commands) -> np.ndarray:
    return Codec(market).encode_commands(commands)


def _order(order_id, side, qty_t, price_ticks=0, **fields):
    """An order of account 0 (buys) or 1 (sells): no order meets its own account."""
    return s.SubmitOrder(
        order_id=order_id, account=side - s.Side.BUY, instrument="CEA-2025", side=side,
        qty_t=qty_t, price_ticks=price_ticks, **fields,
    )  # fmt: skip


def _handmade(market) -> np.ndarray:
    """A limit book, an IOC that must not rest, a modify that moves an order (so a later cancel
    must find it at its new price), a market order sweeping three levels and a cancel of a
    filled order."""
    buy, sell, ioc = s.Side.BUY, s.Side.SELL, s.TimeInForce.IOC
    return _records(
        market,
        [
            s.OpenSession(trading_date=20250102),
            _order(1, buy, 10, 6000),
            _order(2, buy, 5, 5990),
            _order(3, sell, 4, 6000, tif=ioc),  # 4 @6000 from order 1
            _order(4, sell, 20, 6050, tif=ioc),  # nothing: must not rest
            _order(5, sell, 7, 6040),
            s.ModifyOrder(order_id=5, account=1, price_ticks=6030, qty_t=9),
            _order(6, buy, 3, 6030),  # 3 @6030 from order 5, at its new price
            s.CancelOrder(order_id=5, account=1),  # found at 6030: nothing of it is left
            _order(7, buy, 10, 6050),  # rests (order 4 must not be there)
            _order(8, sell, 20, order_type=s.OrderType.MARKET, tif=ioc),  # 10, 6, 4
            s.CancelOrder(order_id=1, account=0),  # filled: refused by both
            s.CancelOrder(order_id=2, account=0),  # 1 left: cancelled
            _order(9, sell, 1, 5990),  # rests: order 2 is gone
        ],
    )


@needs_liquibook
def test_liquibook_book_maps_limit_ioc_modify_market_and_cancel() -> None:
    market = workloads.market_for(workloads.WORKLOADS["liquid"])
    cmds = _handmade(market)
    book = peers.LiquibookBook(record=True)
    for call, args in book.calls(cmds):
        call(*args)
    fills = [(6000, 4), (6030, 3), (6050, 10), (6000, 6), (5990, 4)]
    assert book.listener.fills == fills
    assert book.listener.traded_t == peers.traded_t(market, cmds) == 27
    assert peers.trades_agree(market, cmds) == (True, 5)


@needs_liquibook
def test_liquibook_book_refuses_what_it_cannot_do() -> None:
    market = workloads.market_for(workloads.WORKLOADS["liquid"])
    cmds = _records(market, [s.MassCancel(account=1)])
    with pytest.raises(ValueError, match="no counterpart"):
        peers.LiquibookBook().calls(cmds)


@needs_liquibook
@pytest.mark.parametrize("name", list(workloads.WORKLOADS))
def test_liquibook_trades_as_ours_where_comparable(name) -> None:
    """Limit, IOC and market orders and cancels, one account per side: the two books make
    the same trades - every price and quantity, in order - so the same traded quantity."""
    size = 24_000 if name == "deep" else 3_000  # deep's first 20,000 orders only fill its book
    market, cmds = workloads.generate(name, size, 1)
    comparable = peers.comparable_stream(cmds)
    equal, trades = peers.trades_agree(market, comparable)
    assert equal and trades > 0, (name, trades)


@needs_liquibook
def test_bench_core_reports_liquibook_beside_our_paths(capsys) -> None:
    results = core.run(2_000, 1, ["liquid"])
    peer = results[0].peer
    assert peer is not None and peer.calls == 1_999  # the session opening has no counterpart
    assert peer.commands_per_s > 0 and peer.lean_vs_peer > 0 and peer.typed_vs_peer > 0
    assert peer.comparable_trades_equal and peer.comparable_trades > 0
    assert peer.ours_traded_t > 0 and peer.traded_t > 0
    table = core.format_table(results)
    assert "liquibook cannot" in table and f"liquibook {peers.version()}" in table
    for limitation in peers.LIMITATIONS:
        assert limitation in table


def test_bench_core_skips_the_peer_with_its_reason(monkeypatch) -> None:
    monkeypatch.setattr(peers, "available", lambda: "liquibook is not installed (test)")
    results = core.run(500, 1, ["liquid"])
    assert results[0].peer is None and results[0].hashes_equal
    assert "peer comparison skipped: liquibook is not installed (test)" in core.format_table(
        results
    )


def test_comparable_stream_has_no_modifies_and_one_account_per_side() -> None:
    market, cmds = workloads.generate("liquid", 2_000, 1)
    assert np.count_nonzero(cmds["kind"] == K_MODIFY) > 0
    out = peers.comparable_stream(cmds)
    assert np.count_nonzero(out["kind"] == K_MODIFY) == 0
    assert len(out) == np.count_nonzero(cmds["kind"] != K_MODIFY)
    submits = out[out["kind"] == K_SUBMIT]
    assert (submits["account"] == submits["side"] - s.Side.BUY).all()
    side_of = dict(zip(submits["order_id"].tolist(), submits["side"].tolist()))
    cancels = out[out["kind"] == K_CANCEL]
    assert len(cancels) > 0
    assert [a + 1 for a in cancels["account"].tolist()] == [
        side_of[o] for o in cancels["order_id"].tolist()
    ]
    # our engine refuses nothing of it for ownership: every cancel names its order's account
    events = core.CompiledEngine(market).apply_records(out)
    reasons = events["reason"][events["kind"] == EV_CANCEL_REJECTED]
    assert s.RejectReason.NOT_ORDER_OWNER not in reasons.tolist()

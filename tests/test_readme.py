"""The README's code examples run, and say what they claim."""

from __future__ import annotations

import re
from pathlib import Path

from engine.core import schema as s

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_embedding_example_trades_as_commented(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks()
    assert len(blocks) >= 2
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    events = namespace["events"]
    assert [type(e) for e in events] == [s.OrderAccepted, s.TradeExecuted]
    assert (events[1].price_ticks, events[1].qty_t) == (6_200, 2_000)
    buyer = namespace["engine"].account(8)
    assert buyer.holdings[namespace["engine"].codec.symbols.index("CEA-2024")].unsettled_t == 2_000
    exec(compile(blocks[0] + blocks[2], "README.md", "exec"), {})  # noqa: S102
    assert (tmp_path / "cets-data" / "log").is_dir()


def test_trading_modes_example_trades_as_commented() -> None:
    blocks = _python_blocks()
    namespace: dict = {}
    exec(compile(blocks[0] + blocks[1], "README.md", "exec"), namespace)  # noqa: S102
    hit, block, cleared = namespace["hit"], namespace["block"], namespace["cleared"]
    assert [type(e) for e in hit] == [s.OrderAccepted, s.TradeExecuted]
    assert (hit[1].price_ticks, hit[1].qty_t, hit[1].maker_order_id) == (6_200, 1_000, 1)
    assert [type(e) for e in block] == [s.BlockTradeExecuted]
    assert (block[0].qty_t, block[0].price_ticks) == (100_000, 6_300)
    assert [type(e) for e in cleared] == [s.AuctionTrade, s.AuctionCleared]
    assert (cleared[1].sold_t, cleared[1].unsold_t) == (40_000, 60_000)
    namespace["engine"].check_invariants()

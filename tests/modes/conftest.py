"""The trading-mode scenarios' desks (an engine of each kind, opened by ``open_desk``)."""

from __future__ import annotations

import pytest

from tests.modes.desk import Desk, modes_market, open_desk


@pytest.fixture
def desk(engine_cls) -> Desk:
    return open_desk(engine_cls(modes_market()))


@pytest.fixture
def fee_desk(engine_cls) -> Desk:
    """Like ``desk``, with fees of 30 bps (buyer) and 20 bps (seller)."""
    return open_desk(engine_cls(modes_market(buy_bps=30, sell_bps=20)))

"""Both engines implement the one declared interface, ``engine.core.interface.Engine``.

The static half of this check is mypy's (``.ci/run`` type-checks ``engine/``): the annotated
assignments below fail the type check if either class drifts from the Protocol.
"""

from __future__ import annotations

import pytest

from engine.core import schema as s
from engine.core.compiled.engine import CompiledEngine
from engine.core.interface import Engine, EngineFactory
from engine.core.reference.engine import ReferenceEngine
from engine.markets import national_market

FACTORIES: list[EngineFactory] = [CompiledEngine, ReferenceEngine]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_each_engine_is_an_engine(factory: EngineFactory) -> None:
    market = national_market()
    engine: Engine = factory(market)
    assert isinstance(engine, Engine)
    engine.apply(s.OpenSession(trading_date=20250102))
    restored = factory.from_state(market, engine.export_state())
    assert isinstance(restored, Engine)
    assert restored.state_hash() == engine.state_hash()


def test_something_else_is_not_an_engine() -> None:
    """The run-time check can fail: an object missing the interface is refused."""
    assert not isinstance(object(), Engine)
    assert not isinstance(national_market(), Engine)

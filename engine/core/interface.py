"""The interface both engines implement: the compiled one and the plain-Python reference.

One declared seam, as exchange-core's ``IOrderBook`` is for its naive and fast books: the
sequencer, replay, the gateway and the tests hold an :class:`Engine` and never care which one
it is.  The differential tests hold the two implementations to identical events, state hashes,
views and snapshot bytes; ``tests/test_engine_interface.py`` checks both satisfy this Protocol
(structurally, with mypy, and at run time).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, Self, runtime_checkable

import numpy as np

from engine.core import schema as s
from engine.core.market import MarketDefinition
from engine.core.records import Codec


@runtime_checkable
class Engine(Protocol):
    """A deterministic exchange state machine: commands in, events out.

    Attributes
    ----------
    market:
        The market definition the engine was built for.
    codec:
        The typed ⇄ record converter of that market.
    """

    market: MarketDefinition
    codec: Codec

    # -- commands in, events out -----------------------------------------------------------
    def apply(self, c: s.Command) -> list[s.Event]:
        """Apply one typed command; return the events it produced."""
        ...

    def apply_all(self, commands: Iterable[s.Command]) -> list[s.Event]:
        """Apply typed commands in order; return all their events."""
        ...

    def apply_records(self, records: np.ndarray, *, copy: bool = True) -> np.ndarray:
        """Apply a batch of ``COMMAND_DTYPE`` records; return ``EVENT_DTYPE`` records.

        With ``copy=False`` the result may be a view of a buffer the next call reuses.
        """
        ...

    # -- views -----------------------------------------------------------------------------
    def best_bid(self, symbol: str) -> int | None: ...
    def best_ask(self, symbol: str) -> int | None: ...
    def depth_at(self, symbol: str, side: int, price_ticks: int) -> tuple[int, int]: ...
    def depth(self, symbol: str, levels: int = 5) -> s.Depth: ...
    def orders(self, symbol: str, side: int, levels: int | None = None) -> list[s.RestingOrder]: ...
    def order(self, order_id: int) -> s.RestingOrder | None: ...
    def status(self, symbol: str) -> s.InstrumentStatus: ...
    def block_offers(self, symbol: str | None = None) -> list[s.BlockOffer]: ...
    def auctions(self) -> list[s.AuctionStatus]: ...
    def account(self, account: int) -> s.AccountStatus | None: ...
    def resting_count(self) -> int: ...

    # -- state -----------------------------------------------------------------------------
    def state_hash(self) -> str:
        """Canonical hash of the whole state (identical across implementations)."""
        ...

    def export_state(self) -> bytes:
        """A logical snapshot (``engine.core.snapshot``), restorable by either engine."""
        ...

    @classmethod
    def from_state(cls, market: MarketDefinition, data: bytes) -> Self:
        """An engine restored from :meth:`export_state`'s bytes."""
        ...

    def check_invariants(self) -> None:
        """Raise AssertionError if any internal invariant does not hold."""
        ...


class EngineFactory(Protocol):
    """What builds engines: ``factory(market)`` and ``factory.from_state(market, data)``.

    ``CompiledEngine`` and ``ReferenceEngine`` (the classes themselves) are factories.
    """

    def __call__(self, market: MarketDefinition) -> Engine: ...
    def from_state(self, market: MarketDefinition, data: bytes) -> Engine: ...

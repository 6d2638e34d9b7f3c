"""Small fixtures for running a real gateway in tests, demos and benchmarks.

A three-instrument market with small capacities (so an engine costs a few megabytes, not the
national market's hundred), and a user directory with one user per role whose secrets are
hashed cheaply (logons are not what these runs exercise).
"""

from __future__ import annotations

from engine.core.market import Capacity, Instrument, MarketDefinition, validate
from gateway.protocol import Role
from gateway.users import User, UserDirectory, hash_secret

SYM_A, SYM_B, SYM_C = "CEA-A", "CEA-B", "CEA-C"
DATE1, DATE2 = 20250102, 20250103
CHEAP_LOG2_N = 4

PASSWORDS = {
    "op": "operator-secret",
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
    "dave": "dave-secret",
    "viewer": "viewer-secret",
    "reg": "registry-secret",
}
ACCOUNTS = {"alice": [1], "bob": [2], "carol": [3, 4], "dave": [5]}


def small_market(resting_orders: int = 20_000) -> MarketDefinition:
    """Three instruments (tick 1 / tick 5 lot 100 / tick 1), 64 accounts, no registry."""
    return validate(
        MarketDefinition(
            name="gateway test market",
            instruments=[
                Instrument(symbol=SYM_A, reference_price_ticks=6_000, band_bps=1_000),
                Instrument(
                    symbol=SYM_B,
                    reference_price_ticks=6_000,
                    band_bps=1_000,
                    tick_ticks=5,
                    lot_t=100,
                    min_qty_t=100,
                    max_qty_t=10_000,
                ),
                Instrument(symbol=SYM_C, reference_price_ticks=6_005, band_bps=1_000),
            ],
            capacity=Capacity(accounts=64, resting_orders=resting_orders, max_price_ticks=20_000),
        )
    )


def users(log2_n: int = CHEAP_LOG2_N, extra: dict[str, list[int]] | None = None) -> UserDirectory:
    """``op`` operator, ``viewer`` read-only, ``reg`` registry, traders ``alice`` [1],
    ``bob`` [2], ``carol`` [3, 4], ``dave`` [5], plus ``extra`` traders (password
    ``<name>-secret``)."""
    roles = {"op": Role.OPERATOR, "viewer": Role.READ_ONLY, "reg": Role.REGISTRY}
    accounts = dict(ACCOUNTS, **(extra or {}))
    directory = []
    for name in [*roles, *accounts]:
        secret = PASSWORDS.get(name, f"{name}-secret")
        directory.append(
            User(
                name=name,
                role=roles.get(name, Role.TRADER),
                secret_hash=hash_secret(secret, log2_n=log2_n),
                accounts=accounts.get(name, []),
            )
        )
    return UserDirectory(directory)


def password(name: str) -> str:
    return PASSWORDS.get(name, f"{name}-secret")

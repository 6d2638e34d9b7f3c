"""Small fixtures for running a real gateway in tests, demos and benchmarks.

A three-instrument market with small capacities (so an engine costs a few megabytes, not the
national market's hundred), and a user directory with one user per role whose secrets are
hashed cheaply (logons are not what these runs exercise).
"""

from __future__ import annotations

from engine.core.market import MarketDefinition
from gateway.protocol import Role
from gateway.users import User, UserDirectory, hash_secret
from tests import conftest
from tests.conftest import DATE1, DATE2, SYM_A, SYM_B, SYM_C

__all__ = [
    "ACCOUNTS",
    "CHEAP_LOG2_N",
    "DATE1",
    "DATE2",
    "PASSWORDS",
    "SYM_A",
    "SYM_B",
    "SYM_C",
    "password",
    "small_market",
    "users",
]
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
    """Three instruments (tick 1 / tick 5 lot 100 / tick 1), 64 accounts, no registry:
    ``tests.conftest.small_market``, named for the gateway tests."""
    return conftest.small_market(resting_orders, name="gateway test market")


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

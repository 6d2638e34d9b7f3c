"""Helper kernels of the compiled engine that no command exercises on its own."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from engine.core.compiled.ledger import in_key_order


@njit(cache=False)
def _in_key_order(values, keys):  # ledger.in_key_order has no Python wrapper of its own
    return in_key_order(values, keys)


@pytest.mark.parametrize("seed", range(4))
def test_in_key_order_is_a_stable_argsort(seed: int) -> None:
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for count in [*range(20), 63, 64, 65, 1000, 4097]:
        for spread in (3, 10**12):  # many equal keys; almost none
            keys = rng.integers(-spread, spread, count)
            values = rng.integers(0, 10**15, count)
            expected = values[np.argsort(keys, kind="stable")]
            assert _in_key_order(values, keys).tolist() == expected.tolist()

"""``engine.core.snapshot.encode_orders`` writes a book side's orders as msgspec writes the
``OrderSnapshot`` structs, byte for byte: every MessagePack width of an unsigned field, the
three array headers (fixarray, array16, array32), the empty side, and a negative field (the
structs' own way)."""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pytest

from engine.core import snapshot as snap

EDGES = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**63 - 1]
"""Each side of each change of width."""


def _structs(rows: np.ndarray) -> bytes:
    return msgspec.msgpack.encode([snap.OrderSnapshot(*row) for row in rows.tolist()])


def _rows(rng: random.Random, count: int) -> np.ndarray:
    values = [
        rng.choice(EDGES)
        if rng.random() < 0.5
        else rng.randrange(2 ** rng.choice([7, 8, 16, 32, 63]))
        for _ in range(7 * count)
    ]
    return np.array(values, dtype=np.int64).reshape(count, 7)


@pytest.mark.parametrize("seed", range(4))
def test_encoded_orders_are_the_structs_bytes(seed: int) -> None:
    print(f"seed {seed}")
    rng = random.Random(seed)
    for count in [0, 1, 15, 16, 17, 300, *(rng.randrange(1, 2_000) for _ in range(20))]:
        rows = _rows(rng, count)
        assert bytes(snap.encode_orders(rows)) == _structs(rows), f"{count} orders"


def test_a_side_of_more_than_65535_orders_has_an_array32_header() -> None:
    rows = _rows(random.Random(7), 65_536)
    encoded = bytes(snap.encode_orders(rows))
    assert encoded[:5] == b"\xdd\x00\x01\x00\x00"
    assert encoded == _structs(rows)


def test_a_negative_field_is_encoded_as_the_structs_are() -> None:
    rows = np.array([[5, -1, 6000, 10, 1, 1, 1], [6, 3, -40, 2**40, 0, 0, 0]], dtype=np.int64)
    assert bytes(snap.encode_orders(rows)) == _structs(rows)

"""The order tracker's paged map behaves as the dict it replaces."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gateway import orders
from gateway.orders import OrderIdPages


@pytest.mark.parametrize("seed", range(6))
def test_order_id_pages_are_a_dict(seed: int) -> None:
    print(f"seed {seed}")
    rng = random.Random(seed)
    pages, model = OrderIdPages(), {}
    span = 5 << orders.PAGE_BITS  # ids over several pages, runs across page boundaries
    for _ in range(3_000):
        roll = rng.random()
        order_id = rng.randrange(-3, span)
        if roll < 0.3:
            pages[order_id] = model[order_id] = f"c{rng.randrange(10**6)}"
        elif roll < 0.45:
            first = rng.randrange(0, span)
            coids = [f"r{first}-{k}" for k in range(rng.choice([1, 7, 300, 9000]))]
            pages.add_run(first, coids)
            model.update(zip(range(first, first + len(coids)), coids))
        elif roll < 0.7:
            assert pages.pop(order_id, "none") == model.pop(order_id, "none")
        elif roll < 0.8 and model:
            victim = rng.choice(sorted(model))
            del pages[victim]
            del model[victim]
        else:
            ids = np.array([rng.randrange(-3, span) for _ in range(rng.randrange(0, 40))])
            if rng.random() < 0.5 and len(ids):
                ids[:] = ids[0]  # one page: the short way
            assert pages.get_many(ids) == [model.get(i, "") for i in ids.tolist()]
        assert pages.get(order_id) == model.get(order_id)
    assert dict(pages) == model and len(pages) == len(model)
    assert all(pages.pages.values()), "an emptied page is dropped"
    assert max(map(len, pages.pages.values()), default=0) <= 1 << orders.PAGE_BITS

"""The order tracker's paged and partitioned maps behave as the dicts they replace."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gateway import orders
from gateway.orders import OrderIdPages, OrderTracker, PartitionedIds


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


@pytest.mark.parametrize("seed", range(6))
def test_partitioned_ids_are_a_dict(seed: int) -> None:
    print(f"seed {seed}")
    rng = random.Random(seed)
    model = {f"c{k}": k for k in range(rng.randrange(0, 100))}
    ids = PartitionedIds(dict(model), fanout=rng.choice([1, 4, 64]))
    initial = set(model)
    next_id = 1000
    for _ in range(2_000):
        roll = rng.random()
        coid = f"c{rng.randrange(400)}"
        if roll < 0.2:
            ids[coid] = model[coid] = next_id
            next_id += 1
        elif roll < 0.3 and coid not in model:
            ids.add_new(coid, next_id)
            model[coid] = next_id
            next_id += 1
        elif roll < 0.4:
            run = list(dict.fromkeys(f"c{rng.randrange(400)}" for _ in range(rng.randrange(0, 30))))
            run = [c for c in run if c not in model]
            ids.update(zip(run, range(next_id, next_id + len(run))))
            model.update(zip(run, range(next_id, next_id + len(run))))
            next_id += len(run)
        elif roll < 0.6 and coid in model:
            del ids[coid]
            del model[coid]
        else:
            probe = [f"c{rng.randrange(400)}" for _ in range(rng.randrange(0, 5))]
            assert ids.keys().isdisjoint(probe) == model.keys().isdisjoint(probe)
        assert (coid in ids) == (coid in model) and ids.get(coid) == model.get(coid)
        assert bool(ids) == bool(model)
    assert dict(ids) == model and len(ids) == len(model)
    assert len(ids.parts) == ids.mask + 1
    for part in ids.parts:  # every id is where its hash leads, and only there
        assert all(ids.parts[hash(coid) & ids.mask] is part for coid in part)
    assert ids.first.keys() <= initial, "the first dict only shrinks"
    assert sum(map(len, ids.parts)) + len(ids.first) == len(model)


def test_an_account_s_ids_are_partitioned_once_many() -> None:
    tracker = OrderTracker()
    tracker.part_ids = 5
    for k in range(1, 5):
        tracker.reserve(7, f"c{k}", k)
    assert type(tracker.by_client[7]) is dict
    tracker.reserve(7, "c5", 5)
    assert type(tracker.by_client[7]) is PartitionedIds
    assert tracker.lookup(7, "c3") == 3 and tracker.owns(7, 5)
    tracker.withdraw(5, 7)
    assert tracker.lookup(7, "c5") is None and dict(tracker.by_client[7]) == {
        f"c{k}": k for k in range(1, 5)
    }

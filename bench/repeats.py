"""Best and median of repeated benchmark runs (``cets bench … --repeat N``).

Theory of operation
-------------------
A benchmark layer's run yields a payload: msgspec structs, lists and dicts of them.  Repeating
the layer yields payloads of one shape, so every numeric leaf has a path that names the same
figure in each run: dict keys, and for a list element its identifying fields (``workload``,
``path``, ``policy`` and ``batch_size``, ``name``) or else its index, joined by ``/``
(``results/liquid/paths/lean API/messages_per_s``).

Which leaves are figures, and which way is better, is read off the leaf's name, the units-last
naming every benchmark follows: ``…per_s``, ``speedup…`` and ``…_vs_peer`` are rates (the
highest is best); ``…seconds``, ``…_s``, anything in microseconds (``_us``) and ``…_ratio``
(a cost) are times (the lowest is best).  Other leaves - counts, sizes, hashes, the offered
rate, flags - are not figures: they stay in each run's payload.
"""

from __future__ import annotations

import statistics

import msgspec

IDENTITY = ("workload", "path", "policy", "batch_size", "name")
"""Fields that name a list element, in the order they are joined."""


class Figure(msgspec.Struct):
    """One figure over the runs: which way is better, the best, the median, every run's."""

    better: str
    """``"higher"`` (a rate) or ``"lower"`` (a time or a cost)."""
    best: float
    median: float
    runs: list[float]


def better(name: str) -> str | None:
    """``"higher"``, ``"lower"`` or None (not a figure) for a leaf called ``name``."""
    if name.startswith("offered"):
        return None
    if name.endswith("per_s") or name.startswith("speedup") or name.endswith("_vs_peer"):
        return "higher"
    if name.endswith(("seconds", "_s", "_ratio")) or "_us" in name:
        return "lower"
    return None


def _label(item: object, index: int) -> str:
    if isinstance(item, dict):
        names = [str(item[f]) for f in IDENTITY if isinstance(item.get(f), str | int)]
        if names:
            return " ".join(names)
    return str(index)


def _leaves(value: object, path: str, name: str):
    """(path, name, number) of every numeric leaf of a builtins tree."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}/{key}" if path else str(key), str(key))
    elif isinstance(value, list):
        labels = [_label(item, i) for i, item in enumerate(value)]
        unique = len(set(labels)) == len(labels)
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}/{labels[i] if unique else i}", name)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, name, float(value)


def figures(runs: list) -> dict[str, Figure]:
    """Every figure of ``runs`` (payloads of one shape), by path, in the payload's order."""
    values: dict[str, list[float]] = {}
    direction: dict[str, str] = {}
    for payload in runs:
        for path, name, number in _leaves(msgspec.to_builtins(payload), "", ""):
            way = better(name)
            if way is not None:
                direction[path] = way
                values.setdefault(path, []).append(number)
    return {
        path: Figure(
            better=direction[path],
            best=(max if direction[path] == "higher" else min)(numbers),
            median=statistics.median(numbers),
            runs=numbers,
        )
        for path, numbers in values.items()
    }


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1_000 else f"{value:.4g}"


def format_figures(table: dict[str, Figure], runs: int) -> str:
    """The figures as a table (best, median, each run); durations of a fixed amount of work
    (``seconds``) are left to the JSON, their rates are shown."""
    shown = {
        path: figure
        for path, figure in table.items()
        if not path.rsplit("/", 1)[-1].endswith("seconds")
    }
    width = max((len(path) for path in shown), default=6)
    lines = [
        f"best and median of {runs} runs (best: the highest rate, the lowest time)",
        f"{'figure':<{width}} {'best':>12} {'median':>12}  runs",
    ]
    lines.append("-" * len(lines[1]))
    for path, figure in shown.items():
        each = " ".join(_number(v) for v in figure.runs)
        lines.append(
            f"{path:<{width}} {_number(figure.best):>12} {_number(figure.median):>12}  {each}"
        )
    return "\n".join(lines)

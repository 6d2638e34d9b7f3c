"""PNG charts of benchmark results (``--plot DIR``; needs the optional ``plot`` extra).

* ``core_throughput.png``: messages/s per workload and path, log scale, so the reference
  and the compiled paths are visible on one chart.
* ``gateway_latency.png``: order-to-acknowledgement latency percentiles at the offered rate.
"""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display is needed or wanted
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise SystemExit(
            "cets bench --plot needs matplotlib: python -m pip install '.[plot]'"
        ) from exc
    return plt


def core_throughput(results, directory: Path, machine_line: str) -> Path:
    """Grouped bars: one group per workload, one bar per path."""
    plt = _pyplot()
    paths = [p.path for p in results[0].paths]
    fig, ax = plt.subplots(figsize=(9, 4.8))
    width = 0.8 / len(paths)
    for j, path in enumerate(paths):
        values = [next(p for p in r.paths if p.path == path).messages_per_s for r in results]
        xs = [i + j * width for i in range(len(results))]
        bars = ax.bar(xs, values, width, label=path)
        ax.bar_label(bars, labels=[f"{v / 1e6:.2f}M" for v in values], fontsize=7, padding=2)
    ax.set_yscale("log")
    ax.set_xticks([i + width * (len(paths) - 1) / 2 for i in range(len(results))])
    ax.set_xticklabels([r.workload for r in results])
    ax.set_ylabel("messages per second (log scale)")
    ax.set_title(f"bench core: {results[0].messages:,} messages per workload", fontsize=10)
    # below the bars, in one row: inside the axes it hid the tallest group's labels
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(paths))
    fig.text(0.01, 0.01, machine_line, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    target = directory / "core_throughput.png"
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target


def gateway_latency(latency, directory: Path, machine_line: str, floor=None) -> Path:
    """Latency percentiles (p50, p99, p99.9, max) at the offered rate; with ``floor`` (a
    ``FloorResult``), the same client against a do-nothing echo server beside it."""
    plt = _pyplot()
    labels = ["p50", "p99", "p99.9", "max"]
    fig, ax = plt.subplots(figsize=(6, 4))
    series = [("gateway, sync every batch", latency)]
    if floor is not None:
        series.append(("floor: echo server, same client", floor))
    for number, (name, result) in enumerate(series):
        values = [
            result.latency_us_p50,
            result.latency_us_p99,
            result.latency_us_p999,
            result.latency_us_max,
        ]
        ax.plot(labels, values, marker="o", label=name)
        for label, value in zip(labels, values, strict=True):  # the floor's labels below
            ax.annotate(
                f"{value:,.0f} µs",
                (label, value),
                textcoords="offset points",
                xytext=(0, -13 if number else 6),
                ha="center",
                fontsize=8,
            )
    if floor is not None:
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.margins(x=0.12, y=0.15)
    ax.set_ylabel("order to acknowledgement, µs (log scale)")
    ax.set_title(
        f"gateway latency at {latency.offered_per_s:,} orders/s offered, sync every batch",
        fontsize=10,
    )
    fig.text(0.01, 0.01, machine_line, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    target = directory / "gateway_latency.png"
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target

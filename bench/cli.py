"""``cets bench …`` and ``python -m bench …``: the benchmarks' command line.

``bench`` sits above every other package, so the ``cets`` host (``gateway.cli``) cannot import
it; it registers its subcommand through the ``cets.commands`` entry point instead
(``pyproject.toml``), the way pytest finds its plugins.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

WORKLOAD_NAMES = ("liquid", "deep", "volatile", "swing25", "swing40", "crash")
"""``bench core``'s workloads (``bench.workloads.WORKLOADS``; named here so that building the
parser compiles nothing)."""

DURABILITY_POLICIES = ("batch", "interval", "none")
"""The log policies ``bench gateway --durability`` offers (``engine.durable.journal.Durability``'s
values, spelled out so that building the parser imports no engine module)."""


def _repeat(args: argparse.Namespace, once, header: dict) -> tuple[int, list[dict]]:
    """Run a layer's measurement ``once(args) -> (payload, exit code)`` ``--repeat`` times;
    return the worst exit code and every run's payload.

    Each run prints its own report; with more than one run a table of every figure's best and
    median follows (``bench.repeats``).  The JSON carries ``header``, the first run's payload
    at the top level (the shape a single run always had), ``repeat``, every run's payload (with
    the load average at its start, ``load``) in ``runs``, and each figure's best, median and
    values in ``figures``."""
    from bench import machine, repeats

    payloads, codes = [], []
    for run in range(args.repeat):
        load = machine.load()
        if args.repeat > 1:
            print(f"run {run + 1} of {args.repeat}; load {' '.join(map(str, load))}")
        payload, code = once(args)
        payloads.append({**payload, "load": load})
        codes.append(code)
    table = repeats.figures(payloads)
    if args.repeat > 1:
        print(repeats.format_figures(table, args.repeat))
    payload = {**header, **payloads[0], "repeat": args.repeat, "runs": payloads, "figures": table}
    layers = getattr(args, "layers_json", None)
    if layers is not None:  # ``bench all``: one file for every layer, written at the end
        layers[args.layer_now] = payload
    else:
        _write_json(args.json, payload)
    return max(codes), payloads


def _bench_core(args: argparse.Namespace) -> int:
    from bench import core, machine, workloads

    size = args.messages or workloads.SIZES[args.size]
    names = args.workload or list(workloads.WORKLOADS)
    info = machine.describe()
    print(f"bench core: workloads {', '.join(names)}; {size:,} messages each; seed {args.seed}")
    print(machine.line(info))

    def once(args: argparse.Namespace) -> tuple[dict, int]:
        results = core.run(size, args.seed, names)
        print(core.format_table(results))
        return {"results": results}, 0 if all(r.hashes_equal for r in results) else 1

    code, runs = _repeat(args, once, {"machine": info, "seed": args.seed})
    if args.plot:  # the first run's, as the JSON's top level
        from bench import plots

        chart = plots.core_throughput(runs[0]["results"], _plot_dir(args.plot), machine.line(info))
        print(f"chart: {chart}")
    return code


def _plot_dir(path: str):
    from pathlib import Path

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _write_json(path: str | None, payload: dict) -> None:
    if path:
        with open(path, "wb") as handle:
            handle.write(msgspec.json.format(msgspec.json.encode(payload)))
        print(f"results written to {path}")


def _bench_journal(args: argparse.Namespace) -> int:
    from bench import journal, machine, workloads

    size = args.messages or workloads.SIZES[args.size]
    info = machine.describe()
    print(f"bench journal: liquid workload, {size:,} commands; seed {args.seed}")
    print(machine.line(info))

    def once(args: argparse.Namespace) -> tuple[dict, int]:
        results = journal.run(size, args.seed)
        print(journal.format_table(results))
        return {"results": results}, 0

    return _repeat(args, once, {"machine": info, "seed": args.seed})[0]


def _bench_gateway(args: argparse.Namespace) -> int:
    from bench import machine

    info = machine.describe()
    print(machine.line(info))
    code, runs = _repeat(args, _gateway_once, {"machine": info})
    if args.plot:  # the first run's, as the JSON's top level
        from bench import plots

        first = runs[0]
        chart = plots.gateway_latency(
            first["latency"], _plot_dir(args.plot), machine.line(info), first["floor"]
        )
        print(f"chart: {chart}")
    return code


def _gateway_once(args: argparse.Namespace) -> tuple[dict, int]:
    from bench import gateway as gateway_bench

    orders = {"tiny": 500, "small": 10_000, "full": 50_000}[args.size]
    seconds = {"tiny": 0.5, "small": 3.0, "full": 10.0}[args.size]
    durability = getattr(args, "durability", "batch")  # `bench all` has no --durability
    throughput = gateway_bench.run_throughput(
        clients=args.clients, orders_per_client=orders, durability=durability
    )
    print(f"gateway throughput: {args.clients} pipelining clients, {throughput}")
    fix = gateway_bench.run_fix(orders=min(orders, 10_000), durability=durability)  # see run_fix
    print(f"FIX 4.4 (one pipelining session, NewOrderSingle -> ExecutionReport): {fix}")
    latency = gateway_bench.run_latency(rate=args.rate, seconds=seconds, durability=durability)
    print(f"gateway latency at {args.rate:,} orders/s offered (open loop): {latency}")
    floor = gateway_bench.run_latency_floor(rate=args.rate, seconds=seconds)
    print(f"the floor - same client, a do-nothing echo server: {floor}")
    batches = {"tiny": 5, "small": 40, "full": 100}[args.size]
    inprocess = gateway_bench.run_inprocess(clients=args.clients, batches=batches)
    print(f"server CPU per order in-process (no sockets, best of {inprocess.runs}): {inprocess}")
    payload = {
        "throughput": throughput,
        "latency": latency,
        "floor": floor,
        "inprocess": inprocess,
        "fix": fix,
    }
    return payload, 0


def _bench_replication(args: argparse.Namespace) -> int:
    from bench import machine, replication

    info = machine.describe()
    print(machine.line(info))
    missing = replication.available()
    if missing is not None:
        print(f"bench replication: cannot run: {missing}")
        return 2
    print(
        f"bench replication: a local 3-node NATS JetStream cluster (file storage, 3 replicas); "
        f"{args.clients} pipelining clients; open loop at {args.rate:,} orders/s"
    )

    def once(args: argparse.Namespace) -> tuple[dict, int]:
        results = replication.run(args.size, args.rate, args.clients)
        print(replication.format_report(results))
        return results, 0

    return _repeat(args, once, {"machine": info})[0]


def _bench_carbon(args: argparse.Namespace) -> int:
    from bench import carbon, machine

    base = {"tiny": 2, "small": 40, "full": 200}[args.size]
    rush_days = {"tiny": 1, "small": 5, "full": 20}[args.size]
    info = machine.describe()
    print(
        f"bench carbon: national market, 3,398 accounts; {base} new orders per ordinary day "
        f"(x3 Oct, x6 Nov, x10 Dec); rush: last {rush_days} days at 100x December; "
        f"seed {args.seed}"
    )
    print(machine.line(info))

    def once(args: argparse.Namespace) -> tuple[dict, int]:
        results = [carbon.run_workload(w, base, args.seed, rush_days) for w in ("year", "rush")]
        print(carbon.format_table(results))
        return {"results": results}, 0 if all(r.hashes_equal is not False for r in results) else 1

    return _repeat(args, once, {"machine": info, "seed": args.seed})[0]


def _bench_all(args: argparse.Namespace) -> int:
    """Every layer in turn; ``--json`` gets one object with each layer's payload under its
    name (``{"core": …, "journal": …, "carbon": …, "gateway": …}``)."""
    args.layers_json = {}
    codes = []
    for name, run in (
        ("core", _bench_core),
        ("journal", _bench_journal),
        ("carbon", _bench_carbon),
        ("gateway", _bench_gateway),
    ):
        args.layer_now = name
        codes.append(run(args))
    _write_json(args.json, args.layers_json)
    return max(codes)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``bench`` and its layers to a command line's subcommands."""
    bench = commands.add_parser("bench", help="throughput and latency benchmarks")
    add_layers(bench)


def add_layers(bench: argparse.ArgumentParser) -> None:
    """The benchmark layers: ``core``, ``journal``, ``gateway``, ``carbon``, ``engine``,
    ``replication``, ``all``."""
    layers = bench.add_subparsers(dest="layer", required=True)
    core = layers.add_parser("core", help="compiled batch, Python API and reference book")
    core.add_argument("--size", choices=["tiny", "small", "full"], default="small")
    core.add_argument("--messages", type=int, help="override the size's message count")
    core.add_argument("--seed", type=int, default=1)
    core.add_argument(
        "--workload",
        action="append",
        choices=list(WORKLOAD_NAMES),
        help="run only this workload (repeatable)",
    )
    core.add_argument("--json", metavar="FILE", help="write results as JSON")
    _add_repeat(core)
    core.add_argument("--plot", metavar="DIR", help="draw PNG charts (needs matplotlib)")
    core.set_defaults(run=_bench_core)
    for name, run, text in (
        ("journal", _bench_journal, "append per durability policy, recovery, replay, audit"),
        (
            "gateway",
            _bench_gateway,
            "loopback throughput, open-loop latency and its floor, CPU per order",
        ),
        ("carbon", _bench_carbon, "a simulated year of the national market, and a 100x rush"),
        (
            "replication",
            _bench_replication,
            "quorum replication on a local NATS cluster beside single node; failover time",
        ),
        ("engine", _bench_carbon, "the full engine with the registry (same as carbon)"),
        ("all", _bench_all, "core, journal, carbon and gateway"),
    ):
        layer = layers.add_parser(name, help=text)
        layer.add_argument("--size", choices=["tiny", "small", "full"], default="small")
        layer.add_argument("--messages", type=int, help="override the size's message count")
        layer.add_argument("--seed", type=int, default=1)
        layer.add_argument("--clients", type=int, default=4)
        layer.add_argument("--rate", type=int, default=10_000, help="offered orders/s")
        layer.add_argument("--workload", action="append", choices=list(WORKLOAD_NAMES))
        layer.add_argument("--json", metavar="FILE", help="write results as JSON")
        _add_repeat(layer)
        layer.add_argument("--plot", metavar="DIR", help="draw PNG charts (needs matplotlib)")
        if name == "gateway":
            layer.add_argument(
                "--durability",
                choices=DURABILITY_POLICIES,
                default="batch",
                help="the server's log policy (default: batch, an fdatasync before every "
                "acknowledgement; none shows what the storage's sync costs)",
            )
        layer.set_defaults(run=run)


def _add_repeat(layer: argparse.ArgumentParser) -> None:
    layer.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        metavar="N",
        help="run N times; print and store (--json) each run, and every figure's best and median",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser of ``python -m bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_layers(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

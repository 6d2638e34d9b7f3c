"""The ``cets`` command line: one entry point with a subcommand per job.

It lives in ``bench`` because ``bench`` is the one package allowed to depend on all the others
(``gateway -> engine``, ``replay -> engine``, ``bench -> everything``).
"""

from __future__ import annotations

import argparse
import sys

import msgspec


def _bench_core(args: argparse.Namespace) -> int:
    from bench import core, machine, workloads

    size = args.messages or workloads.SIZES[args.size]
    names = args.workload or list(workloads.WORKLOADS)
    info = machine.describe()
    print(f"bench core: workloads {', '.join(names)}; {size:,} messages each; seed {args.seed}")
    print(machine.line(info))
    results = core.run(size, args.seed, names)
    print(core.format_table(results))
    if args.json:
        payload = {"machine": info, "seed": args.seed, "results": results}
        with open(args.json, "wb") as handle:
            handle.write(msgspec.json.format(msgspec.json.encode(payload)))
        print(f"results written to {args.json}")
    return 0 if all(r.hashes_equal for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cets", description="Exchange engine for China's national carbon market."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    from bench import demo

    demo.add_command(commands)

    bench = commands.add_parser("bench", help="throughput and latency benchmarks")
    layers = bench.add_subparsers(dest="layer", required=True)
    core = layers.add_parser("core", help="compiled batch, Python API and reference book")
    core.add_argument("--size", choices=["tiny", "small", "full"], default="small")
    core.add_argument("--messages", type=int, help="override the size's message count")
    core.add_argument("--seed", type=int, default=1)
    core.add_argument(
        "--workload", action="append", choices=["liquid", "deep", "volatile"],
        help="run only this workload (repeatable)",
    )  # fmt: skip
    core.add_argument("--json", metavar="FILE", help="write results as JSON")
    core.set_defaults(run=_bench_core)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

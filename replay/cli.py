"""The replay tool's command line: ``cets replay <command>`` and ``python -m replay <command>``.

Theory of operation
-------------------
Each command opens a data directory read-only, calls one library function of this package and
prints its result: an aligned table for people, or with ``--json`` the result Struct encoded by
msgspec (one JSON document on standard output).  Long work draws a progress bar on standard
error when it is a terminal (``--quiet`` hides it).  Every refusal - a missing directory, a
file that is not a data directory, another format version, a damaged log, an unknown
instrument - is one line ``replay: error: ...`` on standard error and a non-zero exit code,
never a traceback.

Commands::

    verify DATA_DIR                    every checksum, the hash chain, seq continuity,
                                       checkpoints, and the snapshots
    run DATA_DIR [--until-seq N | --until-time T] [--from-snapshot] [--engine E]
                                       rebuild the state; state hash and per-instrument summary
    audit DATA_DIR [--engine E]        recompute every batch's events, compare with the log
    book DATA_DIR --instrument X [--at-seq N | --at-time T] [--depth K | --orders]
    statement DATA_DIR --account A [--from T] [--to T]
    trades DATA_DIR [--instrument X] [--format csv|json]
                                       every trade: listing, block and auction (``mode``)
    market DATA_DIR [--instrument X]   OHLC, volume and value per trading day and instrument,
                                       split by mode (listing, block, auction); the composite
                                       price of each day
    compliance DATA_DIR --year Y       per compliance entity: obligation, surrendered by
                                       vintage, offsets, shortfall, penalty (once closed)
    diff DIR_A DIR_B [--ignore-time]   the first seq at which two logs or their outcomes differ

Times ``T`` are integer nanoseconds since the epoch or ISO 8601 (``2025-01-02T09:30``; without
an offset: China Standard Time, UTC+08:00).

Exit codes
----------
0   success; ``verify``/``audit``/``diff``/``compliance``: nothing wrong, every batch
    matches, identical, a closed year's positions agree with its ``ComplianceReported``
1   a finding: ``verify`` found damage (or a bad snapshot), ``audit`` a batch whose events
    differ from its checkpoint, ``diff`` a divergence, ``compliance`` a closed year whose
    ``ComplianceReported`` events disagree with the reports and surrenders
2   usage: bad arguments, unknown instrument, a seq beyond the end of the log, a year that is
    not a compliance year of the market (or a market without a registry)
3   unreadable: missing directory, not a data directory, unsupported format version, damaged
    log or market definition (commands other than ``verify``), I/O error
130 interrupted
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import msgspec

from replay import errors
from replay import text as tx
from replay.errors import ReplayError
from replay.progress import Progress
from replay.render import parse_time
from replay.timeline import ENGINES, Stop

Handler = Callable[[argparse.Namespace], int]


def _out(data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode()
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")


def _emit(args: argparse.Namespace, result: object, render: Callable[[object], str]) -> None:
    _out(msgspec.json.encode(result) if args.json else render(result))


def _progress(args: argparse.Namespace, label: str) -> Progress:
    return Progress(label, 0, enabled=not args.quiet)


def _data(path: str):
    from replay.datadir import open_data_dir

    return open_data_dir(path)


def _stop(seq: int | None, ts_ns: int | None) -> Stop:
    return Stop(until_seq=seq, until_ts_ns=ts_ns)


# -- handlers ------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from replay.verify import verify

    data = _data(args.data_dir)
    with _progress(args, "verify") as progress:
        result = verify(data, progress)
    _emit(args, result, tx.verify_text)
    return errors.EXIT_OK if result.ok else errors.EXIT_FINDING


def _run(args: argparse.Namespace) -> int:
    from replay.state import run

    data = _data(args.data_dir)
    with _progress(args, "run") as progress:
        report = run(
            data,
            args.engine,
            _stop(args.until_seq, args.until_time),
            args.from_snapshot,
            progress,
        )
    _emit(args, report, tx.run_text)
    return errors.EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    from replay.audit import audit

    data = _data(args.data_dir)
    with _progress(args, "audit") as progress:
        report = audit(data, args.engine, progress)
    _emit(args, report, lambda r: tx.audit_text(r, args.show))
    return errors.EXIT_OK if report.ok else errors.EXIT_FINDING


def _book(args: argparse.Namespace) -> int:
    from replay.state import book

    data = _data(args.data_dir)
    with _progress(args, "book") as progress:
        report = book(
            data,
            args.instrument,
            _stop(args.at_seq, args.at_time),
            args.depth,
            args.orders,
            args.engine,
            progress,
        )
    _emit(args, report, tx.book_text)
    return errors.EXIT_OK


def _statement(args: argparse.Namespace) -> int:
    from replay.reports import StatementReport, scan_events

    data = _data(args.data_dir)
    if not 0 <= args.account < data.market.capacity.accounts:
        raise errors.UsageError(
            f"account {args.account} is outside 0 … {data.market.capacity.accounts - 1}"
        )
    report = StatementReport(data, args.account, args.from_time, args.to_time)
    stop = _stop(None, None if args.to_time is None else args.to_time - 1)
    with _progress(args, "statement") as progress:
        scan = scan_events(data, [report], progress, stop)
    query = getattr(scan.engine, "account", None)
    balances = query(args.account) if query is not None and data.market.registry else None
    _emit(args, report.result(balances), tx.statement_text)
    return errors.EXIT_OK


def _trades(args: argparse.Namespace) -> int:
    from replay.reports import TradesReport, scan_events

    data = _data(args.data_dir)
    index = None if args.instrument is None else data.instrument_index(args.instrument)
    report = TradesReport(data, index)
    with _progress(args, "trades") as progress:
        scan_events(data, [report], progress)
    if args.json or args.format == "json":
        _out(msgspec.json.encode(report.trades))
    else:
        sys.stdout.write(tx.trades_csv(report.trades))
    return errors.EXIT_OK


def _market(args: argparse.Namespace) -> int:
    from replay.reports import MarketReport, scan_events

    data = _data(args.data_dir)
    index = None if args.instrument is None else data.instrument_index(args.instrument)
    report = MarketReport(data, index)
    with _progress(args, "market") as progress:
        scan_events(data, [report], progress)
    _emit(args, report.result(), tx.market_text)
    return errors.EXIT_OK


def _compliance(args: argparse.Namespace) -> int:
    from replay.compliance import ComplianceReport
    from replay.reports import scan_events

    data = _data(args.data_dir)
    report = ComplianceReport(data, args.year)
    with _progress(args, "compliance") as progress:
        scan = scan_events(data, [report], progress)
    result = report.result(scan.reader.last_seq)
    _emit(args, result, tx.compliance_text)
    return errors.EXIT_FINDING if result.discrepancies else errors.EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from replay.diff import diff

    a, b = _data(args.dir_a), _data(args.dir_b)
    with _progress(args, "diff") as progress:
        result = diff(a, b, args.ignore_time, progress)
    _emit(args, result, tx.diff_text)
    return errors.EXIT_OK if result.identical else errors.EXIT_FINDING


# -- argument parsing ----------------------------------------------------------------------------


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time_end(text: str) -> int:
    try:
        return parse_time(text, end=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a sequence number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"sequence numbers are not negative: {value}")
    return value


def _positive(text: str) -> int:
    value = _seq(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _year(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a year: {text!r}") from None


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return common


def _engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="compiled",
        help="rules to replay with: the compiled book (default) or the plain-Python reference",
    )


def _add_state_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", parents=[common], help="check every byte of a log")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.set_defaults(run=_guarded(_verify))

    p = sub.add_parser("run", parents=[common], help="rebuild the state at a point of history")
    p.add_argument("data_dir", metavar="DATA_DIR")
    until = p.add_mutually_exclusive_group()
    until.add_argument("--until-seq", type=_seq, metavar="N", help="stop after command N")
    until.add_argument(
        "--until-time",
        type=_time,
        metavar="T",
        help="stop after time T (nanoseconds, or ISO 8601; no offset: UTC+08:00)",
    )
    p.add_argument(
        "--from-snapshot",
        action="store_true",
        help="start from the newest usable snapshot before the stop",
    )
    _engine_option(p)
    p.set_defaults(run=_guarded(_run))

    p = sub.add_parser("audit", parents=[common], help="recompute and compare every batch")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument(
        "--show",
        type=_positive,
        default=20,
        metavar="N",
        help="commands and events shown of a diverging batch (table output; default 20)",
    )
    _engine_option(p)
    p.set_defaults(run=_guarded(_audit))

    p = sub.add_parser("book", parents=[common], help="an order book at a point of history")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--instrument", required=True, metavar="X")
    at = p.add_mutually_exclusive_group()
    at.add_argument("--at-seq", type=_seq, metavar="N", help="after command N")
    at.add_argument("--at-time", type=_time, metavar="T", help="after time T (as --until-time)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--depth", type=_positive, default=5, metavar="K", help="levels per side")
    shape.add_argument("--orders", action="store_true", help="every resting order")
    _engine_option(p)
    p.set_defaults(run=_guarded(_book))


def _add_report_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("statement", parents=[common], help="one account's events")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--account", type=_seq, required=True, metavar="A")
    p.add_argument(
        "--from",
        dest="from_time",
        type=_time,
        metavar="T",
        help="from time T (nanoseconds, or ISO 8601; no offset: UTC+08:00)",
    )
    p.add_argument(
        "--to",
        dest="to_time",
        type=_time_end,
        metavar="T",
        help="up to time T inclusive (a date: to the end of that day)",
    )
    p.set_defaults(run=_guarded(_statement))

    p = sub.add_parser(
        "trades", parents=[common], help="export every trade (listing, block, auction)"
    )
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--instrument", metavar="X")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.set_defaults(run=_guarded(_trades))

    p = sub.add_parser(
        "market",
        parents=[common],
        help="daily prices, volume and value by trading mode, composite price",
    )
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--instrument", metavar="X")
    p.set_defaults(run=_guarded(_market))

    p = sub.add_parser(
        "compliance",
        parents=[common],
        help="a compliance year: obligations, surrenders, offsets, shortfalls, penalties",
    )
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--year", type=_year, required=True, metavar="Y", help="compliance year")
    p.set_defaults(run=_guarded(_compliance))

    p = sub.add_parser("diff", parents=[common], help="where two logs first diverge")
    p.add_argument("dir_a", metavar="DIR_A")
    p.add_argument("dir_b", metavar="DIR_B")
    p.add_argument("--ignore-time", action="store_true", help="ignore timestamps")
    p.set_defaults(run=_guarded(_diff))


def add_subcommands(sub) -> None:
    """Add the replay commands (verify, run, audit, ...) to an ``add_subparsers()`` action."""
    common = _common()
    _add_state_commands(sub, common)
    _add_report_commands(sub, common)


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``replay`` with its commands to a program's ``add_subparsers()`` action.

    Each command sets ``run``: a function of the parsed namespace returning the exit code, as
    the other ``cets`` commands do (``sys.exit(args.run(args))``).
    """
    parser = subparsers.add_parser(
        "replay",
        help="verify, audit and query event logs",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_subcommands(parser.add_subparsers(dest="replay_command", required=True))
    return parser


def build_parser(prog: str = "python -m replay") -> argparse.ArgumentParser:
    """The stand-alone parser of ``python -m replay``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Verify, audit and query the event logs of the CETS exchange.",
        epilog="Exit codes: 0 ok, 1 finding (damage, divergence), 2 usage, 3 unreadable data.",
    )
    add_subcommands(parser.add_subparsers(dest="replay_command", required=True))
    return parser


def _guarded(handler: Handler) -> Handler:
    """``handler`` with every refusal turned into one line on standard error and its code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ReplayError as exc:
            return _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            return _fail("interrupted", errors.EXIT_INTERRUPTED)
        except BrokenPipeError:
            _silence_stdout()  # the reader went away (``| head``): not an error
            return errors.EXIT_OK
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return _fail(f"{where}{exc.strerror or exc}", errors.EXIT_UNREADABLE)

    run.__name__ = handler.__name__
    return run


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"replay: error: {message}\n")
    sys.stderr.flush()
    return code


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None, prog: str = "python -m replay") -> int:
    """Run one replay command; returns its exit code (see the module docstring)."""
    args = build_parser(prog).parse_args(argv)
    return int(args.run(args))

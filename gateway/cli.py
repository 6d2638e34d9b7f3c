"""The ``cets`` command line: ``demo``, ``serve``, ``users``, ``replay`` and ``bench``.

The host lives here, in the venue's operational package: ``demo``, ``serve`` and ``users``
are the gateway's own, ``replay`` comes from ``replay.cli`` (``gateway -> replay`` is allowed),
and ``bench``, which sits above every package, registers itself through the
``cets.commands`` entry point (``pyproject.toml``) so that nothing here imports it.
``python -m gateway`` is the same program.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

import msgspec

from engine.core.market import MarketDefinitionError
from engine.durable.journal import Durability, JournalError
from engine.durable.sequencer import MARKET_FILE, ReplicaDivergenceError
from engine.markets import load, national_market
from gateway.protocol import Role
from gateway.server import GatewayConfig
from gateway.users import (
    SCRYPT_LOG2_N,
    User,
    UserDirectory,
    UserFileError,
    generate_api_key,
    hash_secret,
    hash_secret_pbkdf2,
)

DEFAULT_USERS_FILE = "users.json"


def add_commands(subparsers) -> None:
    """Add the ``serve``, ``follow`` and ``users`` subcommands to an argparse subparsers
    object."""
    _add_replication(_add_serve(subparsers, "serve", "run the TCP gateway over a data directory"))
    follow = _add_serve(
        subparsers,
        "follow",
        "follow a replicated exchange's NATS stream into a data directory, serving read-only "
        "sessions at once and orders once this node holds the primary lease",
    )
    _add_replication(follow, follower=True)
    _add_users(subparsers)


def _add_replication(parser, follower: bool = False) -> None:
    parser.add_argument(
        "--replication",
        choices=["quorum", "async"] if follower else ["none", "quorum", "async"],
        default="quorum" if follower else "none",
        help="how the primary acknowledges - quorum: once the NATS stream's quorum has the "
        "batch; async: once the local log has it (published in the background: batches "
        "acknowledged but not yet in the stream are lost if the primary is; README)",
    )
    parser.add_argument(
        "--nats",
        default="nats://127.0.0.1:4222",
        help="comma-separated NATS URLs of the cluster (the replication extra)",
    )
    parser.add_argument("--stream", default="CETS", help="JetStream stream name")
    parser.add_argument("--replicas", type=int, default=3, help="stream replicas")
    parser.add_argument("--node", help="this node's name (default HOST:PID)")
    parser.add_argument("--lease-ttl-s", type=float, default=5.0, help="primary lease TTL")
    parser.set_defaults(follower=follower)


def _add_serve(subparsers, name: str, help: str):
    serve = subparsers.add_parser(name, help=help)
    serve.add_argument("--data-dir", required=True, type=Path, help="exchange data directory")
    serve.add_argument(
        "--market",
        type=Path,
        help="market definition (TOML, or JSON if *.json) for a new data directory; "
        "default: the "
        "national market",
    )
    serve.add_argument("--users", type=Path, help="user file (default DATA_DIR/users.json)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=GatewayConfig().port)
    serve.add_argument(
        "--fix-port", type=int, metavar="P", help="also accept FIX 4.4 sessions (docs/FIX.md)"
    )
    serve.add_argument("--durability", choices=[d.value for d in Durability], default="batch")
    serve.add_argument("--sync-interval-ms", type=float, default=50.0)
    serve.add_argument(
        "--snapshot-every",
        type=int,
        default=1_000_000,
        metavar="EVENTS",
        help="snapshot the engine after this many events (0: never)",
    )
    for name in (
        "messages_per_second",
        "sessions_per_user",
        "open_orders_per_account",
        "outbound_queue_frames",
        "connections_max",
        "pre_logon_connections_max",
    ):
        serve.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("heartbeat_interval_s", "idle_timeout_s", "logon_timeout_s"):
        serve.add_argument("--" + name.replace("_", "-"), type=float)
    serve.add_argument(
        "--no-schedule",
        action="store_true",
        help="do not open/close sessions and move phases by the market's schedule "
        "(Asia/Shanghai local times); the operator sends those commands",
    )
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(run=_serve)
    return serve


def _add_users(subparsers) -> None:
    users = subparsers.add_parser("users", help="manage the gateway's users")
    users.add_argument("--file", type=Path, required=True, help="user file (JSON)")
    actions = users.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a user (or replace one with --replace)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument(
        "--account",
        type=int,
        action="append",
        default=[],
        help="account a trader may act for (repeatable)",
    )
    secret = add.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    secret.add_argument(
        "--generate-key", action="store_true", help="generate an API key and print it once"
    )
    add.add_argument("--pbkdf2", action="store_true", help="PBKDF2-SHA256 instead of scrypt")
    add.add_argument("--scrypt-log2n", type=int, default=SCRYPT_LOG2_N, help=argparse.SUPPRESS)
    add.add_argument("--replace", action="store_true")
    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    for verb in ("disable", "enable"):
        parser = actions.add_parser(verb, help=f"{verb} a user")
        parser.add_argument("name")
    actions.add_parser("list", help="list users (never secrets)")
    users.set_defaults(run=_users)


# ------------------------------------------------------------------------------------------


def load_market(path: Path):
    """A market definition from TOML, or from JSON when the name ends in ``.json``."""
    if path.suffix == ".json":
        from engine.core.market import MarketDefinition, MarketDefinitionError, validate

        try:
            return validate(msgspec.json.decode(path.read_bytes(), type=MarketDefinition))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MarketDefinitionError(f"invalid market definition {path}: {exc}") from None
    return load(path)


def _config(args: argparse.Namespace) -> GatewayConfig:
    overrides = {
        name: getattr(args, name)
        for name in (
            "messages_per_second",
            "sessions_per_user",
            "open_orders_per_account",
            "outbound_queue_frames",
            "connections_max",
            "pre_logon_connections_max",
            "heartbeat_interval_s",
            "idle_timeout_s",
            "logon_timeout_s",
        )
        if getattr(args, name) is not None
    }
    return GatewayConfig(host=args.host, port=args.port, **overrides).check()


def _serve(args: argparse.Namespace) -> int:
    from gateway.service import serve

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        users = UserDirectory.load(args.users or args.data_dir / DEFAULT_USERS_FILE)
    except UserFileError as exc:
        print(f"cets serve: error: {exc}; not started", file=sys.stderr, flush=True)
        return EXIT_UNREADABLE
    market = None
    if args.market is not None:
        market = load_market(args.market)
    elif not (args.data_dir / MARKET_FILE).exists():
        market = national_market()
    config = _config(args)

    def listening(gateway, role: str = "") -> None:
        print(
            f"{role}gateway listening on {config.host}:{gateway.port} "
            f"(data {args.data_dir}, {len(users)} users, durability {args.durability}, "
            f"last seq {gateway.exchange.last_seq})",
            flush=True,
        )
        if args.fix_port is not None:
            print(f"FIX 4.4 acceptor on {config.host}:{gateway.fix_port}", flush=True)

    def ready(gateway) -> None:
        for line in recovery_lines(gateway.exchange.recovery_report):
            print(line, flush=True)
        if node is None:
            listening(gateway)
            return
        listening(gateway, "follower (read-only) ")  # orders once it holds the lease
        node.ready(gateway)

    node = _replicated_node(args, on_primary=listening)
    options = {"ready": ready}
    if node is not None:
        options.update(node.service_options(), ready=ready)
    try:
        stats = serve(
            args.data_dir,
            users,
            config,
            market=market,
            durability=args.durability,
            sync_interval_s=args.sync_interval_ms / 1000,
            snapshot_every_events=args.snapshot_every or None,
            fix_port=args.fix_port,
            schedule=not args.no_schedule,
            **options,
        )
    except (JournalError, MarketDefinitionError) as exc:  # damage: an operator decides
        print(f"cets serve: error: {exc}; not started", file=sys.stderr, flush=True)
        return EXIT_UNREADABLE
    except ReplicaDivergenceError as exc:
        print(f"cets {args.command}: error: {exc}; not started", file=sys.stderr, flush=True)
        return EXIT_REPLICATION
    finally:
        if node is not None:
            node.close()
    print(f"gateway stopped; stats {msgspec.json.encode(stats).decode()}", flush=True)
    return _replication_outcome(args, node)


def _replication_outcome(args: argparse.Namespace, node) -> int:
    """The exit status after a clean stop: EXIT_REPLICATION (saying why) if the node was
    fenced or stopped following, else 0."""
    if node is None:
        return 0
    if node.fenced is not None:
        print(f"this primary was fenced and acknowledged nothing after: {node.fenced}", flush=True)
        return EXIT_REPLICATION
    if node.failure is not None:
        print(
            f"cets {args.command}: error: stopped following the stream: {node.failure}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_REPLICATION
    return 0


EXIT_UNREADABLE = 3
"""``cets serve`` refused the data directory (a damaged log or market definition)."""
EXIT_REPLICATION = 1
"""A replicated node stopped: fenced as primary, or its log diverged from the stream."""


def recovery_lines(report) -> list[str]:
    """What recovery cut or skipped, one line each (nothing after a clean stop)."""
    if report is None:
        return []
    lines, journal = [], report.journal
    if journal.truncated_segment is not None:
        dropped = journal.dropped_seqs
        seqs = f"; seq {dropped[0]}..{dropped[1]} never acknowledged" if dropped else ""
        lines.append(
            f"recovery cut {journal.truncated_bytes} bytes of unacknowledged tail at "
            f"{journal.truncated_segment} byte offset {journal.truncated_offset}: "
            f"{journal.truncated_reason}{seqs}"
        )
    for skipped in report.snapshots_skipped:
        lines.append(f"recovery skipped snapshot {skipped.path}: {skipped.reason}")
    return lines


def _replicated_node(args: argparse.Namespace, on_primary=None):
    """The node of ``--replication quorum`` or ``cets follow`` (None without replication)."""
    if not args.follower and args.replication == "none":
        return None
    from gateway.replication.node import ReplicatedNode
    from gateway.replication.stream import StreamNames

    names = StreamNames(args.stream, args.replicas, args.lease_ttl_s)
    return ReplicatedNode(
        args.nats.split(","), names, args.node, on_primary=on_primary, replication=args.replication
    )


def _read_secret(args: argparse.Namespace) -> tuple[str, bool]:
    """(secret, generated)."""
    if args.generate_key:
        return generate_api_key(), True
    if args.password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = getpass.getpass("password: ")
        if getpass.getpass("again: ") != secret:
            raise UserFileError("the passwords differ")
    if len(secret) < 8:
        raise UserFileError("a password needs at least 8 characters")
    return secret, False


def _users(args: argparse.Namespace) -> int:
    try:
        directory = UserDirectory.load(args.file)
        if args.action == "list":
            for user in directory:
                state = " (disabled)" if user.disabled else ""
                accounts = ",".join(map(str, user.accounts)) or "-"
                print(f"{user.name}\t{user.role.value}\taccounts {accounts}{state}")
            return 0
        if args.action == "add":
            _add_user(directory, args)
        elif args.action == "remove":
            directory.remove(args.name)
        else:
            user = directory.get(args.name)
            if user is None:
                raise UserFileError(f"no user {args.name!r}")
            directory.put(msgspec.structs.replace(user, disabled=args.action == "disable"))
        directory.save(args.file)
    except UserFileError as exc:
        print(f"users: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_user(directory: UserDirectory, args: argparse.Namespace) -> None:
    if directory.get(args.name) is not None and not args.replace:
        raise UserFileError(f"user {args.name!r} exists (use --replace)")
    secret, generated = _read_secret(args)
    hashed = (
        hash_secret_pbkdf2(secret) if args.pbkdf2 else hash_secret(secret, log2_n=args.scrypt_log2n)
    )
    directory.put(
        User(name=args.name, role=Role(args.role), secret_hash=hashed, accounts=args.account)
    )
    if generated:
        print(f"API key for {args.name} (shown once): {secret}")


PLUGIN_GROUP = "cets.commands"
"""Entry-point group of subcommands contributed by packages above this one."""


def build_parser(prog: str = "cets") -> argparse.ArgumentParser:
    """The whole ``cets`` program."""
    from importlib.metadata import entry_points

    from gateway import demo
    from replay import cli as replay_cli

    parser = argparse.ArgumentParser(
        prog=prog, description="Exchange engine for China's national carbon market."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_command(commands)
    add_commands(commands)
    replay_cli.add_commands(commands)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        plugin.load()(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)

"""Gateway benchmarks over loopback: sustained throughput and open-loop latency.

Theory of operation
-------------------
The server runs as a separate process (``python -m gateway serve``), as in production, so it
has a core of its own; the load generator is a single-threaded ``select`` loop over raw
sockets, with every frame encoded before the clock starts and server frames only peeked at
(their ``type`` and ``request_id``), so that the client costs as little as possible.

* :func:`run_throughput`: ``clients`` connections each keep ``window`` orders in flight
  (pipelining); the result is acknowledged orders per second over the whole run.
* :func:`run_latency`: one connection sends orders at a fixed offered rate on a fixed
  schedule (open loop: a late answer never delays the next send), and the latency of each
  order is measured from the time it was *scheduled* to be sent to the arrival of its Ack,
  so a stall of the server shows in the percentiles instead of hiding as coordinated
  omission.  The client and the server share the machine's cores, so the result also says
  how late the client sent (``send_lag_us_*``), how much CPU each used and how long each
  waited for a CPU while ready to run (``*_run_queue_ms``, from the kernel's schedstat): a
  tail that comes with seconds of run-queue waiting is the machine's, not the gateway's.

* :func:`run_inprocess`: the server's CPU per order with no sockets and no client - the
  gateway's intake (frame split, decode, checks), the engine and log, and the routing and
  encoding of every answer, driven in one process with the throughput workload - the
  steadiest measure of the gateway's own code on a machine shared with other work.
* :func:`run_abuse`: the open-loop latency of an honest client while another client abuses
  the gateway within its limits (a storm of QuotesRequests, Subscribe/Unsubscribe churn, a
  resume from seq 1 on a long log again and again, pipelined garbage requests, a flood of
  connections that never log on), each kind against the same server, with a baseline.
* :func:`run_latency_floor`: the same open-loop client against :func:`echo_server`, a
  do-nothing server (same framing, same decoder, same event loop) that answers each order at
  once: what the machine, the loopback and the client cost by themselves.  On a shared VM it
  is the floor under the gateway's figures, and it moves with the machine's noise.

The workload alternates passive DAY limit orders and aggressive IOC orders around the
reference price, so about half the orders trade and the book stays bounded.  After the run
the server is stopped gracefully and the log is read back: the number of batches gives the
mean batch size (the group commit at work), and a digest of the logged commands lets a
caller see that a fast run did the same work as a slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from engine.core import limits
from engine.core import schema as s
from engine.core.market import Capacity, Instrument, MarketDefinition, validate
from engine.durable import journal as jr
from engine.durable.sequencer import MARKET_FILE
from gateway import protocol as p
from gateway.fastpath import compile_kernels
from gateway.protocol import Role
from gateway.server import GatewayStats
from gateway.users import User, UserDirectory, hash_secret

SYMBOL = "CEA-BENCH"
REFERENCE_TICKS = 6_000
PASSWORD = "bench-password"
BENCH_HASH_LOG2_N = 4
"""Cheap hashes: logons are not what is measured."""
RECV_BYTES = 1 << 16
"""Most a client's ``recv`` asks for at once.  Not more: CPython allocates the whole size
for every call (measured: ``recv(1 << 20)`` costs ~9 us more than ``recv(1 << 16)``, a
1 MiB allocation each time), and the load generator shares the machine's cores with the
server it measures.  Larger answers arrive over several calls; the frame reader joins them."""


def cpu_clock() -> float:
    """This thread's CPU seconds (the in-process figures: on a machine shared with other work
    they count the gateway's own work, not the time other processes held the core)."""
    return time.thread_time()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_s(pid: int) -> float:
    """Seconds the threads of a process have spent ready to run but waiting for a CPU
    (Linux ``/proc/<pid>/task/*/schedstat``; 0 where the kernel does not keep it).  On a
    machine whose cores are shared with other work, every such wait of the server or the
    client while an order is in flight is part of that order's latency."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # a thread gone meanwhile, or no schedstat
            pass
    return total / 1e9


class ThroughputResult(msgspec.Struct, frozen=True):
    clients: int
    window: int
    orders: int
    acks: int
    rejects: int
    seconds: float
    orders_per_s: float
    server_cpu_s: float
    """CPU time the server process spent during the run (user + system)."""
    server_cpu_us_per_order: float
    batches: int
    mean_batch: float
    sync_us_p50: float
    """The server's log syncs during the run (``GatewayStats``): a run whose server CPU per
    second is well below one core was waiting on the storage, not computing."""
    sync_us_p99: float
    sync_us_max: float
    durability: str
    log_digest: str
    machine: str


class LatencyResult(msgspec.Struct, frozen=True):
    offered_per_s: int
    orders: int
    acks: int
    seconds: float
    achieved_per_s: float
    latency_us_p50: float
    latency_us_p99: float
    latency_us_p999: float
    latency_us_max: float
    gateway_latency_us_p50: float
    """The gateway's own part (``GatewayStats``: oldest request of a batch, decoded to
    answered), over every batch of the run including the warm-up."""
    gateway_latency_us_p99: float
    gateway_latency_us_p999: float
    fsync_us_p50: float
    """``fdatasync`` of a small overwrite in the data directory's file system, just before
    the run: the floor of a batch's latency under ``durability="batch"``."""
    sync_us_p50: float
    """The server's own log syncs during the run (``GatewayStats``, warm-up included): when
    the storage stalls, every order waiting on that batch or arriving behind it is late."""
    sync_us_p99: float
    sync_us_p999: float
    sync_us_max: float
    batches: int
    mean_batch: float
    durability: str
    log_digest: str
    machine: str
    send_lag_us_p99: float = 0.0
    """How late the client sent its orders (actual send - scheduled send), p99 and max:
    part of the latency above, the client's own (it shares the machine's cores)."""
    send_lag_us_max: float = 0.0
    server_cpu_s: float = 0.0
    """CPU the server process used during the measured run (user + system)."""
    client_cpu_s: float = 0.0
    """CPU this (client) process used during the measured run."""
    server_run_queue_ms: float = 0.0
    """Time the server's threads were ready to run but waited for a CPU during the run
    (:func:`run_queue_s`): when it is large, the tail is the machine's, not the gateway's."""
    client_run_queue_ms: float = 0.0


class InProcessResult(msgspec.Struct, frozen=True):
    """Server CPU per order without the network (:func:`run_inprocess`), best of ``runs``."""

    clients: int
    batch_orders: int
    orders: int
    runs: int
    intake_us_per_order: float
    """Frame split, decode, permission and limit checks, batching."""
    flush_us_per_order: float
    """Engine and log (durability ``none``), then the routing and encoding of every report,
    Ack and market-data update, handed to the (discarding) transports."""
    total_us_per_order: float
    sequence_us_per_order: float
    """Part of the flush: ``Sequencer.submit_records`` (engine, log, checkpoint digest)."""
    report_us_per_order: float
    """Part of the flush: ``GatewayCore.batch_committed`` (order tracker, the fan-out of
    reports and Acks, market data).  The rest of the flush makes the batch's command records
    and annotation blob and hands the frames to the transports."""
    out_bytes_per_order: float
    machine: str


class FloorResult(msgspec.Struct, frozen=True):
    """Open-loop latency of :func:`echo_server` (no engine, no log, no routing)."""

    offered_per_s: int
    orders: int
    acks: int
    achieved_per_s: float
    latency_us_p50: float
    latency_us_p99: float
    latency_us_p999: float
    latency_us_max: float
    machine: str


def bench_market(accounts: int = 64) -> MarketDefinition:
    """One instrument, pure matching (no registry), ±10 % band around 60.00 CNY."""
    return validate(
        MarketDefinition(
            name="gateway bench",
            instruments=[
                Instrument(symbol=SYMBOL, reference_price_ticks=REFERENCE_TICKS, band_bps=1_000)
            ],
            capacity=Capacity(accounts=accounts, resting_orders=1 << 20, max_price_ticks=20_000),
        )
    )


def machine_line() -> str:
    from bench.machine import describe, line

    return line(describe())


# ------------------------------------------------------------------------------------------
# The server process
# ------------------------------------------------------------------------------------------


class ServerProcess:
    """``python -m gateway serve`` on a free loopback port, in its own process.

    Parameters
    ----------
    data_dir : Path
        Created with the bench market and the users ``op`` (operator) and ``t0`` … ``tN-1``
        (traders bound to accounts 1 … N) if it has no market yet.
    """

    def __init__(
        self,
        data_dir: Path,
        traders: int,
        durability: str,
        extra_args: tuple[str, ...] = (),
        command: str = "serve",
    ) -> None:
        self.command = command
        self.data_dir = Path(data_dir)
        self.durability = durability
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.fix_port = 0
        self.stats: GatewayStats | None = None
        """The server's own counters and latency, read from its last line at a clean stop."""
        if not (self.data_dir / MARKET_FILE).exists():
            write_bench_users(self.data_dir, traders)
            market_path = self.data_dir / "bench-market.json"
            market_path.write_bytes(msgspec.json.encode(bench_market(max(64, traders + 2))))

    def start(self, timeout: float = 120.0) -> ServerProcess:
        args = [
            sys.executable,
            "-m",
            "gateway",
            self.command,
            "--data-dir",
            str(self.data_dir),
            "--port",
            "0",
            "--durability",
            self.durability,
            "--log-level",
            "WARNING",
            "--snapshot-every",
            "0",
            "--no-schedule",
            *self.extra_args,
        ]
        market_path = self.data_dir / "bench-market.json"
        if not (self.data_dir / MARKET_FILE).exists():
            args += ["--market", str(market_path)]
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, cwd=root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"gateway exited with {self.process.wait()}")
            if line.startswith("gateway listening on"):
                self.port = int(line.split()[3].rsplit(":", 1)[1])
                if "--fix-port" in self.extra_args:  # the next line names the FIX port
                    self.fix_port = int(self.process.stdout.readline().split()[-1].rsplit(":")[1])
                return self
        raise TimeoutError("gateway did not start")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown); returns the exit status."""
        if self.process is None:
            return 0
        self.process.terminate()
        try:
            rest = self.process.communicate(timeout=timeout)[0]
        finally:
            self.process.stdout.close()
        for line in rest.splitlines():
            if line.startswith("gateway stopped; stats "):
                self.stats = msgspec.json.decode(line.split("stats ", 1)[1], type=GatewayStats)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()


def write_bench_users(data_dir: Path, traders: int) -> None:
    """``op`` (operator) and traders ``t0`` … bound to accounts 1 …, password PASSWORD."""
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = hash_secret(PASSWORD, log2_n=BENCH_HASH_LOG2_N)
    users = [User(name="op", role=Role.OPERATOR, secret_hash=secret)]
    users += [
        User(name=f"t{i}", role=Role.TRADER, secret_hash=secret, accounts=[i + 1])
        for i in range(traders)
    ]
    UserDirectory(users).save(data_dir / "users.json")


def log_summary(data_dir: Path) -> tuple[int, int, str]:
    """(batches, commands, digest of the commands without seq and time) of a stopped server."""
    digest = hashlib.blake2b(digest_size=16)
    batches = commands = 0
    for batch in jr.read_log(Path(data_dir) / "log"):
        records = batch.commands.copy()
        records["seq"], records["ts_ns"] = 0, 0
        digest.update(records.tobytes())
        batches += 1
        commands += batch.count
    return batches, commands, digest.hexdigest()


# ------------------------------------------------------------------------------------------
# A minimal raw-socket client
# ------------------------------------------------------------------------------------------


class _Peek(msgspec.Struct):
    type: int
    request_id: int = 0
    code: int = 0


_peek = msgspec.msgpack.Decoder(_Peek).decode
ACK, REJECT, LOGON_ACCEPTED = 106, 104, 101


class RawSession:
    """A blocking socket that logs on and then splits frames (peeking at type/request id)."""

    def __init__(self, port: int, user: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = p.FrameReader(limits.OUTBOUND_FRAME_BYTES_MAX)
        self.sock.sendall(
            p.encode(p.Logon(user=user, password=PASSWORD, protocol_version=p.PROTOCOL_VERSION))
        )
        while True:
            frames = self.receive()
            if frames and frames[0].type == LOGON_ACCEPTED:
                break
            if frames:
                raise RuntimeError(f"logon of {user} failed: {frames[0]}")
        self.sock.setblocking(False)

    def receive(self) -> list[_Peek]:
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise ConnectionError("server closed the connection")
        self.reader.receive_data(data)
        out: list[_Peek] = []
        append = out.append
        self.reader.drain(lambda body: append(_peek(body)) or True)
        return out

    def close(self) -> None:
        self.sock.close()


def _send_all(sock: socket.socket, data: bytes) -> None:
    """Send on a non-blocking socket, waiting for room only when its buffer is full (the
    load generator's two ``setblocking`` calls per send cost it more than the send)."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            select.select([], [sock], [], 10.0)


def _precise_timers() -> None:
    """Ask Linux to wake this process's timed waits within 1 us (timer slack, 50 us by
    default), so the open-loop sender is on schedule; a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(29, 1_000, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def order_frames(
    client: int, count: int, first_request_id: int = 1, prefix: str = "b"
) -> list[bytes]:
    """The workload of one client, encoded: passive DAY orders and aggressive IOC orders."""
    frames = []
    for k in range(count):
        side = s.Side.BUY if (k // 2 + client) % 2 else s.Side.SELL
        sign = -1 if side == s.Side.BUY else 1
        if k % 2 == 0:
            price, tif = REFERENCE_TICKS + sign * (1 + (k * 7) % 20), s.TimeInForce.DAY
            qty, stp = 10 + k % 7, s.StpMode.CANCEL_INCOMING
        else:  # takes more than a passive order rests, and clears its own: the book is bounded
            price, tif, qty = REFERENCE_TICKS - sign * 25, s.TimeInForce.IOC, 25
            stp = s.StpMode.CANCEL_RESTING
        frames.append(
            p.encode(
                p.NewOrder(
                    request_id=first_request_id + k,
                    client_order_id=f"{prefix}{client}-{k}",
                    instrument=SYMBOL,
                    side=int(side),
                    qty_t=qty,
                    price_ticks=price,
                    tif=int(tif),
                    stp=int(stp),
                )
            )
        )
    return frames


def _open_market(port: int) -> None:
    session = RawSession(port, "op")
    session.sock.setblocking(True)
    session.sock.sendall(
        p.encode(p.EngineRequest(request_id=1, command=s.OpenSession(trading_date=20250102)))
    )
    while not any(f.type in (ACK, REJECT) for f in session.receive()):
        pass
    session.close()


# ------------------------------------------------------------------------------------------
# Throughput
# ------------------------------------------------------------------------------------------


def _pump(sessions: list[RawSession], frames: list[list[bytes]], window: int) -> tuple[int, int]:
    """Keep ``window`` orders in flight per session until all are answered."""
    sent = [0] * len(sessions)
    answered = [0] * len(sessions)
    rejects = 0
    by_fd = {session.sock.fileno(): i for i, session in enumerate(sessions)}
    total = sum(len(f) for f in frames)

    def top_up(i: int) -> None:
        start, stop = sent[i], min(len(frames[i]), answered[i] + window)
        if stop > start:
            _send_all(sessions[i].sock, b"".join(frames[i][start:stop]))
            sent[i] = stop

    for i in range(len(sessions)):
        top_up(i)
    done = 0
    while done < total:
        readable, _, _ = select.select(list(by_fd), [], [], 10.0)
        if not readable:
            raise TimeoutError("no answer from the gateway for 10 s")
        for fd in readable:
            i = by_fd[fd]
            for frame in sessions[i].receive():
                if frame.type == ACK or frame.type == REJECT:
                    answered[i] += 1
                    done += 1
                    rejects += frame.type == REJECT
            top_up(i)
    return done, rejects


def run_throughput(
    clients: int = 4,
    orders_per_client: int = 25_000,
    window: int = 500,
    durability: str = "batch",
    data_dir: str | Path | None = None,
    server_args: tuple[str, ...] = (),
) -> ThroughputResult:
    """Sustained acknowledged orders per second from ``clients`` pipelining connections.

    Parameters
    ----------
    clients : int
        Connections, each a trader with its own account.
    orders_per_client : int
    window : int
        Orders each connection keeps in flight.
    durability : str
        The server's log policy (``"batch"``: sync before every acknowledgement).
    data_dir : path, optional
        A fresh directory (default: a temporary one, removed afterwards).
    server_args : tuple of str
        More ``cets serve`` arguments (``bench replication``: ``--replication quorum`` …).
    """
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        directory = Path(data_dir) if data_dir is not None else Path(tmp) / "data"
        frames = [order_frames(i, orders_per_client) for i in range(clients)]
        with ServerProcess(directory, clients, durability, server_args) as server:
            _open_market(server.port)
            sessions = [RawSession(server.port, f"t{i}") for i in range(clients)]
            try:
                cpu = process_cpu_s(server.process.pid)
                start = time.perf_counter()
                acks, rejects = _pump(sessions, frames, window)
                seconds = time.perf_counter() - start
                cpu = process_cpu_s(server.process.pid) - cpu
            finally:
                for session in sessions:
                    session.close()
        stats = server.stats
        batches, _, digest = log_summary(directory)
    orders = clients * orders_per_client
    return ThroughputResult(
        clients=clients,
        window=window,
        orders=orders,
        acks=acks,
        rejects=rejects,
        seconds=round(seconds, 4),
        orders_per_s=round(orders / seconds, 1),
        server_cpu_s=round(cpu, 3),
        server_cpu_us_per_order=round(cpu / orders * 1e6, 2),
        batches=batches,
        mean_batch=round(orders / max(batches - 1, 1), 2),
        sync_us_p50=stats.sync_us_p50 if stats else 0.0,
        sync_us_p99=stats.sync_us_p99 if stats else 0.0,
        sync_us_max=stats.sync_us_max if stats else 0.0,
        durability=durability,
        log_digest=digest,
        machine=machine_line(),
    )


# ------------------------------------------------------------------------------------------
# Latency
# ------------------------------------------------------------------------------------------


def fsync_probe_us(directory: Path, count: int = 50) -> float:
    """Median ``fdatasync`` time of a 1 KiB overwrite in ``directory``, in microseconds."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, bytes(1 << 16))
        os.fsync(fd)
        times = []
        for i in range(count):
            os.pwrite(fd, b"x" * 1024, (i * 1024) % (1 << 16))
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return round(sorted(times)[count // 2] * 1e6, 1)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


class StalledError(TimeoutError):
    """No answer for ``stall_s`` after the last order was sent; ``latencies`` so far."""

    def __init__(self, stall_s: float, latencies: list[float]) -> None:
        super().__init__(f"no answer from the gateway for {stall_s:g} s")
        self.latencies = latencies


def _open_loop(
    session: RawSession,
    frames: list[bytes],
    rate: int,
    stall_s: float = 5.0,
    send_lags: list[float] | None = None,
    quantum_s: float = 0.0,
) -> tuple[list[float], float]:
    """Send frame k at start + k / rate; return latencies (us) from schedule to Ack.  Raises
    :class:`StalledError` when no answer comes for ``stall_s`` after the last send.  With
    ``send_lags``, the lateness of each burst's first order (us) is appended to it.  The
    client never sleeps less than ``quantum_s`` waiting for its next send (answers still wake
    it at once): the orders due meanwhile go out together, up to ``quantum_s`` late - and
    that lateness is in their latency, which counts from the schedule."""
    _precise_timers()
    with _no_collections():
        return _open_loop_run(session, frames, rate, stall_s, send_lags, quantum_s)


@contextlib.contextmanager
def _no_collections():
    """No cyclic garbage collection in the load generator while it measures: it allocates a
    few objects per answer, all freed by reference counting, and a process that imported the
    engine holds enough objects that a full collection stops it for ~25-30 ms (measured: its
    sends then ran 30 ms late, the whole of the run's p99).  Collected once before instead."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _open_loop_run(
    session: RawSession,
    frames: list[bytes],
    rate: int,
    stall_s: float,
    send_lags: list[float] | None,
    quantum_s: float,
) -> tuple[list[float], float]:
    n = len(frames)
    scheduled = [0.0] * (n + 1)
    latencies: list[float] = []
    sock = session.sock
    clock = time.perf_counter
    start = clock() + 0.01
    k = 0
    while len(latencies) < n:
        now = clock()
        burst = []
        while k < n and start + k / rate <= now:
            scheduled[k + 1] = start + k / rate
            burst.append(frames[k])
            k += 1
        if burst:
            _send_all(sock, b"".join(burst))
            if send_lags is not None:
                send_lags.append((clock() - scheduled[k + 1 - len(burst)]) * 1e6)
        timeout = max(quantum_s, start + k / rate - clock()) if k < n else stall_s
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            arrived = clock()
            for frame in session.receive():
                if frame.type == ACK or frame.type == REJECT:
                    latencies.append((arrived - scheduled[frame.request_id]) * 1e6)
        elif k >= n:
            raise StalledError(stall_s, latencies)
    return latencies, clock() - start


def run_latency(
    rate: int = 10_000,
    seconds: float = 5.0,
    durability: str = "batch",
    data_dir: str | Path | None = None,
    warmup: int = 2_000,
    server_args: tuple[str, ...] = (),
    send_quantum_us: float = 0.0,
) -> LatencyResult:
    """Order-to-Ack latency percentiles at a fixed offered rate (open loop).

    Parameters
    ----------
    rate : int
        Orders per second offered, on a fixed schedule.
    seconds : float
        Length of the run (``rate * seconds`` orders).
    durability : str
        ``"batch"`` syncs the log before every acknowledgement.
    warmup : int
        Orders sent (closed loop) before the measured run, to warm the server's code paths.
    server_args : tuple of str
        More ``cets serve`` arguments.
    """
    n = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        directory = Path(data_dir) if data_dir is not None else Path(tmp) / "data"
        frames = order_frames(0, n, prefix="l")
        fsync_us = fsync_probe_us(directory.parent / "probe")
        with ServerProcess(directory, 1, durability, server_args) as server:
            _open_market(server.port)
            warm = RawSession(server.port, "t0")
            _pump([warm], [order_frames(0, warmup, 1)], 50)
            warm.close()
            session = RawSession(server.port, "t0")
            pid, lags = server.process.pid, []
            before = _usage(pid)
            try:
                latencies, elapsed = _open_loop(
                    session, frames, rate, send_lags=lags, quantum_s=send_quantum_us / 1e6
                )
                usage = [now - then for now, then in zip(_usage(pid), before)]
            finally:
                session.close()
        server.stop()
        batches, _, digest = log_summary(directory)
    latencies.sort()
    lags.sort()
    stats = server.stats
    return LatencyResult(
        offered_per_s=rate,
        orders=n,
        acks=len(latencies),
        seconds=round(elapsed, 4),
        achieved_per_s=round(len(latencies) / elapsed, 1),
        latency_us_p50=round(_percentile(latencies, 0.50), 1),
        latency_us_p99=round(_percentile(latencies, 0.99), 1),
        latency_us_p999=round(_percentile(latencies, 0.999), 1),
        latency_us_max=round(latencies[-1] if latencies else 0.0, 1),
        gateway_latency_us_p50=stats.batch_latency_us_p50 if stats else 0.0,
        gateway_latency_us_p99=stats.batch_latency_us_p99 if stats else 0.0,
        gateway_latency_us_p999=stats.batch_latency_us_p999 if stats else 0.0,
        fsync_us_p50=fsync_us,
        sync_us_p50=stats.sync_us_p50 if stats else 0.0,
        sync_us_p99=stats.sync_us_p99 if stats else 0.0,
        sync_us_p999=stats.sync_us_p999 if stats else 0.0,
        sync_us_max=stats.sync_us_max if stats else 0.0,
        batches=batches,
        mean_batch=round((n + warmup + 1) / max(batches, 1), 2),
        durability=durability,
        log_digest=digest,
        machine=machine_line(),
        send_lag_us_p99=round(_percentile(lags, 0.99), 1),
        send_lag_us_max=round(lags[-1] if lags else 0.0, 1),
        server_cpu_s=round(usage[0], 3),
        client_cpu_s=round(usage[1], 3),
        server_run_queue_ms=round(usage[2] * 1e3, 1),
        client_run_queue_ms=round(usage[3] * 1e3, 1),
    )


def _usage(server_pid: int) -> tuple[float, float, float, float]:
    """CPU seconds of the server and of this process, and their run-queue waits (seconds)."""
    return (
        process_cpu_s(server_pid),
        time.process_time(),
        run_queue_s(server_pid),
        run_queue_s(os.getpid()),
    )


# ------------------------------------------------------------------------------------------
# In-process: the gateway's own CPU, no sockets
# ------------------------------------------------------------------------------------------


class _NullTransport:
    """Counts what the gateway writes and discards it."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> None:
        self.bytes += len(data)

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def get_extra_info(self, name: str):
        return None


def run_inprocess(
    clients: int = 4, batch_orders: int = 250, batches: int = 100, runs: int = 5
) -> InProcessResult:
    """Drive a :class:`~gateway.server.Gateway` without its event loop's sockets: each
    round feeds ``batch_orders`` encoded orders to each of ``clients`` logged-on sessions
    (``Session.receive_data``, as ``data_received`` does), then flushes the batch.  The first
    fifth of each run warms up; the result is the best run (least disturbed by the machine).
    Times are the thread's CPU time (:func:`cpu_clock`; one thread does all the work).
    """

    from engine.durable.sequencer import Sequencer
    from gateway.server import Connection, Gateway, GatewayConfig
    from gateway.service import GC_GEN0_THRESHOLD

    best = None
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="gw-inproc-") as tmp:
            directory = Path(tmp)
            write_bench_users(directory, clients)
            users = UserDirectory.load(directory / "users.json")
            exchange = Sequencer.open(
                directory / "data",
                bench_market(max(64, clients + 2)),
                durability="none",
                snapshot_every_events=None,
            )
            loop = asyncio.new_event_loop()
            try:
                exchange.submit([s.OpenSession(trading_date=20250102)])
                gateway = Gateway(exchange, users, GatewayConfig(port=0))
                gateway.loop = loop
                compile_kernels(gateway.core._symbols, wait=True)  # measure the compiled router
                sessions = []
                for i in range(clients):
                    connection = Connection(gateway)
                    connection.connection_made(_NullTransport())
                    gateway.core.activate(
                        connection.session,
                        users.get(f"t{i}"),
                        p.Logon(
                            user=f"t{i}", password=PASSWORD, protocol_version=p.PROTOCOL_VERSION
                        ),
                    )
                    connection.flush_out()
                    sessions.append(connection)
                frames = [
                    order_frames(i, batch_orders * batches, prefix=f"r{run}-")
                    for i in range(clients)
                ]
                parts = _time_parts(exchange, gateway.core)
                thresholds = gc.get_threshold()
                gc.set_threshold(GC_GEN0_THRESHOLD, *thresholds[1:])  # as the server runs
                intake = flush = 0.0
                measured = 0
                try:
                    for b in range(batches):
                        chunks = [
                            b"".join(f[b * batch_orders : (b + 1) * batch_orders]) for f in frames
                        ]
                        for connection in sessions:
                            connection.session.tokens = float(batch_orders)  # no throttling
                        started = cpu_clock()
                        for connection, chunk in zip(sessions, chunks, strict=True):
                            session = connection.session  # its clock stands still: no refill
                            session.receive_data(chunk, session.last_received)
                            while session.yielded:  # the later turns the server would give
                                session.resume()
                        if b == batches // 5:
                            parts.update(sequence=0.0, report=0.0)  # warm-up over
                        decoded = cpu_clock()
                        gateway._flush()
                        done = cpu_clock()
                        if b >= batches // 5:
                            intake += decoded - started
                            flush += done - decoded
                            measured += clients * batch_orders
                finally:
                    gc.set_threshold(*thresholds)
                written = sum(c.transport.bytes for c in sessions)
                if gateway.commands_submitted != clients * batch_orders * batches:
                    raise RuntimeError("not every order was submitted")
            finally:
                loop.close()
                exchange.close()
        result = InProcessResult(
            clients=clients,
            batch_orders=batch_orders,
            orders=clients * batch_orders * batches,
            runs=runs,
            intake_us_per_order=round(intake / measured * 1e6, 2),
            flush_us_per_order=round(flush / measured * 1e6, 2),
            total_us_per_order=round((intake + flush) / measured * 1e6, 2),
            sequence_us_per_order=round(parts["sequence"] / measured * 1e6, 2),
            report_us_per_order=round(parts["report"] / measured * 1e6, 2),
            out_bytes_per_order=round(written / (clients * batch_orders * batches), 1),
            machine=machine_line(),
        )
        if best is None or result.total_us_per_order < best.total_us_per_order:
            best = result
    return best


def _time_parts(exchange, core) -> dict[str, float]:
    """Time the sequencing and the reporting of each batch (seconds, summed into the dict
    returned) by wrapping the two calls on these instances."""
    parts = {"sequence": 0.0, "report": 0.0}
    submit_records, batch_committed = exchange.submit_records, core.batch_committed

    def timed_submit(*args, **kwargs):
        started, reported = cpu_clock(), parts["report"]
        try:
            return submit_records(*args, **kwargs)
        finally:  # the routing runs inside (the gateway's ``prepare``): counted as the report's
            parts["sequence"] += cpu_clock() - started - (parts["report"] - reported)

    def timed_committed(*args):
        started = cpu_clock()
        try:
            return batch_committed(*args)
        finally:
            parts["report"] += cpu_clock() - started

    exchange.submit_records, core.batch_committed = timed_submit, timed_committed
    return parts


# ------------------------------------------------------------------------------------------
# The floor: a do-nothing echo server
# ------------------------------------------------------------------------------------------


class _Echo(asyncio.Protocol):
    """Splits frames and decodes them as the gateway does, answers a Logon with
    LogonAccepted's type and every other message with an Ack of its request id."""

    def __init__(self) -> None:
        self.reader = p.FrameReader(limits.FRAME_BYTES_MAX)
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        out = bytearray()
        self.reader.receive_data(data)
        self.reader.drain(lambda body: self._answer(body, out))
        if out:
            self.transport.write(out)

    @staticmethod
    def _answer(body: memoryview, out: bytearray) -> bool:
        message = p.decode_client(body)
        if type(message) is p.Logon:
            p.append_frame(out, _Peek(type=LOGON_ACCEPTED))
        else:
            p.append_frame(out, p.Ack(getattr(message, "request_id", 0), 0))
        return True


def echo_server() -> None:
    """``python -m bench.gateway echo-server``: serve :class:`_Echo` on a free loopback port
    (printing ``echo listening on 127.0.0.1:PORT``) until SIGTERM."""
    from gateway.service import new_event_loop

    loop = new_event_loop()
    server = loop.run_until_complete(loop.create_server(_Echo, "127.0.0.1", 0))
    print(f"echo listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.run_until_complete(stop)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def run_latency_floor(
    rate: int = 10_000,
    seconds: float = 5.0,
    warmup: int = 2_000,
) -> FloorResult:
    """:func:`run_latency`'s client and schedule against :func:`echo_server` in its own
    process: the order-to-answer latency of everything but the gateway."""
    n = int(rate * seconds)
    frames = order_frames(0, n, prefix="l")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway", "echo-server"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        line = process.stdout.readline()
        if not line.startswith("echo listening on"):
            raise RuntimeError(f"echo server did not start: {line!r}")
        port = int(line.split()[3].rsplit(":", 1)[1])
        warm = RawSession(port, "t0")
        _pump([warm], [order_frames(0, warmup, 1)], 50)
        warm.close()
        session = RawSession(port, "t0")
        try:
            latencies, elapsed = _open_loop(session, frames, rate)
        finally:
            session.close()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    latencies.sort()
    return FloorResult(
        offered_per_s=rate,
        orders=n,
        acks=len(latencies),
        achieved_per_s=round(len(latencies) / elapsed, 1),
        latency_us_p50=round(_percentile(latencies, 0.50), 1),
        latency_us_p99=round(_percentile(latencies, 0.99), 1),
        latency_us_p999=round(_percentile(latencies, 0.999), 1),
        latency_us_max=round(latencies[-1] if latencies else 0.0, 1),
        machine=machine_line(),
    )


# ------------------------------------------------------------------------------------------
# FIX 4.4
# ------------------------------------------------------------------------------------------


class FixResult(msgspec.Struct, frozen=True):
    """One pipelining FIX 4.4 session: NewOrderSingle -> ExecutionReport (New or Rejected)."""

    orders: int
    window: int
    seconds: float
    orders_per_s: float
    latency_us_p50: float
    latency_us_p99: float
    durability: str
    accepted: int = 0
    """Orders answered New (ExecType 0)."""
    rejected: int = 0
    """Orders answered Rejected (ExecType 8): by the engine or by the gateway."""
    reject_share: float = 0.0
    """``rejected / orders``: near 0 when the workload is the native one (its orders carry
    their self-trade prevention mode in custom tag 20004, so the book stays bounded)."""
    fills: int = 0
    """Trade ExecutionReports (ExecType F) received while the orders were being answered (0:
    one session trades for one account, whose crossing orders meet its own self-trade
    prevention, not a counterparty)."""


def run_fix(orders: int = 10_000, window: int = 200, durability: str = "batch") -> FixResult:
    """FIX orders per second and order-to-ExecutionReport latency (the native workload of
    :func:`order_frames`, as NewOrderSingle with its self-trade prevention mode in custom tag
    SelfTradePrevention (20004), one session keeping ``window`` in flight); the share of
    rejected orders is reported beside the speed."""
    from gateway.fix import codec as fix
    from gateway.fix.session import STP_MODE

    def message(frame: bytes, seq: int) -> bytes:
        order = p.decode_client(frame[4:])
        fields = [(11, order.client_order_id), (55, order.instrument), (54, order.side),
                  (38, order.qty_t), (40, "2"), (44, fix.format_fen(order.price_ticks)),
                  (59, "3" if order.tif == s.TimeInForce.IOC else "0"),
                  (STP_MODE, order.stp)]  # fmt: skip
        return fix.encode("D", seq, "BENCH", "CETS", "20250102-09:30:00.000", fields)

    with tempfile.TemporaryDirectory(prefix="gw-fix-") as tmp:
        with ServerProcess(Path(tmp) / "data", 1, durability, ("--fix-port", "0")) as server:
            _open_market(server.port)
            sock = socket.create_connection(("127.0.0.1", server.fix_port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader, sent_at, latencies = fix.FixReader(), {}, []
            counts = {"0": 0, "8": 0, "F": 0}
            logon = [(98, 0), (108, 30), (553, "t0"), (554, PASSWORD)]
            sock.sendall(fix.encode("A", 1, "BENCH", "CETS", "20250102-09:30:00.000", logon))
            frames = [message(f, k + 2) for k, f in enumerate(order_frames(0, orders, prefix="f"))]
            sent = answered = 0
            start = time.perf_counter()
            while answered < orders:
                stop = min(orders, answered + window)
                if stop > sent:
                    now = time.perf_counter()
                    sent_at.update((k, now) for k in range(sent, stop))
                    _send_all(sock, b"".join(frames[sent:stop]))
                    sent = stop
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionError(
                        f"the FIX session was closed after {answered} of {orders} orders"
                    )
                reader.receive_data(data)
                while (report := reader.next()) is not None:
                    exec_type = report.get(150) if report.msg_type == "8" else None
                    if exec_type in counts:
                        counts[exec_type] += 1
                    if exec_type in ("0", "8"):
                        k = int(report.fields[11].rsplit("-", 1)[1])
                        latencies.append(time.perf_counter() - sent_at.pop(k))
                        answered += 1
            seconds = time.perf_counter() - start
            sock.close()
    latencies.sort()
    return FixResult(
        orders=orders,
        window=window,
        seconds=round(seconds, 4),
        orders_per_s=round(orders / seconds, 1),
        latency_us_p50=round(_percentile(latencies, 0.5) * 1e6, 1),
        latency_us_p99=round(_percentile(latencies, 0.99) * 1e6, 1),
        durability=durability,
        accepted=counts["0"],
        rejected=counts["8"],
        reject_share=round(counts["8"] / orders, 4),
        fills=counts["F"],
    )


# ------------------------------------------------------------------------------------------
# Abuse: honest latency beside abusive sessions
# ------------------------------------------------------------------------------------------

ABUSE_KINDS = ("none", "quotes", "subscribe", "resume", "garbage", "prelogon")
"""What the abusive client does (``none``: nothing, the baseline)."""


class AbuseResult(msgspec.Struct, frozen=True):
    """Honest order-to-Ack latency while one client abuses the gateway in one way."""

    abuse: str
    offered_per_s: int
    orders: int
    acks: int
    latency_us_p50: float
    latency_us_p99: float
    latency_us_p999: float
    latency_us_max: float
    abusive_frames_sent: int
    """Frames (or connections, for ``prelogon``; resumes, for ``resume``) the abuser got in."""
    stalled: bool
    """The honest client went ``stall_s`` without an answer (the run was cut: ``acks`` short,
    the percentiles of the answers it got)."""
    book_levels: int
    log_commands: int
    durability: str
    machine: str


def _abusive_frames(kind: str, count: int) -> bytes:
    if kind == "quotes":
        frames = [p.QuotesRequest(request_id=i, instrument=SYMBOL) for i in range(count)]
    elif kind == "subscribe":
        frames = [
            (p.Subscribe if i % 2 == 0 else p.Unsubscribe)(request_id=i, instrument=SYMBOL)
            for i in range(count)
        ]
    else:  # well-formed garbage: cancels of orders that do not exist
        frames = [p.CancelRequest(request_id=i, client_order_id=f"x{i}") for i in range(count)]
    return b"".join(p.encode(frame) for frame in frames)


def _flood(port: int, kind: str, stop, sent) -> None:
    """Pipeline requests of ``kind`` as fast as the server takes them, draining the answers
    unread; log on again when the server drops the connection (as a slow consumer)."""
    chunk = _abusive_frames(kind, 4_000)
    while not stop.is_set():
        session = RawSession(port, "t2")
        try:
            _flood_one(session.sock, chunk, stop, sent)
        except ConnectionError:
            continue
        finally:
            session.close()


def _flood_one(sock: socket.socket, chunk: bytes, stop, sent) -> None:
    view = memoryview(b"")
    while not stop.is_set():
        if not view:
            view = memoryview(chunk)
            sent.value += 4_000
        readable, writable, _ = select.select([sock], [sock], [], 0.1)
        while readable:
            try:
                if not sock.recv(RECV_BYTES):
                    raise ConnectionResetError("closed by the server")
            except BlockingIOError:
                break
        if writable:
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                pass


def _resume_again(port: int, stop, sent) -> None:
    """Log on with resume_from_seq=1, read the whole replay, log off; again and again."""
    while not stop.is_set():
        sock = socket.create_connection(("127.0.0.1", port))
        logon = p.Logon(user="t2", password=PASSWORD, protocol_version=1, resume_from_seq=1)
        sock.sendall(p.encode(logon))
        reader, done = p.FrameReader(limits.OUTBOUND_FRAME_BYTES_MAX), False
        sock.settimeout(1.0)
        while not done and not stop.is_set():
            try:
                data = sock.recv(RECV_BYTES)
            except TimeoutError:
                continue
            if not data:
                break
            done = any(_peek(body).type == 113 for body in reader.feed(data))  # ReplayComplete
        sent.value += done
        sock.close()


def _prelogon_flood(port: int, stop, sent, connections: int = 400) -> None:
    """Hold ``connections`` sockets that never log on; reopen those the server closes."""
    held: list[socket.socket] = []
    while not stop.is_set():
        while len(held) < connections and not stop.is_set():
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=1.0))
                sent.value += 1
            except OSError:
                break
        readable, _, _ = select.select(held, [], [], 0.2)
        for sock in readable:  # closed by the server (or a ProtocolError): drop it
            sock.close()
            held.remove(sock)
    for sock in held:
        sock.close()


def _abuser(kind: str, port: int, stop, sent, ready) -> None:
    """The abusive client's process (its own, so its CPU is not the measuring client's)."""
    ready.set()
    if kind == "resume":
        _resume_again(port, stop, sent)
    elif kind == "prelogon":
        _prelogon_flood(port, stop, sent)
    else:
        _flood(port, kind, stop, sent)


def _build_book(port: int, levels: int) -> None:
    """``levels`` passive levels per side, far from where the honest workload trades."""
    if levels <= 0:
        return
    frames = []
    for k in range(levels):
        for side, price in (
            (s.Side.BUY, REFERENCE_TICKS - 30 - k),
            (s.Side.SELL, REFERENCE_TICKS + 30 + k),
        ):
            frames.append(
                p.encode(
                    p.NewOrder(
                        request_id=len(frames) + 1,
                        client_order_id=f"book{len(frames)}",
                        instrument=SYMBOL,
                        side=int(side),
                        qty_t=1,
                        price_ticks=price,
                    )
                )
            )
    session = RawSession(port, "t1")
    _pump([session], [frames], 200)
    session.close()


def run_abuse(
    kinds: tuple[str, ...] = ABUSE_KINDS,
    rate: int = 1_000,
    seconds: float = 3.0,
    book_levels: int = 500,
    log_commands: int = 20_000,
    durability: str = "none",
    data_dir: str | Path | None = None,
    abuse_lead_s: float = 1.0,
    stall_s: float = 20.0,
    report=None,
) -> list[AbuseResult]:
    """Honest order-to-Ack latency (open loop, ``rate`` orders/s) with each abuse beside it.

    One server; first a book of ``book_levels`` levels per side (snapshots and quotes cost
    their size) and a log of ``log_commands`` more orders (what a resume from seq 1 replays);
    then, per kind, an abusive client in its own process starts, the honest client measures
    for ``seconds``, the abuser stops; ``report(result)`` is called after each kind.  ``durability`` "none" by default: the storage's sync
    times would otherwise dominate the difference being measured.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        directory = Path(data_dir) if data_dir is not None else Path(tmp) / "data"
        with ServerProcess(directory, 3, durability) as server:
            _open_market(server.port)
            _build_book(server.port, book_levels)
            warm = RawSession(server.port, "t0")
            _pump([warm], [order_frames(0, log_commands, 1, prefix="w")], 200)
            warm.close()
            for round_, kind in enumerate(kinds):
                stop, ready, sent = context.Event(), context.Event(), context.Value("q", 0)
                abuser = None
                # The honest session logs on first: what is measured is its order-to-Ack
                # latency beside the abuse (a flood of connections that never log on fills the
                # pre-logon slots, so a new logon during it may be refused: TOO_MANY_CONNECTIONS)
                session = RawSession(server.port, "t0")
                frames = order_frames(0, int(rate * seconds), prefix=f"a{round_}-")
                stalled = False
                try:
                    if kind != "none":
                        abuser = context.Process(
                            target=_abuser, args=(kind, server.port, stop, sent, ready), daemon=True
                        )
                        abuser.start()
                        if not ready.wait(120):
                            raise TimeoutError(f"the {kind} abuser did not start")
                        time.sleep(abuse_lead_s)  # the abuse is under way before the measurement
                    latencies, _ = _open_loop(session, frames, rate, stall_s)
                except StalledError as exc:
                    latencies, stalled = exc.latencies, True
                finally:
                    session.close()
                    stop.set()
                    if abuser is not None:
                        abuser.join(30)
                        if abuser.is_alive():
                            abuser.kill()
                result = _abuse_result(
                    kind,
                    rate,
                    frames,
                    latencies,
                    sent.value,
                    book_levels,
                    log_commands,
                    durability,
                    stalled,
                )
                results.append(result)
                if report is not None:
                    report(result)
    return results


def _abuse_result(
    kind, rate, frames, latencies, sent, book_levels, log_commands, durability, stalled
) -> AbuseResult:
    latencies.sort()
    return AbuseResult(
        abuse=kind,
        offered_per_s=rate,
        orders=len(frames),
        acks=len(latencies),
        latency_us_p50=round(_percentile(latencies, 0.50), 1),
        latency_us_p99=round(_percentile(latencies, 0.99), 1),
        latency_us_p999=round(_percentile(latencies, 0.999), 1),
        latency_us_max=round(latencies[-1] if latencies else 0.0, 1),
        abusive_frames_sent=sent,
        stalled=stalled,
        book_levels=book_levels,
        log_commands=log_commands,
        durability=durability,
        machine=machine_line(),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.gateway [throughput|latency|both]``: run at the default sizes and
    print the results as JSON lines (the ``cets bench`` wiring lives in ``bench/``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=main.__doc__)
    parser.add_argument(
        "which",
        nargs="?",
        choices=["throughput", "latency", "floor", "inprocess", "both", "echo-server", "abuse"],
        default="both",
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--orders-per-client", type=int, default=25_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--durability", help="the server's log policy (default: batch; none for abuse)"
    )
    parser.add_argument("--abuse", nargs="*", default=list(ABUSE_KINDS), choices=ABUSE_KINDS)
    parser.add_argument("--book-levels", type=int, default=500)
    parser.add_argument("--log-commands", type=int, default=20_000)
    args = parser.parse_args(argv)
    if args.which == "echo-server":
        echo_server()
        return 0
    print(machine_line(), f"load average {os.getloadavg()}", flush=True)
    durability = args.durability or "batch"
    if args.which in ("throughput", "both"):
        result = run_throughput(args.clients, args.orders_per_client, durability=durability)
        print(msgspec.json.encode(result).decode(), flush=True)
    if args.which in ("latency", "both"):
        result = run_latency(args.rate, args.seconds, durability=durability)
        print(msgspec.json.encode(result).decode(), flush=True)
    if args.which in ("inprocess", "both"):
        print(msgspec.json.encode(run_inprocess(args.clients)).decode(), flush=True)
    if args.which == "abuse":
        run_abuse(
            tuple(args.abuse),
            args.rate,
            args.seconds,
            args.book_levels,
            args.log_commands,
            args.durability or "none",
            report=lambda result: print(msgspec.json.encode(result).decode(), flush=True),
        )
    if args.which in ("floor", "both"):
        print(msgspec.json.encode(run_latency_floor(args.rate, args.seconds)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

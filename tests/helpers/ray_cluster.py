"""A real Ray cluster of several nodes on this machine, as `ray start` makes one on several: a head and workers,
each a `ray start --block` process, on the loopback and free ports; stopped by the ids of what they started
(never `ray stop`, which stops every Ray on the machine)."""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")
STARTED = "Ray runtime started"


# Ray rewrites 127.0.0.1 and localhost, in an address and as a node's address, to the machine's outward address
# (a node must be reachable from the others). 127.0.0.2 is the loopback too, and Ray leaves it as it is: the
# nodes, the actors and the driver all talk over the loopback.
LOOPBACK = "127.0.0.2"
# A single-node Ray (ray.init() without an address) is kept on 127.0.0.1 by this variable at 0 (Ray's switch for
# clusters on Windows and macOS, which reads it at import): tests/batch/conftest.py sets it for the tests. Nodes
# of a cluster, and the drivers joining it, need it at 1.
CLUSTERS = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}


@dataclass
class Cluster:
    address: str
    nodes: list[subprocess.Popen]
    token: Path

    def environment(self) -> dict[str, str]:
        """For a command that connects to the cluster: its token, as the nodes have it."""
        return authenticated(self.token)

    def processes(self) -> list[psutil.Process]:
        """Every process the nodes started: raylets, the GCS, agents, workers and actors."""
        found = []
        for node in self.nodes:
            with contextlib.suppress(psutil.NoSuchProcess):
                found += psutil.Process(node.pid).children(recursive=True)
        return found


def authenticated(token: Path) -> dict[str, str]:
    """This process's environment less RAY_ADDRESS (a command must reach the cluster it is told to), with token
    authentication on and the cluster's own token. Ray 2.60 turns token authentication on for a head when a
    token exists, never for a worker node or a driver given an address: say it to all of them."""
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    return {**environment, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), **CLUSTERS}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ports(*names: str) -> list[str]:
    return [f"--{name}={free_port()}" for name in names]


def _start(arguments: list[str], log: Path, token: Path, timeout: float = 90) -> subprocess.Popen:
    with open(log, "w") as output:
        node = subprocess.Popen(
            [RAY, "start", "--block", f"--node-ip-address={LOOPBACK}", "--disable-usage-stats", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=authenticated(token),
        )
    deadline = time.monotonic() + timeout
    while STARTED not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            _stop(node)
            raise RuntimeError(f"`ray start` did not start a node: {log.read_text()[-3000:]}")
        time.sleep(0.5)
    return node


def _stop(node: subprocess.Popen) -> None:
    """SIGTERM to every process `ray start --block` started, by id, then to it (alive, it reaps them); SIGKILL to
    any left after 3 s (the GCS and the autoscaler's monitor take longer than 15 s: a throwaway cluster keeps
    nothing they would save)."""
    started = []
    with contextlib.suppress(psutil.NoSuchProcess):
        started = psutil.Process(node.pid).children(recursive=True)
    for processes in (started, [psutil.Process(node.pid)] if node.poll() is None else []):
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(processes, timeout=3)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    node.wait()


@contextlib.contextmanager
def ray_cluster(workers: int = 1, cpus_per_node: int = 1, object_store_mb: int = 500) -> Iterator[Cluster]:
    """A head and `workers` worker nodes, each offering `cpus_per_node` CPUs; yields the head's address."""
    # A short folder: Ray's sockets live under it, and a Unix socket path has at most 107 characters.
    temp = Path(tempfile.mkdtemp(prefix="kwray-", dir="/tmp"))
    token = temp / "auth_token"  # the cluster's own, never ~/.ray/auth_token
    token.write_text(secrets.token_hex(32))
    port = free_port()
    common = [f"--num-cpus={cpus_per_node}", f"--object-store-memory={object_store_mb * 2**20}"]
    node_ports = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port")
    node_ports += ("dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port")
    nodes: list[subprocess.Popen] = []
    try:
        head = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"]
        nodes.append(_start([*head, *common, *_ports("ray-client-server-port", *node_ports)], temp / "head.log", token))
        for n in range(workers):
            worker = [f"--address={LOOPBACK}:{port}", *common, *_ports(*node_ports)]
            nodes.append(_start(worker, temp / f"worker-{n}.log", token))
        yield Cluster(f"{LOOPBACK}:{port}", nodes, token)
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)

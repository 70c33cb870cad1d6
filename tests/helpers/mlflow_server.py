"""A real MLflow tracking server for a test session, set up as a team runs one: `mlflow server` with a SQLite
backend store and the artifacts it serves itself (--serve-artifacts: clients upload and download them over HTTP and
never touch its folder, as from another machine), on a free loopback port; stopped, and its folder removed, at the
end."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from server import _process_group, _until, free_port

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


@contextmanager
def tracking_server(folder: Path, timeout: float = 300) -> Iterator[str]:
    """Start `mlflow server` with its database and artifacts in `folder`; yield its URL once /health answers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        MLFLOW,
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # No job runner: it starts eight queue consumers for MLflow's GenAI jobs, which tracking and the registry never
    # use (10 s more to start, on 2 cores).
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = folder / "server.log"
    try:
        with _process_group(command, folder, environment, log) as process:
            health = f"{url}/health"
            _until(
                process, log, timeout, "mlflow server", lambda: httpx.get(health, timeout=2).status_code == 200 or None
            )
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)

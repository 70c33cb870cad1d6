"""Run `bentoml serve` for real in a subprocess, on a free port, and stop it afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _process_group(command: list[str], cwd: Path, environment: dict[str, str], log: Path):
    """Run a command in its own process group, its output to `log`; stop the whole group afterwards."""
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except ProcessLookupError:  # already gone (a test killed it)
            process.wait()
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _until(process: subprocess.Popen, log: Path, timeout: float, what: str, attempt):
    """Call `attempt` every half second until it returns something other than None; fail with the log's tail
    when the process exits or the time runs out."""
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: nothing after {timeout} s:\n{log.read_text()[-3000:]}")
        try:
            result = attempt()
            if result is not None:
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def kill_hard(url: str) -> None:
    """SIGKILL every process of the server listening at `url`, as a crash or an OOM kill would."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    listening = [c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.pid]
    os.killpg(os.getpgid(listening[0]), signal.SIGKILL)


@contextmanager
def serving(target: str, log: Path, timeout: float = 300, wait_for: str = "/readyz", **environment: str):
    """`bentoml serve TARGET` until the block ends; yields (base URL, seconds from start to /readyz 200). wait_for
    "/livez": for a service that is up but not ready (its feedback database down)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [BENTOML, "serve", target, "--port", str(port), "--host", "127.0.0.1"]
    started = time.monotonic()
    with _process_group(command, ROOT, {**os.environ, **environment}, log) as process:
        _until(
            process,
            log,
            timeout,
            "bentoml serve",
            lambda: httpx.get(f"{url}{wait_for}", timeout=2).status_code == 200 or None,
        )
        yield url, time.monotonic() - started


def serve_script_first_answer(clone: Path, photo: Path, pip_cache: Path, bentoml_home: Path, timeout: float = 900):
    """Run `scripts/serve.sh` in a copy of the project and post `photo` to /classify until it is answered.

    Returns (seconds from the command to the first 200 answer, that answer); stops the server afterwards."""
    port = free_port()
    environment = {**os.environ, "PIP_CACHE_DIR": str(pip_cache), "BENTOML_HOME": str(bentoml_home), "PORT": str(port)}
    started = time.monotonic()

    def answer():
        with open(photo, "rb") as file:
            response = httpx.post(f"http://127.0.0.1:{port}/classify", files={"image": file}, timeout=30)
        return (time.monotonic() - started, response.json()) if response.status_code == 200 else None

    with _process_group(["bash", "scripts/serve.sh"], clone, environment, clone.parent / "serve.log") as process:
        return _until(process, clone.parent / "serve.log", timeout, "scripts/serve.sh", answer)


def installed_packages(venv: Path) -> dict[str, str]:
    """{name: version} of a virtual environment's packages."""
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.lower().split("==", 1) for line in listing.splitlines() if "==" in line)


def folder_megabytes(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink()) / 1e6

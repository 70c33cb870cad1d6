"""Start a real, throwaway PostgreSQL server for a test session, from Debian's `postgresql` package
(scripts/install_test_services.sh installs it), on a free loopback port, and remove it afterwards.

A real server rather than SQLite or a mock, so that the tests see PostgreSQL's own types, locking and errors.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATABASE = "kitchenware"
USER = "postgres"
# A Unix socket's path must fit in 107 bytes: "<directory>/.s.PGSQL.<port>" leaves about 90 for the directory.
MAX_SOCKET_DIR = 90


def postgres_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl, or None (tests then skip)."""
    candidates = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    numeric = [path for path in candidates if path.parent.name.replace(".", "").isdigit()]
    return max(numeric, key=lambda path: [int(part) for part in path.parent.name.split(".")], default=None)


# How each server started here was started: stop() and start() take it down and bring it back on the same port.
_STARTED: dict[str, tuple[list[str], str, Path, Path]] = {}


def stop(url: str) -> None:
    """Stop the throwaway server at `url` (fast: its connections are closed), as a database outage would."""
    pg_ctl, _, log, directory = _STARTED[url]
    _run([*pg_ctl, "-m", "fast", "-w", "stop"], "pg_ctl stop", directory, log)


def start(url: str) -> None:
    """Start again a server stop() stopped, on the same port with the same data."""
    pg_ctl, options, log, directory = _STARTED[url]
    _run([*pg_ctl, "-l", str(log), "-o", options, "-w", "start"], "pg_ctl start", directory, log)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root, so root runs them as the postgres system user."""
    return ["runuser", "-u", USER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], what: str, cwd: Path, log: Path | None = None) -> None:
    """Run a command, raising with its stderr (and the server log's tail, when given) if it fails."""
    result = subprocess.run(_as_postgres(command), cwd=cwd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        details = result.stderr.strip() or result.stdout.strip()
        if log is not None and log.exists():
            details += f"\n--- server log ({log}) ---\n{log.read_text()[-3000:]}"
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{details}")


def _reachable(path: Path) -> bool:
    """Whether another user (postgres) can traverse `path` and all its parents: pytest's tmp dirs are often 0700."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents])


@contextmanager
def throwaway_postgres(base: Path) -> Iterator[str]:
    """Create, start and yield the SQLAlchemy URL of a fresh server with an empty `kitchenware` database; stop it
    and delete its files on exit.

    Its data directory (which is also its socket directory) goes under `base` when the postgres user can reach it
    there and the socket path fits, otherwise under /tmp.
    """
    binaries = postgres_binaries()
    if binaries is None:
        raise RuntimeError("no initdb/pg_ctl under /usr/lib/postgresql/*/bin: run scripts/install_test_services.sh")
    base = Path(base).resolve()
    as_root = os.geteuid() == 0
    usable = (not as_root or _reachable(base)) and len(str(base)) <= MAX_SOCKET_DIR - 12
    directory = Path(tempfile.mkdtemp(prefix="pg-", dir=base if usable else "/tmp"))
    log = directory / "server.log"
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(directory)]
    url = ""
    try:
        if as_root:
            account = pwd.getpwnam(USER)
            os.chown(directory, account.pw_uid, account.pw_gid)  # mkdtemp made it 0700, as initdb wants
        initdb = [str(binaries / "initdb"), "-A", "trust", "-U", USER, "--no-sync", "-D", str(directory)]
        _run(initdb, "initdb", directory)
        port = _free_port()
        options = f"-k {shlex.quote(str(directory))} -p {port} -c listen_addresses=127.0.0.1 -c fsync=on"
        # -l: the server's output goes to a file, never to our pipes, which would then stay open as long as it runs.
        _run([*pg_ctl, "-l", str(log), "-o", options, "-w", "start"], "pg_ctl start", directory, log)
        createdb = [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE]
        _run(createdb, "createdb", directory, log)
        url = f"postgresql+psycopg://{USER}@127.0.0.1:{port}/{DATABASE}"
        _STARTED[url] = (pg_ctl, options, log, directory)
        yield url
    finally:
        _STARTED.pop(url, None)
        try:
            if (directory / "postmaster.pid").exists():  # running, or a start that timed out may still come up
                _run([*pg_ctl, "-m", "immediate", "-w", "stop"], "pg_ctl stop", directory, log)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

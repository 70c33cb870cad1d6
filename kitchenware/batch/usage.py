"""What each actor of a job used, as its own process counts it: peak memory (what a node must hold per actor)
and CPU time (the cost per photo, which other work on the same cores does not change, unlike the wall time)."""

from __future__ import annotations

import os
import resource
import socket

import ray


@ray.remote(num_cpus=0)
class ActorUsage:
    """A ledger the actors report to after each batch; a restarted actor is a new process and a new line."""

    def __init__(self) -> None:
        self._usage: dict[str, tuple[float, float]] = {}

    def record(self, process: str, peak_mb: float, cpu_seconds: float) -> None:
        self._usage[process] = (peak_mb, cpu_seconds)  # both only grow in a process

    def usage(self) -> dict[str, tuple[float, float]]:
        """ "host:pid" -> (peak resident memory in MB, CPU seconds), for every actor process of the job."""
        return dict(sorted(self._usage.items()))


def report_usage(ledger: ray.actor.ActorHandle) -> None:
    """Send this process's peak resident memory (ru_maxrss, kilobytes on Linux) and CPU time to the ledger. Waited
    for (a millisecond a batch): the driver reads the ledger once the last batch is written, and must find every
    line."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    process = f"{socket.gethostname()}:{os.getpid()}"
    ray.get(ledger.record.remote(process, round(own.ru_maxrss / 1024, 1), own.ru_utime + own.ru_stime))

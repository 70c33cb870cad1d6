"""The peak memory of each actor of a job, as its own process saw it: what a node must hold per actor."""

from __future__ import annotations

import os
import resource
import socket

import ray


@ray.remote(num_cpus=0)
class PeakMemory:
    """A ledger the actors report to after each batch; a restarted actor is a new process and a new line."""

    def __init__(self) -> None:
        self._peaks: dict[str, float] = {}

    def record(self, process: str, megabytes: float) -> None:
        self._peaks[process] = max(megabytes, self._peaks.get(process, 0.0))

    def peaks(self) -> dict[str, float]:
        return dict(sorted(self._peaks.items()))


def report_peak(ledger: ray.actor.ActorHandle) -> None:
    """Send this process's peak resident memory (ru_maxrss, kilobytes on Linux) to the ledger. Waited for (a
    millisecond a batch): the driver reads the ledger once the last batch is written, and must find every line."""
    megabytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ray.get(ledger.record.remote(f"{socket.gethostname()}:{os.getpid()}", round(megabytes, 1)))

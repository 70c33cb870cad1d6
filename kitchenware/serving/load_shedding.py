"""Overload sheds cleanly: past a bound on the classify requests inside the service, a request gets a quick 503
with Retry-After instead of queueing for the forward passes until its client gives up.

Without it, every request BentoML admits (traffic.max_concurrency, 128) waits its turn: at 4x the requests the
service can answer, the answered waited 6 to 14 s and the rest got BentoML's 429 without Retry-After
(benchmarks/overload.py; the figures in benchmarks/RESULTS.md).

The bound, KITCHENWARE_MAX_QUEUED per worker, is the service's capacity times the wait we accept (about a second),
checked against the requests it needs inside to stay busy. On 2 cores its throughput reaches its plateau with 2 to 4
requests in flight (30 to 40 answers a second with the int8 cascade: benchmarks/overload.py's curve), so 16 keeps it
busy, and a request admitted behind 16 waits 16 / capacity: about 0.5 s with the cascade, 0.8 s with the float
network (~21 a second). A machine with more cores answers more: set the bound to its capacity times the wait.
A batch counts as one request (at most KITCHENWARE_MAX_BATCH_IMAGES photos). 0 turns shedding off.
"""

from __future__ import annotations

import time

from kitchenware.serving.upload import CLASSIFY_ROUTES, retry_later

DEFAULT_MAX_QUEUED = 16  # where the throughput peaks, within the accepted wait: the module docstring
EWMA_WEIGHT = 0.1  # of the latest admitted request in the running mean of their time inside


class LoadShedder:
    """ASGI middleware before the classify routes: at most `max_queued` of their requests inside at once (decoded,
    queued for or in a forward pass); beyond, 503 with Retry-After, the mean time an admitted request spends inside
    (by then the requests ahead are answered), at least 1 s."""

    def __init__(self, app, max_queued: int):
        self.app = app
        self.max_queued = max_queued
        self.inside = 0
        self.mean_seconds = 1.0

    async def __call__(self, scope, receive, send) -> None:
        if not self.max_queued or scope["type"] != "http" or scope["path"] not in CLASSIFY_ROUTES:
            return await self.app(scope, receive, send)
        if self.inside >= self.max_queued:
            busy = retry_later("the service is busy with all the requests it takes at once", self.mean_seconds, 503)
            return await busy(scope, receive, send)
        self.inside += 1
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.inside -= 1
            self.mean_seconds += EWMA_WEIGHT * (time.monotonic() - started - self.mean_seconds)

"""A per-client rate limit for deployments without an ingress that does it (KITCHENWARE_RATE_LIMIT, off by default):
a token bucket per client on /classify, /classify_batch and /feedback; past it, 429 with Retry-After.

The client is the API key when a request carries the right one (a wrong one cannot buy a fresh bucket), else its
address. Uvicorn, which runs the service, takes the address from X-Forwarded-For only when the connection comes from
an address in FORWARDED_ALLOW_IPS (its default: the loopback, a proxy on the same machine); behind an ingress, set it
to the ingress' addresses.

Hand-written (20 lines) rather than a dependency: `limits` has fixed and sliding windows but no token bucket,
`slowapi` decorates routes of an app it owns (BentoML builds ours), `asgi-ratelimit` had its last release in 2022,
and `throttled-py` would add a package to the bento for what `TokenBuckets` does here.
"""

from __future__ import annotations

import hmac
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

from kitchenware.serving.upload import retry_later

LIMITED_ROUTES = ("/classify", "/classify_batch", "/feedback")
MAX_CLIENTS = 10_000  # buckets kept: 2.1 MB for 10,000 clients (tracemalloc)
UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """Parse e.g. "10/s,burst=20" (also /min, /h; the burst defaults to the count); "" -> None (off)."""
        if not text.strip():
            return None
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*(?:,\s*burst\s*=\s*(\d+)\s*)?", text)
        if not match or match[2] not in UNITS or float(match[1]) <= 0 or match[3] == "0":
            raise ValueError(
                f"KITCHENWARE_RATE_LIMIT={text!r} is not a rate: write e.g. '10/s,burst=20', '600/min' or '5000/h'"
            )
        count = float(match[1])
        return cls(count / UNITS[match[2]], int(match[3]) if match[3] else max(1, math.ceil(count)))

    def __str__(self) -> str:
        """As a person reads it: "10 a second, in bursts of 20", "20 a minute, ...", "3 an hour, ..."."""
        if self.per_second >= 1:
            rate = f"{self.per_second:g} a second"
        elif self.per_second * 60 >= 1:
            rate = f"{self.per_second * 60:g} a minute"
        else:
            rate = f"{self.per_second * 3600:g} an hour"
        return f"{rate}, in bursts of {self.burst}"


class TokenBuckets:
    """One bucket per client, holding up to `burst` tokens and refilled at `per_second`; a request takes one.
    The table keeps the MAX_CLIENTS clients seen last, and a client idle long enough to have a full bucket again is
    dropped (a full bucket is what a new client gets)."""

    def __init__(self, limit: RateLimit, max_clients: int = MAX_CLIENTS, clock=time.monotonic):
        self.limit = limit
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when)

    def take(self, client: str) -> float:
        """0 when the client may go ahead (a token taken), else the seconds until its next token."""
        now = self.clock()
        tokens, when = self.buckets.pop(client, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + (now - when) * self.limit.per_second)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.limit.per_second
        self.buckets[client] = (tokens - 1 if not wait else tokens, now)
        full_after = self.limit.burst / self.limit.per_second
        while self.buckets:
            oldest, (_, seen) = next(iter(self.buckets.items()))
            if len(self.buckets) <= self.max_clients and now - seen < full_after:
                break
            del self.buckets[oldest]
        return wait


class RateLimiter:
    """ASGI middleware before the limited routes: 429 with Retry-After and a JSON error past a client's rate."""

    def __init__(self, app, limit: RateLimit | None, api_key: str = ""):
        self.app = app
        self.buckets = TokenBuckets(limit) if limit else None
        self.api_key = f"Bearer {api_key}".encode() if api_key else b""

    def client(self, scope) -> str:
        authorization = dict(scope["headers"]).get(b"authorization", b"")
        if self.api_key and hmac.compare_digest(authorization, self.api_key):
            return "the API key"
        return (scope.get("client") or ("unknown", 0))[0]

    async def __call__(self, scope, receive, send) -> None:
        if self.buckets is None or scope["type"] != "http" or scope["path"] not in LIMITED_ROUTES:
            return await self.app(scope, receive, send)
        wait = self.buckets.take(self.client(scope))
        if not wait:
            return await self.app(scope, receive, send)
        refused = retry_later(f"too many requests from this client (the limit is {self.buckets.limit})", wait, 429)
        return await refused(scope, receive, send)

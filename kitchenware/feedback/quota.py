"""How much the feedback store may hold, and a cheap running estimate of how much it holds.

The estimate is kept per process and added to on every new photo (a lock and two additions, no SQL); it is
counted again in SQL every RECOUNT_SECONDS and before any eviction, so what other workers, replicas, `feedback
purge` or `feedback erase` changed is seen within that time. Eviction frees a little more than the new photo
needs (SLACK of each limit), so that a full store evicts once per many uploads, not on every one.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

RECOUNT_SECONDS = 30.0
SLACK = 0.01  # a full store is brought to 99 % of its limits, once every ~1 % of the limit of new photos


@dataclass(frozen=True)
class Quota:
    """Limits of the store; 0 is no limit."""

    max_photos: int = 0
    max_bytes: int = 0

    @property
    def limited(self) -> bool:
        return self.max_photos > 0 or self.max_bytes > 0

    def excess(self, photos: int, size: int) -> tuple[int, int]:
        """(photos, bytes) to free so that the store holds `photos` and `size` within the limits; (0, 0) if they fit."""
        return (
            max(0, photos - self.max_photos) if self.max_photos else 0,
            max(0, size - self.max_bytes) if self.max_bytes else 0,
        )

    def __str__(self) -> str:
        limits = []
        if self.max_photos:
            limits.append(f"{self.max_photos} photos")
        if self.max_bytes:
            limits.append(f"{self.max_bytes / 2**20:g} MB")
        return "at most " + " and ".join(limits) if limits else "no limit"

    def slack(self) -> tuple[int, int]:
        """What an eviction frees beyond the need, so that the next new photos fit without one."""
        return int(self.max_photos * SLACK), int(self.max_bytes * SLACK)


NO_QUOTA = Quota()


class StoreFull(Exception):
    """The quota is reached and every stored photo has a seller's choice: the new photo is not stored."""


class Totals:
    """The photos and bytes a store holds, as this process last counted them plus what it added since."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counted_at = -math.inf
        self.photos = 0
        self.size = 0

    def stale(self) -> bool:
        return time.monotonic() - self._counted_at >= RECOUNT_SECONDS

    def forget(self) -> None:
        """Count again in SQL before the next new photo (this process deleted some)."""
        self._counted_at = -math.inf

    def counted(self, photos: int, size: int) -> None:
        with self._lock:
            self.photos, self.size, self._counted_at = photos, size, time.monotonic()

    def fits(self, quota: Quota, size: int) -> bool:
        """True, and the photo counted in, when one more photo of `size` bytes stays within the quota."""
        with self._lock:
            if quota.excess(self.photos + 1, self.size + size) != (0, 0):
                return False
            self.photos += 1
            self.size += size
            return True

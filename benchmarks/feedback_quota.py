"""What the storage quota costs a stored photo, side by side: FeedbackStore.record of new photos without a quota,
with a quota never reached, and with a full quota (every new photo over the limit: an eviction every ~1 % of it).

    python -m benchmarks.feedback_quota [--photos 2000] [--rounds 5]

Four stores on SQLite in a temporary folder (two without a quota: the noise of the run) record the same new
photos in turns of 100, each store first in its share of the turns, so that the drift of a shared machine hits
them alike; prints the median milliseconds per record() and the ratio to no quota. The full store holds half a
round's photos: it evicts 1 % of its limit at a time (quota.SLACK), i.e. every 11th record()
with the default 2000, far more often than at a real limit of many thousands of photos.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from kitchenware.feedback.quota import Quota
from kitchenware.feedback.repository import Classified, FeedbackStore

ANSWER = Classified("cup", 0.97, "confident", "kitchenware_classifier:benchmark")
TURN = 100


def photos(count: int, seed: int) -> list[bytes]:
    """Distinct small JPEGs (~1 kB), as many as needed: new photos for every record()."""
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (36, 48, 3), dtype=np.uint8)).save(buffer, "JPEG")
        made.append(buffer.getvalue())
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000, help="new photos each store records per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kitchenware-quota-"))
    full_at = args.photos // 2  # the full store reaches its limit half way into the first round
    layouts = {
        "no quota": Quota(),
        "no quota, again (the noise of this run)": Quota(),
        "quota never reached": Quota(max_photos=10**9),
        "quota full": Quota(full_at),
    }
    stores = {
        name: FeedbackStore(f"sqlite:///{folder / str(n) / 'feedback.db'}", folder / str(n) / "photos", quota)
        for n, (name, quota) in enumerate(layouts.items())
    }
    per_record: dict[str, list[float]] = {name: [] for name in stores}
    for round_ in range(args.rounds):
        batch = photos(args.photos, seed=round_)
        for turn, start in enumerate(range(0, len(batch), TURN)):
            order = list(stores.items())
            for name, store in order[turn % len(order) :] + order[: turn % len(order)]:  # each store first in turn
                began = time.perf_counter()
                for photo in batch[start : start + TURN]:
                    store.record(photo, ANSWER)
                per_record[name].append((time.perf_counter() - began) / TURN)
    baseline = statistics.median(per_record["no quota"])
    print(f"{args.rounds} rounds x {args.photos} new photos per store, SQLite, turns of {TURN}:")
    print("| store | median ms per record() | ratio to no quota | photos held |")
    print("|---|---|---|---|")
    for name, store in stores.items():
        median = statistics.median(per_record[name])
        print(f"| {name} | {median * 1000:.2f} | {median / baseline:.3f} | {store.counts()['photos']} |")


if __name__ == "__main__":
    main()

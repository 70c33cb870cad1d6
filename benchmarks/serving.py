"""Serving speed, side by side in one run: the raw model in-process against `bentoml serve` over HTTP.

    python -m benchmarks.serving [--requests 48] [--photos ../shared/data/kitchenware-photos]

1. Raw model (this process, nothing else running): one compiled forward pass at batch 1 (median), and the
   best images/s over batch sizes 1-32.
2. For each server layout (1 worker x 2 TensorFlow threads, 2 workers x 1 thread): start `bentoml serve`
   with the shipped model, time start to /readyz 200, then send real photos to /classify from 1, 4 and 16
   concurrent clients; p50/p95 latency, throughput, errors, resident memory of the server's processes.
Prints one table and the ratios, and writes benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil

from kitchenware import store
from kitchenware.inference import Classifier
from kitchenware.preprocessing import prepare
from tests.server import serving

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LAYOUTS = {
    "1 worker x 2 threads": {"KITCHENWARE_WORKERS": "1", "KITCHENWARE_THREADS": "2"},
    "2 workers x 1 thread": {"KITCHENWARE_WORKERS": "2", "KITCHENWARE_THREADS": "1"},
}
CONCURRENCY = (1, 4, 16)


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def raw_model(classifier: Classifier, photos: list[Path]) -> tuple[float, dict[int, float]]:
    """Median seconds of one batch-1 forward pass, and images/s for each batch size."""
    pixels = np.stack([prepare(photo, classifier.input_size) for photo in photos[:32]])
    classifier.warm_up()
    batch1 = statistics.median(timed(lambda: classifier.probabilities(pixels[:1]), 15))
    throughput = {}
    for size in (1, 2, 4, 8, 16, 32):
        classifier.probabilities(pixels[:size])  # first call of a shape
        seconds = statistics.median(timed(lambda s=size: classifier.probabilities(pixels[:s]), max(3, 32 // size)))
        throughput[size] = size / seconds
    return batch1, throughput


def load(url: str, photos: list[Path], clients: int, requests: int) -> dict:
    """`requests` POST /classify in all, spread over `clients` concurrent clients."""
    bodies = [photo.read_bytes() for photo in photos]

    def client(index: int) -> tuple[list[float], list[str]]:
        latencies, errors = [], []
        with httpx.Client(timeout=120) as http:
            for n in range(index, requests, clients):
                started = time.perf_counter()
                response = http.post(f"{url}/classify", files={"image": ("photo.jpg", bodies[n % len(bodies)])})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:120]}")
        return latencies, errors

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    latencies = sorted(latency for result in results for latency in result[0])
    return {
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "throughput": len(latencies) / wall,
        "errors": [error for result in results for error in result[1]],
    }


def server_memory_mb(port: int) -> float:
    """Resident memory of the process listening on `port` and all its children (shared pages counted once each)."""
    for process in psutil.process_iter(["cmdline"]):
        if "serve" in (process.info["cmdline"] or []) and str(port) in (process.info["cmdline"] or []):
            tree = [process, *process.children(recursive=True)]
            return sum(p.memory_full_info().uss for p in tree) / 1e6
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "kitchenware-photos")
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    args = parser.parse_args()
    os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="kitchenware-bench-bentoml-"))
    tag, _ = store.import_exported(ROOT / "models" / store.MODEL_FILE)
    photos = sorted((args.photos / "images").glob("*.jpg"))[:64]

    classifier = Classifier(store.load(tag))
    batch1, throughput = raw_model(classifier, photos)
    best_batch = max(throughput, key=throughput.get)
    del classifier

    rows, summary = [], {}
    for layout, environment in LAYOUTS.items():
        log = Path(tempfile.mkdtemp()) / "serve.log"
        with serving("service:KitchenwareClassifier", log, **environment) as (url, cold_start):
            port = int(url.rsplit(":", 1)[1])
            results = {clients: load(url, photos, clients, args.requests) for clients in CONCURRENCY}
            memory = server_memory_mb(port)
        summary[layout] = (results, cold_start, memory)
        for clients, result in results.items():
            rows.append(
                f"| {layout} | {clients} | {result['p50'] * 1000:.0f} | {result['p95'] * 1000:.0f} | "
                f"{result['throughput']:.2f} | {len(result['errors'])} {'; '.join(sorted(set(result['errors'])))} |"
            )

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{datetime.date.today()}; `python -m benchmarks.serving --requests {args.requests}`",
        "",
        f"Raw model in-process (TensorFlow, compiled call): batch 1 {batch1 * 1000:.0f} ms/image; "
        + ", ".join(f"batch {size}: {rate:.2f} img/s" for size, rate in throughput.items())
        + f"; best {throughput[best_batch]:.2f} img/s at batch {best_batch} "
        f"({1000 / throughput[best_batch]:.0f} ms/image).",
        "",
        "| server layout | clients | p50 (ms) | p95 (ms) | throughput (img/s) | errors |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "| server layout | cold start to /readyz (s) | memory, all processes (MB, USS) | p50 at 1 client / raw batch 1 "
        "| throughput at 16 clients / best raw |",
        "|---|---|---|---|---|",
    ]
    for layout, (results, cold_start, memory) in summary.items():
        lines.append(
            f"| {layout} | {cold_start:.1f} | {memory:.0f} | {results[1]['p50'] / batch1:.2f} "
            f"| {results[16]['throughput'] / throughput[best_batch]:.2f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    (ROOT / "benchmarks" / "RESULTS.md").write_text("# Serving benchmark: latest run\n\n" + report)


if __name__ == "__main__":
    sys.exit(main())

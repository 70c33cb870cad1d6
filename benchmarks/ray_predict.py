"""Classifying a catalogue on Ray against the single-process `predict`, on the same photos, in one run.

    python -m benchmarks.ray_predict [--photos 400] [--model models] [--runtime onnx|onnx-int8-cascade]

The single process runs what `kitchenware predict` runs (the model opened once with every core, `Classifier`);
each Ray run is `classify_catalogue` on a local Ray, timed from listing the photos to the last row written
(actors started and models loaded included; Ray's own start is timed apart). CPU time is counted per photo, by
the model (the process classifying, or the actors) and by everything (Ray's own processes and the driver too):
unlike the wall time, other work on the same cores leaves it alone. From it, the benchmark prints on paper what
a million photos take on N machines of this size.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

# Before Ray is imported: the local Ray of each run stays on the loopback (Ray's switch for clusters on Windows and
# macOS, off), not on the machine's outward address; one machine's figures need no other node.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import psutil  # noqa: E402

from kitchenware.batch.cluster import connected  # noqa: E402
from kitchenware.batch.predict import classify_catalogue  # noqa: E402
from kitchenware.classifier import Classifier  # noqa: E402
from kitchenware.core.card import ModelCard  # noqa: E402
from kitchenware.core.runtimes import CASCADE, preferred_runtime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "kitchenware-photos" / "images"
RAY_LAYOUTS = ((1, 1), (2, 1), (1, 2))  # (actors, threads per actor) on this machine's 2 cores


def single_process(model: Path, runtime: str, photos: list[Path]) -> tuple[float, float]:
    """(seconds, CPU seconds) of the local `predict`'s work: open the model on every core, classify every photo."""
    started, cpu = time.perf_counter(), time.process_time()
    Classifier.open(model, runtime).decide_photos(photos)
    return time.perf_counter() - started, time.process_time() - cpu


def cpu_by_process() -> dict[int, float]:
    """CPU seconds of this process and of every process under it: with a local Ray, the GCS, the raylet, its
    agents and workers, and the actors."""
    usage = {}
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            usage[process.pid] = sum(process.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400, help="the first N shared photos")
    parser.add_argument("--model", type=Path, default=ROOT / "models", help="an exported model folder")
    parser.add_argument(
        "--runtime",
        choices=("onnx", CASCADE),
        help="what every row runs (default: the model's own choice, as predict and the service)",
    )
    args = parser.parse_args()
    runtime = args.runtime or preferred_runtime(args.model, ModelCard.read(args.model).int8)
    photos = sorted(PHOTOS.glob("*.jpg"))[: args.photos]
    work = Path(tempfile.mkdtemp(prefix="kitchenware-ray-bench-"))  # the listing and each layout's answers
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    listing = work / "photos.csv"
    with open(listing, "w", newline="") as file:
        csv.writer(file).writerows([("Id", "path"), *((photo.stem, str(photo)) for photo in photos)])

    load = os.getloadavg()[0]
    seconds, cpu = single_process(args.model, runtime, photos)
    rows = [("single process (`predict`), 2 threads", len(photos) / seconds, cpu / len(photos), cpu / len(photos), "")]
    for actors, threads in RAY_LAYOUTS:
        started = time.perf_counter()
        with connected(None):
            ray_start = time.perf_counter() - started
            before = cpu_by_process()
            job = classify_catalogue(
                args.model,
                str(listing),
                str(work / f"out-{actors}x{threads}"),
                "parquet",
                actors,
                threads,
                runtime=runtime,
            )
            after = cpu_by_process()
        # Ray's own processes (and the driver) over the job; the actors count by their own reports, since Ray
        # ends them with the job.
        actor_pids = {int(process.rsplit(":", 1)[1]) for process in job.actor_usage}
        ray_cpu = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items() if pid not in actor_pids)
        peaks = ", ".join(f"{megabytes:.0f}" for megabytes, _ in job.actor_usage.values())
        label = f"Ray, {actors} actor(s) x {threads} thread(s) (Ray's start: {ray_start:.1f} s)"
        everything = job.cpu_seconds_per_photo + ray_cpu / job.photos
        rows.append((label, job.photos_per_second, job.cpu_seconds_per_photo, everything, peaks))

    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} before "
        f"and {os.getloadavg()[0]:.2f} after (other work on the same cores slows every row); {len(photos)} shared "
        f"photos, model {args.model.name}, runtime {runtime}"
    )
    print(
        "| run | photos/s (whole job) | CPU per photo: model (core-ms) | CPU per photo: everything (core-ms) "
        "| peak memory per actor (MB) |"
    )
    print("|---|---|---|---|---|")
    for label, rate, model_cpu, all_cpu, peaks in rows:
        print(f"| {label} | {rate:.2f} | {model_cpu * 1000:.0f} | {all_cpu * 1000:.0f} | {peaks} |")

    one, two = rows[1][1], rows[2][1]
    print(f"\n2 actors / 1 actor: {two / one:.2f}x the photos/s; 2 actors / single process: {two / rows[0][1]:.2f}x")
    core_seconds = rows[2][3]  # per photo, on the 2-actor run (one actor per core, as on a cluster), Ray included
    print(
        f"\nOn paper, a million photos at {core_seconds * 1000:.0f} core-ms each (the 2-actor run's CPU time, Ray's "
        f"own included, which other work does not change), {core_seconds * 1e6 / 3600:.0f} core-hours, on N machines "
        "of 2 cores with one actor per core, if throughput grows with the machines:"
    )
    print("| machines | hours | machine-hours |")
    print("|---|---|---|")
    for machines in (1, 4, 16, 64):
        hours = core_seconds * 1e6 / (2 * machines) / 3600
        print(f"| {machines} | {hours:.1f} | {hours * machines:.1f} |")


if __name__ == "__main__":
    main()

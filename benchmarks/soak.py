"""A soak of the service with feedback storage on, then the database stopped and started again under load:

    python -m benchmarks.soak [--requests 10000] [--clients 16] [--database postgresql|sqlite]

1. `bentoml serve` of the shipped model with storage on (a throwaway PostgreSQL server, or SQLite) and
   KITCHENWARE_API_KEY set; `clients` clients send `requests` requests in all, mixed: of every 10, 5 /classify,
   1 /classify_batch of 4 photos and 4 /feedback (with the Bearer key) on photos the client had classified, over
   64 real shared photos. Counts every answer that is not a 200, samples the server's resident memory every second
   (its growth from the end of the warm-up, the first tenth of the requests, to the end), and compares the
   database's rows with what was acknowledged: photos (distinct photo_ids answered), classifications (photo_ids
   answered), choices (/feedback answered 200).
2. PostgreSQL only: the same mix again (a tenth of `requests`), the database stopped (pg_ctl stop) when a third
   is done and started again at two thirds: what /classify and /feedback answered while it was down, how long each
   took to recover, and the rows against what was acknowledged, over both phases.
Prints the figures and writes them to this benchmark's section of benchmarks/RESULTS.md. The server inherits this
process's environment: `MALLOC_ARENA_MAX=2 python -m benchmarks.soak` measures glibc's malloc arenas' share of the
growth (RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import platform
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from benchmarks.overload import resident_mb
from benchmarks.sections import write_section
from benchmarks.serving import SHARED, server_processes, shipped_model_in_store
from kitchenware.feedback.repository import FeedbackStore
from tests.helpers.postgres import start, stop, throwaway_postgres
from tests.helpers.server import serving

PHOTOS = sorted((SHARED / "data" / "kitchenware-photos" / "images").glob("*.jpg"))[:64]
API_KEY = "soak-key"
LABELS = ["cup", "fork", "glass", "knife", "plate", "spoon", "other"]
BATCH = 4


def malloc_settings() -> str:
    """glibc's malloc variables this process (and so the server) runs with."""
    settings = [f"{name}={value}" for name, value in sorted(os.environ.items()) if name.startswith("MALLOC_")]
    return ", ".join(settings) or "none (the defaults)"


@dataclass
class Load:
    """What one mixed load was answered."""

    statuses: Counter = field(default_factory=Counter)  # (route, status)
    errors: Counter = field(default_factory=Counter)  # (route, status or exception, first words)
    photo_ids: list[str] = field(default_factory=list)  # acknowledged: each photo_id answered
    choices: int = 0  # acknowledged: /feedback answered 200
    without_photo_id: int = 0  # /classify answered 200 but not stored
    seconds: float = 0.0


async def mixed_load(
    url: str, requests: int, clients: int, known: list[str], done: list[int], expected=200, stored=lambda route: None
) -> Load:
    """`requests` requests from `clients` clients, 5 /classify, 1 /classify_batch, 4 /feedback of every 10.
    Choices are for `known` photo ids (extended with those classified); `done[0]` counts the requests answered, for
    a controller to watch; answers other than `expected` are kept in `errors` with their text (all, when 0);
    `stored(route)` is called when /classify stored its photo or /feedback saved the choice."""
    bodies = [photo.read_bytes() for photo in PHOTOS]
    load = Load()
    authorised = {"Authorization": f"Bearer {API_KEY}"}

    def note(route: str, response: httpx.Response) -> None:
        load.statuses[(route, response.status_code)] += 1
        if response.status_code != expected:
            load.errors[(route, response.status_code, response.text[:300])] += 1

    async def client(http: httpx.AsyncClient, index: int) -> None:
        for n in range(index, requests, clients):
            kind = n % 10
            try:
                if kind < 5 or (kind >= 6 and not known):
                    files = {"image": ("photo.jpg", bodies[n % len(bodies)], "image/jpeg")}
                    response = await http.post(f"{url}/classify", files=files)
                    note("/classify", response)
                    if response.status_code == 200:
                        photo_id = response.json().get("photo_id")
                        load.photo_ids += [photo_id] if photo_id else []
                        load.without_photo_id += not photo_id
                        if photo_id:
                            stored("/classify")
                        known.extend([photo_id] if photo_id else [])
                elif kind == 5:
                    files = [("images", ("p.jpg", bodies[(n + k) % len(bodies)], "image/jpeg")) for k in range(BATCH)]
                    response = await http.post(f"{url}/classify_batch", files=files)
                    note("/classify_batch", response)
                    if response.status_code == 200:
                        load.photo_ids += [answer["photo_id"] for answer in response.json() if answer.get("photo_id")]
                else:
                    choice = {"photo_id": known[n % len(known)], "label": LABELS[n % len(LABELS)]}
                    response = await http.post(f"{url}/feedback", json=choice, headers=authorised)
                    note("/feedback", response)
                    load.choices += response.status_code == 200
                    if response.status_code == 200:
                        stored("/feedback")
            except httpx.HTTPError as problem:
                load.errors[("any", type(problem).__name__, str(problem)[:150])] += 1
            done[0] += 1

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(http, index) for index in range(clients)))
    load.seconds = time.monotonic() - started
    return load


async def sample_memory(server: list[psutil.Process], samples: list[tuple[int, float]], done: list[int]) -> None:
    """(requests answered, server RSS in MB) every second, until cancelled."""
    while True:
        samples.append((done[0], resident_mb(server)))
        await asyncio.sleep(1)


async def soak(url: str, server: list[psutil.Process], requests: int, clients: int) -> tuple[Load, list, list[str]]:
    done, samples, known = [0], [], []
    sampler = asyncio.ensure_future(sample_memory(server, samples, done))
    load = await mixed_load(url, requests, clients, known, done)
    sampler.cancel()
    samples.append((done[0], resident_mb(server)))
    return load, samples, known


async def outage(url: str, database: str, requests: int, clients: int, known: list[str]) -> dict:
    """The mixed load again; the database stopped when a third of it is done and started again at two thirds; how
    long after the start /classify stored and /feedback saved again (NaN: not within the run)."""
    done, marks = [0], {}

    async def controller() -> None:
        while done[0] < requests // 3:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(stop, database)
        marks["stopped"] = time.monotonic()
        while done[0] < 2 * requests // 3:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(start, database)
        marks["started"] = time.monotonic()

    def stored(route: str) -> None:
        if "started" in marks:
            marks.setdefault(route, time.monotonic())

    controlling = asyncio.ensure_future(controller())
    # Every status is noted as it came, with its text (expected=0).
    load = await mixed_load(url, requests, clients, known, done, expected=0, stored=stored)
    await controlling
    return {
        "load": load,
        "classify_recovered": marks.get("/classify", math.nan) - marks["started"],
        "feedback_recovered": marks.get("/feedback", math.nan) - marks["started"],
        "down_seconds": marks["started"] - marks["stopped"],
    }


def counted(database: str, photos: Path) -> dict[str, int]:
    return FeedbackStore(database, photos).counts()


def acknowledged(*loads: Load) -> dict[str, int]:
    photo_ids = [photo_id for load in loads for photo_id in load.photo_ids]
    choices = sum(load.choices for load in loads)
    return {"photos": len(set(photo_ids)), "classifications": len(photo_ids), "choices": choices}


def run(args, database: str, scratch: Path) -> list[str]:
    tag = str(shipped_model_in_store().tag)
    environment = {
        "KITCHENWARE_MODEL": tag,
        "KITCHENWARE_FEEDBACK_DB": database,
        "KITCHENWARE_FEEDBACK_PHOTOS": str(scratch / "photos"),
        "KITCHENWARE_API_KEY": API_KEY,
    }
    with serving("service:KitchenwareClassifier", scratch / "serve.log", **environment) as (url, _):
        server = server_processes(int(url.rsplit(":", 1)[1]))
        load, samples, known = asyncio.run(soak(url, server, args.requests, args.clients))
        rows_after_soak = counted(database, scratch / "photos")
        ack_after_soak = acknowledged(load)
        print(f"soak: {load.seconds:.0f} s, {dict(load.statuses)}, errors {dict(load.errors)}", flush=True)
        down = None
        if args.database == "postgresql":
            down = asyncio.run(outage(url, database, args.requests // 10, args.clients, known))
    rows_at_end = counted(database, scratch / "photos")
    tenths = [next(mb for answered, mb in samples if answered >= args.requests * k // 10) for k in range(1, 11)]
    warm = tenths[0]
    final, peak = samples[-1][1], max(mb for _, mb in samples)
    statuses = ", ".join(f"{route} {status}: {count}" for (route, status), count in sorted(load.statuses.items()))
    lines = [
        f"`python -m benchmarks.soak --requests {args.requests} --clients {args.clients} --database "
        f"{args.database}`, {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores shared with the load "
        "generator (and with other work), the shipped model in its default runtime, "
        f"1 worker, feedback storage on, KITCHENWARE_API_KEY set, glibc's malloc settings in the server's environment: "
        f"{malloc_settings()}.",
        "",
        "| soak | figure |",
        "|---|---|",
        f"| requests ({args.clients} clients) | {sum(load.statuses.values())}: {statuses} |",
        f"| time, rate | {load.seconds:.0f} s, {args.requests / load.seconds:.1f} requests/s |",
        f"| errors (not 200) | {sum(load.errors.values())} {dict(load.errors) if load.errors else ''} |",
        f"| server RSS after the warm-up ({args.requests // 10} requests) / peak / end (MB) "
        f"| {warm:.0f} / {peak:.0f} / {final:.0f} |",
        f"| growth after the warm-up | {final / warm - 1:+.1%} (end), {peak / warm - 1:+.1%} (peak) |",
        f"| RSS at each tenth of the run (MB) | {', '.join(f'{mb:.0f}' for mb in tenths)} |",
        f"| growth over the second half | {final / tenths[4] - 1:+.1%} |",
        f"| rows (photos, classifications, choices) / acknowledged | {rows_after_soak} / {ack_after_soak} |",
    ]
    if down:
        outage_load: Load = down["load"]
        by_route = ", ".join(f"{r} {s}: {c}" for (r, s), c in sorted(outage_load.statuses.items()))
        reasons = {(route, status): text for route, status, text in outage_load.errors if status != 200}
        both = acknowledged(load, outage_load)
        lines += [
            "",
            f"The database stopped under the same mix ({args.requests // 10} requests, {args.clients} clients) when "
            f"a third was done, started again at two thirds ({down['down_seconds']:.1f} s down):",
            "",
            "| database stopped mid-run | figure |",
            "|---|---|",
            f"| answers over the run | {by_route}; {outage_load.without_photo_id} /classify answers without photo_id |",
            *(f"| {route} {status}, e.g. | `{text}` |" for (route, status), text in sorted(reasons.items())),
            f"| /classify storing again after the restart | {down['classify_recovered']:.2f} s |",
            f"| /feedback saving again after the restart | {down['feedback_recovered']:.2f} s |",
            f"| rows at the end / acknowledged, both runs | {rows_at_end} / {both} |",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kitchenware-soak-"))
    if args.database == "sqlite":
        lines = run(args, f"sqlite:///{scratch / 'feedback.db'}", scratch)
    else:
        with throwaway_postgres(scratch) as database:
            lines = run(args, database, scratch)
    report = "\n".join(lines) + "\n"
    print(report)
    write_section("benchmarks.soak", "## A soak with feedback storage, and the database stopped mid-run\n\n" + report)


if __name__ == "__main__":
    main()

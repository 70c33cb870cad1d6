"""Overload at 4x what the service can answer, without and with load shedding, side by side in one run:

    python -m benchmarks.overload [--factor 4] [--seconds 30] [--timeout 30]

1. Capacity: `bentoml serve` of the shipped model (its default runtime, 1 worker), 16 clients posting one real
   shared photo to /classify back to back: answers per second at saturation.
2. The same photo offered at `factor` x that rate for `seconds` (open loop: each request leaves on schedule, answered
   or not; at most --max-in-flight at once, the load generator's bound), each with a client timeout, on two servers
   one after the other: KITCHENWARE_MAX_QUEUED=0 (shedding off: BentoML's traffic.max_concurrency alone, the service
   before load_shedding.py) and the default bound. From the moment the last request leaves, a probe every 0.1 s until
   one gets a normal answer.
Prints, for each: the share answered, refused (503, or BentoML's 429) and lost, the p50/p99 latency of the answered,
the slowest refusal, the requests that hung to the client's timeout, the server's resident memory before, at the
peak and after, and the time to the first normal answer after the load stopped; writes them to this benchmark's
section of benchmarks/RESULTS.md. The load generator (httpx on one event loop) shares the 2 cores with the server;
with --pin the server runs on core 0 and the generator on the others.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

from benchmarks.sections import write_section
from benchmarks.serving import SHARED, server_processes, shipped_model_in_store
from kitchenware.serving.load_shedding import DEFAULT_MAX_QUEUED
from tests.helpers.server import serving

PHOTO = SHARED / "data" / "kitchenware-photos" / "images" / "0009.jpg"  # a cup
CURVE_CLIENTS = (1, 2, 4, 8, 16, 32)
ACCESS_LOG = re.compile(r"path=/classify,[^)]*\) \(status=(\d+),[^)]*\) ([\d.]+)ms")


def multipart(photo: Path) -> tuple[bytes, dict[str, str]]:
    """The /classify form, encoded once: the load generator then spends no CPU building it again."""
    request = httpx.Request(
        "POST", "http://x/classify", files={"image": ("photo.jpg", photo.read_bytes(), "image/jpeg")}
    )
    return request.read(), {"content-type": request.headers["content-type"]}


def resident_mb(server: list[psutil.Process]) -> float:
    return sum(process.memory_info().rss for process in server) / 1e6


async def closed_loop(url: str, body: bytes, headers: dict, clients: int, seconds: float) -> tuple[float, float]:
    """Answers per second and their p50 latency from `clients` clients back to back, after a 2 s warm-up."""
    latencies: list[float] = []

    async def client(http: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            started = time.monotonic()
            response = await http.post(f"{url}/classify", content=body, headers=headers)
            if response.status_code == 200:
                latencies.append(time.monotonic() - started)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(http, time.monotonic() + 2) for _ in range(clients)))
        latencies.clear()
        started = time.monotonic()
        await asyncio.gather(*(client(http, started + seconds) for _ in range(clients)))
        return len(latencies) / (time.monotonic() - started), percentile(latencies, 50)


async def capacity(url: str, body: bytes, headers: dict, seconds: float) -> dict[int, tuple[float, float]]:
    """{clients: (answers per second, p50 latency)}, the median of ROUNDS rounds over CURVE_CLIENTS (a shared
    machine drifts: each number of clients meets each phase of it). Where the throughput stops growing is the capacity;
    the fewest clients that reach it, the requests the service needs inside to stay busy."""
    rounds = [[await closed_loop(url, body, headers, clients, seconds) for clients in CURVE_CLIENTS] for _ in range(3)]
    return {
        clients: (statistics.median(r[n][0] for r in rounds), statistics.median(r[n][1] for r in rounds))
        for n, clients in enumerate(CURVE_CLIENTS)
    }


def server_seconds(log: Path, offset: int) -> dict[int, list[float]]:
    """{status: [seconds]} of the /classify requests in the server's access log, timed by the server itself (from
    when BentoML's access log middleware saw the request): what the client's own lag does not inflate."""
    found: dict[int, list[float]] = {}
    with open(log, "rb") as file:
        file.seek(offset)
        text = file.read().decode(errors="replace")
    for status, milliseconds in ACCESS_LOG.findall(text):
        found.setdefault(int(status), []).append(float(milliseconds) / 1000)
    return found


@dataclass
class Overload:
    sent: int = 0
    not_sent: int = 0  # the load generator's own bound was reached
    answered: list[float] = field(default_factory=list)  # seconds
    answered_while_loaded: int = 0  # answers that came before the last request left
    load_seconds: float = 0.0  # from the first request to the last: longer than asked when the generator lagged
    refused: list[float] = field(default_factory=list)
    refused_statuses: dict[int, int] = field(default_factory=dict)
    refused_with_retry_after: int = 0
    refusal_example: str = ""
    hung: int = 0  # to the client's timeout
    other: dict[str, int] = field(default_factory=dict)  # other statuses, connection errors
    memory_before: float = 0.0
    memory_peak: float = 0.0
    memory_after: float = 0.0
    server_seconds: dict[int, list[float]] = field(default_factory=dict)  # by status, from the access log
    first_normal_answer: float | None = None  # seconds after the last request left


async def overload(
    url: str, body: bytes, headers: dict, rate: float, seconds: float, timeout: float, max_in_flight: int, server
) -> Overload:
    result = Overload(memory_before=resident_mb(server))
    in_flight: set[asyncio.Task] = set()
    stopped, load_stopped = asyncio.Event(), asyncio.Event()

    async def one(http: httpx.AsyncClient) -> None:
        started = time.monotonic()
        try:
            response = await http.post(f"{url}/classify", content=body, headers=headers)
        except httpx.TimeoutException:
            result.hung += 1
            return
        except httpx.HTTPError as problem:
            result.other[type(problem).__name__] = result.other.get(type(problem).__name__, 0) + 1
            return
        took = time.monotonic() - started
        if response.status_code == 200:
            result.answered.append(took)
            result.answered_while_loaded += not load_stopped.is_set()
        elif response.status_code in (429, 503):
            result.refused.append(took)
            result.refused_statuses[response.status_code] = result.refused_statuses.get(response.status_code, 0) + 1
            result.refused_with_retry_after += "retry-after" in response.headers
            retry_after = response.headers.get("retry-after", "none")
            result.refusal_example = f"{response.status_code} Retry-After: {retry_after} {response.text[:160]}"
        else:
            result.other[str(response.status_code)] = result.other.get(str(response.status_code), 0) + 1

    async def sample_memory() -> None:
        while not stopped.is_set():
            result.memory_peak = max(result.memory_peak, resident_mb(server))
            await asyncio.sleep(0.5)

    async def probe(http: httpx.AsyncClient, load_stopped: float) -> None:
        """A request every 0.1 s from when the load stops until one is answered normally."""
        pending: set[asyncio.Task] = set()

        async def once() -> None:
            try:
                response = await http.post(f"{url}/classify", content=body, headers=headers)
            except httpx.HTTPError:
                return
            if response.status_code == 200 and result.first_normal_answer is None:
                result.first_normal_answer = time.monotonic() - load_stopped

        while result.first_normal_answer is None and time.monotonic() - load_stopped < timeout + 10:
            pending.add(asyncio.ensure_future(once()))
            await asyncio.sleep(0.1)
        await asyncio.gather(*pending)

    limits = httpx.Limits(max_connections=max_in_flight + 64, max_keepalive_connections=max_in_flight + 64)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        sampler = asyncio.ensure_future(sample_memory())
        started = time.monotonic()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            if len(in_flight) >= max_in_flight:
                result.not_sent += 1
                continue
            task = asyncio.ensure_future(one(http))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            result.sent += 1
        load_stopped.set()
        result.load_seconds = time.monotonic() - started
        await probe(http, time.monotonic())
        await asyncio.gather(*in_flight)
        stopped.set()
        await sampler
    await asyncio.sleep(2)
    result.memory_after = resident_mb(server)
    return result


def run(environment: dict[str, str], rate: float | None, args) -> tuple[dict, Overload]:
    """One server: its throughput by clients when `rate` is None (then `factor` x the best is offered), and the
    overload."""
    body, headers = multipart(args.photo)
    log = Path(tempfile.mkdtemp(prefix="kitchenware-overload-")) / "serve.log"
    if args.pin:
        os.sched_setaffinity(0, {0})  # the server started now, and all its processes and threads, get core 0
    with serving("service:KitchenwareClassifier", log, **environment) as (url, _):
        if args.pin:
            os.sched_setaffinity(0, set(range(1, os.cpu_count())))  # the load generator: the other cores
        server = server_processes(int(url.rsplit(":", 1)[1]))
        measured = {} if rate else asyncio.run(capacity(url, body, headers, args.capacity_seconds))
        offered = rate or args.factor * max(throughput for throughput, _ in measured.values())
        offset = log.stat().st_size
        loaded = asyncio.run(
            overload(url, body, headers, offered, args.seconds, args.timeout, args.max_in_flight, server)
        )
        loaded.server_seconds = server_seconds(log, offset)
    return measured, loaded


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def goodput(result: Overload) -> float:
    return result.answered_while_loaded / result.load_seconds


def refusals(result: Overload) -> list[float]:
    return result.server_seconds.get(503, []) + result.server_seconds.get(429, [])


def table(rows: dict[str, Overload], args) -> list[str]:
    def share(count: int, result: Overload) -> str:
        return f"{count / max(1, result.sent):.1%}"

    def counts(counted: dict) -> str:
        return ", ".join(f"{key}: {value}" for key, value in counted.items()) or "0"

    measures = {
        "requests sent": lambda r: f"{r.sent}" + f" ({r.not_sent} over the generator's bound)" * bool(r.not_sent),
        "sent per second (the generator's lag stretches the time)": (
            lambda r: f"{r.sent / r.load_seconds:.1f} (over {r.load_seconds:.1f} s)"
        ),
        "answered 200": lambda r: share(len(r.answered), r),
        "refused quickly (status: count)": lambda r: f"{share(len(r.refused), r)} ({counts(r.refused_statuses)})",
        "refusals with Retry-After": lambda r: f"{r.refused_with_retry_after} of {len(r.refused)}",
        f"hung to the client's timeout ({args.timeout:g} s)": lambda r: f"{r.hung}",
        "other statuses, connection errors": lambda r: counts(r.other),
        "answered per second while loaded": lambda r: f"{goodput(r):.1f}",
        "answered: p50 latency (s)": lambda r: f"{percentile(r.answered, 50):.2f}",
        "answered: p99 latency (s)": lambda r: f"{percentile(r.answered, 99):.2f}",
        "slowest refusal (s)": lambda r: f"{max(r.refused, default=float('nan')):.3f}",
        "as the server timed them: answered p50 / p99, refusals p50 / slowest (s)": lambda r: (
            f"{percentile(r.server_seconds.get(200, []), 50):.2f} / {percentile(r.server_seconds.get(200, []), 99):.2f}"
            f", {percentile(refusals(r), 50):.3f} / {max(refusals(r), default=float('nan')):.3f}"
        ),
        "server memory, RSS before / peak / after (MB)": (
            lambda r: f"{r.memory_before:.0f} / {r.memory_peak:.0f} / {r.memory_after:.0f}"
        ),
        "first normal answer after the load stopped (s)": (
            lambda r: "none" if r.first_normal_answer is None else f"{r.first_normal_answer:.2f}"
        ),
        "a refusal": lambda r: f"`{r.refusal_example}`" if r.refusal_example else "",
    }
    lines = ["| | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for name, measure in measures.items():
        lines.append(f"| {name} | " + " | ".join(measure(result) for result in rows.values()) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--factor", type=float, default=4.0, help="offered load, in multiples of the capacity")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load is offered")
    parser.add_argument("--timeout", type=float, default=30.0, help="the client's timeout")
    parser.add_argument("--capacity-seconds", type=float, default=4.0, help="for each number of clients")
    parser.add_argument("--max-in-flight", type=int, default=1000, help="the load generator's bound")
    parser.add_argument("--bound", type=int, default=DEFAULT_MAX_QUEUED, help="KITCHENWARE_MAX_QUEUED when on")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on core 0, the load generator on the others: a server that takes every core it shares "
        "cannot slow the generator down below the offered rate",
    )
    args = parser.parse_args()
    tag = str(shipped_model_in_store().tag)
    servers = {
        "shedding off (KITCHENWARE_MAX_QUEUED=0: before)": "0",
        f"shedding on (KITCHENWARE_MAX_QUEUED={args.bound}: after)": str(args.bound),
    }
    rows, load_averages, curve, offered = {}, {}, {}, None
    for name, bound in servers.items():
        environment = {"KITCHENWARE_MODEL": tag, "KITCHENWARE_MAX_QUEUED": bound}
        measured, rows[name] = run(environment, offered, args)
        curve = curve or measured
        offered = offered or args.factor * max(throughput for throughput, _ in curve.values())
        load_averages[name] = os.getloadavg()[0]
        result = rows[name]
        print(f"{name}: {len(result.answered)} answered, {len(result.refused)} refused, {result.hung} hung", flush=True)
    before, after = rows.values()
    lines = [
        f"`python -m benchmarks.overload --factor {args.factor:g} --seconds {args.seconds:g} --timeout "
        f"{args.timeout:g}{' --pin' * args.pin}`, {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} "
        + (
            "cores: the server on core 0, the load generator (httpx, one event loop) on the others, both shared with "
            if args.pin
            else "cores shared with the load generator (httpx, one event loop) and "
        )
        + "other work (1-minute load average after each server's run: "
        + ", ".join(f"{value:.1f}" for value in load_averages.values())
        + f"), the shipped model in its default runtime, 1 worker, one real photo ({args.photo.name}) to /classify.",
        "",
        f"Throughput by concurrent clients (closed loop, {args.capacity_seconds:g} s each, the median of 3 rounds, "
        "shedding off):",
        "",
        "| clients | " + " | ".join(str(clients) for clients in curve) + " |",
        "|---|" + "---|" * len(curve),
        "| answers/s | " + " | ".join(f"{throughput:.1f}" for throughput, _ in curve.values()) + " |",
        "| p50 latency (s) | " + " | ".join(f"{p50:.2f}" for _, p50 in curve.values()) + " |",
        "",
        f"Offered {offered:.1f} requests/s ({args.factor:g}x the best above) for {args.seconds:g} s, open loop, to "
        "each server in turn:",
        "",
        *table(rows, args),
        "",
        "Ratios, after / before: answered p99 "
        f"{percentile(after.answered, 99) / percentile(before.answered, 99):.2f}, peak memory "
        f"{after.memory_peak / before.memory_peak:.2f}, answers per second while loaded "
        f"{goodput(after) / goodput(before):.2f}.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    write_section("benchmarks.overload", "## Overload at 4x the capacity: shedding off and on\n\n" + report)


if __name__ == "__main__":
    main()

"""Serving speed, side by side in one run: the raw model in-process against `bentoml serve` over HTTP.

    python -m benchmarks.serving [--requests 48] [--photos ../shared/data/kitchenware-photos]

1. Raw model (a fresh process, nothing else running), with ONNX Runtime: one forward pass at batch 1
   (median), and images/s for batch sizes 1-32; NumPy's matrix-product rate for the compute floor.
2. For each server layout (workers x threads; with the model's decision rule, and the same network without
   it): start `bentoml serve` with the shipped model, time start to /readyz 200, then send real photos to
   /classify from 1, 4 and 16 concurrent clients; p50/p95 latency, throughput, errors, memory of the server.
3. Paired at 1 client: requests alternate between two targets (two servers, or two routes of one), so the
   drift of a shared, noisy machine hits both alike: /classify with feedback storage on against off, and
   /explain (the heat map as a PNG) against /classify on one server.
4. The int8 cascade (KITCHENWARE_RUNTIME=onnx-int8-cascade) against the float network, both servers up at once:
   p50 at 1 client with requests alternating, throughput at 16 clients in alternating bursts, errors, memory,
   and how often the cascade ran the float network (its own /metrics counter), on the validation photos of each
   photo set (photos the model never trained on, as a seller's are) and on the first photos of
   kitchenware-photos that the tables above use.
Prints the tables and the ratios, and writes them at the top of benchmarks/RESULTS.md (the rest is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import csv
import datetime
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import psutil

from kitchenware import store
from kitchenware.core.card import DEFAULT_MODEL_NAME, INT8_FILE, ONNX_FILE, ModelCard
from kitchenware.core.inference import OnnxRuntime, Runtime
from kitchenware.core.preprocessing import prepare
from kitchenware.core.runtimes import CASCADE, open_runtime
from tests.helpers.server import serving

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def layout(
    workers: int, threads: int, decisions: bool = True, feedback: bool = False
) -> tuple[str, dict[str, str], bool]:
    """A server layout's name, the environment that selects it, and whether the model's decision rule is on;
    with feedback, every photo and answer is stored (SQLite in a new temporary folder)."""
    name = f"onnx, {workers} worker{'s' * (workers > 1)} x {threads} thread{'s' * (threads > 1)}"
    name += ("" if decisions else ", no decision rule") + (", feedback storage (SQLite)" if feedback else "")
    environment = {"KITCHENWARE_RUNTIME": "onnx", "KITCHENWARE_WORKERS": workers, "KITCHENWARE_THREADS": threads}
    if feedback:
        environment["KITCHENWARE_FEEDBACK_DB"] = f"sqlite:///{tempfile.mkdtemp(prefix='kitchenware-bench-')}/f.db"
    return name, {key: str(value) for key, value in environment.items()}, decisions


# The same network with a card stripped of the decision rule measures what the rule costs (calibration and the
# nearest-neighbour search); the features output is the pooled layer the network computes anyway.
LAYOUTS = [layout(1, 2), layout(1, 2, decisions=False), layout(1, 2, feedback=True), layout(2, 1)]
RUNTIMES = ("onnx", "int8")  # models/ ships no model.keras; TensorFlow was measured against it before (RESULTS.md)
CONCURRENCY = (1, 4, 16)
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
XCEPTION_GFLOP = 16.7  # 8.4 G multiply-adds per 299x299 image


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def shipped_model_in_store():
    """The shipped models/ imported into the benchmark's own BentoML store (a temporary one unless
    BENTOML_HOME is set, removed when the benchmark ends); returns the store's model."""
    if "BENTOML_HOME" not in os.environ:
        os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="kitchenware-bench-bentoml-")
        atexit.register(shutil.rmtree, os.environ["BENTOML_HOME"], ignore_errors=True)
    import bentoml

    tag, _ = store.import_exported(ROOT / "models")
    return bentoml.models.get(tag)


def without_decisions(bento_model) -> str:
    """The same model.onnx under a card without the decision rule (as a model saved before it): its tag."""
    import bentoml

    card = ModelCard.from_metadata(bento_model.info.metadata)
    bare = ModelCard(card.name + "_no_decisions", card.class_names, card.input_size, card.architecture)
    with bentoml.models.create(bare.name, metadata=bare.to_metadata()) as copy:
        shutil.copyfile(Path(bento_model.path) / ONNX_FILE, copy.path_of(ONNX_FILE))
    return str(copy.tag)


def batch1(network: Runtime, pixels: np.ndarray, repeats: int = 20) -> tuple[float, float]:
    """Median seconds of a batch-1 forward pass and this process's CPU seconds per pass, after 5 warm-up
    calls (the first calls after loading are slower)."""
    timed(lambda: network.forward(pixels[:1]), 5)
    me = [psutil.Process()]
    cpu_before = cpu_seconds(me)
    seconds = statistics.median(timed(lambda: network.forward(pixels[:1]), repeats))
    return seconds, (cpu_seconds(me) - cpu_before) / repeats


def two_at_once(network: Runtime, pixels: np.ndarray, passes: int = 48) -> tuple[float, float]:
    """Images/s and CPU seconds per image with two batch-1 passes always in flight (the service's two inference
    threads of the int8 cascade), after one warm-up pass each."""
    me = [psutil.Process()]

    def run(photos: range) -> None:
        for index in photos:
            network.forward(pixels[index % len(pixels)][None])

    with ThreadPoolExecutor(2) as threads:
        list(threads.map(run, [range(0, 1), range(1, 2)]))
        started, cpu_before = time.perf_counter(), cpu_seconds(me)
        list(threads.map(run, [range(0, passes, 2), range(1, passes, 2)]))
        return passes / (time.perf_counter() - started), (cpu_seconds(me) - cpu_before) / passes


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(process.cpu_times()[:2]) for process in processes)


def raw_model(model_dir: str, runtime: str, input_size: int, photos: list[Path]) -> dict:
    """The forward pass alone: median seconds at batch 1, CPU time per image at batch 1, images/s by batch size.

    Run in a fresh process for each runtime, so neither's threads or memory stay behind. "int8" is the int8
    network alone (model-int8.onnx), what the cascade runs first."""
    pixels = np.stack([prepare(photo, input_size) for photo in photos[: max(BATCH_SIZES)]])
    if runtime == "int8":
        network = OnnxRuntime(Path(model_dir) / INT8_FILE, threads=os.cpu_count())
    else:
        network = open_runtime(Path(model_dir), runtime, threads=os.cpu_count(), input_size=input_size)
    batch1_seconds, cpu_per_image = batch1(network, pixels)
    concurrent_throughput, concurrent_cpu = two_at_once(network, pixels)
    throughput = {}
    for size in BATCH_SIZES:
        network.forward(pixels[:size])  # first call of a shape
        seconds = statistics.median(timed(lambda s=size: network.forward(pixels[:s]), max(3, 32 // size)))
        throughput[size] = size / seconds
    return {
        "batch1": batch1_seconds,
        "cpu_per_image": cpu_per_image,
        "throughput": throughput,
        "two_at_once": concurrent_throughput,
        "two_at_once_cpu": concurrent_cpu,
    }


def matmul_gflops() -> float:
    """NumPy's float32 matrix product on this machine now: the rate that sets the compute floor."""
    a, b = np.ones((2048, 2048), np.float32), np.ones((2048, 2048), np.float32)
    a @ b
    return 2 * 2048**3 / statistics.median(timed(lambda: a @ b, 10)) / 1e9


def load(url: str, photos: list[Path], clients: int, requests: int, server: list[psutil.Process]) -> dict:
    """`requests` POST /classify in all, from `clients` concurrent clients on one event loop (aiohttp: the load
    generator shares the CPU with the server, so it has to be light); also the server's CPU time per request."""
    bodies = [photo.read_bytes() for photo in photos]
    latencies, errors = [], []

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        for n in range(index, requests, clients):
            form = aiohttp.FormData()
            form.add_field("image", bodies[n % len(bodies)], filename="photo.jpg", content_type="image/jpeg")
            started = time.perf_counter()
            async with session.post(f"{url}/classify", data=form) as response:
                text = await response.text()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(f"{response.status} {text[:120]}")

    async def run_clients() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            await asyncio.gather(*(client(session, index) for index in range(clients)))

    started, cpu_before = time.perf_counter(), cpu_seconds(server)
    asyncio.run(run_clients())
    wall = time.perf_counter() - started
    return {
        "cpu_per_request": (cpu_seconds(server) - cpu_before) / requests,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "throughput": len(latencies) / wall,
        "errors": errors,
    }


def alternating(targets: list[str], photos: list[Path], rounds: int) -> list[float]:
    """p50 latency (s) of each target URL, one client sending the same photo to each in turn, `rounds` times."""
    bodies = [photo.read_bytes() for photo in photos]
    latencies: list[list[float]] = [[] for _ in targets]
    with httpx.Client(timeout=300) as client:
        for n in range(rounds + 2):  # the first two rounds warm up
            for index, target in enumerate(targets):
                started = time.perf_counter()
                response = client.post(target, files={"image": ("photo.jpg", bodies[n % len(bodies)], "image/jpeg")})
                if response.status_code != 200:
                    raise RuntimeError(f"{target}: {response.status_code} {response.text[:200]}")
                if n >= 2:
                    latencies[index].append(time.perf_counter() - started)
    return [float(np.median(times)) for times in latencies]


def paired_servers(tag: str, first: dict, second: dict, photos: list[Path], rounds: int) -> tuple[float, float]:
    """p50 of /classify on two servers side by side (environments `first` and `second`), requests alternating."""
    scratch = Path(tempfile.mkdtemp())
    with (
        serving("service:KitchenwareClassifier", scratch / "a.log", KITCHENWARE_MODEL=tag, **first) as (a, _),
        serving("service:KitchenwareClassifier", scratch / "b.log", KITCHENWARE_MODEL=tag, **second) as (b, _),
    ):
        p50_a, p50_b = alternating([f"{a}/classify", f"{b}/classify"], photos, rounds)
    return p50_a, p50_b


def paired_routes(tag: str, environment: dict, routes: list[str], photos: list[Path], rounds: int) -> list[float]:
    """p50 of each route of one server, requests alternating between them."""
    log = Path(tempfile.mkdtemp()) / "serve.log"
    with serving("service:KitchenwareClassifier", log, KITCHENWARE_MODEL=tag, **environment) as (url, _):
        return alternating([f"{url}{route}" for route in routes], photos, rounds)


def server_processes(port: int) -> list[psutil.Process]:
    """`bentoml serve` listening on `port` and all its children."""
    for process in psutil.process_iter(["cmdline"]):
        if "serve" in (process.info["cmdline"] or []) and str(port) in (process.info["cmdline"] or []):
            return [process, *process.children(recursive=True)]
    raise RuntimeError(f"no `bentoml serve` process on port {port}")


def counter(url: str, name: str) -> float:
    """The sum of a Prometheus counter over its labels, read from the server's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(float(value) for value in re.findall(rf"^{name}_total(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


def validation_photos(split_csv: Path, source: str) -> list[Path]:
    with open(split_csv, newline="") as file:
        return [
            ROOT / row["path"] if not Path(row["path"]).is_absolute() else Path(row["path"])
            for row in csv.DictReader(file)
            if row["subset"] == "validation" and row["source"] == source
        ]


def float_against_cascade(tag: str, photo_sets: dict[str, list[Path]], requests: int, bursts: int = 3) -> list[dict]:
    """Both servers up at once; for each photo set, every photo sent (at least `requests` requests): p50 at 1 client
    (requests alternating), then `bursts` rounds from 16 clients to one server then the other (throughput: all
    requests over all their time), and the share of the cascade's photos the float network answered (its
    /metrics counter)."""
    scratch = Path(tempfile.mkdtemp())
    plain = {"KITCHENWARE_WORKERS": "1", "KITCHENWARE_THREADS": "2"}
    # The cascade's own BentoML home (the same models): servers of one home share their /metrics files.
    (scratch / "home").mkdir()
    (scratch / "home" / "models").symlink_to(Path(os.environ["BENTOML_HOME"]) / "models")
    rows = []
    with (
        serving(
            "service:KitchenwareClassifier",
            scratch / "f.log",
            KITCHENWARE_MODEL=tag,
            KITCHENWARE_RUNTIME="onnx",
            **plain,
        ) as (exact, cold_exact),
        serving(
            "service:KitchenwareClassifier",
            scratch / "c.log",
            KITCHENWARE_MODEL=tag,
            KITCHENWARE_RUNTIME=CASCADE,
            BENTOML_HOME=str(scratch / "home"),
            **plain,
        ) as (cascade, cold_cascade),
    ):
        servers = {url: server_processes(int(url.rsplit(":", 1)[1])) for url in (exact, cascade)}
        for name, photos in photo_sets.items():
            sent = len(photos) * -(-requests // len(photos))  # every photo of the set, each as often
            answered = counter(cascade, "kitchenware_answers")
            fell_back = counter(cascade, "kitchenware_float_fallbacks")
            p50_exact, p50_cascade = alternating([f"{exact}/classify", f"{cascade}/classify"], photos, sent)
            loads: dict[str, list[dict]] = {exact: [], cascade: []}
            for _ in range(bursts):
                for url in (exact, cascade):
                    loads[url].append(load(url, photos, 16, sent, servers[url]))
            throughput = {
                url: bursts * sent / sum(sent / run["throughput"] for run in runs) for url, runs in loads.items()
            }
            errors = {url: sum(len(run["errors"]) for run in runs) for url, runs in loads.items()}
            cpu = {url: statistics.mean(run["cpu_per_request"] for run in runs) for url, runs in loads.items()}
            fallback = (counter(cascade, "kitchenware_float_fallbacks") - fell_back) / (
                counter(cascade, "kitchenware_answers") - answered
            )
            rows.append(
                {
                    "photos": name,
                    "count": len(photos),
                    "p50": (p50_exact, p50_cascade),
                    "throughput": (throughput[exact], throughput[cascade]),
                    "cpu": (cpu[exact], cpu[cascade]),
                    "errors": (errors[exact], errors[cascade]),
                    "fallback": fallback,
                }
            )
        memory = {
            url: sum(process.memory_full_info().uss for process in processes) / 1e6
            for url, processes in servers.items()
        }
    for row in rows:
        row["memory"] = (memory[exact], memory[cascade])
        row["cold_start"] = (cold_exact, cold_cascade)
    return rows


def cascade_table(rows: list[dict], requests: int, bursts: int = 3) -> list[str]:
    lines = [
        f"Float network (`onnx`) against the int8 cascade (`{CASCADE}`), 1 worker x 2 threads each, both servers up "
        f"at once, each sent every photo of the set (at least {requests} requests, the photos in turn): p50 at 1 "
        f"client with requests alternating between the servers; throughput at 16 clients over {bursts} alternating "
        "bursts to each; the share of photos the float network answered from the cascade's /metrics "
        "(`kitchenware_float_fallbacks_total` / `kitchenware_answers_total`):",
        "",
        "| photos sent | p50 at 1 client, float / cascade (ms) | ratio | img/s at 16 clients, float / cascade | ratio "
        "| server CPU at 16 clients (core-ms) | errors | float network ran on | memory, float / cascade (MB, USS) "
        "| ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        (p50_f, p50_c), (tp_f, tp_c), (cpu_f, cpu_c) = row["p50"], row["throughput"], row["cpu"]
        (mem_f, mem_c), (err_f, err_c) = row["memory"], row["errors"]
        lines.append(
            f"| {row['photos']} ({row['count']}) | {p50_f * 1000:.0f} / {p50_c * 1000:.0f} | {p50_c / p50_f:.2f} "
            f"| {tp_f:.2f} / {tp_c:.2f} | {tp_c / tp_f:.2f} | {cpu_f * 1000:.0f} / {cpu_c * 1000:.0f} "
            f"| {err_f} / {err_c} | {row['fallback']:.1%} | {mem_f:.0f} / {mem_c:.0f} | {mem_c / mem_f:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "kitchenware-photos")
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency level")
    args = parser.parse_args()
    bento_model = shipped_model_in_store()
    tag = str(bento_model.tag)
    input_size = int(bento_model.info.metadata["input_size"])
    photos = sorted((args.photos / "images").glob("*.jpg"))[:64]
    has_int8 = (Path(bento_model.path) / INT8_FILE).is_file()
    raw = {}
    for runtime in RUNTIMES if has_int8 else RUNTIMES[:1]:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh_process:
            raw[runtime] = fresh_process.submit(raw_model, bento_model.path, runtime, input_size, photos).result()
    gflops = matmul_gflops()

    bare_tag = without_decisions(bento_model)
    rows, summary = [], {}
    for name, environment, decisions in LAYOUTS:
        log = Path(tempfile.mkdtemp()) / "serve.log"
        model = tag if decisions else bare_tag
        with serving("service:KitchenwareClassifier", log, KITCHENWARE_MODEL=model, **environment) as (url, cold_start):
            server = server_processes(int(url.rsplit(":", 1)[1]))
            results = {clients: load(url, photos, clients, args.requests, server) for clients in CONCURRENCY}
            # Unique memory of each process: pages shared between them are not counted twice.
            memory = sum(process.memory_full_info().uss for process in server) / 1e6
        summary[name] = (environment["KITCHENWARE_RUNTIME"], results, cold_start, memory)
        for clients, result in results.items():
            rows.append(
                f"| {name} | {clients} | {result['p50'] * 1000:.0f} | {result['p95'] * 1000:.0f} | "
                f"{result['throughput']:.2f} | {result['cpu_per_request'] * 1000:.0f} | "
                f"{len(result['errors'])} {'; '.join(sorted(set(result['errors'])))} |"
            )

    plain, storing = layout(1, 2)[1], layout(1, 2, feedback=True)[1]  # a new, empty database
    storage_off, storage_on = paired_servers(tag, plain, storing, photos, args.requests)
    same_a, same_b = paired_servers(tag, plain, plain, photos, args.requests)
    classify_p50, explain_p50 = paired_routes(tag, plain, ["/classify", "/explain"], photos, args.requests)
    cascade_rows = []
    if has_int8:
        split_csv = ROOT / "models" / "split.csv"
        photo_sets = {
            "kitchenware-photos, validation": validation_photos(split_csv, "kitchenware-photos"),
            "kitchenware-photos-more, validation": validation_photos(split_csv, "kitchenware-photos-more"),
            "kitchenware-photos, the first 64 (as above; 80% training photos)": photos,
        }
        cascade_rows = float_against_cascade(tag, photo_sets, args.requests)
    floor_ms = XCEPTION_GFLOP / gflops * 1000
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{datetime.date.today()}; `python -m benchmarks.serving --requests {args.requests}`; "
        f"model {DEFAULT_MODEL_NAME} (Xception 299x299) from models/",
        "",
        "Raw model, one forward pass in a fresh process per runtime (images/s by batch size):",
        "",
        "| runtime | batch 1 (ms) | CPU per image at batch 1 (core-ms) | "
        + " | ".join(f"batch {size}" for size in BATCH_SIZES)
        + " | best (ms/image) | best / compute floor "
        + "| batch 1, two passes at once: images/s, CPU per image (core-ms) |",
        "|---|---|---|" + "---|" * len(BATCH_SIZES) + "---|---|---|",
    ]
    for runtime, measured in raw.items():
        best_ms = 1000 / max(measured["throughput"].values())
        lines.append(
            f"| {runtime} | {measured['batch1'] * 1000:.0f} | {measured['cpu_per_image'] * 1000:.0f} | "
            + " | ".join(f"{measured['throughput'][size]:.2f}" for size in BATCH_SIZES)
            + f" | {best_ms:.0f} | {best_ms / floor_ms:.2f} "
            f"| {measured['two_at_once']:.2f}, {measured['two_at_once_cpu'] * 1000:.0f} |"
        )
    lines += [
        "",
        f"Compute floor: {XCEPTION_GFLOP} GFLOP per image at the float32 matrix-product rate NumPy reached in this run "
        f"({gflops:.0f} GFLOP/s on {os.cpu_count()} cores) = {floor_ms:.0f} ms/image.",
        "",
        "`bentoml serve` over HTTP, POST /classify with real photos (server CPU: all its processes, per request):",
        "",
        "| server layout | clients | p50 (ms) | p95 (ms) | throughput (img/s) | server CPU (core-ms) | errors |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "| server layout | cold start to /readyz (s) | memory, all processes (MB, USS) | p50 at 1 client / raw batch 1 "
        "| throughput at 16 clients / best raw | server CPU at 16 clients / raw CPU |",
        "|---|---|---|---|---|---|",
    ]
    for name, (runtime, results, cold_start, memory) in summary.items():
        measured = raw[runtime]
        lines.append(
            f"| {name} | {cold_start:.1f} | {memory:.0f} | {results[1]['p50'] / measured['batch1']:.2f} "
            f"| {results[16]['throughput'] / max(measured['throughput'].values()):.2f} "
            f"| {results[16]['cpu_per_request'] / measured['cpu_per_image']:.2f} |"
        )
    with_rule, without_rule = (summary[name][1][1]["p50"] for name, _, _ in LAYOUTS[:2])
    stored = summary[LAYOUTS[2][0]][1][1]["p50"]
    lines += [
        "",
        f"p50 at 1 client with the decision rule / without it: {with_rule / without_rule:.3f}",
        f"p50 at 1 client with feedback storage / without it (layouts run one after the other): "
        f"{stored / with_rule:.3f}",
        "",
        f"Paired at 1 client, {args.requests} requests to each target, alternating:",
        "",
        "| comparison | p50 (ms) | p50 (ms) | ratio |",
        "|---|---|---|---|",
        f"| /classify, feedback storage on / off (two servers) | {storage_on * 1000:.1f} | {storage_off * 1000:.1f} "
        f"| {storage_on / storage_off:.3f} |",
        f"| /classify, two identical servers, storage off (the noise of this run) | {same_b * 1000:.1f} | "
        f"{same_a * 1000:.1f} | {same_b / same_a:.3f} |",
        f"| /explain (heat map PNG) / /classify (one server) | {explain_p50 * 1000:.1f} | {classify_p50 * 1000:.1f} "
        f"| {explain_p50 / classify_p50:.3f} |",
    ]
    if cascade_rows:
        lines += ["", *cascade_table(cascade_rows, args.requests)]
    report = "\n".join(lines) + "\n"
    print(report)
    write_results(report)


KEPT = "\n---\n\n# Other benchmarks and earlier runs"  # RESULTS.md from this line on is not this benchmark's


def write_results(report: str) -> None:
    """This run's tables at the top of benchmarks/RESULTS.md, the other benchmarks' sections below them kept."""
    results = ROOT / "benchmarks" / "RESULTS.md"
    before = results.read_text() if results.is_file() else ""
    kept = before[before.index(KEPT) :] if KEPT in before else ""
    results.write_text("# Serving benchmark: latest run\n\n" + report + kept)


if __name__ == "__main__":
    sys.exit(main())

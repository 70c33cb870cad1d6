"""int8 for the served model: what each attempt gave, measured against the float network in one run.

    python -m benchmarks.quantization [--work /tmp/kitchenware-quantization]

Every shared photo (both kitchenware sets and ../shared/data/not-kitchenware) goes through the shipped float
network (models/model.onnx) and through int8 networks made by kitchenware/training/int8/ with one change
at a time: the calibration photos (120 training photos of one set, as first tried, or the broad set
`train.py quantize` uses: every other training photo of both sets and every other photo of other things), the
calibration method (min-max, percentile), cross-layer equalization, and which layers stay float. For each: how
often int8 alone gives the float network's top label and its whole answer (label and decision), the validation
accuracy, the batch-1 speed next to the float network's (measured side by side, in one process), and the
cascade it makes (band chosen on the validation split, as `train.py quantize` chooses it): how often the float
network runs and how often the final answer is the float network's, on photos the band was not chosen on.
Then ONNX Runtime's profile of the shipped int8 network (which kernels run, and their share of the time) and
its int8 matrix-product rate against float32 (AVX-512 VNNI). Intermediate files and outputs are kept in --work,
so a second run only measures speed. Writes benchmarks/QUANTIZATION.md.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import load_tensors_data, save_tensors_data

from kitchenware.core.card import ONNX_FILE, ModelCard
from kitchenware.core.decision import DecisionRule
from kitchenware.core.inference import Forward, OnnxRuntime, forward_in_batches
from kitchenware.core.photos import find_photos, unlabelled_images
from kitchenware.core.preprocessing import prepare
from kitchenware.training.int8.band import cascade_figures, choose_band, same_answers
from kitchenware.training.int8.calibration import calibrate, in_chunks, quantize
from kitchenware.training.int8.graph import equalize, network_for_int8, residual_additions, stream_readers
from kitchenware.training.int8.pipeline import ALPHA, EQUALIZE_PHOTOS, PERCENTILE

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETS = ("kitchenware-photos", "kitchenware-photos-more", "not-kitchenware")


class Attempt:
    def __init__(self, name: str, calibration: str, method: str, equalized: bool, kept_float: str = "nothing"):
        self.name, self.calibration, self.method = name, calibration, method
        self.equalized, self.kept_float = equalized, kept_float
        self.key = f"{calibration}-{method}-{'eq' if equalized else 'plain'}-{kept_float}"


ATTEMPTS = [
    Attempt("min-max, 120 training photos of kitchenware-photos (the first try)", "narrow", "minmax", False),
    Attempt("min-max, broad set", "broad", "minmax", False),
    Attempt("percentile 99.999, broad set", "broad", "percentile", False),
    Attempt("min-max, broad set, equalized", "broad", "minmax", True),
    Attempt("percentile, broad set, equalized", "broad", "percentile", True),
    Attempt("the same, residual additions float", "broad", "percentile", True, "residual"),
    Attempt("the same, + the 3 shortcut 1x1 convolutions float (shipped)", "broad", "percentile", True, "shortcuts"),
    Attempt(
        "the same, + the 8 middle-flow convolutions into the additions float", "broad", "percentile", True, "writers"
    ),
]
SHIPPED = ATTEMPTS[6]


def photo_table(work: Path, input_size: int) -> tuple[list[dict], np.ndarray]:
    """Every shared photo with its set and role, and its pixels (decoded once into --work)."""
    split = {}
    with open(ROOT / "models" / "split.csv", newline="") as file:
        split = {(row["source"], row["Id"]): row["subset"] for row in csv.DictReader(file)}
    labelled = sorted(find_photos(SHARED / SETS[0], SHARED / SETS[1]).samples, key=lambda s: (s.source, s.id))
    others = sorted(unlabelled_images(SHARED / SETS[2]), key=lambda s: s.id)
    rows = [
        {"set": s.source, "id": s.id, "label": s.label, "path": s.path, "role": split[s.source, s.id]} for s in labelled
    ]
    rows += [{"set": SETS[2], "id": s.id, "label": "", "path": s.path, "role": "other"} for s in others]
    train = [row for row in rows if row["role"] == "train"]
    for i, row in enumerate(train):  # as `train.py quantize` halves them
        row["role"] = "calibration" if i % 2 == 0 else "held out"
    for i, row in enumerate(row for row in rows if row["role"] == "other"):
        row["role"] = "calibration" if i % 2 == 0 else "held out"
    cache = work / "pixels.npy"
    if not cache.is_file():
        pixels = np.lib.format.open_memmap(
            work / "pixels.tmp.npy", "w+", np.uint8, (len(rows), input_size, input_size, 3)
        )
        for i, row in enumerate(rows):
            pixels[i] = prepare(row["path"], input_size)
        pixels.flush()
        del pixels
        (work / "pixels.tmp.npy").rename(cache)
    return rows, np.load(cache, mmap_mode="r")


def chunks(pixels: np.ndarray, indices: np.ndarray):
    return in_chunks(pixels[np.sort(indices)])


def outputs(path: Path, pixels: np.ndarray, cache: Path) -> Forward:
    if not cache.is_file():
        forward = forward_in_batches(OnnxRuntime(path, os.cpu_count()), pixels)
        np.savez(cache, probabilities=forward.probabilities, features=forward.features)
    saved = np.load(cache)
    return Forward(saved["probabilities"], saved["features"])


def make(attempt: Attempt, work: Path, network: Path, pixels: np.ndarray, calibration: dict[str, np.ndarray]) -> Path:
    """The attempt's int8 network in --work (made once)."""
    int8_file = work / f"{attempt.key}.onnx"
    if int8_file.is_file():
        return int8_file
    source = network
    if attempt.equalized:
        source = work / "equalized.onnx"
        if not source.is_file():
            equalize(network, chunks(pixels, calibration["equalize"]), source, ALPHA)
    ranges_file = work / f"ranges-{attempt.calibration}-{attempt.method}-{'eq' if attempt.equalized else 'plain'}.json"
    if not ranges_file.is_file():
        started = time.perf_counter()
        ranges = calibrate(source, chunks(pixels, calibration[attempt.calibration]), attempt.method, PERCENTILE)
        save_tensors_data(ranges, ranges_file)
        print(f"calibrated {attempt.key} in {time.perf_counter() - started:.0f} s", flush=True)
    quantize(source, load_tensors_data(ranges_file), int8_file, kept_float(attempt.kept_float, source))
    return int8_file


def kept_float(which: str, network: Path) -> list[str]:
    """The nodes an attempt keeps in float: the residual additions, then also the 1x1 shortcut convolutions that
    read the residual stream, then also the middle flow's pointwise convolutions that write into the additions."""
    if which == "nothing":
        return []
    graph = onnx.load(str(network), load_external_data=False).graph
    residual, shortcuts = residual_additions(network), stream_readers(network)
    producers = {output: node for node in graph.node for output in node.output}
    into_additions = [producers[name] for node in graph.node if node.name in residual for name in node.input]
    writers = [
        node.name
        for node in into_additions
        if node.op_type == "Conv" and "depthwise" in getattr(producers.get(node.input[0]), "name", "")
    ]
    return residual + {"residual": [], "shortcuts": shortcuts, "writers": shortcuts + writers}[which]


def batch1_ratios(networks: dict[str, Path], pixels: np.ndarray, rounds: int = 20) -> dict[str, float]:
    """Median batch-1 milliseconds of each network, measured in turns in one process (drift hits all alike)."""
    sessions = {name: OnnxRuntime(path, os.cpu_count()) for name, path in networks.items()}
    photo = np.asarray(pixels[:1])
    times: dict[str, list[float]] = {name: [] for name in networks}
    for session in sessions.values():
        for _ in range(3):
            session.forward(photo)
    for _ in range(rounds):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.forward(photo)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def kernel_profile(path: Path, pixels: np.ndarray, runs: int = 20) -> list[tuple[str, float, float, int]]:
    """ONNX Runtime's own profile: (kernel, ms per pass, share of the time, nodes) by operator."""
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = os.cpu_count()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.profile_file_prefix = str(path.parent / "profile")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.asarray(pixels[:1], np.float32)}
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    spent, nodes = collections.Counter(), collections.defaultdict(set)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"]
            nodes[event["args"]["op_name"]].add(event["name"])
    total = sum(spent.values())
    return [(op, us / runs / 1000, us / total, len(nodes[op])) for op, us in spent.most_common()]


def matmul_rates(size: int = 1024, rows: int = 512) -> tuple[float, float]:
    """GOP/s of ONNX Runtime's float32 MatMul and its uint8 x int8 MatMulInteger on this CPU: with AVX-512 VNNI
    the int8 one reaches about 4x the float one (4 multiply-adds per 32-bit lane and instruction)."""
    rng = np.random.default_rng(0)
    rates = []
    for op, a_type, b in (
        ("MatMul", TensorProto.FLOAT, rng.normal(size=(size, size)).astype(np.float32)),
        ("MatMulInteger", TensorProto.UINT8, rng.integers(-127, 128, (size, size)).astype(np.int8)),
    ):
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "b"], ["c"])],
            op,
            [helper.make_tensor_value_info("a", a_type, [rows, size])],
            [
                helper.make_tensor_value_info(
                    "c", TensorProto.FLOAT if op == "MatMul" else TensorProto.INT32, [rows, size]
                )
            ],
            [numpy_helper.from_array(b, "b")],
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = os.cpu_count()
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        a = rng.integers(0, 256, (rows, size)).astype(np.uint8 if op == "MatMulInteger" else np.float32)
        for _ in range(3):
            session.run(None, {"a": a})
        seconds = []
        for _ in range(20):
            started = time.perf_counter()
            session.run(None, {"a": a})
            seconds.append(time.perf_counter() - started)
        rates.append(2 * rows * size * size / statistics.median(seconds) / 1e9)
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kitchenware-quantization"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    models = ROOT / "models"
    card = ModelCard.read(models)
    rule = DecisionRule.for_model(card, models)
    rows, pixels = photo_table(args.work, card.input_size)
    sets, roles = np.array([row["set"] for row in rows]), np.array([row["role"] for row in rows])
    labels = np.array([card.class_names.index(row["label"]) if row["label"] else -1 for row in rows])
    validation = np.flatnonzero(roles == "validation")
    narrow = np.flatnonzero((sets == SETS[0]) & np.isin(roles, ["calibration", "held out"]))
    calibration = {
        "narrow": np.random.default_rng(0).permutation(narrow)[:120],
        "broad": np.flatnonzero(roles == "calibration"),
    }
    calibration["equalize"] = np.array(
        [calibration["broad"][int(i)] for i in np.linspace(0, len(calibration["broad"]) - 1, EQUALIZE_PHOTOS).round()]
    )
    network = args.work / "network.onnx"
    if not network.is_file():
        network_for_int8(models / ONNX_FILE, network)
    exact = outputs(models / ONNX_FILE, pixels, args.work / "float.npz")

    def part(forward: Forward, chosen: np.ndarray) -> Forward:
        return Forward(forward.probabilities[chosen], forward.features[chosen])

    table, networks = [], {"float": network}
    for attempt in ATTEMPTS:
        int8_file = make(attempt, args.work, network, pixels, calibration)
        networks[attempt.name] = int8_file
        quick = outputs(int8_file, pixels, args.work / f"{attempt.key}.npz")
        same = same_answers(rule, exact, quick)
        top1 = exact.probabilities.argmax(1) == quick.probabilities.argmax(1)
        band, safety, _ = choose_band(rule, part(exact, validation), part(quick, validation))
        held_out = roles == "held out"
        cascade = {
            name: cascade_figures(rule, band, part(exact, chosen), part(quick, chosen))
            for name, chosen in (
                ("validation", roles == "validation"),
                ("held out kitchenware", held_out & (sets != SETS[2])),
                ("held out other things", held_out & (sets == SETS[2])),
            )
        }
        cosine = (
            np.sum(exact.features * quick.features, 1)
            / np.linalg.norm(exact.features, axis=1)
            / np.linalg.norm(quick.features, axis=1)
        )
        table.append(
            {
                "attempt": attempt,
                "top1": [float(top1[sets == s].mean()) for s in SETS],
                "answer": [float(same[sets == s].mean()) for s in SETS],
                "validation_accuracy": float(np.mean(quick.probabilities[validation].argmax(1) == labels[validation])),
                "cosine": float(np.median(cosine[roles == "validation"])),
                "cascade": cascade,
                "safety": safety,
            }
        )
        print(attempt.name, json.dumps({k: v for k, v in table[-1].items() if k != "attempt"}), flush=True)
    float_accuracy = float(np.mean(exact.probabilities[validation].argmax(1) == labels[validation]))
    milliseconds = batch1_ratios(networks, pixels)
    shipped_profile = kernel_profile(args.work / f"{SHIPPED.key}.onnx", pixels)
    float_profile = kernel_profile(network, pixels)
    float_rate, int8_rate = matmul_rates()

    lines = [
        f"{datetime.date.today()}, {os.cpu_count()} cores, onnxruntime {onnxruntime.__version__}; "
        "`python -m benchmarks.quantization`; "
        f"{len(rows)} photos: {', '.join(f'{s} {int((sets == s).sum())}' for s in SETS)}; "
        f"{len(validation)} in the validation split (models/split.csv); "
        f"float validation accuracy {float_accuracy:.4f}",
        "",
        "int8 alone against the float network (top-1 label / whole answer, label and decision, on every photo of "
        "the set), its validation accuracy, the median cosine of its features with the float ones on the validation "
        "photos, and batch 1 side by side with the float network:",
        "",
        "| attempt | kitchenware-photos | kitchenware-photos-more | not-kitchenware | validation accuracy "
        "| feature cosine | batch 1 (ms) | float / int8 time |",
        "|---|---|---|---|---|---|---|---|",
        f"| float32 (served) | 1 / 1 | 1 / 1 | 1 / 1 | {float_accuracy:.4f} | 1 | {milliseconds['float']:.0f} | 1.00 |",
    ]
    for row in table:
        name = row["attempt"].name
        cells = " | ".join(f"{t:.4f} / {a:.4f}" for t, a in zip(row["top1"], row["answer"]))
        lines.append(
            f"| {name} | {cells} | {row['validation_accuracy']:.4f} | {row['cosine']:.4f} | {milliseconds[name]:.0f} "
            f"| {milliseconds['float'] / milliseconds[name]:.2f} |"
        )
    lines += [
        "",
        "The cascade each attempt makes: the band chosen on the validation photos (`train.py quantize`'s rule: the "
        "largest gap times the smallest safety factor that keeps 99.9% of answers on cross-fitted halves), then "
        "how often the float network runs and how often the final answer is the float network's (label and "
        "decision). The held-out photos were neither calibrated on nor used for the band:",
        "",
        "| attempt | safety factor | float network runs: validation / held-out kitchenware / held-out other things "
        "| final answer = float's, held out (photos differing) | projected throughput vs float |",
        "|---|---|---|---|---|",
    ]
    for row in table:
        name, cascade = row["attempt"].name, row["cascade"]
        fallback = " / ".join(f"{cascade[k]['fallback']:.1%}" for k in cascade)
        held = [cascade["held out kitchenware"], cascade["held out other things"]]
        differing = sum(h["final_disagreements"] for h in held)
        photos = sum(h["photos"] for h in held)
        cost = milliseconds[name] / milliseconds["float"] + cascade["validation"]["fallback"]
        lines.append(
            f"| {name} | {row['safety']} | {fallback} | {1 - differing / photos:.4f} ({differing} of {photos}) "
            f"| {1 / cost:.2f}x |"
        )
    lines += [
        "",
        "(Projected throughput: float time / (int8 time + float time x the validation photos' fallback share), the "
        "network alone; validation photos are new to the model, as a seller's photos are. The serving benchmark "
        "measures the real service.)",
        "",
        f"ONNX Runtime's profile of the shipped int8 network ({SHIPPED.name}) and of the float network, batch 1, "
        "by kernel:",
        "",
        "| network | kernel | ms per pass | share | nodes |",
        "|---|---|---|---|---|",
    ]
    for label, profile in (("int8", shipped_profile), ("float32", float_profile)):
        lines += [f"| {label} | {op} | {ms:.2f} | {share:.1%} | {nodes} |" for op, ms, share, nodes in profile[:6]]
    lines += [
        "",
        "Matrix products in ONNX Runtime on this CPU (512x1024 by 1024x1024): "
        f"float32 MatMul {float_rate:.0f} GFLOP/s, uint8 x int8 MatMulInteger {int8_rate:.0f} GOP/s, "
        f"{int8_rate / float_rate:.1f}x.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    (ROOT / "benchmarks" / "QUANTIZATION.md").write_text("# int8 quantization: latest run\n\n" + report)


if __name__ == "__main__":
    main()

"""ONNX Runtime's memory patterns, or its CPU memory arena, on and off, side by side: time and resident memory of the
shipped float network over the batch sizes the service meets (1 to 4 photos, in a fixed mixed order), each setting
in its own process, alternated over rounds. `--compare arena` runs both with memory patterns off, as the service
does.

    python -m benchmarks.memory_patterns [--rounds 3] [--compare patterns|arena]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCHES = [1, 1, 2, 1, 4, 1, 3, 2, 1, 1] * 4
MODEL = Path(__file__).resolve().parent.parent / "models" / "model.onnx"


def measure(compare: str, on: bool) -> dict:
    """Run BATCHES through a session; seconds, and the resident MB after a tenth, half and all of them."""
    import onnxruntime
    import psutil

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_mem_pattern = on and compare == "patterns"
    options.enable_cpu_mem_arena = on or compare == "patterns"
    session = onnxruntime.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    pixels = {n: rng.integers(0, 255, (n, 299, 299, 3)).astype(np.float32) for n in set(BATCHES)}
    session.run(None, {name: pixels[1]})
    resident = []
    started = time.perf_counter()
    for n in BATCHES:
        session.run(None, {name: pixels[n]})
        resident.append(psutil.Process().memory_info().rss / 1e6)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "mb": [resident[len(BATCHES) // 10], resident[len(BATCHES) // 2], resident[-1]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", choices=["patterns", "arena"], default="patterns")
    parser.add_argument("--one", choices=["on", "off"], help=argparse.SUPPRESS)  # a child process: one setting
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.compare, args.one == "on")))
        return
    name = {"patterns": "memory patterns", "arena": "CPU memory arena"}[args.compare]
    runs = {"on": [], "off": []}
    for _ in range(args.rounds):
        for setting in runs:
            child = [sys.executable, "-m", "benchmarks.memory_patterns", "--compare", args.compare, "--one", setting]
            runs[setting].append(json.loads(subprocess.run(child, capture_output=True, check=True, text=True).stdout))
    for setting, results in runs.items():
        seconds = np.median([r["seconds"] for r in results])
        mb = np.median([r["mb"] for r in results], axis=0)
        print(
            f"{name} {setting:>3}: {seconds:.2f} s for {sum(BATCHES)} photos, resident MB after a tenth / "
            f"half / all of the batches {mb[0]:.0f} / {mb[1]:.0f} / {mb[2]:.0f}"
        )
    ratio = np.median([off["seconds"] / on["seconds"] for on, off in zip(runs["on"], runs["off"])])
    print(f"time off / on, median of {args.rounds} rounds side by side: {ratio:.3f}")


if __name__ == "__main__":
    main()

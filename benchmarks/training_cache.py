"""Head training on cached backbone features against end-to-end training, side by side in one run.

    python -m benchmarks.training_cache [--epochs 10] [--data ../shared/data/kitchenware-photos]

Both runs train the same head (Xception frozen, no augmentation, early stopping off) for the same
number of epochs on the same split; the cached run includes its one feature-extraction pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

from kitchenware.training.config import TrainConfig
from kitchenware.training.trainer import prepare_data, train_model

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "kitchenware-photos")
    parser.add_argument("--weights", default=str(SHARED / "assets" / "xception_imagenet_notop.weights.h5"))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    config = TrainConfig(data=args.data, weights=args.weights, epochs=args.epochs, patience=args.epochs)
    started = time.perf_counter()
    prepared = prepare_data(config)  # extracts the backbone features of every photo once
    extraction = time.perf_counter() - started
    run_dir = Path(tempfile.mkdtemp(prefix="kitchenware-bench-"))
    results = {}
    for label, cache_features in (("cached features", True), ("end to end", False)):
        trained = train_model(dataclasses.replace(config, cache_features=cache_features), prepared, run_dir)
        seconds = trained.seconds + (extraction if cache_features else 0.0)
        results[label] = (seconds, trained.report.accuracy, len(trained.history["loss"]))

    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{len(prepared.train)} training + {len(prepared.val)} validation photos, {args.epochs} epochs"
    )
    print("| run | wall time (s) | epochs | validation accuracy |")
    print("|---|---|---|---|")
    for label, (seconds, accuracy, epochs) in results.items():
        print(f"| {label} | {seconds:.1f} | {epochs} | {accuracy:.4f} |")
    ratio = results["end to end"][0] / results["cached features"][0]
    print(f"\nend to end / cached features: {ratio:.1f}x the wall time")


if __name__ == "__main__":
    main()

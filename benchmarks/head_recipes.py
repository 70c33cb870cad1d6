"""Which head generalises from few photos: training settings compared by grouped k-fold cross-validation.

    python -m benchmarks.head_recipes [--data DIR --data DIR2 ...] [--folds 5]

Every setting runs `train.py train`'s own cross-validation (`kitchenware.training.trainer.cross_validate`):
the same photos, the same near-duplicate groups (whole groups held out, stratified by class), the same cached
ImageNet Xception features, a fixed number of epochs (the held-out fold chooses nothing). The features are
extracted once for all settings (about 2 minutes for 1,020 photos on 2 cores; the augmented views cost one
more pass each). Prints the table and writes benchmarks/HEAD_RECIPES.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import tempfile
from pathlib import Path

from tests.helpers.sample_data import IMAGENET_WEIGHTS, MORE_PHOTOS, REAL_PHOTOS

ROOT = Path(__file__).resolve().parents[1]
# (name, changes to the default training settings)
SETTINGS = [
    ("head as shipped: Dense softmax, balanced class weights, lr 1e-3", {}),
    ("no class weights", {"class_weight": "none"}),
    ("dropout 0.2", {"dropout": 0.2}),
    ("dropout 0.5", {"dropout": 0.5}),
    ("inner Dense(256)", {"inner_size": 256}),
    ("lr 1e-2", {"lr": 1e-2}),
    ("lr 1e-4, 40 epochs", {"lr": 1e-4, "epochs": 40}),
    ("3 cached augmented views of each training photo", {"augment_views": 3}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="data folders (default: both shared photo sets)")
    parser.add_argument("--weights", default=str(IMAGENET_WEIGHTS), help="Xception weights: imagenet or a local file")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="kitchenware-bench-bentoml-"))
    from kitchenware.training.accelerators import gpu_count

    gpu_count()
    from kitchenware.training.config import TrainConfig
    from kitchenware.training.trainer import cross_validate, prepare_data

    data = tuple(args.data or (REAL_PHOTOS, MORE_PHOTOS))
    base = TrainConfig(data=data, weights=args.weights, epochs=args.epochs, class_weight="balanced")
    prepared = prepare_data(base)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, changes in SETTINGS:
            result, _ = cross_validate(dataclasses.replace(base, **changes), prepared, args.folds, Path(scratch))
            rows.append((name, result))
            print(f"{name}: {result['accuracy_mean']} ± {result['accuracy_std']}, recall {result['recall_pooled']}")
    classes = prepared.class_names
    header = (
        "| setting | accuracy (mean ± std over folds) | pooled | " + " | ".join(f"{c} recall" for c in classes) + " |"
    )
    lines = [
        f"# Head recipes: grouped {args.folds}-fold cross-validation",
        "",
        f"{len(prepared.photos.samples)} photos from {', '.join(str(d) for d in data)}; "
        f"{len(prepared.health.near_duplicates)} near-duplicate groups kept whole; {args.epochs} epochs unless said; "
        f"{os.cpu_count()}-core {platform.machine()}, {datetime.date.today()}. Recall pooled over the folds.",
        "",
        header,
        "|---|---|---|" + "---|" * len(classes),
    ]
    for name, result in rows:
        cells = [f"{result['accuracy_mean']} ± {result['accuracy_std']}", result["accuracy_pooled"]]
        cells += [result["recall_pooled"][c] for c in classes]
        lines.append(f"| {name} | " + " | ".join(map(str, cells)) + " |")
    (ROOT / "benchmarks" / "HEAD_RECIPES.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

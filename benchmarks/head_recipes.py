"""Which head generalises from few photos: training settings compared by grouped k-fold cross-validation.

    python -m benchmarks.head_recipes [--data DIR --data DIR2 ...] [--folds 5] [--fold-seeds 42 1 2 3] [--only TEXT ...]

Every setting runs `train.py train`'s own cross-validation (`kitchenware.training.trainer.cross_validate`):
the same photos, the same near-duplicate groups (whole groups held out, stratified by class), the same cached
ImageNet Xception features, a fixed number of epochs (the held-out fold chooses nothing). The features are
extracted once for all settings (about 2 minutes for 1,020 photos on 2 cores); each augmented view of a recipe
costs one more pass, timed and printed under the table. The first fold seed gives the main table; every seed
(a different split into folds and a different start of the head) gives the robustness table, so that a
winner is not one lucky split. Prints the tables and writes benchmarks/HEAD_RECIPES.md.
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
    ("head alone (no augmented views): Dense softmax, balanced class weights, lr 1e-3", {}),
    ("no class weights", {"class_weight": "none"}),
    ("dropout 0.2", {"dropout": 0.2}),
    ("dropout 0.5", {"dropout": 0.5}),
    ("inner Dense(256)", {"inner_size": 256}),
    ("lr 1e-2", {"lr": 1e-2}),
    ("lr 1e-4, 40 epochs", {"lr": 1e-4, "epochs": 40}),
    ("3 cached augmented views of each training photo", {"augment_views": 3}),
    ("5 cached augmented views (the default of train.py train)", {"augment_views": 5}),
    ("8 cached augmented views", {"augment_views": 8}),
    ("5 views, no class weights", {"augment_views": 5, "class_weight": "none"}),
    ("5 views, wider crops: 0.3-1 of the area", {"augment_views": 5, "augment_min_area": 0.3}),
    ("5 views turned by up to ±30°, corners cropped", {"augment_views": 5, "augment_rotation": 30}),
    (
        "5 views turned by up to ±90°, corners reflected",
        {"augment_views": 5, "augment_rotation": 90, "augment_fill": "reflect"},
    ),
    (
        "5 views turned by any angle, corners reflected",
        {"augment_views": 5, "augment_rotation": 180, "augment_fill": "reflect"},
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="data folders (default: both shared photo sets)")
    parser.add_argument("--weights", default=str(IMAGENET_WEIGHTS), help="Xception weights: imagenet or a local file")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--fold-seeds", type=int, nargs="+", default=[42, 1, 2, 3], help="seeds of the folds; the first: main table"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="TEXT", help="run only the settings whose name contains one of these texts"
    )
    args = parser.parse_args()
    settings = [(name, changes) for name, changes in SETTINGS if not args.only or any(t in name for t in args.only)]
    os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="kitchenware-bench-bentoml-"))
    from kitchenware.training.accelerators import gpu_count

    gpu_count()
    from kitchenware.training.config import TrainConfig
    from kitchenware.training.trainer import cross_validate, prepare_data

    data = tuple(args.data or (REAL_PHOTOS, MORE_PHOTOS))
    base = TrainConfig(
        data=data,
        weights=args.weights,
        epochs=args.epochs,
        class_weight="balanced",
        augment_views=0,  # each row adds its own views
        seed=args.fold_seeds[0],
    )
    prepared = prepare_data(base)  # the augmented views are seeded by base.seed, whatever the fold seed
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, changes in settings:
            results = []
            for seed in args.fold_seeds:
                config = dataclasses.replace(base, seed=seed, **changes)
                results.append(cross_validate(config, prepared, args.folds, Path(scratch))[0])
            rows.append((name, results))
            print(f"{name}: " + "; ".join(_summary(result) for result in results), flush=True)
    classes = prepared.class_names
    photos = len(prepared.photos.samples)
    header = (
        "| setting | accuracy (mean ± std over folds) | pooled | " + " | ".join(f"{c} recall" for c in classes) + " |"
    )
    lines = [
        f"# Head recipes: grouped {args.folds}-fold cross-validation",
        "",
        f"{photos} photos from {', '.join(str(d) for d in data)}; "
        f"{len(prepared.health.near_duplicates)} near-duplicate groups kept whole; {args.epochs} epochs unless said; "
        f"fold seed {args.fold_seeds[0]}; {os.cpu_count()}-core {platform.machine()}, {datetime.date.today()}. "
        "Recall pooled over the folds. Augmented views: random resized crop keeping 0.6-1 of the area, flip, "
        "colour jitter, unless said; a rotation comes first.",
        "",
        header,
        "|---|---|---|" + "---|" * len(classes),
    ]
    for name, results in rows:
        result = results[0]
        cells = [f"{result['accuracy_mean']} ± {result['accuracy_std']}", result["accuracy_pooled"]]
        cells += [result["recall_pooled"][c] for c in classes]
        lines.append(f"| {name} | " + " | ".join(map(str, cells)) + " |")
    seeds = " / ".join(str(seed) for seed in args.fold_seeds)
    lines += [
        "",
        f"## Robustness: the same settings on other splits into folds (fold seeds {seeds})",
        "",
        "Pooled accuracy, fork and plate recall for each fold seed, then their mean; targets: accuracy >= 0.97, "
        "fork and plate recall >= 0.9.",
        "",
        f"| setting | accuracy ({seeds}) | mean | fork recall ({seeds}) | mean | plate recall ({seeds}) | mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, results in rows:
        cells = []
        for values in (
            [r["accuracy_pooled"] for r in results],
            [r["recall_pooled"]["fork"] for r in results],
            [r["recall_pooled"]["plate"] for r in results],
        ):
            cells += [" / ".join(f"{v:.4f}" for v in values), f"{sum(values) / len(values):.4f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    seconds = prepared.cache.seconds
    view_seconds = [value for (view, _), value in seconds.items() if view]
    lines += [
        "",
        f"Feature extraction on this machine (2 cores shared with other work): the photos themselves "
        f"{seconds[0, None]:.0f} s for {photos} photos; an augmented view of the same photos "
        f"{sum(view_seconds) / len(view_seconds):.0f} s on average ({min(view_seconds):.0f}-{max(view_seconds):.0f} s "
        f"over the {len(view_seconds)} views extracted, {1000 * sum(view_seconds) / len(view_seconds) / photos:.0f} ms "
        "a photo). `train.py train --augment-views N` pays N such passes over its training photos (over all the "
        "photos with --cross-validate); the head's training itself takes seconds.",
    ]
    (ROOT / "benchmarks" / "HEAD_RECIPES.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _summary(result: dict) -> str:
    recall = result["recall_pooled"]
    return (
        f"{result['accuracy_mean']} ± {result['accuracy_std']} (pooled {result['accuracy_pooled']}, "
        f"fork {recall.get('fork')}, plate {recall.get('plate')})"
    )


if __name__ == "__main__":
    main()

"""Photos the tests make, the shared real data, and running the project's commands."""

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[3] / "shared"
REAL_PHOTOS = SHARED / "data" / "kitchenware-photos"
MORE_PHOTOS = SHARED / "data" / "kitchenware-photos-more"
NOT_KITCHENWARE = SHARED / "data" / "not-kitchenware"
IMAGENET_WEIGHTS = SHARED / "assets" / "xception_imagenet_notop.weights.h5"
ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = ROOT / "models"

# One colour per class: a tiny network separates them in a few epochs.
CLASS_COLOURS = {"cup": (200, 40, 40), "fork": (40, 200, 40), "spoon": (40, 40, 200)}


def photo(colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    """A noisy photo of one colour, different for every seed."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def write_kaggle(root: Path, counts: dict[str, int]) -> Path:
    """Kaggle layout: train.csv (zero-padded Ids) + images/<Id>.jpg."""
    (root / "images").mkdir(parents=True)
    rows, next_id = [], 0
    for label, count in counts.items():
        for _ in range(count):
            image_id = f"{next_id:04d}"
            photo(CLASS_COLOURS.get(label, (128, 128, 128)), next_id).save(
                root / "images" / f"{image_id}.jpg", quality=95
            )
            rows.append((image_id, label))
            next_id += 1
    with open(root / "train.csv", "w", newline="") as file:
        csv.writer(file).writerows([("Id", "label"), *rows])
    return root


def write_folders(root: Path, counts: dict[str, int]) -> Path:
    """Class-folder layout: <label>/<n>.png."""
    seed = 0
    for label, count in counts.items():
        (root / label).mkdir(parents=True)
        for n in range(count):
            photo(CLASS_COLOURS[label], seed).save(root / label / f"{n}.png")
            seed += 1
    return root


def needs_real_data():
    return pytest.mark.skipif(
        not (REAL_PHOTOS / "train.csv").is_file() or not IMAGENET_WEIGHTS.is_file(),
        reason=f"the shared photos ({REAL_PHOTOS}) or ImageNet weights ({IMAGENET_WEIGHTS}) are absent on this machine",
    )


needs_shipped_model_and_photos = pytest.mark.skipif(
    not (SHIPPED_MODEL / "model_card.json").is_file() or not (REAL_PHOTOS / "train.csv").is_file(),
    reason=f"needs the shipped model ({SHIPPED_MODEL}) and the shared photos ({REAL_PHOTOS})",
)


def run(*command: str) -> str:
    """Run a command in the project folder; fail the test with its output if it fails."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def copy_of_the_project(destination: Path) -> Path:
    """The tracked and new (not ignored) files of the work tree, as a fresh clone of it would hold them."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    )
    for name in listing.stdout.splitlines():
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination

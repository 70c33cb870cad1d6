"""Random augmented views of a photo: the head trains on several views of each training photo whose backbone
features are cached (`kitchenware train --augment-views N`), for the price of one feature extraction per view, and
the int8 network's quantization-aware fine-tuning sees a new view of each calibration photo every epoch.

A view is made from the decoded photo *before* it is resized to the model's input, so the crop keeps the
photo's resolution; the result is the model's square input size, resized like every other input.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from kitchenware.core.photos import Sample
from kitchenware.core.preprocessing import RESAMPLE, load_image, prepare, resize

ROTATION_FILLS = ("crop", "reflect")


@dataclass(frozen=True)
class ViewRecipe:
    """How the augmented views are drawn (`--augment-min-area`, `--augment-rotation`, `--augment-fill`).

    The defaults are the views `--augment-views` has always made (no rotation), so their features are the same."""

    min_area: float = 0.6  # the crop keeps U(min_area, 1) of the (rotated) photo's area
    rotation: float = 0.0  # maximum angle, in degrees, of a random rotation U(-rotation, rotation); 0: none
    fill: str = "crop"  # what the rotated photo's corners show: see `rotate`

    def __post_init__(self) -> None:
        if not 0 < self.min_area <= 1:
            raise ValueError(f"the crop's minimum area must be in (0, 1], not {self.min_area}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"the maximum rotation must be in [0, 180] degrees, not {self.rotation}")
        if self.fill not in ROTATION_FILLS:
            raise ValueError(f"unknown rotation fill {self.fill!r}: choose one of {', '.join(ROTATION_FILLS)}")


def largest_inside(width: int, height: int, degrees: float) -> tuple[int, int]:
    """(width, height) of the largest-area axis-aligned rectangle inside a width x height rectangle rotated by
    `degrees` about its centre (and centred on it): what `rotate(..., fill="crop")` keeps."""
    angle = math.radians(degrees)
    sin_a, cos_a = abs(math.sin(angle)), abs(math.cos(angle))
    long_side, short_side = max(width, height), min(width, height)
    if short_side <= 2 * sin_a * cos_a * long_side or abs(sin_a - cos_a) < 1e-10:
        # the rectangle touches the rotated one's two long sides: half the short side bounds it
        half = short_side / 2
        inner_w, inner_h = (half / sin_a, half / cos_a) if width >= height else (half / cos_a, half / sin_a)
    else:
        cos_2a = cos_a * cos_a - sin_a * sin_a
        inner_w, inner_h = (width * cos_a - height * sin_a) / cos_2a, (height * cos_a - width * sin_a) / cos_2a
    return max(1, math.floor(inner_w + 1e-6)), max(1, math.floor(inner_h + 1e-6))


def rotate(image: Image.Image, degrees: float, fill: str = "crop") -> Image.Image:
    """The photo turned counter-clockwise by `degrees` about its centre (bilinear), with no blank corners:

    - crop: the largest axis-aligned rectangle inside the turned photo (smaller, nothing invented);
    - reflect: the photo's own size, the corners filled with the photo mirrored at its edges (like
      keras.layers.RandomRotation's default fill).
    """
    if fill not in ROTATION_FILLS:
        raise ValueError(f"unknown rotation fill {fill!r}: choose one of {', '.join(ROTATION_FILLS)}")
    width, height = image.size
    if fill == "crop":
        turned = image.rotate(degrees, resample=RESAMPLE, expand=True)
        inner_w, inner_h = largest_inside(width, height, degrees)
        left, top = (turned.width - inner_w) // 2, (turned.height - inner_h) // 2
        return turned.crop((left, top, left + inner_w, top + inner_h))
    angle = math.radians(degrees)
    sin_a, cos_a = abs(math.sin(angle)), abs(math.cos(angle))
    # the output frame, turned back onto the input, spans this much more than the photo on each side
    pad_x = max(0, math.ceil((width * cos_a + height * sin_a - width) / 2)) + 1
    pad_y = max(0, math.ceil((width * sin_a + height * cos_a - height) / 2)) + 1
    padded = Image.fromarray(np.pad(np.asarray(image), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect"))
    turned = padded.rotate(degrees, resample=RESAMPLE)
    return turned.crop((pad_x, pad_y, pad_x + width, pad_y + height))


def augmented_view(
    image: Image.Image,
    rng: np.random.Generator,
    size: int = 299,
    area: tuple[float, float] = (0.6, 1.0),
    aspect: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: float = 0.2,
    rotation: float = 0.0,
    fill: str = "crop",
) -> Image.Image:
    """One random view of an RGB photo: optional random rotation, random resized crop, random horizontal flip,
    colour jitter.

    - rotation (only when `rotation` > 0): by an angle drawn from U(-rotation, rotation) degrees, with the
      corners handled by `fill` (`rotate`); with `rotation` = 0 nothing is drawn, so the other draws (and the
      view) are exactly those of a photo without the option;
    - crop: a fraction U(area) of the image's area, with aspect ratio (width / height) drawn
      log-uniformly from `aspect`, at a uniformly random position; when the drawn box does not fit
      in 10 tries, the largest centred box of the drawn aspect ratio clipped to the image is used;
    - flip: left-right with probability 1/2;
    - jitter: brightness, contrast and saturation each multiplied by U(1 - jitter, 1 + jitter)
      (PIL.ImageEnhance), in that order;
    - resize to size x size (bilinear, as the project's preprocessing).

    All randomness comes from `rng`, so a generator seeded per photo gives reproducible views.
    """
    if rotation > 0:
        image = rotate(image, float(rng.uniform(-rotation, rotation)), fill)
    width, height = image.size
    box = None
    for _ in range(10):
        target_area = rng.uniform(*area) * width * height
        ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
        crop_w = int(round(math.sqrt(target_area * ratio)))
        crop_h = int(round(math.sqrt(target_area / ratio)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            left = int(rng.integers(0, width - crop_w + 1))
            top = int(rng.integers(0, height - crop_h + 1))
            box = (left, top, left + crop_w, top + crop_h)
            break
    if box is None:  # fallback: centred crop of the drawn aspect ratio, as large as fits
        crop_w = min(width, int(round(height * ratio)))
        crop_h = min(height, int(round(width / ratio)))
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        box = (left, top, left + crop_w, top + crop_h)
    view = image.crop(box)
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        view = enhancer(view).enhance(float(rng.uniform(1 - jitter, 1 + jitter)))
    return view.resize((size, size), RESAMPLE)


def view_pixels(sample: Sample, view: int, size: int, seed: int, recipe: ViewRecipe | None = None) -> np.ndarray:
    """The model's input pixels of one view of a photo: view 0 is the photo itself, views 1.. random augmented ones,
    the same for the same (seed, view, photo) in every run and process."""
    if view == 0:
        return prepare(sample.path, size)
    recipe = recipe or ViewRecipe()
    rng = np.random.default_rng(
        [seed, view, int.from_bytes(hashlib.sha256(f"{sample.source}/{sample.id}".encode()).digest()[:8])]
    )
    image = load_image(sample.path, at_least=size)
    view_image = augmented_view(
        image, rng, size, area=(recipe.min_area, 1.0), rotation=recipe.rotation, fill=recipe.fill
    )
    return resize(view_image, size)

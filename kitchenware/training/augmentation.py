"""Random augmented views of a photo whose backbone features are cached (`train.py train --augment-views N`):
the head trains on several views of each training photo for the price of one feature extraction per view.

A view is made from the decoded photo *before* it is resized to the model's input, so the crop keeps the
photo's resolution; the result is the model's square input size, resized like every other input.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance

from kitchenware.core.preprocessing import RESAMPLE


def augmented_view(
    image: Image.Image,
    rng: np.random.Generator,
    size: int = 299,
    area: tuple[float, float] = (0.6, 1.0),
    aspect: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: float = 0.2,
) -> Image.Image:
    """One random view of an RGB photo: random resized crop, random horizontal flip, colour jitter.

    - crop: a fraction U(area) of the image's area, with aspect ratio (width / height) drawn
      log-uniformly from `aspect`, at a uniformly random position; when the drawn box does not fit
      in 10 tries, the largest centred box of the drawn aspect ratio clipped to the image is used;
    - flip: left-right with probability 1/2;
    - jitter: brightness, contrast and saturation each multiplied by U(1 - jitter, 1 + jitter)
      (PIL.ImageEnhance), in that order;
    - resize to size x size (bilinear, as the project's preprocessing).

    All randomness comes from `rng`, so a generator seeded per photo gives reproducible views.
    """
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

"""The one image preprocessing path, shared by training, evaluation, prediction and the service.

A photo is decoded with Pillow (HEIC/HEIF through pillow-heif), turned upright by its EXIF orientation,
converted to 8-bit RGB and resized (bilinear) to the model's square input. A JPEG is decoded straight at the smallest
1/2, 1/4 or 1/8 scale that still covers the input (Pillow's `draft`): 3-4x faster than decoding
every pixel of a phone photo only to throw most of them away. Pixel scaling lives inside the saved model,
so everything here hands the model plain 0-255 RGB pixels.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()  # iPhone photos (HEIC/HEIF) open like any other format, everywhere photos are read

# Pillow's own decompression-bomb threshold (about 89 megapixels) unless a caller sets its own.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
RESAMPLE = Image.Resampling.BILINEAR


class ImageError(ValueError):
    """The input is not an image this project can read; the message says why and what to do."""


ImageSource = str | Path | bytes | BinaryIO | Image.Image  # a path, the file's bytes, an open file, or a Pillow image


def load_image(
    source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS, at_least: int | None = None
) -> Image.Image:
    """Decode a photo (path, bytes or file object) into an upright 8-bit RGB image; with `at_least`,
    a JPEG may come out scaled down, but never below at_least x at_least. A Pillow image, already decoded, is only
    turned upright and converted.

    Raises ImageError for empty, truncated, unknown or oversized files, checking the pixel
    count from the header before decoding the pixels.
    """
    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, bytes):
        if not source:
            raise ImageError("the file is empty: upload a JPEG, PNG, WebP, HEIC, BMP, GIF or TIFF photo")
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below decides
            with Image.open(source) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageError(
                        f"the image has {width}x{height} = {width * height:,} pixels, more than the "
                        f"limit of {max_pixels:,}: resize it before uploading"
                    )
                image.seek(0)  # first frame of animated GIF/WebP/TIFF
                if at_least is not None:
                    image.draft("RGB", (at_least, at_least))  # a no-op for formats other than JPEG
                image.load()
                upright = ImageOps.exif_transpose(image)
                return to_rgb(upright)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(f"the image has too many pixels ({error}): resize it before uploading") from error
    except UnidentifiedImageError as error:
        raise ImageError(
            "not a readable image (unknown format): send a JPEG, PNG, WebP, HEIC, BMP, GIF or TIFF photo"
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"the image is truncated or corrupt ({error}): send the complete file") from error


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparent areas become white, 16-bit is scaled down."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        gray = np.clip(pixels / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize(image: Image.Image, input_size: int) -> np.ndarray:
    """Resize an RGB image to the model's square input: uint8 array (input_size, input_size, 3)."""
    return np.asarray(image.resize((input_size, input_size), RESAMPLE), dtype=np.uint8)


def prepare(source: ImageSource, input_size: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode and resize one photo into the model's input pixels."""
    return resize(load_image(source, max_pixels, at_least=input_size), input_size)


Item = TypeVar("Item")


def decoded_in_chunks(items: Sequence[Item], decode: Callable[[Item], np.ndarray], chunk: int) -> Iterator[np.ndarray]:
    """(n, size, size, 3) stacks of decoded photos, `chunk` photos at a time, decoded on a few threads (Pillow
    releases the GIL): memory for one chunk, whatever the number of photos."""
    with ThreadPoolExecutor(4) as pool:
        for start in range(0, len(items), chunk):
            yield np.stack(list(pool.map(decode, items[start : start + chunk])))

"""Odd but valid images, and broken ones, as bytes: what users upload."""

import io

import numpy as np
from PIL import Image
from pillow_heif import register_heif_opener

register_heif_opener()  # HEIC can be written (x265 ships in pillow-heif's wheel) as well as read


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def colour_photo(colour=(200, 40, 40), size=(48, 36), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def exif_rotated_jpeg(upright: Image.Image) -> bytes:
    """The upright photo stored turned on its side, with EXIF orientation 6 saying how to turn it back."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to view
    return encode(stored, "JPEG", quality=95, exif=exif)


def odd_valid_images() -> dict[str, bytes]:
    photo = colour_photo()
    frames = [colour_photo(seed=i) for i in range(3)]
    sixteen_bit = Image.fromarray((np.arange(48 * 36).reshape(36, 48) * 37 % 65535).astype(np.uint16))
    return {
        "grayscale.png": encode(photo.convert("L"), "PNG"),
        "palette.png": encode(photo.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "rgba.png": encode(photo.convert("RGBA"), "PNG"),
        "sixteen_bit.png": encode(sixteen_bit, "PNG"),
        "cmyk.jpg": encode(photo.convert("CMYK"), "JPEG"),
        "photo.webp": encode(photo, "WEBP"),
        "photo.bmp": encode(photo, "BMP"),
        "photo.tiff": encode(photo, "TIFF"),
        "iphone.heic": encode(colour_photo(size=(64, 48)), "HEIF", quality=90),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        "one_pixel.png": encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"),
        "very_wide.jpg": encode(colour_photo(size=(4000, 8)), "JPEG"),
        "exif_rotated.jpg": exif_rotated_jpeg(photo),
    }


def decompression_bomb_png(pixels: int = 100_000_000) -> bytes:
    """A small file that would decode to `pixels` pixels (1-bit, all black, compresses to kilobytes)."""
    side = int(pixels**0.5) + 1
    return encode(Image.new("1", (side, side)), "PNG")


def truncated_jpeg() -> bytes:
    whole = encode(colour_photo(size=(200, 150)), "JPEG")
    return whole[: len(whole) // 2]

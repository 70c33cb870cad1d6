"""The shared preprocessing: every odd but valid image becomes upright 8-bit RGB; broken ones are a clear ImageError."""

import numpy as np
import pytest
from images import colour_photo, decompression_bomb_png, encode, exif_rotated_jpeg, odd_valid_images, truncated_jpeg
from PIL import Image
from sample_data import REAL_PHOTOS, needs_real_data

from kitchenware.core.preprocessing import ImageError, load_image, prepare


@pytest.mark.parametrize("name", sorted(odd_valid_images()))
def test_odd_images_become_rgb(name: str):
    image = load_image(odd_valid_images()[name])
    assert image.mode == "RGB"
    pixels = prepare(odd_valid_images()[name], 32)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8


def test_exif_orientation_is_applied():
    upright = colour_photo(size=(48, 36))
    assert load_image(exif_rotated_jpeg(upright)).size == (48, 36)


def test_transparent_areas_become_white():
    transparent = colour_photo().convert("RGBA")
    transparent.putalpha(0)
    assert load_image(encode(transparent, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    bright = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert load_image(encode(bright, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_same_bytes_same_pixels_from_file_and_bytes(tmp_path):
    data = odd_valid_images()["cmyk.jpg"]
    (tmp_path / "photo.jpg").write_bytes(data)
    np.testing.assert_array_equal(prepare(tmp_path / "photo.jpg", 40), prepare(data, 40))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"hello, this is text", "not a readable image"),
        (truncated_jpeg(), "truncated or corrupt"),
    ],
)
def test_broken_files_are_image_errors(data: bytes, message: str):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_too_many_pixels_is_refused_before_decoding():
    with pytest.raises(ImageError, match=r"has 10001x10001 = 100,020,001 pixels, more than the limit"):
        load_image(decompression_bomb_png())
    with pytest.raises(ImageError, match="more than the limit of 1,000"):
        load_image(encode(colour_photo(size=(50, 50)), "PNG"), max_pixels=1000)


def gradient_photo(width: int, height: int) -> Image.Image:
    x, y = np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1).astype(np.uint8))


def test_large_jpeg_is_decoded_at_a_reduced_scale_that_still_covers_the_input():
    jpeg = encode(gradient_photo(1200, 900), "JPEG", quality=95)
    assert load_image(jpeg).size == (1200, 900)
    assert load_image(jpeg, at_least=299).size == (600, 450)  # 1/2: 1/4 would be 300x225, under 299
    assert load_image(jpeg, at_least=100).size == (150, 113)  # 1/8
    reduced = prepare(jpeg, 299).astype(int)
    full = np.asarray(load_image(jpeg).resize((299, 299), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(reduced - full).mean() < 1.0


def test_small_photos_and_other_formats_are_decoded_whole():
    small = encode(gradient_photo(400, 300), "JPEG")
    assert load_image(small, at_least=299).size == (400, 300)
    png = encode(gradient_photo(1200, 900), "PNG")
    assert load_image(png, at_least=299).size == (1200, 900)


@needs_real_data()
def test_an_iphone_heic_photo_gives_the_pixels_of_the_same_photo_as_jpeg():
    """HEIC (what iPhones save) through the whole pipeline: a real photo written as HEIC by the test."""
    original = load_image(REAL_PHOTOS / "images" / "0009.jpg")  # a cup
    heic, png = encode(original, "HEIF", quality=90), encode(original, "PNG")
    assert heic[4:12] == b"ftypheic"  # a real HEIC file, not a renamed one
    assert load_image(heic).size == original.size
    difference = np.abs(prepare(heic, 299).astype(int) - prepare(png, 299).astype(int))
    assert difference.mean() < 4  # lossy HEVC at quality 90 against the lossless copy of the same photo

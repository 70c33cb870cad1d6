"""The shared preprocessing: every odd but valid image becomes upright 8-bit RGB; broken ones are a clear ImageError."""

import numpy as np
import pytest
from images import colour_photo, decompression_bomb_png, encode, exif_rotated_jpeg, odd_valid_images, truncated_jpeg

from kitchenware.preprocessing import ImageError, load_image, prepare


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
    from PIL import Image

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

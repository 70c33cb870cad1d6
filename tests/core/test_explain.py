"""The heat map drawn over a photo: scaled between the weakest and strongest cell, stretched over the photo."""

import io

import numpy as np
from PIL import Image

from kitchenware.core.explain import COLOURS, LONGEST_SIDE, heat, overlay, png


def test_heat_spans_zero_to_one_and_a_flat_map_is_all_zero():
    np.testing.assert_allclose(heat(np.array([[2.0, 4.0], [6.0, 10.0]])), [[0, 0.25], [0.5, 1.0]])
    assert not heat(np.full((3, 3), 7.0)).any()


def test_the_hot_cell_is_drawn_where_it_is_on_the_photo_at_most_the_longest_side():
    photo = Image.new("RGB", (1200, 900), (128, 128, 128))
    class_map = np.zeros((10, 10))
    class_map[0, 0] = 5.0  # all the evidence in the top-left cell
    shown = np.asarray(overlay(photo, class_map, opacity=0.5)).astype(int)
    assert shown.shape == (LONGEST_SIDE * 900 // 1200, LONGEST_SIDE, 3)
    hottest, coldest = ((np.array([128, 128, 128]) + COLOURS[level]) // 2 for level in (255, 0))
    np.testing.assert_allclose(shown[5, 5], hottest, atol=3)  # inside the top-left cell
    np.testing.assert_allclose(shown[-5, -5], coldest, atol=3)  # far from it
    assert COLOURS[255].sum() > COLOURS[0].sum() + 500  # strong evidence is bright


def test_the_overlay_is_sent_as_a_lossless_png():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    sent = png(image)
    assert sent[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(sent))), np.asarray(image))

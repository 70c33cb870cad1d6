"""The cached augmented views: rotation (crop or reflect), reproducibility, and the views made before it."""

import numpy as np
import pytest
from PIL import Image

from kitchenware.training.augmentation import ViewRecipe, augmented_view, largest_inside, rotate
from kitchenware.training.config import TrainConfig


def pattern(width: int = 40, height: int = 20) -> Image.Image:
    """Every pixel different: red counts columns, green counts rows."""
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([columns * 6, rows * 12, np.full_like(rows, 99)], axis=-1).astype(np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def test_a_quarter_turn_moves_every_pixel_where_it_belongs():
    image = pattern()
    turned = pixels(rotate(image, 90, "crop"))  # counter-clockwise: the top row becomes the left column
    assert turned.shape == (40, 20, 3)
    np.testing.assert_array_equal(turned[:, 0], pixels(image)[0, ::-1])
    np.testing.assert_array_equal(turned[0, :, :2], [[234, 12 * r] for r in range(20)])
    square = pattern(30, 30)
    np.testing.assert_array_equal(pixels(rotate(square, -90, "reflect")), np.rot90(pixels(square), k=-1))
    np.testing.assert_array_equal(pixels(rotate(image, 180, "reflect")), pixels(image)[::-1, ::-1])
    np.testing.assert_array_equal(pixels(rotate(image, 0, "reflect")), pixels(image))


@pytest.mark.parametrize("fill", ["crop", "reflect"])
def test_a_turned_photo_has_no_blank_corners(fill: str):
    white = Image.new("RGB", (60, 40), (255, 255, 255))
    assert pixels(white.rotate(37)).min() == 0  # what PIL alone leaves in the corners
    turned = pixels(rotate(white, 37, fill))
    assert turned.min() == 255
    assert turned.shape[:2] == ((40, 60) if fill == "reflect" else largest_inside(60, 40, 37)[::-1])


def test_the_reflected_corners_mirror_the_photo():
    image = pattern(30, 30)
    turned = pixels(rotate(image, 45, "reflect"))
    # the top-left corner lies outside the photo turned by 45 degrees: it is filled, not black
    assert turned[0, 0, 2] == 99 and turned[0, 0, :2].max() > 0
    np.testing.assert_allclose(turned[15, 15], pixels(image)[15, 15], atol=6)  # the centre stays put


def test_largest_inside():
    assert largest_inside(300, 300, 45) == (212, 212)  # 300 / sqrt(2)
    assert largest_inside(1440, 1080, 0) == (1440, 1080)
    assert largest_inside(1440, 1080, 90) == (1080, 1440)
    assert largest_inside(1440, 1080, 30) == largest_inside(1440, 1080, -30) == (1080, 623)


def test_views_are_reproducible_and_unchanged_without_rotation():
    image = pattern(80, 60)

    def view(seed: int, **options) -> np.ndarray:
        return pixels(augmented_view(image, np.random.default_rng(seed), 32, **options))

    np.testing.assert_array_equal(view(3, rotation=90), view(3, rotation=90))
    assert not np.array_equal(view(3, rotation=90), view(4, rotation=90))
    assert not np.array_equal(view(3, rotation=90), view(3))
    # rotation 0 draws nothing more: the same views as before the option existed
    np.testing.assert_array_equal(view(3, rotation=0.0), view(3))
    # a rotation of U(-90, 90) degrees is the first draw: the view is that turn, then the usual crop, flip, colour
    angle = np.random.default_rng(3).uniform(-90, 90)
    turned = rotate(image, angle, "reflect")
    after = np.random.default_rng(3)
    after.uniform(-90, 90)
    np.testing.assert_array_equal(view(3, rotation=90, fill="reflect"), pixels(augmented_view(turned, after, 32)))


def test_view_recipe_checks_its_settings():
    assert TrainConfig(data=".", augment_rotation=30, augment_min_area=0.3).view_recipe() == ViewRecipe(0.3, 30.0)
    for bad in ({"augment_rotation": 200}, {"augment_min_area": 0}, {"augment_fill": "black"}):
        with pytest.raises(ValueError):
            TrainConfig(data=".", **bad)


def test_the_feature_cache_keeps_each_recipes_views_apart(kaggle_photos):
    from kitchenware.training.trainer import prepare_data

    config = TrainConfig(data=kaggle_photos, weights="none", input_size=71, split="stratified")
    prepared = prepare_data(config)
    cache, samples = prepared.cache, prepared.photos.samples[:3]
    plain = cache.of(samples, 1)
    np.testing.assert_array_equal(plain, cache.of(samples, 1, ViewRecipe()))  # the default recipe, not drawn again
    turned = cache.of(samples, 1, ViewRecipe(rotation=90, fill="reflect"))
    assert not np.allclose(plain, turned)
    assert not np.allclose(plain, cache.of(samples, 0))
    assert {(view, recipe) for view, recipe in cache.seconds} == {
        (0, None),
        (1, ViewRecipe()),
        (1, ViewRecipe(rotation=90, fill="reflect")),
    }

"""ONNX Runtime and TensorFlow run the same network: same label on shared photos of every class, probabilities
within 1e-4."""

from pathlib import Path

import bentoml
import numpy as np
import pytest
from sample_data import REAL_PHOTOS, needs_real_data

from kitchenware.core.photos import find_photos
from kitchenware.core.preprocessing import prepare
from kitchenware.core.runtimes import open_runtime


@needs_real_data()
def test_onnx_and_tensorflow_agree_on_shared_photos_of_every_class(real_xception_in_store: str):
    stored = bentoml.models.get(real_xception_in_store)
    assert stored.info.metadata["onnx"]["max_abs_difference"] <= 1e-4  # the check made when it was saved
    size = int(stored.info.metadata["input_size"])
    onnx = open_runtime(stored.path, "onnx", threads=2, input_size=size)
    tensorflow = open_runtime(stored.path, "tensorflow", threads=2, input_size=size)
    photos = find_photos(REAL_PHOTOS)
    samples = photos.samples[::4]  # 206 of the 824: every class, a quarter of the time (both runtimes on a CPU)
    assert {sample.label for sample in samples} == set(photos.class_names)
    differences, feature_differences, disagreements = [], [], []
    for start in range(0, len(samples), 32):
        chunk = samples[start : start + 32]
        pixels = np.stack([prepare(sample.path, size) for sample in chunk])
        from_onnx, from_tensorflow = onnx.forward(pixels), tensorflow.forward(pixels)
        differences.append(np.abs(from_onnx.probabilities - from_tensorflow.probabilities).max())
        feature_differences.append(np.abs(from_onnx.features - from_tensorflow.features).max())
        pairs = zip(chunk, from_onnx.probabilities, from_tensorflow.probabilities)
        disagreements += [s.id for s, a, b in pairs if a.argmax() != b.argmax()]
    print(f"max |dp| over {len(samples)} photos: {max(differences):.2e}, features {max(feature_differences):.2e}")
    assert disagreements == []
    assert max(differences) <= 1e-4
    assert max(feature_differences) <= 1e-4  # the "unknown" score reads them
    pixels = np.stack([prepare(sample.path, size) for sample in samples[:8]])
    maps_onnx, maps_tensorflow = onnx.forward(pixels, explain=True), tensorflow.forward(pixels, explain=True)
    assert maps_onnx.class_maps.shape == (8, 10, 10, 6)  # /explain's heat maps, from either runtime
    np.testing.assert_allclose(maps_onnx.class_maps, maps_tensorflow.class_maps, atol=1e-3)


def test_unknown_runtime_is_named(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown runtime 'torch': choose one of onnx, onnx-int8-cascade, tensorflow"):
        open_runtime(tmp_path, "torch", threads=1, input_size=32)


def test_model_without_onnx_file_says_what_to_do(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="KITCHENWARE_RUNTIME=tensorflow"):
        open_runtime(tmp_path, "onnx", threads=1, input_size=32)

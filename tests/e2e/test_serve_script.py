"""The README's first command on a copy of the project: `scripts/serve.sh` installs the serving set only
(no TensorFlow), imports the shipped model.onnx and answers a real photo."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sample_data import REAL_PHOTOS, ROOT, copy_of_the_project
from server import folder_megabytes, installed_packages, serve_script_first_answer

SHIPPED_ONNX = ROOT / "models" / "model.onnx"


CUP = REAL_PHOTOS / "images" / "0009.jpg"


@pytest.mark.skipif(
    not SHIPPED_ONNX.is_file() or not CUP.is_file(), reason=f"needs the shipped {SHIPPED_ONNX} and the shared {CUP}"
)
def test_serve_script_serves_the_shipped_model_from_a_venv_without_tensorflow(tmp_path: Path):
    clone = copy_of_the_project(tmp_path / "main")
    cup = CUP
    seconds, answer = serve_script_first_answer(clone, cup, Path.home() / ".cache" / "pip", tmp_path / "bentoml")
    packages = installed_packages(clone / ".venv")
    size = folder_megabytes(clone / ".venv")
    print(f"first answer after {seconds:.1f} s; venv {size:.0f} MB, {len(packages)} packages")
    assert answer["label"] == "cup"
    # Feedback storage is on by default: the photo is kept by its hash under feedback/.
    assert (
        clone / "feedback" / "photos" / answer["photo_id"][:2] / answer["photo_id"]
    ).read_bytes() == cup.read_bytes()
    assert (clone / "feedback" / "kitchenware.db").is_file()
    assert {"bentoml", "onnxruntime", "pillow", "numpy"} <= set(packages)
    assert not {"tensorflow", "keras", "tf2onnx", "matplotlib", "pytest"} & set(packages)
    assert size <= 400
    # `kitchenware predict` (the package's command, installed with the serving set) runs there too: ONNX Runtime,
    # no TensorFlow to import.
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(cup, photos)
    predicted = subprocess.run(
        [
            str(clone / ".venv" / "bin" / "kitchenware"),
            "predict",
            "--model",
            "models",
            "--input",
            str(photos),
            "--output",
            str(tmp_path / "predictions.csv"),
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        env={**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml")},
    )
    assert predicted.returncode == 0, predicted.stderr
    assert (tmp_path / "predictions.csv").read_text().splitlines()[1].startswith("0009,cup,")

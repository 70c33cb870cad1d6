"""The bento's packages: only what the chosen runtime needs, at the versions the requirements files pin."""

from pathlib import Path

import pytest

from build_bento_from_saved_model import bento_config

ROOT = Path(__file__).resolve().parents[2]


def pins(lines: list[str]) -> dict[str, str]:
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def test_onnx_bento_installs_onnxruntime_and_no_tensorflow():
    packages = pins(bento_config("onnx")["python"]["packages"])
    assert set(packages) == {
        "onnxruntime",
        "pillow",
        "pillow-heif",
        "numpy",
        "threadpoolctl",
        "sqlalchemy",
        "alembic",
        "psycopg[binary]",
    }
    assert "envs" not in bento_config(None)  # the service picks the model's preferred runtime


def test_tensorflow_bento_installs_tensorflow_cpu_and_selects_it():
    config = bento_config("tensorflow")
    assert set(pins(config["python"]["packages"])) == {
        "tensorflow-cpu",
        "keras",
        "pillow",
        "pillow-heif",
        "numpy",
        "threadpoolctl",
        "sqlalchemy",
        "alembic",
        "psycopg[binary]",
    }
    assert {"name": "KITCHENWARE_RUNTIME", "value": "tensorflow"} in config["envs"]


def test_the_onnx_bento_installs_the_serving_set():
    serving = pins((ROOT / "requirements-serve.txt").read_text().splitlines())
    assert pins(bento_config(None)["python"]["packages"]) == {k: v for k, v in serving.items() if k != "bentoml"}


def test_the_cascade_bento_installs_the_onnx_one_and_selects_its_runtime():
    config = bento_config("onnx-int8-cascade")
    assert (
        config["python"]["packages"]
        == bento_config("onnx")["python"]["packages"]
        == bento_config(None)["python"]["packages"]
    )
    assert {"name": "KITCHENWARE_RUNTIME", "value": "onnx-int8-cascade"} in config["envs"]
    assert {"name": "KITCHENWARE_RUNTIME", "value": "onnx"} in bento_config("onnx")["envs"]
    # by default the service picks the model's preferred runtime when it starts
    assert not any(env["name"] == "KITCHENWARE_RUNTIME" for env in bento_config(None).get("envs", []))


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8-cascade", "tensorflow"])
def test_bento_versions_are_the_tested_ones(runtime: str):
    tested = pins((ROOT / "requirements-serve.txt").read_text().splitlines())
    tested |= pins((ROOT / "requirements-train.txt").read_text().splitlines())
    tested["tensorflow-cpu"] = tested["tensorflow"]  # the CPU build of the same release
    for name, version in pins(bento_config(runtime)["python"]["packages"]).items():
        assert tested[name] == version, f"{name}: bento {version}, requirements files {tested[name]}"

"""The package as a user installs it: a wheel that holds the page, `pip install .` in a fresh virtual environment
with its `kitchenware` command, the README's Python example, and extras the tested sets satisfy."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sample_data import REAL_PHOTOS, ROOT, SHIPPED_MODEL, copy_of_the_project

ENVIRONMENT = {**os.environ, "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip")}
ENVIRONMENT.pop("BENTOML_HOME", None)  # set per command below
CUP = REAL_PHOTOS / "images" / "0009.jpg"
needs_shipped_model_and_a_cup = pytest.mark.skipif(
    not (SHIPPED_MODEL / "model.onnx").is_file() or not CUP.is_file(),
    reason=f"needs the shipped model ({SHIPPED_MODEL}) and a shared cup photo ({CUP})",
)


def run(*command: str, cwd: Path = ROOT, timeout: float = 900, **environment: str) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**ENVIRONMENT, **environment}
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project to build from (setuptools writes build/ and *.egg-info/ where it builds)."""
    return copy_of_the_project(tmp_path_factory.mktemp("project") / "main")


def test_the_wheel_holds_the_package_the_page_and_the_metadata(project: Path, tmp_path: Path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(project))
    (wheel,) = tmp_path.glob("kitchenware_classifier-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    page = {
        f"kitchenware/serving/ui/{name}"
        for name in ("index.html", "page.css", "common.js", "page.js", "review/review.js")
    }
    assert page <= names
    assert {
        "kitchenware/classifier.py",
        "kitchenware/cli/__init__.py",
        "kitchenware/training/int8/pipeline.py",
        "kitchenware/feedback/migrations/env.py",  # Alembic's, loaded by path: package data
        "kitchenware/feedback/migrations/versions/0001_photos_classifications_choices.py",
    } <= names
    assert not [name for name in names if name.split("/")[0] in ("tests", "models", "benchmarks", "deploy", "scripts")]
    info = next(name for name in names if name.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(info).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert {"train", "ray", "dev"} <= set(re.findall(r"^Provides-Extra: (\S+)", metadata, re.MULTILINE))
    entry_points = zipfile.ZipFile(wheel).read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "kitchenware = kitchenware.cli:main" in entry_points


def readme_python_example() -> str:
    """The README's first Python block: the three lines that open a model and classify a photo."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    return next(block for block in blocks if "Classifier.open" in block)


@pytest.fixture(scope="module")
def fresh_venv(project: Path, tmp_path_factory) -> Path:
    """`pip install .` in a copy of the project, into a new virtual environment."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", ".", cwd=project)
    return venv


@needs_shipped_model_and_a_cup
def test_pip_install_gives_the_command_and_the_readme_example_runs(fresh_venv: Path, tmp_path: Path):
    commands = "{train,retrain,check,evaluate,predict,quantize,feedback}"
    assert commands in run(str(fresh_venv / "bin" / "kitchenware"), "--help")
    listing = run(str(fresh_venv / "bin" / "python"), "-m", "pip", "list", "--format=json")
    installed = {package["name"].lower() for package in json.loads(listing)}
    assert {"kitchenware-classifier", "bentoml", "onnxruntime"} <= installed
    assert not {"tensorflow", "keras", "ray", "pytest", "mlflow"} & installed  # the serving set only
    # The README's example, verbatim, where a user would run it: models/ and cup.jpg in the working folder.
    shutil.copy(CUP, tmp_path / "cup.jpg")
    (tmp_path / "models").symlink_to(SHIPPED_MODEL)
    printed = run(str(fresh_venv / "bin" / "python"), "-c", readme_python_example(), cwd=tmp_path)
    label, confidence, decision = printed.split()
    assert label == "cup" and decision == "confident" and 0.9 < float(confidence) <= 1.0
    predicted = run(
        str(fresh_venv / "bin" / "kitchenware"),
        "predict",
        "--model",
        "models",
        "--input",
        "cup.jpg",
        "--output",
        "one.csv",
        cwd=tmp_path,
        BENTOML_HOME=str(tmp_path / "bentoml"),
    )
    assert "1 predictions by models" in predicted
    # the same answer as the API's, to the sixth decimal
    assert (tmp_path / "one.csv").read_text().splitlines()[1].startswith(f"cup,cup,{confidence},confident,")


def pinned(requirements: str) -> dict[str, str]:
    """{package: version} of a requirements file and the files it includes."""
    versions = {}
    for line in (ROOT / requirements).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            versions |= pinned(line[3:])
        elif "==" in line:
            name, version = line.split("==")
            versions[canonicalize_name(Requirement(name).name)] = version
    return versions


@pytest.mark.parametrize(
    ("extra", "requirements"),
    [(None, "requirements-serve.txt"), ("train", "requirements-train.txt"), ("ray", "requirements-ray.txt")],
)
def test_the_pinned_sets_satisfy_the_package_and_its_extras(extra: str | None, requirements: str):
    """Every dependency of the package (and of an extra) is in the pinned set the scripts install and test, at a
    version its range admits: `pip install ".[train]"` can resolve to the tested set. (Resolving it for real
    downloads TensorFlow's 600 MB wheel: the tested sets are installed by scripts/setup.sh.)"""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    versions = pinned(requirements)
    for requirement in map(Requirement, declared):
        name = canonicalize_name(requirement.name)
        assert name in versions, f"{requirement} is not pinned in {requirements}"
        assert requirement.specifier.contains(versions[name]), f"{requirement} refuses the tested {versions[name]}"

"""The engine is a choice of the command line: Ray is imported only for --engine ray, options that mean nothing
on the chosen engine are refused with what to do, and the bento never holds the batch room."""

import subprocess
import sys

import pytest
import yaml
from sample_data import ROOT

from kitchenware.cli import main


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["predict", "--input", "photos", "--address", "head:6379"], "--address is for --engine ray"),
        (["predict", "--input", "photos", "--format", "csv"], "--format is for --engine ray"),
        (["train", "--data", "photos", "--threads-per-actor", "2"], "--threads-per-actor is for --engine ray"),
        (["predict", "--input", "photos", "--engine", "ray"], "pass --output DIR (a new folder)"),
        (["predict", "--input", "photos", "--engine", "ray", "--output", "out", "--kaggle"], "drop --runtime"),
        (["train", "--data", "photos", "--engine", "ray", "--arch", "scratch"], "it needs --arch xception"),
        (["train", "--data", "photos", "--engine", "ray", "--head", "dense", "--augment"], "without --augment"),
    ],
)
def test_options_that_mean_nothing_on_the_engine_are_refused(arguments: list[str], message: str, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(arguments)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_the_command_line_imports_ray_only_for_the_ray_engine():
    probe = "import sys, kitchenware.cli; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_bento_and_the_serving_set_hold_no_ray_and_the_dev_set_does():
    included = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert not [path for path in included["include"] if "batch" in path]
    assert not [package for package in included["python"]["packages"] if package.startswith("ray")]
    assert "ray" not in (ROOT / "requirements-serve.txt").read_text()
    assert "-r requirements-ray.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "ray[data]==" in (ROOT / "requirements-ray.txt").read_text()

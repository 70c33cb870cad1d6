"""deploy/ray-cluster.yaml, the `ray up` configuration the README shows, checked as the cluster launcher
checks it before touching a machine: Ray's own defaults filled in, then its JSON schema."""

import pytest
import yaml
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config
from sample_data import ROOT

CONFIG = ROOT / "deploy" / "ray-cluster.yaml"


def test_the_ray_up_configuration_is_what_the_launcher_accepts():
    config = yaml.safe_load(CONFIG.read_text())
    prepared = prepare_config(config)
    validate_config(prepared)
    assert prepared["max_workers"] == len(config["provider"]["worker_ips"])
    assert any("requirements-ray.txt" in command for command in config["setup_commands"])


def test_the_launcher_refuses_a_misspelt_field():
    config = yaml.safe_load(CONFIG.read_text())
    config["setup_command"] = config.pop("setup_commands")
    with pytest.raises(ValidationError):
        validate_config(prepare_config(config))

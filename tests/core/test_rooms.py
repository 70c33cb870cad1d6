"""The rooms hold: core loads none of the heavy frameworks, and serving never loads TensorFlow."""

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "bentoml", "sqlalchemy", "ray")


def modules_loaded_by(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running the statement."""
    probe = f"{statement}; import sys; print(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_core_loads_no_framework():
    statement = "; ".join(
        f"import kitchenware.core.{name}" for name in ("card", "inference", "photos", "preprocessing")
    )
    assert not set(HEAVY) & modules_loaded_by(statement)


@pytest.mark.parametrize("statement", ["import service", "import kitchenware.store", "import kitchenware.cli"])
def test_serving_store_and_cli_load_no_tensorflow(statement: str):
    loaded = modules_loaded_by(statement)
    assert not {"tensorflow", "keras"} & loaded

"""The rooms hold: every import of the package points the allowed way (inside functions too), no module imports
itself back through others, the bento holds what the service imports, and the light rooms load no heavy
framework."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kitchenware"
HEAVY = ("tensorflow", "keras", "bentoml", "sqlalchemy", "ray", "mlflow")

# Which rooms each room may import (docs/architecture.md); "package" is kitchenware/__init__.py.
ALLOWED = {
    "core": {"core"},
    "feedback": {"core", "feedback"},
    "store": {"core"},
    "classifier": {"core", "store"},
    "package": {"core", "classifier"},
    "serving": {"core", "feedback", "classifier", "serving", "package"},
    "training": {"core", "store", "feedback", "classifier", "training"},
    "batch": {"core", "classifier", "training", "batch", "package"},
    "cli": {"core", "store", "feedback", "classifier", "serving", "training", "batch", "cli", "package"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def room(module: str) -> str:
    parts = module.split(".")
    return "package" if len(parts) == 1 else parts[1]


def imports_of(path: Path) -> set[str]:
    """The project modules a file imports, at the top, inside functions and under TYPE_CHECKING alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {name for name in found if name in MODULES}


GRAPH = {module: imports_of(path) - {module} for module, path in MODULES.items()}


def test_every_room_imports_only_the_rooms_below_it():
    wrong = [
        f"{module} imports {imported}"
        for module, imported_modules in GRAPH.items()
        for imported in sorted(imported_modules)
        if room(imported) not in ALLOWED[room(module)]
    ]
    assert not wrong, "imports against the rooms' direction (docs/architecture.md):\n" + "\n".join(wrong)


def test_no_module_imports_itself_back():
    """Depth-first search for a cycle in the module graph (imports inside functions included)."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(GRAPH[module]):
            if state.get(imported) == "open":
                return [*path, module, imported]
            if imported not in state and (cycle := visit(imported, [*path, module])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(GRAPH):
        if module not in state:
            cycle = visit(module, [])
            assert cycle is None, "import loop: " + " -> ".join(cycle[cycle.index(cycle[-1]) :])


def test_the_contract_test_sees_a_back_arrow(tmp_path: Path):
    """The walk finds an import inside a function, the kind a hidden loop hides behind."""
    source = tmp_path / "hidden.py"
    source.write_text("def later():\n    from kitchenware.training.export import export_folder\n")
    assert imports_of(source) == {"kitchenware.training.export"}
    assert room("kitchenware.training.export") not in ALLOWED["core"]


def reachable(start: set[str]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += GRAPH[module]
    return seen


def test_the_bento_holds_every_module_the_service_imports_and_no_training():
    """...and what `python -m kitchenware.feedback` (purge, erase: the Kubernetes CronJob) runs in its image."""
    needed = reachable(imports_of(ROOT / "service.py") | {"kitchenware.feedback.__main__"})
    included = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["include"]
    packed = {module for module, path in MODULES.items() if any(path.relative_to(ROOT).match(p) for p in included)}
    assert needed <= packed, f"the bento lacks {sorted(needed - packed)}: add them to bentofile.yaml's include"
    assert not {room(module) for module in packed} & {"training", "batch", "cli"}


def modules_loaded_by(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running the statement."""
    probe = f"{statement}; import sys; print(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(result.stdout.split())


def test_core_and_the_python_api_load_no_framework():
    statement = "; ".join(f"import kitchenware.core.{name}" for name in ("card", "runtimes", "photos", "preprocessing"))
    assert not set(HEAVY) & modules_loaded_by(statement)
    assert not set(HEAVY) & modules_loaded_by("from kitchenware import Classifier, Answer, answer_rows")


@pytest.mark.parametrize("statement", ["import service", "import kitchenware.store", "import kitchenware.cli"])
def test_serving_store_and_cli_load_no_tensorflow(statement: str):
    loaded = modules_loaded_by(statement)
    assert not {"tensorflow", "keras", "mlflow"} & loaded  # mlflow: only when a command tracks

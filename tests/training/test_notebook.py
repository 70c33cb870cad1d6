"""notebook.ipynb runs from top to bottom on the shared photos (small epoch counts) and ends with its comparison."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from sample_data import needs_real_data

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebook.ipynb"
# About two minutes on a 2-core CPU instead of the full run's quarter of an hour.
FAST_RUN = {"NOTEBOOK_EPOCHS": "2", "NOTEBOOK_FINE_TUNE_EPOCHS": "1", "NOTEBOOK_LIMIT_PER_CLASS": "10"}


def markdown_outputs(cell) -> str:
    return "\n".join(output.get("data", {}).get("text/markdown", "") for output in cell.get("outputs", []))


@needs_real_data()
def test_notebook_runs_top_to_bottom_and_compares_the_approaches(monkeypatch: pytest.MonkeyPatch):
    for name, value in FAST_RUN.items():
        monkeypatch.setenv(name, value)
    for name in ("NOTEBOOK_DATA", "NOTEBOOK_WEIGHTS"):  # the notebook's own ../shared paths
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    # In memory, from the repository root; a cell that raises fails the test with its traceback.
    NotebookClient(notebook, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(ROOT)}}).execute()

    comparison = next(cell for cell in notebook.cells if "comparison" in cell.metadata.get("tags", []))
    lines = markdown_outputs(comparison).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| approach |"))
    columns = [cell.strip() for cell in lines[header].strip("|").split("|")]
    rows = [dict(zip(columns, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[header + 2 :]]
    approaches = [row["approach"] for row in rows]
    assert any(name.startswith("CNN from scratch") for name in approaches), approaches
    assert any("Xception head" in name for name in approaches), approaches
    assert any("fine-tuned" in name for name in approaches), approaches
    for row in rows:
        assert 0.0 <= float(row["val accuracy"]) <= 1.0, row
        assert float(row["training time (s)"]) > 0, row
        assert float(row["saved .keras file (MB)"]) > 1, row

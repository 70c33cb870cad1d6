"""The model card, the contract between the rooms: typed sections read by field, the stored format unchanged, older
cards still read."""

import json
import re
from pathlib import Path

import pytest
from sample_data import SHIPPED_MODEL

from kitchenware.core.card import (
    Band,
    CalibrationSection,
    CascadeFigures,
    Int8Section,
    ModelCard,
    OodSection,
    ValidationSection,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (SHIPPED_MODEL / "model_card.json").is_file(), reason="needs the shipped model card")
def test_the_shipped_card_loads_into_typed_sections_and_writes_back_the_same_json():
    stored = json.loads((SHIPPED_MODEL / "model_card.json").read_text())
    card = ModelCard.read(SHIPPED_MODEL)
    assert (
        isinstance(card.validation, ValidationSection) and card.validation.accuracy == stored["validation"]["accuracy"]
    )
    assert isinstance(card.ood, OodSection) and card.ood.threshold == stored["ood"]["threshold"] and card.ood.k == 10
    assert isinstance(card.calibration, CalibrationSection) and card.calibration.photos == 205
    assert isinstance(card.int8, Int8Section) and card.int8.band == Band.from_dict(stored["int8"]["band"])
    assert all(isinstance(figures, CascadeFigures) for figures in card.int8.figures.values())
    assert card.int8.recipe.fine_tuning.epochs == stored["int8"]["recipe"]["fine_tuning"]["epochs"]
    assert card.to_metadata() == stored  # the stored format is the one it always was
    assert ModelCard.from_metadata(card.to_metadata()) == card


def test_a_card_of_the_first_versions_reads_with_empty_sections_as_none():
    old = {
        "name": "old",
        "class_names": ["cup", "fork"],
        "input_size": 150,
        "validation": {"accuracy": 0.9, "loss": 0.3, "images": 10, "retired_key": 1},
        "ood": {},
        "calibration": {},
        "int8": {},
        "a_key_of_another_version": "ignored",
    }
    card = ModelCard.from_metadata(old)
    assert card.schema_version == 1 and card.ood is None and card.calibration is None and card.int8 is None
    assert card.validation == ValidationSection(accuracy=0.9, loss=0.3, images=10)
    assert "ood" not in card.to_metadata() and card.to_metadata()["validation"]["accuracy"] == 0.9


def test_the_first_int8_cards_said_none_for_no_fine_tuning():
    section = Int8Section.from_dict(
        {
            "band": {"margin": 0.5, "confidence_low": -0.1, "confidence_high": 0.2, "ood_low": 0.0, "ood_high": 0.1},
            "recipe": {
                "quantizer": "q",
                "weights": "w",
                "activations": "a",
                "equalization": "e",
                "calibration": "c",
                "fine_tuning": "none",
            },
        }
    )
    assert section.recipe.fine_tuning is None and section.band.margin == 0.5 and section.figures == {}


def test_a_card_without_its_identity_is_refused():
    with pytest.raises(ValueError, match="the model card lacks class_names, input_size"):
        ModelCard.from_metadata({"name": "x"})


def test_no_code_reads_a_section_by_key():
    """Sections are read by field: `card.int8["band"]` would be a dict habit coming back."""
    pattern = re.compile(r"\.(int8|ood|validation|calibration)(\[|\.get\()")
    sources = [*ROOT.glob("kitchenware/**/*.py"), ROOT / "service.py", *ROOT.glob("benchmarks/*.py")]
    found = [f"{path.relative_to(ROOT)}: {line.strip()}" for path in sources for line in path.read_text().splitlines()]
    assert not [line for line in found if pattern.search(line)]

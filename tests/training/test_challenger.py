"""The promotion rule of `kitchenware retrain` on answers the tests write: what counts as noise, as better and as
worse; the champion's folder replaced whole; the options refused before any training."""

from pathlib import Path

import numpy as np
import pytest

from kitchenware.cli import main
from kitchenware.core.decision import Answers
from kitchenware.training.challenger import BETTER, NOISE, UNMEASURED, WORSE, compare, judge
from kitchenware.training.model_uri import registry_alias
from kitchenware.training.promotion import replace_folder

CLASSES = ["cup", "fork", "spoon"]
LABELS = np.arange(60) % 3  # 20 photos of each class


def answers(labels: np.ndarray, decisions: list[str]) -> Answers:
    probabilities = np.eye(3, dtype=np.float32)[labels]
    return Answers(probabilities, labels, probabilities.max(axis=1), None, decisions)


def wrong_on(photos: list[int], decision: str = "confident", first_15: str | None = None) -> Answers:
    """Right on every photo but these (each answered as the next class), every answer `decision` (the first 15:
    `first_15`)."""
    said = LABELS.copy()
    said[photos] = (said[photos] + 1) % 3
    return answers(said, [first_15 or decision] * 15 + [decision] * (len(LABELS) - 15))


def verdicts(champion: Answers, challenger: Answers) -> dict[str, str]:
    return {c.figure: c.verdict for c in compare("photos", LABELS, champion, challenger, CLASSES)}


def test_the_same_answers_are_no_reason_to_promote():
    comparisons = compare("photos", LABELS, wrong_on([1, 4]), wrong_on([1, 4]), CLASSES)
    assert {(c.difference, c.low, c.high) for c in comparisons} == {(0.0, 0.0, 0.0)}
    verdict = judge(comparisons)
    assert not verdict.promote
    assert verdict.reason == "better beyond the noise on no figure: every interval of the difference includes 0"


def test_one_photo_more_right_is_within_the_noise():
    comparisons = compare("photos", LABELS, wrong_on([1, 4]), wrong_on([4]), CLASSES)
    accuracy = next(c for c in comparisons if c.figure == "accuracy")
    assert accuracy.difference == pytest.approx(1 / 60) and accuracy.low == 0.0 and accuracy.verdict == NOISE
    assert not judge(comparisons).promote


def test_a_challenger_right_on_what_the_champion_missed_is_promoted():
    forks = [i for i in range(60) if LABELS[i] == 1][:12]
    comparisons = compare("photos", LABELS, wrong_on(forks), wrong_on([]), CLASSES)
    found = {c.figure: c for c in comparisons}
    assert found["recall fork"].champion == pytest.approx(8 / 20) and found["recall fork"].challenger == 1.0
    assert found["recall fork"].verdict == found["accuracy"].verdict == found["confident accuracy"].verdict == BETTER
    assert found["recall cup"].verdict == found["unknown share"].verdict == NOISE
    verdict = judge(comparisons)
    assert verdict.promote and verdict.reason.startswith("better beyond the noise on photos: accuracy 0.800 -> 1.000")
    assert verdict.reason.endswith("; worse on none")


def test_better_on_one_figure_and_worse_beyond_the_noise_on_another_keeps_the_champion():
    forks = [i for i in range(60) if LABELS[i] == 1][:12]
    champion = wrong_on(forks, first_15="unsure")
    refused = wrong_on([], first_15="unknown")  # right, but says a quarter is not kitchenware
    found = verdicts(champion, refused)
    assert found["accuracy"] == BETTER and found["confident coverage"] == NOISE
    assert found["unknown share"] == WORSE  # lower is better
    verdict = judge(compare("photos", LABELS, champion, refused, CLASSES))
    assert not verdict.promote
    assert verdict.reason.startswith("worse beyond the noise on photos: unknown share 0.000 -> 0.250 (+0.250")


def test_the_confident_accuracy_of_a_model_that_is_never_confident_is_not_measured():
    found = verdicts(wrong_on([]), wrong_on([], decision="unsure"))
    assert found["confident accuracy"] == UNMEASURED and found["confident coverage"] == WORSE


def test_promotion_replaces_the_folder_whole_and_leaves_nothing_beside(tmp_path: Path):
    champion, challenger = tmp_path / "models", tmp_path / "run" / "challenger"
    for folder, files in ((champion, {"model.onnx": b"old", "model-int8.onnx": b"old int8"}), (challenger, {})):
        folder.mkdir(parents=True)
        for name, data in (files or {"model.onnx": b"new", "model_card.json": b"{}"}).items():
            (folder / name).write_bytes(data)
    replace_folder(challenger, champion)
    assert {path.name: path.read_bytes() for path in champion.iterdir()} == {
        "model.onnx": b"new",
        "model_card.json": b"{}",
    }
    assert sorted(path.name for path in tmp_path.iterdir()) == ["models", "run"]
    assert (challenger / "model.onnx").read_bytes() == b"new"  # the run keeps its copy
    replace_folder(challenger, tmp_path / "new" / "models")  # where no folder was yet
    assert (tmp_path / "new" / "models" / "model.onnx").read_bytes() == b"new"


def test_a_registry_champion_is_named_by_its_alias():
    assert registry_alias("models:/kitchenware_classifier@champion") == ("kitchenware_classifier", "champion")
    with pytest.raises(ValueError, match="a registry champion is named by its alias, models:/NAME@ALIAS"):
        registry_alias("models:/kitchenware_classifier/3")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--champion", "nowhere"], "--champion nowhere: no exported model folder there"),
        (["--champion", "models", "--holdout-newest", "1"], "--holdout-newest is a share of the labelled photos"),
        (["--champion", "models", "--feedback-before", "2026-12-01"], "drop --feedback-before"),
        (["--champion", "models:/kitchenware_classifier/3"], "a registry champion is named by its alias"),
    ],
)
def test_options_that_cannot_work_are_refused_before_training(options, message, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit) as exit:
        main(["retrain", "--data", "photos", *options])
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_a_feedback_cut_that_is_not_a_moment_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", "photos", "--feedback-before", "last week"])
    assert "--feedback-before takes a moment such as 2026-12-07" in capsys.readouterr().err

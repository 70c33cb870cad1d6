"""`kitchenware retrain` end to end: a champion trained on real photos, a feedback database seeded as the service
seeds it (the champion's answers, then the sellers' choices) with forks photographed on their side, which the
champion gets wrong; a challenger trained on those choices is promoted, one trained on shuffled choices is not.
ImageNet Xception at 71x71 on cached features (real features, seconds)."""

import csv
import datetime
import hashlib
import io
import json
import random
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image
from sample_data import IMAGENET_WEIGHTS, MORE_PHOTOS, REAL_PHOTOS, ROOT, needs_real_data

from kitchenware.classifier import Classifier
from kitchenware.cli import main
from kitchenware.core.card import ModelCard
from kitchenware.feedback.repository import Classified, FeedbackStore
from kitchenware.training.config import TrainConfig
from kitchenware.training.pipeline import train

pytestmark = needs_real_data()
CLASSES = ("cup", "fork", "spoon")


def real_photos(label: str, skip: int, count: int) -> list[Path]:
    with open(REAL_PHOTOS / "train.csv") as file:
        ids = [row["Id"] for row in csv.DictReader(file) if row["label"] == label]
    return [REAL_PHOTOS / "images" / f"{image_id}.jpg" for image_id in ids[skip : skip + count]]


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> tuple[Path, Path]:
    """(the photos it trained on, its exported folder): 12 upright photos of each class."""
    root = tmp_path_factory.mktemp("champion")
    for label in CLASSES:
        (root / "photos" / label).mkdir(parents=True)
        for path in real_photos(label, 0, 12):
            shutil.copy(path, root / "photos" / label)
    # As `kitchenware train --export` trains it, without saving it to the store too (one ONNX export, not two).
    config = TrainConfig(
        data=(str(root / "photos"),),
        weights=str(IMAGENET_WEIGHTS),
        input_size=71,
        augment_views=0,
        split="stratified",
        name="retrain_champion",
    )
    train(config, root / "run", export_to=root / "model", command_line="kitchenware train", save=False)
    return root / "photos", root / "model"


def sideways(path: Path) -> bytes:
    """The photo turned on its side, as a phone held sideways sends it when the EXIF orientation is lost."""
    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def seed_feedback(folder: Path, champion: Path, shuffled: bool = False) -> str:
    """A feedback database as the service fills it: each photo with the champion's answer, then the seller's
    choice, oldest first; 24 forks on their side among 12 upright cups and spoons. `shuffled`: the choices of the
    older half (what the challenger trains on) are shuffled among the photos, the newer half stays right."""
    forks = [sideways(path) for path in sorted((MORE_PHOTOS / "fork").glob("*.jpg"))[:24]]
    upright = zip(real_photos("cup", 12, 6), real_photos("spoon", 12, 6))
    others = [(path.read_bytes(), label) for pair in upright for path, label in zip(pair, ("cup", "spoon"))]
    photos = [(fork, "fork") for fork in forks]
    for n, other in enumerate(others):  # one upright cup or spoon after every second fork
        photos.insert(3 * n + 2, other)
    older = [label for _, label in photos[:18]]
    if shuffled:
        random.Random(0).shuffle(older)
    labels = older + [label for _, label in photos[18:]]
    store = FeedbackStore(f"sqlite:///{folder / 'feedback.db'}", folder / "photos")
    model = Classifier.open(champion)
    for (data, _), label in zip(photos, labels):
        answer = model.classify(data)
        photo_id = store.record(data, Classified(answer.label, answer.confidence, answer.decision, "champion"))
        store.choose(photo_id, label, list(CLASSES))
    return store.engine.url.render_as_string(hide_password=False)


def digest(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def retrain(photos: Path, url: str, champion: str, run: Path, *options: str) -> dict:
    arguments = ["--data", str(photos), "--data", f"feedback:{url}", "--champion", champion, *options]
    weights = ["--weights", str(IMAGENET_WEIGHTS)]  # its card names the file by its hash, not its path
    assert main(["retrain", *arguments, *weights, "--holdout-newest", "0.5", "--run-dir", str(run)]) == 0
    return json.loads((run / "comparison.json").read_text())


def figures(report: dict) -> dict[tuple[str, str], dict]:
    """{(set, figure): row} of comparison.json, the sets named without their dates."""
    return {(row["photos"].split(" (")[0], row["figure"]): row for row in report["figures"]}


def test_a_challenger_that_learned_the_pose_takes_the_champion_alias_and_folder(
    champion, tmp_path: Path, mlflow_tracking_uri: str, capsys
):
    """The champion in the MLflow registry (models:/NAME@champion) and deployed as a folder (--export): the
    challenger becomes a new version with the alias, and replaces the folder."""
    from kitchenware.training.registry import fetch, register, set_alias, version_of

    photos, trained = champion
    deployed = shutil.copytree(trained, tmp_path / "model")
    set_alias("retrain_pose", "champion", register(trained, "retrain_pose"))
    before = version_of("models:/retrain_pose@champion")
    url = seed_feedback(tmp_path / "feedback", deployed)
    run = tmp_path / "run"
    report = retrain(photos, url, "models:/retrain_pose@champion", run, "--export", str(deployed))
    assert report["promoted"] is True and "promoted: better beyond the noise on" in capsys.readouterr().out
    assert {name.split(" (")[0]: photos for name, photos in report["sets"].items()}["newest feedback"] == 18
    fork = figures(report)["newest feedback", "recall fork"]
    assert fork["champion"] < 0.5 and fork["verdict"] == "better" and fork["low"] > 0  # the pose it got wrong
    assert [row for row in report["figures"] if row["verdict"] == "worse"] == []
    # The alias and the folder now name the challenger, whole: its network and its card, trained with the
    # champion's settings on the upright photos and the older half of the sellers' choices.
    assert int(version_of("models:/retrain_pose@champion")) == int(before) + 1
    assert digest(fetch("models:/retrain_pose@champion", tmp_path / "fetched")) == digest(run / "challenger")
    assert digest(deployed) == digest(run / "challenger")
    card = ModelCard.read(deployed)
    assert card.command.startswith("kitchenware retrain") and card.name == "retrain_champion"
    assert (
        card.config["input_size"] == 71 and card.config["split"] == "stratified" and card.config["augment_views"] == 0
    )
    assert card.dataset["counts"] == {"cup": 15, "fork": 24, "spoon": 15}
    assert datetime.datetime.fromisoformat(card.config["feedback_before"]).tzinfo == datetime.UTC  # the cut by time
    assert sorted(path.name for path in tmp_path.iterdir()) == ["feedback", "fetched", "model", "run"]
    for name in ("report.md", "comparison.png", "disagreements.png", "answers.csv"):
        assert (run / name).stat().st_size > 0, name
    text = (run / "report.md").read_text()
    assert "**promoted**" in text and "| recall fork |" in text and "![where they disagree](disagreements.png)" in text


def readme_loop() -> list[list[str]]:
    """The commands of the README's "Learn from sellers" block, as a shell splits them (comments left out)."""
    block = (ROOT / "README.md").read_text().split("## Learn from sellers", 1)[1].split("```bash\n", 1)[1]
    lines = [shlex.split(line, comments=True) for line in block.split("```", 1)[0].splitlines()]
    return [line for line in lines if line]


def test_the_readme_loop_keeps_the_champion_folder_against_a_challenger_trained_on_shuffled_choices(
    champion, tmp_path: Path, capsys
):
    """The README's loop as written, on this test's photos and database: the review queue lists the photos without
    a choice, and `retrain` on shuffled choices keeps the champion folder as it was. (Its `scripts/serve.sh` lines
    run in tests/e2e/test_serve_script.py; the review page in tests/e2e/test_page.py.)"""
    serve, queue, retrain_command, serve_again = readme_loop()
    assert serve == ["KITCHENWARE_API_KEY=a-long-secret", "scripts/serve.sh"] and serve_again == ["scripts/serve.sh"]
    photos, trained = champion
    model = shutil.copytree(trained, tmp_path / "model")
    before = digest(model)
    url = seed_feedback(tmp_path / "feedback", model, shuffled=True)
    store = FeedbackStore(url, tmp_path / "feedback" / "photos")
    waiting = [
        store.record(path.read_bytes(), Classified("spoon", 0.6, "unsure", "champion", margin=m))
        for path, m in zip(real_photos("spoon", 30, 2), (0.4, 0.1))
    ]
    ours = {
        "sqlite:///feedback/kitchenware.db": url,
        "feedback:sqlite:///feedback/kitchenware.db": f"feedback:{url}",
        "data": str(photos),
        "models/": str(model),
        "imagenet": str(IMAGENET_WEIGHTS),  # offline here: the same weights, from the local file
    }
    assert queue[0] == "kitchenware" and main([ours.get(word, word) for word in queue[1:]]) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == waiting[::-1]  # unsure, the smaller margin first
    assert retrain_command[0] == "kitchenware"
    arguments = [ours.get(word, word) for word in retrain_command[1:]]
    assert main([*arguments, "--holdout-newest", "0.5", "--run-dir", str(tmp_path / "run")]) == 0
    report = json.loads((tmp_path / "run" / "comparison.json").read_text())
    assert report["promoted"] is False
    assert "kept the champion: worse beyond the noise on" in capsys.readouterr().out
    assert [row for row in report["figures"] if row["verdict"] == "worse"]
    assert digest(model) == before
    assert (tmp_path / "run" / "challenger" / "model.onnx").is_file()  # kept in the run, for a look

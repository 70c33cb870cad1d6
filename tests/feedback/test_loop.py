"""The loop after serving: report the live accuracy from the sellers' choices, export them, and train on them
as one more --data source (on SQLite and on PostgreSQL)."""

import csv
import json
from pathlib import Path

from images import encode
from sample_data import CLASS_COLOURS, photo, write_kaggle

from kitchenware.cli import main
from kitchenware.feedback.repository import Classified, FeedbackStore

MODEL = "kitchenware_classifier:test"


def seller_choices(store: FeedbackStore) -> None:
    """12 photos: 4 of each colour class; the model was right on 10, wrong on 1 fork, and 1 photo is 'other'."""
    for n in range(12):
        label = list(CLASS_COLOURS)[n % 3]
        data = encode(photo(CLASS_COLOURS[label], seed=900 + n), "JPEG")
        predicted = "spoon" if n == 4 else label
        decision = "unknown" if n == 11 else ("unsure" if n == 4 else "confident")
        photo_id = store.record(data, Classified(predicted, 0.9, decision, MODEL))
        store.choose(photo_id, "other" if n == 11 else label, list(CLASS_COLOURS))
    store.record(encode(photo((9, 9, 9), seed=999), "JPEG"), Classified("cup", 0.5, "unsure", MODEL))  # no choice


def test_report_export_and_retrain_on_the_sellers_choices(store: FeedbackStore, tmp_path: Path, monkeypatch):
    seller_choices(store)
    url = store.engine.url.render_as_string(hide_password=False)
    photos = ["--photos", str(store.photo_folder)]
    out = tmp_path / "report"
    assert main(["feedback", "report", "--db", url, *photos, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["labelled_photos"] == 12 and report["other"] == {"photos": 1, "answered_unknown": 1}
    assert report["overall"] == {"photos": 11, "accuracy": round(10 / 11, 4)}
    assert report["per_class"]["fork"] == {"photos": 4, "accuracy": 0.75}
    assert report["per_model"] == {MODEL: {"photos": 11, "accuracy": round(10 / 11, 4)}}
    assert report["decisions"]["unsure"] == {"photos": 2, "labelled": 1, "share_labelled": 0.5}
    confusion = list(csv.reader(open(out / "confusion.csv")))
    assert confusion[0] == ["chosen \\ answered", "cup", "fork", "spoon", "other"]
    assert confusion[2] == ["fork", "0", "3", "1", "0"] and (out / "confusion.png").stat().st_size > 0

    exported = tmp_path / "exported"
    assert main(["feedback", "export", "--db", url, *photos, str(exported)]) == 0
    assert {p.parent.name: len(list(p.parent.iterdir())) for p in exported.rglob("*.jpg")} == {
        "cup": 4,
        "fork": 4,
        "spoon": 3,
    }

    kaggle = write_kaggle(tmp_path / "kaggle", {"cup": 6, "fork": 6, "spoon": 6})
    feedback_source = f"feedback:{url}"
    monkeypatch.setenv("KITCHENWARE_FEEDBACK_PHOTOS", str(store.photo_folder))  # as the service was told
    small = ["--arch", "scratch", "--input-size", "32", "--epochs", "2", "--run-dir", str(tmp_path / "run")]
    assert main(["train", "--data", str(kaggle), "--data", feedback_source, *small, "--name", "retrained"]) == 0
    import bentoml

    sources = bentoml.models.get("retrained:latest").info.metadata["dataset"]["sources"]
    assert [(s["name"], s["layout"], s["counts"]) for s in sources] == [
        ("kaggle", "kaggle", {"cup": 6, "fork": 6, "spoon": 6}),
        ("feedback", "feedback", {"cup": 4, "fork": 4, "spoon": 3}),
    ]

"""How many of the review queue's first photos the model got wrong, against as many photos drawn at random.

    python -m benchmarks.review_queue [--model models/] [--keep DIR]

Fills a feedback store in a temporary folder as the service does (the answer, its margin, "unknown" score and
feature signature) with the real photos the shipped model never trained on: the validation side of its grouped
split (models/split.csv) and ../shared/data/not-kitchenware. A photo needs a reviewer's correction when the answer
is wrong: a label other than its class, `unknown` for kitchenware, or a class for something else. Prints, for the
first N of the queue, how many need one and how many near-duplicate groups they come from, beside the share a
random N would hold.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from kitchenware.classifier import Classifier
from kitchenware.core.decision import UNKNOWN
from kitchenware.feedback.repository import OTHER, Classified, FeedbackStore
from kitchenware.feedback.review import rank
from kitchenware.serving import schemas
from kitchenware.serving.feedback import classified
from kitchenware.serving.schemas import Classification

ROOT = Path(__file__).resolve().parents[1]
NOT_KITCHENWARE = ROOT.parent / "shared" / "data" / "not-kitchenware"


def held_out(model: Path) -> list[tuple[Path, str, str]]:
    """(photo, its class or "other", its near-duplicate group) of every photo the model did not train on."""
    rows = csv.DictReader(open(model / "split.csv"))
    photos = [
        ((ROOT / row["path"]).resolve(), row["label"], f"{row['source']}:{row['group']}")
        for row in rows
        if row["subset"] != "train"
    ]
    others = sorted(path for path in NOT_KITCHENWARE.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return photos + [(path, OTHER, path.name) for path in others]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models")
    parser.add_argument("--keep", type=Path, help="fill the store in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args()
    photos = held_out(args.model)
    classifier = Classifier.open(args.model, runtime="onnx")
    decided = classifier.decide_photos([path for path, _, _ in photos])
    results = [schemas.classification(answer, classifier.name) for answer in classifier.answers(decided)]
    with tempfile.TemporaryDirectory(prefix="kitchenware-review-") as temporary:
        folder = args.keep or Path(temporary)
        store = FeedbackStore(f"sqlite:///{folder}/feedback.db", folder / "photos")
        report(store, photos, results, classified(results, decided, classifier.name))


def report(
    store: FeedbackStore, photos: list[tuple[Path, str, str]], results: list[Classification], answers: list[Classified]
) -> None:
    """Store the answers, then compare the queue's first photos with a random draw."""
    truth = {}
    for (path, label, group), result, answer in zip(photos, results, answers):
        said = OTHER if result.decision == UNKNOWN else result.label
        truth[store.record(path.read_bytes(), answer)] = (said != label, group)
    wrong = sum(needs for needs, _ in truth.values())
    print(f"{len(truth)} photos stored, {wrong} answered wrong ({wrong / len(truth):.1%})")
    print(f"{'first N':>7}  {'wrong in the queue':>18}  {'a random N (expected)':>21}  {'groups':>6}")
    for limit in (10, 20, 50, 100):
        picks = rank(store.unlabelled(), limit)
        found = sum(truth[pick.photo_id][0] for pick in picks)
        groups = len({truth[pick.photo_id][1] for pick in picks})
        print(f"{limit:>7}  {found:>18}  {wrong / len(truth) * limit:>21.1f}  {groups:>6}")


if __name__ == "__main__":
    main()

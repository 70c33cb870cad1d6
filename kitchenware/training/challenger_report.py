"""The report of `kitchenware retrain`: both models side by side on each set of photos, every difference with its
interval and verdict, the photos where they disagree, and the decision (report.md, comparison.png,
disagreements.png, comparison.json, answers.csv)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

from kitchenware.core.preprocessing import load_image
from kitchenware.training.challenger import BETTER, LEVEL, RESAMPLES, SEED, WORSE, Comparison
from kitchenware.training.evaluation import _pyplot
from kitchenware.training.retrain import Judged, Judgement

MAX_DISAGREEMENTS = 24  # photos drawn on the sheet; answers.csv lists every one
COLOURS = {BETTER: "tab:green", WORSE: "tab:red"}  # within the noise, or not measured: grey


def write(judgement: Judgement, folder: Path, champion: str, challenger: str, outcome: str) -> None:
    """Write the report of a judgement into `folder`; `outcome` says what was done (promoted where, or kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    verdict = judgement.verdict
    (folder / "comparison.json").write_text(
        json.dumps(
            {
                "promoted": verdict.promote,
                "reason": verdict.reason,
                "outcome": outcome,
                "champion": champion,
                "challenger": challenger,
                "bootstrap": {"resamples": RESAMPLES, "level": LEVEL, "seed": SEED},
                "sets": {judged.photos.name: len(judged.labels) for judged in judgement.sets},
                "figures": [dataclasses.asdict(c) | {"verdict": c.verdict} for c in judgement.comparisons],
            },
            indent=2,
        )
    )
    disagreeing = write_answers(judgement, folder / "answers.csv")
    plot_comparison(judgement.comparisons, folder / "comparison.png")
    shown = plot_disagreements(judgement, folder / "disagreements.png")
    (folder / "report.md").write_text(markdown(judgement, champion, challenger, outcome, disagreeing, shown))


def markdown(judgement: Judgement, champion: str, challenger: str, outcome: str, disagreeing: int, shown: int) -> str:
    verdict = judgement.verdict
    lines = [
        "# Challenger against champion",
        "",
        f"- champion: `{champion}` (created {judgement.champion.created or 'unknown'})",
        f"- challenger: `{challenger}`, trained by `{judgement.challenger.command}`",
        f"- **{'promoted' if verdict.promote else 'kept the champion'}**: {verdict.reason}",
        f"- {outcome}",
        "",
        f"Each difference is challenger minus champion, with its {LEVEL:.0%} interval from {RESAMPLES} paired "
        f"bootstrap resamples of the photos (seed {SEED}). Worse (better) beyond the noise: the whole interval on "
        "the worse (better) side of 0. The challenger is promoted when it is worse beyond the noise on no figure "
        "and better beyond the noise on at least one. `unknown share` is better lower: these photos are all "
        "kitchenware.",
        "",
        "![champion and challenger](comparison.png)",
    ]
    for judged in judgement.sets:
        lines += ["", f"## {judged.photos.name}: {len(judged.labels)} photos", ""]
        lines += ["| figure | champion | challenger | difference | interval | verdict |", "|---|---|---|---|---|---|"]
        for c in (c for c in judgement.comparisons if c.photos == judged.photos.name):
            interval = "" if c.low is None else f"[{c.low:+.3f}, {c.high:+.3f}]"
            difference = "" if c.difference is None else f"{c.difference:+.3f}"
            lines.append(
                f"| {c.figure} | {_value(c.champion)} | {_value(c.challenger)} | {difference} | {interval} | "
                f"{c.verdict} |"
            )
    lines += ["", "## Where they disagree", ""]
    if disagreeing:
        lines += [
            f"{disagreeing} photos got another label or decision from each model (every one in `answers.csv`); the "
            f"{shown} first, the challenger's corrections first, then its new mistakes:",
            "",
            "![where they disagree](disagreements.png)",
        ]
    else:
        lines.append("Nowhere: both models gave every photo the same label and decision.")
    return "\n".join(lines) + "\n"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _disagreements(judged: Judged) -> list[int]:
    """The photos answered differently (label or decision): the challenger's corrections first, then its new
    mistakes, then the rest."""
    champion, challenger, labels = judged.champion, judged.challenger, judged.labels
    differ = [
        i
        for i in range(len(labels))
        if champion.labels[i] != challenger.labels[i] or champion.decisions[i] != challenger.decisions[i]
    ]
    corrected = challenger.labels == labels
    broken = champion.labels == labels
    return sorted(differ, key=lambda i: (not (corrected[i] and not broken[i]), not (broken[i] and not corrected[i])))


def write_answers(judgement: Judgement, path: Path) -> int:
    """Every photo's answer from both models; returns how many they answered differently."""
    names, disagreeing = judgement.class_names, 0
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["set", "source", "Id", "label"]
            + [f"{role}{column}" for role in ("champion", "challenger") for column in ("", "_decision", "_confidence")]
            + ["disagree", "path"]
        )
        for judged in judgement.sets:
            differ = set(_disagreements(judged))
            disagreeing += len(differ)
            for i, sample in enumerate(judged.photos.samples):
                row = [judged.photos.name, sample.source, sample.id, sample.label]
                for answers in (judged.champion, judged.challenger):
                    row += [names[answers.labels[i]], answers.decisions[i], round(float(answers.confidences[i]), 6)]
                writer.writerow([*row, "yes" if i in differ else "", sample.path])
    return disagreeing


def plot_comparison(comparisons: list[Comparison], path: Path) -> None:
    """Left: each figure of both models side by side; right: the difference with its interval, green when better
    beyond the noise, red when worse, grey otherwise."""
    plt = _pyplot()
    shown = [c for c in comparisons if c.difference is not None]
    names = [f"{c.photos.split(' (')[0]}: {c.figure}" for c in shown]
    rows = np.arange(len(shown))
    figure, (values, differences) = plt.subplots(
        1, 2, figsize=(13, 1.2 + 0.32 * len(shown)), sharey=True, gridspec_kw={"width_ratios": [1, 1]}
    )
    values.barh(rows - 0.2, [c.champion for c in shown], 0.4, label="champion", color="tab:gray")
    values.barh(rows + 0.2, [c.challenger for c in shown], 0.4, label="challenger", color="tab:blue")
    values.set(yticks=rows, yticklabels=names, xlim=(0, 1.05), xlabel="value")
    values.invert_yaxis()
    values.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    for row, c in zip(rows, shown):
        colour = COLOURS.get(c.verdict, "tab:gray")
        differences.errorbar(
            c.difference, row, xerr=[[c.difference - c.low], [c.high - c.difference]], fmt="o", color=colour, capsize=3
        )
    differences.axvline(0, color="black", linewidth=0.8)
    differences.set(xlabel=f"challenger - champion, {LEVEL:.0%} interval ({RESAMPLES} paired resamples)")
    figure.suptitle("Challenger against champion (unknown share: lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_disagreements(judgement: Judgement, path: Path) -> int:
    """A sheet of the photos the models answered differently, each captioned with the truth and both answers.
    Returns how many it shows; writes nothing when they agree everywhere."""
    names = judgement.class_names
    chosen = [(judged, i) for judged in judgement.sets for i in _disagreements(judged)][:MAX_DISAGREEMENTS]
    if not chosen:
        return 0
    plt = _pyplot()
    per_row = 6
    figure, axes = plt.subplots(
        -(-len(chosen) // per_row), per_row, figsize=(per_row * 2.4, -(-len(chosen) // per_row) * 2.9), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, (judged, i) in zip(axes.flat, chosen):
        image = load_image(judged.photos.samples[i].path)
        image.thumbnail((200, 200))
        axis.imshow(image)
        truth = names[judged.labels[i]]
        said = [
            f"{role} {names[answers.labels[i]]} ({answers.decisions[i]})"
            for role, answers in (("champion", judged.champion), ("challenger", judged.challenger))
        ]
        right = judged.challenger.labels[i] == judged.labels[i], judged.champion.labels[i] == judged.labels[i]
        colour = "tab:green" if right == (True, False) else "tab:red" if right == (False, True) else "black"
        axis.set_title(f"{truth}\n{said[0]}\n{said[1]}", fontsize=8, color=colour)
    figure.suptitle("Where they disagree (green: the challenger corrects the champion; red: a new mistake)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return len(chosen)

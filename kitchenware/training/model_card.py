"""The model card as people read it (model_card.md): written by training's export and by `kitchenware quantize`,
without TensorFlow."""

from __future__ import annotations

import dataclasses

from kitchenware.core.card import KERAS_FILE, ONNX_FILE, CalibrationSection, Int8Section, ModelCard


def card_markdown(card: ModelCard) -> str:
    names = list(card.class_names)
    weights = card.weights + (f" (file SHA-256 {card.weights_sha256[:16]}…)" if card.weights_sha256 else "")
    lines = [
        f"# Model card: {card.name}",
        "",
        f"- architecture: {card.architecture} at {card.input_size}x{card.input_size} "
        f"(input: RGB pixels 0-255; scaling is inside the model)",
        f"- backbone weights: {weights}",
        f"- classes (output order): {', '.join(names)}",
        f"- files: {ONNX_FILE} (served with ONNX Runtime), {KERAS_FILE} (training, TensorFlow runtime)",
    ]
    if card.command:
        lines.append(f"- trained with: `{card.command}`")
    dataset, metrics = card.dataset, card.validation
    if dataset:
        lines.append(
            f"- data: {dataset['images']} images ({dataset['layout']} layout), "
            f"fingerprint `{dataset['fingerprint'][:16]}`, skipped unreadable: {dataset['skipped']}; "
            f"{dataset.get('split', 'stratified')} split"
            + (
                f" ({dataset['near_duplicate_groups']['groups']} near-duplicate groups of "
                f"{dataset['near_duplicate_groups']['photos_in_groups']} photos kept on one side)"
                if dataset.get("near_duplicate_groups")
                else ""
            )
        )
        for source in dataset.get("sources", []):
            counts = ", ".join(f"{name} {count}" for name, count in source["counts"].items())
            lines.append(f"  - {source['name']} ({source['layout']}): {counts}")
    if card.cross_validation:
        cv = card.cross_validation
        recalls = ", ".join(f"{name} {value}" for name, value in cv["recall_pooled"].items())
        if cv["folds"] == "sources":
            held_out = ", ".join(f"{name} {row['accuracy']} ({row['photos']})" for name, row in cv["held_out"].items())
            lines.append(
                f"- each origin held out in turn, this setting trained on the others: accuracy {held_out}; pooled "
                f"{cv['accuracy_pooled']} on {cv['photos']} photos; recall per class (pooled): {recalls}"
            )
        else:
            lines.append(
                f"- grouped {cv['folds']}-fold cross-validation of this setting: accuracy {cv['accuracy_mean']} "
                f"± {cv['accuracy_std']} (pooled {cv['accuracy_pooled']}); recall per class (pooled): {recalls}"
            )
    if card.min_confidence is not None:
        figures = card.calibration or CalibrationSection()
        unknown = "no 'unknown' (no backbone features)"
        if card.ood:
            nearest = "nearest" if card.ood.k == 1 else f"{card.ood.k}th nearest"
            unknown = (
                f"'unknown' above a distance of {card.ood.threshold:.4f} to the {nearest} training photo's features "
                f"(accepting {card.ood.accept:.0%}), fit on {card.ood.fit_on or 'the validation split'}"
            )
            if card.ood.held_out:
                unknown += " (" + ", ".join(f"{name} {value}" for name, value in card.ood.held_out.items()) + ")"
        lines += [
            f"- decisions: temperature {card.temperature:.4f} and 'unsure' under a calibrated confidence of "
            f"{card.min_confidence:.4f}, fit on {figures.temperature_and_unsure_fit_on}; {unknown}",
            f"  - on the validation split: ECE {figures.ece_before} -> {figures.ece_after}; "
            f"{figures.confident_share or 0:.1%} answered 'confident', with accuracy "
            f"{figures.confident_accuracy}; {figures.unknown_share or 0:.1%} 'unknown'",
        ]
    if card.int8:
        lines += _int8_lines(card.int8)
    if metrics:
        lines += [
            f"- validation: accuracy {metrics.accuracy}, loss {metrics.loss} on {metrics.images} images",
            "",
            "| class | training images | validation images | precision | recall | F1 |",
            "|---|---|---|---|---|---|",
        ]
        for row in metrics.per_class:
            trained_on = dataset.get("train_counts", {}).get(row["class"], "")
            cells = [row["class"], trained_on, row["support"], row["precision"], row["recall"], row["f1"]]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines += [
            "",
            "Confusion matrix on the validation split (rows: true class, columns: predicted):",
            "",
            "| true \\ predicted | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        lines += [
            f"| {name} | " + " | ".join(map(str, row)) + " |" for name, row in zip(names, metrics.confusion_matrix)
        ]
    return "\n".join(lines) + "\n"


def _int8_lines(int8: Int8Section) -> list[str]:
    recipe = ""
    if int8.recipe is not None:
        kept = ", ".join(
            f"{len(value)} {name}" if isinstance(value, list) else value
            for name, value in int8.recipe.kept_float.items()
        )
        recipe = f" ({int8.recipe.calibration}; kept in float: {kept}"
        tuned = int8.recipe.fine_tuning
        if tuned is not None:
            recipe += f"; quantization-aware fine-tuning, {tuned.epochs} epochs on {tuned.photos} photos"
            if tuned.step_learning_rate:
                recipe += ", the activations' steps learned too"
        recipe += ")"
    lines = [
        f"- int8 network: {int8.file}{recipe}, served by the onnx-int8-cascade runtime (the default for a "
        f"model that has it): the float network answers inside the band {dataclasses.asdict(int8.band)} "
        f"(safety factor {int8.band_safety_factor}, chosen on {int8.band_chosen_on})"
    ]
    for name, row in int8.figures.items():
        lines.append(
            f"  - {name}: {row.photos} photos, float network on {row.fallback:.1%}, final answer the float "
            f"network's on {row.final_agreement:.2%} (int8 alone {row.int8_alone_agreement:.2%})"
        )
    return lines

"""int8 for the served model? ONNX Runtime's static quantizer on model.onnx, judged against the float model.

    python -m benchmarks.quantization [--photos ../shared/data/kitchenware-photos]

Quantizes the shipped model's ONNX file (QDQ, per-channel int8 weights, uint8 activations), calibrated on
training-split photos, with min-max and with percentile calibration. For each: top-1 agreement with the float
model on every shared photo, accuracy on the validation split of the model card and on all photos, and the
batch-1 forward time next to the float model's, in this run. The rule for adopting it: top-1 agreement
>= 99 % and the validation accuracy kept. Writes benchmarks/QUANTIZATION.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from benchmarks.serving import batch1, shipped_model_in_store
from kitchenware.core.card import ONNX_FILE
from kitchenware.core.inference import OnnxClassifier
from kitchenware.core.photos import find_photos, label_indices
from kitchenware.core.preprocessing import prepare
from kitchenware.training.splits import stratified_split

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# Percentile calibration keeps a histogram of every activation of every calibration photo: 32 photos fit in
# memory here, 120 did not (killed at 24 GB).
CALIBRATIONS = {
    "min-max, 120 photos": (CalibrationMethod.MinMax, 120),
    "percentile, 32 photos": (CalibrationMethod.Percentile, 32),
}


class Photos(CalibrationDataReader):
    def __init__(self, pixels: np.ndarray):
        self.batches = iter(pixels[:, None].astype(np.float32))

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {"pixels": batch}


def probabilities(classifier: OnnxClassifier, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([classifier.forward(pixels[i : i + 32]).probabilities for i in range(0, len(pixels), 32)])


def batch1_ms(classifier: OnnxClassifier, pixels: np.ndarray) -> float:
    return batch1(classifier, pixels)[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "kitchenware-photos")
    args = parser.parse_args()
    stored = shipped_model_in_store()
    metadata = stored.info.metadata
    photos = find_photos(args.photos)
    train, val = stratified_split(photos.samples, metadata["config"]["val_fraction"], metadata["config"]["seed"])
    position = {sample.id: i for i, sample in enumerate(photos.samples)}
    pixels = np.stack([prepare(sample.path, metadata["input_size"]) for sample in photos.samples])
    labels = label_indices(photos.samples, metadata["class_names"])
    in_val = np.array([position[sample.id] for sample in val])
    calibration_order = [position[train[i].id] for i in np.random.default_rng(0).permutation(len(train))]

    float_model = OnnxClassifier(Path(stored.path) / ONNX_FILE, threads=os.cpu_count())
    reference = probabilities(float_model, pixels)

    def row(name: str, found: np.ndarray, milliseconds: float, speed_up: float) -> str:
        agreement = (found.argmax(1) == reference.argmax(1)).mean()
        val_accuracy = (found[in_val].argmax(1) == labels[in_val]).mean()
        accuracy = (found.argmax(1) == labels).mean()
        return (
            f"| {name} | {agreement:.4f} | {val_accuracy:.4f} | {accuracy:.4f} | {milliseconds:.0f} | {speed_up:.2f} |"
        )

    rows = [row("float32 (served)", reference, batch1_ms(float_model, pixels), 1.0)]
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(Path(stored.path) / ONNX_FILE), str(prepared), skip_symbolic_shape=True)
        for name, (method, count) in CALIBRATIONS.items():
            quantized = Path(scratch) / "int8.onnx"
            quantize_static(
                str(prepared),
                str(quantized),
                Photos(pixels[calibration_order[:count]]),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
            )
            int8_model = OnnxClassifier(quantized, threads=os.cpu_count())
            int8_ms, float_ms = batch1_ms(int8_model, pixels), batch1_ms(float_model, pixels)
            rows.append(row(f"int8, {name}", probabilities(int8_model, pixels), int8_ms, float_ms / int8_ms))
    report = "\n".join(
        [
            f"{datetime.date.today()}, {os.cpu_count()} cores; `python -m benchmarks.quantization`; "
            f"{len(pixels)} photos, {len(val)} in the validation split",
            "",
            "| model | top-1 agreement with float32 | validation accuracy | accuracy, all photos | batch 1 (ms) "
            "| speed-up |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(report)
    (ROOT / "benchmarks" / "QUANTIZATION.md").write_text("# int8 quantization: latest run\n\n" + report + "\n")


if __name__ == "__main__":
    main()

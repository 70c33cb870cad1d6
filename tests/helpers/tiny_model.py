"""A model folder as `train.py` exports one (model.onnx with probabilities and features outputs, the decision
rule, the card), made of a few ONNX operators in milliseconds: jobs over thousands of photos test the batch
machinery, not Xception's 20 photos a second."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from kitchenware.core.card import OOD_REFERENCE_FILE, ModelCard, OodSection

CLASSES = ("cup", "fork", "spoon")
INPUT_SIZE = 32


def write_tiny_model(folder: Path) -> Path:
    """Mean colour -> softmax over three classes (red cup, green fork, blue spoon); the mean colour is also the
    "features" output, so the decision rule has an "unknown" score to compute."""
    folder.mkdir(parents=True, exist_ok=True)
    size = INPUT_SIZE
    nodes = [
        helper.make_node("ReduceMean", ["pixels"], ["sums"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["sums", "scale"], ["features"]),
        helper.make_node("MatMul", ["features", "weights"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    constants = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
        numpy_helper.from_array(np.eye(3, dtype=np.float32) * 8, "weights"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [None, size, size, 3])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(CLASSES)]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 3]),
        ],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    reference = np.eye(3) * 0.8 + 0.1  # reddish, greenish, bluish
    np.save(
        folder / OOD_REFERENCE_FILE, (reference / np.linalg.norm(reference, axis=1, keepdims=True)).astype(np.float16)
    )
    ModelCard(
        name="tiny_test_model",
        class_names=CLASSES,
        input_size=size,
        architecture="mean colour (tests)",
        temperature=1.0,
        min_confidence=0.5,
        ood=OodSection(threshold=0.7, score="knn", k=1),
    ).write(folder)
    return folder

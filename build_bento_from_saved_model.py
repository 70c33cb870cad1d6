"""Import the trained model shipped in models/ into the BentoML store, then build the bento.

    python build_bento_from_saved_model.py [--model models | --from-registry models:/NAME@ALIAS]
                                           [--runtime onnx|onnx-int8-cascade|tensorflow] [--no-build]

No GPU, no data and no TensorFlow needed: models/ holds model.onnx and its card, which is what the service
runs. Running it again reuses the model already imported (same files, same tag). The bento is bentofile.yaml's:
ONNX Runtime serves, by default the int8 cascade (model-int8.onnx with model.onnx as its fallback) when the model
has model-int8.onnx (`kitchenware quantize` writes it; the shipped one has), else model.onnx; --runtime onnx
or onnx-int8-cascade fixes the choice in the bento; with --runtime tensorflow it installs tensorflow-cpu and keras
instead of onnxruntime and serves model.keras, which needs a model folder that has one (`kitchenware train
--export DIR`). A folder exported before ONNX files were (model.keras and its card) is exported to ONNX on the way
in, with TensorFlow (requirements-train.txt). --from-registry fetches the folder a version of MLflow's model registry
holds (MLFLOW_TRACKING_URI's server; mlflow is in requirements-train.txt), e.g. the one the alias champion points at,
and imports it as --model would: a deployment built this way follows the alias.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from kitchenware import store
from kitchenware.core.card import INT8_FILE, KERAS_FILE, ONNX_FILE
from kitchenware.core.runtimes import CASCADE, RUNTIMES

ROOT = Path(__file__).resolve().parent
# What the TensorFlow runtime installs in place of onnxruntime (the versions of requirements-train.txt).
TENSORFLOW_PACKAGES = ["tensorflow-cpu==2.21.0", "keras==3.15.1"]


def bento_config(runtime: str | None) -> dict:
    """bentofile.yaml, with the packages and the KITCHENWARE_RUNTIME of the chosen runtime (None: the service picks
    the model's preferred one)."""
    config = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    if runtime == "tensorflow":
        packages = [p for p in config["python"]["packages"] if not p.startswith("onnxruntime")]
        config["python"]["packages"] = TENSORFLOW_PACKAGES + packages
    if runtime:
        config["envs"] = [*config.get("envs", []), {"name": "KITCHENWARE_RUNTIME", "value": runtime}]
    return config


def import_folder(folder: Path) -> tuple[str, bool]:
    """(tag, newly imported) of an exported folder in the store; one with model.keras only is exported to ONNX."""
    folder = folder.parent if folder.is_file() else folder
    if (folder / ONNX_FILE).is_file() or not (folder / KERAS_FILE).is_file():
        return store.import_exported(folder)
    try:
        from kitchenware.training.export import import_keras_export
    except ImportError as missing:
        raise FileNotFoundError(
            f"{folder} has no {ONNX_FILE}, and exporting one from {KERAS_FILE} needs TensorFlow ({missing}): "
            "`pip install -r requirements-train.txt`, or pass a folder exported with `kitchenware train --export`"
        ) from None
    return import_keras_export(folder)


def from_registry(model_uri: str, destination: Path) -> Path:
    """The exported folder of a registry version, downloaded into `destination`."""
    try:
        from kitchenware.training.registry import fetch, version_of
    except ImportError as missing:
        raise FileNotFoundError(
            f"--from-registry needs mlflow ({missing}): `pip install -r requirements-train.txt`, or pass --model with "
            "a folder"
        ) from None
    print(f"{model_uri} is version {version_of(model_uri)}")
    return fetch(model_uri, destination)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "models",
        help="an exported model folder: model.onnx (and/or model.keras) with model_card.json",
    )
    parser.add_argument(
        "--from-registry",
        metavar="MODEL_URI",
        help="instead of --model, the exported folder of a version in MLflow's model registry: models:/NAME@ALIAS "
        "(e.g. models:/kitchenware@champion) or models:/NAME/VERSION, from the server of MLFLOW_TRACKING_URI",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="what serves the model in the bento (default: onnx-int8-cascade when the model has model-int8.onnx, "
        "else onnx, chosen when the service starts)",
    )
    parser.add_argument(
        "--reference-from",
        metavar="feedback:URL",
        help="the photos sellers labelled in this feedback store join the 'unknown' score's reference (no retraining): "
        "a photo like one of them is no longer 'unknown'",
    )
    parser.add_argument("--photos", type=Path, help="the feedback store's photo folder (default: beside a SQLite file)")
    parser.add_argument("--no-build", action="store_true", help="only import the model into the store")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = args.model
            if args.from_registry:
                folder = from_registry(args.from_registry, Path(scratch) / "registry")
            if args.reference_from:
                from kitchenware.feedback.reference import with_sellers_photos

                card = with_sellers_photos(folder, args.reference_from, Path(scratch), args.photos)
                print(f"the 'unknown' score also knows {card.ood.feedback_photos} photos sellers labelled")
                folder = Path(scratch)
            tag, imported = import_folder(folder)
    except (FileNotFoundError, ValueError, ConnectionError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"{'imported' if imported else 'already in the store:'} {tag}")
    if args.runtime == CASCADE and not (store.get(tag).path / INT8_FILE).is_file():
        print(
            f"warning: {tag} has no {INT8_FILE}, which the {CASCADE} runtime serves first: make it with "
            "`kitchenware quantize --model DIR ...`",
            file=sys.stderr,
        )
    if args.runtime == "tensorflow" and not (store.get(tag).path / KERAS_FILE).is_file():
        print(
            f"warning: {tag} has no {KERAS_FILE}, which the TensorFlow runtime serves: pass --model with a folder "
            "written by `kitchenware train --export DIR`",
            file=sys.stderr,
        )
    if not args.no_build:
        import bentoml

        with tempfile.TemporaryDirectory() as scratch:
            bentofile = Path(scratch) / "bentofile.yaml"
            bentofile.write_text(yaml.safe_dump(bento_config(args.runtime), sort_keys=False))
            bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(ROOT))
        print(f"built bento {bento.tag}")
        print(f"serve it with `bentoml serve {bento.tag}`, or `bentoml containerize {bento.tag}` for a Docker image")
    return 0


if __name__ == "__main__":
    sys.exit(main())

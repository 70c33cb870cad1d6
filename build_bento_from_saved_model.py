"""Import the trained model shipped in models/ into the BentoML store, then build the bento.

    python build_bento_from_saved_model.py [--model models/model.keras] [--no-build]

No GPU and no data needed. Running it again reuses the model already imported (same file, same tag).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kitchenware import store

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "models" / store.MODEL_FILE,
        help="an exported .keras file with model_card.json beside it",
    )
    parser.add_argument("--no-build", action="store_true", help="only import the model into the store")
    args = parser.parse_args(argv)
    try:
        tag, imported = store.import_exported(args.model)
    except (FileNotFoundError, ValueError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"{'imported' if imported else 'already in the store:'} {tag}")
    if not args.no_build:
        import bentoml

        bento = bentoml.bentos.build_bentofile(str(ROOT / "bentofile.yaml"), build_ctx=str(ROOT))
        print(f"built bento {bento.tag}")
        print(f"serve it with `bentoml serve {bento.tag}`, or `bentoml containerize {bento.tag}` for a Docker image")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Create .venv (Python 3.11), install one pinned requirements set: serve (the default of scripts/serve.sh: BentoML,
# ONNX Runtime, Pillow, NumPy, SQLAlchemy), train (+ TensorFlow, Keras), ray (+ Ray Data) or dev (everything + the
# test tools); then the package itself, editable, so `.venv/bin/kitchenware` runs this checkout.
#   bash scripts/setup.sh [serve|train|ray|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:-dev}
[ -f "requirements-$SET.txt" ] || { echo "error: no requirements-$SET.txt: choose serve, train, ray or dev" >&2; exit 2; }
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r "requirements-$SET.txt"
# The pinned set above is what the package needs: install the package alone, without resolving its ranges again.
.venv/bin/python -m pip install -qq --no-deps --editable .

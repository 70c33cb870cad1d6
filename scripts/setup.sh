#!/usr/bin/env bash
# Create .venv (Python 3.11) and install one requirements set: serve (the default of scripts/serve.sh: BentoML,
# ONNX Runtime, Pillow, NumPy), train (+ TensorFlow, Keras) or dev (+ the test tools).
#   bash scripts/setup.sh [serve|train|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
SET=${1:-dev}
[ -f "requirements-$SET.txt" ] || { echo "error: no requirements-$SET.txt: choose serve, train or dev" >&2; exit 2; }
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r "requirements-$SET.txt"

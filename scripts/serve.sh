#!/usr/bin/env bash
# One command from a fresh clone to Swagger UI at http://localhost:3000: install, import the shipped
# model (models/) into the BentoML store, serve it. PORT=8080 scripts/serve.sh to use another port.
# Feedback storage is on: classified photos and sellers' choices go to feedback/ (SQLite and the photos beside
# it); KITCHENWARE_FEEDBACK_DB= (empty) turns it off, or set it to another SQLAlchemy URL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh serve
.venv/bin/python build_bento_from_saved_model.py --no-build
export KITCHENWARE_FEEDBACK_DB=${KITCHENWARE_FEEDBACK_DB-sqlite:///feedback/kitchenware.db}
exec .venv/bin/bentoml serve service:KitchenwareClassifier --port "${PORT:-3000}"

#!/usr/bin/env bash
# Every check: install what is missing, then ruff, then the whole pytest suite (it lists its slowest tests last).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/install_test_services.sh  # PostgreSQL for the feedback tests
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"

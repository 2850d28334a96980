#!/usr/bin/env bash
# Set up (or reuse) .venv, lint, then run the whole test suite. `.ci/run` calls exactly this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
.venv/bin/ruff check bench tasks ablations tests perf
exec .venv/bin/python -m pytest "$@"

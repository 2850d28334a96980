#!/usr/bin/env bash
# Set up (or reuse) .venv with the whole stack (--dense: the tests cover detection and segmentation), lint,
# then run the whole test suite. `.ci/run` calls exactly this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --dense
.venv/bin/ruff check bench tasks ablations tests perf
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Regenerate every committed tiny table (results/tables/) and the report over them (results/report/) from a
# clean commit: each tiny spec is run (resumed where its runs exist) into runs/sweeps/<name>, then every table
# is written, then the report and the spiking-vs-twin figures. The table writer refuses runs of uncommitted code.
# Usage: bash scripts/tables.sh [SPEC ...]   (default: every ablations/specs/*_tiny.yaml; the dense ones need
# `bash scripts/setup.sh --dense`)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  echo "tables.sh: uncommitted changes; allowed: commit (or stash) first, so that the tables name their code" >&2
  exit 2
fi
SB=.venv/bin/spikebench
specs=("$@")
[[ ${#specs[@]} -gt 0 ]] || specs=(ablations/specs/*_tiny.yaml)
for spec in "${specs[@]}"; do  # every sweep first: a run records the commit it ran on
  start=$SECONDS
  "$SB" sweep run "$spec"
  echo "tables.sh: $spec took $((SECONDS - start)) s"
done
for spec in "${specs[@]}"; do
  "$SB" table "$spec" --out results/tables
done
"$SB" report runs/sweeps/* --out results/report
"$SB" twin --models qsd_tiny sdt_tiny sdtv2_tiny --hardware 45nm loihi --out results/report

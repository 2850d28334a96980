#!/usr/bin/env bash
# Create or update .venv/ with the pinned stack.
#   bash scripts/setup.sh           core: torch, timm, pandas, plotting, the sweep tools and the suite
#                                   (classification, sweeps, tables, report): a few minutes
#   bash scripts/setup.sh --dense   core + the OpenMMLab stack for detection and segmentation (mmengine,
#                                   mmcv ops, mmdet, mmseg); scripts/test.sh uses this mode
# Idempotent: a stamp per mode (a hash of the files it installs from) skips all work when nothing changed.
# mmcv 2.1.0 is compiled from source once (about 14 min on 2 cores) and its wheel is cached in
# $SPIKEBENCH_CACHE (default ~/.cache/spikebench); SPIKEBENCH_REBUILD_MMCV=1 ignores the cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE=core
case "${1:-}" in
  "") ;;
  --dense) MODE=dense ;;
  *) echo "setup.sh: unknown option '$1'; allowed: --dense (add the detection/segmentation stack)" >&2; exit 2 ;;
esac
PY="${PYTHON:-python3.11}"
VENV="$ROOT/.venv"
CACHE="${SPIKEBENCH_CACHE:-$HOME/.cache/spikebench}"
MMCV_VERSION=2.1.0
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements/constraints.txt)
PYTAG=cp$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
WHEELDIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYTAG"
CORE_STAMP="$VENV/.spikebench-setup-core"
DENSE_STAMP="$VENV/.spikebench-setup"
log() { echo "[setup] $*" >&2; }

CORE_FILES=(requirements/base.txt requirements/dev.txt requirements/ablations.txt requirements/constraints.txt
  pyproject.toml scripts/setup.sh)
core_digest=$(cat "${CORE_FILES[@]}" | sha256sum | cut -d' ' -f1)
dense_digest=$(cat "${CORE_FILES[@]}" requirements/openmmlab*.txt | sha256sum | cut -d' ' -f1)
fresh() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
if fresh "$DENSE_STAMP" "$dense_digest" && [[ "${SPIKEBENCH_REBUILD_MMCV:-0}" != 1 ]] \
  || { [[ $MODE == core ]] && fresh "$CORE_STAMP" "$core_digest"; }; then
  log "environment up to date ($VENV, $MODE)"
  exit 0
fi

[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

install_core() {
  log "installing the core stack: torch, timm, pandas, matplotlib, scipy, the sweep tools"
  "${PIP[@]}" install -q -c requirements/constraints.txt -r requirements/base.txt -r requirements/dev.txt \
    -r requirements/ablations.txt
  # spikingjelly is only the reference neuron in perf/; its declared deps pull CUDA-free extras we do not want.
  # NeuroBench (tests/test_neurobench.py): installed without its declared deps (see requirements/dev.txt).
  "${PIP[@]}" install -q --no-deps -c requirements/constraints.txt spikingjelly neurobench snntorch
  "${PIP[@]}" install -q --no-deps -e .
  "$VENV/bin/python" -c "import timm, torchvision, pandas, scipy, matplotlib, bench; print('core stack ok')"
  echo "$core_digest" > "$CORE_STAMP"
}

build_mmcv() {
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"; trap - RETURN' RETURN  # once: a RETURN trap outlives its function
  log "building mmcv $MMCV_VERSION from source (about 14 minutes on 2 cores)"
  "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$tmp"
  tar -xzf "$tmp"/mmcv-*.tar.gz -C "$tmp"
  local src; src=$(find "$tmp" -maxdepth 1 -type d -name "mmcv-*")
  # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17 (ENVIRONMENT.md).
  sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "${PIP[@]}" wheel -q --no-build-isolation --no-deps "$src" -w "$tmp/out"
  mkdir -p "$WHEELDIR"
  local whl; whl=$(ls "$tmp"/out/mmcv-*.whl)
  cp "$whl" "$WHEELDIR/.partial" && mv "$WHEELDIR/.partial" "$WHEELDIR/$(basename "$whl")"
}

install_dense() {
  log "installing the OpenMMLab stack: mmengine, mmcv ops, mmdet, mmseg"
  "${PIP[@]}" install -q -c requirements/constraints.txt -r requirements/openmmlab-build.txt
  if [[ "${SPIKEBENCH_REBUILD_MMCV:-0}" == 1 ]] || ! ls "$WHEELDIR"/mmcv-*.whl >/dev/null 2>&1; then
    build_mmcv
  else
    log "using cached mmcv wheel from $WHEELDIR"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$(ls "$WHEELDIR"/mmcv-*.whl | head -n1)"
  "${PIP[@]}" install -q -c requirements/constraints.txt -r requirements/openmmlab.txt
  "$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, timm, torchvision.ops; print('stack ok: mmcv', mmcv.__version__)"
  echo "$dense_digest" > "$DENSE_STAMP"
}

fresh "$CORE_STAMP" "$core_digest" || install_core
[[ $MODE == dense ]] && install_dense
log "done ($MODE)"

#!/usr/bin/env bash
# Create or update .venv/ with the whole pinned stack (torch, timm, mmengine, mmcv ops, mmdet, mmseg).
# Idempotent: a stamp of the requirement files skips all work when nothing changed.
# mmcv 2.1.0 is compiled from source once (about 14 min on 2 cores) and its wheel is cached in
# $SPIKEBENCH_CACHE (default ~/.cache/spikebench); SPIKEBENCH_REBUILD_MMCV=1 ignores the cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
VENV="$ROOT/.venv"
CACHE="${SPIKEBENCH_CACHE:-$HOME/.cache/spikebench}"
MMCV_VERSION=2.1.0
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements/constraints.txt)
PYTAG=cp$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
WHEELDIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYTAG"
STAMP="$VENV/.spikebench-setup"
log() { echo "[setup] $*" >&2; }

digest=$(cat requirements/*.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$digest" && "${SPIKEBENCH_REBUILD_MMCV:-0}" != 1 ]]; then
  log "environment up to date ($VENV)"
  exit 0
fi

[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
log "installing torch, timm, mmengine and friends"
"${PIP[@]}" install -q -c requirements/constraints.txt -r requirements/base.txt -r requirements/dev.txt \
  -r requirements/ablations.txt
# spikingjelly is only the reference neuron in perf/; its declared deps pull CUDA-free extras we do not want.
"${PIP[@]}" install -q --no-deps -c requirements/constraints.txt spikingjelly
# NeuroBench (tests/test_neurobench.py): installed without its declared deps (see requirements/dev.txt).
"${PIP[@]}" install -q --no-deps -c requirements/constraints.txt neurobench snntorch

build_mmcv() {
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
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
if [[ "${SPIKEBENCH_REBUILD_MMCV:-0}" == 1 ]] || ! ls "$WHEELDIR"/mmcv-*.whl >/dev/null 2>&1; then
  build_mmcv
else
  log "using cached mmcv wheel from $WHEELDIR"
fi
"${PIP[@]}" install -q --no-deps --force-reinstall "$(ls "$WHEELDIR"/mmcv-*.whl | head -n1)"
"${PIP[@]}" install -q -c requirements/constraints.txt -r requirements/openmmlab.txt
"${PIP[@]}" install -q --no-deps -e .
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, timm, torchvision.ops; print('stack ok: mmcv', mmcv.__version__)"
echo "$digest" > "$STAMP"
log "done"

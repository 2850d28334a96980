"""Re-measure a finished sweep's ``energy_hw`` under another hardware description, without training.

Per finished point: from its ``efficiency.json`` when that holds the per-layer traffic columns, else by
re-profiling its final weights through the task (``TaskDef.reprofile``; classification: ``last.pt`` on the
run's own evaluation batches), kept as ``energy_hw/profile.json``. The result goes to
``energy_hw/<preset>-<reuse>.json`` in the run folder; ``result.json``, ``config.json`` and
``efficiency.json`` are never rewritten, so no training record field changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from ablations.runner import point_dir
from ablations.spec import SweepSpec
from bench.errors import ConfigError, warn
from bench.io import write_json_atomic
from bench.measure.hardware_model import load_hardware
from bench.measure.remeasure import NEEDED, energy_hw_of_record
from tasks import get_task


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def profile_of(run: Path) -> dict | None:
    """The run's profile record with traffic columns: ``efficiency.json`` or ``energy_hw/profile.json``."""
    for path in (run / "efficiency.json", run / "energy_hw" / "profile.json"):
        rec = _read(path)
        layers = rec.get("layers")
        if isinstance(layers, list) and layers and all(k in layers[0] for k in NEEDED):
            return rec
    return None


def remeasure_sweep(spec: SweepSpec, root: Path, hardware: str, reuse: str = "inference") -> list[Path]:
    """Write ``energy_hw/<preset>-<reuse>.json`` in every finished point of ``spec`` under ``root``."""
    hw = load_hardware(hardware)
    task = get_task(spec.task)
    written = []
    for point in spec.points():
        run = point_dir(root, point)
        if _read(run / "result.json").get("status") != "ok":
            continue
        record, source = profile_of(run), "efficiency.json"
        if record is None:
            if task.reprofile is None:
                warn(f"{run}: task {spec.task} cannot re-profile its weights; point skipped")
                continue
            record, source = task.reprofile(run, hw.path, reuse), "checkpoints/last.pt, re-profiled"
            write_json_atomic(run / "energy_hw" / "profile.json", record)
        e = energy_hw_of_record(record, hw, reuse)
        keep = {
            k: e[k] for k in ("energy_hw_mJ", "energy_hw_breakdown_mJ", "conventions", "layers", "neurons")
        }
        out = run / "energy_hw" / f"{hw.name}-{reuse}.json"
        written.append(write_json_atomic(out, dict(keep, source=source)))
    if not written:
        raise ConfigError(f"{root}: no finished point to re-measure; allowed values: a sweep with ok points")
    return written

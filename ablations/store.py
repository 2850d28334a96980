"""The results store: every run's ``result.json`` (the source of truth) flattened into one DataFrame row, with
the status of ``ablations.status`` (a corrupt or unfinished run is a row with its status, never dropped).

Each row also carries ``flag``: why the run did not learn (``tasks.health``: chance accuracy, silent
spiking layers), empty when nothing was seen; tables mark flagged rows and never call them best.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations.status import point_state
from bench.errors import ConfigError
from tasks.health import learning_flags

RESULT_FIELDS = ("status", "reason", "top1", "top5", "best_top1", "train_loss", "epochs", "classes")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def _flat(prefix: str, obj: object, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flat(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = obj if not isinstance(obj, list) else json.dumps(obj)


def _metrics(result: dict) -> dict:
    """Every scalar of a task's record, by its key (``top1``, ``bbox_mAP``, ``mIoU`` ...); a nested
    ``metrics`` mapping is read the same way, so any task's metrics are addressable by their keys."""
    out = {}
    for k, v in result.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    for k, v in (result.get("metrics") or {}).items() if isinstance(result.get("metrics"), dict) else ():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v
    return out


def _energy_hw(run: Path, eff: dict, hw: object) -> dict:
    """``energy_hw_mJ`` under ``hw`` (a loaded ``Hardware``; None: as recorded): the record's own when it
    was measured so, else a re-measurement (``energy_hw/<preset>-inference.json``, ``ablations.remeasure``),
    else recomputed from the run's profile record (no model, no training; the record is never rewritten)."""
    own = ((eff.get("conventions") or {}).get("energy_hw") or {}).get("hardware")
    if hw is None or own == hw.name:
        return {"energy_hw_hardware": own} if own else {}
    stored = _read(run / "energy_hw" / f"{hw.name}-inference.json")
    if stored:
        return dict(energy_hw_mJ=stored["energy_hw_mJ"], energy_hw_hardware=hw.name)
    from ablations.remeasure import profile_of
    from bench.measure.remeasure import energy_hw_of_record

    record = profile_of(run)
    if record is None:  # a dense or older record: keeps the preset it was measured under
        return {"energy_hw_hardware": own} if own else {}
    e = energy_hw_of_record(record, hw)
    return dict(energy_hw_mJ=e["energy_hw_mJ"], energy_hw_hardware=hw.name)


def collect(root: str | Path, hardware: str | None = None) -> pd.DataFrame:
    """One row per run directory under ``root`` (a sweep folder, or a folder of run folders).

    ``hardware``: report ``energy_hw_mJ`` under this preset (default: the sweep spec's ``hardware``)."""
    root = Path(root)
    runs_dir = root / "runs" if (root / "runs").is_dir() else root
    if not runs_dir.is_dir():
        raise ConfigError(f"{root}: no such results folder")
    spec = _read(root / "spec.json")
    hardware = hardware or spec.get("hardware")
    hw = None
    if hardware is not None:
        from bench.measure.hardware_model import load_hardware

        hw = load_hardware(hardware)
    values = {p["name"]: p["values"] for p in spec.get("points", [])}
    rows = []
    has_files = [  # ".teachers" holds runs that points distil from, not points
        d
        for d in runs_dir.iterdir()
        if d.is_dir() and not d.name.startswith(".") and any(p.name != ".lock" for p in d.iterdir())
    ]
    for run in sorted(has_files):
        config, result, env = (
            _read(run / "config.json"),
            _read(run / "result.json"),
            _read(run / "environment.json"),
        )
        row: dict = {"run": run.name}
        row.update(values.get(run.name, {}))
        cfg: dict = {}
        _flat("", {k: v for k, v in config.items() if k != "overrides"}, cfg)
        _flat("", config.get("overrides", {}), cfg)
        row.update({k: v for k, v in cfg.items() if k not in row})
        row.update({k: result.get(k) for k in RESULT_FIELDS})
        row.update({k: v for k, v in _metrics(result).items() if k not in row})
        state = point_state(run)
        row["status"], row["reason"] = state.status, state.reason
        eff = result.get("efficiency") or {}
        for k, v in eff.items():
            if not isinstance(v, (dict, list)):
                row[k] = v
        row.update(_energy_hw(run, eff, hw))
        firing = _read(run / "efficiency.json").get("firing_rates")
        row["flag"] = "; ".join(learning_flags(result, firing)) if row["status"] == "ok" else ""
        flat_env: dict = {}
        _flat("env", env, flat_env)
        row.update(flat_env)
        row["run_dir"] = str(run)
        rows.append(row)
    if not rows:
        raise ConfigError(f"{root}: no run records found (expected <dir>/runs/<run>/result.json)")
    return pd.DataFrame(rows)


def write_results(df: pd.DataFrame, out: str | Path) -> Path:
    """CSV or Parquet by the file suffix (written atomically)."""
    from bench.io import atomic_path, write_text_atomic

    out = Path(out)
    if out.suffix == ".parquet":
        with atomic_path(out) as tmp:
            df.to_parquet(tmp, index=False)
        return out
    if out.suffix != ".csv":
        raise ConfigError(f"--out={out}: allowed suffixes: .csv, .parquet")
    return write_text_atomic(out, df.to_csv(index=False))

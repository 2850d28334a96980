"""The results store: every run's ``result.json`` (the source of truth) flattened into one DataFrame row, with
the status of ``ablations.status`` (a corrupt or unfinished run is a row with its status, never dropped)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations.status import point_state
from bench.errors import ConfigError

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


def collect(root: str | Path) -> pd.DataFrame:
    """One row per run directory under ``root`` (a sweep folder, or a folder of run folders)."""
    root = Path(root)
    runs_dir = root / "runs" if (root / "runs").is_dir() else root
    if not runs_dir.is_dir():
        raise ConfigError(f"{root}: no such results folder")
    spec = _read(root / "spec.json")
    values = {p["name"]: p["values"] for p in spec.get("points", [])}
    rows = []
    has_files = [d for d in runs_dir.iterdir() if d.is_dir() and any(p.name != ".lock" for p in d.iterdir())]
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
        state = point_state(run)
        row["status"], row["reason"] = state.status, state.reason
        eff = result.get("efficiency") or {}
        for k, v in eff.items():
            if not isinstance(v, (dict, list)):
                row[k] = v
        row.update({f"env.{k}": v for k, v in env.items()})
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

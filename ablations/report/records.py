"""Run records of any task as one tidy DataFrame for the report: one row per run, metrics read generically.

A task's metrics are the ``metrics`` mapping of ``result.json`` when it has one (detection, segmentation;
prefixes such as ``coco/`` dropped) or its top-level numbers (classification: ``top1``, ``top5``). The
config columns (flattened ``config.json``, overrides without their prefix) are listed in
``df.attrs["config_columns"]`` so figures and leaderboards can tell settings apart from measurements.

Also read: ``eval.json`` of ``spikebench eval classification`` (a checkpoint evaluated without training:
one measured row, ``kind`` = eval); the whole-model efficiency of detection / segmentation records split by
part (``backbone_params_M``, ``neck_energy_mJ``, ...; the totals are the whole inference model); and
``eval_images``, the size of the evaluation split, which names the dataset in ``paper.run_dataset``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations.store import collect
from bench.errors import ConfigError
from tasks.health import learning_flags

# primary metric of each task (leaderboard rank, figure y axis) and its secondary ones
PRIMARY = {"classification": "top1", "detection": "bbox_mAP", "segmentation": "mIoU"}
SECONDARY = {
    "classification": ("top5",),
    "detection": ("bbox_mAP_50", "bbox_mAP_75", "segm_mAP"),
    "segmentation": ("mAcc", "aAcc"),
}
NOT_METRICS = {"classes", "epochs", "status", "reason", "task", "model", "data", "config_digest", "images"}
PART_KEYS = ("params_M", "MACs_G", "SOPs_G", "energy_mJ", "energy_hw_mJ")
# test split of a dense data root (counted on disk: the records do not hold it)
DENSE_TEST_IMAGES = {"detection": "val2017", "segmentation": "images/validation"}


def _read(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def metrics_of(result: dict) -> dict[str, float]:
    """The metrics of a record: its ``metrics`` mapping (prefixes dropped) or its top-level numbers."""
    found = result.get("metrics")
    if isinstance(found, dict):
        return {k.split("/")[-1]: v for k, v in found.items() if isinstance(v, (int, float))}
    return {
        k: v
        for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NOT_METRICS
    }


def _config_columns(run_dir: Path) -> tuple[list[str], list[str]]:
    """(every flattened config key, the model-override keys) of a run."""
    config = _read(run_dir / "config.json")
    cols: list[str] = []

    def walk(prefix: str, obj: object) -> None:
        if isinstance(obj, dict) and obj:
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif prefix:
            cols.append(prefix)

    walk("", {k: v for k, v in config.items() if k != "overrides"})
    walk("", config.get("overrides", {}))
    return cols, list(config.get("overrides", {}))


def _sources(path: Path) -> tuple[Path, str | None]:
    """(folder to collect, run name to keep or None) of a sweep folder, a folder of runs or one run."""
    if (path / "config.json").exists() or (path / "eval.json").exists():
        return path.parent, path.name
    return path, None


def _record(run_dir: Path) -> dict:
    """``result.json``, or ``eval.json`` of a checkpoint evaluated without training."""
    result = _read(run_dir / "result.json")
    if not result and (run_dir / "eval.json").exists():
        return _read(run_dir / "eval.json")
    return result if isinstance(result, dict) else {}


def _class_folders(data: str) -> int | None:
    folder = Path(data)
    return sum(1 for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else None


def eval_row(run_dir: Path) -> dict:
    """The run-table row of an ``eval.json`` (status, metrics, efficiency, flag), as ``collect`` gives."""
    record = _read(run_dir / "eval.json")
    eff = record.get("efficiency") or {}
    classes = record.get("classes") or _class_folders(str(record.get("data", "")))
    row = dict(
        run=run_dir.name,
        model=record.get("model"),
        status=record.get("status", "corrupt"),
        reason=record.get("reason"),
        kind="eval",
        data=record.get("data"),
        classes=classes,
        eval_samples=record.get("images"),
        checkpoint=(record.get("checkpoint") or {}).get("path"),
        **{k: v for k, v in eff.items() if not isinstance(v, (dict, list))},
        run_dir=str(run_dir),
    )
    metrics = dict(metrics_of(record), classes=classes, eval_samples=record.get("images"))
    row["flag"] = "; ".join(learning_flags(metrics)) if row["status"] == "ok" else ""
    return row


def _with_evals(df: pd.DataFrame) -> pd.DataFrame:
    """``collect``'s rows with every folder holding ``eval.json`` (and no ``result.json``) read from it."""
    evals = [
        i
        for i, d in zip(df.index, df["run_dir"], strict=True)
        if (Path(d) / "eval.json").exists() and not (Path(d) / "result.json").exists()
    ]
    if not evals:
        return df
    rows = pd.DataFrame([eval_row(Path(df.at[i, "run_dir"])) for i in evals], index=evals)
    return pd.concat([df.drop(index=evals), rows]).sort_index()


def _dense_images(task: str, data: object) -> int | None:
    folder = Path(str(data)) / DENSE_TEST_IMAGES[task]
    return sum(1 for f in folder.iterdir() if f.is_file()) if folder.is_dir() else None


def _parts(result: dict) -> dict:
    """Per-part efficiency of a dense record (``backbone_params_M`` ...) and the run's iterations."""
    eff = result.get("efficiency") or {}
    out: dict = {}
    for part, values in (eff.get("parts") or {}).items():
        out.update({f"{part}_{k}": values.get(k) for k in PART_KEYS})
    if "iters" in result:
        out["iters_run"] = result["iters"]
    return out


def load_runs(paths: list[str | Path]) -> pd.DataFrame:
    """Every run under ``paths`` (sweep folders, folders of runs, or run folders), with ``sweep``, ``task``,
    ``family``, ``spiking`` and the generic metric columns added."""
    from bench.registry import model_entry

    frames, config_cols, override_cols = [], [], []
    for p in map(Path, paths):
        root, only = _sources(p)
        df = _with_evals(collect(root))
        if only is not None:
            df = df[df["run"] == only]
        spec = _read(root / "spec.json")
        df = df.assign(sweep=spec.get("name", root.name) if isinstance(spec, dict) else root.name)
        rows, cols = [], []
        for run_dir in map(Path, df["run_dir"]):
            result = _record(run_dir)
            found, overrides = _config_columns(run_dir)
            cols += [c for c in found if c not in cols]
            override_cols += [c for c in overrides if c not in override_cols]
            size = (result.get("efficiency") or {}).get("img_size")
            row = dict(
                task=result.get("task") or spec.get("task") or "classification",
                resolution=size[0] if isinstance(size, list) and size else None,
            )
            row.update(metrics_of(result))
            row.update(_parts(result))
            if row["task"] in DENSE_TEST_IMAGES:
                data = _read(run_dir / "config.json").get("data") or result.get("data", "")
                row["eval_images"] = _dense_images(row["task"], data)
            elif result.get("images") or result.get("eval_samples"):
                row["eval_images"] = result.get("images") or result.get("eval_samples")
            rows.append(row)
        extra = pd.DataFrame(rows, index=df.index)
        df = pd.concat([df.drop(columns=[c for c in extra if c in df]), extra], axis=1)
        df.attrs["config_columns"] = [c for c in cols if c in df.columns]
        df.attrs["override_columns"] = [c for c in override_cols if c in df.columns]
        df["setting"] = setting_label(df, exclude=("model",)).str.partition(" ")[2]
        config_cols += [c for c in cols if c not in config_cols]
        frames.append(df)
    if not frames:
        raise ConfigError("report: no sources given; allowed: sweep folders, folders of runs, run folders")
    out = concat_keeping_ints(frames).drop_duplicates("run_dir", ignore_index=True)
    out["family"] = [_family(m, model_entry) for m in out["model"]]
    # spiking = the measurement found spiking neurons (an ANN's firing rate is "not applicable")
    out["spiking"] = out["fr_mean"].notna() if "fr_mean" in out else False
    out.attrs["config_columns"] = [c for c in config_cols if c in out.columns]
    out.attrs["override_columns"] = [c for c in override_cols if c in out.columns]
    return out


def concat_keeping_ints(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one below the other; a column of integers in every frame that has it stays integer
    (nullable ``Int64`` where other frames lack it), so a setting reads ``stage3_stride=1``, not ``1.0``."""
    out = pd.concat(frames, ignore_index=True)
    for col in out.columns:
        kinds = [pd.api.types.is_integer_dtype(f[col]) for f in frames if col in f.columns]
        if all(kinds) and not pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("Int64")
    return out


def _family(model: object, model_entry) -> str:
    try:
        return model_entry(str(model)).family
    except ConfigError:
        return "unknown"


def did_not_learn(df: pd.DataFrame) -> pd.Series:
    """True where a finished run is no result. The store's ``flag`` (``tasks.health``: chance top-1 by a
    binomial test, silent spiking layers) when the records carry it; otherwise top-1 at most 1.2 x chance
    or a mean firing rate of 0. Dense tasks: a primary metric of 0."""
    flags = pd.Series(False, index=df.index)
    has_flag = "flag" in df
    if has_flag:
        flags |= df["flag"].fillna("").astype(str) != ""
    for task, metric in PRIMARY.items():
        if metric not in df:
            continue
        rows = df["task"] == task
        value = pd.to_numeric(df[metric], errors="coerce")
        if task != "classification":
            flags |= rows & (value <= 0)
        elif not has_flag and "classes" in df:
            chance = 100.0 / pd.to_numeric(df["classes"], errors="coerce")
            flags |= rows & (value <= 1.2 * chance)
    if not has_flag and "fr_mean" in df:
        flags |= pd.to_numeric(df["fr_mean"], errors="coerce") == 0
    return flags


def usable(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs that learned (what tables and figures may show)."""
    out = df[(df["status"] == "ok") & ~did_not_learn(df)]
    out.attrs = dict(df.attrs)
    return out


def setting_columns(df: pd.DataFrame, exclude: tuple[str, ...] = ()) -> list[str]:
    """Config columns that vary across ``df`` (the seed and ``exclude`` left out): what names a setting."""
    cols = df.attrs.get("config_columns", [])
    skip = {"seed", "measure", "measure_batches", *exclude}
    return [c for c in cols if c in df and c not in skip and df[c].astype(str).nunique(dropna=False) > 1]


def setting_label(df: pd.DataFrame, exclude: tuple[str, ...] = ()) -> pd.Series:
    """A short label per row: ``model``, then the settings that vary in ``df`` and the row's own model
    overrides (``qsd_tiny bits=2``, ``qsd_tiny neuron=relu attention=softmax``); seed, ``exclude`` and the
    settings a row does not have out."""
    varying = [c for c in setting_columns(df, exclude) if c != "model"]
    skip = {"seed", "model", *exclude}
    overrides = [c for c in df.attrs.get("override_columns", []) if c in df and c not in skip]
    labels = df["model"].astype(str)
    for c in dict.fromkeys(overrides + varying):  # a setting a row does not have (NaN) is not shown
        labels = labels + (f" {c}=" + df[c].map(str)).where(df[c].notna(), "")
    return labels

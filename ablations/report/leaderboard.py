"""Leaderboards per task in timm's results-CSV layout, extended with the spiking measurements.

Classification: ``model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation`` (timm's
columns; ``param_count`` in millions), sorted by top1 desc, top5 desc, model asc. Detection ranks by box AP
(``bbox_mAP``), segmentation by ``mIoU``, each with its ``detector`` / ``segmentor`` and ``neck_head``; their
``param_count``, MACs, SOPs and energy are the whole inference model (backbone + neck + head) and
``backbone_param_share`` / ``backbone_energy_share`` (%) the backbone's part of it. One row per setting of a
sweep (runs that differ only by seed are averaged; ``<metric>_std`` and ``runs`` say over how many). Only
finished runs that learned are ranked.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.report.records import PRIMARY, SECONDARY
from bench.io import write_text_atomic

# spikebench's extension of timm's columns
EXTRA = {
    "T": "T",
    "bits_w": "bits",
    "fr_mean": "firing_rate",
    "SOPs_G": "SOPs_G",
    "MACs_G": "MACs_G",
    "energy_mJ": "energy_mJ",
    "energy_hw_mJ": "energy_hw_mJ",
    "size_MB": "size_MB_true",
    "size_MB_paper": "size_MB_paper",
}
# the dense model that carries the backbone (config field of the task) and the backbone's share of the whole
ARCHITECTURE = {"detection": "detector", "segmentation": "segmentor"}
SHARES = {"backbone_param_share": "params_M", "backbone_energy_share": "energy_mJ"}
# eval transform of tasks/classification (bench.data.datasets.build_transform): resize + centre crop
CLASSIFICATION_EVAL = dict(crop_pct=1.0, interpolation="bilinear")


def leaderboard(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """The ranked leaderboard of ``task`` from usable runs (see ``records.usable``)."""
    primary = PRIMARY[task]
    runs = df[df["task"] == task]
    if runs.empty or primary not in runs:
        return pd.DataFrame(columns=["model", "img_size", primary])
    metrics = [primary, *[m for m in SECONDARY[task] if m in runs and runs[m].notna().any()]]
    runs = runs.assign(_name=_names(runs))
    for share, col in SHARES.items():
        if f"backbone_{col}" in runs:
            part = pd.to_numeric(runs[f"backbone_{col}"], errors="coerce")
            runs = runs.assign(**{share: 100 * part / pd.to_numeric(runs[col], errors="coerce")})
    numeric = [c for c in [*metrics, "params_M", *EXTRA, *SHARES] if c in runs]
    runs = runs.assign(**{c: pd.to_numeric(runs[c], errors="coerce") for c in numeric})
    g = runs.groupby(["sweep", "_name"], sort=False)
    table = g[numeric].mean()
    dense = [c for c in (ARCHITECTURE.get(task), "neck_head") if c in runs]
    for c in dense:
        table[c] = g[c].first()
    table[f"{primary}_std"] = g[primary].std()
    table["runs"] = g.size()
    table["img_size"] = g["resolution"].first() if "resolution" in runs else None
    table["setting"] = g["setting"].first() if "setting" in runs else ""
    table = table.reset_index().rename(columns={"_name": "model", "params_M": "param_count", **EXTRA})
    table = table.assign(sweep=table.pop("sweep"))
    cols = ["model", "img_size"]
    for m in metrics:
        cols.append(m)
        if task == "classification":
            table[f"{m}_err"] = 100.0 - table[m]
            cols.append(f"{m}_err")
    cols += ["param_count"] if "param_count" in table else []
    cols += dense
    if task == "classification":
        table = table.assign(**CLASSIFICATION_EVAL)
        cols += list(CLASSIFICATION_EVAL)
    cols += [EXTRA[c] for c in EXTRA if EXTRA[c] in table] + [c for c in SHARES if c in table]
    cols += [f"{primary}_std", "runs", "sweep", "setting"]
    ranks = [primary, *(["top5"] if task == "classification" and "top5" in table else [])]
    table = table.sort_values([*ranks, "model"], ascending=[False] * len(ranks) + [True], kind="stable")
    return table[cols].reset_index(drop=True)


def _names(runs: pd.DataFrame) -> pd.Series:
    """Row names: the registry name, tagged with the sweep's varying settings (``qsd_tiny.bits=2``)."""
    setting = runs["setting"].fillna("") if "setting" in runs else pd.Series("", index=runs.index)
    tag = setting.str.replace(" ", ",", regex=False)
    return runs["model"].astype(str) + tag.where(tag == "", "." + tag)


def write_leaderboard(table: pd.DataFrame, out_dir: str | Path, task: str) -> list[Path]:
    """``leaderboard_<task>.csv`` and ``.md``."""
    out_dir = Path(out_dir)
    md = (
        table.astype(object)
        .where(table.notna(), None)
        .to_markdown(index=False, floatfmt=".4g", missingval="—")
    )
    return [
        write_text_atomic(out_dir / f"leaderboard_{task}.csv", table.to_csv(index=False)),
        write_text_atomic(out_dir / f"leaderboard_{task}.md", md + "\n"),
    ]

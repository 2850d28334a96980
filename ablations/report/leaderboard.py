"""Leaderboards per task in timm's results-CSV layout, extended with the spiking measurements.

Classification: ``model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation`` (timm's
columns; ``param_count`` in millions), sorted by top1 desc, top5 desc, model asc. Detection ranks by box AP
(``bbox_mAP``), segmentation by ``mIoU``. One row per setting of a sweep (runs that differ only by seed
are averaged; ``<metric>_std`` and ``runs`` say over how many). Only finished runs that learned are ranked.
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
    "size_MB": "size_MB_true",
    "size_MB_paper": "size_MB_paper",
}
# eval transform of tasks/classification (bench.data.datasets.build_transform): resize + centre crop
CLASSIFICATION_EVAL = dict(crop_pct=1.0, interpolation="bilinear")


def leaderboard(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """The ranked leaderboard of ``task`` from usable runs (see ``records.usable``)."""
    primary = PRIMARY[task]
    metrics = [primary, *[m for m in SECONDARY[task] if m in df]]
    runs = df[df["task"] == task]
    if runs.empty or primary not in runs:
        return pd.DataFrame(columns=["model", "img_size", primary])
    runs = runs.assign(_name=_names(runs))
    numeric = [c for c in [*metrics, "params_M", *EXTRA] if c in runs]
    runs = runs.assign(**{c: pd.to_numeric(runs[c], errors="coerce") for c in numeric})
    g = runs.groupby(["sweep", "_name"], sort=False)
    table = g[numeric].mean()
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
    if task == "classification":
        table = table.assign(**CLASSIFICATION_EVAL)
        cols += list(CLASSIFICATION_EVAL)
    cols += [EXTRA[c] for c in EXTRA if EXTRA[c] in table] + [f"{primary}_std", "runs", "sweep", "setting"]
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

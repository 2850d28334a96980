"""``model-index.yml`` in the OpenMMLab / Papers-with-Code metafile format, built from run records.

``Collections`` (one per backbone family, with its paper), ``Models`` (one per finished run that learned:
``Config``, ``Metadata`` with parameters, MACs and FLOPs = 2 x MACs, energy, bits, T; ``Results`` per
task / dataset / metric, box and mask AP on COCO's 0-100 scale as mmdet's metafiles; ``Weights`` where a
checkpoint exists). ``Config``: the filled mmengine config of a detection / segmentation run
(``mm_config.py``), ``config.json`` of a classification run, ``eval.json`` of an evaluated checkpoint.
``load_model_index`` reads a file back and checks that structure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from bench.errors import ConfigError
from bench.io import write_text_atomic

# family -> system name in paper_results.csv (paper title and arXiv id come from there)
FAMILY_SYSTEM = {
    "qsd": "QSD-Transformer",
    "sdt": "Spike-driven Transformer v1",
    "sdt_v2": "Meta-SpikeFormer (SDT v2)",
    "mobilevit": "MobileViT v1",
    "mobilevit_v2": "MobileViT v2",
    "mobile_former": "Mobile-Former",
    "efficientformer": "EfficientFormer v1",
    "efficientformer_v2": "EfficientFormer v2",
}
TASK_NAMES = {
    "classification": "Image Classification",
    "detection": "Object Detection",
    "segmentation": "Semantic Segmentation",
}
# run-table metric -> Papers-with-Code metric name
METRIC_NAMES = {
    "top1": "Top 1 Accuracy",
    "top5": "Top 5 Accuracy",
    "bbox_mAP": "box AP",
    "bbox_mAP_50": "AP50",
    "bbox_mAP_75": "AP75",
    "segm_mAP": "mask AP",
    "mIoU": "mIoU",
    "mAcc": "mAcc",
    "aAcc": "aAcc",
}
SCALE = {"bbox_mAP": 100.0, "bbox_mAP_50": 100.0, "bbox_mAP_75": 100.0, "segm_mAP": 100.0}
ARCHITECTURE = {"detection": "detector", "segmentation": "segmentor"}


def _config(run_dir: Path) -> Path:
    found = [run_dir / f for f in ("mm_config.py", "config.json", "eval.json") if (run_dir / f).exists()]
    return found[0] if found else run_dir / "config.json"


def _weights(run_dir: Path) -> Path | None:
    last = run_dir / "checkpoints" / "last.pt"  # prev.pt is the one before it (kept for a torn last.pt)
    if last.exists():
        return last
    ckpts = sorted((run_dir / "checkpoints").glob("*.pt*")) if (run_dir / "checkpoints").is_dir() else []
    if ckpts:
        return ckpts[-1]
    mm = [(int(p.stem.split("_")[1]), p) for p in run_dir.glob("mm/iter_*.pth") if p.stem[5:].isdigit()]
    return max(mm)[1] if mm else None  # mmengine's newest iter_<n>.pth


def _text(v: object) -> str:
    return "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def _num(v: object) -> float | int | None:
    v = pd.to_numeric(v, errors="coerce")
    if pd.isna(v):
        return None
    return int(v) if float(v).is_integer() else round(float(v), 6)


def _collection(family: str, published: pd.DataFrame | None) -> dict:
    system = FAMILY_SYSTEM.get(family, family)
    out: dict = dict(Name=system, Metadata={"Architecture": [family]})
    if published is not None:
        rows = published[published["system"] == system]
        if len(rows):
            out["Paper"] = dict(
                Title=str(rows["paper"].iloc[0]), URL=f"https://arxiv.org/abs/{rows['arxiv'].iloc[0]}"
            )
    return out


def model_index(runs: pd.DataFrame, published: pd.DataFrame | None = None) -> dict:
    """The metafile as a dict from usable runs (``records.usable``)."""
    families = sorted(runs["family"].astype(str).unique())
    models = []
    for r in runs.to_dict("records"):
        run_dir = Path(str(r["run_dir"]))
        metrics = {
            METRIC_NAMES[k]: _num(_num(r[k]) * SCALE.get(k, 1.0))
            for k in METRIC_NAMES
            if k in r and _num(r.get(k)) is not None
        }
        meta = {
            "Parameters": None if _num(r.get("params_M")) is None else int(round(r["params_M"] * 1e6)),
            "MACs (G)": _num(r.get("MACs_G")),
            "FLOPs (G)": None if _num(r.get("MACs_G")) is None else 2 * _num(r["MACs_G"]),
            "Energy (mJ)": _num(r.get("energy_mJ")),
            "Energy hw (mJ)": _num(r.get("energy_hw_mJ")),
            "Energy hw preset": r["energy_hw_hardware"]
            if isinstance(r.get("energy_hw_hardware"), str)
            else None,
            "SOPs (G)": _num(r.get("SOPs_G")),
            "Firing rate": _num(r.get("fr_mean")),
            "Weight bits": _num(r.get("bits_w")),
            "Timesteps": _num(r.get("T")),
            "Size (MB, true)": _num(r.get("size_MB")),
            "Size (MB, paper convention)": _num(r.get("size_MB_paper")),
            "Resolution": _num(r.get("resolution")),
            "Training Data": str(r.get("data")),
            "Epochs": _num(r.get("epochs")),
            "Setting": str(r.get("setting") or ""),
            "Seed": _num(r.get("seed")),
            "Architecture": _text(r.get(ARCHITECTURE.get(str(r["task"]), ""))),
        }
        entry = {
            "Name": f"{r['sweep']}/{r['run']}",
            "In Collection": FAMILY_SYSTEM.get(str(r["family"]), str(r["family"])),
            "Config": str(_config(run_dir)),
            "Metadata": {k: v for k, v in meta.items() if v not in (None, "")},
            "Results": [
                {
                    "Task": TASK_NAMES.get(str(r["task"]), str(r["task"])),
                    "Dataset": str(r.get("data")),
                    "Metrics": metrics,
                }
            ],
        }
        evaluated = _text(r.get("checkpoint")) if r.get("kind") == "eval" else ""
        weights = Path(evaluated) if evaluated else _weights(run_dir)
        if weights is not None:
            entry["Weights"] = str(weights)
        models.append(entry)
    return {"Collections": [_collection(f, published) for f in families], "Models": models}


def write_model_index(index: dict, path: str | Path) -> Path:
    """Write the metafile (atomically) and check it loads back."""
    path = write_text_atomic(path, yaml.safe_dump(index, sort_keys=False, allow_unicode=True))
    load_model_index(path)
    return path


def load_model_index(path: str | Path) -> dict:
    """Read a metafile and check its structure (one-line ConfigError naming the first problem)."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("Models"), list):
        raise ConfigError(f"{path}: a model index needs a 'Models' list")
    collections = {c.get("Name") for c in data.get("Collections") or []}
    names = set()
    for i, m in enumerate(data["Models"]):
        for key in ("Name", "In Collection", "Config", "Metadata", "Results"):
            if key not in m:
                raise ConfigError(f"{path}: Models[{i}] has no field {key!r}")
        if m["Name"] in names:
            raise ConfigError(f"{path}: Models[{i}].Name={m['Name']!r} is not unique")
        names.add(m["Name"])
        if m["In Collection"] not in collections:
            raise ConfigError(
                f"{path}: Models[{i}].In Collection={m['In Collection']!r} is not allowed; "
                f"allowed values: {', '.join(sorted(map(str, collections)))}"
            )
        for res in m["Results"]:
            if not {"Task", "Dataset", "Metrics"} <= set(res):
                raise ConfigError(f"{path}: Models[{i}].Results needs Task, Dataset and Metrics")
    return data

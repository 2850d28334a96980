"""Evaluate a model (spikebench or official checkpoint) on an ImageNet-style validation folder and compare
with the published row of ``paper_results.csv`` (leaderboard reproduction).

The record (``eval.json``, atomic) holds top-1/top-5, the checkpoint report (layout, tensors loaded and
dropped), the preprocessing, the efficiency measurement and, per metric, the paper value, the measured
value and their difference.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import TextIO

import torch
from torch import nn
from torchvision import transforms

from bench.data.datasets import ImageFolderDataset, build_transform, resolve_data
from bench.errors import DataError
from bench.images import IMAGENET_MEAN, IMAGENET_STD
from bench.io import write_json_atomic
from bench.measure.profile import profile_model
from bench.registry import create_model, model_entry
from tasks.classification.metrics import TopK
from tasks.classification.parallel import eval_loader
from tasks.record import environment, trim_measurement

# Our model -> (csv ``model``, csv ``variant``) of its published ImageNet-1K row (the official release's row).
PAPER_ROWS = {
    "sdt_8_384": ("Spiking Transformer-8-384", "8-384"),
    "sdt_6_512": ("Spiking Transformer-6-512", "6-512"),
    "sdt_8_512": ("Spiking Transformer-8-512", "8-512"),  # T = 1 and T = 4 rows: picked by the model's T
    "sdt_10_512": ("Spiking Transformer-10-512", "10-512"),
    "sdt_8_768": ("Spiking Transformer-8-768*", "8-768"),  # published at 288 px
    "sdtv2_8_512": ("Meta-SpikeFormer", "55M (8-512 config, T=4, +KD)"),
    "qsd_8_512": ("QSD-Transformer", "headline (W4 / binary spike / T=4)"),
    "mobilevit_xxs": ("MobileViT-XXS", "256x256"),
    "mobilevit_xs": ("MobileViT-XS", "256x256"),
    "mobilevit_s": ("MobileViT-S", "256x256"),
    **{
        f"mobilevitv2_{w}": (f"MobileViTv2-{int(w) / 100:.2f}", "256px, extra=None")
        for w in ("050", "075", "100", "125", "150", "175", "200")
    },
    "efficientformer_l1": ("EfficientFormer-L1", "224px, iPhone12 CoreML latency 1.6 ms"),
    "efficientformer_l3": ("EfficientFormer-L3", "224px, iPhone12 CoreML latency 3.0 ms"),
    "efficientformer_l7": ("EfficientFormer-L7", "224px, iPhone12 CoreML latency 7.0 ms"),
    "efficientformerv2_s0": ("EfficientFormerV2-S0", "450 epochs, iPhone12 0.9 ms"),
    "efficientformerv2_s1": ("EfficientFormerV2-S1", "450 epochs, iPhone12 1.1 ms"),
    "efficientformerv2_s2": ("EfficientFormerV2-S2", "450 epochs, iPhone12 1.6 ms"),
    "efficientformerv2_l": ("EfficientFormerV2-L", "450 epochs, iPhone12 2.7 ms"),
    "mobile_former_294m": ("Mobile-Former-294M", "iPhone13 latency 2.66 ms (iFormer measurement)"),
    "mobile_former_508m": ("Mobile-Former-508M", "iPhone13 latency 3.33 ms (iFormer measurement)"),
}
# Evaluation preprocessing of the official code: (crop_pct, mean, std). Resize the short side to
# img / crop_pct (bicubic), centre-crop img. SDT v1: conf/imagenet/*.yml (crop_pct 0.95); SDT v2 / QSD:
# util/datasets.py (224/256); timm models: their pretrained_cfg; Mobile-Former: the common 0.875.
PREPROCESS = {
    "sdt": (0.95, IMAGENET_MEAN, IMAGENET_STD),
    "sdt_v2": (224 / 256, IMAGENET_MEAN, IMAGENET_STD),
    "qsd": (224 / 256, IMAGENET_MEAN, IMAGENET_STD),
    "mobile_former": (0.875, IMAGENET_MEAN, IMAGENET_STD),
}


def default_paper_csv() -> Path:
    """``$SPIKEBENCH_PAPER_RESULTS``, else ``shared/reference/paper_results.csv`` beside the checkout (or
    beside its parent folder, for git worktrees kept in a sub-folder)."""
    env = os.environ.get("SPIKEBENCH_PAPER_RESULTS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    found = [p / "shared/reference/paper_results.csv" for p in (repo.parent, repo.parent.parent)]
    return next((p for p in found if p.is_file()), found[0])


def paper_rows(name: str, T: int | None, path: Path) -> list[dict]:
    """The published ImageNet-1K top-1/top-5 rows of ``name`` (empty when it has none)."""
    if name not in PAPER_ROWS:
        return []
    if not path.is_file():
        raise DataError(f"{path}: paper results file not found; give --paper-csv or SPIKEBENCH_PAPER_RESULTS")
    want_model, want_variant = PAPER_ROWS[name]
    with open(path, newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["model"] == want_model
            and r["variant"] == want_variant
            and r["dataset"] == "ImageNet-1K"
            and r["metric"] in ("top1", "top5")
        ]
    if len({r["timesteps"] for r in rows}) > 1:
        rows = [r for r in rows if r["timesteps"] == str(T)]
    return rows


def _eval_folder(data: str) -> Path:
    """An ImageNet-style validation folder (class folders) from a folder, a train/val root or generated:."""
    if data.startswith("generated:"):
        return resolve_data(data).root / "val"
    root = Path(data)
    if not root.is_dir():
        raise DataError(
            f"data={data!r}: folder not found; allowed: an ImageNet val folder or generated:<name>"
        )
    return root / "val" if (root / "val").is_dir() else root


def _preprocess(model: nn.Module, family: str, img_size: int) -> tuple[transforms.Compose, dict]:
    """The official evaluation transform for official weights; ours (``build_transform``) otherwise."""
    report = getattr(model, "checkpoint_report", None)
    if report is None or report["layout"] == "spikebench":
        info = dict(
            resize=img_size,
            crop=img_size,
            crop_pct=1.0,
            interpolation="bilinear",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            convention="spikebench training (bench.data.datasets.build_transform)",
        )
        return build_transform(img_size, train=False), info
    cfg = getattr(getattr(model, "net", None), "pretrained_cfg", None)
    if cfg:
        crop, mean, std = cfg["crop_pct"], tuple(cfg["mean"]), tuple(cfg["std"])
    else:
        crop, mean, std = PREPROCESS.get(family, (0.875, IMAGENET_MEAN, IMAGENET_STD))
    resize = int(img_size / crop)
    tf = transforms.Compose(
        [
            transforms.Resize(resize, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(img_size),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    info = dict(
        resize=resize,
        crop=img_size,
        crop_pct=round(crop, 4),
        interpolation="bicubic",
        mean=mean,
        std=std,
        convention=f"official evaluation of the {report['layout']} release",
    )
    return tf, info


@torch.no_grad()
def evaluate_checkpoint(
    name: str,
    checkpoint: str | None,
    data: str,
    out: str | Path | None = None,
    img_size: int | None = None,
    batch_size: int = 50,
    workers: int = 0,
    limit: int | None = None,
    measure: bool = True,
    measure_batches: int = 2,
    paper_csv: str | Path | None = None,
    overrides: dict | None = None,
) -> dict:
    """Evaluate ``name`` (loaded from ``checkpoint``) on ``data``; write ``<out>/eval.json``; return it."""
    entry = model_entry(name)
    model = create_model(name, checkpoint=checkpoint, **(overrides or {})).eval()
    img_size = img_size or entry.paper.get("img_size", 224)
    tf, info = _preprocess(model, entry.family, img_size)
    dataset = ImageFolderDataset(_eval_folder(data), tf)
    classes = getattr(model, "num_classes", None)
    num_classes = len(dataset.classes)
    if classes and num_classes > classes:
        raise DataError(f"{data}: {len(dataset.classes)} class folders, but {name} has {classes} outputs")
    if limit:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    loader = eval_loader(dataset, batch_size, workers)
    counts, first = TopK(), []
    for x, y in loader:
        counts.update(model(x), y)
        if len(first) < measure_batches:
            first.append(x)
    metrics, n = counts.result(), counts.n
    efficiency = None
    if measure:
        eff = profile_model(model, first, latency_repeats=3)
        efficiency = trim_measurement(eff)
    csv_path = Path(paper_csv) if paper_csv else default_paper_csv()
    rows = paper_rows(name, getattr(model, "T", None), csv_path)
    comparison = [
        dict(
            metric=r["metric"],
            paper=float(r["value"]),
            measured=round(metrics[r["metric"]], 3),
            delta=round(metrics[r["metric"]] - float(r["value"]), 3),
            paper_row=f"{r['model']} / {r['variant']} ({r['source_table']})",
        )
        for r in rows
    ]
    record = dict(
        status="ok",
        task="classification",
        kind="eval",
        model=name,
        checkpoint=getattr(model, "checkpoint_report", None),
        data=str(_eval_folder(data)),
        images=n,
        classes=num_classes,
        preprocess=info,
        metrics=metrics,
        paper=dict(csv=str(csv_path), rows=comparison) if rows else None,
        efficiency=efficiency,
        environment=environment(0, torch.device("cpu")),
    )
    if out is not None:
        write_json_atomic(Path(out) / "eval.json", record)
    return record


def print_comparison(record: dict, file: TextIO | None = None) -> None:
    """Published vs measured, labelled, one line per metric (to stdout by default)."""
    file = file or sys.stdout
    print(
        f"{record['model']}: {record['images']} images, top1 {record['metrics']['top1']:.2f} %, "
        f"top5 {record['metrics']['top5']:.2f} % (measured)",
        file=file,
    )
    if not record["paper"]:
        print(f"no published ImageNet-1K row for {record['model']} (see PAPER_ROWS)", file=file)
        return
    print(f"{'metric':<6} {'paper':>8} {'measured':>9} {'Δ':>8}  paper row", file=file)
    for r in record["paper"]["rows"]:
        print(
            f"{r['metric']:<6} {r['paper']:>8.2f} {r['measured']:>9.2f} {r['delta']:>+8.2f}",
            f" {r['paper_row']}",
            file=file,
        )


__all__ = ["PAPER_ROWS", "evaluate_checkpoint", "paper_rows", "print_comparison"]

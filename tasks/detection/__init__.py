"""COCO detection: RetinaNet and ViTDet (Mask R-CNN, RetinaNet) around any registered backbone."""

from __future__ import annotations

from pathlib import Path

from tasks.api import TaskDef
from tasks.detection.config import DetConfig, DetDistillConfig, config_from_dict

BOX_METRICS = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l")
MASK_METRICS = tuple(k.replace("bbox", "segm") for k in BOX_METRICS)


def run_dir_for(cfg: DetConfig, root: str | Path = "runs/detection") -> Path:
    """Default run directory: ``<root>/<detector>-<model>-<digest>``."""
    return Path(root) / f"{cfg.detector}-{cfg.model}-{cfg.digest()}"


def train(cfg: DetConfig, out: str | Path | None = None, progress: bool = False) -> dict:
    """Run (or resume, or return the ok record of) the detection run of ``cfg``; returns ``result.json``."""
    from tasks.detection.run import train_detection

    return train_detection(cfg, Path(out) if out else run_dir_for(cfg), progress=progress)


def run(config: dict, out: Path, progress: bool = False) -> dict:
    """Run (or resume) one detection point into ``out``."""
    return train(config_from_dict(config), out=out, progress=progress)


CONFIG = (DetConfig, DetDistillConfig, config_from_dict)
METRICS = BOX_METRICS + MASK_METRICS
# batch_size is per process (mmengine)
TASK = TaskDef.of("detection", CONFIG, run, metrics=METRICS, batch="per_gpu", openmmlab=True)

__all__ = [
    "BOX_METRICS",
    "MASK_METRICS",
    "TASK",
    "DetConfig",
    "DetDistillConfig",
    "config_from_dict",
    "train",
]

"""ADE20K semantic segmentation (mmseg 1.2): Semantic FPN and UPerNet around any registered backbone."""

from pathlib import Path

from tasks.api import TaskDef
from tasks.segmentation.config import DistillConfig, SegConfig, config_from_dict


def run(config: dict, out: Path, progress: bool = False) -> dict:
    """Run (or resume) one segmentation point into ``out``."""
    from tasks.segmentation.train import train

    return train(config_from_dict(config), out=out, progress=progress)


def build_untrained(config: dict, device: str = "meta"):
    """The segmentor of ``config`` built on ``device`` without data or training (``untrained.py``)."""
    from tasks.segmentation.untrained import build_untrained as build

    return build(config, device)


CONFIG = (SegConfig, DistillConfig, config_from_dict)
METRICS = ("mIoU", "aAcc", "mAcc")
DENSE = dict(batch="per_gpu", openmmlab=True)  # mmengine: batch_size is per process
TASK = TaskDef.of("segmentation", CONFIG, run, metrics=METRICS, build_untrained=build_untrained, **DENSE)

__all__ = ["TASK", "DistillConfig", "SegConfig", "config_from_dict"]

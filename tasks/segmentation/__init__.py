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


TASK = TaskDef(
    name="segmentation",
    config_cls=SegConfig,
    distill_cls=DistillConfig,
    config_from_dict=config_from_dict,
    run=run,
    metrics=("mIoU", "aAcc", "mAcc"),
    batch="per_gpu",  # mmengine: batch_size is per process
    build_untrained=build_untrained,
    openmmlab=True,
)

__all__ = ["TASK", "DistillConfig", "SegConfig", "config_from_dict"]

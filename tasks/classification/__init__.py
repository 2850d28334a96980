"""Image classification: training, evaluation and distillation of any registered backbone."""

from pathlib import Path

from tasks.api import TaskDef
from tasks.classification.config import DistillConfig, TrainConfig, config_from_dict
from tasks.classification.remeasure import reprofile
from tasks.classification.train import train


def run(config: dict, out: Path, progress: bool = False) -> dict:
    """Run (or resume) one classification point into ``out``."""
    return train(config_from_dict(config), out=out, progress=progress)


def paper_rows() -> dict:
    """Registry model -> (paper_results.csv model, variant) of its published ImageNet-1K row."""
    from tasks.classification.eval import PAPER_ROWS

    return dict(PAPER_ROWS)


CONFIG = (TrainConfig, DistillConfig, config_from_dict)
METRICS = ("top1", "top5")
TASK = TaskDef.of("classification", CONFIG, run, metrics=METRICS, paper_rows=paper_rows, reprofile=reprofile)

__all__ = ["TASK", "DistillConfig", "TrainConfig", "config_from_dict", "train"]

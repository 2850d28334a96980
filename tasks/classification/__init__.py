"""Image classification: training, evaluation and distillation of any registered backbone."""

from tasks.classification.config import DistillConfig, TrainConfig, config_from_dict
from tasks.classification.train import train

__all__ = ["DistillConfig", "TrainConfig", "config_from_dict", "train"]

"""Image classification: training, evaluation and distillation of any registered backbone."""

from tasks.classification.train import DistillConfig, TrainConfig, config_from_dict, train

__all__ = ["DistillConfig", "TrainConfig", "config_from_dict", "train"]

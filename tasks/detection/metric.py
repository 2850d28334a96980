"""mmdet's CocoMetric (pycocotools) with the record's metric names (``bbox_mAP``, not ``coco/bbox_mAP``)."""

from __future__ import annotations

from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS

SUFFIXES = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")


@METRICS.register_module(force=True)
class SpikebenchCocoMetric(CocoMetric):
    """The real COCO evaluation; the ``coco/`` prefix of the metric names is dropped, and a detector that
    detects nothing (mmdet then returns no metrics) scores 0 AP."""

    def evaluate(self, size: int) -> dict:
        scores = {k.split("/", 1)[-1]: v for k, v in super().evaluate(size).items()}
        for kind in self.metrics:
            for suffix in SUFFIXES:
                scores.setdefault(f"{kind}_{suffix}", 0.0)
        return scores

"""mmseg's IoUMetric, keeping the per-class IoU of the last evaluation and the chance level for the record."""

from __future__ import annotations

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


def constant_miou(area_label: np.ndarray) -> float:
    """mIoU (%) of the best constant prediction (the most frequent class everywhere), as IoUMetric averages:
    that class has IoU = its pixel share, every other class present in the labels IoU 0."""
    present = area_label > 0
    if not present.any():
        return float("nan")
    return float(area_label.max() / area_label.sum() / present.sum() * 100)


@METRICS.register_module(name="SpikebenchIoUMetric", force=True)
class SpikebenchIoUMetric(IoUMetric):
    """``IoUMetric`` (mIoU, aAcc, mAcc) that also keeps ``per_class_iou`` (class name -> IoU in percent, for
    the classes present in the labels or the predictions; others have no IoU: union 0) and reports
    ``constant_mIoU``, the chance level a segmentor that learned nothing reaches (``tasks.health``)."""

    def compute_metrics(self, results: list) -> dict[str, float]:
        inter, union, area_label = (sum(r[i] for r in results) for i in (0, 1, 3))
        iou = (inter / union).cpu().numpy() * 100
        classes = self.dataset_meta["classes"]
        self.per_class_iou = {
            c: round(float(v), 2) for c, v in zip(classes, iou, strict=True) if not np.isnan(v)
        }
        metrics = super().compute_metrics(results)
        metrics["constant_mIoU"] = round(constant_miou(area_label.cpu().numpy().astype(np.float64)), 2)
        return metrics

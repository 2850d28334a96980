"""mmseg's IoUMetric, keeping the per-class IoU of the last evaluation for the run record."""

from __future__ import annotations

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module(name="SpikebenchIoUMetric", force=True)
class SpikebenchIoUMetric(IoUMetric):
    """``IoUMetric`` (mIoU, aAcc, mAcc) that also keeps ``per_class_iou``: class name -> IoU in percent,
    for the classes present in the labels or the predictions (others have no IoU: union 0)."""

    def compute_metrics(self, results: list) -> dict[str, float]:
        inter, union = (sum(r[i] for r in results) for i in (0, 1))
        iou = (inter / union).cpu().numpy() * 100
        classes = self.dataset_meta["classes"]
        self.per_class_iou = {
            c: round(float(v), 2) for c, v in zip(classes, iou, strict=True) if not np.isnan(v)
        }
        return super().compute_metrics(results)

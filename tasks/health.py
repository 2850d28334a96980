"""Did a run learn? Flags for runs whose numbers must not be read as results.

- **chance**: classification top-1 not above random guessing — at or below the 99th percentile of the
  accuracy of uniform guessing over ``classes`` on ``eval_samples`` images (a one-sided exact binomial test
  at alpha = 0.01); without the image count, top-1 <= chance + 5 points.
- **chance** for dense tasks: segmentation mIoU not above ``constant_mIoU`` (the best constant prediction,
  reported by the metric); detection box AP of 0 (not one box matched at any IoU threshold).
- **silent**: a spiking layer whose firing rate is below ``SILENT_RATE`` (fewer than one spike per 10 000
  neuron-steps on the measured images): the information path through it is cut.
"""

from __future__ import annotations

import math

SILENT_RATE = 1e-4
CHANCE_ALPHA = 0.01
CHANCE_MARGIN_PP = 5.0  # points above chance when the evaluation size is unknown


def chance_threshold(classes: int, eval_samples: int | None) -> float:
    """Top-1 (%) up to which a run is not distinguishable from guessing among ``classes``."""
    p = 1.0 / classes
    if not eval_samples:
        return 100.0 * p + CHANCE_MARGIN_PP
    n = int(eval_samples)
    cdf = 0.0
    for k in range(n + 1):  # smallest k with P(X <= k) >= 1 - alpha, X ~ Binomial(n, p)
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if cdf >= 1 - CHANCE_ALPHA:
            return 100.0 * k / n
    return 100.0


def silent_layers(firing_rates: object) -> list[str]:
    """Names of the spiking layers firing below ``SILENT_RATE`` (``firing_rates``: the efficiency record's
    per-layer table; anything else, e.g. "not applicable" for ANNs, has none)."""
    if not isinstance(firing_rates, list):
        return []
    return [r["neuron"] for r in firing_rates if isinstance(r, dict) and r.get("fr", 1.0) < SILENT_RATE]


def learning_flags(result: dict, firing_rates: object = None) -> list[str]:
    """One short line per reason the run did not learn (empty: nothing wrong was seen)."""
    flags = []
    top1, classes = result.get("top1"), result.get("classes")
    if isinstance(top1, (int, float)) and isinstance(classes, int) and classes > 1:
        limit = chance_threshold(classes, result.get("eval_samples"))
        if top1 <= limit:
            flags.append(
                f"chance: top-1 {top1:.1f} % <= {limit:.1f} % (guessing among {classes} classes, "
                f"one-sided binomial test, alpha {CHANCE_ALPHA})"
            )
    miou, floor = result.get("mIoU"), result.get("constant_mIoU")
    if isinstance(miou, (int, float)) and isinstance(floor, (int, float)) and miou <= floor:
        flags.append(f"chance: mIoU {miou:.2f} <= {floor:.2f} (the most frequent class predicted everywhere)")
    box = result.get("bbox_mAP")
    if result.get("task") == "detection" and isinstance(box, (int, float)) and box <= 0:
        flags.append("chance: box AP 0 (no box matched at any IoU threshold)")
    silent = silent_layers(firing_rates)
    if silent:
        n = len(firing_rates) if isinstance(firing_rates, list) else len(silent)
        flags.append(
            f"silent: {len(silent)} of {n} spiking layers fire < {SILENT_RATE:g} "
            f"({', '.join(silent[:3])}{', ...' if len(silent) > 3 else ''})"
        )
    return flags

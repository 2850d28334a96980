"""Classification metrics shared by training and checkpoint evaluation."""

from __future__ import annotations

from torch import Tensor


def correct(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many samples have their target among the top k (k capped at the number of classes)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == target[:, None]
    return [int(hits[:, : min(k, logits.shape[1])].any(1).sum()) for k in ks]

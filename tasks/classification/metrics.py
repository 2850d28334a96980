"""Classification metrics shared by training and checkpoint evaluation."""

from __future__ import annotations

from torch import Tensor


def correct(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many samples have their target among the top k (k capped at the number of classes)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == target[:, None]
    return [int(hits[:, : min(k, logits.shape[1])].any(1).sum()) for k in ks]


class TopK:
    """Top-1 and top-5 counts accumulated over batches; ``result()`` gives them in percent."""

    def __init__(self) -> None:
        self.n = self.top1 = self.top5 = 0

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch."""
        c1, c5 = correct(logits, target)
        self.n, self.top1, self.top5 = self.n + len(target), self.top1 + c1, self.top5 + c5

    def result(self) -> dict[str, float]:
        """``top1`` and ``top5`` in percent of the samples counted."""
        return dict(top1=100.0 * self.top1 / self.n, top5=100.0 * self.top5 / self.n)

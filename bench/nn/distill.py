"""Distillation losses: logit KD, quantized feature distillation (QFD) and fine-grained distillation (FGD).

- ``kd_loss``: Hinton et al. soft targets, KL(softmax(t / tau) || softmax(s / tau)) * tau^2.
- ``QFDLoss`` (Zhu et al., AAAI 2023): the teacher's pooled output feature is quantized to ``b_t`` bits by
  the uniform quantizer (bounds calibrated on the first batch, then fixed) and the student's feature is
  regressed onto it with MSE. Feature sizes must match, or ``projection=True`` adds a linear map.
- ``fgd_loss`` (QSD-Transformer's FGD; the release has no code, so this is our reading): for each aligned
  attention layer and each of q, k, v, the token-to-token cosine-similarity matrices (B x N x N) of student
  and teacher are matched with MSE, averaged over q, k, v and layers. Similarities compare structure, not
  values, so they are independent of channel width and of spike versus real scale; the teacher's maps are
  resized to the student's token grid when they differ, and layers are paired evenly by depth.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.nn.attention import SpikingAttention
from bench.nn.quant import UniformQuantizer


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, tau: float = 4.0) -> Tensor:
    """Soft-target KL divergence at temperature ``tau``, scaled by tau^2."""
    return (
        F.kl_div(
            F.log_softmax(student_logits / tau, -1),
            F.softmax(teacher_logits / tau, -1),
            reduction="batchmean",
        )
        * tau**2
    )


class QFDLoss(nn.Module):
    """MSE between the student's feature and the teacher's feature quantized to ``teacher_bits``."""

    def __init__(
        self, student_dim: int, teacher_dim: int, teacher_bits: int = 8, projection: bool = False
    ) -> None:
        super().__init__()
        if student_dim != teacher_dim and not projection:
            raise ConfigError(
                f"distill: teacher feature size {teacher_dim} does not match the student's "
                f"{student_dim}; allowed: equal sizes, or distill.projection=true"
            )
        self.proj = nn.Linear(student_dim, teacher_dim) if projection else nn.Identity()
        self.quantizer = UniformQuantizer(teacher_bits, learnable=False)

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.quantizer(teacher_feat)
        pred = self.proj(student_feat)
        check_same_shape(pred, target, "distill")
        return F.mse_loss(pred, target)


def check_same_shape(student: Tensor, teacher: Tensor, what: str) -> None:
    """Refuse (one line naming both shapes) a student/teacher pair that an MSE would broadcast."""
    if student.shape != teacher.shape:
        raise ConfigError(
            f"{what}: student map {list(student.shape)} and teacher map {list(teacher.shape)} differ; "
            "allowed: equal shapes (pair maps of equal stride and width, or distill.projection=true)"
        )


@contextmanager
def capture_qkv(model: nn.Module):
    """Collect (q, k, v) ``[T, B, C, H, W]`` of every ``SpikingAttention`` in call order."""
    store: list[tuple[Tensor, Tensor, Tensor]] = []
    layers = [m for m in model.modules() if isinstance(m, SpikingAttention)]
    for m in layers:
        m.capture = store
    try:
        yield store
    finally:
        for m in layers:
            m.capture = None


def _similarity(x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Token cosine-similarity ``[B, N, N]`` of a ``[T, B, C, H, W]`` map (time-averaged)."""
    x = x.mean(0)
    if size is not None and tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    tokens = F.normalize(x.flatten(2).transpose(1, 2), dim=-1)
    return tokens @ tokens.transpose(1, 2)


def fgd_loss(student: list[tuple[Tensor, ...]], teacher: list[tuple[Tensor, ...]]) -> Tensor:
    """Mean over layers and q/k/v of MSE between student and teacher token-similarity matrices."""
    if not student or not teacher:
        raise ConfigError(
            "distill=fgd needs attention layers in both student and teacher (spikebench spiking backbones)"
        )
    ls, lt = len(student), len(teacher)
    losses = []
    for i, s_qkv in enumerate(student):
        t_qkv = teacher[round(i * (lt - 1) / max(ls - 1, 1))]
        for s, t in zip(s_qkv, t_qkv, strict=True):
            size = tuple(s.shape[-2:])
            losses.append(F.mse_loss(_similarity(s), _similarity(t.detach(), size)))
    return torch.stack(losses).mean()

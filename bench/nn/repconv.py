"""Re-parameterisable convolutions of the Meta-SpikeFormer / QSD macro, and their fusion for inference.

``RepConv`` = 1x1 conv -> BN (padding filled with the BN's zero-input value) -> depthwise 3x3 -> 1x1 conv
-> BN (SDT-v2 ``RepConv``). Every piece is linear at inference, so ``fuse()`` folds it into one 3x3 conv
whose input is the spike tensor; in the unfused chain the depthwise and second 1x1 conv see real values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.nn.neurons import Spikes
from bench.nn.quant import QConv2d


def bn_affine(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Per-channel (scale, shift) of a BatchNorm in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class BNPad(nn.Module):
    """BatchNorm, then pad by ``pad`` pixels with the value the BN gives a zero input."""

    def __init__(self, channels: int, pad: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(x)
        if self.pad == 0:
            return out
        fill = self.bn.bias - self.bn.running_mean * self.bn.weight / torch.sqrt(
            self.bn.running_var + self.bn.eps
        )
        fill = fill.detach().view(1, -1, 1, 1)
        p = self.pad
        padded = F.pad(out, [p] * 4)
        padded[..., :p, :] = fill
        padded[..., -p:, :] = fill
        padded[..., :, :p] = fill
        padded[..., :, -p:] = fill
        return padded


class RepConv(nn.Module):
    """1x1 -> BN(pad) -> DW 3x3 -> 1x1 -> BN, every conv at ``bits``; ``fuse()`` gives one 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, bits: int = 32) -> None:
        super().__init__()
        self.conv1 = QConv2d(in_channels, in_channels, 1, bias=False, bits=bits)
        self.bn1 = BNPad(in_channels, 1)
        self.dw = QConv2d(in_channels, in_channels, 3, padding=0, groups=in_channels, bias=False, bits=bits)
        self.conv2 = QConv2d(in_channels, out_channels, 1, bias=False, bits=bits)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.fused: QConv2d | None = None

    def forward(self, x: Tensor | Spikes) -> Tensor:
        if self.fused is not None:
            return self.fused(x)
        return self.bn2(self.conv2(self.dw(self.bn1(self.conv1(x)))))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the chain (quantized weights, BN running statistics) into one 3x3 conv with bias."""
        w1 = self.conv1.quantized_weight()[:, :, 0, 0]  # [M, I]
        wd = self.dw.quantized_weight()[:, 0]  # [M, 3, 3]
        w2 = self.conv2.quantized_weight()[:, :, 0, 0]  # [O, M]
        a1, c1 = bn_affine(self.bn1.bn)
        a2, c2 = bn_affine(self.bn2)
        kernel = torch.einsum("om,mxy,mi->oixy", w2, wd * a1.view(-1, 1, 1), w1) * a2.view(-1, 1, 1, 1)
        bias = a2 * (w2 @ (c1 * wd.sum((1, 2)))) + c2
        fused = QConv2d(w1.shape[1], w2.shape[0], 3, padding=1, bias=True).to(kernel)
        fused.weight.copy_(kernel)
        fused.bias.copy_(bias)
        self.fused = fused

    def unfuse(self) -> None:
        """Go back to the trainable chain."""
        self.fused = None

"""Blocks shared by the spiking transformers: conv MLP and the attention + MLP transformer block."""

from __future__ import annotations

from torch import Tensor, nn

from bench.nn.attention import SpikingAttention
from bench.nn.neurons import Spikes
from bench.nn.quant import QConv2d
from bench.nn.shortcut import LayerScale, Residual


def time_conv(conv: nn.Module, bn: nn.Module, s: Tensor | Spikes) -> Tensor:
    """BN(conv(x)) applied to every time step of ``[T, B, C, H, W]``."""
    t, b = s.shape[:2]
    y = bn(conv(s.flatten(0, 1)))
    return y.reshape(t, b, *y.shape[1:])


class ConvMLP(nn.Module):
    """Spikes -> 1x1 conv (C -> rC) -> BN -> SN -> 1x1 conv (rC -> C) -> BN (SDT ``MS_MLP_Conv``)."""

    def __init__(self, dim: int, ratio: float, neuron: nn.Module, bits: int = 32) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = QConv2d(dim, hidden, 1, bias=True, bits=bits)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.neuron = neuron
        self.fc2 = QConv2d(hidden, dim, 1, bias=True, bits=bits)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, s: Tensor | Spikes) -> Tensor:
        return time_conv(self.fc2, self.bn2, self.neuron(time_conv(self.fc1, self.bn1, s)))


class TransformerBlock(nn.Module):
    """Attention residual then MLP residual, each with the chosen shortcut (and a layer scale, not on SEW)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        opts,
        proj: str,
        scale: float,
        layer_scale: float | None = None,
    ) -> None:
        super().__init__()
        attn = SpikingAttention(
            dim,
            heads,
            opts.attention,
            opts.neuron,
            opts.levels,
            opts.bits,
            proj,
            scale,
            opts.rectify,
            decay_input=opts.decay_input,
        )
        mlp = ConvMLP(dim, mlp_ratio, opts.make_neuron(), opts.bits)
        # A SEW branch ends in its neuron: a layer scale (1e-6) in front of it would keep it silent, so SEW
        # residuals carry none (as SEW-ResNet and Spikformer); MS and vanilla scale a membrane update.
        if opts.shortcut == "sew":
            layer_scale = None
        ls = (lambda: LayerScale(dim, layer_scale)) if layer_scale is not None else (lambda: None)
        self.attn = Residual(attn, opts.shortcut, opts.make_neuron(), ls())
        self.mlp = Residual(mlp, opts.shortcut, opts.make_neuron(), ls())

    def forward(self, x: Tensor | Spikes) -> Tensor | Spikes:
        return self.mlp(self.attn(x))

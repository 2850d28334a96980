"""Residual (shortcut) variants of spiking blocks, and the stage transitions that go with them.

A residual wraps a branch that maps spikes to a membrane-potential update:
- ``ms`` (membrane shortcut, SDT): the state is the membrane potential; ``u + f(SN(u))``. Every tensor
  entering a synaptic layer is a spike.
- ``sew`` (spike-element-wise ADD, SEW-ResNet / Spikformer): the state is spikes; ``s + SN(f(s))``,
  which is no longer binary (values 0..2 and up).
- ``vanilla``: the state is spikes; ``SN(f(s) + s)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.errors import check_choice
from bench.nn.neurons import Spikes, as_tensor

SHORTCUTS = ("ms", "sew", "vanilla")


class LayerScale(nn.Module):
    """Learnable per-channel scale of a branch output ``[T, B, C, ...]`` (QSD init 1e-6)."""

    def __init__(self, channels: int, init: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma.view(1, 1, -1, *([1] * (x.dim() - 3)))


class Residual(nn.Module):
    """``branch`` (spikes -> membrane update) with a shortcut of kind ``ms``, ``sew`` or ``vanilla``."""

    def __init__(
        self, branch: nn.Module, shortcut: str, neuron: nn.Module, scale: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.shortcut = check_choice("shortcut", shortcut, SHORTCUTS)
        self.branch = branch
        self.neuron = neuron
        self.scale = scale if scale is not None else nn.Identity()

    def forward(self, x: Tensor | Spikes) -> Tensor | Spikes:
        if self.shortcut == "ms":
            return x + self.scale(self.branch(self.neuron(x)))
        if self.shortcut == "sew":
            return self.neuron(self.scale(self.branch(x))) + x
        return self.neuron(self.scale(self.branch(x)) + as_tensor(x))


class Transition(nn.Module):
    """Conv + BN between stages.

    MS: ``BN(conv(SN(u)))`` (no neuron on pixels); SEW/vanilla: ``SN(BN(conv(s)))``.

    The first transition sees the image ``[B, C, H, W]``; it is computed once and repeated over T (direct
    coding: the same image at every step gives the same conv output).
    """

    def __init__(
        self, conv: nn.Module, bn: nn.Module, shortcut: str, neuron: nn.Module, first: bool = False
    ) -> None:
        super().__init__()
        self.shortcut = check_choice("shortcut", shortcut, SHORTCUTS)
        self.first = first
        self.conv = conv
        self.bn = bn
        self.neuron = neuron if (shortcut != "ms" or not first) else None

    def forward(self, x: Tensor | Spikes, T: int | None = None) -> Tensor | Spikes:
        if self.first:
            y = self.bn(self.conv(x))
            u = y.unsqueeze(0).expand(T, *y.shape)
            return u if self.shortcut == "ms" else self.neuron(u)
        if self.shortcut == "ms":
            x = self.neuron(x)
        t, b = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))
        y = y.reshape(t, b, *y.shape[1:])
        return y if self.shortcut == "ms" else self.neuron(y)

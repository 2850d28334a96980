"""``Spikes``: binary spikes over D virtual time steps, the inference-time form of IE-LIF's integer levels,
and the helpers model code uses to treat a spike carrier and a tensor alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Spikes:
    """Binary spikes over D virtual time steps: ``planes[d]`` in {0, 1}; each spike is worth ``value``.

    Reshape-like methods act on the logical shape (``planes.shape[1:]``), so model code can treat it like
    the tensor it stands for. ``to_tensor()`` accumulates the planes (additions only).
    """

    planes: Tensor
    value: float

    @property
    def shape(self) -> torch.Size:
        return self.planes.shape[1:]

    def _dim(self, d: int) -> int:
        return d + 1 if d >= 0 else d

    def flatten(self, start: int = 0, end: int = -1) -> Spikes:
        return Spikes(self.planes.flatten(self._dim(start), self._dim(end)), self.value)

    def reshape(self, *shape: int) -> Spikes:
        return Spikes(self.planes.reshape(self.planes.shape[0], *shape), self.value)

    def transpose(self, a: int, b: int) -> Spikes:
        return Spikes(self.planes.transpose(self._dim(a), self._dim(b)), self.value)

    def permute(self, *dims: int) -> Spikes:
        return Spikes(self.planes.permute(0, *(self._dim(d) for d in dims)), self.value)

    def contiguous(self) -> Spikes:
        return Spikes(self.planes.contiguous(), self.value)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Spikes:
        """Apply a per-sample op that commutes with thresholding (max-pool, padding) to every plane."""
        d = self.planes.shape[0]
        out = fn(self.planes.flatten(0, 1))
        return Spikes(out.reshape(d, self.planes.shape[1], *out.shape[1:]), self.value)

    def to_tensor(self) -> Tensor:
        return self.planes.sum(0) * self.value

    def __add__(self, other: object) -> Tensor:
        return self.to_tensor() + as_tensor(other)

    __radd__ = __add__


def as_tensor(x: Tensor | Spikes) -> Tensor:
    """The value a spike carrier stands for (a Tensor passes through)."""
    return x.to_tensor() if isinstance(x, Spikes) else x


def spike_mul(a: Tensor | Spikes, b: Tensor | Spikes) -> Tensor | Spikes:
    """Element-wise product; two spike carriers give the AND of every pair of planes (still binary)."""
    if isinstance(a, Spikes) and isinstance(b, Spikes):
        planes = a.planes.unsqueeze(1) * b.planes.unsqueeze(0)
        return Spikes(planes.flatten(0, 1), a.value * b.value)
    if isinstance(a, Spikes):
        return Spikes(a.planes * b, a.value)
    if isinstance(b, Spikes):
        return Spikes(b.planes * a, b.value)
    return a * b


def spike_map(fn: Callable[[Tensor], Tensor], x: Tensor | Spikes) -> Tensor | Spikes:
    """Apply ``fn`` to a tensor, or to every virtual-step plane of ``Spikes``."""
    return x.map(fn) if isinstance(x, Spikes) else fn(x)

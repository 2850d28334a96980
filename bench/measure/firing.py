"""Firing rates of every spiking neuron, measured with forward hooks.

Convention: the firing rate of a neuron layer at step t is the mean spike count of its output over all
elements and all measured samples (weighted by the true number of samples, never a fixed divisor); an
IE-LIF level k counts as k spikes, so the rate of multi-bit neurons can exceed 1. The non-zero rate is the
share of elements with at least one spike. The layer's rate is the mean over its T steps. Backbones reset
neuron state at every forward, so batches do not leak into each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from bench.nn.neurons import IELIF, BaseNeuron, Spikes


def neuron_counts(neuron: BaseNeuron, out: Tensor | Spikes) -> Tensor:
    """Spike counts ``[T, ...]`` of a neuron's output (binary, multi-bit values, or ``Spikes``)."""
    if isinstance(out, Spikes):
        return out.planes.sum(0)
    if isinstance(neuron, IELIF):
        return torch.round(out / neuron.spike_value)
    return out


@dataclass
class _Rate:
    count: list[float] = field(default_factory=list)
    nonzero: list[float] = field(default_factory=list)
    elems: list[float] = field(default_factory=list)


class FiringRateMonitor:
    """Context manager accumulating per-neuron, per-step spike counts over the batches run inside it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.rates: dict[str, _Rate] = {}
        self._handles: list = []

    @property
    def applicable(self) -> bool:
        """False for networks without spiking neurons (ANNs): their rates are not applicable, not zero."""
        return any(isinstance(m, BaseNeuron) for m in self.model.modules())

    def __enter__(self) -> FiringRateMonitor:
        for name, m in self.model.named_modules():
            if isinstance(m, BaseNeuron):
                self.rates[name] = _Rate()
                self._handles.append(m.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):
        @torch.no_grad()
        def hook(module: BaseNeuron, inputs: tuple, out: Tensor | Spikes) -> None:
            c = neuron_counts(module, out).float()
            r = self.rates[name]
            steps = c.shape[0]
            while len(r.count) < steps:
                r.count.append(0.0)
                r.nonzero.append(0.0)
                r.elems.append(0.0)
            flat = c.reshape(steps, -1)
            for t in range(steps):
                r.count[t] += float(flat[t].sum())
                r.nonzero[t] += float((flat[t] > 0).sum())
                r.elems[t] += flat.shape[1]

        return hook

    def table(self) -> list[dict]:
        """One row per neuron layer: rate per step, mean rate, non-zero rate, elements per step."""
        rows = []
        for name, r in self.rates.items():
            if not r.elems:
                continue
            per_t = [c / e for c, e in zip(r.count, r.elems, strict=True)]
            nz = [z / e for z, e in zip(r.nonzero, r.elems, strict=True)]
            rows.append(
                dict(
                    neuron=name,
                    fr=sum(per_t) / len(per_t),
                    nonzero=sum(nz) / len(nz),
                    fr_per_t=per_t,
                    elements=r.elems[0],
                )
            )
        return rows

    def mean_rate(self) -> float | None:
        """All spikes over all neuron-steps (None when not applicable)."""
        total = sum(sum(r.elems) for r in self.rates.values())
        if not self.applicable or total == 0:
            return None
        return sum(sum(r.count) for r in self.rates.values()) / total

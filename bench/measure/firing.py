"""Firing rates of every spiking neuron, measured with forward hooks.

Convention: the firing rate of a neuron layer at step t is the mean spike count of its output over all
elements and all measured samples (weighted by the true number of samples, never a fixed divisor); an
IE-LIF level k counts as k spikes, so the rate of multi-bit neurons can exceed 1. The non-zero rate is the
share of elements with at least one spike. The layer's rate is the mean over its T steps. Backbones reset
neuron state at every forward, so batches do not leak into each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.measure.hooks import HookSet
from bench.nn.neurons import IELIF, BaseNeuron, Spikes


def _per_step(neuron: BaseNeuron, out: Tensor | Spikes) -> tuple[Tensor, Tensor, int]:
    """Per-step spike counts and non-zero counts ``[T]``, and elements per step."""
    if isinstance(out, Spikes):
        planes = out.planes.flatten(2)  # [D, T, N]; spikes are front-loaded, so plane 0 marks k > 0
        return planes.sum((0, 2)), planes[0].sum(1), planes.shape[2]
    flat = out.flatten(1)
    if isinstance(neuron, IELIF):
        return flat.sum(1) / neuron.spike_value, torch.count_nonzero(flat, dim=1), flat.shape[1]
    counts = flat.sum(1)  # binary: the non-zero count is the spike count
    return counts, counts, flat.shape[1]


@dataclass
class _Rate:
    count: Tensor | None = None
    nonzero: Tensor | None = None
    elems: int = 0
    levels: int = 1  # IE-LIF D (virtual steps per step); 1 for binary neurons


class FiringRateMonitor(HookSet):
    """Context manager accumulating per-neuron, per-step spike counts over the batches run inside it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rates: dict[str, _Rate] = {}

    @property
    def applicable(self) -> bool:
        """False for networks without spiking neurons (ANNs): their rates are not applicable, not zero."""
        return any(isinstance(m, BaseNeuron) for m in self.model.modules())

    def __enter__(self) -> FiringRateMonitor:
        for name, m in self.model.named_modules():
            if isinstance(m, BaseNeuron):
                self.rates[name] = _Rate(levels=m.levels if isinstance(m, IELIF) else 1)
                self._keep(m.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        @torch.no_grad()
        def hook(module: BaseNeuron, inputs: tuple, out: Tensor | Spikes) -> None:
            counts, nonzero, elems = _per_step(module, out)
            r = self.rates[name]
            if r.count is None or r.count.shape != counts.shape:
                r.count, r.nonzero, r.elems = counts.double(), nonzero.double(), elems
            else:
                r.count += counts
                r.nonzero += nonzero
                r.elems += elems

        return hook

    def table(self) -> list[dict]:
        """One row per neuron layer: rate per step, mean rate, non-zero rate, elements per step."""
        rows = []
        for name, r in self.rates.items():
            if not r.elems:
                continue
            per_t = (r.count / r.elems).tolist()
            nz = (r.nonzero / r.elems).tolist()
            rows.append(
                dict(
                    neuron=name,
                    fr=sum(per_t) / len(per_t),
                    nonzero=sum(nz) / len(nz),
                    fr_per_t=per_t,
                    elements=r.elems,
                    levels=r.levels,
                )
            )
        return rows

    def mean_rate(self) -> float | None:
        """All spikes over all neuron-steps (None when not applicable)."""
        used = [r for r in self.rates.values() if r.elems]
        total = sum(r.elems * len(r.count) for r in used)
        if not self.applicable or total == 0:
            return None
        return float(sum(r.count.sum() for r in used)) / total

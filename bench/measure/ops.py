"""Operation counts: MACs at the operator level, and per-layer synaptic operations (SOPs) of spiking nets.

- ``count_macs``: PyTorch's ``FlopCounterMode`` counts FLOPs of every aten op (convolutions, linear layers,
  matmuls, so attention matmuls too); MACs = FLOPs / 2. BN, activations and additions are not counted
  (BN is foldable; fvcore/mmengine agree). One forward of a batch, divided by the batch size.
- ``SynapticOps``: forward hooks on every Conv/Linear and on the attention ``MatMul``/``MaskSum`` modules.
  A layer whose input is a spike tensor (binary, or ``Spikes`` whose planes are binary) is charged
  SOPs = mean spike count of the input x MACs of the call (= fr x T x MACs per step; an IE-LIF level k
  counts as k spikes). A layer fed by real values (pixels, SEW sums, BN outputs) is charged MACs.
  Matmuls between spike counts are charged the exact number of accumulations they need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from bench.measure.hooks import HookSet
from bench.nn.attention import MaskSum, MatMul
from bench.nn.neurons import IELIF, BaseNeuron, Spikes


@torch.no_grad()
def count_macs(model: nn.Module, x: Tensor) -> tuple[float, dict[str, float], dict[str, float]]:
    """MACs per image of one forward; MACs per module (two levels deep); MACs per aten operator."""
    counter = FlopCounterMode(display=False, depth=2)
    with counter:
        model(x)
    b = x.shape[0]
    counts = counter.get_flop_counts()
    per_module = {k: sum(v.values()) / 2 / b for k, v in counts.items() if k != "Global"}
    per_op = {str(op).split(".")[-1]: n / 2 / b for op, n in counts.get("Global", {}).items()}
    return counter.get_total_flops() / 2 / b, per_module, per_op


def spike_counts(x: Tensor | Spikes) -> Tensor | None:
    """Integer spike counts of a spike input (binary tensor or ``Spikes``), or None for real values."""
    if isinstance(x, Spikes):
        return x.planes.sum(0)
    return x if spike_total(x) is not None else None


def spike_total(x: Tensor | Spikes) -> tuple[float, int] | None:
    """(total spike count, elements) of a spike input, or None for real values; a few fused passes."""
    if isinstance(x, Spikes):
        return float(x.planes.sum()), x.planes[0].numel()
    if not x.numel():
        return None
    lo, hi = torch.aminmax(x)
    if lo < 0 or hi > 1:
        return None
    total = float(x.sum())
    # values in [0, 1] are all 0 or 1 exactly when rounding the non-zeros up to 1 leaves the sum unchanged
    return (total, x.numel()) if total == float(x.ceil().sum()) else None


def layer_macs(module: nn.Module, inputs: tuple, out: Tensor) -> float:
    """MACs of one call of a Conv/Linear/MatMul/MaskSum, from the output's (logical) shape."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return out.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, MatMul):
        return out.numel() * inputs[0].shape[-1]
    a, b = inputs  # MaskSum: one product-accumulate per element of the broadcast product
    return math.prod(torch.broadcast_shapes(a.shape, b.shape))


def _accumulations(module: nn.Module, inputs: tuple, counts: list[Tensor | None]) -> float:
    """Additions a MatMul/MaskSum needs when at least one operand is a spike tensor."""
    ca, cb = counts
    a, b = inputs
    if isinstance(module, MaskSum):  # every co-active (or spike-selected) element is accumulated once
        one = torch.ones(())
        prod = (ca if ca is not None else one) * (cb if cb is not None else one)
        return float(torch.broadcast_to(prod, torch.broadcast_shapes(a.shape, b.shape)).sum())
    if ca is not None and cb is not None:
        return float((ca.sum(-2) * cb.sum(-1)).sum())
    if ca is not None:  # each spike in A selects a row of B (N additions)
        return float(ca.sum() * b.shape[-1])
    return float(cb.sum() * a.shape[-2])  # each spike in B selects a column of A (M additions)


@dataclass
class LayerOps:
    """Accumulated operation counts of one layer over the measured images."""

    name: str
    kind: str
    calls: int = 0
    macs: float = 0.0
    mac_ops: float = 0.0
    sops: float = 0.0
    spike_elems: float = 0.0
    spike_count: float = 0.0
    first: bool = False

    @property
    def input(self) -> str:
        if self.mac_ops and self.sops:
            return "mixed"
        return "spikes" if self.spike_elems else "real"


class SynapticOps(HookSet):
    """Context manager that hooks synaptic layers and accumulates MACs/SOPs per layer.

    ``first_layer_T``: charge the first layer (the conv on pixels, computed once for the repeated image)
    T times instead of once.
    """

    LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear, MatMul, MaskSum)

    def __init__(self, model: nn.Module, first_layer_T: bool = False) -> None:
        super().__init__()
        self.model = model
        self.T = getattr(model, "T", 1)
        self.first_layer_T = first_layer_T
        self.layers: dict[str, LayerOps] = {}
        self.images = 0
        self._order: list[str] = []
        self._input_ptr: int | None = None
        self._neuron_out: dict[tuple[int, int], tuple[float, int]] = {}

    def _capture_input(self, module: nn.Module, args: tuple) -> None:
        self._input_ptr = args[0].data_ptr() if args and isinstance(args[0], Tensor) else None
        self._neuron_out.clear()

    def _remember_spikes(self, module: nn.Module, inputs: tuple, out: Tensor | Spikes) -> None:
        """Binary neuron outputs: remember their spike total so the layers they feed skip the value check."""
        if isinstance(out, Tensor) and not isinstance(module, IELIF):
            self._neuron_out[(out.data_ptr(), out.numel())] = (float(out.sum()), out.numel())

    def _spikes_in(self, x: Tensor | Spikes) -> tuple[float, int] | None:
        if isinstance(x, Tensor):
            known = self._neuron_out.get((x.data_ptr(), x.numel()))
            if known is not None:
                return known
        return spike_total(x)

    def __enter__(self) -> SynapticOps:
        self._keep(self.model.register_forward_pre_hook(self._capture_input))
        for m in self.model.modules():
            if isinstance(m, BaseNeuron):
                self._keep(m.register_forward_hook(self._remember_spikes))
        for name, m in self.model.named_modules():
            if isinstance(m, self.LAYERS):
                self.layers[name] = LayerOps(name, type(m).__name__)
                self._keep(m.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            rec = self.layers[name]
            x = inputs[0]
            if isinstance(x, Tensor) and self._input_ptr is not None and x.data_ptr() == self._input_ptr:
                rec.first = True  # fed by the network input (pixels)
            if name not in self._order:
                self._order.append(name)
            macs = layer_macs(module, inputs, out)
            rec.calls += 1
            rec.macs += macs
            if isinstance(module, (MatMul, MaskSum)):
                counts = [spike_counts(z) for z in inputs]
                if counts == [None, None]:
                    rec.mac_ops += macs
                else:
                    rec.sops += _accumulations(module, inputs, counts)
                    c = next(c for c in counts if c is not None)
                    rec.spike_elems += c.numel()
                    rec.spike_count += float(c.sum())
                return
            spikes = None if rec.first else self._spikes_in(x)  # the first layer sees pixels: MACs
            if spikes is None:
                rec.mac_ops += macs * (self.T if rec.first and self.first_layer_T else 1)
            else:
                total, elems = spikes
                rec.sops += total / elems * macs
                rec.spike_elems += elems
                rec.spike_count += total

        return hook

    def totals(self) -> dict[str, float]:
        """MAC ops and SOPs per image over everything measured so far."""
        n = max(self.images, 1)
        return dict(
            mac_ops=sum(r.mac_ops for r in self.layers.values()) / n,
            sops=sum(r.sops for r in self.layers.values()) / n,
        )

    def table(self) -> list[dict]:
        """Per-layer rows (per image), in call order."""
        n = max(self.images, 1)
        rows = []
        for name in self._order:
            r = self.layers[name]
            fr = r.spike_count / r.spike_elems if r.spike_elems else None
            rows.append(
                dict(
                    layer=name,
                    type=r.kind,
                    input=r.input,
                    first_layer=r.first,
                    calls=r.calls,
                    macs=r.macs / n,
                    mac_ops=r.mac_ops / n,
                    sops=r.sops / n,
                    fr_in=fr,
                )
            )
        return rows

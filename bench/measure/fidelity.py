"""How far spike-driven inference is from training-mode evaluation of the same network and input.

A level flip is a neuron output element whose spike count (IE-LIF level k, or a LIF spike) differs between
the two; a flip upstream changes what every later layer sees, so flips cascade. Unfused, the spike-driven
network computes bitwise what training mode computes (synaptic layers weight the accumulated spike count);
the fused convs (RepConv, SepConv's DW+PW+BN folded) round differently, so they can flip levels that lie on
a rounding boundary of ``Multispike``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.nn.neurons import IELIF, BaseNeuron, Spikes


def _levels(neuron: nn.Module, out: Tensor | Spikes) -> Tensor:
    if isinstance(out, Spikes):
        return out.planes.sum(0).to(torch.uint8)
    if isinstance(neuron, IELIF):
        return torch.round(out / neuron.spike_value).to(torch.uint8)
    return out.to(torch.uint8)


class _LevelTrace:
    """Records every neuron's levels, or compares them with a recorded trace (counting flips)."""

    def __init__(self, model: nn.Module, reference: dict[str, list[Tensor]] | None = None) -> None:
        self.model = model
        self.reference = reference
        self.levels: dict[str, list[Tensor]] = {}
        self.flips = 0
        self.elements = 0
        self.first_flip: str | None = None
        self._handles = []

    def __enter__(self) -> _LevelTrace:
        for name, m in self.model.named_modules():
            if isinstance(m, BaseNeuron):
                self._handles.append(m.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, out: Tensor | Spikes) -> None:
            lv = _levels(module, out)
            calls = self.levels.setdefault(name, [])
            if self.reference is None:
                calls.append(lv)
                return
            ref = self.reference[name][len(calls)]
            calls.append(None)
            flips = int((lv != ref).sum())
            self.flips += flips
            self.elements += lv.numel()
            if flips and self.first_flip is None:
                self.first_flip = name

        return hook


def _leaves(out: object) -> list[Tensor]:
    """The tensors of a model output (a tensor, or nested tuples/lists/dicts of them, as dense heads give)."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _leaves(o)]
    return []


def _output_difference(out: object, ref: object) -> dict:
    """Largest absolute difference over every output tensor; argmax changes of the last axis (logits) for
    a single-tensor output, None otherwise."""
    pairs = list(zip(_leaves(out), _leaves(ref), strict=True))
    diff = max((float((a - b).abs().max()) for a, b in pairs if a.numel()), default=0.0)
    single = isinstance(out, Tensor)
    changed = int((out.argmax(-1) != ref.argmax(-1)).sum()) if single else None
    return dict(max_logit_diff=diff, argmax_changed=changed)


@torch.no_grad()
def spike_driven_fidelity(model: nn.Module, x: Tensor) -> dict:
    """Level-flip rate and logit difference of spike-driven inference, unfused and fused, against
    training-mode evaluation (eval mode, multi-bit tensors) on ``x``; the model is left in training mode."""
    model.eval()
    model.spike_driven_(False)
    with _LevelTrace(model) as ref_trace:
        ref = model(x)
    result = {}
    for fuse in (False, True):
        model.spike_driven_(True, fuse=fuse)
        try:
            with _LevelTrace(model, ref_trace.levels) as trace:
                out = model(x)
        finally:
            model.spike_driven_(False)
        result["fused" if fuse else "unfused"] = dict(
            level_flip_rate=trace.flips / max(trace.elements, 1),
            level_flips=trace.flips,
            neuron_elements=trace.elements,
            first_flip=trace.first_flip,
            **_output_difference(out, ref),
        )
    return dict(result, dtype=str(x.dtype).replace("torch.", ""), images=int(x.shape[0]))

"""Spiking necks and heads as in the official SDT-V2 detection and segmentation code.

The official code (BICLab/Spike-Driven-Transformer-V2: ``SpikeFPN``, ``SpikeRetinaHead``, ``FPNHead_SNN``)
puts a multi-step LIF neuron before every conv of the FPN and the heads (output convs included), runs
the convs per time step (``SeqToANNContainer``: T folded into the batch), keeps the time axis from the
neck's input to the head's output, and averages over T there (``.mean(0)`` on the segmentation logits
and the detection scores/boxes). ``make_spiking_`` does the same to installed mmdet/mmseg modules:

- every ``Conv2d`` and ``Linear`` of the region (the official ``SpikeConvFCBBoxHead`` spikes its shared fcs
  too, not its output fcs ``fc_cls``/``fc_reg``: the default ``skip``) gets a neuron (``layer.spike_neuron``,
  no parameters, so state-dict keys do not change) that fires on the layer's input; the layer is then fed
  spikes (SOPs in ``bench.measure``);
- a region is one module or a list of them called in sequence (e.g. ``[neck, head]`` of RetinaNet): the
  first repeats its inputs T times along the batch (``[T*B, ...]``, t-major), the last averages its outputs
  over T, so the T-mean is at the end of the region as in the official code (a region per module gives a
  T-mean between neck and head, which equals the official code at T = 1, the detection configs' value);
- every neuron is reset before each call, so no state leaks between images, levels or calls (the official
  head shares one LIF between its classification and box branches without a reset in between; not mirrored).

Activations already in the modules stay (the official ``FPNHead_SNN`` drops the ReLU of its ConvModules,
``SpikeRetinaHead`` keeps it). The backbone's T-averaged maps are repeated over T at the region entry
(the official neck takes the backbone's per-step maps). Quantize with ``quantize_`` before, not after.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from bench.errors import ConfigError, check_positive_int
from bench.nn.neurons import Spikes, build_neuron
from bench.nn.quant import QUANTIZED_LAYERS

SPIKING_NEURONS = ("lif", "ie-lif")


def _map_tensors(fn: Callable[[Tensor], Tensor], obj: object) -> object:
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple | list):
        return type(obj)(_map_tensors(fn, o) for o in obj)
    return obj


def _fire_before_layer(layer: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the layer's ``[T*B, ...]`` input goes through its neuron over T steps."""
    x, *rest = args
    neuron = layer.spike_neuron
    neuron.reset()
    s = neuron(x.reshape(layer.spike_T, -1, *x.shape[1:]))
    if isinstance(s, Spikes):  # IE-LIF in spike-driven mode: binary planes, which Q layers accumulate
        s = Spikes(s.planes.flatten(1, 2), s.value)
        return (s if isinstance(layer, QUANTIZED_LAYERS) else s.to_tensor(), *rest)
    return (s.flatten(0, 1), *rest)


def _region_forward(first: bool, last: bool) -> Callable:
    def forward(self: nn.Module, *args, **kwargs):
        T = self.spike_T
        if first:
            args = _map_tensors(lambda x: x.repeat(T, *([1] * (x.dim() - 1))), args)
        out = type(self).forward(self, *args, **kwargs)
        if last:
            out = _map_tensors(lambda y: y.reshape(T, -1, *y.shape[1:]).mean(0) if y.dim() else y, out)
        return out

    return forward


def make_spiking_(
    region: nn.Module | Sequence[nn.Module],
    T: int = 1,
    neuron: str = "lif",
    levels: int = 4,
    skip: Sequence[str] = ("fc_cls", "fc_reg"),
) -> list[str]:
    """Insert a neuron before every Conv2d and Linear of ``region`` (a module, or modules called in
    sequence), in place; the region runs T steps and averages its output over T. Returns the names of the
    spike-fed layers (``<index>.<name>`` for a list); layers whose last name part is in ``skip`` are left
    as they are."""
    T = check_positive_int("spiking T", T)
    if neuron not in SPIKING_NEURONS:
        allowed = ", ".join(SPIKING_NEURONS)
        raise ConfigError(f"spiking neuron={neuron!r} is not allowed; allowed values: {allowed}")
    modules = [region] if isinstance(region, nn.Module) else list(region)
    if not modules:
        raise ConfigError("make_spiking_ got an empty region; allowed: a module or a list of modules")
    changed = []
    for i, module in enumerate(modules):
        if "forward" in vars(module) or any(hasattr(m, "spike_neuron") for m in module.modules()):
            raise ConfigError(f"{type(module).__name__} is already spiking (or its forward is replaced)")
        for name, m in module.named_modules():
            if not isinstance(m, nn.Conv2d | nn.Linear) or name.rpartition(".")[2] in skip:
                continue
            m.spike_neuron = build_neuron(neuron, levels=levels)
            m.spike_T = T
            m.register_forward_pre_hook(_fire_before_layer)
            changed.append(name if len(modules) == 1 else f"{i}.{name}")
        module.spike_T = T
        first, last = i == 0, i == len(modules) - 1
        if first or last:
            module.forward = types.MethodType(_region_forward(first, last), module)
    return changed

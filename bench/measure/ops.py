"""Operation counts: MACs at the operator level, and per-layer synaptic operations (SOPs) of spiking nets.

- ``count_macs``: PyTorch's ``FlopCounterMode`` counts FLOPs of every aten op (convolutions, linear layers,
  matmuls, so attention matmuls too); MACs = FLOPs / 2. BN, activations and additions are not counted
  (BN is foldable; fvcore/mmengine agree). One forward of a batch, divided by the batch size.
- ``SynapticOps``: forward hooks on every Conv/Linear and on the attention ``MatMul``/``MaskSum`` modules.
  A layer's input is a spike input when it came from a spiking neuron: the hooks mark every binary neuron
  output as a ``SpikeTensor`` (the mark survives views, max-pooling and spike products, nothing else), and an
  IE-LIF in spike-driven mode emits ``Spikes``; everything else (pixels, SEW sums, BN outputs) is real.
  Spike inputs are charged SOPs, real inputs MACs, under the ``OpsConventions`` below. Matmuls between spike
  counts are charged the exact number of accumulations they need.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from bench.errors import check_choice
from bench.measure.hooks import HookSet
from bench.nn.attention import MaskSum, MatMul
from bench.nn.neurons import IELIF, BaseNeuron, Spikes, SpikeTensor, mark_spikes, plain

PADDING = ("count", "skip")
SOPS = ("paper", "fanout")
ZERO_WEIGHTS = ("count", "skip")


@dataclass(frozen=True)
class OpsConventions:
    """How operations are counted; the defaults are the SDT / QSD papers'.

    - ``padding``: ``count`` charges a conv's taps on its zero padding (k^2 h w c_in c_out, as
      ``FlopCounterMode`` and the papers' formula); ``skip`` charges only taps that land on the input.
    - ``sops``: ``paper`` = mean input spike count x MACs of the call (fr x T x MACs); ``fanout`` = the exact
      number of operations the inputs trigger: each spike (and, for MAC ops, each non-zero real input)
      times the weights and outputs it reaches; zero inputs trigger none (NeuroBench's effective counts).
    - ``zero_weights``: ``count`` charges every weight; ``skip`` leaves out weights that are exactly zero
      (after quantization), in MAC ops and SOPs (the dense ``MACs`` keep them).
    """

    padding: str = "count"
    sops: str = "paper"
    zero_weights: str = "count"

    def __post_init__(self) -> None:
        check_choice("padding convention", self.padding, PADDING)
        check_choice("sops convention", self.sops, SOPS)
        check_choice("zero_weights convention", self.zero_weights, ZERO_WEIGHTS)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


NEUROBENCH = OpsConventions(padding="skip", sops="fanout", zero_weights="skip")


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
    """Integer spike counts of a spike input (``SpikeTensor`` or ``Spikes``), or None for real values."""
    if isinstance(x, Spikes):
        return x.planes.sum(0)
    return plain(x) if isinstance(x, SpikeTensor) else None


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


def _operand(rec: LayerOps, x: object, spike: bool) -> None:
    """Add one input operand's traffic to ``rec``: real elements, or spike bit-planes and address width."""
    if not spike:
        rec.in_real += math.prod(x.shape)
        return
    planes = x.planes.shape[0] if isinstance(x, Spikes) else 1
    rec.in_planes += math.prod(x.shape) * planes
    rec.in_levels = max(rec.in_levels, planes)
    rec.in_spikes += float(x.planes.sum() if isinstance(x, Spikes) else plain(x).sum())
    per_map = math.prod(x.shape[-3:] if rec.kind.startswith("Conv") else x.shape[-2:])
    rec.addr_bits = max(rec.addr_bits, math.ceil(math.log2(max(per_map, 2))))


def _weight(module: nn.Module) -> Tensor:
    """The weight a layer computes with (LSQ layers: the quantized weight)."""
    w = module.quantized_weight() if hasattr(module, "quantized_weight") else module.weight
    return w.detach()


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@dataclass
class _Shape:
    """Per-item counts of a layer at one input shape (an item = one sample of the leading axis)."""

    dense: float  # MACs under the padding convention, zero weights counted
    padding: float  # taps on the zero padding (0 when they are counted)
    effective: float  # MACs under the padding and zero-weight conventions
    fanout: Tensor | None = None  # per-input-channel kernel of the exact fan-out (``sops='fanout'``)


def _conv_shape(module: nn.Module, spatial: tuple[int, ...], conv: OpsConventions) -> _Shape:
    w = _weight(module)
    kernel = tuple(module.kernel_size)
    k = math.prod(kernel)
    conv_fn = _CONV[len(kernel)]
    onehot = torch.eye(k, dtype=w.dtype).view(k, 1, *kernel)
    ones = torch.ones(1, 1, *spatial, dtype=w.dtype)
    taps_out = conv_fn(ones, onehot, None, module.stride, module.padding, module.dilation)
    positions = math.prod(taps_out.shape[2:])
    taps = taps_out.flatten(2).sum(2)[0] if conv.padding == "skip" else torch.full((k,), float(positions))
    cin_g = module.in_channels // module.groups
    full = module.out_channels * cin_g
    dense = full * float(taps.sum())
    mask = (w != 0) if conv.zero_weights == "skip" else torch.ones_like(w, dtype=torch.bool)
    effective = float((mask.flatten(2).sum((0, 1)).to(taps.dtype) * taps).sum())
    g = module.groups
    fan = mask.to(w.dtype).view(g, module.out_channels // g, cin_g, *kernel).sum(1)
    return _Shape(dense, full * k * positions - dense, effective, fan.reshape(module.in_channels, 1, *kernel))


def _linear_shape(module: nn.Linear, conv: OpsConventions) -> _Shape:
    w = _weight(module)
    mask = (w != 0) if conv.zero_weights == "skip" else torch.ones_like(w, dtype=torch.bool)
    return _Shape(float(w.numel()), 0.0, float(mask.sum()), mask.to(w.dtype).sum(0))


@dataclass
class LayerOps:
    """Accumulated operation counts of one layer over the measured images."""

    name: str
    kind: str
    attention: bool = False
    calls: int = 0
    macs: float = 0.0
    padding_macs: float = 0.0
    mac_ops: float = 0.0
    sops: float = 0.0
    spike_elems: float = 0.0
    spike_count: float = 0.0
    spike_calls: int = 0
    first: bool = False
    in_real: float = 0.0  # elements of real-valued operands moved in
    in_planes: float = 0.0  # bit-planes of spike operands (elements x D virtual steps)
    in_spikes: float = 0.0  # binary spikes of all spike operands
    in_levels: int = 0  # most bit-planes (IE-LIF D; products of two: D x D) of a spike operand
    addr_bits: int = 0  # bits of one spike's address (one neuron of one sample's input map)
    out_elems: float = 0.0
    params: int = 0
    bits_w: int = 32

    @property
    def input(self) -> str:
        """Kind of input over all calls: spikes, real or mixed."""
        if self.spike_calls:
            return "spikes" if self.spike_calls == self.calls else "mixed"
        return "real"


class SynapticOps(HookSet):
    """Context manager that hooks synaptic layers and accumulates MACs/SOPs per layer.

    ``first_layer_T``: charge the first layer (the conv on pixels, computed once for the repeated image)
    T times instead of once. ``conventions``: see ``OpsConventions``. Weights must not change inside.
    """

    LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear, MatMul, MaskSum)

    def __init__(
        self, model: nn.Module, first_layer_T: bool = False, conventions: OpsConventions | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.T = getattr(model, "T", 1)
        self.first_layer_T = first_layer_T
        self.conventions = conventions or OpsConventions()
        self.layers: dict[str, LayerOps] = {}
        self.images = 0
        self._order: list[str] = []
        self._shapes: dict[tuple, _Shape] = {}
        self._input: Tensor | None = None  # the network input, held for the forward's lifetime

    def _capture_input(self, module: nn.Module, args: tuple) -> None:
        self._input = args[0] if args and isinstance(args[0], Tensor) else None

    def _release_input(self, module: nn.Module, args: tuple, out: object) -> None:
        self._input = None

    def _is_input(self, x: object) -> bool:
        inp = self._input
        if inp is None or not isinstance(x, Tensor):
            return False
        return x is inp or (x.data_ptr() == inp.data_ptr() and x.shape == inp.shape)

    @staticmethod
    def _mark(module: nn.Module, inputs: tuple, out: Tensor | Spikes) -> Tensor | None:
        """Binary neuron outputs become ``SpikeTensor`` (same data) so the layers they feed know them."""
        if isinstance(out, Tensor) and not isinstance(module, IELIF):
            return mark_spikes(out)
        return None

    def __enter__(self) -> SynapticOps:
        self._keep(self.model.register_forward_pre_hook(self._capture_input))
        self._keep(self.model.register_forward_hook(self._release_input))
        for m in self.model.modules():
            if isinstance(m, BaseNeuron):
                self._keep(m.register_forward_hook(self._mark))
        for name, m in self.model.named_modules():
            if isinstance(m, self.LAYERS):
                self.layers[name] = LayerOps(name, type(m).__name__, isinstance(m, (MatMul, MaskSum)))
                self._keep(m.register_forward_hook(self._hook(name)))
        return self

    def _shape(self, name: str, module: nn.Module, x: Tensor | Spikes) -> _Shape:
        key = (name, *x.shape[1:]) if isinstance(module, (nn.Conv1d, nn.Conv2d)) else (name,)
        s = self._shapes.get(key)
        if s is None:
            with torch.no_grad():
                s = (
                    _conv_shape(module, tuple(x.shape[2:]), self.conventions)
                    if isinstance(module, (nn.Conv1d, nn.Conv2d))
                    else _linear_shape(module, self.conventions)
                )
            self._shapes[key] = s
        return s

    @staticmethod
    def _fanout(module: nn.Module, s: _Shape, counts: Tensor) -> float:
        """Accumulations triggered by the spikes: each spike times the weights and outputs it reaches."""
        if isinstance(module, nn.Linear):
            return float((counts.reshape(-1, counts.shape[-1]).to(s.fanout.dtype) @ s.fanout).sum())
        fan = s.fanout.to(counts.dtype)
        conv_fn = _CONV[fan.dim() - 2]
        out = conv_fn(counts, fan, None, module.stride, module.padding, module.dilation, fan.shape[0])
        return float(out.sum())

    def _attention(self, rec: LayerOps, module: nn.Module, inputs: tuple, macs: float) -> None:
        counts = [spike_counts(z) for z in inputs]
        for z, c in zip(inputs, counts, strict=True):
            _operand(rec, z, c is not None)
        if counts == [None, None]:
            rec.mac_ops += macs
            return
        rec.sops += _accumulations(module, inputs, counts)
        rec.spike_calls += 1
        c = next(c for c in counts if c is not None)
        rec.spike_elems += c.numel()
        rec.spike_count += float(c.sum())

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            rec = self.layers[name]
            x = inputs[0]
            if rec.calls == 0:
                self._order.append(name)
                if not rec.attention:
                    rec.params, rec.bits_w = module.weight.numel(), getattr(module, "bits", 32)
            rec.calls += 1
            rec.out_elems += out.numel()
            if not rec.first and self._is_input(x):
                rec.first = True  # fed by the network input (pixels)
            if rec.attention:
                macs = layer_macs(module, inputs, out)
                rec.macs += macs
                self._attention(rec, module, inputs, macs)
                return
            s = self._shape(name, module, x)
            items = x.shape[0] if isinstance(module, (nn.Conv1d, nn.Conv2d)) else out.numel() // out.shape[-1]
            rec.macs += s.dense * items
            rec.padding_macs += s.padding * items
            spikes = None if rec.first else x  # the first layer sees pixels: MACs
            _operand(rec, x, isinstance(spikes, (Spikes, SpikeTensor)))
            if isinstance(spikes, Spikes):
                total, elems = float(spikes.planes.sum()), spikes.planes[0].numel()
            elif isinstance(spikes, SpikeTensor):
                total, elems = float(spikes.sum()), spikes.numel()
            else:
                repeat = self.T if rec.first and self.first_layer_T else 1
                if self.conventions.sops == "fanout":  # exact: non-zero inputs times their fan-out
                    rec.mac_ops += self._fanout(module, s, (x != 0).to(x.dtype)) * repeat
                else:
                    rec.mac_ops += s.effective * items * repeat
                return
            rec.spike_calls += 1
            rec.spike_elems += elems
            rec.spike_count += total
            if self.conventions.sops == "paper":
                rec.sops += total / elems * s.effective * items
            else:
                rec.sops += self._fanout(module, s, spike_counts(spikes))

        return hook

    def totals(self) -> dict[str, float]:
        """Per image over everything measured so far: MAC ops and SOPs of all layers, the attention
        matmuls' share of each, dense MACs of the hooked layers and their taps on padding."""
        n = max(self.images, 1)
        rs = self.layers.values()
        return dict(
            mac_ops=sum(r.mac_ops for r in rs) / n,
            sops=sum(r.sops for r in rs) / n,
            attention_mac_ops=sum(r.mac_ops for r in rs if r.attention) / n,
            attention_sops=sum(r.sops for r in rs if r.attention) / n,
            attention_macs=sum(r.macs for r in rs if r.attention) / n,
            mask_sum_macs=sum(r.macs for r in rs if r.kind == "MaskSum") / n,
            hooked_macs=sum(r.macs for r in rs) / n,
            padding_macs=sum(r.padding_macs for r in rs) / n,
        )

    def neurobench(self) -> dict:
        """The same numbers under NeuroBench's names (``SynapticOperations``: per sample, Conv/Linear only;
        attention matmuls, which NeuroBench does not hook, reported apart)."""
        n = max(self.images, 1)
        rs = [r for r in self.layers.values() if not r.attention]
        return dict(
            Effective_MACs=sum(r.mac_ops for r in rs) / n,
            Effective_ACs=sum(r.sops for r in rs) / n,
            Dense=sum(r.macs for r in rs) / n,
            attention_not_in_neurobench=dict(
                MACs=sum(r.macs for r in self.layers.values() if r.attention) / n,
                MAC_ops=sum(r.mac_ops for r in self.layers.values() if r.attention) / n,
                SOPs=sum(r.sops for r in self.layers.values() if r.attention) / n,
            ),
            conventions=self.conventions.as_dict(),
            matches_neurobench_conventions=self.conventions == NEUROBENCH,
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
                    attention=r.attention,
                    calls=r.calls,
                    macs=r.macs / n,
                    mac_ops=r.mac_ops / n,
                    sops=r.sops / n,
                    fr_in=fr,
                    spikes_in=r.in_spikes / n,
                    in_real=r.in_real / n,
                    in_planes=r.in_planes / n,
                    addr_bits=r.addr_bits,
                    in_levels=r.in_levels,
                    out_elems=r.out_elems / n,
                    params=r.params,
                    bits_w=r.bits_w,
                )
            )
        return rows

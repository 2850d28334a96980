"""Weight and feature quantizers, and the Conv/Linear layers every spikebench model is built from.

- ``LSQWeight``: learned step size quantization (Esser et al., ICLR 2020) as in QSD's ``Conv2dLSQ``:
  one step size per output channel, Qn = -2^(b-1), Qp = 2^(b-1) - 1, step initialised at the first
  forward to 2 mean|W| / sqrt(Qp) (one value for the whole tensor, as the official code does), step
  gradient scaled by g = 1 / sqrt(numel(W) * Qp). b = 1 has Qp = 0, so it is binary: W_q = s sign(W)
  (two levels), step initialised to mean|W|, g = 1 / sqrt(numel(W)). b = 32 means full precision.
  A step loaded from a state dict (ours or an official ``alpha``) is marked initialised: never re-initialised.
  The forward is one autograd node (``lsq_fake_quantize``) with the composite's values and gradients, bit
  for bit. In eval mode without autograd the quantized weight is cached while the weight and step are
  unchanged: same storage, dtype and version counter (in-place writes, ``load_state_dict``, ``.to()``), no
  gradient accumulated into them since (fused optimizers step without a version bump) and no ``train()``.
  A write through ``.data`` is not seen. ``weight_cache(False)`` turns the cache off.
- ``UniformQuantizer``: b-bit uniform quantizer with learnable bounds l < u (used to quantize teacher
  features for QFD): x_q = l + round(clip((x - l) / (u - l), 0, 1) (2^b - 1)) / (2^b - 1) (u - l).
- ``QConv2d``, ``QConv1d``, ``QLinear``: nn layers with a ``bits`` knob. Fed with ``Spikes`` (binary
  planes over virtual steps) they weight the accumulated spike count (= the sum of W s_d over the planes).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.errors import check_bits
from bench.nn.neurons import Spikes, as_tensor


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """Identity forward; gradient multiplied by ``scale``."""
    return (x - x * scale).detach() + x * scale


def round_pass(x: Tensor) -> Tensor:
    """Round forward; straight-through gradient."""
    return (x.round() - x).detach() + x


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """``t`` summed to the broadcast ``shape`` over the dims autograd's ``sum_to`` reduces (same bits)."""
    dims = tuple(i for i, (a, b) in enumerate(zip(t.shape, shape, strict=True)) if b == 1 and a != 1)
    return t.sum(dims, keepdim=True) if dims else t


class _LSQRound(torch.autograd.Function):
    """``round_pass((w / s).clamp(qn, qp)) * s`` as one node: the same forward and gradients, bit for bit.

    Autograd of the composite computes, for an upstream gradient G: dq = G s, dc = dq where qn <= w/s <= qp
    (else 0), dw = dc / s, ds = sum(G q) + sum(-dc ((w / s) / s)). This node evaluates the same expressions
    in the same order, in place where a temporary is its own, and saves q and the clip mask instead of w / s.
    ``(round(c) - c) + c`` is exactly ``round(c) + 0`` (the difference is exact), which also turns -0 into 0.
    """

    @staticmethod
    def forward(ctx, w: Tensor, s: Tensor, qn: int, qp: int) -> Tensor:  # noqa: D102
        r = w / s
        c = r.clamp(qn, qp)
        clipped = c != r  # NaN counts as clipped, as clamp's backward masks it
        q = c.round_().add_(0.0)
        ctx.save_for_backward(w, s, q, clipped)
        return q * s

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        w, s, q, clipped = ctx.saved_tensors
        ds_round = _sum_to(grad * q, s.shape)
        dc = (grad * s).masked_fill_(clipped, 0.0)
        if dc.is_contiguous() and w.is_contiguous():
            ds_div = _sum_to((w / s).div_(s).mul_(dc), s.shape).neg_()  # sum(-x) is -sum(x) bitwise
        else:  # keep autograd's memory layout, hence its summation order
            ds_div = _sum_to(-dc * ((w / s) / s), s.shape)
        return dc / s, ds_round + ds_div, None, None


def lsq_fake_quantize(w: Tensor, s: Tensor, qn: int, qp: int) -> Tensor:
    """``round_pass((w / s).clamp(qn, qp)) * s`` bit for bit: one autograd node, in place without grad."""
    if torch.is_grad_enabled() and (w.requires_grad or s.requires_grad):
        return _LSQRound.apply(w, s, qn, qp)
    return (w / s).clamp_(qn, qp).round_().add_(0.0).mul_(s)


def lsq_range(bits: int) -> tuple[int, int]:
    """Signed integer range (Qn, Qp) of a b-bit weight."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


_CACHE = {"enabled": True}


@contextmanager
def weight_cache(enabled: bool) -> Iterator[None]:
    """Within the block, eval-mode LSQ layers cache their quantized weight (the default) or not."""
    before, _CACHE["enabled"] = _CACHE["enabled"], enabled
    try:
        yield
    finally:
        _CACHE["enabled"] = before


def _drop_cache(ref: weakref.ref, _param: Tensor) -> None:
    quantizer = ref()
    if quantizer is not None:
        quantizer._cache = None


class LSQWeight(nn.Module):
    """Per-output-channel LSQ fake quantizer for a weight tensor ``[C_out, ...]``."""

    def __init__(self, out_channels: int, bits: int) -> None:
        super().__init__()
        self.bits = check_bits("bits", bits)
        self.step = nn.Parameter(torch.ones(out_channels))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self._cache: tuple[tuple, Tensor] | None = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self._cache = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # a step read from a checkpoint is trained (or deliberately set): never re-initialise it, whatever
        # the checkpoint says about initialisation (the official LSQ initialises only in training mode)
        if prefix + "step" in state_dict:
            self.initialized.fill_(True)

    def train(self, mode: bool = True) -> LSQWeight:
        if mode:  # training never reads the cache: free it
            self._cache = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._cache = None
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k != "_watched"} | {"_cache": None}

    def _key(self, w: Tensor) -> tuple:
        """What the quantized weight depends on: both tensors' storage, layout and version counter."""
        s, inference = self.step, torch.is_inference_mode_enabled()  # an inference tensor stays in that mode
        return (w.data_ptr(), w._version, w.shape, w.stride(), w.dtype, s.data_ptr(), s._version, inference)

    def _watch(self, *params: Tensor) -> None:
        """Drop the cache whenever a gradient is accumulated into ``params`` (hooked once per tensor)."""
        watched = self.__dict__.setdefault("_watched", {})
        for p in params:
            seen = watched.get(id(p))
            if isinstance(p, nn.Parameter) and (seen is None or seen() is not p):
                p.register_post_accumulate_grad_hook(functools.partial(_drop_cache, weakref.ref(self)))
                watched[id(p)] = weakref.ref(p)

    def forward(self, w: Tensor) -> Tensor:
        grad = torch.is_grad_enabled() and (w.requires_grad or self.step.requires_grad)
        if self.training or grad:
            self._cache = None
            return self._quantize(w)
        if not _CACHE["enabled"]:
            return self._quantize(w)
        if self._cache is not None and self._cache[0] == self._key(w):
            return self._cache[1]
        wq = self._quantize(w)  # may initialise the step: key it afterwards
        self._watch(w, self.step)
        self._cache = (self._key(w), wq)
        return wq

    def _quantize(self, w: Tensor) -> Tensor:
        qn, qp = lsq_range(self.bits)
        if not bool(self.initialized):
            with torch.no_grad():
                init = w.abs().mean() if self.bits == 1 else 2 * w.abs().mean() / math.sqrt(qp)
                self.step.fill_(float(init.clamp_min(1e-8)))
                self.initialized.fill_(True)
        step = self.step.view(-1, *([1] * (w.dim() - 1)))
        if self.bits == 1:
            step = grad_scale(step, 1.0 / math.sqrt(w.numel()))
            r = (w / step).clamp(-1, 1)
            sign = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
            return ((sign - r).detach() + r) * step
        step = grad_scale(step, 1.0 / math.sqrt(w.numel() * qp))
        return lsq_fake_quantize(w, step, qn, qp)

    def integer_weight(self, w: Tensor) -> Tensor:
        """The integer codes of ``w`` (for size and level checks)."""
        with torch.no_grad():
            wq = self.forward(w)
            return torch.round(wq / self.step.view(-1, *([1] * (w.dim() - 1))))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, per_channel=True"


class UniformQuantizer(nn.Module):
    """b-bit uniform quantizer with learnable bounds, initialised from the first batch's min and max."""

    def __init__(self, bits: int = 8, learnable: bool = True) -> None:
        super().__init__()
        if bits == 32:
            raise ValueError("UniformQuantizer bits=32 is not allowed; allowed values: 1..8")
        self.bits = check_bits("bits", bits)
        self.lower = nn.Parameter(torch.zeros(()), requires_grad=learnable)
        self.upper = nn.Parameter(torch.ones(()), requires_grad=learnable)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialized):
            with torch.no_grad():
                lo, hi = x.min(), x.max()
                self.lower.fill_(float(lo))
                self.upper.fill_(float(torch.maximum(hi, lo + 1e-6)))
                self.initialized.fill_(True)
        n = 2**self.bits - 1
        span = (self.upper - self.lower).clamp_min(1e-8)
        xn = ((x - self.lower) / span).clamp(0, 1)
        return self.lower + round_pass(xn * n) / n * span


class _Quantized:
    """Shared ``bits`` handling for the quantized layers (mixed into nn.Conv*/nn.Linear)."""

    weight: Tensor
    bias: Tensor | None

    def __init__(self, *args, bits: int = 32, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # the torch layer: nn.Conv1d, nn.Conv2d or nn.Linear
        self._init_quant(bits, self.weight.shape[0])

    def _init_quant(self, bits: int, out_channels: int) -> None:
        self.bits = check_bits("bits", bits)
        self.quantizer = LSQWeight(out_channels, bits) if bits < 32 else None

    def quantized_weight(self) -> Tensor:
        """The weight the layer computes with (fake-quantized at ``bits``)."""
        return self.quantizer(self.weight) if self.quantizer is not None else self.weight

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor | Spikes) -> Tensor:
        # Spikes: count the spikes of every input (additions), scale by the spike value, then weight; by
        # linearity this is the sum of W s_d over the planes, and it is the tensor training mode feeds, so
        # the output is bitwise the training-mode output.
        return self._op(as_tensor(x), self.quantized_weight(), self.bias)


class QConv2d(_Quantized, nn.Conv2d):
    """nn.Conv2d with LSQ weights at ``bits`` (32 = full precision)."""

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        return self._conv_forward(x, w, bias)


class QConv1d(_Quantized, nn.Conv1d):
    """nn.Conv1d with LSQ weights at ``bits``."""

    _op = QConv2d._op


class QLinear(_Quantized, nn.Linear):
    """nn.Linear with LSQ weights at ``bits``."""

    def _op(self, x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, w, bias)


QUANTIZED_LAYERS = (QConv2d, QConv1d, QLinear)


def _swap(module: nn.Module, bits: int) -> nn.Module:
    """A QConv2d/QLinear holding the same parameters as a plain nn.Conv2d/nn.Linear."""
    if type(module) is nn.Conv2d:
        new = QConv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups,
            module.bias is not None,
            module.padding_mode,
            bits=bits,
        )
    else:
        new = QLinear(module.in_features, module.out_features, module.bias is not None, bits=bits)
    new.weight = module.weight
    new.bias = module.bias
    return new


def quantize_modules(
    net: nn.Module, bits: int, bits_first: int, bits_head: int, head_names: tuple[str, ...]
) -> int:
    """Replace plain Conv2d/Linear layers of ``net`` in place; return how many were replaced.

    The first conv in module order gets ``bits_first``; modules named in ``head_names`` get ``bits_head``.
    """
    targets = [(n, m) for n, m in net.named_modules() if type(m) in (nn.Conv2d, nn.Linear)]
    for i, (name, m) in enumerate(targets):
        b = bits_first if i == 0 else bits_head if name in head_names else bits
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, attr, _swap(m, b))
    return len(targets)

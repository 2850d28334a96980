"""Multi-step spiking neurons split into charge, fire and reset (after spikingjelly's BaseNode).

Tensors are time-major, ``[T, B, ...]``. A neuron keeps its last membrane potential in ``self.v`` until
``reset()`` (or an input step of another shape); spiking backbones reset all neurons at every forward.

- ``LIF``: spikingjelly ``LIFNode`` defaults (tau 2, V_th 1, hard reset to 0, decay_input, sigmoid
  surrogate with alpha 4, ``detach_reset``). SDT v1/v2 use ``MultiStepLIFNode(tau=2.0, detach_reset=True)``.
- ``IELIF``: integer-valued spikes k/D during training (QSD-Transformer ``Multispike``:
  ``floor(clip(D*u, 0, D) + 0.5) / D`` with a straight-through gradient inside (0, D)); at inference,
  in spike-driven mode, each integer level k is emitted as k binary spikes over D virtual time steps
  (``Spikes``); synaptic layers accumulate the spike count before weighting it, so the unfused network
  computes exactly what training mode computes.
- ``SpikeTensor`` (``bench.nn.spike_tensor``, re-exported here): a binary spike tensor marked as such.
- ``Spikes``, ``as_tensor``, ``spike_mul``, ``spike_map`` (``bench.nn.spikes``, re-exported here).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.errors import check_choice, check_positive_int
from bench.nn.spike_tensor import SpikeTensor as SpikeTensor  # re-exported for the measurement code
from bench.nn.spike_tensor import mark_spikes as mark_spikes
from bench.nn.spike_tensor import plain as plain
from bench.nn.spikes import Spikes as Spikes  # re-exported: the neurons emit them
from bench.nn.spikes import as_tensor as as_tensor
from bench.nn.spikes import spike_map as spike_map
from bench.nn.spikes import spike_mul as spike_mul

NEURONS = ("lif", "ie-lif", "relu")


class SigmoidSurrogate(torch.autograd.Function):
    """Heaviside forward (x >= 0), sigmoid-derivative backward: alpha * sig(ax) * (1 - sig(ax))."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad * ctx.alpha * sg * (1 - sg), None


class _IntegerFire(torch.autograd.Function):
    """k = floor(clip(x, 0, D) + 0.5); gradient passes straight through where 0 < x < D."""

    @staticmethod
    def forward(ctx, x: Tensor, levels: int) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.levels = levels
        return x.clamp(0, levels).add_(0.5).floor_()

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        inside = (x > 0) & (x < ctx.levels)
        return grad * inside.to(grad.dtype), None


class BaseNeuron(nn.Module):
    """Charge -> fire -> reset over the leading time axis; subclasses define the three steps.

    ``v`` is the membrane potential after the last step; a subclass may leave it pending (``_pending``:
    the arguments of ``settle``) so that it is computed only when read.
    """

    def __init__(self, v_threshold: float = 1.0, detach_reset: bool = True) -> None:
        super().__init__()
        self.v_threshold = v_threshold
        self.detach_reset = detach_reset
        self.spike_driven = False
        self.v = None

    @property
    def v(self) -> Tensor | None:
        if self._pending is not None:
            with torch.no_grad():
                self._v = self.settle(*self._pending)
            self._pending = None
        return self._v

    @v.setter
    def v(self, value: Tensor | None) -> None:
        self._v, self._pending = value, None

    def reset(self) -> None:
        """Forget the membrane potential."""
        self.v = None

    def charge(self, v: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def fire(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def reset_membrane(self, h: Tensor, s: Tensor) -> Tensor:
        raise NotImplementedError

    def settle(self, h: Tensor, s: Tensor) -> Tensor:
        """The membrane after a step that charged ``h`` and fired ``s``."""
        return self.reset_membrane(h, s)

    def kept_state(self, x: Tensor) -> Tensor | None:
        """The kept membrane potential, or None (no state yet, or a step of another shape)."""
        v = self.v
        return v if v is not None and v.shape == x.shape[1:] else None

    def initial_state(self, x: Tensor) -> Tensor:
        """The kept membrane potential, or zeros (no state yet, or a step of another shape)."""
        v = self.kept_state(x)
        return v if v is not None else torch.zeros_like(x[0])

    def forward(self, x: Tensor) -> Tensor:
        v = self.initial_state(x)
        out = []
        for t in range(x.shape[0]):
            h = self.charge(v, x[t])
            s = self.fire(h)
            v = self.reset_membrane(h, s.detach() if self.detach_reset else s)
            out.append(s)
        self.v = v.detach()
        return torch.stack(out)


class _LIFMultiStep(torch.autograd.Function):
    """Fused multi-step LIF (decay_input, hard reset to 0, sigmoid surrogate), BPTT in one backward."""

    @staticmethod
    def forward(ctx, x: Tensor, v0: Tensor, tau: float, vth: float, alpha: float, detach_reset: bool):  # noqa: D102
        h_seq = torch.empty_like(x)
        s_seq = torch.empty_like(x)
        v = v0
        for t in range(x.shape[0]):
            h = torch.add(x[t], v, alpha=tau - 1.0).div_(tau)
            s = h >= vth
            h_seq[t] = h
            s_seq[t] = s
            v = h.masked_fill(s, 0.0)
        ctx.save_for_backward(h_seq)
        ctx.cfg = (tau, vth, alpha, detach_reset)
        return s_seq, v

    @staticmethod
    def backward(ctx, grad_s: Tensor, grad_v_last: Tensor):  # noqa: D102
        (h_seq,) = ctx.saved_tensors
        tau, vth, alpha, detach_reset = ctx.cfg
        grad_x = torch.empty_like(h_seq)
        grad_v = grad_v_last if grad_v_last is not None else torch.zeros_like(h_seq[0])
        for t in range(h_seq.shape[0] - 1, -1, -1):
            h = h_seq[t]
            sg = torch.sigmoid(alpha * (h - vth))
            dsdh = alpha * sg * (1 - sg)
            keep = (h < vth).to(h.dtype)
            grad_h = grad_s[t] * dsdh + grad_v * keep
            if not detach_reset:
                grad_h = grad_h - grad_v * h * dsdh
            grad_x[t] = grad_h / tau
            grad_v = grad_h * (1.0 - 1.0 / tau)
        return grad_x, grad_v, None, None, None, None


class LIF(BaseNeuron):
    """Leaky integrate-and-fire: H = V + (X - V) / tau; S = H >= V_th; V = H * (1 - S) (hard reset to 0).

    ``decay_input=False`` (spikingjelly's option of the same name) charges H = V + X - V / tau, the charge
    of IE-LIF: at T = 1 the neuron then fires for X >= V_th instead of X >= 2 V_th.
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        detach_reset: bool = True,
        alpha: float = 4.0,
        decay_input: bool = True,
    ) -> None:
        super().__init__(v_threshold, detach_reset)
        self.tau = tau
        self.alpha = alpha
        self.decay_input = decay_input

    def charge(self, v: Tensor, x: Tensor) -> Tensor:
        return v + (x - v) / self.tau if self.decay_input else v + x - v / self.tau

    def fire(self, h: Tensor) -> Tensor:
        return SigmoidSurrogate.apply(h - self.v_threshold, self.alpha)

    def reset_membrane(self, h: Tensor, s: Tensor) -> Tensor:
        return h * (1.0 - s)

    def forward(self, x: Tensor) -> Tensor:
        v0 = self.initial_state(x)
        if not self.decay_input:  # (tau X + (tau - 1) V) / tau = V + X - V / tau
            x = x * self.tau
        s, v = _LIFMultiStep.apply(x, v0, self.tau, self.v_threshold, self.alpha, self.detach_reset)
        self.v = v.detach()
        return s

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, detach_reset={self.detach_reset}, "
            f"decay_input={self.decay_input}"
        )


class IELIF(BaseNeuron):
    """Integer-valued LIF (QSD-Transformer IE-LIF).

    Charge H = (1 - 1/tau) V + X (no input scaling, so at T = 1 it equals the official ``Multispike``);
    fire k = floor(clip(D H / V_th, 0, D) + 0.5), output k * ``spike_value`` (default V_th / D);
    reset subtracts the emitted charge k V_th / D. QSD's attention neuron (``Multispike_att``) is
    ``spike_value = 2 V_th / D``.
    """

    def __init__(
        self,
        levels: int = 4,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        spike_value: float | None = None,
        detach_reset: bool = True,
    ) -> None:
        super().__init__(v_threshold, detach_reset)
        self.levels = check_positive_int("levels (D)", levels)
        self.tau = tau
        self.spike_value = spike_value if spike_value is not None else v_threshold / levels

    def charge(self, v: Tensor, x: Tensor) -> Tensor:
        return v * (1.0 - 1.0 / self.tau) + x

    def count(self, h: Tensor) -> Tensor:
        """Integer spike count k in 0..D (straight-through gradient)."""
        y = h * (self.levels / self.v_threshold)
        if torch.is_grad_enabled() and y.requires_grad:
            return _IntegerFire.apply(y, self.levels)
        return y.clamp_(0, self.levels).add_(0.5).floor_()  # the same ops, in place on a fresh tensor

    def fire(self, h: Tensor) -> Tensor:
        return self.count(h) * self.spike_value

    def reset_membrane(self, h: Tensor, s: Tensor) -> Tensor:
        return h - s * (self.v_threshold / self.levels) / self.spike_value

    def settle(self, h: Tensor, s: Tensor, fresh: bool = False) -> Tensor:
        """The membrane after firing ``s`` from ``h``; ``fresh``: ``h`` is the input of a fresh neuron, whose
        charge 0 (1 - 1/tau) + X is X + 0 (the same value, and the same sign of a zero)."""
        return self.reset_membrane(h + 0.0 * (1.0 - 1.0 / self.tau) if fresh else h, s)

    def forward(self, x: Tensor) -> Tensor | Spikes:
        # The loop of BaseNeuron.forward, bit for bit, with three shortcuts: a fresh neuron fires from H = X,
        # the membrane after the last step is computed only when read (``v``), and T = 1 needs no stack.
        v = self.kept_state(x)
        counts, out = [], []
        for t in range(x.shape[0]):
            fresh = v is None
            h = x[t] if fresh else self.charge(v, x[t])
            k = self.count(h)
            grad = torch.is_grad_enabled() and k.requires_grad
            s = k * self.spike_value if grad or self.spike_driven else k.mul_(self.spike_value)
            if t + 1 < x.shape[0]:
                v = self.settle(h, s.detach() if self.detach_reset else s, fresh)
            counts.append(k)
            out.append(s)
        self._v, self._pending = None, (h.detach(), s.detach(), fresh)
        if not self.spike_driven:
            return out[0].unsqueeze(0) if len(out) == 1 else torch.stack(out)
        k = counts[0].unsqueeze(0) if len(counts) == 1 else torch.stack(counts)
        steps = torch.arange(self.levels, device=k.device, dtype=k.dtype).view(-1, *([1] * k.dim()))
        return Spikes((k.unsqueeze(0) > steps).to(k.dtype), self.spike_value)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, tau={self.tau}, v_threshold={self.v_threshold}, "
            f"spike_value={self.spike_value}"
        )


class MembraneRectifier(nn.Module):
    """Rectify the membrane-potential distribution before IE-LIF (QSD Fig. (b), "Rectify").

    Per-token standardisation over channels, then a learnable per-channel scale and shift. The official
    classification code has no such step; QSD models enable it with ``rectify=True``.
    """

    def __init__(self, channels: int, channel_dim: int = 2, eps: float = 1e-5) -> None:
        super().__init__()
        self.channel_dim = channel_dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, u: Tensor) -> Tensor:
        mean = u.mean(self.channel_dim, keepdim=True)
        var = u.var(self.channel_dim, keepdim=True, unbiased=False)
        shape = [1] * u.dim()
        shape[self.channel_dim] = -1
        return (u - mean) / torch.sqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)


class ReLUActivation(nn.Module):
    """The ANN counterpart of a neuron (``neuron='relu'``): stateless ReLU, not a spike source."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)

    def reset(self) -> None:
        """No state."""


def build_neuron(
    kind: str = "lif", levels: int = 4, role: str = "default", tau: float = 2.0, decay_input: bool = True
) -> nn.Module:
    """A neuron by name. ``role='attention'`` gives the attention-output neuron (LIF V_th 0.5 as in SDT;
    IE-LIF with spike value 2/D as QSD's ``Multispike_att``). ``relu`` builds the ANN counterpart.
    ``decay_input`` is the LIF's charge (see ``LIF``)."""
    check_choice("neuron", kind, NEURONS)
    check_choice("neuron role", role, ("default", "attention"))
    if kind == "relu":
        return ReLUActivation()
    if kind == "lif":
        return LIF(tau=tau, v_threshold=0.5 if role == "attention" else 1.0, decay_input=decay_input)
    return IELIF(levels=levels, tau=tau, spike_value=(2.0 if role == "attention" else 1.0) / levels)


def reset_neurons(module: nn.Module) -> None:
    """Reset the membrane state of every neuron inside ``module``."""
    for m in module.modules():
        if isinstance(m, BaseNeuron):
            m.reset()


def set_spike_driven(module: nn.Module, enabled: bool = True) -> None:
    """Switch every neuron to (or from) spike-driven inference (IE-LIF emits binary ``Spikes``)."""
    for m in module.modules():
        if isinstance(m, BaseNeuron):
            m.spike_driven = enabled

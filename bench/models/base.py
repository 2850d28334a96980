"""What every spiking backbone shares: options, validation, time steps, heads, features and inference mode."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from bench.errors import ConfigError, check_bits, check_choice, check_positive_int
from bench.nn.attention import ATTENTIONS
from bench.nn.checkpoint import checkpointed
from bench.nn.neurons import NEURONS, as_tensor, build_neuron, reset_neurons, set_spike_driven
from bench.nn.quant import QLinear
from bench.nn.shortcut import SHORTCUTS


@dataclass
class SpikeOptions:
    """Knobs every spiking backbone takes; validated on construction."""

    T: int = 4
    bits: int = 32
    bits_first: int | None = None
    bits_head: int | None = None
    attention: str = "sdsa"
    shortcut: str = "ms"
    neuron: str = "lif"
    levels: int = 4
    rectify: bool = False
    decay_input: bool = True  # LIF charge: V + (X - V) / tau (spikingjelly default), else V + X - V / tau

    def __post_init__(self) -> None:
        check_positive_int("T", self.T)
        check_bits("bits", self.bits)
        self.bits_first = check_bits("bits_first", self.bits if self.bits_first is None else self.bits_first)
        self.bits_head = check_bits("bits_head", self.bits if self.bits_head is None else self.bits_head)
        check_choice("attention", self.attention, ATTENTIONS)
        check_choice("shortcut", self.shortcut, SHORTCUTS)
        check_choice("neuron", self.neuron, NEURONS)
        check_positive_int("levels (D)", self.levels)

    def make_neuron(self, role: str = "default") -> nn.Module:
        return build_neuron(self.neuron, self.levels, role, decay_input=self.decay_input)

    @classmethod
    def from_kwargs(cls, options: dict) -> SpikeOptions:
        """Options from keyword arguments; an unknown key is a one-line ConfigError."""
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ConfigError(
                f"unknown option {unknown[0]!r}; allowed options: {', '.join(allowed)}, out_indices"
            )
        return cls(**options)


class SpikingBackbone(nn.Module):
    """Base class: subclasses build ``stem`` and ``forward_stages`` and fill ``feature_info``.

    ``forward(img)`` gives logits averaged over T; ``forward_features(img)`` gives the states of the stages in
    ``out_indices`` averaged over T, as ``[B, C, H, W]`` maps (membrane potentials for MS, spike counts
    otherwise). Neuron state is reset at the start of every forward.
    """

    family = "spiking"

    def __init__(self, opts: SpikeOptions, num_classes: int, out_indices: tuple[int, ...] | None) -> None:
        super().__init__()
        self.opts = opts
        self.T = opts.T
        self.num_classes = num_classes
        self.feature_info: list[dict] = []
        self._out_indices = out_indices
        self.grad_checkpointing = False

    @property
    def out_indices(self) -> tuple[int, ...]:
        n = len(self.feature_info)
        idx = self._out_indices if self._out_indices is not None else tuple(range(n))
        bad = [i for i in idx if not -n <= i < n]
        if bad:
            raise ValueError(f"out_indices={tuple(idx)} is not allowed; allowed values: 0..{n - 1}")
        return tuple(i % n for i in idx)

    def _build_head(self, channels: int) -> None:
        self.head_neuron = self.opts.make_neuron() if self.opts.shortcut == "ms" else None
        self.head = (
            QLinear(channels, self.num_classes, bits=self.opts.bits_head)
            if self.num_classes
            else nn.Identity()
        )

    def forward_stages(self, x: Tensor, upto: int | None = None) -> list[Tensor]:
        """States ``[T, B, C, H, W]`` after each stage (up to stage ``upto``)."""
        raise NotImplementedError

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of keeping them (training with gradients
        only): less memory for more time, the same outputs, gradients and BatchNorm statistics."""
        self.grad_checkpointing = enable

    def run_block(self, block: nn.Module, *args):
        """``block(*args)``; when ``set_grad_checkpointing`` is on and gradients are taken, checkpointed (an
        ``nn.Sequential`` one child at a time, so that its own forward hooks do not run then)."""
        if not (self.grad_checkpointing and self.training and torch.is_grad_enabled()):
            return block(*args)
        if isinstance(block, nn.Sequential):
            x = args[0]
            for child in block:
                x = checkpointed(child, x)
            return x
        return checkpointed(block, *args)

    def reset(self) -> None:
        """Reset the membrane state of every neuron."""
        reset_neurons(self)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps ``[B, C, H, W]`` of the stages in ``out_indices``."""
        idx = self.out_indices
        self.reset()
        states = self.forward_stages(x, upto=max(idx))
        return [as_tensor(states[i]).mean(0) for i in idx]

    def forward_head(self, state: Tensor) -> Tensor:
        """Logits from the last state: token mean -> (SN for MS) -> linear -> mean over T."""
        z = as_tensor(state).flatten(3).mean(3)
        if self.head_neuron is not None:
            z = self.head_neuron(z)
        return self.head(z).mean(0) if self.num_classes else as_tensor(z).mean(0)

    def forward(self, x: Tensor) -> Tensor:
        self.reset()
        return self.forward_head(self.forward_stages(x)[-1])

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and the pooled pre-head feature ``[B, C]`` (token and time mean of the last state)."""
        self.reset()
        state = self.forward_stages(x)[-1]
        return self.forward_head(state), as_tensor(state).flatten(3).mean(3).mean(0)

    def spike_driven_(self, enabled: bool = True, fuse: bool = False) -> SpikingBackbone:
        """Switch to spike-driven inference (eval mode, IE-LIF levels as binary spikes over D virtual steps)
        or back to the trainable network.

        The default is exact: every layer weights the accumulated spike count, so the output is bitwise the
        training-mode (eval) output in float32. ``fuse=True`` is an approximation for deployment studies: it
        folds the re-parameterised convs (RepConv, SepConv's DW+PW+BN) into one conv fed by spikes, whose
        float rounding can move pre-activations across IE-LIF level boundaries; ``profile_model`` records its
        level-flip rate and logit difference (``spike_driven.fused``)."""
        if enabled:
            self.eval()
        for m in list(self.modules()):
            if hasattr(m, "fuse") and callable(m.fuse):
                m.fuse() if enabled and fuse else m.unfuse()
        set_spike_driven(self, enabled)
        return self

    @torch.no_grad()
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

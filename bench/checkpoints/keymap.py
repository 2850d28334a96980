"""Explicit key maps between an official checkpoint layout and a spikebench model's state dict.

A ``KeyMap`` is a list of ``Pair``s (one official tensor -> one of ours, with a shape conversion where the
layouts differ) and of ``Dropped`` tensors (official tensors the official forward never uses, with their
shapes and the reason). Maps are built from the model they load into, so the same table converts in both
directions: ``to_ours`` (loading) and ``to_official`` (tests write a state dict in the official layout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from bench.errors import ConfigError

BN_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _same(t: Tensor) -> Tensor:
    return t


@dataclass
class Pair:
    """Official tensor ``official`` is our ``ours`` after ``convert`` (``invert`` goes back)."""

    official: str
    ours: str
    convert: Callable[[Tensor], Tensor] = _same
    invert: Callable[[Tensor], Tensor] = _same


@dataclass
class Dropped:
    """An official tensor the official forward never reads: dropped by name, reported."""

    official: str
    shape: tuple[int, ...]
    reason: str


@dataclass
class KeyMap:
    """The pairs and dropped tensors of one layout for one model."""

    layout: str
    pairs: list[Pair] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)

    def add(self, official: str, ours: str, convert=_same, invert=_same) -> None:
        self.pairs.append(Pair(official, ours, convert, invert))

    def drop(self, official: str, shape: tuple[int, ...], reason: str) -> None:
        self.dropped.append(Dropped(official, tuple(shape), reason))

    def bn(self, official: str, ours: str) -> None:
        for leaf in BN_LEAVES:
            self.add(f"{official}.{leaf}", f"{ours}.{leaf}")

    def conv(self, official: str, ours: str, model: nn.Module, conv1d: bool = False) -> None:
        """A conv (or linear) layer: weight and bias; ``conv1d`` official weights are ``[O, I, 1]``."""
        layer = model.get_submodule(ours)
        if conv1d:
            self.add(
                f"{official}.weight", f"{ours}.weight", lambda t: t.unsqueeze(-1), lambda t: t.squeeze(-1)
            )
        else:
            self.add(f"{official}.weight", f"{ours}.weight")
        if getattr(layer, "bias", None) is not None:
            self.add(f"{official}.bias", f"{ours}.bias")


def _short(keys: list[str], n: int = 6) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def to_ours(keymap: KeyMap, state: dict[str, Tensor], model: nn.Module, source: str) -> tuple[dict, dict]:
    """Our state dict from an official one, and the report; a one-line ConfigError lists every key that
    is missing, unexpected or of the wrong shape."""
    wanted = {p.official for p in keymap.pairs}
    dropped = {d.official: d for d in keymap.dropped}
    missing = sorted(wanted - set(state))
    unexpected = sorted(set(state) - wanted - set(dropped))
    if missing or unexpected:
        parts = [
            f"missing {len(missing)}: {_short(missing)}" if missing else "",
            f"unexpected {len(unexpected)}: {_short(unexpected)}" if unexpected else "",
        ]
        raise ConfigError(
            f"{source}: checkpoint does not match the {keymap.layout} layout of this model; "
            + "; ".join(p for p in parts if p)
        )
    target = model.state_dict()
    out, bad = {}, []
    for p in keymap.pairs:
        t = p.convert(state[p.official])
        if p.ours not in target or tuple(t.shape) != tuple(target[p.ours].shape):
            want = tuple(target[p.ours].shape) if p.ours in target else "absent"
            bad.append(f"{p.official} {tuple(state[p.official].shape)} -> {p.ours} {want}")
        out[p.ours] = t
    if bad:
        raise ConfigError(
            f"{source}: {len(bad)} tensors have the wrong shape for this model: {_short(bad, 4)}"
        )
    hit = [d for d in keymap.dropped if d.official in state]
    report = dict(
        layout=keymap.layout,
        tensors_loaded=len(keymap.pairs),
        values_loaded=int(sum(state[p.official].numel() for p in keymap.pairs)),
        dropped=[d.official for d in hit],
        dropped_values=int(sum(state[d.official].numel() for d in hit)),
        dropped_reasons=sorted({d.reason for d in hit}),
    )
    return out, report


@torch.no_grad()
def to_official(keymap: KeyMap, model: nn.Module, seed: int = 0) -> dict[str, Tensor]:
    """The model's weights written in the official layout (dropped tensors filled with random values)."""
    ours = model.state_dict()
    out = {p.official: p.invert(ours[p.ours].clone()) for p in keymap.pairs}
    g = torch.Generator().manual_seed(seed)
    for d in keymap.dropped:
        out[d.official] = torch.randn(d.shape, generator=g)
    return out

"""``SpikeTensor``: a binary spike tensor marked as such (the measurement hooks mark neuron outputs).

The mark survives only the ops that keep spikes binary, so a layer's input kind is known from where it came
from.
"""

from __future__ import annotations

import torch
from torch import Tensor

# ops whose output is binary when their (first) tensor input is: views, copies, max-pooling, selection
_KEEPS_SPIKES = frozenset(
    """__getitem__ flatten unflatten view view_as reshape reshape_as transpose permute movedim squeeze
    unsqueeze t expand expand_as repeat flip roll narrow select index_select contiguous clone detach to
    float double half max_pool1d max_pool2d max_pool3d adaptive_max_pool1d adaptive_max_pool2d chunk split
    unbind""".split()
)
_BOTH_SPIKES = frozenset(("mul", "__mul__", "__rmul__", "logical_and", "__and__", "minimum"))
_ALL_SPIKES = frozenset(("cat", "concat", "concatenate", "stack"))


class SpikeTensor(Tensor):
    """A binary spike tensor. The mark is kept by the ops that keep spikes binary (views, copies,
    max-pooling, zero padding, concatenation, the product of two spike tensors); every other op gives a
    plain Tensor. The data is the tensor's own (``mark_spikes`` makes no copy)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        return _mark(out) if _keeps_spikes(getattr(func, "__name__", ""), args, kwargs) else out


def _keeps_spikes(name: str, args: tuple, kwargs: dict) -> bool:
    if not args:
        return False
    if name in _KEEPS_SPIKES:
        return isinstance(args[0], SpikeTensor)
    if name in _BOTH_SPIKES:
        return len(args) == 2 and all(isinstance(a, SpikeTensor) for a in args)
    if name in _ALL_SPIKES:
        return all(isinstance(a, SpikeTensor) for a in args[0])
    if name == "pad":  # zero padding only
        mode = args[2] if len(args) > 2 else kwargs.get("mode", "constant")
        value = args[3] if len(args) > 3 else kwargs.get("value")
        return isinstance(args[0], SpikeTensor) and mode == "constant" and not value
    return False


def _mark(out: object) -> object:
    if isinstance(out, Tensor):
        return out.as_subclass(SpikeTensor)
    if isinstance(out, (tuple, list)):
        return type(out)(_mark(o) for o in out)
    return out


def mark_spikes(x: Tensor) -> SpikeTensor:
    """``x`` (binary) marked as a spike tensor, without a copy."""
    return x if isinstance(x, SpikeTensor) else x.as_subclass(SpikeTensor)


def plain(x: Tensor) -> Tensor:
    """The same data as a plain Tensor (drops a ``SpikeTensor`` mark)."""
    return x.as_subclass(Tensor) if isinstance(x, SpikeTensor) else x

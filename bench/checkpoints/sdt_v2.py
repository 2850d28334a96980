"""BICLab/Spike-Driven-Transformer-V2 (Meta-SpikeFormer) checkpoints -> ``bench.models.sdt_v2``.

Names: see ``bench.checkpoints.metaformer`` (plain ``nn.Conv2d``/``nn.Conv1d``, LIF neurons hold no
tensors). Checkpoints trained with distillation (``kd=True``) carry a second classifier ``head_kd``; the
official eval output is ``(head(x) + head_kd(x)) / 2``, which for two linear heads on the same input is one
linear head with the mean weight and bias: we fold it (exact) and report it.
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.checkpoints.keymap import KeyMap
from bench.checkpoints.metaformer import metaformer_keymap

LAYOUT = "sdt_v2"
FAMILIES = ("sdt_v2",)
SIGNATURE = "downsample1_1.encode_conv.weight"


def matches(state: dict[str, Tensor]) -> bool:
    """Meta-SpikeFormer names without LSQ step sizes."""
    return SIGNATURE in state and "downsample1_1.encode_conv.alpha" not in state


def keymap(model: nn.Module) -> KeyMap:
    """The SDT v2 key map for ``model`` (a ``SpikingMetaFormer`` with LIF neurons)."""
    return metaformer_keymap(LAYOUT, model)


def prepare(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Fold ``head_kd`` into ``head`` (the official eval output); return the notes for the report."""
    if "head_kd.weight" not in state:
        return state, []
    state = dict(state)
    for leaf in ("weight", "bias"):
        state[f"head.{leaf}"] = (state[f"head.{leaf}"] + state.pop(f"head_kd.{leaf}")) / 2
    return state, ["head_kd folded into head: mean of both heads, as the official eval output"]

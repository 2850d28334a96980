"""bollossom/QSD-Transformer checkpoints -> ``bench.models.qsd``.

Names: see ``bench.checkpoints.metaformer``, every conv and the head an LSQ layer (``quan_w.py``,
``_quan_base_plus.py``): ``weight``, ``bias``, ``alpha`` ``[C_out]`` (per-channel step, ours
``quantizer.step``), ``init_state`` ``[1]`` (ours ``quantizer.initialized``: a loaded step is always marked
initialised, whatever ``init_state`` says) and an activation quantizer ``act`` (``ActLSQ``: ``alpha`` and
``zero_point`` ``[C_in]``, ``init_state``, ``signed`` ``[1]``) whose forward returns its input unchanged:
dropped and reported. Layer scale: ``block{3,4}.{j}.layer_scale{1,2}``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.checkpoints.keymap import KeyMap
from bench.checkpoints.metaformer import metaformer_keymap

LAYOUT = "qsd"
FAMILIES = ("qsd",)
SIGNATURE = "downsample1_1.encode_conv.alpha"
ACT_REASON = "QSD ActLSQ: forward is the identity"


def matches(state: dict[str, Tensor]) -> bool:
    """Meta-SpikeFormer names with LSQ step sizes."""
    return SIGNATURE in state


def _lsq(km: KeyMap, official: str, ours: str, model: nn.Module, conv1d: bool = False) -> None:
    km.conv(official, ours, model, conv1d)
    km.add(f"{official}.alpha", f"{ours}.quantizer.step")
    km.add(
        f"{official}.init_state",
        f"{ours}.quantizer.initialized",
        lambda t: torch.ones((), dtype=torch.bool),
        lambda t: torch.ones(1),
    )
    layer = model.get_submodule(ours)
    cin = getattr(layer, "in_channels", None) or layer.in_features
    for leaf, shape in (("alpha", (cin,)), ("zero_point", (cin,)), ("init_state", (1,)), ("signed", (1,))):
        km.drop(f"{official}.act.{leaf}", shape, ACT_REASON)


def keymap(model: nn.Module) -> KeyMap:
    """The QSD key map for ``model`` (a ``SpikingMetaFormer`` with LSQ layers and layer scale)."""
    return metaformer_keymap(LAYOUT, model, conv=_lsq, layer_scale=True)

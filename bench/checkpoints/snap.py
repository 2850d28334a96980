"""snap-research/EfficientFormer (v1, ``models/efficientformer.py``) checkpoints -> efficientformer_l1/3/7.

The original names differ from timm's by module paths only (the inverse of timm's ``checkpoint_filter_fn``):
``patch_embed.{0,1,3,4}`` = ``stem.{conv1,norm1,conv2,norm2}``; ``network`` alternates stages and
down-samplings, so stage s's blocks are ``network.{2s}.{b}`` and its down-sampling ``network.{2s-1}.{proj,
norm}`` (timm ``stages.{s}.downsample.{conv,norm}``); ``layer_scale_{1,2}`` = ``ls{1,2}.gamma``;
``dist_head`` = ``head_dist``. Released files hold ``{"model": state_dict}``. EfficientFormerV2's
original layout is not supported (timm's own v2 files are).
"""

from __future__ import annotations

import re

from torch import Tensor, nn

from bench.checkpoints.keymap import KeyMap
from bench.checkpoints.timm_files import _timm_keys

LAYOUT = "snap_efficientformer"
FAMILIES = ("efficientformer",)
SIGNATURE = "patch_embed.0.weight"

_STEM = {
    "stem.conv1": "patch_embed.0",
    "stem.norm1": "patch_embed.1",
    "stem.conv2": "patch_embed.3",
    "stem.norm2": "patch_embed.4",
}


def matches(state: dict[str, Tensor]) -> bool:
    """Original names: a ``patch_embed`` Sequential and a ``network`` list."""
    return SIGNATURE in state and any(k.startswith("network.") for k in state)


def official_name(timm_key: str) -> str:
    """The original snap name of a timm EfficientFormer (v1) tensor."""
    k = timm_key
    for new, old in _STEM.items():
        if k.startswith(new + "."):
            k = old + k[len(new) :]
    k = re.sub(r"^stages\.(\d+)\.blocks\.", lambda m: f"network.{2 * int(m.group(1))}.", k)
    k = re.sub(r"^stages\.(\d+)\.downsample\.conv\.", lambda m: f"network.{2 * int(m.group(1)) - 1}.proj.", k)
    k = re.sub(r"^stages\.(\d+)\.downsample\.norm\.", lambda m: f"network.{2 * int(m.group(1)) - 1}.norm.", k)
    k = re.sub(r"\.ls([12])\.gamma$", r".layer_scale_\1", k)
    return re.sub(r"^head_dist\.", "dist_head.", k)


def keymap(model: nn.Module) -> KeyMap:
    """Original snap name -> ``net.<timm name>`` for every non-quantizer tensor of ``model``."""
    if not model.timm_name.startswith("efficientformer_"):
        raise ValueError(f"the snap layout is supported for EfficientFormer v1 only, not {model.timm_name}")
    km = KeyMap(LAYOUT)
    for k in _timm_keys(model):
        km.add(official_name(k), f"net.{k}")
    return km

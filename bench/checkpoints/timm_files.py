"""timm state dicts (MobileViT v1/v2, EfficientFormer v1/v2: ``timm.create_model(...).state_dict()`` or the
``pytorch_model.bin`` / ``model.safetensors`` files timm publishes) -> the timm-backed spikebench models.

Our ``TimmBackbone`` holds timm's own module under ``net``, so the map is ``<timm name>`` -> ``net.<timm
name>`` for every tensor; LSQ step sizes of a quantized variant (``bits`` < 32) have no timm counterpart and
are initialised on the first forward (listed in the report).
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.checkpoints.keymap import KeyMap

LAYOUT = "timm"
FAMILIES = ("mobilevit", "mobilevit_v2", "efficientformer", "efficientformer_v2")


def _timm_keys(model: nn.Module) -> list[str]:
    return [k[len("net.") :] for k in model.state_dict() if k.startswith("net.") and ".quantizer." not in k]


def matches_model(state: dict[str, Tensor], model: nn.Module) -> bool:
    """Most of the model's timm names are present."""
    keys = _timm_keys(model)
    return bool(keys) and sum(k in state for k in keys) >= 0.5 * len(keys)


def keymap(model: nn.Module) -> KeyMap:
    """``<timm name>`` -> ``net.<timm name>`` for every non-quantizer tensor of ``model``."""
    km = KeyMap(LAYOUT)
    for k in _timm_keys(model):
        km.add(k, f"net.{k}")
    return km

"""apple/ml-cvnets MobileViT (v1) checkpoints -> ``mobilevit_xxs/xs/s`` (timm modules under ``net``).

Original names (``cvnets/models/classification/mobilevit.py``, ``modules/mobilenetv2.py``,
``modules/mobilevit_block.py``, ``modules/transformer.py``, ``layers/conv_layer.py``): every conv is a
``ConvLayer2d`` holding ``block.conv`` and ``block.norm`` (BatchNorm); ``conv_1`` (stem), ``layer_1`` ...
``layer_5`` (timm ``stages.0-4``), ``conv_1x1_exp`` (timm ``final_conv``), ``classifier.fc``. An
``InvertedResidual`` is ``block.{exp_1x1, conv_3x3, red_1x1}`` (timm ``conv1_1x1, conv2_kxk, conv3_1x1``); a
``MobileViTBlock`` is ``local_rep.{conv_3x3, conv_1x1}`` (the 1x1 has no norm), ``global_rep.{i}`` transformer
layers (``pre_norm_mha.0`` LayerNorm, ``pre_norm_mha.1.{qkv_proj, out_proj}``, ``pre_norm_ffn.{0, 1, 4}``)
followed by ``global_rep.{n}`` LayerNorm (timm ``norm``), ``conv_proj`` and ``fusion`` (timm ``conv_fusion``).
MobileViTv2's cvnets layout is not supported (timm's own v2 files are).
"""

from __future__ import annotations

import re

from torch import Tensor, nn

from bench.checkpoints.keymap import KeyMap
from bench.checkpoints.timm_files import _timm_keys

LAYOUT = "cvnets_mobilevit"
FAMILIES = ("mobilevit",)
SIGNATURE = "conv_1.block.conv.weight"

_CONV = {
    "conv1_1x1": "block.exp_1x1",
    "conv2_kxk": "block.conv_3x3",
    "conv3_1x1": "block.red_1x1",
    "conv_kxk": "local_rep.conv_3x3",
    "conv_proj": "conv_proj",
    "conv_fusion": "fusion",
}
_TRANSFORMER = {
    "norm1": "pre_norm_mha.0",
    "attn.qkv": "pre_norm_mha.1.qkv_proj",
    "attn.proj": "pre_norm_mha.1.out_proj",
    "norm2": "pre_norm_ffn.0",
    "mlp.fc1": "pre_norm_ffn.1",
    "mlp.fc2": "pre_norm_ffn.4",
}
_TOP = {"stem": "conv_1", "final_conv": "conv_1x1_exp"}


def matches(state: dict[str, Tensor]) -> bool:
    """cvnets names: ``conv_1.block.conv`` and ``layer_<i>``."""
    return SIGNATURE in state and any(k.startswith("layer_1.") for k in state)


def _conv_norm(module: str, rest: str) -> str:
    kind, leaf = rest.split(".", 1)  # "conv.weight" or "bn.running_mean"
    return f"{module}.block.{'conv' if kind == 'conv' else 'norm'}.{leaf}"


def official_name(timm_key: str, n_transformer: dict[str, int]) -> str:
    """The cvnets name of a timm MobileViT (v1) tensor; ``n_transformer``: transformer layers per block."""
    top, _, rest = timm_key.partition(".")
    if top in _TOP:
        return _conv_norm(_TOP[top], rest)
    if top == "head":
        return f"classifier.{rest}"
    m = re.match(r"stages\.(\d+)\.(\d+)\.(.+)$", timm_key)
    if m is None:
        raise ValueError(f"no cvnets name for {timm_key}")
    stage, block, rest = int(m.group(1)), m.group(2), m.group(3)
    prefix = f"layer_{stage + 1}.{block}"
    name, _, tail = rest.partition(".")
    if name in _CONV:
        return f"{prefix}.{_conv_norm(_CONV[name], tail)}"
    if rest == "conv_1x1.weight":
        return f"{prefix}.local_rep.conv_1x1.block.conv.weight"
    if name == "norm":
        return f"{prefix}.global_rep.{n_transformer[f'stages.{stage}.{block}']}.{tail}"
    t = re.match(r"transformer\.(\d+)\.(.+)\.(weight|bias)$", rest)
    if t is not None and t.group(2) in _TRANSFORMER:
        return f"{prefix}.global_rep.{t.group(1)}.{_TRANSFORMER[t.group(2)]}.{t.group(3)}"
    raise ValueError(f"no cvnets name for {timm_key}")


def keymap(model: nn.Module) -> KeyMap:
    """cvnets name -> ``net.<timm name>`` for every non-quantizer tensor of a MobileViT v1 ``model``."""
    n_transformer = {
        name: len(mod.transformer) for name, mod in model.net.named_modules() if hasattr(mod, "transformer")
    }
    km = KeyMap(LAYOUT)
    for k in _timm_keys(model):
        km.add(official_name(k, n_transformer), f"net.{k}")
    return km

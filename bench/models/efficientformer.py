"""EfficientFormer v1 (Li et al., NeurIPS 2022) and v2 (ICCV 2023) from timm's modules.

Attention biases are tables for one token grid, so a model is built for one input size: v2 takes timm's
``img_size``; for v1 (timm fixes 7 x 7 = 224 px) the learned tables are resampled to ``img_size / 32``.
Feature levels: strides 4, 8, 16, 32. timm's v1/v2 classifiers have a distillation head (``head_dist``);
in eval mode the logits are the mean of both heads, as timm does.
"""

from __future__ import annotations

from bench.errors import ConfigError
from bench.models.timm_wrap import TimmBackbone, register_timm_family, resize_attention_biases

# name: (timm name, img size, classes, paper params M)
EFFICIENTFORMER_CFGS = {
    "efficientformer_l1": ("efficientformer_l1", 224, 1000, 12.29),
    "efficientformer_l3": ("efficientformer_l3", 224, 1000, 31.41),
    "efficientformer_l7": ("efficientformer_l7", 224, 1000, 82.23),
    "efficientformerv2_s0": ("efficientformerv2_s0", 224, 1000, 3.5),
    "efficientformerv2_s1": ("efficientformerv2_s1", 224, 1000, 6.1),
    "efficientformerv2_s2": ("efficientformerv2_s2", 224, 1000, 12.6),
    "efficientformerv2_l": ("efficientformerv2_l", 224, 1000, 26.1),
    "efficientformer_tiny": ("efficientformerv2_s0", 64, 10, None),
}


def build_efficientformer(timm_name: str, img_size: int = 224, **kw) -> TimmBackbone:
    """An EfficientFormer for ``img_size`` inputs (v2: timm's own; v1: attention biases resampled)."""
    if not isinstance(img_size, int) or img_size < 32 or img_size % 32:
        raise ConfigError(
            f"img_size={img_size!r} is not allowed for {timm_name}; allowed values: multiples of 32"
        )
    if timm_name.startswith("efficientformerv2"):
        return TimmBackbone(
            timm_name, img_size=img_size, fixed_size=True, timm_kwargs={"img_size": img_size}, **kw
        )
    model = TimmBackbone(timm_name, img_size=img_size, fixed_size=True, **kw)
    if img_size != 224:
        resize_attention_biases(model.net, img_size // 32)
    return model


register_timm_family(EFFICIENTFORMER_CFGS, "efficientformer", build_efficientformer, "EfficientFormer")

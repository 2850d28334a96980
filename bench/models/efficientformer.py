"""EfficientFormer v1 (Li et al., NeurIPS 2022) and v2 (ICCV 2023) from timm's modules.

Attention biases are tables for one token grid, so a model is built for one input size: v2 takes timm's
``img_size``; for v1 (timm fixes 7 x 7 = 224 px) the learned tables are resampled to ``img_size / 32``.
Feature levels: strides 4, 8, 16, 32. timm's v1/v2 classifiers have a distillation head (``head_dist``);
in eval mode the logits are the mean of both heads, as timm does.
"""

from __future__ import annotations

from bench.errors import ConfigError
from bench.models.timm_wrap import TimmBackbone, resize_attention_biases
from bench.registry import register_model

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


def _register(name: str) -> None:
    timm_name, img, classes, params = EFFICIENTFORMER_CFGS[name]
    v2 = "v2" in timm_name

    def factory(img_size: int = img, **overrides) -> TimmBackbone:
        if not isinstance(img_size, int) or img_size < 32 or img_size % 32:
            raise ConfigError(
                f"img_size={img_size!r} is not allowed for {name}; allowed values: multiples of 32"
            )
        kw = dict(num_classes=classes)
        kw.update(overrides)
        if v2:
            return TimmBackbone(
                timm_name, img_size=img_size, fixed_size=True, timm_kwargs={"img_size": img_size}, **kw
            )
        model = TimmBackbone(timm_name, img_size=img_size, fixed_size=True, **kw)
        if img_size != 224:
            resize_attention_biases(model.net, img_size // 32)
        return model

    factory.__name__ = name
    factory.__doc__ = f"EfficientFormer {name} (timm {timm_name}), {img} px."
    family = "efficientformer_v2" if v2 else "efficientformer"
    register_model(
        family, tiny=name.endswith("tiny"), paper=dict(params_m=params, img_size=img, timm=timm_name)
    )(factory)


for _name in EFFICIENTFORMER_CFGS:
    _register(_name)

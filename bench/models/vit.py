"""Plain ViT (Dosovitskiy et al., ICLR 2021) from timm's modules: ViTDet's reference backbone.

timm's ``VisionTransformer`` with ``dynamic_img_size=True`` (the position embedding is resampled to any input
divisible by the patch size, as ViTDet does). Every block gives one map at the patch stride (16; one entry
per block in ``feature_info``); ``out_indices`` picks blocks and defaults to the last one, the single map
ViTDet's simple feature pyramid is built from.

``quant_groups`` selects which linear layers of the blocks are quantized to ``bits`` (QFD's ViT/Swin
protocol, arXiv 2307.10638: attention and MLP linears; its MHA-vs-MLP ablation quantizes one group only):
``all`` (qkv, proj, fc1, fc2), ``attn`` (qkv, proj), ``mlp`` (fc1, fc2); the other group stays full
precision. The patch embedding follows ``bits_first`` and the classifier ``bits_head``.
"""

from __future__ import annotations

from bench.errors import check_bits, check_choice
from bench.models.timm_wrap import TimmBackbone
from bench.nn.quant import QUANTIZED_LAYERS
from bench.registry import register_variant

QUANT_GROUPS = ("all", "attn", "mlp")

# name: (timm name, img size, classes, architecture overrides, paper params M)
VIT_CFGS = {
    "vit_tiny_patch16_224": ("vit_tiny_patch16_224", 224, 1000, {}, 5.7),
    "vit_small_patch16_224": ("vit_small_patch16_224", 224, 1000, {}, 22.1),
    "vit_base_patch16_224": ("vit_base_patch16_224", 224, 1000, {}, 86.6),
    "vit_tiny": ("vit_tiny_patch16_224", 64, 10, dict(embed_dim=64, depth=4, num_heads=2), None),
}


class ViTBackbone(TimmBackbone):
    """timm's VisionTransformer with ``bits`` on a selectable group of linears (``quant_groups``)."""

    family = "vit"

    def __init__(
        self,
        timm_name: str,
        num_classes: int = 1000,
        bits: int = 32,
        bits_first: int | None = None,
        bits_head: int | None = None,
        quant_groups: str = "all",
        out_indices: tuple[int, ...] | None = None,
        img_size: int = 224,
        arch: dict | None = None,
    ) -> None:
        self.quant_groups = check_choice("quant_groups", quant_groups, QUANT_GROUPS)
        bits = check_bits("bits", bits)
        bits_first = check_bits("bits_first", bits if bits_first is None else bits_first)
        bits_head = check_bits("bits_head", bits if bits_head is None else bits_head)
        self.arch = dict(arch or {})  # timm keyword overrides (embed_dim, depth, num_heads, patch_size, ...)
        timm_kwargs = dict(img_size=img_size, dynamic_img_size=True, **self.arch)
        super().__init__(
            timm_name,
            num_classes,
            bits=32,  # every Conv2d/Linear becomes a 32-bit QConv2d/QLinear; bits are set per group below
            out_indices=(-1,) if out_indices is None else out_indices,
            img_size=img_size,
            timm_kwargs=timm_kwargs,
        )
        self.bits = bits
        self.layer_bits = {}
        for name, m in self.net.named_modules():
            if isinstance(m, QUANTIZED_LAYERS):
                b = self._group_bits(name, bits, bits_first, bits_head)
                m._init_quant(b, m.weight.shape[0])  # same state as a layer built with bits=b
                self.layer_bits[name] = b

    def _group_bits(self, name: str, bits: int, bits_first: int, bits_head: int) -> int:
        if name.startswith("patch_embed."):
            return bits_first
        if name.startswith("head"):
            return bits_head
        group = "attn" if ".attn." in name else "mlp" if ".mlp." in name else None
        return bits if self.quant_groups in ("all", group) else 32


for _name, (_timm, _img, _classes, _arch, _params) in VIT_CFGS.items():
    register_variant(
        _name,
        "vit",
        ViTBackbone,
        dict(timm_name=_timm, num_classes=_classes, img_size=_img, arch=_arch),
        doc=f"ViT {_name} (timm {_timm}), {_img} px, patch 16.",
        paper=dict(params_m=_params, img_size=_img, timm=_timm),
    )

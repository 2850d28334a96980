"""MobileViT v1 (Mehta & Rastegari, ICLR 2022) and v2 (arXiv 2206.02680) from timm's modules.

Names are the papers' (``mobilevit_xxs|xs|s``, ``mobilevitv2_050 ... 200``, as in timm). Feature levels:
strides 2, 4, 8, 16, 32 (the last is the 1x1 expansion conv). Any input divisible by 32.
"""

from __future__ import annotations

from bench.models.timm_wrap import TimmBackbone, register_timm_family

# name: (timm name, img size, classes, paper params M)
MOBILEVIT_CFGS = {
    "mobilevit_xxs": ("mobilevit_xxs", 256, 1000, 1.3),
    "mobilevit_xs": ("mobilevit_xs", 256, 1000, 2.3),
    "mobilevit_s": ("mobilevit_s", 256, 1000, 5.6),
    "mobilevitv2_050": ("mobilevitv2_050", 256, 1000, 1.4),
    "mobilevitv2_075": ("mobilevitv2_075", 256, 1000, None),
    "mobilevitv2_100": ("mobilevitv2_100", 256, 1000, None),
    "mobilevitv2_125": ("mobilevitv2_125", 256, 1000, None),
    "mobilevitv2_150": ("mobilevitv2_150", 256, 1000, None),
    "mobilevitv2_175": ("mobilevitv2_175", 256, 1000, None),
    "mobilevitv2_200": ("mobilevitv2_200", 256, 1000, 18.5),
    "mobilevit_tiny": ("mobilevit_xxs", 64, 10, None),
}


register_timm_family(MOBILEVIT_CFGS, "mobilevit", TimmBackbone, "MobileViT")

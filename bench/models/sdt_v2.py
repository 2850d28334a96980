"""Spike-driven Transformer V2 / Meta-SpikeFormer (Yao et al., ICLR 2024, arXiv 2404.03663).

The MetaFormer macro of ``metaformer.py`` with LIF neurons, RepConv Q/K/V, SDSA-3 (``Q (K^T V) * 0.125``
then LIF V_th 0.5) and no layer scale; official code trains at T = 1 and fine-tunes at T = 4.
"""

from __future__ import annotations

from bench.models.metaformer import SpikingMetaFormer
from bench.registry import register_variant

# name: (dims, depth, heads, classes, T)
SDTV2_CFGS = {
    "sdtv2_8_384": ((96, 192, 384, 480), 8, 8, 1000, 4),
    "sdtv2_8_512": ((128, 256, 512, 640), 8, 8, 1000, 4),
    "sdtv2_tiny": ((16, 32, 64, 80), 4, 4, 10, 4),
}
# The CPU variant only. At 32 px, stages 3-4 hold 2 x 2 tokens of 16 channels per head (paper: 14 x 14 of 64),
# so Q (K^T V) sums 196x fewer spike products: at the paper's 0.125 the attention neuron never fires and 12
# BNs behind such neurons see constants (initial gradients ~1e17); attn_scale 4 keeps it firing. T = 4 (the
# paper's fine-tuned setting; tiny was T = 1): with binary LIF spikes at T = 1 the BN batch statistics of
# 2 x 2-token stages are too sparse to match their running estimates, and the network is silent in eval mode.
TINY = dict(attn_scale=4.0)
PAPER_PARAMS_M = {"sdtv2_8_384": 31.3, "sdtv2_8_512": 55.4}


for _name, (_dims, _depth, _heads, _classes, _T) in SDTV2_CFGS.items():
    register_variant(
        _name,
        "sdt_v2",
        SpikingMetaFormer,
        dict(
            dims=_dims,
            depth=_depth,
            heads=_heads,
            num_classes=_classes,
            T=_T,
            attn_scale=0.125,
            neuron="lif",
            bits=32,
        )
        | (TINY if _name.endswith("tiny") else {}),
        doc=f"Meta-SpikeFormer {_name}: dims {_dims}, depth {_depth}, T {_T}.",
        paper=dict(params_m=PAPER_PARAMS_M.get(_name), img_size=32 if _name.endswith("tiny") else 224),
    )

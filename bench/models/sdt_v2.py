"""Spike-driven Transformer V2 / Meta-SpikeFormer (Yao et al., ICLR 2024, arXiv 2404.03663).

The MetaFormer macro of ``metaformer.py`` with LIF neurons, RepConv Q/K/V, SDSA-3 (``Q (K^T V) * 0.125``
then LIF V_th 0.5) and no layer scale; official code trains at T = 1 and fine-tunes at T = 4.
"""

from __future__ import annotations

from bench.models.metaformer import SpikingMetaFormer
from bench.registry import register_model

# name: (dims, depth, heads, classes, T)
SDTV2_CFGS = {
    "sdtv2_8_384": ((96, 192, 384, 480), 8, 8, 1000, 4),
    "sdtv2_8_512": ((128, 256, 512, 640), 8, 8, 1000, 4),
    "sdtv2_tiny": ((16, 32, 64, 80), 4, 4, 10, 1),
}
PAPER_PARAMS_M = {"sdtv2_8_384": 31.3, "sdtv2_8_512": 55.4}


def _register(name: str) -> None:
    dims, depth, heads, classes, T = SDTV2_CFGS[name]

    def factory(**overrides) -> SpikingMetaFormer:
        kw = dict(
            dims=dims,
            depth=depth,
            heads=heads,
            num_classes=classes,
            T=T,
            attn_scale=0.125,
            neuron="lif",
            bits=32,
        )
        kw.update(overrides)
        return SpikingMetaFormer(**kw)

    factory.__name__ = name
    factory.__doc__ = f"Meta-SpikeFormer {name}: dims {dims}, depth {depth}, T {T}."
    register_model(
        "sdt_v2",
        tiny=name.endswith("tiny"),
        paper=dict(params_m=PAPER_PARAMS_M.get(name), img_size=32 if name.endswith("tiny") else 224),
    )(factory)


for _name in SDTV2_CFGS:
    _register(_name)

"""QSD-Transformer (Qiu et al., ICLR 2025, arXiv 2501.13492): quantized spike-driven transformer.

The Meta-SpikeFormer macro with every Conv/Linear an LSQ quantizer (4-bit by default, first conv and head
included, per-output-channel step), IE-LIF neurons (D = 4 levels in training, binary spikes over 4
virtual steps at inference), Q-SDSA (``Q (K^T V) * 0.25`` then the attention IE-LIF with spike value 1/2)
and layer scale 1e-6 on the transformer residuals. Official code: bollossom/QSD-Transformer
``classification/models.py``, ``quan_w.py``; it runs at T = 1 ("4-1-4" = W4, binary spikes, 4 virtual
steps). The paper's membrane rectification is not in that code: off by default, ``rectify=True`` adds it.
Not carried over: the unused ``ActLSQ`` parameters (activation quantizer whose forward is the identity).
"""

from __future__ import annotations

from bench.models.metaformer import register_metaformer

# name: (dims, depth, heads, classes)
QSD_CFGS = {
    "qsd_15m": ((64, 128, 256, 360), 8, 8, 1000),
    "qsd_8_384": ((96, 192, 384, 480), 8, 8, 1000),
    "qsd_8_512": ((128, 256, 512, 640), 8, 8, 1000),
    "qsd_tiny": ((16, 32, 64, 80), 4, 4, 10),
}
# The paper's "MB" is params x bits / 32 (see shared/reference/energy_model.md, section 3).
PAPER = {"qsd_8_512": dict(size_mb_paper=6.88, top1=80.3)}
# The CPU variant only (paper variants keep the official settings). At 32 px, stages 3-4 hold 2 x 2 tokens
# (paper: 14 x 14) of 16 channels per head (paper: 64), so Q (K^T V) sums 196x fewer spike products: at the
# paper's scale 0.25 the attention neuron never fires and the BN behind it sees a constant (exploding
# gradients), hence a larger attn_scale. decay_input=False: a LIF (neuron="lif") charges as IE-LIF does,
# H = V + X - V / tau, so at T = 1 it fires for X >= V_th, not X >= 2 V_th (which left stages 3-4 and the
# head silent); the LIF-vs-IE-LIF ablation then differs only in how the neuron fires. IE-LIF is unaffected.
TINY = dict(attn_scale=4.0, decay_input=False)


QSD = dict(T=1, attn_scale=0.25, neuron="ie-lif", levels=4, bits=4, layer_scale=1e-6)

for _name, _shape in QSD_CFGS.items():
    _doc = f"QSD-Transformer {_name}: dims {_shape[0]}, depth {_shape[1]}, W4, IE-LIF D=4, T=1."
    register_metaformer(_name, "qsd", _shape, QSD, TINY, _doc, PAPER.get(_name, {}))

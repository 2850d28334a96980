"""b-bit weights in an mmdet/mmseg neck or head with bench's LSQ layers (the QFD detection protocol).

QFD (arXiv 2307.10638, reference §11/§13) quantizes every layer of RetinaNet — backbone, FPN (lateral,
output and extra convs) and head convs, the skip-connection convs included — except the backbone's input
layer and the heads' output convs. ``quantize_`` does the neck/head part: every plain ``nn.Conv2d`` and
``nn.Linear`` becomes bench's ``QConv2d``/``QLinear`` with the same parameters (state-dict keys unchanged,
plus the LSQ step sizes), at ``bits`` unless its name matches ``skip``; skipped layers keep full precision.
Transposed convs (ViTDet's pyramid) are not quantized (bench has no quantized transposed conv).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from bench.errors import ConfigError, check_bits
from bench.nn.quant import quantize_modules

# output convs of mmdet/mmseg heads (class scores, box deltas, masks, segmentation logits)
HEAD_OUTPUTS = (
    "retina_cls",
    "retina_reg",
    "rpn_cls",
    "rpn_reg",
    "fc_cls",
    "fc_reg",
    "conv_logits",
    "conv_seg",
)


def _skipped(name: str, skip: Sequence[str]) -> bool:
    return any(name.rpartition(".")[2] == pat or fnmatch.fnmatch(name, pat) for pat in skip)


def quantize_(module: nn.Module, bits: int, skip: Sequence[str] = HEAD_OUTPUTS) -> dict[str, int]:
    """Quantize the Conv2d/Linear weights of ``module`` to ``bits`` in place; ``skip`` holds last name parts
    or glob patterns of layers to keep at full precision. Returns every such layer's name and bits."""
    bits = check_bits("bits", bits)
    targets = [n for n, m in module.named_modules() if type(m) in (nn.Conv2d, nn.Linear)]
    spiking = [n for n, m in module.named_modules() if hasattr(m, "spike_neuron")]
    if spiking:
        raise ConfigError(f"{spiking[0]} is already spiking; quantize_ first, then make_spiking_")
    kept = tuple(n for n in targets if _skipped(n, skip))
    first = 32 if targets and targets[0] in kept else bits  # quantize_modules treats the first layer apart
    quantize_modules(module, bits, bits_first=first, bits_head=32, head_names=kept)
    return {n: 32 if n in kept else bits for n in targets}

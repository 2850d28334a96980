"""A NeuroBench-compatible copy of a model, for running the ``neurobench`` harness on spikebench models.

NeuroBench (``neurobench.metrics.workload.SynapticOperations``) counts a Conv/Linear's operations by running
a copy of the layer whose non-zero weights are set to 1; an LSQ layer would re-quantize those ones. The
copy made here computes with its quantized weights stored as plain weights (zero codes stay zero), so
NeuroBench sees the weights the network computes with. Our own numbers under NeuroBench's names are
``SynapticOps.neurobench()`` (``profile``'s ``neurobench`` record).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from bench.nn.quant import QUANTIZED_LAYERS


@torch.no_grad()
def neurobench_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode whose quantized layers hold their quantized weights as
    full-precision weights (no quantizer), so that NeuroBench's binary layer copies see the true zeros."""
    net = copy.deepcopy(model).eval()
    for m in net.modules():
        if isinstance(m, QUANTIZED_LAYERS) and m.quantizer is not None:
            m.weight.copy_(m.quantized_weight())
            m.quantizer = None
            m.bits = 32
    return net

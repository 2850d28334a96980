"""Make an untrained network active, so that measurements on it exercise every code path.

An untrained spiking network is almost silent (BN with running statistics 0 / 1 and QSD's layer scale 1e-6
give membrane potentials far below threshold), so its SOPs and firing rates say nothing. ``activate``
sets the BN running statistics to those of ``images`` (one forward in train mode, cumulative average),
every BN weight to ``bn_scale`` and bias to 0, and every layer scale to 1. Weights are left as they are
(LSQ steps initialise on the first forward as usual). For tests and sanity profiles, never for results.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.nn.shortcut import LayerScale


@torch.no_grad()
def activate(model: nn.Module, images: Tensor, bn_scale: float = 1.0) -> nn.Module:
    """Calibrate ``model``'s BNs on ``images`` (see module docstring); returns the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in model.modules():
        if isinstance(m, LayerScale):
            m.gamma.fill_(1.0)
    model.eval()
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.weight.fill_(bn_scale)
        bn.bias.zero_()
        bn.momentum = None
        bn.train()
    try:
        model(images)
    finally:
        for bn, mom in zip(bns, momenta, strict=True):
            bn.momentum = mom
        model.eval()
    return model

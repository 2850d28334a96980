"""Activation checkpointing that computes what the network computes.

``torch.utils.checkpoint`` recomputes a module's forward during backward. Two things would make a spiking
module's recompute differ from its forward: its neurons keep the membrane potential the forward left, and its
BatchNorm layers start from the running statistics the forward updated (which BNPad reads, and which would be
updated a second time). ``checkpointed`` resets the neurons and puts the buffers back where they were before
the forward, so the recompute repeats the forward exactly and leaves the buffers as the forward left them
(every module it wraps is called once per forward, right after the model's reset).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from bench.nn.neurons import reset_neurons


def checkpointed(module: nn.Module, *args):
    """``module(*args)`` keeping only its inputs for backward (its activations are recomputed there)."""
    before = [b.clone() for b in module.buffers()]
    first = True

    def run(*inputs):
        nonlocal first
        reset_neurons(module)
        if not first:
            with torch.no_grad():
                for b, k in zip(module.buffers(), before, strict=True):
                    b.copy_(k)
        first = False
        return module(*inputs)

    with set_checkpoint_early_stop(False):  # the recompute runs to its end: buffers as the forward left them
        return checkpoint(run, *args, use_reentrant=False)

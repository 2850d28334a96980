"""The optimizer and learning-rate schedule of a classification run.

Weight decay follows the official QSD-Transformer and Spike-driven Transformer V2 code (MAE's
``param_groups_lrd``: ``p.ndim == 1`` goes to the no-decay group) and timm's ``param_groups_weight_decay``:
1-D parameters (normalisation weights and biases, biases, LSQ steps, layer scales) are not decayed;
``TrainConfig.decay_1d=True`` decays every parameter (spikebench before 2026-12-06).

LSQ step sizes learn at ``lr x TrainConfig.step_lr``. LSQ (Esser et al., 2020) scales the step's gradient
by g = 1 / sqrt(N Qp) so that, under SGD, the step moves slowly next to the weights; AdamW and LAMB
(no trust ratio without weight decay) normalise that scale away, so a step of a few 1e-3 moves by about
``lr`` per iteration and crosses zero (measured: a third of the 8-bit steps of the tiny QSD model negative
after 8 epochs at lr 8e-3). ``step_lr=1`` is the official recipe's behaviour; the tiny specs set 0.01.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from bench.nn.quant import LSQWeight
from tasks.classification.config import TrainConfig


def lsq_steps(model: nn.Module) -> set[int]:
    """``id`` of every LSQ step-size parameter of ``model``."""
    return {id(m.step) for m in model.modules() if isinstance(m, LSQWeight)}


def param_groups(params: list[nn.Parameter], cfg: TrainConfig, steps: set[int] = frozenset()) -> list[dict]:
    """Three groups: decayed weights; 1-D parameters without decay; LSQ steps at ``lr x step_lr`` (all three
    decayed when ``cfg.decay_1d``)."""
    decayed = [p for p in params if cfg.decay_1d or p.ndim > 1]
    rest = [p for p in params if not (cfg.decay_1d or p.ndim > 1)]
    wd_1d = cfg.weight_decay if cfg.decay_1d else 0.0
    return [
        dict(params=[p for p in decayed if id(p) not in steps], weight_decay=cfg.weight_decay),
        dict(params=[p for p in rest if id(p) not in steps], weight_decay=0.0),
        dict(params=[p for p in params if id(p) in steps], weight_decay=wd_1d, lr=cfg.lr * cfg.step_lr),
    ]


def build_optimizer(
    cfg: TrainConfig, params: list[nn.Parameter], steps: set[int] = frozenset()
) -> torch.optim.Optimizer:
    """AdamW or LAMB (timm) at ``cfg.lr`` over ``param_groups``."""
    groups = param_groups(params, cfg, steps)
    if cfg.opt == "lamb":
        from timm.optim import Lamb

        return Lamb(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup_epochs``, then cosine to ``min_lr``: a factor of each group's lr."""
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = cfg.epochs * steps_per_epoch
    floor = cfg.min_lr / cfg.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor

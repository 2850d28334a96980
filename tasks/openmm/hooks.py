"""Runner hooks every OpenMMLab task uses: neuron-state reset and RNG state in checkpoints.

- ``NeuronResetHook``: resets every spikebench neuron of the model before every train, val *and* test
  iteration, and before every forward of the backbone (so each sliding-window crop starts from rest too).
  The official spiking segmentation code resets before train and val iterations only, so test-time state
  leaks from one image into the next; this hook is the fix.
- ``RngStateHook``: stores torch's (and CUDA's) RNG state in every checkpoint and restores it on resume,
  so dropout after a resume draws what an uninterrupted run draws. Data augmentation (numpy/python RNG)
  replays by itself: mmengine's iteration loop re-runs the pipeline over the batches already trained.
"""

from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS as ENGINE_HOOKS
from torch import nn

from bench.nn.neurons import BaseNeuron, reset_neurons


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP / mmengine wrapper."""
    return model.module if is_model_wrapper(model) else model


def has_neurons(model: nn.Module) -> bool:
    """True when any spikebench neuron is inside ``model``."""
    return any(isinstance(m, BaseNeuron) for m in model.modules())


class NeuronResetHook(Hook):
    """Reset spiking neurons before every iteration (train, val, test) and every backbone forward."""

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        self._handle = None

    def before_run(self, runner) -> None:
        model = unwrap(runner.model)
        backbone = getattr(model, "backbone", None)
        if backbone is not None and self._handle is None and has_neurons(model):
            self._handle = backbone.register_forward_pre_hook(lambda module, args: reset_neurons(model))

    def after_run(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _reset(self, runner, batch_idx: int = 0, data_batch=None) -> None:
        reset_neurons(unwrap(runner.model))

    before_train_iter = _reset
    before_val_iter = _reset
    before_test_iter = _reset


class RngStateHook(Hook):
    """Save torch (and CUDA) RNG states with every checkpoint; restore them when resuming."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["rng_state"] = dict(
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        )

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state")
        if not state:
            return
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _register() -> None:
    from mmdet.registry import HOOKS as DET_HOOKS
    from mmseg.registry import HOOKS as SEG_HOOKS

    for registry in (ENGINE_HOOKS, DET_HOOKS, SEG_HOOKS):
        for hook in (NeuronResetHook, RngStateHook):
            registry.register_module(name=hook.__name__, module=hook, force=True)


_register()

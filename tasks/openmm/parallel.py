"""OpenMMLab runs under torchrun: mmengine's launcher on the backend ``tasks.distributed`` chooses.

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and its DDP wrapper passes the local rank as
a device id, so neither runs on a CPU-only machine; here the process group is joined by
``tasks.distributed.setup`` before the runner is built (mmengine then only reads it), and ``SpikebenchDDP``
wraps the model without device ids on CPU, where torch's CUDA-only ``SyncBatchNorm`` layers (mmseg's
``SyncBN`` heads) become ``tasks.distributed.SyncBatchNorm``. ``batch_size`` of a dense config is per process
(mmdet/mmseg's convention): the global batch is ``world_size`` times it; the learning rate is as configured
unless the config enables mmengine's ``auto_scale_lr`` (linear in the global batch).
"""

from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import HOOKS as ENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as ENGINE_WRAPPERS
from torch import nn

from tasks.distributed import DistInfo, SyncBatchNorm, batch_record, convert_sync_batchnorm


class SpikebenchDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper; on CPU without device ids and with gloo-capable SyncBatchNorm layers."""

    def __init__(self, module: nn.Module, device_ids: list[int] | None = None, **kwargs) -> None:
        if next(module.parameters()).device.type == "cpu":
            module = convert_sync_batchnorm(module, kinds=(nn.SyncBatchNorm,))
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


class BatchCountHook(Hook):
    """Counts the training images every rank saw and the iterations run (``images_per_iter`` of the run
    record: the global batch as measured)."""

    def __init__(self) -> None:
        self.images = 0
        self.iters = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        inputs = data_batch.get("inputs") if isinstance(data_batch, dict) else None
        self.images += len(inputs) if inputs is not None else 0
        self.iters += 1

    def images_per_iter(self, info: DistInfo) -> float | None:
        """Images per iteration over every rank (None when no iteration ran in this process)."""
        total = torch.tensor([float(self.images)], dtype=torch.float64)
        if info.world > 1:
            torch.distributed.all_reduce(total)
        return float(total) / self.iters if self.iters else None


def batchnorm_choice(model: nn.Module) -> str:
    """``per_process``, ``sync`` or ``mixed (n sync, m per-process)`` over the model's BatchNorm layers."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    synced = sum(isinstance(m, (nn.SyncBatchNorm, SyncBatchNorm)) for m in bns)
    if synced == 0:
        return "per_process"
    return "sync" if synced == len(bns) else f"mixed ({synced} sync, {len(bns) - synced} per-process)"


def distributed_record(runner, mm_cfg, info: DistInfo) -> dict:
    """The run record's ``distributed``: processes, backend, per-process and global batch, the lr rule, the
    BatchNorm choice and the images per iteration measured over every rank."""
    scale = mm_cfg.get("auto_scale_lr") or {}
    rule = (
        f"linear: lr x global_batch / {scale['base_batch_size']} (mmengine auto_scale_lr)"
        if scale.get("enable")
        else "absolute (lr as configured, not scaled with the batch)"
    )
    counter = next((h for h in runner.hooks if isinstance(h, BatchCountHook)), None)
    return dict(
        batch_record(
            info, mm_cfg.train_dataloader.batch_size, "per_process", rule, batchnorm_choice(runner.model)
        ),
        images_per_iter=counter.images_per_iter(info) if counter is not None else None,
    )


def _register() -> None:
    from mmdet.registry import HOOKS as DET_HOOKS
    from mmdet.registry import MODEL_WRAPPERS as DET_WRAPPERS
    from mmseg.registry import HOOKS as SEG_HOOKS
    from mmseg.registry import MODEL_WRAPPERS as SEG_WRAPPERS

    for registry in (ENGINE_HOOKS, DET_HOOKS, SEG_HOOKS):
        registry.register_module(name="BatchCountHook", module=BatchCountHook, force=True)
    for registry in (ENGINE_WRAPPERS, DET_WRAPPERS, SEG_WRAPPERS):
        registry.register_module(name="SpikebenchDDP", module=SpikebenchDDP, force=True)


_register()

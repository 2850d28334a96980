"""A run's place in a torchrun job, and what every task does the same way under it.

torchrun (``torch.distributed.run``) starts one process per device and tells each its ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; without it a run is rank 0 of 1. The process-group backend follows the
device and is chosen here only: gloo on CPU, NCCL on CUDA. Rank 0 alone writes records, tables and logs.
Multi-node: the same command with torchrun's rendezvous flags (``--nnodes 2 --rdzv-backend c10d
--rdzv-endpoint host:port``) on every node.

``SyncBatchNorm`` here synchronises batch statistics over any backend (torch's own needs CUDA), so that
2 CPU processes of batch B/2 normalise as 1 process of batch B does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
BN_MODES = ("per_process", "sync")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: no process group

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes records and logs."""
        return self.rank == 0


def world_size() -> int:
    """Processes of the torchrun job this process belongs to (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a process started without one."""
    return os.environ.get("RANK", "0") == "0"


def env_info() -> DistInfo:
    """This process's rank and world from torchrun's environment (no process group joined)."""
    env = os.environ
    return DistInfo(int(env.get("RANK", "0")), world_size(), int(env.get("LOCAL_RANK", "0")))


def backend_for(device: torch.device | str) -> str:
    """The process-group backend of ``device``: gloo on CPU, NCCL on CUDA."""
    kind = torch.device(device).type
    if kind not in BACKENDS:
        raise ValueError(f"device={kind!r} has no distributed backend here; allowed: {', '.join(BACKENDS)}")
    return BACKENDS[kind]


def default_device(device: str | None = None) -> torch.device:
    """``device`` (default: CUDA when present); under torchrun a CUDA device is this rank's local GPU."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and world_size() > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dev


def setup(device: torch.device | str) -> DistInfo:
    """Join the torchrun process group (backend from ``device``) when WORLD_SIZE > 1; else rank 0 of 1."""
    if world_size() <= 1:
        return DistInfo()
    import torch.distributed as dist

    backend = backend_for(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())


def writes_failure_record(info: DistInfo, record: Path, started: float) -> bool:
    """Whether this rank writes the failed/interrupted record of a run that started at ``started``
    (``time.time()``): rank 0 always; another rank when no record of this attempt is there yet (rank 0 may
    have been killed: a record says so either way; ok records are rank 0's alone)."""
    if info.main:
        return True
    try:
        return record.stat().st_mtime < started
    except FileNotFoundError:
        return True


def barrier(info: DistInfo) -> None:
    """Wait for every rank (nothing without a process group)."""
    if info.world > 1:
        torch.distributed.barrier()


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """``values`` summed over every rank (float64)."""
    if info.world <= 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def shard(order: list[int], info: DistInfo) -> list[int]:
    """This rank's share of one global sample order: every ``world``-th sample from ``rank`` (the tail that
    does not fill a round is dropped), so the ranks' i-th batches of B/world together are the single
    process's i-th batch of B."""
    if info.world <= 1:
        return list(order)
    usable = len(order) - len(order) % info.world
    return list(order[:usable][info.rank :: info.world])


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation with statistics over the whole global batch (every rank's samples), on any
    backend; the exact two-pass mean and variance, reduced in float64 (also in one process). In eval mode
    it is the plain BatchNorm it replaced."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        import torch.distributed as dist

        grouped = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if grouped:
            from torch.distributed.nn.functional import all_reduce
        else:  # one process: the same float64 statistics, so 1 and N processes compute alike

            def all_reduce(t: Tensor) -> Tensor:
                return t

        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        x64 = x.double()
        count = all_reduce(x64.new_tensor([x.numel() // x.shape[1]]))
        mean = all_reduce(x64.sum(dims)) / count
        var = all_reduce(((x64 - mean.view(shape)) ** 2).sum(dims)) / count
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), float(count))
        y = ((x64 - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)).to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, n: float) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * n / max(n - 1.0, 1.0)
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


def convert_sync_batchnorm(
    module: nn.Module, kinds: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm,)
) -> nn.Module:
    """Every BatchNorm of ``module`` (of one of ``kinds``) replaced by ``SyncBatchNorm`` (same parameters
    and buffers)."""
    if isinstance(module, kinds) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        new.load_state_dict(module.state_dict())
        tensors = [*module.parameters(), *module.buffers()]
        if tensors:
            new.to(tensors[0].device)
        new.train(module.training)
        if module.affine:
            new.weight.requires_grad_(module.weight.requires_grad)
            new.bias.requires_grad_(module.bias.requires_grad)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, kinds))
    return module


def batch_record(info: DistInfo, per_process: int, batch_meaning: str, lr_rule: str, bn: str) -> dict:
    """What the run record says of data parallelism: processes, backend, per-process and global batch,
    which of them the config's ``batch_size`` names, the learning-rate rule and the BatchNorm choice."""
    return dict(
        world_size=info.world,
        backend=info.backend,
        batch_size_means=batch_meaning,  # "global" or "per_process"
        per_process_batch=per_process,
        global_batch=per_process * info.world,
        lr_rule=lr_rule,
        batchnorm=bn,
    )

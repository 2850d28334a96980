"""The teacher side of distillation: a frozen teacher and the QFD / FGD / KD term of the loss."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.measure.ops import count_macs
from bench.nn.distill import QFDLoss, capture_qkv, fgd_loss, kd_loss
from bench.registry import create_model, list_models
from tasks.api import teacher_run
from tasks.classification.config import DistillConfig, TrainConfig
from tasks.distributed import DistInfo, barrier


def resolve_teacher(
    cfg: TrainConfig, out: Path, train: Callable[..., dict], ddp: DistInfo
) -> tuple[DistillConfig, dict]:
    """``cfg.distill`` with its teacher as a registered model, overrides and checkpoint (a teacher given as
    fields trained first, ``tasks.api.teacher_run``; a run directory read from its ``config.json`` and last
    checkpoint), and what the record says of the teacher run (its directory and top-1)."""
    d = cfg.distill
    teacher = teacher_run(cfg, out, train, ddp.main, lambda: barrier(ddp))
    if teacher is None or teacher in list_models():
        return d, {}
    run = Path(teacher)
    if not (run / "config.json").is_file():
        raise ConfigError(
            f"distill.teacher={teacher!r}: neither a registered model nor a classification run directory "
            f"(no {run / 'config.json'})"
        )
    if d.teacher_overrides:
        raise ConfigError(
            f"distill.teacher_overrides={d.teacher_overrides} with the teacher run {run}: allowed: {{}} (the "
            f"run's own overrides build its model)"
        )
    conf = json.loads((run / "config.json").read_text())
    ckpt = Path(d.teacher_checkpoint or run / "checkpoints" / "last.pt")
    if not ckpt.is_file():
        raise ConfigError(
            f"distill.teacher={teacher!r}: checkpoint {ckpt} not found; set distill.teacher_checkpoint"
        )
    record = json.loads((run / "result.json").read_text()) if (run / "result.json").is_file() else {}
    resolved = dataclasses.replace(
        d, teacher=conf["model"], teacher_checkpoint=str(ckpt), teacher_overrides=conf.get("overrides", {})
    )
    return resolved, dict(run=str(run), top1=record.get("top1"))


class Distiller(nn.Module):
    """The teacher (frozen, eval mode, no gradients) and the distillation term of the loss."""

    def __init__(
        self, cfg: DistillConfig, student: nn.Module, num_classes: int, img_size: int, device: torch.device
    ) -> None:
        super().__init__()
        self.cfg = cfg
        with torch.random.fork_rng():  # building the teacher must not shift the student's random stream
            teacher = create_model(
                cfg.teacher,
                num_classes=num_classes,
                checkpoint=cfg.teacher_checkpoint,
                **cfg.teacher_overrides,
            )
        self.teacher = [teacher.to(device).eval().requires_grad_(False)]  # a list: not a submodule
        self.time = 0.0
        probe = torch.zeros(2, 3, img_size, img_size, device=device)
        self.teacher_macs = count_macs(teacher, probe[:1])[0]
        self.qfd = None
        if cfg.kind == "qfd":
            was = student.training
            with torch.no_grad():
                s_dim = student.eval().forward_with_features(probe)[1].shape[1]
                t_dim = teacher.forward_with_features(probe)[1].shape[1]
            student.train(was)
            self.qfd = QFDLoss(s_dim, t_dim, cfg.teacher_bits, cfg.projection).to(device)

    def record(self, run: dict) -> dict:
        """What the run's record says of the teacher: model, checkpoint, overrides, MACs, time, and ``run``
        (its run directory and top-1, when it is a run)."""
        d = self.cfg
        return dict(
            name=d.teacher,
            checkpoint=d.teacher_checkpoint,
            overrides=d.teacher_overrides,
            macs_G=self.teacher_macs / 1e9,
            time_s=self.time,
            **run,
        )

    def loss(self, student: nn.Module, x: Tensor, run: Runner | None = None) -> tuple[Tensor, Tensor]:
        """Student logits and the (unweighted) distillation term for the batch ``x``; ``run(x, features)``
        is the student's forward (a DDP wrapper under torchrun)."""
        run = run or runner(student)
        teacher = self.teacher[0]
        if self.cfg.kind == "fgd":
            with capture_qkv(student) as s_qkv:
                logits, _ = run(x, False)
            start = time.perf_counter()
            with torch.no_grad(), capture_qkv(teacher) as t_qkv:
                teacher(x)
            self.time += time.perf_counter() - start
            return logits, fgd_loss(s_qkv, t_qkv)
        logits, feat = run(x, True)
        start = time.perf_counter()
        with torch.no_grad():
            t_logits, t_feat = teacher.forward_with_features(x)
        self.time += time.perf_counter() - start
        if self.cfg.kind == "kd":
            return logits, kd_loss(logits, t_logits, self.cfg.tau)
        return logits, self.qfd(feat, t_feat)


Runner = Callable[[Tensor, bool], tuple[Tensor, Tensor | None]]


class WithFeatures(nn.Module):
    """Logits (and the pooled feature) through ``__call__``, so DistributedDataParallel sees the forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, features: bool = False) -> tuple[Tensor, Tensor | None]:
        return self.model.forward_with_features(x) if features else (self.model(x), None)


def runner(model: nn.Module) -> Runner:
    wrapped = WithFeatures(model)
    return lambda x, features: wrapped(x, features)

"""Train and evaluate any registered backbone on an image-classification dataset, with optional distillation.

A run is a directory: ``config.json`` (resolved), ``environment.json``, ``checkpoints/last.pt``,
``metrics.json`` (one entry per epoch; top-1 after every ``eval_interval``-th and the last),
``efficiency.json`` (the measurement on the evaluation set) and ``result.json`` (status ok / failed with the
reason), each written atomically. Running the same config into the same directory resumes from the last
checkpoint (model, optimizer, schedule and RNG states), so an interrupted run ends with the same weights and
metrics as an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from bench.data.datasets import DataSpec, build_datasets, resolve_data
from bench.io import write_json_atomic
from bench.measure.profile import profile_model
from bench.registry import create_model, model_entry
from tasks.classification.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from tasks.classification.config import DistillConfig, TrainConfig
from tasks.classification.distill import Distiller, Runner, WithFeatures, resolve_teacher, runner
from tasks.classification.metrics import TopK
from tasks.classification.optim import build_optimizer, lr_factor, lsq_steps
from tasks.classification.parallel import (
    SampleSeeded,
    eval_loader,
    first_batches,
    per_process_batch,
    train_loader,
)
from tasks.determinism import deterministic
from tasks.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    batch_record,
    convert_sync_batchnorm,
    default_device,
    setup,
    writes_failure_record,
)
from tasks.record import environment, previous_ok, reraise, trim_measurement, write_stopped_record


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict:
    """Top-1, top-5 (percent) and mean cross-entropy over the loader."""
    model.eval()
    counts, loss = TopK(), 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        counts.update(logits, y)
        loss += float(F.cross_entropy(logits, y)) * x.shape[0]
    return dict(counts.result(), eval_loss=loss / counts.n)


def run_dir_for(cfg: TrainConfig, root: str | Path = "runs/classification") -> Path:
    """Default directory of a config: ``<root>/<model>-<hash>``."""
    return Path(root) / f"{cfg.model}-{cfg.digest()}"


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    device: str | None = None,
    workers: int = 0,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Run (or resume, or skip if already ok) the classification run of ``cfg``; returns ``result.json``."""
    out = Path(out) if out is not None else run_dir_for(cfg)
    result_path = out / "result.json"
    config, digest = cfg.as_dict(), cfg.digest()
    previous = previous_ok(out, config, digest)
    if previous is not None:
        return previous
    entry = model_entry(cfg.model)  # unknown model: one-line error before anything is written
    dev = default_device(device)
    ddp = setup(dev)
    writes = functools.partial(writes_failure_record, ddp, result_path, time.time())
    try:
        teacher_of = functools.partial(train, device=device, workers=workers, progress=progress)
        distill, teacher = resolve_teacher(cfg, out, teacher_of, ddp)
        with deterministic(cfg.threads, dev) as repeatability:
            if ddp.main:
                out.mkdir(parents=True, exist_ok=True)
                write_json_atomic(out / "config.json", config)
                env = dict(environment(cfg.seed, dev), world_size=ddp.world, determinism=repeatability)
                write_json_atomic(out / "environment.json", env)
            spec = resolve_data(cfg.data)  # data errors inside the try: they end as a failed record
            img_size = cfg.img_size or entry.paper.get("img_size", 224)
            train_set, eval_set = build_datasets(spec, img_size, cfg.hflip)
            job = _Job(cfg, out, dev, ddp, workers, progress and ddp.main, distill, teacher)
            result = _train(job, on_epoch_end, spec, img_size, train_set, eval_set)
    except BaseException as err:  # interrupts too: the record says why the run stopped
        write_stopped_record(
            err, result_path, "classification", cfg.model, writes=writes, config_digest=digest
        )
        reraise(err)
    if ddp.main:
        write_json_atomic(result_path, result)
    return result


@dataclass(frozen=True)
class _Job:
    """Where a run goes: its config, directory, device, process group, loader workers and progress bar."""

    cfg: TrainConfig
    out: Path
    dev: torch.device
    ddp: DistInfo
    workers: int
    progress: bool
    distill: DistillConfig  # cfg.distill with its teacher resolved (resolve_teacher)
    teacher: dict  # the teacher run's directory and top-1, when it is a run


@dataclass
class _State:
    """What the epochs of a run share and carry on: the student, its training objects, the metrics so far."""

    model: nn.Module
    run: Runner  # the student's forward (x, features), through DistributedDataParallel under torchrun
    distiller: Distiller | None
    params: list[nn.Parameter]  # the student's and QFD's: optimized and gradient-clipped
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    mixup: Callable | None
    train_set: Dataset
    eval_loader: DataLoader
    metrics: list[dict] = field(default_factory=list)
    start_epoch: int = 0


def _train(
    job: _Job,
    on_epoch_end: Callable[[int, dict], None] | None,
    spec: DataSpec,
    img_size: int,
    train_set: Dataset,
    eval_set: Dataset,
) -> dict:
    """Train from scratch or from the last checkpoint to the last epoch; the run's record."""
    state = _build(job, spec, img_size, train_set, eval_set)
    _resume(job, state)
    for epoch in range(state.start_epoch, job.cfg.epochs):
        row = _epoch(job, state, epoch)
        state.metrics.append(row)
        _checkpoint(job, state, epoch)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    efficiency = _measure(job, state, eval_set)
    return _record(job, state, spec, eval_set, efficiency)


def _build(job: _Job, spec: DataSpec, img_size: int, train_set: Dataset, eval_set: Dataset) -> _State:
    """The seeded student, teacher, optimizer, schedule, mixup and loaders of a run at epoch 0."""
    cfg = job.cfg
    _seed_all(cfg.seed)
    model = create_model(
        cfg.model, num_classes=spec.num_classes, checkpoint=cfg.checkpoint, **cfg.overrides
    ).to(job.dev)
    if cfg.sync_bn:
        model = convert_sync_batchnorm(model)
    if cfg.augment_rng == "sample":
        train_set = SampleSeeded(train_set, cfg.seed)
    run = _forward(job, model)
    distiller = None
    if cfg.distill.kind != "none":
        distiller = Distiller(job.distill, model, spec.num_classes, img_size, job.dev)
    params = list(model.parameters()) + (
        list(distiller.qfd.parameters()) if distiller and distiller.qfd else []
    )
    opt = build_optimizer(cfg, params, lsq_steps(model))
    loader = eval_loader(eval_set, cfg.batch_size, job.workers)
    steps = math.ceil(len(train_set) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, steps))
    mixup = _mixup(cfg, spec.num_classes)
    return _State(model, run, distiller, params, opt, sched, mixup, train_set, loader)


def _forward(job: _Job, model: nn.Module) -> Runner:
    """The student's forward; under torchrun through DistributedDataParallel, after which every rank
    reseeds its own augmentation stream (augment_rng="process")."""
    run = runner(model)
    if job.ddp.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            WithFeatures(model), device_ids=[job.dev.index] if job.dev.type == "cuda" else None
        )
        run = lambda x, features: wrapped(x, features)  # noqa: E731
        _seed_all(job.cfg.seed + 1000 * job.ddp.rank)
    return run


def _mixup(cfg: TrainConfig, num_classes: int) -> Callable | None:
    """timm's Mixup/CutMix with label smoothing when either is on; else None."""
    if not (cfg.mixup > 0 or cfg.cutmix > 0):
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        label_smoothing=cfg.label_smoothing,
        num_classes=num_classes,
    )


def _resume(job: _Job, state: _State) -> None:
    """Restore ``state`` (weights, optimizer, schedule, QFD, metrics, epoch, RNG) from the newest readable
    checkpoint, if any."""

    def restore(ckpt: dict) -> None:
        state.model.load_state_dict(ckpt["model"])
        state.opt.load_state_dict(ckpt["optimizer"])
        state.sched.load_state_dict(ckpt["scheduler"])
        if state.distiller is not None and state.distiller.qfd is not None:
            state.distiller.qfd.load_state_dict(ckpt["distill"])

    ckpt = load_checkpoint(job.out, job.dev, restore)
    if ckpt is not None:
        state.metrics = ckpt["metrics"]
        state.start_epoch = ckpt["epoch"] + 1
        set_rng_state(ckpt["rng"])


def _epoch(job: _Job, state: _State, epoch: int) -> dict:
    """Train one epoch (0-based ``epoch``); its metrics row: train sums over every rank, then evaluation."""
    cfg, distiller = job.cfg, state.distiller
    state.model.train()
    loader = train_loader(state.train_set, cfg.batch_size, cfg.seed, epoch, job.ddp, job.workers)
    sums = dict(loss=0.0, ce=0.0, distill=0.0, n=0)
    t0 = time.perf_counter()
    teacher_before = distiller.time if distiller else 0.0
    bar = tqdm(
        loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not job.progress, leave=False
    )
    for x, y in bar:
        _step(job, state, x, y, epoch, sums)
        bar.set_postfix(loss=f"{sums['loss'] / sums['n']:.3f}")
    epoch_time = time.perf_counter() - t0
    totals = all_reduce_sum([sums["n"], sums["loss"], sums["ce"], sums["distill"]], job.ddp, job.dev)
    sums = dict(n=int(totals[0]), loss=totals[1], ce=totals[2], distill=totals[3])  # every rank's samples
    row = dict(
        epoch=epoch + 1,
        train_loss=sums["loss"] / sums["n"],
        train_ce=sums["ce"] / sums["n"],
        train_distill=sums["distill"] / sums["n"],
        lr=state.opt.param_groups[0]["lr"],
        epoch_time_s=epoch_time,
        images_per_s=sums["n"] / epoch_time,
        teacher_time_share=((distiller.time - teacher_before) / epoch_time) if distiller else 0.0,
    )
    if (epoch + 1) % cfg.eval_interval == 0 or epoch + 1 == cfg.epochs:
        row.update(evaluate(state.model, state.eval_loader, job.dev))
    return row


def _step(job: _Job, state: _State, x: Tensor, y: Tensor, epoch: int, sums: dict) -> None:
    """One optimizer and schedule step on the batch ``(x, y)``; adds its loss terms, times its size, to
    ``sums``."""
    cfg, dev, distiller, mixup = job.cfg, job.dev, state.distiller, state.mixup
    x, y = x.to(dev), y.to(dev)
    if mixup is not None:
        x, y_soft = mixup(x, y)
    if distiller is not None:
        logits, d_loss = distiller.loss(state.model, x, state.run)
    else:
        logits, d_loss = state.run(x, False)[0], torch.zeros((), device=dev)
    if mixup is not None:
        ce = torch.sum(-y_soft * F.log_softmax(logits, dim=-1), dim=-1).mean()
    else:
        ce = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    loss = ce + cfg.distill.weight * d_loss
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {float(loss)} at epoch {epoch + 1}")
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(state.params, cfg.clip_grad)
    state.opt.step()
    state.sched.step()
    b = x.shape[0]
    sums["n"] += b
    sums["loss"] += float(loss.detach()) * b
    sums["ce"] += float(ce.detach()) * b
    sums["distill"] += float(d_loss.detach()) * b


def _checkpoint(job: _Job, state: _State, epoch: int) -> None:
    """Write the metrics so far and the checkpoint after ``epoch`` (main process); every rank waits for
    them."""
    if job.ddp.main:
        distiller = state.distiller
        write_json_atomic(job.out / "metrics.json", state.metrics)
        save_atomic(
            dict(
                model=state.model.state_dict(),
                optimizer=state.opt.state_dict(),
                scheduler=state.sched.state_dict(),
                distill=distiller.qfd.state_dict() if distiller and distiller.qfd else None,
                epoch=epoch,
                metrics=state.metrics,
                rng=rng_state(),
            ),
            job.out / "checkpoints" / "last.pt",
        )
    barrier(job.ddp)  # every rank sees the checkpoint before going on


def _measure(job: _Job, state: _State, eval_set: Dataset) -> dict | None:
    """The efficiency measurement on the first evaluation batches (main process, when configured), written
    to ``efficiency.json``; its trimmed form for the record."""
    cfg = job.cfg
    if not (cfg.measure and job.ddp.main):
        return None
    batches = first_batches(eval_set, cfg.batch_size, cfg.measure_batches)
    efficiency = profile_model(state.model, batches, latency_repeats=3)
    write_json_atomic(job.out / "efficiency.json", efficiency)
    return trim_measurement(efficiency)


def _record(job: _Job, state: _State, spec: DataSpec, eval_set: Dataset, efficiency: dict | None) -> dict:
    """The ``result.json`` record of a finished run."""
    cfg, ddp, distiller, metrics = job.cfg, job.ddp, state.distiller, state.metrics
    final = metrics[-1]
    return dict(
        status="ok",
        model=cfg.model,
        task="classification",
        data=str(spec.root),
        classes=spec.num_classes,
        eval_samples=len(eval_set),
        epochs=cfg.epochs,
        top1=final["top1"],
        top5=final["top5"],
        best_top1=max(m["top1"] for m in metrics if "top1" in m),
        train_loss=final["train_loss"],
        efficiency=efficiency,
        teacher=None if distiller is None else distiller.record(job.teacher),
        config_digest=cfg.digest(),
        checkpoint=getattr(state.model, "checkpoint_report", None),
        distributed=dict(
            batch_record(
                ddp,
                per_process_batch(cfg.batch_size, ddp),
                "global",
                "absolute (lr as configured, not scaled with the batch)",
                "sync" if cfg.sync_bn else "per_process",
            ),
            augment_rng=cfg.augment_rng,
        ),
    )

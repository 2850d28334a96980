"""Train and evaluate any registered backbone on an image-classification dataset, with optional distillation.

A run is a directory: ``config.json`` (resolved), ``environment.json``, ``checkpoints/last.pt``,
``metrics.json`` (one entry per epoch), ``efficiency.json`` (the measurement on the evaluation set) and
``result.json`` (status ok / failed with the reason), each written atomically. Running the same config
into the same directory resumes from the last checkpoint (model, optimizer, schedule and RNG states), so
an interrupted run ends with the same weights and metrics as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from bench.data.datasets import build_datasets, resolve_data
from bench.errors import ConfigError, check_choice
from bench.io import write_json_atomic
from bench.measure.ops import count_macs
from bench.measure.profile import profile_model
from bench.nn.distill import QFDLoss, capture_qkv, fgd_loss, kd_loss
from bench.registry import create_model, model_entry

DISTILL_KINDS = ("none", "qfd", "fgd", "kd")
OPTIMIZERS = ("adamw", "lamb")


@dataclass
class DistillConfig:
    """Which distillation, against which teacher, with which weight."""

    kind: str = "none"
    teacher: str | None = None  # a registered model name
    teacher_checkpoint: str | None = None  # a state_dict (or {"model": state_dict}) file for the teacher
    teacher_overrides: dict = field(default_factory=dict)
    weight: float = 0.5  # lambda
    teacher_bits: int = 8  # QFD: bits of the quantized teacher feature
    tau: float = 4.0  # KD temperature
    projection: bool = False  # QFD: linear map when feature sizes differ


@dataclass
class TrainConfig:
    """Everything that defines a classification run (hashed into its directory name)."""

    model: str
    data: str = "generated:imagenet-10"
    overrides: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 32
    img_size: int | None = None
    opt: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    clip_grad: float | None = 5.0
    hflip: float = 0.5
    seed: int = 0
    measure: bool = True
    measure_batches: int = 2
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        if isinstance(self.distill, dict):
            self.distill = DistillConfig(**self.distill)
        check_choice("opt", self.opt, OPTIMIZERS)
        check_choice("distill.kind", self.distill.kind, DISTILL_KINDS)
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs={self.epochs}, batch_size={self.batch_size}: allowed values: integers >= 1"
            )
        if self.distill.weight < 0:
            raise ConfigError(f"distill.weight={self.distill.weight} is not allowed; allowed values: >= 0")
        if self.distill.kind != "none" and not (self.distill.teacher or self.distill.teacher_checkpoint):
            raise ConfigError(
                f"distill.kind={self.distill.kind!r} needs distill.teacher (a registered model name)"
            )

    def digest(self) -> str:
        """Content hash of the config (names run directories)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def environment(seed: int, device: torch.device) -> dict:
    """Versions, git revision, device and seed of this run."""
    import timm

    try:
        sha = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        sha = None
    return dict(
        python=platform.python_version(),
        torch=torch.__version__,
        timm=timm.__version__,
        numpy=np.__version__,
        git_sha=sha,
        device=str(device),
        threads=torch.get_num_threads(),
        seed=seed,
        host=platform.node(),
    )


def _rng_state() -> dict:
    return dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def accuracy(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> list[float]:
    """Top-k accuracies in percent (k capped at the number of classes)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == target[:, None]
    return [100.0 * float(hits[:, : min(k, logits.shape[1])].any(1).float().mean()) for k in ks]


class Distiller(nn.Module):
    """The teacher (frozen, eval mode, no gradients) and the distillation term of the loss."""

    def __init__(
        self, cfg: DistillConfig, student: nn.Module, num_classes: int, img_size: int, device: torch.device
    ) -> None:
        super().__init__()
        self.cfg = cfg
        with torch.random.fork_rng():  # building the teacher must not shift the student's random stream
            teacher = create_model(cfg.teacher, num_classes=num_classes, **cfg.teacher_overrides)
        if cfg.teacher_checkpoint:
            state = torch.load(cfg.teacher_checkpoint, map_location="cpu", weights_only=True)
            teacher.load_state_dict(state.get("model", state))
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

    def loss(self, student: nn.Module, x: Tensor, run: Runner | None = None) -> tuple[Tensor, Tensor]:
        """Student logits and the (unweighted) distillation term for the batch ``x``; ``run(x, features)``
        is the student's forward (a DDP wrapper under torchrun)."""
        run = run or _runner(student)
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


class _WithFeatures(nn.Module):
    """Logits (and the pooled feature) through ``__call__``, so DistributedDataParallel sees the forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, features: bool = False) -> tuple[Tensor, Tensor | None]:
        return self.model.forward_with_features(x) if features else (self.model(x), None)


def _runner(model: nn.Module) -> Runner:
    wrapped = _WithFeatures(model)
    return lambda x, features: wrapped(x, features)


@dataclass
class _Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _dist_setup(device: torch.device) -> _Dist:
    """Join the torchrun process group (gloo on CPU, nccl on GPUs) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def _schedule(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = cfg.epochs * steps_per_epoch
    floor = cfg.min_lr / cfg.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.opt == "lamb":
        from timm.optim import Lamb

        return Lamb(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict:
    """Top-1, top-5 (percent) and mean cross-entropy over the loader."""
    model.eval()
    n, top1, top5, loss = 0, 0.0, 0.0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        a1, a5 = accuracy(logits, y)
        b = x.shape[0]
        n += b
        top1 += a1 * b
        top5 += a5 * b
        loss += float(F.cross_entropy(logits, y)) * b
    return dict(top1=top1 / n, top5=top5 / n, eval_loss=loss / n)


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
    config = asdict(cfg)
    if (out / "config.json").exists():
        saved = json.loads((out / "config.json").read_text())
        if saved != json.loads(json.dumps(config)):
            raise ConfigError(
                f"{out}: holds a run of another config; allowed: the same config, or a new --out"
            )
        if result_path.exists():
            previous = json.loads(result_path.read_text())
            if previous.get("status") == "ok":
                return previous
    model_entry(cfg.model)  # unknown model: one-line error before anything is written
    spec = resolve_data(cfg.data)
    entry = model_entry(cfg.model)
    img_size = cfg.img_size or entry.paper.get("img_size", 224)
    train_set, eval_set = build_datasets(spec, img_size, cfg.hflip)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    ddp = _dist_setup(dev)
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", config)
        write_json_atomic(out / "environment.json", dict(environment(cfg.seed, dev), world_size=ddp.world))
    try:
        result = _train(
            cfg,
            out,
            dev,
            workers,
            progress and ddp.main,
            on_epoch_end,
            spec,
            img_size,
            train_set,
            eval_set,
            ddp,
        )
    except BaseException as err:  # interrupts too: the record says why the run stopped
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        if ddp.main:
            write_json_atomic(
                result_path,
                dict(status="failed", reason=reason, model=cfg.model, traceback=traceback.format_exc()),
            )
        raise
    if ddp.main:
        write_json_atomic(result_path, result)
    return result


def _train(cfg, out, dev, workers, progress, on_epoch_end, spec, img_size, train_set, eval_set, ddp) -> dict:
    _seed_all(cfg.seed)
    model = create_model(cfg.model, num_classes=spec.num_classes, **cfg.overrides).to(dev)
    run = _runner(model)
    if ddp.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            _WithFeatures(model), device_ids=[dev.index] if dev.type == "cuda" else None
        )
        run = lambda x, features: wrapped(x, features)  # noqa: E731
        _seed_all(cfg.seed + 1000 * ddp.rank)  # different augmentation on every rank
    distiller = None
    if cfg.distill.kind != "none":
        distiller = Distiller(cfg.distill, model, spec.num_classes, img_size, dev)
    params = list(model.parameters()) + (
        list(distiller.qfd.parameters()) if distiller and distiller.qfd else []
    )
    opt = _optimizer(cfg, params)
    eval_loader = DataLoader(eval_set, batch_size=cfg.batch_size, shuffle=False, num_workers=workers)
    steps = math.ceil(len(train_set) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, steps))
    mixup = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.data import Mixup

        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            label_smoothing=cfg.label_smoothing,
            num_classes=spec.num_classes,
        )
    metrics: list[dict] = []
    start_epoch = 0
    ckpt_path = out / "checkpoints" / "last.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=dev, weights_only=False)  # our own file: trusted
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if distiller is not None and distiller.qfd is not None:
            distiller.qfd.load_state_dict(ckpt["distill"])
        metrics = ckpt["metrics"]
        start_epoch = ckpt["epoch"] + 1
        _set_rng_state(ckpt["rng"])
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        if ddp.world > 1:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(
                train_set, ddp.world, ddp.rank, shuffle=True, seed=cfg.seed, drop_last=True
            )
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(
                train_set, generator=torch.Generator().manual_seed(cfg.seed * 10007 + epoch)
            )
        per_rank = max(1, cfg.batch_size // ddp.world)  # batch_size is the global batch
        loader = DataLoader(
            train_set,
            batch_size=per_rank,
            sampler=sampler,
            num_workers=workers,
            drop_last=len(train_set) > cfg.batch_size,
        )
        sums = dict(loss=0.0, ce=0.0, distill=0.0, n=0)
        t0 = time.perf_counter()
        teacher_before = distiller.time if distiller else 0.0
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not progress, leave=False
        )
        for x, y in bar:
            x, y = x.to(dev), y.to(dev)
            if mixup is not None:
                x, y_soft = mixup(x, y)
            if distiller is not None:
                logits, d_loss = distiller.loss(model, x, run)
            else:
                logits, d_loss = run(x, False)[0], torch.zeros((), device=dev)
            if mixup is not None:
                ce = torch.sum(-y_soft * F.log_softmax(logits, dim=-1), dim=-1).mean()
            else:
                ce = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            loss = ce + cfg.distill.weight * d_loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {float(loss)} at epoch {epoch + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            opt.step()
            sched.step()
            b = x.shape[0]
            sums["n"] += b
            sums["loss"] += float(loss.detach()) * b
            sums["ce"] += float(ce.detach()) * b
            sums["distill"] += float(d_loss.detach()) * b
            bar.set_postfix(loss=f"{sums['loss'] / sums['n']:.3f}")
        epoch_time = time.perf_counter() - t0
        if ddp.world > 1:  # global averages over every rank's samples
            import torch.distributed as dist

            totals = torch.tensor(
                [sums["n"], sums["loss"], sums["ce"], sums["distill"]], dtype=torch.float64, device=dev
            )
            dist.all_reduce(totals)
            sums = dict(
                n=int(totals[0]), loss=float(totals[1]), ce=float(totals[2]), distill=float(totals[3])
            )
        row = dict(
            epoch=epoch + 1,
            train_loss=sums["loss"] / sums["n"],
            train_ce=sums["ce"] / sums["n"],
            train_distill=sums["distill"] / sums["n"],
            lr=opt.param_groups[0]["lr"],
            epoch_time_s=epoch_time,
            images_per_s=sums["n"] / epoch_time,
            teacher_time_share=((distiller.time - teacher_before) / epoch_time) if distiller else 0.0,
        )
        row.update(evaluate(model, eval_loader, dev))
        metrics.append(row)
        if ddp.main:
            write_json_atomic(out / "metrics.json", metrics)
            _save_atomic(
                dict(
                    model=model.state_dict(),
                    optimizer=opt.state_dict(),
                    scheduler=sched.state_dict(),
                    distill=distiller.qfd.state_dict() if distiller and distiller.qfd else None,
                    epoch=epoch,
                    metrics=metrics,
                    rng=_rng_state(),
                ),
                ckpt_path,
            )
        if ddp.world > 1:
            torch.distributed.barrier()  # every rank sees the checkpoint before going on
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    efficiency = None
    if cfg.measure and ddp.main:
        batches = [x for x, _ in DataLoader(eval_set, batch_size=cfg.batch_size)][: cfg.measure_batches]
        efficiency = profile_model(model, batches, latency_repeats=3)
        write_json_atomic(out / "efficiency.json", efficiency)
        efficiency = {
            k: v
            for k, v in efficiency.items()
            if k not in ("layers", "firing_rates", "macs_by_module", "macs_by_op")
        }
    final = metrics[-1]
    return dict(
        status="ok",
        model=cfg.model,
        task="classification",
        data=str(spec.root),
        classes=spec.num_classes,
        epochs=cfg.epochs,
        top1=final["top1"],
        top5=final["top5"],
        best_top1=max(m["top1"] for m in metrics),
        train_loss=final["train_loss"],
        efficiency=efficiency,
        teacher=None
        if distiller is None
        else dict(name=cfg.distill.teacher, macs_G=distiller.teacher_macs / 1e9, time_s=distiller.time),
        config_digest=cfg.digest(),
    )


def config_from_dict(d: dict) -> TrainConfig:
    """A TrainConfig from a plain dict; unknown keys are a one-line error naming the allowed ones."""
    allowed = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(sorted(allowed))}")
    if isinstance(d.get("distill"), dict):
        allowed_d = {f.name for f in dataclasses.fields(DistillConfig)}
        bad = sorted(set(d["distill"]) - allowed_d)
        if bad:
            raise ConfigError(
                f"unknown field 'distill.{bad[0]}'; allowed fields: {', '.join(sorted(allowed_d))}"
            )
    return TrainConfig(**d)

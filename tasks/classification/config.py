"""What defines a classification run: TrainConfig (hashed into the run folder name) and DistillConfig."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench.errors import ConfigError, check_choice, check_positive_int, check_types
from bench.registry import list_models
from tasks.api import arg, config_from_fields, content_digest, teacher_config
from tasks.determinism import DEFAULT_THREADS

DISTILL_KINDS = ("none", "qfd", "fgd", "kd")
OPTIMIZERS = ("adamw", "lamb")
AUGMENT_RNGS = ("process", "sample")
# fields left out of the hashed dict at their default, so runs made before they existed keep their hash
_HASH_DEFAULTS = dict(checkpoint=None, sync_bn=False, augment_rng="process", eval_interval=1)


@dataclass
class DistillConfig:
    """Which distillation, against which teacher, with which weight."""

    kind: str = arg("none", "none, qfd, fgd or kd")
    # a registered model with its teacher_checkpoint, a classification run directory, or fields of a teacher
    # run trained here first (the student's config with these fields, no distillation; tasks.api.teacher_run)
    teacher: str | dict | None = arg(
        None, "teacher: registered model (with --teacher-checkpoint) or run directory"
    )
    teacher_checkpoint: str | None = None  # a spikebench or official checkpoint file for the teacher
    teacher_overrides: dict = field(default_factory=dict)
    weight: float = arg(0.5, "lambda")
    teacher_bits: int = arg(8, "QFD: teacher feature bits (1, 4, 8)")
    tau: float = arg(4.0, "KD temperature")
    projection: bool = arg(False, "QFD: linear map when feature sizes differ")


@dataclass
class TrainConfig:
    """Everything that defines a classification run (hashed into its directory name)."""

    model: str
    data: str = arg(
        "generated:imagenet-10", "ImageNet folder, CIFAR pickles, or generated:<imagenet-10|cifar10|cifar100>"
    )
    overrides: dict = field(default_factory=dict)
    epochs: int = 10
    # mmengine's val_interval: the evaluation set is read after every N-th epoch and after the last
    eval_interval: int = arg(1, "evaluate every N epochs (and after the last)")
    batch_size: int = 32
    img_size: int | None = None
    opt: str = arg("adamw", "adamw or lamb")
    lr: float = 2e-3
    weight_decay: float = 0.05
    # weight decay on 1-D parameters too (norms, biases, LSQ steps, layer scales); the official recipes and
    # timm exclude them (tasks.classification.optim); True is spikebench before 2026-12-06
    decay_1d: bool = arg(False, "weight decay on 1-D parameters too (norms, biases, LSQ steps, layer scales)")
    # LSQ step sizes learn at lr x step_lr (Adam cancels LSQ's gradient scale; tasks.classification.optim)
    step_lr: float = arg(1.0, "LSQ step sizes learn at lr x this (1: the official recipe; tiny specs: 0.01)")
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    clip_grad: float | None = 5.0
    hflip: float = 0.5
    seed: int = 0
    measure: bool = arg(True, "skip the efficiency measurement at the end")
    measure_batches: int = 2
    # intra-op CPU threads: part of the run's identity (1 vs 2 threads give different sums, so different runs)
    threads: int = DEFAULT_THREADS
    distill: DistillConfig = field(default_factory=DistillConfig)
    checkpoint: str | None = arg(None, "initial weights: spikebench or official checkpoint (fine-tune)")
    # under torchrun: BatchNorm statistics over the global batch (tasks.distributed.SyncBatchNorm)
    sync_bn: bool = arg(False, "under torchrun: BatchNorm statistics over the global batch")
    # augmentation seeds: "process" (each rank's own stream) or "sample" (seed, epoch, index: the same
    # crops and flips for any number of processes; tasks.classification.parallel)
    augment_rng: str = arg("process", "process (each rank's own stream) or sample (per-sample seeds)")

    def __post_init__(self) -> None:
        if isinstance(self.distill, dict):
            self.distill = DistillConfig(**self.distill)
        check_types(self)
        check_choice("opt", self.opt, OPTIMIZERS)
        check_choice("augment_rng", self.augment_rng, AUGMENT_RNGS)
        check_choice("distill.kind", self.distill.kind, DISTILL_KINDS)
        check_positive_int("threads", self.threads)
        check_positive_int("eval_interval", self.eval_interval)
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs={self.epochs}, batch_size={self.batch_size}: allowed values: integers >= 1"
            )
        if not self.step_lr > 0:
            raise ConfigError(f"step_lr={self.step_lr} is not allowed; allowed values: > 0")
        if self.distill.weight < 0:
            raise ConfigError(f"distill.weight={self.distill.weight} is not allowed; allowed values: >= 0")
        self._check_teacher()

    def _check_teacher(self) -> None:
        """A distilling run names a trained teacher: a checkpoint, a run directory, or fields to train one."""
        d = self.distill
        if d.kind == "none":
            return
        allowed = (
            "allowed: a registered model with distill.teacher_checkpoint, a classification run directory, "
            "or the teacher's fields (e.g. {overrides: {bits: 32}}) to train it first"
        )
        if not d.teacher:
            raise ConfigError(f"distill.kind={d.kind!r} needs distill.teacher; {allowed}")
        if isinstance(d.teacher, dict):
            teacher_config(self, d.teacher)  # its fields checked now, not when it runs
        elif d.teacher_checkpoint is None and d.teacher in list_models():
            raise ConfigError(
                f"distill.teacher={d.teacher!r} without distill.teacher_checkpoint is an untrained "
                f"network; {allowed}"
            )

    def as_dict(self) -> dict:
        """The config as a plain dict; ``checkpoint``, ``sync_bn`` and ``augment_rng`` only when not at their
        default (earlier runs keep their hash)."""
        d = asdict(self)
        for key, default in _HASH_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        return d

    def digest(self) -> str:
        """Content hash of the config (names run directories)."""
        return content_digest(self.as_dict())


def config_from_dict(d: dict) -> TrainConfig:
    """A TrainConfig from a plain dict; unknown keys are a one-line error naming the allowed ones."""
    return config_from_fields(TrainConfig, DistillConfig, d)

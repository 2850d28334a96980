"""What defines a segmentation run: SegConfig (hashed into the run folder name) and DistillConfig."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench.errors import check_choice, check_positive_int
from tasks.api import arg, check_dense_fields, config_from_fields, content_digest
from tasks.determinism import DEFAULT_THREADS

SEGMENTORS = ("semfpn", "upernet")
SIZES = ("tiny", "paper")
NECK_HEADS = ("ann", "spiking")
TEST_MODES = ("whole", "slide")
DISTILL_KINDS = ("none", "qfd", "kd-feature")


@dataclass
class DistillConfig:
    """Feature distillation from a frozen full-precision teacher segmentor (QFD: its maps quantized)."""

    kind: str = arg("none", "none, qfd or kd-feature")
    # a teacher run directory or config file, or fields of a teacher run trained here first (the student's
    # config with these fields, e.g. {overrides: {bits: 32}})
    teacher: str | dict | None = arg(None, "teacher run directory or config file")
    teacher_checkpoint: str | None = None  # its checkpoint, when not the run directory's newest
    weight: float = arg(1.0, "lambda")
    teacher_bits: int = 8  # QFD: bits of the quantized teacher maps


@dataclass
class SegConfig:
    """Everything that defines a segmentation run (hashed into its directory name)."""

    model: str
    segmentor: str = arg("semfpn", "semfpn or upernet")
    size: str = arg("tiny", "tiny (CPU) or paper (512x512, 160k iterations)")
    data: str = arg("generated:ade20k-tiny", "ADE20K root or generated:ade20k-tiny")
    overrides: dict = field(default_factory=dict)
    iters: int | None = None  # None: the config's schedule (tiny 60; paper 160k, EfficientFormer FPN 40k)
    batch_size: int | None = arg(None, "images per process (None: tiny 8, paper 4)")
    lr: float | None = None
    seed: int = 0
    threads: int = DEFAULT_THREADS  # CPU intra-op threads: part of the run's identity (hash)
    crop: int | None = arg(None, "square crop side, a multiple of 32 (None: tiny 64, paper 512)")
    neck_head: str = arg("ann", "ann, or spiking (neuron before each neck/head conv)")
    test_mode: str | None = arg(None, "whole or slide (None: whole; slide for EfficientFormer)")
    checkpoint_interval: int | None = None  # None: iters // 4 (tiny), 16000 (paper)
    val_interval: int = arg(0, "validate every N iterations (0: never)")
    measure: bool = arg(True, "skip the whole-model efficiency measurement")
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        if isinstance(self.distill, dict):
            self.distill = DistillConfig(**self.distill)
        check_choice("segmentor", self.segmentor, SEGMENTORS)
        check_choice("size", self.size, SIZES)
        check_positive_int("threads", self.threads)
        check_choice("neck_head", self.neck_head, NECK_HEADS)
        if self.test_mode is not None:
            check_choice("test_mode", self.test_mode, TEST_MODES)
        check_choice("distill.kind", self.distill.kind, DISTILL_KINDS)
        check_dense_fields(self, ("iters", "batch_size", "crop", "checkpoint_interval"), "crop")

    def digest(self) -> str:
        """Content hash of the config (names run directories)."""
        return content_digest(asdict(self))


def config_from_dict(d: dict) -> SegConfig:
    """A SegConfig from a plain dict; unknown keys are a one-line error naming the allowed ones."""
    return config_from_fields(SegConfig, DistillConfig, d)

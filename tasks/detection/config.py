"""What defines a detection run: DetConfig (hashed into the run folder name) and DetDistillConfig."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench.errors import ConfigError, check_bits, check_choice, check_positive_int
from tasks.api import arg, check_dense_fields, config_from_fields, content_digest
from tasks.determinism import DEFAULT_THREADS

DETECTORS = ("retinanet", "vitdet_maskrcnn", "vitdet_retinanet")
DETECTOR_ALIASES = {"vitdet": "vitdet_maskrcnn"}  # `--detector vitdet` is ViTDet's own detector
SIZES = ("tiny", "paper")
NECK_HEADS = ("ann", "spiking")
QUANT_GROUPS = ("all", "attn", "mlp")
DISTILL_KINDS = ("none", "qfd")
PYRAMID_LEVELS = (3, 4, 5, 6, 7)


@dataclass
class DetDistillConfig:
    """QFD for detectors: the student's FPN levels regressed onto a frozen full-precision teacher's
    levels quantized to ``teacher_bits`` (QFD, Zhu et al. AAAI 2023: P3, 8 bits)."""

    kind: str = arg("none", "none or qfd")
    # a teacher run directory, an mm config file of the same detector, or fields of a teacher run trained
    # here first (the student's config with these fields, e.g. {overrides: {bits: 32}})
    teacher: str | dict | None = arg(None, "teacher run directory or mm config file")
    teacher_checkpoint: str | None = arg(None, "teacher checkpoint (default: the run's last)")
    weight: float = arg(0.5, "lambda")
    teacher_bits: int = arg(8, "bits of the quantized teacher feature")
    levels: tuple[int, ...] = arg((3,), "FPN levels (3..7)")


@dataclass
class DetConfig:
    """Everything that defines a detection run (hashed into its directory name)."""

    model: str
    detector: str = arg(
        "retinanet", "retinanet, vitdet (= vitdet_maskrcnn), vitdet_maskrcnn or vitdet_retinanet"
    )
    size: str = arg("tiny", "named config: tiny (CPU) or paper (GPUs)")
    data: str = arg("generated:coco-tiny", "COCO root or generated:coco-tiny")
    overrides: dict = field(default_factory=dict)  # backbone options (bits, T, attention, ...)
    iters: int | None = arg(None, "training iterations (None: the named config's schedule)")
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    threads: int = DEFAULT_THREADS  # CPU intra-op threads: part of the run's identity (hash)
    img_scale: int | None = arg(None, "tiny: square side; paper: long side")
    neck_head: str = arg("ann", "ann or spiking (official SDT-V2/QSD detection code)")
    quant_bits: int = arg(32, "QFD protocol: quantize the detector (32 = full precision)")
    quant_groups: str = arg("all", "ViT backbones: all, attn or mlp linear layers")
    init_checkpoint: str | None = arg(None, "full-precision detector checkpoint to fine-tune")
    checkpoint_interval: int | None = arg(None, "iterations between checkpoints (None: 50 tiny, 5000 paper)")
    measure: bool = arg(True, "skip the efficiency measurement")
    distill: DetDistillConfig = field(default_factory=DetDistillConfig)

    def __post_init__(self) -> None:
        if isinstance(self.distill, dict):
            self.distill = DetDistillConfig(**self.distill)
        self.detector = DETECTOR_ALIASES.get(self.detector, self.detector)
        check_choice("detector", self.detector, DETECTORS)
        check_choice("size", self.size, SIZES)
        check_positive_int("threads", self.threads)
        check_choice("neck_head", self.neck_head, NECK_HEADS)
        check_choice("quant_groups", self.quant_groups, QUANT_GROUPS)
        check_bits("quant_bits", self.quant_bits)
        check_choice("distill.kind", self.distill.kind, DISTILL_KINDS)
        self.distill.levels = tuple(self.distill.levels)
        for level in self.distill.levels:
            check_choice("distill.levels", level, PYRAMID_LEVELS)
        if not self.distill.levels:
            raise ConfigError("distill.levels=() is not allowed; allowed values: some of 3, 4, 5, 6, 7")
        check_dense_fields(self, ("iters", "batch_size", "img_scale", "checkpoint_interval"), "img_scale")

    def digest(self) -> str:
        """Content hash of the config (names run directories)."""
        return content_digest(asdict(self))


def config_from_dict(d: dict) -> DetConfig:
    """A DetConfig from a plain dict; unknown keys are a one-line error naming the allowed ones."""
    return config_from_fields(DetConfig, DetDistillConfig, d)

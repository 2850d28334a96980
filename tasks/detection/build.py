"""A DetConfig → a filled mmengine config of one named detector config (``configs/<detector>_<size>.py``).

Which backbone maps feed the pyramid (``pyramid_maps``):
- ``retinanet`` (mmdet's FPN, P3-P7, extra convs on the input as mmdet's RetinaNet): the last map of each
  stride 8, 16, 32 (C3-C5). Backbones whose deepest map has stride 16 (QSD, SDT v2: their "downsample4" has
  stride 1, maps 4/8/16/16) feed C3 and the deepest stride-16 map; FPN's extra convs on that input make
  P5-P7, so every level keeps RetinaNet's stride. Single-stride backbones (SDT v1, ViT) have no pyramid to
  take: they get ViTDet's simple feature pyramid from their one map (documented adaptation).
- ``vitdet_maskrcnn`` / ``vitdet_retinanet`` (SimpleFPN): the deepest stride-16 map (ViTDet's choice); a
  backbone without one (``sdt_tiny``, CIFAR pooling: stride 4) is a one-line error.
Fixed-size backbones (EfficientFormer: attention biases for one token grid) are built for the padded test
size (``img_size`` added to the backbone options and recorded).
"""

from __future__ import annotations

import json
from pathlib import Path

from mmengine.config import Config, ConfigDict

from bench.errors import ConfigError
from bench.registry import model_entry
from tasks.detection.config import DetConfig
from tasks.openmm.config import config_path, feature_maps, load_config

FIXED_SIZE_FAMILIES = ("efficientformer", "efficientformer_v2")
SINGLE_MAP_NOTE = "single feature stride: ViTDet simple pyramid from its one map"
FIRST_LEVEL = {"retinanet": 3, "vitdet_retinanet": 3, "vitdet_maskrcnn": 2}


def coco_classes(root: Path) -> tuple[str, ...]:
    """Category names of the training annotations, in id order (CocoDataset's label order)."""
    data = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    return tuple(c["name"] for c in sorted(data["categories"], key=lambda c: c["id"]))


def pyramid_maps(detector: str, maps: list[dict]) -> tuple[str, list[dict]]:
    """``(neck, maps)``: ``fpn`` or ``simple_fpn`` and the backbone maps that feed it."""
    strides = [m["stride"] for m in maps]
    if detector == "retinanet" and len(set(strides)) > 1:
        last = {m["stride"]: m for m in maps}  # the deepest map of each stride
        if 8 not in last or 16 not in last:
            raise ConfigError(
                f"detector='retinanet' needs backbone maps of stride 8 and 16; the model gives {strides}"
            )
        return "fpn", [last[s] for s in (8, 16, 32) if s in last]
    sixteen = [m for m in maps if m["stride"] == 16]
    if not sixteen:
        raise ConfigError(
            f"detector={detector!r} builds its pyramid from a stride-16 map (ViTDet); the model's maps have "
            f"strides {strides} (sdt: pooling='1111' gives stride 16)"
        )
    return "simple_fpn", [sixteen[-1]]


def _all_maps(model: str, overrides: dict) -> list[dict]:
    maps = feature_maps(model, overrides)
    try:
        return feature_maps(model, overrides, tuple(range(max(m["stage"] for m in maps) + 1)))
    except ConfigError:
        return maps


def _set_sizes(cfg: Config, size: str, side: int | None, fixed: int | None) -> None:
    """Rescale the pipelines to ``side`` (tiny: square; paper: long side) and pad fixed-size backbones."""
    for split in ("train", "val", "test"):
        loader = cfg.get(f"{split}_dataloader")
        if not loader:
            continue
        pipeline = loader.dataset.pipeline
        for t in pipeline:
            if side is not None and t["type"] in ("Resize", "RandomResize"):
                keep = t.get("keep_ratio", False)
                short = t["scale"][1] * side // t["scale"][0] if keep else side
                t["scale"] = (side, short)
            if side is not None and t["type"] == "RandomCrop":
                t["crop_size"] = (side, side)
            if t["type"] == "Pad" and fixed is not None:
                t["size"] = (fixed, fixed)
        if fixed is not None and not any(t["type"] == "Pad" for t in pipeline):
            pipeline.insert(len(pipeline) - 1, ConfigDict(type="Pad", size=(fixed, fixed)))


def _longest_side(cfg: Config) -> int:
    sides = [
        max(t["scale"])
        for t in cfg.test_dataloader.dataset.pipeline
        if t["type"] in ("Resize", "RandomResize")
    ]
    return -(-max(sides) // 32) * 32


def _fill(detector: str, neck: str, classes: tuple[str, ...]):
    def fill(cfg: Config, maps: list[dict]) -> None:
        channels = [m["channels"] for m in maps]
        first = FIRST_LEVEL[detector]
        if neck == "fpn":
            cfg.model.neck = ConfigDict(
                type="FPN",
                in_channels=channels,
                out_channels=cfg.model.neck.out_channels,
                start_level=0,
                add_extra_convs="on_input",
                num_outs=5,
            )
        else:
            cfg.model.neck = ConfigDict(
                type="SimpleFPN",
                backbone_channel=channels[0],
                out_channels=cfg.model.neck.out_channels,
                num_outs=5,
                start_level=first - 2,  # P2-P6 for Mask R-CNN, P3-P7 for RetinaNet
            )
        n = len(classes)
        if "bbox_head" in cfg.model:
            cfg.model.bbox_head.num_classes = n
        if "roi_head" in cfg.model:
            cfg.model.roi_head.bbox_head.num_classes = n
            cfg.model.roi_head.mask_head.num_classes = n
        for split in ("train", "val", "test"):
            loader = cfg.get(f"{split}_dataloader")
            if loader:
                loader.dataset.metainfo = dict(classes=classes)

    return fill


def build_mm_config(cfg: DetConfig, data_root: Path, work_dir: Path, teacher: str | None = None) -> Config:
    """The filled mmengine config of ``cfg`` (model, data, schedule, hooks)."""
    family = model_entry(cfg.model).family
    path = config_path("detection", cfg.detector, cfg.size)
    probe = Config.fromfile(str(path))
    overrides = dict(cfg.overrides)
    fixed = None
    if family in FIXED_SIZE_FAMILIES:
        fixed = cfg.img_scale if cfg.img_scale and cfg.size == "tiny" else None
        fixed = fixed or (_longest_side(probe) if cfg.size == "paper" else max(probe.img_scale))
        overrides.setdefault("img_size", fixed)
    if cfg.quant_bits < 32:
        overrides.setdefault("bits", cfg.quant_bits)
        overrides.setdefault("bits_first", 32)  # QFD: the backbone's input layer stays full precision
        if family == "vit":  # QFD's ViT protocol: the blocks' linear layers only (all, attn or mlp)
            overrides.setdefault("quant_groups", cfg.quant_groups)
    if cfg.quant_groups != "all" and family != "vit":
        raise ConfigError(
            f"quant_groups={cfg.quant_groups!r} is not allowed for {cfg.model} (family {family}); "
            "allowed values: all (attn / mlp apply to ViT backbones)"
        )
    neck, maps = pyramid_maps(cfg.detector, _all_maps(cfg.model, overrides))
    iters = cfg.iters or probe.train_cfg.max_iters
    mm = load_config(
        path,
        model=cfg.model,
        overrides=overrides,
        data_root=data_root,
        work_dir=work_dir,
        seed=cfg.seed,
        iters=iters,
        checkpoint_interval=min(iters, cfg.checkpoint_interval or (50 if cfg.size == "tiny" else 5000)),
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        out_indices=tuple(m["stage"] for m in maps),
        fill=_fill(cfg.detector, neck, coco_classes(data_root)),
    )
    _set_sizes(mm, cfg.size, cfg.img_scale, fixed)
    mm.model.detector_type = mm.model.type
    mm.model.type = "SpikebenchDetector"
    mm.model.neck_head = cfg.neck_head
    mm.model.neck_head_bits = cfg.quant_bits if cfg.detector == "retinanet" else 32
    mm.pyramid = dict(neck=neck, maps=maps, note=SINGLE_MAP_NOTE if neck == "simple_fpn" else "FPN P3-P7")
    if cfg.init_checkpoint:
        if not Path(cfg.init_checkpoint).is_file():
            raise ConfigError(f"init_checkpoint={cfg.init_checkpoint!r}: file not found")
        mm.model.init_cfg = dict(type="Pretrained", checkpoint=str(cfg.init_checkpoint))
    if cfg.distill.kind == "qfd":
        first = FIRST_LEVEL[cfg.detector]
        mm.custom_hooks.append(
            dict(
                type="FeatureDistillHook",
                teacher=teacher or cfg.distill.teacher,
                teacher_checkpoint=cfg.distill.teacher_checkpoint,
                point="neck",
                indices=tuple(level - first for level in cfg.distill.levels),
                teacher_bits=cfg.distill.teacher_bits,
                weight=cfg.distill.weight,
            )
        )
    return mm

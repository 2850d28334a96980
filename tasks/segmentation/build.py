"""The filled mmseg config of a segmentation run: named file + backbone maps + run fields.

Backbone maps feed the segmentors as mmseg's ADE20K configs do:
- Semantic FPN: every map -> FPN (``out_channels`` of the file, 4 outputs) -> FPNHead. A backbone with fewer
  than 4 maps gets the missing coarser levels by FPN's stride-2 max-pool (mmseg's ``num_outs`` rule), and
  FPNHead is told their strides; a last stage of the same stride as the one before (QSD/SDT-V2's stride-1
  "downsample4": 4/8/16/16) is upsampled from its own stride, as FPNHead computes from ``feature_strides``.
- UPerNet: every map -> UPerHead; the auxiliary FCN head (loss weight 0.4) reads the second-to-last map
  (mmseg: stage 3 of ResNet's 4).
"""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

from bench.errors import ConfigError
from bench.registry import model_entry
from tasks.openmm.config import check_strides, config_path, load_config
from tasks.segmentation.config import SegConfig
from tasks.segmentation.distill import distill_hook

PAPER_ITERS = 160_000
CROPS = {"tiny": 64, "paper": 512}  # the config files' crop sides
FIXED_SIZE = ("efficientformer", "efficientformer_v2")
TINY_ITERS = 60
# EfficientFormer's Semantic FPN (official code): AdamW lr 2e-4, wd 1e-4, poly 0.9, 40k iterations.
EFFICIENTFORMER_FPN = dict(iters=40_000, lr=2e-4, weight_decay=1e-4, power=0.9)


def _fill(cfg: SegConfig):
    def fill(mm: Config, maps: list[dict]) -> None:
        channels = [m["channels"] for m in maps]
        strides = [m["stride"] for m in maps]
        check_strides(cfg.model, maps, cfg.segmentor)
        model = mm.model
        if cfg.segmentor == "semfpn":
            n = max(4, len(maps))
            extra = [strides[-1] * 2 ** (k + 1) for k in range(n - len(maps))]
            model.neck.in_channels = channels
            model.neck.num_outs = n
            model.decode_head.in_channels = [model.neck.out_channels] * n
            model.decode_head.in_index = list(range(n))
            model.decode_head.feature_strides = strides + extra
        else:
            model.decode_head.in_channels = channels
            model.decode_head.in_index = list(range(len(maps)))
            aux = max(0, len(maps) - 2)
            model.auxiliary_head.in_channels = channels[aux]
            model.auxiliary_head.in_index = aux

    return fill


def _crop(mm: Config, crop: int) -> None:
    mm.model.data_preprocessor.size = (crop, crop)
    mm.crop_size = (crop, crop)
    for split in ("train", "val", "test"):
        loader = mm.get(f"{split}_dataloader")
        if not loader:
            continue
        for t in loader.dataset.pipeline:
            if t["type"] == "RandomCrop":
                t.crop_size = (crop, crop)
            elif t["type"] in ("RandomResize", "Resize") and "scale" in t:
                t.scale = (4 * crop, crop)  # mmseg's ADE20K rule: (2048, 512) for 512 crops


def defaults(cfg: SegConfig) -> dict:
    """Iterations, checkpoint interval and optimiser changes the config implies."""
    family = model_entry(cfg.model).family
    if cfg.size == "tiny":
        iters = cfg.iters or TINY_ITERS
        return dict(
            iters=iters, checkpoint_interval=cfg.checkpoint_interval or max(1, iters // 4), optim=None
        )
    optim = None
    iters = PAPER_ITERS
    if cfg.segmentor == "semfpn" and family.startswith("efficientformer"):
        optim = EFFICIENTFORMER_FPN
        iters = optim["iters"]
    iters = cfg.iters or iters
    return dict(iters=iters, checkpoint_interval=cfg.checkpoint_interval or min(16_000, iters), optim=optim)


def test_mode(cfg: SegConfig) -> str:
    """``cfg.test_mode``, or its default: slide for fixed-size backbones, whole otherwise."""
    fixed = model_entry(cfg.model).family in FIXED_SIZE
    mode = cfg.test_mode or ("slide" if fixed else "whole")
    if fixed and mode == "whole":
        raise ConfigError(
            f"test_mode='whole' is not allowed for {cfg.model} (attention biases built for one input size); "
            "allowed values: slide"
        )
    return mode


def mm_config(
    cfg: SegConfig, data_root: str | Path, work_dir: str | Path, workers: int = 0, teacher: str | None = None
) -> Config:
    """The mmseg config of ``cfg`` (the named file filled for this run); ``teacher``: the distillation
    teacher's run directory or config (default ``cfg.distill.teacher``)."""
    d = defaults(cfg)
    mode = test_mode(cfg)
    overrides = dict(cfg.overrides)
    if model_entry(cfg.model).family in FIXED_SIZE:  # built for the crop; tested window by window
        overrides.setdefault("img_size", cfg.crop or CROPS[cfg.size])
    mm = load_config(
        config_path("segmentation", cfg.segmentor, cfg.size),
        model=cfg.model,
        overrides=overrides,
        data_root=data_root,
        work_dir=work_dir,
        seed=cfg.seed,
        iters=d["iters"],
        checkpoint_interval=d["checkpoint_interval"],
        val_interval=cfg.val_interval,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        fill=_fill(cfg),
        workers=workers,
    )
    if d["optim"] is not None:
        o = d["optim"]
        mm.optim_wrapper = dict(
            type="OptimWrapper",
            optimizer=dict(type="AdamW", lr=cfg.lr or o["lr"], weight_decay=o["weight_decay"]),
        )
        mm.param_scheduler = [
            dict(type="PolyLR", eta_min=0.0, power=o["power"], begin=0, end=d["iters"], by_epoch=False)
        ]
    if cfg.crop is not None:
        _crop(mm, cfg.crop)
    crop = tuple(mm.model.data_preprocessor.size)
    if mode == "slide":  # mmseg's ADE20K slide configs: stride 2/3 of the crop (341 for 512)
        mm.model.test_cfg = dict(mode="slide", crop_size=crop, stride=(crop[0] * 2 // 3, crop[1] * 2 // 3))
    else:
        mm.model.test_cfg = dict(mode="whole")
        # whole images padded to a multiple of the largest stride, the padding removed from the prediction
        mm.model.data_preprocessor.test_cfg = dict(size_divisor=32)
    mm.test_evaluator = dict(type="SpikebenchIoUMetric", iou_metrics=["mIoU"])
    if mm.get("val_evaluator"):
        mm.val_evaluator = dict(type="SpikebenchIoUMetric", iou_metrics=["mIoU"])
    hook = distill_hook(cfg, len(mm.backbone_maps), teacher)
    if hook is not None:
        mm.custom_hooks = [*mm.custom_hooks, hook]
    mm.model = dict(type="SpikebenchModel", model=mm.model, neck_head=cfg.neck_head, registry="mmseg")
    mm.default_hooks.visualization = dict(type="SegVisualizationHook", draw=False)
    return mm

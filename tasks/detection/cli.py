"""``spikebench train detection ...`` and ``spikebench test detection ...`` (no OpenMMLab import here)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tasks.options import add_backbone_options, add_run_options, backbone_overrides

SUMMARY = ("status", "model", "detector", "bbox_mAP", "bbox_mAP_50", "segm_mAP", "neck_head", "iters")


def _train(args: argparse.Namespace) -> int:
    from tasks.detection import run_dir_for, train
    from tasks.detection.config import DetConfig, DetDistillConfig

    overrides = backbone_overrides(args)
    cfg = DetConfig(
        model=args.model,
        detector=args.detector,
        size=args.size,
        data=args.data,
        overrides=overrides,
        iters=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        img_scale=args.img_scale,
        neck_head=args.neck_head,
        quant_bits=args.quant_bits,
        quant_groups=args.quant_groups,
        init_checkpoint=args.init_checkpoint,
        checkpoint_interval=args.checkpoint_interval,
        measure=not args.no_measure,
        distill=DetDistillConfig(
            kind=args.distill,
            teacher=args.teacher,
            teacher_checkpoint=args.teacher_checkpoint,
            weight=args.distill_weight,
            teacher_bits=args.teacher_bits,
            levels=tuple(args.distill_levels),
        ),
    )
    out = args.out or run_dir_for(cfg)
    result = train(cfg, out=out, progress=True)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    print(json.dumps({k: result.get(k) for k in SUMMARY if k in result}))
    print(f"run directory: {out}", file=sys.stderr)
    return 0


def _test(args: argparse.Namespace) -> int:
    from tasks.detection.run import test_detection

    scores = test_detection(run=args.run, checkpoint=args.checkpoint, config=args.config, data=args.data)
    print(json.dumps(scores))
    return 0


def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``detection`` under ``spikebench train``."""
    p = sub.add_parser("detection", help="COCO detection: RetinaNet or ViTDet (Mask R-CNN / RetinaNet)")
    p.add_argument("--model", required=True, help="registered backbone (see `spikebench models`)")
    p.add_argument(
        "--detector",
        default="retinanet",
        help="retinanet, vitdet (= vitdet_maskrcnn), vitdet_maskrcnn or vitdet_retinanet",
    )
    p.add_argument("--size", default="tiny", help="named config: tiny (CPU) or paper (GPUs)")
    p.add_argument("--data", default="generated:coco-tiny", help="COCO root or generated:coco-tiny")
    add_backbone_options(p)
    p.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    add_run_options(p)
    p.add_argument("--img-scale", type=int, default=None, help="tiny: square side; paper: long side")
    p.add_argument("--neck-head", default="ann", help="ann or spiking (official SDT-V2/QSD detection code)")
    p.add_argument("--quant-bits", type=int, default=32, help="QFD protocol: quantize the detector (32 = FP)")
    p.add_argument("--quant-groups", default="all", help="ViT backbones: all, attn or mlp linear layers")
    p.add_argument("--init-checkpoint", default=None, help="full-precision detector checkpoint to fine-tune")
    p.add_argument("--distill", default="none", help="none or qfd")
    p.add_argument("--teacher", default=None, help="teacher run directory or mm config file")
    p.add_argument("--teacher-checkpoint", default=None, help="teacher checkpoint (default: the run's last)")
    p.add_argument("--distill-weight", type=float, default=0.5, help="lambda")
    p.add_argument("--teacher-bits", type=int, default=8, help="bits of the quantized teacher feature")
    p.add_argument("--distill-levels", type=int, nargs="+", default=[3], help="FPN levels (3..7), default P3")
    p.add_argument("--checkpoint-interval", type=int, default=None, help="iterations between checkpoints")
    p.add_argument("--no-measure", action="store_true", help="skip the efficiency measurement")
    p.add_argument(
        "--out", default=None, help="run directory (default runs/detection/<detector>-<model>-<hash>)"
    )
    p.set_defaults(func=_train)


def register_test(sub: argparse._SubParsersAction) -> None:
    """Add ``detection`` under ``spikebench test``."""
    p = sub.add_parser("detection", help="evaluate a detection run or checkpoint with the real CocoMetric")
    p.add_argument("--run", default=None, help="run directory (its mm_config.py and newest checkpoint)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (with --config, or inside --run)")
    p.add_argument("--config", default=None, help="mm config file of the checkpoint (default: the run's)")
    p.add_argument("--data", default=None, help="another COCO root to evaluate on")
    p.set_defaults(func=_test)

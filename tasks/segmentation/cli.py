"""``spikebench train|test segmentation`` (added by ``tasks/cli.py``; no OpenMMLab import at import time)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tasks.options import add_backbone_options, add_run_options, backbone_overrides

SUMMARY = ("status", "model", "mIoU", "aAcc", "mAcc", "neck_head", "iters")


def _train(args: argparse.Namespace) -> int:
    from tasks.segmentation.config import DistillConfig, SegConfig
    from tasks.segmentation.train import run_dir_for, train

    overrides = backbone_overrides(args)
    cfg = SegConfig(
        model=args.model,
        segmentor=args.segmentor,
        size=args.size,
        data=args.data,
        overrides=overrides,
        iters=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        crop=args.crop,
        neck_head=args.neck_head,
        test_mode=args.test_mode,
        checkpoint_interval=args.checkpoint_interval,
        val_interval=args.val_interval,
        measure=not args.no_measure,
        distill=DistillConfig(
            kind=args.distill,
            teacher=args.teacher,
            teacher_checkpoint=args.teacher_checkpoint,
            weight=args.distill_weight,
            teacher_bits=args.teacher_bits,
        ),
    )
    out = args.out or run_dir_for(cfg)
    result = train(cfg, out=out, progress=True, workers=args.workers)
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: result.get(k) for k in SUMMARY}))
        print(f"run directory: {out}", file=sys.stderr)
    return 0


def _test(args: argparse.Namespace) -> int:
    from tasks.segmentation.test import test

    result = test(
        run=args.run,
        checkpoint=args.checkpoint,
        config=args.config,
        data=args.data,
        test_mode=args.test_mode,
        out=args.out,
    )
    print(
        json.dumps({k: result.get(k) for k in ("model", "checkpoint", "mIoU", "aAcc", "mAcc", "test_mode")})
    )
    return 0


def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``segmentation`` under ``spikebench train``."""
    p = sub.add_parser("segmentation", help="ADE20K semantic segmentation: Semantic FPN or UPerNet (mmseg)")
    p.add_argument("--model", required=True, help="registered backbone name (see `spikebench models`)")
    p.add_argument("--segmentor", default="semfpn", help="semfpn or upernet")
    p.add_argument("--size", default="tiny", help="tiny (CPU) or paper (512x512, 160k iterations)")
    p.add_argument("--data", default="generated:ade20k-tiny", help="ADE20K root or generated:ade20k-tiny")
    add_backbone_options(p)
    p.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's)")
    p.add_argument("--batch-size", type=int, default=None, help="images per process")
    p.add_argument("--lr", type=float, default=None)
    add_run_options(p)
    p.add_argument("--crop", type=int, default=None, help="square crop side (multiple of 32)")
    p.add_argument("--neck-head", default="ann", help="ann, or spiking (neuron before each neck/head conv)")
    p.add_argument(
        "--test-mode", default=None, help="whole or slide (default: whole; slide for EfficientFormer)"
    )
    p.add_argument("--checkpoint-interval", type=int, default=None)
    p.add_argument("--val-interval", type=int, default=0, help="validate every N iterations (0: never)")
    p.add_argument("--distill", default="none", help="none, qfd or kd-feature")
    p.add_argument("--teacher", default=None, help="registered teacher backbone")
    p.add_argument("--teacher-checkpoint", default=None, help="teacher segmentor checkpoint")
    p.add_argument("--distill-weight", type=float, default=1.0, help="lambda")
    p.add_argument("--teacher-bits", type=int, default=8, help="QFD: teacher feature bits")
    p.add_argument("--no-measure", action="store_true", help="skip the whole-model efficiency measurement")
    p.add_argument(
        "--out", default=None, help="run directory (default runs/segmentation/<seg>-<model>-<hash>)"
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.set_defaults(func=_train)


def register_test(sub: argparse._SubParsersAction) -> None:
    """Add ``segmentation`` under ``spikebench test``."""
    p = sub.add_parser("segmentation", help="evaluate a segmentation run or checkpoint (mIoU, aAcc, mAcc)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", default=None, help="a run directory of `spikebench train segmentation`")
    src.add_argument("--checkpoint", default=None, help="an iter_*.pth (with --config, or inside a run)")
    p.add_argument("--config", default=None, help="mm_config.py of the checkpoint (default: the run's)")
    p.add_argument("--data", default=None, help="ADE20K root (default: the run's)")
    p.add_argument("--test-mode", default=None, help="whole or slide (default: the run's)")
    p.add_argument("--out", default=None, help="write the test record here (default: print only)")
    p.set_defaults(func=_test)

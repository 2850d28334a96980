"""``spikebench train|test segmentation`` (added by ``tasks/cli.py``; no OpenMMLab import at import time)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tasks.options import add_train_command, add_workers_option

SUMMARY = ("status", "model", "mIoU", "aAcc", "mAcc", "neck_head", "iters")


def _start(cfg, args: argparse.Namespace) -> tuple[dict, Path]:
    from tasks.segmentation.train import run_dir_for, train

    out = Path(args.out) if args.out else run_dir_for(cfg)
    return train(cfg, out=out, progress=True, workers=args.workers), out


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
    """Add ``segmentation`` under ``spikebench train`` (one option per field of ``SegConfig``)."""
    from tasks.segmentation.config import DistillConfig, SegConfig

    help = "ADE20K semantic segmentation: Semantic FPN or UPerNet (mmseg)"
    out = "runs/segmentation/<seg>-<model>-<hash>"
    configs = (SegConfig, DistillConfig)
    add_train_command(sub, "segmentation", help, configs, _start, SUMMARY, out, add_workers_option)


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

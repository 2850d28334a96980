"""``spikebench train detection ...`` and ``spikebench test detection ...`` (no OpenMMLab import here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tasks.options import add_train_command

SUMMARY = ("status", "model", "detector", "bbox_mAP", "bbox_mAP_50", "segm_mAP", "neck_head", "iters")


def _start(cfg, args: argparse.Namespace) -> tuple[dict, Path]:
    from tasks.detection import run_dir_for, train

    out = Path(args.out) if args.out else run_dir_for(cfg)
    return train(cfg, out=out, progress=True), out


def _test(args: argparse.Namespace) -> int:
    from tasks.detection.run import test_detection

    scores = test_detection(run=args.run, checkpoint=args.checkpoint, config=args.config, data=args.data)
    print(json.dumps(scores))
    return 0


def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``detection`` under ``spikebench train`` (one option per field of ``DetConfig``)."""
    from tasks.detection.config import DetConfig, DetDistillConfig

    help = "COCO detection: RetinaNet or ViTDet (Mask R-CNN / RetinaNet)"
    out = "runs/detection/<detector>-<model>-<hash>"
    add_train_command(sub, "detection", help, (DetConfig, DetDistillConfig), _start, SUMMARY, out)


def register_test(sub: argparse._SubParsersAction) -> None:
    """Add ``detection`` under ``spikebench test``."""
    p = sub.add_parser("detection", help="evaluate a detection run or checkpoint with the real CocoMetric")
    p.add_argument("--run", default=None, help="run directory (its mm_config.py and newest checkpoint)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (with --config, or inside --run)")
    p.add_argument("--config", default=None, help="mm config file of the checkpoint (default: the run's)")
    p.add_argument("--data", default=None, help="another COCO root to evaluate on")
    p.set_defaults(func=_test)

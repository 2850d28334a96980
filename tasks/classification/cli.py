"""``spikebench train classification ...`` (added to the CLI by ``tasks/cli.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.options import add_backbone_options, add_train_command, add_workers_option, backbone_overrides

SUMMARY = ("status", "model", "top1", "top5", "best_top1", "epochs")


def _start(cfg, args: argparse.Namespace) -> tuple[dict, Path]:
    from tasks.classification.train import run_dir_for, train

    out = Path(args.out) if args.out else run_dir_for(cfg)
    return train(cfg, out=out, device=args.device, workers=args.workers), out


def _extra(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    add_workers_option(p)


def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``classification`` under ``spikebench train`` (one option per field of ``TrainConfig``)."""
    from tasks.classification.config import DistillConfig, TrainConfig

    help = "ImageNet-style classification (folder or CIFAR pickles)"
    out = "runs/classification/<model>-<hash>"
    add_train_command(sub, "classification", help, (TrainConfig, DistillConfig), _start, SUMMARY, out, _extra)


def _eval(args: argparse.Namespace) -> int:
    from tasks.classification.eval import evaluate_checkpoint, print_comparison

    overrides = backbone_overrides(args)
    record = evaluate_checkpoint(
        args.model,
        args.checkpoint,
        args.data,
        out=args.out,
        img_size=args.img_size,
        batch_size=args.batch_size,
        workers=args.workers,
        limit=args.limit,
        measure=not args.no_measure,
        measure_batches=args.measure_batches,
        paper_csv=args.paper_csv,
        overrides=overrides,
    )
    print_comparison(record)
    if args.out:
        print(f"wrote {args.out}/eval.json", file=sys.stderr)
    return 0


def register_eval(sub: argparse._SubParsersAction) -> None:
    """Add ``classification`` under ``spikebench eval``."""
    p = sub.add_parser(
        "classification", help="top-1/top-5 of a checkpoint on a validation folder vs the paper"
    )
    p.add_argument("--model", required=True, help="registered model name (see `spikebench models`)")
    p.add_argument("--checkpoint", default=None, help="spikebench or official checkpoint file")
    p.add_argument("--data", required=True, help="ImageNet val folder (class folders), or generated:<name>")
    add_backbone_options(p)
    p.add_argument("--img-size", type=int, default=None, help="crop size (default: the model's own)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--no-measure", action="store_true", help="skip the efficiency measurement")
    p.add_argument("--measure-batches", type=int, default=2, help="batches for the efficiency measurement")
    p.add_argument("--paper-csv", default=None, help="paper_results.csv (default: ../shared/reference/)")
    p.add_argument("--out", default=None, help="folder for eval.json")
    p.set_defaults(func=_eval)

"""``spikebench train classification ...`` (added to the CLI by ``tasks/cli.py``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tasks.options import add_backbone_options, add_run_options, backbone_overrides


def _run(args: argparse.Namespace) -> int:
    from tasks.classification.config import DistillConfig, TrainConfig
    from tasks.classification.train import train
    from tasks.health import learning_flags

    overrides = backbone_overrides(args)
    distill = DistillConfig(
        kind=args.distill,
        teacher=args.teacher,
        teacher_checkpoint=args.teacher_checkpoint,
        weight=args.distill_weight,
        teacher_bits=args.teacher_bits,
        tau=args.tau,
        projection=args.projection,
    )
    cfg = TrainConfig(
        model=args.model,
        data=args.data,
        overrides=overrides,
        epochs=args.epochs,
        batch_size=args.batch_size,
        img_size=args.img_size,
        opt=args.opt,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        mixup=args.mixup,
        cutmix=args.cutmix,
        clip_grad=args.clip_grad,
        seed=args.seed,
        threads=args.threads,
        measure=not args.no_measure,
        distill=distill,
        checkpoint=args.checkpoint,
        sync_bn=args.sync_bn,
        augment_rng=args.augment_rng,
    )
    result = train(cfg, out=args.out, device=args.device, workers=args.workers)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    summary = {k: result.get(k) for k in ("status", "model", "top1", "top5", "best_top1", "epochs")}
    print(json.dumps(summary))
    run_dir = Path(args.out or f"runs/classification/{cfg.model}-{cfg.digest()}")
    print(f"run directory: {run_dir}", file=sys.stderr)
    eff = run_dir / "efficiency.json"
    firing = json.loads(eff.read_text()).get("firing_rates") if eff.exists() else None
    for flag in learning_flags(result, firing):
        print(f"warning: this run did not learn: {flag}", file=sys.stderr)
    return 0


def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``classification`` under ``spikebench train``."""
    p = sub.add_parser("classification", help="ImageNet-style classification (folder or CIFAR pickles)")
    p.add_argument("--model", required=True, help="registered model name (see `spikebench models`)")
    p.add_argument(
        "--data",
        default="generated:imagenet-10",
        help="dataset folder (ImageNet folder or CIFAR pickles) or generated:<imagenet-10|cifar10|cifar100>",
    )
    add_backbone_options(p)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--opt", default="adamw", help="adamw or lamb")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--mixup", type=float, default=0.0)
    p.add_argument("--cutmix", type=float, default=0.0)
    p.add_argument("--clip-grad", type=float, default=5.0)
    add_run_options(p)
    p.add_argument("--distill", default="none", help="none, qfd, fgd or kd")
    p.add_argument("--teacher", default=None, help="registered teacher model")
    p.add_argument("--teacher-checkpoint", default=None, help="teacher state_dict file")
    p.add_argument("--distill-weight", type=float, default=0.5, help="lambda")
    p.add_argument("--teacher-bits", type=int, default=8, help="QFD: teacher feature bits (1, 4, 8)")
    p.add_argument("--tau", type=float, default=4.0, help="KD temperature")
    p.add_argument("--projection", action="store_true", help="QFD: linear map when feature sizes differ")
    p.add_argument("--no-measure", action="store_true", help="skip the efficiency measurement at the end")
    p.add_argument(
        "--checkpoint", default=None, help="initial weights: spikebench or official checkpoint (fine-tune)"
    )
    p.add_argument("--out", default=None, help="run directory (default runs/classification/<model>-<hash>)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--sync-bn", action="store_true", help="torchrun: BatchNorm over the global batch")
    p.add_argument(
        "--augment-rng",
        default="process",
        help="process (each rank's stream) or sample (per-sample seeds: the same for any process count)",
    )
    p.set_defaults(func=_run)


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

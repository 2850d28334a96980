"""``spikebench`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import torch

from bench.errors import ConfigError
from bench.quiet import silence_third_party


def _models(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm

    from bench.images import generated_images
    from bench.measure.size import weight_bits
    from bench.registry import create_model, list_models, model_entry

    names = list_models(args.pattern, family=args.family, tiny=True if args.tiny else None)
    if not names:
        raise ConfigError(f"--pattern={args.pattern!r} matches no registered model; see `spikebench models`")
    _one_model_for_checkpoint(args.checkpoint, names)
    torch.set_num_threads(args.threads)
    rows = []
    for name in tqdm(names, desc="models", unit="model", disable=not args.forward, file=sys.stderr):
        entry = model_entry(name)
        model = create_model(name, checkpoint=args.checkpoint).eval()
        row = dict(
            model=name,
            family=entry.family,
            params_M=round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            params_M_paper=entry.paper.get("params_m"),
            bits_w=weight_bits(model),
            T=getattr(model, "T", None),
        )
        if args.forward:
            size = args.img_size or entry.paper.get("img_size", 224)
            x = generated_images(1, size, seed=0)
            with torch.no_grad():
                start = time.perf_counter()
                out = model(x)
                row.update(
                    img_size=size,
                    out_shape="x".join(map(str, out.shape)),
                    forward_ms=round(1000 * (time.perf_counter() - start), 1),
                    finite=bool(torch.isfinite(out).all()),
                )
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        table.to_csv(tmp, index=False)
        tmp.replace(out)
        print(f"wrote {out}", file=sys.stderr)
    return 0 if not args.forward or table["finite"].all() else 1


def _one_model_for_checkpoint(checkpoint: str | None, names: list[str]) -> None:
    if checkpoint and len(names) != 1:
        raise ConfigError(
            f"--checkpoint={checkpoint} needs exactly one model; the selection has {len(names)}: "
            f"{', '.join(names[:5])}"
        )


TABLE_COLUMNS = [
    "model",
    "family",
    "params_M",
    "bits_w",
    "T",
    "size_MB",
    "size_MB_paper",
    "MACs_G",
    "SOPs_G",
    "fr_mean",
    "energy_mJ",
    "energy_hw_mJ",
    "latency_ms",
    "img_per_s",
]


def _profile(args: argparse.Namespace) -> int:
    import json

    import pandas as pd
    from tqdm import tqdm

    from bench.images import generated_images
    from bench.io import write_json_atomic, write_text_atomic
    from bench.measure.ops import OpsConventions
    from bench.measure.profile import profile_model
    from bench.registry import create_model, list_models, model_entry

    conventions = OpsConventions(args.padding, args.sops, args.zero_weights)
    if args.models:
        names = sorted({n for pat in args.models for n in (list_models(pat) or [model_entry(pat).name])})
    else:
        names = list_models(tiny={"tiny": True, "paper": False, "all": None}[args.size])
    _one_model_for_checkpoint(args.checkpoint, names)
    if args.batches < 1 or args.batch_size < 1:
        raise ConfigError("--batches and --batch-size must be >= 1 (the dataset would be empty)")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    bar = tqdm(names, desc="profile", unit="model", file=sys.stderr)
    for name in bar:
        bar.set_postfix_str(name)
        record_path = out / "records" / f"{name}.json"
        if args.skip_existing and record_path.exists():
            continue
        entry = model_entry(name)
        model = create_model(name, checkpoint=args.checkpoint)
        size = args.img_size or entry.paper.get("img_size", 224)
        if args.data:
            from torch.utils.data import DataLoader

            from bench.data.datasets import build_datasets, resolve_data

            eval_set = build_datasets(resolve_data(args.data), size)[1]
            loader = iter(DataLoader(eval_set, batch_size=args.batch_size))
            data = [batch[0] for _, batch in zip(range(args.batches), loader, strict=False)]
        else:
            data = [generated_images(args.batch_size, size, seed=i) for i in range(args.batches)]
        rec = profile_model(
            model,
            data,
            energy_preset=args.energy,
            first_layer_T=args.first_layer_T,
            latency_repeats=args.latency_repeats,
            conventions=conventions,
            hardware=args.hardware,
            reuse=args.reuse,
        )
        layers = rec.pop("layers")
        source = args.data or "generated images"
        rec = dict(
            model=name, family=entry.family, data=f"{source}, {args.batches} x {args.batch_size}", **rec
        )
        if args.checkpoint:
            rec["checkpoint"] = model.checkpoint_report
        write_text_atomic(out / "layers" / f"{name}.csv", pd.DataFrame(layers).to_csv(index=False))
        write_json_atomic(record_path, rec)
    records = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))]
    table = pd.DataFrame(records).reindex(columns=TABLE_COLUMNS)
    write_text_atomic(out / "efficiency.csv", table.to_csv(index=False))
    md = table.to_markdown(index=False, floatfmt=".4g")
    write_text_atomic(out / "efficiency.md", md + "\n")
    print(md)
    print(f"wrote {out}/efficiency.csv, efficiency.md, records/, layers/", file=sys.stderr)
    return 0


def _remeasure(args: argparse.Namespace) -> int:
    import json

    from bench.measure.remeasure import remeasure_runs

    for root in args.runs:
        for path in remeasure_runs(root, args.hardware, args.reuse):
            e = json.loads(path.read_text())["energy_hw_mJ"]
            print(
                f"{path.parent.parent}: energy_hw {e:.6g} mJ ({args.hardware}, weights read per {args.reuse})"
            )
    return 0


def _data_make(args: argparse.Namespace) -> int:
    from bench.data.generate import write_cifar, write_imagenet_folder

    if args.format in ("coco", "ade20k"):
        from bench.data.ade20k import write_ade20k
        from bench.data.coco import write_coco

        counts = dict(train_images=args.images, val_images=args.eval_images, size=args.size or 128)
        root = (write_coco if args.format == "coco" else write_ade20k)(args.out, args.seed, **counts)
    elif args.format == "imagenet":
        root = write_imagenet_folder(
            args.out, args.classes, args.per_class, args.eval_per_class, args.size or 32, args.seed, args.kind
        )
    else:
        root = write_cifar(
            args.out, 10 if args.format == "cifar10" else 100, args.per_class, args.eval_per_class, args.seed
        )
    print(f"wrote {args.format} dataset to {root}")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    """``spikebench models``: list the registered backbones."""
    m = sub.add_parser(
        "models", help="list registered backbones with parameter counts; --forward runs each once"
    )
    m.add_argument("--pattern", default="*", help="glob over model names (default: all)")
    m.add_argument("--family", default=None, help="only this family (sdt, sdt_v2, qsd, ...)")
    m.add_argument("--tiny", action="store_true", help="only the tiny CPU variants")
    m.add_argument("--forward", action="store_true", help="run one forward pass on a generated image")
    m.add_argument("--img-size", type=int, default=None, help="input size (default: each model's own)")
    m.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    m.add_argument("--out", default=None, help="also write the table as CSV here")
    m.add_argument("--checkpoint", default=None, help="load this checkpoint (spikebench or official layout)")
    m.set_defaults(func=_models)


def _add_profile(sub: argparse._SubParsersAction) -> None:
    """``spikebench profile``: the efficiency table of a set of models."""
    pr = sub.add_parser(
        "profile", help="efficiency table: params, size, MACs, firing rates, SOPs, energy, latency"
    )
    pr.add_argument(
        "--models", nargs="*", default=None, help="names or glob patterns (default: all at --size)"
    )
    pr.add_argument("--size", choices=("tiny", "paper", "all"), default="tiny", help="default model set")
    pr.add_argument("--img-size", type=int, default=None, help="input size (default: each model's own)")
    pr.add_argument(
        "--data",
        default=None,
        help="measure on this dataset's evaluation split (folder or "
        "generated:<name>) instead of generated images",
    )
    pr.add_argument("--batches", type=int, default=2, help="batches for firing rates and operations")
    pr.add_argument("--batch-size", type=int, default=2)
    pr.add_argument("--energy", default="fp32_45nm", help="cost preset: fp32_45nm, fp16_45nm, int8_45nm")
    pr.add_argument(
        "--hardware",
        default="45nm",
        help="energy_hw description: a preset (paper-45nm, 45nm, loihi) or a YAML file (docs/energy.md)",
    )
    pr.add_argument(
        "--reuse",
        choices=("inference", "step", "use"),
        default="inference",
        help="energy_hw weight reads: once per inference, once per time step, or per use (upper bound)",
    )
    pr.add_argument("--first-layer-T", action="store_true", help="charge the pixel layer T times, not once")
    pr.add_argument("--padding", choices=("count", "skip"), default="count", help="conv taps on zero padding")
    pr.add_argument(
        "--sops", choices=("paper", "fanout"), default="paper", help="paper: fr x MACs; fanout: exact"
    )
    pr.add_argument("--zero-weights", choices=("count", "skip"), default="count", help="weights exactly 0")
    pr.add_argument("--latency-repeats", type=int, default=5)
    pr.add_argument("--threads", type=int, default=2)
    pr.add_argument("--skip-existing", action="store_true", help="keep models that already have a record")
    pr.add_argument("--out", default="results/profile", help="output folder")
    pr.add_argument("--checkpoint", default=None, help="load this checkpoint into the (one) model")
    pr.set_defaults(func=_profile)


def _add_remeasure(sub: argparse._SubParsersAction) -> None:
    """``spikebench remeasure``: energy_hw of finished runs under another preset."""
    rm = sub.add_parser(
        "remeasure",
        help="recompute energy_hw of finished runs (their efficiency.json) under another hardware preset",
    )
    rm.add_argument("runs", nargs="+", help="run or sweep folders holding efficiency.json")
    rm.add_argument("--hardware", required=True, help="a preset (paper-45nm, 45nm, loihi) or a YAML file")
    rm.add_argument("--reuse", choices=("inference", "step", "use"), default="inference")
    rm.set_defaults(func=_remeasure)


def _add_data(sub: argparse._SubParsersAction) -> None:
    """``spikebench data make``: small datasets in real on-disk formats."""
    d = sub.add_parser("data", help="datasets in real formats")
    dsub = d.add_subparsers(dest="data_command", required=True)
    mk = dsub.add_parser("make", help="write a small learnable dataset in a real on-disk format")
    mk.add_argument("format", choices=("imagenet", "cifar10", "cifar100", "coco", "ade20k"))
    mk.add_argument("--out", required=True, help="folder to write")
    mk.add_argument("--classes", type=int, default=10, help="imagenet format only")
    mk.add_argument(
        "--kind",
        choices=("pattern", "hue"),
        default="pattern",
        help="imagenet: classes by pattern or by hue alone",
    )
    mk.add_argument("--per-class", type=int, default=50, help="training images per class")
    mk.add_argument("--eval-per-class", type=int, default=10, help="evaluation images per class")
    mk.add_argument("--images", type=int, default=120, help="training images (coco, ade20k)")
    mk.add_argument("--eval-images", type=int, default=30, help="validation images (coco, ade20k)")
    mk.add_argument(
        "--size", type=int, default=None, help="image size (imagenet: 32, coco/ade20k: 128; CIFAR is 32)"
    )
    mk.add_argument("--seed", type=int, default=0)
    mk.set_defaults(func=_data_make)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="spikebench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _add_models(sub)
    _add_profile(sub)
    _add_remeasure(sub)
    _add_data(sub)
    for ep in entry_points(group="spikebench.commands"):  # task and ablation commands (tasks/, ablations/)
        ep.load()(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spikebench`` console script."""
    silence_third_party()  # before the task packages (and the OpenMMLab stack) are imported
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # Ctrl-C and SIGTERM end any command the same way, even where a shell ignored SIGINT
        previous = (
            signal.signal(signal.SIGTERM, _sigterm),
            signal.signal(signal.SIGINT, signal.default_int_handler),
        )
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"spikebench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # records of an interrupted run say "interrupted"; a rerun resumes
        why = str(err) or "SIGINT"
        print(f"spikebench: interrupted by {why}; rerun the same command to resume", file=sys.stderr)
        return 143 if why == "SIGTERM" else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])


def _sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C does (records say interrupted)."""
    raise KeyboardInterrupt("SIGTERM")


if __name__ == "__main__":
    sys.exit(main())

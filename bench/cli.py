"""``spikebench`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench.errors import ConfigError


def _models(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm

    from bench.images import generated_images
    from bench.registry import create_model, list_models, model_entry

    names = list_models(args.pattern, family=args.family, tiny=True if args.tiny else None)
    if not names:
        raise ConfigError(f"--pattern={args.pattern!r} matches no registered model; see `spikebench models`")
    torch.set_num_threads(args.threads)
    rows = []
    for name in tqdm(names, desc="models", unit="model", disable=not args.forward, file=sys.stderr):
        entry = model_entry(name)
        model = create_model(name).eval()
        row = dict(
            model=name,
            family=entry.family,
            params_M=round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            params_M_paper=entry.paper.get("params_m"),
            bits_w=getattr(model, "opts", None) and model.opts.bits,
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="spikebench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
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
    m.set_defaults(func=_models)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spikebench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"spikebench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

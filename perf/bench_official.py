"""``qsd_15m`` against the official QSD-Transformer code (``spikformer_8_15M_CAFormer``): same weights, input.

The official code is not part of spikebench: fetch it yourself and pass the checkout,
``git clone https://github.com/bollossom/QSD-Transformer`` then
``.venv/bin/python perf/bench_official.py --official QSD-Transformer``. Without ``--official`` it skips.
Our weights are written in the official layout (``bench.checkpoints.to_official``) and the eval logits
must be bitwise equal before anything is timed. Timed, interleaved after warm-up: eval forward (ours with
the eval cache of quantized weights, and with ``weight_cache(False)``, which re-quantizes every forward as the
official code does) and a training step (forward, cross-entropy, backward, SGD step).
Goal: official time / ours >= 1.0x for eval and training, eval with cached weights clearly above.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import interleaved_times, quartiles
from torch import nn

import bench
from bench.checkpoints import keymap_for, to_official
from bench.nn.quant import weight_cache

OFFICIAL_BUILDER = "spikformer_8_15M_CAFormer"  # bollossom/QSD-Transformer classification/models.py


def official_model(checkout: Path) -> nn.Module:
    """The official ``qsd_15m`` built from a QSD-Transformer checkout (its ``classification/`` folder)."""
    folder = checkout / "classification"
    if not (folder / "models.py").is_file():
        sys.exit(f"--official {checkout}: no classification/models.py; pass a QSD-Transformer checkout")
    sys.path.insert(0, str(folder))
    with warnings.catch_warnings():  # the official code imports timm.models.layers (deprecated)
        warnings.simplefilter("ignore")
        models = importlib.import_module("models")
    return getattr(models, OFFICIAL_BUILDER)()


def paired(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> float:
    """Load our weights into the official model; the largest eval-logit difference (0.0 expected)."""
    ours.train()
    with torch.no_grad():
        ours(x)  # initialises the LSQ steps as the first training forward does
    theirs.load_state_dict(to_official(keymap_for("qsd", ours), ours))
    ours.eval(), theirs.eval()
    with torch.no_grad():
        return float((ours(x) - theirs(x)).abs().max())


def evaluation(model: nn.Module, x: torch.Tensor, cache: bool = True) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad(), weight_cache(cache):
            model(x)

    return run


def training(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    target = torch.arange(x.shape[0]) % 1000
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), target).backward()
        opt.step()

    return run


def report(title: str, times: dict[str, list[float]]) -> None:
    """Medians with quartiles, and official / ours from medians and from each interleaved pair."""
    print(f"  {title}:")
    for name, t in times.items():
        q1, q2, q3 = quartiles(t)
        print(f"    {name:28s} median {q2 * 1e3:8.1f} ms  (quartiles {q1 * 1e3:.1f}..{q3 * 1e3:.1f})")
    for name, t in times.items():
        if name == "official":
            continue
        ratio = statistics.median(times["official"]) / statistics.median(t)
        q1, _, q3 = quartiles([a / b for a, b in zip(times["official"], t, strict=True)])
        verdict = "met" if ratio >= 1.0 else "NOT met"
        print(
            f"    official / {name:20s} {ratio:.3f}x  (per-pair quartiles {q1:.3f}..{q3:.3f}; "
            f"goal >= 1.0x: {verdict})"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, help="a checkout of github.com/bollossom/QSD-Transformer")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--modes", nargs="+", default=["eval", "train"], choices=["eval", "train"])
    args = p.parse_args()
    if args.official is None:
        print("bench_official: skipped (no --official PATH to a QSD-Transformer checkout; see --help)")
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    theirs, ours = official_model(args.official), bench.create_model("qsd_15m")
    x = torch.randn(args.batch, 3, args.size, args.size)
    diff = paired(ours, theirs, x)
    print(
        f"qsd_15m vs official {OFFICIAL_BUILDER} ({args.size} px, batch {args.batch}, CPU x{args.threads}, "
        f"{args.repeats} interleaved repeats); eval logits max |diff| {diff:.1e}"
    )
    if diff != 0.0:
        sys.exit("bench_official: the two models disagree on the same weights; not timing them")
    if "eval" in args.modes:
        fns = {
            "ours, cached weights": evaluation(ours, x),
            "ours, re-quantized": evaluation(ours, x, cache=False),
            "official": evaluation(theirs, x),
        }
        report("eval forward", interleaved_times(fns, args.repeats))
    if "train" in args.modes:
        ours.train(), theirs.train()
        fns = {"ours": training(ours, x), "official": training(theirs, x)}
        report("training step (forward, backward, SGD)", interleaved_times(fns, args.repeats))


if __name__ == "__main__":
    main()

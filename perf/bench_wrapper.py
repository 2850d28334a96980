"""spikebench-wrapped timm model vs the raw timm model: forward time ratio, same weights and input.

Goal: wrapped / raw <= 1.02x (the wrapper adds only an input-size check and QConv2d/QLinear at 32 bits).
Run: .venv/bin/python perf/bench_wrapper.py
"""

from __future__ import annotations

import timm
import torch
from _timing import bench_args, interleaved_medians

import bench


def main() -> None:
    args = bench_args(__doc__, models=["mobilevit_xxs", "efficientformerv2_s0"], batch=8, repeats=9)
    print(
        f"wrapped / raw timm forward time (batch {args.batch}, CPU x{args.threads}, "
        f"median of {args.repeats}):"
    )
    for name in args.models:
        ours = bench.create_model(name).eval()
        timm_name = bench.model_entry(name).paper["timm"]
        extra = {"img_size": ours.img_size} if timm_name.startswith("efficientformerv2") else {}
        raw = timm.create_model(timm_name, pretrained=False, num_classes=ours.num_classes, **extra).eval()
        raw.load_state_dict(ours.net.state_dict())
        x = torch.randn(args.batch, 3, ours.img_size, ours.img_size)

        def run(model, x=x):
            def call():
                with torch.no_grad():
                    model(x)

            return call

        med = interleaved_medians({"raw": run(raw), "wrapped": run(ours)}, repeats=args.repeats)
        ratio = med["wrapped"] / med["raw"]
        verdict = "met" if ratio <= 1.02 else "NOT met"
        print(
            f"  {name:22s} raw {med['raw'] * 1e3:7.1f} ms  wrapped {med['wrapped'] * 1e3:7.1f} ms  "
            f"ratio {ratio:.3f}x (goal <= 1.02x: {verdict})"
        )


if __name__ == "__main__":
    main()

"""Forward with measurement hooks (firing rates + synaptic ops) over a plain forward, same model and input.

Goal: <= 1.10x. Both run in spike-driven, unfused mode (the mode ``profile`` measures in).
Run: .venv/bin/python perf/bench_measure.py
"""

from __future__ import annotations

import torch
from _timing import bench_args, interleaved_medians

import bench
from bench.images import generated_images
from bench.measure.firing import FiringRateMonitor
from bench.measure.ops import SynapticOps


def main() -> None:
    args = bench_args(__doc__, models=["sdt_8_384", "qsd_15m"], batch=2, repeats=5)
    print(f"hooked / plain forward time (224 px, batch {args.batch}, CPU x{args.threads}):")
    for name in args.models:
        model = bench.create_model(name).spike_driven_(True, fuse=False)
        x = generated_images(args.batch, 224)

        def plain(model=model, x=x):
            with torch.no_grad():
                model(x)

        def hooked(model=model, x=x):
            with torch.no_grad(), FiringRateMonitor(model), SynapticOps(model):
                model(x)

        med = interleaved_medians({"plain": plain, "hooked": hooked}, repeats=args.repeats, warmup=1)
        ratio = med["hooked"] / med["plain"]
        print(
            f"  {name:12s} plain {med['plain'] * 1e3:8.1f} ms  hooked {med['hooked'] * 1e3:8.1f} ms  "
            f"ratio {ratio:.3f}x (goal <= 1.10x: {'met' if ratio <= 1.10 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()

"""Our fused multi-step LIF against spikingjelly 2.x's multi-step LIFNode (its torch code path), same shapes.

Forward + backward on [T, B, C, H, W] = [4, 32, 384, 14, 14] (an SDT-8-384 block tensor), interleaved
after warm-up; goal: ours >= 1.0x as fast. Run: .venv/bin/python perf/bench_lif.py
"""

from __future__ import annotations

import torch
from _timing import bench_args, interleaved_medians
from spikingjelly.activation_based import neuron as sj

from bench.nn.neurons import LIF


def main() -> None:
    args = bench_args(__doc__, shape=[4, 32, 384, 14, 14], repeats=7)
    x = torch.randn(*args.shape) * 1.5
    ours, theirs = LIF(), sj.LIFNode(tau=2.0, detach_reset=True, step_mode="m")

    def step(neuron):
        def run():
            xi = x.clone().requires_grad_()
            neuron(xi).sum().backward()
            neuron.reset()

        return run

    med = interleaved_medians({"spikebench": step(ours), "spikingjelly": step(theirs)}, repeats=args.repeats)
    ratio = med["spikingjelly"] / med["spikebench"]
    print(
        f"multi-step LIF forward+backward on {list(x.shape)} (CPU x{args.threads}, median of {args.repeats}):"
    )
    print(f"  spikebench   {med['spikebench'] * 1e3:8.1f} ms")
    print(f"  spikingjelly {med['spikingjelly'] * 1e3:8.1f} ms")
    print(
        f"  speed ratio (spikingjelly time / ours) {ratio:.2f}x; "
        f"goal >= 1.0x -> {'met' if ratio >= 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()

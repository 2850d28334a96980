"""SDSA vs softmax attention: time at 4N tokens over time at N tokens, measured side by side.

Goal: SDSA (linear in N) <= 4.5x; softmax attention (quadratic) >= 10x. Inference, batch 1, T = 1.
Run: .venv/bin/python perf/bench_attention.py
"""

from __future__ import annotations

import torch
from _timing import bench_args, interleaved_medians

from bench.nn.attention import SpikingAttention


def main() -> None:
    args = bench_args(__doc__, dim=64, side=32)  # N = side^2 tokens; 4N = (2 side)^2
    torch.manual_seed(0)
    rows = {}
    fns = {}
    for kind in ("sdsa", "q-sdsa", "softmax"):
        attn = SpikingAttention(args.dim, heads=8, attention=kind).eval()
        for side in (args.side, 2 * args.side):
            s = (torch.rand(1, 1, args.dim, side, side) < 0.2).float()

            def run(attn=attn, s=s):
                with torch.no_grad():
                    attn(s)

            fns[(kind, side)] = run
    med = interleaved_medians({f"{k}@{s}": f for (k, s), f in fns.items()})
    n = args.side**2
    print(
        f"attention time ratio, {4 * n} tokens over {n} tokens "
        f"(dim {args.dim}, 8 heads, T=1, CPU x{args.threads}):"
    )
    for kind in ("sdsa", "q-sdsa", "softmax"):
        a, b = med[f"{kind}@{args.side}"], med[f"{kind}@{2 * args.side}"]
        rows[kind] = b / a
        print(f"  {kind:8s} {a * 1e3:8.2f} ms -> {b * 1e3:8.2f} ms   ratio {b / a:5.2f}x")
    print(
        f"goal: sdsa <= 4.5x -> {'met' if rows['sdsa'] <= 4.5 else 'NOT met'}; "
        f"softmax >= 10x -> {'as expected' if rows['softmax'] >= 10 else 'below expectation'}"
    )


if __name__ == "__main__":
    main()

"""Sweep speed-up: 8 tiny points with 2 local workers against 1 worker, measured in one run; and the
runner's overhead per point (process start + record), from a sweep whose points have nothing to train.

Goal: >= 1.6x with 2 workers on this 2-core machine. Run: .venv/bin/python perf/bench_sweep.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ablations.executors import LocalPool
from ablations.runner import run_sweep
from ablations.spec import load_spec
from bench.data.generate import write_imagenet_folder


def _spec(tmp: Path, data: Path, name: str, epochs: int, seeds: int, threads: int = 1) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nbase: {{model: sdt_tiny, data: {data}, epochs: {epochs}, batch_size: 32, "
        f"measure: false, threads: {threads}}}\naxes:\n  seed: {list(range(seeds))}\n"
    )
    return path


def _timed(spec_path: Path, pool: LocalPool, root: Path) -> float:
    spec = load_spec(spec_path)
    start = time.perf_counter()
    outcome = run_sweep(spec, pool, root, progress=False)
    assert outcome.count("ok") == len(outcome.states), outcome.states
    return time.perf_counter() - start


def _train_seconds(root: Path) -> float:
    return sum(
        sum(m["epoch_time_s"] for m in json.loads((d / "metrics.json").read_text()))
        for d in (root / "runs").iterdir()
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--points", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_imagenet_folder(tmp / "data", 10, 20, 5, size=32)
        spec = _spec(tmp, data, "speed", args.epochs, args.points)
        spec2 = _spec(tmp, data, "speed2", args.epochs, args.points, threads=2)
        _timed(_spec(tmp, data, "warm", 1, 1), LocalPool(1), tmp / "warm")  # start the forkserver once
        runs = {
            "1 worker x 1 thread": (spec, LocalPool(1)),
            "2 workers x 1 thread": (spec, LocalPool(2)),
            "1 worker x 2 threads": (spec2, LocalPool(1)),
        }
        times = {name: _timed(s, pool, tmp / f"run{i}") for i, (name, (s, pool)) in enumerate(runs.items())}
        for name, t in times.items():
            print(f"  {name:32s} {t:6.1f} s for {args.points} points ({args.epochs} epochs each)")
        same = times["1 worker x 1 thread"] / times["2 workers x 1 thread"]
        both = times["1 worker x 2 threads"] / times["2 workers x 1 thread"]
        print(
            f"speed-up of the pool, same threads per point: {same:.2f}x (goal >= 1.6x: "
            f"{'met' if same >= 1.6 else 'NOT met'})"
        )
        print(f"speed-up over one worker using both cores for each point (threads: 2): {both:.2f}x")
        one = times["1 worker x 1 thread"]
        overhead = (one - _train_seconds(tmp / "run0")) / args.points
        print(
            f"runner overhead per point (process start, data loading, evaluation, records): {overhead:.2f} s "
            f"of {one / args.points:.2f} s"
        )


if __name__ == "__main__":
    main()

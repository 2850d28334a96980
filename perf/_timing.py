"""Side-by-side timing helpers: interleaved repeats after warm-up, medians, ratios (no assertions)."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def interleaved_times(
    fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2
) -> dict[str, list[float]]:
    """Seconds of every repeat of each callable, run in turn (a, b, a, b, ...) so noise hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2
) -> dict[str, float]:
    """Median seconds of each callable, run in turn (a, b, a, b, ...) so noise hits all alike."""
    return {k: statistics.median(v) for k, v in interleaved_times(fns, repeats, warmup).items()}


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def bench_args(doc: str, **options: object) -> argparse.Namespace:
    """A benchmark's command line: ``--threads`` (default 2, applied to torch) and one ``--name`` option per
    keyword (``batch_size=8`` gives ``--batch-size``, typed by its default; a list default takes several
    values, with the type of its first item)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in {**options, "threads": 2}.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, list):
            p.add_argument(flag, nargs="+", type=type(default[0]), default=default)
        else:
            p.add_argument(flag, type=type(default), default=default)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    return args

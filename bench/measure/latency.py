"""Latency and throughput on the current device: warm-up, repeated runs, median and spread."""

from __future__ import annotations

import statistics
import time

import torch
from torch import Tensor, nn


@torch.no_grad()
def measure_latency(model: nn.Module, x: Tensor, warmup: int = 2, repeats: int = 5) -> dict:
    """Median and 10-90 % spread of one forward of ``x``; records threads, batch and device."""
    model.eval()
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(warmup):
        model(x)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    med = statistics.median(times)
    lo, hi = times[int(0.1 * (len(times) - 1))], times[int(round(0.9 * (len(times) - 1)))]
    return dict(
        latency_ms=med * 1e3,
        latency_p10_ms=lo * 1e3,
        latency_p90_ms=hi * 1e3,
        img_per_s=x.shape[0] / med,
        batch=x.shape[0],
        repeats=repeats,
        warmup=warmup,
        threads=torch.get_num_threads(),
        device=str(x.device),
    )

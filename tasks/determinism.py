"""Run-to-run determinism: a fixed thread count and deterministic algorithms for the span of one run.

The thread count is a field of every task's config (part of the run's hash), never taken from the machine
or the executor: intra-op threads split reductions differently, so 1 and 2 threads give different sums,
different first backward passes and different runs. With the same threads, seed and machine a run is
bit-identical on CPU whoever starts it (``spikebench train``, any sweep executor, any worker count).
"Same machine" includes the instruction set PyTorch's CPU kernels dispatch to (``cpu_capability`` in
every record: an AVX2 and an AVX-512 machine vectorise sums differently, so their runs differ).
On CUDA some kernels have no deterministic implementation; ``warn_only`` keeps them running and the
record says that exact repeatability is not guaranteed there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from bench.errors import check_positive_int

DEFAULT_THREADS = 1


def determinism_record(threads: int, device: object) -> dict:
    """What a run record says about its repeatability on ``device`` (a torch.device or its name)."""
    cuda = str(device).startswith("cuda")
    return dict(
        threads=threads,
        deterministic_algorithms=True,
        exact=not cuda,
        note=(
            "bit-identical for the same config (threads included), seed and machine (its cpu_capability "
            "included: AVX2 and AVX-512 kernels give different runs)"
            if not cuda
            else "CUDA: cuDNN/cuBLAS in deterministic mode, but kernels without a deterministic "
            "implementation (e.g. scatter/index_add backward) only warn: exact repeatability not guaranteed"
        ),
    )


@contextmanager
def deterministic(threads: int, device: object = "cpu") -> Iterator[dict]:
    """Within the block: ``threads`` intra-op threads and deterministic algorithms (restored after);
    yields :func:`determinism_record`."""
    import torch

    check_positive_int("threads", threads)
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if str(device).startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS deterministic workspace
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield determinism_record(threads, device)
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old_cudnn

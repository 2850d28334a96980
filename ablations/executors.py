"""Where sweep points run: a local process pool, Slurm (or its local stand-in) through submitit, or Ray.

Every executor calls ``ablations.runner.run_point`` in a separate process; the thread count of a point is
its config's ``threads`` (fixed, hashed), so the same spec gives the same records whichever executor runs it
and with any number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

from ablations.runner import Task, point_status, record_crash, run_point
from bench.errors import check_choice

EXECUTORS = ("local", "submitit", "ray")
Report = Callable[[str, str, int], None]


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no usable CUDA: CPU
        return 0


def _outcome(task: Task) -> str:
    st = point_status(Path(task.run_dir))
    return st if st in ("ok", "failed") else "failed"


class LocalPool:
    """Up to ``workers`` point processes at a time (forkserver, heavy modules preloaded); one GPU per
    worker slot when GPUs exist."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)
        self.gpus = _gpu_count()

    def run(self, tasks: list[Task], report: Report) -> None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "timm", "tasks", "ablations.runner"])
        pending = list(tasks)
        running: dict = {}
        free = list(range(self.workers))
        while pending or running:
            while pending and free:
                task, slot = pending.pop(0), free.pop(0)
                gpu = slot % self.gpus if self.gpus else None
                proc = ctx.Process(
                    target=run_point,
                    args=(task.run_dir, task.config, gpu, task.task),
                    name=f"spikebench-{task.name}",
                )
                proc.start()
                running[proc.sentinel] = (proc, task, slot)
            for sentinel in wait(list(running)):
                proc, task, slot = running.pop(sentinel)
                proc.join()
                free.append(slot)
                if proc.exitcode != 0:
                    record_crash(Path(task.run_dir), f"worker process exited with code {proc.exitcode}")
                report(task.name, _outcome(task), len(running))


class SubmititPool:
    """Slurm job arrays through submitit (``cluster='slurm'``), or submitit's local executor (``'local'``)."""

    def __init__(self, folder: str | Path, workers: int = 1, cluster: str | None = None, **params) -> None:
        self.folder = Path(folder)
        self.workers = max(1, workers)
        self.cluster = cluster
        self.params = params

    def run(self, tasks: list[Task], report: Report) -> None:
        import submitit

        ex = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        params = dict(timeout_min=24 * 60, **self.params)
        if ex.cluster == "slurm":
            params.setdefault("slurm_array_parallelism", self.workers)
        ex.update_parameters(**params)
        step = self.workers if ex.cluster != "slurm" else len(tasks) or 1
        for i in range(0, len(tasks), step):
            chunk = tasks[i : i + step]
            jobs = ex.map_array(
                run_point,
                [t.run_dir for t in chunk],
                [t.config for t in chunk],
                [None] * len(chunk),
                [t.task for t in chunk],
            )
            for j, (job, task) in enumerate(zip(jobs, chunk, strict=True)):
                try:
                    job.result()
                except Exception as err:  # the job died (node failure, out of memory, cancelled)
                    record_crash(Path(task.run_dir), f"submitit job failed: {str(err).splitlines()[0]}")
                report(task.name, _outcome(task), len(chunk) - j - 1)


class RayPool:
    """Ray tasks of one CPU (and one GPU when present) each; starts a local Ray instance unless one is up
    or ``address`` names a cluster."""

    def __init__(self, workers: int = 1, address: str | None = None) -> None:
        self.workers = max(1, workers)
        self.address = address

    def run(self, tasks: list[Task], report: Report) -> None:
        import ray

        started = not ray.is_initialized()
        if started:
            kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.workers, num_gpus=0, **kw)
        try:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_point)
            refs = {remote.remote(t.run_dir, t.config, None, t.task): t for t in tasks}
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                task = refs.pop(ready[0])
                try:
                    ray.get(ready[0])
                except Exception as err:  # worker crash, out of memory
                    record_crash(Path(task.run_dir), f"ray task failed: {str(err).splitlines()[0]}")
                report(task.name, _outcome(task), len(refs))
        finally:
            if started:
                ray.shutdown()


def make_executor(kind: str, workers: int, root: Path, **params):
    """An executor by name: local, submitit (``cluster`` param: slurm / local), ray (``address`` param)."""
    check_choice("executor", kind, EXECUTORS)
    if kind == "local":
        return LocalPool(workers)
    if kind == "submitit":
        return SubmititPool(root / "submitit", workers, **params)
    return RayPool(workers, **params)

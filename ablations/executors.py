"""Where sweep points run: a local process pool, Slurm (or its local stand-in) through submitit, or Ray.

Every executor calls ``ablations.runner.run_point`` in a separate process; the thread count of a point is
its config's ``threads`` (fixed, hashed), so the same spec gives the same records whichever executor runs it
and with any number of workers.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from ablations.runner import ELSEWHERE, Task, record_crash, run_point
from ablations.spec import EXECUTORS
from ablations.status import point_state
from bench.errors import check_choice

Report = Callable[[str, str, int], None]


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # no usable CUDA: CPU
        return 0


def _outcome(task: Task, returned: dict | None = None) -> str:
    if returned is not None and returned.get("elsewhere"):
        return ELSEWHERE
    return point_state(Path(task.run_dir)).status


def _exit_reason(code: int) -> str:
    if code < 0:
        return f"worker process killed by {signal.Signals(-code).name}"
    return f"worker process exited with code {code}"


class LocalPool:
    """Up to ``workers`` point processes at a time, forked from a preloaded server that dies with the
    runner (``ablations.worker``); one GPU per worker slot when GPUs exist."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)
        self.gpus = _gpu_count()
        self.server = None

    def run(self, tasks: list[Task], report: Report) -> None:
        from ablations.worker import ForkServer

        if self.server is None:
            self.server = ForkServer(Path(tasks[0].run_dir).parent.parent if tasks else "")
        pending = list(tasks)
        running: dict[int, tuple[Task, int]] = {}
        free = list(range(self.workers))
        try:
            while pending or running:
                while pending and free:
                    task, slot = pending.pop(0), free.pop(0)
                    job = dict(
                        run_dir=task.run_dir,
                        config=task.config,
                        gpu=slot % self.gpus if self.gpus else None,
                        task=task.task,
                        retry=task.retry,
                    )
                    running[self.server.start(job)] = (task, slot)
                for pid, code in self.server.ended(timeout=1.0):
                    task, slot = running.pop(pid)
                    free.append(slot)
                    if code not in (0, 75, 130):
                        record_crash(Path(task.run_dir), _exit_reason(code))
                    report(task.name, ELSEWHERE if code == 75 else _outcome(task), len(running))
        except BaseException as err:
            self._stop(running, str(err) or type(err).__name__)
            raise

    def _stop(self, running: dict, why: str) -> None:
        """Pass the interrupt on to every running point (each writes an ``interrupted`` record), then stop the
        server."""
        try:
            sig = signal.SIGTERM if why == "SIGTERM" else signal.SIGINT
            self.server.signal_children(list(running), sig)
            deadline = time.monotonic() + 60
            while running and time.monotonic() < deadline:
                for pid, _ in self.server.ended(timeout=0.2):
                    running.pop(pid, None)
        except BaseException:  # a second interrupt, or the server gone: kill what is left
            pass
        finally:
            self.close()
            for task, _ in running.values():
                record_crash(Path(task.run_dir), f"interrupted ({why})", "interrupted")

    def close(self) -> None:
        """Stop the worker server (the runner's exit does it too)."""
        if self.server is not None:
            self.server.close()
            self.server = None


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
            n = len(chunk)
            jobs = ex.map_array(
                run_point,
                [t.run_dir for t in chunk],
                [t.config for t in chunk],
                [None] * n,
                [t.task for t in chunk],
                [t.retry for t in chunk],
            )
            for j, (job, task) in enumerate(zip(jobs, chunk, strict=True)):
                returned = None
                try:
                    returned = job.result()
                except Exception as err:  # the job died (node failure, out of memory, cancelled)
                    record_crash(Path(task.run_dir), f"submitit job failed: {str(err).splitlines()[0]}")
                report(task.name, _outcome(task, returned), n - j - 1)


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
            refs = {remote.remote(t.run_dir, t.config, None, t.task, t.retry): t for t in tasks}
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                task = refs.pop(ready[0])
                returned = None
                try:
                    returned = ray.get(ready[0])
                except Exception as err:  # worker crash, out of memory
                    record_crash(Path(task.run_dir), f"ray task failed: {str(err).splitlines()[0]}")
                report(task.name, _outcome(task, returned), len(refs))
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

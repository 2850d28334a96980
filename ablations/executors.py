"""Where sweep points run: a local process pool, Slurm (or its local stand-in) through submitit, or Ray.

Every executor calls ``ablations.runner.run_point`` in a separate process; the thread count of a point is
its config's ``threads`` (fixed, hashed), so the same spec gives the same records whichever executor runs it
and with any number of workers. A point may span processes (``procs_per_point``, the spec's ``executor``
section) or GPUs (``gpus_per_point``: that many GPUs and one process each, where GPUs exist): it then runs
as a torchrun job inside the slot, job or task the executor gives it, which reserves that many CPUs / GPUs.
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


def point_procs(procs_per_point: int, gpus_per_point: int, gpus_here: int) -> int:
    """Processes of one point: one per GPU where the point asks for GPUs and there are some, else
    ``procs_per_point``."""
    return gpus_per_point if gpus_per_point and gpus_here else procs_per_point


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

    def __init__(self, workers: int = 1, procs_per_point: int = 1, gpus_per_point: int = 0) -> None:
        self.workers = max(1, workers)
        self.gpus = _gpu_count()
        self.per_point = max(1, gpus_per_point) if self.gpus else 0  # GPUs of one slot
        self.procs = point_procs(procs_per_point, gpus_per_point, self.gpus)
        self.server = None

    def _gpus_of(self, slot: int) -> int | str | None:
        if not self.gpus:
            return None
        ids = [(slot * self.per_point + i) % self.gpus for i in range(self.per_point)]
        return ids[0] if len(ids) == 1 else ",".join(map(str, ids))

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
                        gpu=self._gpus_of(slot),
                        task=task.task,
                        retry=task.retry,
                        procs=self.procs,
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

    def __init__(
        self,
        folder: str | Path,
        workers: int = 1,
        cluster: str | None = None,
        procs_per_point: int = 1,
        gpus_per_point: int = 0,
        **params,
    ) -> None:
        self.folder = Path(folder)
        self.workers = max(1, workers)
        self.cluster = cluster
        self.gpus_per_point = gpus_per_point
        self.procs_per_point = procs_per_point
        self.params = params

    def run(self, tasks: list[Task], report: Report) -> None:
        import submitit

        ex = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        params = dict(timeout_min=24 * 60, **self.params)
        procs = point_procs(self.procs_per_point, self.gpus_per_point, self.gpus_per_point)
        if ex.cluster == "slurm":  # one task per job, torchrun inside it starts the point's processes
            params.setdefault("slurm_array_parallelism", self.workers)
            params.setdefault("tasks_per_node", 1)
            params.setdefault("cpus_per_task", procs)
            if self.gpus_per_point:
                params.setdefault("gpus_per_node", self.gpus_per_point)
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
                [procs] * n,
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

    def __init__(
        self, workers: int = 1, address: str | None = None, procs_per_point: int = 1, gpus_per_point: int = 0
    ) -> None:
        self.workers = max(1, workers)
        self.address = address
        self.procs_per_point = procs_per_point
        self.gpus_per_point = gpus_per_point

    def run(self, tasks: list[Task], report: Report) -> None:
        import ray

        started = not ray.is_initialized()
        if started:
            kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.workers * self.procs_per_point, num_gpus=0, **kw)
        try:
            here = int(ray.cluster_resources().get("GPU", 0))
            gpus = (self.gpus_per_point or 1) if here else 0
            procs = point_procs(self.procs_per_point, self.gpus_per_point, here)
            remote = ray.remote(num_cpus=procs, num_gpus=gpus, max_retries=0)(run_point)
            refs = {remote.remote(t.run_dir, t.config, None, t.task, t.retry, procs): t for t in tasks}
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


def make_executor(
    kind: str, workers: int, root: Path, procs_per_point: int = 1, gpus_per_point: int = 0, **params
):
    """An executor by name: local, submitit (``cluster`` param: slurm / local), ray (``address`` param);
    each point spans ``procs_per_point`` processes (or ``gpus_per_point`` GPUs)."""
    check_choice("executor", kind, EXECUTORS)
    span = dict(procs_per_point=procs_per_point, gpus_per_point=gpus_per_point)
    if kind == "local":
        return LocalPool(workers, **span)
    if kind == "submitit":
        return SubmititPool(root / "submitit", workers, **span, **params)
    return RayPool(workers, **span, **params)

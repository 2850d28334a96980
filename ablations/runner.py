"""Run the points of a sweep, each in its own process, with records that survive any crash.

A point's directory is ``<sweep>/runs/<model>-<config hash>``. Its ``result.json`` (written atomically by the
task) is the source of truth: ``ok`` points are skipped on rerun, ``failed`` ones are retried only on
request, and a point whose process died without a record (crash, out of memory, kill) gets a failed record
from the runner. A per-point lock file keeps two runners from running the same point; the workers die with
the runner (Linux parent-death signal), so a killed sweep leaves no stray work behind, and a rerun resumes
unfinished points from their last checkpoint.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ablations.spec import Point, SweepSpec
from bench.io import write_json_atomic

STATUSES = ("pending", "running", "ok", "failed")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def sweep_dir(spec: SweepSpec, out: str | Path | None = None) -> Path:
    """Where a sweep's points live (default ``runs/sweeps/<spec name>``)."""
    return Path(out) if out is not None else Path("runs") / "sweeps" / spec.name


def point_dir(root: Path, point: Point) -> Path:
    return root / "runs" / point.name


def point_status(run_dir: Path) -> str:
    """pending, running (its lock is held), ok or failed."""
    lock = run_dir / ".lock"
    if lock.exists():
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                return "running"
    result = run_dir / "result.json"
    if result.exists():
        try:
            return "ok" if json.loads(result.read_text()).get("status") == "ok" else "failed"
        except json.JSONDecodeError:
            return "failed"
    return "pending"


def run_point(run_dir: str, config: dict, gpu: int | None = None, task: str = "classification") -> dict:
    """Run one point of ``task`` in this process (called inside a worker process by every executor).

    The thread count is the config's ``threads`` (part of the point's hash), never the executor's choice,
    so a point gives the same record whoever runs it."""
    _die_with_parent()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    from tasks import get_task
    from tasks.determinism import DEFAULT_THREADS

    torch.set_num_threads(int(config.get("threads", DEFAULT_THREADS)))
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return dict(status="running", reason="another runner holds this point")
        try:
            return get_task(task).run(config, path, progress=False)
        except Exception as err:  # the task has written the failed record
            return dict(status="failed", reason=f"{type(err).__name__}: {err}".splitlines()[0])


def record_crash(run_dir: Path, reason: str) -> None:
    """A failed record for a point whose process ended without writing one (never over an ok record)."""
    if point_status(run_dir) in ("ok", "failed"):
        return
    write_json_atomic(run_dir / "result.json", dict(status="failed", reason=reason))


@dataclass
class Task:
    """A point handed to an executor."""

    name: str
    run_dir: str
    config: dict
    task: str = "classification"


def plan(spec: SweepSpec, root: Path, retry: bool = False) -> tuple[list[Task], dict[str, str]]:
    """The tasks to run now and the status of every point (failed points only with ``retry``)."""
    tasks, status = [], {}
    for p in spec.points():
        d = point_dir(root, p)
        st = point_status(d)
        status[p.name] = st
        if st == "pending" or (st == "failed" and retry):
            if st == "failed":
                (d / "result.json").unlink(missing_ok=True)
            tasks.append(Task(p.name, str(d), p.config, p.task))
    return tasks, status


def run_sweep(
    spec: SweepSpec, executor, root: Path, retry: bool = False, progress: bool = True
) -> dict[str, str]:
    """Run what is pending (and failed, with ``retry``) through ``executor``; returns every point's status."""
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        root / "spec.json",
        dict(
            name=spec.name,
            task=spec.task,
            path=str(spec.path),
            axes=spec.axes,
            mode=spec.mode,
            baseline=spec.baseline,
            metrics=spec.metrics,
            seeds=spec.seeds,
            points=[dict(name=p.name, values=p.values) for p in spec.points()],
        ),
    )
    tasks, status = plan(spec, root, retry)
    done = sum(s == "ok" for s in status.values())
    failed = sum(s == "failed" for s in status.values()) if not retry else 0
    bar = tqdm(
        total=len(status),
        initial=done + failed,
        desc=f"sweep {spec.name}",
        unit="point",
        disable=not progress,
    )
    start = time.perf_counter()

    def report(name: str, outcome: str, running: int) -> None:
        nonlocal done, failed
        status[name] = outcome
        done += outcome == "ok"
        failed += outcome == "failed"
        bar.update(1)
        bar.set_postfix(done=done, running=running, failed=failed)

    for t in tasks:
        status[t.name] = "pending"
    executor.run(tasks, report)
    bar.close()
    for t in tasks:
        if status[t.name] not in ("ok", "failed"):
            status[t.name] = point_status(Path(t.run_dir))
    write_json_atomic(root / "sweep_status.json", dict(status=status, seconds=time.perf_counter() - start))
    return status

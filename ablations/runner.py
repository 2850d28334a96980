"""Run the points of a sweep, each in its own process, with records that survive any crash.

A point's directory is ``<sweep>/runs/<model>-<config hash>``; its ``result.json`` (written atomically) is
the record and ``ablations.status`` reads it into one of six statuses. A plain rerun runs pending,
interrupted and corrupt points (a corrupt record is moved aside first, the task resumes from its last good
checkpoint), skips ok ones, keeps failed ones until ``retry``, and waits for points whose lock another live
process holds ("running elsewhere"), so concurrent runners of one sweep split the points between them and
each ends when every point has ended. Worker processes never outlive the runner (``ablations.worker``).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ablations.spec import Point, SweepSpec
from ablations.status import (
    DONE,
    RECORD_STATUSES,
    PointState,
    lock_holder,
    point_state,
    read_record,
    take_lock,
)
from bench.errors import ConfigError, warn
from bench.io import move_aside, write_json_atomic

ELSEWHERE = "elsewhere"  # the outcome of a point whose lock another process held
LOG_NAME = "point.log"  # a point's own stdout, in its folder
MAX_ATTEMPTS = 3  # per point and invocation: a point that keeps coming back unfinished is left as it is


def sweep_dir(spec: SweepSpec, out: str | Path | None = None) -> Path:
    """Where a sweep's points live (default ``runs/sweeps/<spec name>``)."""
    return Path(out) if out is not None else Path("runs") / "sweeps" / spec.name


def point_dir(root: Path, point: Point) -> Path:
    return root / "runs" / point.name


def one_line(err: BaseException) -> str:
    """The reason of a record: a user error's own line, else ``Type: message`` (first line)."""
    text = str(err) if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"
    return (text.strip().splitlines() or [type(err).__name__])[0]


def run_point(
    run_dir: str,
    config: dict,
    gpu: int | str | None = None,
    task: str = "classification",
    retry: bool = False,
    procs: int = 1,
) -> dict:
    """Run one point of ``task`` in this process (``procs`` > 1: a torchrun job of ``procs`` processes, on
    the GPUs ``gpu`` names, e.g. ``"0,1"``), under the point's lock (called in a worker process by every
    executor); returns its record, with ``elsewhere: true`` when another process holds the point or has
    finished it meanwhile.

    The thread count is the config's ``threads`` (part of the point's hash), never the executor's choice,
    so a point gives the same record whoever runs it."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    from tasks import get_task
    from tasks.determinism import DEFAULT_THREADS

    torch.set_num_threads(int(config.get("threads", DEFAULT_THREADS)))
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    lock = take_lock(path)
    if lock is None:
        return dict(status="running", reason=f"running elsewhere ({lock_holder(path)})", elsewhere=True)
    with lock:
        state = read_record(path)
        if state.status == "ok" or (state.status == "failed" and not retry):
            return dict(state.record, elsewhere=True)
        if state.status == "corrupt":
            moved = move_aside(path / "result.json")
            warn(f"{state.reason}; moved to {moved.name}; redoing the point")
        elif state.status == "failed":
            (path / "result.json").unlink()
        try:
            with point_log(path / LOG_NAME):
                if procs > 1:
                    return _torchrun_point(path, config, task, procs)
                return get_task(task).run(config, path, progress=False)
        except Exception as err:
            if read_record(path).status not in DONE:  # the task stopped before writing its record
                write_json_atomic(
                    path / "result.json",
                    dict(status="failed", reason=one_line(err), task=task, model=config.get("model")),
                )
            return read_record(path).record
        except KeyboardInterrupt as err:
            if read_record(path).status not in RECORD_STATUSES:
                record_crash(path, f"interrupted by {str(err) or 'SIGINT'}", "interrupted", locked=True)
            raise


def _torchrun_point(path: Path, config: dict, task: str, procs: int) -> dict:
    """The point as a torchrun job of ``procs`` processes on this node (``ablations.launch``); its record
    (a failed one naming the exit code when the job ended without one)."""
    import json
    import signal
    import subprocess

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    cmd += ["-m", "ablations.launch", task, str(path), json.dumps(config)]
    started = time.time()
    proc = subprocess.Popen(cmd, env=env)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # torchrun passes SIGTERM on to its ranks: rank 0 records the interrupt
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        raise
    record = path / "result.json"
    fresh = record.exists() and record.stat().st_mtime >= started
    if code != 0 and not (fresh and read_record(path).status in DONE):
        write_json_atomic(
            record,
            dict(
                status="failed",
                reason=f"torchrun exited with code {code}",
                task=task,
                model=config.get("model"),
            ),
        )
    return read_record(path).record


@contextmanager
def point_log(path: Path) -> Iterator[None]:
    """Within the block this process's stdout (file descriptor 1, so C libraries too: mmengine's log lines,
    pycocotools' prints) is appended to ``path``: the terminal shows the sweep's progress and the one-line
    warnings (stderr), each point's chatter stays in its folder."""
    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(fd)
        os.close(saved)


def record_crash(run_dir: Path, reason: str, status: str = "failed", locked: bool = False) -> None:
    """A record for a point whose process ended without writing one (never over an existing record, never
    while another process holds the point)."""
    run_dir = Path(run_dir)
    if (run_dir / "result.json").exists() or (not locked and lock_holder(run_dir) is not None):
        return
    write_json_atomic(run_dir / "result.json", dict(status=status, reason=reason))


@dataclass
class Task:
    """A point handed to an executor."""

    name: str
    run_dir: str
    config: dict
    task: str = "classification"
    retry: bool = False


def plan(
    spec: SweepSpec, root: Path, retry: bool = False, attempts: Counter | None = None
) -> tuple[list[Task], dict[str, PointState]]:
    """The tasks to run now (pending, interrupted, corrupt; failed too with ``retry``) and every point's
    state. ``attempts`` counts this invocation's runs of each point (failed points are retried once)."""
    attempts = attempts if attempts is not None else Counter()
    tasks, states = [], {}
    for p in spec.points():
        d = point_dir(root, p)
        st = point_state(d)
        states[p.name] = st
        runnable = st.status in ("pending", "interrupted", "corrupt") or (
            st.status == "failed" and retry and attempts[p.name] == 0
        )
        if runnable and attempts[p.name] < MAX_ATTEMPTS:
            tasks.append(Task(p.name, str(d), p.config, p.task, retry and st.status == "failed"))
    return tasks, states


def _write_spec(spec: SweepSpec, root: Path) -> None:
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
            hardware=spec.hardware,
            note=spec.note,
            points=[dict(name=p.name, values=p.values) for p in spec.points()],
        ),
    )


@dataclass
class SweepOutcome:
    """Every point's final state, and which points this runner ran and which ran elsewhere."""

    states: dict[str, PointState]
    ran_here: set[str]
    elsewhere: set[str]

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.states.values())


def run_sweep(
    spec: SweepSpec,
    executor,
    root: Path,
    retry: bool = False,
    progress: bool = True,
    wait: bool = True,
    poll_s: float = 0.5,
) -> SweepOutcome:
    """Run what a plain rerun runs (failed points too with ``retry``) through ``executor``; wait for points
    running elsewhere (unless ``wait`` is false) and take over those that end unfinished."""
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    _write_spec(spec, root)
    attempts: Counter = Counter()
    ran_here: set[str] = set()
    elsewhere: set[str] = set()
    tasks, states = plan(spec, root, retry, attempts)
    todo = {t.name for t in tasks}
    settled = sum(s.status in DONE for n, s in states.items() if n not in todo)
    bar = tqdm(
        total=len(states),
        initial=settled,
        desc=f"sweep {spec.name}",
        unit="point",
        disable=not progress,
    )
    start = time.perf_counter()

    def report(name: str, outcome: str, running: int) -> None:
        if outcome == ELSEWHERE:
            elsewhere.add(name)
        else:
            ran_here.add(name)
            bar.update(1)
        bar.set_postfix(running=running, elsewhere=len(elsewhere - ran_here))

    try:
        while True:
            if tasks:
                attempts.update(t.name for t in tasks)
                executor.run(tasks, report)
            else:
                busy = {n for n, s in states.items() if s.status == "running"}
                if busy - elsewhere:
                    holders = sorted({states[n].reason for n in busy})
                    bar.write(
                        f"sweep {spec.name}: {len(busy)} point(s) running elsewhere ({'; '.join(holders)}); "
                        + ("waiting for them" if wait else "not waiting (--no-wait)"),
                        file=sys.stderr,
                    )
                elsewhere |= busy
                if not busy or not wait:
                    break
                bar.set_postfix(running=0, elsewhere=len(busy))
                time.sleep(poll_s)
            tasks, states = plan(spec, root, retry, attempts)
    finally:
        bar.close()
        close = getattr(executor, "close", None)
        if close is not None:
            close()
    elsewhere -= ran_here
    write_json_atomic(
        root / "sweep_status.json",
        dict(
            status={n: s.status for n, s in states.items()},
            reasons={n: s.reason for n, s in states.items() if s.status != "ok"},
            ran_here=sorted(ran_here),
            ran_elsewhere=sorted(elsewhere),
            seconds=time.perf_counter() - start,
        ),
    )
    return SweepOutcome(states, ran_here, elsewhere)

"""The status of a sweep point, read from its run directory; one model for the runner, store, CLI and tables.

- ``pending``: nothing written yet. A plain rerun runs it.
- ``running``: a live process holds the point's lock (this runner or another). A rerun waits for it.
- ``ok``: ``result.json`` says ok. Skipped.
- ``failed``: ``result.json`` says failed, with the reason. Kept until ``sweep retry``.
- ``interrupted``: stopped by SIGINT / SIGTERM (the record says so), or killed (files but no record).
  A plain rerun resumes it from its last checkpoint.
- ``corrupt``: ``result.json`` is not a readable record. A rerun moves it aside and redoes the point.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("pending", "running", "ok", "failed", "interrupted", "corrupt")
DONE = ("ok", "failed")  # a plain rerun leaves these alone
RECORD_STATUSES = ("ok", "failed", "interrupted")  # what a task may write in result.json


@dataclass(frozen=True)
class PointState:
    """A point's status, the reason when it is not ok, and its record (empty when unreadable)."""

    status: str
    reason: str | None = None
    record: dict = field(default_factory=dict)


def lock_holder(run_dir: Path) -> str | None:
    """``pid N on HOST`` of the live process holding the point's lock, or None when it is free."""
    lock = Path(run_dir) / ".lock"
    if not lock.exists():
        return None
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def take_lock(run_dir: Path):
    """The point's lock file, held (flock) by this process until closed; None when another holds it."""
    f = open(Path(run_dir) / ".lock", "a+")  # noqa: SIM115 (kept open: the open file is the lock)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.truncate(0)
    f.write(f"pid {os.getpid()} on {platform.node()}\n")
    f.flush()
    return f


def read_record(run_dir: Path) -> PointState:
    """The status that ``result.json`` (or its absence) gives, ignoring the lock."""
    run_dir = Path(run_dir)
    path = run_dir / "result.json"
    if not path.exists():
        started = run_dir.is_dir() and any(p.name != ".lock" for p in run_dir.iterdir())
        if started:
            return PointState("interrupted", "stopped without a record (its process was killed)")
        return PointState("pending")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return PointState("corrupt", f"{path}: not valid JSON ({str(err).splitlines()[0]})")
    if not isinstance(record, dict) or record.get("status") not in RECORD_STATUSES:
        got = record.get("status") if isinstance(record, dict) else type(record).__name__
        return PointState("corrupt", f"{path}: status={got!r}; allowed values: {', '.join(RECORD_STATUSES)}")
    return PointState(record["status"], record.get("reason"), record)


def point_state(run_dir: Path) -> PointState:
    """pending, running, ok, failed, interrupted or corrupt, with the reason."""
    holder = lock_holder(Path(run_dir))
    if holder is not None:
        return PointState("running", holder)
    return read_record(Path(run_dir))

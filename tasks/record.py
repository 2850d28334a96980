"""The run lifecycle every task shares: the run-folder guard, the environment record, JSON reading, and the
record of a run that stopped (``failed``, or ``interrupted`` and so resumable).

A task writes ``config.json`` first; rerunning the same config into the same folder returns its ok record or
resumes it; another config in that folder is a one-line ``ConfigError``. A torn ``result.json`` is moved aside
(one-line warning) and the run redone from its last checkpoint. ``KeyboardInterrupt`` (SIGINT, and SIGTERM,
which the CLI and the sweep workers turn into it) gives ``status: interrupted`` with the signal as the reason;
every other exception ``status: failed`` with its first line.
"""

from __future__ import annotations

import contextlib
import json
import platform
import signal
import subprocess
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from bench.errors import ConfigError, DataError, warn
from bench.io import move_aside, write_json_atomic

PER_LAYER = ("firing_rates", "layers", "macs_by_module", "macs_by_op")  # in efficiency.json only


def read_json(path: Path, move_aside_if_corrupt: bool = False) -> object:
    """A JSON file of a run; a torn one is a one-line DataError, or moved aside (with a warning): None."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        why = f"{path}: not valid JSON ({str(err).splitlines()[0]})"
        if not move_aside_if_corrupt:
            raise DataError(f"{why}; allowed: delete the run folder, or pass a new --out") from None
        warn(f"{why}; moved to {move_aside(Path(path)).name}; redoing the run")
        return None


def previous_ok(out: Path, config: dict, digest: str | None = None) -> dict | None:
    """The ok record of ``config`` already in ``out`` (None: run or resume it); another config's folder is a
    one-line ConfigError, and so is a record of the same fields whose ``config_digest`` is not ``digest``
    (the run read an older version of its generated set)."""
    if not (out / "config.json").exists():
        return None
    saved = read_json(out / "config.json")
    if saved != json.loads(json.dumps(config)):
        raise ConfigError(f"{out}: holds a run of another config; allowed: the same config, or a new --out")
    result = out / "result.json"
    previous = read_json(result, move_aside_if_corrupt=True) if result.exists() else None
    if not isinstance(previous, dict):
        return None
    stored = previous.get("config_digest")
    if digest is not None and stored is not None and stored != digest:
        raise ConfigError(
            f"{out}: holds a run of this config on another version of data={config.get('data')} "
            f"(config_digest {stored}, now {digest}); allowed: a new --out"
        )
    return previous if previous.get("status") == "ok" else None


def interrupt_of(err: BaseException) -> KeyboardInterrupt | None:
    """The SIGINT/SIGTERM behind ``err``: itself, or one a library turned into another exception while
    handling it (mmengine's config formatting raises SyntaxError when interrupted)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def reraise(err: BaseException) -> NoReturn:
    """Raise ``err`` again, or the SIGINT/SIGTERM it hides, so the CLI exits 130/143 and says interrupted."""
    interrupt = interrupt_of(err)
    raise err if interrupt is None else interrupt


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then deliver them: a record being written is written whole
    (torchrun sends SIGTERM to the other ranks right after one fails, often while they write theirs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, object] = {}
    try:  # handlers swapped inside: an interrupt landing between two swaps still restores the first
        for sig in held:
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught[:1]:
            signal.raise_signal(signum)


def stopped_record(err: BaseException, task: str, model: str, **fields) -> dict:
    """The record of a run that raised ``err``: interrupted (resumable) for SIGINT/SIGTERM, else failed."""
    if (interrupt := interrupt_of(err)) is not None:
        status, reason = "interrupted", f"interrupted by {str(interrupt) or 'SIGINT'}"
    elif isinstance(err, (ConfigError, DataError)):
        status, reason = "failed", str(err)
    else:
        status, reason = "failed", f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    reason = (reason.strip().splitlines() or [status])[0]
    trace = "".join(traceback.format_exception(err))
    return dict(status=status, reason=reason, task=task, model=model, **fields, traceback=trace)


_LATE_SIGNALS = 8  # interrupts that may land before the deferral began, each followed by another try


def write_stopped_record(
    err: BaseException, path: Path, task: str, model: str, *, writes: Callable[[], bool], **fields
) -> None:
    """Write the stopped record of ``err`` to ``path`` when ``writes()`` (this rank's turn), whole: a signal
    arriving meanwhile is delivered after the write (``signals_deferred``); one landing just before the
    deferral began (torchrun's SIGTERM right behind the collective error a dead rank caused) does not end the
    run without a record: the record of ``err`` is written, then that interrupt is raised."""
    late: KeyboardInterrupt | None = None
    for _ in range(_LATE_SIGNALS):
        written = False
        try:
            with signals_deferred():
                if writes():
                    write_json_atomic(path, stopped_record(err, task, model, **fields))
                written = True
            break
        except KeyboardInterrupt as interrupt:
            if written:  # the deferred signal, delivered after the write
                raise
            late = interrupt
    if late is not None:
        raise late


def trim_measurement(efficiency: dict) -> dict:
    """A measurement without its per-layer tables (those stay in ``efficiency.json``)."""
    return {k: v for k, v in efficiency.items() if k not in PER_LAYER}


def git_revision(folder: Path) -> str | None:
    """The commit of the checkout holding ``folder``, ending in ``-dirty`` when tracked code outside
    ``results/`` (tables and reports are outputs, not code) has uncommitted changes; None outside git."""

    def git(*args: str) -> str | None:
        try:
            run = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=folder)
            return run.stdout.strip() if run.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    sha = git("rev-parse", "HEAD")
    if sha and git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)results"):
        sha += "-dirty"
    return sha


def environment(seed: int, device: torch.device) -> dict:
    """Versions, git revision, device and seed of this run."""
    import timm

    sha = git_revision(Path(__file__).resolve().parent)
    return dict(
        python=platform.python_version(),
        torch=torch.__version__,
        timm=timm.__version__,
        numpy=np.__version__,
        git_sha=sha,
        device=str(device),
        threads=torch.get_num_threads(),
        seed=seed,
        host=platform.node(),
        **cpu_record(),
        started_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def cpu_record() -> dict:
    """The CPU model and the instruction set PyTorch's kernels dispatch to (``AVX2``, ``AVX512``, …): CPU
    runs are bit-identical only between machines that share it (vectorised kernels sum in other orders)."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return dict(cpu=model, cpu_capability=torch.backends.cpu.get_cpu_capability())

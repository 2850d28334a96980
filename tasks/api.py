"""The one interface every task implements: run a point (a config dict) into a directory → its record.

The sweep runner, the results store and the tables only ever see this interface, so none of them names a
task. A task's ``run`` writes ``result.json`` in the run directory (atomically) with at least
``status`` (``ok`` / ``failed``), ``reason`` when failed, ``task``, ``model`` and its metrics, and returns it.

Robustness contract (``ablations/status.py`` reads what a task leaves):
- user errors (config, dataset, annotation file, checkpoint path) raise ``ConfigError`` / ``DataError``
  with one line naming the file, the field and the allowed values; raised before training, they still end
  as a failed record (the runner writes it when the task did not);
- ``KeyboardInterrupt`` (SIGINT, and SIGTERM, which the CLI and the workers turn into it) is recorded as
  ``status: interrupted``, ``reason: interrupted by SIGINT`` (or SIGTERM), then re-raised; a plain rerun
  resumes the point;
- checkpoints are written atomically and the previous one kept (``prev.pt``); an unreadable checkpoint or
  a torn record is moved aside with ``bench.io.move_aside`` and reported with ``bench.errors.warn`` (one
  line naming the file), and the run resumes from the last good checkpoint;
- a config dataclass checks its field types (``bench.errors.check_types``) in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.util
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.versions import versioned
from bench.errors import ConfigError, check_bits, check_positive_int


@dataclass(frozen=True)
class TaskDef:
    """What the runner needs to know of a task."""

    name: str
    config_cls: type  # dataclass of a run: has ``model``, ``overrides``, ``seed``, ``distill``; ``digest()``
    distill_cls: type  # dataclass of the distillation part (``kind``, ``weight`` = lambda, ...)
    config_from_dict: Callable[[dict], Any]  # a validated config; bad input raises a one-line ConfigError
    run: Callable[..., dict]  # run(config: dict, out: Path, progress: bool = False) -> result record
    metrics: tuple[str, ...]  # metric keys of result.json, the primary one first
    batch: str = "global"  # what a config's batch_size counts: the global batch or "per_gpu"
    # the model of a config built without data, weights or training (meta device), for the report's
    # parameter counts of paper configs: build_untrained(config, device) -> nn.Module with parts as children
    build_untrained: Callable[..., Any] | None = None
    # registry model -> (paper_results.csv model, variant) of its published row, for published vs measured
    paper_rows: Callable[[], dict] | None = None
    openmmlab: bool = False  # runs on mmengine/mmcv/mmdet/mmseg (installed by ``scripts/setup.sh --dense``)

    # reprofile(run_dir, hardware, reuse) -> profile record of the run's final weights (no training), or None
    reprofile: Callable[..., dict] | None = None

    @classmethod
    def of(cls, name: str, config: tuple, run: Callable[..., dict], **rest: Any) -> TaskDef:
        """The task ``name`` from its config module's (config class, distillation class, config_from_dict)."""
        config_cls, distill_cls, from_dict = config
        return cls(name, config_cls, distill_cls, from_dict, run, **rest)


OPENMMLAB = ("mmengine", "mmcv", "mmdet", "mmseg")
DENSE_SETUP = "bash scripts/setup.sh --dense"


class MissingStackError(ConfigError):
    """A dense task was asked for on a core-only setup (no OpenMMLab stack)."""


def require_openmmlab(what: str = "detection/segmentation") -> None:
    """Stop with one line naming the install command when the OpenMMLab stack is not installed (the core
    setup, ``scripts/setup.sh``, installs classification alone). Looks the packages up without importing."""
    missing = [m for m in OPENMMLAB if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingStackError(
            f"{what}: needs the OpenMMLab stack, not installed here (missing: {', '.join(missing)}); "
            f"install it with `{DENSE_SETUP}` (about 14 min on 2 cores the first time: mmcv compiles from "
            "source; a few minutes from its cached wheel)"
        )


def require_stack(task: TaskDef) -> None:
    """``require_openmmlab`` for a task that runs on the OpenMMLab stack; nothing for the others."""
    if task.openmmlab:
        require_openmmlab(task.name)


def run_config(task: TaskDef, config: dict, out: str | Path, progress: bool = False) -> dict:
    """Run ``config`` of ``task`` into ``out``; returns the record."""
    return task.run(config, Path(out), progress=progress)


def arg(default: Any, help: str) -> Any:
    """A config field with a default and the help text its generated command-line option shows."""
    return dataclasses.field(default=default, metadata=dict(help=help))


def config_from_fields(config_cls: type, distill_cls: type, d: dict) -> Any:
    """``config_cls(**d)``; an unknown key of ``d`` or of ``d['distill']`` is a one-line error naming the
    allowed fields."""
    allowed = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(sorted(allowed))}")
    if isinstance(d.get("distill"), dict):
        allowed_d = {f.name for f in dataclasses.fields(distill_cls)}
        bad = sorted(set(d["distill"]) - allowed_d)
        if bad:
            raise ConfigError(
                f"unknown field 'distill.{bad[0]}'; allowed fields: {', '.join(sorted(allowed_d))}"
            )
    return config_cls(**d)


def content_digest(fields: dict) -> str:
    """12-hex-digit content hash of a config's fields and of its generated set's version past 1 (names run
    directories)."""
    return hashlib.sha256(json.dumps(versioned(fields), sort_keys=True).encode()).hexdigest()[:12]


def check_dense_fields(cfg: Any, ints: tuple[str, ...], scale: str) -> None:
    """The checks a detection and a segmentation config share: optional integers >= 1 (``ints``), the image
    scale field ``scale`` a multiple of 32, lr > 0, λ >= 0, the teacher's fields and bits."""
    for name in ints:
        if getattr(cfg, name) is not None:
            check_positive_int(name, getattr(cfg, name))
    value = getattr(cfg, scale)
    if value is not None and value % 32:
        raise ConfigError(f"{scale}={value} is not allowed; allowed values: multiples of 32")
    if cfg.lr is not None and not cfg.lr > 0:
        raise ConfigError(f"lr={cfg.lr} is not allowed; allowed values: > 0")
    distill = cfg.distill
    if distill.weight < 0:
        raise ConfigError(f"distill.weight={distill.weight} is not allowed; allowed values: >= 0")
    if isinstance(distill.teacher, dict):
        teacher_config(cfg, distill.teacher)  # its fields checked now, not when it runs
    check_bits("distill.teacher_bits", distill.teacher_bits)
    if distill.kind != "none" and not distill.teacher:
        raise ConfigError(f"distill.kind={distill.kind!r} needs distill.teacher (a run directory or config)")


def teacher_config(student: Any, teacher: dict) -> Any:
    """The config of a teacher given as fields (``distill.teacher: {overrides: {bits: 32}}``): the student's
    config with those fields (``overrides`` merged into the student's) and no distillation. An unknown field
    is a one-line error naming the allowed ones."""
    allowed = {f.name for f in dataclasses.fields(student)} - {"distill"}
    unknown = sorted(set(teacher) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown field 'distill.teacher.{unknown[0]}'; allowed fields: {', '.join(sorted(allowed))}"
        )
    d = dataclasses.asdict(student)
    d.update(teacher)
    d["overrides"] = {**student.overrides, **teacher.get("overrides", {})}
    d["distill"] = {"kind": "none"}
    return type(student)(**d)


def teacher_run(
    student: Any,
    out: Path,
    train: Callable[..., dict],
    main: bool = True,
    wait: Callable[[], None] | None = None,
) -> str | None:
    """The teacher of ``student.distill`` (None without distillation) as a run directory or name: what it
    names, or, when it is given as fields (:func:`teacher_config`), that run trained (or resumed, or reused)
    in ``<out>/../.teachers/<model>-<hash>``, one per config, shared by every point that names it.

    Concurrent points wait for one teacher run (a file lock). Under torchrun the main rank holds the lock and
    every rank trains the teacher together: ``main`` says whether this rank takes the lock, ``wait`` is the
    process group's barrier (around the teacher run)."""
    teacher = student.distill.teacher
    if student.distill.kind == "none":
        return None
    if not isinstance(teacher, dict):
        return teacher
    cfg = teacher_config(student, teacher)
    root = Path(out).parent / ".teachers"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{cfg.model}-{cfg.digest()}"
    with open(root / f"{path.name}.lock", "w") if main else nullcontext() as lock:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if wait is not None:
            wait()
        result = train(cfg, out=path)
        if wait is not None:
            wait()
    if result.get("status") != "ok":
        raise ConfigError(f"distill.teacher: the teacher run {path} failed: {result.get('reason')}")
    return str(path)

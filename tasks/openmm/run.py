"""One OpenMMLab run into a directory: validate, train (resuming), test, measure, record.

A run directory holds ``config.json`` (the task config), ``environment.json``, ``mm_config.py`` (the filled
mmengine config), ``mm/`` (mmengine's work dir: logs and ``iter_*.pth`` checkpoints, each written
atomically) and ``result.json`` (status ok / failed with the reason, task, model, metrics, efficiency,
config digest, neck_head), all written atomically. Rerunning the same config resumes from the newest
checkpoint (iteration schedule; torch RNG restored by ``RngStateHook``, data order replayed by mmengine),
so a run killed mid-training ends with the same record as an uninterrupted one; an ok run is not redone.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend, register_backend

from bench.io import atomic_path, write_json_atomic, write_text_atomic
from bench.registry import model_entry
from tasks.determinism import DEFAULT_THREADS, deterministic
from tasks.distributed import default_device, env_info, is_main_process, setup, writes_failure_record
from tasks.openmm.history import finish_history
from tasks.record import environment, previous_ok, reraise, trim_measurement, write_stopped_record


@register_backend("spikebench_atomic", force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but every write is atomic (a kill never leaves a torn checkpoint)."""

    def put(self, obj: bytes, filepath) -> None:
        with atomic_path(filepath) as tmp:
            tmp.write_bytes(obj)

    def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
        with atomic_path(filepath) as tmp:
            tmp.write_text(obj, encoding=encoding)


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The ``iter_<n>.pth`` with the largest n in ``work_dir`` (None when there is none)."""
    found = [
        (int(m.group(1)), p)
        for p in work_dir.glob("iter_*.pth")
        if (m := re.fullmatch(r"iter_(\d+)\.pth", p.name))
    ]
    return max(found)[1] if found else None


@contextmanager
def trusted_checkpoints() -> Iterator[None]:
    """torch >= 2.6 loads with ``weights_only=True`` by default, which refuses mmengine's checkpoints (message
    hub, numpy states); inside this block torch.load reads them fully. Only for this run's own files (and a
    teacher the user names), never downloads: nothing is fetched at run time."""
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def unique_name(prefix: str) -> str:
    """An mmengine experiment name no other runner in this process has (mmengine keys its logger, message
    hub and visualizer by it, so a repeated name would write into another run's log)."""
    return f"{prefix}-{time.strftime('%Y%m%d_%H%M%S')}-{uuid.uuid4().hex[:8]}"


def name_runner(cfg, prefix: str) -> None:
    """Give ``cfg``'s runner, and its visualizer, a name of their own: the mmdet/mmseg bases name every
    visualizer ``'visualizer'``, so a second runner in one process (a sweep worker, a test session) would
    reuse the first one's and write its ``scalars.json`` into the first run's folder."""
    cfg.experiment_name = unique_name(prefix)
    if cfg.get("visualizer") is not None:
        cfg.visualizer.name = cfg.experiment_name


def test_images(runner, n: int) -> list[torch.Tensor]:
    """The first ``n`` test images after the model's data preprocessor (a sliding-window test: their first
    window), i.e. what one forward sees at test time."""
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    test_cfg = getattr(model, "test_cfg", None) or {}
    window = test_cfg.get("crop_size") if test_cfg.get("mode") == "slide" else None
    images = []
    for batch in runner.test_dataloader:
        inputs = model.data_preprocessor(batch, False)["inputs"]
        if window is not None:  # sliding-window test: one forward sees one window
            inputs = inputs[..., : window[0], : window[1]]
        images.extend(inputs[i : i + 1] for i in range(inputs.shape[0]))
        if len(images) >= n:
            break
    return images[:n]


@dataclass(frozen=True)
class MMRun:
    """What a task asks of the shared OpenMMLab run: its name, the record's metrics (looked up in the
    evaluator's scores), the neck/head kind, and the measurement after training."""

    task: str
    metrics: tuple[str, ...]
    neck_head: str = "ann"
    measure: bool = True
    measure_images: int = 2
    measure_fn: Callable[..., dict] | None = None  # (model, images) -> efficiency; default: the whole model
    extra_metrics: Callable[[object], dict] | None = None  # (runner) -> more metrics for the record
    progress: bool = False


def run_openmm(
    cfg_obj,
    out: str | Path,
    run: MMRun,
    *,
    build_config: Callable[[Path], Config],
    validate: Callable[[], object],
) -> dict:
    """Run (or resume, or return the ok record of) ``cfg_obj`` (a task config dataclass with ``model``,
    ``seed`` and ``digest()``) into ``out``; ``build_config(work_dir)`` gives the filled mmengine config,
    ``validate()`` checks the data (one-line DataError) before anything is written or trained."""
    out = Path(out)
    config, digest = dataclasses.asdict(cfg_obj), cfg_obj.digest()
    previous = previous_ok(out, config, digest)
    if previous is not None:
        return previous
    model_entry(cfg_obj.model)
    validate()
    mm_cfg = build_config(out / "mm")
    main = is_main_process()  # under torchrun, rank 0 writes the records
    device = default_device()
    threads = getattr(cfg_obj, "threads", DEFAULT_THREADS)
    path = out / "result.json"  # before the try, with the digest and the writer: the except body only writes
    writes = functools.partial(writes_failure_record, env_info(), path, time.time())
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", config)
        write_text_atomic(out / "mm_config.py", mm_cfg.pretty_text)
    try:
        with deterministic(threads, device) as repeatability, warnings.catch_warnings():
            if not run.progress:  # sweep workers: their progress lines, not the stack's deprecation notices
                warnings.filterwarnings("ignore", module=r"(mmcv|mmdet|mmengine|mmseg)(\.|$)")
            if main:
                env = dict(_environment(cfg_obj.seed, device), determinism=repeatability)
                write_json_atomic(out / "environment.json", env)
            result = _train_test(cfg_obj, out, mm_cfg, run)
            result["determinism"] = repeatability
    except BaseException as err:  # interrupts too: SIGINT/SIGTERM -> interrupted (resumable), else failed
        write_stopped_record(
            err, path, run.task, cfg_obj.model, writes=writes, neck_head=run.neck_head, config_digest=digest
        )
        reraise(err)
    if main:
        write_json_atomic(path, result)
    return result


def _environment(seed: int, device: torch.device) -> dict:
    import mmcv
    import mmdet
    import mmengine
    import mmseg

    return dict(
        environment(seed, device),
        mmengine=mmengine.__version__,
        mmcv=mmcv.__version__,
        mmdet=mmdet.__version__,
        mmseg=mmseg.__version__,
    )


def _train_test(cfg_obj, out, mm_cfg, run: MMRun) -> dict:
    from mmengine.runner import Runner

    import tasks.openmm  # noqa: F401  (registers the backbone and hooks)
    from tasks.openmm.parallel import distributed_record

    info = setup(default_device())  # the process group before mmengine's launcher (which needs CUDA)

    ckpt = latest_checkpoint(out / "mm")
    mm_cfg = mm_cfg.copy()
    mm_cfg.resume = ckpt is not None
    mm_cfg.load_from = str(ckpt) if ckpt is not None else None
    mm_cfg.log_level = "INFO" if run.progress else "ERROR"  # sweeps: progress lines, not mmengine notices
    name_runner(mm_cfg, out.name)
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with trusted_checkpoints():
            runner = Runner.from_cfg(mm_cfg)
            runner.train()
            scores = runner.test()
    finally:  # mmengine's deterministic=True is process-wide: give the caller its setting back
        torch.use_deterministic_algorithms(deterministic)
    values = {k: float(scores[k]) for k in run.metrics if k in scores}
    missing = [k for k in run.metrics if k not in scores]
    if missing:
        raise RuntimeError(f"the evaluator gave {sorted(scores)}; missing {missing}")
    record_metrics = dict(values)
    if os.environ.get("RANK", "0") == "0":
        finish_history(out, values)
    if run.extra_metrics is not None:
        record_metrics.update(run.extra_metrics(runner))
    efficiency = None
    if run.measure and info.main:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        images = test_images(runner, run.measure_images)
        efficiency = (run.measure_fn or _measure)(model, images)
        write_json_atomic(out / "efficiency.json", efficiency)
        efficiency = trim_measurement(efficiency)
    inner = mm_cfg.model.get("model", mm_cfg.model)  # inside SpikebenchModel
    bb = inner.backbone
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    return dict(
        status="ok",
        task=run.task,
        model=cfg_obj.model,
        **values,
        metrics=record_metrics,
        efficiency=efficiency,
        neck_head=run.neck_head,
        spiking_neck_head=getattr(model, "spiking_neck_head", None),
        backbone_maps=mm_cfg.get("backbone_maps"),
        overrides={k: v for k, v in bb.items() if k not in ("type", "model_name", "out_indices")},
        iters=runner.train_loop.max_iters,
        config_digest=cfg_obj.digest(),
        distributed=distributed_record(runner, mm_cfg, info),
    )


def _measure(model, images) -> dict:
    from tasks.openmm.measure import measure_whole_model

    return measure_whole_model(model, images)

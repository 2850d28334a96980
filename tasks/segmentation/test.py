"""``spikebench test segmentation``: evaluate a run's (or any) checkpoint with the real ADE20K IoUMetric."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from bench.errors import ConfigError
from bench.io import write_json_atomic


def _locate(run: str | None, checkpoint: str | None, config: str | None) -> tuple[Path, Path, dict]:
    from tasks.openmm.run import latest_checkpoint

    if run is not None:
        run_dir = Path(run)
        if not (run_dir / "mm_config.py").is_file():
            raise ConfigError(f"{run_dir}: not a segmentation run directory (no mm_config.py)")
        ckpt = latest_checkpoint(run_dir / "mm")
        if ckpt is None:
            raise ConfigError(f"{run_dir / 'mm'}: no iter_*.pth checkpoint; train the run first")
    else:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise ConfigError(f"{ckpt}: checkpoint file not found")
        run_dir = ckpt.resolve().parents[1]
    cfg_file = Path(config) if config else run_dir / "mm_config.py"
    if not cfg_file.is_file():
        raise ConfigError(
            f"{cfg_file}: config not found; allowed: --config <mm_config.py> or a run's checkpoint"
        )
    meta = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    return ckpt, cfg_file, meta


def test(
    run: str | None = None,
    checkpoint: str | None = None,
    config: str | None = None,
    data: str | None = None,
    test_mode: str | None = None,
    out: str | None = None,
) -> dict:
    """mIoU/aAcc/mAcc (and per-class IoU) of a checkpoint on the test split; nothing in the run is written."""
    from tasks.api import require_openmmlab

    require_openmmlab("segmentation")
    from mmengine.config import Config
    from mmengine.runner import Runner

    import tasks.openmm  # noqa: F401
    import tasks.segmentation.metric  # noqa: F401
    from bench.data.datasets import resolve_dense_data
    from bench.errors import check_choice
    from tasks.openmm.config import _set_data_root
    from tasks.openmm.run import name_runner, trusted_checkpoints

    ckpt, cfg_file, meta = _locate(run, checkpoint, config)
    root = resolve_dense_data(data or meta.get("data", "generated:ade20k-tiny"), "ade20k")
    cfg = Config.fromfile(str(cfg_file))
    _set_data_root(cfg, root)
    if test_mode is not None:
        check_choice("test_mode", test_mode, ("whole", "slide"))
        inner = cfg.model.model if cfg.model.type == "SpikebenchModel" else cfg.model
        crop = tuple(inner.data_preprocessor.size)
        inner.test_cfg = (
            dict(mode="slide", crop_size=crop, stride=(crop[0] * 2 // 3, crop[1] * 2 // 3))
            if test_mode == "slide"
            else dict(mode="whole")
        )
    work = Path(tempfile.mkdtemp(prefix="spikebench-test-"))
    try:
        cfg.work_dir = str(work)
        cfg.load_from = str(ckpt)
        cfg.resume = False
        cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = cfg.param_scheduler = None
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        cfg.log_level = "WARNING"
        name_runner(cfg, "test")
        with trusted_checkpoints():
            runner = Runner.from_cfg(cfg)
            scores = runner.test()
        per_class = getattr(runner.test_loop.evaluator.metrics[0], "per_class_iou", None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    inner = cfg.model.model if cfg.model.type == "SpikebenchModel" else cfg.model
    result = dict(
        model=meta.get("model", inner.backbone.get("model_name")),
        checkpoint=str(ckpt),
        test_mode=inner.test_cfg["mode"],
        mIoU=float(scores["mIoU"]),
        aAcc=float(scores["aAcc"]),
        mAcc=float(scores["mAcc"]),
        per_class_IoU=per_class,
        data=str(root),
    )
    if out is not None:
        write_json_atomic(out, result)
    return result

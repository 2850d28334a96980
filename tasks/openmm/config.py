"""Named OpenMMLab configs: files that inherit the installed mmdet/mmseg bases, filled for one run.

A task keeps its configs in ``tasks/<task>/configs/<arch>_<size>.py`` (``size`` is ``tiny`` for CPU or
``paper`` for the published schedule); each inherits an mmdet/mmseg config (``_base_ = ['mmseg::...']``) and
overrides only what differs. ``load_config`` then fills what belongs to the run, never to the file: the
backbone (``SpikebenchBackbone`` with the model's options, unchanged), the channels and strides of the maps
it feeds (from ``feature_info``, through the task's ``fill``), data root, work dir, seed, iterations,
checkpoint interval, batch size, learning rate and the runner hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from mmengine.config import Config, ConfigDict

from bench.errors import ConfigError, check_choice
from bench.registry import create_model
from tasks.distributed import backend_for, default_device, world_size

TASKS_ROOT = Path(__file__).resolve().parents[1]
SIZES = ("tiny", "paper")


def config_names(task: str) -> list[str]:
    """``<arch>_<size>`` names of the config files of ``task``."""
    return sorted(p.stem for p in (TASKS_ROOT / task / "configs").glob("*_*.py"))


def config_path(task: str, arch: str, size: str) -> Path:
    """The config file of ``arch`` at ``size`` (one-line error naming the allowed names)."""
    check_choice("size", size, SIZES)
    names = config_names(task)
    check_choice(f"{task} config", f"{arch}_{size}", names)
    return TASKS_ROOT / task / "configs" / f"{arch}_{size}.py"


def feature_maps(model: str, overrides: dict, out_indices: tuple[int, ...] | None = None) -> list[dict]:
    """Stage index, channels, stride and module of the maps ``model`` feeds a dense neck.

    Without ``out_indices``: the model's own output maps of stride >= 4, the last four (mmdet/mmseg's
    ResNet convention C2-C5; MobileViT's stride-2 map is dropped, single-map SDT keeps its one map).
    """
    try:
        with torch.device("meta"):
            net = create_model(model, **dict(overrides, num_classes=0))
    except ConfigError:
        raise
    except Exception:  # a factory that computes on real tensors: build it on the CPU
        net = create_model(model, **dict(overrides, num_classes=0))
    info = net.feature_info
    if out_indices is None:
        picked = [i for i in net.out_indices if info[i]["reduction"] >= 4][-4:]
    else:
        n = len(info)
        bad = [i for i in out_indices if not -n <= i < n]
        if bad:
            raise ConfigError(f"out_indices={tuple(out_indices)} is not allowed; allowed values: 0..{n - 1}")
        picked = [i % n for i in out_indices]
    if not picked:
        raise ConfigError(f"model={model!r} has no feature map of stride >= 4; allowed: set out_indices")
    return [
        dict(stage=i, channels=info[i]["num_chs"], stride=info[i]["reduction"], module=info[i].get("module"))
        for i in picked
    ]


def check_strides(model: str, maps: list[dict], what: str) -> None:
    """Strides must be non-decreasing powers of two (FPN merges neighbours by resizing)."""
    strides = [m["stride"] for m in maps]
    ok = all(s > 0 and s & (s - 1) == 0 for s in strides) and strides == sorted(strides)
    if not ok:
        raise ConfigError(
            f"model={model!r}: feature strides {strides} do not fit {what}; "
            "allowed: non-decreasing powers of two"
        )


def _set_data_root(cfg: Config, root: str) -> None:
    root = str(root).rstrip("/") + "/"
    for split in ("train", "val", "test"):
        loader = cfg.get(f"{split}_dataloader")
        if not loader:
            continue
        ds = loader.dataset
        while "dataset" in ds:  # wrappers (RepeatDataset, ...)
            ds = ds.dataset
        ds.data_root = root
        loader.num_workers = 0
        loader.persistent_workers = False
        evaluator = cfg.get(f"{split}_evaluator")
        if split != "train" and isinstance(evaluator, dict) and "ann_file" in evaluator and "ann_file" in ds:
            evaluator.ann_file = root + ds.ann_file


def _fit_schedule(schedulers: list, base_iters: int, iters: int) -> list:
    """Iteration schedulers of a ``base_iters`` schedule scaled to ``iters`` (warm-up, decay and LR steps keep
    their share of the run: 1500 of 160k warm-up iterations become 1 of 100)."""
    fitted = []
    for sched in schedulers:
        sched = dict(sched)
        if not sched.get("by_epoch", True) and base_iters != iters:
            begin = round(sched.get("begin", 0) * iters / base_iters)
            end = round(sched.get("end", base_iters) * iters / base_iters)
            sched.update(begin=begin, end=max(end, begin + 1))
            if "milestones" in sched:  # LR steps keep their place in the run too
                sched["milestones"] = [round(m * iters / base_iters) for m in sched["milestones"]]
        fitted.append(sched)
    return fitted


def load_config(
    path: str | Path,
    *,
    model: str,
    overrides: dict,
    data_root: str | Path,
    work_dir: str | Path,
    seed: int,
    iters: int,
    checkpoint_interval: int,
    val_interval: int = 0,
    batch_size: int | None = None,
    lr: float | None = None,
    out_indices: tuple[int, ...] | None = None,
    fill: Callable[[Config, list[dict]], None] | None = None,
    log_interval: int = 10,
    workers: int = 0,
) -> Config:
    """Load ``path`` (inheriting the installed bases) and fill it for one run; ``fill(cfg, maps)`` sets the
    task's channels/strides from the backbone maps. ``val_interval=0``: no validation during training."""
    if iters < 1 or checkpoint_interval < 1:
        raise ConfigError(f"iters={iters}, checkpoint_interval={checkpoint_interval}: allowed values: >= 1")
    cfg = Config.fromfile(str(path))
    maps = feature_maps(model, overrides, out_indices)
    cfg.model.pop("pretrained", None)
    cfg.model.backbone = ConfigDict(
        type="SpikebenchBackbone",
        model_name=model,
        out_indices=tuple(m["stage"] for m in maps),
        **overrides,
    )
    if fill is not None:
        fill(cfg, maps)
    _set_data_root(cfg, data_root)
    if workers:
        for split in ("train", "val", "test"):
            if cfg.get(f"{split}_dataloader"):
                cfg[f"{split}_dataloader"].num_workers = workers
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed, deterministic=True)
    base_iters = (cfg.get("train_cfg") or {}).get("max_iters", iters)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=val_interval or iters + 1)
    if not val_interval:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.param_scheduler = _fit_schedule(cfg.get("param_scheduler") or [], base_iters, iters)
    cfg.default_hooks.checkpoint = dict(
        type="CheckpointHook",
        by_epoch=False,
        interval=checkpoint_interval,
        max_keep_ckpts=2,
        save_last=True,
        backend_args=dict(backend="spikebench_atomic"),
    )
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=log_interval, log_metric_by_epoch=False)
    cfg.log_processor = dict(by_epoch=False)
    ours = ("NeuronResetHook", "RngStateHook", "BatchCountHook", "HistoryHook")
    cfg.custom_hooks = [h for h in cfg.get("custom_hooks") or [] if h["type"] not in ours]
    cfg.custom_hooks += [dict(type=t) for t in ours[:3]] + [dict(type="HistoryHook", interval=log_interval)]
    cfg.env_cfg = dict(
        cudnn_benchmark=False,
        mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
        dist_cfg=dict(backend=backend_for(default_device())),  # tasks.distributed: gloo on CPU, NCCL on CUDA
    )
    cfg.launcher = "pytorch" if world_size() > 1 else "none"
    cfg.model_wrapper_cfg = dict(type="SpikebenchDDP", broadcast_buffers=False, find_unused_parameters=False)
    cfg.resume = False
    cfg.load_from = None
    cfg.backbone_maps = maps
    return cfg

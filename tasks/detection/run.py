"""Train and test detectors through the shared OpenMMLab run (``tasks.openmm.run.run_openmm``).

The record adds to the shared shape: ``detector``, ``size``, ``pyramid`` (which backbone maps feed which
neck), ``quant_bits`` / ``quant_groups``, and for QFD the teacher and its time.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from bench.data.datasets import resolve_dense_data
from bench.errors import ConfigError
from bench.io import write_json_atomic
from tasks.api import require_openmmlab
from tasks.detection.config import DetConfig
from tasks.distributed import is_main_process

CUSTOM_IMPORTS = [
    "tasks.openmm",
    "tasks.openmm.checkpoint",
    "tasks.openmm.necks",
    "tasks.openmm.distill",
    "tasks.detection.model",
    "tasks.detection.metric",
    "tasks.detection.optim",
]


def import_modules() -> None:
    """Register spikebench's modules in the OpenMMLab registries."""
    import importlib

    for name in CUSTOM_IMPORTS:
        importlib.import_module(name)


def metrics_for(detector: str) -> tuple[str, ...]:
    from tasks.detection import BOX_METRICS, MASK_METRICS

    return BOX_METRICS + (MASK_METRICS if detector == "vitdet_maskrcnn" else ())


def detector_forward(whole, x: Tensor) -> object:
    """The inference path of the whole detector for measurement (two-stage: RPN proposals → RoI heads)."""
    from mmdet.structures import DetDataSample

    feats = whole.features(x)
    heads = whole.head if isinstance(whole.head, torch.nn.ModuleList) else [whole.head]
    if len(heads) == 1:
        return heads[0](feats)
    rpn, roi = heads
    h, w = x.shape[-2:]
    samples = [
        DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
    ] * len(x)
    proposals = rpn.predict(feats, samples, rescale=False)
    return roi.predict(feats, proposals, samples, rescale=False)


def _measure(model, images) -> dict:
    from tasks.openmm.measure import measure_whole_model

    return measure_whole_model(model, images, forward_fn=detector_forward)


def _evaluator(mm, detector: str) -> None:
    kind = ["bbox", "segm"] if detector == "vitdet_maskrcnn" else "bbox"
    for split in ("val", "test"):
        ev = mm.get(f"{split}_evaluator")
        if isinstance(ev, dict):
            ev.update(type="SpikebenchCocoMetric", metric=kind)


def build_config(cfg: DetConfig, data_root: Path, work_dir: Path, teacher: str | None = None):
    """The filled mmengine config of a detection run."""
    import_modules()
    from tasks.detection.build import build_mm_config

    mm = build_mm_config(cfg, data_root, work_dir, teacher)
    _evaluator(mm, cfg.detector)
    mm.custom_imports = dict(imports=CUSTOM_IMPORTS, allow_failed_imports=False)
    return mm


def train_detection(cfg: DetConfig, out: Path, progress: bool = False) -> dict:
    """Validate the data, train (resuming), test with the real CocoMetric, measure, record."""
    require_openmmlab("detection")
    from tasks.openmm.run import MMRun, run_openmm

    import_modules()
    root: dict[str, Path] = {}

    def validate() -> None:
        root["data"] = resolve_dense_data(cfg.data, "coco")

    def build(work_dir: Path):
        from tasks.api import teacher_run
        from tasks.detection import train

        teacher = teacher_run(cfg, out, train)
        return build_config(cfg, root["data"], work_dir, teacher=teacher)

    metrics = metrics_for(cfg.detector)
    run = MMRun("detection", metrics, cfg.neck_head, cfg.measure, measure_fn=_measure, progress=progress)
    result = run_openmm(cfg, out, run, build_config=build, validate=validate)
    if result.get("status") == "ok" and "detector" not in result:
        result.update(_detection_fields(cfg, out))
        if is_main_process():  # under torchrun, rank 0 writes the record
            write_json_atomic(out / "result.json", result)
    return result


def _detection_fields(cfg: DetConfig, out: Path) -> dict:
    from mmengine.config import Config

    mm = Config.fromfile(str(out / "mm_config.py"), import_custom_modules=False)
    return dict(
        detector=cfg.detector,
        size=cfg.size,
        data=cfg.data,
        pyramid=mm.get("pyramid"),
        quant_bits=cfg.quant_bits,
        quant_groups=cfg.quant_groups,
        init_checkpoint=cfg.init_checkpoint,
        distill=None
        if cfg.distill.kind == "none"
        else dict(vars(cfg.distill), levels=list(cfg.distill.levels)),
    )


def test_detection(
    run: str | Path | None = None,
    checkpoint: str | None = None,
    config: str | None = None,
    data: str | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate a run directory (its newest checkpoint) or a checkpoint with its mm config file."""
    require_openmmlab("detection")
    from mmengine.config import Config
    from mmengine.runner import Runner

    from tasks.openmm.run import latest_checkpoint, name_runner

    import_modules()
    if run is not None:
        run = Path(run)
        config = config or str(run / "mm_config.py")
        found = latest_checkpoint(run / "mm")
        checkpoint = checkpoint or (str(found) if found else None)
    if not config or not Path(config).is_file():
        raise ConfigError(
            f"config={config!r}: not found; allowed: --run <run dir> or --checkpoint + --config"
        )
    if not checkpoint or not Path(checkpoint).is_file():
        raise ConfigError(f"checkpoint={checkpoint!r}: not found; allowed: an iter_*.pth of a detection run")
    mm = Config.fromfile(config)
    if data is not None:
        from tasks.openmm.config import _set_data_root

        _set_data_root(mm, resolve_dense_data(data, "coco"))
    mm.load_from, mm.resume = checkpoint, False
    mm.work_dir = str(Path(checkpoint).parent)
    mm.log_level = "INFO" if progress else "WARNING"
    name_runner(mm, "test")
    scores = Runner.from_cfg(mm).test()
    return dict(checkpoint=str(checkpoint), **{k: float(v) for k, v in scores.items()})


def read_record(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())

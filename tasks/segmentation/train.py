"""Train, test and measure one segmentation run (mmengine's Runner through ``tasks.openmm.run``)."""

from __future__ import annotations

from pathlib import Path

from bench.data.datasets import resolve_dense_data
from tasks.openmm.run import MMRun, run_openmm
from tasks.segmentation.config import SegConfig

METRICS = ("mIoU", "aAcc", "mAcc", "constant_mIoU")  # the last: chance level (tasks.health)


def run_dir_for(cfg: SegConfig, root: str | Path = "runs/segmentation") -> Path:
    """Default directory of a config: ``<root>/<segmentor>-<model>-<hash>``."""
    return Path(root) / f"{cfg.segmentor}-{cfg.model}-{cfg.digest()}"


def _per_class(runner) -> dict:
    metric = runner.test_loop.evaluator.metrics[0]
    return dict(per_class_IoU=getattr(metric, "per_class_iou", None))


def train(cfg: SegConfig, out: str | Path | None = None, progress: bool = False, workers: int = 0) -> dict:
    """Run (or resume, or return the ok record of) segmentation run ``cfg``; returns ``result.json``."""
    import tasks.openmm  # noqa: F401  (registers the backbone, hooks and model builder)
    import tasks.segmentation.metric  # noqa: F401  (registers SpikebenchIoUMetric)
    from tasks.segmentation.build import mm_config

    out = Path(out) if out is not None else run_dir_for(cfg)
    roots: list[Path] = []

    def validate() -> None:
        roots.append(resolve_dense_data(cfg.data, "ade20k"))

    def build(work_dir: Path):
        from tasks.api import teacher_run

        teacher = teacher_run(cfg, out, train)
        return mm_config(cfg, roots[-1], work_dir, workers=workers, teacher=teacher)

    run = MMRun(
        "segmentation", METRICS, cfg.neck_head, cfg.measure, extra_metrics=_per_class, progress=progress
    )
    return run_openmm(cfg, out, run, build_config=build, validate=validate)

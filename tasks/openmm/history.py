"""``HistoryHook``: an OpenMMLab run's training history in the run folder's ``metrics.json``, the format
classification writes (a list of rows, one per logged step: ``iter`` and ``train_loss`` here, ``epoch``
there), so the report and tables read one history format whatever the engine.

A row is written every ``interval`` iterations (the logger's interval) with the mean loss of those
iterations, atomically, by rank 0; a resumed run keeps the rows up to its checkpoint. ``finish_history`` adds
the final test metrics to the last row.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS as ENGINE_HOOKS

from bench.io import write_json_atomic


def history_path(work_dir: str | Path) -> Path:
    """``metrics.json`` of the run whose mmengine work dir is ``work_dir`` (``<run>/mm``)."""
    return Path(work_dir).parent / "metrics.json"


class HistoryHook(Hook):
    """Appends ``{iter, train_loss}`` to the run's ``metrics.json`` every ``interval`` iterations."""

    priority = "LOW"

    def __init__(self, interval: int = 10) -> None:
        self.interval = interval
        self.rows: list[dict] = []
        self.losses: list[float] = []

    def before_train(self, runner) -> None:
        path = history_path(runner.work_dir)
        rows = json.loads(path.read_text()) if path.exists() else []
        self.rows = [r for r in rows if r.get("iter", 0) <= runner.iter]  # resumed: up to the checkpoint
        self.losses = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get("loss")
        if loss is not None:
            self.losses.append(float(loss.detach()) if hasattr(loss, "detach") else float(loss))
        step = runner.iter + 1
        if (step % self.interval == 0 or step == runner.max_iters) and self.losses:
            self.rows.append(dict(iter=step, train_loss=sum(self.losses) / len(self.losses)))
            self.losses = []
            if is_main_process():
                write_json_atomic(history_path(runner.work_dir), self.rows)


def finish_history(run_dir: Path, metrics: dict) -> None:
    """Add the final test ``metrics`` to the last row of the run's history (rank 0 calls it)."""
    path = Path(run_dir) / "metrics.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    if rows:
        rows[-1] = dict(rows[-1], **metrics)
        write_json_atomic(path, rows)


def _register() -> None:
    from mmdet.registry import HOOKS as DET_HOOKS
    from mmseg.registry import HOOKS as SEG_HOOKS

    for registry in (ENGINE_HOOKS, DET_HOOKS, SEG_HOOKS):
        registry.register_module(name="HistoryHook", module=HistoryHook, force=True)


_register()

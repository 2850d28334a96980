"""Re-profile a finished classification run from its final weights (``checkpoints/last.pt``), no training.

The model is rebuilt from the run's ``config.json`` and measured on the same evaluation batches the run
measured at its end (``measure_batches`` x ``batch_size`` of the evaluation split), under another
``energy_hw`` hardware description. Nothing of the run is rewritten: the caller stores the new record apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.data.datasets import build_datasets, resolve_data
from bench.errors import ConfigError
from bench.measure.profile import profile_model
from bench.registry import create_model, model_entry
from tasks.classification.config import config_from_dict
from tasks.classification.parallel import first_batches
from tasks.determinism import deterministic


def reprofile(run_dir: str | Path, hardware: str = "45nm", reuse: str = "inference") -> dict:
    """The profile record (``efficiency.json`` layout) of ``run_dir``'s final weights under ``hardware``."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.pt"
    if not (run_dir / "config.json").exists() or not ckpt.exists():
        raise ConfigError(
            f"{run_dir}: needs config.json and checkpoints/last.pt; allowed values: a finished run folder"
        )
    cfg = config_from_dict(json.loads((run_dir / "config.json").read_text()))
    spec = resolve_data(cfg.data)
    img_size = cfg.img_size or model_entry(cfg.model).paper.get("img_size", 224)
    eval_set = build_datasets(spec, img_size, cfg.hflip)[1]
    with deterministic(cfg.threads):
        model = create_model(cfg.model, num_classes=spec.num_classes, **cfg.overrides)
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        batches = first_batches(eval_set, cfg.batch_size, cfg.measure_batches)
        return profile_model(model, batches, latency_repeats=1, hardware=hardware, reuse=reuse)

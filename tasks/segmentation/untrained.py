"""The OpenMMLab model of a run config built without data, weights or training (on PyTorch's meta device:
no memory, seconds), for the parameter counts and sizes of paper configurations in ``spikebench report``."""

from __future__ import annotations

import torch

from tasks.openmm.measure import WholeModel


def build_untrained(config: dict, device: str = "meta") -> WholeModel:
    """The segmentor of ``config`` (a segmentation config dict, as a sweep point) as ``WholeModel`` (children
    ``backbone``, ``neck``, ``head``, ``auxiliary_head``). Only segmentation has it: a detector's classes
    come from its COCO annotations, so it needs the data."""
    from mmengine.registry import init_default_scope

    import tasks.openmm  # noqa: F401  (registers the backbone and SpikebenchModel)
    from tasks.openmm.model import build_spikebench_model
    from tasks.segmentation import config_from_dict
    from tasks.segmentation.build import mm_config

    mm = mm_config(config_from_dict(config), "unused-data-root", "unused-work-dir")
    init_default_scope("mmseg")
    with torch.device(device):
        model = build_spikebench_model(mm.model["model"], mm.model.get("neck_head", "ann"), "mmseg")
    return WholeModel(model)

"""Loading mmengine checkpoints under torch >= 2.6, whose ``torch.load`` defaults to ``weights_only=True``.

mmengine 0.10's local loader calls ``torch.load(path)``, which then refuses the runner's own checkpoints
(their message hub holds ``HistoryBuffer`` objects and numpy arrays), so resume, ``load_from`` and
``init_cfg=Pretrained`` fail. Importing this module registers a local-file loader that reads full
checkpoints (``weights_only=False``): use it only for checkpoints this project wrote or that you trust.
"""

from __future__ import annotations

import os

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes="", force=True)
def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """mmengine's local loader with ``weights_only=False`` (trusted local files)."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    return torch.load(filename, map_location=map_location, weights_only=False)

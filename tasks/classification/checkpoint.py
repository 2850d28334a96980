"""What resuming a run needs: the RNG states, and checkpoints written and read back atomically."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.errors import warn
from bench.io import atomic_path, move_aside


def rng_state() -> dict:
    """The torch, numpy and Python RNG states."""
    return dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())


def set_rng_state(state: dict) -> None:
    """Restore the RNG states of ``rng_state``."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_atomic(obj: dict, path: Path) -> None:
    """Write a checkpoint atomically; the one it replaces stays as ``prev.pt`` (the fallback on resume)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        if path.exists():
            os.replace(path, path.with_name("prev.pt"))


def load_checkpoint(out: Path, dev: torch.device, restore: Callable[[dict], None]) -> dict | None:
    """The newest readable checkpoint (``last.pt``, else ``prev.pt``) restored through ``restore``; an
    unreadable one is moved aside with a one-line warning naming it. None: start from scratch."""
    for name in ("last.pt", "prev.pt"):
        path = out / "checkpoints" / name
        if not path.exists():
            continue
        try:
            ckpt = torch.load(path, map_location=dev, weights_only=False)  # our own file: trusted
            restore(ckpt)
            return ckpt
        except Exception as err:  # torn or foreign file: zip, pickle and key errors alike
            why = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            warn(f"{path}: unreadable checkpoint ({why}); moved to {move_aside(path).name}")
    return None

"""Deterministic generated images (no downloads): smooth colour fields with a few bright shapes."""

from __future__ import annotations

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def generated_images(batch: int = 1, size: int = 224, seed: int = 0) -> Tensor:
    """A normalised ``[batch, 3, size, size]`` float batch that is the same for the same seed."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    imgs = []
    for _ in range(batch):
        a = torch.rand(3, 3, generator=g)
        img = a[:, :1, None] * xx + a[:, 1:2, None] * yy + a[:, 2:, None] * 0.5
        for _shape in range(3):
            cx, cy, r = torch.rand(3, generator=g)
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < (0.05 + 0.2 * r) ** 2
            img = torch.where(mask, torch.rand(3, 1, 1, generator=g), img)
        imgs.append(img.clamp(0, 1))
    x = torch.stack(imgs)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std

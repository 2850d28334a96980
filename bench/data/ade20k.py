"""A small learnable segmentation set in the exact mmseg ADE20K layout, and a check of any ADE20K root.

Layout written by ``write_ade20k`` (the one mmseg's ``ADE20KDataset`` reads)::

    root/images/{training,validation}/ADE_<split>_<i:08d>.jpg
    root/annotations/{training,validation}/ADE_<split>_<i:08d>.png    single-channel uint8, 0..150

Label 0 is "other" (ignored with ``reduce_zero_label=True``); classes 1..150 are ADE20K's. Each image is a
background region of one class with 1-4 shapes of other classes on it, plus a few small unlabeled (0) specks;
every class has its own colour and texture (stripe orientation and period), so regions are learnable from
local appearance.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.errors import DataError

SPLITS = ("training", "validation")
CLASS_IDS = (1, 4, 13, 21, 88, 120)  # wall, floor, person, car, streetlight, pot (ADE20K ids)
NUM_CLASSES = 150


def _appearance(index: int, size: int) -> np.ndarray:
    """Colour and stripe texture of class number ``index`` as ``[size, size, 3]`` in 0..1."""
    colour = np.array(colorsys.hsv_to_rgb((index * 0.61) % 1.0, 0.8, 0.9))
    yy, xx = np.mgrid[0:size, 0:size]
    period = 4 + 2 * (index % 3)
    coord = (xx, yy, xx + yy, xx - yy)[index % 4]
    mod = 0.7 + 0.3 * ((coord // (period // 2)) % 2)
    return mod[..., None] * colour[None, None]


def _sample(size: int, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One image ``[size, size, 3]`` uint8 and its label indices ``[size, size]`` (0..n_classes-1)."""
    index = np.full((size, size), int(rng.integers(n_classes)), np.int64)
    canvas = Image.new("L", (size, size), 0)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.integers(n_classes))
        w, h = rng.integers(size // 6, size // 2 + 1, 2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        canvas.paste(0, (0, 0, size, size))
        draw = ImageDraw.Draw(canvas)
        box = (int(x), int(y), int(x + w), int(y + h))
        kind = int(rng.integers(3))
        if kind == 0:
            draw.rectangle(box, fill=1)
        elif kind == 1:
            draw.ellipse(box, fill=1)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=1)
        index[np.asarray(canvas, bool)] = cls
    img = np.zeros((size, size, 3))
    for cls in np.unique(index):
        m = index == cls
        img[m] = _appearance(int(cls), size)[m]
    return img, index


def write_ade20k(
    root: str | Path,
    seed: int = 0,
    class_ids: tuple[int, ...] = CLASS_IDS,
    train_images: int = 80,
    val_images: int = 20,
    size: int = 128,
) -> Path:
    """Write the ADE20K-layout set under ``root`` (deterministic from ``seed``); returns ``root``."""
    if not class_ids or any(not 1 <= c <= NUM_CLASSES for c in class_ids):
        raise ValueError(f"class_ids={class_ids} is not allowed; allowed: ids in 1..{NUM_CLASSES}")
    root = Path(root)
    lut = np.array(class_ids, np.uint8)
    for offset, (split, count) in enumerate(zip(SPLITS, (train_images, val_images), strict=True)):
        rng = np.random.default_rng([seed, offset])
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, index = _sample(size, len(class_ids), rng)
            label = lut[index]
            for _ in range(int(rng.integers(0, 4))):  # unlabeled specks ("other", label 0)
                r, cy, cx = int(rng.integers(2, 5)), *rng.integers(5, size - 5, 2)
                label[cy - r : cy + r, cx - r : cx + r] = 0
                img[cy - r : cy + r, cx - r : cx + r] = rng.uniform(0, 1, 3)
            img = img + rng.normal(0, 0.05, img.shape)
            name = f"ADE_{'train' if split == 'training' else 'val'}_{i + 1:08d}"
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(
                root / "images" / split / f"{name}.jpg", quality=95
            )
            Image.fromarray(label, mode="L").save(root / "annotations" / split / f"{name}.png")
    return root


def validate_ade20k(root: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, int]:
    """Check an ADE20K root (every image has a single-channel label of its size, values 0..150);
    returns images per split. Raises a one-line ``DataError`` naming the file at the first problem."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    counts = {}
    for split in splits:
        img_dir, ann_dir = root / "images" / split, root / "annotations" / split
        for d in (img_dir, ann_dir):
            if not d.is_dir():
                raise DataError(f"{d}: folder not found (ADE20K layout: images/{split}, annotations/{split})")
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() == ".jpg")
        if not images:
            raise DataError(f"{img_dir}: no .jpg images")
        for path in images:
            label_path = ann_dir / f"{path.stem}.png"
            if not label_path.is_file():
                raise DataError(f"{path}: image without a label (expected {label_path})")
            try:
                with Image.open(path) as im:
                    img_size = im.size
                with Image.open(label_path) as lab:
                    mode, bands, lab_size = lab.mode, len(lab.getbands()), lab.size
                    values = np.asarray(lab) if mode in ("L", "P") else None
            except Exception as err:  # PIL raises several types for broken files
                raise DataError(f"{path}: cannot read image or label ({type(err).__name__})") from None
            if values is None:
                raise DataError(
                    f"{label_path}: label mode {mode!r} ({bands} channels); allowed: single-channel uint8 (L)"
                )
            if lab_size != img_size:
                raise DataError(f"{label_path}: label size {lab_size} differs from its image's {img_size}")
            if values.max() > NUM_CLASSES:
                raise DataError(
                    f"{label_path}: label value {int(values.max())} is not allowed; allowed: 0..{NUM_CLASSES}"
                )
        counts[split] = len(images)
    return counts

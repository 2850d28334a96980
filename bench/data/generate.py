"""Write small, learnable, deterministic datasets in the real formats (no downloads).

Each class is a sinusoidal grating with its own colour tint (hue ``label x 0.618``), one of four frequencies
and an orientation (horizontal or vertical, so horizontal flips keep the class); every image adds a random
phase, a random blob and pixel noise, so classes are learnable but not trivial. With ten classes, 8 and 9
repeat the frequency and orientation of 0 and 1 and differ from them by hue alone (0.056 apart): the pairs
the tiny models confuse (docs/ablations.md, "Seed spread of the main job"). ``kind="hue"`` classes differ by
hue alone (``hue_image``: the main job's ``imagenet-hue14``). Changing what a generator writes
means raising that set's version in ``bench.data.versions``.

- ``write_imagenet_folder``: ``root/{train,val}/<wnid>/<wnid>_<i>.JPEG`` (ImageNet's folder layout).
- ``write_cifar``: CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or CIFAR-100
  (``train``, ``test``, ``meta``) python pickles with byte keys, data uint8 ``[N, 3072]`` (R, G, B planes).
"""

from __future__ import annotations

import colorsys
import math
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from bench.io import write_json_atomic

HUE_JITTER = 0.01  # hue classes: the largest random hue shift of an image


def class_image(label: int, num_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``[size, size, 3]`` uint8 image of class ``label``."""
    theta = (label % 2) * math.pi / 2
    freq = 1.5 + (label // 2) % 4
    phase = rng.uniform(0, 2 * math.pi)
    return _grating((label * 0.618) % 1.0, theta, freq, phase, size, rng)


def hue_image(label: int, num_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One image of hue class ``label``: hue ``label / num_classes`` (± ``HUE_JITTER``); orientation and
    frequency random, so that hue alone tells the classes apart."""
    phase = rng.uniform(0, 2 * math.pi)
    theta = rng.integers(2) * math.pi / 2
    freq = 1.5 + rng.integers(4)
    hue = (label / num_classes + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 1.0
    return _grating(hue, theta, freq, phase, size, rng)


def _grating(
    hue: float, theta: float, freq: float, phase: float, size: int, rng: np.random.Generator
) -> np.ndarray:
    """A tinted grating with a random blob and pixel noise, as uint8 ``[size, size, 3]``."""
    tint = np.array(colorsys.hsv_to_rgb(hue, 0.6, 1.0))
    yy, xx = np.mgrid[0:size, 0:size] / size
    wave = 0.5 + 0.35 * np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)) + phase)
    img = wave[..., None] * tint[None, None]
    cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
    blob = ((xx - cx) ** 2 + (yy - cy) ** 2) < r**2
    img[blob] = rng.uniform(0, 1, 3)
    img = img + rng.normal(0, 0.06, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


CLASS_KINDS = {"pattern": class_image, "hue": hue_image}


def _images(num_classes: int, per_class: int, size: int, rng: np.random.Generator, kind: str = "pattern"):
    image = CLASS_KINDS[kind]
    for label in range(num_classes):
        for i in range(per_class):
            yield label, i, image(label, num_classes, size, rng)


def wnid(label: int) -> str:
    """Synthetic WordNet-style class folder name."""
    return f"n{label:08d}"


def write_imagenet_folder(
    root: str | Path,
    num_classes: int = 10,
    train_per_class: int = 40,
    val_per_class: int = 10,
    size: int = 32,
    seed: int = 0,
    kind: str = "pattern",
) -> Path:
    """ImageNet-style folder tree of JPEG files (classes of ``CLASS_KINDS[kind]``); returns ``root``."""
    root = Path(root)
    for split, per_class, offset in (("train", train_per_class, 0), ("val", val_per_class, 1)):
        rng = np.random.default_rng([seed, offset])
        for label, i, img in _images(num_classes, per_class, size, rng, kind):
            d = root / split / wnid(label)
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{wnid(label)}_{i}.JPEG", quality=95)
    write_json_atomic(
        root / "spikebench_dataset.json",
        dict(
            format="imagenet-folder",
            classes=num_classes,
            train_per_class=train_per_class,
            val_per_class=val_per_class,
            size=size,
            seed=seed,
        )
        | ({} if kind == "pattern" else {"kind": kind}),
    )
    return root


def _cifar_arrays(num_classes: int, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    data, labels = [], []
    for label, _i, img in _images(num_classes, per_class, 32, rng):
        data.append(img.transpose(2, 0, 1).reshape(-1))  # R plane, G plane, B plane
        labels.append(label)
    order = rng.permutation(len(labels))
    return np.stack(data)[order], [labels[i] for i in order]


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar(
    root: str | Path,
    num_classes: int = 10,
    train_per_class: int = 50,
    test_per_class: int = 10,
    seed: int = 0,
) -> Path:
    """CIFAR-10 (``num_classes=10``) or CIFAR-100 (``num_classes=100``) python-pickle batches."""
    if num_classes not in (10, 100):
        raise ValueError(f"num_classes={num_classes} is not allowed for CIFAR; allowed values: 10, 100")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    x_train, y_train = _cifar_arrays(num_classes, train_per_class, np.random.default_rng([seed, 0]))
    x_test, y_test = _cifar_arrays(num_classes, test_per_class, np.random.default_rng([seed, 1]))
    names = [f"class_{i}".encode() for i in range(num_classes)]
    if num_classes == 10:
        for b, idx in enumerate(np.array_split(np.arange(len(y_train)), 5), start=1):
            _dump(
                root / f"data_batch_{b}",
                {
                    b"batch_label": f"training batch {b} of 5".encode(),
                    b"labels": [y_train[i] for i in idx],
                    b"data": x_train[idx],
                    b"filenames": [f"train_{i}.png".encode() for i in idx],
                },
            )
        _dump(
            root / "test_batch",
            {
                b"batch_label": b"testing batch 1 of 1",
                b"labels": y_test,
                b"data": x_test,
                b"filenames": [f"test_{i}.png".encode() for i in range(len(y_test))],
            },
        )
        _dump(
            root / "batches.meta",
            {b"label_names": names, b"num_cases_per_batch": len(y_train) // 5, b"num_vis": 3072},
        )
    else:
        for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            _dump(
                root / split,
                {
                    b"batch_label": split.encode(),
                    b"fine_labels": y,
                    b"coarse_labels": [v // 5 for v in y],
                    b"data": x,
                    b"filenames": [f"{split}_{i}.png".encode() for i in range(len(y))],
                },
            )
        _dump(
            root / "meta",
            {b"fine_label_names": names, b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]},
        )
    return root

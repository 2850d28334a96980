"""Loaders for an ImageNet-style folder tree and for CIFAR-10/100 python pickles, with the usual transforms.

``resolve_data(spec)`` takes a folder (the format is detected) or ``generated:<name>`` (``imagenet-10``,
``cifar10``, ``cifar100``), which is generated once into ``$SPIKEBENCH_CACHE/data/`` and reused (the folder
named by the set's version, ``bench.data.versions``).
``resolve_dense_data(spec, kind)`` does the same for the dense tasks (``coco``: ``generated:coco-tiny``;
``ade20k``: ``generated:ade20k-tiny``) and checks the root before any training.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from bench.data.ade20k import validate_ade20k, write_ade20k
from bench.data.coco import validate_coco, write_coco
from bench.data.generate import write_cifar, write_imagenet_folder
from bench.data.versions import cache_name
from bench.errors import DataError
from bench.images import IMAGENET_MEAN, IMAGENET_STD

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
GENERATED = {
    "imagenet-10": lambda root: write_imagenet_folder(
        root, num_classes=10, train_per_class=60, val_per_class=20
    ),
    "imagenet-10-64px": lambda root: write_imagenet_folder(root, 10, 60, 20, size=64),
    # the main job's set until 2026-12-07: imagenet-10's training images, 50 evaluation images per class
    # (500: one image is 0.2 top-1 points, and the binomial spread of a ~85 % accuracy is 1.6 points, not
    # 2.5 as on 200)
    "imagenet-10-eval500": lambda root: write_imagenet_folder(root, 10, 60, 50),
    # the main job's set: 14 classes told apart by hue alone (1/14 apart, ± 0.01), where a 2-bit tiny QSD
    # loses about 2 points at convergence (docs/ablations.md, "Seed spread of the main job"); 602 training
    # and 504 evaluation images
    "imagenet-hue14": lambda root: write_imagenet_folder(root, 14, 43, 36, kind="hue"),
    "cifar10": lambda root: write_cifar(root, 10, train_per_class=60, test_per_class=20),
    "cifar100": lambda root: write_cifar(root, 100, train_per_class=10, test_per_class=4),
}
DENSE_GENERATED = {
    "coco": {"coco-tiny": lambda root: write_coco(root, seed=0)},
    "ade20k": {"ade20k-tiny": lambda root: write_ade20k(root, seed=0)},
}
DENSE_VALIDATE = {"coco": validate_coco, "ade20k": validate_ade20k}


def build_transform(img_size: int, train: bool, hflip: float = 0.5) -> transforms.Compose:
    """Train: random crop (padding 1/8) + horizontal flip; eval: resize + centre crop; both normalise."""
    norm = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        aug = [
            transforms.Resize(img_size),
            transforms.RandomCrop(img_size, padding=max(1, img_size // 8)),
            transforms.RandomHorizontalFlip(hflip),
        ]
    else:
        aug = [transforms.Resize(img_size), transforms.CenterCrop(img_size)]
    return transforms.Compose(aug + norm)


class ImageFolderDataset(Dataset):
    """``root/<class>/<image>`` files; classes sorted by folder name."""

    def __init__(self, root: str | Path, transform=None, classes: list[str] | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found")
        self.classes = classes or sorted(d.name for d in root.iterdir() if d.is_dir())
        if not self.classes:
            raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            folder = root / name
            files = (
                sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
                if folder.is_dir()
                else []
            )
            if not files:
                raise DataError(
                    f"{folder}: class folder has no images (allowed extensions: "
                    f"{', '.join(IMAGE_EXTENSIONS)})"
                )
            self.samples += [(f, label) for f in files]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except Exception as err:  # PIL raises several types for broken files
            raise DataError(
                f"{path}: cannot read image ({type(err).__name__}: {err})".replace("\n", " ")
            ) from None
        return (self.transform(img) if self.transform else img), label


def _load_pickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: CIFAR batch file not found")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as err:
        raise DataError(f"{path}: not a CIFAR python pickle ({type(err).__name__})") from None


class CifarDataset(Dataset):
    """CIFAR-10 (``data_batch_1..5`` / ``test_batch``) or CIFAR-100 (``train`` / ``test``) pickles."""

    def __init__(self, root: str | Path, train: bool, transform=None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found")
        cifar100 = (root / "meta").exists() or (root / "train").is_file()
        files = (
            (["train"] if train else ["test"])
            if cifar100
            else ([f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"])
        )
        key = b"fine_labels" if cifar100 else b"labels"
        data, labels = [], []
        for name in files:
            batch = _load_pickle(root / name)
            for field in (b"data", key):
                if field not in batch:
                    found = ", ".join(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
                    raise DataError(
                        f"{root / name}: missing field {field.decode()!r} (found: {found}); allowed "
                        f"layouts: CIFAR-10 (data, labels), CIFAR-100 (data, fine_labels)"
                    )
            arr = np.asarray(batch[b"data"], dtype=np.uint8)
            if arr.ndim != 2 or arr.shape[1] != 3072 or len(batch[key]) != len(arr):
                raise DataError(
                    f"{root / name}: field 'data' has shape {arr.shape}; allowed: [N, 3072] uint8 "
                    f"with one label per row"
                )
            data.append(arr)
            labels += list(batch[key])
        self.data = np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self.targets = labels
        self.classes = sorted(set(labels))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.data[i])
        return (self.transform(img) if self.transform else img), self.targets[i]


@dataclass
class DataSpec:
    """A resolved dataset: format, root folder and number of classes."""

    format: str
    root: Path
    num_classes: int


def _cache_dir() -> Path:
    return Path(os.environ.get("SPIKEBENCH_CACHE", Path.home() / ".cache" / "spikebench")) / "data"


def _generated(spec: str, table: dict) -> Path:
    """Root of ``generated:<name>``, written once (into a temporary folder renamed into place)."""
    name = spec.split(":", 1)[1]
    if name not in table:
        raise DataError(f"data={spec!r} is not allowed; allowed generated sets: {', '.join(table)}")
    root = _cache_dir() / cache_name(name)
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root.parent))
        try:
            table[name](tmp)
            os.replace(tmp, root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not root.exists():
                raise
    return root


def resolve_dense_data(spec: str, kind: str, validate: bool = True) -> Path:
    """Root of a ``coco`` or ``ade20k`` set (a folder or ``generated:<name>``), checked if ``validate``."""
    if kind not in DENSE_GENERATED:
        raise DataError(f"kind={kind!r} is not allowed; allowed values: {', '.join(DENSE_GENERATED)}")
    root = _generated(spec, DENSE_GENERATED[kind]) if spec.startswith("generated:") else Path(spec)
    if validate:
        DENSE_VALIDATE[kind](root)
    return root


def resolve_data(spec: str) -> DataSpec:
    """A folder path (ImageNet folder or CIFAR pickles, detected) or ``generated:<name>``."""
    if spec.startswith("generated:"):
        spec = str(_generated(spec, GENERATED))
    root = Path(spec)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if (root / "train").is_dir() and (root / "val").is_dir():
        return DataSpec("imagenet-folder", root, len([d for d in (root / "train").iterdir() if d.is_dir()]))
    if (root / "data_batch_1").exists() or (root / "test_batch").exists():
        return DataSpec("cifar", root, 10)
    if (root / "meta").exists() and (root / "train").is_file():
        return DataSpec("cifar", root, 100)
    raise DataError(
        f"{root}: unknown dataset layout; allowed: ImageNet folder (train/, val/ of class folders), "
        f"CIFAR-10 (data_batch_1..5, test_batch) or CIFAR-100 (train, test, meta) pickles"
    )


def build_datasets(spec: DataSpec, img_size: int, hflip: float = 0.5) -> tuple[Dataset, Dataset]:
    """(train, eval) datasets with their transforms."""
    if spec.format == "imagenet-folder":
        train = ImageFolderDataset(spec.root / "train", build_transform(img_size, True, hflip))
        extra = sorted(
            d.name for d in (spec.root / "val").iterdir() if d.is_dir() and d.name not in train.classes
        )
        if extra:
            raise DataError(
                f"{spec.root / 'val' / extra[0]}: class folder not in train/ ({len(extra)} such); "
                f"allowed: the classes of {spec.root / 'train'} ({', '.join(train.classes[:5])}"
                f"{', …' if len(train.classes) > 5 else ''})"
            )
        val = ImageFolderDataset(spec.root / "val", build_transform(img_size, False), classes=train.classes)
        return train, val
    return (
        CifarDataset(spec.root, True, build_transform(img_size, True, hflip)),
        CifarDataset(spec.root, False, build_transform(img_size, False)),
    )


def seed_worker(worker_id: int) -> None:
    """DataLoader worker seeding from the loader's generator (reproducible augmentation)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)

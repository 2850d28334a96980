"""A small learnable detection set in the exact COCO layout, and a check of any COCO root.

Layout written by ``write_coco`` (the one mmdet's ``CocoDataset`` and pycocotools read)::

    root/annotations/instances_{train,val}2017.json   images, annotations, categories (+ info, licenses)
    root/{train,val}2017/<image id:012d>.jpg

Each category is a shape (rectangle, ellipse, triangle) with its own colour and texture (stripes, checks,
dots), drawn on a noisy low-frequency background; 1-4 objects per image, side lengths drawn from the small
(< 32² px), medium and, where the image allows, large (> 96² px) COCO area ranges. Category ids are sparse
(1, 3, 7, ...) as in COCO. Boxes are ``[x, y, w, h]`` tight around the polygon, ``area`` is the pixel area of
the rendered polygon (what pycocotools would get from the mask).
"""

from __future__ import annotations

import colorsys
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.errors import DataError
from bench.io import write_json_atomic

SPLITS = ("train", "val")
CATEGORY_IDS = (1, 3, 7, 10, 15, 18, 22, 27, 31, 35)  # sparse, as COCO's 1..90 with gaps
SHAPES = ("rectangle", "ellipse", "triangle")
TEXTURES = ("stripes", "checks", "dots", "plain")
LARGE_SIDE = 100  # > 96 px: COCO's "large" area range


def categories(num_categories: int) -> list[dict]:
    """COCO category records: sparse ids, names saying the shape, colour index and texture."""
    if not 1 <= num_categories <= len(CATEGORY_IDS):
        raise ValueError(f"num_categories={num_categories} is not allowed; allowed: 1..{len(CATEGORY_IDS)}")
    return [
        dict(
            id=CATEGORY_IDS[i],
            name=f"{SHAPES[i % 3]}_{TEXTURES[(i // 3 + i) % 4]}_{i}",
            supercategory=SHAPES[i % 3],
        )
        for i in range(num_categories)
    ]


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    coarse = rng.uniform(0.25, 0.6, (4, 4, 3))
    img = np.asarray(
        Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR), np.float64
    )
    return img / 255 + rng.normal(0, 0.05, (size, size, 3))


def _texture(index: int, size: int) -> np.ndarray:
    """Per-category fill ``[size, size, 3]`` in 0..1: a saturated colour modulated by a texture."""
    colour = np.array(colorsys.hsv_to_rgb((index * 0.37) % 1.0, 0.85, 0.95))
    yy, xx = np.mgrid[0:size, 0:size]
    kind = TEXTURES[(index // 3 + index) % 4]
    if kind == "stripes":
        mod = 0.65 + 0.35 * ((xx + yy) // 4 % 2)
    elif kind == "checks":
        mod = 0.65 + 0.35 * ((xx // 5 + yy // 5) % 2)
    elif kind == "dots":
        mod = 1.0 - 0.4 * (((xx % 6) - 3) ** 2 + ((yy % 6) - 3) ** 2 < 4)
    else:
        mod = np.ones((size, size))
    return mod[..., None] * colour[None, None]


def _polygon(shape: str, x: float, y: float, w: float, h: float, rng: np.random.Generator) -> list[float]:
    if shape == "rectangle":
        pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    elif shape == "ellipse":
        n = 20
        pts = [
            (x + w / 2 * (1 + math.cos(2 * math.pi * k / n)), y + h / 2 * (1 + math.sin(2 * math.pi * k / n)))
            for k in range(n)
        ]
    else:
        apex = x + w * rng.uniform(0.2, 0.8)
        pts = [(apex, y), (x + w, y + h), (x, y + h)]
    return [round(float(v), 2) for p in pts for v in p]


def _side(size: int, n_objects: int, rng: np.random.Generator) -> int:
    r = rng.uniform()
    if n_objects == 1 and size > LARGE_SIDE + 4 and r < 0.3:
        return int(rng.integers(LARGE_SIDE, size - 2))
    if r < 0.45:
        return int(rng.integers(10, 28))
    hi = min(80, size // 2)
    return int(rng.integers(min(34, hi - 4), hi + 1))


def _overlaps(box: tuple[float, float, float, float], boxes: list[tuple[float, float, float, float]]) -> bool:
    x, y, w, h = box
    return any(x < bx + bw and bx < x + w and y < by + bh and by < y + h for bx, by, bw, bh in boxes)


def _image(size: int, cats: list[dict], rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    img = _background(size, rng)
    objects: list[dict] = []
    boxes: list[tuple[float, float, float, float]] = []
    n_objects = int(rng.integers(1, 5))
    for _ in range(n_objects):
        index = int(rng.integers(len(cats)))
        for _try in range(20):
            w = _side(size, n_objects, rng)
            h = int(np.clip(w * rng.uniform(0.7, 1.4), 8, size - 2))
            x, y = rng.uniform(1, size - w - 1), rng.uniform(1, size - h - 1)
            if not _overlaps((x, y, w, h), boxes):
                break
        else:
            continue
        poly = _polygon(SHAPES[index % 3], x, y, w, h, rng)
        mask_img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask_img).polygon(list(zip(poly[0::2], poly[1::2], strict=True)), fill=1)
        mask = np.asarray(mask_img, bool)
        if mask.sum() < 4:
            continue
        img[mask] = _texture(index, size)[mask] + rng.normal(0, 0.03, (int(mask.sum()), 3))
        xs, ys = poly[0::2], poly[1::2]
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        boxes.append((x, y, w, h))
        objects.append(
            dict(
                category_id=cats[index]["id"],
                bbox=[round(v, 2) for v in bbox],
                area=float(mask.sum()),
                segmentation=[poly],
                iscrowd=0,
            )
        )
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), objects


def write_coco(
    root: str | Path,
    seed: int = 0,
    num_categories: int = 3,
    train_images: int = 120,
    val_images: int = 30,
    size: int = 128,
) -> Path:
    """Write the COCO-layout set under ``root`` (deterministic from ``seed``); returns ``root``."""
    if size < 48:
        raise ValueError(f"size={size} is not allowed; allowed: >= 48 px")
    root = Path(root)
    cats = categories(num_categories)
    ann_id = 1
    for offset, (split, count) in enumerate(zip(SPLITS, (train_images, val_images), strict=True)):
        rng = np.random.default_rng([seed, offset])
        folder = root / f"{split}2017"
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image_id = offset * 1_000_000 + i + 1
            pixels, objects = _image(size, cats, rng)
            name = f"{image_id:012d}.jpg"
            Image.fromarray(pixels).save(folder / name, quality=95)
            images.append(dict(id=image_id, file_name=name, width=size, height=size, license=1))
            for obj in objects:
                annotations.append(dict(id=ann_id, image_id=image_id, **obj))
                ann_id += 1
        write_json_atomic(
            root / "annotations" / f"instances_{split}2017.json",
            dict(
                info=dict(description=f"spikebench generated COCO-format set (seed {seed})", version="1.0"),
                licenses=[dict(id=1, name="generated", url="")],
                images=images,
                annotations=annotations,
                categories=cats,
            ),
        )
    return root


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found (layout: annotations/instances_<split>2017.json)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable JSON ({type(err).__name__}: {err})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level is {type(data).__name__}; allowed: an object with images, ...")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            found = ", ".join(sorted(data)) or "nothing"
            raise DataError(f"{path}: field {key!r} missing or not a list (found: {found})")
    return data


def validate_coco(root: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, int]:
    """Check a COCO root (json fields, boxes, ids, image files); returns images per split.

    Raises a one-line ``DataError`` naming the file and field at the first problem.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    counts = {}
    for split in splits:
        path = root / "annotations" / f"instances_{split}2017.json"
        data = _load_json(path)
        cat_ids = set()
        for i, cat in enumerate(data["categories"]):
            if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
                raise DataError(f"{path}: categories[{i}] needs an integer 'id' and a 'name' (found {cat!r})")
            cat_ids.add(cat["id"])
        if not cat_ids:
            raise DataError(f"{path}: field 'categories' is empty; allowed: at least one category")
        image_ids = set()
        for i, img in enumerate(data["images"]):
            if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
                raise DataError(f"{path}: images[{i}] needs 'id' and 'file_name' (found {img!r})"[:300])
            file = root / f"{split}2017" / img["file_name"]
            if not file.is_file():
                raise DataError(f"{path}: images[{i}].file_name={img['file_name']!r}: {file} missing")
            image_ids.add(img["id"])
        for i, ann in enumerate(data["annotations"]):
            where = f"{path}: annotations[{i}]"
            if not isinstance(ann, dict):
                raise DataError(f"{where} is {type(ann).__name__}; allowed: an object")
            if ann.get("image_id") not in image_ids:
                raise DataError(f"{where}.image_id={ann.get('image_id')!r} names no image in 'images'")
            if ann.get("category_id") not in cat_ids:
                allowed = ", ".join(map(str, sorted(cat_ids)))
                raise DataError(f"{where}.category_id={ann.get('category_id')!r} unknown; allowed: {allowed}")
            box = ann.get("bbox")
            if (
                not isinstance(box, list)
                or len(box) != 4
                or not all(isinstance(v, int | float) for v in box)
                or box[2] <= 0
                or box[3] <= 0
            ):
                raise DataError(f"{where}.bbox={box!r} not allowed; allowed: [x, y, w, h] with w > 0, h > 0")
        counts[split] = len(image_ids)
    return counts

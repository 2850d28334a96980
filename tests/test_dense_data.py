"""Generated COCO and ADE20K sets: exact layouts, determinism, one-line errors on bad input."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from bench.cli import main
from bench.data.ade20k import validate_ade20k, write_ade20k
from bench.data.coco import validate_coco, write_coco
from bench.data.datasets import resolve_dense_data
from bench.errors import DataError


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("coco"), seed=3, train_images=12, val_images=6, size=128)


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory):
    return write_ade20k(tmp_path_factory.mktemp("ade"), seed=3, train_images=6, val_images=3, size=64)


def _copy(root, tmp_path):
    return shutil.copytree(root, tmp_path / "copy")


def test_coco_layout_read_by_pycocotools(coco_root):
    assert validate_coco(coco_root) == {"train": 12, "val": 6}
    api = COCO(str(coco_root / "annotations" / "instances_train2017.json"))
    assert sorted(api.getCatIds()) == [1, 3, 7]  # sparse ids
    assert 12 <= len(api.getAnnIds()) <= 48
    for ann in api.loadAnns(api.getAnnIds()):
        img = api.loadImgs(ann["image_id"])[0]
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
        assert ann["iscrowd"] == 0
        mask = api.annToMask(ann)
        assert abs(mask.sum() - ann["area"]) <= 0.15 * ann["area"] + 8  # polygon and area agree
        with Image.open(coco_root / "train2017" / img["file_name"]) as im:
            assert im.size == (img["width"], img["height"]) and im.mode == "RGB"


def test_coco_is_deterministic_and_seeded(coco_root, tmp_path):
    again = write_coco(tmp_path / "a", seed=3, train_images=12, val_images=6, size=128)
    other = write_coco(tmp_path / "b", seed=4, train_images=12, val_images=6, size=128)
    name = "annotations/instances_val2017.json"
    assert (coco_root / name).read_bytes() == (again / name).read_bytes()
    assert (coco_root / name).read_bytes() != (other / name).read_bytes()
    first = sorted((coco_root / "val2017").iterdir())[0].name
    assert (coco_root / "val2017" / first).read_bytes() == (again / "val2017" / first).read_bytes()


def _edit(root, change):
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.pop("categories"), "'categories' missing"),
        (lambda d: d.pop("images"), "'images' missing"),
        (lambda d: d.pop("annotations"), "'annotations' missing"),
        (lambda d: d["annotations"][1]["bbox"].__setitem__(2, 0), "annotations[1].bbox="),
        (lambda d: d["annotations"][0]["bbox"].__setitem__(3, -2.0), "annotations[0].bbox="),
        (lambda d: d["annotations"][2].update(category_id=2), "annotations[2].category_id=2 unknown"),
        (lambda d: d["annotations"][0].update(image_id=999), "annotations[0].image_id=999 names no image"),
    ],
)
def test_coco_bad_json_is_a_one_line_error(coco_root, tmp_path, change, words):
    root = _copy(coco_root, tmp_path)
    path = _edit(root, change)
    with pytest.raises(DataError) as err:
        validate_coco(root)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and words in msg


def test_coco_missing_image_and_broken_json(coco_root, tmp_path):
    root = _copy(coco_root, tmp_path)
    victim = sorted((root / "val2017").iterdir())[2]
    victim.unlink()
    with pytest.raises(DataError, match=f"instances_val2017.json: images\\[2\\].file_name='{victim.name}'"):
        validate_coco(root)
    (root / "annotations" / "instances_train2017.json").write_text('{"images": [')
    with pytest.raises(DataError, match="instances_train2017.json: unreadable JSON"):
        validate_coco(root)


def test_ade20k_layout_and_determinism(ade_root, tmp_path):
    assert validate_ade20k(ade_root) == {"training": 6, "validation": 3}
    labels = sorted((ade_root / "annotations" / "training").glob("*.png"))
    assert [p.stem for p in labels] == [p.stem for p in sorted((ade_root / "images" / "training").iterdir())]
    values = set()
    for p in labels:
        with Image.open(p) as lab:
            assert lab.mode == "L" and lab.size == (64, 64)
            values |= set(np.unique(np.asarray(lab)).tolist())
    assert values <= {0, 1, 4, 13, 21, 88, 120} and len(values - {0}) >= 4
    again = write_ade20k(tmp_path / "a", seed=3, train_images=6, val_images=3, size=64)
    other = write_ade20k(tmp_path / "b", seed=4, train_images=6, val_images=3, size=64)
    assert labels[0].read_bytes() == (again / "annotations" / "training" / labels[0].name).read_bytes()
    assert labels[0].read_bytes() != (other / "annotations" / "training" / labels[0].name).read_bytes()


def _bad_label(path, array, mode):
    Image.fromarray(array, mode=mode).save(path)


@pytest.mark.parametrize(
    "breakage, words",
    [
        (lambda p: _bad_label(p, np.full((64, 64), 151, np.uint8), "L"), "label value 151 is not allowed"),
        (lambda p: _bad_label(p, np.ones((32, 64), np.uint8), "L"), "label size (64, 32) differs"),
        (lambda p: _bad_label(p, np.ones((64, 64, 3), np.uint8), "RGB"), "label mode 'RGB' (3 channels)"),
        (lambda p: p.unlink(), "image without a label"),
    ],
)
def test_ade20k_bad_labels_are_one_line_errors(ade_root, tmp_path, breakage, words):
    root = _copy(ade_root, tmp_path)
    label = sorted((root / "annotations" / "validation").glob("*.png"))[1]
    breakage(label)
    with pytest.raises(DataError) as err:
        validate_ade20k(root)
    msg = str(err.value)
    assert "\n" not in msg and words in msg and label.stem in msg


def test_generated_sets_are_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path))
    root = resolve_dense_data("generated:ade20k-tiny", "ade20k")
    assert root == tmp_path / "data" / "ade20k-tiny" and validate_ade20k(root)["training"] == 80
    stamp = (root / "annotations" / "training").stat().st_mtime_ns
    assert resolve_dense_data("generated:ade20k-tiny", "ade20k") == root
    assert (root / "annotations" / "training").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["ade20k-tiny"]  # no temporary folder left
    with pytest.raises(DataError, match="allowed generated sets: coco-tiny"):
        resolve_dense_data("generated:coco-huge", "coco")


def test_cli_data_make(tmp_path, capsys):
    counts = ["--images", "3", "--eval-images", "2", "--size", "64", "--seed", "1"]
    assert main(["data", "make", "coco", "--out", str(tmp_path / "c"), *counts]) == 0
    assert validate_coco(tmp_path / "c") == {"train": 3, "val": 2}
    assert main(["data", "make", "ade20k", "--out", str(tmp_path / "a"), *counts]) == 0
    assert validate_ade20k(tmp_path / "a") == {"training": 3, "validation": 2}
    with Image.open(tmp_path / "c" / "val2017" / "000001000002.jpg") as im:
        assert im.size == (64, 64)
    assert "wrote ade20k dataset" in capsys.readouterr().out


def test_mmdet_coco_dataset_and_metric_read_the_generated_set(coco_root):
    import torch
    from mmdet.datasets import CocoDataset
    from mmdet.evaluation import CocoMetric
    from mmengine.registry import DefaultScope

    ann = coco_root / "annotations/instances_val2017.json"
    names = [c["name"] for c in json.loads(ann.read_text())["categories"]]
    load = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True, with_mask=True)]
    with DefaultScope.overwrite_default_scope("mmdet"):  # leave the scope as it was for later tests
        ds = CocoDataset(
            data_root=str(coco_root),
            ann_file="annotations/instances_val2017.json",
            data_prefix=dict(img="val2017/"),
            metainfo=dict(classes=names),
            pipeline=load,
            test_mode=True,
        )
    assert len(ds) == 6 and ds.cat_ids == [1, 3, 7]
    metric = CocoMetric(ann_file=str(ann), metric=["bbox", "segm"])
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        item = ds[i]
        assert item["img"].shape == (128, 128, 3)
        assert len(item["gt_bboxes"]) == len(item["gt_bboxes_labels"]) > 0
        masks = torch.from_numpy(item["gt_masks"].to_ndarray()).bool()
        pred = dict(
            bboxes=item["gt_bboxes"].tensor,
            scores=torch.ones(len(masks)),
            labels=torch.from_numpy(item["gt_bboxes_labels"]),
            masks=masks,
        )
        metric.process({}, [dict(img_id=item["img_id"], ori_shape=item["ori_shape"], pred_instances=pred)])
    scores = metric.compute_metrics(metric.results)
    assert scores["bbox_mAP"] > 0.95 and scores["segm_mAP"] > 0.95  # the ground truth scores (almost) 1


def test_mmseg_ade20k_dataset_and_iou_metric_read_the_generated_set(ade_root):
    import torch
    from mmengine.registry import DefaultScope
    from mmseg.datasets import ADE20KDataset
    from mmseg.evaluation import IoUMetric

    with DefaultScope.overwrite_default_scope("mmseg"):
        ds = ADE20KDataset(
            data_root=str(ade_root),
            data_prefix=dict(img_path="images/validation", seg_map_path="annotations/validation"),
            pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", reduce_zero_label=True)],
        )
    assert len(ds) == 3 and len(ds.metainfo["classes"]) == 150
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        seg = ds[i]["gt_seg_map"]
        with Image.open(ds[i]["seg_map_path"]) as lab:
            raw = np.asarray(lab)
        assert np.array_equal(seg, np.where(raw == 0, 255, raw.astype(np.int64) - 1))  # reduce_zero_label
        gt = torch.from_numpy(seg.astype(np.int64))[None]
        metric.process({}, [dict(pred_sem_seg=dict(data=gt), gt_sem_seg=dict(data=gt))])
    scores = metric.compute_metrics(metric.results)
    assert scores["mIoU"] == 100.0 and scores["aAcc"] == 100.0


def test_every_generated_set_has_a_version_that_names_its_cache_and_enters_run_hashes(tmp_path, monkeypatch):
    """A set whose generator changed is never read from an older cache nor taken for an earlier run on the
    older set; version 1 leaves cache folders and run hashes as they were before sets had versions."""
    import hashlib

    from bench.data import datasets, versions
    from tasks.classification.config import TrainConfig

    names = {*datasets.GENERATED, *(n for table in datasets.DENSE_GENERATED.values() for n in table)}
    assert set(versions.GENERATED_VERSIONS) == names
    cfg = TrainConfig(model="qsd_tiny", data="generated:cifar10", epochs=1)
    plain = hashlib.sha256(json.dumps(cfg.as_dict(), sort_keys=True).encode()).hexdigest()[:12]
    assert cfg.digest() == plain
    folder = TrainConfig(model="qsd_tiny", data=str(tmp_path), epochs=1)
    folder_digest = folder.digest()
    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path))
    assert datasets.resolve_data("generated:cifar10").root == tmp_path / "data" / "cifar10"
    monkeypatch.setitem(versions.GENERATED_VERSIONS, "cifar10", 2)
    assert cfg.digest() != plain
    assert folder.digest() == folder_digest  # a folder has no version
    root = datasets.resolve_data("generated:cifar10").root
    assert root == tmp_path / "data" / "cifar10-v2" and (root / "test_batch").exists()


def test_an_explicit_out_is_not_reused_across_a_version_bump(tmp_path, monkeypatch):
    """``--out`` of a finished run, rerun after its generated set's version was raised: one line saying so,
    and the older run's record kept (the same fields no longer mean the same data)."""
    from bench.data import versions
    from bench.errors import ConfigError
    from tasks.classification import TrainConfig, train

    monkeypatch.setenv("SPIKEBENCH_CACHE", str(tmp_path / "cache"))
    cfg = TrainConfig(
        model="qsd_tiny", data="generated:cifar10", epochs=1, batch_size=32, img_size=16, measure=False
    )
    out = tmp_path / "run"
    first = train(cfg, out=out, progress=False)
    assert train(cfg, out=out, progress=False)["top1"] == first["top1"]  # same version: the ok record
    monkeypatch.setitem(versions.GENERATED_VERSIONS, "cifar10", 2)
    with pytest.raises(ConfigError, match=r"run\b.*another version of data=generated:cifar10.*a new --out"):
        train(cfg, out=out, progress=False)
    assert json.loads((out / "result.json").read_text())["config_digest"] == first["config_digest"]
    assert not (tmp_path / "cache" / "data" / "cifar10-v2").exists()  # refused before any data was made

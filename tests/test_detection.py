"""COCO detection on the real mmdet stack: learning, every family, test-time reset, efficiency, resume after
kill -9, bad input, QFD (lambda = 0), quantized fine-tuning. One trained run per backbone kind is shared."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.data.coco import write_coco
from bench.errors import ConfigError, DataError
from tasks.detection import DetConfig, train

ROOT = Path(__file__).resolve().parents[1]
ANN = "mobilevit_tiny"
SPIKING = "qsd_tiny"
LEARN = dict(iters=120, img_scale=96, batch_size=8, measure=True)


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return write_coco(tmp_path_factory.mktemp("coco") / "coco", seed=0)


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return write_coco(tmp_path_factory.mktemp("mini") / "coco", seed=1, train_images=4, val_images=2, size=64)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, coco) -> dict:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, model, extra in (("ann", ANN, {}), ("spiking", SPIKING, dict(overrides=dict(T=1)))):
        cfg = DetConfig(model=model, data=str(coco), **LEARN, **extra)
        out[name] = (cfg, root / name, train(cfg, out=root / name))
    return out


def untrained_scores(run: Path) -> dict:
    """The same detector, initialised as for training and not trained, scored by the real CocoMetric."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(run / "mm_config.py"))
    cfg.work_dir = str(run / "untrained")
    cfg.load_from, cfg.resume, cfg.log_level = None, False, "WARNING"
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()
    return runner.test()


@pytest.mark.parametrize("kind", ["ann", "spiking"])
def test_tiny_retinanet_learns_above_untrained(runs, kind):
    cfg, out, result = runs[kind]
    assert result["status"] == "ok", result.get("reason")
    before = untrained_scores(out)
    assert result["bbox_mAP_50"] > before["bbox_mAP_50"] + 0.05, (result, before)
    assert result["bbox_mAP"] > before["bbox_mAP"] + 0.01, (result, before)
    assert result["detector"] == "retinanet" and result["neck_head"] == "ann"
    assert result["pyramid"]["neck"] == "fpn"
    strides = [m["stride"] for m in result["pyramid"]["maps"]]
    assert strides == ([8, 16, 32] if kind == "ann" else [8, 16])  # QSD: deepest map has stride 16
    assert result["overrides"] == cfg.overrides
    for key in ("bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l"):
        assert -1.0 <= result[key] <= 1.0


@pytest.mark.parametrize("kind", ["ann", "spiking"])
def test_efficiency_parts_add_up_to_the_whole_detector(runs, kind):
    eff = runs[kind][2]["efficiency"]
    assert set(eff["parts"]) == {"backbone", "neck", "head"}
    for key in ("params_M", "MACs_G", "energy_mJ", "energy_hw_mJ"):
        assert sum(p[key] for p in eff["parts"].values()) == pytest.approx(eff[key], rel=1e-9)
    assert eff["parts"]["head"]["MACs_G"] > 0 and eff["parts"]["neck"]["MACs_G"] > 0
    if kind == "spiking":
        assert eff["parts"]["backbone"]["SOPs_G"] > 0 and eff["SOPs_G"] is not None


def _dump(run: Path, indices: list[int], tag: str) -> list:
    """Test predictions (DumpDetResults) of the val images ``indices``, in that order, through the Runner."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from tasks.openmm.run import latest_checkpoint

    cfg = Config.fromfile(str(run / "mm_config.py"))
    cfg.work_dir = str(run / f"dump_{tag}")
    cfg.load_from, cfg.resume, cfg.log_level = str(latest_checkpoint(run / "mm")), False, "WARNING"
    cfg.test_dataloader.batch_size = 1
    cfg.test_dataloader.dataset.indices = indices
    cfg.test_dataloader.sampler = dict(type="DefaultSampler", shuffle=False)
    path = run / f"dump_{tag}.pkl"
    cfg.test_evaluator = dict(type="DumpDetResults", out_file_path=str(path))
    Runner.from_cfg(cfg).test()
    return pickle.loads(path.read_bytes())


def test_spiking_detector_output_does_not_depend_on_earlier_images(runs):
    run = runs["spiking"][1]
    alone = _dump(run, [0], "alone")[0]
    after = _dump(run, [3, 5, 0], "after")[-1]
    assert alone["img_id"] == after["img_id"]
    a, b = alone["pred_instances"], after["pred_instances"]
    assert len(a["scores"]) > 0
    assert torch.equal(a["bboxes"], b["bboxes"]) and torch.equal(a["scores"], b["scores"])


def test_vitdet_mask_rcnn_reports_box_and_mask_ap(tmp_path, coco):
    cfg = DetConfig(model=SPIKING, detector="vitdet", data=str(coco), iters=4, img_scale=64, measure=True)
    result = train(cfg, out=tmp_path / "vitdet")
    assert result["status"] == "ok" and result["detector"] == "vitdet_maskrcnn"
    for key in ("bbox_mAP", "segm_mAP", "segm_mAP_50", "bbox_mAP_l"):
        assert -1.0 <= result[key] <= 1.0
    assert result["pyramid"]["neck"] == "simple_fpn" and result["pyramid"]["maps"][0]["stride"] == 16
    assert sum(p["MACs_G"] for p in result["efficiency"]["parts"].values()) == pytest.approx(
        result["efficiency"]["MACs_G"]
    )


FAMILY_MODELS = {
    "sdt": ("sdt_tiny", {"pooling": "1111", "T": 1}),  # ImageNet pooling: stride 16 (tiny default: 4)
    "sdt_v2": ("sdtv2_tiny", {"T": 1}),
    "qsd": ("qsd_tiny", {"T": 1}),
    "mobilevit": ("mobilevit_tiny", {}),
    "mobilevit_v2": ("mobilevitv2_050", {}),
    "efficientformer": ("efficientformer_l1", {}),
    "efficientformer_v2": ("efficientformer_tiny", {}),
    "mobile_former": ("mobile_former_tiny", {}),
    "vit": ("vit_tiny", {}),
}


@pytest.mark.parametrize("detector", ["retinanet", "vitdet_maskrcnn", "vitdet_retinanet"])
def test_paper_schedules_run_as_iterations_with_their_own_length(tmp_path, mini, detector):
    """Without --iters a paper config trains its published schedule: an iteration loop whose LR steps are
    iterations too (an epoch-based step never fires in an iteration loop)."""
    from tasks.detection.build import build_mm_config

    cfg = DetConfig(model=SPIKING, detector=detector, size="paper", data=str(mini))
    mm = build_mm_config(cfg, mini, tmp_path / "mm")
    iters = {"retinanet": 87960}.get(detector, 184375)
    assert (mm.train_cfg.type, mm.train_cfg.max_iters) == ("IterBasedTrainLoop", iters)
    assert [s.get("by_epoch", True) for s in mm.param_scheduler] == [False] * len(mm.param_scheduler)
    steps = [m for s in mm.param_scheduler for m in s.get("milestones", [])]
    assert steps and all(0 < m < iters for m in steps)
    short = build_mm_config(dataclasses.replace(cfg, iters=1000), mini, tmp_path / "short")
    scaled = [m for s in short.param_scheduler for m in s.get("milestones", [])]
    assert scaled == [round(m * 1000 / iters) for m in steps]  # a shorter run keeps the steps' places


def test_every_registry_family_is_covered():
    from bench.registry import list_models, model_entry

    assert {model_entry(n).family for n in list_models()} <= set(FAMILY_MODELS)


@pytest.mark.parametrize("detector", ["retinanet", "vitdet_maskrcnn"])
@pytest.mark.parametrize("family", sorted(FAMILY_MODELS))
def test_every_family_trains_a_step_and_tests_in_both_detectors(tmp_path, mini, family, detector):
    model, overrides = FAMILY_MODELS[family]
    one_step = dict(iters=1, batch_size=2, img_scale=64, measure=False)
    cfg = DetConfig(model=model, detector=detector, data=str(mini), overrides=overrides, **one_step)
    result = train(cfg, out=tmp_path / "run")
    assert result["status"] == "ok", result.get("reason")
    assert "bbox_mAP" in result and (detector == "retinanet") == ("segm_mAP" not in result)


def _files(run: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "breakage, field",
    [
        (lambda d, root: d.pop("categories"), "'categories'"),
        (lambda d, root: d["annotations"][0].update(bbox=[1, 1, 0, 5]), "bbox"),
        (lambda d, root: d["annotations"][0].update(category_id=999), "category_id"),
        (lambda d, root: d["annotations"][0].update(image_id=-5), "image_id"),
        (lambda d, root: (root / "train2017" / d["images"][0]["file_name"]).unlink(), "file_name"),
    ],
)
def test_bad_coco_input_is_one_line_before_training(tmp_path, mini, runs, breakage, field):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(mini, root)
    ann = root / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    breakage(data, root)
    ann.write_text(json.dumps(data))
    before = _files(runs["ann"][1])
    with pytest.raises(DataError) as err:
        train(DetConfig(model=ANN, data=str(root), iters=1, measure=False), out=tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message and "instances_train2017.json" in message and field in message
    assert not (tmp_path / "run").exists()
    assert _files(runs["ann"][1]) == before


def test_bad_options_are_one_line():
    for bad in (
        dict(detector="yolo"),
        dict(neck_head="snn"),
        dict(quant_bits=9),
        dict(distill={"kind": "x"}),
    ):
        with pytest.raises(ConfigError) as err:
            DetConfig(model=ANN, **bad)
        assert "\n" not in str(err.value) and "allowed" in str(err.value)


def _train_cmd(out: Path, data: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.cli",
        "train",
        "detection",
        "--model",
        ANN,
        "--data",
        str(data),
        "--iters",
        "8",
        "--batch-size",
        "2",
        "--img-scale",
        "64",
        "--no-measure",
        "--out",
        str(out),
    ]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "SIGINT"])
def test_resume_after_a_stop_reaches_the_uninterrupted_record(tmp_path, mini, sig):
    """kill -9 leaves no record; SIGINT (Ctrl-C) records ``interrupted`` with the signal. Either way a plain
    rerun resumes from the newest checkpoint and ends with the uninterrupted run's record and weights."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cfg = DetConfig(
        model=ANN, data=str(mini), iters=8, batch_size=2, img_scale=64, measure=False, checkpoint_interval=2
    )
    whole = train(cfg, out=tmp_path / "whole")
    cmd = _train_cmd(tmp_path / "killed", mini) + ["--checkpoint-interval", "2"]
    log = (tmp_path / "stopped.log").open("w")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 240
    while not list((tmp_path / "killed" / "mm").glob("iter_4.pth")) and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, sig)
    proc.wait()
    record = tmp_path / "killed" / "result.json"
    if sig == signal.SIGKILL:
        assert not record.exists() or json.loads(record.read_text())["status"] != "ok"
    else:
        stopped = json.loads(record.read_text())
        assert proc.returncode == 130, (tmp_path / "stopped.log").read_text()[-3000:]
        assert (stopped["status"], stopped["reason"]) == ("interrupted", "interrupted by SIGINT")
        assert not list((tmp_path / "killed" / "mm").glob("iter_8.pth"))
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((tmp_path / "killed" / "result.json").read_text())
    keys = [k for k in whole if k.startswith("bbox_mAP")]
    assert {k: resumed[k] for k in keys} == {k: whole[k] for k in keys}
    a = torch.load(tmp_path / "whole" / "mm" / "iter_8.pth", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "killed" / "mm" / "iter_8.pth", map_location="cpu", weights_only=False)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def _weights(run: Path) -> dict:
    from tasks.openmm.run import latest_checkpoint

    return torch.load(latest_checkpoint(run / "mm"), map_location="cpu", weights_only=False)["state_dict"]


def test_qfd_lambda_zero_equals_no_distillation_and_quantized_finetune(tmp_path, runs, coco):
    teacher = runs["ann"][1]
    base = dict(model=ANN, data=str(coco), iters=3, batch_size=2, img_scale=96, measure=False)
    plain = train(DetConfig(**base), out=tmp_path / "plain")
    zero = train(
        DetConfig(**base, distill=dict(kind="qfd", teacher=str(teacher), weight=0.0)), out=tmp_path / "zero"
    )
    assert plain["bbox_mAP"] == zero["bbox_mAP"]
    wp, wz = _weights(tmp_path / "plain"), _weights(tmp_path / "zero")
    assert wp.keys() == wz.keys() and all(torch.equal(wp[k], wz[k]) for k in wp)
    # QFD protocol: 4-bit RetinaNet fine-tuned from the full-precision detector, P3 distilled at lambda 0.5
    init = str(sorted((teacher / "mm").glob("iter_*.pth"))[-1])
    q = DetConfig(**base, quant_bits=4, init_checkpoint=init, distill=dict(kind="qfd", teacher=str(teacher)))
    result = train(q, out=tmp_path / "qfd")
    assert result["status"] == "ok" and result["quant_bits"] == 4
    wq = _weights(tmp_path / "qfd")
    assert any(k.startswith("neck.") and k.endswith("quantizer.step") for k in wq)
    assert any(k.startswith("bbox_head.") and "quantizer.step" in k for k in wq)
    assert not any(
        k.startswith(("bbox_head.retina_cls.", "bbox_head.retina_reg.")) and "quantizer" in k for k in wq
    )
    assert result["distill"]["kind"] == "qfd" and result["distill"]["levels"] == [3]

"""ADE20K segmentation on the generated set: real mmseg segmentors, ADE20KDataset, IoUMetric and Runner.

One module-scoped trained run per segmentor kind is shared by several assertions (learning, records,
efficiency, CLI test, resume after kill -9, bad input), so the whole file stays within the CPU budget.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.datasets import ADE20KDataset
from PIL import Image

from bench.data.ade20k import write_ade20k
from bench.errors import ConfigError, DataError
from bench.registry import list_models
from tasks.health import learning_flags
from tasks.segmentation.config import SegConfig
from tasks.segmentation.train import train

ROOT = Path(__file__).resolve().parents[1]
ANN, SPIKING = "mobilevit_tiny", "qsd_tiny"
BASE = dict(size="tiny", crop=32, batch_size=8, seed=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ade") / "ade20k"
    write_ade20k(root, seed=0, train_images=48, val_images=12, size=64)
    return root


def _cfg(data: Path, **kw) -> SegConfig:
    return SegConfig(**{**BASE, "data": str(data), **kw})


def _untrained_miou(cfg: SegConfig, data: Path, work: Path) -> float:
    from mmengine.runner import Runner

    import tasks.openmm  # noqa: F401
    import tasks.segmentation.metric  # noqa: F401
    from tasks.segmentation.build import mm_config

    mm = mm_config(cfg, data, work)
    mm.log_level = "WARNING"
    return float(Runner.from_cfg(mm).test()["mIoU"])


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("runs")
    cfgs = {
        "ann": _cfg(data, model=ANN, iters=40, checkpoint_interval=10),
        "spiking": _cfg(data, model=SPIKING, iters=40, checkpoint_interval=20, overrides=dict(T=1)),
        "upernet": _cfg(data, model=ANN, segmentor="upernet", iters=20, checkpoint_interval=20),
    }
    out = {}
    for name, cfg in cfgs.items():
        t0 = time.perf_counter()
        out[name] = dict(cfg=cfg, dir=tmp / name, result=train(cfg, out=tmp / name))
        out[name]["seconds"] = time.perf_counter() - t0
    for name in ("ann", "spiking"):
        out[name]["untrained"] = _untrained_miou(cfgs[name], data, tmp / f"untrained-{name}")
    return out


@pytest.mark.parametrize("kind", ["ann", "spiking"])
def test_semantic_fpn_learns(runs, kind):
    run = runs[kind]
    r = run["result"]
    assert r["status"] == "ok" and r["task"] == "segmentation" and r["model"] == run["cfg"].model
    assert r["mIoU"] >= run["untrained"] + 2.0, (r["mIoU"], run["untrained"])
    assert r["mIoU"] > r["constant_mIoU"] and learning_flags(r) == []  # above the best constant prediction
    print(
        f"{kind}: mIoU {r['mIoU']:.2f} (untrained {run['untrained']:.2f}, constant {r['constant_mIoU']:.2f})"
    )
    assert 0 <= r["aAcc"] <= 100 and 0 <= r["mAcc"] <= 100
    saved = json.loads((run["dir"] / "result.json").read_text())
    assert saved["mIoU"] == r["mIoU"] and saved["config_digest"] == run["cfg"].digest()
    assert {p.name for p in run["dir"].iterdir()} >= {"config.json", "environment.json", "mm_config.py", "mm"}


def test_upernet_reports_real_iou_metric(runs):
    r = runs["upernet"]["result"]
    assert r["status"] == "ok" and set(r["metrics"]) >= {"mIoU", "aAcc", "mAcc", "per_class_IoU"}
    per_class = r["metrics"]["per_class_IoU"]
    assert set(per_class) <= set(ADE20KDataset.METAINFO["classes"])  # the dataset's class names
    assert 1 <= len(per_class) <= 6  # the generated set's classes (ADE20K names), others have no union
    assert abs(np.mean(list(per_class.values())) - r["mIoU"]) < 0.05  # mIoU is the mean over present classes
    mm = (runs["upernet"]["dir"] / "mm_config.py").read_text()
    assert "UPerHead" in mm and "FCNHead" in mm and "loss_weight=0.4" in mm


@pytest.mark.parametrize("kind", ["ann", "spiking", "upernet"])
def test_efficiency_parts_add_up(runs, kind):
    eff = runs[kind]["result"]["efficiency"]
    parts = eff["parts"]
    assert set(parts) == {"backbone", "neck", "head"} if kind != "upernet" else {"backbone", "head"}
    for key in ("params_M", "MACs_G", "energy_mJ", "energy_hw_mJ"):
        assert sum(p[key] for p in parts.values()) == pytest.approx(eff[key], rel=1e-9)
        assert all(p[key] > 0 for p in parts.values())
    if kind == "spiking":
        assert eff["SOPs_G"] == pytest.approx(sum(p["SOPs_G"] for p in parts.values()))
        assert parts["backbone"]["fr_mean"] > 0 and parts["neck"]["SOPs_G"] == 0  # ANN neck: MACs only
        assert eff["energy_mJ"] < eff["energy_ann_mJ"]
    else:
        assert eff["SOPs_G"] is None and eff["fr_mean"] is None
    if kind == "upernet":
        assert eff["auxiliary_head"]["MACs_G"] > 0  # training-only head: reported, not in the total
    assert eff["conventions"]["resolution"].startswith("32x32")
    layers = json.loads((runs[kind]["dir"] / "efficiency.json").read_text())["firing_rates"]
    assert "firing_rates" not in eff  # per layer: in efficiency.json, where the silent-layer check reads it
    if kind == "spiking":
        assert layers and min(r["fr"] for r in layers) > 0  # no silent layer
    else:
        assert str(layers).startswith("not applicable")


def test_every_run_of_one_process_logs_its_own_training_curve(runs):
    """Three runners in one process (as in a sweep worker): each run's loss curve is in its own folder."""
    for name, run in runs.items():
        logs = list((run["dir"] / "mm").glob("*/vis_data/scalars.json"))
        rows = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
        iters = [r["iter"] for r in rows if "loss" in r]
        assert len(logs) == 1 and iters == sorted(set(iters)) and iters[-1] == run["cfg"].iters, name
        assert {10, 20} <= set(iters), name  # every 10 iterations (and where mmengine adds one)


def test_ok_run_is_not_redone_and_other_config_is_refused(runs):
    run = runs["ann"]
    before = (run["dir"] / "result.json").stat().st_mtime_ns
    assert train(run["cfg"], out=run["dir"]) == run["result"]
    assert (run["dir"] / "result.json").stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="another config"):
        train(_cfg(run["cfg"].data, model=ANN, iters=41), out=run["dir"])


def test_cli_test_reproduces_the_run(runs, capsys):
    from bench.cli import main

    run = runs["ann"]
    assert main(["test", "segmentation", "--run", str(run["dir"])]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["mIoU"] == run["result"]["mIoU"] and shown["test_mode"] == "whole"
    assert main(["test", "segmentation", "--run", str(run["dir"]), "--test-mode", "slide"]) == 0
    slide = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert slide["test_mode"] == "slide" and slide["mIoU"] > run["untrained"]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "SIGTERM"])
def test_resume_after_a_stop_reaches_the_same_record(runs, tmp_path, sig):
    """kill -9 leaves no record; SIGTERM records ``interrupted``; a plain rerun resumes either way."""
    ref = runs["ann"]
    out = tmp_path / "killed"
    cfg = ref["cfg"]
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "train",
        "segmentation",
        "--model",
        cfg.model,
        "--size",
        "tiny",
        "--data",
        cfg.data,
        "--crop",
        "32",
        "--batch-size",
        "8",
        "--iters",
        "40",
        "--checkpoint-interval",
        "10",
        "--out",
        str(out),
    ]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "mm" / "iter_10.pth").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, sig)
    finally:
        proc.wait()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and not (out / "result.json").exists()
    else:
        stopped = json.loads((out / "result.json").read_text())
        assert proc.returncode == 143
        assert (stopped["status"], stopped["reason"]) == ("interrupted", "interrupted by SIGTERM")
    assert not (out / "mm" / "iter_40.pth").exists()
    resumed = train(cfg, out=out)
    same = ("mIoU", "aAcc", "mAcc", "metrics", "config_digest", "neck_head", "iters")
    assert {k: resumed[k] for k in same} == {k: ref["result"][k] for k in same}
    for key in ("MACs_G", "energy_mJ", "params_M"):
        assert resumed["efficiency"][key] == ref["result"]["efficiency"][key]


def _corrupt(root: Path, how: str) -> str:
    ann = root / "annotations" / "training"
    victim = sorted(ann.glob("*.png"))[3]
    if how == "value":
        a = np.asarray(Image.open(victim)).copy()
        a[0, 0] = 151
        Image.fromarray(a, mode="L").save(victim)
    elif how == "size":
        Image.fromarray(np.zeros((10, 12), np.uint8), mode="L").save(victim)
    elif how == "missing":
        victim.unlink()
    else:
        Image.fromarray(np.zeros((64, 64, 3), np.uint8), mode="RGB").save(victim)
    return victim.stem


@pytest.mark.parametrize("how", ["value", "size", "missing", "rgb"])
def test_bad_labels_fail_in_one_line_before_training(data, tmp_path, how):
    bad = tmp_path / "ade"
    shutil.copytree(data, bad)
    stem = _corrupt(bad, how)
    earlier = tmp_path / "earlier"  # another run directory: nothing in it may change
    earlier.mkdir()
    (earlier / "result.json").write_text('{"status": "ok"}')
    before = _digest(earlier)
    out = tmp_path / "run"
    with pytest.raises(DataError) as err:
        train(_cfg(bad, model=ANN, iters=2), out=out)
    msg = str(err.value)
    assert "\n" not in msg and stem in msg
    assert not out.exists()
    assert _digest(earlier) == before


def test_bad_options_are_one_line_errors():
    with pytest.raises(
        ConfigError, match="segmentor='maskformer' is not allowed; allowed values: semfpn, upernet"
    ):
        SegConfig(model=ANN, segmentor="maskformer")
    with pytest.raises(ConfigError, match="neck_head"):
        SegConfig(model=ANN, neck_head="snn")
    with pytest.raises(ConfigError, match="crop=50"):
        SegConfig(model=ANN, crop=50)


def _batch(mm, n=2):
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS

    ds = DATASETS.build(mm.train_dataloader.dataset)
    return pseudo_collate([ds[i] for i in range(n)])


@pytest.mark.parametrize("model", list_models(tiny=True))
def test_every_family_builds_into_both_segmentors(data, tmp_path, model):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import tasks.openmm  # noqa: F401
    from tasks.segmentation.build import mm_config

    init_default_scope("mmseg")
    for segmentor in ("semfpn", "upernet"):
        mm = mm_config(_cfg(data, model=model, segmentor=segmentor), data, tmp_path / segmentor)
        net = MODELS.build(mm.model)
        optim = build_optim_wrapper(net, mm.optim_wrapper)
        batch = _batch(mm)
        net.train()
        losses = net.train_step(batch, optim)
        assert all(torch.isfinite(v) for k, v in losses.items() if "loss" in k)
        net.eval()
        with torch.no_grad():  # a test batch holds images of one size: one image
            preds = net.test_step(_batch(mm, 1))
        assert tuple(preds[0].pred_sem_seg.data.shape[-2:]) == tuple(preds[0].ori_shape)
        assert int(preds[0].pred_sem_seg.data.max()) < 150


def test_spiking_segmentor_output_does_not_depend_on_earlier_images(runs, data, tmp_path):
    """Through the runner's own test hooks; sliding window, so one image is several forwards."""
    from mmengine.runner import Runner

    import tasks.openmm  # noqa: F401
    from tasks.segmentation.build import mm_config

    cfg = _cfg(data, model=SPIKING, overrides=dict(T=2), test_mode="slide", crop=32)
    mm = mm_config(cfg, data, tmp_path / "mm")
    mm.log_level = "WARNING"
    runner = Runner.from_cfg(mm)
    model = runner.model
    model.eval()
    batches = list(runner.test_dataloader)[:3]

    reset = next(h for h in runner.hooks if type(h).__name__ == "NeuronResetHook")
    reset.before_run(runner)  # the per-forward reset on the backbone (each sliding window)

    def predict(batch, i):
        reset.before_test_iter(runner, batch_idx=i, data_batch=batch)
        with torch.no_grad():
            return model.test_step(batch)[0].seg_logits.data

    alone = predict(batches[2], 0)
    predict(batches[0], 0)
    predict(batches[1], 1)
    after = predict(batches[2], 2)
    assert torch.equal(alone, after)


def _weights(run: Path) -> dict:
    from tasks.openmm.run import latest_checkpoint

    return torch.load(latest_checkpoint(run / "mm"), map_location="cpu", weights_only=False)


def test_distillation_lambda_zero_equals_none_and_lambda_moves_the_student(runs, data, tmp_path):
    teacher = str(runs["ann"]["dir"])  # Semantic FPN: FPN levels of the config's width, any teacher fits
    base = dict(model=SPIKING, iters=3, checkpoint_interval=3, overrides=dict(T=1), measure=False)
    plain = train(_cfg(data, **base), out=tmp_path / "plain")
    zero = train(
        _cfg(data, **base, distill=dict(kind="qfd", teacher=teacher, weight=0.0)), out=tmp_path / "zero"
    )
    on = train(_cfg(data, **base, distill=dict(kind="qfd", teacher=teacher, weight=1.0)), out=tmp_path / "on")
    assert plain["mIoU"] == zero["mIoU"]
    wp, wz, wo = (_weights(tmp_path / k) for k in ("plain", "zero", "on"))
    assert all(torch.equal(wp["state_dict"][k], wz["state_dict"][k]) for k in wp["state_dict"])
    assert not all(torch.equal(wp["state_dict"][k], wo["state_dict"][k]) for k in wp["state_dict"])
    assert "distill_state" in wo and on["status"] == "ok"  # the QFD quantizer bounds are checkpointed

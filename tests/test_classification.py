"""Classification task: real-format datasets, learning, distillation terms, resume, and bad input."""

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch

from bench.data.datasets import CifarDataset, ImageFolderDataset, build_datasets, resolve_data
from bench.data.generate import write_cifar, write_imagenet_folder
from bench.errors import ConfigError, DataError
from bench.registry import create_model, list_models
from tasks.classification.config import DistillConfig, TrainConfig
from tasks.classification.distill import Distiller
from tasks.classification.train import train
from tasks.health import chance_threshold, learning_flags


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    # classes, training and validation images per class (32 px)
    return write_imagenet_folder(tmp_path_factory.mktemp("data") / "in10", 10, 8, 3, seed=1)


def _cfg(model, data, **kw):
    base = dict(model=model, data=str(data), epochs=1, batch_size=16, measure=False, warmup_epochs=0.5)
    base.update(kw)
    return TrainConfig(**base)


def test_generated_formats_are_read_by_the_real_loaders(tmp_path):
    root = write_imagenet_folder(tmp_path / "in", num_classes=3, train_per_class=2, val_per_class=1, size=16)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.JPEG"))
    assert files[0] == "train/n00000000/n00000000_0.JPEG" and len(files) == 9
    ds = ImageFolderDataset(root / "train")
    assert len(ds) == 6 and ds.classes == ["n00000000", "n00000001", "n00000002"]
    c10 = write_cifar(tmp_path / "c10", 10, train_per_class=5, test_per_class=2)
    with open(c10 / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert (
        set(batch) == {b"batch_label", b"labels", b"data", b"filenames"} and batch[b"data"].shape[1] == 3072
    )
    assert len(CifarDataset(c10, train=True)) == 50 and len(CifarDataset(c10, train=False)) == 20
    c100 = write_cifar(tmp_path / "c100", 100, train_per_class=1, test_per_class=1)
    spec = resolve_data(str(c100))
    assert spec.num_classes == 100 and spec.format == "cifar"
    train_set, _ = build_datasets(spec, 32)
    x, y = train_set[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 100


TINY_CASES = [pytest.param(m, {}, id=m) for m in list_models(tiny=True)] + [
    pytest.param("qsd_tiny", {"neuron": "lif"}, id="qsd_tiny-lif")
]


@pytest.mark.parametrize("model,overrides", TINY_CASES)
def test_every_tiny_model_learns_above_chance_with_no_silent_layer(model, overrides, tmp_path_factory):
    data = tmp_path_factory.getbasetemp() / "learn10"
    if not data.exists():
        write_imagenet_folder(data, num_classes=10, train_per_class=40, val_per_class=10, seed=3)
    out = tmp_path_factory.mktemp("run")
    recipe = dict(epochs=4, batch_size=32, seed=0, measure=True, measure_batches=1)
    cfg = TrainConfig(model=model, data=str(data), overrides=overrides, **recipe)
    result = train(cfg, out=out, progress=False)
    firing = json.loads((out / "efficiency.json").read_text())["firing_rates"]
    limit = chance_threshold(10, result["eval_samples"])
    print(f"{model}{overrides}: top-1 {result['top1']:.1f} % after 4 epochs (not above chance: <= {limit} %)")
    assert result["status"] == "ok" and learning_flags(result, firing) == []
    assert result["efficiency"]["params_M"] > 0
    if result["efficiency"]["fr_mean"] is not None:  # spiking: it fires and its synaptic ops count
        assert result["efficiency"]["fr_mean"] > 0 and result["efficiency"]["SOPs_G"] > 0


TORCHRUN_2 = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
DISTILL = {
    "qfd": dict(teacher="sdtv2_tiny", teacher_bits=4),
    "fgd": dict(teacher="qsd_tiny", teacher_overrides=dict(neuron="relu", attention="softmax", bits=32)),
    "kd": dict(teacher="mobilevit_tiny", tau=2.0),
}


def _weights(path: Path, name: str, **overrides) -> str:
    """A checkpoint of ``name``'s initial weights (a teacher whose quality the test does not need)."""
    torch.manual_seed(0)
    torch.save({"model": create_model(name, num_classes=10, **overrides).state_dict()}, path)
    return str(path)


def _distill(kind: str, tmp_path: Path, **kw) -> DistillConfig:
    d = DISTILL[kind]
    ckpt = _weights(tmp_path / f"{kind}.pt", d["teacher"], **d.get("teacher_overrides", {}))
    return DistillConfig(kind=kind, teacher_checkpoint=ckpt, **d, **kw)


@pytest.mark.parametrize("kind", sorted(DISTILL))
def test_distillation_term_gradients_and_lambda_zero(kind, small_data, tmp_path):
    cfg = _cfg("qsd_tiny", small_data, distill=_distill(kind, tmp_path, weight=0.5))
    result = train(cfg, out=tmp_path / "on", progress=False)
    metrics = json.loads((tmp_path / "on" / "metrics.json").read_text())
    assert metrics[0]["train_distill"] > 0 and metrics[0]["teacher_time_share"] > 0
    assert metrics[0]["train_loss"] == pytest.approx(
        metrics[0]["train_ce"] + 0.5 * metrics[0]["train_distill"]
    )
    assert result["teacher"]["macs_G"] > 0

    # gradients reach the student only
    student = create_model("qsd_tiny", num_classes=10)
    dist = Distiller(cfg.distill, student, 10, 32, torch.device("cpu"))
    logits, term = dist.loss(student, torch.randn(4, 3, 32, 32))
    (logits.logsumexp(1).mean() + term).backward()
    assert all(p.grad is None for p in dist.teacher[0].parameters())
    assert sum(float(p.grad.abs().sum()) for p in student.parameters() if p.grad is not None) > 0

    # lambda = 0 gives exactly the run without distillation
    zero = train(
        _cfg("qsd_tiny", small_data, distill=_distill(kind, tmp_path, weight=0.0)),
        out=tmp_path / "zero",
        progress=False,
    )
    plain = train(_cfg("qsd_tiny", small_data), out=tmp_path / "plain", progress=False)
    a = torch.load(tmp_path / "zero" / "checkpoints" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "plain" / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert zero["top1"] == plain["top1"]


def test_teacher_from_a_checkpoint(small_data, tmp_path):
    teacher_run = train(_cfg("sdt_tiny", small_data), out=tmp_path / "teacher", progress=False)
    assert teacher_run["status"] == "ok"
    ckpt = tmp_path / "teacher" / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=False)["model"]
    torch.save({"model": state}, tmp_path / "teacher.pt")
    cfg = _cfg(
        "sdt_tiny",
        small_data,
        distill=DistillConfig(kind="kd", teacher="sdt_tiny", teacher_checkpoint=str(tmp_path / "teacher.pt")),
    )
    dist = Distiller(cfg.distill, create_model("sdt_tiny", num_classes=10), 10, 32, torch.device("cpu"))
    loaded = dist.teacher[0].state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert train(cfg, out=tmp_path / "student", progress=False)["status"] == "ok"


def test_teacher_given_as_fields_is_trained_once_then_distilled_from(small_data, tmp_path):
    fields = DistillConfig(kind="kd", teacher={"overrides": {"bits": 32}, "epochs": 2})
    runs = tmp_path / "runs"
    a = train(
        _cfg("qsd_tiny", small_data, distill=fields, overrides={"bits": 2}), out=runs / "a", progress=False
    )
    b = train(
        _cfg("qsd_tiny", small_data, distill=fields, overrides={"bits": 4}), out=runs / "b", progress=False
    )
    teachers = [d for d in (runs / ".teachers").iterdir() if d.is_dir()]
    assert len(teachers) == 1  # one 32-bit teacher run, shared by both students
    teacher = json.loads((teachers[0] / "result.json").read_text())
    config = json.loads((teachers[0] / "config.json").read_text())
    assert (
        config["overrides"] == {"bits": 32} and config["epochs"] == 2 and config["distill"]["kind"] == "none"
    )
    for record in (a, b):
        assert record["teacher"]["run"] == str(teachers[0]) and record["teacher"]["top1"] == teacher["top1"]
        assert record["teacher"]["overrides"] == {"bits": 32}
    # the teacher that distils is the trained run's last weights; a run directory names it the same way
    trained = torch.load(teachers[0] / "checkpoints" / "last.pt", weights_only=False)["model"]
    cfg = _cfg("qsd_tiny", small_data, distill=DistillConfig(kind="kd", teacher=str(teachers[0])))
    from tasks.classification.distill import resolve_teacher
    from tasks.distributed import DistInfo

    resolved, info = resolve_teacher(cfg, tmp_path / "c", train, DistInfo())
    assert info == dict(run=str(teachers[0]), top1=teacher["top1"])
    loaded = Distiller(resolved, create_model("qsd_tiny", num_classes=10), 10, 32, torch.device("cpu"))
    assert all(torch.equal(loaded.teacher[0].state_dict()[k], v) for k, v in trained.items())


def test_an_untrained_teacher_is_refused_in_one_line(small_data):
    with pytest.raises(ConfigError) as err:
        _cfg("qsd_tiny", small_data, distill=DistillConfig(kind="kd", teacher="sdt_tiny"))
    msg = str(err.value)
    assert "\n" not in msg and "distill.teacher='sdt_tiny' without distill.teacher_checkpoint" in msg
    assert "a classification run directory, or the teacher's fields" in msg


def test_resume_after_interruption_matches_an_uninterrupted_run(small_data, tmp_path):
    cfg = _cfg("sdt_tiny", small_data, epochs=3, mixup=0.2)
    full = train(cfg, out=tmp_path / "full", progress=False)

    def stop(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")

    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "cut", progress=False, on_epoch_end=stop)
    assert json.loads((tmp_path / "cut" / "result.json").read_text())["status"] == "interrupted"
    resumed = train(cfg, out=tmp_path / "cut", progress=False)
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    keep = ("epoch", "train_loss", "train_ce", "lr", "top1", "top5", "eval_loss")
    assert [{k: m[k] for k in keep} for m in a["metrics"]] == [{k: m[k] for k in keep} for m in b["metrics"]]
    assert resumed["top1"] == full["top1"] and resumed["status"] == "ok"
    # an ok run is not re-executed
    before = (tmp_path / "cut" / "result.json").read_bytes()
    train(cfg, out=tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / "result.json").read_bytes() == before


def _snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bad_input_gives_one_line_errors_and_leaves_earlier_runs_alone(small_data, tmp_path):
    earlier = tmp_path / "earlier"
    train(_cfg("sdt_tiny", small_data), out=earlier, progress=False)
    snap = _snapshot(earlier)

    empty_class = write_imagenet_folder(tmp_path / "ec", 2, 2, 1, size=16)
    for f in (empty_class / "train" / "n00000001").iterdir():
        f.unlink()
    corrupt = write_imagenet_folder(tmp_path / "cor", 2, 2, 1, size=16)
    bad_file = corrupt / "train" / "n00000000" / "n00000000_0.JPEG"
    bad_file.write_bytes(b"not a jpeg at all")
    cifar = write_cifar(tmp_path / "cif", 10, 2, 1)
    with open(cifar / "data_batch_3", "wb") as f:
        pickle.dump({b"data": [], b"lables": []}, f)

    cases = [
        (_cfg("sdt_tiny", tmp_path / "missing"), f"{tmp_path / 'missing'}: dataset folder not found"),
        (_cfg("sdt_tiny", empty_class), f"{empty_class / 'train' / 'n00000001'}: class folder has no images"),
        (_cfg("sdt_tiny", corrupt), f"{bad_file}: cannot read image"),
        (_cfg("sdt_tiny", cifar), f"{cifar / 'data_batch_3'}: missing field 'labels' (found: data, lables)"),
        (
            _cfg(
                "qsd_tiny",
                small_data,
                distill=DistillConfig(
                    kind="qfd",
                    teacher="mobilevit_tiny",
                    teacher_checkpoint=_weights(tmp_path / "mv.pt", "mobilevit_tiny"),
                ),
            ),
            "distill: teacher feature size 320 does not match the student's 80; allowed: equal sizes, or "
            "distill.projection=true",
        ),
        (_cfg("sdt_tiny", small_data, epochs=2), "holds a run of another config"),
    ]
    for cfg, msg in cases:
        out = earlier if "another config" in msg else tmp_path / f"run{len(msg)}"
        with pytest.raises(ConfigError) as err:
            train(cfg, out=out, progress=False)
        assert msg in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert isinstance(err.value, ConfigError)
    with pytest.raises(DataError, match=r"data='generated:imagenet-1000' is not allowed"):
        resolve_data("generated:imagenet-1000")
    with pytest.raises(ConfigError, match=r"distill.weight=-1 is not allowed; allowed values: >= 0"):
        _cfg("sdt_tiny", small_data, distill=DistillConfig(kind="kd", teacher="sdt_tiny", weight=-1))
    assert _snapshot(earlier) == snap


def test_torchrun_data_parallel_on_cpu(small_data, tmp_path):
    import subprocess

    out = tmp_path / "ddp"
    cmd = [
        *TORCHRUN_2,
        "-m",
        "bench.cli",
        "train",
        "classification",
        "--model",
        "sdt_tiny",
        "--data",
        str(small_data),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--no-measure",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count('"status": "ok"') == 1  # rank 0 reports
    assert json.loads((out / "environment.json").read_text())["world_size"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2] and all(m["train_loss"] > 0 for m in metrics)
    assert json.loads((out / "result.json").read_text())["status"] == "ok"


def test_torchrun_trains_a_teacher_given_as_fields_once_with_every_rank(small_data, tmp_path):
    import subprocess

    script = tmp_path / "student.py"
    script.write_text(
        "import sys\n"
        "from tasks.classification.config import DistillConfig, TrainConfig\n"
        "from tasks.classification.train import train\n"
        f"cfg = TrainConfig(model='sdt_tiny', data={str(small_data)!r}, epochs=1, batch_size=16,\n"
        "    measure=False,"
        "    distill=DistillConfig(kind='kd', teacher={'overrides': {'bits': 32}}))\n"
        "print(train(cfg, out=sys.argv[1], progress=False)['status'])\n"
    )
    out = tmp_path / "runs" / "student"
    proc = subprocess.run([*TORCHRUN_2, str(script), str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    teachers = [d for d in (tmp_path / "runs" / ".teachers").iterdir() if d.is_dir()]
    assert len(teachers) == 1
    assert (
        json.loads((teachers[0] / "environment.json").read_text())["world_size"] == 2
    )  # both ranks trained it
    record = json.loads((out / "result.json").read_text())
    assert record["status"] == "ok" and record["teacher"]["run"] == str(teachers[0])


def test_optimizer_groups_spare_1d_parameters_and_slow_lsq_steps():
    """1-D parameters (BN, biases, LSQ steps, layer scales) are not decayed (MAE's param_groups_lrd, timm);
    decay_1d=True decays them too; LSQ steps learn at lr x step_lr; a step with zero gradients moves exactly
    the decayed tensors."""
    from tasks.classification.optim import build_optimizer, lsq_steps

    model = create_model("qsd_tiny", num_classes=10)
    params, steps = list(model.parameters()), lsq_steps(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert steps and all(names[i].endswith("quantizer.step") for i in steps)
    cfg = TrainConfig(model="qsd_tiny", lr=4e-3, step_lr=0.01)
    groups = build_optimizer(cfg, params, steps).param_groups
    assert [(g["weight_decay"], g["lr"]) for g in groups] == [(0.05, 4e-3), (0.0, 4e-3), (0.0, 4e-5)]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and {p.ndim for p in groups[1]["params"]} == {1}
    assert {names[id(p)].rsplit(".", 1)[-1] for p in groups[1]["params"]} >= {"bias", "weight", "gamma"}
    assert {id(p) for p in groups[2]["params"]} == steps
    assert sum(len(g["params"]) for g in groups) == len(params)
    every = build_optimizer(TrainConfig(model="qsd_tiny", decay_1d=True), params, steps).param_groups
    assert [len(g["params"]) for g in every][1] == 0 and every[2]["weight_decay"] == 0.05
    with pytest.raises(ConfigError, match=r"step_lr=0 is not allowed; allowed values: > 0"):
        TrainConfig(model="qsd_tiny", step_lr=0)
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    build_optimizer(TrainConfig(model="qsd_tiny", lr=0.1, weight_decay=0.5), params, steps).step()
    for p, b in zip(params, before, strict=True):  # zero gradients: only the decoupled decay moves a tensor
        assert torch.equal(p, b) == (p.ndim == 1 or not b.any())


def test_hue_classes_differ_by_hue_alone_and_are_deterministic(tmp_path):
    import colorsys

    import numpy as np
    from PIL import Image

    root = write_imagenet_folder(tmp_path / "hue", 7, 6, 2, kind="hue")
    again = write_imagenet_folder(tmp_path / "hue2", 7, 6, 2, kind="hue")
    files = sorted(p.relative_to(root) for p in root.rglob("*.JPEG"))
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert json.loads((root / "spikebench_dataset.json").read_text())["kind"] == "hue"
    pattern = write_imagenet_folder(tmp_path / "pattern", 2, 1, 1)
    assert "kind" not in json.loads((pattern / "spikebench_dataset.json").read_text())
    for label in range(7):
        pixels = np.concatenate(
            [
                np.asarray(Image.open(f)).reshape(-1, 3) / 255
                for f in (root / "train" / f"n{label:08d}").iterdir()
            ]
        )
        bright = pixels[pixels.max(1) > 0.6]  # the grating's crests: the class tint, not its troughs
        hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in bright])
        angle = np.angle(np.exp(2j * np.pi * hues).mean()) / (2 * np.pi) % 1.0  # circular mean
        assert abs((angle - label / 7 + 0.5) % 1.0 - 0.5) < 0.03, (label, angle)


def test_eval_interval_evaluates_every_nth_and_the_last_epoch(small_data, tmp_path):
    result = train(
        _cfg("qsd_tiny", small_data, epochs=3, eval_interval=2), out=tmp_path / "r", progress=False
    )
    rows = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert ["top1" in r for r in rows] == [False, True, True]
    assert result["top1"] == rows[2]["top1"] and result["best_top1"] == max(rows[1]["top1"], rows[2]["top1"])
    # top-1 is an exact fraction of the evaluation set, not a float32 mean of batch means
    assert (
        result["top1"]
        == 100.0 * round(result["top1"] * result["eval_samples"] / 100) / result["eval_samples"]
    )
    with pytest.raises(ConfigError, match="eval_interval"):
        _cfg("qsd_tiny", small_data, eval_interval=0)


def test_how_often_a_run_evaluates_leaves_its_training_bit_for_bit(small_data, tmp_path):
    # augment_rng "process": crops and flips draw from the global RNG, which evaluation must not touch
    for interval in (1, 3):
        train(
            _cfg("qsd_tiny", small_data, epochs=3, eval_interval=interval),
            tmp_path / f"e{interval}",
            progress=False,
        )
    every, last = (json.loads((tmp_path / f"e{i}" / "metrics.json").read_text()) for i in (1, 3))
    assert [r["train_loss"] for r in every] == [r["train_loss"] for r in last]
    assert every[-1]["top1"] == last[-1]["top1"] and "top1" not in last[0]
    weights = [
        torch.load(tmp_path / f"e{i}" / "checkpoints" / "last.pt", weights_only=False)["model"]
        for i in (1, 3)
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_bn_init_sets_every_batchnorm_weight():
    from torch import nn

    def weights(model):
        return {
            float(w.detach())
            for m in model.modules()
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)
            for w in m.weight
        }

    assert weights(create_model("qsd_tiny", bn_init=0.3)) == {float(torch.tensor(0.3))}
    assert weights(create_model("qsd_tiny")) == {1.0}

"""Every task under a real torchrun job of 2 CPU processes (gloo): records written once by rank 0, the
classification run equal to the single-process one, dense tasks seeing the global batch per iteration,
and a rank killed with SIGKILL leaving no process and a record, then a plain rerun resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from procs import survivors

from bench.data.generate import write_imagenet_folder
from tasks.classification.config import TrainConfig
from tasks.classification.train import train
from tasks.distributed import DistInfo, SyncBatchNorm, backend_for, convert_sync_batchnorm, shard

ROOT = Path(__file__).resolve().parents[1]
# relative; float summation order only (the mean of two half-batch gradients vs one mean): measured 4e-8
# (ViT, no BatchNorm) and 6e-8 (MobileFormer, SyncBatchNorm) on the losses over 3 epochs
TOL_NO_BN = 1e-6
TOL_SYNC_BN = 1e-6


def _torchrun(args: list[str], **kw) -> subprocess.Popen:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.Popen(
        [*cmd, "-m", "bench.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def _finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "in10"
    return write_imagenet_folder(root, num_classes=4, train_per_class=8, val_per_class=2, size=32, seed=3)


def _cls_args(model: str, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "classification",
        "--model",
        model,
        "--data",
        str(data),
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--img-size",
        "32",
        "--warmup-epochs",
        "0.5",
        "--augment-rng",
        "sample",
        "--no-measure",
        "--out",
        str(out),
        *extra,
    ]


def test_backend_follows_the_device_and_ranks_split_one_order():
    assert backend_for("cpu") == "gloo" and backend_for("cuda:1") == "nccl"
    order = list(range(11))
    parts = [shard(order, DistInfo(r, 2)) for r in range(2)]
    assert parts == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    for i in (0, 2):  # the i-th batches of 2 (per rank) together: the single process's batch of 4
        assert sorted(parts[0][i : i + 2] + parts[1][i : i + 2]) == order[2 * i : 2 * i + 4]


def test_sync_batchnorm_is_batchnorm_in_one_process():
    import copy

    bn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    synced = convert_sync_batchnorm(copy.deepcopy(bn))
    assert isinstance(synced[1], SyncBatchNorm)
    x = torch.randn(6, 3, 5, 5)
    assert torch.allclose(synced(x), bn(x), atol=1e-5)
    for name in ("running_mean", "running_var"):
        assert torch.allclose(getattr(synced[1], name), getattr(bn[1], name), atol=1e-6), name
    synced.eval(), bn.eval()
    assert torch.allclose(synced(x), bn(x), atol=1e-6)


@pytest.mark.parametrize(
    ("model", "extra", "tol", "weight_tol"),
    # weights, absolute: AdamW divides by the gradient's scale, so a parameter whose gradient is float noise
    # moves by up to lr (2e-3) a step either way (measured 1.4e-3 for MobileFormer, < 1e-4 for ViT)
    [("vit_tiny", [], TOL_NO_BN, 1e-4), ("mobile_former_tiny", ["--sync-bn"], TOL_SYNC_BN, 1e-2)],
    ids=["no-batchnorm", "syncbn"],
)
def test_two_processes_of_half_batch_equal_one_process(model, extra, tol, weight_tol, data, tmp_path):
    """2 processes x batch 4 vs 1 process x batch 8: the same loss curve, metrics and weights."""
    proc = _torchrun(_cls_args(model, data, tmp_path / "two", *extra))
    cfg = TrainConfig(
        model=model,
        data=str(data),
        epochs=3,
        batch_size=8,
        img_size=32,
        warmup_epochs=0.5,
        augment_rng="sample",
        sync_bn=bool(extra),
        measure=False,
    )
    one = train(cfg, out=tmp_path / "one", progress=False)
    out = _finish(proc)
    assert out.count('"status": "ok"') == 1  # rank 0 reports
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    assert two["status"] == "ok" and two["config_digest"] == one["config_digest"]
    assert two["distributed"]["world_size"] == 2 and two["distributed"]["backend"] == "gloo"
    assert two["distributed"]["global_batch"] == 8 and two["distributed"]["per_process_batch"] == 4
    assert one["distributed"]["global_batch"] == 8 and one["distributed"]["world_size"] == 1
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for key in ("train_loss", "eval_loss", "lr"):
        assert [r[key] for r in m2] == pytest.approx([r[key] for r in m1], rel=tol), key
    assert [r["top1"] for r in m2] == [r["top1"] for r in m1]
    w1 = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=False)["model"]
    w2 = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=False)["model"]
    worst = max(float((w1[k].double() - w2[k].double()).abs().max()) for k in w1 if w1[k].is_floating_point())
    assert worst < weight_tol, worst


@pytest.mark.parametrize("rank", ["0", "1"])
def test_kill_one_rank_leaves_no_process_and_a_record_then_rerun_resumes(rank, data, tmp_path):
    out = tmp_path / "killed"
    args = _cls_args("sdt_tiny", data, out)
    args[args.index("--epochs") + 1] = "6"
    proc = _torchrun(args)
    ckpt = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), proc.stderr.read()[-2000:] if proc.poll() is not None else "no checkpoint"
    _kill_rank(proc, out, rank)
    done = len(json.loads((out / "metrics.json").read_text()))
    assert 1 <= done < 6
    _finish(_torchrun(args))
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "result.json").read_text())["status"] == "ok"


def _kill_rank(proc: subprocess.Popen, out: Path, rank: str) -> None:
    """kill -9 the torchrun worker of ``rank``: the job ends non-zero, no process survives, and a record
    says why (rank 0's own, or the surviving rank's when rank 0 was the one killed)."""
    ranks = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _is_rank(p, out, rank)]
    assert len(ranks) == 1, ranks
    os.kill(ranks[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert survivors(proc.pid, str(out), timeout=60) == []
    assert (out / "result.json").exists(), err[-4000:]
    record = json.loads((out / "result.json").read_text())
    assert record["status"] in ("failed", "interrupted") and record["reason"], record


@pytest.mark.parametrize("rank", ["0", "1"])
def test_kill_one_rank_of_a_detection_run_then_rerun_resumes(rank, tmp_path):
    out = tmp_path / "det"
    args = ["train", "detection", "--model", "qsd_tiny", "--iters", "8", "--batch-size", "2", "--no-measure"]
    args += ["--checkpoint-interval", "2", "--out", str(out)]
    proc = _torchrun(args)
    deadline = time.monotonic() + 300
    while not (out / "mm" / "iter_2.pth").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (out / "mm" / "iter_2.pth").exists(), proc.stderr.read()[-2000:] if proc.poll() is not None else ""
    _kill_rank(proc, out, rank)
    assert not (out / "mm" / "iter_8.pth").exists()
    _finish(_torchrun(args))
    assert json.loads((out / "result.json").read_text())["status"] == "ok"
    assert (out / "mm" / "iter_8.pth").exists()


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_dense_task_under_torchrun_sees_the_global_batch(task, tmp_path):
    pytest.importorskip("mmdet")
    pytest.importorskip("mmseg")
    out = tmp_path / task
    args = ["train", task, "--model", "qsd_tiny", "--iters", "4", "--batch-size", "2", "--no-measure"]
    stdout = _finish(_torchrun([*args, "--out", str(out)]))
    assert stdout.count('"status": "ok"') == 1  # rank 0 reports
    record = json.loads((out / "result.json").read_text())
    assert record["status"] == "ok" and record["task"] == task
    dist = record["distributed"]
    assert (dist["world_size"], dist["backend"], dist["batch_size_means"]) == (2, "gloo", "per_process")
    assert dist["per_process_batch"] == 2 and dist["global_batch"] == 4
    assert dist["images_per_iter"] == 4  # counted on both ranks, summed: the configured global batch
    assert dist["batchnorm"] == "per_process" and dist["lr_rule"].startswith("absolute")
    logs = [p.name for p in (out / "mm").rglob("*.log")]
    assert logs and not [name for name in logs if "rank" in name]  # rank 0's log alone


SWEEP_BASES = {
    "classification": "{model: sdt_tiny, data: DATA, epochs: 1, batch_size: 8, img_size: 32, "
    "augment_rng: sample, measure: false}",
    "detection": "{model: qsd_tiny, data: DATA, iters: 2, img_scale: 64, batch_size: 2, measure: false}",
}


@pytest.mark.parametrize(
    ("executor", "msg"),
    [
        ("{procs_per_point: 0}", "executor.procs_per_point=0 is not allowed; allowed values: integers >= 1"),
        (
            "{gpus_per_point: two}",
            "executor.gpus_per_point='two' is not allowed; allowed values: integers >= 0",
        ),
    ],
)
def test_a_bad_span_is_one_line_naming_the_field(executor, msg, data, tmp_path):
    from ablations.spec import SpecError, load_spec

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(
        f"name: bad\nbase: {{model: sdt_tiny, data: {data}}}\naxes: {{bits: [4]}}\nexecutor: {executor}\n"
    )
    with pytest.raises(SpecError) as err:
        load_spec(spec_file)
    assert str(err.value) == f"{spec_file}:4: {msg}"


@pytest.mark.parametrize("task", sorted(SWEEP_BASES))
def test_a_two_process_point_gives_one_record_under_every_executor(task, data, tmp_path):
    from ablations.executors import LocalPool, RayPool, SubmititPool
    from ablations.runner import point_dir, run_sweep
    from ablations.spec import load_spec

    if task == "detection":
        pytest.importorskip("mmdet")
        from bench.data.coco import write_coco

        data = write_coco(tmp_path / "coco", seed=0, train_images=4, val_images=2, size=64)
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(
        f"name: two\ntask: {task}\nbase: {SWEEP_BASES[task].replace('DATA', str(data))}\n"
        "axes: {bits: [4]}\nexecutor: {procs_per_point: 2}\n"
    )
    spec = load_spec(spec_file)
    assert spec.executor == {"procs_per_point": 2}
    executors = {
        "local": LocalPool(1, procs_per_point=2),
        "submitit": SubmititPool(tmp_path / "jobs", 1, cluster="local", procs_per_point=2),
        "ray": RayPool(1, procs_per_point=2),
    }
    records = {}
    for kind, ex in executors.items():
        root = tmp_path / kind
        states = run_sweep(spec, ex, root, progress=False).states
        assert {s.status for s in states.values()} == {"ok"}, (kind, [s.reason for s in states.values()])
        record = json.loads((point_dir(root, spec.points()[0]) / "result.json").read_text())
        assert record["distributed"]["world_size"] == 2
        records[kind] = {k: v for k, v in record.items() if k not in ("efficiency", "determinism")}
    assert records["local"] == records["submitit"] == records["ray"]


def _is_rank(proc_dir: Path, out: Path, rank: str) -> bool:
    """Whether ``proc_dir`` is the torchrun worker of ``rank`` writing into ``out``."""
    try:
        cmd = (proc_dir / "cmdline").read_bytes().split(b"\0")
        env = (proc_dir / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(out).encode() in cmd and b"bench.cli" in cmd and f"RANK={rank}".encode() in env

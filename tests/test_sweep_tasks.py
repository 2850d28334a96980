"""One sweep runner for every task: a tiny spec per task runs through the same runner and local pool, and
the task's metrics land in the store and in the pivot table; a teacher given as fields is trained once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablations.cli import _status_table
from ablations.executors import LocalPool
from ablations.runner import point_dir, run_sweep
from ablations.spec import load_spec
from ablations.store import collect
from ablations.tables import LABELS, ablation_table, to_markdown
from bench.data.ade20k import write_ade20k
from bench.data.coco import write_coco
from bench.data.generate import write_imagenet_folder

BASES = {
    "classification": "{model: sdt_tiny, data: DATA, epochs: 1, batch_size: 16, warmup_epochs: 0.5}",
    "detection": "{model: qsd_tiny, data: DATA, iters: 4, img_scale: 64, batch_size: 2}",
    "segmentation": "{model: qsd_tiny, data: DATA, iters: 4, crop: 32, batch_size: 4}",
}
METRICS = {
    "classification": ["top1", "energy_mJ"],
    "detection": ["bbox_mAP", "bbox_mAP_50", "energy_mJ"],
    "segmentation": ["mIoU", "aAcc", "energy_mJ"],
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sweepdata")
    return {
        "classification": write_imagenet_folder(
            root / "imnet", num_classes=4, train_per_class=8, val_per_class=2, size=32, seed=2
        ),
        "detection": write_coco(root / "coco", seed=0, train_images=8, val_images=4, size=64),
        "segmentation": write_ade20k(root / "ade", seed=0, train_images=8, val_images=4, size=64),
    }


def _spec(tmp_path: Path, task: str, data: Path, extra: str = "") -> Path:
    path = tmp_path / f"{task}.yaml"
    metrics = ", ".join(METRICS[task])
    path.write_text(
        f"name: {task}-tiny\ntask: {task}\nbase: {BASES[task].replace('DATA', str(data))}\n"
        f"axes: {{bits: [4, 32]}}\nbaseline: {{bits: 32}}\nmetrics: [{metrics}]\n{extra}"
    )
    return path


HEADLINE = {"classification": "top1", "detection": "bbox_mAP", "segmentation": "mIoU"}


@pytest.mark.parametrize("task", sorted(BASES))
def test_one_tiny_spec_per_task_through_the_same_runner(task, datasets, tmp_path, capsys):
    spec = load_spec(_spec(tmp_path, task, datasets[task]))
    assert spec.task == task
    root = tmp_path / "sweep"
    outcome = run_sweep(spec, LocalPool(2), root, progress=False)
    assert outcome.count("ok") == 2, [s.reason for s in outcome.states]
    df = collect(root)
    assert sorted(df["bits"].astype(int)) == [4, 32] and set(df["task"]) == {task}
    for metric in METRICS[task]:
        assert df[metric].notna().all(), metric
    assert set(df["env.determinism.threads"]) == {1}
    table, _ = ablation_table(df, ["bits"], METRICS[task], spec.baseline, spec.axes)
    assert list(table.index) == ["4", "32"]
    for metric in METRICS[task]:
        assert table[metric].notna().all() and f"Δ {metric}" in table.columns
    md = to_markdown(table, {})
    assert all(LABELS.get(m, m) in md.splitlines()[0] for m in METRICS[task])
    # `sweep status` of a spec that names no metrics shows the task's own headline metrics
    bare = tmp_path / "bare.yaml"
    lines = spec.path.read_text().splitlines()
    bare.write_text("\n".join(ln for ln in lines if not ln.startswith("metrics")))
    capsys.readouterr()
    assert _status_table(load_spec(bare), root) == 0
    header = capsys.readouterr().out.splitlines()[0]
    others = set(HEADLINE.values()) - {HEADLINE[task]}
    assert f" {HEADLINE[task]} " in header and not any(f" {m} " in header for m in others), header


def test_a_teacher_given_as_fields_is_trained_once_and_shared(datasets, tmp_path):
    extra = "seeds: [0]\n"
    path = _spec(tmp_path, "segmentation", datasets["segmentation"], extra)
    text = path.read_text().replace(
        "batch_size: 4}",
        "batch_size: 4, distill: {kind: qfd, teacher: {overrides: {bits: 32}}, weight: 0.5}}",
    )
    text = text.replace("axes: {bits: [4, 32]}", "axes: {bits: [2, 4]}")
    path.write_text(text.replace("baseline: {bits: 32}", "baseline: {bits: 4}"))
    spec = load_spec(path)
    root = tmp_path / "sweep"
    outcome = run_sweep(spec, LocalPool(2), root, progress=False)
    assert outcome.count("ok") == 2, [s.reason for s in outcome.states]
    teachers = [d for d in (root / "runs" / ".teachers").iterdir() if d.is_dir()]
    assert len(teachers) == 1  # both points (2 and 4 bits) distil from one 32-bit teacher run
    teacher = json.loads((teachers[0] / "result.json").read_text())
    assert teacher["status"] == "ok" and teacher["overrides"]["bits"] == 32
    for point in spec.points():
        mm = (point_dir(root, point) / "mm_config.py").read_text()
        assert "FeatureDistillHook" in mm and str(teachers[0]) in mm
    assert len(collect(root)) == 2  # the teacher is not a point of the sweep

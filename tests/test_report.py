"""The report from records of real tiny runs (classification sweeps, an evaluated checkpoint, a RetinaNet
and a Semantic FPN run): figures, leaderboards per task, published vs measured, model index."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from matplotlib.collections import PathCollection

from ablations.executors import make_executor
from ablations.report import build_report, figures
from ablations.report.leaderboard import leaderboard
from ablations.report.model_index import load_model_index
from ablations.report.paper import (
    DELTA,
    DENSE_ROWS,
    MEASURED,
    NOT_REPRODUCED,
    PUBLISHED,
    compare,
    default_path,
    load_published,
    paper_configs,
    paper_map,
)
from ablations.report.records import concat_keeping_ints, load_runs, setting_label, usable
from ablations.runner import run_sweep
from ablations.spec import load_spec
from bench.data.generate import write_imagenet_folder
from tasks.classification import TrainConfig, train
from tasks.classification.eval import evaluate_checkpoint

BASE = "batch_size: 4, img_size: 16, epochs: 3, warmup_epochs: 0.2, lr: 0.005, measure_batches: 1"


def _sweep(tmp: Path, data: Path, name: str, axes: str, base: str = "") -> Path:
    spec = tmp / f"{name}.yaml"
    spec.write_text(f"name: {name}\nbase: {{model: qsd_tiny, data: {data}, {BASE}{base}}}\naxes:\n{axes}\n")
    root = tmp / name
    status = run_sweep(load_spec(spec), make_executor("local", 2, root), root, progress=False)
    assert status.count("ok") == len(status.states), status
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    """Four sources of real tiny runs: a bit-width sweep with two seeds, a λ sweep with two seeds (QFD
    against the ANN counterpart), one run folder of that ANN counterpart (ReLU, softmax attention, fp32) and
    the folder of its checkpoint evaluated by ``spikebench eval`` (eval.json, no training)."""
    tmp = tmp_path_factory.mktemp("report")
    data = write_imagenet_folder(
        tmp / "d", num_classes=3, train_per_class=16, val_per_class=4, size=16, seed=3
    )
    bits = _sweep(tmp, data, "bits", "  bits: [2, 32]\n  seed: [0, 1]")
    distill = (
        ", distill: {kind: qfd, teacher_bits: 4,"
        " teacher: {overrides: {neuron: relu, attention: softmax, bits: 32}}}"
    )
    lam = _sweep(tmp, data, "lam", "  distill.lambda: [0, 1]\n  seed: [0, 1]", base=distill)
    cfg = TrainConfig(
        model="qsd_tiny",
        data=str(data),
        overrides=dict(neuron="relu", attention="softmax", bits=32),
        batch_size=4,
        img_size=16,
        epochs=3,
        warmup_epochs=0.2,
        lr=0.005,
        measure_batches=1,
    )
    ann = tmp / "single" / "qsd_ann"
    train(cfg, out=ann, progress=False)
    evaluated = tmp / "evals" / "qsd_ann"
    evaluate_checkpoint(
        "qsd_tiny",
        str(ann / "checkpoints" / "last.pt"),
        str(data),
        out=evaluated,
        img_size=16,
        overrides=dict(cfg.overrides, num_classes=3),
        measure_batches=1,
    )
    return [bits, lam, ann, evaluated]


@pytest.fixture(scope="module")
def runs(sources) -> pd.DataFrame:
    return load_runs(sources)


def _labels(ax) -> list[str]:
    return [t for t in ax.get_legend_handles_labels()[1]]


def test_records_are_read_generically(runs):
    assert len(runs) == 10 and set(runs["task"]) == {"classification"}
    assert set(runs["sweep"]) == {"bits", "lam", "single", "evals"}
    ann = runs["sweep"].isin(["single", "evals"])
    assert runs.loc[ann, "spiking"].tolist() == [False, False] and runs.loc[ann, "fr_mean"].isna().all()
    assert runs.loc[~ann, "spiking"].all()
    # the evaluated checkpoint is a measured row: the training run's own top-1 on the same images
    trained, evaluated = runs[runs["sweep"] == "single"].iloc[0], runs[runs["sweep"] == "evals"].iloc[0]
    assert evaluated["kind"] == "eval" and evaluated["status"] == "ok" and evaluated["flag"] == ""
    assert evaluated["top1"] == pytest.approx(trained["top1"], abs=1e-4)
    assert evaluated["classes"] == 3 and evaluated["eval_images"] == 12
    assert evaluated["params_M"] == pytest.approx(trained["params_M"])
    assert evaluated["checkpoint"] == str(Path(trained["run_dir"]) / "checkpoints" / "last.pt")
    assert {"top1", "top5", "energy_mJ", "bits_w", "size_MB", "size_MB_paper"} <= set(runs.columns)
    bits = runs[runs["sweep"] == "bits"]
    assert sorted(bits["setting"].unique()) == ["bits=2", "bits=32"]  # the seed is not a setting


def test_pareto_figure(runs, tmp_path):
    fig = figures.pareto_figure(runs, "top1", "energy_mJ")
    ax = fig.axes[0]
    labels = _labels(ax)
    assert "qsd (spiking)" in labels and "qsd (ANN)" in labels and "Pareto front" in labels
    assert ax.get_xlabel() == "Energy (mJ)" and ax.get_ylabel() == "Top-1 (%)"
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2  # one scatter series per family and kind
    # bits, lam: 2 settings x 2 seeds -> 2 points each (error bars); ANN and its evaluated checkpoint: 1 each
    assert sum(len(c.get_offsets()) for c in scatters) == 6
    paths = figures.save(fig, tmp_path, "pareto")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_pareto_front_keeps_only_non_dominated_points():
    import numpy as np

    front = figures.pareto_front(np.array([1.0, 2.0, 3.0, 0.5]), np.array([50.0, 40.0, 70.0, 10.0]))
    assert front.tolist() == [3, 0, 2]


def test_bits_figure_has_error_bars_and_size_axis(runs, tmp_path):
    fig = figures.bits_figure(runs[runs["sweep"] == "bits"], "top1")
    ax, size = fig.axes
    assert ax.get_xlabel() == "Weight bits" and ax.get_ylabel() == "Top-1 (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "32"]
    assert len(ax.containers) == 1 and ax.containers[0].has_yerr  # one setting line, seeds -> error bars
    assert [line.get_label() for line in size.lines] == ["qsd_tiny true MB", "qsd_tiny paper MB"]
    true_mb = size.lines[0].get_ydata()
    assert true_mb[0] < true_mb[1]  # 2-bit weights are smaller than fp32
    assert size.get_ylabel().startswith("Size (MB")
    assert all(p.stat().st_size > 1000 for p in figures.save(fig, tmp_path, "bits"))


def test_lambda_figure(runs, tmp_path):
    lam = runs[runs["sweep"] == "lam"]
    fig = figures.lambda_figure(lam, "top1")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "λ (distillation weight)" and "qfd" in ax.get_title()
    assert len(ax.containers) == 1 and ax.containers[0].has_yerr  # two seeds per λ: error bars
    line = ax.containers[0].lines[0]
    assert sorted(line.get_xdata()) == [0.0, 1.0]
    means = lam.groupby("distill.weight")["top1"].mean()
    assert list(line.get_ydata()) == pytest.approx(means.loc[sorted(line.get_xdata())].tolist())
    # a λ x bits sweep with seeds (as qfd_sweep_tiny): one line per bit-width, error bars from the seeds
    two = pd.concat(
        [lam.assign(bits=4), lam.assign(bits=2, run=lam["run"] + "-b2", top1=lam["top1"] - 5)],
        ignore_index=True,
    )
    two.attrs = dict(lam.attrs, config_columns=[*lam.attrs["config_columns"], "bits"])
    ax = figures.lambda_figure(two, "top1").axes[0]
    assert sorted(_labels(ax)) == ["qsd_tiny bits=2", "qsd_tiny bits=4"]
    assert all(c.has_yerr for c in ax.containers)
    assert all(p.stat().st_size > 1000 for p in figures.save(fig, tmp_path, "lam"))


def test_firing_figure_from_the_efficiency_record(runs, tmp_path):
    run = runs[runs["sweep"] == "lam"].iloc[0]
    eff = json.loads((Path(run["run_dir"]) / "efficiency.json").read_text())
    fig = figures.firing_figure(eff, "qsd_tiny")
    heat, bars = fig.axes[0], fig.axes[1]
    assert len(heat.images) == 1
    assert heat.images[0].get_array().shape == (len(eff["firing_rates"]), 1)  # layers x T (QSD: T = 1)
    assert len(bars.containers) == 2 and len(bars.containers[0]) == len(eff["firing_rates"])
    assert [t.get_text() for t in heat.get_yticklabels()] == [r["neuron"] for r in eff["firing_rates"]]
    assert all(p.stat().st_size > 1000 for p in figures.save(fig, tmp_path, "fr"))
    ann = runs[runs["sweep"] == "single"].iloc[0]
    with pytest.raises(ValueError, match="not a spiking model"):
        figures.firing_figure(json.loads((Path(ann["run_dir"]) / "efficiency.json").read_text()), "ann")


def test_curves_figure(runs, tmp_path):
    trained = runs[runs["kind"] != "eval"]
    hist = {r.run: json.loads((Path(r.run_dir) / "metrics.json").read_text()) for r in trained.itertuples()}
    fig = figures.curves_figure(hist, "top1")
    loss, top1 = fig.axes
    assert len(loss.lines) == 9 and len(top1.lines) == 9
    assert list(loss.lines[0].get_xdata()) == [1, 2, 3]
    assert loss.get_ylabel() == "Training loss" and top1.get_ylabel() == "Top-1 (%)"
    assert all(p.stat().st_size > 1000 for p in figures.save(fig, tmp_path, "curves"))


def test_curves_legend_reads_numbers_as_numbers():
    row = [dict(epoch=1, train_loss=2.0, top1=10.0), dict(epoch=2, train_loss=1.0, top1=20.0)]
    names = [f"qsd_tiny bits={b} seed={s}" for b in (32, 2, 8, 4) for s in (10, 2)]
    fig = figures.curves_figure({n: row for n in names}, "top1")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [f"qsd_tiny bits={b}" for b in (2, 4, 8, 32)]


def test_integer_settings_stay_integers_across_sweeps_that_lack_them():
    main = pd.DataFrame(dict(model=["qsd_tiny"] * 2, bits=[2, 32], stage3_stride=[1, 1], bn_init=[0.3, 0.3]))
    other = pd.DataFrame(dict(model=["qsd_tiny"], bits=[4], lr=[1.0]))
    out = concat_keeping_ints([main, other])
    out.attrs["override_columns"] = ["stage3_stride", "bn_init", "lr"]
    assert setting_label(out, exclude=("bits",)).tolist() == [
        "qsd_tiny stage3_stride=1 bn_init=0.3",
        "qsd_tiny stage3_stride=1 bn_init=0.3",
        "qsd_tiny lr=1.0",  # a float setting stays a float
    ]


def test_the_same_figure_saves_to_the_same_bytes(tmp_path):
    row = [dict(epoch=1, train_loss=2.0, top1=10.0), dict(epoch=2, train_loss=1.0, top1=20.0)]
    saved = []
    for d in "ab":  # a second apart: a creation date in the PDF would differ
        saved.append(figures.save(figures.curves_figure({"m bits=2 seed=0": row}), tmp_path / d, "c"))
        time.sleep(1.1)
    assert [p.read_bytes() for p in saved[0]] == [p.read_bytes() for p in saved[1]]


def test_leaderboard_columns_and_order(runs):
    table = leaderboard(runs, "classification")
    timm = ["model", "img_size", "top1", "top1_err", "top5", "top5_err", "param_count", "crop_pct"]
    assert list(table.columns[: len(timm) + 1]) == [*timm, "interpolation"]
    assert {"T", "bits", "firing_rate", "SOPs_G", "energy_mJ", "size_MB_true", "size_MB_paper"} <= set(table)
    assert len(table) == 6  # seeds averaged: 2 bit settings + 2 λ settings + 1 ANN + its evaluated checkpoint
    assert table.loc[table["model"] == "qsd_tiny.bits=2", "runs"].item() == 2
    key = list(zip(-table["top1"], -table["top5"], table["model"], strict=True))
    assert key == sorted(key)
    assert (table["top1_err"] == 100 - table["top1"]).all() and (table["img_size"] == 16).all()
    # ties ranked by top5 then name: a constructed table with known values
    made = pd.DataFrame(
        dict(
            model=["b", "a", "c"],
            top1=[50.0, 50.0, 60.0],
            top5=[90.0, 90.0, 80.0],
            task="classification",
            setting="",
            sweep="s",
            resolution=32,
        )
    )
    assert leaderboard(made, "classification")["model"].tolist() == ["c", "a", "b"]
    dense = pd.DataFrame(
        dict(model=["x", "y"], bbox_mAP=[0.2, 0.3], task="detection", setting="", sweep="s", resolution=64)
    )
    assert leaderboard(dense, "detection")["model"].tolist() == ["y", "x"]


def test_runs_that_did_not_learn_are_left_out():
    made = pd.DataFrame(
        dict(
            status=["ok", "ok", "ok", "failed", "ok"],
            task=["classification"] * 4 + ["detection"],
            classes=[10, 10, 10, 10, None],
            top1=[80.0, 10.0, 80.0, 80.0, None],
            fr_mean=[0.2, 0.2, 0.0, 0.2, None],
            bbox_mAP=[None, None, None, None, 0.0],
        )
    )
    assert usable(made).index.tolist() == [0]  # chance, silent, unfinished, zero box AP are left out
    flagged = made.assign(flag=["chance: top-1 at guessing", "", "", "", ""], fr_mean=0.2)
    assert usable(flagged).index.tolist() == [1, 2]  # the store's health flag decides when records carry it


def test_published_vs_measured_join_on_known_numbers():
    published = load_published(default_path())
    mapping = tuple(c for c in paper_map() if c.name in ("sdt_8_384", "qsd_8_512"))
    configs = paper_configs(mapping, every_paper_model=False)
    imagenet = dict(
        model="sdt_8_384", status="ok", task="classification", data="/data/imagenet", classes=1000, T=4
    )
    made = pd.DataFrame(
        [
            dict(imagenet, run="r0", eval_images=50_000, top1=70.0, energy_mJ=4.4),
            dict(imagenet, run="r1", eval_images=50_000, top1=71.0, energy_mJ=4.6),
            # ImageNet's folder, but a --limit evaluation: not the published split
            dict(imagenet, run="lim", eval_images=500, top1=90.0, energy_mJ=4.0),
            dict(imagenet, run="g", data="generated:imagenet-10", classes=10, top1=99.0, energy_mJ=0.1),
        ]
    )
    table = compare(published, made, configs, mapping)
    top1 = table[(table["spikebench model"] == "sdt_8_384") & (table["metric"] == "top-1 (%)")].iloc[0]
    assert top1[PUBLISHED] == 72.28 and top1[MEASURED] == 70.5 and top1[DELTA] == pytest.approx(-1.78)
    assert top1["runs"] == 2 and top1["measured by"] == "r0, r1"  # the generated-data run is not ImageNet
    energy = table[(table["spikebench model"] == "sdt_8_384") & (table["metric"] == "energy (mJ)")].iloc[0]
    assert energy[PUBLISHED] == 3.9 and energy[MEASURED] == pytest.approx(4.5)
    params = table[(table["spikebench model"] == "sdt_8_384") & (table["metric"] == "parameters (M)")].iloc[0]
    assert params[MEASURED] == pytest.approx(16.816, abs=1e-3) and params["measured by"].startswith("built")
    size = table[(table["spikebench model"] == "qsd_8_512") & table["metric"].str.startswith("size")].iloc[0]
    assert size[PUBLISHED] == 6.88 and size[MEASURED] == pytest.approx(6.92, abs=0.01)
    qsd_top1 = table[(table["spikebench model"] == "qsd_8_512") & (table["metric"] == "top-1 (%)")].iloc[0]
    assert pd.isna(qsd_top1[MEASURED]) and qsd_top1["measured by"] == "no run on this dataset"
    assert not (table["metric"] == "parameters (M)").loc[table["spikebench model"] == "qsd_8_512"].any()


def test_report_end_to_end(sources, tmp_path):
    mapping = tuple(c for c in paper_map() if c.name == "qsd_8_512")
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    stale = out / "figures" / "bits_old-sweep.png"
    stale.write_bytes(b"x")
    (out / "manifest.json").write_text(json.dumps({"files": ["figures/bits_old-sweep.png"]}))
    build_report(sources, out, default_path(), mapping=mapping, paper_models=False)
    assert not stale.exists()  # a file of the previous report that this one did not write
    index = (out / "index.md").read_text()
    for name in ("leaderboard_classification.md", "paper_vs_measured.md", "model-index.yml"):
        assert (out / name).stat().st_size > 0 and name in index
    runs = load_runs(sources)
    good = usable(runs)
    # what the records allow: a Pareto plot and per sweep curves, firing profile, bits and λ figures
    expected = {"pareto_classification"} if len(good) else set()
    for sweep, rows in good.groupby("sweep"):
        if rows["spiking"].any():
            expected.add(f"firing_{sweep}")
        if any((Path(d) / "metrics.json").exists() for d in rows["run_dir"]):  # not an evaluated checkpoint
            expected.add(f"curves_{sweep}")
        if rows["bits_w"].nunique() > 1:
            expected.add(f"bits_{sweep}")
        if rows["distill.weight"].nunique() > 1 and (rows["distill.kind"] != "none").any():
            expected.add(f"lambda_{sweep}")
    pngs = {p.stem for p in (out / "figures").glob("*.png")}
    assert pngs == expected
    for stem in pngs:
        png = out / "figures" / f"{stem}.png"
        assert png.stat().st_size > 1000 and png.with_suffix(".pdf").stat().st_size > 1000
        assert f"figures/{stem}.png" in index and f"figures/{stem}.pdf" in index
    board = pd.read_csv(out / "leaderboard_classification.csv")
    assert len(board) == good.groupby(["sweep", "setting"]).ngroups
    for run in runs.loc[~runs.index.isin(good.index), "run"]:
        assert run in index  # listed under "Runs left out"
    meta = load_model_index(out / "model-index.yml")
    assert {m["Name"] for m in meta["Models"]} == {f"{r.sweep}/{r.run}" for r in good.itertuples()}
    for model in meta["Models"]:
        assert model["Results"][0]["Task"] == "Image Classification"
        assert {"Parameters", "MACs (G)", "Energy (mJ)", "Weight bits"} <= set(model["Metadata"])
        assert Path(model["Weights"]).name == "last.pt" and Path(model["Config"]).exists()
    assert [c["Name"] for c in meta["Collections"]] == ["QSD-Transformer"]
    paper = pd.read_csv(out / "paper_vs_measured.csv")
    assert set(paper["spikebench model"]) == {"qsd_8_512"} and paper["published (paper)"].notna().all()


def test_report_cli_bad_source_is_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "bench.cli", "report", str(tmp_path / "nope"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "no such results folder" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> list[Path]:
    """Two folders of real tiny dense runs: a RetinaNet (mobilevit_tiny, 120 iterations at 64 px: box AP
    0.023; at 60 a marginal 0.007) on generated COCO and a Semantic FPN (qsd_tiny T=1, 90 iterations, 32 px
    crops: mIoU 40.1 on an AVX512 EPYC; at 30, 11.1 on an earlier machine but 4.2 on this one, below the
    constant prediction's 6.7, so the run was flagged as not learning) on generated ADE20K; 1 thread each."""
    from bench.data.ade20k import write_ade20k
    from bench.data.coco import write_coco
    from tasks import get_task

    tmp = tmp_path_factory.mktemp("dense")
    coco = write_coco(tmp / "coco", seed=0, train_images=32, val_images=8, size=64)
    ade = write_ade20k(tmp / "ade", seed=0, train_images=16, val_images=8, size=64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        det = get_task("detection").run(
            dict(model="mobilevit_tiny", data=str(coco), iters=120, img_scale=64, batch_size=8),
            tmp / "detection" / "runs" / "retinanet",
        )
        seg = get_task("segmentation").run(
            dict(model="qsd_tiny", data=str(ade), iters=90, crop=32, batch_size=8, overrides=dict(T=1)),
            tmp / "segmentation" / "runs" / "semfpn",
        )
    finally:
        torch.set_num_threads(threads)
    assert det["status"] == "ok" and seg["status"] == "ok"
    return [tmp / "detection", tmp / "segmentation"]


def test_dense_records_and_leaderboards(dense):
    runs = load_runs(dense)
    assert sorted(runs["task"]) == ["detection", "segmentation"] and usable(runs).shape[0] == 2
    for r in runs.to_dict("records"):
        parts = [f"{p}_params_M" for p in ("backbone", "neck", "head")]
        assert sum(r[p] for p in parts) == pytest.approx(r["params_M"])  # the whole model, split by part
        assert r["eval_images"] == 8 and r["iters_run"] == {"detection": 120, "segmentation": 90}[r["task"]]
    det = leaderboard(runs, "detection")
    assert list(det.columns[:8]) == [
        "model", "img_size", "bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "param_count", "detector", "neck_head"
    ]  # fmt: skip
    assert "segm_mAP" not in det  # RetinaNet has no masks
    run = runs[runs["task"] == "detection"].iloc[0]
    row = det.iloc[0]
    assert row["detector"] == "retinanet" and row["bbox_mAP"] == run["bbox_mAP"] > 0
    assert row["param_count"] == pytest.approx(run["params_M"])
    assert row["backbone_param_share"] == pytest.approx(100 * run["backbone_params_M"] / run["params_M"])
    assert row["backbone_energy_share"] == pytest.approx(100 * run["backbone_energy_mJ"] / run["energy_mJ"])
    assert 0 < row["backbone_param_share"] < 100
    seg = leaderboard(runs, "segmentation")
    assert list(seg.columns[:8]) == [
        "model",
        "img_size",
        "mIoU",
        "mAcc",
        "aAcc",
        "param_count",
        "segmentor",
        "neck_head",
    ]
    assert seg.iloc[0]["segmentor"] == "semfpn" and seg.iloc[0]["firing_rate"] > 0
    # ranked by mIoU, then name: the real row against constructed ones with known values
    real = runs[runs["task"] == "segmentation"]
    made = pd.concat(
        [real, real.assign(model="b", mIoU=90.0, run_dir="b"), real.assign(model="a", mIoU=90.0, run_dir="a")]
    )
    made.attrs = dict(runs.attrs)
    assert [m.split(".")[0] for m in leaderboard(made, "segmentation")["model"]] == ["a", "b", "qsd_tiny"]


def test_dense_report_end_to_end(dense, sources, tmp_path):
    mapping = tuple(c for c in DENSE_ROWS if c.name == "efficientformer_l1")
    skipped = tuple(n for n in NOT_REPRODUCED if n.model == "PSPNet-MobileViTv2-0.5")
    out = tmp_path / "report"
    build_report(
        [*dense, sources[-1]],
        out,
        default_path(),
        mapping=mapping,
        paper_models=False,
        not_reproduced=skipped,
    )
    index = (out / "index.md").read_text()
    for task in ("classification", "detection", "segmentation"):
        assert f"leaderboard_{task}.md" in index and (out / f"leaderboard_{task}.csv").exists()
    pngs = {p.stem for p in (out / "figures").glob("*.png")}
    assert pngs == {
        "pareto_classification", "pareto_detection", "pareto_segmentation",
        "curves_detection", "curves_segmentation", "firing_segmentation",
    }  # fmt: skip
    assert "ranked by box AP" in index and "ranked by mIoU" in index
    meta = load_model_index(out / "model-index.yml")
    tasks = {m["Results"][0]["Task"]: m for m in meta["Models"]}
    assert set(tasks) == {"Image Classification", "Object Detection", "Semantic Segmentation"}
    det = tasks["Object Detection"]
    runs = load_runs(dense)
    box = runs.loc[runs["task"] == "detection", "bbox_mAP"].item()
    assert det["Results"][0]["Metrics"]["box AP"] == pytest.approx(100 * box)  # COCO's 0-100 scale
    assert det["Config"].endswith("mm_config.py") and Path(det["Weights"]).name == "iter_120.pth"
    assert det["Metadata"]["Architecture"] == "retinanet"
    evaluated = tasks["Image Classification"]
    assert evaluated["Weights"].endswith("last.pt") and evaluated["Config"].endswith("eval.json")
    paper = pd.read_csv(out / "paper_vs_measured.csv")
    miou = paper[
        (paper["published model"] == "Semantic FPN + EfficientFormer-L1") & (paper["metric"] == "mIoU (%)")
    ]
    assert miou["runs"].tolist() == [0]  # the tiny run is another model on generated data
    psp = paper[paper["published model"] == "PSPNet-MobileViTv2-0.5"]
    assert len(psp) == 4 and psp[MEASURED].isna().all()  # Table 3 and model zoo, ADE20K and VOC
    assert set(psp["dataset"]) == {"ADE20K val", "PASCAL VOC 2012 val"}
    assert psp["measured by"].str.startswith("not reproduced: PSPNet segmentor not built").all()
    configs = pd.read_csv(out / "paper_configs.csv")
    whole = configs[configs["config"] == "semfpn paper"].iloc[0]
    parts = whole["backbone_params_M"] + whole["neck_params_M"] + whole["head_params_M"]
    assert whole["params_M"] == pytest.approx(parts) and whole["model"] == "efficientformer_l1"


def test_dense_published_vs_measured_join_on_known_numbers():
    published = load_published(default_path())
    mapping = tuple(c for c in DENSE_ROWS if c.name == "efficientformer_l1")
    configs = paper_configs(mapping, every_paper_model=False)
    base = dict(
        model="efficientformer_l1",
        status="ok",
        task="segmentation",
        segmentor="semfpn",
        size="paper",
        iters_run=40_000,
        data="/data/ADEChallengeData2016",
        eval_images=2000,
    )
    made = pd.DataFrame(
        [
            dict(base, run="a", mIoU=37.0),
            dict(base, run="b", mIoU=38.0),
            dict(base, run="short", mIoU=20.0, iters_run=1000),  # not the paper's schedule
            dict(base, run="fpn-upernet", mIoU=45.0, segmentor="upernet"),  # another segmentor
            dict(base, run="sub", mIoU=50.0, eval_images=500),  # a subset of ADE20K val
        ]
    )
    table = compare(published, made, configs, mapping, NOT_REPRODUCED)
    row = table[
        (table["published model"] == "Semantic FPN + EfficientFormer-L1") & (table["metric"] == "mIoU (%)")
    ]
    row = row.iloc[0]
    assert row[PUBLISHED] == 38.9 and row[MEASURED] == 37.5 and row[DELTA] == pytest.approx(-1.4)
    assert row["measured by"] == "a, b" and row["spikebench model"] == "efficientformer_l1 (semfpn paper)"
    params = table[
        (table["published model"] == "Semantic FPN + EfficientFormer-L1")
        & table["metric"].str.startswith("backbone")
    ]
    # the csv's 12.3 M is the backbone as its ImageNet classifier: compared with that model, not the segmentor
    assert params.iloc[0][PUBLISHED] == 12.3 and params.iloc[0][MEASURED] == pytest.approx(12.29, abs=0.01)
    whole = configs[configs["config"] == "semfpn paper"].iloc[0]
    assert whole["params_M"] > whole["backbone_params_M"] > 11  # neck and head on top; no classifier head
    reproduced = table["measured by"].str.startswith("not reproduced")
    assert table.loc[reproduced, MEASURED].isna().all() and table.loc[reproduced, DELTA].isna().all()
    assert {"PSPNet-MobileViTv2-0.5", "Mask R-CNN 1x + EfficientFormer-L1"} <= set(
        table.loc[reproduced, "published model"]
    )


def test_explicit_mapping_names_real_rows_and_models():
    from bench.registry import model_entry

    published = load_published(default_path())
    for entry in (*paper_map(), *NOT_REPRODUCED):
        rows = published[
            (published["model"] == entry.model) & (published["variant"].fillna("") == entry.variant)
        ]
        assert len(rows), (entry.model, entry.variant)
        model_entry(entry.name)  # a registered model
    listed = {(n.model, n.variant) for n in NOT_REPRODUCED}
    mapped = {(c.model, c.variant) for c in paper_map()}
    assert not listed & mapped
    # every published dense row of a spikebench family is either mapped or listed as not reproduced
    ours = published[
        published["task"].isin(["detection", "segmentation", "detection/instance-seg"])
        & published["system"].isin(
            ["MobileViT v1", "MobileViT v2", "Mobile-Former", "EfficientFormer v1", "EfficientFormer v2"]
        )
        & ~published["model"].str.contains("MobileNet|ResNet|VGG|MixNet|MNASNet")
    ]
    keys = set(zip(ours["model"], ours["variant"].fillna(""), strict=True))
    assert keys <= listed | mapped, keys - listed - mapped


def test_run_dataset_needs_the_published_split():
    from ablations.report.paper import run_dataset

    row = pd.Series(dict(task="classification", data="/data/imagenet", classes=1000, eval_images=50_000))
    assert run_dataset(row) == "ImageNet-1K"
    assert run_dataset(row.copy().replace({50_000: 49_000})) == "/data/imagenet"
    dense = pd.Series(dict(task="detection", data="/data/coco", eval_images=5000))
    assert run_dataset(dense) == "MS-COCO val2017"
    assert run_dataset(dense.copy().replace({5000: 8})) == "/data/coco"
    assert (
        run_dataset(pd.Series(dict(task="segmentation", data="generated:ade20k-tiny")))
        == "generated:ade20k-tiny"
    )

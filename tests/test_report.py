"""The report from records of real tiny runs: figures, leaderboards, published vs measured, model index."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from ablations.executors import make_executor
from ablations.report import build_report, figures
from ablations.report.leaderboard import leaderboard
from ablations.report.model_index import load_model_index
from ablations.report.paper import (
    DELTA,
    MEASURED,
    PUBLISHED,
    compare,
    default_path,
    load_published,
    paper_configs,
    paper_map,
)
from ablations.report.records import load_runs, usable
from ablations.runner import run_sweep
from ablations.spec import load_spec
from bench.data.generate import write_imagenet_folder
from tasks.classification import TrainConfig, train

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
    """Three sources of real tiny runs: a bit-width sweep with two seeds, a λ sweep (QFD against the ANN
    counterpart), and one run folder of that ANN counterpart (ReLU, softmax attention, fp32)."""
    tmp = tmp_path_factory.mktemp("report")
    data = write_imagenet_folder(
        tmp / "d", num_classes=3, train_per_class=16, val_per_class=4, size=16, seed=3
    )
    bits = _sweep(tmp, data, "bits", "  bits: [2, 32]\n  seed: [0, 1]")
    distill = (
        ", distill: {kind: qfd, teacher: qsd_tiny, teacher_bits: 4,"
        " teacher_overrides: {neuron: relu, attention: softmax, bits: 32}}"
    )
    lam = _sweep(tmp, data, "lam", "  distill.lambda: [0, 1]", base=distill)
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
    return [bits, lam, ann]


@pytest.fixture(scope="module")
def runs(sources) -> pd.DataFrame:
    return load_runs(sources)


def _labels(ax) -> list[str]:
    return [t for t in ax.get_legend_handles_labels()[1]]


def test_records_are_read_generically(runs):
    assert len(runs) == 7 and set(runs["task"]) == {"classification"}
    assert set(runs["sweep"]) == {"bits", "lam", "single"}
    ann = runs["sweep"] == "single"
    assert runs.loc[ann, "spiking"].tolist() == [False] and runs.loc[ann, "fr_mean"].isna().all()
    assert runs.loc[~ann, "spiking"].all()
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
    # bits sweep: 2 settings x 2 seeds -> 2 points with error bars; lam: 2 points; ANN: 1 point
    assert sum(len(c.get_offsets()) for c in scatters) == 5
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
    fig = figures.lambda_figure(runs[runs["sweep"] == "lam"], "top1")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "λ (distillation weight)" and "qfd" in ax.get_title()
    assert len(ax.containers) == 1
    assert sorted(ax.containers[0].lines[0].get_xdata()) == [0.0, 1.0]
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
    hist = {r.run: json.loads((Path(r.run_dir) / "metrics.json").read_text()) for r in runs.itertuples()}
    fig = figures.curves_figure(hist, "top1")
    loss, top1 = fig.axes
    assert len(loss.lines) == 7 and len(top1.lines) == 7
    assert list(loss.lines[0].get_xdata()) == [1, 2, 3]
    assert loss.get_ylabel() == "Training loss" and top1.get_ylabel() == "Top-1 (%)"
    assert all(p.stat().st_size > 1000 for p in figures.save(fig, tmp_path, "curves"))


def test_leaderboard_columns_and_order(runs):
    table = leaderboard(runs, "classification")
    timm = ["model", "img_size", "top1", "top1_err", "top5", "top5_err", "param_count", "crop_pct"]
    assert list(table.columns[: len(timm) + 1]) == [*timm, "interpolation"]
    assert {"T", "bits", "firing_rate", "SOPs_G", "energy_mJ", "size_MB_true", "size_MB_paper"} <= set(table)
    assert len(table) == 5  # seeds averaged: 2 bit settings + 2 λ settings + 1 ANN
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
    made = pd.DataFrame(
        [
            dict(
                run="r0",
                model="sdt_8_384",
                status="ok",
                task="classification",
                data="/data/imagenet",
                classes=1000,
                T=4,
                top1=70.0,
                energy_mJ=4.4,
            ),
            dict(
                run="r1",
                model="sdt_8_384",
                status="ok",
                task="classification",
                data="/data/imagenet",
                classes=1000,
                T=4,
                top1=71.0,
                energy_mJ=4.6,
            ),
            dict(
                run="g",
                model="sdt_8_384",
                status="ok",
                task="classification",
                data="generated:imagenet-10",
                classes=10,
                T=4,
                top1=99.0,
                energy_mJ=0.1,
            ),
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
        expected |= {f"curves_{sweep}", f"firing_{sweep}"} if rows["spiking"].any() else {f"curves_{sweep}"}
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
        assert Path(model["Weights"]).exists() and Path(model["Config"]).exists()
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

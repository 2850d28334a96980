"""Tables a reviewer can trust: seeds, mean ± std, significance, flags for runs that did not learn,
provenance; and determinism of a point whoever runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from ablations.executors import LocalPool
from ablations.runner import point_dir, run_sweep
from ablations.spec import SpecError, load_spec
from ablations.store import collect
from ablations.tables import (
    ablation_table,
    cell,
    column_decimals,
    compare,
    spread,
    to_csv,
    to_latex,
    to_markdown,
    write_table,
)
from bench.data.generate import write_imagenet_folder
from bench.errors import ConfigError
from tasks import get_task
from tasks.health import chance_threshold, learning_flags


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # classes, training and validation images per class (32 px)
    return write_imagenet_folder(tmp_path_factory.mktemp("tabdata") / "d", 4, 8, 2, seed=2)


def _runs(setting: str, values: list[float], seeds: list[int], flag: str = "", size: float = 1.0) -> list:
    return [
        dict(
            run=f"{setting}-{s}",
            status="ok",
            bits=setting,
            seed=s,
            top1=v,
            size_MB=size,
            flag=flag,
            threads=1,
            **{
                "env.git_sha": "abc123",
                "env.host": "box",
                "env.cpu_capability": "AVX2",
                "env.started_utc": "2026-11-23T18:00:00Z",
            },
        )
        for v, s in zip(values, seeds, strict=True)
    ]


def test_significance_and_best_on_constructed_data():
    seeds = [0, 1, 2, 3]
    df = pd.DataFrame(
        _runs("32", [70.0, 72.0, 71.0, 73.0], seeds, size=4.0)  # baseline
        + _runs("8", [80.0, 81.5, 80.5, 82.5], seeds, size=1.0)  # +10 on every seed: significant
        + _runs("4", [69.0, 74.0, 70.5, 72.0], seeds, size=0.5)  # within the noise: not significant
        + _runs("3", [70.5, 72.5, 71.5, 73.5], [10, 11, 12, 13], size=0.4)  # other seeds: Welch
        + _runs("2", [95.0, 96.0, 95.0, 96.0], seeds, flag="chance: top-1 at chance", size=0.25)
    )
    table, best = ablation_table(
        df, ["bits"], ["top1", "size_MB"], baseline={"bits": 32}, order={"bits": [32, 8, 4, 3, 2]}
    )
    assert list(table.index) == ["32", "8", "4", "3", "2"] and set(table["n"]) == {4}
    assert table.loc["8", "Δ top1"] == pytest.approx(9.625)
    assert table.loc["8", "Δ top1 test"] == "paired-t" and table.loc["8", "Δ top1 sig"]
    assert table.loc["4", "Δ top1 test"] == "paired-t" and not table.loc["4", "Δ top1 sig"]
    assert table.loc["3", "Δ top1 test"] == "welch-t" and not table.loc["3", "Δ top1 sig"]
    assert table.loc["8", "top1 std"] == pytest.approx(pd.Series([80.0, 81.5, 80.5, 82.5]).std(ddof=1))
    # size: zero variance on both sides, a deterministic difference is exact
    assert table.loc["8", "Δ size_MB test"] == "exact" and table.loc["8", "Δ size_MB sig"]
    # the flagged row is highest in top-1 and smallest in size, but never best, never significant
    assert table.loc["2", "flag"] == "chance 4/4" and not table.loc["2", "Δ top1 sig"]
    assert best["top1"] == "8" and best["size_MB"] == "3"  # 0.4 vs 0.5, both exact: distinguishable

    # the known-significant and known-not cases of the test itself
    p_sig, kind = compare(pd.Series([1.0, 2.0, 3.0], [0, 1, 2]), pd.Series([11.0, 12.5, 13.0], [0, 1, 2]))
    assert kind == "paired-t" and p_sig < 0.01
    p_not, _ = compare(pd.Series([1.0, 5.0, 3.0], [0, 1, 2]), pd.Series([2.0, 3.0, 4.5], [0, 1, 2]))
    assert p_not > 0.5
    assert compare(pd.Series([1.0]), pd.Series([2.0, 3.0]))[1] == "none"

    # a best that the runner-up cannot be told from is not bold
    close = pd.DataFrame(
        _runs("a", [80.0, 70.0, 75.0], [0, 1, 2]) + _runs("b", [79.0, 71.0, 74.0], [0, 1, 2])
    )
    assert ablation_table(close, ["bits"], ["top1"])[1]["top1"] is None

    md = to_markdown(table, best)
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("|")}
    # top-1 decimals from its smallest spread (0.58: 2 significant digits -> 2 decimals); size is exact
    assert "**81.12 ± 1.11**" in rows["8"] and "+9.62*" in rows["8"]
    assert "| -0.12 " in rows["4"] and "-0.12*" not in rows["4"] and "-3.5*" in rows["4"]
    assert "| 0.5 ± 0 " in rows["4"]
    assert "† chance 4/4" in rows["2"] and "**" not in rows["2"]
    assert "Mean ± sample standard deviation" in md and "paired by seed" in md and "Welch" in md
    assert "Provenance: git abc123; threads 1; host box; cpu AVX2;" in md
    assert "seeds 0, 1, 2, 3, 10, 11, 12, 13;" in md  # numeric order
    tex = to_latex(table, best, caption="bits")
    assert "\\toprule" in tex and "\\bfseries" in tex and "$\\pm$" in tex and "\\dag{}" in tex
    assert tex.startswith("% Provenance: git abc123")
    csv = pd.read_csv(pd.io.common.StringIO(to_csv(table, best)))
    assert {"top1", "top1 std", "Δ top1 p", "Δ top1 sig", "n", "flag", "git_sha", "best_top1"} <= set(csv)
    assert csv.loc[csv["bits"] == 8, "best_top1"].item() and not csv.loc[csv["bits"] == 2, "best_top1"].item()


def test_numbers_are_printed_to_the_digits_their_spread_supports():
    seeds = [0, 1, 2]
    runs = _runs("32", [71.0, 73.5, 74.25], seeds) + _runs("2", [45.5, 47.0, 46.0], seeds)
    df = pd.DataFrame(runs).assign(energy_mJ=[0.011934, 0.011931, 0.011935, 0.011902, 0.011899, 0.011903])
    # a model size every seed shares, summed in another order per run: float noise, not a spread
    df["size_MB"] = [0.36039999999999994, 0.3604, 0.36040000000000005] * 2
    table, best = ablation_table(df, ["bits"], ["top1", "energy_mJ", "size_MB"], baseline={"bits": 32})
    md = to_markdown(table, best)
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("|")}
    # top-1 spreads 1.70 and 0.76: two significant digits of the smallest -> 2 decimals, means alike
    assert "**72.92 ± 1.70**" in rows["32"] and "| 46.17 ± 0.76 " in rows["2"]
    assert "| -26.75* " in rows["2"]
    # energy: spreads of ~2e-6 -> 7 decimals; size: exact, shown with 4 significant digits and ± 0
    assert "| 0.0119333 ± 0.0000021 " in rows["32"]
    assert "| 0.3604 ± 0 " in rows["32"] and "e-17" not in md
    assert table.loc["2", "Δ size_MB test"] == "exact" and not table.loc["2", "Δ size_MB sig"]
    tex = to_latex(table, best)
    assert "72.92 $\\pm$ 1.70" in tex and "0.3604 $\\pm$ 0" in tex
    csv = pd.read_csv(pd.io.common.StringIO(to_csv(table, best)))
    assert csv.loc[csv["bits"] == 32, "top1"].item() == pytest.approx((71.0 + 73.5 + 74.25) / 3, abs=1e-12)
    # the rules themselves
    assert spread(0.3604, 6.799e-17) == 0 and spread(72.9, 1.7) == 1.7
    assert column_decimals(pd.Series([45.67, 71.17]), pd.Series([11.59, 20.25])) == 0
    assert column_decimals(pd.Series([1.0]), pd.Series([0.0])) is None
    assert cell(45.67, 11.59, 3, 0) == "46 ± 12" and cell(0.5, float("nan"), 1, None) == "0.5"


def test_dirty_runs_are_refused_unless_asked(tmp_path):
    df = pd.DataFrame(_runs("32", [70.0, 72.0], [0, 1]) + _runs("2", [50.0, 51.0], [0, 1]))
    df.loc[df["bits"] == "2", "env.git_sha"] = "abc123-dirty"
    table, best = ablation_table(df, ["bits"], ["top1"], baseline={"bits": 32})
    with pytest.raises(ConfigError) as err:
        write_table(table, best, tmp_path / "t")
    assert "abc123-dirty" in str(err.value) and "--allow-dirty" in str(err.value)
    assert "\n" not in str(err.value) and not (tmp_path / "t").exists()
    paths = write_table(table, best, tmp_path / "t", allow_dirty=True)
    assert "git abc123, abc123-dirty" in paths[1].read_text()


def test_runs_that_did_not_learn_are_flagged():
    assert chance_threshold(10, 200) == 15.0 and chance_threshold(10, None) == 15.0
    ok = dict(top1=60.0, classes=10, eval_samples=200)
    rates = [dict(neuron="stage1.neuron", fr=0.2), dict(neuron="head_neuron", fr=0.3)]
    assert learning_flags(ok, rates) == []
    assert learning_flags(dict(ok, top1=12.5), rates)[0].startswith("chance: top-1 12.5 % <= 15.0 %")
    silent = learning_flags(ok, rates + [dict(neuron="stage3.1.attn.branch.attn_neuron", fr=0.0)])
    assert silent == ["silent: 1 of 3 spiking layers fire < 0.0001 (stage3.1.attn.branch.attn_neuron)"]
    assert learning_flags(ok, "not applicable (no spiking neurons)") == []


def _spec(tmp_path: Path, data: Path, body: str, name: str = "s", base: str = "measure_batches: 1") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nbase: {{model: sdt_tiny, data: {data}, epochs: 1, batch_size: 16, "
        f"warmup_epochs: 0.5, {base}}}\n{body}"
    )
    return path


@pytest.mark.parametrize(
    "body,msg",
    [
        (
            "axes: {T: [1]}\nseeds: [0, 0]",
            "s.yaml:4: seeds=[0, 0] is not allowed; allowed values: a non-empty",
        ),
        ("axes: {T: [1]}\nrepeats: 0", "s.yaml:4: repeats=0 is not allowed; allowed values: integers >= 1"),
        ("axes: {T: [1]}\nseeds: [0]\nrepeats: 2", "s.yaml:5: give seeds or repeats, not both"),
        ("axes: {seed: [1, 2]}\nrepeats: 2", "s.yaml:4: repeats and a seed in axes name the seed twice"),
        ("axes: {T: [1]}\nnote: [a]", "s.yaml:4: note=['a'] is not allowed; allowed values: a string"),
    ],
)
def test_seed_errors_are_one_line(tmp_path, data, body, msg):
    with pytest.raises(SpecError) as err:
        load_spec(_spec(tmp_path, data, body))
    assert msg in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_three_seed_spec_gives_mean_std_columns_with_provenance(tmp_path, data):
    note = "note: >-\n  SEW against MS\n  at one epoch.\n"
    spec_path = _spec(
        tmp_path, data, f"axes: {{shortcut: [ms, sew]}}\nbaseline: {{shortcut: ms}}\nrepeats: 3\n{note}"
    )
    spec = load_spec(spec_path)
    assert spec.note == "SEW against MS at one epoch."
    points = spec.points()
    assert [p.values for p in points[:3]] == [{"shortcut": "ms", "seed": s} for s in (0, 1, 2)]
    assert len({p.name for p in points}) == 6
    root = tmp_path / "seeds"
    status = run_sweep(spec, LocalPool(2), root, progress=False)
    assert status.count("ok") == len(status.states)
    df = collect(root)
    assert sorted(df["seed"]) == [0, 0, 1, 1, 2, 2] and set(df["env.threads"]) == {1}
    table, best = ablation_table(df, list(spec.axes), ["top1", "energy_mJ"], spec.baseline, spec.axes)
    assert list(table["n"]) == [3, 3] and table["top1 std"].notna().all()
    assert table.loc["sew", "Δ top1 test"] in ("paired-t", "exact")  # same seeds: paired
    # allow_dirty: these runs ran on whatever tree runs the tests (refusal: test_dirty_runs_are_refused)
    paths = write_table(table, best, tmp_path / "tables", stem="seeds", allow_dirty=True)
    md = paths[1].read_text()
    assert " ± " in md and "| n " in md and "seeds 0, 1, 2; n = 3 per row" in md
    assert "threads 1" in md and "git " in md
    # the spec's note is printed under the table (Markdown and LaTeX), from the spec or its sweep folder
    from bench.cli import main

    for source in (spec_path, root):
        out = tmp_path / f"noted-{source.name}"
        assert main(["table", str(source), "--sweep-dir", str(root), "--out", str(out), "--allow-dirty"]) == 0
        md, tex = (out / f"{spec.name}.md").read_text(), (out / f"{spec.name}.tex").read_text()
        assert "Note: SEW against MS at one epoch. Mean ± sample" in md and "Note: SEW against MS" in tex


def test_same_point_by_train_cli_and_by_a_two_worker_sweep_is_bit_identical(tmp_path, data):
    spec = load_spec(_spec(tmp_path, data, "axes: {seed: [0, 1]}", base="measure: true"))
    root = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "bench.cli"]
    sweep = subprocess.run(
        [*cmd, "sweep", "run", str(spec.path), "--workers", "2", "--out", str(root), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep.returncode == 0, sweep.stderr
    cli = tmp_path / "cli"
    train = subprocess.run(
        [*cmd, "train", "classification", "--model", "sdt_tiny", "--data", str(data), "--epochs", "1"]
        + ["--batch-size", "16", "--warmup-epochs", "0.5", "--seed", "0", "--out", str(cli)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr
    swept = point_dir(root, spec.points()[0])
    cfg_cli, cfg_sweep = (json.loads((d / "config.json").read_text()) for d in (cli, swept))
    assert cfg_cli == cfg_sweep and cfg_cli["threads"] == 1
    env = json.loads((cli / "environment.json").read_text())
    assert env["threads"] == 1 and env["determinism"]["exact"]
    # the instruction set the CPU kernels dispatch to: runs are bit-identical only where it is the same
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["cpu"]
    timing = ("epoch_time_s", "images_per_s", "teacher_time_share")
    m_cli, m_sweep = (
        [
            {k: v for k, v in m.items() if k not in timing}
            for m in json.loads((d / "metrics.json").read_text())
        ]
        for d in (cli, swept)
    )
    assert m_cli == m_sweep
    a = torch.load(cli / "checkpoints" / "last.pt", weights_only=False)["model"]
    b = torch.load(swept / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the thread count is part of the point's identity (its hash and folder)
    two = load_spec(
        _spec(tmp_path, data, "axes: {seed: [0, 1]}", name="t2", base="measure: true, threads: 2")
    )
    assert two.points()[0].name != spec.points()[0].name
    assert two.points()[0].run_config.threads == 2


@pytest.mark.parametrize("path", sorted(Path("ablations/specs").glob("*_paper.yaml")), ids=lambda p: p.stem)
def test_paper_specs_state_batch_and_lr_rule_and_their_lr_follows(path):
    spec = load_spec(path, validate_models=False)
    r = spec.recipe
    per_process = get_task(spec.task).batch == "per_gpu"  # mmdet/mmseg: batch_size is per GPU
    assert r["source"] and r["global_batch"] == r["gpus"] * r["per_gpu_batch"]
    assert spec.base["batch_size"] == (r["per_gpu_batch"] if per_process else r["global_batch"])
    if r["lr_rule"] == "blr * global_batch / 256":
        assert spec.base["lr"] == pytest.approx(r["blr"] * r["global_batch"] / 256, rel=1e-9)
    else:
        assert r["lr_rule"] == "absolute" and spec.base["lr"] > 0
    if spec.task == "classification" and spec.base["model"].startswith("qsd"):
        # QSD's train.sh: 8 GPUs x 196, blr 6e-4, LAMB
        assert (r["gpus"], r["per_gpu_batch"], r["blr"], spec.base["opt"]) == (8, 196, 6e-4, "lamb")
        assert spec.base["lr"] == pytest.approx(3.675e-3)


def test_a_recipe_whose_lr_does_not_follow_its_rule_is_a_one_line_error(tmp_path):
    text = Path("ablations/specs/qsd_ablation_paper.yaml").read_text().replace("lr: 3.675e-3", "lr: 4.6e-3")
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path / "bad.yaml", validate_models=False)
    assert "bad.yaml:" in str(err.value) and "base.lr=0.0046 is not blr * global_batch / 256" in str(
        err.value
    )


def test_a_numeric_axis_with_fractions_keeps_its_integer_baseline():
    # a lambda axis [0, 0.5, 1] is a float column (0.0, 0.5, 1.0): the spec's baseline 0 must still be found
    df = pd.DataFrame(
        _runs("x", [10.0, 11.0], [0, 1]) + _runs("y", [12.0, 13.0], [0, 1]) + _runs("z", [14.0, 15.0], [0, 1])
    )
    df["distill.lambda"] = [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    table, _ = ablation_table(
        df, ["distill.lambda"], ["top1"], {"distill.lambda": 0}, {"distill.lambda": [0, 0.5, 1]}
    )
    assert list(table.index) == ["0", "0.5", "1"] and table.loc["1", "Δ top1"] == pytest.approx(4.0)


def test_provenance_is_dirty_for_changed_code_not_for_changed_results(tmp_path):
    """A table written into results/ by one sweep leaves the next sweep's runs clean; a code edit does not."""
    import subprocess

    from tasks.record import git_revision

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text("a")
    (tmp_path / "code.py").write_text("a")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    clean = git_revision(tmp_path)
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "results" / "t.md").write_text("b")
    assert git_revision(tmp_path) == clean
    (tmp_path / "code.py").write_text("b")
    assert git_revision(tmp_path) == f"{clean}-dirty"

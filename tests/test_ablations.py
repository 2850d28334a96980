"""Ablation runner: specs, kill-safety, failures, executors, results store and tables."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import survivors

from ablations.executors import LocalPool, RayPool, SubmititPool
from ablations.runner import point_dir, run_sweep
from ablations.spec import SpecError, load_spec
from ablations.store import collect, write_results
from ablations.tables import ablation_table, to_latex, to_markdown, write_table
from bench.data.generate import write_imagenet_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # classes, training and validation images per class (32 px)
    return write_imagenet_folder(tmp_path_factory.mktemp("sweepdata") / "d", 4, 8, 2, seed=2)


def _spec(
    tmp_path: Path, data: Path, axes: str, name: str = "t", extra: str = "", base: str = "epochs: 1"
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
base: {{model: sdt_tiny, data: {data}, batch_size: 16, measure_batches: 1, warmup_epochs: 0.5, {base}}}
axes:
{axes}
{extra}""")
    return path


def _records(root: Path) -> dict[str, bytes]:
    return {
        d.name: (d / "result.json").read_bytes()
        for d in sorted((root / "runs").iterdir())
        if (d / "result.json").exists()
    }


def test_sigkill_of_the_runner_then_rerun_runs_every_point_exactly_once(tmp_path, data):
    spec_path = _spec(tmp_path, data, "  T: [1, 2, 3]\n  shortcut: [ms, sew]", extra="metrics: [top1]")
    spec = load_spec(spec_path)
    assert len(spec.points()) == 6
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "sweep",
        "run",
        str(spec_path),
        "--workers",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while time.time() < deadline:
        done = _records(out) if (out / "runs").exists() else {}
        locks = list((out / "runs").glob("*/.lock")) if (out / "runs").exists() else []
        if len(done) >= 1 and len(locks) > len(done):
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert survivors(proc.pid, str(out)) == []  # no worker, server or tracker outlives the runner
    before = _records(out)
    assert 1 <= len(before) < 6
    assert all(json.loads(b)["status"] == "ok" for b in before.values())
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stdout + rerun.stderr
    noise = [ln for ln in (rerun.stdout + rerun.stderr).splitlines() if "Warning" in ln or "warn(" in ln]
    assert noise == [], noise  # a classification sweep's terminal: no third-party warning lines
    after = _records(out)
    assert len(list((out / "runs").iterdir())) == 6 and len(after) == 6
    assert {p.name for p in spec.points()} == set(after)
    for name, blob in after.items():
        assert json.loads(blob)["status"] == "ok"
        assert not list((out / "runs" / name).glob(".result.json*"))  # no torn temporaries left
    for name, blob in before.items():
        assert after[name] == blob  # finished points were not re-executed


def test_a_nan_point_is_recorded_failed_and_the_others_finish(tmp_path, data):
    # an absurd learning rate without gradient clipping drives the weights to inf and the loss to NaN
    spec = load_spec(_spec(tmp_path, data, "  lr: [0.002, 1.0e+30]", base="epochs: 2, clip_grad: null"))
    status = run_sweep(spec, LocalPool(2), tmp_path / "nan", progress=False).states
    good, bad = (point_dir(tmp_path / "nan", p) for p in spec.points())
    assert status[good.name].status == "ok" and status[bad.name].status == "failed"
    reason = json.loads((bad / "result.json").read_text())["reason"]
    assert reason.startswith("FloatingPointError: loss is nan") or reason.startswith(
        "FloatingPointError: loss is inf"
    )
    # a rerun leaves the failed point alone; retry runs it again (and it fails again, for the same reason)
    assert run_sweep(spec, LocalPool(1), tmp_path / "nan", progress=False).states[bad.name].status == "failed"
    again = run_sweep(spec, LocalPool(1), tmp_path / "nan", retry=True, progress=False)
    assert again.states[bad.name].status == "failed" and again.ran_here == {bad.name}


def test_local_submitit_and_ray_executors_give_identical_records(tmp_path, data):
    spec = load_spec(_spec(tmp_path, data, "  shortcut: [ms, sew]"))
    roots = {"local": tmp_path / "local", "submitit": tmp_path / "submitit", "ray": tmp_path / "ray"}
    executors = {
        "local": LocalPool(2),
        "submitit": SubmititPool(roots["submitit"] / "jobs", 2, cluster="local"),
        "ray": RayPool(2),
    }
    results = {}
    for kind, ex in executors.items():
        status = run_sweep(spec, ex, roots[kind], progress=False).states
        assert {s.status for s in status.values()} == {"ok"}, (kind, status)
        results[kind] = {
            p.name: {
                k: v
                for k, v in json.loads((point_dir(roots[kind], p) / "metrics.json").read_text())[-1].items()
                if k not in ("epoch_time_s", "images_per_s", "teacher_time_share")
            }
            for p in spec.points()
        }
    assert results["local"] == results["submitit"] == results["ray"]


@pytest.mark.parametrize(
    "axes,base,msg",
    [
        ("  bitz: [4]", "model: sdt_tiny", "t.yaml:4: axes: unknown field 'bitz'; allowed fields:"),
        (
            "  bits: [4]",
            "model: sdt_tinyy",
            "t.yaml:2: unknown model 'sdt_tinyy'; closest registered names: sdt_tiny",
        ),
        ("  bits: [4, 0]", "model: sdt_tiny", "t.yaml:4: bits=0 is not allowed; allowed values: 1..8 or 32"),
        (
            "  distill.lambda: [0.5, -1]",
            "model: sdt_tiny, distill: {kind: kd, teacher: {overrides: {bits: 32}}}",
            "t.yaml:4: distill.weight=-1 is not allowed; allowed values: >= 0",
        ),
        ("  bits: [4]\n  bits: [8]", "model: sdt_tiny", "t.yaml:5: duplicate key 'bits' (first at line 4)"),
        (
            "  bits: [4]\n  overrides.bits: [8]",
            "model: sdt_tiny",
            "t.yaml:5: duplicate axis 'overrides.bits'",
        ),
        (
            "  attention: [sdsa, flash]",
            "model: sdt_tiny",
            "attention='flash' is not allowed; allowed values: sdsa",
        ),
    ],
)
def test_spec_errors_are_one_line_and_nothing_runs(tmp_path, axes, base, msg):
    path = tmp_path / "t.yaml"
    path.write_text(f"name: t\nbase: {{{base}}}\naxes:\n{axes}\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert msg in text and "\n" not in text, text
    from bench.cli import main

    assert main(["sweep", "run", str(path), "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()


def test_results_store_and_paper_table(tmp_path, data):
    spec = load_spec(_spec(tmp_path, data, "  bits: [4, 32]", extra="baseline: {bits: 32}"))
    root = tmp_path / "tab"
    run_sweep(spec, LocalPool(2), root, progress=False)
    df = collect(root)
    assert (
        len(df) == 2
        and set(df["status"]) == {"ok"}
        and {"bits", "top1", "energy_mJ", "size_MB"} <= set(df.columns)
    )
    assert df["env.git_sha"].notna().all() or "env.torch" in df.columns
    write_results(df, tmp_path / "r.parquet")
    write_results(df, tmp_path / "r.csv")
    table, best = ablation_table(
        df, ["bits"], ["top1", "size_MB"], baseline={"bits": 32}, order={"bits": [4, 32]}
    )
    assert list(table.index) == ["4", "32"]
    assert table.loc["32", "Δ size_MB"] == 0 and table.loc["4", "Δ size_MB"] < 0  # 4-bit weights are smaller
    assert best["size_MB"] is None  # one seed: no test, so no best (tests/test_tables.py: seeds)
    md = to_markdown(table, best)
    assert "**" not in md and "Δ Size (MB)" in md and "Provenance: git" in md
    tex = to_latex(table, best, caption="bits")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    paths = write_table(table, best, tmp_path / "tables", stem="bits", allow_dirty=True)  # any tree's runs
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex"]
    assert "best_size_MB" in paths[0].read_text().splitlines()[0]
    # energy_hw sees the weight bits (energy_mJ does not); re-measured under another preset without
    # training, from efficiency.json, leaving every record byte as it was
    hw = df.set_index("bits")["energy_hw_mJ"]
    assert hw[4] < hw[32] and set(df["energy_hw_hardware"]) == {"45nm"}
    before = _records(root)
    loihi = collect(root, hardware="loihi")
    assert (
        set(loihi["energy_hw_hardware"]) == {"loihi"} and (loihi["energy_hw_mJ"] != df["energy_hw_mJ"]).all()
    )
    from bench.cli import main

    assert main(["remeasure", str(root), "--hardware", "paper-45nm"]) == 0
    for run in (root / "runs").iterdir():
        paper = json.loads((run / "energy_hw" / "paper-45nm-inference.json").read_text())
        assert paper["energy_hw_mJ"] == pytest.approx(
            json.loads((run / "result.json").read_text())["efficiency"]["energy_mJ"], rel=1e-12
        )
    assert _records(root) == before
    # a run profiled before energy_hw existed (no traffic columns): re-profiled from checkpoints/last.pt on
    # its own evaluation batches, no training; the same weights and batches give the same energy
    from ablations.remeasure import remeasure_sweep

    run = sorted((root / "runs").iterdir())[0]
    eff_path = run / "efficiency.json"
    eff = json.loads(eff_path.read_text())
    want = collect(root, hardware="loihi").set_index("run").loc[run.name, "energy_hw_mJ"]
    eff_path.write_text(json.dumps(dict(eff, layers=[{"layer": r["layer"]} for r in eff["layers"]])))
    paths = remeasure_sweep(spec, root, "loihi")
    again = json.loads((run / "energy_hw" / "loihi-inference.json").read_text())
    assert len(paths) == 2 and again["source"] == "checkpoints/last.pt, re-profiled"
    assert again["energy_hw_mJ"] == pytest.approx(want, rel=1e-9)
    assert (
        collect(root, hardware="loihi").set_index("run").loc[run.name, "energy_hw_mJ"]
        == again["energy_hw_mJ"]
    )
    assert _records(root) == before

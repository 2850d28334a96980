"""The core setup (``scripts/setup.sh`` without ``--dense``) runs the main job: the classification path
never imports the OpenMMLab stack, and a dense command without that stack stops in one line naming the
command that installs it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPENMMLAB = ("mmengine", "mmcv", "mmdet", "mmseg", "pycocotools")
# None in sys.modules is how Python marks a package as not importable: what a core-only setup looks like
HIDE = f"import sys\nfor m in {OPENMMLAB!r}: sys.modules[m] = None\n"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_main_job_and_report_import_no_openmmlab(tmp_path):
    code = f"""
import sys
import pandas as pd
from bench.cli import build_parser
build_parser()  # every subcommand registered: train/test/eval of every task, sweep, table, report
from ablations.spec import load_spec
spec = load_spec("ablations/specs/main_tiny.yaml")
[p.run_config for p in spec.points()]
import ablations.runner, ablations.store, ablations.tables, ablations.report
import tasks.classification.train
from ablations.report import _has_dense
from ablations.report.paper import paper_configs
assert not _has_dense(pd.DataFrame(dict(task=["classification"])))
assert _has_dense(pd.DataFrame(dict(task=["classification", "segmentation"])))
configs = paper_configs(every_paper_model=False, dense=False)
assert set(configs["config"]) == {{"classifier"}}, set(configs["config"])
print(sorted(m for m in sys.modules if m.split(".")[0] in {OPENMMLAB!r}))
"""
    run = _python(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", run.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "run", "ablations/specs/det_ablation_tiny.yaml", "--quiet"],
        ["train", "segmentation", "--model", "qsd_tiny"],
        ["test", "detection", "--run", "nowhere"],
    ],
    ids=["dense-sweep", "train-segmentation", "test-detection"],
)
def test_dense_command_without_the_stack_stops_in_one_line(tmp_path, argv):
    argv = argv + (["--out", str(tmp_path / "out")] if argv[0] != "test" else [])
    code = HIDE + f"from bench.cli import main\nsys.exit(main({argv!r}))\n"
    run = _python(code)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert "`bash scripts/setup.sh --dense`" in lines[0] and "about 14 min" in lines[0], lines[0]
    assert "missing: mmengine, mmcv, mmdet, mmseg" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing started

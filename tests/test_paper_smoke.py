"""The paper-config smoke script on a subset: classification at paper size and Semantic FPN at 512x512
around MobileViT-XXS (the cheapest family), one training iteration and one test image each, on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.registry import model_entry

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_paper_smoke_subset_runs_and_reports_every_column(tmp_path):
    out = tmp_path / "rows.json"
    cmd = [
        sys.executable,
        str(ROOT / "perf" / "paper_smoke.py"),
        "--families",
        "mobilevit",
        "--json",
        str(out),
    ]
    proc = subprocess.run(
        [*cmd, "--only", "classification_224", "semfpn_512"], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["config"]: r for r in json.loads(out.read_text())}
    cls = rows["classification_224"]
    assert cls["status"] == "ok" and cls["input"] == "256x256"  # MobileViT's paper size
    assert cls["params_M"] == pytest.approx(model_entry("mobilevit_xxs").paper["params_m"], rel=0.05)
    assert cls["GMACs"] > 0 and cls["s_per_iter"] > 0 and cls["s_per_test_image"] > 0 and cls["peak_GB"] > 0
    assert "| classification_224 | mobilevit_xxs |" in proc.stdout
    again = subprocess.run([*cmd, "--only", "classification_224"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    kept = {r["config"]: r for r in json.loads(out.read_text())}
    assert kept == rows  # the ok rows of the first run are kept, not rerun (same timings)
    seg = rows["semfpn_512"]
    try:
        import mmseg  # noqa: F401
    except ImportError:
        assert seg["status"] == "skipped" and "semfpn_512 / mobilevit_xxs: skipped" in proc.stderr
        return
    assert seg["status"] == "ok", seg
    assert seg["input"].startswith("512x512") and seg["GMACs"] > cls["GMACs"] and seg["peak_GB"] > 0

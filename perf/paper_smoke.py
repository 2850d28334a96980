"""Every paper config of every task, built around one representative backbone of each family
(``perf/paper_smoke.yaml``), runs one training iteration and one test image at paper resolution, batch 1.

Each (config, backbone) runs in its own process, so its peak memory is its own. Prints a table: config,
backbone, train batch (1; a backbone or config that cannot train on one image, as ``train_batch`` in the
YAML says, on its minimum), input size, parameters, GMACs of one test forward at paper resolution, seconds per
training iteration, seconds per test image, peak memory. ``--device cuda --amp``: a few iterations on one
GPU under bfloat16 autocast, reporting iterations/s and peak GPU memory (the GPU machine may lack the
OpenMMLab stack: dense configs then print one ``skipped`` line and the classification rows run).

Run: python perf/paper_smoke.py [--only classification_224 semfpn_512] [--families qsd vit]
     python perf/paper_smoke.py --device cuda --amp
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TABLE = HERE / "paper_smoke.yaml"


def _timed(fn, device, iters: int) -> float:
    """Seconds per call of ``fn`` (CUDA: synchronised, after one warm-up call; CPU: the one call)."""
    import torch

    if device.type == "cuda":
        fn()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def _classification(backbone: str, device, amp: bool, iters: int, batch: int, opts: dict) -> dict:
    import torch
    import torch.nn.functional as F

    from bench.measure.ops import count_macs
    from bench.registry import create_model, model_entry

    size = model_entry(backbone).paper.get("img_size", 224)
    model = create_model(backbone, num_classes=1000, **opts).to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    macs = count_macs(model.eval(), x[:1])[0]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def step() -> None:
        model.train()
        with autocast:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def test() -> None:
        model.eval()
        with autocast:
            model(x[:1])

    params = sum(p.numel() for p in model.parameters())
    return dict(
        input=f"{size}x{size}", params_M=params / 1e6, GMACs=macs / 1e9, **_run(step, test, device, iters)
    )


def _run(step, test, device, iters: int) -> dict:
    return dict(s_per_iter=_timed(step, device, iters), s_per_test_image=_timed(test, device, iters))


def _dense(spec: dict, backbone: str, device, iters: int, tmp: Path, batch: int, opts: dict) -> dict:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import tasks.openmm  # noqa: F401  (registers the backbone, hooks and model builder)
    from bench.measure.ops import count_macs
    from bench.nn.neurons import reset_neurons
    from tasks.openmm.measure import WholeModel

    task, arch = spec["task"], spec["arch"]
    run = dict(size="paper", iters=1, batch_size=batch, measure=False, overrides=opts)
    if task == "detection":
        from bench.data.coco import write_coco
        from tasks.detection.config import DetConfig
        from tasks.detection.run import build_config, detector_forward

        root = write_coco(tmp / "coco", seed=0, train_images=batch, val_images=1, size=640)
        cfg = DetConfig(model=backbone, detector=arch, **run)
        mm, scope, forward = build_config(cfg, root, tmp / "work"), "mmdet", detector_forward
    else:
        import tasks.segmentation.metric  # noqa: F401
        from bench.data.ade20k import write_ade20k
        from tasks.segmentation.build import mm_config
        from tasks.segmentation.config import SegConfig

        root = write_ade20k(tmp / "ade", seed=0, train_images=batch, val_images=1, size=640)
        cfg = SegConfig(model=backbone, segmentor=arch, **run)
        mm, scope, forward = mm_config(cfg, root, tmp / "work"), "mmseg", None
    init_default_scope(scope)
    from mmengine.registry import MODELS

    model = MODELS.build(mm.model).to(device)
    optim = build_optim_wrapper(model, mm.optim_wrapper)
    train_batch = next(iter(Runner.build_dataloader(mm.train_dataloader)))
    test_batch = next(iter(Runner.build_dataloader(mm.test_dataloader)))

    def step() -> None:
        model.train()
        reset_neurons(model)
        model.train_step(train_batch, optim)

    @torch.no_grad()
    def test() -> None:
        model.eval()
        reset_neurons(model)
        model.test_step(test_batch)

    timing = _run(step, test, device, iters)
    image = model.data_preprocessor(test_batch, False)["inputs"][:1]
    reset_neurons(model)
    whole = WholeModel(model, forward_fn=forward).eval()
    whole.with_auxiliary = False  # inference MACs: UPerNet's auxiliary head trains only
    macs = count_macs(whole, image)[0]
    train_shape = model.data_preprocessor(train_batch, True)["inputs"].shape[-2:]
    params = sum(p.numel() for p in model.parameters())
    size = f"{train_shape[0]}x{train_shape[1]} / {image.shape[-2]}x{image.shape[-1]}"
    return dict(input=size, params_M=params / 1e6, GMACs=macs / 1e9, **timing)


def run_one(config: str, backbone: str, device_name: str, amp: bool, iters: int) -> dict:
    """One (config, backbone): its row of the table (``status`` ok, skipped or failed with the reason)."""
    import torch

    device = torch.device(device_name)
    table = yaml.safe_load(TABLE.read_text())
    minimum = table.get("train_batch") or {}
    batch = max(minimum.get(backbone, 1), minimum.get(config, 1))
    cp = config in (table.get("grad_checkpointing") or {}).get(backbone, [])
    row = dict(config=config, backbone=backbone, train_batch=batch, grad_checkpointing=cp)
    opts = dict(grad_checkpointing=True) if cp else {}
    spec = table["configs"][config]
    try:
        if spec["task"] == "classification":
            row.update(_classification(backbone, device, amp, iters, batch, opts))
        else:
            try:
                import mmdet  # noqa: F401
                import mmseg  # noqa: F401
            except ImportError:
                return dict(row, status="skipped", reason="mmdet/mmseg not installed")
            with tempfile.TemporaryDirectory() as tmp:
                row.update(_dense(spec, backbone, device, iters, Path(tmp), batch, opts))
    except Exception as err:  # one row says why; the table goes on
        return dict(row, status="failed", reason=f"{type(err).__name__}: {err}".splitlines()[0][:160])
    if device.type == "cuda":
        row.update(it_per_s=1.0 / row["s_per_iter"], peak_GB=torch.cuda.max_memory_allocated() / 2**30)
    else:
        row.update(peak_GB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return dict(row, status="ok")


def main(argv: list[str] | None = None) -> int:
    table = yaml.safe_load(TABLE.read_text())
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=list(table["configs"]), help="config names (default: all)")
    p.add_argument("--families", nargs="+", default=list(table["backbones"]), help="families (default: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (GPU)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default: CPU 1, CUDA 5)")
    p.add_argument("--json", default=None, help="save each row here as it ends; a rerun keeps the ok rows")
    p.add_argument("--one", nargs=2, metavar=("CONFIG", "BACKBONE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    iters = args.iters or (5 if args.device.startswith("cuda") else 1)
    if args.one:
        print(json.dumps(run_one(*args.one, args.device, args.amp, iters)))
        return 0
    bad = [c for c in args.only if c not in table["configs"]] + [
        f for f in args.families if f not in table["backbones"]
    ]
    if bad:
        allowed = ", ".join([*table["configs"], *table["backbones"]])
        print(f"{TABLE}: {bad[0]!r} is not a config or family; allowed: {allowed}", file=sys.stderr)
        return 2
    rows = _rows(args, table, iters)
    _print(rows)
    return 0 if all(r["status"] != "failed" for r in rows) else 1


def _rows(args: argparse.Namespace, table: dict, iters: int) -> list[dict]:
    """Every (config, family) row; with ``--json`` each row is saved as it ends, and a rerun keeps ok rows."""
    from bench.io import write_json_atomic

    out = Path(args.json) if args.json else None
    saved = json.loads(out.read_text()) if out and out.exists() else []
    rows = []
    for config in args.only:
        for family in args.families:
            want = (config, table["backbones"][family], args.device, args.amp)
            kept = [r for r in saved if _key(r) == want and r["status"] == "ok"]
            row = kept[0] if kept else dict(_child(*want[:2], args, iters), device=args.device, amp=args.amp)
            rows.append(row)
            if out:
                saved = [r for r in saved if _key(r) != want] + [row]
                write_json_atomic(out, saved)
    return rows


def _key(row: dict) -> tuple:
    return row["config"], row["backbone"], row.get("device", "cpu"), row.get("amp", False)


def _child(config: str, backbone: str, args: argparse.Namespace, iters: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        config,
        backbone,
        "--device",
        args.device,
        "--iters",
        str(iters),
    ]
    root = str(HERE.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd + (["--amp"] if args.amp else []), capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:160]
        if proc.returncode < 0:  # a signal: SIGKILL from the kernel's OOM killer leaves no error line
            why = f"killed by {signal.Signals(-proc.returncode).name} (out of memory?)"
        row = dict(config=config, backbone=backbone, status="failed", reason=why)
    else:
        row = json.loads(lines[-1])
    if row["status"] == "skipped":
        print(f"{config} / {backbone}: skipped ({row['reason']})", file=sys.stderr)
    return row


COLUMNS = (
    "config",
    "backbone",
    "train_batch",
    "grad_checkpointing",
    "input",
    "params_M",
    "GMACs",
    "s_per_iter",
    "s_per_test_image",
    "it_per_s",
)


def _print(rows: list[dict]) -> None:
    shown = [r for r in rows if r["status"] != "skipped"]
    cols = [c for c in (*COLUMNS, "peak_GB", "status", "reason") if any(c in r for r in shown)]
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v if v is not None else "")  # noqa: E731
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in shown:
        print("| " + " | ".join(cell(r.get(c)) for c in cols) + " |")


if __name__ == "__main__":
    sys.exit(main())

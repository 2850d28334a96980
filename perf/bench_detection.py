"""Tiny RetinaNet on CPU, spiking vs ANN backbone side by side: training images/s of one optimizer step and
test latency of one image, as ratios to the ANN detector (interleaved repeats, medians; no assertions).

Run: .venv/bin/python perf/bench_detection.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from _timing import bench_args, interleaved_medians

from tasks.detection import DetConfig

DETECTORS = {
    "ANN (mobilevit_tiny)": dict(model="mobilevit_tiny"),
    "spiking (qsd_tiny T=1)": dict(model="qsd_tiny", overrides=dict(T=1)),
    "spiking + spiking neck/head": dict(model="qsd_tiny", overrides=dict(T=1), neck_head="spiking"),
}


def _step_and_test(cfg: DetConfig, data: Path, work: Path, batch_size: int):
    from mmengine.runner import Runner

    from tasks.detection.run import build_config

    mm = build_config(cfg, data, work)
    mm.log_level = "WARNING"
    runner = Runner.from_cfg(mm)
    model = runner.model
    model.init_weights()
    optim = runner.build_optim_wrapper(mm.optim_wrapper)
    batch = next(iter(runner.build_dataloader(mm.train_dataloader)))
    test_batch = next(iter(runner.build_dataloader(mm.test_dataloader)))
    one = {k: v[:1] for k, v in test_batch.items()}

    def step() -> None:
        model.train()
        model.train_step(batch, optim)

    def test() -> None:
        model.eval()
        with torch.no_grad():
            model.test_step(one)

    return step, test


def main() -> None:
    args = bench_args(__doc__, batch_size=8, img_scale=96, repeats=7)
    from bench.data.coco import write_coco

    with tempfile.TemporaryDirectory() as tmp:
        data = write_coco(Path(tmp) / "coco", seed=0, train_images=16, val_images=4)
        fns = {}
        for i, (name, kw) in enumerate(DETECTORS.items()):
            cfg = DetConfig(data=str(data), img_scale=args.img_scale, batch_size=args.batch_size, **kw)
            step, test = _step_and_test(cfg, data, Path(tmp) / f"w{i}", args.batch_size)
            fns[f"{name} step"], fns[f"{name} test"] = step, test
        t = interleaved_medians(fns, repeats=args.repeats, warmup=2)
    ann = next(iter(DETECTORS))
    print(f"tiny RetinaNet, {args.img_scale} px, batch {args.batch_size}, CPU x{args.threads}:")
    for name in DETECTORS:
        ips = args.batch_size / t[f"{name} step"]
        lat = t[f"{name} test"] * 1e3
        print(
            f"  {name:30s} train {ips:6.1f} img/s ({ips * t[f'{ann} step'] / args.batch_size:4.2f}x ANN)  "
            f"test {lat:6.1f} ms/img ({t[f'{name} test'] / t[f'{ann} test']:4.2f}x ANN)"
        )


if __name__ == "__main__":
    main()

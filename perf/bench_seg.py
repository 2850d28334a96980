"""Tiny Semantic FPN on this CPU: images/s of a training step and test latency, spiking vs ANN backbones,
printed side by side as ratios (interleaved repeats after warm-up, medians).

Run: .venv/bin/python perf/bench_seg.py [--crop 64] [--batch-size 8]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from _timing import bench_args, interleaved_medians

from bench.data.ade20k import write_ade20k


def _setup(model: str, data: Path, work: Path, crop: int, batch_size: int, neck_head: str):
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    import tasks.openmm  # noqa: F401
    from tasks.segmentation.build import mm_config
    from tasks.segmentation.config import SegConfig

    init_default_scope("mmseg")
    cfg = SegConfig(model=model, data=str(data), crop=crop, batch_size=batch_size, neck_head=neck_head)
    mm = mm_config(cfg, data, work)
    net = MODELS.build(mm.model)
    optim = build_optim_wrapper(net, mm.optim_wrapper)
    ds = DATASETS.build(mm.train_dataloader.dataset)
    batch = pseudo_collate([ds[i] for i in range(batch_size)])
    test_batch = pseudo_collate([ds[0]])

    def train_step():
        net.train()
        net.train_step(batch, optim)

    @torch.no_grad()
    def test_step():
        net.eval()
        net.test_step(test_batch)

    return train_step, test_step


def main() -> None:
    args = bench_args(
        __doc__,
        ann="mobile_former_tiny",
        spiking=["qsd_tiny", "sdtv2_tiny"],
        crop=64,
        batch_size=8,
        repeats=7,
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = write_ade20k(Path(tmp) / "ade", train_images=args.batch_size, val_images=2, size=2 * args.crop)
        ann_train, ann_test = _setup(args.ann, data, Path(tmp) / "a", args.crop, args.batch_size, "ann")
        print(f"tiny Semantic FPN, {args.crop} px crops, batch {args.batch_size}, CPU x{args.threads}:")
        for name in args.spiking:
            rows = {}
            for neck_head in ("ann", "spiking"):
                tr, te = _setup(name, data, Path(tmp) / name, args.crop, args.batch_size, neck_head)
                t = interleaved_medians(
                    {"ann_train": ann_train, "snn_train": tr, "ann_test": ann_test, "snn_test": te},
                    repeats=args.repeats,
                )
                rows[neck_head] = t
            for neck_head, t in rows.items():
                ips_ann = args.batch_size / t["ann_train"]
                ips_snn = args.batch_size / t["snn_train"]
                print(
                    f"  {name} (neck/head {neck_head}) vs {args.ann}: "
                    f"train {ips_snn:.1f} vs {ips_ann:.1f} img/s "
                    f"(ratio {ips_snn / ips_ann:.2f}), test latency {t['snn_test'] * 1e3:.1f} vs "
                    f"{t['ann_test'] * 1e3:.1f} ms (ratio {t['snn_test'] / t['ann_test']:.2f})"
                )


if __name__ == "__main__":
    main()

"""Training throughput (images/s) of the tiny models on this CPU, and the share of a step spent in the
teacher when distilling. Measured over one epoch each on the generated 10-class set.

Run: .venv/bin/python perf/bench_train.py
"""

from __future__ import annotations

import json
import tempfile

from _timing import bench_args

from tasks.classification.config import DistillConfig, TrainConfig
from tasks.classification.train import train


def main() -> None:
    models = [
        "sdt_tiny",
        "sdtv2_tiny",
        "qsd_tiny",
        "mobilevit_tiny",
        "efficientformer_tiny",
        "mobile_former_tiny",
    ]
    args = bench_args(__doc__, models=models, batch_size=32)
    print(
        f"training throughput, generated imagenet-10 (32 px), batch {args.batch_size}, CPU x{args.threads}:"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.models):
            cfg = TrainConfig(model=name, epochs=2, batch_size=args.batch_size, measure=False)
            train(cfg, out=f"{tmp}/{i}", progress=False)
            with open(f"{tmp}/{i}/metrics.json") as f:
                speed = json.load(f)[-1]["images_per_s"]
            print(f"  {name:22s} {speed:7.1f} img/s (second epoch)")
        print("distillation, student qsd_tiny (teacher share = teacher forward time / step time):")
        teachers = {
            "kd": ("mobilevit_tiny", {}),
            "qfd": ("sdtv2_tiny", {}),
            "fgd": ("qsd_tiny", dict(neuron="relu", attention="softmax", bits=32)),
        }
        for kind, (teacher, over) in teachers.items():
            cfg = TrainConfig(
                model="qsd_tiny",
                epochs=2,
                batch_size=args.batch_size,
                measure=False,
                distill=DistillConfig(kind=kind, teacher=teacher, teacher_overrides=over),
            )
            train(cfg, out=f"{tmp}/{kind}", progress=False)
            with open(f"{tmp}/{kind}/metrics.json") as f:
                last = json.load(f)[-1]
            print(
                f"  {kind:4s} teacher {teacher:15s} {last['images_per_s']:7.1f} img/s, "
                f"teacher share {100 * last['teacher_time_share']:.1f} %"
            )


if __name__ == "__main__":
    main()

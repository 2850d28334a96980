"""One rank of a sweep point that spans processes: ``python -m torch.distributed.run --standalone
--nproc_per_node N -m ablations.launch TASK RUN_DIR CONFIG_JSON`` (started by ``ablations.runner.run_point``
under the point's lock). SIGTERM, which torchrun passes on when it is stopped, ends the rank as
``KeyboardInterrupt`` (an ``interrupted`` record, written by rank 0)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    """Run this rank's share of the point; 0 when the record is ok."""
    import torch

    from tasks import get_task
    from tasks.determinism import DEFAULT_THREADS

    task, run_dir, config = argv[0], Path(argv[1]), json.loads(argv[2])
    signal.signal(signal.SIGTERM, _raise_interrupt)
    torch.set_num_threads(int(config.get("threads", DEFAULT_THREADS)))
    record = get_task(task).run(config, run_dir, progress=False)
    return 0 if record.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

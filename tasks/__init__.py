"""Task adapters: classification, COCO detection, ADE20K segmentation, each behind ``tasks.api.TaskDef``.

``get_task(name)`` imports a task lazily, so classification never imports the OpenMMLab stack.
"""

from __future__ import annotations

import importlib

from bench.errors import check_choice

TASK_NAMES = ("classification", "detection", "segmentation")


def available_tasks() -> tuple[str, ...]:
    """Task names whose package is present."""
    return tuple(n for n in TASK_NAMES if importlib.util.find_spec(f"tasks.{n}") is not None)


def get_task(name: str):
    """The ``TaskDef`` of task ``name`` (one-line error naming the allowed tasks)."""
    check_choice("task", name, available_tasks())
    return importlib.import_module(f"tasks.{name}").TASK

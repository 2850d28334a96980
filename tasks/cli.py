"""``spikebench train|test|eval <task> ...``: one command per verb, one subcommand per task.

A task adds itself by defining ``register_<verb>(subparsers)`` in ``tasks/<task>/cli.py`` (that module must
not import the OpenMMLab stack at import time, so the CLI starts fast).
"""

from __future__ import annotations

import argparse
import importlib

from tasks import available_tasks

VERBS = {
    "train": "train and evaluate a backbone on a task (resumes an interrupted run)",
    "test": "evaluate a trained run or checkpoint on a task's evaluation split",
    "eval": "evaluate a model (spikebench or official checkpoint) and compare with the paper",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``test`` and ``eval`` with the tasks that implement each."""
    modules = [importlib.import_module(f"tasks.{name}.cli") for name in available_tasks()]
    for verb, help_text in VERBS.items():
        hooks = [getattr(m, f"register_{verb}") for m in modules if hasattr(m, f"register_{verb}")]
        if not hooks:
            continue
        p = sub.add_parser(verb, help=help_text)
        tsub = p.add_subparsers(dest="task", required=True, metavar="TASK")
        for hook in hooks:
            hook(tsub)

"""Command-line options every task shares: backbone overrides, seed and threads (one definition)."""

from __future__ import annotations

import argparse

from tasks.determinism import DEFAULT_THREADS

# backbone options a task passes to ``create_model`` (see README "Models")
BACKBONE_OPTIONS = (
    ("bits", int),
    ("bits_first", int),
    ("bits_head", int),
    ("T", int),
    ("attention", str),
    ("shortcut", str),
    ("neuron", str),
    ("levels", int),
)


def add_backbone_options(p: argparse.ArgumentParser) -> None:
    """``--bits``, ``--bits-first``, ... (each default None: the model's own)."""
    for name, typ in BACKBONE_OPTIONS:
        p.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=typ, default=None, help="backbone option"
        )


def backbone_overrides(args: argparse.Namespace) -> dict:
    """The backbone options given on the command line."""
    return {k: getattr(args, k) for k, _ in BACKBONE_OPTIONS if getattr(args, k, None) is not None}


def add_run_options(p: argparse.ArgumentParser) -> None:
    """``--seed`` and ``--threads`` (both part of a run's config and hash)."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"CPU threads of the run, part of its config and hash (default {DEFAULT_THREADS})",
    )

"""Command-line options of the task commands, generated from the tasks' config dataclasses (a new field is
one line there), plus the backbone overrides every task shares."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from pathlib import Path

# backbone options a task passes to ``create_model`` (see docs/models.md)
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
    p.add_argument(
        "--grad-checkpointing",
        action="store_true",
        default=None,
        help="recompute activations in backward: less training memory, the same numbers",
    )


def backbone_overrides(args: argparse.Namespace) -> dict:
    """The backbone options given on the command line."""
    names = [k for k, _ in BACKBONE_OPTIONS] + ["grad_checkpointing"]
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


# nested distillation fields whose flag is not their own name (the others keep theirs: --teacher, --tau ...)
DISTILL_FLAGS = {"kind": "distill", "weight": "distill-weight", "levels": "distill-levels"}
NOT_FLAGS = ("model", "overrides", "distill", "teacher_overrides")  # given otherwise, or dicts


def _flag_type(hint: object) -> tuple[type, bool]:
    """(argparse type, takes several values) of a dataclass field's type hint."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    first = [a for a in typing.get_args(hint) if a is not type(None)][0] if union else hint
    if typing.get_origin(first) is tuple:
        return typing.get_args(first)[0], True
    return (first if first in (int, float, bool) else str), False


def _add_field(p: argparse.ArgumentParser, f: dataclasses.Field, hint: object, flag: str, dest: str) -> None:
    typ, many = _flag_type(hint)
    default = f.default if f.default is not dataclasses.MISSING else None
    text = f.metadata.get("help", "")
    if typ is bool:
        name, action = (f"--no-{flag}", "store_false") if default else (f"--{flag}", "store_true")
        p.add_argument(name, dest=dest, action=action, default=None, help=text or None)
        return
    shown = list(default) if isinstance(default, tuple) else default
    suffix = "" if default is None else f"default: {shown}"
    p.add_argument(
        f"--{flag}",
        dest=dest,
        type=typ,
        nargs="+" if many else None,
        default=None,
        metavar=flag.upper().replace("-", "_"),
        help=f"{text} ({suffix})" if text and suffix else text or suffix or None,
    )


def add_config_options(p: argparse.ArgumentParser, config_cls: type, distill_cls: type) -> None:
    """One option per field of a task's config dataclass (and its distillation part), help from the fields'
    metadata, defaults the dataclass's own (an option not given leaves the field at its default)."""
    p.add_argument("--model", required=True, help="registered backbone (see `spikebench models`)")
    add_backbone_options(p)
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.name not in NOT_FLAGS:
            _add_field(p, f, hints[f.name], f.name.replace("_", "-"), f.name)
    hints = typing.get_type_hints(distill_cls)
    for f in dataclasses.fields(distill_cls):
        if f.name not in NOT_FLAGS:
            flag = DISTILL_FLAGS.get(f.name, f.name.replace("_", "-"))
            _add_field(p, f, hints[f.name], flag, f"distill__{f.name}")


def config_from_args(args: argparse.Namespace, config_cls: type) -> object:
    """The config dataclass of the options given (fields not given keep their defaults)."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    names = {f.name for f in dataclasses.fields(config_cls)} - set(NOT_FLAGS)
    fields = {k: v for k, v in given.items() if k in names}
    distill = {k.removeprefix("distill__"): v for k, v in given.items() if k.startswith("distill__")}
    for k, v in list(distill.items()):
        if isinstance(v, list):
            distill[k] = tuple(v)
    return config_cls(model=args.model, overrides=backbone_overrides(args), distill=distill, **fields)


def report_run(result: dict, out: Path, summary: tuple[str, ...]) -> None:
    """Rank 0 prints the summary (one JSON line), the run folder, and why the run did not learn, if so."""
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return
    from tasks.health import learning_flags

    print(json.dumps({k: result.get(k) for k in summary if k in result}))
    print(f"run directory: {out}", file=sys.stderr)
    eff = Path(out) / "efficiency.json"
    firing = json.loads(eff.read_text()).get("firing_rates") if eff.exists() else None
    for flag in learning_flags(result, firing):
        print(f"warning: this run did not learn: {flag}", file=sys.stderr)


def add_train_command(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    configs: tuple[type, type],
    start: typing.Callable[[object, argparse.Namespace], tuple[dict, Path]],
    summary: tuple[str, ...],
    out_default: str,
    extra: typing.Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """Add ``name`` under ``spikebench train``: one option per field of ``configs`` (the task's config and
    distillation dataclasses), ``--out``, the task's ``extra`` options; ``start(cfg, args)`` runs it and gives
    (record, run folder), which rank 0 reports."""
    p = sub.add_parser(name, help=help)
    add_config_options(p, *configs)
    p.add_argument("--out", default=None, help=f"run directory (default {out_default})")
    if extra is not None:
        extra(p)

    def command(args: argparse.Namespace) -> int:
        result, out = start(config_from_args(args, configs[0]), args)
        report_run(result, out, summary)
        return 0

    p.set_defaults(func=command)
    return p


def add_workers_option(p: argparse.ArgumentParser) -> None:
    """``--workers``: DataLoader worker processes."""
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")

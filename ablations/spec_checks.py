"""Validation of sweep specs: every check ``load_spec`` makes, each raising a one-line SpecError that names
the file and line of the culprit (``file:line: field=value is not allowed; allowed values: …``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ablations.spec_points import SweepSpec, canonical_field
from ablations.spec_yaml import SpecError, where
from bench.errors import ConfigError, first_unknown
from bench.registry import model_entry
from tasks import available_tasks, get_task

SPEC_KEYS = (
    "name",
    "task",
    "base",
    "axes",
    "mode",
    "exclude",
    "baseline",
    "metrics",
    "executor",
    "seeds",
    "repeats",
    "recipe",
    "hardware",
    "note",
)
LR_RULES = ("blr * global_batch / 256", "absolute")
RECIPE_KEYS = ("source", "gpus", "per_gpu_batch", "global_batch", "lr_rule", "blr")
EXECUTORS = ("local", "submitit", "ray")


def check_top_level(path: Path, lines: dict, raw: object) -> str:
    """The spec is a mapping of known keys with a known task; returns the task."""
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a mapping with keys {', '.join(SPEC_KEYS)}")
    key = first_unknown(raw, SPEC_KEYS)
    if key is not None:
        allowed = ", ".join(SPEC_KEYS)
        raise SpecError(f"{where(path, lines, key)}: unknown key {key!r}; allowed keys: {allowed}")
    task = raw.get("task", "classification")
    if task not in available_tasks():
        raise SpecError(
            f"{where(path, lines, 'task')}: task={task!r} is not allowed; "
            f"allowed values: {', '.join(available_tasks())}"
        )
    return task


def check_base_axes(path: Path, lines: dict, raw: dict, task: str) -> tuple[dict, dict]:
    """The base (a mapping with a model) and the axes (known fields, each once, to non-empty lists)."""
    base = raw.get("base") or {}
    axes = raw.get("axes") or {}
    if not isinstance(base, dict) or "model" not in base:
        raise SpecError(f"{where(path, lines, 'base')}: base must be a mapping with at least 'model'")
    if not isinstance(axes, dict):
        raise SpecError(f"{where(path, lines, 'axes')}: axes must map field names to lists of values")
    canon_seen: dict[str, str] = {}
    for name, values in axes.items():
        at = where(path, lines, name)
        try:
            canon = canonical_field(name, task)
        except ConfigError as err:
            raise SpecError(f"{at}: axes: {err}") from None
        if canon in canon_seen:
            raise SpecError(f"{at}: duplicate axis {name!r} (same field as {canon_seen[canon]!r})")
        canon_seen[canon] = name
        if not isinstance(values, list) or not values:
            raise SpecError(f"{at}: axes.{name} must be a non-empty list of values")
    return base, axes


def check_mode(path: Path, lines: dict, raw: dict, axes: dict) -> str:
    """The spec's mode: grid, or zip over axes of equal length."""
    mode = raw.get("mode", "grid")
    if mode not in ("grid", "zip"):
        raise SpecError(
            f"{where(path, lines, 'mode')}: mode={mode!r} is not allowed; allowed values: grid, zip"
        )
    if mode == "zip" and len({len(v) for v in axes.values()}) > 1:
        raise SpecError(f"{where(path, lines, 'mode')}: mode=zip needs axes of equal length")
    return mode


def check_exclude(path: Path, lines: dict, exclude: list, axes: dict) -> None:
    """Every exclude entry names axes only."""
    for ex in exclude:
        for k in ex:
            if k not in axes:
                raise SpecError(
                    f"{where(path, lines, 'exclude')}: exclude names {k!r}, which is not an axis; "
                    f"allowed: {', '.join(axes)}"
                )


def check_recipe_baseline(spec: SweepSpec, lines: dict) -> None:
    """The recipe (``check_recipe``) and the baseline, which names axes only."""
    if spec.recipe:
        try:
            check_recipe(spec.recipe, spec.base, get_task(spec.task).batch)
        except ConfigError as err:
            raise SpecError(f"{where(spec.path, lines, 'recipe')}: {err}") from None
    for k in spec.baseline:
        if k not in spec.axes:
            raise SpecError(
                f"{where(spec.path, lines, 'baseline')}: baseline names {k!r}, which is not an axis"
            )


def check_points(spec: SweepSpec, lines: dict, validate_models: bool) -> None:
    """At least one point; every point's config is valid, and (``validate_models``) its model builds."""
    points = spec.points()
    if not points:
        raise SpecError(f"{spec.path}: the axes and excludes leave no point to run")
    checked: set[str] = set()
    for p in points:
        culprit = next(iter(p.values), "base")
        try:
            cfg = p.run_config
            key = json.dumps([cfg.model, cfg.overrides], sort_keys=True)
            if validate_models and key not in checked:
                _check_model(cfg)
                checked.add(key)
        except ConfigError as err:
            line_key = _culprit(err, p.values, spec.task, lines) or culprit
            raise SpecError(f"{where(spec.path, lines, line_key)}: {err}") from None


def recipe_lr(recipe: dict) -> float | None:
    """The learning rate a recipe's rule gives (None for ``absolute``: the spec's lr is the official one)."""
    if recipe["lr_rule"] == "absolute":
        return None
    return recipe["blr"] * recipe["global_batch"] / 256


def check_recipe(recipe: dict, base: dict, batch: str = "global") -> None:
    """A paper spec's recipe: global batch = GPUs x per-GPU batch, ``batch_size`` = the global batch (or the
    per-GPU batch where the task's ``batch`` is ``per_gpu``: mmdet/mmseg), lr from its rule."""
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(f"recipe: unknown key {unknown[0]!r}; allowed keys: {', '.join(RECIPE_KEYS)}")
    needed = [k for k in RECIPE_KEYS if k != "blr" and k not in recipe]
    if needed:
        raise ConfigError(f"recipe: {needed[0]} is missing; a recipe names {', '.join(RECIPE_KEYS)}")
    if recipe["lr_rule"] not in LR_RULES:
        raise ConfigError(
            f"recipe: lr_rule={recipe['lr_rule']!r} is not allowed; allowed: {', '.join(LR_RULES)}"
        )
    if recipe["gpus"] * recipe["per_gpu_batch"] != recipe["global_batch"]:
        raise ConfigError(
            f"recipe: global_batch={recipe['global_batch']} is not gpus x per_gpu_batch "
            f"= {recipe['gpus'] * recipe['per_gpu_batch']}"
        )
    want = recipe["global_batch"] if batch == "global" else recipe["per_gpu_batch"]
    if base.get("batch_size") != want:
        raise ConfigError(
            f"recipe: base.batch_size={base.get('batch_size')} is not the "
            f"{batch.replace('_', '-')} batch {want}"
        )
    lr = recipe_lr(recipe)
    if lr is not None and not math.isclose(base.get("lr", math.nan), lr, rel_tol=1e-6):
        raise ConfigError(
            f"recipe: base.lr={base.get('lr')} is not {recipe['lr_rule']} = {lr:.6g}; allowed: {lr:.6g}"
        )


def spec_seeds(raw: dict, path: Path, lines: dict, axes: dict, base: dict) -> list[int] | None:
    """The spec's seeds (``seeds: [..]`` or ``repeats: n`` = seeds 0..n-1), validated; None when neither."""
    if "seeds" in raw and "repeats" in raw:
        raise SpecError(f"{where(path, lines, 'repeats')}: give seeds or repeats, not both")
    if "repeats" in raw:
        n = raw["repeats"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(
                f"{where(path, lines, 'repeats')}: repeats={n!r} is not allowed; "
                "allowed values: integers >= 1"
            )
        seeds = list(range(n))
    elif "seeds" in raw:
        seeds = raw["seeds"]
        if (
            not isinstance(seeds, list)
            or not seeds
            or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds)
            or len(set(seeds)) != len(seeds)
        ):
            raise SpecError(
                f"{where(path, lines, 'seeds')}: seeds={seeds!r} is not allowed; "
                "allowed values: a non-empty list of distinct integers >= 0"
            )
    else:
        return None
    key = "seeds" if "seeds" in raw else "repeats"
    if "seed" in axes or "seed" in base:
        raise SpecError(
            f"{where(path, lines, key)}: {key} and a seed in "
            f"{'axes' if 'seed' in axes else 'base'} name the seed twice; allowed: one of them"
        )
    return list(seeds)


def _culprit(err: ConfigError, values: dict, task: str, lines: dict) -> str | None:
    """The spec key whose line an error of a point's config points at."""
    text = str(err)
    if text.startswith("unknown model"):
        return "model"
    for k in values:
        short = canonical_field(k, task).split(".")[-1]
        if text.startswith(f"{short}=") or f"{k}" in text.split(";")[0]:
            return k
    named = text.split("=", 1)[0].split(".")[-1] if "=" in text.split(" ", 1)[0] else ""
    return named if named in lines else None


def spec_hardware(raw: dict, path: Path, lines: dict) -> str:
    """The spec's ``hardware`` (energy_hw preset name or file), checked by loading it."""
    from bench.measure.hardware_model import load_hardware

    name = raw.get("hardware") or "45nm"
    try:
        load_hardware(str(name))
    except ConfigError as err:
        raise SpecError(f"{where(path, lines, 'hardware')}: {err}") from None
    return str(name)


def check_spec_types(path: Path, lines: dict, raw: dict) -> None:
    """Types of the spec's own keys, and the executor's kind and workers."""
    kinds = dict(name=str, exclude=list, baseline=dict, metrics=list, executor=dict, note=str)
    for key, kind in kinds.items():
        if raw.get(key) is not None and not isinstance(raw[key], kind):
            allowed = {str: "a string", list: "a list", dict: "a mapping"}[kind]
            raise SpecError(
                f"{where(path, lines, key)}: {key}={raw[key]!r} is not allowed; allowed values: {allowed}"
            )
    for ex in raw.get("exclude") or []:
        if not isinstance(ex, dict):
            raise SpecError(
                f"{where(path, lines, 'exclude')}: exclude entry {ex!r}; allowed: mappings of axis: value"
            )
    for m in raw.get("metrics") or []:
        if not isinstance(m, str):
            raise SpecError(f"{where(path, lines, 'metrics')}: metrics entry {m!r}; allowed: metric names")
    executor = raw.get("executor") or {}
    if "kind" in executor and executor["kind"] not in EXECUTORS:
        raise SpecError(
            f"{where(path, lines, 'kind', 'executor')}: executor.kind={executor['kind']!r} is not allowed; "
            f"allowed values: {', '.join(EXECUTORS)}"
        )
    for key, least in (("workers", 1), ("procs_per_point", 1), ("gpus_per_point", 0)):
        value = executor.get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SpecError(
                f"{where(path, lines, key, 'executor')}: executor.{key}={value!r} is not allowed; "
                f"allowed values: integers >= {least}"
            )


def _check_model(cfg) -> None:
    """Build the point's model on the meta device: unknown names and bad options fail here, cheaply."""
    import torch

    model_entry(cfg.model)
    with torch.device("meta"):
        from bench.registry import create_model

        create_model(cfg.model, **cfg.overrides)

"""Sweep specs: a YAML file with a base run and axes, expanded to one resolved config per point.

```yaml
name: qsd-ablation-tiny
task: classification
base: {model: qsd_tiny, data: generated:imagenet-10, epochs: 2, overrides: {bits: 4}}
axes:                      # any field: model options (bits, T, attention, shortcut, neuron, ...),
  bits: [2, 4, 8]          # run fields (epochs, lr, seed, ...), distill.<field> (distill.lambda = weight)
  distill.kind: [none, fgd]
mode: grid                 # grid (all combinations) or zip (the i-th value of every axis)
exclude: [{bits: 2, distill.kind: fgd}]
baseline: {bits: 4, distill.kind: none}
metrics: [top1, energy_mJ, size_MB]
seeds: [0, 1, 2]           # every point once per seed (or repeats: 3 = seeds 0, 1, 2); tables: mean ± std
executor: {kind: local, workers: 1, procs_per_point: 2}   # or gpus_per_point: 8 (a torchrun job per point)
```
Errors are one line: ``file:line: field: what is wrong; allowed values``; nothing runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ablations.spec_points import ALIASES, MODEL_OPTIONS, Point, SweepSpec, canonical_field, task_fields
from ablations.spec_yaml import SpecError, read_spec_yaml, where
from bench.errors import ConfigError
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
)
LR_RULES = ("blr * global_batch / 256", "absolute")
RECIPE_KEYS = ("source", "gpus", "per_gpu_batch", "global_batch", "lr_rule", "blr")
EXECUTORS = ("local", "submitit", "ray")

__all__ = [  # the names other modules import from here (some of them defined in spec_points, spec_yaml)
    "ALIASES",
    "EXECUTORS",
    "LR_RULES",
    "MODEL_OPTIONS",
    "RECIPE_KEYS",
    "SPEC_KEYS",
    "Point",
    "SpecError",
    "SweepSpec",
    "canonical_field",
    "check_recipe",
    "default_metrics",
    "load_spec",
    "recipe_lr",
    "task_fields",
]


def default_metrics(task: str) -> list[str]:
    """A spec's metrics when it names none: the task's two headline metrics, energy and size."""
    return [*get_task(task).metrics[:2], "energy_mJ", "size_MB"]


def load_spec(path: str | Path, validate_models: bool = True) -> SweepSpec:
    """Read and validate a sweep spec; raises SpecError (one line) on anything wrong."""
    path = Path(path)
    raw, lines = read_spec_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a mapping with keys {', '.join(SPEC_KEYS)}")
    for key in raw:
        if key not in SPEC_KEYS:
            raise SpecError(
                f"{where(path, lines, key)}: unknown key {key!r}; allowed keys: {', '.join(SPEC_KEYS)}"
            )
    task = raw.get("task", "classification")
    if task not in available_tasks():
        raise SpecError(
            f"{where(path, lines, 'task')}: task={task!r} is not allowed; "
            f"allowed values: {', '.join(available_tasks())}"
        )
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
    mode = raw.get("mode", "grid")
    if mode not in ("grid", "zip"):
        raise SpecError(
            f"{where(path, lines, 'mode')}: mode={mode!r} is not allowed; allowed values: grid, zip"
        )
    if mode == "zip" and len({len(v) for v in axes.values()}) > 1:
        raise SpecError(f"{where(path, lines, 'mode')}: mode=zip needs axes of equal length")
    _check_spec_types(path, lines, raw)
    exclude = raw.get("exclude") or []
    for ex in exclude:
        for k in ex:
            if k not in axes:
                raise SpecError(
                    f"{where(path, lines, 'exclude')}: exclude names {k!r}, which is not an axis; "
                    f"allowed: {', '.join(axes)}"
                )
    seeds = _seeds(raw, path, lines, axes, base)
    spec = SweepSpec(
        path,
        raw.get("name", path.stem),
        task,
        base,
        axes,
        mode,
        exclude,
        raw.get("baseline") or {},
        raw.get("metrics") or default_metrics(task),
        raw.get("executor") or {},
        seeds,
        raw.get("recipe") or {},
        _hardware(raw, path, lines),
    )
    if spec.recipe:
        try:
            check_recipe(spec.recipe, spec.base, get_task(task).batch)
        except ConfigError as err:
            raise SpecError(f"{where(path, lines, 'recipe')}: {err}") from None
    for k in spec.baseline:
        if k not in axes:
            raise SpecError(f"{where(path, lines, 'baseline')}: baseline names {k!r}, which is not an axis")
    points = spec.points()
    if not points:
        raise SpecError(f"{path}: the axes and excludes leave no point to run")
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
            line_key = _culprit(err, p.values, task, lines) or culprit
            raise SpecError(f"{where(path, lines, line_key)}: {err}") from None
    return spec


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


def _seeds(raw: dict, path: Path, lines: dict, axes: dict, base: dict) -> list[int] | None:
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


def _hardware(raw: dict, path: Path, lines: dict) -> str:
    """The spec's ``hardware`` (energy_hw preset name or file), checked by loading it."""
    from bench.measure.hardware_model import load_hardware

    name = raw.get("hardware") or "45nm"
    try:
        load_hardware(str(name))
    except ConfigError as err:
        raise SpecError(f"{where(path, lines, 'hardware')}: {err}") from None
    return str(name)


def _check_spec_types(path: Path, lines: dict, raw: dict) -> None:
    """Types of the spec's own keys, and the executor's kind and workers."""
    kinds = dict(name=str, exclude=list, baseline=dict, metrics=list, executor=dict)
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

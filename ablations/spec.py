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

``load_spec`` reads the file with ``spec_yaml`` (the loader that keeps every key's line), checks it with
``spec_checks`` and expands the axes into points with ``spec_points``; this module re-exports their names.
"""

from __future__ import annotations

from pathlib import Path

from ablations.spec_checks import (
    EXECUTORS,
    LR_RULES,
    RECIPE_KEYS,
    SPEC_KEYS,
    check_base_axes,
    check_exclude,
    check_mode,
    check_points,
    check_recipe,
    check_recipe_baseline,
    check_spec_types,
    check_top_level,
    recipe_lr,
    spec_hardware,
    spec_seeds,
)
from ablations.spec_points import ALIASES, MODEL_OPTIONS, Point, SweepSpec, canonical_field, task_fields
from ablations.spec_yaml import SpecError, read_spec_yaml
from tasks import get_task

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
    task = check_top_level(path, lines, raw)
    base, axes = check_base_axes(path, lines, raw, task)
    mode = check_mode(path, lines, raw, axes)
    check_spec_types(path, lines, raw)
    exclude = raw.get("exclude") or []
    check_exclude(path, lines, exclude, axes)
    seeds = spec_seeds(raw, path, lines, axes, base)
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
        spec_hardware(raw, path, lines),
        " ".join(str(raw.get("note") or "").split()),
    )
    check_recipe_baseline(spec, lines)
    check_points(spec, lines, validate_models)
    return spec

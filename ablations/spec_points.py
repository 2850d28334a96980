"""Sweep points: the config field an axis names (``bits`` -> ``overrides.bits``), and the expansion of a
spec's axes (grid or zip, excludes removed, then once per seed) into one resolved run config per point."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import ConfigError
from tasks import get_task

MODEL_OPTIONS = (
    "bits",
    "bits_first",
    "bits_head",
    "T",
    "attention",
    "shortcut",
    "neuron",
    "levels",
    "rectify",
)
ALIASES = {"distill.lambda": "distill.weight"}


def task_fields(task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The run fields and the distillation fields of ``task``'s config."""
    t = get_task(task)
    run = tuple(f.name for f in dataclasses.fields(t.config_cls) if f.name not in ("overrides", "distill"))
    return run, tuple(f.name for f in dataclasses.fields(t.distill_cls))


def canonical_field(name: str, task: str = "classification") -> str:
    """The config path of an axis or base field (``bits`` -> ``overrides.bits``)."""
    run_fields, distill_fields = task_fields(task)
    name = ALIASES.get(name, name)
    if name in MODEL_OPTIONS:
        return f"overrides.{name}"
    if name.startswith("overrides.") and name.split(".", 1)[1] in MODEL_OPTIONS:
        return name
    if name.startswith("distill.") and name.split(".", 1)[1] in distill_fields:
        return name
    if name in run_fields:
        return name
    allowed = sorted(
        MODEL_OPTIONS + run_fields + tuple(f"distill.{f}" for f in distill_fields) + ("distill.lambda",)
    )
    raise ConfigError(f"unknown field {name!r}; allowed fields: {', '.join(allowed)}")


def _set(config: dict, path: str, value: object) -> None:
    head, _, rest = path.partition(".")
    if rest:
        config.setdefault(head, {})
        _set(config[head], rest, value)
    else:
        config[head] = value


@dataclass
class Point:
    """One point of a sweep: its axis values and its resolved run config."""

    values: dict
    config: dict
    task: str = "classification"

    @property
    def run_config(self):
        """The task's validated config object of this point."""
        return get_task(self.task).config_from_dict(copy.deepcopy(self.config))

    @property
    def digest(self) -> str:
        return self.run_config.digest()

    @property
    def name(self) -> str:
        return f"{self.config['model']}-{self.digest}"


@dataclass
class SweepSpec:
    """A validated sweep spec."""

    path: Path
    name: str
    task: str
    base: dict
    axes: dict
    mode: str = "grid"
    exclude: list = field(default_factory=list)
    baseline: dict = field(default_factory=dict)
    metrics: list = field(default_factory=lambda: ["top1", "top5", "energy_mJ", "size_MB"])
    executor: dict = field(default_factory=dict)
    seeds: list[int] | None = None  # None: one run per point, the base (or default) seed
    recipe: dict = field(default_factory=dict)  # the official recipe a paper spec follows (batch, lr rule)
    # energy_hw preset the sweep's records and tables report; a measurement option, never in a point's config
    hardware: str = "45nm"
    # what the sweep's table shows, or why its axis shows nothing, in words: printed under the table
    note: str = ""

    def points(self) -> list[Point]:
        """The resolved points, in axis order (then seed order), excluded ones removed."""
        names = list(self.axes)
        combos = (
            zip(*self.axes.values(), strict=True)
            if self.mode == "zip"
            else itertools.product(*self.axes.values())
        )
        out = []
        for combo in combos:
            values = dict(zip(names, combo, strict=True))
            if any(all(values.get(k) == v for k, v in ex.items()) for ex in self.exclude):
                continue
            for seed in self.seeds if self.seeds is not None else [None]:
                config = copy.deepcopy(self.base)
                for k, v in values.items():
                    _set(config, canonical_field(k, self.task), v)
                seeded = values if seed is None else dict(values, seed=seed)
                if seed is not None:
                    config["seed"] = seed
                out.append(Point(seeded, config, self.task))
        return out

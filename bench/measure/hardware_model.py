"""Hardware descriptions for ``energy_hw``: presets in ``bench/measure/hardware/*.yaml`` or a user's file.

A description names which terms it counts (compute, weight_memory, activation_memory, neuron_state), the
arithmetic energies at table widths, the memory levels (capacity, energy per 64-bit access), the widths of
pixels, float layers and membrane potentials, and optional per-event energies (``mac``, ``sop``,
``neuron_update``, ``neuron_update_active``, ``spike``) that replace the width-based cost of that event and
cover everything it does (a neuromorphic SynOp includes its weight read). ``base: NAME`` inherits another
description and overrides what differs. Every constant carries its ``source``.

Widths between table points: additions linear in bits, multiplications linear in the product of the two
operand widths (about quadratic in bits); below the smallest point and above the largest, proportional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.errors import ConfigError, first_unknown

PRESET_DIR = Path(__file__).with_name("hardware")
TERMS = ("compute", "weight_memory", "activation_memory", "neuron_state")
EVENTS = ("mac", "sop", "neuron_update", "neuron_update_active", "spike")
ARITHMETIC = ("int_add", "int_mult", "fp_add", "fp_mult")
WIDTHS = ("input_bits", "float_bits", "membrane_bits")
KEYS = ("name", "description", "base", "terms", "events", "arithmetic", "memory", "widths", "neuron")
INTERPOLATION = (
    "adds linear in bits between table widths, multiplies linear in b_w x b_a (about quadratic in bits); "
    "proportional below the smallest and above the largest table width"
)


@dataclass(frozen=True)
class MemoryLevel:
    """One memory level: capacity in bytes (None = unbounded) and energy per bit accessed."""

    level: str
    bytes: float | None
    pj_per_bit: float


@dataclass(frozen=True)
class Hardware:
    """A loaded hardware description (see the module docstring)."""

    name: str
    path: str
    description: str
    terms: tuple[str, ...]
    events: dict[str, float] = field(default_factory=dict)
    arithmetic: dict[str, dict[int, float]] = field(default_factory=dict)
    memory: tuple[MemoryLevel, ...] = ()
    widths: dict[str, int] = field(default_factory=dict)
    update_adds: int = 0
    sources: dict[str, str] = field(default_factory=dict)

    def counts(self, term: str) -> bool:
        """Whether this description charges ``term``."""
        return term in self.terms

    def add_pj(self, bits: float, floating: bool = False) -> float:
        """Energy of one addition at ``bits`` (integer, or float at a table width)."""
        table = self.arithmetic["fp_add" if floating else "int_add"]
        return _table_value(table, bits, bits, floating, "fp_add")

    def mult_pj(self, bits_a: float, bits_b: float, floating: bool = False) -> float:
        """Energy of one ``bits_a`` x ``bits_b`` multiplication (float: at the table width ``bits_a``)."""
        table = self.arithmetic["fp_mult" if floating else "int_mult"]
        if floating:
            return _table_value(table, bits_a, bits_a, True, "fp_mult")
        squares = {w * w: v for w, v in table.items()}
        return _table_value(squares, bits_a * bits_b, bits_a * bits_b, False, "int_mult")

    def place(self, nbytes: float) -> MemoryLevel:
        """The smallest memory level holding ``nbytes``."""
        for m in self.memory:
            if m.bytes is None or nbytes <= m.bytes:
                return m
        return self.memory[-1]

    def conventions(self) -> dict:
        """What a record keeps of this description."""
        return dict(
            hardware=self.name,
            hardware_file=self.path,
            terms=list(self.terms),
            events_pj=dict(self.events),
            widths=dict(self.widths),
            memory=[dict(level=m.level, bytes=m.bytes, pj_per_bit=m.pj_per_bit) for m in self.memory],
            interpolation=INTERPOLATION,
            sources=dict(self.sources),
        )


def _table_value(table: dict, x: float, shown: float, exact: bool, name: str) -> float:
    if x in table:
        return float(table[x])
    if exact:
        raise ConfigError(
            f"{name} width={shown!r} is not in the hardware table; allowed values: {sorted(table)}"
        )
    pts = sorted(table)
    if x <= pts[0] or x >= pts[-1]:
        edge = pts[0] if x <= pts[0] else pts[-1]
        return table[edge] * x / edge
    hi = next(p for p in pts if p > x)
    lo = max(p for p in pts if p < x)
    return table[lo] + (table[hi] - table[lo]) * (x - lo) / (hi - lo)


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read(name_or_path: str) -> tuple[dict, Path]:
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(
                f"hardware={name_or_path!r} is not allowed; allowed values: {', '.join(preset_names())} "
                "or the path of a .yaml file"
            )
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the file must be a mapping; allowed keys: {', '.join(KEYS)}")
    bad = sorted(set(raw) - set(KEYS))
    if bad:
        raise ConfigError(f"{path}: field {bad[0]!r} is not allowed; allowed values: {', '.join(KEYS)}")
    return raw, path


def _merged(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict, Path]:
    raw, path = _read(name_or_path)
    base = raw.get("base")
    if base is None:
        return raw, path
    if base in seen:
        raise ConfigError(f"{path}: field 'base'={base!r} makes a cycle; allowed values: other presets")
    parent, _ = _merged(str(base), (*seen, str(base)))
    merged = dict(parent)
    for key, value in raw.items():
        both = isinstance(value, dict) and isinstance(parent.get(key), dict)
        merged[key] = {**parent[key], **value} if both else value
    return merged, path


def _number(path: Path, fld: str, value: object, allowed: str = "numbers >= 0") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
        raise ConfigError(f"{path}: field {fld}={value!r} is not allowed; allowed values: {allowed}")
    return float(value)


def _constant(path: Path, fld: str, entry: object, key: str, sources: dict) -> object:
    if not isinstance(entry, dict) or key not in entry or "source" not in entry:
        raise ConfigError(
            f"{path}: field {fld}={entry!r} is not allowed; allowed values: "
            f"a mapping with '{key}' and 'source'"
        )
    sources[fld] = str(entry["source"])
    return entry[key]


def _choices(path: Path, fld: str, mapping: object, allowed: tuple[str, ...]) -> dict:
    mapping = mapping or {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: field {fld}={mapping!r} is not allowed; allowed values: a mapping")
    key = first_unknown(mapping, allowed)
    if key is not None:
        raise ConfigError(f"{path}: field {fld}.{key} is not allowed; allowed values: {', '.join(allowed)}")
    return mapping


def _arithmetic(path: Path, raw: object, sources: dict) -> dict[str, dict[int, float]]:
    out = {}
    for name, entry in _choices(path, "arithmetic", raw, ARITHMETIC).items():
        table = _constant(path, f"arithmetic.{name}", entry, "pj", sources)
        if not isinstance(table, dict) or not table:
            raise ConfigError(
                f"{path}: field arithmetic.{name}.pj={table!r} is not allowed; allowed values: "
                "a mapping of widths (bits) to pJ"
            )
        widths = [int(_number(path, f"arithmetic.{name}.pj", w, "widths (bits) >= 1")) for w in table]
        values = [
            _number(path, f"arithmetic.{name}.pj.{w}", v) for w, v in zip(widths, table.values(), strict=True)
        ]
        out[name] = dict(zip(widths, values, strict=True))
    return out


def _memory(path: Path, raw: object, sources: dict) -> tuple[MemoryLevel, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: field memory={raw!r} is not allowed; allowed values: a list of levels")
    levels = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not {"level", "bytes", "pj_per_64b", "source"} <= set(entry):
            raise ConfigError(
                f"{path}: field memory[{i}]={entry!r} is not allowed; allowed values: a mapping with "
                "level, bytes (null = unbounded), pj_per_64b, source"
            )
        size = entry["bytes"]
        size = None if size is None else _number(path, f"memory[{i}].bytes", size)
        pj = _number(path, f"memory[{i}].pj_per_64b", entry["pj_per_64b"])
        sources[f"memory.{entry['level']}"] = str(entry["source"])
        levels.append(MemoryLevel(str(entry["level"]), size, pj / 64))
    if levels and levels[-1].bytes is not None:
        raise ConfigError(f"{path}: field memory[-1].bytes is not allowed; allowed values: null (unbounded)")
    return tuple(levels)


def load_hardware(name_or_path: str) -> Hardware:
    """A preset by name (``paper-45nm``, ``45nm``, ``loihi``) or a description file by path."""
    raw, path = _merged(name_or_path)
    sources: dict[str, str] = {}
    terms = raw.get("terms") or []
    if not isinstance(terms, list) or not terms or any(t not in TERMS for t in terms):
        raise ConfigError(f"{path}: field terms={terms!r} is not allowed; allowed values: {', '.join(TERMS)}")
    events = {
        k: _number(path, f"events.{k}", _constant(path, f"events.{k}", v, "pj", sources))
        for k, v in _choices(path, "events", raw.get("events"), EVENTS).items()
    }
    widths = {
        k: int(_number(path, f"widths.{k}", _constant(path, f"widths.{k}", v, "value", sources), "bits >= 1"))
        for k, v in _choices(path, "widths", raw.get("widths"), WIDTHS).items()
    }
    neuron = _choices(path, "neuron", raw.get("neuron"), ("update_adds",))
    adds = neuron.get("update_adds")
    adds = (
        0
        if adds is None
        else int(
            _number(path, "neuron.update_adds", _constant(path, "neuron.update_adds", adds, "value", sources))
        )
    )
    hw = Hardware(
        name=str(raw.get("name") or path.stem),
        path=str(path),
        description=str(raw.get("description", "")),
        terms=tuple(terms),
        events=events,
        arithmetic=_arithmetic(path, raw.get("arithmetic"), sources),
        memory=_memory(path, raw.get("memory"), sources),
        widths=widths,
        update_adds=adds,
        sources=sources,
    )
    _check_complete(hw, path)
    return hw


def _check_complete(hw: Hardware, path: Path) -> None:
    """Width-based costs need their tables: say which field is missing."""
    needs = []
    if hw.counts("compute") and not {"mac", "sop"} <= set(hw.events):
        needs += [f"arithmetic.{a}" for a in ARITHMETIC if a not in hw.arithmetic]
        needs += [f"widths.{w}" for w in ("input_bits", "float_bits") if w not in hw.widths]
    memory_terms = ("weight_memory", "activation_memory", "neuron_state")
    if any(hw.counts(t) for t in memory_terms) and not hw.memory:
        needs.append("memory")
    if hw.counts("neuron_state") and "neuron_update" not in hw.events:
        needs += [f for f in ("widths.membrane_bits",) if "membrane_bits" not in hw.widths]
        needs += [f"arithmetic.{a}" for a in ("int_add", "fp_add") if a not in hw.arithmetic]
    if needs:
        raise ConfigError(
            f"{path}: field {needs[0]} is missing; allowed values: see bench/measure/hardware/45nm.yaml"
        )

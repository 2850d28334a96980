"""Re-measure ``energy_hw`` of finished runs under another hardware description, without the model.

A run's ``efficiency.json`` (the profile record) keeps every layer's operation counts, operand traffic
and weight bits and every neuron layer's firing rates, so ``energy_hw`` under another preset or reuse
assumption is recomputed from it alone: nothing is trained or run, and no record field is rewritten (the
result goes to ``energy_hw/<preset>-<reuse>.json`` beside it).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import ConfigError
from bench.io import write_json_atomic
from bench.measure.energy_hw import energy_hw
from bench.measure.hardware_model import Hardware, load_hardware

NEEDED = ("in_planes", "spikes_in", "out_elems", "params", "bits_w")


def energy_hw_of_record(
    record: dict, hardware: str | Hardware, reuse: str = "inference", real_bits: int | None = None
) -> dict:
    """``energy_hw`` of a profile record (``profile_model``'s dict or ``efficiency.json``); ``real_bits``:
    width of real activations other than pixels (None: float)."""
    hw = hardware if isinstance(hardware, Hardware) else load_hardware(hardware)
    layers = record.get("layers")
    if not isinstance(layers, list) or any(k not in row for row in layers for k in NEEDED):
        raise ConfigError(
            "efficiency record: field layers lacks the traffic columns of energy_hw "
            f"({', '.join(NEEDED)}); allowed values: records profiled by this version (re-profile the run)"
        )
    rates = record.get("firing_rates")
    rates = rates if isinstance(rates, list) else None
    outside = (record.get("MAC_ops_G") or 0.0) * 1e9 - sum(r["mac_ops"] for r in layers)
    outside = outside if abs(outside) > 1e-6 * max(record.get("MACs_G", 0.0) * 1e9, 1.0) else 0.0
    totals = dict(
        mac_ops=record["MAC_ops_G"] * 1e9, sops=(record.get("SOPs_G") or 0.0) * 1e9, outside=outside
    )
    return energy_hw(
        layers,
        rates,
        hw,
        images=1 if rates is None else record.get("images", 1),
        T=record.get("T") or 1,
        bits_w=record.get("bits_w", 32),
        totals=totals,
        reuse=reuse,
        real_bits=real_bits,
    )


def remeasure_runs(root: str | Path, hardware: str, reuse: str = "inference") -> list[Path]:
    """Write ``energy_hw/<preset>-<reuse>.json`` beside every ``efficiency.json`` under ``root``."""
    hw = load_hardware(hardware)
    files = sorted(Path(root).rglob("efficiency.json"))
    if not files:
        raise ConfigError(f"{root}: no efficiency.json under it; allowed values: a run or sweep folder")
    written = []
    for f in files:
        record = json.loads(f.read_text())
        e = energy_hw_of_record(record, hw, reuse)
        out = f.parent / "energy_hw" / f"{hw.name}-{reuse}.json"
        keep = ("energy_hw_mJ", "energy_hw_breakdown_mJ", "conventions", "layers", "neurons")
        write_json_atomic(out, {k: e[k] for k in keep})
        written.append(out)
    return written

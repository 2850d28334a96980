"""The quantized-ANN twin of a spiking model, and ``energy_hw`` against the firing rate.

The twin (the fair baseline of Yan et al., arXiv 2409.08290): the same architecture and weight bits, run
once (no time steps) with stateless ReLU/quantized activations of ceil(log2(T x D + 1)) bits, which carry
the same information as T steps of D-level spikes. Derived analytically from the spiking model's profile
record, layer by layer: every synaptic layer fed by spikes becomes a dense real-input layer with 1/T of the
spiking layer's MACs, its input at the twin's activation width; no neuron state; the pixel layer unchanged.

The spiking curve scales every measured rate by one factor (spike counts, SOPs, spike traffic and the
neuron updates that fire scale with it; the network's shape, its weights and the rates' pattern across
layers stay as measured): the crossover is the mean firing rate at which the two energies are equal.
"""

from __future__ import annotations

import math

from bench.measure.hardware_model import Hardware, load_hardware
from bench.measure.remeasure import energy_hw_of_record


def twin_bits(T: int, levels: int) -> int:
    """Activation bits of the twin: ceil(log2(T x D + 1))."""
    return math.ceil(math.log2(T * levels + 1))


def _levels(record: dict) -> int:
    rates = record.get("firing_rates")
    return max((r["levels"] for r in rates), default=1) if isinstance(rates, list) else 1


def twin_record(record: dict) -> tuple[dict, int]:
    """The twin's profile record (per-layer counts of one dense pass) and its activation bits."""
    T = record.get("T") or 1
    bits = twin_bits(T, _levels(record))
    layers = []
    for r in record["layers"]:
        row = dict(r)
        if not r["first_layer"]:
            elems = r["in_planes"] / max(r.get("in_levels") or 1, 1)
            row.update(
                macs=r["macs"] / T,
                mac_ops=r["macs"] / T,
                sops=0.0,
                in_real=(r["in_real"] + elems) / T,
                in_planes=0.0,
                spikes_in=0.0,
                in_levels=0,
                out_elems=r["out_elems"] / T,
            )
        layers.append(row)
    macs = sum(r["mac_ops"] for r in layers)
    twin = dict(record, layers=layers, firing_rates=None, T=1, MAC_ops_G=macs / 1e9, SOPs_G=0.0)
    return twin, bits


def scaled_record(record: dict, factor: float) -> dict:
    """The record with every firing rate (and what follows from it) multiplied by ``factor``."""
    layers = [
        dict(r, sops=r["sops"] * factor, spikes_in=r["spikes_in"] * factor) if r["in_planes"] else dict(r)
        for r in record["layers"]
    ]
    rates = [dict(r, fr_per_t=[f * factor for f in r["fr_per_t"]]) for r in record["firing_rates"]]
    sops = sum(r["sops"] for r in layers) - sum(r["sops"] for r in record["layers"])
    return dict(record, layers=layers, firing_rates=rates, SOPs_G=(record["SOPs_G"] or 0.0) + sops / 1e9)


def rate_sweep(record: dict, hardware: str | Hardware, reuse: str = "inference", points: int = 61) -> dict:
    """energy_hw of the spiking model over mean firing rates (0 .. 2x measured, at least 1), of its twin,
    and the crossover rate (None when the spiking model costs more, or less, at every rate)."""
    hw = hardware if isinstance(hardware, Hardware) else load_hardware(hardware)
    measured = record["fr_mean"]
    top = max(2 * measured, 1.0)
    rates = [top * i / (points - 1) for i in range(points)]
    snn = [energy_hw_of_record(scaled_record(record, r / measured), hw, reuse)["energy_hw_mJ"] for r in rates]
    twin, bits = twin_record(record)
    ann = energy_hw_of_record(twin, hw, reuse, real_bits=bits)["energy_hw_mJ"]
    crossover = None
    pairs = list(zip(rates, snn, strict=True))
    for (r0, e0), (r1, e1) in zip(pairs, pairs[1:], strict=False):
        if (e0 - ann) * (e1 - ann) <= 0 and e1 != e0:
            crossover = r0 + (ann - e0) * (r1 - r0) / (e1 - e0)
            break
    return dict(
        hardware=hw.name,
        rates=rates,
        energy_hw_mJ=snn,
        twin_energy_hw_mJ=ann,
        twin_activation_bits=bits,
        crossover_rate=crossover,
        measured_rate=measured,
        measured_energy_hw_mJ=energy_hw_of_record(record, hw, reuse)["energy_hw_mJ"],
    )

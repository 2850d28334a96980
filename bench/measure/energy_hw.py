"""Hardware-aware energy (``energy_hw``): arithmetic at the operands' widths, data movement, neuron state.

Computed per layer from what the profiler measured (``SynapticOps.table()`` rows, ``FiringRateMonitor``
rows) and a ``Hardware`` description (``hardware_model``). Per image, in pJ:

- compute: real-input MAC = b_w x b_a multiply + add at the accumulator width b_w + b_a + ceil(log2 fan-in)
  (float when either operand is float: fp mult + fp add at ``float_bits``); spike-input SOP = add of a b_w-bit
  weight into an accumulator of b_w + ceil(log2(fan-in x D)) bits (fp add for fp32 weights); attention
  matmuls between spike counts: counter adds of ceil(log2(fan-in x D + 1)) bits; with a real operand, adds
  at its width. Ops outside the hooked modules: float MACs. A per-event energy (``mac``/``sop``) replaces
  the width-based cost.
- weight memory: params x b_w bits read once per inference, once per time step (x T), or once per use
  (x MAC ops + SOPs / params), from the smallest level holding the layer's weights.
- activation memory: real inputs at their width; spikes as a bitmap (1 bit per neuron per (virtual) step)
  or as address events (ceil(log2 map size) bits per spike), the cheaper; outputs written at the
  accumulator width (float width for float layers). Per-event ``spike`` energy replaces spike traffic.
- neuron state: every neuron's membrane read and written (``membrane_bits`` each) and updated
  (``update_adds`` adds) at every step and every IE-LIF virtual step: neurons x T x D updates; a per-event
  ``neuron_update`` energy (``neuron_update_active`` for updates that fire) replaces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.errors import check_choice
from bench.measure.hardware_model import Hardware

REUSE = ("inference", "step", "use")
TERMS = ("compute", "weight_memory", "activation_memory", "neuron_state")
CONVENTIONS = {
    "energy_hw": "per image: compute + weight memory + activation memory + neuron state (pJ -> mJ)",
    "spike_coding": "spikes moved as a bitmap (1 bit per neuron per step and per IE-LIF virtual step) or as "
    "address events (ceil(log2 input-map size) bits per spike), whichever is cheaper per layer",
    "placement": "each tensor (a layer's weights, one input or output activation of one image over all "
    "steps, a neuron layer's membranes) lives in the smallest memory level that holds it",
    "not_counted": "BN (folded), residual additions, pooling, softmax and the activations of ops outside "
    "Conv/Linear/MatMul/MaskSum modules; biases",
    "membrane": "membrane_bits for quantized models, float_bits for fp32-weight models",
}


@dataclass(frozen=True)
class Widths:
    """Operand widths of one measurement: pixels, other real activations (None = float), membrane."""

    pixels: int
    real: int | None
    membrane: int
    floating: int


def _level(hw: Hardware, nbits: float) -> tuple[str, float]:
    m = hw.place(nbits / 8)
    return m.level, m.pj_per_bit


def _log2(x: float) -> int:
    return math.ceil(math.log2(max(x, 1.0)))


def _attention(row: dict, hw: Hardware, w: Widths, fan_in: float, levels: int) -> tuple[float, int]:
    """Attention matmuls: spike-count products are counter adds; real operands at their width."""
    real, fw = w.real, w.floating
    if row["in_real"] == 0:
        acc = _log2(fan_in * levels + 1)
    else:
        acc = fw if real is None else min(real + _log2(fan_in), 32)
    e_sop = hw.events.get("sop")
    if e_sop is None:
        e_sop = hw.add_pj(acc, floating=row["in_real"] > 0 and real is None)
    e_mac = hw.events.get("mac")
    if e_mac is None and row["mac_ops"]:
        floating = real is None
        bits = fw if floating else real
        e_mac = hw.mult_pj(bits, bits, floating) + hw.add_pj(
            fw if floating else 2 * real + _log2(fan_in), floating
        )
    return row["mac_ops"] * (e_mac or 0.0) + row["sops"] * e_sop, acc


def _compute(row: dict, hw: Hardware, w: Widths) -> tuple[float, int]:
    """Compute energy (pJ) of one layer and its output (accumulator) width."""
    fan_in = row["macs"] / row["out_elems"] if row["out_elems"] else 1.0
    levels = max(row.get("in_levels") or 1, 1)
    fw = w.floating
    if row["attention"]:
        return _attention(row, hw, w, fan_in, levels)
    bw = row["bits_w"]
    ba = w.pixels if row["first_layer"] else w.real
    mac_float = bw >= 32 or ba is None or ba >= 32
    if "mac" in hw.events:
        e_mac = hw.events["mac"]
    elif mac_float:
        e_mac = hw.mult_pj(fw, fw, True) + hw.add_pj(fw, True)
    else:
        e_mac = hw.mult_pj(bw, ba) + hw.add_pj(bw + ba + _log2(fan_in))
    if "sop" in hw.events:
        e_sop = hw.events["sop"]
    else:
        e_sop = hw.add_pj(fw, True) if bw >= 32 else hw.add_pj(bw + _log2(fan_in * levels))
    if bw >= 32 or (row["mac_ops"] and mac_float):
        acc = fw
    else:
        acc = (
            min(bw + (ba or 0) + _log2(fan_in * levels), 32)
            if row["mac_ops"]
            else bw + _log2(fan_in * levels)
        )
    return row["mac_ops"] * e_mac + row["sops"] * e_sop, min(acc, 32)


def _covered(row: dict, hw: Hardware) -> bool:
    """A per-event energy covers the layer's memory traffic (e.g. a neuromorphic SynOp reads its weight)."""
    spiking = row["sops"] > 0 and row["mac_ops"] == 0
    return (spiking and "sop" in hw.events) or (not spiking and row["mac_ops"] > 0 and "mac" in hw.events)


def _weight_memory(row: dict, hw: Hardware, reuse: str, T: int) -> tuple[float, str | None]:
    if row["attention"] or not row["params"] or _covered(row, hw):
        return 0.0, None
    bits = row["params"] * row["bits_w"]
    level, e_bit = _level(hw, bits)
    reads = {"inference": 1.0, "step": float(T), "use": (row["mac_ops"] + row["sops"]) / row["params"]}[reuse]
    return bits * reads * e_bit, level


def _activation_memory(row: dict, hw: Hardware, w: Widths, acc: int) -> tuple[float, str]:
    ba = w.pixels if row["first_layer"] else (w.real or w.floating)
    real = row["in_real"] * ba
    energy = real * _level(hw, real)[1] if real else 0.0
    coding = "none"
    if row["in_planes"]:
        if "spike" in hw.events:
            energy += row["spikes_in"] * hw.events["spike"]
            coding = "per-spike event energy"
        else:
            events = row["spikes_in"] * row["addr_bits"]
            bits = min(row["in_planes"], events)
            coding = "bitmap" if bits == row["in_planes"] else "address events"
            energy += bits * _level(hw, row["in_planes"])[1]
    if not _covered(row, hw):
        out = row["out_elems"] * acc
        energy += out * _level(hw, out)[1]
    return energy, coding


def _neuron_state(rows: list[dict], hw: Hardware, w: Widths, images: int) -> tuple[float, list[dict]]:
    total, out = 0.0, []
    for r in rows:
        neurons = r["elements"] / max(images, 1)
        T = len(r["fr_per_t"])
        updates = neurons * T * r["levels"]
        spikes = sum(r["fr_per_t"]) * neurons
        if "neuron_update" in hw.events:
            active = hw.events.get("neuron_update_active", hw.events["neuron_update"])
            e = (updates - spikes) * hw.events["neuron_update"] + spikes * active
            level = None
        else:
            mb = w.membrane
            level, e_bit = _level(hw, neurons * mb)
            floating = mb >= 32
            e = updates * (2 * mb * e_bit + hw.update_adds * hw.add_pj(mb, floating))
        total += e
        out.append(
            dict(
                neuron=r["neuron"],
                neurons=neurons,
                T=T,
                D=r["levels"],
                updates=updates,
                neuron_state_pJ=e,
                membrane_level=level,
            )
        )
    return total, out


def energy_hw(
    layers: list[dict],
    neurons: list[dict] | None,
    hw: Hardware,
    *,
    images: int,
    T: int,
    bits_w: int,
    totals: dict[str, float],
    reuse: str = "inference",
    real_bits: int | None = None,
) -> dict:
    """``energy_hw`` of one measured model: total mJ, the four terms, per-layer and per-neuron rows and the
    conventions. ``totals``: the record's ``mac_ops``, ``sops`` and ``outside`` MACs (per image);
    ``real_bits``: width of real activations other than pixels (None: float)."""
    check_choice("reuse", reuse, REUSE)
    fw = hw.widths.get("float_bits", 32)
    w = Widths(
        hw.widths.get("input_bits", 8),
        real_bits,
        fw if bits_w >= 32 else hw.widths.get("membrane_bits", 16),
        fw,
    )
    terms = dict.fromkeys(TERMS, 0.0)
    rows = []
    for r in layers:
        c, acc = _compute(r, hw, w)
        wm, level = _weight_memory(r, hw, reuse, T) if hw.counts("weight_memory") else (0.0, None)
        am, coding = _activation_memory(r, hw, w, acc) if hw.counts("activation_memory") else (0.0, "none")
        terms["compute"] += c
        terms["weight_memory"] += wm
        terms["activation_memory"] += am
        rows.append(
            dict(
                layer=r["layer"],
                compute_pJ=c,
                weight_memory_pJ=wm,
                activation_memory_pJ=am,
                weight_level=level,
                spike_coding=coding,
                accumulator_bits=acc,
            )
        )
    terms["compute"] += totals.get("outside", 0.0) * (
        hw.events.get("mac") or (hw.mult_pj(fw, fw, True) + hw.add_pj(fw, True))
    )
    if {"mac", "sop"} <= set(hw.events):  # the papers' formula, summed as ``energy_mj`` sums it
        terms["compute"] = hw.events["mac"] * totals["mac_ops"] + hw.events["sop"] * totals["sops"]
    state, neuron_rows = (0.0, [])
    if neurons and hw.counts("neuron_state"):
        state, neuron_rows = _neuron_state(neurons, hw, w, images)
    terms["neuron_state"] = state
    for t in TERMS:
        terms[t] = terms[t] if hw.counts(t) else 0.0
    total = terms["compute"] + terms["weight_memory"] + terms["activation_memory"] + terms["neuron_state"]
    return dict(
        energy_hw_mJ=total * 1e-9,
        energy_hw_breakdown_mJ={t: v * 1e-9 for t, v in terms.items()},
        layers=rows,
        neurons=neuron_rows,
        conventions=dict(
            hw.conventions(),
            reuse=reuse,
            real_activation_bits=real_bits or fw,
            pixel_bits=w.pixels,
            membrane_bits=w.membrane,
            **CONVENTIONS,
        ),
    )

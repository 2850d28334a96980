"""One efficiency record per model: parameters, size, MACs, firing rates, SOPs, energy, latency."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from bench.errors import ConfigError, check_choice
from bench.measure.energy import ENERGY_PRESETS, energy_mj
from bench.measure.energy_hw import REUSE, energy_hw
from bench.measure.fidelity import spike_driven_fidelity
from bench.measure.firing import FiringRateMonitor
from bench.measure.hardware_model import Hardware, load_hardware
from bench.measure.latency import measure_latency
from bench.measure.ops import OpsConventions, SynapticOps, count_macs
from bench.measure.size import model_size, param_summary

CONVENTIONS = {
    "macs": "operator-level MACs per image = FlopCounterMode FLOPs / 2 (conv, linear, attention matmuls; "
    "BN, activations and additions not counted) + SDSA's mask-sum (one product-accumulate per element), "
    "one forward incl. all T steps; padding taps per the 'padding' convention",
    "mac_ops": "MACs of the layers fed by real values (and of ops outside Conv/Linear/MatMul modules)",
    "sops": "layers fed by spikes, per the 'sops' convention (paper: mean input spike count x MACs = "
    "fr x T x MACs; fanout: exact accumulations per spike); matmuls of spike tensors: exact accumulations",
    "spike_input": "a layer's input is spikes when it comes from a spiking neuron (through views, max-pool, "
    "spike products); pixels, SEW sums and BN outputs are real",
    "multi_bit_spikes": "an IE-LIF level k counts as k binary spikes over D virtual steps (rates can be > 1)",
    "firing_rate": "mean spike count per element, per step, over all measured samples; neuron state reset "
    "at every forward",
    "energy": "E = E_MAC x MAC ops + E_AC x SOPs; ANNs: E_MAC x MAC ops",
    "mode": "spiking models measured spike-driven, unfused (the official layers)",
    "size_true": "low-bit weights at bits/8 bytes + other parameters (fp32 steps, BN, biases): 4 bytes",
    "size_paper": "QSD convention: (parameters without step sizes) x bits_w / 32, in millions",
}


def _images(batch: object) -> Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ConfigError(
            f"dataset items must be image tensors [B, C, H, W] or (images, labels); got {type(x)}"
        )
    return x


class _Counts(NamedTuple):
    """Operations per image of the measured batches: MACs, MAC ops, SOPs and the FLOP counter's tables."""

    macs: float
    mac_ops: float
    outside: float  # MACs of ops outside the hooked modules (FlopCounterMode's count)
    sops: float
    totals: dict  # SynapticOps.totals()
    by_module: dict
    by_op: dict


@torch.no_grad()
def profile_model(
    model: nn.Module,
    data: Iterable,
    *,
    energy_preset: str = "fp32_45nm",
    first_layer_T: bool = False,
    latency_batch: int = 1,
    latency_repeats: int = 5,
    conventions: OpsConventions | None = None,
    check_inference: bool = True,
    hardware: str | Hardware = "45nm",
    reuse: str = "inference",
) -> dict:
    """Measure ``model`` over the batches of ``data`` (image tensors or (images, labels) pairs).

    ``check_inference``: also compare spike-driven inference (unfused and fused) with training-mode
    evaluation on the first batch (level-flip rate, logit difference). ``hardware`` (a preset name, a file
    or a loaded description) and ``reuse`` (weights read once per inference, per step or per use) give
    ``energy_hw_mJ`` beside the papers' ``energy_mJ``."""
    check_choice("energy preset", energy_preset, ENERGY_PRESETS)
    check_choice("reuse", reuse, REUSE)
    hw = hardware if isinstance(hardware, Hardware) else load_hardware(hardware)
    conventions = conventions or OpsConventions()
    model.eval()
    spiking = hasattr(model, "spike_driven_")
    firing, ops, first = _observe(model, data, spiking, first_layer_T, conventions)
    counts = _count(model, first, ops, firing)
    params = param_summary(model)
    size = model_size(model)
    energy = energy_mj(counts.mac_ops, counts.sops, energy_preset)
    fidelity = spike_driven_fidelity(model, first) if spiking and check_inference else None
    latency = measure_latency(model, first[:latency_batch].contiguous(), repeats=latency_repeats)
    layers = ops.table()
    rates = firing.table() if firing.applicable else None
    hwe = _energy_hw(model, ops, counts, layers, rates, hw, size["bits_w"], reuse)
    return dict(
        **_size_fields(model, params, size),
        **_ops_fields(counts, firing),
        energy_mJ=energy,
        energy_ann_mJ=energy_mj(counts.macs, 0.0, energy_preset),
        energy_hw_mJ=hwe["energy_hw_mJ"],
        energy_hw_breakdown_mJ=hwe["energy_hw_breakdown_mJ"],
        img_size=list(first.shape[-2:]),
        images=ops.images,
        **latency,
        conventions=_conventions(energy_preset, first_layer_T, first, conventions, hwe),
        spike_driven=fidelity if fidelity is not None else "not measured",
        neurobench=ops.neurobench(),
        environment=dict(
            torch=torch.__version__, python=platform.python_version(), machine=platform.machine()
        ),
        layers=layers,
        firing_rates=rates if rates is not None else "not applicable (no spiking neurons)",
        macs_by_module=counts.by_module,
        macs_by_op=counts.by_op,
    )


def _observe(
    model: nn.Module, data: Iterable, spiking: bool, first_layer_T: bool, conventions: OpsConventions
) -> tuple[FiringRateMonitor, SynapticOps, Tensor]:
    """Run every batch of ``data`` (spiking models spike-driven, unfused) under the firing-rate and
    operation monitors; the monitors and the first batch."""
    firing = FiringRateMonitor(model)
    ops = SynapticOps(model, first_layer_T=first_layer_T, conventions=conventions)
    first = None
    if spiking:
        model.spike_driven_(True, fuse=False)  # IE-LIF levels as countable spikes; official (unfused) layers
    try:
        with firing, ops:
            for batch in data:
                x = _images(batch)
                first = x if first is None else first
                model(x)
                ops.images += x.shape[0]
    finally:
        if spiking:
            model.spike_driven_(False)
    if first is None:
        raise ConfigError("the dataset is empty: no batch to measure firing rates and operations on")
    return firing, ops, first


def _count(model: nn.Module, first: Tensor, ops: SynapticOps, firing: FiringRateMonitor) -> _Counts:
    """MACs (FLOP counter on one image of ``first``, hooked layers), MAC ops and SOPs per image."""
    flop_macs, macs_by_module, macs_by_op = count_macs(model, first[:1])
    totals = ops.totals()
    # ops outside the hooked modules (e.g. timm's fused attention) keep FlopCounterMode's count
    outside = flop_macs - (totals["hooked_macs"] + totals["padding_macs"] - totals["mask_sum_macs"])
    outside = outside if abs(outside) > 1e-6 * max(flop_macs, 1.0) else 0.0
    macs = outside + totals["hooked_macs"]
    mac_ops = outside + totals["mac_ops"]
    sops = totals["sops"] if firing.applicable else 0.0
    return _Counts(macs, mac_ops, outside, sops, totals, macs_by_module, macs_by_op)


def _energy_hw(
    model: nn.Module,
    ops: SynapticOps,
    counts: _Counts,
    layers: list[dict],
    rates: list[dict] | None,
    hw: Hardware,
    bits_w: float,
    reuse: str,
) -> dict:
    """The hardware-model energy; its per-layer and per-neuron-layer figures are added to the rows of
    ``layers`` and ``rates``."""
    hwe = energy_hw(
        layers,
        rates,
        hw,
        images=ops.images,
        T=getattr(model, "T", 1) or 1,
        bits_w=bits_w,
        totals=dict(mac_ops=counts.mac_ops, sops=counts.sops, outside=counts.outside),
        reuse=reuse,
    )
    for row, extra in zip(layers, hwe["layers"], strict=True):
        row.update({k: v for k, v in extra.items() if k != "layer"})
    for row, extra in zip(rates or [], hwe["neurons"], strict=False):
        row.update(neuron_state_pJ=extra["neuron_state_pJ"], membrane_level=extra["membrane_level"])
    return hwe


def _size_fields(model: nn.Module, params: dict, size: dict) -> dict:
    """Parameters (millions), weight bits, time steps and size (MB) of the record."""
    return dict(
        params_M=params["total"] / 1e6,
        params_quantized_M=params["quantized"] / 1e6,
        params_fp_M=(params["full_precision"] + params["scales"]) / 1e6,
        bits_w=size["bits_w"],
        T=getattr(model, "T", None),
        size_MB=size["true_mb"],
        size_MB_paper=size["paper_mb"],
    )


def _ops_fields(counts: _Counts, firing: FiringRateMonitor) -> dict:
    """Operations (G per image) and the mean firing rate of the record."""
    totals = counts.totals
    return dict(
        MACs_G=counts.macs / 1e9,
        MAC_ops_G=counts.mac_ops / 1e9,
        SOPs_G=counts.sops / 1e9 if firing.applicable else None,
        attention_G=dict(
            MACs=totals["attention_macs"] / 1e9,
            MAC_ops=totals["attention_mac_ops"] / 1e9,
            SOPs=totals["attention_sops"] / 1e9,
            mask_sum_MACs=totals["mask_sum_macs"] / 1e9,
        ),
        padding_skipped_MACs_G=totals["padding_macs"] / 1e9,
        fr_mean=firing.mean_rate(),
    )


def _conventions(
    energy_preset: str, first_layer_T: bool, first: Tensor, conventions: OpsConventions, hwe: dict
) -> dict:
    """How the record's numbers are counted (CONVENTIONS and this measurement's settings)."""
    e_mac, e_ac = ENERGY_PRESETS[energy_preset]
    return dict(
        CONVENTIONS,
        energy_preset=energy_preset,
        e_mac_pj=e_mac,
        e_ac_pj=e_ac,
        first_layer=("MAC, charged T times" if first_layer_T else "MAC, charged once"),
        resolution=f"{first.shape[-2]}x{first.shape[-1]}",
        bn_fused=False,
        ops=conventions.as_dict(),
        energy_hw=hwe["conventions"],
    )

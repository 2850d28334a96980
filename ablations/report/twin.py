"""Spiking model vs its quantized-ANN twin: energy_hw against the mean firing rate, one panel per preset.

The spiking curve scales the measured firing rates by one factor; the twin (same architecture and weight
bits, ceil(log2(T x D + 1))-bit activations, one dense pass, no neuron state) does not depend on them
(``bench.measure.twin``). The crossover rate (where the two are equal) is marked, and the measured rate.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from matplotlib.figure import Figure

from ablations.report.figures import save
from bench.io import write_json_atomic
from bench.measure.profile import profile_model
from bench.measure.twin import rate_sweep


def twin_figure(model: str, sweeps: list[dict]) -> Figure:
    """One panel per hardware preset: energy_hw of ``model`` and of its twin against the mean firing rate."""
    fig = Figure(figsize=(4.6 * len(sweeps), 3.8), layout="constrained")
    for i, s in enumerate(sweeps):
        ax = fig.add_subplot(1, len(sweeps), i + 1)
        ax.plot(s["rates"], s["energy_hw_mJ"], "C0-", label=f"{model} (spiking)")
        ax.axhline(
            s["twin_energy_hw_mJ"],
            color="C1",
            ls="--",
            label=f"ANN twin ({s['twin_activation_bits']}-bit act.)",
        )
        ax.plot([s["measured_rate"]], [s["measured_energy_hw_mJ"]], "ko", label="measured rate")
        if s["crossover_rate"] is not None:
            ax.axvline(s["crossover_rate"], color="0.4", lw=0.8)
            ax.annotate(
                f"crossover {s['crossover_rate']:.3f}",
                (s["crossover_rate"], s["twin_energy_hw_mJ"]),
                fontsize=7,
                xytext=(4, 6),
                textcoords="offset points",
            )
        else:
            ax.set_title("no crossover in range", fontsize=7, loc="right")
        ax.set_xlabel("mean firing rate (spikes per neuron per step)")
        ax.set_ylabel("energy_hw (mJ per image)")
        ax.set_title(f"{model}, hardware {s['hardware']}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def write_twin_report(
    models: list[str],
    hardware: list[str],
    out: str | Path,
    img_size: int | None = None,
    batches: int = 2,
    reuse: str = "inference",
) -> list[Path]:
    """Profile each model (untrained weights, generated images), sweep its rates, write
    ``figures/twin_<model>.png/.pdf`` and ``twin.json`` (curves, crossovers, conventions) under ``out``."""
    from bench.images import generated_images
    from bench.registry import create_model, model_entry

    out = Path(out)
    summary, paths = {}, []
    for name in models:
        size = img_size or model_entry(name).paper.get("img_size", 224)
        data = [generated_images(2, size, seed=i) for i in range(batches)]
        torch.manual_seed(0)
        rec = profile_model(create_model(name), data, latency_repeats=1, check_inference=False)
        sweeps = [rate_sweep(rec, hw, reuse) for hw in hardware]
        paths += save(twin_figure(name, sweeps), out / "figures", f"twin_{name}")
        summary[name] = dict(
            img_size=size,
            T=rec["T"],
            weights="untrained (seed 0)",
            data=f"generated images, {batches} x 2",
            sweeps=sweeps,
        )
    summary["conventions"] = dict(
        twin="same architecture and weight bits, activations ceil(log2(T x D + 1)) bits, one dense pass, "
        "no neuron state (Yan et al., arXiv 2409.08290)",
        spiking_curve="every measured firing rate scaled by one factor",
        reuse=reuse,
    )
    paths.append(write_json_atomic(out / "twin.json", json.loads(json.dumps(summary, default=str))))
    return paths

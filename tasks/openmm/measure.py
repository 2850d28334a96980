"""Efficiency of a whole OpenMMLab model (backbone + neck + heads) with ``bench.measure`` (no second counter).

The model's parts become the direct children of ``WholeModel`` (``backbone``, ``neck``, ``head``,
``auxiliary_head``), so ``bench.measure.profile_model``'s per-layer and per-module counts split by part.
Conventions, recorded in the efficiency block:
- measured at the test resolution on test-split images after the model's data preprocessor;
- the totals (``params_M``, ``MACs_G``, ``SOPs_G``, ``energy_mJ``) are the inference model: backbone + neck +
  head, and ``parts`` adds up to them exactly; an auxiliary head (UPerNet's FCN head) is a training-only
  loss and is reported beside the parts (``auxiliary_head``), not in the totals;
- energy per part: E_MAC x MAC ops + E_AC x SOPs of the part's layers when the model has spiking neurons
  (layers fed by real values, e.g. an ANN neck on T-averaged maps, are charged MACs), else E_MAC x MACs;
- ``firing_rates``: every spiking layer of every part (names start with the part), as in classification.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from bench.measure.energy import ENERGY_PRESETS, energy_mj
from bench.measure.latency import measure_latency
from bench.measure.profile import profile_model
from bench.nn.neurons import set_spike_driven

PARTS = ("backbone", "neck", "head", "auxiliary_head")
HEAD_ATTRS = ("decode_head", "bbox_head", "rpn_head", "roi_head", "mask_head")
DROP = ("layers", "macs_by_module", "macs_by_op")


def _as_tuple(x: object) -> tuple:
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


class WholeModel(nn.Module):
    """An mmdet/mmseg model's parts as children; ``forward(x)`` runs backbone -> neck -> head(s).

    ``forward_fn(whole, x)`` replaces the default forward for models whose heads need more than the maps.
    """

    def __init__(
        self,
        model: nn.Module,
        head: nn.Module | None = None,
        auxiliary_head: nn.Module | None = None,
        forward_fn: Callable[[WholeModel, Tensor], object] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.neck = getattr(model, "neck", None)
        if head is None:
            heads = [getattr(model, a) for a in HEAD_ATTRS if getattr(model, a, None) is not None]
            head = heads[0] if len(heads) == 1 else nn.ModuleList(heads)
        self.head = head
        aux = auxiliary_head if auxiliary_head is not None else getattr(model, "auxiliary_head", None)
        self.auxiliary_head = aux if isinstance(aux, nn.Module) else None
        self.forward_fn = forward_fn
        self.with_auxiliary = True
        self.T = getattr(self.backbone, "T", 1)

    def features(self, x: Tensor) -> tuple:
        feats = _as_tuple(self.backbone(x))
        return _as_tuple(self.neck(feats)) if self.neck is not None else feats

    def forward(self, x: Tensor) -> object:
        if self.forward_fn is not None:
            return self.forward_fn(self, x)
        feats = self.features(x)
        heads = self.head if isinstance(self.head, nn.ModuleList) else [self.head]
        out = [h(feats) for h in heads]
        if self.with_auxiliary and self.auxiliary_head is not None:
            self.auxiliary_head(feats)
        return out

    def spike_driven_(self, enabled: bool = True, fuse: bool = False) -> WholeModel:
        """Spike-driven inference in the backbone (and every spiking neck/head neuron)."""
        inner = getattr(self.backbone, "model", self.backbone)
        if hasattr(inner, "spike_driven_"):
            inner.spike_driven_(enabled, fuse=fuse)
        set_spike_driven(self, enabled)
        return self


HW_TERMS = ("compute", "weight_memory", "activation_memory", "neuron_state")


def _part_energy_hw(rows: list[dict], rates: list[dict]) -> dict:
    """``energy_hw`` of one part from the profile's per-layer and per-neuron-layer pJ."""
    terms = dict(
        compute=sum(r.get("compute_pJ", 0.0) for r in rows),
        weight_memory=sum(r.get("weight_memory_pJ", 0.0) for r in rows),
        activation_memory=sum(r.get("activation_memory_pJ", 0.0) for r in rows),
        neuron_state=sum(r.get("neuron_state_pJ", 0.0) for r in rates),
    )
    return dict(
        energy_hw_mJ=sum(terms.values()) * 1e-9,
        energy_hw_breakdown_mJ={t: v * 1e-9 for t, v in terms.items()},
    )


def _part_of(name: str) -> str:
    return name.split(".", 1)[0]


def _params(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


@torch.no_grad()
def measure_whole_model(
    model: nn.Module,
    images: Sequence[Tensor],
    *,
    energy_preset: str = "fp32_45nm",
    latency_repeats: int = 3,
    forward_fn: Callable[[WholeModel, Tensor], object] | None = None,
) -> dict:
    """Efficiency block of ``model`` over ``images`` (preprocessed ``[B, 3, H, W]`` batches at test size)."""
    whole = WholeModel(model, forward_fn=forward_fn).eval()
    whole.with_auxiliary = True
    prof = profile_model(whole, list(images), energy_preset=energy_preset, latency_repeats=1)
    e_mac, e_ac = ENERGY_PRESETS[energy_preset]
    spiking = prof["SOPs_G"] is not None
    present = [p for p in PARTS if getattr(whole, p) is not None]
    parts: dict[str, dict] = {}
    top = type(whole).__name__
    for part in present:
        rows = [r for r in prof["layers"] if _part_of(r["layer"]) == part]
        macs = prof["macs_by_module"].get(f"{top}.{part}", 0.0)
        mac_ops = sum(r["mac_ops"] for r in rows) if spiking else macs
        sops = sum(r["sops"] for r in rows) if spiking else 0.0
        rates = [] if not spiking else [r for r in prof["firing_rates"] if _part_of(r["neuron"]) == part]
        elems = sum(r["elements"] for r in rates)
        parts[part] = dict(
            params_M=_params(getattr(whole, part)) / 1e6,
            MACs_G=macs / 1e9,
            MAC_ops_G=mac_ops / 1e9,
            SOPs_G=sops / 1e9 if spiking else None,
            fr_mean=(sum(r["fr"] * r["elements"] for r in rates) / elems) if elems else None,
            energy_mJ=energy_mj(mac_ops, sops, energy_preset),
            **_part_energy_hw(rows, rates if spiking else []),
        )
    inference = [p for p in present if p != "auxiliary_head"]

    def total(key: str) -> float | None:
        vals = [parts[p][key] for p in inference]
        return None if any(v is None for v in vals) else sum(vals)

    whole.with_auxiliary = False
    first = images[0]
    latency = measure_latency(whole, first[:1].contiguous(), repeats=latency_repeats)
    keep = {k: v for k, v in prof.items() if k not in DROP and not k.startswith("latency")}
    keep.update(
        params_M=total("params_M"),
        MACs_G=total("MACs_G"),
        MAC_ops_G=total("MAC_ops_G"),
        SOPs_G=total("SOPs_G"),
        energy_mJ=total("energy_mJ"),
        energy_ann_mJ=energy_mj(total("MACs_G") * 1e9, 0.0, energy_preset),
        energy_hw_mJ=total("energy_hw_mJ"),
        energy_hw_breakdown_mJ={
            t: sum(parts[p]["energy_hw_breakdown_mJ"][t] for p in inference) for t in HW_TERMS
        },
        **latency,
    )
    keep["parts"] = {p: parts[p] for p in inference}
    if "auxiliary_head" in parts:
        keep["auxiliary_head"] = parts["auxiliary_head"]
    keep["conventions"] = dict(
        prof["conventions"],
        whole_model="totals = backbone + neck + head at inference (parts add up to them); "
        "auxiliary head: training-only, reported apart",
        part_energy=(
            f"E_MAC {e_mac} pJ x MAC ops + E_AC {e_ac} pJ x SOPs per part"
            if spiking
            else f"E_MAC {e_mac} pJ x MACs per part"
        ),
        resolution=f"{first.shape[-2]}x{first.shape[-1]} (test resolution, after the data preprocessor)",
        part_energy_hw="energy_hw per part: its Conv/Linear/attention layers and neuron layers (ops outside "
        "them, e.g. timm's fused attention, only in a profile of the whole model); totals = sum of parts",
    )
    return keep

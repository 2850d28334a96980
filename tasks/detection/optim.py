"""Layer-wise learning-rate decay for any spikebench backbone (ViTDet's recipe, decay 0.7).

ViTDet scales the lr of ViT block i (of L) by decay^(L + 1 - (i + 1)), the patch embedding by decay^(L + 1),
and neck and heads by 1; no weight decay on norms, biases and position embeddings. The backbone's depth
units are the entries of its longest ``nn.ModuleList``/``nn.Sequential`` of blocks (ViT: ``blocks``; staged
backbones: their longest block list); parameters before the first unit count as layer 0, after the last as
layer L.
"""

from __future__ import annotations

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn


def depth_units(backbone: nn.Module) -> list[str]:
    """Names of the blocks of the backbone's longest block list, in order."""
    best: tuple[str, nn.Module] | None = None
    for name, m in backbone.named_modules():
        if isinstance(m, nn.ModuleList | nn.Sequential) and (best is None or len(m) > len(best[1])):
            if sum(1 for c in m if any(True for _ in c.parameters())) == len(m):
                best = (name, m)
    if best is None:
        return []
    return [f"{best[0]}.{i}" for i in range(len(best[1]))]


def layer_ids(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{parameter name: (layer id, number of layers L)}``: backbone 0..L, neck and heads L + 1."""
    backbone = model.backbone
    units = depth_units(backbone)
    n = len(units)
    ids: dict[str, tuple[int, int]] = {}
    seen_unit = False
    for name, _ in backbone.named_parameters():
        layer = next((i + 1 for i, u in enumerate(units) if name == u or name.startswith(u + ".")), None)
        seen_unit |= layer is not None
        ids[f"backbone.{name}"] = (layer if layer is not None else (n if seen_unit else 0), n)
    for name, _ in model.named_parameters():
        ids.setdefault(name, (n + 1, n))
    return ids


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)
class LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """AdamW groups with lr x decay_rate^(L + 1 - layer id); ``paramwise_cfg=dict(decay_rate=0.7)``."""

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        decay = float(self.paramwise_cfg.get("decay_rate", 0.7))
        ids = layer_ids(module)
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            layer, n = ids[name]
            no_wd = p.ndim == 1 or name.endswith(("pos_embed", "cls_token"))
            params.append(
                dict(
                    params=[p],
                    lr=self.base_lr * decay ** (n + 1 - layer),
                    weight_decay=0.0 if no_wd else self.base_wd,
                )
            )

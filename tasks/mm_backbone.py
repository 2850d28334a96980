"""Any spikebench backbone as an OpenMMLab backbone (registered in mmdet's and mmseg's MODELS).

Config: ``backbone=dict(type='SpikebenchBackbone', model_name='qsd_tiny', out_indices=(0, 1, 2), bits=4)``.
Every extra key is a ``bench.create_model`` override. The backbone returns the ``[B, C, H, W]`` maps of
``out_indices`` (spiking models average over T and reset neuron state at every forward).
"""

from __future__ import annotations

from mmdet.registry import MODELS as DET_MODELS
from mmengine.model import BaseModule
from mmseg.registry import MODELS as SEG_MODELS
from torch import Tensor

from bench.registry import create_model


class SpikebenchBackbone(BaseModule):
    """Wraps ``bench.create_model(model_name, num_classes=0, out_indices=..., **overrides)``."""

    def __init__(
        self,
        model_name: str,
        out_indices: tuple[int, ...] | None = None,
        init_cfg: dict | None = None,
        pretrained: str | None = None,
        **overrides,
    ) -> None:
        if pretrained is not None:
            raise ValueError(
                f"pretrained={pretrained!r} is not supported (nothing is downloaded); "
                "use init_cfg=dict(type='Pretrained', checkpoint=<local file>)"
            )
        super().__init__(init_cfg)
        self.model = create_model(model_name, num_classes=0, out_indices=out_indices, **overrides)
        info = [self.model.feature_info[i] for i in self.model.out_indices]
        self.channels = [f["num_chs"] for f in info]
        self.strides = [f["reduction"] for f in info]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model.forward_features(x))


for _registry in (DET_MODELS, SEG_MODELS):
    _registry.register_module(name="SpikebenchBackbone", module=SpikebenchBackbone, force=True)

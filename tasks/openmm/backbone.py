"""Any spikebench backbone as an OpenMMLab backbone (registered in mmdet's and mmseg's MODELS).

Config: ``backbone=dict(type='SpikebenchBackbone', model_name='qsd_tiny', out_indices=(0, 1, 2), bits=4)``.
Every extra key is a ``bench.create_model`` override, passed through unchanged. The backbone returns the
``[B, C, H, W]`` maps of ``out_indices`` (spiking models average over T and reset neuron state at every
forward); ``feature_maps()`` records which map (stage index, channels, stride) feeds the neck.
"""

from __future__ import annotations

from mmdet.registry import MODELS as DET_MODELS
from mmengine.model import BaseModule
from mmseg.registry import MODELS as SEG_MODELS
from torch import Tensor

from bench.errors import ConfigError
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
            raise ConfigError(
                f"backbone.pretrained={pretrained!r} is not allowed (nothing is downloaded); "
                "allowed: init_cfg=dict(type='Pretrained', checkpoint=<local file>)"
            )
        super().__init__(init_cfg)
        self.model_name = model_name
        self.overrides = dict(overrides)
        self.model = create_model(model_name, num_classes=0, out_indices=out_indices, **overrides)
        info = [self.model.feature_info[i] for i in self.model.out_indices]
        self.channels = [f["num_chs"] for f in info]
        self.strides = [f["reduction"] for f in info]
        self.spiking = hasattr(self.model, "spike_driven_")

    @property
    def T(self) -> int:
        return getattr(self.model, "T", 1)

    def feature_maps(self) -> list[dict]:
        """Which backbone map feeds the neck: output position, stage index, channels, stride, module."""
        return [
            dict(
                output=k,
                stage=i,
                channels=self.model.feature_info[i]["num_chs"],
                stride=self.model.feature_info[i]["reduction"],
                module=self.model.feature_info[i].get("module"),
            )
            for k, i in enumerate(self.model.out_indices)
        ]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model.forward_features(x))


for _registry in (DET_MODELS, SEG_MODELS):
    _registry.register_module(name="SpikebenchBackbone", module=SpikebenchBackbone, force=True)

"""ViTDet's simple feature pyramid (Li et al., ECCV 2022, arXiv 2203.16527), registered in mmdet and mmseg.

From one stride-16 map of C channels: stride 4 = ConvTranspose(C -> C/2) -> LayerNorm2d -> GELU ->
ConvTranspose(C/2 -> C/4); stride 8 = ConvTranspose(C -> C/2); stride 16 = identity; stride 32 = 2x2 max-pool.
Each level then gets a 1x1 and a 3x3 conv, each followed by LayerNorm2d (no bias, no activation), and the
levels above stride 32 are 1x1 max-pools with stride 2 of the last one (P6), as mmdet's ``projects/ViTDet``
``SimpleFPN`` (``num_outs=5``: strides 4..64). ``start_level=1`` drops the stride-4 level (RetinaNet on the
simple pyramid: strides 8..128 with ``num_outs=5``).

Config: ``neck=dict(type='SimpleFPN', backbone_channel=768, out_channels=256, num_outs=5)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS as DET_MODELS
from mmengine.model import BaseModule
from mmseg.registry import MODELS as SEG_MODELS
from torch import Tensor, nn

from bench.errors import ConfigError

STRIDES = (4, 8, 16, 32)  # of the four pyramid levels, for a stride-16 input map


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map (ViTDet's and ConvNeXt's channel LN)."""

    _abbr_ = "ln"  # mmcv's ConvModule names the norm layer by this

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SimpleFPN(BaseModule):
    """Strides 4 (unless ``start_level=1``), 8, 16, 32 from one stride-16 map, then max-pooled levels."""

    def __init__(
        self,
        backbone_channel: int,
        in_channels: list[int] | None = None,
        out_channels: int = 256,
        num_outs: int = 5,
        start_level: int = 0,
        in_index: int = -1,
        norm_cfg: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg)
        c = backbone_channel
        expected = [c // 4, c // 2, c, c]
        if in_channels is not None and list(in_channels) != expected:
            raise ConfigError(
                f"SimpleFPN in_channels={list(in_channels)} is not allowed for backbone_channel={c}; "
                f"allowed: {expected} (or leave it out)"
            )
        if start_level not in (0, 1):
            raise ConfigError(f"SimpleFPN start_level={start_level!r} is not allowed; allowed values: 0, 1")
        if num_outs < len(STRIDES) - start_level:
            raise ConfigError(
                f"SimpleFPN num_outs={num_outs!r} is not allowed; allowed: >= {len(STRIDES) - start_level}"
            )
        self.in_channels = expected
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.in_index = in_index
        self.strides = [STRIDES[start_level] * 2**i for i in range(num_outs)]
        norm = dict(norm_cfg or dict(type="LN2d"))
        if norm.get("type") == "LN2d":
            norm["type"] = LayerNorm2d
        levels = [
            nn.Sequential(
                nn.ConvTranspose2d(c, c // 2, 2, 2),
                LayerNorm2d(c // 2),
                nn.GELU(),
                nn.ConvTranspose2d(c // 2, c // 4, 2, 2),
            ),
            nn.Sequential(nn.ConvTranspose2d(c, c // 2, 2, 2)),
            nn.Sequential(nn.Identity()),
            nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2)),
        ]
        self.levels = nn.ModuleList(levels[start_level:])
        self.lateral_convs = nn.ModuleList(
            ConvModule(ch, out_channels, 1, norm_cfg=norm, act_cfg=None) for ch in expected[start_level:]
        )
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm, act_cfg=None)
            for _ in expected[start_level:]
        )

    def forward(self, inputs: Tensor | tuple[Tensor, ...] | list[Tensor]) -> tuple[Tensor, ...]:
        x = inputs if isinstance(inputs, Tensor) else inputs[self.in_index]
        if x.shape[1] != self.in_channels[2]:
            raise ConfigError(
                f"SimpleFPN input has {x.shape[1]} channels; allowed: backbone_channel={self.in_channels[2]}"
            )
        outs = [
            fpn(lateral(level(x)))
            for level, lateral, fpn in zip(self.levels, self.lateral_convs, self.fpn_convs, strict=True)
        ]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)


for _registry in (DET_MODELS, SEG_MODELS):
    _registry.register_module(name="SimpleFPN", module=SimpleFPN, force=True)
    _registry.register_module(name="LN2d", module=LayerNorm2d, force=True)

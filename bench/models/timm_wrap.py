"""timm-backed mobile backbones on the spikebench interface (``bits``, ``out_indices``, ``feature_info``).

The network is timm's own module (``self.net``); the wrapper only swaps every plain ``nn.Conv2d`` and
``nn.Linear`` for the LSQ-capable ``QConv2d``/``QLinear`` (same parameter names, so timm state dicts load
unchanged and, at 32 bits, the logits are identical) and checks input sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.errors import ConfigError, check_bits
from bench.nn.quant import quantize_modules
from bench.registry import register_variant


class TimmBackbone(nn.Module):
    """A timm model with the ``bits`` knob and the spikebench feature interface."""

    family = "mobile"

    def __init__(
        self,
        timm_name: str,
        num_classes: int = 1000,
        bits: int = 32,
        bits_first: int | None = None,
        bits_head: int | None = None,
        out_indices: tuple[int, ...] | None = None,
        img_size: int | None = None,
        fixed_size: bool = False,
        timm_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.timm_name = timm_name
        self.bits = check_bits("bits", bits)
        bits_first = check_bits("bits_first", bits if bits_first is None else bits_first)
        bits_head = check_bits("bits_head", bits if bits_head is None else bits_head)
        self.img_size = img_size
        self.fixed_size = fixed_size
        self.net = timm.create_model(
            timm_name, pretrained=False, num_classes=num_classes, **(timm_kwargs or {})
        )
        self.num_classes = num_classes
        heads = tuple(
            n
            for n, _ in self.net.named_modules()
            if n.split(".")[0] in ("head", "head_dist", "fc") and n.count(".") <= 1
        )
        self.num_quantized = quantize_modules(self.net, bits, bits_first, bits_head, heads)
        self.feature_info = [
            dict(num_chs=f["num_chs"], reduction=f["reduction"], module=f["module"])
            for f in self.net.feature_info
        ]
        n = len(self.feature_info)
        self.out_indices = tuple(range(n)) if out_indices is None else tuple(i % n for i in out_indices)
        bad = [i for i in (out_indices or ()) if not -n <= i < n]
        if bad:
            raise ConfigError(f"out_indices={tuple(out_indices)} is not allowed; allowed values: 0..{n - 1}")

    def check_input(self, x: Tensor) -> None:
        """One-line error for inputs the network cannot take."""
        h, w = x.shape[-2:]
        stride = max(f["reduction"] for f in self.feature_info)
        if self.fixed_size and self.img_size is not None and (h, w) != (self.img_size, self.img_size):
            raise ConfigError(
                f"input {h}x{w} is not allowed for {self.timm_name}: its attention biases are built "
                f"for img_size={self.img_size}; create the model with img_size={h}"
            )
        if h % stride or w % stride:
            raise ConfigError(
                f"input {h}x{w} is not allowed for {self.timm_name}; allowed values: "
                f"height and width divisible by {stride}"
            )

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.net(x)

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and timm's pooled pre-logits feature ``[B, C]``."""
        self.check_input(x)
        feats = self.net.forward_features(x)
        return self.net.forward_head(feats), self.net.forward_head(feats, pre_logits=True)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps ``[B, C, H, W]`` of the levels in ``out_indices``."""
        self.check_input(x)
        return self.net.forward_intermediates(x, indices=list(self.out_indices), intermediates_only=True)

    def reset(self) -> None:
        """No neuron state (ANN); kept for a uniform interface."""

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def resize_attention_biases(net: nn.Module, resolution: int) -> None:
    """Rebuild EfficientFormer (v1) attention-bias tables for a ``resolution`` x ``resolution`` token grid,
    resampling the learned biases bicubically (their default grid is 7 x 7 at 224 px)."""
    from timm.models.efficientformer import Attention

    for m in net.modules():
        if not isinstance(m, Attention):
            continue
        heads, n_old = m.attention_biases.shape
        old = int(round(n_old**0.5))
        grid = m.attention_biases.view(1, heads, old, old)
        new = F.interpolate(grid, size=(resolution, resolution), mode="bicubic", align_corners=False)
        m.attention_biases = nn.Parameter(new.reshape(heads, resolution * resolution))
        pos = torch.stack(
            torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")
        ).flatten(1)
        rel = (pos[..., :, None] - pos[..., None, :]).abs()
        m.attention_bias_idxs = (rel[0] * resolution + rel[1]).to(m.attention_bias_idxs.device)
        m.attention_bias_cache = {}


def register_timm_family(cfgs: dict, family: str, build: Callable[..., nn.Module], title: str) -> None:
    """Register every ``name: (timm name, img size, classes, paper params M)`` of ``cfgs`` as
    ``build(timm_name, num_classes, img_size)``; a ``v2`` in either name gives the family ``<family>_v2``."""
    for name, (timm_name, img, classes, params) in cfgs.items():
        register_variant(
            name,
            f"{family}_v2" if "v2" in name + timm_name else family,
            build,
            dict(timm_name=timm_name, num_classes=classes, img_size=img),
            doc=f"{title} {name} (timm {timm_name}), {img} px.",
            paper=dict(params_m=params, img_size=img, timm=timm_name),
        )

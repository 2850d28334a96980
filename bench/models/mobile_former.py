"""Mobile-Former (Chen et al., CVPR 2022, arXiv 2108.05895).

A Mobile branch of inverted bottlenecks and a Former branch of M learnable global tokens, joined in every
block by light-weight cross-attention: Mobile->Former (tokens attend to pixels; no K/V projection on the
Mobile side), Former self-attention + FFN, then Former->Mobile (pixels attend to tokens; no Q projection on
the Mobile side). The Mobile branch's dynamic ReLU takes its parameters from the first token.
No official code exists; configurations follow the reference implementation with released checkpoints
(AAboys/MobileFormer, ``mobile_former.py``, ``dna_blocks.py``): Mobile->Former scales its output by a
token-driven gate, the Former block has 4 heads, the cross-attentions 2.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from bench.errors import ConfigError, check_bits
from bench.nn.quant import quantize_modules
from bench.registry import register_variant

# The configurations (blocks, widths, tokens, paper params) are data: mobile_former.yaml beside this file.
CONFIG = yaml.safe_load(Path(__file__).with_suffix(".yaml").read_text())
MOBILE_FORMER_CFGS = {
    name: dict(v, blocks=[tuple(b) for b in CONFIG["blocks"][v["blocks"]]])
    for name, v in CONFIG["variants"].items()
}


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave channels of ``groups`` groups (ShuffleNet)."""
    if groups <= 1:
        return x
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class TokenHyper(nn.Module):
    """Dynamic-ReLU coefficients for ``channels`` channels from the first token (2 per channel)."""

    def __init__(self, token_dim: int, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(token_dim, token_dim // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(token_dim // reduction, 2 * channels),
            nn.Hardsigmoid(),
        )

    def forward(self, x: Tensor, tokens: Tensor) -> Tensor:
        """max(x a1, x a2) with a1 in [0, 2] (centred at 1) and a2 in [-1, 1] (centred at 0)."""
        a = self.mlp(tokens[0])[:, :, None, None]
        a1, a2 = a.chunk(2, dim=1)
        return torch.maximum(x * ((a1 - 0.5) * 2 + 1), x * ((a2 - 0.5) * 2))


class _Heads(nn.Module):
    """Multi-head scaled dot-product attention over ``dim`` channels (the two bridges, the token block)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5

    def attend(self, q: Tensor, k: Tensor) -> Tensor:
        return torch.softmax((q @ k) * self.scale, dim=-1)


class Mobile2Former(_Heads):
    """Tokens attend to the feature map (keys = values = pixels), gated by the tokens, then LayerNorm."""

    def __init__(self, channels: int, token_dim: int, heads: int = 2) -> None:
        super().__init__(channels, heads)
        self.q = nn.Linear(token_dim, channels)
        self.gate = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(channels, token_dim)
        self.norm = nn.LayerNorm(token_dim)

    def forward(self, x: Tensor, tokens: Tensor) -> Tensor:
        b, c, h, w = x.shape
        m = tokens.shape[0]
        q = self.q(tokens).view(m, b, self.heads, -1).permute(1, 2, 0, 3)  # B, heads, M, C/h
        k = x.view(b, self.heads, c // self.heads, h * w)  # B, heads, C/h, HW
        attn = self.attend(q, k)
        out = (attn @ k.transpose(-1, -2)).permute(2, 0, 1, 3).reshape(m, b, c)
        out = out * (F.hardsigmoid(self.gate(tokens)) * 2.0)
        return self.norm(tokens + self.proj(out))


class FormerBlock(_Heads):
    """Token self-attention (Q projection only) + channel linear, LayerNorm; FFN (2x, GELU), LayerNorm."""

    def __init__(self, token_dim: int, heads: int = 4) -> None:
        super().__init__(token_dim, heads)
        self.q = nn.Linear(token_dim, token_dim)
        self.mix = nn.Linear(token_dim, token_dim)
        self.norm1 = nn.LayerNorm(token_dim)
        self.ffn = nn.Sequential(
            nn.Linear(token_dim, 2 * token_dim), nn.GELU(), nn.Linear(2 * token_dim, token_dim)
        )
        self.norm2 = nn.LayerNorm(token_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        m, b, d = tokens.shape
        q = self.q(tokens).view(m, b, self.heads, -1).permute(1, 2, 0, 3)
        k = tokens.permute(1, 2, 0).reshape(b, self.heads, d // self.heads, m)
        attn = self.attend(q, k)
        out = (attn @ k.transpose(-1, -2)).permute(2, 0, 1, 3).reshape(m, b, d)
        tokens = self.norm1(tokens + self.mix(out))
        return self.norm2(tokens + self.ffn(tokens))


class Former2Mobile(_Heads):
    """Pixels attend to the tokens (queries = pixels, no projection); the result is added to the map."""

    def __init__(self, channels: int, token_dim: int, heads: int = 2) -> None:
        super().__init__(channels, heads)
        self.k = nn.Linear(token_dim, channels)
        self.v = nn.Linear(token_dim, channels)

    def forward(self, x: Tensor, tokens: Tensor) -> Tensor:
        b, c, h, w = x.shape
        m = tokens.shape[0]
        q = x.view(b, self.heads, c // self.heads, h * w).transpose(-1, -2)  # B, heads, HW, C/h
        k = self.k(tokens).permute(1, 2, 0).reshape(b, self.heads, c // self.heads, m)
        v = self.v(tokens).permute(1, 2, 0).reshape(b, self.heads, c // self.heads, m)
        attn = self.attend(q, k)
        return x + (attn @ v.transpose(-1, -2)).transpose(-1, -2).reshape(b, c, h, w)


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class MobileFormerBlock(nn.Module):
    """One Mobile-Former block: Mobile->Former, Former, the Mobile sub-block, Former->Mobile.

    ``kind='b'`` (reference ``DnaBlock``): 1x1 expand -> dyReLU -> DW kxk (stride) -> dyReLU -> 1x1 project.
    ``kind='b3'`` (reference ``DnaBlock3``): DW (stride, e1) -> dyReLU -> 1x1 -> [DW (e2) -> dyReLU -> 1x1]
    with an inner residual; with e2 = 0 it is a plain DW-ReLU6-1x1 block without the Former.
    """

    def __init__(
        self, kind: str, cin: int, cout: int, stride: int, e1: int, e2: int, token_dim: int, groups: int = 1
    ) -> None:
        super().__init__()
        self.kind, self.stride, self.groups = kind, stride, groups
        self.identity = stride == 1 and cin == cout
        self.plain = e2 == 0
        if self.plain:
            self.conv_dw = nn.Sequential(
                _conv_bn(cin, cin * e1, 3, stride, groups=cin), nn.ReLU6(inplace=True)
            )
            self.conv_pw = _conv_bn(cin * e1, cout, groups=groups)
            return
        self.mobile2former = Mobile2Former(cin, token_dim)
        self.former = FormerBlock(token_dim)
        self.former2mobile = Former2Mobile(cout, token_dim)
        if kind == "b":
            hidden = round(cin * e1)
            self.conv1 = _conv_bn(cin, hidden, groups=groups)
            self.act1 = TokenHyper(token_dim, hidden)
            self.conv2 = _conv_bn(hidden, hidden, 3, stride, groups=hidden)
            self.act2 = TokenHyper(token_dim, hidden)
            self.conv3 = _conv_bn(hidden, cout, groups=groups)
        else:
            h1, h2 = round(cin * e1), round(cout * e2)
            self.conv1 = _conv_bn(cin, h1, 3, stride, groups=cin)
            self.act1 = TokenHyper(token_dim, h1)
            self.conv2 = _conv_bn(h1, cout, groups=groups)
            self.conv3 = _conv_bn(cout, h2, 3, 1, groups=cout)
            self.act3 = TokenHyper(token_dim, h2)
            self.conv4 = _conv_bn(h2, cout, groups=groups)

    def forward(self, x: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        if self.plain:
            out = self.conv_pw(channel_shuffle(self.conv_dw(x), x.shape[1] if self.groups > 1 else 1))
            return (out + x if self.identity else out), tokens
        tokens = self.former(self.mobile2former(x, tokens))
        if self.kind == "b":
            out = self.act1(channel_shuffle(self.conv1(x), self.groups), tokens)
            out = self.act2(self.conv2(out), tokens)
            out = channel_shuffle(self.conv3(out), self.groups)
            if self.identity:
                out = out + x
            return self.former2mobile(out, tokens), tokens
        out = self.act1(channel_shuffle(self.conv1(x), x.shape[1] if self.groups > 1 else 1), tokens)
        inner = self.conv2(out)
        out = self.act3(channel_shuffle(self.conv3(inner), inner.shape[1] if self.groups > 1 else 1), tokens)
        out = self.former2mobile(self.conv4(out) + inner, tokens)
        return (out + x if self.identity else out), tokens


class MobileFormer(nn.Module):
    """Stem, Mobile-Former blocks, a last Mobile->Former, and the merged (pixels + first token) head."""

    family = "mobile_former"

    def __init__(
        self,
        blocks: list,
        stem: int = 16,
        tokens: int = 6,
        token_dim: int = 192,
        num_features: int = 1920,
        groups: int = 1,
        num_classes: int = 1000,
        in_chans: int = 3,
        head_ratio: int = 6,
        drop_rate: float = 0.0,
        bits: int = 32,
        bits_first: int | None = None,
        bits_head: int | None = None,
        out_indices: tuple[int, ...] | None = None,
        img_size: int = 224,
    ) -> None:
        super().__init__()
        self.bits = check_bits("bits", bits)
        self.img_size = img_size
        self.num_classes = num_classes
        self.tokens = nn.Embedding(tokens, token_dim)
        self.stem = nn.Sequential(_conv_bn(in_chans, stem, 3, 2), nn.ReLU6(inplace=True))
        layers, cin, stride, self.feature_info = [], stem, 2, []
        for i, (kind, e1, cout, s, e2) in enumerate(blocks):
            if s == 2 and stride >= 4:
                self.feature_info.append(dict(num_chs=cin, reduction=stride, module=f"blocks.{i - 1}"))
            layers.append(MobileFormerBlock(kind, cin, cout, s, e1, e2, token_dim, groups))
            cin, stride = cout, stride * s
        self.feature_info.append(dict(num_chs=cin, reduction=stride, module=f"blocks.{len(blocks) - 1}"))
        self._level_of_block = {int(f["module"].split(".")[1]): i for i, f in enumerate(self.feature_info)}
        self.blocks = nn.ModuleList(layers)
        self.final_mobile2former = Mobile2Former(cin, token_dim)
        hidden = cin * head_ratio
        self.groups = groups
        self.head_conv = nn.Sequential(_conv_bn(cin, hidden, groups=groups), nn.ReLU6(inplace=True))
        self.head_fc = nn.Sequential(
            nn.Linear(hidden + token_dim, num_features), nn.BatchNorm1d(num_features), nn.Hardswish()
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, num_classes) if num_classes else nn.Identity()
        n = len(self.feature_info)
        self.out_indices = tuple(range(n)) if out_indices is None else tuple(i % n for i in out_indices)
        self._init_weights()
        self.num_quantized = quantize_modules(
            self,
            bits,
            check_bits("bits_first", bits_first or bits),
            check_bits("bits_head", bits_head or bits),
            ("head",),
        )

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(
                    m.weight, 0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5
                )
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def check_input(self, x: Tensor) -> None:
        """One-line error for sizes the last stage cannot take."""
        stride = self.feature_info[-1]["reduction"]
        h, w = x.shape[-2:]
        if h % stride or w % stride:
            raise ConfigError(
                f"input {h}x{w} is not allowed for Mobile-Former; allowed values: "
                f"height and width divisible by {stride}"
            )

    def _run(self, x: Tensor, collect: bool) -> tuple[Tensor, Tensor, list[Tensor]]:
        self.check_input(x)
        tokens = self.tokens.weight.unsqueeze(1).repeat(1, x.shape[0], 1)
        x = self.stem(x)
        feats = []
        for i, blk in enumerate(self.blocks):
            x, tokens = blk(x, tokens)
            if collect and i in self._level_of_block:
                feats.append(x)
        return x, tokens, feats

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps ``[B, C, H, W]`` of the levels in ``out_indices`` (strides 4, 8, 16, 32)."""
        feats = self._run(x, collect=True)[2]
        return [feats[i] for i in self.out_indices]

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and the merged (pixels + first token) pre-logits feature ``[B, num_features]``."""
        x, tokens, _ = self._run(x, collect=False)
        tokens = self.final_mobile2former(x, tokens)
        z = F.hardswish(F.adaptive_avg_pool2d(self.head_conv(channel_shuffle(x, self.groups)), 1).flatten(1))
        z = self.head_fc(torch.cat([z, tokens[0]], dim=1))
        return self.head(self.head_drop(z)), z

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_features(x)[0]

    def reset(self) -> None:
        """No neuron state (ANN); kept for a uniform interface."""

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


for _name, _v in MOBILE_FORMER_CFGS.items():
    register_variant(
        _name,
        "mobile_former",
        MobileFormer,
        dict(
            blocks=_v["blocks"],
            stem=_v["stem"],
            tokens=_v["tokens"],
            token_dim=_v["token_dim"],
            num_features=_v["features"],
            groups=_v["groups"],
            num_classes=_v["classes"],
            img_size=_v["img"],
        ),
        doc=f"Mobile-Former {_name}: {_v['tokens']} tokens x {_v['token_dim']}, stem {_v['stem']}, "
        f"head {_v['features']}.",
        paper=dict(params_m=_v["params_m"], img_size=_v["img"]),
    )

"""The 4-stage spiking MetaFormer macro shared by Spike-driven Transformer V2 and QSD-Transformer.

Stage 1: 7x7 s2 conv -> Conv-block (C0/2) -> 3x3 s2 conv -> Conv-block (C0)   stride 4
Stage 2: 3x3 s2 conv -> 2 Conv-blocks (C1)                                     stride 8
Stage 3: 3x3 s2 conv -> 0.75 depth Transformer blocks (C2)                     stride 16
Stage 4: 3x3 s1 conv -> 0.25 depth Transformer blocks (C3)                     stride 16
Conv-block = SepConv residual (SN -> PW 2x -> BN -> SN -> DW 7x7 -> PW -> BN) + channel-conv residual
(SN -> 3x3 4x -> BN -> SN -> 3x3 -> BN). Transformer block = RepConv Q-SDSA + conv MLP (ratio 4).
Official code: BICLab/Spike-Driven-Transformer-V2 ``classification/models.py`` (``Spiking_vit_MetaFormer``)
and bollossom/QSD-Transformer ``classification/models.py`` (LSQ everywhere, ``Multispike``, layer scale).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.errors import check_choice
from bench.models.base import SpikeOptions, SpikingBackbone
from bench.nn.blocks import TransformerBlock, time_conv
from bench.nn.neurons import Spikes
from bench.nn.quant import QConv2d
from bench.nn.repconv import bn_affine
from bench.nn.shortcut import Residual, Transition
from bench.registry import register_variant


class SepConv(nn.Module):
    """Spikes -> PW (C -> 2C) -> BN -> SN -> DW 7x7 -> PW (2C -> C) -> BN; ``fuse()`` folds DW+PW+BN."""

    def __init__(self, dim: int, opts: SpikeOptions, ratio: int = 2, kernel: int = 7) -> None:
        super().__init__()
        med = dim * ratio
        self.pw1 = QConv2d(dim, med, 1, bias=False, bits=opts.bits)
        self.bn1 = nn.BatchNorm2d(med)
        self.neuron = opts.make_neuron()
        self.dw = QConv2d(med, med, kernel, padding=kernel // 2, groups=med, bias=False, bits=opts.bits)
        self.pw2 = QConv2d(med, dim, 1, bias=False, bits=opts.bits)
        self.bn2 = nn.BatchNorm2d(dim)
        self.fused: QConv2d | None = None

    def forward(self, s: Tensor | Spikes) -> Tensor:
        x = self.neuron(time_conv(self.pw1, self.bn1, s))
        if self.fused is not None:
            return time_conv(self.fused, nn.Identity(), x)
        return time_conv(lambda z: self.pw2(self.dw(z)), self.bn2, x)

    @torch.no_grad()
    def fuse(self) -> None:
        """One k x k conv (2C -> C) with bias = BN2(PW(DW(.))), so the spikes feed it directly."""
        wd = self.dw.quantized_weight()[:, 0]  # [M, k, k]
        wp = self.pw2.quantized_weight()[:, :, 0, 0]  # [O, M]
        a, c = bn_affine(self.bn2)
        fused = QConv2d(wp.shape[1], wp.shape[0], wd.shape[-1], padding=self.dw.padding, bias=True).to(wp)
        fused.weight.copy_(torch.einsum("om,mxy->omxy", wp, wd) * a.view(-1, 1, 1, 1))
        fused.bias.copy_(c)
        self.fused = fused

    def unfuse(self) -> None:
        self.fused = None


class ChannelConv(nn.Module):
    """Spikes -> 3x3 conv (C -> rC) -> BN -> SN -> 3x3 conv (rC -> C) -> BN."""

    def __init__(self, dim: int, opts: SpikeOptions, ratio: int = 4) -> None:
        super().__init__()
        self.conv1 = QConv2d(dim, dim * ratio, 3, padding=1, bias=False, bits=opts.bits)
        self.bn1 = nn.BatchNorm2d(dim * ratio)
        self.neuron = opts.make_neuron()
        self.conv2 = QConv2d(dim * ratio, dim, 3, padding=1, bias=False, bits=opts.bits)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, s: Tensor | Spikes) -> Tensor:
        return time_conv(self.conv2, self.bn2, self.neuron(time_conv(self.conv1, self.bn1, s)))


class ConvBlock(nn.Sequential):
    """SepConv residual then channel-conv residual."""

    def __init__(self, dim: int, opts: SpikeOptions) -> None:
        super().__init__(
            Residual(SepConv(dim, opts), opts.shortcut, opts.make_neuron()),
            Residual(ChannelConv(dim, opts), opts.shortcut, opts.make_neuron()),
        )


class SpikingMetaFormer(SpikingBackbone):
    """Four stages (strides 4, 8, 16, 16) of widths ``dims``; ``depth`` transformer blocks in stages 3-4.

    ``bn_momentum``: of every BatchNorm (PyTorch's default 0.1, as the official code; None = cumulative mean).
    ``bn_init``: the initial weight (gamma) of every BatchNorm (PyTorch's default 1, as the official code).
    Below 1 it starts the membrane inputs narrower, so fewer IE-LIF neurons start saturated above V_th (where
    the straight-through gradient is zero; cf. threshold-dependent BN, Zheng et al. 2021).
    ``zero_init_branches``: the last BN of every transformer residual branch starts with weight 0, so each
    block starts as the identity (Goyal et al. 2017, "zero-init residual"; the effect of QSD's layer scale).
    Neither applies to SEW residuals, whose branch ends in a neuron that a zero input keeps silent.
    ``stage3_stride``: of stage 3's downsampling conv (2, the official code). 1 keeps stages 3-4 at stride 8
    (strides 4, 8, 8, 8): a 16 px input then gives them 2 x 2 tokens instead of one, where Q (K^T V) is
    (q . k) v and a head whose q and k stop sharing spikes goes silent for good (docs/ablations.md).
    """

    def __init__(
        self,
        dims: tuple[int, int, int, int] = (128, 256, 512, 640),
        depth: int = 8,
        heads: int = 8,
        in_chans: int = 3,
        num_classes: int = 1000,
        mlp_ratio: float = 4.0,
        attn_scale: float = 0.125,
        layer_scale: float | None = None,
        bn_momentum: float | None = 0.1,
        bn_init: float = 1.0,
        zero_init_branches: bool = False,
        out_indices: tuple[int, ...] | None = None,
        stage3_stride: int = 2,
        **options,
    ) -> None:
        options.setdefault("attention", "q-sdsa")
        opts = SpikeOptions.from_kwargs(options)
        super().__init__(opts, num_classes, out_indices)
        s3 = check_choice("stage3_stride", stage3_stride, (1, 2))
        c0, c1, c2, c3 = dims
        sc = opts.shortcut

        def trans(cin: int, cout: int, k: int, s: int, first: bool = False) -> Transition:
            conv = QConv2d(cin, cout, k, s, k // 2, bias=True, bits=opts.bits_first if first else opts.bits)
            return Transition(conv, nn.BatchNorm2d(cout), sc, opts.make_neuron(), first=first)

        def blocks(dim: int, n: int) -> nn.Sequential:
            return nn.Sequential(
                *(
                    TransformerBlock(dim, heads, mlp_ratio, opts, "repconv", attn_scale, layer_scale)
                    for _ in range(n)
                )
            )

        self.stem = trans(in_chans, c0 // 2, 7, 2, first=True)
        self.stage1 = nn.Sequential(ConvBlock(c0 // 2, opts), trans(c0 // 2, c0, 3, 2), ConvBlock(c0, opts))
        self.stage2 = nn.Sequential(trans(c0, c1, 3, 2), ConvBlock(c1, opts), ConvBlock(c1, opts))
        self.stage3 = nn.Sequential(trans(c1, c2, 3, s3), *blocks(c2, int(depth * 0.75)))
        self.stage4 = nn.Sequential(trans(c2, c3, 3, 1), *blocks(c3, int(depth * 0.25)))
        self.feature_info = [
            dict(num_chs=c, reduction=r, module=f"stage{i + 1}")
            for i, (c, r) in enumerate(zip(dims, (4, 8, 8 * s3, 8 * s3), strict=True))
        ]
        self._build_head(c3)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = bn_momentum
                if m.affine:
                    nn.init.constant_(m.weight, bn_init)
        if zero_init_branches and sc != "sew":
            for blk in self.modules():
                if isinstance(blk, TransformerBlock):
                    nn.init.zeros_(blk.attn.branch.out.bn.weight)
                    nn.init.zeros_(blk.mlp.branch.bn2.weight)

    def forward_stages(self, x: Tensor, upto: int | None = None) -> list[Tensor]:
        x = self.run_block(self.stem, x, self.T)
        states = []
        for i, stage in enumerate((self.stage1, self.stage2, self.stage3, self.stage4)):
            x = self.run_block(stage, x)
            states.append(x)
            if upto is not None and i >= upto:
                break
        return states


def register_metaformer(
    name: str, family: str, shape: tuple, defaults: dict, tiny: dict, doc: str, paper: dict
) -> None:
    """Register a Meta-SpikeFormer variant: ``shape`` = (dims, depth, heads, classes), then the family's
    ``defaults``; a ``*tiny`` name adds ``tiny`` (its CPU settings) and is measured at 32 px, else 224."""
    dims, depth, heads, classes = shape
    is_tiny = name.endswith("tiny")
    register_variant(
        name,
        family,
        SpikingMetaFormer,
        dict(dims=dims, depth=depth, heads=heads, num_classes=classes) | defaults | (tiny if is_tiny else {}),
        doc=doc,
        paper=dict(paper, img_size=32 if is_tiny else 224),
    )

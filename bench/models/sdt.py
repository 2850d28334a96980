"""Spike-driven Transformer v1 (Yao et al., NeurIPS 2023, arXiv 2307.01694).

SPS patch splitting (4 conv-BN-SN stages with max-pools, then a conv relative position embedding) and L
blocks of SDSA + conv MLP with membrane shortcuts; head: token mean -> SN -> linear -> mean over T.
Official code: BICLab/Spike-Driven-Transformer (``model/spikeformer.py``, ``module/sps.py``,
``module/ms_conv.py``). Not carried over: the unused ``talking_heads`` Conv1d (h*h weights per block).
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.models.base import SpikeOptions, SpikingBackbone
from bench.nn.blocks import TransformerBlock, time_conv
from bench.nn.neurons import spike_map
from bench.nn.quant import QConv2d
from bench.registry import register_variant

# name: (depth L, embed dim D, heads, img size, classes, pooling_stat, T)
SDT_CFGS = {
    "sdt_8_384": (8, 384, 8, 224, 1000, "1111", 4),
    "sdt_6_512": (6, 512, 8, 224, 1000, "1111", 4),
    "sdt_8_512": (8, 512, 8, 224, 1000, "1111", 4),
    "sdt_10_512": (10, 512, 8, 224, 1000, "1111", 4),
    "sdt_8_768": (8, 768, 8, 224, 1000, "1111", 4),
    "sdt_2_512_cifar": (2, 512, 8, 32, 10, "0011", 4),
    "sdt_tiny": (2, 64, 4, 32, 10, "0011", 2),
}
PAPER_PARAMS_M = {
    "sdt_8_384": 16.81,
    "sdt_6_512": 23.37,
    "sdt_8_512": 29.68,
    "sdt_10_512": 36.01,
    "sdt_8_768": 66.34,
    "sdt_2_512_cifar": 10.23,
}


class SPS(nn.Module):
    """Spiking patch splitting: conv-BN-SN(-pool) x3, conv-BN(-pool), then membrane-shortcut RPE conv."""

    def __init__(self, in_chans: int, dim: int, pooling: str, opts: SpikeOptions) -> None:
        super().__init__()
        widths = [in_chans, dim // 8, dim // 4, dim // 2, dim]
        self.pool_flags = [c == "1" for c in pooling]
        self.convs = nn.ModuleList(
            QConv2d(
                widths[i],
                widths[i + 1],
                3,
                padding=1,
                bias=False,
                bits=opts.bits_first if i == 0 else opts.bits,
            )
            for i in range(4)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(w) for w in widths[1:])
        self.neurons = nn.ModuleList(opts.make_neuron() for _ in range(4))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.rpe_conv = QConv2d(dim, dim, 3, padding=1, bias=False, bits=opts.bits)
        self.rpe_bn = nn.BatchNorm2d(dim)
        self.reduction = 2 ** sum(self.pool_flags)

    def forward(self, img: Tensor, T: int) -> Tensor:
        y = self.bns[0](self.convs[0](img))  # pixels: computed once, the same at every step
        x = y.unsqueeze(0).expand(T, *y.shape)
        for i in range(3):
            s = self.neurons[i](x)
            if self.pool_flags[i]:
                s = spike_map(self.pool, s.flatten(0, 1)).reshape(T, -1, *self._pooled(s.shape[2:]))
            x = time_conv(self.convs[i + 1], self.bns[i + 1], s)
        if self.pool_flags[3]:
            x = self.pool(x.flatten(0, 1)).reshape(T, -1, *self._pooled(x.shape[2:]))
        return x + time_conv(self.rpe_conv, self.rpe_bn, self.neurons[3](x))

    @staticmethod
    def _pooled(shape) -> tuple[int, int, int]:
        c, h, w = shape
        return c, (h - 1) // 2 + 1, (w - 1) // 2 + 1


class SpikeDrivenTransformer(SpikingBackbone):
    """SDT v1: SPS + ``depth`` blocks at dim ``dim``; every block is a feature level (stride 16 at 224)."""

    def __init__(
        self,
        depth: int = 8,
        dim: int = 384,
        heads: int = 8,
        in_chans: int = 3,
        num_classes: int = 1000,
        pooling: str = "1111",
        mlp_ratio: float = 4.0,
        out_indices: tuple[int, ...] | None = None,
        **options,
    ) -> None:
        options.setdefault("attention", "sdsa")
        opts = SpikeOptions.from_kwargs(options)
        super().__init__(opts, num_classes, out_indices if out_indices is not None else (depth - 1,))
        if len(pooling) != 4 or set(pooling) - {"0", "1"}:
            raise ValueError(f"pooling={pooling!r} is not allowed; allowed values: 4 characters of 0/1")
        self.patch_embed = SPS(in_chans, dim, pooling, opts)
        self.embed_neuron = opts.make_neuron() if opts.shortcut != "ms" else None
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, opts, proj="conv", scale=0.125) for _ in range(depth)
        )
        self.feature_info = [
            dict(num_chs=dim, reduction=self.patch_embed.reduction, module=f"blocks.{i}")
            for i in range(depth)
        ]
        self._build_head(dim)

    def forward_stages(self, x: Tensor, upto: int | None = None) -> list[Tensor]:
        x = self.run_block(self.patch_embed, x, self.T)
        if self.embed_neuron is not None:
            x = self.embed_neuron(x)
        states = []
        for i, blk in enumerate(self.blocks):
            x = self.run_block(blk, x)
            states.append(x)
            if upto is not None and i >= upto:
                break
        return states


for _name, (_depth, _dim, _heads, _img, _classes, _pool, _T) in SDT_CFGS.items():
    register_variant(
        _name,
        "sdt",
        SpikeDrivenTransformer,
        dict(depth=_depth, dim=_dim, heads=_heads, num_classes=_classes, pooling=_pool, T=_T),
        doc=f"SDT v1 {_name}: L={_depth}, D={_dim}, {_heads} heads, {_img} px, pooling {_pool}, T={_T}.",
        paper=dict(params_m=PAPER_PARAMS_M.get(_name), img_size=_img),
    )

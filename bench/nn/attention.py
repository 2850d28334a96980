"""Spiking and softmax self-attention behind one interface.

Every variant maps input spikes ``s`` ``[T, B, C, H, W]`` to a membrane update of the same shape:
Q, K, V = SN(BN(proj(s))) (projections: 1x1 conv as in SDT v1, or RepConv as in SDT v2 / QSD), then

- ``sdsa`` (SDT v1, code ``MS_SSA_Conv``): ``Y = Q * SN_att(SUM_tokens(K * V))`` (Hadamard masks and a
  column sum; the paper writes SN(SUM_c(Q*K)) * V, the code masks Q: we follow the code);
- ``q-sdsa`` (SDT v2 SDSA-3 / QSD Q-SDSA): ``Y = SN_att(Q (K^T V) * scale)``; alias ``sdsa-3``;
- ``ssa`` (Spikformer): ``Y = SN_att((Q K^T) V * scale)``;
- ``softmax``: real-valued Q, K, V (no neurons), ``Y = softmax(Q K^T / sqrt(d)) V``;

and the output projection. The attention neuron is SN with V_th 0.5 (LIF) or spike value 2/D (IE-LIF).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.errors import check_choice
from bench.nn.neurons import MembraneRectifier, Spikes, as_tensor, build_neuron, spike_map, spike_mul
from bench.nn.quant import QConv2d
from bench.nn.repconv import RepConv

ATTENTIONS = ("sdsa", "q-sdsa", "sdsa-3", "ssa", "softmax")
PROJECTIONS = ("conv", "repconv")


class MatMul(nn.Module):
    """``a @ b`` as a module, so that measurement hooks see both operands (spike carriers stay visible)."""

    def forward(self, a: Tensor | Spikes, b: Tensor | Spikes) -> Tensor:
        return as_tensor(a) @ as_tensor(b)


class MaskSum(nn.Module):
    """``sum over tokens of a * b`` (SDSA's Hadamard mask and column sum) as a module for measurement."""

    def forward(self, a: Tensor | Spikes, b: Tensor | Spikes) -> Tensor:
        return (as_tensor(a) * as_tensor(b)).sum(-2, keepdim=True)


def _to_heads(x: Tensor, heads: int) -> Tensor:
    t, b, c, h, w = x.shape
    return x.flatten(3).transpose(-1, -2).reshape(t, b, h * w, heads, c // heads).permute(0, 1, 3, 2, 4)


def _from_heads(y: Tensor, c: int, h: int, w: int) -> Tensor:
    return y.transpose(3, 4).reshape(y.shape[0], y.shape[1], c, h, w)


class _Projection(nn.Module):
    """Spikes -> BN(conv(spikes)) over time: 1x1 conv + BN, or RepConv + BN."""

    def __init__(self, dim: int, kind: str, bits: int, bias: bool) -> None:
        super().__init__()
        if kind == "conv":
            self.conv = QConv2d(dim, dim, 1, bias=bias, bits=bits)
        else:
            self.conv = RepConv(dim, dim, bits=bits)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, s: Tensor | Spikes) -> Tensor:
        t, b = s.shape[:2]
        y = self.bn(self.conv(s.flatten(0, 1)))
        return y.reshape(t, b, *y.shape[1:])


class SpikingAttention(nn.Module):
    """One attention block of kind ``attention`` (see module docstring); input spikes, output membrane."""

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        attention: str = "sdsa",
        neuron: str = "lif",
        levels: int = 4,
        bits: int = 32,
        proj: str = "conv",
        scale: float = 0.125,
        rectify: bool = False,
        decay_input: bool = True,
    ) -> None:
        super().__init__()
        self.kind = check_choice("attention", attention, ATTENTIONS)
        if self.kind == "sdsa-3":
            self.kind = "q-sdsa"
        check_choice("projection", proj, PROJECTIONS)
        if dim % heads:
            raise ValueError(f"attention dim={dim} is not divisible by heads={heads}")
        self.heads = heads
        self.scale = scale
        spiking = self.kind != "softmax"
        self.q = _Projection(dim, proj, bits, bias=False)
        self.k = _Projection(dim, proj, bits, bias=False)
        self.v = _Projection(dim, proj, bits, bias=False)
        self.rectify = (
            nn.ModuleList([MembraneRectifier(dim) for _ in range(3)]) if rectify and spiking else None
        )
        make = lambda role="default": build_neuron(neuron, levels, role, decay_input=decay_input)  # noqa: E731
        self.q_neuron = make() if spiking else None
        self.k_neuron = make() if spiking else None
        self.v_neuron = make() if spiking else None
        self.attn_neuron = make("attention") if spiking else None
        self.out = _Projection(dim, proj, bits, bias=proj == "conv")
        self.capture: list | None = None  # set by bench.nn.distill.capture_qkv
        if self.kind == "sdsa":
            self.mask_sum = MaskSum()
        else:
            self.matmul1, self.matmul2 = MatMul(), MatMul()

    def qkv(self, s: Tensor | Spikes) -> tuple[Tensor | Spikes, ...]:
        """Q, K, V before splitting into heads (spikes, or real values for ``softmax``)."""
        outs = []
        for i, (proj, neuron) in enumerate(
            ((self.q, self.q_neuron), (self.k, self.k_neuron), (self.v, self.v_neuron))
        ):
            u = proj(s)
            if self.rectify is not None:
                u = self.rectify[i](u)
            outs.append(neuron(u) if neuron is not None else u)
        return tuple(outs)

    def forward(self, s: Tensor | Spikes) -> Tensor:
        c, h, w = s.shape[2:]
        qkv = self.qkv(s)
        if self.capture is not None:
            self.capture.append(tuple(as_tensor(z) for z in qkv))
        q, k, v = (spike_map(lambda x: _to_heads(x, self.heads), z) for z in qkv)
        if self.kind == "sdsa":
            # AND of binary K and V planes then a column sum: accumulating counts is the same sum.
            y = spike_mul(q, self.attn_neuron(self.mask_sum(k, v)))
        elif self.kind == "q-sdsa":
            y = self.attn_neuron(self.matmul2(q, self.matmul1(k.transpose(-2, -1), v)) * self.scale)
        elif self.kind == "ssa":
            y = self.attn_neuron(self.matmul2(self.matmul1(q, k.transpose(-2, -1)), v) * self.scale)
        else:
            attn = torch.softmax(self.matmul1(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)
            y = self.matmul2(attn, v)
        y = spike_map(lambda z: _from_heads(z, c, h, w), y)
        return self.out(y)

"""Attention variants compute their formulas; shortcuts combine branch and state as documented."""

import pytest
import torch

import bench
from bench.measure.firing import FiringRateMonitor
from bench.nn.attention import SpikingAttention
from bench.nn.neurons import LIF, reset_neurons
from bench.nn.shortcut import Residual


def _core(attn, s):
    """Q, K, V split into heads, and the tensor entering the output projection."""
    seen = {}
    hook = attn.out.register_forward_pre_hook(lambda m, inp: seen.setdefault("y", inp[0]))
    with torch.no_grad():
        reset_neurons(attn)
        q, k, v = attn.qkv(s)
        reset_neurons(attn)
        attn(s)
    hook.remove()
    heads = attn.heads

    def split(x):
        t, b, c, h, w = x.shape
        return x.flatten(3).transpose(-1, -2).reshape(t, b, h * w, heads, c // heads).permute(0, 1, 3, 2, 4)

    def merge(y, shape):
        return y.transpose(3, 4).reshape(shape)

    return split(q), split(k), split(v), seen["y"], merge, s.shape


def _spikes(shape, p=0.3):
    return (torch.rand(shape) < p).float()


def test_sdsa_is_hadamard_mask_column_sum_and_neuron():
    attn = SpikingAttention(16, heads=2, attention="sdsa").eval()
    s = _spikes((2, 1, 16, 4, 4))
    q, k, v, y, merge, shape = _core(attn, s)
    kv = (k * v).sum(-2, keepdim=True)
    mask = LIF(v_threshold=0.5)(kv)
    assert set(q.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(y, merge(q * mask, shape))


@pytest.mark.parametrize("kind,scale", [("q-sdsa", 0.125), ("ssa", 0.125)])
def test_linear_and_spikformer_attention_formulas(kind, scale):
    attn = SpikingAttention(16, heads=2, attention=kind, scale=scale).eval()
    s = _spikes((2, 1, 16, 4, 4))
    q, k, v, y, merge, shape = _core(attn, s)
    z = q @ (k.transpose(-2, -1) @ v) if kind == "q-sdsa" else (q @ k.transpose(-2, -1)) @ v
    assert torch.equal(y, merge(LIF(v_threshold=0.5)(z * scale), shape))


def test_softmax_attention_matches_torch_sdpa():
    attn = SpikingAttention(16, heads=2, attention="softmax").eval()
    s = _spikes((2, 1, 16, 4, 4))
    q, k, v, y, merge, shape = _core(attn, s)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(y, merge(ref, shape), atol=1e-5)


class _Double(torch.nn.Module):
    def forward(self, x):
        return 2 * x


def test_shortcut_kinds():
    u = torch.tensor([[0.4, 1.6, 3.0]])  # T = 1
    ms = Residual(_Double(), "ms", LIF())(u)  # u + 2 SN(u)
    assert torch.allclose(ms, torch.tensor([[0.4, 1.6, 5.0]]))  # LIF charge u/2 fires only at 3.0
    s = torch.tensor([[0.0, 1.0, 1.0]])
    sew = Residual(_Double(), "sew", LIF())(s)  # s + SN(2 s): LIF charge 2s/2 = s -> fires where s = 1
    assert sew.tolist() == [[0.0, 2.0, 2.0]]
    van = Residual(_Double(), "vanilla", LIF())(s)  # SN(2 s + s): charge 1.5 s
    assert van.tolist() == [[0.0, 1.0, 1.0]]


@pytest.mark.parametrize(
    ("name", "shortcut"), [("qsd_tiny", "sew"), ("sdtv2_tiny", "sew"), ("qsd_tiny", "ms")]
)
def test_no_residual_starts_silent(name, shortcut):
    """A fresh backbone fires in every neuron layer, SEW too (no layer scale or zero BN before its neuron)."""
    torch.manual_seed(0)
    model = bench.create_model(name, shortcut=shortcut).train()  # batch statistics in every BN
    with torch.no_grad(), FiringRateMonitor(model) as mon:
        model(torch.randn(4, 3, 32, 32))
    silent = [r["neuron"] for r in mon.table() if r["fr"] < 1e-4]
    assert len(mon.table()) > 10 and not silent, silent

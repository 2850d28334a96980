"""LSQ weight quantizer (its one-node autograd and eval cache) and the uniform feature quantizer."""

import math

import pytest
import torch

from bench.errors import ConfigError
from bench.nn.quant import (
    LSQWeight,
    QConv2d,
    QLinear,
    UniformQuantizer,
    grad_scale,
    lsq_fake_quantize,
    lsq_range,
    weight_cache,
)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8])
def test_lsq_levels_per_output_channel_and_gradients(bits):
    conv = QConv2d(16, 8, 3, bits=bits)
    w = conv.quantized_weight()
    for o in range(w.shape[0]):
        assert w[o].unique().numel() <= 2**bits
    out = conv(torch.randn(2, 16, 6, 6))
    out.square().mean().backward()
    assert conv.quantizer.step.grad is not None and conv.quantizer.step.grad.abs().sum() > 0
    assert conv.weight.grad.abs().sum() > 0


def test_lsq_init_range_and_codes():
    q = LSQWeight(4, 4)
    w = torch.randn(4, 10)
    wq = q(w)
    qn, qp = lsq_range(4)
    assert (qn, qp) == (-8, 7)
    assert torch.allclose(q.step, torch.full((4,), float(2 * w.abs().mean() / math.sqrt(7))))
    codes = q.integer_weight(w)
    assert codes.min() >= qn and codes.max() <= qp
    assert torch.allclose(codes * q.step.view(-1, 1), wq)


def test_lsq_step_gradient_matches_the_paper_formula():
    # dWq/ds = -w/s + round(w/s) inside the range, Qn or Qp outside; scaled by g = 1/sqrt(N Qp)
    q = LSQWeight(1, 3)
    w = torch.tensor([[0.05, 0.31, -0.9, 2.0]])
    q(w)  # initialise
    with torch.no_grad():
        q.step.fill_(0.1)
    q(w).sum().backward()
    r = w / 0.1
    qn, qp = lsq_range(3)
    expected = torch.where(
        r < qn, torch.tensor(float(qn)), torch.where(r > qp, torch.tensor(float(qp)), r.round() - r)
    )
    g = 1 / math.sqrt(w.numel() * qp)
    assert torch.allclose(q.step.grad, expected.sum().view(1) * g, atol=1e-5)


def test_full_precision_has_no_quantizer():
    lin = QLinear(5, 3, bits=32)
    assert lin.quantizer is None and torch.equal(lin.quantized_weight(), lin.weight)


@pytest.mark.parametrize("bits", [0, 9, 16, -1, 2.5, "4"])
def test_bits_out_of_range_is_a_one_line_error(bits):
    with pytest.raises(ConfigError) as err:
        QConv2d(3, 3, 1, bits=bits)
    assert "allowed values: 1..8 or 32" in str(err.value) and "\n" not in str(err.value)


def test_uniform_quantizer_levels_bounds_and_gradients():
    uq = UniformQuantizer(bits=2)
    x = torch.linspace(-1, 3, 101, requires_grad=True)
    y = uq(x)
    assert y.unique().numel() == 4
    assert torch.isclose(y.min(), torch.tensor(-1.0)) and torch.isclose(y.max(), torch.tensor(3.0))
    (y * torch.linspace(0, 1, 101)).sum().backward()
    assert x.grad.abs().sum() > 0 and uq.upper.grad is not None


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal float32 tensors (zero signs included); NaNs at the same places, payloads aside."""
    nan = a.isnan()
    return torch.equal(nan, b.isnan()) and torch.equal(_bits(a)[~nan], _bits(b)[~nan])


def _composite(w, s, qn, qp):
    """LSQ as the official code writes it (autograd of the composite)."""
    c = (w / s).clamp(qn, qp)
    return ((c.round() - c).detach() + c) * s


@pytest.mark.parametrize("shape", [(8, 16, 3, 3), (32, 1, 7, 7), (64, 32, 1, 1), (10, 20), (7, 5, 1)])
def test_lsq_node_is_the_composite_bit_for_bit(shape):
    qn, qp = lsq_range(4)
    w = torch.randn(shape) * 0.05
    # exact half steps, signed zeros, values clipped on both sides, a NaN
    w.view(-1)[:9] = torch.tensor([0.0, -0.0, 0.005, -0.005, -0.002, 0.035, 0.9, -0.9, float("nan")])
    step = torch.rand(shape[0]) * 0.02 + 0.005
    step[0] = 0.01
    grad = torch.randn(shape)
    results = []
    for fn in (_composite, lsq_fake_quantize):
        wl, sl = w.clone().requires_grad_(), step.clone().requires_grad_()
        sv = grad_scale(sl.view(-1, *([1] * (len(shape) - 1))), 1 / math.sqrt(w.numel() * qp))
        y = fn(wl, sv, qn, qp)
        y.backward(grad)
        with torch.no_grad():
            y_nograd = fn(w, sv, qn, qp)
        results.append((y, y_nograd, wl.grad, sl.grad))
    for ref, ours in zip(*results, strict=True):
        assert _same_bits(ref, ours)


def test_eval_weight_cache_is_exact_and_follows_every_weight_change():
    conv = QConv2d(8, 16, 3, bits=4)
    x = torch.randn(2, 8, 6, 6)
    opt = torch.optim.SGD(conv.parameters(), lr=0.1)
    conv(x).square().sum().backward()
    opt.step()
    conv.eval()

    def fresh():
        with weight_cache(False):
            return conv.quantized_weight()

    with torch.no_grad():
        w1 = conv.quantized_weight()
        assert conv.quantized_weight() is w1 and torch.equal(_bits(w1), _bits(fresh()))
        assert torch.equal(_bits(conv(x)), _bits(torch.nn.functional.conv2d(x, fresh(), conv.bias)))

    def write(fn):
        def run():
            with torch.no_grad():
                fn()

        return run

    def fused_step_while_cached():  # a fused optimizer writes without bumping the version counter
        conv.train()
        y = conv(x)
        conv.eval()
        with torch.no_grad():
            conv(x)  # fills the cache
        y.sum().backward()
        torch.optim.SGD(conv.parameters(), lr=0.1, fused=True).step()

    changes = {
        "optimizer step": lambda: (conv.train(), conv(x).sum().backward(), opt.step(), conv.eval()),
        "fused optimizer step": fused_step_while_cached,
        "in-place write": write(lambda: conv.weight.mul_(0.5)),
        "step write": write(lambda: conv.quantizer.step.mul_(2.0)),
        "load_state_dict": lambda: conv.load_state_dict(
            {k: v * 3 if k == "weight" else v for k, v in conv.state_dict().items()}
        ),
        "dtype": lambda: conv.double(),
    }
    for what, change in changes.items():
        with torch.no_grad():
            before = conv.quantized_weight().clone()
        change()
        with torch.no_grad():
            after = conv.quantized_weight()
            assert not torch.equal(after.double(), before.double()), what
            assert torch.equal(after, fresh()), what
    assert conv.train().quantizer._cache is None  # training frees it


def test_model_eval_with_cache_is_the_uncached_model_after_training():
    from bench.registry import create_model

    model = create_model("qsd_tiny")
    x = torch.randn(2, 3, 32, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        model.train()
        model(x).square().mean().backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            cached, again = model(x), model(x)
            with weight_cache(False):
                uncached = model(x)
        assert torch.equal(_bits(cached), _bits(uncached)) and torch.equal(_bits(again), _bits(uncached))

"""LSQ weight quantizer and the uniform feature quantizer."""

import math

import pytest
import torch

from bench.errors import ConfigError
from bench.nn.quant import LSQWeight, QConv2d, QLinear, UniformQuantizer, lsq_range


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

"""Neurons: LIF vs its definition and spikingjelly; IE-LIF levels, gradients, virtual-step expansion."""

import pytest
import torch

from bench.errors import ConfigError
from bench.nn.neurons import IELIF, LIF, BaseNeuron, MembraneRectifier, Spikes, build_neuron


def reference_lif(x, tau=2.0, vth=1.0):
    """spikingjelly LIFNode semantics written step by step: decay_input, hard reset to 0."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        s = (h >= vth).float()
        v = h * (1 - s)
        out.append(s)
    return torch.stack(out)


def test_lif_forward_matches_definition_and_generic_loop():
    x = torch.randn(6, 3, 17) * 2
    lif = LIF()
    assert torch.equal(lif(x), reference_lif(x))
    generic = BaseNeuron.forward(LIF(), x)  # charge/fire/reset through autograd, no fused kernel
    assert torch.equal(generic, reference_lif(x))


@pytest.mark.parametrize("detach_reset", [True, False])
def test_fused_lif_gradient_equals_autograd_of_charge_fire_reset(detach_reset):
    x = (torch.randn(5, 4, 9) * 2).requires_grad_()
    w = torch.randn(5, 4, 9)
    fused = LIF(detach_reset=detach_reset)
    (fused(x) * w).sum().backward()
    g_fused = x.grad.clone()
    x.grad = None
    loop = LIF(detach_reset=detach_reset)
    (BaseNeuron.forward(loop, x) * w).sum().backward()
    assert torch.allclose(g_fused, x.grad, atol=1e-6)
    assert g_fused.abs().sum() > 0


def test_lif_matches_spikingjelly_forward_and_backward():
    from spikingjelly.activation_based import neuron as sj

    x = (torch.randn(4, 2, 8, 5, 5) * 1.5).requires_grad_()
    ref = sj.LIFNode(tau=2.0, detach_reset=True, step_mode="m")
    y_ref = ref(x)
    y_ref.sum().backward()
    g_ref = x.grad.clone()
    x.grad = None
    y = LIF()(x)
    y.sum().backward()
    assert torch.equal(y, y_ref)
    assert torch.allclose(x.grad, g_ref, atol=1e-6)


def test_neuron_state_persists_until_reset():
    lif = LIF()
    x = torch.full((1, 3), 1.5)
    assert lif(x).sum() == 0  # h = 0.75 < 1
    assert lif(x).sum() == 3  # h = 0.75 + (1.5 - 0.75) / 2 = 1.125
    lif.reset()
    assert lif.v is None and lif(x).sum() == 0


def test_ielif_matches_official_multispike_at_T1():
    x = torch.linspace(-0.5, 1.5, 201).view(1, -1)
    s = IELIF(levels=4)(x)
    expected = torch.floor(torch.clamp(4 * x, 0, 4) + 0.5) / 4  # QSD Multispike
    assert torch.equal(s, expected)
    att = IELIF(levels=4, spike_value=0.5)(x)  # QSD Multispike_att divides by 2
    assert torch.equal(att, torch.floor(torch.clamp(4 * x, 0, 4) + 0.5) / 2)
    assert set(s.unique().tolist()) == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_ielif_straight_through_gradient_inside_range_only():
    x = torch.tensor([[-0.1, 0.1, 0.5, 0.9, 1.1]], requires_grad=True)
    IELIF(levels=4)(x).sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]


def test_ielif_expansion_is_binary_and_exact():
    x = torch.rand(3, 2, 7) * 1.4 - 0.2
    n = IELIF(levels=4)
    ref = n(x)
    n.reset()
    n.spike_driven = True
    sp = n(x)
    assert isinstance(sp, Spikes) and sp.planes.shape == (4, 3, 2, 7)
    assert set(sp.planes.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(sp.to_tensor(), ref)


def test_ielif_soft_reset_keeps_the_remainder():
    n = IELIF(levels=4, tau=1e9)  # almost no leak
    s = n(torch.tensor([[0.3], [0.3]]))
    # step 1: 0.3 -> k = round(1.2) = 1 (0.25), remainder 0.05; step 2: 0.35 -> k = 1, remainder 0.1
    assert torch.allclose(s.flatten(), torch.tensor([0.25, 0.25]))
    assert torch.allclose(n.v, torch.tensor([0.1]), atol=1e-6)


def test_rectifier_standardises_each_token_over_channels():
    r = MembraneRectifier(8)
    u = torch.randn(2, 3, 8, 5) * 4 + 3
    y = r(u)
    assert torch.allclose(y.mean(2), torch.zeros(2, 3, 5), atol=1e-5)
    assert torch.allclose(y.var(2, unbiased=False), torch.ones(2, 3, 5), atol=1e-3)


def test_build_neuron_rejects_unknown_kind():
    with pytest.raises(ConfigError, match=r"neuron='izhikevich' is not allowed; allowed values: lif, ie-lif"):
        build_neuron("izhikevich")
    assert build_neuron("lif", role="attention").v_threshold == 0.5


@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_ielif_forward_is_the_charge_fire_reset_loop_bit_for_bit(T, detach_reset):
    """IE-LIF's shortcuts (no zero charge, membrane computed when read, no stack at T = 1) change no bit."""
    x = torch.randn(T, 2, 5, 7) * 0.6 + 0.2
    x.view(-1)[:4] = torch.tensor([0.125, 0.375, -0.0, 1.125])  # exact level boundaries, a signed zero
    grad = torch.randn_like(x)
    results = []
    for forward in (IELIF.forward, BaseNeuron.forward):  # the second is the generic loop of the definition
        n = IELIF(levels=4, detach_reset=detach_reset)
        outs = []
        for _ in range(2):  # the second call starts from the kept membrane
            xi = x.clone().requires_grad_()
            s = forward(n, xi)
            s.backward(grad)
            outs += [s.detach(), xi.grad, n.v]
        results.append(outs)
    for ours, ref in zip(*results, strict=True):
        assert torch.equal(ours, ref) and torch.equal(ours.view(torch.int32), ref.view(torch.int32))
    n = IELIF(levels=4)
    n.spike_driven = True
    with torch.no_grad():
        planes = n(x).planes
    k = torch.round(BaseNeuron.forward(IELIF(levels=4), x) / n.spike_value)
    assert torch.equal(planes, (k.unsqueeze(0) > torch.arange(4.0).view(-1, 1, 1, 1, 1)).float())

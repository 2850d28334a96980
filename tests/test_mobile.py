"""timm-backed mobile backbones: identical logits to timm, feature interface, bits knob, input errors."""

import pytest
import timm
import torch

import bench
from bench.errors import ConfigError
from bench.nn.quant import QUANTIZED_LAYERS

TIMM_BACKED = (
    bench.list_models(family="mobilevit")
    + bench.list_models(family="mobilevit_v2")
    + bench.list_models(family="efficientformer")
    + bench.list_models(family="efficientformer_v2")
)
SMALL = [
    "mobilevit_xxs",
    "mobilevitv2_050",
    "efficientformer_l1",
    "efficientformerv2_s0",
    "mobilevit_tiny",
    "efficientformer_tiny",
]


def _timm_twin(name):
    ours = bench.create_model(name).eval()
    timm_name = bench.model_entry(name).paper["timm"]
    extra = {"img_size": ours.img_size} if timm_name.startswith("efficientformerv2") else {}
    theirs = timm.create_model(timm_name, pretrained=False, num_classes=ours.num_classes, **extra).eval()
    ours.net.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("name", SMALL)
def test_same_weights_give_identical_logits_to_timm(name):
    ours, theirs = _timm_twin(name)
    x = torch.randn(2, 3, ours.img_size, ours.img_size)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_every_timm_backed_variant_is_registered_with_timm_parameter_count():
    for name in TIMM_BACKED:
        ours, theirs = _timm_twin(name)
        assert ours.num_params() == sum(p.numel() for p in theirs.parameters()), name


@pytest.mark.parametrize(
    "name,strides",
    [
        ("mobilevit_xxs", (2, 4, 8, 16, 32)),
        ("efficientformer_l1", (4, 8, 16, 32)),
        ("efficientformerv2_s0", (4, 8, 16, 32)),
    ],
)
def test_feature_interface_returns_documented_strides_and_channels(name, strides):
    m = bench.create_model(name).eval()
    s = m.img_size
    with torch.no_grad():
        feats = m.forward_features(torch.randn(1, 3, s, s))
    assert tuple(f["reduction"] for f in m.feature_info) == strides
    for f, info in zip(feats, m.feature_info, strict=True):
        assert f.shape == (1, info["num_chs"], s // info["reduction"], s // info["reduction"])


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_bits_knob_quantizes_every_conv_and_linear(bits):
    m = bench.create_model("mobilevit_tiny", bits=bits, bits_first=8, bits_head=32)
    layers = [x for x in m.modules() if isinstance(x, QUANTIZED_LAYERS)]
    assert len(layers) == m.num_quantized
    assert layers[0].bits == 8 and m.net.get_classifier().bits == 32
    for layer in layers[1:-1]:
        w = layer.quantized_weight()
        assert layer.bits == bits
        assert max(w[o].unique().numel() for o in range(w.shape[0])) <= 2**bits
    loss = m(torch.randn(2, 3, 64, 64)).logsumexp(1).mean()
    loss.backward()
    assert layers[1].quantizer.step.grad is not None


def test_efficientformer_v1_at_another_size_resamples_attention_biases():
    m = bench.create_model("efficientformer_l1", img_size=256).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 256, 256)).shape == (1, 1000)


@pytest.mark.parametrize(
    "call,msg",
    [
        (lambda: bench.create_model("mobilevit_xxs")(torch.randn(1, 3, 250, 250)), "divisible by 32"),
        (
            lambda: bench.create_model("efficientformer_l1")(torch.randn(1, 3, 256, 256)),
            "create the model with img_size=256",
        ),
        (lambda: bench.create_model("efficientformer_l1", img_size=100), "img_size=100 is not allowed"),
        (lambda: bench.create_model("mobilevit_xxxs"), "closest registered names: mobilevit_xxs"),
        (
            lambda: bench.create_model("mobilevit_s", bits=9),
            "bits=9 is not allowed; allowed values: 1..8 or 32",
        ),
    ],
)
def test_bad_input_gives_one_line_error(call, msg):
    with pytest.raises(ConfigError) as err:
        call()
    assert msg in str(err.value) and "\n" not in str(err.value)


MOBILE_FORMER_PAPER = {
    "mobile_former_26m": 3.2,
    "mobile_former_52m": 3.5,
    "mobile_former_96m": 4.6,
    "mobile_former_151m": 7.6,
    "mobile_former_214m": 9.4,
    "mobile_former_294m": 11.4,
    "mobile_former_508m": 14.0,
}


@pytest.mark.parametrize("name", sorted(MOBILE_FORMER_PAPER))
def test_mobile_former_params_forward_backward_and_features(name):
    m = bench.create_model(name)
    params = m.num_params() / 1e6
    paper = MOBILE_FORMER_PAPER[name]
    print(f"{name}: {params:.3f} M (paper {paper} M, {100 * (params / paper - 1):+.2f} %)")
    assert abs(params / paper - 1) < 0.02
    x = torch.randn(2, 3, 224, 224)
    y = m(x)
    y.logsumexp(1).mean().backward()
    assert y.shape == (2, 1000) and m.tokens.weight.grad.abs().sum() > 0
    feats = m.forward_features(x)
    assert [f["reduction"] for f in m.feature_info] == [4, 8, 16, 32]
    for f, info in zip(feats, m.feature_info, strict=True):
        assert f.shape == (2, info["num_chs"], 224 // info["reduction"], 224 // info["reduction"])


def test_mobile_former_bits_and_bad_input():
    m = bench.create_model("mobile_former_tiny", bits=3)
    layers = [x for x in m.modules() if isinstance(x, QUANTIZED_LAYERS)]
    assert len(layers) == m.num_quantized > 20
    for layer in layers:
        w = layer.quantized_weight()
        assert max(w[o].unique().numel() for o in range(w.shape[0])) <= 8
    with pytest.raises(ConfigError, match="divisible by 32"):
        m(torch.randn(1, 3, 70, 70))

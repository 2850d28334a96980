"""Plain ViT on timm's modules: timm's parameters and logits, one stride-16 map per block, quant_groups."""

import pytest
import timm
import torch

import bench
from bench.errors import ConfigError
from bench.nn.quant import QUANTIZED_LAYERS


def _timm_twin(name):
    ours = bench.create_model(name).eval()
    timm_name = bench.model_entry(name).paper["timm"]
    theirs = timm.create_model(timm_name, num_classes=ours.num_classes, img_size=ours.img_size, **ours.arch)
    return ours, theirs.eval()


@pytest.mark.parametrize("name", ["vit_tiny", "vit_base_patch16_224"])
def test_parameter_count_equals_timm(name):
    with torch.device("meta"):  # shapes only: no 86M-parameter initialisation
        ours, theirs = _timm_twin(name)
    assert ours.num_params() == sum(p.numel() for p in theirs.parameters())
    assert bench.model_entry(name).family == "vit"
    if name == "vit_base_patch16_224":
        assert abs(ours.num_params() / 1e6 - 86.6) < 0.05


def test_same_weights_give_identical_logits_and_features():
    ours, theirs = _timm_twin("vit_tiny")
    ours.net.load_state_dict(theirs.state_dict())  # same parameter names as timm
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
        feats = ours.forward_features(torch.randn(1, 3, 96, 128))  # any size divisible by 16
    assert ours.out_indices == (3,) and len(ours.feature_info) == 4
    assert {f["reduction"] for f in ours.feature_info} == {16}
    assert [f.shape for f in feats] == [(1, 64, 6, 8)]
    two = bench.create_model("vit_tiny", out_indices=(1, 3)).forward_features(x)
    assert [f.shape for f in two] == [(2, 64, 4, 4)] * 2


def _levels(layer):
    w = layer.quantized_weight().detach()
    return max(w[o].unique().numel() for o in range(w.shape[0]))


@pytest.mark.parametrize(
    "groups, quantized",
    [("all", ("qkv", "attn.proj", "fc1", "fc2")), ("attn", ("qkv", "attn.proj")), ("mlp", ("fc1", "fc2"))],
)
def test_quant_groups_quantize_exactly_the_selected_linears(groups, quantized):
    m = bench.create_model("vit_tiny", bits=2, bits_first=8, bits_head=32, quant_groups=groups)
    layers = {n: x for n, x in m.net.named_modules() if isinstance(x, QUANTIZED_LAYERS)}
    assert len(layers) == 2 + 4 * 4
    for name, layer in layers.items():
        if name == "patch_embed.proj":
            assert layer.bits == 8 and _levels(layer) <= 2**8
        elif name == "head" or not name.endswith(quantized):
            assert layer.bits == 32 and layer.quantizer is None
            assert torch.equal(layer.quantized_weight(), layer.weight)
        else:
            assert layer.bits == 2 and _levels(layer) <= 4, name
    m(torch.randn(1, 3, 64, 64)).sum().backward()
    assert m.net.blocks[0].attn.qkv.weight.grad is not None


def test_bad_quant_groups_is_a_one_line_error():
    allowed = "quant_groups='ffn' is not allowed; allowed values: all, attn, mlp"
    with pytest.raises(ConfigError, match=allowed):
        bench.create_model("vit_tiny", quant_groups="ffn")
    with pytest.raises(ConfigError, match="divisible by 16"):
        bench.create_model("vit_tiny")(torch.randn(1, 3, 60, 64))
